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
variables (evaluated first, in dependency order). Later kinds (stochastic, event,
discrete) plug in the same way.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import Any

import equinox as eqx
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


# --------------------------------------------------------------------------------------
# Parameter helpers shared by the concrete processes.


def as_parameter_array(owner: str, name: str, value: ArrayLike, dtype=None) -> Array:
    """Convert a user parameter to a floating array, rejecting non-numeric input."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ModelError(
            f"{owner}: parameter {name!r} must be a number or an array; got {value!r}."
        )
    try:
        arr = jnp.asarray(value, dtype=dtype)
    except TypeError as e:
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
