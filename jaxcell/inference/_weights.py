"""Array and pytree parameters: network weights, arrays of initial states, any equinox
module inside a model, searched as flat coordinates beside the scalar parameters.

A :class:`Weights` item names a node of the model (``"process.field"``, e.g.
``"interaction.net"`` for the network of a :func:`jaxcell.neural.neural_coupling`) or,
with ``init=`` and a name the model does not have, a free array of the objective (the
segment initial states of :class:`MultipleShooting`). Its inexact array leaves are
ravelled into consecutive coordinates of the search vector ``x``; the natural value is
the same pytree with those leaves replaced.
"""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
import abc
import dataclasses
import re
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._errors import InferenceError
from ._transforms import AbstractTransform, Linear

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


# -- penalties (regularisers) -----------------------------------------------------------


class AbstractPenalty(eqx.Module):
    """A regulariser on one parameter item's natural value, added to the objective's
    negative log-likelihood: ``nll(x) + penalty(value)``."""

    @abc.abstractmethod
    def __call__(self, value: Any) -> Float[Array, ""]:
        """The penalty at the item's natural value (a scalar, traceable)."""


class AbstractSquaredPenalty(AbstractPenalty):
    """A penalty that is a sum of squares, ``||residuals(value)||² / 2``: a
    least-squares objective stays least squares (Levenberg–Marquardt still applies)."""

    @abc.abstractmethod
    def residuals(self, value: Any) -> Float[Array, " n"]:
        """The penalty's residual vector."""

    def __call__(self, value):
        r = self.residuals(value)
        return 0.5 * jnp.sum(r * r)


def _leaves(value) -> list[Array]:
    return [jnp.ravel(v) for v in jax.tree_util.tree_leaves(eqx.filter(
        value, eqx.is_inexact_array))]


class L2(AbstractSquaredPenalty):
    r"""Ridge (weight-decay) penalty ``weight/2 · Σ v²`` over every array leaf of the
    item (Gaussian prior with variance ``1/weight``, as a penalty)."""

    weight: float = eqx.field(static=True)

    def residuals(self, value):
        return jnp.sqrt(self.weight) * jnp.concatenate(_leaves(value))


class L1(AbstractPenalty):
    r"""Lasso penalty ``weight · Σ |v|`` over every array leaf of the item (sparse
    weights). Not a sum of squares: the objective's default method becomes BFGS."""

    weight: float = eqx.field(static=True)

    def __call__(self, value):
        return self.weight * jnp.sum(jnp.abs(jnp.concatenate(_leaves(value))))


class OutputL1(AbstractPenalty):
    r"""L1 penalty on a network's *output*: ``weight · mean_i Σ |net(inputs_i)|``, for
    an item whose natural value is callable (an equinox network), at fixed ``inputs``
    (rows: e.g. the data's states, on the scale the network sees). Pushes the learned
    term towards zero where the mechanism already explains the data."""

    weight: float = eqx.field(static=True)
    inputs: Float[Array, "n d"]

    def __init__(self, weight: float, inputs: ArrayLike):
        self.weight = float(weight)
        self.inputs = jnp.atleast_2d(jnp.asarray(inputs, float))

    def __call__(self, value):
        out = jax.vmap(value)(self.inputs)
        return self.weight * jnp.mean(jnp.sum(jnp.abs(out.reshape(out.shape[0], -1)), 1))


# -- locating a node of the model ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Getter:
    """Follows ``steps`` (``("attr", name)`` or ``("idx", i)``) from the model root."""

    steps: tuple[tuple[str, Any], ...]

    def __call__(self, model):
        node = model
        for kind, key in self.steps:
            node = getattr(node, key) if kind == "attr" else node[key]
        return node


def _fields(node) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node)]
    return []


def _find_attr(node, name: str, steps: tuple, depth: int = 0):
    """Depth-first search for a field ``name`` in ``node`` or its nested modules."""
    for fname, _ in _fields(node):
        if fname == name:
            return steps + (("attr", fname),)
    if depth > 6:
        return None
    for fname, value in _fields(node):
        if isinstance(value, eqx.Module):
            found = _find_attr(value, name, steps + (("attr", fname),), depth + 1)
            if found is not None:
                return found
    return None


def _find_process(model, pname: str, steps: tuple):
    if getattr(model, "name", None) == pname and not hasattr(model, "children"):
        return steps
    for i, child in enumerate(getattr(model, "children", ()) or ()):
        if getattr(child, "name", None) == pname and not hasattr(child, "children"):
            return steps + (("attr", "children"), ("idx", i))
        found = _find_process(child, pname, steps + (("attr", "children"), ("idx", i)))
        if found is not None:
            return found
    return None


def locate(model: Any, name: str) -> _Getter | None:
    """A getter of the node ``name`` (``"process.field[.field|[i]]..."``) in ``model``,
    or ``None`` when ``model`` has no process of that name.

    A field missing on a node is looked for, depth first, in the node's nested modules
    (``"interaction.net"`` finds the ``net`` of the :class:`NeuralField` inside the
    coupling ``interaction``).

    Raises:
        InferenceError: the process exists but a field or index does not.
    """
    pname, _, rest = name.partition(".")
    if not rest:
        return None
    steps = _find_process(model, pname, ())
    if steps is None:
        return None
    tokens = [("attr", m.group(1)) if m.group(1) else ("idx", int(m.group(2)))
              for part in rest.split(".") for m in _TOKEN.finditer(part)]
    node = _Getter(steps)(model)
    for kind, key in tokens:
        if kind == "attr":
            found = _find_attr(node, key, ())
            if found is None:
                raise InferenceError(
                    f"Weights {name!r}: {type(node).__name__} has no field {key!r} (nor "
                    f"do its nested modules); its fields are {[f for f, _ in _fields(node)]}.")
        else:
            if not isinstance(node, (tuple, list)) or not -len(node) <= key < len(node):
                raise InferenceError(f"Weights {name!r}: index [{key}] is out of range for "
                                     f"{type(node).__name__}.")
            found = (("idx", key),)
        node = _Getter(found)(node)
        steps = steps + found
    return _Getter(steps)


# -- the Weights item -------------------------------------------------------------------


class Weights(eqx.Module):
    """A trainable array or pytree (network weights), searched as flat coordinates.

    Its inexact array leaves become ``size`` consecutive coordinates of the search
    vector, named ``"name[0]"``, ``"name[1]"``, ...; :meth:`Parameters.values` gives
    the whole pytree back under ``name``.

    Arguments:
        name: ``"process.field"`` addressing a node of the model, e.g.
            ``"interaction.net"`` (the network of the
            :func:`jaxcell.neural.neural_coupling` named ``interaction``),
            ``"interaction.net.layers[-1]"`` (its last layer) or a reaction network's
            array; fields missing on a node are found in its nested modules. Or any
            name with ``init=``: a free array of the objective, not in the model.
        init: the starting value (an array or pytree); default: the model's node.
        scale: an elementwise search scale (default :class:`Linear`).
        bounds: natural-scale ``(lo, hi)`` for random starts, the same for every
            element (default: ``x0 ± max(|x0|, 0.1)`` on the search scale).
        prior: a numpyro distribution on the natural scale, broadcast over the
            elements (for :func:`sample_nuts` and :meth:`Parameters.log_prior`).
        penalty: a regulariser (:class:`L2`, :class:`L1`, :class:`OutputL1`) added to
            the objective.
        group: the label for :func:`group_optimizer` (default: ``name``).

    Raises:
        InferenceError: bad name, scale, bounds or penalty.
    """

    name: str = eqx.field(static=True)
    init: Any
    scale: AbstractTransform
    bounds: tuple[float, float] | None = eqx.field(static=True)
    prior: Any = eqx.field(static=True)
    penalty: AbstractPenalty | None
    group: str = eqx.field(static=True)

    def __init__(self, name: str, *, init: Any = None, scale: AbstractTransform | None = None,
                 bounds: tuple[float, float] | None = None, prior: Any = None,
                 penalty: AbstractPenalty | None = None, group: str | None = None):
        if not isinstance(name, str) or not name:
            raise InferenceError(f"Weights: name must be a non-empty string; got {name!r}.")
        self.name = name
        self.init = None if init is None else jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, float) if eqx.is_array_like(a) else a, init)
        self.scale = Linear() if scale is None else scale
        if not isinstance(self.scale, AbstractTransform):
            raise InferenceError(f"Weights {name!r}: scale must be a transform (Linear(), "
                                 f"Log(), ...); got {scale!r}.")
        if bounds is not None:
            lo, hi = (float(b) for b in bounds)
            if not lo < hi:
                raise InferenceError(f"Weights {name!r}: bounds need lo < hi; got {bounds}.")
            bounds = (lo, hi)
        self.bounds = bounds
        self.prior = prior
        if penalty is not None and not isinstance(penalty, AbstractPenalty):
            raise InferenceError(f"Weights {name!r}: penalty must be a penalty (L2, L1, "
                                 f"OutputL1); got {penalty!r}.")
        self.penalty = penalty
        self.group = name if group is None else str(group)


class _Layout(eqx.Module):
    """Where a :class:`Weights` item's elements sit: its template (non-array parts),
    leaf shapes and the getter into the model (``None`` for a free array)."""

    static: Any
    treedef: Any = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    getter: _Getter | None = eqx.field(static=True)

    @property
    def size(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.shapes))

    def flatten(self, value) -> Array:
        arrays = jax.tree_util.tree_leaves(eqx.filter(value, eqx.is_inexact_array))
        if [tuple(np.shape(a)) for a in arrays] != list(self.shapes):
            raise InferenceError(f"Weights: a value of shapes {[np.shape(a) for a in arrays]}"
                                 f" where {list(self.shapes)} were expected.")
        if not arrays:
            return jnp.zeros((0,), float)
        return jnp.concatenate([jnp.ravel(jnp.asarray(a, float)) for a in arrays])

    def unflatten(self, flat: Array):
        out, i = [], 0
        for s in self.shapes:
            n = int(np.prod(s))
            out.append(flat[i:i + n].reshape(s))
            i += n
        return eqx.combine(jax.tree_util.tree_unflatten(self.treedef, out), self.static)


def layout(item: Weights, model: Any) -> tuple[_Layout, Any]:
    """The layout of ``item`` and its initial natural value."""
    getter = None if model is None else locate(model, item.name)
    value = item.init
    if value is None:
        if getter is None:
            raise InferenceError(
                f"Weights {item.name!r}: the model has no process "
                f"{item.name.partition('.')[0]!r}; address a node as 'process.field' "
                f"(e.g. 'interaction.net'), or give init= for a free array.")
        value = getter(model)
    params, static = eqx.partition(value, eqx.is_inexact_array)
    arrays, treedef = jax.tree_util.tree_flatten(params)
    if not arrays:
        raise InferenceError(f"Weights {item.name!r}: the value holds no floating-point "
                             f"array to train; got {type(value).__name__}.")
    shapes = tuple(tuple(np.shape(a)) for a in arrays)
    if getter is not None and item.init is not None:
        current = jax.tree_util.tree_leaves(eqx.filter(getter(model), eqx.is_inexact_array))
        if [tuple(np.shape(a)) for a in current] != list(shapes):
            raise InferenceError(f"Weights {item.name!r}: init has leaf shapes "
                                 f"{list(shapes)}; the model's node has "
                                 f"{[tuple(np.shape(a)) for a in current]}.")
    return _Layout(static, treedef, shapes, getter), value
