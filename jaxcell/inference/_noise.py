"""Noise models: the likelihood of a measurement given the model's prediction."""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LN10 = math.log(10.0)


class AbstractNoise(eqx.Module):
    """A measurement noise model with a scale ``sigma``: a fixed number, or the name of
    an estimated parameter (looked up in the parameter values by the objective).

    Subclasses implement :meth:`nll`; the sum-of-squares kinds (marker
    :class:`AbstractGaussianNoise`) also give :meth:`residual` and :meth:`constant`
    with ``nll = residual**2 / 2 + constant``, which least-squares solvers use.
    """

    sigma: Array | None
    sigma_name: str | None = eqx.field(static=True)

    def __init__(self, sigma: ArrayLike | str):
        if isinstance(sigma, str):
            self.sigma, self.sigma_name = None, sigma
        else:
            value = jnp.asarray(sigma, dtype=float)
            if value.ndim == 0 and not float(value) > 0:
                raise InferenceError(
                    f"{type(self).__name__}: sigma must be positive; got {sigma}.")
            self.sigma, self.sigma_name = value, None

    def scale(self, values: dict[str, Array] | None = None) -> Array:
        """The noise scale: the fixed value or ``values[sigma_name]``."""
        if self.sigma_name is None:
            return self.sigma
        if values is None or self.sigma_name not in values:
            raise KeyError(f"{type(self).__name__}: the noise parameter "
                           f"{self.sigma_name!r} has no value.")
        return values[self.sigma_name]

    @abc.abstractmethod
    def nll(self, y_model: ArrayLike, y_data: ArrayLike, sigma: ArrayLike) -> Array:
        """Elementwise negative log-density of ``y_data`` given ``y_model``."""


class AbstractGaussianNoise(AbstractNoise):
    """Noise that is Gaussian after a fixed transform ``h`` of the values, so that
    ``nll = ((h(y_model) - h(y_data)) / sigma)**2 / 2 + constant``."""

    @abc.abstractmethod
    def residual(self, y_model: ArrayLike, y_data: ArrayLike, sigma: ArrayLike) -> Array:
        """Weighted residual ``(h(y_model) - h(y_data)) / sigma``."""

    @abc.abstractmethod
    def constant(self, y_data: ArrayLike, sigma: ArrayLike) -> Array:
        """The part of the nll that does not depend on the model."""

    def nll(self, y_model, y_data, sigma):
        r = self.residual(y_model, y_data, sigma)
        return 0.5 * r * r + self.constant(y_data, sigma)


class Normal(AbstractGaussianNoise):
    r"""Additive Gaussian noise: ``y_data ~ N(y_model, sigma²)``.

    .. math:: -\log p = \tfrac12 ((y - d)/\sigma)^2 + \log\sigma + \tfrac12\log 2\pi
    """

    def residual(self, y_model, y_data, sigma):
        return (jnp.asarray(y_model) - y_data) / sigma

    def constant(self, y_data, sigma):
        return jnp.log(sigma) + _HALF_LOG_2PI + 0.0 * jnp.asarray(y_data)


class LogNormal(AbstractGaussianNoise):
    r"""Multiplicative noise: ``log y_data ~ N(log y_model, sigma²)`` (a density of
    ``y_data``, so it includes the Jacobian term ``log y_data``)."""

    def residual(self, y_model, y_data, sigma):
        return (jnp.log(y_model) - jnp.log(y_data)) / sigma

    def constant(self, y_data, sigma):
        return jnp.log(sigma) + _HALF_LOG_2PI + jnp.log(y_data)


class Log10Normal(AbstractGaussianNoise):
    r"""``log10 y_data ~ N(log10 y_model, sigma²)`` (PEtab's ``log10-normal``), as a
    density of ``y_data`` (Jacobian term ``log(y_data ln 10)``)."""

    def residual(self, y_model, y_data, sigma):
        return (jnp.log10(y_model) - jnp.log10(y_data)) / sigma

    def constant(self, y_data, sigma):
        return jnp.log(sigma) + _HALF_LOG_2PI + jnp.log(jnp.asarray(y_data) * _LN10)


class Laplace(AbstractNoise):
    r"""Laplace (double-exponential) noise with scale ``b``, robust to outliers:

    .. math:: -\log p = |y - d| / b + \log 2b
    """

    def __init__(self, scale: ArrayLike | str):
        super().__init__(scale)

    def nll(self, y_model, y_data, sigma):
        return jnp.abs(jnp.asarray(y_model) - y_data) / sigma + jnp.log(2.0 * sigma)
