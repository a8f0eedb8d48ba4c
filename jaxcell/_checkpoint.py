"""simulate_checkpointed(): long simulations run in chunks, checkpointed with orbax.

The span ``[t0, t1]`` is cut into chunks of length ``every``. Each chunk is one call of
:func:`jaxcell.simulate` that starts from the previous chunk's final state, with the
key ``fold_in(key, chunk)``; after it, everything needed to go on (the state, the base
key, the chunk index, the save-time outputs so far) is written as one orbax checkpoint.
A resumed run repeats exactly the computations of an uninterrupted one, so its result
is bitwise the same.

Crash safety rests on three things: orbax writes a checkpoint to a temporary directory
and renames it when complete (a killed process leaves at most a temporary directory,
removed on the next start); every checkpoint carries a SHA-256 checksum of its arrays
and run metadata, checked when it is read back; and old checkpoints are pruned by hand,
only after the new one has been read back and verified, so the newest good checkpoint
is never deleted in favour of a bad one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from . import _checkpoint_store as store
from ._composite import Composite, as_composite
from ._engine import as_key
from ._errors import SimulationError
from ._process import AbstractProcess, is_concrete
from ._results import RESULTS
from ._state import nest_state
from ._trajectory import Trajectory

_TOL = 1e-9
_LOG = logging.getLogger("jaxcell.checkpoint")


def simulate_checkpointed(
    model: AbstractProcess | Sequence[AbstractProcess],
    t0: float,
    t1: float,
    *,
    every: float,
    directory: str | os.PathLike,
    key: Any = None,
    saveat: diffrax.SaveAt | Sequence[float] | np.ndarray | None = None,
    resume: bool = True,
    keep: int = 3,
    y0: Mapping[Any, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    **simulate_kwargs: Any,
) -> Trajectory:
    """Simulate from ``t0`` to ``t1`` in chunks of length ``every``, saving a checkpoint
    after each chunk, and resume from the latest good checkpoint after a crash.

    Chunk ``c`` covers ``[t0 + c·every, min(t0 + (c+1)·every, t1)]`` (the last one may
    be shorter). It is one :func:`jaxcell.simulate` call starting from the previous
    chunk's final state, with key ``jax.random.fold_in(key, c)``. After it, an orbax
    checkpoint (step ``c + 1``) stores the whole state, the base key (as key data), the
    chunk index and time reached, the outputs at your save times so far, solver
    statistics, and metadata identifying the run: ``t0``, ``t1``, ``every``, your save
    times and ``y0``, a fingerprint of the model's structure (its ``StateSpec`` and
    processes, the shapes and dtypes of its array leaves), a hash of its parameter
    values, and the solver settings. A SHA-256 checksum covers all of it.

    With ``resume=True`` and checkpoints of the same run in ``directory``, the run goes
    on from the latest good one; the result equals that of an uninterrupted run
    bitwise, because the same chunk computations are repeated with the same keys. A
    checkpoint that cannot be read or fails its checksum is skipped with a warning,
    moved to ``directory/corrupt/``, and the previous one is used. A complete run in
    ``directory`` is returned without recomputing anything.

    Arguments:
        model: a process, :class:`~jaxcell.Composite` or list of processes.
        t0: start time.
        t1: end time (``t1 > t0``).
        every: chunk length. For models with discrete processes, a whole number of
            their update interval.
        directory: where the checkpoints live (created if missing).
        key: a :func:`jax.random.key` for discrete processes. ``None``: the key stored
            in the checkpoints when resuming, else ``jax.random.key(0)``. A key that
            differs from the stored one is an error.
        saveat: save times (an array or a :class:`diffrax.SaveAt` with ``t0``, ``t1``
            and/or ``ts``); default as in :func:`jaxcell.simulate`. Chunk ends are
            saved internally but only these times are returned.
        resume: continue from checkpoints of the same run in ``directory``. With
            ``False``, a directory that already holds checkpoints is an error (nothing
            is overwritten).
        keep: how many checkpoints to keep (at least 1); older ones are deleted only
            after a newer one has been verified.
        y0: initial values, as in :func:`jaxcell.simulate` (used by the first chunk).
        progress: called as ``progress(done, total, t)`` after each computed chunk has
            been checkpointed (chunks restored from disk are not reported). Completion
            is also logged at INFO level on the ``jaxcell.checkpoint`` logger.
        **simulate_kwargs: passed to :func:`jaxcell.simulate` (``solver``,
            ``stepsize_controller``, ``dt0``, ``max_steps``, ``args``, ``dtype``, ...).
            ``event`` is not supported.

    Returns:
        A :class:`~jaxcell.Trajectory` at the requested save times, with solver
        statistics summed over chunks.

    Raises:
        SimulationError: bad ``every``, time span, save times or arguments; a chunk
            that fails.
        CheckpointError: ``directory`` is a file; it holds checkpoints of a different
            run (model, times, save times, key or settings); none of its checkpoints
            is readable; or a checkpoint could not be verified after writing.

    Examples:
        >>> import tempfile
        >>> import jaxcell as jc
        >>> with tempfile.TemporaryDirectory() as d:
        ...     traj = jc.simulate_checkpointed(jc.models.repressilator(), 0.0, 100.0,
        ...                                     every=50.0, directory=d,
        ...                                     saveat=[0.0, 50.0, 100.0])
        >>> traj["p_lacI"].shape
        (3,)
    """
    composite = as_composite(model)
    composite.check_closed()
    if "event" in simulate_kwargs:
        raise SimulationError(
            "simulate_checkpointed does not support event: a terminating event would end "
            "a chunk early. Run simulate() for the last part instead."
        )
    t0, t1, every = _check_times(t0, t1, every)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise SimulationError(f"keep must be a positive integer; got {keep!r}.")
    user_ts = _user_times(composite, t0, t1, every, saveat)
    bounds = _chunk_bounds(t0, t1, every)
    plan = [_in_chunk(user_ts, c, bounds, t0, t1) for c in range(len(bounds))]
    # Without discrete processes, every chunk asks for the same number of save times
    # (padded with its end time), so that all chunks share one compiled program.
    pad = None if composite.discrete_processes else max(map(len, plan)) + 1
    root = store.checked_directory(directory)
    # The initial state as arrays (not None), so that every chunk passes y0 of the same
    # structure and they all share one compiled program.
    y_init = _initial(composite, y0)
    identity = store.run_identity(composite, t0, t1, every, user_ts, y_init,
                                  simulate_kwargs)
    base_key = as_key(key, none_is_zero=False)

    import orbax.checkpoint as ocp  # heavy; imported only when checkpointing

    options = ocp.CheckpointManagerOptions(
        max_to_keep=None,  # pruned by hand, after the new checkpoint is verified
        create=True,
        enable_async_checkpointing=False,  # every save is complete before we go on
        cleanup_tmp_directories=True,  # partial checkpoints of a crashed run
    )
    with ocp.CheckpointManager(root, options=options, item_names=("data", "meta")) as mgr:
        start = store.restore(ocp, mgr, root, identity, base_key, resume)
        if start is None:
            base_key = jax.random.key(0) if base_key is None else base_key
            y = y_init
            done, t_done, outputs, stats = 0, t0, None, {}
        else:
            base_key, done, t_done, y, outputs, stats = start
            _LOG.info("Resuming from checkpoint %d in %s (t = %g).", done, root, t_done)
        spec = composite.spec
        for c in range(done, len(bounds)):
            a, b = bounds[c]
            traj, rows = _run_chunk(composite, a, b, plan[c], y,
                                    jax.random.fold_in(base_key, c), simulate_kwargs, pad)
            if not bool(np.all(np.asarray(traj.success))):
                raise SimulationError(
                    f"Chunk {c} ([{a}, {b}]) failed ({traj.messages()[0]!r}); the "
                    f"checkpoints of the {c} completed chunks are kept in {str(root)!r}."
                )
            y = jax.tree_util.tree_map(np.asarray, traj.final_state())
            piece = {"ts": np.asarray(traj.ts)[rows],
                     "values": {p: np.asarray(store.value_at(traj.values, p))[rows]
                                for p in spec.paths}}
            outputs = piece if outputs is None else _concat(outputs, piece)
            stats = _add_stats(stats, traj.stats)
            store.save(ocp, mgr, root, c + 1, len(bounds), b, identity, base_key, y,
                       outputs, stats, keep)
            _LOG.info("Chunk %d/%d done (t = %g); checkpoint %d saved in %s.", c + 1,
                      len(bounds), b, c + 1, root)
            if progress is not None:
                progress(c + 1, len(bounds), b)
    return Trajectory(
        ts=jnp.asarray(outputs["ts"]),
        values=nest_state({p: jnp.asarray(v) for p, v in outputs["values"].items()}),
        stats={k: v if k == "max_steps" else jnp.asarray(v) for k, v in stats.items()},
        result=RESULTS.successful,
        spec=composite.spec,
    )


# -- checking the request -------------------------------------------------------------


def _check_times(t0, t1, every) -> tuple[float, float, float]:
    for name, v in (("t0", t0), ("t1", t1), ("every", every)):
        if not is_concrete(v) or np.ndim(v) != 0:
            raise SimulationError(
                f"simulate_checkpointed needs concrete scalar times (it writes files "
                f"between chunks, so it cannot be traced); got {name}={v!r}."
            )
    t0, t1, every = float(t0), float(t1), float(every)
    if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
        raise SimulationError(
            f"simulate_checkpointed runs forward over a finite span; got t0={t0}, t1={t1}."
        )
    if not np.isfinite(every) or every <= 0:
        raise SimulationError(f"every must be a positive chunk length; got every={every}.")
    if every > (t1 - t0) * (1 + _TOL):
        raise SimulationError(
            f"every={every} is longer than the span t1 - t0 = {t1 - t0}; use at most "
            f"the span (one chunk), or a shorter chunk."
        )
    return t0, t1, every


def _user_times(composite: Composite, t0: float, t1: float, every: float,
                saveat) -> np.ndarray:
    """The requested save times, checked (as simulate would) over the whole span."""
    if composite.discrete_processes:
        from ._hybrid import make_schedule

        schedule = make_schedule(composite, t0, t1, saveat)  # checks span and save times
        for i in composite.discrete_processes:
            process = composite.leaves[i]
            h = float(process.interval)  # pyright: ignore
            k = every / h
            if abs(k - round(k)) > _TOL * max(1.0, k):
                raise SimulationError(
                    f"every={every} must be a whole number of the update interval {h} "
                    f"of {type(process).__name__} {process.name!r}, so that every chunk "
                    f"starts on the discrete processes' schedule."
                )
        return t0 + np.asarray(schedule.saves, dtype=float) * schedule.h
    if saveat is None:
        return np.linspace(t0, t1, 101)
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        if (not isinstance(subs, diffrax.SubSaveAt) or subs.steps
                or subs.fn is not diffrax.SubSaveAt(t1=True).fn):
            raise SimulationError(
                "simulate_checkpointed takes save times: an array, or a SaveAt with t0, "
                "t1 and/or ts (no steps=True, no fn, one set of save points)."
            )
        ts = [] if subs.ts is None else list(np.asarray(subs.ts, dtype=float))
        ts = ([t0] if subs.t0 else []) + ts + ([t1] if subs.t1 else [])
    else:
        try:
            ts = np.asarray(saveat, dtype=float)
        except (TypeError, ValueError) as e:
            raise SimulationError(f"saveat must be an array of times; got {saveat!r}.") from e
        if ts.ndim != 1:
            raise SimulationError(f"saveat must be 1-D; got shape {ts.shape}.")
    ts = np.asarray(ts, dtype=float)
    tol = _TOL * max(1.0, abs(t0), abs(t1))
    if ts.size == 0:
        raise SimulationError("saveat names no save times.")
    if not np.all(np.isfinite(ts)) or ts.min() < t0 - tol or ts.max() > t1 + tol:
        raise SimulationError(f"saveat times must lie in [t0, t1] = [{t0}, {t1}].")
    if np.any(np.diff(ts) < 0):
        raise SimulationError("saveat times must be increasing.")
    return np.clip(ts, t0, t1)


def _chunk_bounds(t0: float, t1: float, every: float) -> list[tuple[float, float]]:
    r = (t1 - t0) / every
    n = round(r) if abs(r - round(r)) <= _TOL * max(1.0, r) else math.ceil(r)
    n = max(n, 1)
    return [(t0 + c * every, t1 if c == n - 1 else t0 + (c + 1) * every) for c in range(n)]


def _in_chunk(ts: np.ndarray, c: int, bounds, t0: float, t1: float) -> list[float]:
    """The save times that chunk ``c`` produces: ``(a, b]`` (``[a, b]`` for the first)."""
    a, b = bounds[c]
    tol = _TOL * max(1.0, abs(t0), abs(t1))
    lo = -np.inf if c == 0 else a + tol
    hi = np.inf if c == len(bounds) - 1 else b + tol
    return [float(min(max(t, a), b)) for t in ts if lo < t <= hi]


def _initial(composite: Composite, y0) -> dict:
    from ._engine import initial_state as _initial_state

    if y0 is not None and not isinstance(y0, Mapping):
        raise SimulationError(f"y0 must be a state dict; got {type(y0).__name__}.")
    state = _initial_state(composite, y0)
    return jax.tree_util.tree_map(np.asarray, state)


# -- one chunk ---------------------------------------------------------------------------


def _run_chunk(composite, a, b, mine, y, key, kwargs, pad) -> tuple[Trajectory, list]:
    """Simulate one chunk; returns the trajectory and the rows of the user's times."""
    from ._simulate import simulate

    if pad is None:
        # Discrete processes: save times are static, so every chunk saves at its start,
        # its user times and its end, giving regular save times one compiled program.
        starts = bool(mine) and mine[0] <= a
        rest = mine[1:] if starts else mine
        ts, rows = [a, *rest, b], [0] * starts + list(range(1, 1 + len(rest)))
    else:
        ts, rows = [*mine, *([b] * (pad - len(mine)))], list(range(len(mine)))
    traj = simulate(composite, a, b, saveat=np.asarray(ts, dtype=float), y0=y, key=key,
                    **kwargs)
    return traj, rows


def _concat(old: dict, new: dict) -> dict:
    return {"ts": np.concatenate([old["ts"], new["ts"]]),
            "values": {p: np.concatenate([v, new["values"][p]])
                       for p, v in old["values"].items()}}


def _add_stats(total: dict, stats: Mapping) -> dict:
    out = dict(total)
    for k, v in stats.items():
        if v is None:
            continue
        v = int(np.asarray(v))
        out[k] = v if k == "max_steps" else out.get(k, 0) + v
    return out
