"""``jaxcell simulate model.xml --stochastic ssa``: many sample paths of an SBML model,
written as means and standard deviations (and a few paths) per time."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ._progress import stage


def simulate_stochastic_cli(args: argparse.Namespace, fail) -> int:
    if args.trajectories < 2:
        return fail(f"--trajectories must be at least 2, got {args.trajectories}")
    if args.paths < 0:
        return fail(f"--paths must be non-negative, got {args.paths}")
    import jax

    from . import CLE, SSA, TauLeaping
    from ._errors import JaxcellError
    from ._simulate import simulate
    from .sbml import load_sbml

    if args.stochastic == "cle" and not args.dt > 0:
        return fail(f"--dt must be positive for --stochastic cle, got {args.dt:g}")
    method = {"ssa": SSA, "tau": TauLeaping}.get(args.stochastic)
    method = CLE(dt=args.dt) if method is None else method()
    try:
        with stage(f"Reading {args.model}"):
            model = load_sbml(args.model)
        ts = np.linspace(args.t0, args.t1, args.points)

        def one(key):
            tr = simulate(model, 0.0, args.t1, saveat=ts, stochastic=method, key=key,
                          throw=False)
            return tr.values[model.scale][model.name]["state"], tr.result._value

        run = jax.jit(jax.vmap(one))
        keys = jax.random.split(jax.random.key(args.seed), args.trajectories)
        with stage(f"Compiling and sampling {args.trajectories} paths "
                   f"({args.stochastic})"):
            states, codes = run(keys)
            states, codes = np.asarray(states), np.asarray(codes)
    except (JaxcellError, OSError) as e:
        return fail(str(e))
    ids = list(model.state_ids)
    mean, sd = states.mean(axis=0), states.std(axis=0, ddof=1)
    names = ["time"] + [f"{i}-{s}" for i in ids for s in ("mean", "sd")]
    cols = [ts] + [c for j in range(len(ids)) for c in (mean[:, j], sd[:, j])]
    table = np.column_stack(cols)
    from ._cli import _write_csv

    try:
        if args.out == "-":
            _write_csv(sys.stdout, names, table)
        else:
            with open(args.out, "w", newline="") as f:
                _write_csv(f, names, table)
        k = min(args.paths, args.trajectories)
        if args.paths_out and k:
            rows = np.concatenate([np.column_stack([np.full(len(ts), p), ts, states[p]])
                                   for p in range(k)])
            with open(args.paths_out, "w", newline="") as f:
                _write_csv(f, ["path", "time"] + ids, rows)
        if args.plot:
            _plot(args.plot, ts, ids, mean, sd, states[:k], args.model, args.stochastic,
                  args.trajectories)
    except OSError as e:
        return fail(f"cannot write output: {e}")
    failed = int(np.sum(codes != 0))
    if failed:
        from ._results import RESULTS

        first = RESULTS._index_to_message[int(codes[codes != 0][0])]  # noqa: SLF001
        print(f"jaxcell: {failed} of {args.trajectories} paths failed: {first}",
              file=sys.stderr)
        return 1
    if args.out != "-":
        print(f"means and SDs of {len(ids)} variables x {len(ts)} times "
              f"({args.trajectories} paths) written to {args.out}", file=sys.stderr)
    return 0


def _plot(path, ts, ids, mean, sd, sample, model, method, n) -> None:
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for j, name in enumerate(ids[:10]):
        (line,) = ax.plot(ts, mean[:, j], label=f"{name} mean ± SD")
        ax.fill_between(ts, mean[:, j] - sd[:, j], mean[:, j] + sd[:, j],
                        color=line.get_color(), alpha=0.15)
        for p in sample:
            ax.step(ts, p[:, j], where="post", color=line.get_color(), lw=0.6, alpha=0.6)
    ax.set_xlabel("time")
    ax.set_ylabel("amount (molecules)")
    ax.set_title(f"{os.path.basename(model)}: {method}, {n} paths")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"Plot written to {path}", file=sys.stderr)
