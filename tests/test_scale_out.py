"""Ensembles and tissues over several devices and processes (issue 15).

Each check runs in fresh Python processes, because the number of CPU devices is fixed
when JAX starts: 4 forced CPU devices (``JAXCELL_CPU_DEVICES=4``), and two processes
joined by ``jax.distributed`` on localhost. The reference is the same computation on one
device in the same process: a sharded run must agree to rounding.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxcell as jc
from jaxcell import SimulationError

WORKER = Path(__file__).with_name("scale_out_worker.py")


def _env(**extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _run(args, env, timeout=600):
    return subprocess.Popen([sys.executable, str(WORKER), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=600):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"worker timed out (a hang across devices?):\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]


def test_four_devices_match_one(tmp_path):
    out = tmp_path / "devices.npz"
    _wait(_run(["devices", str(out)], _env(JAXCELL_CPU_DEVICES="4")))
    r = np.load(out)
    assert int(r["n_devices"]) == 4
    assert r["ok_all"].all() and r["ok_one"].all()
    assert r["ens_all"].shape == r["ens_one"].shape == (10, 3)
    np.testing.assert_allclose(r["ens_all"], r["ens_one"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["ens_chunk"], r["ens_one"], rtol=1e-12, atol=1e-12)
    # the members differ (the batch was not collapsed or reordered): a grows along it
    assert np.all(np.diff(r["ens_one"][:, 0]) != 0)
    # implicit solvers call LAPACK, which can deadlock across CPU devices: one device
    np.testing.assert_allclose(r["implicit_all"], r["implicit_one"], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(r["implicit_one"], r["ens_one"], rtol=1e-4)
    # a batch of fit starts spreads (forward mode) and reaches the same optima
    assert not bool(r["fit_fell_back"])
    np.testing.assert_allclose(r["fit_batch"], r["fit_one"], rtol=1e-8)
    assert bool(r["chain_logged"]) and float(r["chain_err"]) < 1e-5
    np.testing.assert_allclose(r["field_all"], r["field_one"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["cells_all"], r["cells_one"], rtol=0, atol=1e-12)
    assert np.std(r["field_one"][-1]) > 1e-3  # a non-trivial field


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    port = str(_free_port())
    env = _env(JAXCELL_CPU_DEVICES="1")
    procs = [_run(["distributed", str(i), port, str(tmp_path / f"p{i}.npz")], env)
             for i in range(2)]
    for p in procs:
        _wait(p)
    from scale_out_worker import ensemble_case

    z_ref, ok_ref = ensemble_case(devices=1)
    for i in range(2):
        r = np.load(tmp_path / f"p{i}.npz")
        assert int(r["process_count"]) == 2
        assert r["ok"].all()
        np.testing.assert_allclose(r["z"], z_ref, rtol=1e-12, atol=1e-12)


def test_bad_device_requests_are_named():
    import jax.numpy as jnp

    from jaxcell.tissue import Grid

    with pytest.raises(SimulationError, match="devices=99"):
        jc.ensemble(jc.models.goodwin(), 0.0, 1.0, parameters={"a": jnp.ones(2)},
                    devices=99)
    with pytest.raises(SimulationError, match="chunk_size"):
        jc.ensemble(jc.models.goodwin(), 0.0, 1.0, parameters={"a": jnp.ones(2)},
                    chunk_size=0)
    with pytest.raises(jc.ModelError, match="devices=99"):
        Grid((4, 4), devices=99)
