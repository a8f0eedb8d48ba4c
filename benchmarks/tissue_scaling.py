#!/usr/bin/env python
"""Tissue scaling: N coupled repressilator cells (N = 10^2 ... 10^5), jaxcell vs scipy.

Every cell runs the 6-species repressilator (``jc.models.repressilator()`` in
``jaxcell.cellular.PerCell``) from its own random initial state (seed 0, every species
uniform in [0, 20]). Two couplings:

* ``gap``: the cells sit on a periodic square lattice (``square_lattice``) and exchange
  the protein ``p_lacI`` with their 4 neighbours through gap junctions
  (``jaxcell.tissue.GapJunction``, ``D = 0.2``):
  ``dp_i/dt += D sum_j (p_j - p_i)``.
* ``field``: one cell per voxel of a 2-D grid of spacing 1 (``DiffusingField``, no-flux
  walls, ``D = 0.5``, decay 0.1, starting at 0). ``p_lacI`` crosses the membrane
  passively both ways (a ``jaxcell.Coupling``): ``flux_i = k (p_i - c_v(i))``,
  ``k = 0.5``, leaves the cell and enters its voxel (cell and voxel have the same
  volume, so the exchange conserves mass), as in quorum-sensing coupled clocks.

Solver for both tools: explicit Runge-Kutta 5(4), ``diffrax.Tsit5()`` with
``PIDController(rtol=1e-6, atol=1e-8)`` for jaxcell (also its default above 500 states)
and ``scipy.integrate.solve_ivp(method="RK45")`` (Dormand-Prince) with the same
tolerances and a hand-written, vectorised NumPy right-hand side of the same model.
float64. Every (variant, N, tool) runs in a fresh subprocess so that its memory is
measured alone, by default on one thread (``--threads 1``: one BLAS thread for scipy,
no XLA intra-op thread pool for jaxcell; ``--threads default`` keeps each tool's own).
Rows per case and tool: ``compile_s`` (first call minus a warm call),
``time_per_unit_s`` (median warm wall time / simulated span), ``peak_memory_bytes``
(the worker's peak resident memory after its imports minus its resident memory then)
and ``steps`` (solver steps, accepted + rejected); on a GPU also ``device_peak_bytes``.
Each case checks that both tools reach the same final state (``max_rel_diff_vs_scipy``).

Run ``python benchmarks/tissue_scaling.py --quick --json bench-results/tissue_scaling.json``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

RTOL, ATOL = 1e-6, 1e-8
SEED = 0
D_GAP = 0.2                          # gap-junction coupling of p_lacI (1/time)
D_FIELD, DECAY, K_EX = 0.5, 0.1, 0.5  # field diffusion, field decay, membrane exchange
P_LACI = 3                           # species order: m_lacI m_tetR m_cI p_lacI p_tetR p_cI
# the repressilator's parameters (jc.models.repressilator() defaults)
ALPHA, ALPHA0, BETA, HILL_N, K_REP, DELTA_M = 216.404, 0.2164, 0.2, 2.0, 1.0, 1.0
VARIANTS = ("gap", "field")
TOOLS = ("jaxcell", "scipy")
DEFAULT_SIZES = "100,1000,10000,100000"
MAX_ACCEPTABLE_DIFF = 1e-4


def lattice_shape(n: int) -> tuple[int, int]:
    """``(ny, nx)`` with ``ny * nx = n``, as square as possible (``ny <= nx``)."""
    ny = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    if ny < 3:
        raise SystemExit(f"--sizes: {n} cells do not make a lattice of at least 3 x 3")
    return ny, n // ny


def span_for(n: int, quick: bool) -> float:
    """Simulated span: about 1.2 periods of the repressilator (period 43.5), shorter for
    the big cases (the metric is time per simulated time unit)."""
    if n <= 10_000:
        return 50.0
    if n <= 100_000:
        return 20.0 if quick else 50.0
    return 10.0


def initial_species(n: int) -> np.ndarray:
    return np.random.default_rng(SEED).uniform(0.0, 20.0, size=(n, 6))


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak resident memory from now on, minus the resident memory now.

    On Linux the kernel's high-water mark (``VmHWM``) is reset here (``clear_refs``), so
    that a transient peak during the imports does not hide a smaller peak of the work
    that follows; elsewhere ``getrusage(RUSAGE_SELF).ru_maxrss`` minus its value now.
    """

    def __init__(self):
        self.base_kb = _status_kb("VmRSS")
        self.hwm_reset = False
        if self.base_kb is not None:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                self.hwm_reset = True
            except OSError:
                pass
        if not self.hwm_reset:
            self.base_kb = self._maxrss_kb()

    @staticmethod
    def _maxrss_kb() -> int:
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r / 1024 if sys.platform == "darwin" else r)

    def increase_bytes(self) -> int:
        peak = _status_kb("VmHWM") if self.hwm_reset else self._maxrss_kb()
        return max(int(peak or 0) - int(self.base_kb or 0), 0) * 1024


def _time_calls(fn, repeats: int, max_total: float) -> list[float]:
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < max_total):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


# -- jaxcell ------------------------------------------------------------------------------


def _exchange(t, x, p):
    """Passive membrane exchange of p_lacI between each cell and its voxel (module-level,
    so rebuilt models reuse the compiled program)."""
    import jax.numpy as jnp

    cells, c = x["cells"], x["field"]
    flux = p["k"] * (cells[:, P_LACI] - c.reshape(-1))     # out of the cell, into the voxel
    return {"cells": jnp.zeros_like(cells).at[:, P_LACI].set(-flux),
            "field": flux.reshape(c.shape)}


def jaxcell_model(variant: str, n: int):
    import jaxcell as jc
    from jaxcell.cellular import PerCell
    from jaxcell.tissue import DiffusingField, GapJunction, Grid, square_lattice

    rep = jc.models.repressilator()
    assert rep.species.index("p_lacI") == P_LACI
    cells = PerCell(rep, n_cells=n)
    ny, nx = lattice_shape(n)
    if variant == "gap":
        gap = GapJunction("gap", square_lattice(nx, ny), rep.path, D=D_GAP,
                          component="p_lacI")
        return jc.Composite([cells, gap]), rep.path
    field = DiffusingField("signal", Grid((ny, nx)), D=D_FIELD, decay=DECAY)
    exchange = jc.Coupling("exchange", _exchange, parameters={"k": K_EX},
                           changes={"cells": rep.path, "field": field.path})
    return jc.Composite([cells, field, exchange]), rep.path


def run_jaxcell(variant: str, n: int, span: float, repeats: int, max_total: float,
                out: str) -> dict:
    import diffrax
    import jax

    import jaxcell as jc

    mem = PeakMemory()
    model, species = jaxcell_model(variant, n)
    y0 = {species: initial_species(n)}
    solver = diffrax.Tsit5()
    controller = diffrax.PIDController(rtol=RTOL, atol=ATOL)

    def call():
        traj = jc.simulate(model, 0.0, span, saveat=[span], y0=y0, solver=solver,
                           stepsize_controller=controller)
        return jax.block_until_ready(traj)

    t = time.perf_counter()
    traj = call()
    first = time.perf_counter() - t
    c0 = time.process_time()
    warm = _time_calls(call, repeats, max_total)
    cpu = (time.process_time() - c0) / len(warm)
    peak = mem.increase_bytes()
    final = {"/".join(p): np.asarray(v[-1]) for p, v in
             ((p, traj[p]) for p, _ in model.spec.owned)}
    np.savez(out, **final)
    stats = traj.stats
    res = {"first_s": first, "warm_s": warm, "cpu_per_call_s": cpu, "peak_rss": peak,
           "steps": int(stats["num_steps"]), "accepted": int(stats["num_accepted_steps"]),
           "backend": jax.default_backend(), "states": model.spec.size}
    dev = jax.devices()[0]
    stats_fn = getattr(dev, "memory_stats", None)
    dev_mem = stats_fn() if callable(stats_fn) else None
    if dev_mem and "peak_bytes_in_use" in dev_mem:
        res["device_peak"] = int(dev_mem["peak_bytes_in_use"])
    return res


# -- scipy ----------------------------------------------------------------------------------


def square_neighbours(ny: int, nx: int) -> np.ndarray:
    """``(N, 4)`` indices of the periodic von Neumann neighbours of cell
    ``i = row * nx + col`` (the cell numbering of ``jaxcell.tissue.square_lattice``)."""
    col, row = np.meshgrid(np.arange(nx), np.arange(ny))
    col, row = col.ravel(), row.ravel()
    return np.stack([row * nx + (col - 1) % nx, row * nx + (col + 1) % nx,
                     ((row - 1) % ny) * nx + col, ((row + 1) % ny) * nx + col], axis=1)


def repressilator_rates(y: np.ndarray) -> np.ndarray:
    """``d/dt`` of the ``(N, 6)`` species (Elowitz & Leibler 2000, dimensionless)."""
    m, p = y[:, :3], y[:, 3:]
    repressor = p[:, [2, 0, 1]]          # lacI <- cI, tetR <- lacI, cI <- tetR
    dy = np.empty_like(y)
    dy[:, :3] = ALPHA / (1.0 + (repressor / K_REP) ** HILL_N) + ALPHA0 - DELTA_M * m
    dy[:, 3:] = BETA * m - BETA * p
    return dy


def noflux_laplacian(c: np.ndarray) -> np.ndarray:
    """Finite-volume Laplacian (spacing 1) with zero-flux walls, by slicing."""
    lap = -4.0 * c
    lap[1:] += c[:-1]
    lap[:-1] += c[1:]
    lap[0] += c[0]
    lap[-1] += c[-1]
    lap[:, 1:] += c[:, :-1]
    lap[:, :-1] += c[:, 1:]
    lap[:, 0] += c[:, 0]
    lap[:, -1] += c[:, -1]
    return lap


def scipy_rhs(variant: str, n: int):
    ny, nx = lattice_shape(n)
    if variant == "gap":
        nbr = square_neighbours(ny, nx)

        def rhs(t, y):
            y = y.reshape(n, 6)
            dy = repressilator_rates(y)
            p = y[:, P_LACI]
            dy[:, P_LACI] += D_GAP * (p[nbr].sum(axis=1) - 4.0 * p)
            return dy.ravel()

        return rhs

    def rhs(t, y):
        cells, c = y[: 6 * n].reshape(n, 6), y[6 * n:].reshape(ny, nx)
        dy = repressilator_rates(cells)
        flux = K_EX * (cells[:, P_LACI] - c.ravel())
        dy[:, P_LACI] -= flux
        dc = D_FIELD * noflux_laplacian(c) - DECAY * c + flux.reshape(ny, nx)
        return np.concatenate([dy.ravel(), dc.ravel()])

    return rhs


def run_scipy(variant: str, n: int, span: float, repeats: int, max_total: float,
              out: str) -> dict:
    from scipy.integrate import solve_ivp

    mem = PeakMemory()
    rhs = scipy_rhs(variant, n)
    y0 = initial_species(n).ravel()
    if variant == "field":
        y0 = np.concatenate([y0, np.zeros(n)])
    sols = []

    def call():
        # t_eval=[span]: only the final state is kept (no per-step copies of the state)
        sol = solve_ivp(rhs, (0.0, span), y0, method="RK45", rtol=RTOL, atol=ATOL,
                        t_eval=[span])
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        sols.append(sol)

    c0 = time.process_time()
    times = _time_calls(call, repeats, max_total)
    cpu = (time.process_time() - c0) / len(times)
    peak = mem.increase_bytes()
    sol = sols[-1]
    y = sol.y[:, -1]
    final = {"molecular/repressilator/species": y[: 6 * n].reshape(n, 6)}
    if variant == "field":
        final["tissue/signal/concentration"] = y[6 * n:].reshape(lattice_shape(n))
    np.savez(out, **final)
    # RK45: 2 evaluations to start (f(t0) and the initial-step guess), then 6 per step
    # attempt (5 stages + the FSAL evaluation at the new point), accepted or rejected.
    steps = (sol.nfev - 2) // 6
    return {"first_s": times[0], "warm_s": times, "cpu_per_call_s": cpu, "peak_rss": peak,
            "steps": int(steps), "accepted": None, "nfev": int(sol.nfev),
            "states": int(y0.size)}


def worker(argv: list[str]) -> None:
    tool, variant, n, span, repeats, max_total, out = argv
    fn = run_jaxcell if tool == "jaxcell" else run_scipy
    res = fn(variant, int(n), float(span), int(repeats), float(max_total), out)
    print("RESULT " + json.dumps(res), flush=True)


# -- driver -------------------------------------------------------------------------------


def rel_diff(a: dict, b: dict) -> float:
    """max over variables and entries of ``|a - b| / max(|b|, 1e-3 max|b_column|)``."""
    worst = 0.0
    for k, ref in b.items():
        x, ref = np.asarray(a[k]), np.asarray(ref)
        scale = np.abs(ref).max(axis=0) if ref.ndim == 2 and k.endswith("species") \
            else np.abs(ref).max()
        floor = np.maximum(np.abs(ref), 1e-3 * scale)
        worst = max(worst, float(np.max(np.abs(x - ref) / np.maximum(floor, 1e-300))))
    return worst


SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def worker_env(single_thread: bool) -> dict[str, str]:
    """The environment of a worker: as inherited, or one thread for BLAS and XLA."""
    env = dict(os.environ)
    if single_thread:
        env.update(SINGLE_THREAD_ENV)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SINGLE_THREAD_XLA).strip()
    return env


def spawn(tool: str, variant: str, n: int, span: float, repeats: int, max_total: float,
          out: str, timeout: float, single_thread: bool) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, variant, str(n),
           str(span), str(repeats), str(max_total), out]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=worker_env(single_thread))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": f"worker exit {p.returncode}: {' | '.join(tail)}"}
    res = json.loads(lines[-1][len("RESULT "):])
    res["process_s"] = time.perf_counter() - t
    return res


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C

    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES,
                    help=f"numbers of cells, comma-separated (default {DEFAULT_SIZES})")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="gap (GapJunction on a lattice) and/or field (DiffusingField)")
    ap.add_argument("--scipy-max", type=int, default=None,
                    help="largest N for scipy (default 100000; larger N is skipped)")
    ap.add_argument("--span", type=float, default=None,
                    help="simulated span for every size (default: 50, 10-20 above 10^4)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per worker process before it is killed")
    ap.add_argument("--threads", choices=("1", "default"), default="1",
                    help="1 (default): one thread per tool, OPENBLAS/OMP/MKL_NUM_THREADS=1 "
                         "and XLA without its intra-op thread pool; default: each tool's "
                         "own threading")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    for n in sizes:
        lattice_shape(n)
    if any(v not in VARIANTS for v in variants):
        raise SystemExit(f"--variants: choose from {VARIANTS}; got {args.variants!r}")
    scipy_max = 100_000 if args.scipy_max is None else args.scipy_max
    reps = {"jaxcell": 2 if args.quick else 5, "scipy": 1 if args.quick else 3}
    max_total = 20.0 if args.quick else 120.0
    timeout = args.timeout or (600.0 if args.quick else 3600.0)

    res = C.Results("benchmarks/tissue_scaling.py", args)
    print(f"{res.machine['cpu']}, {res.machine['usable_cores']} usable cores, load "
          f"{res.machine['loadavg_start']}; jax backend {res.machine['jax_backend']}; "
          f"mode {'quick' if args.quick else 'full'}")
    res.note("solver: Tsit5 + PIDController(rtol=1e-6, atol=1e-8) (jaxcell) and "
             "solve_ivp RK45, same rtol/atol (scipy); float64; one fresh process per case")
    single_thread = args.threads == "1"
    if single_thread:
        res.note(f"--threads 1: workers run with {SINGLE_THREAD_ENV} and XLA_FLAGS "
                 f"+= {SINGLE_THREAD_XLA!r} (one core per tool)")
    else:
        res.note("--threads default: each tool's own threading (XLA's CPU thread pool "
                 "for jaxcell; OpenBLAS threads in the matrix-vector products that form "
                 "scipy's RK45 stages)")
    res.note("peak_memory_bytes: the worker's peak resident memory after its imports "
             "(Linux VmHWM, reset after the imports) minus its resident memory then: "
             "model, compilation and all timed solves")
    summary = []
    with tempfile.TemporaryDirectory(prefix="tissue_scaling_") as tmp:
        for variant in variants:
            for n in sizes:
                span = args.span or span_for(n, args.quick)
                case = f"{variant} N={n}"
                finals = {}
                line = {"case": case, "variant": variant, "n": n, "span": span}
                for tool in TOOLS:
                    if tool == "scipy" and n > scipy_max:
                        why = f"N > {scipy_max} (--scipy-max)"
                        print(f"  {case:<22} scipy   skipped ({why})", flush=True)
                        res.add(case, tool, "time_per_unit_s", None, "s",
                                f"skipped ({why})", echo=False)
                        line["scipy_skipped"] = why
                        continue
                    out = os.path.join(tmp, f"{variant}_{n}_{tool}.npz")
                    r = spawn(tool, variant, n, span, reps[tool], max_total, out, timeout,
                              single_thread)
                    if "error" in r:
                        print(f"  {case:<22} {tool:<7} FAILED: {r['error']}", flush=True)
                        res.add(case, tool, "time_per_unit_s", None, "s",
                                f"failed: {r['error']}", echo=False)
                        continue
                    with np.load(out) as z:
                        finals[tool] = {k: z[k] for k in z.files}
                    # scipy has no warm-up: its first call is timed, and left out of
                    # the median when there are more
                    calls = r["warm_s"][1:] if tool == "scipy" and len(r["warm_s"]) > 1 \
                        else r["warm_s"]
                    warm = C.median(calls)
                    per_unit = warm / span
                    cpu_note = (f"median of {len(calls)} timed calls, span {span:g}, "
                                f"CPU/wall {r['cpu_per_call_s'] / warm:.2f}")
                    if tool == "jaxcell":
                        res.add(case, tool, "compile_s", max(r["first_s"] - warm, 0.0),
                                "s", "first call minus median warm call")
                    res.add(case, tool, "time_per_unit_s", per_unit, "s", cpu_note)
                    res.add(case, tool, "peak_memory_bytes", r["peak_rss"], "bytes")
                    if "device_peak" in r:
                        res.add(case, tool, "device_peak_bytes", r["device_peak"], "bytes",
                                f"{r['backend']} memory_stats peak_bytes_in_use")
                    acc = f", {r['accepted']} accepted" if r.get("accepted") is not None \
                        else f", from nfev {r['nfev']}"
                    res.add(case, tool, "steps", r["steps"], "count",
                            f"accepted + rejected{acc}")
                    line[tool] = {"per_unit": per_unit, "steps": r["steps"],
                                  "mem": r["peak_rss"], "states": r["states"],
                                  "compile": r["first_s"] - warm if tool == "jaxcell"
                                  else None, "cpu": r["cpu_per_call_s"] / warm}
                if "jaxcell" in finals and "scipy" in finals:
                    d = rel_diff(finals["jaxcell"], finals["scipy"])
                    line["diff"] = d
                    ok = d < MAX_ACCEPTABLE_DIFF
                    res.add(case, "jaxcell", "max_rel_diff_vs_scipy", d, "rel",
                            "final state; max |a - b| / max(|b|, 1e-3 max|b| per species)")
                    if not ok:
                        res.note(f"{case}: jaxcell and scipy final states differ by "
                                 f"{d:.2e} (> {MAX_ACCEPTABLE_DIFF:g})")
                if "jaxcell" in line and "scipy" in line:
                    ratio = line["scipy"]["per_unit"] / line["jaxcell"]["per_unit"]
                    res.add(case, "scipy", "time_per_unit_vs_jaxcell", ratio, "ratio",
                            "scipy time_per_unit_s / jaxcell time_per_unit_s", echo=False)
                summary.append(line)
    print_summary(summary, res.elapsed())
    res.finish(args.json)


def _mb(b: int) -> str:
    return f"{b / 2**20:.0f} MB"


def print_summary(summary: list[dict], elapsed: float) -> None:
    cols = [("case", 18), ("states", 8), ("span", 5), ("jaxcell s/unit", 14),
            ("scipy s/unit", 13), ("scipy/jaxcell", 13), ("jc compile", 10),
            ("jc steps", 8), ("sp steps", 8), ("jc mem", 8), ("sp mem", 8),
            ("rel diff", 9)]
    print(f"\n== tissue_scaling.py results (total {elapsed:.0f} s) ==")
    head = " ".join(f"{name:<{w}}" if i == 0 else f"{name:>{w}}"
                    for i, (name, w) in enumerate(cols))
    print(head)
    print("-" * len(head))
    for s in summary:
        jx, sp = s.get("jaxcell"), s.get("scipy")
        if sp:
            sp_time = f"{sp['per_unit']:.4g}"
        else:
            sp_time = "skipped" if "scipy_skipped" in s else "failed"
        cells = [
            s["case"],
            str((jx or sp or {}).get("states", "")),
            f"{s['span']:g}",
            f"{jx['per_unit']:.4g}" if jx else "failed",
            sp_time,
            f"{sp['per_unit'] / jx['per_unit']:.2f}" if jx and sp else "",
            f"{jx['compile']:.2f} s" if jx else "",
            str(jx["steps"]) if jx else "",
            str(sp["steps"]) if sp else "",
            _mb(jx["mem"]) if jx else "",
            _mb(sp["mem"]) if sp else "",
            f"{s['diff']:.1e}" if "diff" in s else "",
        ]
        print(" ".join(f"{c:<{w}}" if i == 0 else f"{c:>{w}}"
                       for i, (c, (_, w)) in enumerate(zip(cells, cols))))
    print("s/unit: median wall seconds per simulated time unit; mem: peak RSS increase "
          "of the worker; steps: accepted + rejected; rel diff: final states, jaxcell vs "
          "scipy")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
    else:
        main()
