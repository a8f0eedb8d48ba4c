"""The multi-scale French flag (REFERENCE-MODELS T6): a morphogen gradient (T3) read by a
gene circuit in every cell.

References used here, none of them computed by jaxcell:

- the exact steady state of the discretised field (a tridiagonal linear solve in numpy)
  and of the continuous problem, c0 cosh((L - x)/lam) / cosh(L/lam);
- T6's numbers: boundaries at lam ln(c0/T) = 13.86 and 46.05 cells, shifted by
  lam ln 2 = 13.86 when c0 doubles;
- the implicit derivative of the continuous boundary, dx/d ln c0 = lam coth((L - x)/lam)
  (and minus that with respect to ln T);
- central finite differences of the simulation itself;
- the roots of the switch's steady-state polynomial (numpy) for the bistable readout.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.models import flag_boundaries, french_flag

N, LAM, C0, T1, T2, D, HILL = 100, 20.0, 1.0, 0.5, 0.1, 400.0, 2.0
L = float(N)  # cells of width 1
# One controller (and always an explicit y0) for every solve of this module, so that the
# Hill model, its gradient and the switch model compile once each.
TIGHT = diffrax.PIDController(rtol=1e-8, atol=1e-10)
T_END = 30.0  # 30 morphogen lifetimes and readout times: steady to ~1e-12
GENES, FIELD = "cellular/flag/genes", "tissue/morphogen/concentration"
START = {GENES: np.zeros((N, 2)), FIELD: np.zeros(N)}  # the model's own initial state


def _continuous_boundary(c0, T, L=L, lam=LAM):
    """Where c0 cosh((L - x)/lam)/cosh(L/lam) = T."""
    return L - lam * np.arccosh(T / c0 * np.cosh(L / lam))


def _discrete_steady_field(c0, n=N, D=D, k=D / LAM**2):
    """Steady state of the finite-volume scheme: D (c[i-1] - 2 c[i] + c[i+1]) = k c[i],
    with the ghost cells c[-1] = 2 c0 - c[0] (Dirichlet face) and c[n] = c[n-1]."""
    M = np.diag(np.full(n, -2.0 * D - k)) + D * (np.eye(n, k=1) + np.eye(n, k=-1))
    M[0, 0] -= D
    M[-1, -1] += D
    b = np.zeros(n)
    b[0] = -2.0 * D * c0
    return np.linalg.solve(M, b)


def _crossing(profile, level=0.5):
    """np.interp on the reversed (increasing) profile, cell centres at i + 1/2."""
    x = np.arange(len(profile)) + 0.5
    return float(np.interp(level, profile[::-1], x[::-1]))


def _final(model, t1=T_END, y0=None):
    traj = jc.simulate(model, 0.0, t1, saveat=[t1], stepsize_controller=TIGHT,
                       y0=START if y0 is None else y0)
    return np.asarray(traj[GENES][-1]), np.asarray(traj[FIELD][-1])


@pytest.fixture(scope="module")
def hill():
    """Final state of the default flag and of the flag with c0 doubled (one compile)."""
    return {c0: _final(french_flag(c0=c0)) for c0 in (C0, 2 * C0)}


def test_steady_pattern_matches_the_exact_solutions(hill):
    genes, field = hill[C0]
    # the field is the exact steady state of the discretised problem
    exact = _discrete_steady_field(C0)
    np.testing.assert_allclose(field, exact, rtol=1e-6, atol=1e-12)
    # at steady state the Hill readout is c^n / (c^n + T^n) of that field
    for j, T in enumerate((T1, T2)):
        np.testing.assert_allclose(genes[:, j], exact**HILL / (exact**HILL + T**HILL),
                                   rtol=1e-6, atol=1e-12)
    x = np.asarray(flag_boundaries(genes))
    # T6: lam ln(c0/T) = 13.86 and 46.05, within one cell
    np.testing.assert_allclose(x, [13.86, 46.05], atol=1.0)
    np.testing.assert_allclose(x, LAM * np.log(C0 / np.array([T1, T2])), atol=1.0)
    # the continuous cosh solution (finite tissue) to a small fraction of a cell
    x_cont = [_continuous_boundary(C0, T) for T in (T1, T2)]
    np.testing.assert_allclose(x, x_cont, atol=0.01)
    # and the interpolated crossing of the exact discrete readouts, closely
    x_disc = [_crossing(exact**HILL / (exact**HILL + T**HILL)) for T in (T1, T2)]
    np.testing.assert_allclose(x, x_disc, atol=1e-5)


def test_doubling_c0_shifts_both_boundaries_by_lam_ln2(hill):
    x1 = np.asarray(flag_boundaries(hill[C0][0]))
    x2 = np.asarray(flag_boundaries(hill[2 * C0][0]))
    np.testing.assert_allclose(x2 - x1, LAM * np.log(2.0), atol=1.0)  # 13.86 (T6)
    # the finite tissue bends the far boundary a little further (cosh profile)
    expected = [_continuous_boundary(2 * C0, T) - _continuous_boundary(C0, T)
                for T in (T1, T2)]
    np.testing.assert_allclose(x2 - x1, expected, atol=0.01)


# A target pattern (a flag with boundaries at 15 and 40) for a tissue-level loss.
_CELLS = np.arange(N) + 0.5
TARGET = np.stack([(_CELLS < 15.0), (_CELLS < 40.0)], axis=-1).astype(float)
THETA0 = np.log([C0, T1, T2, HILL])  # (ln c0, ln T1, ln T2, ln n)


def _outputs(theta):
    """Boundary positions and a tissue-level pattern loss, from one simulation of the
    flag with (c0, T1, T2, n) = exp(theta): one field and three intracellular
    parameters."""
    c0, t1, t2, n = jnp.exp(theta)
    traj = jc.simulate(french_flag(c0=c0, T1=t1, T2=t2, n=n), 0.0, T_END,
                       saveat=[T_END], stepsize_controller=TIGHT, y0=START)
    genes = traj[GENES][-1]
    loss = jnp.mean((genes - TARGET) ** 2)
    return jnp.concatenate([flag_boundaries(genes), loss[None]])


def _weighted(theta, w):
    return jnp.dot(w, _outputs(theta))


@pytest.fixture(scope="module")
def jacobian():
    """Rows of the Jacobian of (x1, x2, loss) w.r.t. theta by reverse mode: jax.grad
    of w . outputs with w a traced argument, so the three rows share one compile."""
    grad = jax.grad(_weighted)
    theta = jnp.asarray(THETA0)
    rows = [np.asarray(grad(theta, jnp.asarray(w))) for w in np.eye(3)]
    return np.stack(rows), np.asarray(_outputs(theta))


def test_boundary_derivative_wrt_ln_c0_is_the_analytic_value(jacobian):
    jac, out = jacobian
    x = out[:2]
    analytic = LAM / np.tanh((L - x) / LAM)  # lam coth((L - x)/lam) ~ lam = 20
    np.testing.assert_allclose(jac[:2, 0], analytic, rtol=1e-3)
    # the thresholds are intracellular: dx_j/d ln T_j = -dx_j/d ln c0, and readout j
    # does not see the other threshold at all
    np.testing.assert_allclose(jac[0, 1], -analytic[0], rtol=1e-3)
    np.testing.assert_allclose(jac[1, 2], -analytic[1], rtol=1e-3)
    assert abs(jac[0, 2]) < 1e-6 and abs(jac[1, 1]) < 1e-6
    # at steady state A_j = 1/2 exactly where c = T_j, whatever the Hill coefficient:
    # only the interpolation between cells feels n (relative 1e-5 of lam)
    assert np.all(np.abs(jac[:2, 3]) < 1e-3)


def test_gradient_through_the_tissue_matches_finite_differences(jacobian):
    """d loss / d (ln T1, ln T2, ln n): the tissue-level loss differentiated back to the
    intracellular parameters, against central differences of the simulation."""
    jac, _ = jacobian
    eps = 1e-4  # central differences: truncation error ~1e-8 relative here
    fd = np.zeros(4)
    for i in (1, 2, 3):
        e = np.zeros(4)
        e[i] = eps
        fd[i] = (float(_outputs(jnp.asarray(THETA0 + e))[2])
                 - float(_outputs(jnp.asarray(THETA0 - e))[2])) / (2 * eps)
    np.testing.assert_allclose(jac[2, 1:], fd[1:], rtol=1e-5)
    assert np.all(np.abs(jac[2, 1:]) > 1e-4)  # every intracellular parameter matters


def test_hill_pattern_fades_without_the_source(hill):
    """Contrast for the memory test: the smooth readout forgets."""
    genes, field = hill[C0]
    after, field_after = _final(french_flag(c0=0.0), y0={GENES: genes, FIELD: np.zeros(N)})
    assert np.all(field_after == 0.0)
    np.testing.assert_allclose(after, genes * np.exp(-T_END), rtol=1e-6, atol=1e-12)


# -- the bistable switch ------------------------------------------------------------------


def test_switch_parameters_put_the_saddle_node_at_half_input():
    """Steady states of beta s + alpha g^2/(K^2 + g^2) = g are the real roots of
    g^3 - (alpha + beta s) g^2 + K^2 g - beta s K^2 = 0: three just below s = 1/2,
    one just above, and three at s = 0 (the switch remembers)."""
    p = french_flag(bistable=True).parameters()
    alpha, beta, K = (float(p[f"flag.{k}"]) for k in ("alpha", "beta", "K"))

    def n_states(s):
        roots = np.roots([1.0, -(alpha + beta * s), K**2, -beta * s * K**2])
        return int(np.sum(np.abs(roots.imag) < 1e-9 * np.abs(roots).max()))

    assert n_states(0.5 - 1e-4) == 3 and n_states(0.5 + 1e-4) == 1
    assert n_states(0.0) == 3
    assert n_states(1.0) == 1


@pytest.fixture(scope="module")
def toggle():
    model = french_flag(bistable=True)
    return jc.simulate(model, 0.0, 100.0, saveat=[100.0], stepsize_controller=TIGHT,
                       y0=START)


def test_switch_pattern_is_sharp_and_at_the_thresholds(toggle):
    genes = np.asarray(toggle[GENES][-1])
    # every cell is on (upper branch) or off (lower branch): a one-cell-wide boundary
    assert np.all((genes > 0.8) | (genes < 0.13))
    x = np.asarray(flag_boundaries(genes))
    np.testing.assert_allclose(x, [13.86, 46.05], atol=1.0)
    # the cells that are on are those where the steady field exceeds the threshold
    field = _discrete_steady_field(C0)
    on = genes > 0.5
    margin = np.abs(np.log(field[:, None] / np.array([T1, T2]))) > 0.06  # 1.2 cells
    np.testing.assert_array_equal(on[margin], (field[:, None] > [T1, T2])[margin])


def test_switch_remembers_the_pattern_after_the_source_is_removed(toggle):
    genes = np.asarray(toggle[GENES][-1])
    y0 = {GENES: genes, FIELD: np.zeros(N)}
    traj = jc.simulate(french_flag(c0=0.0, bistable=True), 0.0, 100.0, saveat=[100.0],
                       stepsize_controller=TIGHT, y0=y0)
    after = np.asarray(traj[GENES][-1])
    assert np.all(np.asarray(traj[FIELD]) == 0.0)
    np.testing.assert_array_equal(after > 0.5, genes > 0.5)
    # on cells sit at the upper steady state of the switch without input, the larger
    # root of alpha g / (K^2 + g^2) = 1; off cells decay to zero
    p = {k: 289 / 256 if k == "alpha" else 0.5 for k in ("alpha", "K")}
    g_on = (p["alpha"] + np.sqrt(p["alpha"] ** 2 - 4 * p["K"] ** 2)) / 2
    np.testing.assert_allclose(after[genes > 0.5], g_on, rtol=1e-6)
    assert np.all(after[genes < 0.5] < 1e-6)
    np.testing.assert_allclose(flag_boundaries(after), flag_boundaries(genes), atol=1.0)


# -- reading boundaries, and bad input ------------------------------------------------------


def test_flag_boundaries_interpolates_and_flags_missing_crossings():
    x = np.arange(6) + 0.5
    ramp = 1.0 - x / 4.0  # crosses 1/2 at x = 2 exactly
    a = np.stack([ramp, np.ones(6), np.zeros(6)], axis=-1)
    out = np.asarray(flag_boundaries(a))
    np.testing.assert_allclose(out[0], 2.0, rtol=1e-14)
    assert np.isnan(out[1]) and np.isnan(out[2])  # never falls; starts below
    # spacing, level and batch axes
    batch = np.stack([a, a[::-1]])
    out = np.asarray(flag_boundaries(batch, level=0.25, spacing=2.0))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0, 0], 2 * 3.0, rtol=1e-14)
    # the gradient flows through the interpolation: dx/dA at the two cells
    g = np.asarray(jax.grad(lambda r: flag_boundaries(r[:, None])[0])(jnp.asarray(ramp)))
    np.testing.assert_allclose(g[1:3], [4.0 * 0.5, 4.0 * 0.5], rtol=1e-12)
    assert np.all(g[[0, 3, 4, 5]] == 0.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"lam": -1.0}, "lam"), ({"lam": 0.0}, "lam"), ({"lam": float("nan")}, "lam"),
     ({"T1": 0.0}, "T1"), ({"T2": -0.1}, "T2"), ({"T1": [0.5, 0.4]}, "T1"),
     ({"n_cells": 1}, "n_cells"), ({"n_cells": 10.5}, "n_cells"), ({"c0": -1.0}, "c0"),
     ({"D": 0.0}, "D"), ({"n": 0.0}, "n"), ({"tau": -1.0}, "tau"),
     ({"T1": 0.1, "T2": 0.2}, "T1")],
)
def test_bad_input_raises_model_error_naming_the_parameter(kwargs, name):
    with pytest.raises(jc.ModelError, match=f"^french_flag: {name} ") as err:
        french_flag(**kwargs)
    print(err.value)
