#!/usr/bin/env python
"""Time to Sobol' indices of a model output: jaxcell vs SALib with a scipy loop.

Model: the Goodwin oscillator (``jc.models.goodwin()``), parameters ``a`` in [50, 150],
``n`` in [8, 12] and ``K`` in [0.8, 1.2] (uniform); output: the time average of ``z``
over 101 points on [0, 20]. rtol 1e-6, atol 1e-8, float64. ``2^14`` base samples, so
``2^14 (d + 2) = 81,920`` simulations, first-order and total indices with 95% bootstrap
intervals.

- jaxcell: ``jc.analysis.sobol_indices(fn, bounds, n, key)`` where ``fn`` runs
  ``jc.ensemble`` (its default layout: one ``shard_map`` program over every device, one
  CPU device per core; default solver Rodas5, PID controller);
  1,000 bootstrap replicates. Rows: wall time of the first call (compilation included)
  and the median of the later calls.
- SALib 1.6.0: ``SALib.sample.sobol.sample`` (scrambled Sobol' sequence),
  ``scipy.integrate.solve_ivp(method="LSODA")`` in a loop in one process per core,
  ``SALib.analyze.sobol.analyze`` (100 resamples, its default). With ``--quick`` the loop
  runs on a subset and its time is extrapolated linearly (said in the row's note).

Agreement: the two tools' outputs on the same parameter rows (max relative
difference), and the two tools' indices (max absolute difference; they use different
designs, so they agree to within Monte Carlo error, about the widths of the intervals).

Run ``python benchmarks/gsa.py --quick --json bench-results/gsa.json``.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

import jaxcell as jc  # noqa: E402

RTOL, ATOL = 1e-6, 1e-8
T1, TS = 20.0, np.linspace(0.0, 20.0, 101)
NAMES = ["a", "n", "K"]
BOUNDS = np.array([[50.0, 150.0], [8.0, 12.0], [0.8, 1.2]])
X0 = np.array([0.1, 0.2, 2.5])
TOOLS = ["jaxcell", "salib+scipy"]



def settings(quick: bool) -> dict:
    if quick:
        return dict(repeats=2, scipy_rows=400)
    return dict(repeats=3, scipy_rows=None)


# -- jaxcell --------------------------------------------------------------------------


def make_fn():
    model = jc.models.goodwin()
    ts = jnp.asarray(TS)

    def mean_z(theta):
        traj = jc.ensemble(model, 0.0, T1, saveat=ts,
                           parameters={k: theta[:, i] for i, k in enumerate(NAMES)})
        return jnp.where(traj.success, jnp.mean(traj["z"], axis=1), jnp.nan)

    return mean_z


# -- scipy ---------------------------------------------------------------------------


def scipy_output(p: np.ndarray) -> float:
    from scipy.integrate import solve_ivp

    a, n, k = map(float, p)
    kn = k**n

    def rhs(t, y):
        x, yy, z = y
        return [a * kn / (kn + z**n) - x, x - yy, yy - z]

    sol = solve_ivp(rhs, (0.0, T1), X0, method="LSODA", t_eval=TS, rtol=RTOL, atol=ATOL)
    if not sol.success:
        return float("nan")
    return float(np.mean(sol.y[2]))


def salib_problem() -> dict:
    return {"num_vars": len(NAMES), "names": NAMES, "bounds": BOUNDS.tolist()}


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--log2n", type=int, default=14, help="base samples 2^LOG2N (14)")
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/gsa.py", args)
    from importlib.metadata import version

    from SALib.analyze import sobol as salib_analyze
    from SALib.sample import sobol as salib_sample

    res.versions["SALib"] = version("SALib")
    n = 2**args.log2n
    d = len(NAMES)
    rows = n * (d + 2)
    case = f"goodwin_mean_z_2^{args.log2n}"
    print(f"jax {jax.__version__} on {jax.default_backend()}; {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; {rows} simulations; mode "
          f"{'quick' if args.quick else 'full'}", flush=True)

    # jaxcell: sampling + ensemble + indices, first call compiles
    fn = make_fn()
    key = jax.random.key(0)
    t_first, r = C.timed(lambda: jc.analysis.sobol_indices(fn, BOUNDS, n, key, names=NAMES))
    times = C.repeat(lambda: jc.analysis.sobol_indices(fn, BOUNDS, n, key, names=NAMES),
                     cfg["repeats"])
    wall = C.median(times)
    res.add(case, "jaxcell", "time_to_indices_s", wall, "s", note=(
        f"sobol_indices: jax.random design + jc.ensemble ({rows} members over "
        f"{jax.local_device_count()} device(s)) + 1000 bootstrap replicates; median "
        f"of {len(times)} after a first call; {wall / rows * 1e6:.3g} us per simulation"))
    res.add(case, "jaxcell", "first_call_s", t_first, "s",
            note="the same, compilation included")
    print(r, flush=True)

    # SALib + scipy loop
    problem = salib_problem()
    t = time.perf_counter()
    xs = salib_sample.sample(problem, n, calc_second_order=False, seed=1)
    t_sample = time.perf_counter() - t
    k = min(rows, cfg["scipy_rows"] or rows)
    cores = res.machine["usable_cores"] or 1
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(cores) as pool:  # one process per core
        pool.map(scipy_output, xs[:cores])  # start-up and imports, not timed
        t = time.perf_counter()
        y_sub = np.array(pool.map(scipy_output, xs[:k], chunksize=max(1, k // cores)))
        t_loop = (time.perf_counter() - t) / k * rows
    fails = int(np.isnan(y_sub).sum())
    # outputs for the analysis: scipy's where it ran all rows, else jaxcell's on the same
    # rows (the analysis time does not depend on where the numbers came from)
    y_jx = np.asarray(fn(jnp.asarray(xs)))
    rel = float(np.max(np.abs(y_sub - y_jx[:k]) / np.abs(y_sub)))
    ys = y_sub if k == rows else y_jx
    t = time.perf_counter()
    ref = salib_analyze.analyze(problem, ys, calc_second_order=False, seed=1)
    t_analyze = time.perf_counter() - t
    total = t_sample + t_loop + t_analyze
    loop_note = (f"scipy loop extrapolated linearly from {k} of {rows} rows"
                 if k < rows else "scipy loop over all rows")
    res.add(case, "salib+scipy", "time_to_indices_s", total, "s", note=(
        f"SALib sample {t_sample:.3g} s + solve_ivp(LSODA) loop in {cores} processes "
        f"(one per core) {t_loop:.4g} s ({t_loop / rows * 1e3:.3g} ms wall per "
        f"simulation; {loop_note}; "
        f"failures {fails}/{k}) + SALib analyze {t_analyze:.3g} s"
        + ("; analyze ran on jaxcell's outputs at SALib's rows" if k < rows else "")))
    res.add(case, "salib+scipy", "first_call_s", total, "s", note="no compilation")

    # agreement
    res.add(case, "jaxcell", "max_rel_output_diff_vs_scipy", rel, "rel",
            note=f"mean z on SALib's first {k} rows, jaxcell vs LSODA")
    dev = max(float(np.max(np.abs(np.asarray(r.first_order) - ref["S1"]))),
              float(np.max(np.abs(np.asarray(r.total) - ref["ST"]))))
    half = float(np.max(np.concatenate([np.diff(np.asarray(r.first_order_interval), axis=0),
                                        np.diff(np.asarray(r.total_interval), axis=0)])) / 2)
    res.add(case, "jaxcell", "max_abs_index_diff_vs_salib", dev, "", note=(
        f"S1 and ST, jaxcell's design vs SALib's Sobol' design; widest 95% interval "
        f"half-width {half:.3g}"))
    print("\nSALib S1", np.round(ref["S1"], 4), "ST", np.round(ref["ST"], 4))
    print("jaxcell S1", np.round(np.asarray(r.first_order), 4), "ST",
          np.round(np.asarray(r.total), 4))

    print(f"\n== gsa.py results (total {res.elapsed():.0f} s) ==")
    C.print_table(res, TOOLS)
    res.finish(args.json)


if __name__ == "__main__":
    main()
