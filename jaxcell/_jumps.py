"""The jump loop: exact (SSA) and tau-leaping sample paths of a model's jump processes,
with the model's events, on the flat state.

One ``lax.scan`` over the save times; inside, one ``lax.while_loop`` of steps up to the
next save time. Every step evaluates all propensities at once (the jump processes'
``propensities``, concatenated), draws the next firing (SSA) or a leap (tau-leaping),
and applies it as a scatter of the static channel table. Under ``vmap`` (many
trajectories) the members advance in lock step from save time to save time.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._composite import Composite
from ._engine import cast_floats, initial_state
from ._errors import SimulationError
from ._event_system import EventSystem
from ._loop_context import state_offsets
from ._results import RESULTS
from ._rng import UNIFORMS_PER_POISSON, poisson, seed_of, uniforms
from ._state import StateView, path_str
from ._stochastic import TauLeaping
from ._trajectory import Trajectory

_BISECTIONS = 64
_MAX_CASCADE = 64
_DENSE_FIRE = 1 << 16


class JumpSystem:
    """All jump processes of a composite as one table of channels over the flat state
    (a plain Python object, used while tracing)."""

    def __init__(self, model: Composite, args, unravel, dtype):
        self.model = model
        self.args = args
        self.unravel = unravel
        self.dtype = dtype
        self.idx = model.jump_processes
        leaves = model.leaves
        self.procs = [leaves[i] for i in self.idx]
        offsets = {p: (a, b) for p, a, b, _ in state_offsets(model)}
        owned = dict(model.spec.owned)
        index, delta, orders, self.names = [], [], [], []
        for i, p in zip(self.idx, self.procs):
            table = p.jumps()  # pyright: ignore
            if table.path not in owned:
                raise SimulationError(
                    f"{type(p).__name__} {p.name!r}: its jumps change "
                    f"{path_str(table.path)!r}, which is not an integrated variable of "
                    f"the model.")
            if table.path not in model.writable[i]:
                raise SimulationError(
                    f"{type(p).__name__} {p.name!r}: its jumps change "
                    f"{path_str(table.path)!r}, which it neither owns nor changes.")
            a, b = offsets[table.path]
            if table.index.size and (table.index.max() >= b - a or table.index.min() < 0):
                raise SimulationError(
                    f"{type(p).__name__} {p.name!r}: its jump table indexes outside "
                    f"{path_str(table.path)!r} ({b - a} entries).")
            index.append(np.asarray(table.index) + a)
            delta.append(np.asarray(table.delta, float))
            orders.append(np.ones(table.n_channels) if table.orders is None
                          else np.asarray(table.orders, float))
            self.names += [f"{p.name}.{n}" for n in table.names] or \
                [f"{p.name}[{k}]" for k in range(table.n_channels)]
        width = max(x.shape[1] for x in index)
        self.index = np.concatenate(
            [np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in index])
        self.delta = np.concatenate(
            [np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in delta])
        self.orders = np.concatenate(orders)
        self.n_channels = int(self.index.shape[0])
        # the flat entries some channel changes (the others are not checked for sign)
        self.changed = np.unique(self.index[self.delta != 0])
        self._dense = None

    def propensities(self, t, x):
        flat = self.model.derive(t, self.unravel(x), self.args)
        labels = self.model._labels()
        parts = []
        for i, p in zip(self.idx, self.procs):
            view = StateView(flat, self.model.allowed[i], p.name, labels)
            a = jnp.asarray(p.propensities(t, view, self.args), self.dtype)  # pyright: ignore
            parts.append(a.reshape(-1))
        a = jnp.concatenate(parts)
        if a.shape != (self.n_channels,):
            raise SimulationError(
                f"The jump processes returned {a.shape[0]} propensities; their jump "
                f"tables have {self.n_channels} channels.")
        return a

    def dense_ok(self, n: int) -> bool:
        """Whether the dense (channels x entries) table is small enough to use."""
        return n * self.n_channels <= _DENSE_FIRE

    def dense(self, n: int) -> np.ndarray:
        """The stoichiometry as a dense (channels x flat entries) matrix."""
        if self._dense is None:
            d = np.zeros((self.n_channels, n))
            rows = np.repeat(np.arange(self.n_channels)[:, None], self.index.shape[1], 1)
            np.add.at(d, (rows, self.index), self.delta)
            self._dense = d
        return self._dense

    def fire(self, x, j):
        """``x`` after one firing of channel ``j`` (a row of the dense table for small
        models, else a scatter of the channel's few entries)."""
        if self.dense_ok(x.shape[0]):
            return x + jnp.asarray(self.dense(x.shape[0]), x.dtype)[j]
        return x.at[jnp.asarray(self.index)[j]].add(jnp.asarray(self.delta, x.dtype)[j])

    def fire_counts(self, x, k):
        """``x`` after ``k[j]`` firings of every channel ``j``."""
        if self.dense_ok(x.shape[0]):
            d = jnp.asarray(self.dense(x.shape[0]), x.dtype)
            return x + jnp.sum(k.astype(x.dtype)[:, None] * d, axis=0)
        d = jnp.asarray(self.delta, x.dtype) * k[:, None].astype(x.dtype)
        return x.at[jnp.asarray(self.index).reshape(-1)].add(d.reshape(-1))


class _Carry(eqx.Module):
    t: jax.Array
    x: jax.Array
    key: jax.Array
    seed: jax.Array  # the SSA's SplitMix64 stream
    trig: jax.Array
    steps: jax.Array
    result: jax.Array
    cap: jax.Array  # tau-leaping: the step after a rejected leap (inf: none)
    logp: jax.Array  # SSA: log-likelihood of the path (for score-function gradients)


def _choose(u, a, a0):
    """A channel drawn with probability a_j / a0 (``u`` uniform)."""
    r = u * a0
    j = jnp.sum(jnp.cumsum(a) <= r)
    last = a.shape[0] - 1 - jnp.argmax((a > 0)[::-1])
    return jnp.minimum(j, last)


class _Events:
    """The model's events as the jump loop runs them (no delays)."""

    def __init__(self, es: EventSystem):
        self.es = es
        self.persistent = jnp.asarray(es.persistent)
        self.has_schedule = bool(np.any(es.scheduled))

    def triggers(self, t, x):
        return self.es.triggers(t, x, None)[0]

    def cascade(self, t, x, trig, result):
        """Execute every event whose trigger rose (false -> true) at ``t``, highest
        priority first, re-evaluating the triggers after each execution."""
        es = self.es
        now = self.triggers(t, x)
        pending = now & ~trig

        def cond(c):
            x, trig, pending, n, result = c
            return jnp.any(pending) & (n < _MAX_CASCADE)

        def body(c):
            x, trig, pending, n, result = c
            pr = es.priorities(t, x, None)
            pr = jnp.where(jnp.asarray(es.has_priority), pr, -jnp.inf)
            k = jnp.argmax(jnp.where(pending, pr, -jnp.inf))
            k = jnp.where(jnp.isfinite(jnp.max(jnp.where(pending, pr, -jnp.inf))), k,
                          jnp.argmax(pending))
            vals = es.values(t, x, None)[k]
            x = es.execute(k, t, x, vals, None)
            pending = pending.at[k].set(False)
            new = self.triggers(t, x)
            pending = (pending & (new | self.persistent)) | (new & ~trig)
            return x, new, pending, n + 1, result

        x, trig, pending, n, result = jax.lax.while_loop(
            cond, body, (x, now, pending, jnp.zeros((), jnp.int32), result))
        result = RESULTS.where(jnp.any(pending) & (result == RESULTS.successful),
                               RESULTS.event_cascade, result)
        return x, trig, result

    def first_rise(self, t_lo, t_hi, x, trig):
        """The earliest time in ``(t_lo, t_hi]`` at which a trigger rises with the state
        held at ``x`` (bisection); ``t_hi`` if none rises before."""

        def body(_, c):
            lo, hi = c
            mid = 0.5 * (lo + hi)
            rises = jnp.any(self.triggers(mid, x) & ~trig)
            return jnp.where(rises, lo, mid), jnp.where(rises, mid, hi)

        _, hi = jax.lax.fori_loop(0, _BISECTIONS, body, (t_lo, t_hi))
        return hi


def _ssa_step(js: JumpSystem, t, x, u, t_stop):
    """One SSA draw: (time of the next firing, the state after it, bad propensities,
    the log-likelihood increment if it fires, the rate of the waiting time).
    ``u``: a pair of uniforms, for the waiting time (by inversion) and the channel (by
    the cumulative sum). The draw uses the propensities without their derivatives, so
    under forward-mode differentiation the path is fixed and only the path's
    log-likelihood carries tangents (the score-function estimator)."""
    a_diff = js.propensities(t, x)
    bad = jnp.any(~(a_diff >= 0))
    a_diff = jnp.where(a_diff > 0, a_diff, 0.0)
    a = jax.lax.stop_gradient(a_diff)
    a0 = jnp.sum(a)
    tau = -jnp.log1p(-u[0]) / jnp.where(a0 > 0, a0, 1.0)
    t_next = jnp.where(a0 > 0, t + tau, jnp.inf)
    j = jnp.sum(jnp.cumsum(a) <= u[1] * a0)  # searchsorted(side="right"), vectorised
    last = a.shape[0] - 1 - jnp.argmax((a > 0)[::-1])
    j = jnp.minimum(j, last)
    log_fire = jnp.log(jnp.where(a[j] > 0, a_diff[j], 1.0))
    return t_next, js.fire(x, j), bad, log_fire, jnp.sum(a_diff)


def _tau_step(js: JumpSystem, m: TauLeaping, t, x, seed, counter, t_stop, cap):
    """One adaptive tau-leaping step (Cao, Gillespie & Petzold 2006): (end time, new
    state, bad propensities, next cap, took an SSA step, leap accepted)."""
    dt = x.dtype
    n_ch = js.n_channels
    u = uniforms(seed, counter, 4 + n_ch * UNIFORMS_PER_POISSON, dt)
    a = js.propensities(t, x)
    bad = jnp.any(~(a >= 0))
    a = jnp.where(a > 0, a, 0.0)
    a0 = jnp.sum(a)
    # per (channel, entry) quantities, dense for small models, else over the sparse table
    if js.dense_ok(x.shape[0]):
        delta = jnp.asarray(js.dense(x.shape[0]), dt)
        xi = x[None, :]
    else:
        delta = jnp.asarray(js.delta, dt)
        xi = x[jnp.asarray(js.index)]
    consumes = delta < 0
    # L_j: how many times channel j can fire before a reactant runs out
    avail = jnp.where(consumes, jnp.floor(xi / jnp.where(consumes, -delta, 1.0)), jnp.inf)
    L = jnp.min(avail, axis=1)
    critical = (L < m.n_critical) & (a > 0)
    a_nc = jnp.where(critical, 0.0, a)
    # g_i from the highest order of the channels that consume entry i (with the
    # correction for several molecules of the same species); the bounds hold for every
    # reactant species (of any channel, critical or not), as in the paper
    coeff = jnp.where(consumes, -delta, 0.0)
    orders = jnp.asarray(js.orders, dt)[:, None]
    extra = jnp.where(coeff >= 2, 1.0 / jnp.maximum(xi - 1.0, 1.0), 0.0) * orders / 2
    extra = extra + jnp.where(coeff >= 3, 2.0 / jnp.maximum(xi - 2.0, 1.0), 0.0)
    g_entry = jnp.where(consumes, orders + extra, 0.0)
    if js.dense_ok(x.shape[0]):
        # broadcast-and-sum, not matmul: tiny batched matmuls are slow on CPU
        mu = jnp.sum(a_nc[:, None] * delta, axis=0)
        s2 = jnp.sum(a_nc[:, None] * delta**2, axis=0)
        g = jnp.max(g_entry, axis=0)
    else:
        n_flat = x.shape[0]
        flat_index = jnp.asarray(js.index).reshape(-1)
        mu = jax.ops.segment_sum((delta * a_nc[:, None]).reshape(-1), flat_index,
                                 num_segments=n_flat)
        s2 = jax.ops.segment_sum((delta**2 * a_nc[:, None]).reshape(-1), flat_index,
                                 num_segments=n_flat)
        g = jax.ops.segment_max(g_entry.reshape(-1), flat_index, num_segments=n_flat)
    reactant = g > 0
    bound = jnp.maximum(m.epsilon * x / jnp.where(reactant, g, 1.0), 1.0)
    t1 = jnp.where(reactant & (mu != 0), bound / jnp.abs(jnp.where(mu != 0, mu, 1.0)),
                   jnp.inf)
    t2 = jnp.where(reactant & (s2 > 0), bound**2 / jnp.where(s2 > 0, s2, 1.0), jnp.inf)
    tau1 = jnp.minimum(jnp.min(t1, initial=jnp.inf), jnp.min(t2, initial=jnp.inf))
    tau1 = jnp.minimum(tau1, cap)
    use_ssa = tau1 < m.ssa_factor / jnp.where(a0 > 0, a0, 1.0)
    # the leap
    a_c = jnp.where(critical, a, 0.0)
    a0_c = jnp.sum(a_c)
    tau2 = jnp.where(a0_c > 0, -jnp.log1p(-u[0]) / jnp.where(a0_c > 0, a0_c, 1.0),
                     jnp.inf)
    room = t_stop - t
    tau = jnp.minimum(jnp.minimum(tau1, tau2), room)
    crit_fires = (tau2 <= tau1) & (tau2 < room)
    k = poisson(u[4:].reshape(n_ch, UNIFORMS_PER_POISSON),
                a_nc * jnp.where(jnp.isfinite(tau), tau, 0.0))
    jc = _choose(u[1], a_c, a0_c)
    k = k + jnp.where(crit_fires, jax.nn.one_hot(jc, a.shape[0], dtype=dt), 0.0)
    x_leap = js.fire_counts(x, k)
    negative = jnp.any(x_leap[jnp.asarray(js.changed)] < 0)
    # the SSA alternative
    t_ssa, x_ssa = _ssa_step(js, t, x, u[2:4], t_stop)[:2]
    t_leap = jnp.where(negative, t, t + tau)
    x_leap = jnp.where(negative, x, x_leap)
    new_cap = jnp.where(negative, tau / 2, jnp.inf)
    t_new = jnp.where(use_ssa, t_ssa, t_leap)
    x_new = jnp.where(use_ssa, x_ssa, x_leap)
    leap_done = ~use_ssa & ~negative
    # a leap that ends exactly at the save time is complete there (not a pending jump)
    return t_new, x_new, bad, jnp.where(use_ssa, jnp.inf, new_cap), use_ssa, leap_done


def _stepper(js: JumpSystem, ev: _Events | None, method):
    """``body(carry, t_stop)``: one step of the jump loop (a firing, a leap, an event,
    or reaching ``t_stop``)."""
    tau = isinstance(method, TauLeaping)
    max_jumps = method.max_jumps

    def body(c: _Carry, t_stop):
        # the trajectory's key stays; every step draws from (key, step number)
        key = c.key
        if tau:
            t_new, x_new, bad, cap, was_ssa, leap_done = _tau_step(
                js, method, c.t, c.x, c.seed, c.steps, t_stop, c.cap)
            jumped = jnp.where(was_ssa, t_new < t_stop, leap_done)
        else:
            u = uniforms(c.seed, c.steps, 2, c.x.dtype)
            t_new, x_new, bad, log_fire, a0 = _ssa_step(js, c.t, c.x, u, t_stop)
            cap = c.cap
            was_ssa = leap_done = jnp.asarray(True)
            jumped = t_new < t_stop
        t_end = jnp.where(jumped, t_new, jnp.minimum(t_new, t_stop))
        # a rejected leap stays at t; an SSA step past t_stop stops at t_stop
        t_end = jnp.where(was_ssa | leap_done, t_end, c.t)
        x_end = jnp.where(jumped, x_new, c.x)
        trig = c.trig
        rises = jnp.asarray(False)
        result = RESULTS.where(bad & (c.result == RESULTS.successful),
                               RESULTS.invalid_propensity, c.result)
        if ev is not None:
            if ev.has_schedule:
                # a scheduled event before the next firing (or at the save time): stop
                # there, execute it, redraw the firing
                t_s = ev.es.next_time(c.t, c.x, None)
                sched = (t_s <= t_end) & (t_s > c.t)
                t_end = jnp.where(sched, t_s, t_end)
                x_end = jnp.where(sched, c.x, x_end)
                cap = jnp.where(sched, c.cap, cap)
                jumped = jumped & ~sched
            # a time-dependent trigger rising before the next firing: the event happens
            # first (and the firing is redrawn afterwards: memoryless)
            rises = jnp.any(ev.triggers(t_end, c.x) & ~c.trig) & (t_end > c.t)
            t_ev = jax.lax.cond(rises, lambda: ev.first_rise(c.t, t_end, c.x, c.trig),
                                lambda: t_end)
            t_end = jnp.where(rises, t_ev, t_end)
            x_end = jnp.where(rises, c.x, x_end)
            cap = jnp.where(rises, c.cap, cap)
            x_end, trig, result = ev.cascade(t_end, x_end, trig, result)
        steps = c.steps + 1
        result = RESULTS.where((steps >= max_jumps) & (result == RESULTS.successful),
                               RESULTS.max_jumps_reached, result)
        logp = c.logp
        if not tau:
            dt_held = jax.lax.stop_gradient(t_end - c.t)
            logp = logp - a0 * dt_held + jnp.where(jumped & ~rises if ev is not None
                                                   else jumped, log_fire, 0.0)
        return _Carry(t_end, x_end, key, c.seed, trig, steps, result, cap, logp)

    def run(c: _Carry, t_stop) -> _Carry:
        def cond(c):
            return (c.t < t_stop) & (c.result == RESULTS.successful)

        return jax.lax.while_loop(cond, lambda c: body(c, t_stop), c)

    return run


def advance_jumps(model: Composite, y, ta, tb, key, method, args):
    """The jump processes of ``model`` advanced from ``ta`` to ``tb`` with everything else
    held (one splitting step of a model that also has deterministic or discrete
    processes): (new state, steps, result)."""
    x, unravel = ravel_pytree(y)
    js = JumpSystem(model, args, unravel, x.dtype)
    run = _stepper(js, None, method)
    c = _Carry(jnp.asarray(ta, x.dtype), x, key, seed_of(key), jnp.zeros((0,), bool),
               jnp.zeros((), jnp.int32), RESULTS.successful, jnp.asarray(jnp.inf, x.dtype),
               jnp.zeros((), x.dtype))
    c = run(c, jnp.asarray(tb, x.dtype))
    return unravel(c.x), c.steps, c.result


@eqx.filter_jit
def solve_jumps(model: Composite, y0, t0, ts, key, method, args, dtype):
    """Sample one path of ``model`` (prepared here) at the save times ``ts``."""
    model = cast_floats(model.prepared(t0), dtype)
    y = cast_floats(initial_state(model, y0), dtype)
    x0, unravel = ravel_pytree(y)
    js = JumpSystem(model, args, unravel, dtype)
    ev = _Events(EventSystem(model, args, unravel, dtype)) if model.event_processes \
        else None
    t0 = jnp.asarray(t0, dtype)
    ts = jnp.asarray(ts, dtype)
    result = RESULTS.successful
    if ev is not None:
        trig0 = jnp.asarray(ev.es.initial_value)
        x0, trig0, result = ev.cascade(t0, x0, trig0, result)
    else:
        trig0 = jnp.zeros((0,), bool)
    run = _stepper(js, ev, method)

    def interval(c: _Carry, t_stop):
        c = run(c, t_stop)
        return c, c.x

    init = _Carry(t0, x0, key, seed_of(key), trig0, jnp.zeros((), jnp.int32), result,
                  jnp.asarray(jnp.inf, dtype), jnp.zeros((), dtype))
    final, xs = jax.lax.scan(interval, init, ts)
    ys = jax.vmap(unravel)(xs)
    if model.spec.derived:
        full = jax.vmap(lambda t, y: model.derived_at(t, y, args))(ts, ys)
    else:
        full = ys
    stats = {"num_steps": final.steps}
    if not isinstance(method, TauLeaping):
        stats["log_likelihood"] = final.logp
    return Trajectory(ts=ts, values=full, stats=stats, result=final.result,
                      spec=model.spec)
