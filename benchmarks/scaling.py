#!/usr/bin/env python
"""Strong scaling over devices: a 10^4-member ensemble and a 10^5-cell tissue on 1, 2
and 4 devices (forced CPU devices on a CPU machine; the GPUs when there are some).

Cases (float64):

* ``ensemble_goodwin_10k``: ``jc.ensemble`` of the Goodwin oscillator
  (``jc.models.goodwin()``, default solver Rodas5, rtol 1e-6 / atol 1e-8 as
  ``simulate``'s defaults), 10,000 values of ``a`` log-uniform in [50, 150] (seed 0),
  t in [0, 50], 11 output times: one SPMD program over the devices.
* ``tissue_field_gap_100k``: a 320 x 320 grid (102,400 voxels) with a diffusing, decaying
  field (``DiffusingField``, D 0.2, decay 0.1, no-flux walls, random start) next to
  102,400 cells on a periodic square lattice exchanging a per-cell variable through gap
  junctions (``GapJunction``, D 0.2) with first-order turnover; ``Tsit5``, rtol 1e-6 /
  atol 1e-8, t in [0, 1]. The grid's first axis and the cells are split over the
  devices with a one-row halo exchange.

Each device count runs in a fresh process (``JAXCELL_CPU_DEVICES=k``: the device count is
fixed when JAX starts). Rows per case and device count (tool ``jaxcell_<k>dev``):
``compile_s`` (first call minus a warm call), ``run_s`` (median warm call),
``speedup`` and ``parallel_efficiency`` (``run_s(1) / (k run_s(k))``), and
``max_abs_diff_vs_1dev`` (the results must agree to rounding). The peer here is the same
program on one device: on 2 cores, 4 forced devices oversubscribe the cores.

Run ``python benchmarks/scaling.py --quick --json bench-results/scaling.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

N_MEMBERS = 10_000
SIDE = 320


def _ensemble(k: int):
    import jax
    import jax.numpy as jnp

    import jaxcell as jc

    a = jnp.exp(jax.random.uniform(jax.random.key(0), (N_MEMBERS,),
                                   minval=jnp.log(50.0), maxval=jnp.log(150.0)))
    model = jc.models.goodwin()
    save = jnp.linspace(0.0, 50.0, 11)

    def run():
        tr = jc.ensemble(model, 0.0, 50.0, saveat=save, parameters={"a": a}, devices=k)
        return jax.block_until_ready(tr["z"])

    return run


def _tissue(k: int):
    import diffrax
    import jax

    import jaxcell as jc
    from jaxcell.tissue import DiffusingField, GapJunction, Grid, square_lattice

    devices = k if k > 1 else None
    init = jax.random.uniform(jax.random.key(0), (SIDE, SIDE))
    field = DiffusingField("m", Grid((SIDE, SIDE), devices=devices), D=0.2, decay=0.1,
                           initial=init)
    x0 = jax.random.uniform(jax.random.key(1), (SIDE * SIDE,))
    cells = jc.ODE("cells", {"x": x0}, lambda t, y, p: {"x": 0.1 - 0.1 * y["x"]},
                   scale="cellular")
    gap = GapJunction("gap", square_lattice(SIDE, SIDE, periodic=True),
                      "cellular/cells/x", D=0.2, devices=devices)
    model = jc.Composite([field, cells, gap])
    ctrl = diffrax.PIDController(rtol=1e-6, atol=1e-8)

    def run():
        tr = jc.simulate(model, 0.0, 1.0, saveat=[1.0], solver=diffrax.Tsit5(),
                         stepsize_controller=ctrl)
        return jax.block_until_ready(tr["tissue/m/concentration"])

    return run


def worker(k: int, repeats: int, out_dir: str) -> None:
    import jax
    import numpy as np

    import jaxcell  # noqa: F401  (asks JAX for JAXCELL_CPU_DEVICES devices)

    rows = {"devices": jax.local_device_count(), "platform": jax.devices()[0].platform}
    for case, make in (("ensemble_goodwin_10k", lambda: _ensemble(k)),
                       ("tissue_field_gap_100k", lambda: _tissue(k))):
        run = make()
        t = time.perf_counter()
        out = run()
        first = time.perf_counter() - t
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t)
        run_s = C.median(times)
        np.save(os.path.join(out_dir, f"{case}_{k}.npy"), np.asarray(out))
        rows[case] = {"compile_s": max(first - run_s, 0.0), "run_s": run_s}
    print("@@ " + json.dumps(rows), flush=True)


def main() -> None:
    ap = C.base_parser(__doc__.splitlines()[1])
    ap.add_argument("--devices", default="1,2,4", help="device counts (default 1,2,4)")
    ap.add_argument("--worker", type=int, help=argparse_hidden())
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    if args.worker:
        worker(args.worker, repeats, args.out_dir)
        return
    import tempfile

    import numpy as np

    res = C.Results("scaling", args)
    counts = [int(x) for x in args.devices.split(",")]
    out_dir = tempfile.mkdtemp(prefix="jaxcell-scaling-")
    found: dict[int, dict] = {}
    for k in counts:
        env = dict(os.environ, JAXCELL_CPU_DEVICES=str(k))
        env.pop("XLA_FLAGS", None)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", str(k),
                            "--repeats", str(repeats), "--out-dir", out_dir],
                           env=env, capture_output=True, text=True, check=False)
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("@@ ")]
        if p.returncode or not line:
            raise RuntimeError(f"worker with {k} devices failed:\n{p.stderr[-3000:]}")
        found[k] = json.loads(line[0][3:])
        if found[k]["devices"] != k and found[k]["platform"] == "cpu":
            raise RuntimeError(f"asked for {k} CPU devices, got {found[k]['devices']}")
    base = counts[0]
    for case in ("ensemble_goodwin_10k", "tissue_field_gap_100k"):
        ref = np.load(os.path.join(out_dir, f"{case}_{base}.npy"))
        for k in counts:
            tool = f"jaxcell_{k}dev"
            r = found[k][case]
            res.add(case, tool, "compile_s", r["compile_s"], "s")
            res.add(case, tool, "run_s", r["run_s"], "s")
            speedup = found[base][case]["run_s"] / r["run_s"]
            res.add(case, tool, "speedup", speedup, "ratio")
            res.add(case, tool, "parallel_efficiency", speedup * base / k, "ratio")
            diff = np.abs(np.load(os.path.join(out_dir, f"{case}_{k}.npy")) - ref).max()
            res.add(case, tool, "max_abs_diff_vs_1dev", float(diff), "abs")
    res.note(f"{res.machine.get('usable_cores')} cores; devices beyond the core count "
             f"share them (oversubscribed).")
    C.print_table(res, [f"jaxcell_{k}dev" for k in counts], ref_tool=f"jaxcell_{base}dev",
                  title="Strong scaling (ratios: 1 device / k devices)")
    res.finish(args.json)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
