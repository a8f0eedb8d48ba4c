"""Global sensitivity analysis: Sobol' indices and Morris screening.

Science checks: analytic indices of the Ishigami function and the Sobol' G-function,
point estimates identical to SALib 1.6.0 on the same samples, Morris effects of a linear
function, and a jaxcell ensemble whose dummy parameter must get zero indices.
"""

from __future__ import annotations

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc

gsa = jc.analysis
PI = math.pi


# -- test functions with analytic indices ------------------------------------------------


def ishigami(x, a=7.0, b=0.1):
    return jnp.sin(x[:, 0]) + a * jnp.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * jnp.sin(x[:, 0])


def ishigami_indices(a=7.0, b=0.1):
    """Analytic (S1, ST) of the Ishigami function on [-pi, pi]^3.

    Partial variances from Sobol' & Levitan (1999), Comput. Phys. Commun. 117:52-61,
    and Saltelli et al. (2008), Global Sensitivity Analysis: The Primer, Wiley:
    V1 = b pi^4/5 + b^2 pi^8/50 + 1/2, V2 = a^2/8, V3 = 0, V13 = 8 b^2 pi^8/225,
    V = a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2.
    """
    v1 = b * PI**4 / 5 + b**2 * PI**8 / 50 + 0.5
    v2 = a**2 / 8
    v13 = 8 * b**2 * PI**8 / 225
    v = a**2 / 8 + b * PI**4 / 5 + b**2 * PI**8 / 18 + 0.5
    np.testing.assert_allclose(v, v1 + v2 + v13, rtol=1e-12)  # the decomposition adds up
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v


G_A = np.array([0.0, 1.0, 4.5, 9.0, 99.0, 99.0])


def g_function(x):
    a = jnp.asarray(G_A)
    return jnp.prod((jnp.abs(4.0 * x - 2.0) + a[None]) / (1.0 + a[None]), axis=1)


def g_indices():
    """Analytic (S1, ST) of the Sobol' G-function on [0, 1]^d (Saltelli & Sobol' 1995,
    Reliab. Eng. Syst. Saf. 50:225-239): V_i = 1/(3 (1 + a_i)^2),
    V = prod(1 + V_i) - 1, ST_i = V_i prod_{j != i}(1 + V_j) / V."""
    vi = 1.0 / (3.0 * (1.0 + G_A) ** 2)
    v = np.prod(1.0 + vi) - 1.0
    return vi / v, vi * np.prod(1.0 + vi) / (1.0 + vi) / v


def test_ishigami_values():
    s1, st = ishigami_indices()
    np.testing.assert_allclose(s1, [0.3139, 0.4424, 0.0], atol=1e-4)
    np.testing.assert_allclose(st, [0.5576, 0.4424, 0.2437], atol=1e-4)


# The analytic value must lie in the bootstrap interval of every index. With 6 (Ishigami)
# or 12 (G) intervals per test, 95% intervals would miss one about 26% (46%) of the time
# by chance alone, so the coverage checks use 99% intervals; the estimates must also lie
# within 0.02 of the analytic values (about 3 standard errors at n = 2^14).


def test_ishigami_within_intervals():
    s1, st = ishigami_indices()
    r = gsa.sobol_indices(ishigami, [[-PI, PI]] * 3, 2**14, jax.random.key(0),
                          names=["x1", "x2", "x3"], confidence=0.99)
    assert r.first_order.shape == (3,) and r.first_order_interval.shape == (2, 3)
    assert r.n_evaluations == 2**14 * 5
    np.testing.assert_allclose(r.first_order, s1, atol=0.02)
    np.testing.assert_allclose(r.total, st, atol=0.02)
    for est, iv, exact in ((r.first_order, r.first_order_interval, s1),
                           (r.total, r.total_interval, st)):
        lo, hi = np.asarray(iv)
        assert np.all(lo <= exact) and np.all(exact <= hi), (lo, exact, hi)
        assert np.all(lo <= est) and np.all(est <= hi)
    text = repr(r)
    assert "x3" in text and "ST" in text and "81920 evaluations, 99%" in text


def test_g_function():
    s1, st = g_indices()
    r = gsa.sobol_indices(g_function, [[0.0, 1.0]] * 6, 2**14, jax.random.key(3),
                          confidence=0.99)
    np.testing.assert_allclose(r.first_order, s1, atol=0.02)
    np.testing.assert_allclose(r.total, st, atol=0.02)
    for iv, exact in ((r.first_order_interval, s1), (r.total_interval, st)):
        lo, hi = np.asarray(iv)
        assert np.all(lo <= exact) and np.all(exact <= hi), (lo, exact, hi)


def test_several_outputs_and_no_recompilation():
    def fn(x):
        return jnp.stack([ishigami(x), x[:, 0]], axis=1)

    bounds = [[-PI, PI]] * 3
    r = gsa.sobol_indices(fn, bounds, 2**10, jax.random.key(0), n_bootstrap=100)
    assert r.first_order.shape == (2, 3) and r.total_interval.shape == (2, 2, 3)
    # output 1 is x0 alone: S1 = ST = (1, 0, 0); the zeros are exact (f(A_B^(i)) = f(A))
    # and both estimators' standard errors at n = 2^10 are about 0.035 (30 seeds)
    np.testing.assert_allclose(r.first_order[1], [1.0, 0.0, 0.0], atol=0.15)
    np.testing.assert_allclose(r.total[1], [1.0, 0.0, 0.0], atol=0.15)
    np.testing.assert_array_equal(r.first_order_interval[:, 1, 1:], 0.0)
    assert "output 1" in r.table()
    from jaxcell.analysis import _sobol

    size = _sobol._sobol_analyze._cache_size()
    gsa.sobol_indices(fn, bounds, 2**10, jax.random.key(1), n_bootstrap=100)
    assert _sobol._sobol_analyze._cache_size() == size


# -- agreement with SALib ----------------------------------------------------------------


def _salib_order(y, n, d):
    """Block layout [A; B; AB_1..AB_d] -> SALib's per-sample rows (A, AB_1..AB_d, B)."""
    y = np.asarray(y)
    fa, fb, fab = y[:n], y[n:2 * n], y[2 * n:].reshape(d, n)
    return np.column_stack([fa, fab.T, fb]).reshape(-1)


def test_sobol_matches_salib_on_our_samples():
    analyze = pytest.importorskip("SALib.analyze.sobol")
    n, d = 2**14, 3  # the shapes of test_ishigami_within_intervals: nothing recompiles
    x = gsa.saltelli_sample([[-PI, PI]] * d, n, jax.random.key(5))
    y = ishigami(x)
    ours = gsa.sobol_indices_from_outputs(y, d, jax.random.key(0))
    problem = {"num_vars": d, "names": ["x1", "x2", "x3"], "bounds": [[-PI, PI]] * d}
    ref = analyze.analyze(problem, _salib_order(y, n, d), calc_second_order=False,
                          num_resamples=10, seed=1)
    np.testing.assert_allclose(ours.first_order, ref["S1"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.total, ref["ST"], rtol=0, atol=1e-10)


def test_sobol_matches_salib_on_its_samples():
    sample = pytest.importorskip("SALib.sample.sobol")
    analyze = pytest.importorskip("SALib.analyze.sobol")
    n, d = 2**14, 6  # the shapes of test_g_function
    problem = {"num_vars": d, "names": [f"g{i}" for i in range(d)], "bounds": [[0, 1]] * d}
    xs = sample.sample(problem, n, calc_second_order=False, seed=2)  # (n (d + 2), d)
    ys = np.asarray(g_function(jnp.asarray(xs)))
    ref = analyze.analyze(problem, ys, calc_second_order=False, num_resamples=10, seed=1)
    per = ys.reshape(n, d + 2)  # SALib rows per sample: A, AB_1..AB_d, B -> our blocks
    blocks = np.concatenate([per[:, 0], per[:, -1], per[:, 1:-1].T.reshape(-1)])
    ours = gsa.sobol_indices_from_outputs(blocks, d, jax.random.key(0), confidence=0.99,
                                          names=problem["names"])
    np.testing.assert_allclose(ours.first_order, ref["S1"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.total, ref["ST"], rtol=0, atol=1e-10)


def _morris_test_fn(x):
    y = x[:, 0] ** 2 + 3.0 * x[:, 1] + jnp.sin(x[:, 2]) * x[:, 0] + 0.0 * x[:, 3]
    return jnp.stack([y, -2.0 * y], axis=1)  # two outputs; SALib analyses the first


# All Morris tests use d = 4, r = 40, k = 2 and 4 levels, so that nothing recompiles.


MORRIS_BOUNDS = [[0.0, 2.0], [-1.0, 1.0], [0.0, PI], [5.0, 6.0]]


def test_morris_matches_salib_on_our_trajectories():
    analyze = pytest.importorskip("SALib.analyze.morris")
    x = gsa.morris_sample(MORRIS_BOUNDS, 40, jax.random.key(0), levels=4)
    y = _morris_test_fn(x)
    ours = gsa.morris_indices_from_outputs(x, y, MORRIS_BOUNDS, jax.random.key(1))
    problem = {"num_vars": 4, "names": list("abcd"), "bounds": MORRIS_BOUNDS}
    ref = analyze.analyze(problem, np.asarray(x), np.asarray(y[:, 0]), num_levels=4, seed=1)
    for k in ("mu", "mu_star", "sigma"):
        np.testing.assert_allclose(getattr(ours, k)[0], ref[k], rtol=0, atol=1e-10,
                                   err_msg=k)
    np.testing.assert_allclose(ours.mu[1], -2.0 * ours.mu[0], rtol=1e-12)
    np.testing.assert_allclose(ours.sigma[1], 2.0 * ours.sigma[0], rtol=1e-12)


def test_morris_matches_salib_on_its_trajectories():
    sample = pytest.importorskip("SALib.sample.morris")
    analyze = pytest.importorskip("SALib.analyze.morris")
    problem = {"num_vars": 4, "names": list("abcd"), "bounds": MORRIS_BOUNDS}
    x = sample.sample(problem, 40, num_levels=4, seed=3)
    y = np.asarray(_morris_test_fn(jnp.asarray(x)))
    ref = analyze.analyze(problem, x, y[:, 0], num_levels=4, seed=1)
    ours = gsa.morris_indices_from_outputs(x, y, MORRIS_BOUNDS, jax.random.key(1))
    for k in ("mu", "mu_star", "sigma"):
        np.testing.assert_allclose(getattr(ours, k)[0], ref[k], rtol=0, atol=1e-10,
                                   err_msg=k)


def test_morris_linear_effects():
    coef = np.array([2.0, -0.5, 0.0, 10.0])
    bounds = np.array([[0.0, 1.0], [-3.0, 5.0], [0.0, 1.0], [1.0, 1.25]])

    def fn(x):
        return jnp.stack([x @ jnp.asarray(coef), x[:, 0]], axis=1)

    m = gsa.morris_indices(fn, bounds, 40, jax.random.key(4))
    expected = coef * (bounds[:, 1] - bounds[:, 0])  # effect per unit of scaled input
    np.testing.assert_allclose(m.mu[0], expected, atol=1e-9)
    np.testing.assert_allclose(m.mu_star[0], np.abs(expected), atol=1e-9)
    np.testing.assert_allclose(m.sigma[0], 0.0, atol=1e-9)
    np.testing.assert_allclose(m.mu_star_interval[:, 0], np.abs(expected)[None].repeat(2, 0),
                               atol=1e-9)
    np.testing.assert_allclose(m.mu[1], [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    assert m.n_evaluations == 40 * 5 and "mu*" in repr(m)


def test_morris_design_is_on_the_grid():
    x = np.asarray(gsa.morris_sample([[0.0, 1.0]] * 5, 50, jax.random.key(2), levels=6))
    grid = np.arange(6) / 5
    assert np.allclose(np.abs(x[..., None] - grid).min(-1), 0.0, atol=1e-12)
    steps = np.abs(np.diff(x.reshape(50, 6, 5), axis=1))
    np.testing.assert_allclose(steps.sum(-1), 6 / 10, atol=1e-12)  # one step of Delta
    assert ((steps > 0).sum(-1) == 1).all() and ((steps > 0).sum(1) == 1).all()
    # every order of the parameters is drawn (a random permutation per trajectory)
    orders = {tuple(np.argmax(steps[t] > 0, axis=1)) for t in range(50)}
    assert len(orders) > 30


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        ([0.0, 1.0], r"shape \(d, 2\)"),
        ([[0.0, 1.0, 2.0]], r"shape \(d, 2\)"),
        ([[0.0, 1.0], [2.0, 2.0]], "parameter 1 has low=2.0, high=2.0"),
        ([[0.0, np.inf]], "not finite"),
    ],
)
def test_bad_bounds(bounds, match):
    with pytest.raises(ValueError, match=match):
        gsa.sobol_indices(ishigami, bounds, 8, jax.random.key(0))
    with pytest.raises(ValueError, match=match):
        gsa.morris_indices(ishigami, bounds, 8, jax.random.key(0))


def test_bad_output_shape():
    bounds = [[0.0, 1.0]] * 2
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, k\) with N = 32.*\(31,\)"):
        gsa.sobol_indices(lambda x: x[1:, 0], bounds, 8, jax.random.key(0))
    with pytest.raises(ValueError, match=r"got shape \(32, 2, 1\)"):
        gsa.sobol_indices(lambda x: x[:, :, None], bounds, 8, jax.random.key(0))
    with pytest.raises(ValueError, match=r"N = 12"):
        gsa.morris_indices(lambda x: x.sum(), bounds, 4, jax.random.key(0))


def test_non_finite_outputs_and_other_arguments():
    def fn(x):
        return jnp.where(x[:, 0] > 0.9, jnp.nan, x[:, 0])

    x = gsa.saltelli_sample([[0.0, 1.0]] * 2, 8, jax.random.split(jax.random.key(0))[0])
    bad = int((x[:, 0] > 0.9).sum())
    assert bad > 0
    with pytest.raises(ValueError, match=f"non-finite values .* in {bad} of 32 rows"):
        gsa.sobol_indices(fn, [[0.0, 1.0]] * 2, 8, jax.random.key(0))
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        gsa.sobol_indices(ishigami, [[0.0, 1.0]] * 3, 1, jax.random.key(0))
    with pytest.raises(ValueError, match="confidence"):
        gsa.sobol_indices(ishigami, [[0.0, 1.0]] * 3, 8, jax.random.key(0), confidence=1.0)
    with pytest.raises(ValueError, match="2 names for 3 parameters"):
        gsa.sobol_indices(ishigami, [[0.0, 1.0]] * 3, 8, jax.random.key(0),
                          names=["a", "b"])
    with pytest.raises(ValueError, match="levels must be even"):
        gsa.morris_indices(ishigami, [[0.0, 1.0]] * 3, 8, jax.random.key(0), levels=5)
    with pytest.raises(ValueError, match=r"layout of saltelli_sample; got shape \(31,\)"):
        gsa.sobol_indices_from_outputs(jnp.zeros(31), 3, jax.random.key(0))
    x = np.zeros((8, 3))
    with pytest.raises(ValueError, match="rows 0..3 are not a one-at-a-time trajectory"):
        gsa.morris_indices_from_outputs(x, x[:, 0], [[0.0, 1.0]] * 3, jax.random.key(0))
    with pytest.warns(UserWarning, match=r"output\(s\) \[0\] are constant"):
        r = gsa.sobol_indices(lambda x: 0.0 * x[:, 0], [[0.0, 1.0]] * 2, 8,
                              jax.random.key(0), n_bootstrap=10)
    np.testing.assert_array_equal(r.total, 0.0)


# -- a jaxcell simulation ----------------------------------------------------------------


def test_sobol_of_an_ensemble_feature():
    """Final z of the Goodwin oscillator at t = 4 over (a, K, dummy); the dummy column is
    never passed to the model, so its indices must be exactly zero."""
    model = jc.models.goodwin()

    def final_z(theta):
        traj = jc.ensemble(model, 0.0, 4.0, saveat=[4.0], solver=diffrax.Tsit5(),
                           parameters={"a": theta[:, 0], "K": theta[:, 1]})
        return jnp.where(traj.success, traj["z"][:, -1], jnp.nan)

    bounds = [[50.0, 150.0], [0.8, 1.2], [0.0, 1.0]]
    r = gsa.sobol_indices(final_z, bounds, 2**6, jax.random.key(0),
                          names=["a", "K", "dummy"], n_bootstrap=200)
    assert r.n_evaluations == 64 * 5
    np.testing.assert_allclose([r.first_order[2], r.total[2]], 0.0, atol=1e-12)
    for iv in (r.first_order_interval, r.total_interval):
        assert iv[0, 2] <= 1e-12 and iv[1, 2] >= -1e-12
    assert np.all(np.asarray(r.total) >= -1e-12)
    assert float(jnp.sum(r.first_order)) <= 1.0 + 0.1
    assert float(r.total[0]) > 0.05 and float(r.total[1]) > 0.05  # both rates matter
