"""Command-line interface: ``jaxcell demo``."""

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxcell`` command."""
    args = build_parser().parse_args(argv)
    if getattr(args, "t1", 1.0) <= 0 or getattr(args, "points", 2) < 2:
        print("jaxcell: --t1 must be positive and --points at least 2", file=sys.stderr)
        return 2
    return int(args.func(args))
