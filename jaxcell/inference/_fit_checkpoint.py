"""fit_checkpointed(): a multistart fit that saves a checkpoint after every start and
resumes after a crash.

All start points are drawn up front, exactly as :func:`fit` draws them. Start ``i`` is
then one :func:`fit` call from ``points[i]`` alone, so it repeats exactly the
computation an uninterrupted :func:`fit` does for that start. After each start an orbax
checkpoint (step ``k`` = starts completed) stores the start points, the key data, the
results of the ``k`` completed starts and the run's fingerprint, with a SHA-256
checksum; it is read back and verified before older checkpoints are pruned. The files
are those of :func:`jaxcell.simulate_checkpointed` (one byte array plus JSON metadata),
written and read with the same helpers.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from .._checkpoint_store import (
    FORMAT,
    Unreadable,
    array_leaves,
    checked_directory,
    commit,
    describe,
    hash_parts,
    pack,
    read,
    set_aside,
    to_bytes,
)
from .._errors import CheckpointError, InferenceError
from ._fit import FitResult, StartResult, _result, as_objective, default_method, draw_starts, fit
from ._objective import AbstractObjective

logger = logging.getLogger("jaxcell.inference")
_KIND = "jaxcell.inference.fit_checkpointed/1"
# Fingerprint fields, and how an error names them. Those in _SHOWN are short enough to
# print both values.
_WHAT = {
    "kind": "checkpoint kind",
    "names": "parameter names",
    "x0": "parameters' starting point x0",
    "bounds": "parameters' search bounds",
    "scales": "parameters' scales",
    "objective": "objective (model, data or noise values)",
    "method": "method type",
    "method_settings": "method settings",
    "max_steps": "max_steps",
    "n_starts": "number of starts",
    "key": "key",
    "starts": "start points",
}
_SHOWN = ("kind", "names", "method", "max_steps", "n_starts")


def fit_checkpointed(
    objective: AbstractObjective,
    *,
    directory: str | os.PathLike,
    starts: int | ArrayLike = 1,
    key: Any = None,
    method: Any = None,
    max_steps: int = 500,
    resume: bool = True,
    keep: int = 3,
    callback: Callable[[int, int, float], None] | None = None,
    every: int | None = None,
    **fit_kwargs: Any,
) -> FitResult:
    """:func:`fit` from many starts, checkpointed after every start, resumable.

    The start points are drawn up front exactly as :func:`fit` draws them (the first is
    ``parameters.x0``, the others uniform within the search bounds from ``key``; or an
    explicit array). Each start is then one :func:`fit` call from that point alone, and
    after it an orbax checkpoint (step ``k`` after ``k`` starts) stores the start
    points, the key data, the results of all completed starts (end point, value,
    convergence, steps, history) and a fingerprint of the run: the parameter names,
    ``x0``, bounds and scales, a hash of the objective's arrays (model values, data),
    the method's type and settings (its fields; the hyperparameters an optax
    transformation keeps in closures, such as the learning rate, are not seen),
    ``max_steps``, the number of starts, the key and the start points. A SHA-256
    checksum covers all of it; each checkpoint is read back and verified before older
    ones are pruned.

    With ``resume=True`` and checkpoints of the same run in ``directory``, completed
    starts are skipped and the rest are run; the result equals that of an
    uninterrupted :func:`fit` with the same arguments (per-start values bitwise: the
    same per-start computations are repeated). A checkpoint that cannot be read or
    fails its checksum is skipped with a warning, moved to ``directory/corrupt/``, and
    the previous one is used. A complete run is returned without recomputing anything.

    Arguments:
        objective: an :class:`AbstractObjective` (such as :class:`Objective`), or a
            :class:`jaxcell.petab.PetabProblem` as in :func:`fit`. Only the
            objective's array leaves are fingerprinted: a PEtab problem's data are not
            (resume only with the same problem).
        directory: where the checkpoints live (created if missing).
        starts: number of starts, or an array ``(n, len(parameters))`` of search-scale
            starting points, as in :func:`fit`.
        key: a :func:`jax.random.key` for random starts (default ``key(0)``, as in
            :func:`fit`).
        method: as in :func:`fit` (default :func:`default_method`).
        max_steps: maximum iterations per start.
        resume: continue from checkpoints of the same run in ``directory``. With
            ``False``, a directory that already holds checkpoints is an error (nothing
            is overwritten).
        keep: how many checkpoints to keep (at least 1); older ones are deleted only
            after a newer one has been verified.
        callback: ``callback(start, step, value)`` after every iteration of a start
            that is computed (restored starts are not reported); ``start`` is the
            index among all starts.
        every: also checkpoint *within* a start every ``every`` iterations: the
            iterate, the optimiser's state (Adam's moments, L-BFGS's memory), the
            step count and the loop's bookkeeping (histories, best point, validation
            state), so that a long optax training run resumes where it stopped and
            continues exactly as if uninterrupted (a :class:`Minibatch` draws its
            batch from the step number, so the same batches follow).
        **fit_kwargs: passed to each :func:`fit` (``validation``, ``patience``,
            ``validate_every``, ``ftol``).

    Returns:
        A :class:`FitResult` with every start, in start order.

    Raises:
        InferenceError: ``objective`` is not an objective; bad ``starts``, ``key``,
            ``max_steps`` or ``keep``.
        CheckpointError: ``directory`` is a file; it holds checkpoints of a different
            run (the error names the fields that differ) or holds checkpoints while
            ``resume=False``; none of its checkpoints is readable; or a checkpoint
            could not be verified after writing.

    Examples:
        >>> import tempfile
        >>> import jaxcell as jc
        >>> from jaxcell.inference import Experiment, Objective, Parameters, Normal
        >>> decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.2})
        >>> data = Experiment([1.0, 2.0, 3.0], [0.6065, 0.3679, 0.2231],
        ...                   "molecular/decay/x", noise=Normal(0.01))
        >>> obj = Objective(decay, Parameters(["k"], model=decay), data)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     result = fit_checkpointed(obj, directory=d, starts=3)
        >>> round(result.values["k"], 3), len(result.starts)
        (0.5, 3)
    """
    objective = as_objective(objective, "fit_checkpointed")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
            or max_steps < 1:
        raise InferenceError(f"fit_checkpointed: max_steps must be a positive integer; "
                             f"got {max_steps!r}.")
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
        raise InferenceError(f"fit_checkpointed: keep must be a positive integer; got "
                             f"{keep!r}.")
    method = default_method(objective) if method is None else method
    points, key = _start_points(objective, starts, key)
    root = checked_directory(directory)
    identity = _identity(objective, method, int(max_steps), points, key)

    import orbax.checkpoint as ocp  # heavy; imported only when checkpointing

    options = ocp.CheckpointManagerOptions(
        max_to_keep=None,  # pruned by hand, after the new checkpoint is verified
        create=True,
        enable_async_checkpointing=False,  # every save is complete before we go on
        cleanup_tmp_directories=True,  # partial checkpoints of a crashed run
    )
    if every is not None and (isinstance(every, bool) or int(every) < 1):
        raise InferenceError(f"fit_checkpointed: every must be a positive integer; got "
                             f"{every!r}.")
    n = len(points)
    # checkpoint ids: completed starts (times max_steps + 1, plus the iterations of the
    # start in progress, with every=)
    per = 1 if every is None else int(max_steps) + 1
    with ocp.CheckpointManager(root, options=options, item_names=("data", "meta")) as mgr:
        results, partial = _restore(ocp, mgr, root, identity, resume)
        if results or partial:
            logger.info("fit_checkpointed: resuming after %d/%d starts%s from %s.",
                        len(results), n, "" if partial is None else
                        f" and {partial[0].k} iterations of the next", root)
        for i in range(len(results), n):
            cb = None if callback is None else (
                lambda _, step, value, i=i: callback(i, step, value))
            hook = None
            if every is not None:
                def hook(loop, X, S, i=i):
                    if loop.k % int(every) == 0 and loop.active.any():
                        _save(ocp, mgr, root, identity, points, key, results, keep,
                              step=i * per + loop.k, partial=(loop, X, S))
            one = fit(objective, method=method, starts=points[i:i + 1],
                      max_steps=int(max_steps), callback=cb, _hook=hook,
                      _resume=partial, **fit_kwargs).starts[0]
            partial = None
            results.append(one)
            _save(ocp, mgr, root, identity, points, key, results, keep,
                  step=len(results) * per)
            logger.info("fit_checkpointed: start %d/%d: nll %.6g after %d steps (%s); "
                        "checkpoint %d saved.", i + 1, n, one.value, one.steps,
                        "converged" if one.converged else "not converged", i + 1)
    return _result(objective, results, method)  # as fit() chooses the best start


# -- the run -------------------------------------------------------------------------------


def _start_points(objective: AbstractObjective, starts, key) -> tuple[np.ndarray, Any]:
    """The start points as :func:`fit` draws them, and the key used (or ``None``)."""
    n_params = len(objective.parameters)
    if isinstance(starts, bool):
        raise InferenceError(f"fit_checkpointed: starts must be a count or an array; "
                             f"got {starts!r}.")
    if np.ndim(starts) == 0:
        try:
            n = int(starts)
        except (TypeError, ValueError) as e:
            raise InferenceError(f"fit_checkpointed: starts must be a count or an "
                                 f"array; got {starts!r}.") from e
        if n != starts or n < 1:
            raise InferenceError(f"fit_checkpointed: starts must be at least 1; got "
                                 f"{starts}.")
        if n > 1 or objective.random_starts_only:
            key = jax.random.key(0) if key is None else _as_key(key)
        else:
            key = None
        points = draw_starts(objective, n, key)
    else:
        points = jnp.asarray(starts, float)
        if points.ndim != 2 or points.shape[1] != n_params or points.shape[0] < 1:
            raise InferenceError(f"fit_checkpointed: starts must have shape (n, "
                                 f"{n_params}) with n >= 1; got {points.shape}.")
        key = None  # explicit points: no key is used
    points = np.asarray(points)
    if not np.all(np.isfinite(points)):
        raise InferenceError("fit_checkpointed: the start points must be finite.")
    return points, key


def _as_key(key):
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise InferenceError(f"fit_checkpointed: key must be a single key; got "
                                 f"shape {key.shape}.")
        return key
    arr = jnp.asarray(key)
    if arr.dtype != jnp.uint32 or arr.shape != (2,):
        raise InferenceError(f"fit_checkpointed: key must be a jax.random.key (or a "
                             f"legacy uint32[2] PRNGKey); got dtype {arr.dtype} and "
                             f"shape {arr.shape}.")
    return arr  # used as is, as fit() would


def _key_data(key) -> np.ndarray | None:
    if key is None:
        return None
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


def _identity(objective: AbstractObjective, method, max_steps: int, points: np.ndarray,
              key) -> dict:
    ps = objective.parameters
    lo, hi = ps.bounds
    data = _key_data(key)
    leaves = array_leaves(objective)
    return {
        "kind": _KIND,
        "names": list(ps.names),
        "x0": hash_parts(to_bytes(ps.x0)),
        "bounds": hash_parts(to_bytes(lo), to_bytes(hi)),
        "scales": hash_parts(*(describe(s) for s in ps.scales)),
        "objective": hash_parts(*(k + to_bytes(v).hex() for k, v in leaves)),
        "method": f"{type(method).__module__}.{type(method).__qualname__}",
        "method_settings": hash_parts(describe(method)),
        "max_steps": max_steps,
        "n_starts": len(points),
        "key": None if data is None else hash_parts(str(data.dtype), data.tobytes()),
        "starts": hash_parts(str(points.dtype), str(points.shape), points.tobytes()),
    }


def _check_identity(meta: dict, identity: dict, root, step: int) -> None:
    differ = [k for k in identity if meta.get(k) != identity[k]]
    if differ:
        what = "; ".join(
            f"{_WHAT[k]}: {meta.get(k)!r} there, {identity[k]!r} here" if k in _SHOWN
            else f"the {_WHAT[k]} differ" for k in differ)
        raise CheckpointError(
            f"{str(root)!r} holds checkpoints of a different fit (checkpoint {step}): "
            f"{what}. Use another directory for this fit, or delete that one to start "
            f"again.")


# -- writing and reading checkpoints -----------------------------------------------------


_LOOP_ARRAYS = ("best_v", "converged", "steps", "active", "quiet", "prev", "val_best_v",
                "val_since")
_LOOP_LISTS = ("history", "moved", "val_history")


def _save(ocp, mgr, root, identity: dict, points: np.ndarray, key,
          results: list[StartResult], keep: int, *, step: int, partial=None) -> None:
    """Write checkpoint ``step``, read it back and verify it, then prune. ``partial``:
    ``(loop, X, S)`` of the start in progress (its bookkeeping, iterate and optimiser
    state)."""
    data = _key_data(key)
    entries = [("points", points)]
    if data is not None:
        entries.append(("key", data))
    if results:
        entries += [
            ("x0", np.stack([np.asarray(r.x0) for r in results])),
            ("x", np.stack([np.asarray(r.x) for r in results])),
            ("value", np.asarray([r.value for r in results], dtype=np.float64)),
            ("converged", np.asarray([r.converged for r in results], dtype=np.bool_)),
            ("steps", np.asarray([r.steps for r in results], dtype=np.int64)),
            ("history_len", np.asarray([len(r.history) for r in results], dtype=np.int64)),
            ("history", np.concatenate([np.asarray(r.history, dtype=np.float64)
                                        for r in results])),
            ("validation_len", np.asarray([len(r.validation) for r in results],
                                          dtype=np.int64)),
            ("validation", np.concatenate([np.asarray(r.validation, dtype=np.float64)
                                           for r in results])),
            ("validation_value", np.asarray(
                [np.nan if r.validation_value is None else r.validation_value
                 for r in results], dtype=np.float64)),
        ]
    n_state = 0
    if partial is not None:
        loop, X, S = partial
        entries += [("p_X", np.asarray(X)), ("p_best_x", np.stack(loop.best_x)),
                    ("p_val_best_x", np.stack(loop.val_best_x))]
        entries += [(f"p_{a}", np.asarray(getattr(loop, a))) for a in _LOOP_ARRAYS]
        entries += [(f"p_{a}", np.asarray(getattr(loop, a)[0], dtype=np.float64))
                    for a in _LOOP_LISTS]
        leaves = jax.tree_util.tree_leaves(S)
        n_state = len(leaves)
        entries += [(f"p_S{j}", np.asarray(leaf)) for j, leaf in enumerate(leaves)]
    leaves, blob = pack([(role, None, x) for role, x in entries])
    # "format" and "chunk" as read expects them; "kind" tells fits from runs.
    meta = {"format": FORMAT, **identity, "chunk": step, "completed": len(results),
            "partial_k": None if partial is None else int(partial[0].k),
            "n_state": n_state,
            "key_impl": None if not (isinstance(key, jax.Array) and jnp.issubdtype(
                key.dtype, jax.dtypes.prng_key)) else str(jax.random.key_impl(key)),
            "leaves": leaves}
    commit(ocp, mgr, root, step, blob, meta, keep)


def _restore(ocp, mgr, root, identity: dict, resume: bool):
    """The completed starts of the latest good checkpoint (``[]`` for a fresh fit) and
    the start in progress, ``(loop, X, state leaves)`` or ``None``."""
    steps = sorted(mgr.all_steps())
    if not steps:
        return [], None
    if not resume:
        raise CheckpointError(
            f"{str(root)!r} already holds checkpoints (steps {steps}) and resume=False; "
            f"pass resume=True to continue that fit, or use an empty directory (nothing "
            f"is overwritten).")
    skipped: list[tuple[int, str]] = []
    for step in reversed(steps):
        try:
            meta, arrays = read(ocp, mgr, step)
            _check_identity(meta, identity, root, step)
            results = _results(meta, arrays, meta.get("completed", step))
            partial = _partial(meta, arrays)
        except Unreadable as e:
            warnings.warn(
                f"Skipping checkpoint {step} in {str(root)!r}: it is unreadable or corrupt "
                f"({e}). Trying the previous one.", stacklevel=3)
            skipped.append((step, str(e)))
            continue
        set_aside(mgr, root, [s for s, _ in skipped])
        return results, partial
    reasons = "; ".join(f"{s}: {why}" for s, why in skipped)
    raise CheckpointError(
        f"None of the checkpoints in {str(root)!r} is readable ({reasons}). They were "
        f"left in place; delete the directory (or use another) to start again.")


def _partial(meta: dict, arrays: list[np.ndarray]):
    """The start in progress of a checkpoint written with ``every``, or ``None``."""
    from ._fit_loop import _Loop

    if meta.get("partial_k") is None:
        return None
    got = {leaf["role"]: x for leaf, x in zip(meta["leaves"], arrays)}
    try:
        loop = _Loop(int(meta["partial_k"]),
                     *[[list(map(float, got["p_" + a]))] for a in ("history", "moved")],
                     [got["p_best_x"][0]], *[got["p_" + a].copy() for a in _LOOP_ARRAYS[:6]],
                     [list(map(float, got["p_val_history"]))], [got["p_val_best_x"][0]],
                     got["p_val_best_v"].copy(), got["p_val_since"].copy())
        state = [got[f"p_S{j}"] for j in range(int(meta["n_state"]))]
        return loop, got["p_X"], state
    except KeyError as e:
        raise Unreadable(f"its start in progress lacks {e}") from e


def _results(meta: dict, arrays: list[np.ndarray], step: int) -> list[StartResult]:
    if step == 0:
        return []
    got = {leaf["role"]: x for leaf, x in zip(meta["leaves"], arrays)}
    need = ("x0", "x", "value", "converged", "steps", "history_len", "history")
    if any(r not in got for r in need) or any(len(got[r]) != step for r in need[:-1]) \
            or int(got["history_len"].sum()) != len(got["history"]):
        raise Unreadable(f"its arrays do not describe {step} completed starts")
    ends = np.cumsum(got["history_len"])
    vlen = got.get("validation_len", np.zeros(step, np.int64))
    vals = got.get("validation", np.zeros(0))
    vends = np.cumsum(vlen)
    vbest = got.get("validation_value", np.full(step, np.nan))
    return [StartResult(got["x0"][i], got["x"][i], float(got["value"][i]),
                        bool(got["converged"][i]), int(got["steps"][i]),
                        tuple(float(v) for v in got["history"][e - m:e]),
                        tuple(float(v) for v in vals[ve - vm:ve]),
                        None if np.isnan(vbest[i]) else float(vbest[i]))
            for i, (m, e, vm, ve) in enumerate(zip(got["history_len"], ends, vlen, vends))]
