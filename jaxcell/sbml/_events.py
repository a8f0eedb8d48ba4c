"""An SBML model's events, discontinuities and delays as the engine sees them.

The core event loop (``jaxcell/_segments.py``) runs every model with events; this module
gives it what an SBML model contributes, for one cell: triggers (and their real-valued
functions for root finding), assignments with SBML's unit conventions, delays,
priorities; *switches* for the discontinuities of the right-hand side (the branches of
``piecewise`` and the values of ``floor``/``ceiling``, frozen inside a segment so the
solver integrates a smooth function; time-only conditions switch at known times); and
the smallest delay, for the method of steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._eval import Env, Locals, _bool, _num
from ._structure import Structure
from ._triggers import (
    discontinuity_flip,
    discontinuity_g,
    discontinuity_value,
    time_switches,
    trigger_g,
)

NO_PRIORITY = -1e300


def delay_taus(st: Structure):
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


def _scope(e, rid):
    if rid is None:
        return None
    return Locals({lid: e._local(rid, lid) for lid in e.st.reactions[rid].locals})


def timed_switches(st: Structure) -> tuple[int, ...]:
    """Indices of the discontinuities whose condition depends on time alone."""
    return tuple(i for i, (k, tr) in enumerate(st.discontinuities)
                 if k == "cond" and time_switches(st, tr) is not None)


def switch_time_trees(st: Structure) -> list[tuple]:
    out = []
    for k, tr in st.discontinuities:
        sw = time_switches(st, tr) if k == "cond" else None
        if sw is not None:
            out.extend(sw)
    return out


class SBMLEvents:
    """One cell's events and switches: ``make_env(t, x, z)`` gives an :class:`Env` with
    the switches ``z`` frozen (``None``: evaluated afresh) and the model's history."""

    def __init__(self, st: Structure, make_env):
        self.st = st
        self.env = make_env
        self.events = st.ir.events
        self.discs = st.discontinuities
        self.n_assign = max([len(e.assignments) for e in self.events] + [1])
        self.taus = delay_taus(st)
        self.switch_trees = switch_time_trees(st)

    def frozen(self, z):
        if z is None or not self.discs:
            return None
        return {d: (z[i] > 0.5 if d[0] == "cond" else z[i]) for i, d in enumerate(self.discs)}

    # -- events ---------------------------------------------------------------------------
    def triggers(self, t, x, z=None):
        e = self.env(t, x, z)
        b = jnp.stack([_bool(e.evaluate(ev.trigger)) for ev in self.events])
        g = jnp.stack([trigger_g(e, ev.trigger) for ev in self.events]).astype(e.dtype)
        return b, g

    def values(self, t, x, z=None):
        e = self.env(t, x, z)
        rows = []
        for ev in self.events:
            vals = [_num(e.evaluate(tree)).astype(e.dtype) for _, tree in ev.assignments]
            vals += [jnp.zeros((), e.dtype)] * (self.n_assign - len(vals))
            rows.append(jnp.stack(vals))
        return jnp.stack(rows)

    def delays(self, t, x, z=None):
        e = self.env(t, x, z)
        return jnp.stack([
            _num(e.evaluate(ev.delay)).astype(e.dtype) if ev.delay is not None
            else jnp.zeros((), e.dtype) for ev in self.events])

    def priorities(self, t, x, z=None):
        e = self.env(t, x, z)
        return jnp.stack([
            _num(e.evaluate(ev.priority)).astype(e.dtype) if ev.priority is not None
            else jnp.asarray(NO_PRIORITY, e.dtype) for ev in self.events])

    def _branch(self, ev):
        st = self.st

        def branch(t, x, vals, z):
            e = self.env(t, x, z)
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

    def execute(self, k, t, x, vals, z=None):
        branches = [self._branch(ev) for ev in self.events]
        vals = vals[:self.n_assign]
        if len(branches) == 1:
            return branches[0](t, x, vals, z)
        return jax.lax.switch(k, branches, t, x, vals, z)

    # -- switches ---------------------------------------------------------------------------
    def switch_values(self, t, x, z=None):
        e = self.env(t, x, z)
        return jnp.stack([discontinuity_value(e, k, tr) for k, tr in self.discs]
                         ).astype(e.dtype)

    def switch_crossings(self, t, x, z):
        e = self.env(t, x, z)
        return jnp.stack([discontinuity_g(e, k, tr, z[i])
                          for i, (k, tr) in enumerate(self.discs)]).astype(e.dtype)

    def switch_flips(self, t, x, z):
        e = self.env(t, x, None)
        return jnp.stack([discontinuity_flip(e, k, tr, z[i])
                          for i, (k, tr) in enumerate(self.discs)]).astype(e.dtype)

    def next_time(self, t, x):
        if not self.switch_trees:
            return jnp.asarray(jnp.inf)
        e = self.env(t, x, None)
        times = jnp.stack([_num(e.evaluate(c)).astype(e.dtype) for c in self.switch_trees])
        return jnp.min(jnp.where(times > t, times, jnp.inf))

    def min_delay(self, t, x):
        if not self.taus:
            return jnp.asarray(jnp.inf)
        e = self.env(t, x, None)
        tau = jnp.stack([_num(e.evaluate(tr, _scope(e, rid))) for tr, rid in self.taus])
        return jnp.min(jnp.where(tau > 0, tau, jnp.inf))


def env_factory(model, c, history, dtype):
    """``make_env(t, x, z)`` for one cell of ``model`` with constants ``c``."""
    helper = {}

    def make_env(t, x, z):
        ev = helper.get("ev")
        frozen = None if ev is None else ev.frozen(z)
        return Env(model.structure, "dynamic", t=t, p=model.params, x=x, c=c,
                   history=history, dtype=dtype, frozen=frozen,
                   externals=model.externals)

    events = SBMLEvents(model.structure, make_env)
    helper["ev"] = events
    return events
