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
Compile time is measured apart (ahead-of-time compile of the jit(vmap) program) and
the warm run is timed. The peers run in one process per core (spawned, each building its own
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


# trajectories per case with --quick (the full run: --n, default 10^4, for every case)
QUICK_N = {"birth_death": 10_000, "schlogl": 1_000, "ring25": 1_000}


def settings(quick: bool) -> dict:
    """jaxcell repeats (median; the layout is chosen on ``pilot`` trajectories) and the
    most trajectories each peer runs (scaled to the case's n), as a fraction of n or a
    number."""
    if quick:
        return dict(repeats=1, peer_repeats=1, pilot=200,
                    peer_n={"gillespy2_ssa_c": 0.2, "gillespy2_tau_c": 0.2,
                            "gillespy2_numpy": 20, "numpy_direct": 200})
    return dict(repeats=3, peer_repeats=3, pilot=1000,
                peer_n={"gillespy2_ssa_c": 1.0, "gillespy2_tau_c": 1.0,
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


def _layouts(s: SP.Spec, method):
    """The two layouts as ``{name: (compile, run)}``: ``compile(keys)`` prepares the
    program and returns the seconds it took (for ``map_batch``: the first call, whose
    compile time is that minus a warm call); ``run(keys)`` runs it."""
    net = network(s)
    out = {}
    compiled = {}

    def compile_vmap(keys):
        f = jax.jit(lambda keys: _paths(net, keys, s, method))
        t = time.perf_counter()
        compiled["vmap"] = f.lower(keys).compile()
        return time.perf_counter() - t

    out["vmap"] = (compile_vmap, lambda keys: compiled["vmap"](keys))
    if len(jax.devices()) > 1:
        @eqx.filter_jit
        def fn(net, keys):
            return _paths(net, keys, s, method)

        def compile_mb(keys):
            return C.timed(lambda: map_batch(fn, net, keys))[0]

        out["map_batch"] = (compile_mb, lambda keys: map_batch(fn, net, keys))
    return out


def _keys(n: int):
    return jax.random.key_data(jax.random.split(jax.random.key(SEED), n))


def run_jaxcell(s: SP.Spec, tool: str, n: int, repeats: int, pilot: int):
    """Pick the faster layout on ``pilot`` trajectories (one warm call each), then time
    it on ``n``: (layout, median warm s, compile s, final counts, pilot times)."""
    method = JAX_TOOLS[tool]
    lays = _layouts(s, method)
    trial = {}
    if len(lays) > 1:
        kp = _keys(pilot)
        for name, (comp, run) in lays.items():
            comp(kp)
            trial[name] = C.timed(lambda run=run: run(kp))[0]
        best = min(trial, key=trial.get)
    else:
        best = next(iter(lays))
    lays = _layouts(s, method)  # fresh: the pilot's programs are not reused
    keys = _keys(n)
    # compile time: ahead of time, of the jit(vmap) program for n trajectories (map_batch
    # runs the same vmapped body under shard_map; first call minus a warm call is too
    # noisy to report)
    c_s = lays["vmap"][0](keys)
    comp, run = lays[best]
    if best != "vmap":
        comp(keys)
    t0, final = C.timed(lambda: run(keys))
    times = C.repeat(lambda: run(keys), repeats, first=[t0])
    return best, C.median(times), c_s, np.asarray(final), trial


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
        pilot = min(n, cfg["pilot"])
        best, wall, c_s, final, trial = run_jaxcell(s, tool, n, cfg["repeats"], pilot)
        d = len(jax.devices())
        layouts = ", ".join(f"{LAYOUT[k].format(d=d)} {v:.3g} s" for k, v in trial.items())
        note = (f"{LAYOUT[best].format(d=d)}, median of {cfg['repeats']}"
                + (f"; layout chosen on {pilot} trajectories: {layouts}" if trial else ""))
        res.add(case, tool, f"wall_{n}_s", wall, "s", note=note)
        res.add(case, tool, "traj_per_s", n / wall, "1/s")
        res.add(case, tool, "compile_s", c_s, "s",
                note="ahead-of-time compile of the jit(vmap) program")
        stats_row(res, case, tool, final, col, stats)
    for tool in [t for t in tools if t in PEERS]:
        share = cfg["peer_n"][tool]
        k = min(n, max(2, int(share * n)) if isinstance(share, float) else share)
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
    if s.exact is not None:
        print(f"    {'exact':<18} {s.exact[0]:9.2f} ({s.exact[1]:7.2f})")
    for tool, (m, sd, k) in stats.items():
        z = ""
        if ref and tool != "jaxcell_ssa":
            se = math.sqrt(ref[1] ** 2 / ref[2] + sd**2 / k)
            z = f"z = {(m - ref[0]) / se:+.2f}" if se > 0 else ""
        if s.exact is not None and k > 1:
            z += f"  z vs exact = {(m - s.exact[0]) / (sd / math.sqrt(k)):+.2f}"
        print(f"    {tool:<18} {m:9.2f} ({sd:7.2f}) [{k}]  {z}")


# -- tables ------------------------------------------------------------------------------


def print_summary(res: C.Results, ns: dict[str, int]) -> None:
    cell = {(r["case"], r["tool"], r["metric"]): r["value"] for r in res.rows}
    cases = list(dict.fromkeys(r["case"] for r in res.rows))
    tools = [t for t in TOOLS if any(r["tool"] == t for r in res.rows)]
    print("\ntrajectories per second (and wall for the case's n); speedup = jaxcell "
          "traj/s / tool traj/s (jaxcell SSA; tau-leaping in brackets)")
    head = f"{'case':<12} {'n':>6} {'tool':<16} {'traj/s':>10} {'wall':>10} {'compile':>9} " \
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
            wall = cell.get((c, t, f"wall_{ns[c]}_s"))
            comp = cell.get((c, t, "compile_s"), cell.get((c, t, "build_s")))
            m, sd = cell.get((c, t, "final_mean")), cell.get((c, t, "final_sd"))
            sp = ""
            if t not in JAX_TOOLS and ssa:
                sp = f"{ssa / tps:.3g}" + (f" [{tau / tps:.3g}]" if tau else "")
            ms = f"{m:.1f} ({sd:.1f})" if m is not None and sd is not None else ""
            print(f"{c:<12} {ns[c]:>6} {t:<16} {tps:>10.4g} {C.fmt(wall, 's'):>10} "
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
    ap.add_argument("--n", type=int, default=None,
                    help="trajectories per case (default 10^4; with --quick "
                         + ", ".join(f"{k} {v}" for k, v in QUICK_N.items()) + ")")
    args = ap.parse_args()
    cfg = settings(args.quick)
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
    ns = {}
    for case in args.cases.split(","):
        ns[case] = args.n or (QUICK_N[case] if args.quick else 10_000)
        bench_case(case, res, cfg, ns[case], tools)
    res.note("peers run in one process per core (the same cores as jaxcell); subsets "
             "are scaled per trajectory (see each row's note)")
    res.note("same propensities everywhere: k times the falling factorial of each "
             "reactant count (GillesPy2: custom propensities where its mass action "
             "differs)")
    print(f"\n== stochastic.py results (total {res.elapsed():.0f} s) ==")
    print_summary(res, ns)
    res.finish(args.json)


if __name__ == "__main__":
    main()
