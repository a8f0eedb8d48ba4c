#!/usr/bin/env python
"""RNA velocity, dynamical model: jaxcell (``jaxcell.velocity``) vs scVelo 0.3.4
(``scvelo.tl.recover_dynamics``), fit time and fit quality, on the same cores.

Data:

- simulated (``sim_<cells>x<genes>``): ``jv.simulate_data(n_cells, n_genes, t_max=20,
  seed=0)`` (jaxcell's generator: on/off splicing kinetics from zero simulated on
  jaxcell's engine, log-normal rates around alpha 5, beta 0.5, gamma 0.3, switch at
  0.3-0.8 of t_max, Gaussian noise of 10% of each gene's 99th percentile; not scVelo's
  ``scvelo.datasets.simulation``). Raw ``unspliced``/``spliced`` layers, no moments:
  both tools fit the raw counts (scVelo ``use_raw=True``). Cases 1000 x 200,
  3000 x 500 and (full runs only; ``--quick`` skips it) 10000 x 2000;
- real (``dentategyrus_100``, ``pancreas_100``): ``tests/data/velocity/*_100obs_
  preprocessed.h5ad``, 100 cells x 200 genes with moments ``Ms``/``Mu``, which both
  tools fit (scVelo's default ``use_raw=False``; it then also smooths its cell times
  over the stored neighbour graph). scVelo gets ``var_names="all"`` so that both fit
  the same 200 genes (its default, ``"velocity_genes"``, fits a subset).

Fits: jaxcell ``jv.recover_dynamics(adata, t_max=20)`` (genes spread over every local
device, one CPU device per core; JAX's caches are cleared before each case, so its
first call compiles); scVelo ``scv.tl.recover_dynamics(adata, n_jobs=<usable
cores>)`` on a copy of the same AnnData (logging and warnings silenced).

Rows (``case``, ``tool``, ``metric``):

- ``fit_s``: median wall seconds of one ``recover_dynamics`` call. jaxcell: warm calls
  (the same shapes again, compiled); ``fit_first_s``: its first call, compilation
  included. scVelo has no compilation: ``fit_s`` only (full runs: median of up to 3
  calls, fewer where they add up to more than 15 min; the note says how many);
- ``latent_time_s`` (jaxcell): warm ``jv.latent_time(adata)`` (``latent_time_first_s``:
  first call);
- ``loglik_median``: median over the genes fitted by both tools of the per-gene
  log-likelihood ``-1 - log(pi mse)`` where ``mse`` is one shared objective evaluated on
  each tool's fitted parameters: ``jaxcell.velocity._kinetics.gene_loss`` (mean squared
  standardised distance of the gene's fit cells, ``_dynamical.fit_weights``, to the
  model curve, each cell at its orthogonal projection), with the same standard
  deviations (jaxcell's ``fit_std_u``/``fit_std_s``) for both tools. scVelo's
  parameters enter as ``log[fit_alpha, fit_beta * fit_scaling, fit_gamma, fit_t_,
  fit_scaling]`` (both tools' ``fit_beta`` is per observed unspliced count);
- ``frac_genes_loglik_ge_scvelo`` (jaxcell): fraction of those genes where jaxcell's
  log-likelihood is at least scVelo's - 1e-9;
- ``ratio_corr`` (jaxcell): Pearson correlation between the tools of
  ``log(fit_gamma / fit_beta)`` over those genes;
- simulated data only, against the truth: ``ratio_median_rel_err`` (both tools):
  median over genes of ``|r_fit / r_true - 1|`` with ``r = gamma / beta`` (clock-free,
  from each tool's per-gene ``fit_*``); ``alpha|beta|gamma_median_rel_err`` (jaxcell
  only): the same for the rates on jaxcell's shared clock, ``var["shared_alpha"]``,
  ``["shared_beta"]`` (per observed unspliced count), ``["shared_gamma"]`` after
  ``jv.latent_time``, against ``var["true_*"]``; ``scaling_median_rel_err``:
  ``var["shared_scaling"]`` against 1 (the simulation observes unspliced unscaled, so
  ``shared_alpha * shared_scaling`` is the transcription rate in observed units; it is
  off from the truth by about as much as the scaling is). scVelo's absolute rates are on
  per-gene clocks and not comparable to the truth, so it has no such rows;
- ``latent_time_spearman``: Spearman correlation of the latent time with the true
  time: jaxcell ``obs["latent_time"]``; scVelo ``scv.tl.latent_time`` after
  ``scv.tl.velocity(mode="dynamical", use_raw=True)`` and ``scv.tl.velocity_graph``
  (which first builds scVelo's PCA neighbour graph of the spliced counts); the time of
  that scVelo pipeline is its ``latent_time_s`` (note; more work than jaxcell's
  ``latent_time_s``, which needs no velocities or graph). ``fit_t_spearman_median``
  (both): median over genes of the Spearman correlation of each gene's own cell times
  (``layers["fit_t"]``) with the true time.

``--quick``: the same cases except 10000 x 2000, one timed warm call of jaxcell after the
first, scVelo once; full: 3 warm jaxcell calls and up to 3
scVelo calls (expect scVelo to take long on 10000 x 2000).

Run ``python benchmarks/velocity.py --quick --json bench-results/velocity.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

import jaxcell.velocity as jv  # noqa: E402
from jaxcell.velocity._dynamical import _sharded_fit, fit_weights  # noqa: E402
from jaxcell.velocity._kinetics import gene_loss, loglik_from_mse  # noqa: E402
from jaxcell.velocity._recover import counts  # noqa: E402

TOOLS = ["scvelo", "jaxcell"]
T_MAX = 20.0
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data", "velocity")
SIM_CASES = [(1000, 200), (3000, 500), (10000, 2000)]
QUICK_SKIP = {"sim_10000x2000"}
REAL_CASES = ["dentategyrus", "pancreas"]
SCVELO_MAX_TOTAL = 900.0  # s: stop repeating scVelo's fit once its calls add up to this


def settings(quick: bool) -> dict:
    if quick:
        return dict(quick=True, jx_repeats=1, sv_repeats=1)
    return dict(quick=False, jx_repeats=3, sv_repeats=3)


def all_cases() -> list[str]:
    return [f"sim_{c}x{g}" for c, g in SIM_CASES] + [f"{n}_100" for n in REAL_CASES]


def load(case: str):
    if case.startswith("sim_"):
        c, g = (int(x) for x in case[4:].split("x"))
        return jv.simulate_data(c, g, t_max=T_MAX, seed=0), True
    import anndata as ad

    name = case.rsplit("_", 1)[0]
    return ad.read_h5ad(os.path.join(DATA, f"{name}_100obs_preprocessed.h5ad")), False


# -- shared objective ------------------------------------------------------------------

_loss_all = jax.jit(jax.vmap(gene_loss, in_axes=(0, 1, 1, 1, 0, 0)))


def theta_of(var) -> np.ndarray:
    """``(G, 5)`` log[alpha, beta_model, gamma, t_, scaling] from ``fit_*`` columns."""
    with np.errstate(all="ignore"):
        return np.log(np.stack([var["fit_alpha"], var["fit_beta"] * var["fit_scaling"],
                                var["fit_gamma"], var["fit_t_"], var["fit_scaling"]], 1)
                      .astype(np.float64))


def shared_loglik(theta: np.ndarray, u, s, w, std_u, std_s) -> np.ndarray:
    mse = _loss_all(jnp.asarray(theta), jnp.asarray(u), jnp.asarray(s), jnp.asarray(w),
                    jnp.asarray(std_u), jnp.asarray(std_s))
    return np.asarray(loglik_from_mse(mse))


def rel_err(fit, true) -> float:
    fit, true = np.asarray(fit, float), np.asarray(true, float)
    ok = np.isfinite(fit) & np.isfinite(true) & (true > 0)
    return float(np.median(np.abs(fit[ok] / true[ok] - 1.0))) if ok.any() else float("nan")


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


def fit_t_spearman(adata, true_t, mask) -> float:
    ft = np.asarray(adata.layers["fit_t"], float)
    vals = [spearman(ft[:, j], true_t) for j in np.flatnonzero(mask)]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.median(vals)) if vals else float("nan")


# -- one case ---------------------------------------------------------------------------


def run_jaxcell(res, case, adata, cfg):
    jx = adata.copy()
    t_first, _ = C.timed(lambda: jv.recover_dynamics(jx, t_max=T_MAX))
    times = C.repeat(lambda: jv.recover_dynamics(jx, t_max=T_MAX), cfg["jx_repeats"])
    n_dev = jax.local_device_count()
    res.add(case, "jaxcell", "fit_s", C.median(times), "s", note=(
        f"jv.recover_dynamics, genes over {n_dev} device(s); median of {len(times)} "
        f"warm call(s)"))
    res.add(case, "jaxcell", "fit_first_s", t_first, "s",
            note="first call, compilation included")
    lt_first, _ = C.timed(lambda: jv.latent_time(jx))
    lt = C.repeat(lambda: jv.latent_time(jx), cfg["jx_repeats"])
    res.add(case, "jaxcell", "latent_time_s", C.median(lt), "s",
            note=f"jv.latent_time, median of {len(lt)} warm call(s)")
    res.add(case, "jaxcell", "latent_time_first_s", lt_first, "s",
            note="first call, compilation included")
    return jx


def run_scvelo(res, case, adata, raw, cfg):
    import scvelo as scv

    cores = res.machine["usable_cores"] or 1

    def fit(sv):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if raw:
                scv.tl.recover_dynamics(sv, n_jobs=cores, use_raw=True, var_names="all")
            else:
                scv.tl.recover_dynamics(sv, n_jobs=cores, var_names="all")
        return sv

    # each call on a fresh copy (made outside the timing); full runs stop repeating once
    # the calls add up to SCVELO_MAX_TOTAL
    times: list[float] = []
    while len(times) < cfg["sv_repeats"] and (not times or sum(times) < SCVELO_MAX_TOTAL):
        sv = adata.copy()
        dt, sv = C.timed(lambda sv=sv: fit(sv))
        times.append(dt)
    res.add(case, "scvelo", "fit_s", C.median(times), "s", note=(
        f"scv.tl.recover_dynamics(n_jobs={cores}"
        f"{', use_raw=True' if raw else ''}, var_names='all'); median of {len(times)} "
        "call(s) on fresh copies"))
    return sv


def scvelo_latent_time(sv, n_jobs: int):
    """scVelo's latent time on a fitted AnnData (velocity, graph, latent time)."""
    import scvelo as scv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scv.tl.velocity(sv, mode="dynamical", use_raw=True)
        scv.tl.velocity_graph(sv, n_jobs=n_jobs)
        scv.tl.latent_time(sv)
    return np.asarray(sv.obs["latent_time"], float)


def compare(res, case, adata, jx, sv, raw):
    # the shared objective at each tool's parameters, the same cells and stds
    u, s, _, _ = counts(adata, use_raw=raw)
    w = fit_weights(u, s).astype(np.float64)
    std_u = np.asarray(jx.var["fit_std_u"], float)
    std_s = np.asarray(jx.var["fit_std_s"], float)
    th_j, th_s = theta_of(jx.var), theta_of(sv.var)
    both = (np.all(np.isfinite(th_j), 1) & np.all(np.isfinite(th_s), 1)
            & np.isfinite(std_u) & np.isfinite(std_s))
    n_both = int(both.sum())
    if n_both == 0:
        res.note(f"{case}: no gene fitted by both tools; no quality rows")
        return both
    idx = np.flatnonzero(both)
    args = (u[:, idx], s[:, idx], w[:, idx], std_u[idx], std_s[idx])
    ll_j = shared_loglik(th_j[idx], *args)
    ll_s = shared_loglik(th_s[idx], *args)
    ok = np.isfinite(ll_j) & np.isfinite(ll_s)
    note = (f"{int(ok.sum())} genes fitted by both (of {adata.n_vars}); -1 - log(pi mse) "
            "under jaxcell's gene_loss, jaxcell's stds")
    res.add(case, "jaxcell", "loglik_median", float(np.median(ll_j[ok])), "", note=note)
    res.add(case, "scvelo", "loglik_median", float(np.median(ll_s[ok])), "", note=note)
    res.add(case, "jaxcell", "frac_genes_loglik_ge_scvelo",
            float(np.mean(ll_j[ok] >= ll_s[ok] - 1e-9)), "fraction")
    r_j = np.log(np.asarray(jx.var["fit_gamma"] / jx.var["fit_beta"], float))[idx]
    r_s = np.log(np.asarray(sv.var["fit_gamma"] / sv.var["fit_beta"], float))[idx]
    fin = np.isfinite(r_j) & np.isfinite(r_s)
    res.add(case, "jaxcell", "ratio_corr", float(np.corrcoef(r_j[fin], r_s[fin])[0, 1]), "",
            note="Pearson, log(fit_gamma / fit_beta), jaxcell vs scVelo")
    return both


def truth_rows(res, case, adata, jx, sv, both):
    var = adata.var
    r_true = var["true_gamma"] / var["true_beta"]
    for tool, a in (("jaxcell", jx), ("scvelo", sv)):
        r = (a.var["fit_gamma"] / a.var["fit_beta"]).where(both)
        res.add(case, tool, "ratio_median_rel_err", rel_err(r, r_true), "rel",
                note="gamma/beta from the per-gene fit_*, genes fitted by both")
    sh = jx.var
    for name in ("alpha", "beta", "gamma"):
        res.add(case, "jaxcell", f"{name}_median_rel_err",
                rel_err(sh[f"shared_{name}"], var[f"true_{name}"]), "rel",
                note="jaxcell shared clock (var['shared_*']) vs truth")
    res.add(case, "jaxcell", "scaling_median_rel_err",
            rel_err(sh["shared_scaling"], np.ones(adata.n_vars)), "rel",
            note="var['shared_scaling'] vs 1 (the simulation observes unspliced unscaled)")
    true_t = np.asarray(adata.obs["true_t"], float)
    res.add(case, "jaxcell", "latent_time_spearman",
            spearman(jx.obs["latent_time"], true_t), "")
    try:
        t0 = time.perf_counter()
        lt = scvelo_latent_time(sv, res.machine["usable_cores"] or 1)
        t_lt = time.perf_counter() - t0
        res.add(case, "scvelo", "latent_time_spearman", spearman(lt, true_t), "")
        res.add(case, "scvelo", "latent_time_s", t_lt, "s", note=(
            "scv.tl.velocity(dynamical) + velocity_graph (incl. PCA neighbours) + "
            "latent_time, one call"))
    except Exception as e:  # noqa: BLE001 - report and carry on
        res.note(f"{case}: scVelo latent time failed ({type(e).__name__}: {e}); "
                 "see fit_t_spearman_median")
    for tool, a in (("jaxcell", jx), ("scvelo", sv)):
        res.add(case, tool, "fit_t_spearman_median", fit_t_spearman(a, true_t, both), "",
                note="median over genes of Spearman(layers['fit_t'], true time)")


def run_case(res, case, cfg):
    adata, raw = load(case)
    print(f"\n-- {case}: {adata.n_obs} cells x {adata.n_vars} genes "
          f"({'raw counts' if raw else 'moments Ms/Mu'})", flush=True)
    # a fresh start per case, so that fit_first_s includes compilation even where an
    # earlier case had the same shapes
    jax.clear_caches()
    _sharded_fit.cache_clear()
    jx = run_jaxcell(res, case, adata, cfg)
    sv = run_scvelo(res, case, adata, raw, cfg)
    both = compare(res, case, adata, jx, sv, raw)
    if raw and both.any():
        truth_rows(res, case, adata, jx, sv, both)


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help=argparse.SUPPRESS, default=None)  # e.g. sim_1000x200
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/velocity.py", args)
    import scvelo as scv

    scv.settings.verbosity = 0
    res.versions["scvelo"] = C._version("scvelo")
    res.versions["anndata"] = C._version("anndata")
    cases = all_cases()
    if args.cases:
        want = args.cases.split(",")
        cases = [c for c in cases if c in want]
    if args.quick:
        skipped = [c for c in cases if c in QUICK_SKIP]
        cases = [c for c in cases if c not in QUICK_SKIP]
        if skipped:
            res.note(f"--quick: skipped {', '.join(skipped)} (full runs only)")
    print(f"jax {jax.__version__} on {jax.default_backend()} "
          f"({jax.local_device_count()} devices); {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; scvelo {res.versions['scvelo']}; "
          f"mode {'quick' if args.quick else 'full'}; cases {', '.join(cases)}", flush=True)
    res.note("simulated data from jv.simulate_data (jaxcell's generator, seed 0), not "
             "scvelo.datasets.simulation")
    for case in cases:
        run_case(res, case, cfg)

    print(f"\n== velocity.py results (total {res.elapsed():.0f} s) ==")
    C.print_table(res, TOOLS, ref_tool="scvelo")
    res.finish(args.json)


if __name__ == "__main__":
    main()
