#!/usr/bin/env python
"""Evaluate every PEtab problem in a folder with ``jaxcell.petab.load_petab``.

    python benchmarks/petab_suite.py --problems ../shared/data/petab \\
        --json bench-results/petab_suite.json [--only A,B]

Layout: one subfolder per problem holding one PEtab (v1) YAML file at its top level
(subfolders without one are skipped with a note). Per problem: the log-likelihood at the
nominal parameters (priors excluded) and, where ``DIR/reference_llh.csv`` (columns
``problem``, ``llh_at_nominal``) lists the problem, the absolute difference. Status:
``ok`` (``|diff| <= 1e-3``, or no reference and a finite value), ``mismatch``,
``unsupported`` (``jaxcell.petab.PetabUnsupportedError`` / ``SBMLUnsupportedError``, with
the feature) or ``error`` (anything else, with the message). ``time_s``: load + first
``nllh`` (trace, compile, run). Rows: case = problem, tool = jaxcell, metrics ``llh``,
``abs_diff``, ``status``, ``time_s``. A measurement tool: the exit code is 0 whatever
the problems do, and 2 for bad command-line usage.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

import jaxcell.io as jio  # noqa: E402

TOL = 1e-3


def discover(folder: Path) -> tuple[list[tuple[str, Path | None, str]], list[str]]:
    """``(name, yaml or None, problem)`` per subfolder, and notes on skipped folders."""
    found, notes = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        yamls = sorted(sub.glob("*.yaml")) + sorted(sub.glob("*.yml"))
        if not yamls:
            notes.append(f"{sub.name}: no YAML file, skipped")
        elif len(yamls) > 1:
            found.append((sub.name, None, f"several YAML files: {[y.name for y in yamls]}"))
        else:
            found.append((sub.name, yamls[0], ""))
    return found, notes


def references(folder: Path) -> dict[str, float]:
    path = folder / "reference_llh.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {r["problem"].strip(): float(r["llh_at_nominal"]) for r in csv.DictReader(f)}


def evaluate(yaml: Path, ref: float | None) -> dict:
    t0 = time.perf_counter()
    try:
        problem = jio.load_petab(yaml)
        llh = -float(problem.nllh(problem.x_nominal))
    except (jio.PetabUnsupportedError, jio.SBMLUnsupportedError) as e:
        return {"status": "unsupported", "detail": f"{e.feature}: {e}",
                "time_s": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001 - a measurement tool reports every failure
        return {"status": "error", "detail": f"{type(e).__name__}: {e}"[:500],
                "time_s": time.perf_counter() - t0}
    secs = time.perf_counter() - t0
    diff = abs(llh - ref) if ref is not None else None
    if not math.isfinite(llh):
        status = "mismatch" if ref is not None else "error"
    elif diff is None:
        status = "ok"
    else:
        status = "ok" if diff <= TOL else "mismatch"
    return {"status": status, "llh": llh, "abs_diff": diff, "time_s": secs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", required=True, metavar="DIR",
                    help="folder with one subfolder per PEtab problem")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument("--only", metavar="NAMES", help="comma-separated problem names")
    args = ap.parse_args(argv)
    folder = Path(args.problems)
    if not folder.is_dir():
        ap.error(f"--problems: {folder} is not a folder")
    found, notes = discover(folder)
    if args.only:
        keep = set(args.only.split(","))
        found = [f for f in found if f[0] in keep]
    if not found:
        ap.error(f"no PEtab problems found in {folder}")
    refs = references(folder)

    res = C.Results("benchmarks/petab_suite.py", args)
    for n in notes:
        res.note(n)
    if not refs:
        res.note(f"no reference_llh.csv in {folder}: status ok means a finite llh")
    table = []
    for name, yaml, problem in found:
        ref = refs.get(name)
        r = evaluate(yaml, ref) if yaml is not None else {
            "status": "error", "detail": problem, "time_s": 0.0}
        detail = r.get("detail")
        res.add(name, "jaxcell", "llh", r.get("llh"), "", echo=False)
        if ref is not None:
            res.add(name, "jaxcell", "reference_llh", ref, "", echo=False)
        res.add(name, "jaxcell", "abs_diff", r.get("abs_diff"), "", echo=False)
        res.add(name, "jaxcell", "status", r["status"], "", note=detail, echo=False)
        res.add(name, "jaxcell", "time_s", r["time_s"], "s", echo=False)
        table.append((name, ref, r))
        print(f"{name}: {r['status']}{f' ({detail})' if detail else ''}", flush=True)

    w = max(len("problem"), *(len(t[0]) for t in table))
    head = (f"{'problem':<{w}}  {'reference':>14}  {'ours':>14}  {'difference':>10}  "
            f"{'status':<11}  {'time':>8}")
    print("\n" + head)
    print("-" * len(head))

    def num(v, spec):
        return format(v, spec) if v is not None else "-"

    for name, ref, r in table:
        print(f"{name:<{w}}  {num(ref, '14.6f'):>14}  {num(r.get('llh'), '14.6f'):>14}  "
              f"{num(r.get('abs_diff'), '10.2e'):>10}  {r['status']:<11}  "
              f"{C.fmt(r['time_s'], 's'):>8}")
    for name, _, r in table:
        if r.get("detail"):
            print(f"  {name}: {r['detail']}")
    counts = {s: sum(r["status"] == s for _, _, r in table)
              for s in ("ok", "mismatch", "unsupported", "error")}
    print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    res.finish(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
