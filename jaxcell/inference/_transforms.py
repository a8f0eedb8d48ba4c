"""Scales of parameters: small bijectors between the search scale and the natural scale.

An optimiser works on a vector ``x`` of unconstrained (or log-spaced) numbers; a model
needs positive rate constants or values inside a range. Each transform maps the search
value ``x`` to the natural value ``v = forward(x)`` and back (``inverse``), with the
log-determinant of the Jacobian for densities.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError

_LN10 = float(jnp.log(10.0))


class AbstractTransform(eqx.Module):
    """A bijection ``v = forward(x)`` from the search scale to the natural scale."""

    @abc.abstractmethod
    def forward(self, x: ArrayLike) -> Array:
        """Search value -> natural value."""

    @abc.abstractmethod
    def inverse(self, v: ArrayLike) -> Array:
        """Natural value -> search value."""

    @abc.abstractmethod
    def log_det_jacobian(self, x: ArrayLike) -> Array:
        """``log |dv/dx|`` at the search value ``x``."""


class Linear(AbstractTransform):
    """The identity: search on the natural scale (``v = x``)."""

    def forward(self, x):
        return jnp.asarray(x)

    def inverse(self, v):
        return jnp.asarray(v)

    def log_det_jacobian(self, x):
        return jnp.zeros_like(jnp.asarray(x, float))


class Log(AbstractTransform):
    """Natural logarithm: ``v = exp(x)``, for positive parameters spanning decades."""

    def forward(self, x):
        return jnp.exp(x)

    def inverse(self, v):
        return jnp.log(v)

    def log_det_jacobian(self, x):
        return jnp.asarray(x, float)


class Log10(AbstractTransform):
    """Decimal logarithm: ``v = 10**x`` (PEtab's ``log10`` scale)."""

    def forward(self, x):
        return jnp.power(10.0, x)

    def inverse(self, v):
        return jnp.log10(v)

    def log_det_jacobian(self, x):
        return _LN10 * jnp.asarray(x, float) + jnp.log(_LN10)


class Bounded(AbstractTransform):
    """A logistic map onto the open interval ``(lo, hi)``:
    ``v = lo + (hi - lo) sigmoid(x)``; the search scale is unconstrained.
    """

    lo: float = eqx.field(static=True)
    hi: float = eqx.field(static=True)

    def __init__(self, lo: float, hi: float):
        if not float(lo) < float(hi):
            raise InferenceError(f"Bounded: need lo < hi; got lo={lo}, hi={hi}.")
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, x):
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(x)

    def inverse(self, v):
        u = (jnp.asarray(v) - self.lo) / (self.hi - self.lo)
        return jnp.log(u) - jnp.log1p(-u)

    def log_det_jacobian(self, x):
        return (jnp.log(self.hi - self.lo) + jax.nn.log_sigmoid(x)
                + jax.nn.log_sigmoid(-jnp.asarray(x)))
