"""jaxcell.inference: parameters, noise models, objective, fit, multistart, profiles."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
import scipy.optimize
import scipy.stats

import jaxcell as jc
from jaxcell.cellular import Splicing, splicing_solution
from jaxcell.inference import (
    Bounded,
    Experiment,
    Laplace,
    Linear,
    Log,
    Log10,
    Log10Normal,
    LogNormal,
    Normal,
    Objective,
    Parameter,
    Parameters,
    fit,
    profile,
)

# R datasets::Puromycin, treated cells (Treloar 1974).
CONC = np.array([0.02, 0.02, 0.06, 0.06, 0.11, 0.11, 0.22, 0.22, 0.56, 0.56, 1.10, 1.10])
RATE = np.array([76, 47, 97, 107, 123, 139, 159, 152, 191, 201, 207, 200.0])


def _zero(t, y, p):
    return {"c": jnp.zeros_like(y["c"])}


def _mm_rate(t, x, p):
    return p["Vm"] * x["c"] / (p["K"] + x["c"])


def test_transforms_round_trip():
    x = jnp.array([-1.5, 0.0, 2.0])
    for tr in (Linear(), Log(), Log10(), Bounded(-2.0, 3.0)):
        np.testing.assert_allclose(tr.inverse(tr.forward(x)), x, rtol=1e-12, atol=1e-12)
        fd = jax.vmap(jax.grad(tr.forward))(x)
        np.testing.assert_allclose(tr.log_det_jacobian(x), np.log(np.abs(fd)), rtol=1e-10)


@pytest.mark.parametrize("sigma", [0.3, 1.7])
def test_noise_nll_matches_scipy(sigma):
    y = np.array([0.5, 1.0, 3.0])
    d = np.array([0.7, 0.9, 4.2])
    st = scipy.stats
    cases = [
        (Normal(sigma), st.norm.logpdf(d, loc=y, scale=sigma)),
        (LogNormal(sigma), st.lognorm.logpdf(d, s=sigma, scale=y)),
        (Log10Normal(sigma), st.lognorm.logpdf(d, s=sigma * np.log(10.0), scale=y)),
        (Laplace(sigma), st.laplace.logpdf(d, loc=y, scale=sigma)),
    ]
    for noise, ref in cases:
        np.testing.assert_allclose(-noise.nll(y, d, noise.scale()), ref, rtol=1e-12)


def test_puromycin_published_fit():
    """Least squares on real data: R's nls gives Vm = 212.68, K = 0.06412, RSS 1195.449."""
    sub = jc.ODE("substrate", {"c": CONC}, _zero)
    rate = jc.Assignment("rate", "molecular/rate/v", _mm_rate,
                         reads={"c": "molecular/substrate/c"},
                         parameters={"Vm": 200.0, "K": 0.1}, shape=(12,))
    model = jc.Composite([sub, rate])
    obj = Objective(model, Parameters(["rate.Vm", "rate.K"], model=model),
                    Experiment([1.0], RATE[None], "molecular/rate/v"))
    result = fit(obj)
    (vm, k), _ = scipy.optimize.curve_fit(lambda c, vm, k: vm * c / (k + c), CONC, RATE,
                                          p0=(200.0, 0.1))
    assert result.converged
    np.testing.assert_allclose(result.values["rate.Vm"], 212.68, rtol=1e-3)
    np.testing.assert_allclose(result.values["rate.K"], 0.06412, rtol=1e-3)
    np.testing.assert_allclose([result.values["rate.Vm"], result.values["rate.K"]],
                               [vm, k], rtol=1e-5)  # curve_fit stops at ~1e-6
    rss = 2.0 * (result.value - 12 * 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(rss, 1195.449, rtol=1e-5)
    # Asymptotic standard errors from J^T J of the model's own prediction (jax.jacrev
    # through the Assignment): the catalogue's 6.947 and 0.008281, within 2 % (M1).
    theta = jnp.array([result.values["rate.Vm"], result.values["rate.K"]])

    def predict(th):
        m = model.replace_parameters({"rate.Vm": th[0], "rate.K": th[1]})
        return m.derived_at(0.0, m.initial_state())["molecular"]["rate"]["v"]

    jac = np.asarray(jax.jacrev(predict)(theta))
    se = np.sqrt(np.diag(rss / (12 - 2) * np.linalg.inv(jac.T @ jac)))
    np.testing.assert_allclose(se, [6.947, 0.008281], rtol=0.02)
    # BFGS on the same objective reaches the same optimum.
    other = fit(obj, method=optx.BFGS(rtol=1e-8, atol=1e-8))
    np.testing.assert_allclose(other.value, result.value, rtol=1e-9)


TRUE_MM = {"vmax": 1.0, "km": 0.5}
SIGMA = 0.01


@pytest.fixture(scope="module")
def mm_objective():
    ts = np.linspace(0.25, 4.0, 16)
    truth = jc.models.michaelis_menten(**TRUE_MM, s0=2.0)
    clean = np.asarray(jc.simulate(truth, 0.0, 4.0, saveat=ts)["S"])
    data = clean + SIGMA * np.random.default_rng(0).standard_normal(ts.shape)
    data[3] = np.nan  # a missing value is ignored
    model = jc.models.michaelis_menten(vmax=0.3, km=2.0, s0=2.0)
    params = Parameters([Parameter("vmax", bounds=(0.1, 10.0)),
                         Parameter("km", bounds=(0.05, 5.0))], model=model)
    return Objective(model, params, Experiment(ts, data, "S", noise=Normal(SIGMA)))


def test_ode_fit_recovers_parameters(mm_objective):
    obj = mm_objective
    result = fit(obj)
    assert result.converged
    for name, value in TRUE_MM.items():
        np.testing.assert_allclose(result.values[name], value, rtol=0.15)
    at_truth = float(obj.nll(obj.parameters.to_search(TRUE_MM)))
    assert result.value <= at_truth
    # chi-squared at the optimum is about the number of observations (15).
    chi2 = float(jnp.sum(obj.residuals(result.x) ** 2))
    assert 3.0 < chi2 < 35.0
    assert result.history[-1] < result.history[0]


def test_multistart_reaches_same_optimum(mm_objective):
    result = fit(mm_objective, starts=8, key=jax.random.key(1))
    assert len(result.starts) == 8
    good = [s for s in result.starts if s.converged]
    assert len(good) >= 6
    for s in good:
        np.testing.assert_allclose(s.value, result.value, rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(s.x, result.x, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimiser", [
    "levenberg-marquardt", pytest.param("adam", marks=pytest.mark.slow)])
def test_batched_multistart_matches_one_at_a_time(mm_objective, optimiser):
    """batch=True (one vmapped step for all starts) follows the same iterates as the
    sequential loop, for the default Levenberg-Marquardt and (slow run) for optax.
    (Rounding may flip a convergence test by one iteration.)"""
    if optimiser == "adam":
        method, kw = optax.adam(0.05), {"max_steps": 25}
    else:
        method, kw = None, {}
    seq = fit(mm_objective, starts=3, key=jax.random.key(1), method=method, **kw)
    bat = fit(mm_objective, starts=3, key=jax.random.key(1), method=method,
              batch=True, **kw)
    for a, b in zip(seq.starts, bat.starts):
        np.testing.assert_array_equal(b.x0, a.x0)
        np.testing.assert_allclose(b.x, a.x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.value, a.value, rtol=1e-9)
        n = min(len(a.history), len(b.history))
        np.testing.assert_allclose(b.history[:n], a.history[:n], rtol=1e-6)
        assert abs(b.steps - a.steps) <= 1 and b.converged == a.converged
    if method is None:
        assert all(s.converged for s in bat.starts)


def test_ftol_stops_after_five_small_accepted_steps(mm_objective):
    ftol = 1e3  # huge: the rule fires as soon as it can
    result = fit(mm_objective, ftol=ftol)
    h = result.history
    accepted = [h[0]] + [v for u, v in zip(h, h[1:]) if v != u]
    assert result.converged and len(accepted) == 6
    assert accepted[0] - accepted[-1] <= ftol * (1 + abs(accepted[-1]))
    full = fit(mm_objective)
    assert full.starts[0].steps > result.starts[0].steps


def test_gradient_matches_finite_differences_and_compiles_once(mm_objective):
    obj = mm_objective
    x = obj.parameters.to_search({"vmax": 0.8, "km": 0.7})
    value, grad = obj.value_and_grad(x)
    h = 1e-5
    fd = [(obj.nll(x.at[i].add(h)) - obj.nll(x.at[i].add(-h))) / (2 * h) for i in range(2)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
    np.testing.assert_allclose(value, obj.nll(x), rtol=1e-12)
    xa, xb = np.asarray(x) + 0.1, np.asarray(x) - 0.1
    with jc.count_compilations() as n:
        obj.nll(xa)
        obj.value_and_grad(xb)
    assert n() == 0


def test_splicing_rates_recovered():
    alpha, beta, gamma = 5.0, 0.5, 0.3
    ts = np.linspace(0.5, 12.0, 24)
    u, s = splicing_solution(ts, 0.0, 0.0, alpha, beta, gamma)
    rng = np.random.default_rng(3)
    data = np.stack([u, s], -1) * (1.0 + 0.01 * rng.standard_normal((24, 2)))
    gene = Splicing("gene", n_cells=1, alpha=alpha, beta=1.0, gamma=1.0)

    def observe(traj):
        return jnp.stack([traj["cellular/gene/unspliced"][:, 0],
                          traj["cellular/gene/spliced"][:, 0]], -1)

    obj = Objective(gene, Parameters(["gamma", "beta"], model=gene),
                    Experiment(ts, data, observe, noise=LogNormal(0.01)))
    result = fit(obj)
    np.testing.assert_allclose(result.values["beta"], beta, rtol=0.02)
    np.testing.assert_allclose(result.values["gamma"], gamma, rtol=0.02)


def _production(t, y, p):
    return {"x": p["k"] - p["d"] * y["x"]}


def _decay(t, y, p):
    return {"y": -p["c"] * y["y"]}


def test_endpoint_only_identifies_ratio_and_profiles_are_flat():
    """x(t) -> k/d: an endpoint at steady state identifies only k/d; c is identified
    by a second experiment (y = exp(-c t) at t = 1)."""
    prod = jc.ODE("prod", {"x": 0.0}, _production, parameters={"k": 1.0, "d": 1.0})
    dec = jc.ODE("dec", {"y": 1.0}, _decay, parameters={"c": 1.0})
    model = jc.Composite([prod, dec])
    params = Parameters(["prod.k", "prod.d", "dec.c"], model=model)
    experiments = [
        Experiment([60.0], [2.0], "molecular/prod/x", noise=Normal(0.05), name="endpoint"),
        Experiment([1.0], [np.exp(-0.7)], "molecular/dec/y", noise=Normal(0.01),
                   name="decay"),
    ]
    obj = Objective(model, params, experiments)
    result = fit(obj)
    v = result.values
    np.testing.assert_allclose(v["prod.k"] / v["prod.d"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(v["dec.c"], 0.7, rtol=1e-6)
    flat = profile(obj, result, "prod.d", n_points=3, span=0.5)
    assert flat.range < 1e-6
    sharp = profile(obj, result, "dec.c", n_points=5, span=0.5)
    assert sharp.range > 10.0
    assert np.argmin(sharp.nll) == 2


def test_estimated_sigma_and_priors():
    decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": 0.2})
    ts = np.linspace(0.5, 5.0, 10)
    rng = np.random.default_rng(5)
    data = np.exp(-0.5 * ts) + 0.02 * rng.standard_normal(10)
    params = Parameters([Parameter("k"), Parameter("sigma", init=0.1)], model=decay)
    obj = Objective(decay, params, Experiment(ts, data, "molecular/decay/x",
                                              noise=Normal("sigma")))
    assert not obj.is_least_squares
    result = fit(obj)
    resid = data - np.exp(-result.values["k"] * ts)
    np.testing.assert_allclose(result.values["sigma"], np.sqrt(np.mean(resid**2)),
                               rtol=1e-4)
    ll = obj.log_likelihood({"k": 0.5, "sigma": 0.02})
    ref = scipy.stats.norm.logpdf(data, np.exp(-0.5 * ts), 0.02).sum()
    np.testing.assert_allclose(ll, ref, rtol=1e-6)


def test_parameters_starts_bounds_and_prior():
    import numpyro.distributions as dist

    ps = Parameters([Parameter("a", init=1.0, bounds=(0.1, 10.0),
                               prior=dist.LogNormal(0.0, 1.0)),
                     Parameter("b", scale=Bounded(0.0, 1.0), init=0.5)])
    lo, hi = ps.bounds
    np.testing.assert_allclose(lo[0], np.log(0.1))
    starts = np.asarray(ps.sample_starts(jax.random.key(0), 50))
    assert starts.shape == (50, 2)
    assert np.all((starts >= lo) & (starts <= hi))
    np.testing.assert_allclose(ps.log_prior(ps.x0),
                               scipy.stats.lognorm.logpdf(1.0, s=1.0), rtol=1e-12)
    with pytest.raises(ValueError, match="neither a parameter"):
        Objective(jc.models.michaelis_menten(), ps,
                  Experiment([1.0], [1.0], "S"))
