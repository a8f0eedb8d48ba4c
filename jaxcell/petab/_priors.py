"""PEtab v1 objective priors (``objectivePriorType``, ``objectivePriorParameters``).

Each estimated parameter may carry a prior. ``parameterScale*`` priors are densities of
the value on its parameter scale ``x``; the others are densities of the value on the
linear scale ``θ`` (PEtab v1). The negative log-prior is added to the negative
log-likelihood to give the negative log-posterior that PEtab tools minimise.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._math import PetabError, PetabUnsupportedError

PRIOR_TYPES = ("", "parameterScaleNormal", "parameterScaleLaplace",
               "parameterScaleUniform", "normal", "laplace", "uniform", "logNormal",
               "logLaplace")


def parse_prior(kind, parameters, where: str) -> tuple[int, float, float]:
    """``(code, a, b)`` of one table entry (code 0: no prior)."""
    kind = "" if kind is None or (isinstance(kind, float) and math.isnan(kind)) \
        else str(kind).strip()
    if kind == "":
        return 0, 0.0, 1.0
    if kind not in PRIOR_TYPES:
        raise PetabUnsupportedError(f"objectivePriorType {kind!r}", where)
    try:
        a, b = (float(v) for v in str(parameters).split(";"))
    except ValueError:
        raise PetabError(f"{where}: objectivePriorParameters must be two numbers "
                         f"'a;b' for a {kind} prior; got {parameters!r}.") from None
    if kind.endswith("Uniform") or kind == "uniform":
        if not b > a:
            raise PetabError(f"{where}: a {kind} prior needs lower < upper; got {a};{b}.")
    elif not b > 0:
        raise PetabError(f"{where}: a {kind} prior needs a positive scale; got {b}.")
    return PRIOR_TYPES.index(kind), a, b


def neg_log_prior(code: np.ndarray, a: np.ndarray, b: np.ndarray, x: Array,
                  theta: Array) -> Array:
    """Sum of the negative log-prior densities (``x`` parameter scale, ``theta`` linear
    scale, one entry per estimated parameter; code 0 contributes nothing)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    log_t = jnp.log(jnp.where(theta > 0, theta, 1.0))

    def normal(v, mu, s):
        return 0.5 * jnp.log(2 * jnp.pi * s**2) + 0.5 * ((v - mu) / s) ** 2

    def laplace(v, mu, s):
        return jnp.log(2 * s) + jnp.abs(v - mu) / s

    def uniform(v, lo, hi):
        return jnp.where((v >= lo) & (v <= hi), jnp.log(hi - lo), jnp.inf)

    terms = [
        jnp.zeros_like(x),
        normal(x, a, b), laplace(x, a, b), uniform(x, a, b),
        normal(theta, a, b), laplace(theta, a, b), uniform(theta, a, b),
        jnp.where(theta > 0, log_t + normal(log_t, a, b), jnp.inf),
        jnp.where(theta > 0, log_t + laplace(log_t, a, b), jnp.inf),
    ]
    table = jnp.stack(terms)                        # (types, parameters)
    picked = jnp.take_along_axis(table, jnp.asarray(code)[None, :], axis=0)[0]
    return jnp.sum(picked)
