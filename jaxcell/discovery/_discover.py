"""``discover``: from time courses to a :class:`SparseModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import DiscoveryError
from ._derivatives import AbstractDerivative, FiniteDifference, WeakForm, check_series
from ._implicit import SINDyPI
from ._library import AbstractLibrary, library_names
from ._model import SparseModel
from ._regression import STLSQ, AbstractOptimizer, Ensemble, ModelSelection


class Discovery(eqx.Module):
    """What :func:`discover` found.

    Attributes:
        model: the equations as a :class:`SparseModel` (owning its variables, starting
            from the first sample unless ``x0`` was given).
        coefficients: ``(targets, terms)`` (the numerator for a rational model).
        denominator: ``(targets, terms)`` for a rational model, else ``None``.
        terms: the library's term names.
        theta: the regression matrix (the weak-form one for :class:`WeakForm`).
        target: the regression targets (derivatives, or weak-form left sides).
        r2: ``(targets,)`` coefficient of determination of the regression.
        details: the optimiser's extras: the :class:`SelectionPath` of a
            :class:`ModelSelection`, or the inclusion probabilities of an
            :class:`Ensemble` (``None`` otherwise).
    """

    model: SparseModel
    coefficients: Array
    denominator: Array | None
    terms: tuple[str, ...] = eqx.field(static=True)
    theta: Array
    target: Array
    r2: Array
    details: Any

    @property
    def support(self) -> np.ndarray:
        """``(targets, terms)`` bool: the terms kept."""
        sup = np.asarray(self.coefficients) != 0
        if self.denominator is not None:
            sup = sup | (np.asarray(self.denominator) != 0)
        return sup

    def equations(self, digits: int = 6) -> list[str]:
        """The discovered equations as text."""
        return self.model.equations(digits)


def _as_list(ts, xs) -> tuple[list, list]:
    if isinstance(xs, (list, tuple)):
        if not isinstance(ts, (list, tuple)):
            ts = [ts] * len(xs)
        if len(ts) != len(xs) or not xs:
            raise DiscoveryError(f"discover: give one time vector per trajectory; got "
                                 f"{len(ts)} time vectors for {len(xs)} trajectories.")
        return list(ts), list(xs)
    return [ts], [xs]


def discover(
    ts: ArrayLike | Sequence[ArrayLike],
    xs: ArrayLike | Sequence[ArrayLike],
    library: AbstractLibrary,
    *,
    variables: Sequence[str],
    optimizer: AbstractOptimizer | SINDyPI | None = None,
    derivatives: AbstractDerivative | WeakForm | None = None,
    x_dot: ArrayLike | Sequence[ArrayLike] | None = None,
    name: str = "discovered",
    x0: dict[str, float] | None = None,
    scale: str = "molecular",
) -> Discovery:
    """Sparse identification of :math:`\\dot x = \\Theta(x)\\,\\xi` from time courses.

    Arguments:
        ts: sample times ``(n,)``, or one array per trajectory.
        xs: states ``(n, d)``, or one array per trajectory.
        library: the candidate terms (:class:`PolynomialLibrary`, ...).
        variables: the names of the ``d`` state variables.
        optimizer: :class:`STLSQ` (``STLSQ(0.1)`` by default), :class:`SR3`, :class:`Ensemble`,
            :class:`ModelSelection`, or :class:`SINDyPI` for rational equations.
        derivatives: how to get :math:`\\dot x`: :class:`FiniteDifference` (default),
            :class:`SavitzkyGolay`, :class:`TotalVariation`, or :class:`WeakForm` (no
            derivatives; best on noisy data).
        x_dot: known derivatives (overrides ``derivatives``).
        name: the name of the returned model's process.
        x0: initial values of the model (default: the first sample).
        scale: the scale of the model's variables.

    Returns:
        A :class:`Discovery`; its ``model`` simulates with :func:`jaxcell.simulate`.

    Examples:
        >>> import numpy as np, jaxcell as jc
        >>> t = np.linspace(0, 2, 201)
        >>> x = np.exp(-1.5 * t)[:, None]
        >>> d = jc.discovery.discover(t, x, jc.discovery.PolynomialLibrary(2),
        ...                           variables=["x"], x_dot=-1.5 * x)
        >>> d.equations()
        ['dx/dt = -1.5*x']
    """
    variables = tuple(variables)
    terms = library_names(library, variables)
    ts_l, xs_l = _as_list(ts, xs)
    checked = [check_series(t, x, "discover") for t, x in zip(ts_l, xs_l)]
    for _t, x in checked:
        if x.shape[1] != len(variables):
            raise DiscoveryError(f"discover: the states have {x.shape[1]} columns but "
                                 f"{len(variables)} variables are named {list(variables)}.")
    if x_dot is not None:
        _, xd_l = _as_list(ts, x_dot)
        xd_l = [jnp.asarray(v, float).reshape(x.shape) for v, (_, x) in zip(xd_l, checked)]
    elif isinstance(derivatives, WeakForm):
        if isinstance(optimizer, SINDyPI):
            raise DiscoveryError("discover: SINDyPI needs derivatives; the weak form is "
                                 "not supported with it.")
        xd_l = None
    else:
        method = FiniteDifference() if derivatives is None else derivatives
        if not isinstance(method, AbstractDerivative):
            raise DiscoveryError(f"discover: derivatives must be a derivative method "
                                 f"(FiniteDifference(), ...) or WeakForm(); got {method!r}.")
        xd_l = [method(t, x) for t, x in checked]
    thetas = [library(x, variables) for _, x in checked]
    if xd_l is None:
        systems = [derivatives.system(t, x, th) for (t, x), th in zip(checked, thetas)]
        theta = jnp.concatenate([g for g, _ in systems])
        target = jnp.concatenate([b for _, b in systems])
    else:
        theta = jnp.concatenate(thetas)
        target = jnp.concatenate(xd_l)
    if not bool(jnp.all(jnp.isfinite(theta))):
        j = int(np.argwhere(~np.isfinite(np.asarray(theta)))[0][1])
        raise DiscoveryError(f"discover: library term {terms[j]!r} is not finite on the "
                             f"data.")
    if not bool(jnp.all(jnp.isfinite(target))):
        raise DiscoveryError("discover: the derivatives are not finite.")
    details = None
    den = None
    optimizer = STLSQ(0.1) if optimizer is None else optimizer
    if isinstance(optimizer, SINDyPI):
        num, den = optimizer(theta, target)
        num, den = jnp.asarray(num), jnp.asarray(den)
        pred = (theta @ num.T) / (theta @ den.T)
    elif isinstance(optimizer, AbstractOptimizer):
        num = optimizer(theta, target)
        pred = theta @ num.T
        if isinstance(optimizer, ModelSelection):
            details = optimizer.path(theta, target)
        elif isinstance(optimizer, Ensemble):
            details = optimizer.inclusion_probabilities(theta, target)
    else:
        raise DiscoveryError(f"discover: optimizer must be STLSQ, SR3, Ensemble, "
                             f"ModelSelection or SINDyPI; got {optimizer!r}.")
    ss = jnp.sum((target - jnp.mean(target, axis=0, keepdims=True)) ** 2, axis=0)
    r2 = 1.0 - jnp.sum((target - pred) ** 2, axis=0) / jnp.where(ss > 0, ss, 1.0)
    start = x0 if x0 is not None else {
        v: float(checked[0][1][0, i]) for i, v in enumerate(variables)}
    model = SparseModel(name, library, np.asarray(num), variables=variables, x0=start,
                        denominator=None if den is None else np.asarray(den), scale=scale)
    return Discovery(model, num, den, terms, theta, target, r2, details)
