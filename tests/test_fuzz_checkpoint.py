"""Fuzzing the checkpoint reader of ``jaxcell.simulate_checkpointed``.

A complete checkpointed run is damaged (a file of a checkpoint truncated, flipped,
replaced or deleted; a step directory replaced by a file or by junk; junk steps added)
and resumed. Property: the resumed run gives exactly the undamaged result (a damaged
checkpoint is skipped with a warning and the previous good one used, as the design in
``_checkpoint_store.py`` says), or raises a ``CheckpointError`` naming the directory;
never another exception, never a hang.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import byte_mutation, fuzz_settings, reads_cleanly
from hypothesis import given
from hypothesis import strategies as st

import jaxcell as jc
from jaxcell import CheckpointError

RUN = {"t0": 0.0, "t1": 60.0, "every": 20.0, "saveat": np.linspace(0.0, 60.0, 7)}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt") / "good"
    model = jc.models.repressilator()
    traj = jc.simulate_checkpointed(model, directory=root, **RUN)
    return model, root, traj


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _resume(model, directory: Path, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Skipping checkpoint ..." is expected
        try:
            traj = jc.simulate_checkpointed(model, directory=directory, **RUN)
        except CheckpointError as e:
            assert directory.name in str(e), str(e)
            return e
    np.testing.assert_array_equal(np.asarray(traj.ts), np.asarray(expected.ts))
    for name in expected.names():
        np.testing.assert_array_equal(np.asarray(traj[name]), np.asarray(expected[name]))
    return traj


@pytest.mark.parametrize("n", [pytest.param(6, id="fast"),
                               pytest.param(60, id="slow", marks=pytest.mark.slow)])
def test_damaged_checkpoints(good_run, tmp_path, n):
    model, root, expected = good_run
    files = [p.relative_to(root) for p in _files(root)]
    count = iter(range(10**6))

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        work = tmp_path / f"run{next(count)}"
        shutil.copytree(root, work)
        kind = data.draw(st.sampled_from(["bytes", "bytes", "delete", "dir_to_file",
                                          "junk_step", "empty_step"]))
        steps = sorted(p for p in work.iterdir() if p.name.isdigit())
        if kind == "bytes":
            target = work / files[data.draw(st.integers(0, len(files) - 1))]
            target.write_bytes(data.draw(byte_mutation(target.read_bytes())))
        elif kind == "delete":
            (work / files[data.draw(st.integers(0, len(files) - 1))]).unlink()
        elif kind == "dir_to_file":
            step = steps[data.draw(st.integers(0, len(steps) - 1))]
            shutil.rmtree(step)
            step.write_bytes(data.draw(st.binary(max_size=64)))
        elif kind == "junk_step":
            junk = work / str(data.draw(st.sampled_from([7, 99, 10**6])))
            (junk / "meta").mkdir(parents=True)
            (junk / "meta" / "metadata").write_bytes(data.draw(st.binary(max_size=64)))
        else:
            (work / "9").mkdir()
        reads_cleanly(lambda: _resume(model, work, expected), work.name)
        shutil.rmtree(work)

    check()


def test_directory_is_a_file_or_unreadable(tmp_path):
    model = jc.models.repressilator()
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(CheckpointError, match="afile"):
        jc.simulate_checkpointed(model, directory=f, **RUN)
    with pytest.raises(CheckpointError, match="must be a path"):
        jc.simulate_checkpointed(model, directory=3.5, **RUN)




