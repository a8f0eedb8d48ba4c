"""simulate_checkpointed: chunked runs saved with orbax, resumed after a crash.

- A checkpointed run agrees with one ``simulate`` over the span (to solver tolerance:
  each chunk restarts the step-size controller), and rerunning on a complete directory
  returns the same result without computing anything.
- Kill test: a subprocess running a stochastic cell population (noisy adder division,
  random death) is killed with SIGKILL after two checkpoints; resuming in-process gives
  exactly the values of an uninterrupted run (so states and random keys are restored).
- A corrupt latest checkpoint (and a leftover orbax temporary directory) is skipped with
  a warning; the previous good one is used and the result is unchanged.
- Checkpoints of a different run, and bad arguments, are clear errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell import CheckpointError
from jaxcell.cellular import Adder, Death, Division, Population

TESTS = Path(__file__).resolve().parent
ODE_RUN = {"t0": 0.0, "t1": 100.0, "every": 30.0, "saveat": np.linspace(0.0, 100.0, 11)}
# 20 chunks of 4 discrete intervals; saved at the end of every chunk.
CELLS_RUN = {"t0": 0.0, "t1": 4.0, "every": 0.2, "saveat": np.linspace(0.0, 4.0, 21)}


def cells_model():
    """A stochastic population: exponential growth, noisy adder division, random death."""
    pop = Population("cells", capacity=300, n_initial=8, growth_rate=jnp.log(2.0))
    div = Division("division", pop, Adder(1.0, cv=0.1), interval=0.05)
    death = Death("death", pop, rate=0.05, interval=0.05)
    return [pop, div, death]


def _steps(directory: Path) -> list[int]:
    """Finalised checkpoint steps on disk (orbax renames a step's directory when done)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _assert_same(a: jc.Trajectory, b: jc.Trajectory) -> None:
    np.testing.assert_array_equal(np.asarray(a.ts), np.asarray(b.ts))
    for name in a.names():
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


def _counter():
    calls = []
    return calls, lambda done, total, t: calls.append((done, total, t))


def test_ode_matches_simulate_and_rerun_does_not_recompute(tmp_path):
    model = jc.models.repressilator()
    calls, progress = _counter()
    traj = jc.simulate_checkpointed(model, directory=tmp_path, progress=progress, keep=2,
                                    **ODE_RUN)
    # 0-30-60-90-100: the last chunk is shorter.
    assert [c[0] for c in calls] == [1, 2, 3, 4] and calls[-1][1:] == (4, 100.0)
    assert _steps(tmp_path) == [3, 4]  # keep=2
    ref = jc.simulate(model, 0.0, 100.0, saveat=ODE_RUN["saveat"])
    np.testing.assert_allclose(np.asarray(traj.ts), ODE_RUN["saveat"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(traj["molecular/repressilator/species"]),
                               np.asarray(ref["molecular/repressilator/species"]),
                               rtol=1e-4, atol=1e-6)
    assert int(traj.stats["num_steps"]) > 0

    calls2, progress2 = _counter()
    again = jc.simulate_checkpointed(model, directory=tmp_path, progress=progress2,
                                     keep=2, **ODE_RUN)
    assert calls2 == []  # complete: nothing recomputed
    _assert_same(traj, again)
    assert int(again.stats["num_steps"]) == int(traj.stats["num_steps"])


_KILL_SCRIPT = """
import sys
import time

sys.path.insert(0, {tests!r})
import jax
import jaxcell as jc
from test_checkpoint import CELLS_RUN, cells_model


def slow(done, total, t):
    print("chunk", done, flush=True)
    time.sleep(0.25)


jc.simulate_checkpointed(cells_model(), directory=sys.argv[1], key=jax.random.key(7),
                         progress=slow, **CELLS_RUN)
"""


def test_kill_and_resume_is_exact(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_KILL_SCRIPT.format(tests=str(TESTS))))
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_steps(killed)) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it was killed:\n"
                            f"{proc.stderr.read().decode()[-3000:]}")  # pyright: ignore
            assert time.monotonic() < deadline, "no checkpoints after 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # pyright: ignore
        proc.stderr.close()  # pyright: ignore
    assert proc.returncode == -signal.SIGKILL
    at_kill = _steps(killed)
    assert 2 <= at_kill[-1] < 20

    # Resume in-process with key=None: the stored key (7) must be used. (orbax renames
    # a checkpoint into place only when it is complete, so the newest one is expected
    # to be good; if the kill still damaged it, the fallback warns and uses the one
    # before.)
    calls, progress = _counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = jc.simulate_checkpointed(cells_model(), directory=killed,
                                           progress=progress, **CELLS_RUN)
    start = at_kill[-1] if not caught else at_kill[-2]
    assert [c[0] for c in calls] == list(range(start + 1, 21))
    full = jc.simulate_checkpointed(cells_model(), directory=tmp_path / "full",
                                    key=jax.random.key(7), **CELLS_RUN)
    _assert_same(resumed, full)
    alive = np.asarray(full["cellular/cells/alive"])
    assert alive[-1].sum() > alive[0].sum()  # the cells did divide
    # ... and randomly: another key gives another history.
    other = jc.simulate_checkpointed(cells_model(), directory=tmp_path / "other",
                                     key=jax.random.key(8), **CELLS_RUN)
    assert not np.array_equal(np.asarray(other["cellular/division/target"]),
                              np.asarray(full["cellular/division/target"]))
    # Resuming the killed run's directory with a different key is an error.
    with pytest.raises(CheckpointError, match="different key"):
        jc.simulate_checkpointed(cells_model(), directory=killed, key=jax.random.key(8),
                                 **CELLS_RUN)


def _corrupt_arrays(step_dir: Path) -> None:
    files = [f for f in (step_dir / "data").rglob("*") if f.is_file() and f.parent.name == "d"]
    assert files
    for f in files:
        f.write_bytes(bytes(255 - b for b in f.read_bytes()))


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
    model = jc.models.repressilator()
    traj = jc.simulate_checkpointed(model, directory=tmp_path, **ODE_RUN)
    assert _steps(tmp_path) == [2, 3, 4]
    _corrupt_arrays(tmp_path / "4")
    leftover = tmp_path / "5.orbax-checkpoint-tmp"  # a save that was killed midway
    (leftover / "arrays").mkdir(parents=True)
    (leftover / "arrays" / "junk").write_bytes(b"\x00" * 100)

    calls, progress = _counter()
    with pytest.warns(UserWarning, match="Skipping checkpoint 4"):
        again = jc.simulate_checkpointed(model, directory=tmp_path, progress=progress,
                                         **ODE_RUN)
    assert [c[0] for c in calls] == [4]  # only the last chunk was recomputed
    _assert_same(traj, again)  # bitwise: the same computation from the same state
    assert _steps(tmp_path) == [2, 3, 4]  # the good ones kept, step 4 written anew
    assert not leftover.exists()
    assert [p.name.split("-")[0] for p in (tmp_path / "corrupt").iterdir()] == ["4"]

    # Damage that still decodes (a changed number in the metadata) fails the checksum.
    meta = tmp_path / "4" / "meta" / "metadata"
    meta.write_text(meta.read_text().replace('"t": 100.0', '"t": 99.0'))
    with pytest.warns(UserWarning, match="checksum"):
        third = jc.simulate_checkpointed(model, directory=tmp_path, **ODE_RUN)
    _assert_same(traj, third)


def test_no_readable_checkpoint_is_an_error(tmp_path):
    model = jc.models.repressilator()
    jc.simulate_checkpointed(model, directory=tmp_path, keep=1, **ODE_RUN)
    _corrupt_arrays(tmp_path / "4")
    with pytest.warns(UserWarning, match="Skipping"), pytest.raises(
            CheckpointError, match="None of the checkpoints"):
        jc.simulate_checkpointed(model, directory=tmp_path, keep=1, **ODE_RUN)
    assert _steps(tmp_path) == [4]  # left in place


def test_checkpoints_of_another_run_are_refused(tmp_path):
    model = jc.models.repressilator()
    run = dict(ODE_RUN)
    jc.simulate_checkpointed(model, directory=tmp_path, **run)
    cases = [
        ({**run, "every": 25.0}, model, "every: 30.0 there, 25.0 here"),
        ({**run, "t1": 90.0, "saveat": [0.0, 90.0]}, model, "t1: 100.0 there"),
        ({**run, "saveat": [0.0, 100.0]}, model, "save times"),
        (run, jc.models.goodwin(), "model structure"),
        (run, model.replace_parameters({"alpha": 200.0}), "parameter or initial values"),
        ({**run, "y0": {"p_lacI": 7.25}}, model, "initial state"),
        ({**run, "solver": diffrax.Tsit5()}, model, "simulate settings"),
    ]
    for kwargs, m, match in cases:
        with pytest.raises(CheckpointError, match=match):
            jc.simulate_checkpointed(m, directory=tmp_path, **kwargs)
    with pytest.raises(CheckpointError, match="resume=True"):
        jc.simulate_checkpointed(model, directory=tmp_path, resume=False, **run)
    assert _steps(tmp_path) == [2, 3, 4]  # nothing was touched


def test_bad_arguments(tmp_path):
    model = jc.models.repressilator()
    d = tmp_path / "ck"
    bad = [
        ({"every": 0.0}, jc.SimulationError, "every must be a positive"),
        ({"every": -1.0}, jc.SimulationError, "every must be a positive"),
        ({"every": 150.0}, jc.SimulationError, "longer than the span"),
        ({"t1": 0.0}, jc.SimulationError, "forward"),
        ({"keep": 0}, jc.SimulationError, "keep"),
        ({"saveat": [0.0, 150.0]}, jc.SimulationError, "saveat"),
        ({"event": diffrax.Event(lambda t, y, a, **k: t > 5)}, jc.SimulationError, "event"),
        ({"key": jnp.zeros(3)}, jc.SimulationError, "key"),
    ]
    for change, err, match in bad:
        kwargs = {**ODE_RUN, **change}
        with pytest.raises(err, match=match):
            jc.simulate_checkpointed(model, directory=d, **kwargs)
    afile = tmp_path / "file"
    afile.write_text("not a directory")
    with pytest.raises(CheckpointError, match="is a file"):
        jc.simulate_checkpointed(model, directory=afile, **ODE_RUN)
    with pytest.raises(jc.SimulationError, match="whole number of the update interval"):
        jc.simulate_checkpointed(cells_model(), directory=d,
                                 **{**CELLS_RUN, "every": 0.07})
    with pytest.raises(jc.SimulationError, match="not an update time"):
        jc.simulate_checkpointed(cells_model(), directory=d,
                                 **{**CELLS_RUN, "saveat": [0.0, 0.33]})
    assert _steps(d) == []
