"""``Event``: an event written in code (a dose, a threshold switch, a reset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._custom_types import Path, PathLike
from ._errors import ModelError, WiringError
from ._generic import _params, _read_ports, _refs
from ._process import (
    AbstractEventProcess,
    EventTable,
    Ports,
    as_parameter_array,
    replace_in_dict,
)
from ._state import Ref, StateView

_NO_PRIORITY = -1e300


def _optional(owner: str, name: str, value, *, positive=False) -> Array | None:
    if value is None:
        return None
    arr = as_parameter_array(owner, name, value)
    if arr.shape != ():
        raise ModelError(f"{owner}: {name} must be a scalar; got shape {arr.shape}.")
    v = np.asarray(arr)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        need = "positive" if positive else "non-negative"
        raise ModelError(f"{owner}: {name} must be a finite, {need} number; got {value!r}.")
    return arr


class Event(AbstractEventProcess):
    """An event: when its trigger becomes true, new values are assigned to the state.

    The trigger is either a **condition** ``condition(t, x, p)`` (``x``: the dict of
    ``reads`` and ``changes`` by alias; ``p``: the parameters) returning a real number
    (the trigger is true where it is positive, and the crossing is located by root
    finding, so the event time is exact and differentiable) or a boolean (located by
    bisection); or a **schedule**: ``times=[...]`` or ``period=`` (from ``start``,
    until ``stop``), at which the integrator stops exactly (no root finding).

    ``apply(t, x, p)`` returns ``{alias: new value}`` for aliases in ``changes`` (a
    path, or ``"scale/entity/variable/label"`` for one component); aliases it leaves
    out keep their values. With ``cells=N`` the condition returns ``N`` values, one
    event per cell: cell ``i`` fires on its own and only row ``i`` of the ``changes``
    variables (which have a leading cells axis) is assigned.

    Semantics follow SBML events: ``delay`` (time between firing and execution),
    ``use_trigger_values`` (a delayed execution assigns what ``apply`` computed when the
    event fired; otherwise it is evaluated at execution), ``persistent`` (a delayed
    execution happens even if the trigger turned false meanwhile), ``initial_value``
    (the trigger's value just before ``t0``: with the default ``False`` a trigger that
    is true at ``t0`` fires at ``t0``), ``priority`` (simultaneous events execute
    highest first; after each execution every trigger is evaluated again, so events
    cascade).

    Arguments:
        name: the process name.
        apply: ``(t, x, p) -> {alias: new value}``.
        condition: ``(t, x, p) -> real or bool`` (or give ``times`` / ``period``).
        changes: ``{alias: path}`` of the variables the event assigns.
        reads: ``{alias: path}`` of other variables it reads.
        parameters: ``{name: value}``, passed as ``p`` (pytree leaves: fitted and
            differentiated like any other parameter).
        times: scheduled trigger times.
        period: a periodic schedule ``start + k·period`` (``k = 0, 1, ...``) up to
            ``stop``.
        start: the first time of a periodic schedule (default 0).
        stop: the last time of a periodic schedule (default: no end).
        delay: a scalar (see above).
        priority: a scalar (see above).
        persistent: a boolean (see above).
        initial_value: a boolean (see above).
        use_trigger_values: a boolean (see above).
        cells: one event per cell (see above).

    Examples:
        A bolus of 1 added to ``x`` every 2 time units (the first at ``t = 0``):

        >>> import jaxcell as jc
        >>> decay = jc.ODE("drug", {"x": 0.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.5})
        >>> dose = jc.Event("dose", lambda t, x, p: {"x": x["x"] + p["amount"]},
        ...                 period=2.0, changes={"x": "molecular/drug/x"},
        ...                 parameters={"amount": 1.0})
        >>> traj = jc.simulate([decay, dose], 0.0, 4.0, saveat=[0.0, 1.0, 2.0])
        >>> [round(float(v), 6) for v in traj["molecular/drug/x"]]
        [1.0, 0.606531, 1.367879]
    """

    name: str
    apply: Callable
    condition: Callable | None
    params: dict[str, Array]
    times: Array | None
    period: Array | None
    start: Array | None
    stop: Array | None
    delay: Array | None
    priority: Array | None
    reads_: dict[str, Ref] = eqx.field(static=True)
    changes_: dict[str, Ref] = eqx.field(static=True)
    persistent: bool = eqx.field(static=True)
    initial_value: bool = eqx.field(static=True)
    use_trigger_values: bool = eqx.field(static=True)
    cells: int | None = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        apply: Callable,
        condition: Callable | None = None,
        *,
        changes: Mapping[str, PathLike],
        reads: Mapping[str, PathLike] | None = None,
        parameters: Mapping[str, ArrayLike] | None = None,
        times: Sequence[float] | ArrayLike | None = None,
        period: float | None = None,
        start: float | None = None,
        stop: float | None = None,
        delay: float | None = None,
        priority: float | None = None,
        persistent: bool = True,
        initial_value: bool = False,
        use_trigger_values: bool = True,
        cells: int | None = None,
    ):
        owner = f"Event {name!r}"
        self.name = name
        if not callable(apply):
            raise ModelError(f"{owner}: apply must be a function (t, x, p) -> "
                             f"{{alias: new value}}; got {type(apply).__name__}.")
        self.apply = apply
        kinds = sum(v is not None for v in (condition, times, period))
        if kinds != 1:
            raise ModelError(f"{owner}: give exactly one trigger: condition=, times= or "
                             f"period=.")
        if condition is not None and not callable(condition):
            raise ModelError(f"{owner}: condition must be a function (t, x, p) -> real; "
                             f"got {type(condition).__name__}.")
        self.condition = condition
        self.params = _params(owner, parameters)
        if times is not None:
            ts = np.sort(np.atleast_1d(np.asarray(times, dtype=float)))
            if ts.ndim != 1 or ts.size == 0 or not np.all(np.isfinite(ts)):
                raise ModelError(f"{owner}: times must be a non-empty 1-D array of finite "
                                 f"times; got {times!r}.")
            self.times = jnp.asarray(ts)
        else:
            self.times = None
        self.period = _optional(owner, "period", period, positive=True)
        if period is None and (start is not None or stop is not None):
            raise ModelError(f"{owner}: start and stop belong to a periodic schedule "
                             f"(period=).")
        self.start = None if period is None else as_parameter_array(
            owner, "start", 0.0 if start is None else start)
        self.stop = None if stop is None else as_parameter_array(owner, "stop", stop)
        self.delay = _optional(owner, "delay", delay)
        self.priority = None if priority is None else as_parameter_array(
            owner, "priority", priority)
        self.reads_ = _refs(name, reads)
        self.changes_ = _refs(name, changes)
        if not self.changes_:
            raise ModelError(f"{owner}: 'changes' must name at least one variable.")
        self.persistent = bool(persistent)
        self.initial_value = bool(initial_value)
        self.use_trigger_values = bool(use_trigger_values)
        if cells is not None and (isinstance(cells, bool) or not isinstance(cells, int)
                                  or cells < 1):
            raise ModelError(f"{owner}: cells must be a positive integer; got {cells!r}.")
        self.cells = cells

    # -- process interface -----------------------------------------------------------------
    def ports(self) -> Ports:
        reads, comps = _read_ports({**self.reads_, **self.changes_})
        return Ports(reads=reads, changes=tuple(dict.fromkeys(
            r[:3] for r in self.changes_.values())), components=comps)

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Event:
        new = replace_in_dict(f"Event {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    # -- events ------------------------------------------------------------------------------
    @property
    def _n(self) -> int:
        return 1 if self.cells is None else self.cells

    def events(self) -> EventTable:
        n = self._n
        names = (self.name,) if self.cells is None else tuple(
            f"{self.name}[{i}]" for i in range(n))
        return EventTable(names=names, persistent=(self.persistent,) * n,
                          initial_value=(self.initial_value,) * n,
                          use_trigger_values=(self.use_trigger_values,) * n,
                          has_priority=(self.priority is not None,) * n,
                          scheduled=(self.condition is None,) * n)

    def _x(self, state: StateView) -> dict[str, Array]:
        return {a: state[r] for a, r in {**self.reads_, **self.changes_}.items()}

    def _tol(self, t):
        return 1e-9 * jnp.maximum(1.0, jnp.abs(t))

    def _on_schedule(self, t):
        if self.times is not None:
            return jnp.any(jnp.abs(self.times - t) <= self._tol(t))
        start, period = self.start, self.period  # set together with period=
        k = jnp.round((t - start) / period)  # pyright: ignore
        hit = (k >= 0) & (jnp.abs(t - (start + k * period)) <= self._tol(t))  # pyright: ignore
        if self.stop is not None:
            hit = hit & (t <= self.stop + self._tol(t))
        return hit

    def triggers(self, t, state: StateView, args: Any):
        n = self._n
        if self.condition is None:
            b = jnp.broadcast_to(self._on_schedule(t), (n,))
            return b, jnp.where(b, 1.0, -1.0)
        c = jnp.asarray(self.condition(t, self._x(state), self.params))
        if c.shape not in ((), (n,)):
            raise WiringError(f"Event {self.name!r}: condition returned shape {c.shape}; "
                              f"expected () or ({n},) (one value per cell).")
        c = jnp.broadcast_to(c, (n,))
        if c.dtype == bool:
            return c, jnp.where(c, 1.0, -1.0)
        return c > 0, c

    def _targets(self, state: StateView) -> dict[str, Array]:
        return {a: state[r] for a, r in self.changes_.items()}

    def event_values(self, t, state: StateView, args: Any):
        current = self._targets(state)
        out = self.apply(t, self._x(state), self.params)
        if not isinstance(out, Mapping):
            raise WiringError(f"Event {self.name!r}: apply must return a dict "
                              f"{{alias: new value}}; got {type(out).__name__}.")
        unknown = set(out) - set(current)
        if unknown:
            raise WiringError(f"Event {self.name!r}: apply returned {sorted(unknown)}, "
                              f"which are not aliases in changes {sorted(current)}.")
        cols = []
        for a, cur in current.items():
            new = jnp.broadcast_to(jnp.asarray(out.get(a, cur), cur.dtype), cur.shape)
            cols.append(new.reshape(self._n, -1) if self.cells else new.reshape(1, -1))
        return jnp.concatenate(cols, axis=1)

    def event_delays(self, t, state: StateView, args: Any):
        d = jnp.zeros(()) if self.delay is None else self.delay
        return jnp.broadcast_to(d, (self._n,))

    def event_priorities(self, t, state: StateView, args: Any):
        p = jnp.asarray(_NO_PRIORITY) if self.priority is None else self.priority
        return jnp.broadcast_to(p, (self._n,))

    def execute(self, k, t, state: StateView, args: Any, values) -> dict[PathLike, Array]:
        current = self._targets(state)
        new: dict[PathLike, Array] = {}
        i = 0
        for a, cur in current.items():
            if self.cells:
                row = cur[0].size if cur.ndim else 1
                v = values[i:i + row].reshape(cur.shape[1:])
                new["/".join(self.changes_[a])] = cur.at[k].set(v.astype(cur.dtype))
            else:
                row = cur.size
                new["/".join(self.changes_[a])] = values[i:i + row].reshape(cur.shape)
            i += row
        return new

    # -- no switches or delays ---------------------------------------------------------------
    def switch_values(self, t, state, args):
        return jnp.zeros((0,))

    def switch_crossings(self, t, state, args):
        return jnp.zeros((0,))

    def switch_flips(self, t, state, args):
        return jnp.zeros((0,))

    def next_time(self, t, state, args):
        if self.condition is not None:
            return jnp.asarray(jnp.inf)
        if self.times is not None:
            return jnp.min(jnp.where(self.times > t + self._tol(t), self.times, jnp.inf))
        start, period = self.start, self.period
        k = jnp.maximum(jnp.floor((t - start) / period) + 1.0, 0.0)  # pyright: ignore
        nxt = start + k * period  # pyright: ignore
        nxt = jnp.where(nxt <= t + self._tol(t), nxt + period, nxt)  # pyright: ignore
        if self.stop is not None:
            nxt = jnp.where(nxt > self.stop + self._tol(t), jnp.inf, nxt)
        return nxt

    def min_delay(self, t, state, args):
        return jnp.asarray(jnp.inf)
