"""Time to fit Boehm et al. (2014) by multistart: jaxcell vs scipy.

jaxcell: ``fit(load_petab(boehm.yaml), starts=...)`` (Levenberg–Marquardt on the PEtab
likelihood written as a sum of squares, reverse-mode Jacobians through the solves).
scipy: ``minimize(method="L-BFGS-B")`` within the PEtab bounds, with forward-difference
gradients of the same negative log-likelihood computed from a ``solve_ivp(LSODA)``
simulation of the hand-written Boehm right-hand side (``_models.boehm_numpy_rhs``).
Both objectives are checked to agree at the nominal point first. Both tools start from
the same points (uniform within the PEtab bounds on the parameter scale).

Rows: total time for N starts, time until the best-so-far first reaches
(best over both tools + 1e-3), the best nllh, and the number of starts at the best.
The first jaxcell start includes compilation (reported separately).

Usage: ``python benchmarks/fit.py [--quick] [--json PATH] [--starts N]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _models  # noqa: E402

import jaxcell.io as jio  # noqa: E402
from jaxcell.inference import fit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOEHM_YAML = (REPO / "tests" / "data" / "petab" / "Boehm_JProteomeRes2014"
              / "Boehm_JProteomeRes2014.yaml")
TOOLS = ["jaxcell", "scipy"]
RTOL, ATOL = 1e-8, 1e-10


class ScipyBoehm:
    """The Boehm PEtab nllh with ``solve_ivp`` (numpy only)."""

    def __init__(self, problem):
        self.ids = problem.parameter_ids
        self.scales = problem.parameter_scales
        nominal = _models.petab_nominal(_models.BOEHM_DIR)
        self.ratio, self.spec = nominal["ratio"], nominal["specC17"]
        obs = problem._observables
        self.ts = np.unique(np.concatenate([o["t"] for o in obs]))
        self.data = {o["id"]: (np.searchsorted(self.ts, o["t"]), np.asarray(o["y"]))
                     for o in obs}
        self.n_eval = 0

    def linear(self, x):
        return {k: (10.0 ** v if s == "log10" else np.exp(v) if s == "log" else v)
                for k, s, v in zip(self.ids, self.scales, x)}

    def nllh(self, x) -> float:
        from scipy.integrate import solve_ivp

        self.n_eval += 1
        p = self.linear(x)
        f = _models.boehm_numpy_rhs(p)
        x0 = np.array([207.6 * self.ratio, 207.6 * (1 - self.ratio), 0, 0, 0, 0, 0, 0])
        sol = solve_ivp(f, (0.0, float(self.ts[-1])), x0, method="LSODA", t_eval=self.ts,
                        rtol=RTOL, atol=ATOL)
        if not sol.success:
            return np.inf
        A, B, pApB, pApA, pBpB = sol.y[:5]
        s = self.spec
        h = {
            "pSTAT5A_rel": (100 * pApB + 200 * pApA * s) / (pApB + A * s + 2 * pApA * s),
            "pSTAT5B_rel": -(100 * pApB - 200 * pBpB * (s - 1))
            / ((B * (s - 1) - pApB) + 2 * pBpB * (s - 1)),
            "rSTAT5A_rel": (100 * pApB + 100 * A * s + 200 * pApA * s)
            / (2 * pApB + A * s + 2 * pApA * s - B * (s - 1) - 2 * pBpB * (s - 1)),
        }
        total = 0.0
        for oid, (ix, y) in self.data.items():
            sigma = p[f"sd_{oid}"]
            r = (y - h[oid][ix]) / sigma
            total += np.sum(0.5 * np.log(2 * np.pi * sigma**2) + 0.5 * r**2)
        return float(total) if np.isfinite(total) else np.inf


def run_jaxcell(problem, starts, max_steps):
    t0 = time.perf_counter()
    stamps = []

    import logging

    class H(logging.Handler):
        def emit(self, record):
            stamps.append(time.perf_counter() - t0)

    log = logging.getLogger("jaxcell.inference")
    h = H()
    log.addHandler(h)
    log.setLevel(logging.INFO)
    try:
        result = fit(problem, starts=starts, max_steps=max_steps)
    finally:
        log.removeHandler(h)
    return [s.value for s in result.starts], stamps


def run_scipy(obj, problem, starts, max_steps):
    from scipy.optimize import minimize

    bounds = list(zip(problem.lower_bounds, problem.upper_bounds))
    t0 = time.perf_counter()
    values, stamps = [], []
    for x in starts:
        r = minimize(obj.nllh, x, method="L-BFGS-B", bounds=bounds,
                     options={"maxiter": max_steps})
        values.append(float(r.fun))
        stamps.append(time.perf_counter() - t0)
    return values, stamps


def time_to_best(values, stamps, target):
    best = np.minimum.accumulate(np.asarray(values))
    hit = np.nonzero(best <= target)[0]
    return float(stamps[hit[0]]) if hit.size else None


def main():
    ap = C.base_parser(__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=None,
                    help="number of starts (quick: 2, full: 20)")
    args = ap.parse_args()
    n = args.starts or (2 if args.quick else 20)
    max_steps = 100 if args.quick else 300
    res = C.Results("benchmarks/fit.py", args)
    print(f"jax {jax.__version__} on {jax.default_backend()}; {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; mode "
          f"{'quick' if args.quick else 'full'}; {n} starts")
    problem = jio.load_petab(BOEHM_YAML, rtol=RTOL, atol=ATOL, forward_mode=True)
    obj = ScipyBoehm(problem)
    xn = np.asarray(problem.x_nominal)
    a, b = float(problem.nllh(xn)), obj.nllh(xn)
    res.add("boehm nominal", "jaxcell", "nllh at nominal", a, "")
    res.add("boehm nominal", "scipy", "nllh at nominal", b, "")
    if abs(a - b) > 1e-6:
        res.note(f"nllh at the nominal point differs by {abs(a - b):.2g} (> 1e-6): the "
                 f"two solvers' errors at rtol {RTOL:g}")
    key = jax.random.key(0)
    lo, hi = problem.lower_bounds, problem.upper_bounds
    starts = lo + np.asarray(jax.random.uniform(key, (n, len(lo)))) * (hi - lo)

    jv, js = run_jaxcell(problem, starts, max_steps)
    obj.n_eval = 0
    sv, ss = run_scipy(obj, problem, starts, max_steps)
    target = min(min(jv), min(sv)) + 1e-3
    case = f"boehm {n} starts"
    for tool, v, s in (("jaxcell", jv, js), ("scipy", sv, ss)):
        res.add(case, tool, "total time", s[-1], "s")
        res.add(case, tool, "time to best+1e-3", time_to_best(v, s, target), "s")
        res.add(case, tool, "best nllh", min(v), "")
        res.add(case, tool, "starts at best+1e-3", int(sum(x <= target for x in v)), "")
    res.add(case, "jaxcell", "first start (compiles)", js[0], "s")
    res.add(case, "scipy", "nllh evaluations", obj.n_eval, "")
    res.note("NUTS effective samples/s on hare-lynx: not measured "
             "(jaxcell.inference._bayes was still being written)")
    print(f"\n==== fit.py results (total {res.elapsed():.0f} s) ====")
    C.print_table(res, TOOLS)
    res.finish(args.json)


if __name__ == "__main__":
    main()
