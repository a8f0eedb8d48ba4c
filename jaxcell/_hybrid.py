"""Continuous integration interleaved with discrete updates at fixed intervals.

A model with :class:`~jaxcell.AbstractDiscreteProcess` parts (division, death, cellular
automata, dosing) is integrated interval by interval: one ``diffrax.diffeqsolve`` from
``t_k`` to ``t_{k+1} = t0 + (k+1)·h``, then the discrete processes due at ``t_{k+1}``
replace parts of the state, in model order. ``h`` is the shortest interval; the others
must be whole multiples of it. The loop is one ``lax.scan`` of fixed length, so the
program compiles once and is differentiable through the continuous parts (a discrete
update is differentiated as the function it is; random choices and comparisons have
zero derivative).

This is not operator splitting: the discrete rules are *defined* to act at those
instants, so there is no splitting error. What a fixed interval does approximate is a
rule that would act the moment a condition becomes true (a cell reaching its division
size): it acts at the first update time after that, up to ``h`` late.
"""

from __future__ import annotations

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._composite import Composite
from ._engine import TERM, cast_floats, initial_state
from ._errors import SimulationError
from ._results import RESULTS
from ._trajectory import Trajectory

_STEP_TOL = 1e-9
_MAX_DEFAULT_SAVES = 101


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Static plan of a hybrid solve: ``n`` intervals of length ``h``; discrete process
    ``which[j]`` fires every ``every[j]`` intervals; the state after interval ``k``
    (``k = 0`` is the initial state) is saved when ``k`` is in ``saves``."""

    h: float
    n: int
    which: tuple[int, ...]
    every: tuple[int, ...]
    saves: tuple[int, ...]


def _whole(x: float, what: str) -> int:
    k = round(x)
    if k < 1 or abs(x - k) > _STEP_TOL * max(1.0, abs(x)):
        raise SimulationError(what)
    return k


def make_schedule(model: Composite, t0: float, t1: float, saveat,
                  jump_interval: float | None = None) -> Schedule:
    """Check the intervals and save times of a hybrid solve and plan it
    (``jump_interval``: the splitting step of jump processes, if any)."""
    leaves = model.leaves
    which = model.discrete_processes
    intervals = []
    for i in which:
        h = leaves[i].interval  # pyright: ignore
        if not (isinstance(h, (int, float)) and np.isfinite(h) and h > 0):
            raise SimulationError(
                f"{type(leaves[i]).__name__} {leaves[i].name!r}: interval must be a "
                f"positive number; got {h!r}."
            )
        intervals.append(float(h))
    h = min(intervals + ([] if jump_interval is None else [float(jump_interval)]))
    every = tuple(
        _whole(v / h, f"Discrete process {leaves[i].name!r} has interval {v}, which is "
                      f"not a whole multiple of the shortest interval {h}; jaxcell steps "
                      f"all discrete processes on one grid.")
        for i, v in zip(which, intervals)
    )
    if t1 <= t0:
        raise SimulationError(
            f"models with discrete processes run forward in time; got t0={t0}, t1={t1}."
        )
    n = _whole((t1 - t0) / h,
               f"t1 - t0 = {t1 - t0} must be a whole multiple of the discrete interval "
               f"{h} (discrete updates happen at t0 + k·{h}).")
    saves = _save_steps(saveat, t0, h, n)
    return Schedule(h=h, n=n, which=which, every=every, saves=saves)


def _save_steps(saveat, t0: float, h: float, n: int) -> tuple[int, ...]:
    if saveat is None:
        m = min(n, _MAX_DEFAULT_SAVES - 1)
        return tuple(sorted(set(np.round(np.linspace(0, n, m + 1)).astype(int).tolist())))
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        if not isinstance(subs, diffrax.SubSaveAt) or subs.steps:
            raise SimulationError(
                "With discrete processes, saveat must be save times (or a SaveAt with "
                "t0, t1 and/or ts); saving every solver step is not supported."
            )
        ts = [] if subs.ts is None else list(np.asarray(subs.ts, dtype=float))
        if subs.t0:
            ts = [t0, *ts]
        if subs.t1:
            ts = [*ts, t0 + n * h]
    else:
        try:
            ts = list(np.asarray(saveat, dtype=float).ravel())
        except (TypeError, ValueError) as e:
            raise SimulationError(f"saveat must be an array of times; got {saveat!r}.") from e
    if not ts:
        raise SimulationError("saveat names no save times.")
    steps = []
    for t in ts:
        k = (t - t0) / h
        r = round(k)
        if abs(k - r) > 1e-7 * max(1.0, abs(k)) or not 0 <= r <= n:
            raise SimulationError(
                f"save time {t} is not an update time of the discrete processes; with "
                f"discrete processes the state is saved at t0 + k·{h} for k = 0..{n}."
            )
        steps.append(r)
    if any(b < a for a, b in zip(steps, steps[1:])):
        raise SimulationError("saveat times must be increasing.")
    return tuple(steps)


def _scatter(buf, slot, y):
    return jax.tree_util.tree_map(lambda b, v: b.at[slot].set(v, mode="drop"), buf, y)


@eqx.filter_jit
def solve_hybrid(model: Composite, y0, t0, schedule: Schedule, solver, controller,
                 adjoint, max_steps, args, key, dtype, dt0=None, progress_meter=None,
                 jumps=None):
    """Run the scan of a hybrid solve (see the module docstring). With ``jumps`` (a
    stochastic method), the jump processes are advanced over every interval after the
    deterministic solve, with the other variables held (a splitting step)."""
    model = cast_floats(model.prepared(t0), dtype)
    y = cast_floats(initial_state(model, y0), dtype)
    dt0 = None if dt0 is None else jnp.asarray(dt0, dtype)
    if progress_meter is None:
        progress_meter = diffrax.NoProgressMeter()
    t0 = jnp.asarray(t0, dtype)
    h = jnp.asarray(schedule.h, dtype)
    n_save = len(schedule.saves)
    slot_of = np.full(schedule.n + 1, n_save, dtype=np.int32)  # n_save = not saved
    for j, k in enumerate(schedule.saves):
        slot_of[k] = j  # repeated save steps keep the last slot; filled below
    buf = jax.tree_util.tree_map(lambda a: jnp.zeros((n_save, *a.shape), a.dtype), y)
    buf = _scatter(buf, slot_of[0], y)
    saveat = diffrax.SaveAt(t1=True)

    def interval(carry, k):
        y, buf, steps, result = carry
        ta = t0 + k * h
        tb = t0 + (k + 1) * h
        sol = diffrax.diffeqsolve(
            TERM, solver, ta, tb, dt0, y, args=(model, args), saveat=saveat,
            stepsize_controller=controller, adjoint=adjoint, max_steps=max_steps,
            throw=False, progress_meter=progress_meter)
        y = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
        result = RESULTS.where(result == RESULTS.successful, RESULTS.promote(sol.result),
                               result)
        steps = steps + sol.stats["num_steps"]
        if jumps is not None:
            from ._jumps import advance_jumps

            k_jump = jax.random.fold_in(jax.random.fold_in(key, k + 1), 2**31 - 1)
            y, n_jumps, res_j = advance_jumps(model, y, ta, tb, k_jump, jumps, args)
            steps = steps + n_jumps
            result = RESULTS.where(result == RESULTS.successful, res_j, result)
        for j, (i, m) in enumerate(zip(schedule.which, schedule.every)):
            k_j = jax.random.fold_in(jax.random.fold_in(key, k + 1), j)

            def fire(y, i=i, k_j=k_j):
                return model.discrete_update(i, tb, y, k_j, args)

            y = jax.lax.cond((k + 1) % m == 0, fire, lambda y: y, y)
        buf = _scatter(buf, jnp.asarray(slot_of)[k + 1], y)
        return (y, buf, steps, result), None

    init = (y, buf, jnp.zeros((), jnp.int32), RESULTS.successful)
    (y, buf, steps, result), _ = jax.lax.scan(interval, init, jnp.arange(schedule.n))
    save_steps = np.asarray(schedule.saves)
    # A step listed twice in saves has only its last slot filled; copy it back.
    fill = np.array([slot_of[k] for k in schedule.saves])
    buf = jax.tree_util.tree_map(lambda b: b[fill], buf)
    ts = t0 + jnp.asarray(save_steps, dtype) * h
    if model.spec.derived:
        full = jax.vmap(lambda t, y: model.derived_at(t, y, args))(ts, buf)
    else:
        full = buf
    return Trajectory(ts=ts, values=full, stats={"num_steps": steps}, result=result,
                      spec=model.spec)
