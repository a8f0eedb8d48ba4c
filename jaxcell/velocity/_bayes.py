"""Posterior uncertainty of the kinetics and the velocities (numpyro NUTS).

Conditional on the cells' times (the latent time of :func:`latent_time`, or known
times), the genes are independent; every gene has five log-kinetic parameters and a
noise scale for each of unspliced and spliced. The posterior of all genes is sampled
at once by NUTS (the joint density is the sum over genes), started at the
maximum-likelihood fit. Velocity draws follow
from the kinetic draws at each cell's observed state, in the spirit of veloVI (Gayoso
et al. 2024, Nat. Methods 21:50), which gives velocity intervals from a variational
posterior; here the posterior is sampled and the times are held at their estimates
(their uncertainty is not propagated; say so when reporting intervals).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array

from ..inference import sample_nuts
from ._data import VelocityError
from ._dynamical import fit_weights
from ._kinetics import at_time, unpack
from ._velocity import kinetics

#: prior standard deviation of every log-kinetic parameter (weakly informative)
PRIOR_LOG_SD = 4.0
#: prior scale of the per-gene noise (half-normal, standardised units)
PRIOR_NOISE = 1.0


def _model(data):
    u, s, w, t, std_u, std_s = data
    n_genes = u.shape[1]
    theta = numpyro.sample("log_kinetics",
                           dist.Normal(jnp.zeros((n_genes, 5)), PRIOR_LOG_SD).to_event(2))
    sigma = numpyro.sample("noise", dist.HalfNormal(jnp.full((n_genes, 2), PRIOR_NOISE))
                           .to_event(2))
    alpha, beta, gamma, t_, c = unpack(theta)
    ut, st, _ = at_time(t[:, None], alpha[None], beta[None], gamma[None], t_[None])
    ru = (c[None] * ut - u) / std_u[None]
    rs = (st - s) / std_s[None]
    lp = (dist.Normal(0.0, sigma[None, :, 0]).log_prob(ru)
          + dist.Normal(0.0, sigma[None, :, 1]).log_prob(rs))
    numpyro.factor("loglik", jnp.sum(jnp.where(w > 0, lp, 0.0)))


class VelocityPosterior(eqx.Module):
    """Posterior draws of the kinetics of the fitted genes and what follows from them.

    Attributes:
        theta: ``(D, G, 5)`` draws of log ``alpha, beta, gamma, t_, scaling`` (model
            units, as :class:`GeneFits`).
        noise: ``(D, G, 2)`` draws of the noise scales of unspliced and spliced
            (standardised units).
        u: ``(C, G)`` observed unspliced (the fitted layer).
        s: ``(C, G)`` observed spliced.
        r_hat: ``(G, 5)`` split R-hat of the kinetic parameters.
        num_divergent: divergent transitions after warm-up.
    """

    theta: Array
    noise: Array
    u: Array
    s: Array
    r_hat: Array
    num_divergent: int = eqx.field(static=True)

    def rates(self, prob: float = 0.9) -> dict[str, tuple[np.ndarray, np.ndarray,
                                                            np.ndarray]]:
        """``{name: (median, lower, upper)}`` per gene for ``alpha``, ``beta`` (per
        observed unspliced count, scVelo's ``fit_beta``), ``gamma``, ``t_`` and
        ``gamma/beta``, with the central ``prob`` interval."""
        a, b, g, ts, c = (np.asarray(x) for x in unpack(self.theta))
        draws = {"alpha": a, "beta": b / c, "gamma": g, "t_": ts, "ratio": g * c / b}
        q = [50.0, 50.0 * (1 - prob), 50.0 * (1 + prob)]
        return {k: tuple(np.percentile(v, q, axis=0)) for k, v in draws.items()}

    def velocity_draws(self) -> np.ndarray:
        """``(D, C, G)`` draws of ``ds/dt = beta u - gamma s`` at the observed states."""
        _, b, g, _, c = unpack(self.theta)
        return np.asarray((b / c)[:, None, :] * self.u[None] - g[:, None, :] * self.s[None])

    def velocity(self, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(median, lower, upper)`` of the velocity per cell and gene."""
        v = self.velocity_draws()
        return tuple(np.percentile(v, [50.0, 50.0 * (1 - prob), 50.0 * (1 + prob)], 0))


def bayesian_kinetics(adata: Any, *, times: Any = None, num_warmup: int = 300,
                      num_samples: int = 300, seed: int = 0, prob: float = 0.9,
                      max_tree_depth: int = 8) -> VelocityPosterior:
    """Sample the posterior of every fitted gene's kinetics with NUTS at fixed cell
    times, write intervals into ``adata`` and return the draws.

    Args:
        adata: AnnData after :func:`latent_time` (or :func:`recover_dynamics` with
            ``times`` given).
        times: the cells' times ``(C,)`` on the clock of the shared fit (default: the
            latent time times ``t_max``), e.g. known sampling times.
        num_warmup: NUTS warm-up steps.
        num_samples: NUTS draws kept.
        seed: random seed.
        prob: mass of the central intervals written into ``adata``.
        max_tree_depth: NUTS maximum tree depth.

    Returns:
        The :class:`VelocityPosterior`. ``adata.var`` gets ``bayes_{alpha, beta,
        gamma, t_, ratio}_{median, lower, upper}``; ``adata.layers`` gets
        ``velocity_median``, ``velocity_lower``, ``velocity_upper``.
    """
    if not 0.0 < float(prob) < 1.0:
        raise VelocityError(f"prob must be in (0, 1); got {prob!r}.")
    mode = "shared" if "shared_alpha" in adata.var else "dynamical"
    if times is None and mode != "shared":
        raise VelocityError("bayesian_kinetics: run jaxcell.velocity.latent_time(adata) "
                            "first, or pass the cells' times.")
    k = kinetics(adata, mode)
    if times is None:
        t = k["t"][:, 0]
    else:
        t = np.asarray(times, dtype=float).ravel()
        if t.shape != (adata.n_obs,) or not np.all(np.isfinite(t)) or np.any(t < 0):
            raise VelocityError(f"times must be {adata.n_obs} finite values >= 0; got "
                                f"shape {np.shape(times)}.")
    u, s = k["u"], k["s"]
    w = fit_weights(u, s).astype(float)
    prefix = "fit_" if mode == "dynamical" else "shared_"
    std_u = np.asarray(adata.var[k["mask"]]["fit_std_u"], float)
    std_s = np.asarray(adata.var[k["mask"]]["fit_std_s"], float)
    theta0 = np.log(np.stack([k["alpha"], k["beta"], k["gamma"], k["t_"], k["scaling"]],
                             1))
    data = tuple(jnp.asarray(x) for x in (u, s, w, t, std_u, std_s))
    # start at the fit; the noise at its maximum-likelihood value for those kinetics
    a, b, g, ts, c = unpack(jnp.asarray(theta0))
    ut, st, _ = at_time(data[3][:, None], a[None], b[None], g[None], ts[None])
    du2 = ((c[None] * ut - data[0]) / data[4][None]) ** 2
    ds2 = ((st - data[1]) / data[5][None]) ** 2
    n = jnp.maximum(jnp.sum(data[2], 0), 1.0)
    sigma0 = jnp.sqrt(jnp.stack([jnp.sum(data[2] * du2, 0) / n,
                                 jnp.sum(data[2] * ds2, 0) / n], -1))
    res = sample_nuts(_model, data, key=jax.random.key(seed), num_warmup=int(num_warmup),
                      num_samples=int(num_samples),
                      init={"log_kinetics": jnp.asarray(theta0),
                            "noise": jnp.maximum(sigma0, 1e-3)},
                      max_tree_depth=int(max_tree_depth))
    summ = res.summary(prob)
    post = VelocityPosterior(theta=jnp.asarray(res.samples["log_kinetics"][0]),
                             noise=jnp.asarray(res.samples["noise"][0]),
                             u=jnp.asarray(u), s=jnp.asarray(s),
                             r_hat=jnp.asarray(summ["log_kinetics"]["r_hat"]),
                             num_divergent=res.num_divergent)
    mask = k["mask"]
    for name, (med, lo, hi) in post.rates(prob).items():
        for suffix, v in (("median", med), ("lower", lo), ("upper", hi)):
            col = np.full(adata.n_vars, np.nan)
            col[mask] = v
            adata.var[f"bayes_{name}_{suffix}"] = col
    for suffix, v in zip(("median", "lower", "upper"), post.velocity(prob)):
        full = np.full((adata.n_obs, adata.n_vars), np.nan)
        full[:, mask] = v
        adata.layers[f"velocity_{suffix}"] = full
    adata.uns["bayesian_kinetics"] = {"tool": "jaxcell", "prob": float(prob),
                                      "mode": mode, "prefix": prefix,
                                      "num_divergent": int(res.num_divergent)}
    return post
