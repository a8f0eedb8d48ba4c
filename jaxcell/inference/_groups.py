"""Per-group optimisers: one optax transformation per parameter group, on the flat
search vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from .._errors import InferenceError


class GroupState(NamedTuple):
    """The inner states, one per group label, in order."""

    inner: tuple[Any, ...]


def group_optimizer(parameters: Any, transforms: Mapping[str, optax.GradientTransformation],
                    default: optax.GradientTransformation | None = None
                    ) -> optax.GradientTransformation:
    """One optax transformation per parameter group, on the flat search vector.

    Each key of ``transforms`` is a group label (``group=`` of a :class:`Parameter` or
    :class:`Weights`; by default an item's name) or an item name; its transformation
    updates exactly those coordinates, with its own state (learning rate, schedule,
    weight decay, ...). Coordinates of no listed group use ``default``. optax's
    ``multi_transform`` labels whole leaves; here the search vector is one flat leaf,
    so the groups are index sets (fixed at construction: nothing recompiles).

    Arguments:
        parameters: the objective's :class:`Parameters`.
        transforms: ``{group: optax transformation}``, e.g.
            ``{"net": optax.adamw(1e-3, weight_decay=1e-4), "rates": optax.adam(1e-2)}``.
        default: for the remaining coordinates (required if there are any).

    Returns:
        An ``optax.GradientTransformation`` for ``fit(method=...)``.

    Raises:
        InferenceError: an unknown group; a coordinate in two groups; coordinates
            left without a transformation and no ``default``.

    Examples:
        >>> import optax
        >>> from jaxcell.inference import Linear, Parameter, Parameters, group_optimizer
        >>> ps = Parameters([Parameter("a", scale=Linear(), init=1.0),
        ...                  Parameter("b", scale=Linear(), init=1.0, group="frozen")])
        >>> opt = group_optimizer(ps, {"frozen": optax.set_to_zero()}, default=optax.sgd(0.1))
        >>> import jax.numpy as jnp
        >>> u, _ = opt.update(jnp.ones(2), opt.init(ps.x0), ps.x0)
        >>> [float(v) for v in u]
        [-0.1, 0.0]
    """
    n = len(parameters)
    labels, index_sets, seen = [], [], np.zeros(n, bool)
    for label, t in transforms.items():
        if not isinstance(t, optax.GradientTransformation):
            raise InferenceError(f"group_optimizer: transforms[{label!r}] must be an optax "
                                 f"GradientTransformation; got {t!r}.")
        idx = np.asarray(parameters.indices(label), int)
        if seen[idx].any():
            raise InferenceError(f"group_optimizer: group {label!r} overlaps an earlier "
                                 f"group.")
        seen[idx] = True
        labels.append(t)
        index_sets.append(idx)
    rest = np.nonzero(~seen)[0]
    if rest.size:
        if default is None:
            names = parameters.names
            raise InferenceError(
                f"group_optimizer: coordinates {[names[i] for i in rest[:5]]}"
                f"{' ...' if rest.size > 5 else ''} belong to no group; add their group or "
                f"pass default=.")
        labels.append(default)
        index_sets.append(rest)
    index_sets = [jnp.asarray(i) for i in index_sets]

    def init(params):
        params = jnp.asarray(params)
        return GroupState(tuple(t.init(params[i]) for t, i in zip(labels, index_sets)))

    def update(updates, state, params=None):
        out = jnp.zeros_like(updates)
        inner = []
        for t, i, s in zip(labels, index_sets, state.inner):
            u, s = t.update(updates[i], s, None if params is None else params[i])
            out = out.at[i].set(u)
            inner.append(s)
        return out, GroupState(tuple(inner))

    return optax.GradientTransformation(init, update)
