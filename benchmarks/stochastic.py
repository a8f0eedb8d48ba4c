#!/usr/bin/env python
"""Stochastic simulation: jaxcell SSA and tau-leaping vs GillesPy2 (C++ SSA, C++
tau-leaping, NumPy SSA) and a hand-written NumPy direct method.

Cases (``_stochastic_peers.spec``): the DSMTS 001-01 birth-death process; the bistable
Schlögl model (third order, falling-factorial propensities in every tool: GillesPy2 gets
custom propensities for the channels with a repeated reactant); a ring of 25 species
with 100 channels. 10^4 trajectories per case (``--n``).

jaxcell runs ``jit(vmap(simulate(..., stochastic=..., key=k)))`` over split keys, in the
faster of two layouts measured in the same run: one device (``vmap``) or spread over the
CPU devices, one per core (``jaxcell._devices.map_batch``, what ``jc.ensemble`` uses).
Compile time is measured apart (ahead of time, or first call minus warm call) and the
warm run is timed. The peers run in one process per core (spawned, each building its own
solver: GillesPy2 compiles its C++ there), the trajectories split evenly. NumPy peers
(and, with ``--quick``, every peer) run a subset and are scaled per trajectory.

Rows: ``traj_per_s`` (trajectories per second), ``wall_<N>_s`` (seconds for N
trajectories, median; extrapolated where a subset ran), ``compile_s`` (jaxcell; the
GillesPy2 C++ build as ``build_s``), ``final_mean`` and ``final_sd`` (the observed
species' count at the last output time). The agreement check compares every tool's final
mean with jaxcell SSA's (z = difference / combined standard error).

Run ``python benchmarks/stochastic.py --quick --json bench-results/stochastic.json``.
"""

from __future__ import annotations

import math
import os
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _stochastic_peers as SP  # noqa: E402

import jaxcell as jc  # noqa: E402
from jaxcell._devices import map_batch  # noqa: E402

JAX_TOOLS = {"jaxcell_ssa": jc.SSA(), "jaxcell_tau": jc.TauLeaping()}
PEERS = ["gillespy2_ssa_c", "gillespy2_tau_c", "gillespy2_numpy", "numpy_direct"]
TOOLS = list(JAX_TOOLS) + PEERS
SEED = 0


def settings(quick: bool, n: int) -> dict:
    """jaxcell repeats (median) and the most trajectories each peer runs (scaled to n)."""
    if quick:
        return dict(repeats=2, peer_repeats=1,
                    peer_n={"gillespy2_ssa_c": n // 5, "gillespy2_tau_c": n // 5,
                            "gillespy2_numpy": 40, "numpy_direct": 500})
    return dict(repeats=3, peer_repeats=3,
                peer_n={"gillespy2_ssa_c": n, "gillespy2_tau_c": n,
                        "gillespy2_numpy": 200, "numpy_direct": 2000})


# -- jaxcell ------------------------------------------------------------------------


def network(s: SP.Spec) -> jc.ReactionNetwork:
    reactions = [jc.Reaction(name, dict(re) or "", dict(pr) or "",
                             jc.MassAction(f"k_{name}"))
                 for name, re, pr, _ in s.channels]
    return jc.ReactionNetwork(s.name, {k: float(v) for k, v in s.x0.items()}, reactions,
                              {f"k_{c[0]}": float(c[3]) for c in s.channels})


def _paths(net, keys, s: SP.Spec, method):
    """Final counts of every species, one row per key (one vmapped program)."""
    ts = jnp.asarray(s.ts)

    def one(k):
        tr = jc.simulate(net, 0.0, s.t1, saveat=ts, stochastic=method,
                         key=jax.random.wrap_key_data(k))
        return jnp.stack([tr[sp][-1] for sp in s.x0])

    return jax.vmap(one)(keys)


def run_jaxcell(s: SP.Spec, tool: str, n: int, repeats: int):
    """Both layouts: ``{layout: (median warm s, compile s, final counts)}``."""
    net, method = network(s), JAX_TOOLS[tool]
    keys = jax.random.key_data(jax.random.split(jax.random.key(SEED), n))
    out = {}
    # one device: ahead-of-time compile, then the warm runs
    f = jax.jit(lambda keys: _paths(net, keys, s, method))
    t = time.perf_counter()
    comp = f.lower(keys).compile()
    c_s = time.perf_counter() - t
    final = C.block(comp(keys))
    times = C.repeat(lambda: comp(keys), repeats)
    out["vmap"] = (C.median(times), c_s, np.asarray(final))
    # spread over the CPU devices (one per core) as jc.ensemble does
    if len(jax.devices()) > 1:
        @eqx.filter_jit
        def fn(net, keys):
            return _paths(net, keys, s, method)

        first, final = C.timed(lambda: map_batch(fn, net, keys))
        times = C.repeat(lambda: map_batch(fn, net, keys), repeats)
        med = C.median(times)
        out["map_batch"] = (med, max(first - med, 0.0), np.asarray(final))
    return out


LAYOUT = {"vmap": "jit(vmap) on one device",
          "map_batch": "map_batch over {d} CPU devices (shard_map)"}


# -- one case ------------------------------------------------------------------------


def stats_row(res: C.Results, case: str, tool: str, final: np.ndarray, col: int,
              stats: dict) -> None:
    v = final[:, col]
    m, sd = float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    stats[tool] = (m, sd, len(v))
    res.add(case, tool, "final_mean", m, "count", echo=False)
    res.add(case, tool, "final_sd", sd, "count", echo=False)


def bench_case(case: str, res: C.Results, cfg: dict, n: int, tools: list[str]) -> None:
    s = SP.spec(case)
    col = list(s.x0).index(s.observe)
    print(f"\n=== {case}: {s.about}; {len(s.x0)} species, {len(s.channels)} channels, "
          f"{len(s.ts)} output times, {n} trajectories ===", flush=True)
    stats: dict = {}
    cores = res.machine["usable_cores"] or 1
    for tool in [t for t in tools if t in JAX_TOOLS]:
        runs = run_jaxcell(s, tool, n, cfg["repeats"])
        best = min(runs, key=lambda k: runs[k][0])
        wall, c_s, final = runs[best]
        other = "; ".join(f"{LAYOUT[k].format(d=len(jax.devices()))}: {r[0]:.3g} s "
                          f"(compile {r[1]:.1f} s)" for k, r in runs.items() if k != best)
        note = (f"{LAYOUT[best].format(d=len(jax.devices()))}, median of {cfg['repeats']}"
                + (f"; other layout: {other}" if other else ""))
        res.add(case, tool, f"wall_{n}_s", wall, "s", note=note)
        res.add(case, tool, "traj_per_s", n / wall, "1/s")
        res.add(case, tool, "compile_s", c_s, "s", note=f"{best} layout")
        stats_row(res, case, tool, final, col, stats)
    for tool in [t for t in tools if t in PEERS]:
        k = min(n, cfg["peer_n"][tool])
        if tool.startswith("gillespy2"):
            try:
                import gillespy2  # noqa: F401
            except ImportError:
                res.note("gillespy2 is not installed: its rows are skipped")
                continue
        procs = cores if cores > 1 else 1
        pool = SP.PeerPool(tool, case, procs)
        try:
            runs = [pool(k, SEED + r) for r in range(cfg["peer_repeats"])]
        finally:
            pool.close()
        dt = C.median([r[0] for r in runs])
        final = runs[0][1]
        note = (f"{procs} process(es), one per core; {k} trajectories per run"
                + (f", scaled to {n}" if k < n else "")
                + f"; median of {len(runs)}")
        res.add(case, tool, f"wall_{n}_s", dt / k * n, "s", note=note)
        res.add(case, tool, "traj_per_s", k / dt, "1/s")
        if tool in SP.GILLESPY2_SOLVERS and tool != "gillespy2_numpy":
            res.add(case, tool, "build_s", pool.build_s, "s",
                    note="C++ build, per worker process")
        stats_row(res, case, tool, final, col, stats)
        print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)
    # agreement of the final-time counts with jaxcell SSA
    ref = stats.get("jaxcell_ssa")
    print(f"  final {s.observe} at t = {s.t1:g}: mean (SD) [n]; z vs jaxcell_ssa")
    for tool, (m, sd, k) in stats.items():
        z = ""
        if ref and tool != "jaxcell_ssa":
            se = math.sqrt(ref[1] ** 2 / ref[2] + sd**2 / k)
            z = f"z = {(m - ref[0]) / se:+.2f}" if se > 0 else ""
        print(f"    {tool:<18} {m:9.2f} ({sd:7.2f}) [{k}]  {z}")


# -- tables ------------------------------------------------------------------------------


def print_summary(res: C.Results, n: int) -> None:
    cell = {(r["case"], r["tool"], r["metric"]): r["value"] for r in res.rows}
    cases = list(dict.fromkeys(r["case"] for r in res.rows))
    tools = [t for t in TOOLS if any(r["tool"] == t for r in res.rows)]
    print(f"\ntrajectories per second (wall for {n} trajectories); speedup = jaxcell "
          "traj/s / tool traj/s (jaxcell SSA; tau-leaping in brackets)")
    head = f"{'case':<12} {'tool':<16} {'traj/s':>10} {'wall':>10} {'compile':>9} " \
           f"{'final mean (SD)':>18} {'speedup':>16}"
    print(head)
    print("-" * len(head))
    for c in cases:
        ssa = cell.get((c, "jaxcell_ssa", "traj_per_s"))
        tau = cell.get((c, "jaxcell_tau", "traj_per_s"))
        for t in tools:
            tps = cell.get((c, t, "traj_per_s"))
            if tps is None:
                continue
            wall = cell.get((c, t, f"wall_{n}_s"))
            comp = cell.get((c, t, "compile_s"), cell.get((c, t, "build_s")))
            m, sd = cell.get((c, t, "final_mean")), cell.get((c, t, "final_sd"))
            sp = ""
            if t not in JAX_TOOLS and ssa:
                sp = f"{ssa / tps:.3g}" + (f" [{tau / tps:.3g}]" if tau else "")
            ms = f"{m:.1f} ({sd:.1f})" if m is not None and sd is not None else ""
            print(f"{c:<12} {t:<16} {tps:>10.4g} {C.fmt(wall, 's'):>10} "
                  f"{C.fmt(comp, 's') if comp is not None else '':>9} {ms:>18} {sp:>16}")
    print("\n10x target (jaxcell's faster method vs GillesPy2's fastest solver, traj/s):")
    for c in cases:
        jx = max(v for v in (cell.get((c, t, "traj_per_s")) for t in JAX_TOOLS) if v)
        g = [(cell.get((c, t, "traj_per_s")), t) for t in SP.GILLESPY2_SOLVERS]
        g = [x for x in g if x[0]]
        if not g:
            continue
        best, name = max(g)
        r = jx / best
        print(f"  {c:<12} {r:8.3g}x vs {name:<16} {'met' if r >= 10 else 'NOT met'}")
        res.add(c, "jaxcell", "speedup_vs_fastest_gillespy2", r, "ratio",
                note=f"fastest GillesPy2: {name}", echo=False)


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(SP.CASES),
                    help="comma-separated subset of: " + ", ".join(SP.CASES))
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help="comma-separated subset of: " + ", ".join(TOOLS))
    ap.add_argument("--n", type=int, default=10_000, help="trajectories per case")
    args = ap.parse_args()
    cfg = settings(args.quick, args.n)
    res = C.Results("benchmarks/stochastic.py", args)
    try:
        import gillespy2

        res.versions["gillespy2"] = gillespy2.__version__
    except ImportError:
        res.versions["gillespy2"] = None
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    tools = [t for t in args.tools.split(",") if t]
    for case in args.cases.split(","):
        bench_case(case, res, cfg, args.n, tools)
    res.note("peers run in one process per core (the same cores as jaxcell); subsets "
             "are scaled per trajectory (see each row's note)")
    res.note("same propensities everywhere: k times the falling factorial of each "
             "reactant count (GillesPy2: custom propensities where its mass action "
             "differs)")
    print(f"\n== stochastic.py results (total {res.elapsed():.0f} s) ==")
    print_summary(res, args.n)
    res.finish(args.json)


if __name__ == "__main__":
    main()
