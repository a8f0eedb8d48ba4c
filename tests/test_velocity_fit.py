"""The dynamical model on data simulated with known kinetics: rates and latent time
recovered; the NUTS posterior of the kinetics against its Laplace approximation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy.stats import spearmanr

import jaxcell.velocity as jv
from jaxcell.velocity._bayes import _model
from jaxcell.velocity._dynamical import fit_weights


@pytest.fixture(scope="module")
def fitted():
    """300 cells x 12 genes, rates drawn around scVelo's defaults, 10 % noise."""
    adata = jv.simulate_data(300, 12, seed=1)
    jv.recover_dynamics(adata, t_max=20.0)
    jv.latent_time(adata)
    return adata


def test_rates_and_latent_time_recovered(fitted):
    var = fitted.var
    for name in ("alpha", "beta", "gamma", "t_"):
        err = np.median(np.abs(var[f"shared_{name}"] / var[f"true_{name}"] - 1.0))
        assert err < 0.10, f"{name}: median relative error {err:.3f}"
    rho = spearmanr(fitted.obs["latent_time"], fitted.obs["true_t"]).statistic
    assert rho >= 0.95, rho
    # the per-gene fits (each gene its own clock) recover the clock-free ratio
    ratio = var["fit_gamma"] / var["fit_beta"]
    err = np.median(np.abs(ratio / (var["true_gamma"] / var["true_beta"]) - 1.0))
    assert err < 0.10, err


def test_results_land_in_the_anndata(fitted):
    a = fitted.copy()
    jv.velocity(a)
    assert a.layers["velocity"].shape == a.shape and a.layers["fit_t"].shape == a.shape
    k = jv.kinetics(a)
    v = k["beta"][None] / k["scaling"][None] * k["u"] - k["gamma"][None] * k["s"]
    np.testing.assert_allclose(a.layers["velocity"][:, k["mask"]], v, rtol=1e-12)
    assert a.uns["recover_dynamics"]["tool"] == "jaxcell"
    assert np.all((a.obs["latent_time"] >= 0) & (a.obs["latent_time"] <= 1))


def test_posterior_matches_its_laplace_approximation(fitted):
    """At known cell times the posterior of the log-kinetics is close to Gaussian: NUTS
    standard deviations against the inverse Hessian of the log density at the
    posterior mean, and the truth inside the 99 % interval for most genes."""
    a = fitted[:, :4].copy()
    a.uns = dict(fitted.uns)
    t = a.obs["true_t"].to_numpy()
    post = jv.bayesian_kinetics(a, times=t, num_warmup=200, num_samples=300, seed=0)
    assert post.num_divergent == 0
    assert float(jnp.max(post.r_hat)) < 1.05
    draws = np.asarray(post.theta)
    mean = jnp.asarray(draws.mean(0))
    noise = jnp.asarray(np.asarray(post.noise).mean(0))
    k = jv.kinetics(a, "shared")
    w = fit_weights(k["u"], k["s"]).astype(float)
    std_u = a.var["fit_std_u"].to_numpy()[k["mask"]]
    std_s = a.var["fit_std_s"].to_numpy()[k["mask"]]
    data = tuple(jnp.asarray(x) for x in (k["u"], k["s"], w, t, std_u, std_s))

    def logp(th):
        return log_density(_model, (data,), {}, {"log_kinetics": th.reshape(mean.shape),
                                                 "noise": noise})[0]

    h = jax.hessian(logp)(mean.ravel())
    laplace_sd = np.sqrt(np.diag(np.linalg.inv(-np.asarray(h)))).reshape(mean.shape)
    ratio = draws.std(0) / laplace_sd
    assert np.mean((ratio > 0.7) & (ratio < 1.4)) >= 0.9, ratio
    med, lo, hi = post.rates(0.99)["ratio"]
    truth = (a.var["true_gamma"] / a.var["true_beta"]).to_numpy()[k["mask"]]
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.75, (lo, truth, hi)
    vmed, vlo, vhi = post.velocity(0.9)
    assert np.all(vlo <= vmed) and np.all(vmed <= vhi)
    assert "bayes_gamma_lower" in a.var and "velocity_upper" in a.layers
