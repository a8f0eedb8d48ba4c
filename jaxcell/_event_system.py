"""All event processes of a model as one system of events and switches over the flat
state, as the event loop sees them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._composite import Composite
from ._loop_context import LoopContext, state_offsets, switch_slices
from ._state import StateView


class EventSystem:
    """All event processes of a composite as one set of events and switches over the flat
    state (a plain Python object, used while tracing)."""

    def __init__(self, model: Composite, args, unravel, dtype):
        self.model = model
        self.args = args
        self.unravel = unravel
        self.dtype = dtype
        self.idx = model.event_processes
        leaves = model.leaves
        self.procs = [leaves[i] for i in self.idx]
        self.tables = [p.events() for p in self.procs]  # pyright: ignore
        self.ev_off = np.cumsum([0] + [t.n_events for t in self.tables])
        self.n_ev = int(self.ev_off[-1])
        self.n_sw = sum(t.n_switches for t in self.tables)
        self.z_slices = switch_slices(model)
        self.offsets = state_offsets(model)
        self.history = model.ports().history

        def cat(field):
            return np.asarray([v for t in self.tables for v in getattr(t, field)], bool)

        self.persistent = cat("persistent")
        self.use_trigger_values = cat("use_trigger_values")
        self.initial_value = cat("initial_value")
        self.has_priority = cat("has_priority")
        self.scheduled = cat("scheduled")
        timed = []
        for t, (_, a, _) in zip(self.tables, self.z_slices):
            timed += [a + j for j in t.timed_switches]
        self.timed = np.asarray(sorted(timed), int)
        self.watched = np.asarray([j for j in range(self.n_sw) if j not in set(timed)], int)
        self.n_values = 1

    def context(self, z, hist) -> LoopContext:
        return LoopContext(z, hist, self.z_slices, self.offsets)

    def views(self, t, x, hist, z=None) -> list[StateView]:
        ctx = self.context(z, hist)
        flat = self.model.derive(t, self.unravel(x), self.args, ctx)
        labels = self.model._labels()
        return [StateView(flat, self.model.allowed[i], p.name, labels, ctx)
                for i, p in zip(self.idx, self.procs)]

    def _cat(self, parts, shape_tail=()):
        parts = [jnp.asarray(p, self.dtype) for p in parts]
        if not parts:
            return jnp.zeros((0, *shape_tail), self.dtype)
        return jnp.concatenate(parts)

    # events
    def triggers(self, t, x, hist, z=None):
        if not self.n_ev:
            return jnp.zeros((0,), bool), jnp.zeros((0,), self.dtype)
        bs, gs = [], []
        for p, v, tab in zip(self.procs, self.views(t, x, hist, z), self.tables):
            if tab.n_events:
                b, g = p.triggers(t, v, self.args)  # pyright: ignore
                bs.append(jnp.asarray(b, bool).reshape(tab.n_events))
                gs.append(jnp.asarray(g, self.dtype).reshape(tab.n_events))
        return jnp.concatenate(bs), jnp.concatenate(gs)

    def values(self, t, x, hist, z=None):
        rows = []
        for p, v, tab in zip(self.procs, self.views(t, x, hist, z), self.tables):
            if tab.n_events:
                rows.append(jnp.asarray(p.event_values(t, v, self.args),  # pyright: ignore
                                        self.dtype).reshape(tab.n_events, -1))
        if not rows:
            return jnp.zeros((0, self.n_values), self.dtype)
        m = max(1, max(r.shape[1] for r in rows))
        self.n_values = m
        return jnp.concatenate([jnp.pad(r, ((0, 0), (0, m - r.shape[1]))) for r in rows])

    def delays(self, t, x, hist, z=None):
        return self._cat([p.event_delays(t, v, self.args)  # pyright: ignore
                          for p, v, tab in zip(self.procs, self.views(t, x, hist, z),
                                               self.tables) if tab.n_events])

    def priorities(self, t, x, hist, z=None):
        return self._cat([p.event_priorities(t, v, self.args)  # pyright: ignore
                          for p, v, tab in zip(self.procs, self.views(t, x, hist, z),
                                               self.tables) if tab.n_events])

    def execute(self, k, t, x, vals, hist, z=None):
        """The flat state after executing global event ``k`` with ``vals``."""
        branches = []
        for j, (i, p, tab) in enumerate(zip(self.idx, self.procs, self.tables)):
            if not tab.n_events:
                continue
            off = int(self.ev_off[j])

            def branch(k, t, x, vals, hist, z, i=i, p=p, off=off, j=j):
                v = self.views(t, x, hist, z)[j]
                new = p.execute(k - off, t, v, self.args, vals)  # pyright: ignore
                y = self.model.assign(i, self.unravel(x), new)
                return ravel_pytree(y)[0].astype(x.dtype)

            branches.append((off, off + tab.n_events, branch))
        if len(branches) == 1:
            return branches[0][2](k, t, x, vals, hist, z)
        which = sum(jnp.where(k >= a, 1, 0) for a, _, _ in branches[1:])
        return jax.lax.switch(which, [b for _, _, b in branches], k, t, x, vals, hist, z)

    # switches
    def switch_values(self, t, x, hist, z=None):
        return self._cat([p.switch_values(t, v, self.args)  # pyright: ignore
                          for p, v, tab in zip(self.procs, self.views(t, x, hist, z),
                                               self.tables) if tab.n_switches])

    def switch_crossings(self, t, x, hist, z):
        return self._cat([p.switch_crossings(t, v, self.args)  # pyright: ignore
                          for p, v, tab in zip(self.procs, self.views(t, x, hist, z),
                                               self.tables) if tab.n_switches])

    def switch_flips(self, t, x, hist, z):
        return self._cat([p.switch_flips(t, v, self.args)  # pyright: ignore
                          for p, v, tab in zip(self.procs, self.views(t, x, hist, z),
                                               self.tables) if tab.n_switches])

    def next_time(self, t, x, hist, z=None):
        out = jnp.asarray(jnp.inf, self.dtype)
        for p, v in zip(self.procs, self.views(t, x, hist, z)):
            out = jnp.minimum(out, jnp.asarray(p.next_time(t, v, self.args), self.dtype))  # pyright: ignore
        return out

    def min_delay(self, t, x, hist, z=None):
        out = jnp.asarray(jnp.inf, self.dtype)
        for p, v in zip(self.procs, self.views(t, x, hist, z)):
            out = jnp.minimum(out, jnp.asarray(p.min_delay(t, v, self.args), self.dtype))  # pyright: ignore
        return out

    def rhs(self, t, x, hist, z):
        dy = self.model.vector_field(t, self.unravel(x), self.args, self.context(z, hist))
        return ravel_pytree(dy)[0].astype(x.dtype)
