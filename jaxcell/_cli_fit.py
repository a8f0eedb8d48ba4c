"""``jaxcell fit problem.yaml``: a multistart fit of a PEtab problem (v1, v2 or PEtab
SciML) with progress lines, a summary, ``fit.json``, the trained networks and plots."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ._progress import stage


def _fail(message: str) -> int:
    from ._cli import _fail as fail  # one line, or the traceback with --debug

    return fail(message)


def fit_command(args: argparse.Namespace) -> int:
    """Multistart fit of a PEtab problem: progress, summary, fit.json and plots."""
    if not os.path.isfile(args.problem):
        what = "is not a file" if os.path.exists(args.problem) else "does not exist"
        return _fail(f"PEtab problem file {args.problem!r} {what}")
    if args.starts < 1 or args.max_steps < 1:
        return _fail(f"--starts and --max-steps must be at least 1, got {args.starts}, "
                     f"{args.max_steps}")
    import json

    import jax

    from ._errors import JaxcellError
    from .inference import fit
    from .petab import load_petab, petab_objective

    try:
        with stage(f"Reading {args.problem}"):
            problem = load_petab(args.problem, forward_mode=args.mode != "reverse")
            if args.mode is None and getattr(problem, "sciml", None) is not None:
                problem = load_petab(args.problem, forward_mode=False)
    except (JaxcellError, OSError) as e:
        return _fail(str(e))
    objective = petab_objective(problem)
    print(f"{problem!r}: {args.starts} starts uniform within the bounds (seed {args.seed}),"
          f" {'Levenberg-Marquardt (bounded)' if objective.is_least_squares else 'BFGS'};"
          f" the first start compiles", flush=True)
    t_start = time.perf_counter()

    def progress(i, step, value):
        if step % 50 == 0:
            print(f"  start {i + 1}: step {step}, nllh {value:.6g}", flush=True)

    import logging

    class _Done(logging.Handler):
        def emit(self, record):
            print(f"  {record.getMessage()[5:]}  [{time.perf_counter() - t_start:.1f} s]",
                  flush=True)

    log = logging.getLogger("jaxcell.inference")
    handler, level = _Done(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        result = fit(objective, starts=args.starts, key=jax.random.key(args.seed),
                     max_steps=args.max_steps, callback=progress)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    elapsed = time.perf_counter() - t_start
    at_best = sum(s.value <= result.value + 1e-3 for s in result.starts)
    print()
    print(f"best nllh {result.value:.6f}; {result.n_converged}/{args.starts} starts "
          f"converged; {at_best}/{args.starts} ({at_best / args.starts:.0%}) within 1e-3 "
          f"of the best; {elapsed:.1f} s")
    lo, hi = objective.parameters.bounds
    print(f"  {'parameter':24s} {'scale':6s} {'value':>12s} {'lower':>10s} {'upper':>10s}")
    lin = {"lin": lambda v: v, "log": np.exp, "log10": lambda v: 10.0 ** v}
    n_mech = len(getattr(problem, "mechanistic_ids", problem.parameter_ids))
    for j, (name, sc) in enumerate(zip(problem.parameter_ids[:n_mech],
                                       problem.parameter_scales)):
        print(f"  {name:24s} {sc:6s} {result.values[name]:12.6g} {lin[sc](lo[j]):10.3g} "
              f"{lin[sc](hi[j]):10.3g}")
    if getattr(problem, "sciml", None) is not None:
        from .neural import network_arrays, write_network_arrays

        nets = problem.networks(result.x)
        for nid, net in nets.items():
            arrays = network_arrays(net)
            size = sum(int(np.size(a)) for a in arrays.values())
            norm = float(np.sqrt(sum(float(np.sum(np.asarray(a) ** 2))
                                     for a in arrays.values())))
            print(f"  network {nid}: {size} weights, |w| = {norm:.4g}")
    try:
        os.makedirs(args.out, exist_ok=True)
        out = {
            "problem": os.path.abspath(args.problem), "seed": args.seed,
            "nllh": result.value, "converged": result.converged,
            "parameters": {k: float(v) for k, v in result.values.items()},
            "x": [float(v) for v in result.x],
            "parameter_scales": list(problem.parameter_scales),
            "n_at_best": at_best, "seconds": elapsed,
            "starts": [{"x0": [float(v) for v in s.x0], "x": [float(v) for v in s.x],
                        "nllh": float(s.value), "converged": s.converged,
                        "steps": s.steps} for s in result.starts],
        }
        with open(os.path.join(args.out, "fit.json"), "w") as f:
            json.dump(out, f, indent=1)
        if getattr(problem, "sciml", None) is not None:
            # the trained networks in the PEtab SciML array format (PyTorch layout)
            write_network_arrays(os.path.join(args.out, "networks_fitted.hdf5"),
                                 {nid: network_arrays(net) for nid, net in nets.items()})
        if getattr(problem, "sciml", None) is None and hasattr(problem, "fitted_model"):
            # the model with the fitted values, as SBML for other tools
            from .sbml import export_sbml

            export_sbml(problem.fitted_model(result.x),
                        os.path.join(args.out, "model_fitted.xml"))
        if not args.no_plot:
            plot_fit(args.out, problem, objective, result.x)
    except OSError as e:
        return _fail(f"cannot write output: {e}")
    print(f"fit.json, model_fitted.xml and plots written to {args.out}")
    return 0


def plot_fit(out_dir: str, problem, objective, x) -> None:
    """One PNG per observable, one panel per condition: measurements and the fit."""
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, _ = problem._predictions(jnp.asarray(x))
    curves = problem.observable_curves(x)
    for o, y, _, sigma in groups:
        conds = sorted(set(int(c) for c in o["cond"]))
        fig, axes = plt.subplots(1, len(conds), figsize=(4.5 * len(conds), 3.5),
                                 squeeze=False)
        for ax, ci in zip(axes[0], conds):
            sel = np.asarray(o["cond"]) == ci
            t = np.asarray(o["t"])[sel]
            sig = np.broadcast_to(np.asarray(sigma), np.shape(y))[sel]
            if o["trans"] == "lin":  # sigma is in the units of the data
                ax.errorbar(t, np.asarray(y)[sel], yerr=sig, fmt="o", ms=4, capsize=2,
                            label="measured ± σ")
            else:
                ax.plot(t, np.asarray(y)[sel], "o", ms=4, label="measured")
            tf, hf = curves[o["id"]][ci]
            ax.plot(tf, hf, "-", label="fit")
            pre, sim = problem.conditions[ci]
            ax.set_title(sim if pre is None else f"{pre} -> {sim}", fontsize="small")
            ax.set_xlabel("time")
        axes[0][0].set_ylabel(o["id"])
        axes[0][0].legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, f"fit_{o['id']}.png"), dpi=100)
        plt.close(fig)
