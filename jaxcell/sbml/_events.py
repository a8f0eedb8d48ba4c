"""SBML events, delays and discontinuities inside one compiled program.

The simulation is a loop of *segments* (an equinox checkpointed while loop, so it is
jit-compilable and differentiable). Each iteration

1. executes the events due now, highest priority first, re-evaluating every trigger after
   each execution (new firings are queued with their delay and, when
   ``useValuesFromTriggerTime``, the assignment values computed at trigger time;
   non-persistent events whose trigger turned false are removed from the queue);
2. records outputs whose time equals now;
3. integrates to the next scheduled execution, the end time, or the first trigger or
   discontinuity that changes (a diffrax event located by bisection). Inside a segment the
   branches of ``piecewise`` and the values of ``floor``/``ceiling`` in the right-hand
   side are frozen, so the solver integrates a smooth function and stops exactly where a
   branch changes (as CVODE-based simulators do). For models with ``delay`` a segment is
   at most the smallest delay long, so the past is always known (method of steps);
4. records outputs inside the segment.

Everything is fixed-shape: the queue holds ``max(8, 4·events)`` pending executions, and
for delays the history holds the accepted steps (times, states, derivatives; cubic
Hermite interpolation between them).
"""

from __future__ import annotations

from collections.abc import Callable

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import optimistix as optx

from ..solvers import Rodas5
from ._eval import Locals, _bool, _num
from ._triggers import (
    discontinuity_flip,
    discontinuity_g,
    discontinuity_value,
    time_switches,
    trigger_g,
)

_NO_PRIORITY = -1e300

STATUS_OK, STATUS_SOLVER, STATUS_MAX_SEGMENTS, STATUS_QUEUE_FULL, STATUS_HISTORY_FULL, \
    STATUS_TIE = range(6)
STATUS_MESSAGES = {
    STATUS_SOLVER: "the solver failed (step size too small, too many steps, or a "
    "non-finite value); try looser tolerances or a larger max_steps",
    STATUS_MAX_SEGMENTS: "more event firings and discontinuities than max_segments; raise "
    "max_segments",
    STATUS_QUEUE_FULL: "too many delayed event executions pending at once (the queue "
    "holds max(8, 4 x number of events))",
    STATUS_HISTORY_FULL: "the delay history is full (16 x 4096 accepted steps); simulate "
    "a shorter time span",
}


class _BracketState(eqx.Module):
    lower: jax.Array
    upper: jax.Array
    positive_at_lower: jax.Array


class _Bisection(optx.AbstractRootFinder):
    """Locates where a function changes sign inside ``[lower, upper]`` by halving the
    bracket until it is narrower than ``atol + rtol·|t|``. It needs no smoothness (boolean
    triggers work) and returns the upper end, where the change has happened. A bracket
    whose ends have the same sign (the change sits exactly on ``lower``) shrinks to
    ``lower`` rather than raising."""

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


def _delay_taus(st):
    """``(tau tree, reaction id or None)`` for every ``delay`` in the model; the reaction
    id gives the scope of local parameters."""
    out = []

    def walk(tree, rid):
        if tree[0] == "delay":
            out.append((tree[2], rid))
            walk(tree[1], rid)
            walk(tree[2], rid)
        elif tree[0] == "call":
            walk(st.inline(tree), rid)
        elif tree[0] == "op":
            for k in tree[2:]:
                walk(k, rid)
        elif tree[0] == "rateOf":
            walk(tree[1], rid)

    for _, tree, rid in st.trees():
        walk(tree, rid)
    return out


class _History(eqx.Module):
    ts: jax.Array  # (H,), +inf where unused
    xs: jax.Array  # (H, n)
    fs: jax.Array  # (H, n)
    count: jax.Array
    t0: jax.Array
    x0: jax.Array

    def __call__(self, tq):
        h_len = self.ts.shape[0]
        i = jnp.clip(jnp.searchsorted(self.ts, tq, side="right") - 1, 0, h_len - 2)
        ta, tb = self.ts[i], self.ts[i + 1]
        xa, xb, fa, fb = self.xs[i], self.xs[i + 1], self.fs[i], self.fs[i + 1]
        h = tb - ta
        ok = jnp.isfinite(tb) & (h > 0)
        hs = jnp.where(ok, h, 1.0)
        s = jnp.where(ok, (tq - ta) / hs, 0.0)
        h00 = 2 * s**3 - 3 * s**2 + 1
        h10 = s**3 - 2 * s**2 + s
        h01 = -2 * s**3 + 3 * s**2
        h11 = s**3 - s**2
        interp = h00 * xa + h10 * hs * fa + h01 * xb + h11 * hs * fb
        out = jnp.where(ok, interp, xa)
        # strictly before the start: the initial state (at the start itself the recorded
        # history is used, so that time derivatives are one-sided from the right)
        return jnp.where(tq < self.t0, self.x0, out)

    def append(self, t, x, f):
        i = self.count
        return _History(self.ts.at[i].set(t), self.xs.at[i].set(x), self.fs.at[i].set(f),
                        i + 1, self.t0, self.x0)


def _scope(e, rid):
    if rid is None:
        return None
    return Locals({lid: e._local(rid, lid) for lid in e.st.reactions[rid].locals})


def _where_tree(pred, a, b):
    return jax.tree_util.tree_map(lambda u, v: jnp.where(pred, u, v), a, b)


def solve_with_events(model, ts, x0, c, rtol, atol, max_steps, max_segments,
                      forward_mode=False):
    st = model.structure
    events = st.ir.events
    n_ev = len(events)
    discs = st.discontinuities
    n_disc = len(discs)
    dtype = x0.dtype
    t_final = ts[-1]
    n_assign = max([len(e.assignments) for e in events] + [1])
    n_queue = max(8, 4 * n_ev)
    taus = _delay_taus(st)
    use_history = bool(taus)
    seg_steps = min(max_steps, 4096) if use_history else max_steps
    # Reverse mode: checkpointed loops (diffrax's and equinox's); forward mode: plain
    # lax loops, which jax.jvp goes through (the checkpointed ones are custom_vjp).
    loop_kind = "lax" if forward_mode else "checkpointed"
    seg_adjoint = diffrax.ForwardMode() if forward_mode else diffrax.RecursiveCheckpointAdjoint()
    h_len = 16 * seg_steps if use_history else 2
    # Conditions that depend on time alone switch at times known in advance: segments
    # end there exactly, and only the other conditions are watched by root finding.
    switches = [time_switches(st, tr) if k == "cond" else None for k, tr in discs]
    timed = [i for i, sw in enumerate(switches) if sw is not None]
    watched = [i for i, sw in enumerate(switches) if sw is None]
    switch_trees = [c for sw in switches if sw is not None for c in sw]

    def env(t, x, hist, z=None):
        frozen = None
        if z is not None and n_disc:
            frozen = {d: (z[i] > 0.5 if d[0] == "cond" else z[i]) for i, d in enumerate(discs)}
        return model.env(t, x, c, history=hist if use_history else None, frozen=frozen)

    def triggers(t, x, hist, z=None):
        e = env(t, x, hist, z)
        b = jnp.stack([_bool(e.evaluate(ev.trigger)) for ev in events]) if n_ev else \
            jnp.zeros((0,), bool)
        g = jnp.stack([trigger_g(e, ev.trigger) for ev in events]) if n_ev else \
            jnp.zeros((0,), dtype)
        return b, g

    def disc_values(t, x, hist):
        e = env(t, x, hist)
        return jnp.stack([discontinuity_value(e, k, tr) for k, tr in discs]) if n_disc \
            else jnp.zeros((0,), dtype)

    def assignment_values(t, x, hist):
        e = env(t, x, hist)
        rows = []
        for ev in events:
            vals = [_num(e.evaluate(tree)).astype(dtype) for _, tree in ev.assignments]
            vals += [jnp.zeros((), dtype)] * (n_assign - len(vals))
            rows.append(jnp.stack(vals))
        return jnp.stack(rows) if rows else jnp.zeros((0, n_assign), dtype)

    def delays(t, x, hist):
        e = env(t, x, hist)
        return jnp.stack([
            _num(e.evaluate(ev.delay)).astype(dtype) if ev.delay is not None
            else jnp.zeros((), dtype) for ev in events])

    def priorities(t, x, hist):
        e = env(t, x, hist)
        return jnp.stack([
            _num(e.evaluate(ev.priority)).astype(dtype) if ev.priority is not None
            else jnp.asarray(_NO_PRIORITY, dtype) for ev in events])

    def make_branch(ev):
        def branch(t, x, vals, hist):
            e = env(t, x, hist)
            new = x
            for k, (var, _) in enumerate(ev.assignments):
                v = vals[k]
                sym = st.symbols[var]
                if (sym.kind == "species" and not sym.only_substance
                        and var not in st.stored_as_concentration
                        and st.has_size(sym.compartment)):
                    # a concentration becomes an amount with the compartment's size
                    # before this event's assignments (SBML Test Suite case 01780)
                    v = v * e.value(sym.compartment)
                new = new.at[st.state_index[var]].set(v)
            # amounts are what an event keeps: species stored as concentrations in a
            # compartment this event resizes are rescaled by old size / new size
            sizes = {var: vals[k] for k, (var, _) in enumerate(ev.assignments)
                     if st.symbols[var].kind == "compartment"}
            for sid in st.stored_as_concentration:
                comp = st.symbols[sid].compartment
                if comp in sizes:
                    i = st.state_index[sid]
                    new = new.at[i].multiply(e.value(comp) / sizes[comp])
            return new
        return branch

    branches = [make_branch(ev) for ev in events]
    use_trigger_values = jnp.asarray([ev.use_trigger_values for ev in events], bool)
    persistent = jnp.asarray([ev.persistent for ev in events], bool)

    def execute(k, t, x, vals, hist):
        now = assignment_values(t, x, hist)[k]
        vals = jnp.where(use_trigger_values[k], vals, now)
        return jax.lax.switch(k, branches, t, x, vals, hist)

    def enqueue(q, fired, t, x, hist):
        q_t, q_e, q_v, q_on, overflow = q
        if n_ev == 0:
            return q
        d = delays(t, x, hist)
        vals = assignment_values(t, x, hist)
        for k in range(n_ev):
            slot = jnp.argmin(q_on)
            full = q_on[slot]
            do = fired[k]
            q_t = jnp.where(do, q_t.at[slot].set(t + d[k]), q_t)
            q_e = jnp.where(do, q_e.at[slot].set(k), q_e)
            q_v = jnp.where(do, q_v.at[slot].set(vals[k]), q_v)
            q_on = jnp.where(do, q_on.at[slot].set(True), q_on)
            overflow = overflow | (do & full)
        return q_t, q_e, q_v, q_on, overflow

    def update_flags(flags, new_flags, q, t, x, hist):
        fired = new_flags & ~flags
        fell = flags & ~new_flags
        q_t, q_e, q_v, q_on, overflow = q
        if n_ev:
            cancel = fell[q_e] & ~persistent[q_e]
            q_on = q_on & ~cancel
        q = enqueue((q_t, q_e, q_v, q_on, overflow), fired, t, x, hist)
        return new_flags, q

    has_priority = jnp.asarray([ev.priority is not None for ev in events], bool)

    def resolve(t, x, flags, q, hist):
        """Execute everything due at time t (priority order, cascading). Also reports
        a tie: two due events with equal, explicit priorities (SBML then asks for a
        random order, which jaxcell does not do)."""
        tie0 = jnp.asarray(False)
        if n_ev == 0:
            return x, flags, q, tie0

        def due(carry):
            _, _, q_, _ = carry
            q_t, _, _, q_on, overflow = q_
            return jnp.any(q_on & (q_t <= t)) & ~overflow

        def body(carry):
            x_, flags_, q_, tie = carry
            q_t, q_e, q_v, q_on, overflow = q_
            is_due = q_on & (q_t <= t)
            prio = priorities(t, x_, hist)[q_e]
            score = jnp.where(is_due, prio, -jnp.inf)
            pick = jnp.argmax(score)
            rivals = is_due & (score == score[pick]) & has_priority[q_e] & \
                (q_e != q_e[pick])
            tie = tie | (has_priority[q_e[pick]] & jnp.any(rivals))
            k = q_e[pick]
            _, g_before = triggers(t, x_, hist)
            x_new = execute(k, t, x_, q_v[pick], hist)
            q_on = q_on.at[pick].set(False)
            b_after, g_after = triggers(t, x_new, hist)
            # a trigger whose function did not move keeps its state (it may sit on zero)
            new_flags = jnp.where(g_after == g_before, flags_, b_after)
            flags_, q_ = update_flags(flags_, new_flags, (q_t, q_e, q_v, q_on, overflow),
                                      t, x_new, hist)
            return x_new, flags_, q_, tie

        return eqxi.while_loop(due, body, (x, flags, q, tie0),
                               max_steps=16 * n_queue + 64, kind=loop_kind)

    # --- integration of one segment ---------------------------------------------------
    def vf(t, x, args):
        hist, z = args
        return model.derivative(t, x, c, history=hist if use_history else None,
                                frozen=env(t, x, hist, z).frozen)

    term = diffrax.ODETerm(vf)
    # Triggers are checked at step ends: a trigger that turns true and false again inside
    # one step would be missed, so steps are at most 1/100 of the time span.
    # Delay models keep it too: the cubic Hermite history between accepted steps is
    # only as accurate as the steps are short. Models whose only discontinuities are
    # time switches need neither.
    controller = diffrax.PIDController(
        rtol=rtol, atol=atol,
        dtmax=(ts[-1] - ts[0]) / 100.0 if (n_ev or watched or use_history) else None)

    def crossing(t, x, hist, flags, z):
        """One value per trigger and discontinuity: <= 0 while nothing has changed,
        crossing zero upwards where something does."""
        e = env(t, x, hist, z)
        parts = []
        if n_ev:
            g = jnp.stack([trigger_g(e, ev.trigger) for ev in events])
            parts.append(jnp.where(flags, -g, g))
        if watched:
            parts.append(jnp.stack([discontinuity_g(e, *discs[i], z[i]) for i in watched]))
        return jnp.concatenate(parts)

    n_watch = n_ev + len(watched)

    def segment(t, t_end, x, flags, z, hist):
        if n_watch:
            def cond(t, y, args, **kw):
                return jnp.max(crossing(t, y, args[0], flags, z))

            event = diffrax.Event(cond, root_finder=_Bisection(rtol=1e-13, atol=1e-13),
                                  direction=True)
        else:
            event = None
        subs = [diffrax.SubSaveAt(ts=jnp.clip(ts, t, t_end)), diffrax.SubSaveAt(t1=True)]
        if use_history:
            subs.append(diffrax.SubSaveAt(steps=True))
        sol = diffrax.diffeqsolve(
            term, Rodas5(), t, t_end, None, x, args=(hist, z),
            saveat=diffrax.SaveAt(subs=subs), stepsize_controller=controller,
            max_steps=seg_steps, throw=False, event=event, adjoint=seg_adjoint,
        )
        if n_watch:
            c_end = crossing(sol.ts[1][0], sol.ys[1][0], hist, flags, z)
            # every condition that changed here (simultaneous ones tie with the maximum)
            top = jnp.max(c_end)
            mask = (c_end >= top - 1e-12 * (1.0 + jnp.abs(top))) & sol.event_mask
        else:
            mask = jnp.zeros((0,), bool)
        return sol, mask

    # --- the loop ---------------------------------------------------------------------
    hist0 = None
    if use_history:
        n = x0.shape[0]
        hist0 = _History(
            ts=jnp.full((h_len,), jnp.inf, dtype), xs=jnp.zeros((h_len, n), dtype),
            fs=jnp.zeros((h_len, n), dtype), count=jnp.asarray(0), t0=ts[0], x0=x0)

    flags0 = jnp.asarray([ev.initial_value for ev in events], bool)
    queue0 = (jnp.full((n_queue,), jnp.inf, dtype), jnp.zeros((n_queue,), jnp.int32),
              jnp.zeros((n_queue, n_assign), dtype), jnp.zeros((n_queue,), bool),
              jnp.asarray(False))
    # events whose trigger is true at the start and whose initialValue is false fire now
    b0, _ = triggers(ts[0], x0, hist0)
    flags0, queue0 = update_flags(flags0, b0, queue0, ts[0], x0, hist0)
    z0 = disc_values(ts[0], x0, hist0)
    if switch_trees:
        e0 = env(ts[0], x0, hist0)
        switch_times = jnp.stack([_num(e0.evaluate(c)).astype(dtype) for c in switch_trees])
    else:
        switch_times = jnp.zeros((0,), dtype)

    def next_switch(t):
        """The first switching time after ``t`` (inf if none)."""
        return jnp.min(jnp.where(switch_times > t, switch_times, jnp.inf))

    def timed_values(t, x, hist, z):
        """``z`` with the time-only conditions evaluated inside ``(t, next switch)``,
        where they are constant (at ``t`` itself a switch may just have happened)."""
        if not timed:
            return z
        s_next = next_switch(t)
        probe = jnp.where(jnp.isfinite(s_next), 0.5 * (t + s_next),
                          t + jnp.maximum(1.0, jnp.abs(t)))
        e = env(probe, x, hist, z)
        vals = jnp.stack([discontinuity_value(e, *discs[i]) for i in timed])
        return z.at[jnp.asarray(timed)].set(vals)

    z0 = timed_values(ts[0], x0, hist0, z0)
    # the state (and frozen branches) at each output time; outputs are computed from them
    # after the loop, when the whole delay history is known
    out0 = (jnp.full((ts.shape[0], x0.shape[0]), jnp.nan, dtype),
            jnp.zeros((ts.shape[0], n_disc), dtype))

    def observe(t, x, hist, z=None):
        e = env(t, x, hist, z)
        return jnp.stack([e.value(k) for k in st.output_ids])

    def cond(carry):
        *_, done, status, _ = carry
        return ~done & (status == 0)

    def body(carry):
        t, x, flags, z, q, hist, out, steps, done, status, nseg = carry
        x_before = x
        x, flags, q, tie = resolve(t, x, flags, q, hist)
        status = _first(status, (q[4], STATUS_QUEUE_FULL), (tie, STATUS_TIE))
        if n_disc:  # events changed the state: branches are chosen afresh
            z = jnp.where(jnp.any(x != x_before),
                          timed_values(t, x, hist, disc_values(t, x, hist)), z)
        at_t = (ts == t)[:, None]
        z_now = z
        if timed:  # outputs at t see the time-only conditions' values at t itself
            e_now = env(t, x, hist, z)
            z_now = z.at[jnp.asarray(timed)].set(
                jnp.stack([discontinuity_value(e_now, *discs[i]) for i in timed]))
        out = (jnp.where(at_t, x[None, :], out[0]), jnp.where(at_t, z_now[None, :], out[1]))
        finished = t >= t_final
        q_t, _, _, q_on, _ = q
        t_next = jnp.minimum(t_final, jnp.min(jnp.where(q_on, q_t, jnp.inf)))
        if use_history:
            e = env(t, x, hist)
            tau = jnp.stack([_num(e.evaluate(tr, _scope(e, rid))) for tr, rid in taus])
            tau_min = jnp.min(jnp.where(tau > 0, tau, jnp.inf))
            t_next = jnp.minimum(t_next, t + tau_min)
            hist = hist.append(t, x, vf(t, x, (hist, z)))
        if timed:
            t_next = jnp.minimum(t_next, next_switch(t))
        t_next = jnp.where(finished, t, t_next)

        def run_segment():
            return segment(t, t_next, x, flags, z, hist)

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
        # snap to an output time or a scheduled execution within round-off
        cands = jnp.concatenate([ts, jnp.where(q_on, q_t, jnp.inf), switch_times])
        near = cands[jnp.argmin(jnp.abs(cands - t_new))]
        # (never back to the segment's own start: a branch that changes just after an
        # output time must not overwrite that output)
        snap = (jnp.abs(near - t_new) <= 1e-11 * jnp.maximum(1.0, jnp.abs(t_new))) & (near > t)
        t_new = jnp.where(snap, near, t_new)
        seg_ok = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.event_occurred)
        inside = (ts > t) & (ts < t_new)
        keep = inside[:, None] & ~finished
        out = (jnp.where(keep, sol.ys[0], out[0]), jnp.where(keep, z[None, :], out[1]))
        if use_history:
            k = sol.stats["num_accepted_steps"]
            st_ts, st_ys = sol.ts[2], sol.ys[2]
            st_fs = jax.vmap(lambda tt, yy: vf(tt, yy, (hist, z)))(st_ts, st_ys)
            valid = jnp.arange(st_ts.shape[0]) < k
            st_ts = jnp.where(valid, st_ts, jnp.inf)
            status = _first(status, (hist.count + seg_steps + 1 > h_len, STATUS_HISTORY_FULL))
            i = hist.count
            new_hist = _History(
                jax.lax.dynamic_update_slice(hist.ts, st_ts, (i,)),
                jax.lax.dynamic_update_slice(hist.xs, st_ys, (i, 0)),
                jax.lax.dynamic_update_slice(hist.fs, st_fs, (i, 0)),
                i + k, hist.t0, hist.x0)
            hist = _where_tree(finished, hist, new_hist)
        # what the solver stopped on flips; the rest are re-evaluated
        mask_ev = mask[:n_ev]
        mask_d = jnp.zeros((n_disc,), bool)
        if watched:
            mask_d = mask_d.at[jnp.asarray(watched)].set(mask[n_ev:])
        if n_ev:
            b_new, _ = triggers(t_new, x_new, hist)
            new_flags = jnp.where(mask_ev, ~flags, b_new)
            flags2, q2 = update_flags(flags, new_flags, q, t_new, x_new, hist)
            flags = jnp.where(finished, flags, flags2)
            q = _where_tree(finished, q, q2)
        if n_disc:
            e = env(t_new, x_new, hist)
            flipped = jnp.stack([discontinuity_flip(e, k, tr, z[i])
                                 for i, (k, tr) in enumerate(discs)])
            z1 = jnp.where(mask_d, flipped, z)
            # the others are re-evaluated (with the flipped ones frozen: a condition that
            # contains a flipped one changes with it)
            e1 = env(t_new, x_new, hist, z1)
            fresh = jnp.stack([discontinuity_value(e1, k, tr) for k, tr in discs])
            fresh = timed_values(t_new, x_new, hist, fresh)
            z = jnp.where(finished, z, jnp.where(mask_d, flipped, fresh))
        steps = steps + jnp.where(finished, 0, sol.stats["num_accepted_steps"])
        status = _first(status, (~(seg_ok | finished), STATUS_SOLVER))
        t = jnp.where(finished, t, t_new)
        x = jnp.where(finished, x, x_new)
        return t, x, flags, z, q, hist, out, steps, finished, status, nseg + 1

    carry = (ts[0], x0, flags0, z0, queue0, hist0, out0, jnp.asarray(0), jnp.asarray(False),
             jnp.asarray(STATUS_OK), jnp.asarray(0))
    carry = eqxi.while_loop(cond, body, carry, max_steps=max_segments, kind=loop_kind)
    t, x, flags, z, q, hist, out, steps, done, status, nseg = carry
    out = jax.vmap(lambda tt, xx, zz: observe(tt, xx, hist, zz))(ts, out[0], out[1])
    status = _first(status, (~done, STATUS_MAX_SEGMENTS))
    return out, status, steps


def _first(status, *checks):
    """Keep the first problem found: ``status`` unless it is OK."""
    for bad, code in checks:
        status = jnp.where((status == STATUS_OK) & bad, code, status)
    return status
