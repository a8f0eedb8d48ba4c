"""The files of :func:`jaxcell.simulate_checkpointed`: what identifies a run, and
writing, verifying and reading orbax checkpoints.

A checkpoint (orbax step ``k``, written after chunk ``k``) has two items: ``data``, one
byte array holding every array (the state, the key data, the outputs so far), and
``meta``, JSON describing them (role, path, shape, dtype, offset of each), the run's
identity, the chunk, the time reached, solver statistics, and a SHA-256 checksum of the
metadata and the bytes. One byte array means one read, which succeeds or fails whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._composite import Composite
from ._errors import CheckpointError
from ._state import nest_state

FORMAT = "jaxcell-checkpoint/1"
_LOG = logging.getLogger("jaxcell.checkpoint")
# Keyword arguments of simulate() that change the computed values: part of the run's
# identity. (throw, max_steps, adjoint and progress_meter do not change a result.)
_SETTINGS = ("solver", "stepsize_controller", "dt0", "dtype", "args")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def checked_directory(directory) -> Path:
    """``directory`` as an absolute path, created if missing; a file is an error."""
    try:
        root = Path(os.fspath(directory)).expanduser().resolve()
    except TypeError as e:
        raise CheckpointError(f"directory must be a path; got {directory!r}.") from e
    if root.exists() and not root.is_dir():
        raise CheckpointError(f"directory {str(root)!r} is a file, not a directory.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"Cannot create checkpoint directory {str(root)!r}: {e}") from e
    return root


def value_at(values, path):
    return values[path[0]][path[1]][path[2]]


# -- the run's identity ----------------------------------------------------------------


def to_bytes(x) -> bytes:
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.ascontiguousarray(np.asarray(x)).tobytes()


def hash_parts(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def array_leaves(tree) -> list[tuple[str, Any]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(tree, eqx.is_array_like))
    return [(jax.tree_util.keystr(p), x) for p, x in leaves]


def describe(x) -> str:
    text = _ADDRESS.sub("", eqx.tree_pformat(x))
    return text + hash_parts(*(k + to_bytes(v).hex() for k, v in array_leaves(x)))


def run_identity(composite: Composite, t0, t1, every, user_ts, y0, kwargs) -> dict:
    from ._simulate import default_controller, default_solver

    leaves = array_leaves(composite)
    structure = [str(composite.spec)]
    structure += [f"{type(p).__module__}.{type(p).__qualname__}:{p.name}"
                  for p in composite.leaves]
    structure += [f"{k}:{np.shape(x)}:{jnp.result_type(x)}" for k, x in leaves]
    settings = dict(kwargs)
    settings.setdefault("solver", None)
    settings.setdefault("stepsize_controller", None)
    if settings["solver"] is None:
        settings["solver"] = default_solver(composite.spec.size)
    if settings["stepsize_controller"] is None:
        settings["stepsize_controller"] = default_controller()
    dtype = settings.get("dtype")
    settings["dtype"] = str(jnp.dtype(jnp.result_type(float) if dtype is None else dtype))
    return {
        "format": FORMAT,
        "t0": t0,
        "t1": t1,
        "every": every,
        "model": hash_parts(*structure),
        "parameters": hash_parts(*(k + to_bytes(x).hex() for k, x in leaves)),
        "saveat": hash_parts(np.asarray(user_ts, dtype=float).tobytes()),
        "y0": hash_parts(*(k + to_bytes(x).hex() for k, x in array_leaves(y0))),
        "settings": hash_parts(*(f"{k}={describe(settings.get(k))}" for k in _SETTINGS)),
    }


_WHAT = {
    "format": "checkpoint format",
    "t0": "t0",
    "t1": "t1",
    "every": "every",
    "model": "model structure (its variables, processes, or parameter shapes)",
    "parameters": "model's parameter or initial values",
    "saveat": "save times",
    "y0": "initial state (y0)",
    "settings": "simulate settings (solver, stepsize_controller, dt0, dtype, args)",
}


def check_identity(meta: Mapping, identity: Mapping, root: Path, step: int) -> None:
    differ = [k for k in identity if meta.get(k) != identity[k]]
    if differ:
        what = "; ".join(
            f"{_WHAT[k]}: {meta.get(k)!r} there, {identity[k]!r} here"
            if k in ("t0", "t1", "every", "format") else f"the {_WHAT[k]} differ"
            for k in differ
        )
        raise CheckpointError(
            f"{str(root)!r} holds checkpoints of a different run (checkpoint {step}): "
            f"{what}. Use another directory for this run, or delete that one to start "
            f"again."
        )


# -- writing and reading checkpoints -----------------------------------------------------


class Unreadable(Exception):
    """A checkpoint that cannot be used (unreadable, or it fails its checksum)."""


def _checksum(meta: Mapping, blob: np.ndarray) -> str:
    core = {k: v for k, v in meta.items() if k != "checksum"}
    return hash_parts(json.dumps(core, sort_keys=True), blob.tobytes())


def save(ocp, mgr, root: Path, step: int, n_chunks: int, t: float, identity: dict,
         key, y, outputs, stats, keep: int) -> None:
    """Write checkpoint ``step``, read it back and verify it, then prune older ones."""
    entries = [("key", None, np.asarray(jax.random.key_data(key)))]
    entries += [("y", p, np.asarray(value_at(y, p))) for p, _ in _owned(y)]
    entries += [("ts", None, outputs["ts"])]
    entries += [("out", p, v) for p, v in outputs["values"].items()]
    leaves, blob = pack(entries)
    meta = {**identity, "chunk": step, "n_chunks": n_chunks, "t": float(t),
            "key_impl": str(jax.random.key_impl(key)), "stats": stats, "leaves": leaves}
    commit(ocp, mgr, root, step, blob, meta, keep)


def pack(entries) -> tuple[list[dict], np.ndarray]:
    """``(leaves, blob)``: the arrays of ``entries`` (``(role, path or None, array)``)
    in one byte array, so that a read either succeeds or fails whole (orbax also cannot
    write zero-size arrays), and the metadata that describes each."""
    leaves, parts, offset = [], [], 0
    for role, path, x in entries:
        raw = np.ascontiguousarray(x).tobytes()
        leaves.append({"role": role, "path": None if path is None else list(path),
                       "shape": list(x.shape), "dtype": x.dtype.str, "offset": offset,
                       "nbytes": len(raw)})
        parts.append(raw)
        offset += len(raw)
    return leaves, np.frombuffer(b"".join(parts), dtype=np.uint8)


def commit(ocp, mgr, root: Path, step: int, blob: np.ndarray, meta: dict,
           keep: int) -> None:
    """Write checkpoint ``step`` (``meta`` gets its checksum), read it back and verify
    it, and only then prune all but the ``keep`` newest; a checkpoint that fails the
    check is removed and the earlier ones are kept."""
    meta["checksum"] = _checksum(meta, blob)
    saved = mgr.save(step, args=ocp.args.Composite(
        data=ocp.args.StandardSave({"blob": blob}), meta=ocp.args.JsonSave(meta)))
    mgr.wait_until_finished()
    if not saved:
        raise CheckpointError(f"orbax declined to write checkpoint {step} in {str(root)!r} "
                              f"(it holds steps {mgr.all_steps()}).")
    try:
        read(ocp, mgr, step)
    except Unreadable as e:
        with contextlib.suppress(Exception):
            mgr.delete(step)
        raise CheckpointError(
            f"Checkpoint {step} in {str(root)!r} could not be verified after writing "
            f"({e}); it was removed and the earlier checkpoints are kept."
        ) from e
    for old in sorted(mgr.all_steps())[:-keep]:
        if old < step:
            mgr.delete(old)


def _owned(y) -> list[tuple[tuple[str, str, str], Any]]:
    return [((s, e, v), x) for s, d in y.items() for e, vs in d.items() for v, x in vs.items()]


def read(ocp, mgr, step: int) -> tuple[dict, list[np.ndarray]]:
    """The metadata and arrays of a checkpoint, checked against its checksum."""
    try:
        meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise Unreadable(f"not a {FORMAT} checkpoint")
        if meta.get("chunk") != step:
            raise Unreadable(f"its metadata is for chunk {meta.get('chunk')!r}")
        size = sum(int(leaf["nbytes"]) for leaf in meta["leaves"])
        target = {"blob": np.empty(size, np.uint8)}
        blob = mgr.restore(step, args=ocp.args.Composite(
            data=ocp.args.StandardRestore(target)))["data"]["blob"]
        blob = np.asarray(blob)
        if blob.shape != (size,) or blob.dtype != np.uint8:
            raise Unreadable(f"its data has {blob.dtype}{list(blob.shape)}, expected "
                              f"uint8[{size}]")
        if _checksum(meta, blob) != meta.get("checksum"):
            raise Unreadable("its checksum does not match its contents")
        arrays = [np.frombuffer(blob, np.dtype(leaf["dtype"]), offset=leaf["offset"],
                                count=math.prod(leaf["shape"]))
                  .reshape(leaf["shape"]).copy() for leaf in meta["leaves"]]
    except Unreadable:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to read means "unusable"
        raise Unreadable(f"{type(e).__name__}: {_short(e)}") from e
    return meta, arrays


def _short(e: Exception, n: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= n else text[:n] + "..."


def restore(ocp, mgr, root: Path, identity: dict, key, resume: bool):
    """The state to continue from: ``None`` for a fresh start, else
    ``(key, chunks done, t, y, outputs, stats)`` from the latest good checkpoint."""
    steps = sorted(mgr.all_steps())
    if not steps:
        return None
    if not resume:
        raise CheckpointError(
            f"{str(root)!r} already holds checkpoints (steps {steps}) and resume=False; "
            f"pass resume=True to continue that run, or use an empty directory (nothing "
            f"is overwritten)."
        )
    skipped: list[tuple[int, str]] = []
    for step in reversed(steps):
        try:
            meta, arrays = read(ocp, mgr, step)
        except Unreadable as e:
            warnings.warn(
                f"Skipping checkpoint {step} in {str(root)!r}: it is unreadable or corrupt "
                f"({e}). Trying the previous one.", stacklevel=3)
            skipped.append((step, str(e)))
            continue
        check_identity(meta, identity, root, step)
        stored = jax.random.wrap_key_data(_role(meta, arrays, "key")[0][1],
                                          impl=meta["key_impl"])
        if key is not None and not np.array_equal(to_bytes(key), to_bytes(stored)):
            raise CheckpointError(
                f"{str(root)!r} holds checkpoints of the same run with a different key; "
                f"pass key=None to continue with the stored key, or use another "
                f"directory."
            )
        set_aside(mgr, root, [s for s, _ in skipped])
        y = nest_state({tuple(p): x for p, x in _role(meta, arrays, "y")})
        outputs = {"ts": _role(meta, arrays, "ts")[0][1],
                   "values": {tuple(p): x for p, x in _role(meta, arrays, "out")}}
        return stored, int(meta["chunk"]), float(meta["t"]), y, outputs, dict(meta["stats"])
    reasons = "; ".join(f"{s}: {why}" for s, why in skipped)
    raise CheckpointError(
        f"None of the checkpoints in {str(root)!r} is readable ({reasons}). They were "
        f"left in place; delete the directory (or use another) to start again."
    )


def _role(meta, arrays, role: str) -> list[tuple[Any, np.ndarray]]:
    return [(leaf["path"], x) for leaf, x in zip(meta["leaves"], arrays)
            if leaf["role"] == role]


def set_aside(mgr, root: Path, steps: list[int]) -> None:
    """Move unusable checkpoints to ``root/corrupt/`` (kept for inspection, never used
    again), so that the run can write those steps anew."""
    if not steps:
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for step in steps:
        src = root / str(step)
        if src.is_dir():
            dst = root / "corrupt" / f"{step}-{stamp}"
            n = 1
            while dst.exists():
                n += 1
                dst = root / "corrupt" / f"{step}-{stamp}-{n}"
            dst.parent.mkdir(exist_ok=True)
            shutil.move(str(src), str(dst))
            _LOG.warning("Moved unusable checkpoint %d to %s.", step, dst)
        else:
            with contextlib.suppress(Exception):
                mgr.delete(step)
    mgr.reload()
