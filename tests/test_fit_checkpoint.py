"""fit_checkpointed: a multistart fit checkpointed after every start, resumed after a
crash.

- A checkpointed fit equals ``fit`` with the same starts and key (every start bitwise),
  and rerunning on a complete directory computes nothing.
- Kill test: a subprocess running a 6-start fit is killed with SIGKILL after two
  checkpoints; resuming in-process runs only the remaining starts and gives exactly the
  result of an uninterrupted ``fit``.
- A corrupt latest checkpoint is skipped with a warning and the previous one used.
- Checkpoints of a different fit, and bad arguments, are clear errors.
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

import jax
import numpy as np
import optimistix as optx
import pytest

import jaxcell as jc
from jaxcell import CheckpointError
from jaxcell.inference import (
    Experiment,
    InferenceError,
    LevenbergMarquardt,
    Normal,
    Objective,
    Parameter,
    Parameters,
    fit,
    fit_checkpointed,
)

TESTS = Path(__file__).resolve().parent
N_STARTS = 6
KEY = 3


def _decay_rate(t, y, p):
    return {"x": -p["k"] * y["x"]}


def decay_objective(k_init: float = 0.2, bounds=(0.05, 5.0)) -> Objective:
    """Exponential decay x' = -k x, k = 0.5, from four noise-free points. (One rate
    function for all, so that every objective shares one compiled program.)"""
    decay = jc.ODE("decay", {"x": 1.0}, _decay_rate, parameters={"k": k_init})
    data = Experiment([0.5, 1.0, 2.0, 3.0], [0.7788, 0.6065, 0.3679, 0.2231],
                      "molecular/decay/x", noise=Normal(0.01))
    return Objective(decay, Parameters([Parameter("k", bounds=bounds)], model=decay), data)


def _steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _assert_same(a, b) -> None:
    assert len(a.starts) == len(b.starts)
    for sa, sb in zip(a.starts, b.starts):
        np.testing.assert_array_equal(sa.x0, sb.x0)
        np.testing.assert_array_equal(sa.x, sb.x)
        assert sa.value == sb.value
        assert (sa.converged, sa.steps, sa.history) == (sb.converged, sb.steps, sb.history)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.value == b.value and a.values == b.values and a.history == b.history


def _counter():
    calls: list[tuple[int, int, float]] = []
    return calls, lambda start, step, value: calls.append((start, step, value))


@pytest.fixture(scope="module")
def reference():
    """An uninterrupted plain fit: 6 starts, key 3."""
    return fit(decay_objective(), starts=N_STARTS, key=jax.random.key(KEY))


def test_matches_fit_and_rerun_does_not_recompute(tmp_path, reference):
    calls, cb = _counter()
    result = fit_checkpointed(decay_objective(), directory=tmp_path, starts=N_STARTS,
                              key=jax.random.key(KEY), keep=2, callback=cb)
    _assert_same(result, reference)
    assert sorted({c[0] for c in calls}) == list(range(N_STARTS))
    assert result.converged and abs(result.values["k"] - 0.5) < 1e-3
    assert len({float(s.x0[0]) for s in result.starts}) == N_STARTS  # distinct starts
    assert _steps(tmp_path) == [N_STARTS - 1, N_STARTS]  # keep=2

    calls2, cb2 = _counter()
    again = fit_checkpointed(decay_objective(), directory=tmp_path, starts=N_STARTS,
                             key=jax.random.key(KEY), keep=2, callback=cb2)
    assert calls2 == []  # complete: nothing recomputed
    _assert_same(again, reference)

    # Explicit start points, and a different method, also match fit().
    pts = np.asarray([[np.log(0.1)], [np.log(2.0)]])
    bfgs = optx.BFGS(rtol=1e-8, atol=1e-8)
    ck = fit_checkpointed(decay_objective(), directory=tmp_path / "explicit", starts=pts,
                          method=bfgs, max_steps=100)
    _assert_same(ck, fit(decay_objective(), starts=pts, method=bfgs, max_steps=100))


_KILL_SCRIPT = """
import sys
import time

sys.path.insert(0, {tests!r})
import jax
from jaxcell.inference import fit_checkpointed
from test_fit_checkpoint import KEY, N_STARTS, decay_objective


def slow(start, step, value):
    if step == 1:
        time.sleep(0.6)


fit_checkpointed(decay_objective(), directory=sys.argv[1], starts=N_STARTS,
                 key=jax.random.key(KEY), callback=slow)
"""


def test_kill_and_resume_is_exact(tmp_path, reference):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_KILL_SCRIPT.format(tests=str(TESTS))))
    killed = tmp_path / "killed"
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(script), str(killed)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120
        while len(_steps(killed)) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the fit ended before it was killed:\n"
                            f"{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no two checkpoints within 120 s")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _steps(killed)
    assert 2 <= at_kill[-1] < N_STARTS

    calls, cb = _counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit_checkpointed(decay_objective(), directory=killed, starts=N_STARTS,
                                   key=jax.random.key(KEY), callback=cb)
    done = at_kill[-1] if not [w for w in caught if "Skipping" in str(w.message)] \
        else at_kill[-2]
    assert sorted({c[0] for c in calls}) == list(range(done, N_STARTS))
    _assert_same(resumed, reference)


def _corrupt_arrays(step_dir: Path) -> None:
    files = [f for f in (step_dir / "data").rglob("*") if f.is_file() and f.parent.name == "d"]
    assert files
    for f in files:
        f.write_bytes(bytes(255 - b for b in f.read_bytes()))


def test_corrupt_latest_checkpoint_falls_back(tmp_path):
    obj = decay_objective()
    first = fit_checkpointed(obj, directory=tmp_path, starts=4, key=jax.random.key(1))
    assert _steps(tmp_path) == [2, 3, 4]
    _corrupt_arrays(tmp_path / "4")

    calls, cb = _counter()
    with pytest.warns(UserWarning, match="Skipping checkpoint 4"):
        again = fit_checkpointed(obj, directory=tmp_path, starts=4, key=jax.random.key(1),
                                 callback=cb)
    assert {c[0] for c in calls} == {3}  # only the last start was recomputed
    _assert_same(first, again)
    assert _steps(tmp_path) == [2, 3, 4]
    assert [p.name.split("-")[0] for p in (tmp_path / "corrupt").iterdir()] == ["4"]

    # Damage that still decodes (a changed number in the metadata) fails the checksum.
    meta = tmp_path / "4" / "meta" / "metadata"
    text = meta.read_text()
    assert '"max_steps": 500' in text
    meta.write_text(text.replace('"max_steps": 500', '"max_steps": 501'))
    with pytest.warns(UserWarning, match="checksum"):
        third = fit_checkpointed(obj, directory=tmp_path, starts=4, key=jax.random.key(1))
    _assert_same(first, third)

    # With nothing readable left, a clear error; the files are left in place.
    for s in _steps(tmp_path):
        _corrupt_arrays(tmp_path / str(s))
    with pytest.warns(UserWarning, match="Skipping"), pytest.raises(
            CheckpointError, match="None of the checkpoints"):
        fit_checkpointed(obj, directory=tmp_path, starts=4, key=jax.random.key(1))
    assert _steps(tmp_path) == [2, 3, 4]


def test_checkpoints_of_another_fit_are_refused(tmp_path):
    run = {"starts": 2, "key": jax.random.key(1), "max_steps": 50}
    fit_checkpointed(decay_objective(), directory=tmp_path, **run)
    cases = [
        ({**run, "max_steps": 60}, decay_objective(), "max_steps: 50 there, 60 here"),
        ({**run, "starts": 3}, decay_objective(), "number of starts: 2 there, 3 here"),
        ({**run, "key": jax.random.key(2)}, decay_objective(), "the key differ"),
        (run, decay_objective(k_init=0.3), "starting point x0"),
        (run, decay_objective(bounds=(0.01, 5.0)), "search bounds"),
        ({**run, "method": optx.BFGS(rtol=1e-8, atol=1e-8)}, decay_objective(),
         "method type: 'jaxcell.inference._levenberg_marquardt.LevenbergMarquardt' "
         "there, 'optimistix"),
        ({**run, "method": LevenbergMarquardt(rtol=1e-6, atol=1e-6)},
         decay_objective(), "method settings"),
    ]
    for kwargs, obj, match in cases:
        with pytest.raises(CheckpointError, match=match):
            fit_checkpointed(obj, directory=tmp_path, **kwargs)
    with pytest.raises(CheckpointError, match="resume=True"):
        fit_checkpointed(decay_objective(), directory=tmp_path, resume=False, **run)
    # A simulation's checkpoints are not a fit's.
    sim = tmp_path / "sim"
    jc.simulate_checkpointed(jc.models.repressilator(), 0.0, 2.0, every=1.0,
                             directory=sim, saveat=[0.0, 2.0])
    with pytest.raises(CheckpointError, match="checkpoint kind"):
        fit_checkpointed(decay_objective(), directory=sim, **run)
    assert _steps(tmp_path) == [1, 2]  # nothing was touched


def test_bad_arguments(tmp_path):
    obj = decay_objective()
    d = tmp_path / "ck"
    bad = [
        ({"starts": 0}, ValueError, "at least 1"),
        ({"starts": 2.5}, ValueError, "at least 1"),
        ({"starts": np.zeros((2, 3))}, ValueError, r"shape \(n, 1\)"),
        ({"starts": np.zeros((0, 1))}, ValueError, r"shape \(n, 1\)"),
        ({"starts": np.full((1, 1), np.nan)}, ValueError, "finite"),
        ({"starts": 2, "key": np.zeros(3)}, ValueError, "key"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"keep": 0}, ValueError, "keep"),
        ({"keep": True}, ValueError, "keep"),
    ]
    for kwargs, err, match in bad:
        with pytest.raises(err, match=match):
            fit_checkpointed(obj, directory=d, **kwargs)
    with pytest.raises(InferenceError, match="AbstractObjective.*got builtins.str"):
        fit_checkpointed("nll", directory=d)  # type: ignore[arg-type]
    afile = tmp_path / "file"
    afile.write_text("not a directory")
    with pytest.raises(CheckpointError, match="is a file"):
        fit_checkpointed(obj, directory=afile)
    assert _steps(d) == []
