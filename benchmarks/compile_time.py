#!/usr/bin/env python
"""Compile time and run time of jc.simulate (and of its gradient) vs network size.

Random mass-action networks (seed 0) with 10, 100 and 1,000 reactions and about
reactions/2 species: one degradation reaction per species, constant sources into about a
tenth of the species, and random uni- and bimolecular reactions (A -> B, A <-> B,
A + B -> C, A + B <-> C, A + B -> C + D). Degradation constants are chosen so the system
stays bounded: each species degrades at 0.5 plus the sum of the dissociation constants
of the reversible associations that make it, so d(sum x)/dt <= sources - 0.5 sum x.
The repressilator (6 species) and the Kholodenko MAPK cascade (8 species) are the
~10-species reference models.

For each network, over t in [0, 10] with 50 output times (rtol 1e-6, atol 1e-8):

* ``jc.simulate``: first call, run time (median of later calls) and compile time (first
  call minus median); XLA compilations counted with ``jc.count_compilations``;
* the same solve inside a user ``jax.jit``, compiled ahead of time, to split the compile
  time into tracing (Python), lowering (StableHLO) and XLA compilation;
* ``jax.grad`` of a least-squares loss w.r.t. all parameters: trace/lower/XLA compile
  and the median time per gradient.

Run ``python benchmarks/compile_time.py --quick --json bench-results/compile_time.json``.
"""

from __future__ import annotations

import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _models  # noqa: E402

import jaxcell as jc  # noqa: E402

T1, N_POINTS, SEED = 10.0, 50, 0
TOOL = "jaxcell"


def random_network(n_reactions: int, seed: int = SEED) -> jc.ReactionNetwork:
    """A random, bounded mass-action network with exactly ``n_reactions`` reactions."""
    rng = np.random.default_rng(seed + n_reactions)
    n_s = max(3, n_reactions // 2)
    species = {f"S{i}": float(v) for i, v in enumerate(rng.uniform(0.0, 1.0, n_s))}
    names = list(species)
    n_src = max(1, n_s // 10)
    n_rand = n_reactions - n_s - n_src
    if n_rand < 1:
        raise ValueError("too few reactions for the number of species")
    params: dict[str, float] = {}
    reactions: list[jc.Reaction] = []
    dissociation = np.zeros(n_s)

    def k(name: str) -> str:
        params[name] = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
        return name

    kinds = rng.choice(["uni", "uni_rev", "bi", "bi_rev", "exchange"], size=n_rand,
                       p=[0.25, 0.2, 0.2, 0.2, 0.15])
    for j, kind in enumerate(kinds):
        rname = f"r{j}"
        if kind in ("uni", "uni_rev"):
            a, b = rng.choice(n_s, 2, replace=False)
            law = jc.MassAction(k(f"k{j}"), k(f"kr{j}") if kind == "uni_rev" else None)
            reactions.append(jc.Reaction(rname, names[a], names[b], law))
        elif kind in ("bi", "bi_rev"):
            a, b, c = rng.choice(n_s, 3, replace=False)
            law = jc.MassAction(k(f"k{j}"), k(f"kr{j}") if kind == "bi_rev" else None)
            if kind == "bi_rev":
                dissociation[c] += params[f"kr{j}"]
            reactions.append(jc.Reaction(rname, f"{names[a]} + {names[b]}", names[c], law))
        else:
            a, b, c, d = rng.choice(n_s, 4, replace=False)
            reactions.append(jc.Reaction(rname, f"{names[a]} + {names[b]}",
                                         f"{names[c]} + {names[d]}",
                                         jc.MassAction(k(f"k{j}"))))
    for i in rng.choice(n_s, n_src, replace=False):
        params[f"src{i}"] = 1.0
        reactions.append(jc.Reaction(f"source_{i}", "", names[i], jc.MassAction(f"src{i}")))
    for i, s in enumerate(names):
        params[f"deg{i}"] = 0.5 + float(dissociation[i])
        reactions.append(jc.Reaction(f"degradation_{i}", s, "", jc.MassAction(f"deg{i}")))
    assert len(reactions) == n_reactions
    return jc.ReactionNetwork(f"random{n_reactions}", species, reactions, params)


def settings(quick: bool) -> dict:
    if quick:
        return dict(repeats=3, min_s=0.5, grad_repeats=3, max_s=20.0)
    return dict(repeats=10, min_s=3.0, grad_repeats=5, max_s=120.0)


def aot(fn, *args) -> tuple[dict[str, float], object]:
    """Trace, lower and compile ``fn`` ahead of time; seconds spent in each stage."""
    t = time.perf_counter()
    traced = fn.trace(*args)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    return {"trace": t1 - t, "lower": t2 - t1, "xla": t3 - t2, "total": t3 - t}, compiled


def bench_network(case: str, net: jc.ReactionNetwork, res: C.Results, cfg: dict) -> None:
    ts = jnp.linspace(0.0, T1, N_POINTS)
    path = f"{net.scale}/{net.name}/species"
    n_s, n_r, n_p = len(net.species), len(net.reaction_names), int(net.p.size)
    print(f"\n--- {case}: {n_s} species, {n_r} reactions, {n_p} parameters ---", flush=True)
    res.add(case, TOOL, "species", n_s, "count", echo=False)
    res.add(case, TOOL, "reactions", n_r, "count", echo=False)
    res.add(case, TOOL, "parameters", n_p, "count", echo=False)

    def call():
        return jc.simulate(net, 0.0, T1, saveat=ts)

    with jc.count_compilations() as n_comp:
        t_first, traj = C.timed(call)
    if not bool(traj.success):
        res.note(f"{case}: simulation failed: {traj.messages()}")
    times = C.repeat(call, cfg["repeats"], cfg["min_s"], 100, max_total=cfg["max_s"])
    run = C.median(times)
    res.add(case, TOOL, "first call", t_first, "s")
    res.add(case, TOOL, "run (median)", run, "s", note=f"{len(times)} calls")
    res.add(case, TOOL, "compile (first - run)", t_first - run, "s")
    res.add(case, TOOL, "XLA compilations", n_comp(), "count")
    res.add(case, TOOL, "steps", int(traj.stats["num_steps"]), "count")

    def sim(p):
        model = eqx.tree_at(lambda m: m.p, net, p)
        return jc.simulate(model, 0.0, T1, saveat=ts, throw=False)[path]

    p0 = jnp.asarray(net.p)
    st, _ = aot(jax.jit(sim), p0)
    res.add(case, TOOL, "sim trace", st["trace"], "s")
    res.add(case, TOOL, "sim lower", st["lower"], "s")
    res.add(case, TOOL, "sim XLA compile", st["xla"], "s")

    # gradient of a least-squares loss at perturbed parameters, w.r.t. all parameters
    y_nom = np.asarray(traj[path])
    rng = np.random.default_rng(SEED)
    p_star = p0 * jnp.exp(0.1 * rng.standard_normal(n_p))

    def loss(p):
        return jnp.sum((sim(p) - y_nom) ** 2)

    gt, gc = aot(jax.jit(jax.grad(loss)), p_star)
    t_g, g = C.timed(lambda: gc(p_star))  # AOT-compiled: the first call is a run
    gtimes = C.repeat(lambda: gc(p_star), cfg["grad_repeats"], max_total=cfg["max_s"],
                      first=[t_g])
    if not np.all(np.isfinite(np.asarray(g))):
        res.note(f"{case}: gradient has non-finite entries")
    res.add(case, TOOL, "grad trace", gt["trace"], "s")
    res.add(case, TOOL, "grad lower", gt["lower"], "s")
    res.add(case, TOOL, "grad XLA compile", gt["xla"], "s")
    res.add(case, TOOL, "grad compile total", gt["total"], "s")
    res.add(case, TOOL, "grad run (median)", C.median(gtimes), "s",
            note=f"{len(gtimes)} calls")
    print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000",
                    help="numbers of reactions of the random networks")
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/compile_time.py", args)
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    # warm up jax/diffrax on an unrelated model so compile times are per model
    C.block(jc.simulate(jc.models.lotka_volterra(), 0.0, 1.0).ts)
    sizes = [int(s) for s in args.sizes.split(",")]
    nets = [(f"random {n} reactions", random_network(n)) for n in sizes]
    nets += [("repressilator", _models.repressilator()),
             ("mapk", _models.kholodenko_mapk())]
    for case, net in nets:
        bench_network(case, net, res, cfg)

    def val(case, metric):
        for r in res.rows:
            if r["case"] == case and r["metric"] == metric:
                return r["value"]
        return None

    lo, hi = f"random {min(sizes)} reactions", f"random {max(sizes)} reactions"
    for metric in ("compile (first - run)", "sim XLA compile", "grad compile total"):
        a, b = val(hi, metric), val(lo, metric)
        if a and b:
            res.add(f"ratio {max(sizes)}/{min(sizes)} reactions", TOOL, metric, a / b,
                    "ratio")
    res.note("compile (first - run) = first jc.simulate call minus the median of later "
             "calls; 'sim trace/lower/XLA compile' come from an ahead-of-time compile of "
             "the same solve inside a user jax.jit (a separate compilation)")
    metrics = ["species", "reactions", "parameters", "first call", "run (median)",
               "compile (first - run)", "XLA compilations", "steps", "sim trace",
               "sim lower", "sim XLA compile", "grad trace", "grad lower",
               "grad XLA compile",
               "grad compile total", "grad run (median)"]
    print(f"\n== compile_time.py results (total {res.elapsed():.0f} s) ==")
    half = len(metrics) // 2
    ratio_case = f"ratio {max(sizes)}/{min(sizes)} reactions"
    C.print_matrix(res, metrics=metrics[:half + 1], tool=TOOL, exclude=(ratio_case,))
    print()
    C.print_matrix(res, metrics=["species"] + metrics[half + 1:], tool=TOOL,
                   exclude=(ratio_case,))
    print()
    for r in res.rows:
        if r["case"] == ratio_case:
            print(f"{ratio_case}: {r['metric']}: {r['value']:.3g}x")
    res.finish(args.json)


if __name__ == "__main__":
    main()
