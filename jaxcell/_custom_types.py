"""Type aliases used on public signatures (documentation first, checked in tests)."""

from typing import TypeAlias

import jax
from jaxtyping import Array, ArrayLike, Float, PyTree, Real

Path: TypeAlias = tuple[str, str, str]
"""A place in the shared state: ``(scale, entity, variable)``."""

PathLike: TypeAlias = Path | str
"""A :data:`Path` or the same written as ``"scale/entity/variable"``."""

Scalar: TypeAlias = Float[Array, ""]
RealScalarLike: TypeAlias = float | int | Real[ArrayLike, ""]
State: TypeAlias = dict[str, dict[str, dict[str, Array]]]
"""The shared state: ``state[scale][entity][variable] -> array``."""

Params: TypeAlias = PyTree[Float[Array, "..."]]
Key: TypeAlias = jax.Array

__all__ = [
    "Array",
    "ArrayLike",
    "Float",
    "Key",
    "Params",
    "Path",
    "PathLike",
    "PyTree",
    "Real",
    "RealScalarLike",
    "Scalar",
    "State",
]
