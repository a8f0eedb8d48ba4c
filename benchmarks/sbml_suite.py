"""Run the SBML Test Suite semantic cases through ``jaxcell.io`` and count what passes.

    python benchmarks/sbml_suite.py --cases ../shared/data/sbml-test-suite \\
        --json bench-results/sbml_suite.json [--jobs N] [--only 00001,00002] \\
        [--groups core,events] [--timeout S] [--quick]

Each case: the model at its highest SBML Level/Version, simulated at the settings' output
times, every listed variable compared at every time by the suite's rule
``|expected - actual| <= absolute + relative * |expected|``. Status ``pass``, ``fail``
(wrong numbers), ``unsupported`` (``jaxcell.sbml.SBMLUnsupportedError``) or ``error``
(anything else: other SBML errors, solver failures, timeouts, crashes). Cases run in
spawned worker processes, one at a time each. A measurement tool: the exit code is 0
whatever the cases do, and 2 for bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _sbml_suite_lib as lib


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", required=True, metavar="DIR",
                    help="suite folder (DIR/cases/NNNNN/, DIR/cases.tsv) or the folder "
                         "holding the NNNNN folders")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="worker processes (default: number of CPUs)")
    ap.add_argument("--only", metavar="IDS", help="comma-separated case ids")
    ap.add_argument("--groups", metavar="NAMES", help="comma-separated groups")
    ap.add_argument("--timeout", type=float, default=120.0, metavar="S",
                    help="per-case time limit in seconds, compile included (default 120)")
    ap.add_argument("--quick", action="store_true",
                    help="every 4th case of each group (a stratified quarter)")
    ap.add_argument("--quiet", action="store_true", help="no line per case")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    if args.timeout <= 0:
        ap.error("--timeout must be positive")
    try:
        cases = lib.discover(args.cases)
    except FileNotFoundError as e:
        ap.error(str(e))
    cases = lib.select(cases, only=args.only.split(",") if args.only else None,
                       groups=args.groups.split(",") if args.groups else None,
                       every=4 if args.quick else 1)
    if not cases:
        ap.error("no cases selected")

    t0 = time.perf_counter()
    print(f"{len(cases)} cases, {args.jobs} workers, timeout {args.timeout:g} s",
          flush=True)

    def progress(r: dict[str, Any], done: int, total: int) -> None:
        if args.quiet:
            return
        secs = r.get("seconds")
        secs = f"{secs:6.1f} s" if isinstance(secs, int | float) else "     - s"
        detail = "" if r["status"] == "pass" else f"  {r.get('detail', '')[:240]}"
        print(f"[{done:>4}/{total}] {r['case']} {r['group']:<13} {r['status']:<11} "
              f"{secs}{detail}", flush=True)

    results = lib.run_parallel(cases, jobs=args.jobs, timeout=args.timeout,
                               progress=progress)
    wall = time.perf_counter() - t0

    print("\n" + lib.format_table(results))
    feats = lib.unsupported_features(results)
    if feats:
        print("\nunsupported features (cases):")
        for f, n in feats:
            print(f"  {n:>5}  {f}")
    shortfalls = lib.target_shortfalls(results)
    print(f"\ntargets: {'met' if not shortfalls else f'{len(shortfalls)} shortfall(s)'}"
          f"; wall {wall:.0f} s")

    if args.json:
        _write_json(args, results, wall)
    return 0


def _write_json(args: argparse.Namespace, results: list[dict[str, Any]],
                wall: float) -> None:
    import _common  # imports jax: only here, the parent needs it for nothing else

    rows = []
    counts = lib.group_counts(results)
    total = sum(counts.values(), Counter())
    for g, c in [*counts.items(), ("overall", total)]:
        rows.append({"case": g, "tool": "jaxcell", "metric": "pass_fraction",
                     "value": round(lib.pass_fraction(c), 6), "unit": "1"})
        for s in (*lib.STATUSES, "total"):
            rows.append({"case": g, "tool": "jaxcell", "metric": s, "value": c[s],
                         "unit": "count"})
    doc = {
        "script": "benchmarks/sbml_suite.py",
        "mode": "quick" if args.quick else "full",
        "argv": sys.argv[1:],
        "total_wall_s": round(wall, 1),
        "machine": _common.machine_info(),
        "versions": _common.versions(),
        "suite": str(Path(args.cases).resolve()),
        "timeout_s": args.timeout,
        "jobs": args.jobs,
        "targets": lib.TARGETS,
        "unsupported_features": dict(lib.unsupported_features(results)),
        "rows": rows,
        "cases": {r["case"]: {k: v for k, v in r.items() if k != "case"} for r in results},
    }
    text = json.dumps(doc, indent=1, allow_nan=False)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
