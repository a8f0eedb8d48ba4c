"""The base of PyTorch-compatible layers read from PEtab SciML network files.

A layer is an immutable equinox module. Its constructor arguments (PyTorch names,
defaults filled in) are one static, hashable field ``args``; its trainable arrays are
pytree leaves with PyTorch names and shapes (``weight``, ``bias``, ...), so a network
read from a file can be differentiated, ``vmap``-ped and written back unchanged.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._errors import ModelError
from .._safe_io import MAX_ARRAY_ELEMENTS


class NetworkFormatError(ModelError):
    """A PEtab SciML neural-network file (YAML graph or HDF5 arrays) cannot be used.

    Raised for an unknown layer type, activation or graph operation, a missing or
    unknown constructor argument, an array of the wrong shape, or a missing HDF5 group.
    The message names the file, the layer or node, and the feature.
    """


class _Required:
    def __repr__(self) -> str:
        return "<required>"


#: marks a constructor argument without a default in a layer signature
REQUIRED: Any = _Required()


def freeze(value: Any) -> Any:
    """YAML value -> hashable value (lists become tuples, recursively)."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return tuple((str(k), freeze(v)) for k, v in value.items())
    return value


def thaw(value: Any) -> Any:
    """Hashable value -> YAML value (tuples become lists, recursively)."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def ntuple(value: Any, n: int, name: str, where: str) -> tuple[int, ...]:
    """PyTorch's ``_ntuple``: an int or a sequence of ``n`` ints -> a tuple of ``n`` ints."""
    if isinstance(value, bool):
        raise NetworkFormatError(f"{where}: argument {name!r} must be an int, not {value!r}")
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, tuple) and len(value) == n and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise NetworkFormatError(
        f"{where}: argument {name!r} must be an int or a list of {n} ints, got {value!r}"
    )


def with_batch(x: Array, n_spatial: int, where: str) -> tuple[Array, bool]:
    """Add a batch axis to an unbatched ``(C, *spatial)`` input, as PyTorch does."""
    x = jnp.asarray(x)
    if x.ndim == n_spatial + 2:
        return x, False
    if x.ndim == n_spatial + 1:
        return x[None], True
    raise NetworkFormatError(
        f"{where}: expected an input with {n_spatial + 1} (unbatched) or "
        f"{n_spatial + 2} (batched) axes, got shape {x.shape}"
    )


class AbstractTorchLayer(eqx.Module):
    """A layer built from a PyTorch layer type and its constructor arguments.

    Concrete layers declare ``signatures`` (layer type -> ordered ``(name, default)``
    pairs of the PyTorch constructor, :data:`REQUIRED` for no default) and
    ``array_names`` (the names of their array fields, in PyTorch order), and implement
    ``build``, ``array_shapes``, ``init_arrays`` and ``__call__``.
    """

    layer_type: eqx.AbstractVar[str]
    args: eqx.AbstractVar[tuple[tuple[str, Any], ...]]
    where: eqx.AbstractVar[str]

    signatures: ClassVar[dict[str, tuple[tuple[str, Any], ...]]]
    array_names: ClassVar[tuple[str, ...]]

    @classmethod
    def from_args(cls, layer_type: str, args: Mapping[str, Any] | None, where: str):
        """Check ``args`` against the PyTorch signature, fill in defaults, build."""
        signature = cls.signatures[layer_type]
        known = dict(signature)
        given = dict(args or {})
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise NetworkFormatError(
                f"{where}: {layer_type} has no argument(s) {unknown}; "
                f"expected some of {list(known)}"
            )
        full = []
        for name, default in signature:
            value = given.get(name, default)
            if value is REQUIRED:
                raise NetworkFormatError(f"{where}: {layer_type} needs argument {name!r}")
            full.append((name, freeze(value)))
        # the shapes first, without allocating: a layer of 10**12 units is refused here
        try:
            shapes = eqx.filter_eval_shape(cls.build, layer_type, tuple(full), where)
        except NetworkFormatError:
            raise
        except (ValueError, TypeError, OverflowError, IndexError, ZeroDivisionError) as e:
            raise NetworkFormatError(f"{where}: invalid arguments {given} "
                                     f"({type(e).__name__}: {e})") from None
        size = sum(int(math.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes)
                   if hasattr(leaf, "shape"))
        if size > MAX_ARRAY_ELEMENTS:
            raise NetworkFormatError(f"{where}: the layer would hold {size} numbers; at "
                                     f"most {MAX_ARRAY_ELEMENTS} are accepted.")
        return cls.build(layer_type, tuple(full), where)

    @classmethod
    @abc.abstractmethod
    def build(cls, layer_type: str, args: tuple[tuple[str, Any], ...], where: str):
        """A layer with default arrays (zeros, or PyTorch's ones/zeros for norms)."""

    @abc.abstractmethod
    def array_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every array this layer can hold (optional ones included) -> its shape."""

    @abc.abstractmethod
    def init_arrays(self, key: PRNGKeyArray) -> dict[str, Array]:
        """PyTorch's default initialisation of this layer's trainable arrays."""

    @abc.abstractmethod
    def __call__(self, *inputs: Array, key: PRNGKeyArray | None = None) -> Array:
        """Apply the layer (``key``: random dropout; ``None``: deterministic)."""

    def arg(self, name: str) -> Any:
        """A constructor argument (defaults filled in; lists are tuples)."""
        return dict(self.args)[name]

    def torch_args(self) -> dict[str, Any]:
        """The constructor arguments as YAML values, in PyTorch order."""
        return {name: thaw(value) for name, value in self.args}

    def arrays(self) -> dict[str, Array]:
        """The arrays this layer holds now, by PyTorch name."""
        out = {}
        for name in self.array_names:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out
