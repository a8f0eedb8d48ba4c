#!/usr/bin/env python
"""Parameter ensembles: jaxcell jit(vmap) vs libRoadRunner, AMICI and scipy loops.

Models (``_models.spec``): boehm, fujita, mapk, repressilator; 101 output times; rtol
1e-6, atol 1e-8; float64. Every kinetic parameter is multiplied by ``exp(0.1 z)``,
``z ~ N(0, 1)``, seed 0 (the 1,000 set is the first 1,000 of the 10,000 set).

One row per model and tool: ``ensemble_<N>_s``, the wall seconds for N members. jaxcell
runs ``jax.vmap(sim)`` over the parameter arrays as ``jc.ensemble`` does by default (one
``shard_map`` program over every local device: one CPU device per core); other layouts
on request (``--layouts``). The peers run a Python loop in one process per core, on the
same cores (with ``--quick`` over a subset, extrapolated). Layout, compile time,
failures, steps and per-member times are in the rows' notes. Per model, one agreement
check: the first member of each tool against scipy LSODA at rtol 1e-10 / atol 1e-12.

Run ``python benchmarks/ensemble.py --quick --json bench-results/ensemble.json``.
"""

from __future__ import annotations

import os
import sys

# Two XLA CPU devices for the in-process 2-device layouts (--layouts ...split or ...spmd;
# not defaults, see EnsembleRunner). Must precede the first import of jax (also through
# jaxcell or _common).
if any("split" in a or "spmd" in a for a in sys.argv):
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=2").strip()

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _amici  # noqa: E402
import _common as C  # noqa: E402
import _models  # noqa: E402

import jaxcell as jc  # noqa: E402
import jaxcell.io as jio  # noqa: E402
from jaxcell._devices import map_batch  # noqa: E402

try:
    import roadrunner
except ImportError:  # optional peer
    roadrunner = None

RTOL, ATOL = 1e-6, 1e-8
REF_RTOL, REF_ATOL = 1e-10, 1e-12
SIGMA, SEED = 0.1, 0
TOOLS = ["jaxcell", "libroadrunner", "amici", "scipy"]
AMICI_DIR = Path(__file__).resolve().parents[1] / "bench-results" / "amici-build"


def settings(quick: bool) -> dict:
    """Timed jaxcell calls per layout (median) and the most members each peer loop runs."""
    if quick:
        return dict(repeats=3, libroadrunner=1000, amici=1000, scipy=50)
    return dict(repeats=5, libroadrunner=None, amici=None, scipy=1000)


def perturbed(p0: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return p0[None, :] * np.exp(SIGMA * rng.standard_normal((n, p0.size)))


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max(|ref|, 1e-3 max_t |ref_species|, 1e-12) over times, species."""
    a, ref = np.asarray(a, float), np.asarray(ref, float)
    floor = np.maximum(1e-3 * np.max(np.abs(ref), axis=0, keepdims=True), 1e-12)
    return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), floor)))


# -- jaxcell ----------------------------------------------------------------------


def make_sim(s: _models.Spec):
    """``sim(p) -> (trajectory, success, accepted steps)`` for one vector of the kinetic
    parameters ``s.params`` (in that order), traceable under ``jax.vmap``."""
    keys, ts = list(s.params), jnp.asarray(s.ts)
    if s.is_sbml:
        cols = jnp.asarray([s.model.output_ids.index(k) for k in s.species])

        def sim(p):
            model = s.model.replace_parameters(dict(zip(keys, p, strict=True)))
            ys, status, steps = jio.solve_sbml(model, ts, rtol=RTOL, atol=ATOL)
            return ys[:, cols], status == jc.RESULTS.successful, steps

        return sim
    net = s.model
    idx = jnp.asarray([net.parameter_names.index(k) for k in keys])
    path = f"{net.scale}/{net.name}/species"

    def sim(p):
        model = eqx.tree_at(lambda m: m.p, net, net.p.at[idx].set(p))
        traj = jc.simulate(model, 0.0, s.t1, saveat=ts, throw=False)  # rtol 1e-6, atol 1e-8
        return traj[path], traj.success, traj.stats["num_accepted_steps"]

    return sim


def _vmapped(sim, batch):
    return jax.vmap(sim)(batch)


class EnsembleRunner:
    """jit(vmap(sim)) over a batch of parameter vectors, in one process.

    ``vmap``: one XLA CPU device. ``spmd``: the batch sharded over both CPU devices with
    a ``NamedSharding`` (XLA's SPMD partitioner; the loop condition then needs a
    cross-device reduction every step). ``split``: the batch cut in one piece per device,
    each piece run by its own compiled executable, dispatched asynchronously so the
    pieces run concurrently.

    ``spmd`` and ``split`` can deadlock with jaxlib 0.10.2 on 2 cores: both devices'
    computations run on XLA's intra-op thread pool (one thread per core), and jaxlib's
    batched LU kernel (``lapack_dgetrf_ffi`` -> ``ParallelBatchMap``) schedules its
    pieces on that same pool and blocks waiting for them; with both pool threads blocked
    in that wait nothing is left to run the pieces (seen with gdb: both ``tf_XLAEigen``
    threads in ``BlockingCounter::Wait``, 0% CPU). So they run only when asked for; the
    default two-core layout is :class:`ProcessRunner`.
    """

    def __init__(self, sim, method: str, n: int, n_params: int):
        devs = jax.devices()
        f = jax.jit(jax.vmap(sim))
        t = time.perf_counter()
        if method == "sharded":
            # what jc.ensemble does: one shard_map program over every local device
            self.sharded = lambda P_: map_batch(_vmapped, sim, jnp.asarray(P_))
            C.block(self.sharded(np.zeros((n, n_params)) + 1.0))
            self.compile_s = time.perf_counter() - t
            self.compile_note = f"first call (shard_map over {len(devs)} devices)"
            return
        self.sharded = None
        if method == "vmap":
            self.shardings = [SingleDeviceSharding(devs[0])]
            pieces = [(f, n)]
        elif method == "spmd":
            sh = NamedSharding(Mesh(np.array(devs), ("batch",)), P("batch"))
            self.shardings = [sh]
            pieces = [(jax.jit(jax.vmap(sim), in_shardings=sh, out_shardings=sh), n)]
        elif method == "split":
            if n % len(devs):
                raise ValueError("batch size must be a multiple of the device count")
            self.shardings = [SingleDeviceSharding(d) for d in devs]
            pieces = [(f, n // len(devs))] * len(devs)
        else:
            raise ValueError(method)
        self.compiled = [
            g.lower(jax.ShapeDtypeStruct((m, n_params), jnp.float64, sharding=sh)).compile()
            for (g, m), sh in zip(pieces, self.shardings, strict=True)]
        self.compile_s = time.perf_counter() - t
        self.compile_note = "AOT lower+compile" + (
            f" of {len(self.compiled)} executables" if len(self.compiled) > 1 else "")

    def __call__(self, P_: np.ndarray):
        if self.sharded is not None:
            out = C.block(self.sharded(P_))
            return [np.asarray(o) for o in out]
        parts = np.split(P_, len(self.compiled))
        outs = [c(jax.device_put(x, sh)) for c, x, sh in
                zip(self.compiled, parts, self.shardings, strict=True)]
        outs = jax.block_until_ready(outs)
        return [np.concatenate([np.asarray(o[i]) for o in outs]) for i in range(3)]


class ProcessRunner:
    """The batch split over 2 worker processes, each running ``vmap`` on its half.

    Each worker (this script with ``--worker``) imports jax, rebuilds the model from its
    name, loads its half of the parameters, compiles ahead of time and reports ready; the
    timed call then tells both to run at once and collects their results. Separate
    processes have separate XLA thread pools, so this avoids the deadlock of the
    in-process 2-device layouts. ``compile_s`` is the wall time until both workers are
    ready (python and jax start-up plus compilation, the two workers in parallel).
    """

    def __init__(self, model: str, P_: np.ndarray, n_workers: int = 2):
        import subprocess
        import tempfile

        self.compile_note = f"start-up + compile of {n_workers} worker processes"
        self.tmp = tempfile.mkdtemp(prefix="jaxcell-bench-")
        self.procs, self.outs, self.errs = [], [], []
        t = time.perf_counter()
        for i, part in enumerate(np.split(P_, n_workers)):
            inp = os.path.join(self.tmp, f"in{i}.npy")
            np.save(inp, part)
            self.outs.append(os.path.join(self.tmp, f"out{i}.npz"))
            err = open(os.path.join(self.tmp, f"err{i}.txt"), "w")  # noqa: SIM115
            self.errs.append(err)
            self.procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", model, inp,
                 self.outs[-1]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                bufsize=1))
        for i in range(n_workers):
            self._expect(i, "READY")
        self.compile_s = time.perf_counter() - t

    def _expect(self, i: int, word: str) -> None:
        p = self.procs[i]
        while True:
            line = p.stdout.readline()
            if not line:
                self.errs[i].flush()
                with open(self.errs[i].name) as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(f"ensemble worker {i} died:\n{tail}")
            if line.startswith("@@ "):
                if line.split()[1] != word:
                    raise RuntimeError(f"worker {i}: expected {word}, got {line!r}")
                return

    def _send(self, cmd: str) -> None:
        for p in self.procs:
            p.stdin.write(cmd + "\n")
            p.stdin.flush()

    def __call__(self, P_: np.ndarray):
        self._send("RUN")
        for i in range(len(self.procs)):
            self._expect(i, "DONE")
        self._send("SAVE")
        parts = []
        for i in range(len(self.procs)):
            self._expect(i, "SAVED")
            with np.load(self.outs[i]) as z:
                parts.append([z["ys"], z["ok"], z["steps"]])
        return [np.concatenate([p[k] for p in parts]) for k in range(3)]

    def close(self) -> None:
        import shutil

        self._send("EXIT")
        for p, e in zip(self.procs, self.errs, strict=True):
            p.wait(timeout=60)
            e.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def worker_main(argv: list[str]) -> None:
    """``--worker MODEL IN.npy OUT.npz``: serve RUN / SAVE / EXIT on stdin."""
    model, inp, out = argv[argv.index("--worker") + 1:][:3]
    P_ = np.load(inp)
    runner = EnsembleRunner(make_sim(_models.spec(model)), "vmap", *P_.shape)
    print(f"@@ READY {runner.compile_s:.3f}", flush=True)
    result = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "RUN":
            result = runner(P_)
            print("@@ DONE", flush=True)
        elif cmd == "SAVE":
            np.savez(out, ys=result[0], ok=result[1], steps=result[2])
            print("@@ SAVED", flush=True)
        elif cmd == "EXIT":
            break


LAYOUT_LABEL = {"sharded": "jc.ensemble layout: shard_map over all devices",
                "vmap": "vmap, 1 device", "procs": "2 processes x vmap",
                "spmd": "NamedSharding SPMD, 2 devices",
                "split": "batch split over 2 devices in 1 process"}


def run_layout(name: str, sim, layout: str, P_: np.ndarray, repeats: int):
    """Compile ``layout`` for the batch ``P_``, time ``repeats`` calls; returns
    ``(median wall, compile s, compile note, (ys, ok, steps))``."""
    runner = ProcessRunner(name, P_) if layout == "procs" else \
        EnsembleRunner(sim, layout, *P_.shape)
    try:
        times, out = [], None
        for _ in range(repeats):
            dt, out = C.timed(lambda: runner(P_))
            times.append(dt)
    finally:
        if hasattr(runner, "close"):
            runner.close()
    return C.median(times), runner.compile_s, runner.compile_note, out


# -- peers: one member at a time --------------------------------------------------------


def roadrunner_solver(s: _models.Spec):
    rr = roadrunner.RoadRunner(s.sbml)
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    rr.timeCourseSelections = [f"[{x}]" for x in s.species]

    def solve(params: dict[str, float]) -> np.ndarray:
        rr.reset()
        for k, v in params.items():
            rr.setValue(k, v)
        return np.asarray(rr.simulate(0.0, s.t1, len(s.ts)))

    return solve, "reset(), setValue, simulate(0, t1, 101)"


def amici_solver(s: _models.Spec):
    # the same build (folder, module name, observables) as work_precision.py, so that
    # the two scripts share one compiled model per case
    folder = AMICI_DIR / s.name
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / f"{s.name}.xml"
    if not xml.exists() or xml.read_text() != s.sbml:
        xml.write_text(s.sbml)
    h = _amici.build(xml, f"jaxcell_wp_{s.name}", str(folder),
                     observables={f"y_{k}": k for k in s.species})
    cols = [h.state_ids.index(x) for x in s.species]

    def solve(params: dict[str, float]) -> np.ndarray:
        return _amici.simulate(h, s.ts, params)[:, cols]

    return solve, f"build {h.build_time:.0f} s{' (cached)' if h.reused else ''}"


def scipy_solver(s: _models.Spec):
    def solve(params: dict[str, float]) -> np.ndarray:
        y = _models.solve_scipy(s, params, rtol=RTOL, atol=ATOL)
        if np.isnan(y).any():
            raise RuntimeError("LSODA failed")
        return y

    return solve, "solve_ivp(method='LSODA')"


def peer_solvers(s: _models.Spec, only: str | None = None) -> dict:
    """tool -> (solve(params) -> trajectory, note) for the peers that are installed."""
    solvers = {}
    if roadrunner is not None and only in (None, "libroadrunner"):
        solvers["libroadrunner"] = roadrunner_solver(s)
    if _amici.available() and only in (None, "amici"):
        solvers["amici"] = amici_solver(s)
    if only in (None, "scipy"):
        solvers["scipy"] = scipy_solver(s)
    return solvers


_PEER: dict = {}


def _peer_init(tool: str, name: str) -> None:
    """In a peer worker process: build the solver once."""
    import warnings

    warnings.filterwarnings("ignore")
    if roadrunner is not None:
        roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)
    s = _models.spec(name)
    _PEER["solve"] = peer_solvers(s, only=tool)[tool][0]
    _PEER["keys"] = list(s.params)


def _peer_chunk(P_: np.ndarray):
    dt, fails, first = run_loop(_PEER["solve"], _PEER["keys"], P_, len(P_))
    return fails, first


def _peer_ready(_):
    return True


class PeerPool:
    """One peer worker process per core (spawned, each builds its own solver), so that
    the peers use the same cores as jaxcell; a call splits the members evenly."""

    def __init__(self, tool: str, name: str, n_procs: int):
        import multiprocessing as mp

        self.pool = mp.get_context("spawn").Pool(n_procs, initializer=_peer_init,
                                                 initargs=(tool, name))
        self.n = n_procs
        self.pool.map(_peer_ready, range(n_procs), chunksize=1)

    def __call__(self, P_: np.ndarray):
        t = time.perf_counter()
        parts = self.pool.map(_peer_chunk, np.array_split(P_, self.n), chunksize=1)
        return time.perf_counter() - t, sum(p[0] for p in parts), parts[0][1]

    def close(self):
        self.pool.close()
        self.pool.join()


def run_loop(solve, keys: list[str], P_: np.ndarray, k: int):
    """Solve members 0..k-1 in a loop; ``(seconds, failures, first member's trajectory)``."""
    fails, first = 0, None
    t = time.perf_counter()
    for i in range(k):
        try:
            y = solve(dict(zip(keys, map(float, P_[i]), strict=True)))
        except RuntimeError:
            y, fails = None, fails + 1
        if i == 0:
            first = y
    return time.perf_counter() - t, fails, first


# -- one model ----------------------------------------------------------------------


def bench_model(name: str, res: C.Results, cfg: dict, sizes: list[int],
                layouts: list[str]) -> None:
    s = _models.spec(name)
    keys = list(s.params)
    print(f"\n=== {name}: {len(s.species)} species, {len(keys)} kinetic parameters, "
          f"t in [0, {s.t1:g}], {len(s.ts)} points ===", flush=True)
    sim = make_sim(s)
    Pall = perturbed(np.array([s.params[k] for k in keys]), max(sizes))
    peers = peer_solvers(s)
    firsts = {}
    best = None
    for n in sizes:
        metric, Pn = f"ensemble_{n}_s", Pall[:n]
        # jaxcell: compare the layouts at the first size, then keep the fastest
        runs = {}
        for lay in layouts if best is None else [best]:
            if lay in ("split", "spmd") and len(jax.devices()) < 2:
                continue
            runs[lay] = run_layout(name, sim, lay, Pn, cfg["repeats"])
            print(f"  {name} {n} [{LAYOUT_LABEL[lay]}]: {runs[lay][0]:.2f} s, "
                  f"compile {runs[lay][1]:.1f} s", flush=True)
        best = best or min(runs, key=lambda k: runs[k][0])
        wall, comp_s, comp_note, (ys, ok, steps) = runs[best]
        for lay, r in runs.items():
            diff = float(np.nanmax(np.abs(r[3][0] - ys)))
            if diff > 1e-6:
                res.note(f"{name} {n}: layouts {best} and {lay} disagree by {diff:.3g} (max abs)")
        firsts.setdefault("jaxcell", ys[0] if ok[0] else None)
        others = ", ".join(f"{LAYOUT_LABEL[k]} {r[0]:.3g} s (compile {r[1]:.1f} s)"
                           for k, r in runs.items() if k != best)
        res.add(name, "jaxcell", metric, wall, "s", note=(
            f"{LAYOUT_LABEL[best]}, median of {cfg['repeats']}; {wall / n * 1e3:.3g} ms "
            f"per member; compile {comp_s:.1f} s ({comp_note}); failures "
            f"{int(n - ok.sum())}/{n}; max accepted steps {int(steps.max())}"
            + (f"; other layouts: {others}" if others else "")))

        # peers: a loop in one process per core, over a subset extrapolated to n
        cores = res.machine["usable_cores"] or 1
        for tool, (solve, how) in peers.items():
            k = min(n, cfg[tool] or n)
            if cores > 1:
                pool = PeerPool(tool, name, cores)
                try:
                    dt, fails, first = pool(Pn[:k])
                finally:
                    pool.close()
                layout = f"{cores} processes (one per core), a loop in each"
            else:
                dt, fails, first = run_loop(solve, keys, Pn, k)
                layout = "sequential loop, 1 core"
            firsts.setdefault(tool, first)
            note = (f"{layout}; {dt / k * 1e3:.3g} ms per member (wall); failures "
                    f"{fails}/{k}" + (f"; extrapolated from {k} members" if k < n else "")
                    + f"; {how}")
            res.add(name, tool, metric, dt / k * n, "s", note=note)
        print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)

    # agreement: the first member of each tool against a tight LSODA solution
    ref = _models.solve_scipy(s, dict(zip(keys, Pall[0], strict=True)), rtol=REF_RTOL,
                              atol=REF_ATOL)
    errs = ", ".join(f"{t} {'failed' if y is None else f'{rel_err(y, ref):.2g}'}"
                     for t, y in firsts.items())
    res.note(f"{name}: member 0, max rel err vs LSODA rtol {REF_RTOL:g}/atol {REF_ATOL:g}: "
             f"{errs}")


def print_speedups(res: C.Results, sizes: list[int]) -> None:
    """One table per size: a line per model, each tool's time and peer / jaxcell."""
    cell = {(r["case"], r["tool"], r["metric"]): r["value"] for r in res.rows}
    tools = [t for t in TOOLS if any(r["tool"] == t for r in res.rows)]
    peers = [t for t in tools if t != "jaxcell"]
    cases = list(dict.fromkeys(r["case"] for r in res.rows))
    heads = ["model"] + [f"{t} [s]" for t in tools] + [f"{t}/jaxcell" for t in peers]
    widths = [max(13, len(h)) for h in heads]
    for n in sizes:
        metric = f"ensemble_{n}_s"
        print(f"\n{metric} (ratios: peer time / jaxcell time, above 1: jaxcell faster)")
        print("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
        for c in cases:
            v = {t: cell.get((c, t, metric)) for t in tools}
            jx = v.get("jaxcell")
            line = [c] + [C.fmt(v[t], "s") for t in tools]
            line += [f"{v[t] / jx:.3g}" if v[t] and jx else "" for t in peers]
            print("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)))


def main() -> None:
    if "--worker" in sys.argv:
        worker_main(sys.argv)
        return
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(_models.SPEC_NAMES),
                    help="comma-separated subset of: " + ", ".join(_models.SPEC_NAMES))
    ap.add_argument("--sizes", default="1000", help="ensemble sizes, e.g. 1000,10000")
    ap.add_argument("--layouts", default="sharded",
                    help="jaxcell layouts compared at the first size (the fastest is used "
                         "for the others): sharded (default: what jc.ensemble does, one "
                         "shard_map program over every device), vmap (1 device), procs "
                         "(2 worker processes), "
                         "and, at the risk of a deadlock with jaxlib 0.10.2, split (2 CPU "
                         "devices in one process) and spmd (NamedSharding)")
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/ensemble.py", args)
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    if roadrunner is None:
        res.note("libroadrunner is not installed: its rows are skipped")
    else:
        roadrunner.Logger.setLevel(roadrunner.Logger.LOG_ERROR)
    if not _amici.available():
        res.note("AMICI is not installed: its rows are skipped")
    # warm up jax/diffrax on an unrelated model so compile times are per model
    C.block(jc.simulate(jc.models.lotka_volterra(), 0.0, 1.0).ts)
    sizes = [int(x) for x in args.sizes.split(",")]
    layouts = [x for x in args.layouts.split(",") if x]
    for name in args.models.split(","):
        bench_model(name, res, cfg, sizes, layouts)
    res.note("relative error: max over times and species of |a - ref| / max(|ref|, "
             "1e-3 max_t |ref_species|)")
    res.note("peers run a loop in one process per core (the same cores as jaxcell); "
             "jaxcell uses the layout in its note (other layouts' times are there too)")
    print(f"\n== ensemble.py results (total {res.elapsed():.0f} s) ==")
    print_speedups(res, sizes)
    res.finish(args.json)


if __name__ == "__main__":
    main()
