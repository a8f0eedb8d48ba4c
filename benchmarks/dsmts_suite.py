"""Run the DSMTS stochastic test cases through jaxcell's stochastic simulators.

    python benchmarks/dsmts_suite.py --cases ../shared/data/dsmts --json OUT \\
        [--trajectories N] [--method ssa|tau|cle] [--dt DT] [--only 00001,00030] \\
        [--seed S]

Each case: the model (the first SBML file jaxcell reads, highest Level first), ``N``
trajectories (default 10,000) compiled once and ``vmap``-ped, every listed variable
checked at every output time by the suite's Z and Y statistics; the case-level rule (a
binomial tail bound on the count of out-of-range points) is in ``_dsmts_lib.py``.
Status ``pass``, ``fail``, ``unsupported`` (an SBML feature named) or ``error``. A
measurement tool: exit code 0 whatever the cases do, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import _dsmts_lib as lib


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", required=True, metavar="DIR",
                    help="folder with cases/NNNNN/ (or the NNNNN folders themselves)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument("--trajectories", type=int, default=10_000, metavar="N")
    ap.add_argument("--method", choices=("ssa", "tau", "cle"), default="ssa")
    ap.add_argument("--dt", type=float, default=0.01, help="CLE step (default 0.01)")
    ap.add_argument("--epsilon", type=float, default=0.03,
                    help="tau-leaping's error control (default 0.03, the paper's)")
    ap.add_argument("--only", metavar="IDS", help="comma-separated case ids")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="1,000 trajectories (the suite's minimum)")
    return ap


def method_of(name: str, dt: float, epsilon: float = 0.03):
    import jaxcell as jc

    return {"ssa": lambda: jc.SSA(), "tau": lambda: jc.TauLeaping(epsilon=epsilon),
            "cle": lambda: jc.CLE(dt=dt)}[name]()


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.trajectories < 2:
        ap.error("--trajectories must be at least 2")
    try:
        cases = lib.discover(args.cases)
    except FileNotFoundError as e:
        ap.error(str(e))
    if args.only:
        wanted = {c.strip() for c in args.only.split(",")}
        cases = [c for c in cases if c.name in wanted]
    n = 1000 if args.quick else args.trajectories
    method = method_of(args.method, args.dt, args.epsilon)
    results = {}
    t0 = time.perf_counter()
    print(f"{'case':>6} {'status':>11} {'Z out':>6} {'Y out':>6} {'points':>6} "
          f"{'max|Z|':>7} {'max|Y|':>7} {'s':>6}  note")
    for folder in cases:
        r = lib.run_case(folder, method, n=n, seed=args.seed)
        results[r.case] = r
        note = r.feature or r.message or ""
        print(f"{r.case:>6} {r.status:>11} {r.z_out:>6} {r.y_out:>6} {r.points:>6} "
              f"{r.max_abs_z:>7.2f} {r.max_abs_y:>7.2f} {r.seconds:>6.1f}  {note[:60]}",
              flush=True)
    counts = Counter(r.status for r in results.values())
    total = time.perf_counter() - t0
    print(f"\n{len(results)} cases, method {args.method}, {n} trajectories: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" ({total:.0f} s)")
    print(f"case rule: at most {lib.allowed_out(51)} of 51 points out of range for Z and "
          f"for Y (binomial tail >= {lib.ALPHA} at p = {lib.P_POINT})")
    if args.json:
        import jax

        out = {"method": args.method, "trajectories": n, "seed": args.seed,
               "dt": args.dt if args.method == "cle" else None,
               "epsilon": args.epsilon if args.method == "tau" else None,
               "rule": {"p_point": lib.P_POINT, "alpha": lib.ALPHA},
               "versions": {"jax": jax.__version__},
               "cases": {k: v.as_json() for k, v in results.items()}}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
