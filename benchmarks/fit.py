#!/usr/bin/env python
"""Parameter estimation: jaxcell vs pyPESTO (AMICI + fides) and scipy; NUTS vs pyPESTO MCMC.

**Part A — multistart fit of Boehm et al. (2014)** (PEtab problem
``tests/data/petab/Boehm_JProteomeRes2014``: 9 estimated parameters, log10 scale, 48
measurements; rtol 1e-8, atol 1e-10 for every tool). Every tool starts from the same N
points, uniform within the PEtab bounds on the parameter scale
(``jax.random.uniform(jax.random.key(0), (N, 9))``), at most ``max_steps`` iterations
per start (300; 100 with ``--quick``):

* ``jaxcell``: ``fit(load_petab(yaml, forward_mode=True), starts=..., max_steps=...,
  **JAXCELL_FIT_KWARGS)`` (Levenberg–Marquardt on the likelihood written as a sum of
  squares, forward-mode Jacobians through the solves). Per-start times from the INFO
  log record ``fit`` writes after each start (none with ``batch=True``: then only the
  total is known). The first start includes tracing and XLA compilation;
* ``pypesto+amici+fides``: ``PetabImporter.from_yaml(yaml).create_problem()`` (AMICI,
  CVODES with forward sensitivities; compiled once into
  ``bench-results/amici-build/boehm_pypesto`` and loaded from there afterwards: row
  ``import (+ compile)``), ``pypesto.optimize.minimize`` with ``FidesOptimizer``
  (trust region, Hessian: AMICI's Fisher information), ``MAXITER = max_steps``.
  Per-start times: pyPESTO's ``OptimizerResult.time``;
* ``scipy``: ``least_squares(method="trf", bounds=PEtab bounds, max_nfev=max_steps)``
  with its default 2-point finite-difference Jacobian, on the same residuals as jaxcell
  (``(y - h)/sigma`` and, per measurement, ``sqrt(log(2 pi sigma^2) + 50)``, so that
  ``nllh = ||r||^2 / 2 - 25 * 48``) computed from ``solve_ivp(LSODA)`` of the
  hand-written Boehm right-hand side (``_models.boehm_numpy_rhs``). trf does not count
  the Jacobian's evaluations in ``max_nfev``.

The three objectives are checked against each other at the nominal point first (rows
``nllh at nominal``). Rows per tool for N starts: ``total time``; ``time to best+1e-3``,
the time until the best value so far first reaches (best over all tools + 1e-3), with
starts run in order; ``time per start at best+1e-3`` (total / such starts);
``fraction at best+1e-3``; ``best nllh``; ``median time per start``.

**Part B — NUTS on the hare-lynx posterior** (Lotka–Volterra, Hudson's Bay pelts
1900-1920, the model, data and priors of ``examples/bayes_hare_lynx.py``, imported from
there; 8 parameters: 4 rates, 2 initial states, 2 noise sigmas):

* ``jaxcell``: numpyro NUTS on ``build_model()`` of the example (``jc.simulate`` with
  Tsit5, rtol = atol = 1e-6) with the kernel of ``jaxcell.inference.sample_nuts``
  (dense mass matrix, target acceptance 0.8, started at the example's ``INIT``), but run
  as ``MCMC.warmup`` then ``MCMC.run`` so that warm-up and sampling are timed apart;
  chains one after the other (numpyro ``sequential``). The tracing and compilation
  inside the sampling call (JAX's compile events, overlapping spans merged) are moved
  from the sampling time to ``warm-up + compile``;
* ``pypesto-AM+scipy``: ``pypesto.sample.AdaptiveMetropolisSampler`` (default options)
  on the same posterior (same priors, log-normal likelihood and data) with the
  trajectory from ``solve_ivp(LSODA, rtol 1e-8, atol 1e-10)``, sampled on the log scale
  of all 8 parameters (the Jacobian is in the density), started from the jaxcell
  posterior mean; burn-in per chain from ``pypesto.sample.geweke_test`` (z 2; half the
  chain where it finds none), the chains cut to a common length.

Same number of chains for both; 3,000 Metropolis draws per chain with ``--quick``
(200 + 200 NUTS), 20,000 without (1,000 + 1,000). Rows: ``min bulk ESS`` (``arviz.ess``
over alpha, beta, gamma, delta, linear scale), ``sampling time`` (after warm-up /
burn-in), ``warm-up + compile`` (burn-in for Metropolis), ``ESS/s (sampling)``, ``ESS/s
(end to end)``, ``time per 1000 ESS``, and the posterior means, whose difference is
checked against the Monte-Carlo standard errors.

The printed tables give each tool's value and the ratio jaxcell / peer of rows in
seconds (below 1: jaxcell faster).

Usage: ``python benchmarks/fit.py [--quick] [--json PATH] [--starts N] [--skip-fit]
[--skip-nuts] [--skip-batch]``. ``--skip-batch`` leaves out the ``batch=True`` jaxcell
run: on a CPU its iterations wait for the slowest start's simulations, and with 50
starts × 300 steps that takes over 15 minutes on 2 cores.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _models  # noqa: E402
import _pypesto  # noqa: E402

import jaxcell.io as jio  # noqa: E402
from jaxcell.inference import fit  # noqa: E402

# Extra keyword arguments for jaxcell.inference.fit (e.g. {"ftol": 1e-6, "batch": True}).
JAXCELL_FIT_KWARGS: dict = {}

REPO = Path(__file__).resolve().parents[1]
BOEHM_YAML = (REPO / "tests" / "data" / "petab" / "Boehm_JProteomeRes2014"
              / "Boehm_JProteomeRes2014.yaml")
AMICI_DIR = REPO / "bench-results" / "amici-build" / "boehm_pypesto"
EXAMPLE = REPO / "examples" / "bayes_hare_lynx.py"
PP_FIT, PP_MCMC = "pypesto+amici+fides", "pypesto-AM+scipy"
TOOLS_FIT = ["jaxcell", "jaxcell batch", PP_FIT, "scipy"]
TOOLS_NUTS = ["jaxcell", PP_MCMC]
TOOLS = ["jaxcell", "jaxcell batch", PP_FIT, "scipy", PP_MCMC]
RTOL, ATOL = 1e-8, 1e-10
K_LS = 50.0  # the constant of jaxcell's sum-of-squares form of estimated sigmas
FAILED_RESIDUAL = 1e8
TOL_BEST = 1e-3
RATES = ["alpha", "beta", "gamma", "delta"]


def settings(quick: bool) -> dict:
    if quick:
        return dict(starts=10, max_steps=100, warmup=200, draws=200, chains=2,
                    am_draws=3000)
    return dict(starts=50, max_steps=300, warmup=1000, draws=1000, chains=4,
                am_draws=20000)


# -- Part A: Boehm multistart ------------------------------------------------------------


class ScipyBoehm:
    """The Boehm PEtab likelihood with ``solve_ivp`` (numpy only)."""

    def __init__(self, problem):
        self.ids = problem.parameter_ids
        self.scales = problem.parameter_scales
        nominal = _models.petab_nominal(_models.BOEHM_DIR)
        self.ratio, self.spec = nominal["ratio"], nominal["specC17"]
        obs = problem._observables
        self.ts = np.unique(np.concatenate([o["t"] for o in obs]))
        self.data = {o["id"]: (np.searchsorted(self.ts, o["t"]), np.asarray(o["y"]))
                     for o in obs}
        self.n_meas = sum(len(y) for _, y in self.data.values())
        self.n_eval = 0

    def linear(self, x):
        return {k: (10.0 ** v if s == "log10" else np.exp(v) if s == "log" else v)
                for k, s, v in zip(self.ids, self.scales, x)}

    def _observables(self, p):
        from scipy.integrate import solve_ivp

        self.n_eval += 1
        f = _models.boehm_numpy_rhs(p)
        x0 = np.array([207.6 * self.ratio, 207.6 * (1 - self.ratio), 0, 0, 0, 0, 0, 0])
        sol = solve_ivp(f, (0.0, float(self.ts[-1])), x0, method="LSODA", t_eval=self.ts,
                        rtol=RTOL, atol=ATOL)
        if not sol.success:
            return None
        A, B, pApB, pApA, pBpB = sol.y[:5]
        s = self.spec
        return {
            "pSTAT5A_rel": (100 * pApB + 200 * pApA * s) / (pApB + A * s + 2 * pApA * s),
            "pSTAT5B_rel": -(100 * pApB - 200 * pBpB * (s - 1))
            / ((B * (s - 1) - pApB) + 2 * pBpB * (s - 1)),
            "rSTAT5A_rel": (100 * pApB + 100 * A * s + 200 * pApA * s)
            / (2 * pApB + A * s + 2 * pApA * s - B * (s - 1) - 2 * pBpB * (s - 1)),
        }

    def residuals(self, x) -> np.ndarray:
        """Weighted errors ``(y - h)/sigma`` and ``sqrt(log(2 pi sigma^2) + K)`` per
        measurement, observable by observable (``FAILED_RESIDUAL`` if the solve fails)."""
        p = self.linear(x)
        h = self._observables(p)
        if h is None:
            return np.full(2 * self.n_meas, FAILED_RESIDUAL)
        parts = []
        for oid, (ix, y) in self.data.items():
            sigma = p[f"sd_{oid}"]
            parts.append((y - h[oid][ix]) / sigma)
            parts.append(np.full(len(y), np.sqrt(max(np.log(2 * np.pi * sigma**2) + K_LS,
                                                     0.0))))
        r = np.concatenate(parts)
        return r if np.all(np.isfinite(r)) else np.full(2 * self.n_meas, FAILED_RESIDUAL)

    def nllh_from_residuals(self, r) -> float:
        return float(0.5 * np.sum(np.asarray(r) ** 2) - 0.5 * K_LS * self.n_meas)

    def nllh(self, x) -> float:
        """The PEtab negative log-likelihood, summed directly."""
        p = self.linear(x)
        h = self._observables(p)
        if h is None:
            return np.inf
        total = 0.0
        for oid, (ix, y) in self.data.items():
            sigma = p[f"sd_{oid}"]
            r = (y - h[oid][ix]) / sigma
            total += np.sum(0.5 * np.log(2 * np.pi * sigma**2) + 0.5 * r**2)
        return float(total) if np.isfinite(total) else np.inf


def run_jaxcell(problem, starts, max_steps, **kwargs) -> dict:
    """``values`` (final nllh per start), ``stamps`` (seconds from the call to the end of
    each start; ``None`` when ``fit`` does not log per start, e.g. batched), ``total``
    (wall time of the call), ``steps`` and ``converged`` per start."""
    t0 = time.perf_counter()
    stamps = []

    class H(logging.Handler):
        def emit(self, record):
            if "start" in record.getMessage():
                stamps.append(time.perf_counter() - t0)

    log = logging.getLogger("jaxcell.inference")
    h = H()
    old = log.level
    log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        result = fit(problem, starts=starts, max_steps=max_steps,
                     **{**JAXCELL_FIT_KWARGS, **kwargs})
    finally:
        log.removeHandler(h)
        log.setLevel(old)
    total = time.perf_counter() - t0
    values = [float(s.value) if np.isfinite(s.value) else np.inf for s in result.starts]
    if {**JAXCELL_FIT_KWARGS, **kwargs}.get("batch") or len(stamps) != len(values):
        stamps = None
    return {"values": values, "stamps": stamps, "total": total,
            "steps": [int(s.steps) for s in result.starts],
            "converged": [bool(s.converged) for s in result.starts]}


def run_scipy(obj, problem, starts, max_steps):
    from scipy.optimize import least_squares

    lo, hi = np.asarray(problem.lower_bounds), np.asarray(problem.upper_bounds)
    t0 = time.perf_counter()
    out = {"values": [], "stamps": [], "steps": [], "converged": []}
    for x in starts:
        r = least_squares(obj.residuals, np.asarray(x), method="trf", bounds=(lo, hi),
                          max_nfev=max_steps)
        v = obj.nllh_from_residuals(r.fun)
        out["values"].append(v if np.all(r.fun != FAILED_RESIDUAL) else np.inf)
        out["stamps"].append(time.perf_counter() - t0)
        out["steps"].append(int(r.nfev))
        out["converged"].append(bool(r.status > 0))
    out["total"] = time.perf_counter() - t0
    return out


def time_to_target(values, stamps, target):
    best = np.minimum.accumulate(np.asarray(values, float))
    hit = np.nonzero(best <= target)[0]
    return float(stamps[hit[0]]) if hit.size else None


def setup_pypesto(res, problem, xn, nllh_jaxcell):
    """``(problem, perm)``: the pyPESTO problem and the jaxcell indices of its
    parameters, after its import row and the nominal check; ``(None, None)`` if it
    cannot be used."""
    why = _pypesto.unavailable()
    if why is not None:
        res.note(f"pyPESTO/fides/AMICI not installed ({why}): {PP_FIT} and {PP_MCMC} "
                 f"skipped (pip install pypesto fides amici)")
        return None, None
    AMICI_DIR.parent.mkdir(parents=True, exist_ok=True)
    try:
        pp, secs, reused = _pypesto.petab_problem(BOEHM_YAML, AMICI_DIR, rtol=RTOL,
                                                  atol=ATOL)
    except Exception as e:  # noqa: BLE001 - a failed AMICI build must not stop the run
        res.note(f"{PP_FIT}: PEtab import / AMICI build failed ({type(e).__name__}: "
                 f"{e}); skipped")
        return None, None
    rel = AMICI_DIR.relative_to(REPO)
    res.add("boehm import", PP_FIT, "import (+ compile)", secs, "s",
            note=(f"existing AMICI build loaded from {rel}" if reused
                  else f"PEtab import + AMICI model build into {rel}"))
    names = _pypesto.free_names(pp)
    if sorted(names) != sorted(problem.parameter_ids):
        res.note(f"{PP_FIT}: estimated parameters differ from jaxcell's "
                 f"({names} vs {list(problem.parameter_ids)}); skipped")
        return None, None
    # pyPESTO order from jaxcell order
    perm = np.array([list(problem.parameter_ids).index(k) for k in names])
    scales = dict(zip(pp.x_names, pp.x_scales))
    lo, hi = np.asarray(pp.lb, float), np.asarray(pp.ub, float)
    if (any(scales[k] != s for k, s in zip(problem.parameter_ids, problem.parameter_scales))
            or not np.allclose(lo, np.asarray(problem.lower_bounds)[perm])
            or not np.allclose(hi, np.asarray(problem.upper_bounds)[perm])):
        res.note(f"{PP_FIT}: parameter scales or bounds differ from jaxcell's; skipped")
        return None, None
    rtol, atol = _pypesto.solver_tolerances(pp)
    v = float(pp.objective(xn[perm]))
    res.add("boehm nominal", PP_FIT, "nllh at nominal", v, "",
            note=f"AMICI rtol {rtol:g}, atol {atol:g}; differs from jaxcell's by "
                 f"{abs(v - nllh_jaxcell):.2g}")
    if abs(v - nllh_jaxcell) > 1e-4:
        res.note(f"{PP_FIT}: nllh at the nominal point differs from jaxcell's by "
                 f"{abs(v - nllh_jaxcell):.2g} (> 1e-4)")
    return pp, perm


def part_fit(res, args, cfg) -> None:
    n = args.starts or cfg["starts"]
    max_steps = cfg["max_steps"]
    t = time.perf_counter()
    problem = jio.load_petab(BOEHM_YAML, rtol=RTOL, atol=ATOL, forward_mode=True)
    res.add("boehm import", "jaxcell", "import (+ compile)", time.perf_counter() - t, "s",
            note="load_petab (compiles at the first call)")
    obj = ScipyBoehm(problem)
    xn = np.asarray(problem.x_nominal)
    a = float(problem.nllh(xn))
    b = obj.nllh(xn)
    b_ls = obj.nllh_from_residuals(obj.residuals(xn))
    res.add("boehm nominal", "jaxcell", "nllh at nominal", a, "")
    pp, perm = setup_pypesto(res, problem, xn, a)
    res.add("boehm nominal", "scipy", "nllh at nominal", b, "",
            note=f"differs from jaxcell's by {abs(a - b):.2g}")
    if abs(b_ls - b) > 1e-8 * max(1.0, abs(b)):
        res.note(f"scipy: nllh from the residuals ({b_ls:.10g}) differs from the direct "
                 f"sum ({b:.10g})")
    if abs(a - b) > 1e-6:
        res.note(f"scipy: nllh at the nominal point differs from jaxcell's by "
                 f"{abs(a - b):.2g} (> 1e-6): the two solvers' errors at rtol {RTOL:g}")

    lo, hi = np.asarray(problem.lower_bounds), np.asarray(problem.upper_bounds)
    key = jax.random.key(0)
    starts = lo + np.asarray(jax.random.uniform(key, (n, len(lo)))) * (hi - lo)
    print(f"\nBoehm: {n} starts, at most {max_steps} steps each", flush=True)

    runs = {"jaxcell": run_jaxcell(problem, starts, max_steps)}
    print(f"  jaxcell done ({runs['jaxcell']['total']:.1f} s)", flush=True)
    if not args.skip_batch:
        runs["jaxcell batch"] = run_jaxcell(problem, starts, max_steps, batch=True)
        print(f"  jaxcell batch done ({runs['jaxcell batch']['total']:.1f} s)",
              flush=True)
    if pp is not None:
        o = _pypesto.multistart_fides(pp, starts[:, perm], max_steps)
        runs[PP_FIT] = {"values": o["values"], "total": o["wall"],
                        "stamps": list(np.cumsum(np.nan_to_num(o["seconds"]))),
                        "steps": o["evaluations"], "converged": o["converged"]}
        print(f"  {PP_FIT} done ({o['wall']:.1f} s)", flush=True)
    obj.n_eval = 0
    runs["scipy"] = run_scipy(obj, problem, starts, max_steps)
    print(f"  scipy done ({runs['scipy']['total']:.1f} s)", flush=True)
    steps_note = {"jaxcell": "Levenberg-Marquardt steps",
                  "jaxcell batch": "Levenberg-Marquardt steps (all starts in one vmap)",
                  PP_FIT: "fides: objective evaluations (one per iteration + 1)",
                  "scipy": "trf: nfev, trial steps (Jacobian evaluations not counted)"}

    target = min(min(r["values"]) for r in runs.values()) + TOL_BEST
    case = f"boehm {n} starts"
    for tool, run in runs.items():
        v, s, total = np.asarray(run["values"], float), run["stamps"], run["total"]
        hits = int(np.sum(v <= target))
        res.add(case, tool, "total time", total, "s")
        if s is not None:
            ttt = time_to_target(v, s, target)
            note = None
        else:
            ttt = total if hits else None
            note = "batched: no per-start times; total time if any start reached it"
            res.note(f"{tool}: all starts advance together, so 'time to "
                     f"best+{TOL_BEST:g}' is its total time (when any start reached the "
                     f"target) and per-start rows are n/a")
        res.add(case, tool, f"time to best+{TOL_BEST:g}", ttt, "s", note=note)
        res.add(case, tool, f"time per start at best+{TOL_BEST:g}",
                total / hits if hits else None, "s")
        res.add(case, tool, f"fraction at best+{TOL_BEST:g}", hits / len(v), "")
        res.add(case, tool, "best nllh", float(np.min(v)), "")
        if s is not None:
            per = np.diff(np.concatenate([[0.0], s]))
            res.add(case, tool, "median time per start", float(np.median(per)), "s")
        res.add(case, tool, "median iterations per start",
                int(round(float(np.median(run["steps"])))), "count", note=steps_note[tool])
        res.add(case, tool, "fraction converged", float(np.mean(run["converged"])), "",
                note=f"stopped by its own test before {max_steps} iterations")
    if runs["jaxcell"]["stamps"] is not None:
        res.add(case, "jaxcell", "first start (compiles)", runs["jaxcell"]["stamps"][0],
                "s")
    res.add(case, "scipy", "nllh evaluations", obj.n_eval, "count",
            note="solve_ivp calls, finite-difference Jacobians included")
    res.note(f"Boehm target = best nllh over all tools + {TOL_BEST:g} = {target:.6f}")


# -- Part B: NUTS on hare-lynx -------------------------------------------------------------


class CompileSeconds:
    """Wall seconds spent in JAX tracing, lowering and XLA compilation while active
    (JAX's monitoring events; nested spans merged)."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
              "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        self.spans: list[tuple[float, float]] = []
        self.active = False

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if self.active and event in self.EVENTS:
            end = time.perf_counter()
            self.spans.append((end - duration, end))

    def __enter__(self):
        from jax import monitoring

        self.active = True
        monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc):
        self.active = False
        try:
            from jax._src import monitoring as _m

            _m.unregister_event_duration_listener(self._listener)
        except Exception:  # noqa: BLE001 - older jax: the listener stays, inactive
            pass
        return False

    @property
    def seconds(self) -> float:
        total, end = 0.0, -np.inf
        for a, b in sorted(self.spans):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total


def load_example():
    spec = importlib.util.spec_from_file_location("bayes_hare_lynx", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _arviz():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        import arviz
    return arviz


class NumpyHareLynx:
    """The example's posterior in numpy/scipy: the same priors (read from the example's
    numpyro distributions), data and log-normal likelihood; the trajectory from
    ``solve_ivp(LSODA)``. Parameter vector: alpha, beta, gamma, delta, z_init (2),
    sigma (2)."""

    NAMES = RATES + ["z_init[0]", "z_init[1]", "sigma[0]", "sigma[1]"]

    def __init__(self, ex):
        from scipy import stats

        self.ts = np.asarray(ex.TS, float)
        self.y = np.asarray(ex.data(), float)  # (21, 2)
        self.rate_priors = []
        for k in RATES:
            d = ex.PRIORS[k]
            if type(d).__name__ != "LeftTruncatedDistribution":
                raise TypeError(f"prior of {k} is {type(d).__name__}, expected a "
                                f"TruncatedNormal")
            mu, sd, low = (float(d.base_dist.loc), float(d.base_dist.scale), float(d.low))
            self.rate_priors.append(stats.truncnorm((low - mu) / sd, np.inf, loc=mu,
                                                    scale=sd))
        self.lognormal = []
        for k in ("z_init", "sigma"):
            d = ex.PRIORS[k]
            if type(d.base_dist).__name__ != "LogNormal":
                raise TypeError(f"prior of {k} is not a LogNormal")
            mu, sd = (np.broadcast_to(np.asarray(d.base_dist.loc, float), (2,)),
                      np.broadcast_to(np.asarray(d.base_dist.scale, float), (2,)))
            self.lognormal.append((mu, sd))
        self.n_eval = 0

    def log_density(self, th: np.ndarray) -> float:
        """Log prior + log likelihood at natural-scale values ``th`` (as numpyro's
        ``log_density``: no Jacobian)."""
        from scipy.integrate import solve_ivp

        self.n_eval += 1
        th = np.asarray(th, float)
        if np.any(th <= 0) or not np.all(np.isfinite(th)):
            return -np.inf
        a, b, g, d = th[:4]
        z0, sig = th[4:6], th[6:8]
        lp = sum(float(p.logpdf(v)) for p, v in zip(self.rate_priors, th[:4]))
        for (mu, sd), v in zip(self.lognormal, (z0, sig)):
            lv = np.log(v)
            lp += float(np.sum(-lv - np.log(sd) - 0.5 * np.log(2 * np.pi)
                               - 0.5 * ((lv - mu) / sd) ** 2))

        def f(t, z):
            u, v = z
            return [(a - b * v) * u, (-g + d * u) * v]

        sol = solve_ivp(f, (0.0, float(self.ts[-1])), z0, method="LSODA", t_eval=self.ts,
                        rtol=RTOL, atol=ATOL)
        if not sol.success or np.any(sol.y <= 0):
            return -np.inf
        lz = np.log(sol.y.T)  # (21, 2)
        ly = np.log(self.y)
        ll = np.sum(-ly - np.log(sig) - 0.5 * np.log(2 * np.pi)
                    - 0.5 * ((ly - lz) / sig) ** 2)
        out = lp + float(ll)
        return out if np.isfinite(out) else -np.inf

    def neglogpost_log(self, x: np.ndarray) -> float:
        """Negative log posterior of ``x = log(theta)`` (Jacobian included)."""
        v = self.log_density(np.exp(x))
        return float(-(v + np.sum(x))) if np.isfinite(v) else np.inf


def run_nuts(ex, cfg) -> dict:
    from numpyro.infer import MCMC, NUTS, init_to_value

    model, data = ex.build_model(), ex.data()
    kernel = NUTS(model, init_strategy=init_to_value(values=dict(ex.INIT)),
                  target_accept_prob=0.8, max_tree_depth=10, dense_mass=True)
    mcmc = MCMC(kernel, num_warmup=cfg["warmup"], num_samples=cfg["draws"],
                num_chains=cfg["chains"], chain_method="sequential", progress_bar=False)
    kw, ks = jax.random.split(jax.random.key(0))
    with CompileSeconds() as cw:
        t = time.perf_counter()
        mcmc.warmup(kw, data, extra_fields=("diverging",), collect_warmup=False)
        jax.block_until_ready(mcmc.post_warmup_state)
        t_warm = time.perf_counter() - t
    with CompileSeconds() as cs:
        t = time.perf_counter()
        mcmc.run(ks, data, extra_fields=("diverging",))
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        t_run = time.perf_counter() - t
    div = int(np.sum(np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])))
    s = {k: np.asarray(v) for k, v in samples.items()}
    draws = np.concatenate([s[k][..., None] for k in RATES]
                           + [s["z_init"], s["sigma"]], axis=-1)  # (chains, draws, 8)
    return {"draws": draws, "warmup_s": t_warm, "run_s": t_run,
            "compile_in_run_s": cs.seconds, "compile_in_warmup_s": cw.seconds,
            "divergent": div}


def run_am(post: NumpyHareLynx, x0_lin: np.ndarray, cfg) -> dict:
    n = cfg["am_draws"]
    lb = np.log([1e-4, 1e-5, 1e-4, 1e-5, 1e-2, 1e-2, 1e-4, 1e-4])
    ub = np.log([1e1, 1e0, 1e1, 1e0, 1e3, 1e3, 1e1, 1e1])
    x0 = np.log(x0_lin)
    chains, fallback = [], 0
    post.n_eval = 0
    for c in range(cfg["chains"]):
        out = _pypesto.adaptive_metropolis(post.neglogpost_log, lb, ub, post.NAMES, x0,
                                           n, seed=c)
        if out["burn_in"] >= n:
            out["burn_in"], fallback = n // 2, fallback + 1
        chains.append(out)
    keep = min(len(o["trace"]) - o["burn_in"] for o in chains)
    draws = np.stack([np.exp(o["trace"][-keep:]) for o in chains])
    sampling = sum(o["seconds"] * keep / len(o["trace"]) for o in chains)
    total = sum(o["seconds"] for o in chains)
    return {"draws": draws, "sampling_s": sampling, "total_s": total,
            "burn_in": [o["burn_in"] for o in chains], "fallback": fallback,
            "evaluations": post.n_eval, "keep": keep, "n": n}


def ess_min(draws: np.ndarray) -> tuple[float, list[float]]:
    az = _arviz()
    ess = [float(az.ess(draws[:, :, i], method="bulk")) for i in range(len(RATES))]
    return min(ess), ess


def part_nuts(res, args, cfg) -> None:
    from jaxcell.inference import log_density

    ex = load_example()
    post = NumpyHareLynx(ex)
    init = {k: np.asarray(v, float) for k, v in ex.INIT.items()}
    th_init = np.concatenate([[float(init[k]) for k in RATES], init["z_init"],
                              init["sigma"]])
    lj = float(log_density(ex.build_model(), ex.INIT, ex.data()))
    ln = post.log_density(th_init)
    case0 = "hare-lynx check"
    res.add(case0, "jaxcell", "log density at INIT", lj, "",
            note="Tsit5 rtol = atol = 1e-6 (the example's)")
    have_pp = _pypesto.unavailable() is None
    if have_pp:
        res.add(case0, PP_MCMC, "log density at INIT", ln, "",
                note=f"LSODA rtol {RTOL:g}, atol {ATOL:g}; differs by {abs(lj - ln):.2g}")
        if abs(lj - ln) > 1e-3:
            res.note(f"hare-lynx: the numpy log density differs from jaxcell's by "
                     f"{abs(lj - ln):.2g} at INIT (> 1e-3)")
    print(f"\nhare-lynx NUTS: {cfg['chains']} chains x ({cfg['warmup']} warm-up + "
          f"{cfg['draws']} draws)", flush=True)
    nuts = run_nuts(ex, cfg)
    case = f"hare-lynx {cfg['chains']} chains"
    j_min, j_ess = ess_min(nuts["draws"])
    samp = nuts["run_s"] - nuts["compile_in_run_s"]
    warm = nuts["warmup_s"] + nuts["compile_in_run_s"]
    res.add(case, "jaxcell", "draws per chain", cfg["draws"], "count",
            note=f"NUTS, {cfg['warmup']} warm-up steps per chain")
    res.add(case, "jaxcell", "min bulk ESS", j_min, "",
            note="arviz.ess over alpha, beta, gamma, delta")
    res.add(case, "jaxcell", "sampling time", samp, "s",
            note=f"MCMC.run minus its {nuts['compile_in_run_s']:.1f} s of tracing/compile")
    res.add(case, "jaxcell", "warm-up + compile", warm, "s",
            note=f"MCMC.warmup ({nuts['compile_in_warmup_s']:.1f} s of it tracing/"
                 f"compile) + compile in MCMC.run")
    res.add(case, "jaxcell", "ESS/s (sampling)", j_min / samp, "1/s")
    res.add(case, "jaxcell", "ESS/s (end to end)", j_min / (nuts["warmup_s"]
                                                            + nuts["run_s"]), "1/s")
    res.add(case, "jaxcell", "time per 1000 ESS (sampling)", 1000 * samp / j_min, "s")
    res.add(case, "jaxcell", "divergences", nuts["divergent"], "count")
    print(f"  jaxcell done ({nuts['warmup_s'] + nuts['run_s']:.1f} s)", flush=True)

    az = _arviz()
    mean_j = nuts["draws"].reshape(-1, 8).mean(0)
    cm = "hare-lynx posterior mean"
    mcse_j = {}
    for i, k in enumerate(RATES):
        mcse_j[k] = float(az.mcse(nuts["draws"][:, :, i], method="mean"))
        res.add(cm, "jaxcell", k, mean_j[i], "")
    if not have_pp:
        res.note(f"pyPESTO not installed ({_pypesto.unavailable()}): {PP_MCMC} skipped")
        return
    res.note(f"{PP_MCMC}: every chain starts at the jaxcell NUTS posterior mean; "
             f"box bounds on the log scale (alpha, gamma 1e-4..10; beta, delta 1e-5..1; "
             f"z_init 1e-2..1e3; sigma 1e-4..10); "
             f"default AdaptiveMetropolisSampler options")
    print(f"hare-lynx {PP_MCMC}: {cfg['chains']} chains x {cfg['am_draws']} draws",
          flush=True)
    am = run_am(post, mean_j, cfg)
    a_min, a_ess = ess_min(am["draws"])
    res.add(case, PP_MCMC, "draws per chain", am["keep"], "count",
            note=f"of {am['n']}; burn-in {am['burn_in']} (Geweke"
                 + (f"; {am['fallback']} chain(s) with none found: half" if am["fallback"]
                    else "") + ")")
    res.add(case, PP_MCMC, "min bulk ESS", a_min, "")
    res.add(case, PP_MCMC, "sampling time", am["sampling_s"], "s",
            note="the kept draws' share of the chains' wall time")
    res.add(case, PP_MCMC, "warm-up + compile", am["total_s"] - am["sampling_s"], "s",
            note="burn-in")
    res.add(case, PP_MCMC, "ESS/s (sampling)", a_min / am["sampling_s"], "1/s")
    res.add(case, PP_MCMC, "ESS/s (end to end)", a_min / am["total_s"], "1/s")
    res.add(case, PP_MCMC, "time per 1000 ESS (sampling)",
            1000 * am["sampling_s"] / a_min if a_min > 0 else None, "s")
    res.add(case, PP_MCMC, "log density evaluations", am["evaluations"], "count")
    print(f"  {PP_MCMC} done ({am['total_s']:.1f} s)", flush=True)
    mean_a = am["draws"].reshape(-1, 8).mean(0)
    worst, mcse_a = 0.0, {}
    for i, k in enumerate(RATES):
        mcse_a[k] = float(az.mcse(am["draws"][:, :, i], method="mean"))
        z = abs(mean_a[i] - mean_j[i]) / np.hypot(mcse_a[k], mcse_j[k])
        worst = max(worst, z)
        res.add(cm, PP_MCMC, k, mean_a[i], "")
    se = ", ".join(f"{k} {mcse_j[k]:.2g} / {mcse_a[k]:.2g}" for k in RATES)
    res.add(cm, PP_MCMC, "max |diff| / MC s.e.", worst, "",
            note="|mean_AM - mean_NUTS| / sqrt(mcse_AM^2 + mcse_NUTS^2); arviz.mcse "
                 f"NUTS / AM: {se}")
    if worst > 3:
        res.note(f"hare-lynx: posterior means differ by up to {worst:.1f} Monte-Carlo "
                 f"standard errors (> 3)")


# -- main ----------------------------------------------------------------------------------


class _Rows:
    def __init__(self, rows):
        self.rows = rows


def main():
    ap = C.base_parser(__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=None,
                    help="number of fit starts (quick: 10, full: 50)")
    ap.add_argument("--skip-fit", action="store_true", help="skip Part A (Boehm fit)")
    ap.add_argument("--skip-nuts", action="store_true", help="skip Part B (NUTS)")
    ap.add_argument("--skip-batch", action="store_true",
                    help="skip the jaxcell fit(batch=True) run")
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/fit.py", args)
    res.versions["numpyro"] = C._version("numpyro")
    if _pypesto.unavailable() is None:
        res.versions.update(_pypesto.versions())
    print(f"jax {jax.__version__} on {jax.default_backend()}; {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; mode "
          f"{'quick' if args.quick else 'full'}", flush=True)
    if JAXCELL_FIT_KWARGS:
        res.note(f"jaxcell fit keyword arguments: {JAXCELL_FIT_KWARGS}")
    if not args.skip_fit:
        part_fit(res, args, cfg)
    if not args.skip_nuts:
        part_nuts(res, args, cfg)
    print(f"\n==== fit.py results (total {res.elapsed():.0f} s) ====")
    fit_rows = [r for r in res.rows if r["case"].startswith("boehm")]
    nuts_rows = [r for r in res.rows if r["case"].startswith("hare-lynx")]
    if fit_rows:
        C.print_table(_Rows(fit_rows), TOOLS_FIT, title="Part A: Boehm multistart fit")
    if nuts_rows:
        C.print_table(_Rows(nuts_rows), TOOLS_NUTS, title="Part B: hare-lynx MCMC")
    res.finish(args.json)


if __name__ == "__main__":
    main()
