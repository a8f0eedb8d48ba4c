#!/usr/bin/env python
"""Single simulations, parameter ensembles and gradients: jaxcell vs scipy vs roadrunner.

Models: the repressilator (Elowitz & Leibler 2000, dimensionless, t in [0, 1000]) and the
Kholodenko (2000) MAPK cascade (t in [0, 3600] s); 100 output times; rtol 1e-6,
atol 1e-8; float64.

Cases, per model:

* single simulation: wall time (median of repeated calls after compilation) of
  ``jc.simulate``; compile time reported separately (first call minus median);
* ensembles of 1,000 and 10,000 parameter sets (all parameters perturbed log-normally,
  sigma 0.1, seed 0): jaxcell ``jax.jit(jax.vmap(...))`` over parameter arrays, in one
  process or split over 2 worker processes (the faster is used; both are reported);
  scipy LSODA and roadrunner in a Python loop (extrapolated rows say so);
* gradient of a least-squares loss (sum of squared differences between the trajectory
  and the nominal reference trajectory) at one perturbed parameter set, w.r.t. all
  parameters: jaxcell ``jax.grad`` (reverse mode, RecursiveCheckpointAdjoint); the peers
  use forward finite differences (n+1 solves);
* agreement: max relative error of each tool's nominal trajectory against scipy LSODA at
  rtol 1e-10 / atol 1e-12.

Run ``python benchmarks/ensemble.py --quick --json bench-results/ensemble.json``.
"""

from __future__ import annotations

import os
import sys

# Two XLA CPU devices for the in-process 2-device ensemble layouts (--layouts ...split or
# ...spmd; not defaults, see EnsembleRunner). Must precede the first import of jax (also
# through jaxcell or _common).
if "--one-device" not in sys.argv and any("split" in a or "spmd" in a for a in sys.argv):
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        _flags += " --xla_force_host_platform_device_count=2"
        os.environ["XLA_FLAGS"] = _flags.strip()

import time  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402
import _models  # noqa: E402
import _sbml  # noqa: E402

import jaxcell as jc  # noqa: E402

try:
    import roadrunner
except ImportError:  # optional peer
    roadrunner = None

MODELS = {
    "repressilator": (_models.repressilator, 1000.0, _sbml.repressilator_laws),
    "mapk": (_models.kholodenko_mapk, 3600.0, _sbml.kholodenko_laws),
}
N_POINTS = 100
RTOL, ATOL = 1e-6, 1e-8
REF_RTOL, REF_ATOL = 1e-10, 1e-12
SIGMA, SEED = 0.1, 0
TOOLS = ["jaxcell", "scipy-LSODA", "roadrunner"]
JX, SP, RR = TOOLS


def settings(quick: bool) -> dict:
    if quick:
        return dict(single_repeats=5, single_min_s=1.0, ens_repeats=1, scipy_members=100,
                    rr_max=1000, grad_repeats=3, fd_repeats=1)
    return dict(single_repeats=20, single_min_s=5.0, ens_repeats=3, scipy_members=1000,
                rr_max=10_000, grad_repeats=10, fd_repeats=3)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max(|ref|, 1e-3 max_t |ref_species|, 1e-12) over times, species."""
    a, ref = np.asarray(a, float), np.asarray(ref, float)
    floor = np.maximum(1e-3 * np.max(np.abs(ref), axis=0, keepdims=True), 1e-12)
    return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), floor)))


def perturbed(p0: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return p0[None, :] * np.exp(SIGMA * rng.standard_normal((n, p0.size)))


# -- jaxcell ----------------------------------------------------------------------


def make_sim(net, t1, ts):
    path = f"{net.scale}/{net.name}/species"

    def sim(p):
        model = eqx.tree_at(lambda m: m.p, net, p)
        traj = jc.simulate(model, 0.0, t1, saveat=ts, throw=False)
        return traj[path], traj.success, traj.stats["num_steps"]

    return sim


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
        self.method, self.n = method, n
        devs = jax.devices()
        f = jax.jit(jax.vmap(sim))
        t = time.perf_counter()
        if method == "vmap":
            self.shardings = [SingleDeviceSharding(devs[0])]
            self.compiled = [f.lower(jax.ShapeDtypeStruct((n, n_params), jnp.float64,
                                                          sharding=self.shardings[0])).compile()]
        elif method == "spmd":
            mesh = Mesh(np.array(devs), ("batch",))
            sh = NamedSharding(mesh, P("batch"))
            fs = jax.jit(jax.vmap(sim), in_shardings=sh, out_shardings=sh)
            self.shardings = [sh]
            self.compiled = [fs.lower(jax.ShapeDtypeStruct((n, n_params), jnp.float64,
                                                           sharding=sh)).compile()]
        elif method == "split":
            if n % len(devs):
                raise ValueError("batch size must be a multiple of the device count")
            self.shardings = [SingleDeviceSharding(d) for d in devs]
            m = n // len(devs)
            self.compiled = []
            for sh in self.shardings:
                spec = jax.ShapeDtypeStruct((m, n_params), jnp.float64, sharding=sh)
                self.compiled.append(f.lower(spec).compile())
        else:
            raise ValueError(method)
        self.compile_s = time.perf_counter() - t
        self.compile_note = "AOT lower+compile" + (
            f" of {len(self.compiled)} executables" if len(self.compiled) > 1 else "")

    def __call__(self, P_: np.ndarray):
        parts = np.split(P_, len(self.compiled))
        outs = [c(jax.device_put(x, sh)) for c, x, sh in
                zip(self.compiled, parts, self.shardings, strict=True)]
        outs = jax.block_until_ready(outs)
        return [np.concatenate([np.asarray(o[i]) for o in outs]) for i in range(3)]


class ProcessRunner:
    """The batch split over 2 worker processes, each running ``vmap`` on its half.

    Each worker (this script with ``--worker``) imports jax, loads its half of the
    parameters, compiles ahead of time and reports ready; the timed call then tells both
    to run at once and collects their results. Separate processes have separate XLA
    thread pools, so this avoids the deadlock of the in-process 2-device layouts.
    ``compile_s`` is the wall time until both workers are ready (python and jax start-up
    plus compilation, the two workers in parallel).
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
                 self.outs[-1], "--one-device"],
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
    build, t1, _ = MODELS[model]
    net = build()
    sim = make_sim(net, t1, jnp.linspace(0.0, t1, N_POINTS))
    P_ = np.load(inp)
    runner = EnsembleRunner(sim, "vmap", P_.shape[0], P_.shape[1])
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


def make_runner(model: str, sim, method: str, P_: np.ndarray):
    if method == "procs":
        return ProcessRunner(model, P_)
    return EnsembleRunner(sim, method, P_.shape[0], P_.shape[1])


METHOD_LABEL = {"vmap": "vmap, 1 device", "procs": "2 processes x vmap",
                "spmd": "NamedSharding SPMD, 2 devices",
                "split": "batch split over 2 devices in 1 process"}


# -- peers ----------------------------------------------------------------------


def scipy_solve(net, t1, ts, params, rtol=RTOL, atol=ATOL):
    f = _models.numpy_rhs(net, params)
    sol = solve_ivp(f, (0.0, t1), np.asarray(net.x0, float), method="LSODA", t_eval=ts,
                    rtol=rtol, atol=atol)
    y = sol.y.T if sol.success else np.full((len(ts), len(net.species)), np.nan)
    return y, sol


class RRModel:
    def __init__(self, net, t1, laws):
        self.species = list(net.species)
        self.sbml = _sbml.network_to_sbml(net, laws)
        t = time.perf_counter()
        self.rr = roadrunner.RoadRunner(self.sbml)
        self.load_s = time.perf_counter() - t
        self.rr.integrator.relative_tolerance = RTOL
        self.rr.integrator.absolute_tolerance = ATOL
        self.rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in net.species]
        self.ids = list(self.rr.model.getGlobalParameterIds())
        self.nominal = {k: float(self.rr.getValue(k)) for k in self.ids}
        self.t1 = t1

    def set(self, params: dict[str, float]) -> None:
        for k in self.ids:
            self.rr.setValue(k, params[k])

    def solve(self):
        self.rr.reset()
        return np.asarray(self.rr.simulate(0.0, self.t1, N_POINTS))[:, 1:]

    def rates(self, x, params) -> np.ndarray:
        self.set(params)
        for s, v in zip(self.species, x, strict=True):
            self.rr.setValue(f"[{s}]", float(v))
        r = dict(zip(self.rr.model.getFloatingSpeciesIds(), self.rr.getRatesOfChange(),
                     strict=True))
        self.set(self.nominal)
        self.rr.reset()
        return np.array([r[s] for s in self.species])


def fd_gradient(solve, p: np.ndarray, target: np.ndarray, idx, rel_step: float,
                central: bool = False) -> np.ndarray:
    """Finite-difference gradient of sum((solve(p) - target)^2) w.r.t. p[idx]."""
    def loss(q):
        return float(np.sum((solve(q) - target) ** 2))

    g = np.zeros(len(idx))
    l0 = None if central else loss(p)
    for j, i in enumerate(idx):
        h = rel_step * abs(p[i])
        qp = p.copy()
        qp[i] += h
        if central:
            qm = p.copy()
            qm[i] -= h
            g[j] = (loss(qp) - loss(qm)) / (2 * h)
        else:
            g[j] = (loss(qp) - l0) / h
    return g


def grad_err(g, ref) -> float:
    return float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))


# -- one model ----------------------------------------------------------------------


def bench_model(name: str, res: C.Results, cfg: dict, sizes: list[int],
                methods: list[str]) -> None:
    build, t1, laws = MODELS[name]
    net = build()
    ts_np = np.linspace(0.0, t1, N_POINTS)
    ts = jnp.asarray(ts_np)
    p0 = np.asarray(net.p, float)
    pnames = list(net.parameter_names)
    nominal = _models.param_dict(net, p0)
    active = [i for i, v in enumerate(p0) if v != 0.0]  # FD needs a nonzero scale
    print(f"\n=== {name}: {len(net.species)} species, {len(net.reaction_names)} reactions, "
          f"{len(pnames)} parameters, t in [0, {t1:g}], {N_POINTS} points ===", flush=True)

    rr = None
    if roadrunner is not None:
        rr = RRModel(net, t1, laws())

    # rhs check: hand-written numpy and SBML rates against jaxcell's at random states
    rng = np.random.default_rng(1)
    f_np = _models.numpy_rhs(net, nominal)
    e_np = e_rr = 0.0
    for _ in range(5):
        x = rng.uniform(0.1, 100.0, len(net.species))
        ref = np.asarray(net.derivative(jnp.asarray(x)))
        scale = np.maximum(np.abs(ref), 1e-12)
        e_np = max(e_np, float(np.max(np.abs(f_np(0.0, x) - ref) / scale)))
        if rr is not None:
            e_rr = max(e_rr, float(np.max(np.abs(rr.rates(x, nominal) - ref) / scale)))
    case = f"{name}: rhs check"
    res.add(case, SP, "dx/dt max rel diff vs jaxcell", e_np, "rel")
    if rr is not None:
        res.add(case, RR, "dx/dt max rel diff vs jaxcell", e_rr, "rel")

    # reference trajectory
    t_ref, (y_ref, sol_ref) = C.timed(lambda: scipy_solve(net, t1, ts_np, nominal,
                                                         REF_RTOL, REF_ATOL))
    if not sol_ref.success:
        res.note(f"{name}: reference LSODA solve failed: {sol_ref.message}")

    # ---- single simulation ----
    case = f"{name}: single"
    path = f"{net.scale}/{net.name}/species"

    def jc_single():
        return jc.simulate(net, 0.0, t1, saveat=ts)

    t_first, traj = C.timed(jc_single)
    times = C.repeat(jc_single, cfg["single_repeats"], cfg["single_min_s"], 200)
    wall = C.median(times)
    res.add(case, JX, "first call (trace+compile+run)", t_first, "s")
    res.add(case, JX, "compile (first call - median)", t_first - wall, "s")
    res.add(case, JX, "wall (median)", wall, "s", note=f"{len(times)} calls of jc.simulate")
    sim = make_sim(net, t1, ts)
    jsim = jax.jit(sim)
    C.block(jsim(jnp.asarray(p0)))
    times_j = C.repeat(lambda: jsim(jnp.asarray(p0)), cfg["single_repeats"],
                       cfg["single_min_s"], 200)
    res.add(case, JX, "wall, inside user jax.jit (median)", C.median(times_j), "s")
    st = traj.stats
    res.add(case, JX, "accepted steps", int(st["num_accepted_steps"]), "count")
    res.add(case, JX, "rejected steps", int(st["num_rejected_steps"]), "count")
    y_jx = np.asarray(traj[path])

    y_sp, sol = scipy_solve(net, t1, ts_np, nominal)
    times = C.repeat(lambda: scipy_solve(net, t1, ts_np, nominal), cfg["single_repeats"],
                     cfg["single_min_s"], 200)
    res.add(case, SP, "wall (median)", C.median(times), "s")
    res.add(case, SP, "rhs evaluations", int(sol.nfev), "count")
    if rr is not None:
        res.add(case, RR, "compile (first call - median)", rr.load_s, "s",
                note="RoadRunner(sbml): parse + LLVM JIT")
        y_rr = rr.solve()
        times = C.repeat(rr.solve, cfg["single_repeats"], cfg["single_min_s"], 2000)
        res.add(case, RR, "wall (median)", C.median(times), "s",
                note="reset() + simulate(0, t1, 100)")

    # ---- agreement ----
    case = f"{name}: agreement"
    note = f"vs LSODA rtol {REF_RTOL:g}/atol {REF_ATOL:g}"
    res.add(case, JX, "max rel err vs reference", rel_err(y_jx, y_ref), "rel", note=note)
    res.add(case, SP, "max rel err vs reference", rel_err(y_sp, y_ref), "rel")
    if rr is not None:
        res.add(case, RR, "max rel err vs reference", rel_err(y_rr, y_ref), "rel")
        res.add(case, JX, "max rel err vs roadrunner", rel_err(y_jx, y_rr), "rel")
    res.add(case, JX, "max rel err vs scipy-LSODA (same tol)", rel_err(y_jx, y_sp), "rel")

    # ---- ensembles ----
    Pall = perturbed(p0, max(sizes))
    best_method = None
    for n in sizes:
        case = f"{name}: ensemble {n}"
        Pn = Pall[:n]
        cand = methods if best_method is None else [best_method]
        walls = {}
        ys_by = {}
        for m in cand:
            if m in ("split", "spmd") and len(jax.devices()) < 2:
                continue
            runner = make_runner(name, sim, m, Pn)
            tw = []
            for _ in range(cfg["ens_repeats"]):
                dt, out = C.timed(lambda r=runner, x=Pn: r(x))
                tw.append(dt)
            walls[m] = (C.median(tw), runner)
            ys_by[m] = out
            if hasattr(runner, "close"):
                runner.close()
            if len(cand) > 1:
                res.add(case, JX, f"wall [{METHOD_LABEL[m]}]", walls[m][0], "s",
                        note=f"{runner.compile_note} {runner.compile_s:.1f} s")
        best_method = min(walls, key=lambda k: walls[k][0]) if best_method is None \
            else best_method
        wall, runner = walls[best_method]
        ys, ok, steps = ys_by[best_method]
        if len(ys_by) > 1:
            diff = max(float(np.nanmax(np.abs(ys_by[m][0] - ys))) for m in ys_by)
            if diff > 1e-6:
                res.note(f"{case}: layouts disagree by {diff:.3g} (max abs)")
        lbl = METHOD_LABEL[best_method]
        res.add(case, JX, "compile", runner.compile_s, "s",
                note=f"{runner.compile_note}, {lbl}")
        res.add(case, JX, "wall", wall, "s", note=f"{lbl}; median of {cfg['ens_repeats']}")
        res.add(case, JX, "per member", wall / n, "s")
        res.add(case, JX, "failures", int(n - np.sum(ok)), "count")
        res.add(case, JX, "max solver steps in batch", int(np.max(steps)), "count")

        # scipy: loop over a subset, extrapolate
        k = min(n, cfg["scipy_members"])
        fails = 0
        t0 = time.perf_counter()
        for i in range(k):
            _, s = scipy_solve(net, t1, ts_np, _models.param_dict(net, Pn[i]))
            fails += not s.success
        tk = time.perf_counter() - t0
        ex = None if k == n else f"extrapolated from {k} members"
        res.add(case, SP, "wall", tk / k * n, "s", note=ex or "sequential loop, 1 core")
        res.add(case, SP, "per member", tk / k, "s")
        res.add(case, SP, "failures", fails, "count",
                note=None if k == n else f"among the {k} members run")

        if rr is not None:
            k = min(n, cfg["rr_max"])
            fails = 0
            t0 = time.perf_counter()
            for i in range(k):
                rr.set(_models.param_dict(net, Pn[i]))
                try:
                    rr.solve()
                except RuntimeError:
                    fails += 1
            tk = time.perf_counter() - t0
            rr.set(rr.nominal)
            ex = None if k == n else f"extrapolated from {k} members"
            res.add(case, RR, "wall", tk / k * n, "s", note=ex or "sequential loop, 1 core")
            res.add(case, RR, "per member", tk / k, "s")
            res.add(case, RR, "failures", fails, "count",
                    note=None if k == n else f"among the {k} members run")
        print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)

    # ---- gradient ----
    case = f"{name}: gradient"
    p_star = Pall[0].copy()
    target = jnp.asarray(y_ref)

    def loss(p):
        return jnp.sum((sim(p)[0] - target) ** 2)

    g = jax.jit(jax.grad(loss))
    x = jnp.asarray(p_star)
    t = time.perf_counter()
    traced = g.trace(x)
    t_trace = time.perf_counter() - t
    lowered = traced.lower()
    t_lower = time.perf_counter() - t
    compiled = lowered.compile()
    t_compile = time.perf_counter() - t
    t_g, g_jx = C.timed(lambda: compiled(x))  # AOT-compiled: the first call is a run
    g_jx = np.asarray(g_jx)
    times = C.repeat(lambda: compiled(x), cfg["grad_repeats"], first=[t_g])
    res.add(case, JX, "compile (trace+lower+XLA)", t_compile, "s",
            note=f"trace {t_trace:.1f} s, lower {t_lower - t_trace:.1f} s")
    res.add(case, JX, "wall per gradient", C.median(times), "s",
            note=f"reverse mode, {len(pnames)} parameters")
    fwd_t, _ = C.timed(lambda: jsim(x))
    res.add(case, JX, "gradient / forward solve", C.median(times) / fwd_t, "ratio")

    # reference gradient: central differences of the tight LSODA solution
    def solve_ref(q):
        params = _models.param_dict(net, q)
        return scipy_solve(net, t1, ts_np, params, REF_RTOL, REF_ATOL)[0]

    t0 = time.perf_counter()
    g_ref = fd_gradient(solve_ref, p_star, y_ref, active, 1e-5, central=True)
    print(f"  (reference gradient: {time.perf_counter() - t0:.1f} s)", flush=True)
    fd_note = "max |g - g_ref| / max |g_ref|; g_ref: central FD of LSODA 1e-10"
    res.add(case, JX, "grad rel err vs FD reference", grad_err(g_jx[active], g_ref), "rel",
            note=fd_note)

    def solve_sp(q):
        return scipy_solve(net, t1, ts_np, _models.param_dict(net, q))[0]

    step = RTOL ** 0.5
    t_fd, g_sp = C.timed(lambda: fd_gradient(solve_sp, p_star, y_ref, active, step))
    times = C.repeat(lambda: fd_gradient(solve_sp, p_star, y_ref, active, step),
                     cfg["fd_repeats"], first=[t_fd])
    res.add(case, SP, "wall per gradient", C.median(times), "s",
            note=f"forward FD, {len(active) + 1} solves, step {step:g} relative")
    res.add(case, SP, "grad rel err vs FD reference", grad_err(g_sp, g_ref), "rel")
    if rr is not None:
        def solve_rr(q):
            rr.set(_models.param_dict(net, q))
            return rr.solve()

        t_fd, g_rr = C.timed(lambda: fd_gradient(solve_rr, p_star, y_ref, active, step))
        times = C.repeat(lambda: fd_gradient(solve_rr, p_star, y_ref, active, step),
                         cfg["fd_repeats"], first=[t_fd])
        rr.set(rr.nominal)
        res.add(case, RR, "wall per gradient", C.median(times), "s",
                note=f"forward FD, {len(active) + 1} solves, step {step:g} relative")
        res.add(case, RR, "grad rel err vs FD reference", grad_err(g_rr, g_ref), "rel")
    print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)


def main() -> None:
    if "--worker" in sys.argv:
        worker_main(sys.argv)
        return
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="repressilator,mapk",
                    help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--sizes", default="1000,10000", help="ensemble sizes")
    ap.add_argument("--layouts", default="vmap,procs",
                    help="ensemble layouts compared at the first size (the fastest is used "
                         "for the others): vmap (1 device), procs (2 worker processes), "
                         "and, at the risk of a deadlock with jaxlib 0.10.2, split (2 CPU "
                         "devices in one process) and spmd (NamedSharding)")
    ap.add_argument("--scipy-members", type=int, help="scipy ensemble members actually run")
    ap.add_argument("--rr-max", type=int, help="roadrunner ensemble members actually run")
    ap.add_argument("--one-device", action="store_true",
                    help="do not split the CPU into 2 XLA devices for split/spmd")
    args = ap.parse_args()
    cfg = settings(args.quick)
    if args.scipy_members:
        cfg["scipy_members"] = args.scipy_members
    if args.rr_max:
        cfg["rr_max"] = args.rr_max
    res = C.Results("benchmarks/ensemble.py", args)
    print(f"jax {jax.__version__} on {jax.default_backend()}: {jax.devices()}; "
          f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores; "
          f"mode {'quick' if args.quick else 'full'}")
    if roadrunner is None:
        res.note("libroadrunner is not installed: roadrunner rows skipped "
                 "(pip install libroadrunner python-libsbml)")
    # warm up jax/diffrax on an unrelated model so compile times are per model
    C.block(jc.simulate(jc.models.lotka_volterra(), 0.0, 1.0).ts)
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m for m in args.layouts.split(",") if m]
    for name in args.models.split(","):
        bench_model(name, res, cfg, sizes, methods)
    res.note("relative error: max over times and species of |a - ref| / max(|ref|, "
             "1e-3 max_t |ref_species|)")
    res.note("ratios are jaxcell / peer (below 1: jaxcell faster); peers run sequentially "
             "on 1 core, jaxcell ensembles use the layout named in the notes")
    title = f"== ensemble.py results (total {res.elapsed():.0f} s) =="
    C.print_table(res, TOOLS, title=title)
    for n in res.notes:
        print(f"NOTE: {n}")
    if args.json:
        res.write_json(args.json)


if __name__ == "__main__":
    main()
