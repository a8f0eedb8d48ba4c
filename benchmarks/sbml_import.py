#!/usr/bin/env python
"""SBML import: time to first result on the PEtab benchmark models, and scaling with size.

Part 1, PEtab models (Benchmarking-Initiative/Benchmark-Models-PEtab, in
``../shared/data/petab``; the copy of Bertozzi_PNAS2020 in ``tests/data/petab`` when the
collection is absent). Nominal parameters from the PEtab parameters table (ids that are
global SBML parameters), default condition, 50 output times from 0 to the largest
measurement time, rtol 1e-8, atol 1e-12, float64. Per model:

* jaxcell: ``jaxcell.sbml.load_sbml`` (import: libsbml parse + validation + jaxcell's
  structure), the first ``jaxcell.sbml.simulate_sbml`` (trace + XLA compile + run),
  their sum (time to first result), the run time (median of later calls), compile time
  (first minus run), XLA compilations in a second call with new parameter values
  (should be 0);
* libRoadRunner 2.x: ``RoadRunner(path)`` (parse + LLVM JIT) + setting the parameters,
  the first ``simulate``, their sum, and the median of ``reset()`` + ``simulate``;
* agreement: max over times and variables of ``|a - rr| / max(|rr|, 1e-7)``.

Part 2, scaling: random bounded mass-action networks (``_sbml.random_mass_action_sbml``)
with 10, 20, 40, 80 and 160 reactions (about half as many species), t in [0, 10], 50
output times, rtol 1e-6, atol 1e-8. Per size: import time, first simulate, run (median),
compile (first minus run) and RoadRunner load time; then the exponent ``b`` of a
least-squares fit ``time = a N^b`` for import and compile time (b <= 1: no worse than
linear in the number of reactions).

Run ``python benchmarks/sbml_import.py --quick --json bench-results/sbml_import.json``.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _sbml  # noqa: E402

import jaxcell as jc  # noqa: E402
import jaxcell.io as jio  # noqa: E402

try:
    import roadrunner
except ImportError:  # pragma: no cover - optional dependency
    roadrunner = None

REPO = Path(__file__).resolve().parents[1]
SHARED_PETAB = REPO.parent / "shared" / "data" / "petab"
SHIPPED_PETAB = REPO / "tests" / "data" / "petab"
SHIPPED_T1 = {"Bertozzi_PNAS2020": 10.0}  # largest measurement time of the problem
PETAB_RTOL, PETAB_ATOL, FLOOR = 1e-8, 1e-12, 1e-7
SCALE_RTOL, SCALE_ATOL, SCALE_T1 = 1e-6, 1e-8, 10.0
N_POINTS = 50


def settings(quick: bool) -> dict:
    if quick:
        return dict(repeats=3, min_s=0.3, max_s=10.0, rr_repeats=5)
    return dict(repeats=10, min_s=2.0, max_s=60.0, rr_repeats=20)


# -- PEtab problems --------------------------------------------------------------------------


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def petab_problems(names: list[str] | None) -> tuple[list[tuple[str, Path, dict, float]], str]:
    """(name, sbml path, nominal parameter values, end time) per problem, and a note."""
    out = []
    if SHARED_PETAB.is_dir():
        folders = sorted(p for p in SHARED_PETAB.iterdir() if p.is_dir())
        source = f"PEtab problems from {SHARED_PETAB}"
        for folder in folders:
            if names and folder.name not in names:
                continue
            sbml = sorted(folder.glob("*.xml"))
            params = sorted(folder.glob("parameters*.tsv"))
            meas = sorted(folder.glob("measurement*.tsv"))
            if len(sbml) != 1 or len(params) != 1 or len(meas) != 1:
                continue
            t1 = max(float(r["time"]) for r in _tsv(meas[0]) if math.isfinite(float(r["time"])))
            nominal = {r["parameterId"]: float(r["nominalValue"]) for r in _tsv(params[0])}
            out.append((folder.name, sbml[0], nominal, t1))
    else:
        source = f"{SHARED_PETAB} not found: only the copy in {SHIPPED_PETAB}"
        for name, t1 in SHIPPED_T1.items():
            folder = SHIPPED_PETAB / name
            nominal = {r["parameterId"]: float(r["nominalValue"])
                       for r in _tsv(folder / "parameters.tsv")}
            out.append((name, folder / "model.xml", nominal, t1))
    return out, source


def sbml_facts(path: Path | str) -> tuple[set[str], list[tuple[str, str]]]:
    """Global parameter ids, and (id, RR selection) of species and non-constant
    parameters/compartments."""
    lib = _sbml.libsbml
    doc = lib.readSBMLFromFile(str(path))
    model = doc.getModel()
    compared = [(s.getId(), s.getId() if s.getHasOnlySubstanceUnits() else f"[{s.getId()}]")
                for s in model.getListOfSpecies()]
    compared += [(x.getId(), x.getId()) for x in
                 list(model.getListOfParameters()) + list(model.getListOfCompartments())
                 if not x.getConstant()]
    return {p.getId() for p in model.getListOfParameters()}, compared


def jaxcell_simulate(model, ts, rtol, atol):
    sol = jio.simulate_sbml(model, ts, rtol=rtol, atol=atol, max_steps=1_000_000)
    ids = list(model.output_ids)
    _ = np.asarray(sol.value(ids[0])) if ids else None  # make sure the result is there
    return sol


def rr_new(path_or_text: str, values: dict[str, float], rtol: float, atol: float):
    rr = roadrunner.RoadRunner(path_or_text)
    rr.setIntegrator("cvode")
    integ = rr.getIntegrator()
    integ.relative_tolerance = rtol
    integ.absolute_tolerance = atol
    integ.maximum_num_steps = 1_000_000
    for k, v in values.items():  # initial values, so that resetAll() re-evaluates
        rr[f"init({k})"] = v     # every initial assignment (parameters' too)
    rr.resetAll()
    return rr


def bench_petab(name: str, path: Path, nominal: dict, t1: float, res: C.Results,
                cfg: dict) -> None:
    print(f"\n--- {name} ---", flush=True)
    params, compared = sbml_facts(path)
    values = {k: v for k, v in nominal.items() if k in params}
    ts = np.linspace(0.0, t1, N_POINTS)

    t_import, model = C.timed(lambda: jio.load_sbml(path))
    model = model.replace_parameters(values)
    res.add(name, "jaxcell", "states", len(model.state_ids), "count", echo=False)
    with jc.count_compilations() as n_first:
        t_first, sol = C.timed(lambda: jaxcell_simulate(model, ts, PETAB_RTOL, PETAB_ATOL))
    if not bool(np.all(np.asarray(sol.success))):
        res.note(f"{name}: jaxcell simulation failed: {sol.messages()}")
    res.add(name, "jaxcell", "import", t_import, "s")
    res.add(name, "jaxcell", "first simulate", t_first, "s")
    res.add(name, "jaxcell", "time to first result", t_import + t_first, "s")
    times = C.repeat(lambda: jaxcell_simulate(model, ts, PETAB_RTOL, PETAB_ATOL),
                     cfg["repeats"], cfg["min_s"], 100, max_total=cfg["max_s"])
    run = C.median(times)
    res.add(name, "jaxcell", "run (median)", run, "s", note=f"{len(times)} calls")
    res.add(name, "jaxcell", "compile (first - run)", t_first - run, "s")
    res.add(name, "jaxcell", "XLA compilations, first", n_first(), "count")
    other = model.replace_parameters({k: 1.1 * v for k, v in values.items()})
    with jc.count_compilations() as n_again:
        jaxcell_simulate(other, ts, PETAB_RTOL, PETAB_ATOL)
    res.add(name, "jaxcell", "XLA compilations, new params", n_again(), "count")
    if n_again():
        res.note(f"{name}: simulate_sbml recompiled for new parameter values")

    if roadrunner is None:
        return
    sel = [s for _, s in compared]
    t_load, rr = C.timed(lambda: rr_new(str(path), values, PETAB_RTOL, PETAB_ATOL))
    t_rr_first, ref = C.timed(lambda: rr.simulate(times=list(ts), selections=sel))
    res.add(name, "roadrunner", "import", t_load, "s")
    res.add(name, "roadrunner", "first simulate", t_rr_first, "s")
    res.add(name, "roadrunner", "time to first result", t_load + t_rr_first, "s")

    def rr_run():
        rr.reset()
        return rr.simulate(times=list(ts), selections=sel)

    rtimes = C.repeat(rr_run, cfg["rr_repeats"], cfg["min_s"], 1000, max_total=cfg["max_s"])
    res.add(name, "roadrunner", "run (median)", C.median(rtimes), "s",
            note=f"{len(rtimes)} calls")
    ours = np.stack([np.asarray(sol.value(i), dtype=float) for i, _ in compared], axis=1)
    ref = np.asarray(ref, dtype=float)
    err = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), FLOOR)))
    res.add(name, "jaxcell", "max rel diff vs roadrunner", err, "rel")


# -- scaling ---------------------------------------------------------------------------------


def bench_size(n: int, res: C.Results, cfg: dict, tmp: Path) -> None:
    case = f"random {n} reactions"
    print(f"\n--- {case} ---", flush=True)
    text = _sbml.random_mass_action_sbml(n)
    path = tmp / f"random{n}.xml"
    path.write_text(text)
    ts = np.linspace(0.0, SCALE_T1, N_POINTS)
    t_import, model = C.timed(lambda: jio.load_sbml(path))
    with jc.count_compilations() as n_comp:
        t_first, sol = C.timed(lambda: jaxcell_simulate(model, ts, SCALE_RTOL, SCALE_ATOL))
    if not bool(np.all(np.asarray(sol.success))):
        res.note(f"{case}: jaxcell simulation failed: {sol.messages()}")
    times = C.repeat(lambda: jaxcell_simulate(model, ts, SCALE_RTOL, SCALE_ATOL),
                     cfg["repeats"], cfg["min_s"], 100, max_total=cfg["max_s"])
    run = C.median(times)
    res.add(case, "jaxcell", "reactions", n, "count", echo=False)
    res.add(case, "jaxcell", "species", len(model.species_ids), "count", echo=False)
    res.add(case, "jaxcell", "import", t_import, "s")
    res.add(case, "jaxcell", "first simulate", t_first, "s")
    res.add(case, "jaxcell", "run (median)", run, "s", note=f"{len(times)} calls")
    res.add(case, "jaxcell", "compile (first - run)", t_first - run, "s")
    res.add(case, "jaxcell", "XLA compilations, first", n_comp(), "count")
    if roadrunner is not None:
        t_load, rr = C.timed(lambda: rr_new(str(path), {}, SCALE_RTOL, SCALE_ATOL))
        t_rr, _ = C.timed(lambda: rr.simulate(0.0, SCALE_T1, N_POINTS))
        res.add(case, "roadrunner", "import", t_load, "s")
        res.add(case, "roadrunner", "first simulate", t_rr, "s")


def fitted_exponent(ns: list[int], ys: list[float]) -> float | None:
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys) if y and y > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,20,40,80,160",
                    help="numbers of reactions of the random networks")
    ap.add_argument("--models", default="",
                    help="comma-separated PEtab problem names (default: all)")
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/sbml_import.py", args)
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    if roadrunner is None:
        res.note("libroadrunner is not installed: roadrunner rows are skipped")
    else:
        roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)

    # Warm up jax/diffrax/jaxcell.io once on a tiny model, so that per-model times do not
    # include the one-off cost of the first solve in the process.
    t = time.perf_counter()
    warm = jio.load_sbml(_sbml.random_mass_action_sbml(6, seed=99))
    jaxcell_simulate(warm, np.linspace(0.0, 1.0, 3), 1e-6, 1e-8)
    res.add("warm-up (6 reactions)", "jaxcell", "time to first result",
            time.perf_counter() - t, "s", note="first solve in the process")

    problems, source = petab_problems([m for m in args.models.split(",") if m])
    res.note(source)
    for name, path, nominal, t1 in problems:
        bench_petab(name, path, nominal, t1, res, cfg)

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            bench_size(n, res, cfg, Path(tmp))

    def values(metric: str, tool: str = "jaxcell") -> list[float]:
        out = []
        for n in sizes:
            out += [r["value"] for r in res.rows if r["case"] == f"random {n} reactions"
                    and r["metric"] == metric and r["tool"] == tool]
        return out

    exponents = {}
    for metric, tool in (("import", "jaxcell"), ("compile (first - run)", "jaxcell"),
                         ("first simulate", "jaxcell"), ("run (median)", "jaxcell"),
                         ("import", "roadrunner")):
        ys = values(metric, tool)
        if len(ys) == len(sizes):
            b = fitted_exponent(sizes, ys)
            exponents[(metric, tool)] = b
            res.add(f"exponent b, time ~ N^b ({min(sizes)}-{max(sizes)})", tool, metric, b,
                    "ratio")
    b = exponents.get(("compile (first - run)", "jaxcell"))
    if b is not None and b > 1.2:
        res.note(f"compile time grows faster than linearly with the number of reactions "
                 f"(exponent {b:.2f})")

    print(f"\n== sbml_import.py results (total {res.elapsed():.0f} s) ==")
    petab_cases = {p[0] for p in problems} | {"warm-up (6 reactions)"}
    petab_rows = SimpleNamespace(rows=[r for r in res.rows if r["case"] in petab_cases])
    C.print_table(petab_rows, ["jaxcell", "roadrunner"],
                  title="PEtab models (default condition; ratio < 1: jaxcell faster)")
    scale_rows = SimpleNamespace(rows=[r for r in res.rows if r["case"] not in petab_cases])
    C.print_table(scale_rows, ["jaxcell", "roadrunner"], title="Scaling with network size")
    res.finish(args.json)


if __name__ == "__main__":
    main()
