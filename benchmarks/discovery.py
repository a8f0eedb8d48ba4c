#!/usr/bin/env python
"""Equation discovery: exact-support recovery and fit time of ``jaxcell.discovery`` vs
PySINDy on Lorenz, Lotka-Volterra and the 7-species yeast glycolysis oscillator.

Systems, libraries and settings: ``_discovery_systems.py`` (Lorenz: polynomial library
of degree 2, 7 of 30 terms true; Lotka-Volterra: degree 2, 4 of 12; glycolysis: degree
2 plus three Hill-repression columns, 23 of 273). Both tools get the same candidate
columns in the same order (checked: the two library matrices agree to 1e-9 relative)
and the same sequentially thresholded least squares (STLSQ, ``alpha = 0``, 20 rounds,
unbiased, threshold fixed per system: Lorenz 0.5, Lotka-Volterra 0.2, glycolysis 1.0).

Data: the clean trajectory (scipy DOP853, rtol 1e-11) plus Gaussian noise with sd =
k % of each state's SD over its trajectory, k = 1, 5, 10, 20, for 20 noise seeds
(seed 0..19, the same data for both tools); a noise-free case (``noise0``, one data set)
checks the set-up. Derivatives are estimated from the noisy states. Methods, each tool
with its nearest equivalent:

* ``fd``: second-order finite differences (jaxcell ``FiniteDifference()``, PySINDy
  ``FiniteDifference()``; identical derivatives, so identical fits);
* ``sg``: jaxcell ``SavitzkyGolay(window, 3)`` (derivative of the local least-squares
  cubic; the library is evaluated on the noisy states), PySINDy
  ``SmoothedFiniteDifference`` with ``savgol_filter(window, 3)`` (smooth, then finite
  differences; PySINDy also evaluates the library on the smoothed states);
* ``weak``: the weak (integral) form, no derivatives: jaxcell ``WeakForm(200, width,
  4)`` (200 evenly spaced test functions per trajectory, ``width`` samples each),
  PySINDy ``WeakPDELibrary(K=200, H_xt=(width - 1) / 2 * dt, p=4)`` (200 randomly
  placed domains, numpy seed 0).

Rows, case ``<system>-noise<k>``, each with its ``method``:

* ``support_recovery_rate``: fraction of the seeds whose set of nonzero coefficients
  equals the true set exactly (unit ``fraction``);
* ``support_errors``: mean number of wrong terms (false + missed) over the seeds;
* ``time_s``: median wall seconds of one fit from the data to coefficients. jaxcell:
  ``dc.discover(ts, xs, library, optimizer=STLSQ(...), derivatives=...)``, the
  user-facing call (its pieces are jit-compiled, the call is not), median of
  repeated calls after a warm-up on seed 0's data; PySINDy: ``SINDy(...).fit(xs, t)``
  (weak form: including building the ``WeakPDELibrary``), median over the 20 seeds;
* ``time_s_jit`` (jaxcell): the same pipeline under ``jax.jit`` (library, weak system
  or regression; finite-difference and Savitzky-Golay derivatives are computed outside
  the jit, see below), median over the seeds after compilation;
* ``time_s_batched`` (jaxcell): ``jit(vmap)`` over the 20 noisy data sets in one call,
  divided by 20 (the note gives the whole call);
* ``compile_s`` (jaxcell, first noise level of each system only, where the process
  meets the system's shapes for the first time): first call minus the warm median,
  for ``discover`` and (note) for the jitted pipeline.

Recovery rates of jaxcell are computed with the jitted pipeline; its supports are
checked against ``discover`` on seed 0 and against the batched call on every seed.

For ``fd`` and ``sg`` the jitted and batched rows take the derivatives outside the
traced function, one data set at a time (included in the timings), as ``discover`` does
(the estimators check their input, then run jit-compiled; they also trace under
``jit``/``vmap``, with the finiteness check as ``eqx.error_if``).

``--quick`` runs the same cases and seeds with fewer timing repeats (2 instead of 7
warm ``discover`` calls, 1 instead of 3 batched calls) and a smaller glycolysis data
set: the first 3 of the 10 trajectories, sampled every 0.002 instead of 0.001 (every
second sample; Savitzky-Golay window 11 and weak-form width 51 samples, the same time
spans), so its glycolysis rates and times are not those of a full run. (Every fourth
sample is too coarse: the noise-free weak form then misses the support.)

Run ``python benchmarks/discovery.py --quick --json bench-results/discovery.json``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _discovery_systems as DS  # noqa: E402

from jaxcell import discovery as dc  # noqa: E402

TOOLS = ["jaxcell", "pysindy"]
METHODS = ("fd", "sg", "weak")
NOISE = (0, 1, 5, 10, 20)
SEEDS = 20
STLSQ_KW = dict(alpha=0.0, max_iter=20)


def settings(quick: bool) -> dict:
    return dict(quick=quick, discover_repeats=2 if quick else 7,
                batched_repeats=1 if quick else 3)


def add(res: C.Results, case: str, tool: str, method: str, metric: str, value, unit: str,
        note: str | None = None) -> None:
    res.add(case, tool, f"{metric} [{method}]", value, unit, note=note)
    res.rows[-1]["metric"] = metric
    res.rows[-1]["method"] = method


def short_error(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.split('/')[-1]}:{tb[-1].lineno}" if tb else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}{where}"


# -- jaxcell -----------------------------------------------------------------------------


class Jaxcell:
    """One system and method: ``discover`` (user-facing), a jitted pipeline and its
    ``vmap`` over data sets. Data ``xs`` are ``(trajectories, n, d)``."""

    def __init__(self, s: DS.System, ts: np.ndarray, method: str):
        self.s, self.ts, self.method = s, ts, method
        self.opt = dc.STLSQ(s.threshold, **STLSQ_KW)
        self.der = {"fd": dc.FiniteDifference(),
                    "sg": dc.SavitzkyGolay(s.sg_window, s.sg_order),
                    "weak": dc.WeakForm(s.weak_windows, s.weak_width, s.weak_power)}[method]
        V, d, lib, opt = s.variables, len(s.variables), s.library, self.opt
        if method == "weak":
            wf = self.der

            def pipe(xs):
                sy = [wf.system(ts, x, lib(x, V)) for x in xs]
                return opt(jnp.concatenate([g for g, _ in sy]),
                           jnp.concatenate([b for _, b in sy]))

            self._jit = jax.jit(pipe)
            self._batched = jax.jit(jax.vmap(pipe))
        else:
            def pipe(xs, dx):
                return opt(lib(xs.reshape(-1, d), V), dx.reshape(-1, d))

            self._jit = jax.jit(pipe)
            self._batched = jax.jit(jax.vmap(pipe))

    def derivatives(self, xs):
        return jnp.stack([self.der(self.ts, x) for x in xs])

    def discover(self, xs) -> np.ndarray:
        d = dc.discover(self.ts, list(xs), self.s.library, variables=self.s.variables,
                        optimizer=self.opt, derivatives=self.der)
        return np.asarray(d.coefficients)

    def fit(self, xs) -> np.ndarray:
        xs = jnp.asarray(xs)
        if self.method == "weak":
            return np.asarray(self._jit(xs))
        return np.asarray(self._jit(xs, self.derivatives(xs)))

    def _batched_args(self, xss):
        xss = jnp.asarray(xss)
        if self.method == "weak":
            return (xss,)
        return xss, jnp.stack([self.derivatives(x) for x in xss])

    def compile_batched(self, xss) -> float:
        """Ahead-of-time compile of the ``jit(vmap)`` program; returns its seconds."""
        args = self._batched_args(xss)
        t = time.perf_counter()
        self._batched_compiled = self._batched.lower(*args).compile()
        return time.perf_counter() - t

    def batched(self, xss) -> np.ndarray:
        return np.asarray(self._batched_compiled(*self._batched_args(xss)))


# -- PySINDy -------------------------------------------------------------------------------


def pysindy_fit(s: DS.System, ts: np.ndarray, method: str, xs: np.ndarray) -> np.ndarray:
    import pysindy as ps

    opt = ps.STLSQ(threshold=s.threshold, **STLSQ_KW)
    if method == "weak":
        np.random.seed(0)  # WeakPDELibrary places its domains with np.random
        lib = ps.WeakPDELibrary(function_library=DS.pysindy_library(s.name),
                                spatiotemporal_grid=ts, K=s.weak_windows,
                                H_xt=(s.weak_width - 1) / 2 * (ts[1] - ts[0]),
                                p=s.weak_power)
        model = ps.SINDy(optimizer=opt, feature_library=lib)
    else:
        diff = (ps.FiniteDifference() if method == "fd" else ps.SmoothedFiniteDifference(
            smoother_kws={"window_length": s.sg_window, "polyorder": s.sg_order}))
        model = ps.SINDy(optimizer=opt, feature_library=DS.pysindy_library(s.name),
                         differentiation_method=diff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(list(xs), t=[ts] * len(xs))
    return np.asarray(model.coefficients())


def check_libraries(s: DS.System, ts: np.ndarray, xs: np.ndarray) -> str:
    """Both tools' library matrices on the clean data: same columns, same order."""
    lib = DS.pysindy_library(s.name)
    x = xs.reshape(-1, xs.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib.fit(x)
        th_ps = np.asarray(lib.transform(x))
    th_jx = np.asarray(s.library(x, s.variables))
    names_ps = [n.replace(" ", "*") for n in lib.get_feature_names(list(s.variables))]
    names_jx = list(s.terms())
    assert th_ps.shape == th_jx.shape, (th_ps.shape, th_jx.shape)
    err = float(np.max(np.abs(th_ps - th_jx) / np.maximum(np.abs(th_jx).max(0), 1e-300)))
    assert err < 1e-9, f"{s.name}: library columns differ (max rel {err:.3g})"
    # polynomial names must match exactly (PySINDy writes x*y as 'x y')
    for a, b in zip(names_ps, names_jx, strict=True):
        if "hill" not in a:
            assert a == b, (a, b)
    return f"{th_jx.shape[1]} columns, max rel difference {err:.1e}"


# -- one system ----------------------------------------------------------------------------


def support_stats(coefs: list[np.ndarray], sup: np.ndarray) -> tuple[float, float]:
    ok = [np.array_equal(c != 0, sup) for c in coefs]
    wrong = [int(np.sum((c != 0) != sup)) for c in coefs]
    return float(np.mean(ok)), float(np.mean(wrong))


def bench_system(name: str, res: C.Results, cfg: dict, noise: tuple[int, ...],
                 methods: tuple[str, ...], tools: list[str]) -> None:
    s = DS.SYSTEMS[name]()
    if cfg["quick"]:
        s = s.quick()
    ts, clean = s.trajectories()
    sup = s.true_support()
    coef_true = DS.exact_coefficients(s, clean)
    print(f"\n=== {name}: {s.about}; {clean.shape[0]} trajectory(ies) x {len(ts)} samples, "
          f"dt {s.dt:g}; {sup.shape[1]} terms per equation, {int(sup.sum())} true; "
          f"threshold {s.threshold:g}; SG window {s.sg_window}, weak form "
          f"{s.weak_windows} x {s.weak_width} samples ===", flush=True)
    print(f"  library check: {check_libraries(s, ts, clean)}; smallest true |coef| "
          f"{np.min(np.abs(coef_true[sup])):.3g}", flush=True)
    runners: dict[str, Jaxcell] = {}
    for k in noise:
        case = f"{name}-noise{k}"
        seeds = list(range(SEEDS)) if k > 0 else [0]
        data = [DS.noisy(clean, k, sd) for sd in seeds]
        for m in methods:
            if "jaxcell" in tools:
                try:
                    bench_jaxcell(res, case, s, ts, m, data, sup, cfg, runners,
                                  cold=(k == noise[0]))
                except Exception as e:  # noqa: BLE001 - record and go on
                    add(res, case, "jaxcell", m, "support_recovery_rate", None, "fraction",
                        note=f"error: {short_error(e)}")
            if "pysindy" in tools:
                try:
                    t_fit, coefs = [], []
                    for x in data:
                        t0 = time.perf_counter()
                        coefs.append(pysindy_fit(s, ts, m, x))
                        t_fit.append(time.perf_counter() - t0)
                    rate, wrong = support_stats(coefs, sup)
                    add(res, case, "pysindy", m, "support_recovery_rate", rate, "fraction")
                    add(res, case, "pysindy", m, "support_errors", wrong, "count")
                    add(res, case, "pysindy", m, "time_s", C.median(t_fit), "s",
                        note=f"SINDy.fit, median over {len(data)} data sets")
                except Exception as e:  # noqa: BLE001
                    add(res, case, "pysindy", m, "support_recovery_rate", None, "fraction",
                        note=f"error: {short_error(e)}")
        print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)


def bench_jaxcell(res, case, s, ts, m, data, sup, cfg, runners, cold) -> None:
    if m not in runners:
        runners[m] = Jaxcell(s, ts, m)
    r = runners[m]
    # user-facing discover: a first call (compiles its pieces), then warm calls
    t_first, c_disc = C.timed(lambda: r.discover(data[0]))
    t_disc = C.repeat(lambda: r.discover(data[0]), cfg["discover_repeats"])
    # jitted pipeline, one data set at a time (first call compiles)
    t_jit_first, c0 = C.timed(lambda: r.fit(data[0]))
    t_jit, coefs = [], []
    for x in data:
        t0 = time.perf_counter()
        coefs.append(r.fit(x))
        t_jit.append(time.perf_counter() - t0)
    same_disc = np.array_equal(c_disc != 0, coefs[0] != 0)
    dev = float(np.max(np.abs(c_disc - coefs[0])) / max(np.max(np.abs(c_disc)), 1e-300))
    rate, wrong = support_stats(coefs, sup)
    note = None if same_disc else f"discover's support differs from the jit pipeline's " \
                                  f"on seed 0 (coef rel diff {dev:.2g})"
    add(res, case, "jaxcell", m, "support_recovery_rate", rate, "fraction", note=note)
    add(res, case, "jaxcell", m, "support_errors", wrong, "count")
    add(res, case, "jaxcell", m, "time_s", C.median(t_disc), "s",
        note=f"dc.discover (pieces jitted), median of {len(t_disc)} warm calls")
    add(res, case, "jaxcell", m, "time_s_jit", C.median(t_jit), "s",
        note="jit pipeline" + ("" if m == "weak" else " (derivatives outside the jit)")
        + f", median over {len(data)} data sets")
    if len(data) > 1:
        xss = np.stack(data)
        c_b = r.compile_batched(xss)
        t_b, cb = C.timed(lambda: r.batched(xss))
        t_b = C.median(C.repeat(lambda: r.batched(xss), cfg["batched_repeats"],
                                first=[t_b]))
        mism = sum(not np.array_equal(a != 0, b != 0) for a, b in zip(cb, coefs, strict=True))
        add(res, case, "jaxcell", m, "time_s_batched", t_b / len(data), "s",
            note=f"jit(vmap) over {len(data)} data sets: {t_b:.3g} s per call (median of "
                 f"{cfg['batched_repeats']}; compiled ahead in {c_b:.3g} s)"
            + ("" if m == "weak" else ", derivatives outside the jit")
            + (f"; support differs from the jit pipeline on {mism} seeds" if mism else ""))
    if cold:
        add(res, case, "jaxcell", m, "compile_s", max(t_first - C.median(t_disc), 0.0), "s",
            note=f"discover: first call {t_first:.3g} s minus warm median; jit pipeline: "
                 f"first call {t_jit_first:.3g} s minus warm median = "
                 f"{max(t_jit_first - C.median(t_jit), 0.0):.3g} s")


# -- tables ------------------------------------------------------------------------------


def print_summary(res: C.Results) -> None:
    cell = {(r["case"], r["tool"], r.get("method"), r["metric"]): r for r in res.rows}
    cases = list(dict.fromkeys(r["case"] for r in res.rows))

    def v(case, tool, m, metric, unit=None):
        r = cell.get((case, tool, m, metric))
        if r is None:
            return ""
        if r["value"] is None:
            return "ERR"
        return C.fmt(r["value"], unit or r["unit"]) if unit != "rate" else f"{r['value']:.2f}"

    print("\nsupport recovery rate (fraction of seeds with the exact true support; mean "
          "wrong terms in brackets) and time per fit; ratio = pysindy / jaxcell (above "
          "1: jaxcell faster)")
    head = (f"{'case':<24} {'method':<6} {'jaxcell':>13} {'pysindy':>13} {'jx discover':>12} "
            f"{'jx jit':>10} {'jx batched':>11} {'pysindy':>10} {'ps/discover':>11} "
            f"{'ps/jit':>8} {'ps/batched':>10}")
    print(head)
    print("-" * len(head))
    for c in cases:
        for m in METHODS:
            if not any(k[0] == c and k[2] == m for k in cell):
                continue
            rates = []
            for tool in TOOLS:
                a = v(c, tool, m, "support_recovery_rate", "rate")
                b = cell.get((c, tool, m, "support_errors"))
                rates.append(f"{a} ({b['value']:.1f})" if b and b["value"] is not None
                             else a)
            times = {k: cell.get((c, t, m, k)) for t, k in
                     (("jaxcell", "time_s"), ("jaxcell", "time_s_jit"),
                      ("jaxcell", "time_s_batched"))}
            tp = cell.get((c, "pysindy", m, "time_s"))
            ratios = []
            for k in ("time_s", "time_s_jit", "time_s_batched"):
                tj = times[k]
                ratios.append(f"{tp['value'] / tj['value']:.3g}" if tp and tj
                              and tp["value"] and tj["value"] else "")
            print(f"{c:<24} {m:<6} {rates[0]:>13} {rates[1]:>13} "
                  f"{v(c, 'jaxcell', m, 'time_s'):>12} {v(c, 'jaxcell', m, 'time_s_jit'):>10} "
                  f"{v(c, 'jaxcell', m, 'time_s_batched'):>11} "
                  f"{v(c, 'pysindy', m, 'time_s'):>10} {ratios[0]:>11} {ratios[1]:>8} "
                  f"{ratios[2]:>10}")
    print("\nbest method per tool (highest recovery rate; ties: fewest wrong terms)")
    print(f"{'case':<24} {'jaxcell':>22} {'pysindy':>22}")
    for c in cases:
        line = f"{c:<24}"
        for tool in TOOLS:
            cands = [(cell[(c, tool, m, "support_recovery_rate")]["value"],
                      -(cell.get((c, tool, m, "support_errors")) or {"value": 1e9})["value"],
                      m) for m in METHODS
                     if (c, tool, m, "support_recovery_rate") in cell
                     and cell[(c, tool, m, "support_recovery_rate")]["value"] is not None]
            if not cands:
                line += f" {'':>22}"
                continue
            rate, negw, m = max(cands)
            res.add(c, tool, "best_support_recovery_rate", rate, "fraction",
                    note=f"method {m}", echo=False)
            res.rows[-1]["method"] = m
            line += f" {f'{rate:.2f} ({m}, {-negw:.1f} wrong)':>22}"
        print(line)


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default=",".join(DS.SYSTEMS),
                    help="comma-separated subset of: " + ", ".join(DS.SYSTEMS))
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--noise", default=",".join(str(k) for k in NOISE),
                    help="noise levels in %% of each state's SD (0: one noise-free data "
                         "set)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated subset of: " + ", ".join(TOOLS))
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/discovery.py", args)
    for mod in ("pysindy", "sklearn"):
        res.versions[mod] = C._version(mod)
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    methods = tuple(m for m in args.methods.split(",") if m)
    noise = tuple(int(k) for k in args.noise.split(",") if k)
    tools = [t for t in args.tools.split(",") if t]
    for name in args.systems.split(","):
        bench_system(name, res, cfg, noise, methods, tools)
    res.note(f"STLSQ alpha 0, max_iter 20, unbiased; thresholds lorenz 0.5, "
             f"lotka_volterra 0.2, glycolysis 1.0; {SEEDS} noise seeds per level")
    res.note("jaxcell recovery rates come from the jitted pipeline (same library, "
             "derivatives and STLSQ as discover; checked against discover on seed 0)")
    res.note("fd/sg derivatives are taken outside the jitted and batched pipelines, "
             "one data set at a time, as discover does")
    print(f"\n== discovery.py results (total {res.elapsed():.0f} s) ==")
    print_summary(res)
    res.finish(args.json)


if __name__ == "__main__":
    main()
