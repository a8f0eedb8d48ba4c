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
    """

    name: str = eqx.field(static=True)
    scale: AbstractTransform
    init: float | None = eqx.field(static=True)
    bounds: tuple[float, float] | None = eqx.field(static=True)
    prior: Any = eqx.field(static=True)

    def __init__(self, name: str, *, scale: AbstractTransform | None = None,
                 init: float | None = None, bounds: tuple[float, float] | None = None,
                 prior: Any = None):
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


def _default_bounds(p: Parameter, init: float) -> tuple[float, float]:
    from ._transforms import Bounded, Linear

    if isinstance(p.scale, Bounded):
        return p.scale.lo, p.scale.hi
    if isinstance(p.scale, Linear):
        w = 10.0 * abs(init) if init != 0 else 1.0
        return init - w, init + w
    return init / 100.0, init * 100.0


class Parameters(AbstractParameters):
    """The free parameters of a fit, in order: the search vector ``x`` has one entry
    per parameter, on its search scale.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.inference import Parameter, Parameters
        >>> decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.5})
        >>> ps = Parameters([Parameter("k")], model=decay)
        >>> float(ps.to_model(decay, ps.x0 + 1.0).parameters()["k"]) > 0.5
        True
    """

    items: tuple[Parameter, ...]
    inits: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, parameters: Sequence[Parameter | str], *, model: Any = None):
        items = tuple(p if isinstance(p, Parameter) else Parameter(p) for p in parameters)
        names = [p.name for p in items]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InferenceError(f"Parameters: names given twice: {sorted(dup)}.")
        inits = []
        for p in items:
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
        self.items, self.inits = items, tuple(inits)

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in the order of the search vector."""
        return tuple(p.name for p in self.items)

    @property
    def scales(self) -> tuple[AbstractTransform, ...]:
        """Each parameter's search scale (its transform), in order."""
        return tuple(p.scale for p in self.items)

    @property
    def x0(self) -> Array:
        """The starting point on the search scale."""
        return jnp.stack([p.scale.inverse(jnp.asarray(v, float))
                          for p, v in zip(self.items, self.inits)])

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` on the search scale (finite)."""
        lo, hi = [], []
        for p, v in zip(self.items, self.inits):
            a, b = p.bounds if p.bounds is not None else _default_bounds(p, v)
            xa, xb = float(p.scale.inverse(a)), float(p.scale.inverse(b))
            if not (np.isfinite(xa) and np.isfinite(xb)):  # Bounded at its own ends
                eps = 1e-6 * (b - a)
                xa, xb = float(p.scale.inverse(a + eps)), float(p.scale.inverse(b - eps))
            lo.append(min(xa, xb))
            hi.append(max(xa, xb))
        return np.asarray(lo), np.asarray(hi)

    def values(self, x: ArrayLike) -> dict[str, Array]:
        """``{name: natural value}`` for a search vector ``x``."""
        x = jnp.asarray(x)
        return {p.name: p.scale.forward(x[i]) for i, p in enumerate(self.items)}

    def to_search(self, values: dict[str, ArrayLike]) -> Array:
        """The search vector for natural values ``{name: value}``."""
        return jnp.stack([p.scale.inverse(jnp.asarray(values[p.name], float))
                          for p in self.items])

    def to_model(self, model: Any, x: ArrayLike) -> Any:
        """A copy of ``model`` with the model parameters among these set from ``x``
        (noise parameters are skipped)."""
        known = _names_in(model)
        vals = {k: v for k, v in self.values(x).items() if k in known}
        return model.replace_parameters(vals) if vals else model

    def log_prior(self, x: ArrayLike, *, jacobian: bool = False) -> Array:
        """Sum of the priors' log-densities at the natural values of ``x`` (parameters
        without a prior contribute 0). ``jacobian=True`` adds ``log|dv/dx|``: the
        log-density of ``x`` on the search scale."""
        x = jnp.asarray(x)
        total = jnp.zeros((), float)
        for i, p in enumerate(self.items):
            if p.prior is not None:
                total = total + jnp.sum(p.prior.log_prob(p.scale.forward(x[i])))
                if jacobian:
                    total = total + p.scale.log_det_jacobian(x[i])
        return total


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
