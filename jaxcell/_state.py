"""The shared state: named paths, variable specs and views.

The state of every jaxcell model is one nested dictionary,
``state[scale][entity][variable] -> array``. A :data:`Path` names one variable as the
tuple ``(scale, entity, variable)``; it can also be written ``"scale/entity/variable"``.
A :class:`Var` describes a variable's shape and, optionally, names for the entries along
its last axis (e.g. the species of a reaction network), so that single components are
addressable by name.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from jaxtyping import Array

from ._custom_types import Path, PathLike, State
from ._errors import WiringError


def as_path(path: PathLike) -> Path:
    """Normalise ``"scale/entity/variable"`` or a 3-tuple to a :data:`Path`.

    Raises:
        WiringError: if the path does not have exactly three non-empty parts.
    """
    if isinstance(path, str):
        parts = tuple(path.split("/"))
    elif isinstance(path, tuple):
        parts = path
    else:
        raise WiringError(
            f"A state path must be a string 'scale/entity/variable' or a 3-tuple of "
            f"strings; got {path!r} of type {type(path).__name__}."
        )
    if len(parts) != 3 or not all(isinstance(p, str) and p for p in parts):
        raise WiringError(
            f"A state path has exactly three non-empty parts (scale, entity, variable); "
            f"got {path!r}."
        )
    return parts  # pyright: ignore[reportReturnType]


Ref = tuple[str, ...]
"""A :data:`Path`, or a path plus a component label ``(scale, entity, variable, label)``."""


def as_ref(ref: PathLike | tuple[str, str, str, str]) -> Ref:
    """Normalise a path or a component reference.

    ``"scale/entity/variable"`` (or a 3-tuple) names a whole variable;
    ``"scale/entity/variable/label"`` (or a 4-tuple) names one labelled component of it,
    e.g. one species of a reaction network.
    """
    parts = tuple(ref.split("/")) if isinstance(ref, str) else ref
    if isinstance(parts, tuple) and len(parts) == 4:
        if not all(isinstance(p, str) and p for p in parts):
            raise WiringError(f"A component reference has four non-empty parts; got {ref!r}.")
        return parts  # pyright: ignore[reportReturnType]
    return as_path(ref)  # pyright: ignore[reportArgumentType]


def path_str(path: Path) -> str:
    """Write a path as ``"scale/entity/variable"``."""
    return "/".join(path)


@dataclasses.dataclass(frozen=True)
class Var:
    """Static description of one state variable.

    Attributes:
        shape: the array shape of the variable (``()`` for a scalar).
        labels: optional names for the entries along the last axis, e.g. species names.
            ``len(labels)`` must equal ``shape[-1]``.
    """

    shape: tuple[int, ...] = ()
    labels: tuple[str, ...] | None = None

    def __post_init__(self):
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.labels is not None:
            labels = tuple(self.labels)
            object.__setattr__(self, "labels", labels)
            if len(shape) == 0 or shape[-1] != len(labels):
                raise WiringError(
                    f"Var labels {labels!r} do not match the last axis of shape {shape}."
                )
            if len(set(labels)) != len(labels):
                dup = sorted({x for x in labels if labels.count(x) > 1})
                raise WiringError(f"Var labels must be unique; repeated: {dup}.")

    def index(self, label: str) -> int:
        """Position of ``label`` along the last axis."""
        if self.labels is None or label not in self.labels:
            hint = suggest(label, self.labels or ())
            raise KeyError(f"No component named {label!r}.{hint}")
        return self.labels.index(label)


def suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def flatten_state(state: Mapping[str, Any]) -> dict[Path, Array]:
    """Turn a nested state ``{scale: {entity: {var: x}}}`` into ``{path: x}``."""
    flat: dict[Path, Array] = {}
    for scale, entities in state.items():
        for entity, variables in entities.items():
            for var, value in variables.items():
                flat[(scale, entity, var)] = value
    return flat


def nest_state(flat: Mapping[Path, Any]) -> State:
    """Inverse of :func:`flatten_state`."""
    out: State = {}
    for (scale, entity, var), value in flat.items():
        out.setdefault(scale, {}).setdefault(entity, {})[var] = value
    return out


@dataclasses.dataclass(frozen=True)
class StateSpec:
    """The variables of a model: which paths exist, their shapes and labels.

    ``owned`` are integrated state variables; ``derived`` are computed from them
    (assignments, observables). Hashable, so it can be a static field.
    """

    owned: tuple[tuple[Path, Var], ...]
    derived: tuple[tuple[Path, Var], ...] = ()

    def var(self, path: PathLike) -> Var:
        """The :class:`Var` at ``path`` (owned or derived)."""
        p = as_path(path)
        for q, v in self.owned + self.derived:
            if q == p:
                return v
        known = [path_str(q) for q, _ in self.owned + self.derived]
        raise KeyError(f"No variable at {path_str(p)!r}.{suggest(path_str(p), known)}")

    @property
    def size(self) -> int:
        """The number of integrated scalars (the length of the solver's state)."""
        return sum(math.prod(v.shape) for _, v in self.owned)

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every path of the model: owned variables first, then derived ones."""
        return tuple(p for p, _ in self.owned + self.derived)

    def find_label(self, label: str) -> list[tuple[Path, int]]:
        """Every ``(path, index)`` whose variable has a component called ``label``."""
        hits = []
        for p, v in self.owned + self.derived:
            if v.labels is not None and label in v.labels:
                hits.append((p, v.labels.index(label)))
        return hits


class StateView(Mapping):
    """Read access to the state for one process, limited to what it declared.

    Indexing with a path (tuple or ``"scale/entity/variable"``) returns the array;
    ``"scale/entity/variable/label"`` returns one labelled component.
    Reading an undeclared path raises :class:`WiringError` naming the process, so that
    a process's declaration is always a true account of what it uses.
    """

    def __init__(
        self,
        flat: Mapping[Path, Array],
        allowed: Iterable[Path],
        owner: str,
        labels: Mapping[Path, tuple[str, ...] | None] | None = None,
        context: Any = None,
    ):
        self._flat = flat
        self._allowed = frozenset(allowed)
        self._owner = owner
        self._labels = labels or {}
        self._context = context

    @property
    def switches(self) -> Array | None:
        """This process's switch values frozen for the current segment of the event loop
        (see :class:`jaxcell.AbstractEventProcess`), or ``None`` outside it."""
        if self._context is None:
            return None
        return self._context.switches_of(self._owner)

    @property
    def history_start(self) -> Array | None:
        """The time the kept history starts (the start of the simulation), or ``None``
        when no history is kept."""
        return None if self._context is None else self._context.start

    def past(self, path: PathLike, t: Array) -> Array:
        """The value of an owned variable at an earlier time ``t`` (a delay).

        Available to processes whose ports declare ``history=True``: the event loop then
        keeps the accepted steps and interpolates between them (cubic Hermite). Before
        the start of the simulation the initial value is returned.
        """
        p = as_path(path)
        if p not in self._allowed:
            raise WiringError(
                f"Process {self._owner!r} read the past of {path_str(p)!r}, which it did "
                f"not declare in reads()."
            )
        if self._context is None or not self._context.has_history:
            raise WiringError(
                f"Process {self._owner!r} read the past of {path_str(p)!r}, but no history "
                f"is kept: declare Ports(history=True) in its ports()."
            )
        return self._context.past(p, t)

    def __getitem__(self, path: PathLike | Ref) -> Array:
        ref = as_ref(path)
        p = ref[:3]
        if p not in self._allowed:
            raise WiringError(
                f"Process {self._owner!r} read {path_str(p)!r}, which it did not declare "
                f"in reads(); declared: {sorted(map(path_str, self._allowed))}."
            )
        value = self._flat[p]
        if len(ref) == 3:
            return value
        labels = self._labels.get(p) or ()
        if ref[3] not in labels:
            raise WiringError(
                f"Process {self._owner!r} read component {ref[3]!r} of {path_str(p)!r}, "
                f"which has no such label; labels: {list(labels)}."
                f"{suggest(ref[3], labels)}"
            )
        return value[..., labels.index(ref[3])]

    def __iter__(self):
        return iter(p for p in self._flat if p in self._allowed)

    def __len__(self) -> int:
        return sum(1 for _ in self)
