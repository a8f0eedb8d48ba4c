"""Bayesian Lotka-Volterra on the Hudson's Bay hare-lynx pelts, 1900-1920, with NUTS.

The science
-----------
Carpenter's (2018) Stan case study fits the predator-prey equations

    du/dt = (alpha - beta v) u        (hares, thousands of pelts)
    dv/dt = (-gamma + delta u) v      (lynx)

to 21 years of Hudson's Bay Company pelt counts. The observations are log-normal around
the solution, y_{n,k} ~ LogNormal(log z_{n,k}, sigma_k); the 1900 counts inform the
initial state z_init, and the priors are

    alpha, gamma ~ Normal(1, 0.5),  beta, delta ~ Normal(0.05, 0.05)   (truncated at 0)
    z_init ~ LogNormal(log 10, 1),  sigma ~ LogNormal(-1, 1).

The published posterior means are alpha = 0.55, beta = 0.028, gamma = 0.80,
delta = 0.024, with sigma = 0.25 for both species.

In jaxcell
----------
- the dynamics are :func:`jaxcell.models.lotka_volterra`, a reaction network written
  as ``x' = alpha x - beta x y``, ``y' = gamma x y - delta y``: its ``gamma`` is the
  case study's delta and its ``delta`` the case study's gamma;
- :func:`jaxcell.inference.numpyro_model` turns priors, a simulation
  (``model.replace_parameters`` and ``y0``, solved with ``diffrax.Tsit5``: the model is
  not stiff) and the likelihood into a numpyro model; a failed solve would be rejected;
- :func:`jaxcell.inference.sample_nuts` runs NUTS (dense mass matrix: alpha and beta,
  gamma and delta are strongly correlated) and reports mean, sd, 80 % interval, R-hat
  and effective sample size;
- the posterior predictive median and 80 % band are plotted over the data.

Run ``python examples/bayes_hare_lynx.py --out figures/`` (4 chains of 1000 + 1000
draws; about a minute on a laptop CPU) or ``--quick`` (one short chain).

References:
    Carpenter, B. (2018). Predator-prey population dynamics: the Lotka-Volterra model
    in Stan. https://mc-stan.org/users/documentation/case-studies/lotka-volterra-predator-prey.html
    Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. JMLR 15:1593-1623.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

import jaxcell as jc
from jaxcell.inference import BayesResult, numpyro_model, sample_nuts

YEARS = np.arange(1900, 1921)
# Thousands of pelts [stan-dev/example-models, hudson-bay-lynx-hare.csv].
HARE = [30.0, 47.2, 70.2, 77.4, 36.3, 20.6, 18.1, 21.4, 22.0, 25.4, 27.1, 40.3, 57.0,
        76.6, 52.3, 19.5, 11.2, 7.6, 14.6, 16.2, 24.7]
LYNX = [4.0, 6.1, 9.8, 35.2, 59.4, 41.7, 19.0, 13.0, 8.3, 9.1, 7.4, 8.0, 12.3, 19.5,
        45.7, 51.1, 29.7, 15.8, 9.7, 10.1, 8.6]
PUBLISHED = {"alpha": 0.55, "beta": 0.028, "gamma": 0.80, "delta": 0.024}

TS = np.arange(21.0)  # years since 1900
SOLVER = diffrax.Tsit5()
CONTROLLER = diffrax.PIDController(rtol=1e-6, atol=1e-6)
PRIORS = {
    "alpha": dist.TruncatedNormal(1.0, 0.5, low=0.0),
    "beta": dist.TruncatedNormal(0.05, 0.05, low=0.0),
    "gamma": dist.TruncatedNormal(1.0, 0.5, low=0.0),
    "delta": dist.TruncatedNormal(0.05, 0.05, low=0.0),
    "z_init": dist.LogNormal(jnp.log(10.0), 1.0).expand([2]),
    "sigma": dist.LogNormal(-1.0, 1.0).expand([2]),
}
INIT = {"alpha": 0.6, "beta": 0.03, "gamma": 0.8, "delta": 0.025,
        "z_init": jnp.array([33.0, 6.0]), "sigma": jnp.array([0.3, 0.3])}
# (warm-up, draws, chains)
QUICK = (100, 100, 1)
FULL = (1000, 1000, 4)


def data() -> jax.Array:
    """The pelts as an array of shape (21, 2): columns hare, lynx."""
    return jnp.stack([jnp.asarray(HARE), jnp.asarray(LYNX)], axis=1)


def build_model():
    """The numpyro model ``model(data=None)``."""
    lv = jc.models.lotka_volterra()

    def simulate(th):
        model = lv.replace_parameters({"alpha": th["alpha"], "beta": th["beta"],
                                       "gamma": th["delta"], "delta": th["gamma"]})
        return jc.simulate(model, 0.0, 20.0, saveat=TS,
                           y0={"x": th["z_init"][0], "y": th["z_init"][1]},
                           solver=SOLVER, stepsize_controller=CONTROLLER, throw=False)

    def likelihood(traj, th):
        z = jnp.stack([traj["x"], traj["y"]], axis=-1)
        return dist.LogNormal(jnp.log(z), th["sigma"])

    return numpyro_model(simulate, PRIORS, likelihood)


def plot(path: Path, result: BayesResult, key: jax.Array) -> None:
    """Data with the posterior predictive median and 80 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = result.posterior_predictive(key, num_samples=500)["obs"]  # (draws, 21, 2)
    lo, med, hi = np.quantile(pred, [0.1, 0.5, 0.9], axis=0)
    obs = np.asarray(data())
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (label, colour) in enumerate([("hare", "tab:blue"), ("lynx", "tab:orange")]):
        ax.fill_between(YEARS, lo[:, k], hi[:, k], color=colour, alpha=0.25,
                        label=f"{label}: posterior predictive 80 %")
        ax.plot(YEARS, med[:, k], color=colour, label=f"{label}: median")
        ax.plot(YEARS, obs[:, k], "o", color=colour, ms=4, label=f"{label}: pelts")
    ax.set_xlabel("year")
    ax.set_ylabel("pelts (thousands)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(quick: bool = False, out_dir: str | None = None, *, seed: int = 0,
         verbose: bool = False) -> dict:
    """Sample the posterior and compare it with the published one.

    Arguments:
        quick: one chain of 100 warm-up and 100 draws (instead of 4 x (1000 + 1000)).
        out_dir: if given, save ``bayes_hare_lynx.png`` there.
        seed: seeds the sampler.
        verbose: print the summary table.

    Returns:
        ``posterior_mean`` and ``published`` (dicts by parameter), ``r_hat`` and
        ``ess`` (by parameter), ``num_divergent``, ``sampling_s`` (wall time of warm-up
        and sampling, compilation included), ``ess_per_s`` (the smallest ESS of the
        four rate constants per second of ``sampling_s``), ``time_s`` and, if plotted,
        ``png``.
    """
    start = time.perf_counter()
    warmup, draws, chains = QUICK if quick else FULL
    key_nuts, key_pred = jax.random.split(jax.random.key(seed))
    result = sample_nuts(build_model(), data(), key=key_nuts, num_warmup=warmup,
                         num_samples=draws, num_chains=chains, init=INIT,
                         dense_mass=True)
    summary = result.summary(prob=0.8)
    names = list(PUBLISHED)
    metrics: dict = {
        "posterior_mean": {n: summary[n]["mean"] for n in names},
        "published": dict(PUBLISHED),
        "r_hat": {n: summary[n]["r_hat"] for n in names},
        "ess": {n: summary[n]["ess"] for n in names},
        "num_divergent": result.num_divergent,
        "sampling_s": result.seconds,
        "ess_per_s": min(summary[n]["ess"] for n in names) / result.seconds,
    }
    if verbose:
        print(f"{'':>8}{'published':>11}{'mean':>11}{'sd':>11}{'q10':>11}{'q90':>11}"
              f"{'r_hat':>8}{'ess':>8}")
        for n in names:
            row = summary[n]
            print(f"{n:>8}{PUBLISHED[n]:>11.4g}{row['mean']:>11.4g}{row['sd']:>11.4g}"
                  f"{row['q10']:>11.4g}{row['q90']:>11.4g}{row['r_hat']:>8.3f}"
                  f"{row['ess']:>8.0f}")
        print(f"sigma: {np.round(summary['sigma']['mean'], 3)} (published 0.25, 0.25)")
        print(f"{result.num_divergent} divergences; {result.seconds:.1f} s; "
              f"{metrics['ess_per_s']:.1f} effective samples per second")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        metrics["png"] = str(out / "bayes_hare_lynx.png")
        plot(Path(metrics["png"]), result, key_pred)
    metrics["time_s"] = time.perf_counter() - start
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short chain")
    parser.add_argument("--out", default=None, help="folder for the PNG plot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.quick, args.out, seed=args.seed, verbose=True)
