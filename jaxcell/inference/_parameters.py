"""Free parameters of a fit: names, scales, bounds, starts and priors."""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
import abc
import math
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from ._transforms import AbstractTransform, Log


class AbstractParameters(eqx.Module):
    """The search space of an objective: an ordered set of named scalar parameters,
    each searched on its own scale.

    The search vector ``x`` has one entry per parameter, in :attr:`names` order.
    :func:`~jaxcell.inference.fit` starts from :attr:`x0` or from points drawn within
    :attr:`bounds` (:meth:`sample_starts`), and reports :meth:`values`.
    :class:`Parameters` is the implementation for jaxcell models; PEtab problems have
    their own (the estimated parameters on their ``parameterScale``).

    Attributes:
        names: the parameter names, in the order of the search vector.
        scales: each parameter's search scale (a transform such as :class:`Log`, or a
            PEtab ``parameterScale`` name); part of a fit's fingerprint in
            :func:`~jaxcell.inference.fit_checkpointed`.
        x0: the default starting point on the search scale.
        bounds: ``(lower, upper)`` on the search scale, finite: where random starts are
            drawn (and, for an :class:`AbstractBoundedObjective`, hard bounds).
    """

    names: eqx.AbstractVar[tuple[str, ...]]
    scales: eqx.AbstractVar[tuple[Any, ...]]
    x0: eqx.AbstractVar[Array]
    bounds: eqx.AbstractVar[tuple[np.ndarray, np.ndarray]]

    @abc.abstractmethod
    def values(self, x: ArrayLike) -> dict[str, Array]:
        """``{name: natural value}`` for a search vector ``x`` (traceable)."""

    def __len__(self) -> int:
        return len(self.names)

    def sample_starts(self, key: Any, n: int) -> Array:
        """``n`` search vectors, uniform within :attr:`bounds` on the search scale."""
        lo, hi = self.bounds
        u = jax.random.uniform(key, (int(n), len(self.names)), dtype=float)
        return jnp.asarray(lo)[None, :] + u * jnp.asarray(hi - lo)[None, :]


class Parameter(eqx.Module):
    """One free scalar parameter.

    Arguments:
        name: the model's parameter name (``"process.parameter"`` in a composite, or a
            name unique in the model), or the name of a noise parameter (a ``sigma``
            given as a string to a noise model).
        scale: the search scale, a transform (:class:`Log` by default, so the
            parameter stays positive; :class:`Linear`, :class:`Log10`,
            :class:`Bounded`).
        init: natural-scale starting value (default: the model's current value, or
            the geometric/arithmetic middle of ``bounds``).
        bounds: natural-scale ``(lo, hi)`` for random starts and profiles (default
            ``(init/100, init*100)`` on log scales, ``init ± 10·|init|`` otherwise, the
            transform's range for :class:`Bounded`). They do not constrain the
            optimiser; use :class:`Bounded` for a hard range.
        prior: a numpyro distribution on the natural scale (for Bayesian use and
            :meth:`Parameters.log_prior`).
        penalty: a regulariser added to the objective (:class:`L2`, :class:`L1`).
        group: the label for :func:`group_optimizer` (default: ``name``).
    """

    name: str = eqx.field(static=True)
    scale: AbstractTransform
    init: float | None = eqx.field(static=True)
    bounds: tuple[float, float] | None = eqx.field(static=True)
    prior: Any = eqx.field(static=True)
    penalty: Any
    group: str = eqx.field(static=True)

    def __init__(self, name: str, *, scale: AbstractTransform | None = None,
                 init: float | None = None, bounds: tuple[float, float] | None = None,
                 prior: Any = None, penalty: Any = None, group: str | None = None):
        if not isinstance(name, str) or not name:
            raise InferenceError(f"Parameter: name must be a non-empty string; got "
                                 f"{name!r}.")
        self.name = name
        self.scale = Log() if scale is None else scale
        if not isinstance(self.scale, AbstractTransform):
            raise InferenceError(f"Parameter {name!r}: scale must be a transform (Log(), "
                                 f"Log10(), Linear(), Bounded(lo, hi)); got {scale!r}.")
        self.init = None if init is None else float(init)
        if bounds is not None:
            lo, hi = (float(b) for b in bounds)
            if not lo < hi:
                raise InferenceError(f"Parameter {name!r}: bounds need lo < hi; got "
                                     f"{bounds}.")
            bounds = (lo, hi)
        self.bounds = bounds
        self.prior = prior
        from ._weights import AbstractPenalty

        if penalty is not None and not isinstance(penalty, AbstractPenalty):
            raise InferenceError(f"Parameter {name!r}: penalty must be a penalty (L2, L1); "
                                 f"got {penalty!r}.")
        self.penalty = penalty
        self.group = name if group is None else str(group)


def _default_bounds(p: Parameter, init: float) -> tuple[float, float]:
    from ._transforms import Bounded, Linear

    if isinstance(p.scale, Bounded):
        return p.scale.lo, p.scale.hi
    if isinstance(p.scale, Linear):
        w = 10.0 * abs(init) if init != 0 else 1.0
        return init - w, init + w
    return init / 100.0, init * 100.0


class Parameters(AbstractParameters):
    """The free parameters of a fit, in order: scalar :class:`Parameter` items and
    array/pytree :class:`Weights` items (network weights), each on its search scale.

    The search vector ``x`` is flat: one coordinate per scalar parameter and one per
    element of each :class:`Weights` item (its array leaves ravelled, in order), so
    ``len(parameters)`` is the number of coordinates and every optimiser, profile,
    batch and checkpoint sees plain vectors. :meth:`values` gives each item back:
    a scalar, or the item's whole pytree (an equinox network) under its name.

    Arguments:
        parameters: :class:`Parameter` or :class:`Weights` items, or scalar names.
        model: the model, for current values (``init``) and to locate
            :class:`Weights` nodes.

    Raises:
        InferenceError: a name given twice; a scalar parameter without a value; a
            :class:`Weights` item that cannot be located and has no ``init``.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.inference import Parameter, Parameters
        >>> decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.5})
        >>> ps = Parameters([Parameter("k")], model=decay)
        >>> float(ps.to_model(decay, ps.x0 + 1.0).parameters()["k"]) > 0.5
        True
    """

    items: tuple[Any, ...]
    inits: tuple[float, ...] = eqx.field(static=True)
    layouts: tuple[Any, ...]
    array_inits: tuple[Any, ...]
    offsets: tuple[int, ...] = eqx.field(static=True)
    sizes: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, parameters: Sequence[Any], *, model: Any = None):
        from ._weights import Weights, layout

        items = tuple(p if isinstance(p, (Parameter, Weights)) else Parameter(p)
                      for p in parameters)
        names = [p.name for p in items]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InferenceError(f"Parameters: names given twice: {sorted(dup)}.")
        inits, layouts, array_inits, offsets, sizes = [], [], [], [], []
        offset = 0
        for p in items:
            if isinstance(p, Weights):
                lay, value = layout(p, model)
                flat = p.scale.inverse(lay.flatten(value))
                inits.append(0.0)
                layouts.append(lay)
                array_inits.append(jnp.asarray(flat, float))
                offsets.append(offset)
                sizes.append(lay.size)
                offset += lay.size
                continue
            init = p.init
            if init is None and model is not None:
                init = _model_value(model, p.name)
            if init is None and p.bounds is not None:
                lo, hi = p.bounds
                init = math.sqrt(lo * hi) if lo > 0 and not _is_linear(p) else 0.5 * (lo + hi)
            if init is None:
                raise InferenceError(
                    f"Parameter {p.name!r}: give init= or bounds= (it is not a parameter "
                    f"of the model, so it has no current value).")
            inits.append(float(init))
            layouts.append(None)
            array_inits.append(None)
            offsets.append(offset)
            sizes.append(1)
            offset += 1
        self.items, self.inits = items, tuple(inits)
        self.layouts, self.array_inits = tuple(layouts), tuple(array_inits)
        self.offsets, self.sizes = tuple(offsets), tuple(sizes)

    def __len__(self) -> int:
        return int(sum(self.sizes))

    @property
    def names(self) -> tuple[str, ...]:
        """One name per coordinate of the search vector: a scalar parameter's name, or
        ``"name[i]"`` for element ``i`` of a :class:`Weights` item."""
        out: list[str] = []
        for p, lay in zip(self.items, self.layouts):
            if lay is None:
                out.append(p.name)
            else:
                out.extend(f"{p.name}[{i}]" for i in range(lay.size))
        return tuple(out)

    @property
    def item_names(self) -> tuple[str, ...]:
        """The item names (the keys of :meth:`values`), in order."""
        return tuple(p.name for p in self.items)

    @property
    def scales(self) -> tuple[AbstractTransform, ...]:
        """Each coordinate's search scale (its transform), in order."""
        return tuple(s for p, n in zip(self.items, self.sizes) for s in [p.scale] * n)

    def indices(self, name: str) -> np.ndarray:
        """The coordinates of item ``name`` (or of a group label, see
        :func:`group_optimizer`) in the search vector.

        Raises:
            InferenceError: no item or group has that name.
        """
        idx = [np.arange(o, o + n) for p, o, n in zip(self.items, self.offsets, self.sizes)
               if p.name == name or _group(p) == name]
        if not idx:
            raise InferenceError(f"Parameters: no item or group {name!r}; items are "
                                 f"{list(self.item_names)}, groups "
                                 f"{sorted({_group(p) for p in self.items})}.")
        return np.concatenate(idx)

    @property
    def x0(self) -> Array:
        """The starting point on the search scale."""
        parts = []
        for p, v, a in zip(self.items, self.inits, self.array_inits):
            if a is None:
                parts.append(jnp.reshape(p.scale.inverse(jnp.asarray(v, float)), (1,)))
            else:
                parts.append(a)
        return jnp.concatenate(parts)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` on the search scale (finite)."""
        lo, hi = [], []
        for p, v, a in zip(self.items, self.inits, self.array_inits):
            if a is not None:
                x = np.asarray(a)
                if p.bounds is None:
                    w = np.maximum(np.abs(x), 0.1)
                    lo.extend(x - w)
                    hi.extend(x + w)
                else:
                    xa, xb = (float(p.scale.inverse(b)) for b in p.bounds)
                    lo.extend([min(xa, xb)] * len(x))
                    hi.extend([max(xa, xb)] * len(x))
                continue
            a, b = p.bounds if p.bounds is not None else _default_bounds(p, v)
            xa, xb = float(p.scale.inverse(a)), float(p.scale.inverse(b))
            if not (np.isfinite(xa) and np.isfinite(xb)):  # Bounded at its own ends
                eps = 1e-6 * (b - a)
                xa, xb = float(p.scale.inverse(a + eps)), float(p.scale.inverse(b - eps))
            lo.append(min(xa, xb))
            hi.append(max(xa, xb))
        return np.asarray(lo), np.asarray(hi)

    def values(self, x: ArrayLike) -> dict[str, Any]:
        """``{name: natural value}`` for a search vector ``x``: a scalar per
        :class:`Parameter`, the pytree of each :class:`Weights` item."""
        x = jnp.asarray(x)
        out = {}
        for p, lay, o, n in zip(self.items, self.layouts, self.offsets, self.sizes):
            if lay is None:
                out[p.name] = p.scale.forward(x[o])
            else:
                out[p.name] = lay.unflatten(p.scale.forward(x[o:o + n]))
        return out

    def to_search(self, values: dict[str, Any]) -> Array:
        """The search vector for natural values ``{name: value}``."""
        parts = []
        for p, lay in zip(self.items, self.layouts):
            if lay is None:
                parts.append(jnp.reshape(p.scale.inverse(jnp.asarray(values[p.name], float)),
                                         (1,)))
            else:
                parts.append(p.scale.inverse(lay.flatten(values[p.name])))
        return jnp.concatenate(parts)

    def apply(self, model: Any, values: dict[str, Any], scalars: Sequence[str] | None = None
              ) -> Any:
        """``model`` with natural ``values`` set: the scalar parameters named in
        ``scalars`` (default: those the model has) through ``replace_parameters``, and
        every located :class:`Weights` item at its node."""
        if scalars is None:
            known = _names_in(model)
            scalars = [p.name for p, lay in zip(self.items, self.layouts)
                       if lay is None and p.name in known]
        vals = {k: values[k] for k in scalars}
        model = model.replace_parameters(vals) if vals else model
        for p, lay in zip(self.items, self.layouts):
            if lay is not None and lay.getter is not None:
                model = eqx.tree_at(lay.getter, model, values[p.name])
        return model

    def to_model(self, model: Any, x: ArrayLike) -> Any:
        """A copy of ``model`` with the model parameters among these set from ``x``
        (noise parameters and free arrays are skipped)."""
        return self.apply(model, self.values(x))

    def log_prior(self, x: ArrayLike, *, jacobian: bool = False) -> Array:
        """Sum of the priors' log-densities at the natural values of ``x`` (parameters
        without a prior contribute 0; a :class:`Weights` prior is summed over its
        elements). ``jacobian=True`` adds ``log|dv/dx|``: the log-density of ``x`` on
        the search scale."""
        x = jnp.asarray(x)
        total = jnp.zeros((), float)
        for p, lay, o, n in zip(self.items, self.layouts, self.offsets, self.sizes):
            if p.prior is not None:
                xi = x[o] if lay is None else x[o:o + n]
                total = total + jnp.sum(p.prior.log_prob(p.scale.forward(xi)))
                if jacobian:
                    total = total + jnp.sum(p.scale.log_det_jacobian(xi))
        return total

    @property
    def has_penalty(self) -> bool:
        """Whether any item carries a penalty."""
        return any(p.penalty is not None for p in self.items)

    @property
    def squared_penalties(self) -> bool:
        """Whether every penalty is a sum of squares (the objective stays least
        squares)."""
        from ._weights import AbstractSquaredPenalty

        return all(isinstance(p.penalty, AbstractSquaredPenalty) for p in self.items
                   if p.penalty is not None)

    def penalty(self, x: ArrayLike) -> Array:
        """The sum of the items' penalties at ``x`` (0 without any)."""
        values = self.values(x) if self.has_penalty else {}
        total = jnp.zeros((), float)
        for p in self.items:
            if p.penalty is not None:
                total = total + p.penalty(values[p.name])
        return total

    def penalty_residuals(self, x: ArrayLike) -> Array:
        """The residuals of the (squared) penalties at ``x`` (empty without any)."""
        values = self.values(x) if self.has_penalty else {}
        parts = [jnp.zeros((0,), float)]
        for p in self.items:
            if p.penalty is not None:
                parts.append(p.penalty.residuals(values[p.name]))
        return jnp.concatenate(parts)


def _group(p) -> str:
    return p.group


def _is_linear(p: Parameter) -> bool:
    from ._transforms import Linear

    return isinstance(p.scale, Linear)


def _names_in(model: Any) -> set[str]:
    """Names by which ``model.replace_parameters`` accepts a parameter: its own keys
    and, in a composite, bare names that exactly one process has."""
    from .._composite import Composite

    keys = set(model.parameters())
    if not isinstance(model, Composite):
        return keys
    bare = [k.partition(".")[2] for k in keys if "." in k]
    keys.update(b for b in bare if bare.count(b) == 1)
    return keys


def _model_value(model: Any, name: str) -> float | None:
    if name not in _names_in(model):
        return None
    params = model.parameters()
    if name in params:
        value = params[name]
    else:
        value = next(v for k, v in params.items() if k.partition(".")[2] == name)
    value = np.asarray(value)
    if value.shape != ():
        raise InferenceError(f"Parameter {name!r}: only scalar parameters can be fitted; "
                             f"it has shape {value.shape}.")
    return float(value)
