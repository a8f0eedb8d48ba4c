"""Command-line interface: ``jaxcell demo`` (the French flag by default, or the
repressilator), ``jaxcell simulate``, ``jaxcell fit`` (PEtab multistart) and
``jaxcell run`` (SED-ML and COMBINE archives, ``_cli_run.py``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from ._cli_fit import fit_command as _fit
from ._cli_run import add_run_parser as _add_run_parser
from ._progress import stage

_DEMO_DEFAULTS = {"french-flag": (30.0, 121), "repressilator": (500.0, 2001)}


def _demo(args: argparse.Namespace) -> int:
    if args.model == "repressilator":
        return _demo_repressilator(args)
    return _demo_french_flag(args)


def _timed_simulate(model, t1: float, ts):
    """Simulate twice: the trajectory, the first call's time (with compilation) and the
    second call's."""
    import jax

    from ._simulate import simulate

    with stage("Compiling and simulating (the first call compiles)"):
        t_start = time.perf_counter()
        traj = simulate(model, 0.0, t1, saveat=ts)
        jax.block_until_ready(traj.values)
        first = time.perf_counter() - t_start
    t_start = time.perf_counter()
    traj = simulate(model, 0.0, t1, saveat=ts)
    jax.block_until_ready(traj.values)
    return traj, first, time.perf_counter() - t_start


def _demo_french_flag(args: argparse.Namespace) -> int:
    """The default demo: Wolpert's French flag (REFERENCE-MODELS T6)."""
    import diffrax
    import jax
    import jax.numpy as jnp

    from . import models
    from ._simulate import default_solver, simulate

    n_cells, lam, c0, thresholds, cell = 100, 20.0, 1.0, (0.5, 0.1), 30
    kind = "bistable switch" if args.bistable else "Hill"
    os.makedirs(args.out, exist_ok=True)
    with stage(f"Building the default model (French flag, Wolpert 1969: {n_cells} cells, "
               f"{kind} readouts)"):
        model = models.french_flag(n_cells, lam, c0, *thresholds, bistable=args.bistable)
    ts = jnp.linspace(0.0, args.t1, args.points)
    traj, first, again = _timed_simulate(model, args.t1, ts)

    genes = np.asarray(traj["cellular/flag/genes"])        # (times, cells, 2)
    field = np.asarray(traj["tissue/morphogen/concentration"])
    x = np.asarray(models.flag_boundaries(genes[-1]))
    L = float(n_cells)
    print()
    print(f"French flag: {n_cells} cells, morphogen decay length {lam:g} cells, "
          f"c0 = {c0:g}, thresholds T1 = {thresholds[0]:g}, T2 = {thresholds[1]:g}; "
          f"{kind} readouts; t in [0, {args.t1:g}] morphogen lifetimes")
    print(f"  solver: {type(default_solver()).__name__}, rtol 1e-6, atol 1e-8, float64; "
          f"{3 * n_cells} states; result: "
          f"{'success' if bool(traj.success) else traj.messages()[0]}")
    print(f"  steps: {int(traj.stats['num_accepted_steps'])} accepted, "
          f"{int(traj.stats['num_rejected_steps'])} rejected")
    print(f"  time: first call {first:.2f} s (includes compilation), "
          f"second call {again * 1e3:.1f} ms")
    print(f"  {'':10s} {'simulated':>10s} {'lam ln(c0/T)':>13s} {'finite tissue':>14s}")
    for j, T in enumerate(thresholds):
        ideal = lam * np.log(c0 / T)
        finite = L - lam * np.arccosh(T / c0 * np.cosh(L / lam))
        print(f"  boundary{j + 1} {x[j]:10.2f} {ideal:13.2f} {finite:14.2f}")
    print("  (T6: 13.86 and 46.05 cells; the finite tissue's cosh profile bends the far "
          "one outwards)")

    if not args.bistable:
        # The gradient across scales: how the tissue pattern moves with the source.
        def boundaries(log_c0):
            m = models.french_flag(n_cells, lam, jnp.exp(log_c0), *thresholds)
            tr = simulate(m, 0.0, args.t1, saveat=[args.t1],
                          adjoint=diffrax.ForwardMode())
            return models.flag_boundaries(tr["cellular/flag/genes"][-1])

        with stage("Differentiating the boundaries with respect to ln c0 (forward mode)"):
            _, dx = jax.jvp(boundaries, (jnp.log(c0),), (1.0,))
        dx = np.asarray(dx)
        print(f"  d(boundary)/d ln c0: {dx[0]:.3f}, {dx[1]:.3f} cells "
              f"(theory: lam coth((L - x)/lam) = "
              f"{lam / np.tanh((L - x[0]) / lam):.3f}, {lam / np.tanh((L - x[1]) / lam):.3f})")

    if not args.no_plot:
        paths = _plot_french_flag(args.out, np.asarray(traj.ts), genes, field,
                                  thresholds, x, cell, args.bistable, c0, lam)
        print()
        for path in paths:
            print(f"Plot written to {path}")
    return 0


_FLAG_COLOURS = np.array([[0.0, 0.333, 0.643], [1.0, 1.0, 1.0], [0.937, 0.255, 0.208]])


def _fates(genes: np.ndarray) -> np.ndarray:
    """0 (blue: readout 1 on), 1 (white: only readout 2 on) or 2 (red: both off)."""
    on = genes > 0.5
    return np.where(on[..., 0], 0, np.where(on[..., 1], 1, 2))


def _plot_french_flag(out_dir, t, genes, field, thresholds, x, cell, bistable, c0, lam):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cells = field.shape[1]
    centres = np.arange(n_cells) + 0.5
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(9, 7.5), sharex=True,
        gridspec_kw={"height_ratios": [2.2, 0.5, 2.2]})
    ax1.semilogy(centres, field[-1], "k-", lw=2, label="morphogen c(x), final")
    ax1.semilogy(centres, c0 * np.exp(-centres / lam), ":", color="0.4",
                 label=rf"$c_0 e^{{-x/\lambda}}$, $\lambda$ = {lam:g}")
    for j, (T, colour) in enumerate(zip(thresholds, ("tab:blue", "tab:red"))):
        ax1.axhline(T, color=colour, ls="--", lw=1, label=f"T{j + 1} = {T:g}")
        for ax in (ax1, ax3):
            ax.axvline(x[j], color=colour, lw=1)
    ax1.set_ylabel("morphogen concentration")
    ax1.set_ylim(field[-1].min() / 2, 2.0 * field[-1].max())
    ax1.legend(loc="upper right", fontsize="small")
    readout = "bistable switch" if bistable else "Hill"
    ax1.set_title(f"French flag (Wolpert 1969): {n_cells} cells, {readout} readouts; "
                  f"boundaries at {x[0]:.2f} and {x[1]:.2f}")
    ax2.imshow(_FLAG_COLOURS[_fates(genes[-1])][None], aspect="auto",
               extent=(0, n_cells, 0, 1))
    for edge in range(1, n_cells):
        ax2.axvline(edge, color="0.6", lw=0.3)
    ax2.set_yticks([])
    ax2.set_ylabel("fate", rotation=0, ha="right", va="center")
    ax3.imshow(_FLAG_COLOURS[_fates(genes)], aspect="auto", origin="lower",
               extent=(0, n_cells, t[0], t[-1]), interpolation="nearest")
    ax3.set_ylabel("time (morphogen lifetimes)")
    ax3.set_xlabel("position x (cell widths from the source)")
    fig.tight_layout()
    pattern = os.path.join(out_dir, "french_flag.png")
    fig.savefig(pattern, dpi=120)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(t, field[:, cell], "k-", lw=2, label="morphogen c")
    for j, (T, colour) in enumerate(zip(thresholds, ("tab:blue", "tab:red"))):
        ax1.axhline(T, color=colour, ls="--", lw=1, label=f"threshold T{j + 1} = {T:g}")
    ax1.set_ylabel("morphogen concentration")
    ax1.legend(loc="center right", fontsize="small")
    ax1.set_title(f"Cell {cell} (centre x = {cell + 0.5:g}): morphogen and readouts")
    ax2.plot(t, genes[:, cell, 0], color="tab:blue", label="readout 1 (A1, threshold T1)")
    ax2.plot(t, genes[:, cell, 1], color="tab:red", label="readout 2 (A2, threshold T2)")
    ax2.axhline(0.5, color="0.5", ls=":", lw=1, label="half level (on/off)")
    ax2.set_xlabel("time (morphogen lifetimes)")
    ax2.set_ylabel("readout level")
    ax2.legend(loc="center right", fontsize="small")
    fig.tight_layout()
    trajectory = os.path.join(out_dir, f"french_flag_cell{cell}.png")
    fig.savefig(trajectory, dpi=120)
    plt.close(fig)
    return [pattern, trajectory]


def _demo_repressilator(args: argparse.Namespace) -> int:
    import jax.numpy as jnp

    from . import analysis, models
    from ._simulate import default_solver

    out_dir = args.out
    os.makedirs(out_dir, exist_ok=True)
    with stage("Building the repressilator (Elowitz & Leibler 2000)"):
        model = models.repressilator()
    ts = jnp.linspace(0.0, args.t1, args.points)
    traj, first, again = _timed_simulate(model, args.t1, ts)
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


_DEBUG = False  # --debug: full tracebacks (set by main)


def _fail(message: str) -> int:
    """One line on stderr (exit status 2); with ``--debug``, the traceback of the
    exception being handled first."""
    if _DEBUG and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    print(f"jaxcell: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


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

    if args.stochastic:
        from ._cli_stochastic import simulate_stochastic_cli

        return simulate_stochastic_cli(args, _fail)

    from ._errors import JaxcellError
    from .sbml import load_sbml, simulate_sbml

    try:
        with stage(f"Reading {args.model}"):
            model = load_sbml(args.model)
        ts = np.linspace(args.t0, args.t1, args.points)
        # SBML time starts at 0: simulate from 0 and drop the extra first row.
        skip = 1 if args.t0 > 0 else 0
        with stage("Compiling and simulating (the first call compiles)"):
            sol = simulate_sbml(model, np.concatenate([[0.0], ts]) if skip else ts,
                                rtol=args.rtol, atol=args.atol, max_steps=args.max_steps,
                                throw=False)
    except (JaxcellError, OSError) as e:
        return _report(e)  # 2, or 1 for a simulation that failed
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
    parser.add_argument("--debug", action="store_true",
                        help="show the full Python traceback of an error (before the "
                             "command: jaxcell --debug fit ...)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="simulate a built-in model (the French flag) and plot it",
        description="Simulate a built-in model, print a summary and write PNG plots. The "
                    "default is Wolpert's French flag: a morphogen gradient along a row "
                    "of 100 cells, read by a gene circuit in every cell.")
    demo.add_argument("--model", choices=sorted(_DEMO_DEFAULTS), default="french-flag",
                      help="which model (default: french-flag)")
    demo.add_argument("--out", default="demo-output", help="folder for the plots")
    demo.add_argument("--t1", type=float, default=None,
                      help="end time (default: 30 for the French flag, 100 with "
                           "--bistable, 500 for the repressilator)")
    demo.add_argument("--points", type=int, default=None,
                      help="number of saved times (default: 121, 201 or 2001)")
    demo.add_argument("--bistable", action="store_true",
                      help="French flag: bistable switch readouts (they remember)")
    demo.add_argument("--no-plot", action="store_true", help="skip the PNGs")
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
    sim.add_argument("--stochastic", choices=("ssa", "tau", "cle"),
                     help="sample paths instead (SBML's stochastic reading: amounts): "
                          "exact SSA, tau-leaping or the chemical Langevin equation; the "
                          "CSV then has <id>-mean and <id>-sd columns")
    sim.add_argument("--trajectories", type=int, default=1000,
                     help="number of sample paths with --stochastic (1000)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (0)")
    sim.add_argument("--dt", type=float, default=0.01, help="CLE step (0.01)")
    sim.add_argument("--paths", type=int, default=5,
                     help="sample paths to plot or write with --paths-out (5)")
    sim.add_argument("--paths-out", metavar="CSV",
                     help="with --stochastic: write the first --paths paths here")
    sim.set_defaults(func=_simulate)

    fitp = sub.add_parser(
        "fit", help="fit a PEtab problem by multistart local optimisation",
        description="Fit a PEtab problem (v1, v2 or PEtab SciML with neural networks): "
                    "local optimisations (Levenberg-Marquardt for normal noise, else BFGS, "
                    "L-BFGS above 200 parameters) from starts uniform within the bounds "
                    "on the parameter scale. Prints a summary and writes DIR/fit.json, "
                    "DIR/model_fitted.xml (the SBML model with the fitted values) and one "
                    "PNG per observable (measurements and fit per condition).")
    fitp.add_argument("problem", help="PEtab YAML file")
    fitp.add_argument("--starts", type=int, default=20, help="number of starts (20)")
    fitp.add_argument("--seed", type=int, default=0, help="seed of the starts (0)")
    fitp.add_argument("--out", default="fit-output", help="output folder (fit-output)")
    fitp.add_argument("--max-steps", type=int, default=300,
                      help="maximum iterations per start (300)")
    fitp.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    mode = fitp.add_mutually_exclusive_group()
    mode.add_argument("--forward-mode", dest="mode", action="store_const", const="forward",
                      help="differentiate the simulations in forward mode (the default "
                           "for problems without networks: few parameters, "
                           "Levenberg-Marquardt's Jacobian)")
    mode.add_argument("--reverse-mode", dest="mode", action="store_const", const="reverse",
                      help="differentiate in reverse mode (the default for PEtab SciML "
                           "problems: many network weights)")
    fitp.set_defaults(func=_fit)
    _add_run_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxcell`` command.

    Exit status: 0 success; 1 a simulation or fit ran but failed
    (:class:`SimulationError`); 2 usage or input errors (argparse, a missing or
    unreadable file, any other :class:`JaxcellError`); 3 an unexpected internal error
    (a bug: please report it with the ``--debug`` traceback); 130 interrupted (Ctrl-C).
    Every error is one line on stderr, ``jaxcell: error: <message>``; ``--debug``
    prints the traceback first.
    """
    global _DEBUG
    args = build_parser().parse_args(argv)
    _DEBUG = bool(args.debug)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        if _DEBUG:
            raise
        print("jaxcell: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the command line reports every error in one line
        return _report(e)


def _report(e: Exception) -> int:
    """Print ``e`` as one line on stderr; the exit status (see :func:`main`)."""
    from ._errors import CheckpointError, JaxcellError, SimulationError

    if _DEBUG:
        import traceback

        traceback.print_exc()
    if isinstance(e, SimulationError) and not isinstance(e, CheckpointError):
        code = 1
    elif isinstance(e, (JaxcellError, OSError)):
        code = 2
    else:
        code = 3
    if isinstance(e, OSError) and e.filename is not None:
        message = f"{e.filename}: {e.strerror or e}"
    elif code == 3:
        message = (f"internal error: {type(e).__name__}: {e} (run 'jaxcell --debug ...' "
                   "for the traceback, and please report it)")
    else:
        message = str(e) or type(e).__name__
    print(f"jaxcell: error: {_one_line(message)}", file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        t1, points = _DEMO_DEFAULTS[args.model]
        if args.model == "french-flag" and args.bistable:
            t1, points = 100.0, 201  # switching near a threshold is slow (saddle-node)
        args.t1 = t1 if args.t1 is None else args.t1
        args.points = points if args.points is None else args.points
    if args.command == "demo" and (args.t1 <= 0 or args.points < 2):
        print("jaxcell: --t1 must be positive and --points at least 2", file=sys.stderr)
        return 2
    return int(args.func(args))
