"""The event loop: events, switches and delays of any model, inside one compiled program.

A model with event processes (:class:`~jaxcell.AbstractEventProcess`: events written in
code with :class:`~jaxcell.Event`, SBML models with events, ``piecewise`` or ``delay``)
is integrated as a loop of *segments* (an equinox while loop: checkpointed for reverse
mode, a plain ``lax`` loop for forward mode). Each iteration

1. executes the events due now, highest priority first, re-evaluating every trigger after
   each execution (new firings are queued with their delay and, when
   ``use_trigger_values``, the values computed at firing time; non-persistent events
   whose trigger turned false are removed from the queue);
2. records the state at save times equal to now;
3. integrates (one ``diffrax.diffeqsolve`` with the user's solver, controller and
   adjoint) to the next scheduled execution, scheduled event or timed switch, the end,
   or the first trigger or switch that changes (a ``diffrax.Event`` located by
   bisection). Switches are frozen inside a segment, so the solver integrates a smooth
   function and stops exactly where a branch changes. For models that read the past
   (``delay``) a segment is at most the smallest delay long (method of steps), and the
   accepted steps are kept as a cubic Hermite history;
4. records the state at save times inside the segment.

Everything is fixed-shape. The loop state is :class:`_Loop`; outcomes are
:class:`jaxcell.RESULTS`.
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx
from jax.flatten_util import ravel_pytree

from ._composite import Composite
from ._errors import SimulationError
from ._event_system import EventSystem
from ._loop_context import History, LoopContext, make_context
from ._results import RESULTS

NO_PRIORITY = -1e300
HISTORY_BLOCKS = 16
"""The delay history holds ``HISTORY_BLOCKS x (steps per segment)`` accepted steps."""

__all__ = ["Bisection", "EventOutput", "History", "LoopContext", "default_max_segments",
           "make_context", "solve_events", "unravel_states"]


# -- root finding ------------------------------------------------------------------------
class _BracketState(eqx.Module):
    lower: jax.Array
    upper: jax.Array
    positive_at_lower: jax.Array


class Bisection(optx.AbstractRootFinder):
    """Locates where a function changes sign inside ``[lower, upper]`` by halving the
    bracket until it is narrower than ``atol + rtol·|t|``. It needs no smoothness
    (boolean triggers work) and returns the upper end, where the change has happened.
    A bracket whose ends have the same sign (the change sits exactly on ``lower``)
    shrinks to ``lower`` rather than raising."""

    rtol: float
    atol: float
    norm: Callable = optx.max_norm

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        lower = jnp.asarray(options["lower"], f_struct.dtype)
        upper = jnp.asarray(options["upper"], f_struct.dtype)
        f_lower, _ = fn(lower, args)
        return _BracketState(lower, upper, f_lower > 0)

    def step(self, fn, y, args, options, state, tags):
        mid = 0.5 * (state.lower + state.upper)
        f_mid, aux = fn(mid, args)
        same = (f_mid > 0) == state.positive_at_lower
        new = _BracketState(jnp.where(same, mid, state.lower),
                            jnp.where(same, state.upper, mid), state.positive_at_lower)
        return new.upper, new, aux

    def terminate(self, fn, y, args, options, state, tags):
        width = jnp.abs(state.upper - state.lower)
        return width < self.atol + self.rtol * jnp.abs(state.upper), optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return state.upper, aux, {}


# -- loop state ------------------------------------------------------------------------------
class _Queue(eqx.Module):
    """Pending (delayed) event executions: time, event, values, occupied; ``overflow``
    records an execution that found no free slot."""

    t: jax.Array
    event: jax.Array
    values: jax.Array
    on: jax.Array
    overflow: jax.Array


class _Loop(eqx.Module):
    """The state of the segment loop."""

    t: jax.Array
    x: jax.Array
    flags: jax.Array  # trigger values
    z: jax.Array  # frozen switch values
    queue: _Queue
    hist: History | None
    out_x: jax.Array  # state at the save times
    out_z: jax.Array  # switches at the save times
    steps: jax.Array
    done: jax.Array
    result: RESULTS
    segments: jax.Array


class EventOutput(eqx.Module):
    """What the event loop returns: the flat state and switches at the save times, the
    final history (for outputs that read the past), the result and the step count."""

    xs: jax.Array
    zs: jax.Array
    hist: History | None
    result: RESULTS
    steps: jax.Array
    segments: jax.Array


def _where(pred, a, b):
    return jax.tree_util.tree_map(lambda u, v: jnp.where(pred, u, v), a, b)


def _first(result, *checks):
    """Keep the first problem found: ``result`` unless it is successful."""
    for bad, code in checks:
        result = RESULTS.where((result == RESULTS.successful) & bad, code, result)
    return result


def default_max_segments(n_save: int, n_events: int) -> int:
    """The loop's budget when none is given: it grows with the save points and events.

    Each segment ends at an event firing, a switch, a scheduled time or a save point;
    16384 leaves room for thousands of firings (two events re-triggering each other
    every 0.02 time units over 100). Reverse mode stores ``O(sqrt(budget))``
    checkpoints of the loop state, so the budget is not free: pass ``max_segments``
    for runs with more firings."""
    return 16384 + 64 * n_save + 256 * n_events


def solve_events(model: Composite, y0, ts, *, solver, controller, adjoint, max_steps,
                 max_segments, args, dt0=None, progress_meter=None) -> EventOutput:
    """Run the segment loop from ``ts[0]`` to ``ts[-1]``, saving at ``ts`` (traced)."""
    if not isinstance(adjoint, (diffrax.RecursiveCheckpointAdjoint, diffrax.ForwardMode)):
        raise SimulationError(
            f"Models with events (the event loop) support adjoint="
            f"diffrax.RecursiveCheckpointAdjoint() (reverse mode, the default) or "
            f"diffrax.ForwardMode(); got {type(adjoint).__name__}."
        )
    x0, unravel = ravel_pytree(y0)
    dtype = x0.dtype
    sys_ = EventSystem(model, args, unravel, dtype)
    n_ev, n_sw = sys_.n_ev, sys_.n_sw
    timed, watched = sys_.timed, sys_.watched
    n_queue = max(8, 4 * n_ev)
    use_history = sys_.history
    forward = isinstance(adjoint, diffrax.ForwardMode)
    loop_kind = "lax" if forward else "checkpointed"
    seg_steps = min(max_steps, 4096) if use_history else max_steps
    h_len = HISTORY_BLOCKS * seg_steps if use_history else 2
    t_final = ts[-1]
    persistent = jnp.asarray(sys_.persistent)
    use_trigger_values = jnp.asarray(sys_.use_trigger_values)
    has_priority = jnp.asarray(sys_.has_priority)
    scheduled = jnp.asarray(sys_.scheduled)
    progress_meter = diffrax.NoProgressMeter() if progress_meter is None else progress_meter

    hist0 = None
    if use_history:
        hist0 = History(ts=jnp.full((h_len,), jnp.inf, dtype),
                        xs=jnp.zeros((h_len, x0.shape[0]), dtype),
                        fs=jnp.zeros((h_len, x0.shape[0]), dtype),
                        count=jnp.asarray(0), t0=ts[0], x0=x0)
    if n_ev:
        # with the history: an event assignment may read delay() (SBML case 01536)
        n_values = jax.eval_shape(lambda: sys_.values(ts[0], x0, hist0)).shape[1]
    else:
        n_values = 1

    # -- events ----------------------------------------------------------------------
    def enqueue(q: _Queue, fired, t, x, hist) -> _Queue:
        """Queue every fired event (vectorised: the k-th fired event takes the k-th free
        slot)."""
        d = sys_.delays(t, x, hist)
        vals = sys_.values(t, x, hist)
        free = jnp.nonzero(~q.on, size=n_queue, fill_value=n_queue)[0]
        rank = jnp.cumsum(fired) - 1
        slot = jnp.where(fired, free[jnp.clip(rank, 0, n_queue - 1)], n_queue)
        slot = jnp.where(rank < jnp.sum(~q.on), slot, n_queue)
        overflow = q.overflow | (jnp.sum(fired) > jnp.sum(~q.on))
        return _Queue(t=q.t.at[slot].set(t + d, mode="drop"),
                      event=q.event.at[slot].set(jnp.arange(n_ev, dtype=jnp.int32),
                                                 mode="drop"),
                      values=q.values.at[slot].set(vals, mode="drop"),
                      on=q.on.at[slot].set(True, mode="drop"), overflow=overflow)

    def update_flags(flags, new_flags, q: _Queue, t, x, hist):
        if not n_ev:
            return new_flags, q
        fired = new_flags & ~flags
        fell = flags & ~new_flags
        cancel = fell[q.event] & ~persistent[q.event]
        q = eqx.tree_at(lambda q: q.on, q, q.on & ~cancel)
        return new_flags, enqueue(q, fired, t, x, hist)

    def execute(k, t, x, vals, hist, z):
        now = sys_.values(t, x, hist)[k]
        vals = jnp.where(use_trigger_values[k], vals, now)
        return sys_.execute(k, t, x, vals, hist, z)

    def resolve(t, x, flags, q: _Queue, hist, z):
        """Execute everything due at ``t`` (priority order, cascading); also report a
        tie of two due events with equal, explicit priorities."""
        tie0 = jnp.asarray(False)
        if not n_ev:
            return x, flags, q, tie0

        def due(carry):
            _, _, q_, _ = carry
            return jnp.any(q_.on & (q_.t <= t)) & ~q_.overflow

        def body(carry):
            x_, flags_, q_, tie = carry
            is_due = q_.on & (q_.t <= t)
            prio = sys_.priorities(t, x_, hist)[q_.event]
            score = jnp.where(is_due, prio, -jnp.inf)
            pick = jnp.argmax(score)
            rivals = is_due & (score == score[pick]) & has_priority[q_.event] & \
                (q_.event != q_.event[pick])
            tie = tie | (has_priority[q_.event[pick]] & jnp.any(rivals))
            k = q_.event[pick]
            _, g_before = sys_.triggers(t, x_, hist)
            x_new = execute(k, t, x_, q_.values[pick], hist, z)
            q_ = eqx.tree_at(lambda q: q.on, q_, q_.on.at[pick].set(False))
            b_after, g_after = sys_.triggers(t, x_new, hist)
            # a trigger whose function did not move keeps its state (it may sit on zero)
            new_flags = jnp.where(g_after == g_before, flags_, b_after)
            flags_, q_ = update_flags(flags_, new_flags, q_, t, x_new, hist)
            return x_new, flags_, q_, tie

        return eqxi.while_loop(due, body, (x, flags, q, tie0),
                               max_steps=16 * n_queue + 64, kind=loop_kind)

    # -- one segment -----------------------------------------------------------------------
    def vf(t, x, args):
        hist, z = args
        return sys_.rhs(t, x, hist, z)

    term = diffrax.ODETerm(vf)
    ctrl = controller
    if (n_ev or len(watched) or use_history) and isinstance(ctrl, diffrax.PIDController) \
            and ctrl.dtmax is None:
        # Triggers are checked at step ends: one that turns true and false again inside a
        # step would be missed, so steps are at most 1/100 of the time span (and a delay
        # history is only as accurate as its steps are short).
        ctrl = eqx.tree_at(lambda c: c.dtmax, ctrl, (ts[-1] - ts[0]) / 100.0,
                           is_leaf=lambda v: v is None)

    def crossing(t, x, hist, flags, z):
        """One value per root-found trigger and switch: <= 0 while nothing has changed,
        crossing zero upwards where something does."""
        parts = []
        if n_ev:
            _, g = sys_.triggers(t, x, hist, z)
            parts.append(jnp.where(scheduled, -1.0, jnp.where(flags, -g, g)))
        if len(watched):
            parts.append(sys_.switch_crossings(t, x, hist, z)[watched])
        return jnp.concatenate(parts)

    n_watch = n_ev + len(watched)

    def segment(t, t_end, x, flags, z, hist):
        if n_watch:
            def cond(t, y, args, **kw):
                return jnp.max(crossing(t, y, args[0], flags, z))

            event = diffrax.Event(cond, root_finder=Bisection(rtol=1e-13, atol=1e-13),
                                  direction=True)
        else:
            event = None
        subs = [diffrax.SubSaveAt(ts=jnp.clip(ts, t, t_end)), diffrax.SubSaveAt(t1=True)]
        if use_history:
            subs.append(diffrax.SubSaveAt(steps=True))
        sol = diffrax.diffeqsolve(
            term, solver, t, t_end, dt0, x, args=(hist, z),
            saveat=diffrax.SaveAt(subs=subs), stepsize_controller=ctrl,
            max_steps=seg_steps, throw=False, event=event, adjoint=adjoint,
            progress_meter=progress_meter,
        )
        if n_watch:
            c_end = crossing(sol.ts[1][0], sol.ys[1][0], hist, flags, z)
            # every condition that changed here (simultaneous ones tie with the maximum)
            top = jnp.max(c_end)
            mask = (c_end >= top - 1e-12 * (1.0 + jnp.abs(top))) & sol.event_mask
        else:
            mask = jnp.zeros((0,), bool)
        return sol, mask

    def timed_values(t, x, hist, z):
        """``z`` with the time-only switches evaluated inside ``(t, next time)``, where
        they are constant (at ``t`` itself a switch may just have happened)."""
        if not len(timed):
            return z
        s_next = sys_.next_time(t, x, hist, z)
        probe = jnp.where(jnp.isfinite(s_next), 0.5 * (t + s_next),
                          t + jnp.maximum(1.0, jnp.abs(t)))
        vals = sys_.switch_values(probe, x, hist, z)
        return z.at[timed].set(vals[timed])

    # -- the loop ----------------------------------------------------------------------------
    flags0 = jnp.asarray(sys_.initial_value)
    queue0 = _Queue(t=jnp.full((n_queue,), jnp.inf, dtype),
                    event=jnp.zeros((n_queue,), jnp.int32),
                    values=jnp.zeros((n_queue, n_values), dtype),
                    on=jnp.zeros((n_queue,), bool), overflow=jnp.asarray(False))
    # events whose trigger is true at the start and whose initial value is false fire now
    b0, _ = sys_.triggers(ts[0], x0, hist0)
    flags0, queue0 = update_flags(flags0, b0, queue0, ts[0], x0, hist0)
    z0 = sys_.switch_values(ts[0], x0, hist0) if n_sw else jnp.zeros((0,), dtype)
    z0 = timed_values(ts[0], x0, hist0, z0)
    n_out = ts.shape[0]

    def body(s: _Loop) -> _Loop:
        t, x, flags, z, q, hist = s.t, s.x, s.flags, s.z, s.queue, s.hist
        x_before = x
        x, flags, q, tie = resolve(t, x, flags, q, hist, z)
        result = _first(s.result, (q.overflow, RESULTS.event_queue_full),
                        (tie, RESULTS.event_tie))
        if n_sw:  # events changed the state: switches are chosen afresh
            z = jnp.where(jnp.any(x != x_before),
                          timed_values(t, x, hist, sys_.switch_values(t, x, hist)), z)
        at_t = (ts == t)[:, None]
        z_now = z
        if len(timed):  # outputs at t see the time-only switches' values at t itself
            z_now = z.at[timed].set(sys_.switch_values(t, x, hist, z)[timed])
        out_x = jnp.where(at_t, x[None, :], s.out_x)
        out_z = jnp.where(at_t, z_now[None, :], s.out_z)
        finished = t >= t_final
        t_next = jnp.minimum(t_final, jnp.min(jnp.where(q.on, q.t, jnp.inf)))
        if use_history:
            t_next = jnp.minimum(t_next, t + sys_.min_delay(t, x, hist))
            f = sys_.rhs(t, x, hist, z)
            i = hist.count
            hist = History(hist.ts.at[i].set(t), hist.xs.at[i].set(x),
                           hist.fs.at[i].set(f), i + 1, hist.t0, hist.x0)
        t_sched = sys_.next_time(t, x, hist, z)
        t_next = jnp.where(finished, t, jnp.minimum(t_next, t_sched))
        # scheduled triggers hold only at their instants: false again inside the segment
        seg_flags = flags & ~scheduled if n_ev else flags

        def run_segment():
            return segment(t, t_next, x, seg_flags, z, hist)

        # the last iteration only executes events due at the end: no solve there
        shapes, static = eqx.partition(eqx.filter_eval_shape(run_segment),
                                       lambda a: isinstance(a, jax.ShapeDtypeStruct))
        arrays = jax.lax.cond(
            finished,
            lambda: jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes),
            lambda: eqx.filter(run_segment(), eqx.is_array))
        sol, mask = eqx.combine(arrays, static)
        t_new = sol.ts[1][0]
        x_new = sol.ys[1][0]
        # snap to a save time, a scheduled execution or a scheduled time within round-off
        # (never back to the segment's own start: a branch that changes just after a
        # save time must not overwrite that output)
        cands = jnp.concatenate([ts, jnp.where(q.on, q.t, jnp.inf), t_sched[None]])
        near = cands[jnp.argmin(jnp.abs(cands - t_new))]
        snap = (jnp.abs(near - t_new) <= 1e-11 * jnp.maximum(1.0, jnp.abs(t_new))) & \
            (near > t)
        t_new = jnp.where(snap, near, t_new)
        seg_ok = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.event_occurred)
        inside = (ts > t) & (ts < t_new)
        keep = inside[:, None] & ~finished
        out_x = jnp.where(keep, sol.ys[0], out_x)
        out_z = jnp.where(keep, z[None, :], out_z)
        if use_history:
            k = sol.stats["num_accepted_steps"]
            st_ts, st_ys = sol.ts[2], sol.ys[2]
            st_fs = jax.vmap(lambda tt, yy: sys_.rhs(tt, yy, hist, z))(st_ts, st_ys)
            valid = jnp.arange(st_ts.shape[0]) < k
            st_ts = jnp.where(valid, st_ts, jnp.inf)
            result = _first(result, (hist.count + seg_steps + 1 > h_len,
                                     RESULTS.history_full))
            i = hist.count
            new_hist = History(
                jax.lax.dynamic_update_slice(hist.ts, st_ts, (i,)),
                jax.lax.dynamic_update_slice(hist.xs, st_ys, (i, 0)),
                jax.lax.dynamic_update_slice(hist.fs, st_fs, (i, 0)),
                i + k, hist.t0, hist.x0)
            hist = _where(finished, hist, new_hist)
        # what the solver stopped on flips; the rest are re-evaluated
        mask_ev = mask[:n_ev]
        if n_ev:
            b_new, _ = sys_.triggers(t_new, x_new, hist)
            new_flags = jnp.where(mask_ev, ~seg_flags, b_new)
            flags2, q2 = update_flags(seg_flags, new_flags, q, t_new, x_new, hist)
            flags = jnp.where(finished, flags, flags2)
            q = _where(finished, q, q2)
        if n_sw:
            mask_sw = jnp.zeros((n_sw,), bool)
            if len(watched):
                mask_sw = mask_sw.at[watched].set(mask[n_ev:])
            flipped = sys_.switch_flips(t_new, x_new, hist, z)
            z1 = jnp.where(mask_sw, flipped, z)
            # the others are re-evaluated (with the flipped ones frozen: a condition that
            # contains a flipped one changes with it)
            fresh = sys_.switch_values(t_new, x_new, hist, z1)
            fresh = timed_values(t_new, x_new, hist, fresh)
            z = jnp.where(finished, z, jnp.where(mask_sw, flipped, fresh))
        steps = s.steps + jnp.where(finished, 0, sol.stats["num_accepted_steps"])
        solver_result = RESULTS.promote(sol.result)
        result = RESULTS.where((result == RESULTS.successful) & ~(seg_ok | finished),
                               solver_result, result)
        return _Loop(t=jnp.where(finished, t, t_new), x=jnp.where(finished, x, x_new),
                     flags=flags, z=z, queue=q, hist=hist, out_x=out_x, out_z=out_z,
                     steps=steps, done=finished, result=result, segments=s.segments + 1)

    def cond(s: _Loop):
        return ~s.done & (s.result == RESULTS.successful)

    init = _Loop(t=ts[0], x=x0, flags=flags0, z=z0, queue=queue0, hist=hist0,
                 out_x=jnp.full((n_out, x0.shape[0]), jnp.nan, dtype),
                 out_z=jnp.zeros((n_out, n_sw), dtype), steps=jnp.asarray(0),
                 done=jnp.asarray(False), result=RESULTS.successful,
                 segments=jnp.asarray(0))
    # (reverse mode keeps O(sqrt(max_segments)) checkpoints of the loop state)
    s = eqxi.while_loop(cond, body, init, max_steps=max_segments, kind=loop_kind)
    result = _first(s.result, (~s.done, RESULTS.max_segments_reached))
    return EventOutput(xs=s.out_x, zs=s.out_z, hist=s.hist, result=result, steps=s.steps,
                       segments=s.segments)


def unravel_states(y0, xs):
    """The flat states ``xs`` (one row per save time) as nested states like ``y0``."""
    _, unravel = ravel_pytree(y0)
    return jax.vmap(unravel)(xs)

