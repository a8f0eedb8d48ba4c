"""The small-matrix inverse used by Rodas5 (``jaxcell/solvers/_small_linalg.py``):
accuracy against LAPACK/NumPy, the vmap path, derivatives, singular matrices."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import central_difference
from jax.test_util import check_grads

import jaxcell as jc
from jaxcell.solvers import Rodas5
from jaxcell.solvers._rosenbrock import GAMMA
from jaxcell.solvers._small_linalg import (
    GAUSS_JORDAN_MAX_N,
    gauss_jordan_inv,
    lu_inv,
    small_inv,
)

EPS = np.finfo(np.float64).eps
_gj = jax.jit(gauss_jordan_inv)
_lu = jax.jit(lu_inv)


def _with_condition(n, cond, rng):
    """A random ``n x n`` matrix with 2-norm condition number ``cond``."""
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return u @ np.diag(np.logspace(0.0, -np.log10(cond), n)) @ v.T


def _residual(a, x):
    return np.linalg.norm(a @ x - np.eye(a.shape[0]), 2)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 8, 12, 13, 20])
def test_gauss_jordan_matches_numpy_on_random_matrices(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        a = rng.standard_normal((n, n))
        ref = np.linalg.inv(a)
        x = np.asarray(_gj(a))
        # forward error of any backward-stable inverse: O(eps cond(A))
        bound = 50 * n * EPS * np.linalg.cond(a)
        assert np.linalg.norm(x - ref) <= bound * np.linalg.norm(ref)


@pytest.mark.parametrize("a", [
    [[0.0, 1.0], [1.0, 0.0]],
    [[0.0, 2.0, 1.0], [1.0, 0.0, 3.0], [4.0, 1.0, 0.0]],
    [[1e-20, 1.0], [1.0, 1.0]],  # tiny leading pivot: wrong without row pivoting
    np.eye(6)[[3, 5, 0, 1, 4, 2]],  # a permutation matrix
    np.eye(6)[::-1] * np.arange(1.0, 7.0),
], ids=["swap", "zero-diagonal", "tiny-pivot", "permutation", "anti-diagonal"])
def test_gauss_jordan_pivots(a):
    a = np.asarray(a, dtype=float)
    x = np.asarray(_gj(a))
    np.testing.assert_allclose(x, np.linalg.inv(a), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(a @ x, np.eye(a.shape[0]), atol=1e-14)


@pytest.mark.parametrize("cond", [1e4, 1e8, 1e12])
def test_ill_conditioned_residual_like_lapack(cond):
    """Backward-stability check: ``||A X - I|| / (cond(A) eps)`` of order one, and no
    worse than LAPACK's LU-based inverse (also with a zero leading entry)."""
    rng = np.random.default_rng(7)
    for n in (4, 8, 12):
        a = _with_condition(n, cond, rng)
        b = a[np.roll(np.arange(n), 1)]
        b[0, 0] = 0.0
        for m in (a, b):
            kappa = np.linalg.cond(m)
            res_gj = _residual(m, np.asarray(_gj(m)))
            res_lu = _residual(m, np.asarray(_lu(m)))
            assert res_gj <= 10 * n * EPS * kappa
            assert res_gj <= 20 * res_lu + 10 * EPS


def test_small_inv_unbatched_is_lapack_and_batched_is_gauss_jordan():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 5, 5))
    np.testing.assert_array_equal(small_inv(a[0]), lu_inv(a[0]))
    batched = jax.jit(jax.vmap(small_inv))
    np.testing.assert_allclose(batched(a), np.linalg.inv(a), rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(batched(a), jax.vmap(gauss_jordan_inv)(a))
    # no per-member LAPACK call in the batched program; LAPACK in the single one
    assert "lapack" not in batched.lower(a).as_text()
    assert "lapack" in jax.jit(small_inv).lower(a[0]).as_text()
    # nested vmaps and a batch axis that is not the first
    nested = jax.vmap(jax.vmap(small_inv))(a.reshape(2, 3, 5, 5)).reshape(6, 5, 5)
    np.testing.assert_allclose(nested, batched(a), rtol=1e-13, atol=1e-14)
    moved = jax.vmap(small_inv, in_axes=2, out_axes=0)(np.moveaxis(a, 0, 2))
    np.testing.assert_allclose(moved, batched(a), rtol=1e-13, atol=1e-14)


def test_large_batched_matrices_use_lapack():
    n = GAUSS_JORDAN_MAX_N + 1
    a = np.random.default_rng(4).standard_normal((3, n, n))
    batched = jax.jit(jax.vmap(small_inv))
    assert "lapack" in batched.lower(a).as_text()
    np.testing.assert_allclose(batched(a), np.linalg.inv(a), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batched", [False, True])
def test_derivatives_match_finite_differences(batched):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 4)) + 3.0 * np.eye(4)
    a[0, 0] = 0.0  # needs a row exchange
    if batched:
        f = jax.vmap(small_inv)
        arg = np.stack([a, a.T + np.eye(4)])
    else:
        f = small_inv
        arg = a
    check_grads(f, (arg,), order=2, modes=["fwd", "rev"])
    # also the elimination itself (differentiated through its operations)
    check_grads(gauss_jordan_inv, (a,), order=1, modes=["fwd", "rev"])

    def loss(flat):
        return jnp.sum(jnp.sin(f(flat.reshape(arg.shape))))

    fd = central_difference(loss, arg.ravel(), h=1e-6)
    np.testing.assert_allclose(jax.grad(loss)(arg.ravel()), fd, rtol=1e-6, atol=1e-8)


def test_singular_matrix_gives_non_finite_inverse():
    """As with LAPACK's LU: a zero pivot yields inf/nan, no exception."""
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    assert not np.all(np.isfinite(_gj(a)))
    assert not np.all(np.isfinite(jax.jit(small_inv)(a)))
    assert not np.all(np.isfinite(_lu(a)))
    out = jax.vmap(small_inv)(np.stack([a, np.eye(3)]))
    assert not np.all(np.isfinite(out[0]))
    np.testing.assert_array_equal(out[1], np.eye(3))  # other members unaffected


def test_rodas5_step_with_singular_iteration_matrix_reports_non_finite_error():
    """``y' = lam y`` with ``h = 1/(gamma lam)`` makes ``I/gamma - hJ`` singular; the step's
    error estimate is then non-finite (so an adaptive controller rejects the step),
    unbatched and in a vmapped batch alike."""
    lam = 2.0
    term = diffrax.ODETerm(lambda t, y, args: args * y)
    solver = Rodas5()

    def step(h, y0):
        _, err, _, _, _ = solver.step(term, 0.0, h, y0, lam, None, False)
        return err

    h_bad = 1.0 / (GAMMA * lam)
    y0 = jnp.array([1.0, 2.0])
    assert not np.all(np.isfinite(step(h_bad, y0)))
    errs = jax.vmap(step)(jnp.array([h_bad, 0.1]), jnp.stack([y0, y0]))
    assert not np.all(np.isfinite(errs[0]))
    assert np.all(np.isfinite(errs[1]))


def test_rodas5_ensemble_forward_mode_gradients_match_finite_differences():
    """Forward mode through a vmapped Rodas5 solve (the Gauss-Jordan path). Reverse mode
    under vmap is checked against single runs in ``test_rosenbrock.py``."""
    model = jc.models.michaelis_menten(vmax=0.3, km=2.0, s0=2.0)
    ts = jnp.linspace(0.5, 8.0, 4)

    def loss(vmax, adjoint=None):
        m = model.replace_parameters({"vmax": vmax})
        kw = {} if adjoint is None else {"adjoint": adjoint}
        traj = jc.simulate(m, 0.0, 8.0, saveat=ts, throw=False, **kw,
                           stepsize_controller=jc.default_controller(1e-10, 1e-12))
        return jnp.sum(traj["S"])

    vmax = np.array([0.2, 0.3, 0.5])
    fwd = jax.jit(jax.vmap(jax.jacfwd(lambda v: loss(v, diffrax.ForwardMode()))))(vmax)
    primal = jax.jit(jax.vmap(loss))
    h = 1e-6
    fd = (np.asarray(primal(vmax + h)) - np.asarray(primal(vmax - h))) / (2 * h)
    np.testing.assert_allclose(fwd, fd, rtol=1e-5)
