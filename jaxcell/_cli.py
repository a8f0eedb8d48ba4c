"""Command-line interface: ``jaxcell demo`` and ``jaxcell simulate``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from ._progress import stage


def _demo(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from . import analysis, models
    from ._simulate import default_solver, simulate

    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    with stage("Building the default model (repressilator, Elowitz & Leibler 2000)"):
        model = models.repressilator()
    ts = jnp.linspace(0.0, args.t1, args.points)
    with stage("Compiling and simulating (the first call compiles)"):
        t_start = time.perf_counter()
        traj = simulate(model, 0.0, args.t1, saveat=ts)
        jax.block_until_ready(traj.values)
        first = time.perf_counter() - t_start
    t_start = time.perf_counter()
    traj = simulate(model, 0.0, args.t1, saveat=ts)
    jax.block_until_ready(traj.values)
    again = time.perf_counter() - t_start

    t = np.asarray(traj.ts)
    late = t >= 0.5 * args.t1
    print()
    print(f"Repressilator, t in [0, {args.t1:g}] (dimensionless; unit = mRNA lifetime/ln 2)")
    print(f"  solver: {type(default_solver()).__name__}, rtol 1e-6, atol 1e-8, float64; result: "
          f"{'success' if bool(traj.success) else traj.messages()[0]}")
    print(f"  steps: {int(traj.stats['num_accepted_steps'])} accepted, "
          f"{int(traj.stats['num_rejected_steps'])} rejected")
    print(f"  time: first call {first:.2f} s (includes compilation), "
          f"second call {again * 1e3:.1f} ms")
    print(f"  {'species':10s} {'min':>9s} {'max':>9s} {'period':>9s}   (second half)")
    for name in model.species:
        x = np.asarray(traj[name])[late]
        per = analysis.period(t[late], x)
        print(f"  {name:10s} {x.min():9.3f} {x.max():9.3f} {per:9.3f}")
    print("  published period: 43.451 dimensionless units = 125.4 min")

    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for g in ("lacI", "tetR", "cI"):
            ax1.plot(t, np.asarray(traj[f"p_{g}"]), label=f"{g} protein")
            ax2.plot(t, np.asarray(traj[f"m_{g}"]), label=f"{g} mRNA")
        ax1.set_ylabel("protein (dimensionless)")
        ax2.set_ylabel("mRNA (dimensionless)")
        ax2.set_xlabel("time (mRNA lifetimes / ln 2)")
        ax1.legend(loc="upper right")
        ax2.legend(loc="upper right")
        ax1.set_title("Repressilator (Elowitz & Leibler 2000), simulated with jaxcell")
        fig.tight_layout()
        path = os.path.join(out_dir, "repressilator.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(f"\nPlot written to {path}")
    return 0


def _fail(message: str) -> int:
    print(f"jaxcell: error: {message}", file=sys.stderr)
    return 2


def _simulate(args: argparse.Namespace) -> int:
    """Simulate an SBML file and write a CSV (and optionally a PNG plot)."""
    if not os.path.isfile(args.model):
        what = "is not a file" if os.path.exists(args.model) else "does not exist"
        return _fail(f"model file {args.model!r} {what}")
    if not (args.t1 > args.t0 >= 0):
        return _fail(f"need 0 <= --t0 < --t1, got --t0 {args.t0:g} --t1 {args.t1:g}")
    if args.points < 2:
        return _fail(f"--points must be at least 2, got {args.points}")
    if not (args.rtol > 0 and args.atol > 0):
        return _fail(f"--rtol and --atol must be positive, got {args.rtol:g}, {args.atol:g}")

    from ._errors import JaxcellError
    from .io import load_sbml, simulate_sbml

    try:
        with stage(f"Reading {args.model}"):
            model = load_sbml(args.model)
        ts = np.linspace(args.t0, args.t1, args.points)
        # SBML time starts at 0: simulate from 0 and drop the extra first row.
        skip = 1 if args.t0 > 0 else 0
        with stage("Compiling and simulating (the first call compiles)"):
            sol = simulate_sbml(model, np.concatenate([[0.0], ts]) if skip else ts,
                                rtol=args.rtol, atol=args.atol, max_steps=args.max_steps)
    except (JaxcellError, OSError) as e:
        return _fail(str(e))
    columns = {k: np.asarray(v)[skip:] for k, v in sol.to_columns().items()}
    names = ["time"] + _reported_ids(model, columns)
    table = np.column_stack([columns[k].reshape(len(ts)) for k in names])
    failed = not bool(np.all(np.asarray(sol.success)))
    try:
        if args.out == "-":
            _write_csv(sys.stdout, names, table)
        else:
            with open(args.out, "w", newline="") as f:
                _write_csv(f, names, table)
        if args.plot:
            _plot(args.plot, names, table, os.path.basename(args.model))
    except OSError as e:
        return _fail(f"cannot write output: {e}")
    if failed:
        msgs = "; ".join(str(m) for m in sol.messages()) or "solver failure"
        print(f"jaxcell: simulation failed: {msgs} (rows after the failure are not valid)",
              file=sys.stderr)
        return 1
    if args.out != "-":
        print(f"{len(names) - 1} columns x {len(ts)} times written to {args.out}",
              file=sys.stderr)
    return 0


def _reported_ids(model, columns) -> list[str]:
    """Every species, then the non-constant parameters and compartments (document order)."""
    symbols = [s for s in model.structure.ir.symbols if s.id in columns]
    species = [s.id for s in symbols if s.kind == "species"]
    varying = [s.id for s in symbols
               if s.kind in ("parameter", "compartment") and not s.constant]
    return species + varying


def _write_csv(stream, names: list[str], table: np.ndarray) -> None:
    import csv

    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    for row in table:
        writer.writerow([repr(float(x)) for x in row])


def _plot(path: str, names: list[str], table: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for j, name in enumerate(names[1:], start=1):
        ax.plot(table[:, 0], table[:, j], label=name)
    ax.set_xlabel("time")
    ax.set_ylabel("value (concentration unless hasOnlySubstanceUnits)")
    ax.set_title(title)
    if len(names) <= 21:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"Plot written to {path}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcell", description="Differentiable multi-scale biological simulation."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="simulate the built-in default model and plot it")
    demo.add_argument("--out", default="demo-output", help="folder for the plot")
    demo.add_argument("--t1", type=float, default=500.0, help="end time")
    demo.add_argument("--points", type=int, default=2001, help="number of saved times")
    demo.add_argument("--no-plot", action="store_true", help="skip the PNG")
    demo.set_defaults(func=_demo)

    sim = sub.add_parser(
        "simulate", help="simulate an SBML model and write a CSV",
        description="Simulate an SBML file. The CSV has a column 'time', then every "
                    "species (concentration, or amount for species with "
                    "hasOnlySubstanceUnits, as SBML reports them), then the non-constant "
                    "parameters and compartments.")
    sim.add_argument("model", help="SBML file (.xml)")
    sim.add_argument("--t0", type=float, default=0.0, help="first output time (default 0)")
    sim.add_argument("--t1", type=float, required=True, help="last output time")
    sim.add_argument("--points", type=int, default=200,
                     help="number of output times from t0 to t1 (default 200)")
    sim.add_argument("--out", default="-", help="CSV file to write ('-': stdout, default)")
    sim.add_argument("--plot", metavar="PNG", help="also plot every column to this file")
    sim.add_argument("--rtol", type=float, default=1e-8, help="relative tolerance (1e-8)")
    sim.add_argument("--atol", type=float, default=1e-10, help="absolute tolerance (1e-10)")
    sim.add_argument("--max-steps", type=int, default=100_000,
                     help="maximum number of solver steps (100000)")
    sim.set_defaults(func=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxcell`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "demo" and (args.t1 <= 0 or args.points < 2):
        print("jaxcell: --t1 must be positive and --points at least 2", file=sys.stderr)
        return 2
    return int(args.func(args))
