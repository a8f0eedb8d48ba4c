"""The chemical master equation by finite state projection (jaxcell.stochastic).

Golden values: REFERENCE-MODELS S2, the telegraph model with k_on = 0.5, k_off = 1,
K = 20, delta = 1 (Peccoud & Ycart 1995): mean K k_on/(delta (k_on + k_off)) = 20/3,
Fano factor 1 + K k_off/((k_on + k_off)(k_on + k_off + delta)) = 19/3, and
P(0..4) = 0.19817, 0.09908, 0.07431, 0.06193, 0.05419. The hypergeometric function is
checked against scipy.special.hyp1f1; FSP solutions against the analytic telegraph and
immigration-death (Poisson) distributions.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from helpers import central_difference
from scipy.special import gammaln, hyp1f1

import jaxcell as jc
from jaxcell.inference import Parameter, Parameters, fit, sample_nuts
from jaxcell.stochastic import (
    FSP,
    CountsObjective,
    fsp_log_likelihood,
    stationary_distribution,
    telegraph_distribution,
    telegraph_network,
)

S2 = {"k_on": 0.5, "k_off": 1.0, "K": 20.0, "delta": 1.0}
BOX = {"G_off": 1, "G_on": 1, "M": 120}


def _scipy_telegraph(k_on, k_off, K, delta, n_max):
    a, b, kappa = k_on / delta, k_off / delta, K / delta
    m = np.arange(n_max + 1)
    log_pre = (gammaln(a + m) + gammaln(a + b) - gammaln(a) - gammaln(a + b + m)
               + m * np.log(kappa) - gammaln(m + 1))
    return np.exp(log_pre) * hyp1f1(a + m, a + b + m, -kappa)


def _immigration_death(lam=4.0, mu=0.5, n=60):
    net = jc.ReactionNetwork(
        "imd", {"X": 0.0},
        [jc.Reaction("immigrate", "", "X", jc.MassAction("lam")),
         jc.Reaction("die", "X", "", jc.MassAction("mu"))],
        {"lam": lam, "mu": mu})
    return FSP(net, {"X": n})


@pytest.fixture(scope="module")
def telegraph_fsp():
    return FSP(telegraph_network(**S2), BOX)


# -- the analytic telegraph distribution ---------------------------------------------
def test_telegraph_golden_values():
    p = np.asarray(telegraph_distribution(**S2, n_max=400))
    m = np.arange(p.size)
    mean = np.sum(m * p)
    var = np.sum(m**2 * p) - mean**2
    assert abs(p.sum() - 1.0) < 1e-12
    assert abs(mean - 20.0 / 3.0) < 1e-10
    assert abs(var / mean - 19.0 / 3.0) < 1e-10
    np.testing.assert_allclose(p[:5], [0.19817, 0.09908, 0.07431, 0.06193, 0.05419],
                               atol=5e-5)


@pytest.mark.parametrize("rates", [(0.5, 1.0, 20.0, 1.0), (2.0, 0.3, 50.0, 0.7),
                                   (0.1, 5.0, 100.0, 2.0)])
def test_telegraph_matches_scipy_hyp1f1(rates):
    p = np.asarray(telegraph_distribution(*rates, n_max=150))
    np.testing.assert_allclose(p, _scipy_telegraph(*rates, 150), rtol=0, atol=1e-10)


def test_telegraph_is_differentiable():
    def f(k_on):  # n_max as in test_telegraph_matches_scipy_hyp1f1: compiled once
        return telegraph_distribution(k_on, 1.0, 20.0, 1.0, n_max=150)[3]

    g = float(jax.grad(f)(0.5))
    fd = (float(f(0.5 + 1e-6)) - float(f(0.5 - 1e-6))) / 2e-6
    assert abs(g - fd) < 1e-6 * max(1.0, abs(fd))


# -- FSP against analytic distributions ----------------------------------------------
def test_fsp_stationary_matches_telegraph(telegraph_fsp):
    pi = eqx.filter_jit(stationary_distribution)(telegraph_fsp)
    exact = np.asarray(telegraph_distribution(**S2, n_max=BOX["M"]))
    assert np.max(np.abs(np.asarray(telegraph_fsp.marginal(pi, "M")) - exact)) < 1e-6
    assert abs(float(jnp.sum(pi)) - 1.0) < 1e-12
    # the conserved gene copy: states with G_off + G_on != 1 have probability 0
    assert float(pi[0, 0].sum() + pi[1, 1].sum()) == 0.0


def test_fsp_simulated_to_long_time_matches_telegraph(telegraph_fsp):
    # 484 states: an explicit solver (the docs' advice beyond a few hundred states)
    traj = jc.simulate(telegraph_fsp, 0.0, 50.0, saveat=[50.0], solver=diffrax.Tsit5())
    p = traj["stochastic/telegraph/p"][-1]
    exact = np.asarray(telegraph_distribution(**S2, n_max=BOX["M"]))
    assert np.max(np.abs(np.asarray(telegraph_fsp.marginal(p, "M")) - exact)) < 1e-6
    assert 0.0 <= float(telegraph_fsp.error(p)) < 1e-9


def test_immigration_death_is_poisson():
    lam, mu = 4.0, 0.5
    fsp = _immigration_death(lam, mu)
    ts = np.array([0.5, 2.0, 6.0])
    traj = jc.simulate(fsp, 0.0, ts[-1], saveat=ts)
    p = np.asarray(traj["stochastic/imd/p"])
    k = np.arange(61)
    for row, t in zip(p, ts):
        mean = lam / mu * (1.0 - np.exp(-mu * t))
        poisson = np.exp(k * np.log(mean) - mean - gammaln(k + 1))
        assert np.max(np.abs(row - poisson)) < 1e-6
    np.testing.assert_allclose(np.asarray(fsp.mean(p, "X")),
                               lam / mu * (1.0 - np.exp(-mu * ts)), rtol=1e-6)


def test_sink_mass_is_the_error_bound():
    """A box too small for the distribution loses mass, and the loss bounds the
    1-norm error (Munsky & Khammash 2006)."""
    lam, mu, t = 4.0, 0.5, 4.0
    small = _immigration_death(lam, mu, n=8)
    ps = np.asarray(jc.simulate(small, 0.0, t, saveat=[t])["stochastic/imd/p"][-1])
    err = float(small.error(ps))
    assert err > 1e-3
    mean = lam / mu * (1.0 - np.exp(-mu * t))
    k = np.arange(200)
    exact = np.exp(k * np.log(mean) - mean - gammaln(k + 1))  # the CME's solution
    diff = exact[:9] - ps
    assert np.all(diff >= -1e-8)  # the truncated solution is a lower bound
    assert np.sum(np.abs(diff)) + np.sum(exact[9:]) <= err + 1e-8


def test_new_rates_or_an_equal_box_do_not_recompile():
    fsp = _immigration_death()

    def run(f):  # as in test_immigration_death_is_poisson (compiled once per module)
        ts = np.array([0.5, 2.0, 6.0])
        return jc.simulate(f, 0.0, ts[-1], saveat=ts)["stochastic/imd/p"]

    run(fsp)
    warm = fsp.replace_parameters({"lam": 3.0})  # eager ops of replace_parameters
    rebuilt = _immigration_death(lam=5.0)  # a new FSP with an equal box
    with jc.count_compilations() as n:
        run(warm)
        run(rebuilt)
    assert n() == 0


def test_generator_matches_matrix_free_derivative(telegraph_fsp):
    p = jax.random.uniform(jax.random.key(0), telegraph_fsp.shape, dtype=float)
    dense, free = eqx.filter_jit(
        lambda f, p: (f.generator() @ p.reshape(-1), f.derivative(p).reshape(-1))
    )(telegraph_fsp, p)
    np.testing.assert_allclose(np.asarray(dense), np.asarray(free), rtol=1e-12, atol=1e-12)


def test_constant_species_are_not_axes():
    net = jc.ReactionNetwork(
        "cat", {"E": 3.0, "X": 0.0},
        [jc.Reaction("make", "E", "E + X", jc.MassAction("k")),
         jc.Reaction("die", "X", "", jc.MassAction("mu"))], {"k": 2.0, "mu": 1.0})
    fsp = FSP(net, {"X": 40})
    assert fsp.species == ("X",) and fsp.shape == (41,)
    assert abs(float(fsp.mean(stationary_distribution(fsp), "X")) - 6.0) < 1e-9


# -- likelihood and gradients ----------------------------------------------------------
def test_log_likelihood_gradient_matches_finite_differences(telegraph_fsp):
    rng = np.random.default_rng(1)
    p = np.asarray(telegraph_distribution(**S2, n_max=BOX["M"]))
    counts = rng.choice(p.size, size=300, p=p / p.sum())

    @jax.jit
    def ll(log_rates):
        fsp = telegraph_fsp.replace_parameters(
            {"k_on": jnp.exp(log_rates[0]), "K": jnp.exp(log_rates[1])})
        return fsp_log_likelihood(fsp.marginal(stationary_distribution(fsp), "M"), counts)

    x = np.log([0.5, 20.0])
    g = np.asarray(jax.grad(ll)(jnp.asarray(x)))
    fd = central_difference(ll, x, h=1e-5)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def _telegraph_counts(n=2000, seed=2024):
    p = np.asarray(telegraph_distribution(**S2, n_max=BOX["M"]))
    return np.random.default_rng(seed).choice(p.size, size=n, p=p / p.sum())


def test_fit_recovers_telegraph_rates(telegraph_fsp):
    start = telegraph_fsp.replace_parameters({"k_on": 0.8, "k_off": 0.7, "K": 15.0})
    obj = CountsObjective(start, _telegraph_counts(), species="M",
                          parameters=["k_on", "k_off", "K"])
    result = fit(obj, max_steps=200)
    assert result.converged
    # Laplace standard deviations on the log scale, from the nll's Hessian (central
    # differences of the compiled gradient)
    h = 1e-4
    hess = np.stack([(np.asarray(obj.value_and_grad(result.x + h * e)[1])
                      - np.asarray(obj.value_and_grad(result.x - h * e)[1])) / (2 * h)
                     for e in np.eye(3)])
    sd = np.sqrt(np.diag(np.linalg.inv(0.5 * (hess + hess.T))))
    for i, name in enumerate(["k_on", "k_off", "K"]):
        est, true = result.values[name], S2[name]
        within_sd = abs(np.log(est) - np.log(true)) < 3 * sd[i]
        assert within_sd or abs(est / true - 1) < 0.15, (name, est, sd[i])


def test_timed_counts_gradient_through_simulate():
    """Snapshots at two times: the objective's gradient (forward mode through the
    solve) matches finite differences and the Poisson answer."""
    lam, mu, ts = 4.0, 0.5, np.array([1.0, 3.0])
    fsp = _immigration_death(lam, mu, n=30)
    rng = np.random.default_rng(3)
    means = lam / mu * (1 - np.exp(-mu * ts))
    snaps = [rng.poisson(m, size=50) for m in means]
    obj = CountsObjective(fsp, snaps, species="X", parameters=["lam", "mu"], times=ts,
                          solver=diffrax.Tsit5(), adjoint=diffrax.ForwardMode())
    assert obj.forward_mode
    x = np.asarray(obj.parameters.x0)  # log scale
    value, grad = obj.value_and_grad(x)
    poisson_nll = -sum(np.sum(c * np.log(m) - m - gammaln(c + 1)) for c, m in zip(snaps, means))
    assert abs(float(value) / poisson_nll - 1.0) < 1e-7
    # d nll / d log(lam) = -sum_s sum_i (c_i / m_s - 1) m_s
    dlam = -sum(np.sum(c / m - 1.0) * m for c, m in zip(snaps, means))
    assert abs(float(grad[0]) - dlam) < 1e-5 * abs(dlam)
    np.testing.assert_allclose(np.asarray(grad), central_difference(obj.nll, x, h=1e-5),
                               rtol=1e-5)


@pytest.mark.slow
def test_nuts_intervals_contain_true_rates():
    """NUTS on the stationary likelihood (about 40 s on 2 cores; M <= 80 suffices for
    these data, largest count 32)."""
    fsp = FSP(telegraph_network(**S2), {"G_off": 1, "G_on": 1, "M": 80})
    priors = {"k_on": dist.LogNormal(float(np.log(0.5)), 1.0),
              "k_off": dist.LogNormal(0.0, 1.0),
              "K": dist.LogNormal(float(np.log(20.0)), 1.0)}
    obj = CountsObjective(fsp, _telegraph_counts(), species="M",
                          parameters=Parameters([Parameter(n, prior=pr)
                                                 for n, pr in priors.items()], model=fsp))
    result = sample_nuts(obj.numpyro_model(), key=jax.random.key(0), num_warmup=200,
                         num_samples=200, init={"k_on": 0.6, "k_off": 1.2, "K": 18.0})
    assert result.num_divergent == 0
    summary = result.summary(prob=0.99)
    for name in priors:
        row = summary[name]
        assert row["q0.5"] < S2[name] < row["q99.5"], (name, row)


# -- clear errors ------------------------------------------------------------------------
def test_unknown_species_in_max_counts():
    with pytest.raises(jc.ModelError, match="'Q'.*not a species"):
        FSP(telegraph_network(), {"G_off": 1, "G_on": 1, "M": 10, "Q": 3})
    with pytest.raises(jc.ModelError, match=r"no bound for \['M'\]"):
        FSP(telegraph_network(), {"G_off": 1, "G_on": 1})


def test_box_too_large():
    with pytest.raises(jc.ModelError, match="states, more than"):
        FSP(telegraph_network(), {"G_off": 1, "G_on": 1, "M": 1_000_000})


def test_counts_outside_the_box(telegraph_fsp):
    with pytest.raises(jc.InferenceError, match="outside the distribution's support"):
        fsp_log_likelihood(jnp.full((11,), 1 / 11), [3, 12])
    with pytest.raises(jc.InferenceError, match="outside the distribution's support"):
        CountsObjective(telegraph_fsp, [1, 2, 500], species="M", parameters=["K"])
    traced = jax.jit(fsp_log_likelihood)(jnp.full((11,), 1 / 11), jnp.array([3, 12]))
    assert float(traced) == -np.inf


def test_other_bad_input(telegraph_fsp):
    net = telegraph_network()
    with pytest.raises(jc.ModelError, match="initial count of 'M' is 5"):
        FSP(net.replace_initial({"M": 5.0}), {"G_off": 1, "G_on": 1, "M": 4})
    with pytest.raises(jc.ModelError, match="never changes"):
        FSP(jc.ReactionNetwork("cat", {"E": 1.0, "X": 0.0},
                               [jc.Reaction("make", "E", "E + X", jc.MassAction("k"))],
                               {"k": 1.0}), {"E": 2, "X": 5})
    with pytest.raises(jc.ModelError, match="positive"):
        telegraph_distribution(0.0, 1.0, 20.0, 1.0, n_max=5)
    # traced K/delta too large for the default number of series terms: a clear error
    with pytest.raises(RuntimeError, match="series terms are too few"):
        eqx.filter_jit(lambda K: telegraph_distribution(0.5, 1.0, K, 1.0, n_max=10))(
            jnp.asarray(200.0))
    with pytest.raises(jc.InferenceError, match="not a parameter of the network"):
        CountsObjective(telegraph_fsp, [1, 2], species="M", parameters=["k_onn"])
    with pytest.raises(jc.ModelError, match="no axis for species 'G'"):
        telegraph_fsp.marginal(jnp.zeros(telegraph_fsp.shape), "G")
