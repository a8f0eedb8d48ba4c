"""One rule for the path arguments of tissue and cellular processes.

Every argument that names a variable accepts what ``reads=`` accepts (see
:func:`jaxcell._state.as_ref`): ``"scale/entity/variable"`` (or a 3-tuple) for a whole
variable, or ``"scale/entity/variable/label"`` (or a 4-tuple) for one labelled
component of it, e.g. one species of a reaction network run in every cell. A
component's label is checked when the model is wired. Reading a component gives the
variable's last axis at that label; a contribution to a component is added to that
column only.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array

from .._custom_types import Path
from .._errors import WiringError
from .._state import Ref, StateView, Var, as_ref, path_str


def whole_variable(owner: str, what: str, value: Any) -> Path:
    """A path that must name a whole variable (one this process sets as a whole)."""
    ref = as_ref(value)
    if len(ref) == 4:
        raise WiringError(f"{owner}: {what} {value!r} names a component; {what} is "
                          f"set as a whole variable, so give 'scale/entity/variable'.")
    return ref  # pyright: ignore[reportReturnType]


def ref_str(ref: Ref) -> str:
    return "/".join(ref)


def read_ports(refs: dict[Ref, Var | None]) -> tuple[dict[Path, Var | None],
                                                     tuple[tuple[Path, str], ...]]:
    """``reads`` and ``components`` of :class:`~jaxcell._process.Ports` for refs with
    the shape each must have (``None``: any). A component's shape is checked when it
    is read (:func:`read`), since the declared shape is the whole variable's."""
    reads: dict[Path, Var | None] = {}
    comps: list[tuple[Path, str]] = []
    for ref, var in refs.items():
        path = ref[:3]
        if len(ref) == 4:
            reads.setdefault(path, None)  # pyright: ignore[reportArgumentType]
            comps.append((path, ref[3]))  # pyright: ignore[reportArgumentType]
        else:
            reads[path] = var  # pyright: ignore[reportArgumentType]
    return reads, tuple(comps)


def read(owner: str, state: StateView, ref: Ref, shape: tuple[int, ...] | None = None
         ) -> Array:
    """The value of a path or a component, optionally checked to have ``shape``."""
    value = state[ref]
    if shape is not None and value.shape != shape:
        raise WiringError(f"{owner}: {ref_str(ref)!r} has shape {value.shape}; expected "
                          f"{shape}.")
    return value


def contribution(state: StateView, ref: Ref, value: Array) -> tuple[Path, Array]:
    """``(path, rate)`` adding ``value`` to a whole variable, or to one labelled
    component (the other columns get zero)."""
    path: Path = ref[:3]  # pyright: ignore[reportAssignmentType]
    if len(ref) == 3:
        return path, value
    whole = state[path]
    labels = state._labels.get(path) or ()  # noqa: SLF001 - the view knows the labels
    if ref[3] not in labels:  # the wiring check reports this first in a composite
        raise WiringError(f"{path_str(path)!r} has no component {ref[3]!r}; labels: "
                          f"{list(labels)}.")
    return path, jnp.zeros_like(whole).at[..., labels.index(ref[3])].set(value)
