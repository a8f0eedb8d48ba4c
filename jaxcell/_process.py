"""Processes: the building blocks that read and change the shared state.

A process is an immutable :class:`equinox.Module`. Its parameters are its fields (pytree
leaves, so they can be differentiated and fitted) and it declares, through
:meth:`AbstractProcess.ports`, which parts of the state it

- **owns**: state variables it creates and gives initial values to (integrated);
- **reads**: variables it needs, owned or set by any process;
- **changes**: variables owned by another process to whose derivative it contributes;
- **sets**: derived variables (assignments, observables) it computes from the state.

Kinds are marker base classes: :class:`AbstractContinuousProcess` contributes
derivatives (summed over processes), :class:`AbstractDerivedProcess` computes derived
variables (evaluated first, in dependency order), :class:`AbstractDiscreteProcess`
updates at fixed intervals, :class:`AbstractEventProcess` acts at instants, and
:class:`AbstractJumpProcess` fires random jumps (stochastic kinetics).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._custom_types import Path
from ._errors import ModelError
from ._state import StateView, Var, path_str


@dataclasses.dataclass(frozen=True)
class Ports:
    """What a process declares about the state (see the module docstring)."""

    owns: Mapping[Path, Var] = dataclasses.field(default_factory=dict)
    reads: Mapping[Path, Var | None] = dataclasses.field(default_factory=dict)
    changes: tuple[Path, ...] = ()
    sets: Mapping[Path, Var] = dataclasses.field(default_factory=dict)
    components: tuple[tuple[Path, str], ...] = ()
    """Labelled components read (``(path, label)``); ``path`` must also be in ``reads``.
    Checked against the provider's labels when the model is wired."""
    history: bool = False
    """Whether the process reads the past of the state (``StateView.past``, a delay):
    the event loop then keeps a history of accepted steps."""


class AbstractProcess(eqx.Module):
    """Base class of everything that takes part in a simulation.

    Subclasses are final (see equinox's abstract/final pattern) and implement
    :meth:`ports`, :meth:`initial_values`, :meth:`parameters` and
    :meth:`replace_parameters`, plus the method of their kind
    (:meth:`AbstractContinuousProcess.rates` or :meth:`AbstractDerivedProcess.compute`).
    """

    name: eqx.AbstractVar[str]

    @abc.abstractmethod
    def ports(self) -> Ports:
        """Declare the paths this process owns, reads, changes and sets."""

    @abc.abstractmethod
    def initial_values(self) -> dict[Path, Array]:
        """Initial values of the variables this process owns."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, Array]:
        """Named parameters of this process (a view; they are the module's leaves)."""

    @abc.abstractmethod
    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> AbstractProcess:
        """A copy of this process with some parameters replaced by name."""

    def prepared(self, t0: Array) -> AbstractProcess:
        """This process ready for a solve from ``t0``: quantities that are constant
        during the solve computed once (the engine calls it inside the compiled solve,
        so they are not recomputed at every right-hand-side evaluation). Default: the
        process itself."""
        return self


class AbstractContinuousProcess(AbstractProcess):
    """A process that contributes to time derivatives.

    ``rates(t, state, args)`` returns ``{path: d(path)/dt contribution}`` for paths it
    owns or changes; contributions of all processes to one path are summed.
    """

    @abc.abstractmethod
    def rates(self, t: Array, state: StateView, args: Any) -> dict[Path, Array]:
        """Derivative contributions at time ``t``."""


class AbstractDerivedProcess(AbstractProcess):
    """A process that computes derived variables (assignment rules, observables).

    Derived variables are computed from the integrated state before any rates are
    evaluated, in dependency order, and they are saved in trajectories like any other
    variable.
    """

    @abc.abstractmethod
    def compute(self, t: Array, state: StateView, args: Any) -> dict[Path, Array]:
        """Values of the variables this process sets."""


class AbstractDiscreteProcess(AbstractProcess):
    """A process that replaces state values at fixed intervals (a discrete-time rule).

    Every ``interval`` time units after ``t0`` the integration stops, and
    ``update(t, state, key, args)`` returns ``{path: new value}`` for paths the process
    owns or declares in ``changes``; the integration then continues from the updated
    state. Cell division and death, cellular-automaton rules and dosing schedules are
    discrete processes. ``key`` is a :func:`jax.random.key` that is different at every
    update time and reproducible from the key given to :func:`jaxcell.simulate`.

    Variables a discrete process owns have zero time derivative unless a continuous
    process changes them.
    """

    interval: eqx.AbstractVar[float]

    @abc.abstractmethod
    def update(self, t: Array, state: StateView, key: Array, args: Any
               ) -> dict[Path, Array]:
        """New values at update time ``t``."""


@dataclasses.dataclass(frozen=True, eq=False)
class JumpTable:
    """The static description of a jump process's channels (reactions).

    Channel ``j`` changes the entries ``index[j]`` of the flattened variable ``path`` by
    ``delta[j]`` (padded with ``delta = 0``). ``orders`` optionally gives, per channel,
    the highest number of molecules of one species it consumes (used by tau-leaping's
    step selection; ``None``: assume second order).
    """

    path: Path
    index: np.ndarray
    delta: np.ndarray
    names: tuple[str, ...] = ()
    orders: np.ndarray | None = None

    @property
    def n_channels(self) -> int:
        """The number of channels."""
        return int(self.index.shape[0])


def jump_table(path: Path, stoichiometry: np.ndarray, names=(), orders=None) -> JumpTable:
    """A :class:`JumpTable` from a dense (entries x channels) stoichiometry matrix."""
    s = np.asarray(stoichiometry, dtype=float)
    n_ch = s.shape[1]
    nnz = [np.flatnonzero(s[:, j]) for j in range(n_ch)]
    width = max([1] + [len(z) for z in nnz])
    index = np.zeros((n_ch, width), np.int32)
    delta = np.zeros((n_ch, width))
    for j, z in enumerate(nnz):
        index[j, :len(z)] = z
        delta[j, :len(z)] = s[z, j]
    if orders is None:
        orders = np.maximum(-np.minimum(s, 0).sum(axis=0), 1.0)
    return JumpTable(path, index, delta, tuple(names), np.asarray(orders, float))


class AbstractJumpProcess(AbstractProcess):
    """A process that can also run as random jumps: chemical kinetics read
    stochastically (the chemical master equation's jump process).

    A jump process has *channels* (reactions); channel ``j`` fires at rate
    ``propensities(t, state, args)[j]`` (events per unit time, at the current state)
    and changes the variable of :meth:`jumps` by its static stoichiometry. With
    ``simulate(..., stochastic=jaxcell.SSA())`` (or ``TauLeaping``, ``CLE``) such a
    process runs as jumps (its ``rates``, if it is also continuous, are not used);
    without, a process that is also continuous runs deterministically. So the same
    :class:`ReactionNetwork` or SBML model runs either way.
    """

    @property
    def can_jump(self) -> bool:
        """Whether this process runs as jumps in a stochastic simulation (a wrapper such
        as :class:`~jaxcell.cellular.PerCell` can only when what it wraps can)."""
        return True

    @abc.abstractmethod
    def jumps(self) -> JumpTable:
        """The static channel table."""

    @abc.abstractmethod
    def propensities(self, t: Array, state: StateView, args: Any) -> Array:
        """Propensity of every channel (shape ``(n_channels,)``), in events per unit
        time."""


@dataclasses.dataclass(frozen=True)
class EventTable:
    """The static description of an event process's events and switches.

    Events are numbered ``0 .. n_events - 1``; the tuples hold one entry per event.
    Switches (``n_switches``) are piecewise-constant values that are frozen while the
    solver integrates a segment and change where their condition changes: a segment
    ends there exactly, so the solver never integrates across a discontinuity.
    """

    names: tuple[str, ...] = ()
    persistent: tuple[bool, ...] = ()
    """A non-persistent event whose trigger turns false before its delayed execution is
    cancelled."""
    initial_value: tuple[bool, ...] = ()
    """The trigger's value just before the start: a trigger that is true at the start
    fires then unless its initial value is true."""
    use_trigger_values: tuple[bool, ...] = ()
    """Whether a delayed execution assigns the values computed when the event fired
    (``True``) or when it executes."""
    has_priority: tuple[bool, ...] = ()
    scheduled: tuple[bool, ...] = ()
    """Events whose trigger holds exactly at times known in advance (a dosing
    schedule): the loop stops at those times (``next_time``) and does not root-find."""
    n_switches: int = 0
    timed_switches: tuple[int, ...] = ()
    """Switches whose condition depends on time alone: they change at ``next_time``."""

    @property
    def n_events(self) -> int:
        """The number of events."""
        return len(self.names)


class AbstractEventProcess(AbstractProcess):
    """A process that changes the state at instants: events and switches.

    An **event** has a trigger (a condition on time, state and ``args``), assignments
    (new values for any owned variables, declared in ``changes`` or owned), and
    optionally a priority, a delay, persistence and an initial trigger value, with the
    semantics of SBML events. :func:`jaxcell.simulate` runs models with event processes
    through its segment loop: it integrates until a trigger changes (located by root
    finding on ``triggers``' real-valued functions), executes due events in priority
    order, and continues. See :class:`jaxcell.Event` for events written in code; SBML
    models with events are event processes too.

    Subclasses implement :meth:`events` (the static :class:`EventTable`) and the traced
    methods below. ``state`` is a :class:`~jaxcell.StateView`; inside the loop
    ``state.switches`` holds this process's frozen switch values (``None`` when they
    are evaluated afresh).
    """

    @abc.abstractmethod
    def events(self) -> EventTable:
        """The static description of the events and switches."""

    @abc.abstractmethod
    def triggers(self, t: Array, state: StateView, args: Any) -> tuple[Array, Array]:
        """``(truth, g)``: each trigger's boolean value and a real function that is
        positive where it is true and crosses zero where it changes (for root finding).
        """

    @abc.abstractmethod
    def event_values(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_events, m)`` values computed when events fire (used at execution when
        ``use_trigger_values``)."""

    @abc.abstractmethod
    def event_delays(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_events,)`` delays between firing and execution."""

    @abc.abstractmethod
    def event_priorities(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_events,)`` priorities (higher first; ``-1e300`` for none)."""

    @abc.abstractmethod
    def execute(self, k: Array, t: Array, state: StateView, args: Any, values: Array
                ) -> dict[Path, Array]:
        """The new values assigned by event ``k`` (a traced index)."""

    @abc.abstractmethod
    def switch_values(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_switches,)`` the switches' current values, evaluated afresh (with the
        frozen ones of ``state.switches`` where one switch depends on another)."""

    @abc.abstractmethod
    def switch_crossings(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_switches,)``: negative while the frozen value is right, crossing zero
        upwards where it stops being right."""

    @abc.abstractmethod
    def switch_flips(self, t: Array, state: StateView, args: Any) -> Array:
        """``(n_switches,)`` the new values of switches whose crossing was found."""

    @abc.abstractmethod
    def next_time(self, t: Array, state: StateView, args: Any) -> Array:
        """The first time after ``t`` at which a scheduled event or a timed switch
        changes (``inf`` if none)."""

    @abc.abstractmethod
    def min_delay(self, t: Array, state: StateView, args: Any) -> Array:
        """The smallest positive delay with which the process reads the past (``inf``
        if none): segments are at most this long (method of steps)."""


# --------------------------------------------------------------------------------------
# Parameter helpers shared by the concrete processes.


def host_asarray(value: ArrayLike, dtype=None) -> Array:
    """``jnp.asarray(value, dtype)`` that runs no XLA program for host values.

    ``jnp.asarray`` of a Python number or NumPy array (with or without ``dtype``) runs
    a compiled ``convert_element_type`` on the device: the first call in a process,
    and the first after ``jax.clear_caches()``, compiles it. Replacing a parameter by
    a Python float would then count as a compilation. Host values are converted by
    NumPy and copied with ``jax.device_put``; JAX arrays and tracers go through
    ``jnp.asarray``. Raises ``TypeError`` for values that are not numeric.
    """
    if isinstance(value, jax.Array):  # tracers included
        return jnp.asarray(value, dtype=dtype)
    arr = np.asarray(value, dtype=dtype)
    if arr.dtype == object:
        raise TypeError(f"not a numeric value: {value!r}")
    # float64 stays float64 only with x64 on, as with jnp.asarray.
    return jax.device_put(arr.astype(jax.dtypes.canonicalize_dtype(arr.dtype), copy=False))


def as_parameter_array(owner: str, name: str, value: ArrayLike, dtype=None) -> Array:
    """Convert a user parameter to a floating array, rejecting non-numeric input."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ModelError(
            f"{owner}: parameter {name!r} must be a number or an array; got {value!r}."
        )
    try:
        arr = host_asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ModelError(
            f"{owner}: parameter {name!r} must be a number or an array; got {value!r}."
        ) from e
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        arr = arr.astype(jnp.result_type(float))
    # Strongly typed, so that replacing the value later (replace_in_dict gives strongly
    # typed arrays) keeps the pytree structure and does not recompile.
    return jnp.asarray(arr, dtype=arr.dtype)


def is_concrete(x: Any) -> bool:
    """True for values that can be inspected now (not tracers inside jit/vmap/grad)."""
    try:
        np.asarray(x)
    except Exception:  # noqa: BLE001 - tracers raise various errors on conversion
        return False
    return True


def check_finite(owner: str, name: str, value: Array, *, nonnegative: bool = False):
    """Raise :class:`ModelError` if a concrete parameter is NaN (or negative)."""
    if not is_concrete(value):
        return
    arr = np.asarray(value)
    if np.isnan(arr).any():
        raise ModelError(f"{owner}: parameter {name!r} is NaN.")
    if nonnegative and (arr < 0).any():
        raise ModelError(
            f"{owner}: parameter {name!r} = {arr.tolist()} must be non-negative."
        )


def parameter_messages(owner: str, name: str, *, sign: str | None = None) -> tuple[str, ...]:
    """The messages of a parameter check, the same inside and outside ``jit``.

    In order: NaN, infinite, and (when ``sign`` is ``"non-negative"`` or
    ``"positive"``) the sign rule. The value itself is not in the message, because a
    traced check (:func:`equinox.error_if`) can only report a fixed text.
    """
    msgs = (f"{owner}: parameter {name!r} is NaN.",
            f"{owner}: parameter {name!r} is infinite.")
    if sign == "non-negative":
        return msgs + (f"{owner}: parameter {name!r} is negative; it must be "
                       f"non-negative.",)
    if sign == "positive":
        return msgs + (f"{owner}: parameter {name!r} is zero or negative; it must be "
                       f"positive.",)
    return msgs + (f"{owner}: parameter {name!r} breaks its sign rule.",)


class ParameterRules:
    """Static description of the checks on a group of parameters of one process.

    ``names`` are the parameters (in order, each of shape ``shapes[i]``); those in
    ``nonnegative`` must be ``>= 0`` and those in ``positive`` ``> 0``; every one must
    be finite. :meth:`check` raises :class:`ModelError` eagerly on concrete values;
    :meth:`checked` threads one :func:`equinox.branched_error_if` over all the values,
    so that traced code (``jit``, ``vmap``, ``grad``, fits, NUTS) stops with the same
    message, naming the first offending parameter.
    """

    def __init__(self, owner: str, names, *, nonnegative=(), positive=()):
        self.owner = owner
        self.names = tuple(names)
        pos, nonneg = set(positive), set(nonnegative)
        signs = ["positive" if n in pos else "non-negative" if n in nonneg else None
                 for n in self.names]
        self.messages = [m for n, s in zip(self.names, signs)
                         for m in parameter_messages(owner, n, sign=s)]
        self._signs = signs

    def _entries(self, sizes):
        which = np.repeat(np.arange(len(self.names), dtype=np.int32), sizes)
        lower = np.repeat(np.asarray([s is not None for s in self._signs], bool), sizes)
        strict = np.repeat(np.asarray([s == "positive" for s in self._signs], bool), sizes)
        return which, lower, strict

    def _first(self, xp, flat, sizes):
        """``(any bad, message index of the first bad entry)`` for a flat vector."""
        which, lower, strict = (xp.asarray(a) for a in self._entries(sizes))
        zero = xp.zeros((), flat.dtype)
        code = xp.where(xp.isnan(flat), 1, xp.where(
            xp.isinf(flat), 2,
            xp.where((lower & (flat < zero)) | (strict & (flat <= zero)), 3, 0)))
        code = code.astype(np.int32)
        bad = code > 0
        first = xp.argmax(bad)
        index = xp.where(bad[first], 3 * which[first] + code[first] - 1, 0)
        return xp.any(bad), index.astype(np.int32)

    def check(self, values) -> None:
        """Raise :class:`ModelError` if concrete ``values`` (in the order of ``names``)
        break a rule; do nothing for traced values (:meth:`checked` covers those)."""
        values = list(values)
        if not values or not all(is_concrete(v) for v in values):
            return
        arrs = [np.asarray(v, dtype=float).reshape(-1) for v in values]
        flat = np.concatenate(arrs)
        if flat.size == 0:
            return
        with np.errstate(invalid="ignore"):
            bad, index = self._first(np, flat, [a.size for a in arrs])
        if bad:
            raise ModelError(self.messages[int(index)])

    def checked(self, x, values):
        """``x`` (any pytree) made to depend on a check of ``values`` (in the order of
        ``names``): use the returned ``x`` so that the check runs."""
        values = [jnp.asarray(v) for v in values]
        if not values or sum(v.size for v in values) == 0:
            return x
        dtype = jnp.result_type(float)
        flat = jnp.concatenate([v.reshape(-1).astype(dtype) for v in values])
        return self._thread(x, flat, [v.size for v in values])

    def checked_vector(self, x, vector):
        """As :meth:`checked`, for a vector holding one scalar parameter per name."""
        if len(self.names) == 0:
            return x
        return self._thread(x, jnp.asarray(vector), [1] * len(self.names))

    def _thread(self, x, flat, sizes):
        bad, index = self._first(jnp, flat, sizes)
        return eqx.branched_error_if(x, bad, index, self.messages)


def checked_parameter(owner: str, name: str, value: Array, *, nonnegative: bool = False,
                      positive: bool = False) -> Array:
    """``value`` wrapped in a traced check (:func:`equinox.error_if`) that it is finite
    (and non-negative or positive); see :class:`ParameterRules` for groups."""
    rules = ParameterRules(owner, (name,), nonnegative=(name,) if nonnegative else (),
                           positive=(name,) if positive else ())
    return rules.checked(value, (value,))


def checked_parameters(owner: str, params: Mapping[str, Array], *, nonnegative=(),
                       positive=()) -> dict[str, Array]:
    """``params`` (a dict) threaded through one traced check of all its values: each
    finite, those named in ``nonnegative`` ``>= 0``, those in ``positive`` ``> 0``.
    Use the returned dict in place of ``params``; see :class:`ParameterRules`."""
    rules = ParameterRules(owner, params, nonnegative=nonnegative, positive=positive)
    return rules.checked(dict(params), list(params.values()))


def check_parameters(owner: str, params: Mapping[str, Array], *, nonnegative=(),
                     positive=()) -> None:
    """The eager twin of :func:`checked_parameters`: raise :class:`ModelError` with the
    same message for concrete values (no-op for tracers)."""
    ParameterRules(owner, params, nonnegative=nonnegative, positive=positive).check(
        list(params.values()))


def replace_in_dict(
    owner: str, params: Mapping[str, Array], values: Mapping[str, ArrayLike]
) -> dict[str, Array]:
    """Return ``params`` updated with ``values``, checking names and shapes."""
    out = dict(params)
    for k, v in values.items():
        if k not in params:
            raise ModelError(
                f"{owner}: no parameter named {k!r}; parameters are {sorted(params)}."
            )
        new = as_parameter_array(owner, k, v, dtype=params[k].dtype)
        if new.shape != params[k].shape:
            raise ModelError(
                f"{owner}: parameter {k!r} has shape {params[k].shape}; "
                f"got a value of shape {new.shape}."
            )
        out[k] = new
    return out


def describe_paths(paths) -> str:
    return ", ".join(repr(path_str(p)) for p in paths) or "(none)"
