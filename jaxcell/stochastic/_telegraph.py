"""The telegraph (two-state) model of gene expression: its reaction network and its
analytic stationary mRNA distribution."""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from jaxtyping import Array, ArrayLike, Float

from .._errors import ModelError
from .._process import is_concrete
from ..molecular import MassAction, Reaction, ReactionNetwork

#: extra series terms beyond twice kappa: their ratio is below 1/2, so 2**-64 relative.
_TAIL = 64


def telegraph_network(k_on: ArrayLike = 0.5, k_off: ArrayLike = 1.0, K: ArrayLike = 20.0,
                      delta: ArrayLike = 1.0, *, name: str = "telegraph"
                      ) -> ReactionNetwork:
    """The telegraph model of bursty transcription as a :class:`jaxcell.ReactionNetwork`.

    Species ``G_off``, ``G_on`` (one gene copy, starting off) and ``M`` (mRNA, starting
    at 0); reactions ``switch`` (``G_off <-> G_on``, rate constants ``k_on`` and
    ``k_off``), ``transcribe`` (``G_on -> G_on + M``, ``K``) and ``degrade``
    (``M -> ∅``, ``delta``). Parameter names are the argument names.

    Arguments:
        k_on: gene activation rate.
        k_off: gene inactivation rate.
        K: transcription rate while on.
        delta: mRNA degradation rate.
        name: the network's name.

    Returns:
        The network (defaults: REFERENCE-MODELS S2, ``k_on=0.5, k_off=1, K=20,
        delta=1``).

    Examples:
        >>> from jaxcell.stochastic import telegraph_network
        >>> net = telegraph_network()
        >>> net.species, net.parameter_names
        (('G_off', 'G_on', 'M'), ('k_on', 'k_off', 'K', 'delta'))

    References:
        Peccoud, J. & Ycart, B. (1995). Markovian modeling of gene-product synthesis.
        Theor. Popul. Biol. 48:222–234.
    """
    return ReactionNetwork(
        name,
        {"G_off": 1.0, "G_on": 0.0, "M": 0.0},
        [Reaction("switch", "G_off", "G_on", MassAction("k_on", "k_off")),
         Reaction("transcribe", "G_on", "G_on + M", MassAction("K")),
         Reaction("degrade", "M", "", MassAction("delta"))],
        {"k_on": k_on, "k_off": k_off, "K": K, "delta": delta},
    )


def telegraph_distribution(k_on: ArrayLike, k_off: ArrayLike, K: ArrayLike,
                           delta: ArrayLike, n_max: int, *, terms: int | None = None
                           ) -> Float[Array, " counts"]:
    r"""The stationary mRNA distribution of the telegraph model, :math:`P(m)` for
    :math:`m = 0..n_\max` (Peccoud & Ycart 1995):

    .. math:: P(m) = \frac{\Gamma(a+m)\,\Gamma(a+b)}{\Gamma(a)\,\Gamma(a+b+m)}\,
        \frac{\kappa^m}{m!}\;{}_1F_1(a+m;\ a+b+m;\ -\kappa),

    with :math:`a = k_\text{on}/\delta`, :math:`b = k_\text{off}/\delta`,
    :math:`\kappa = K/\delta`. The confluent hypergeometric function is evaluated
    through Kummer's transformation, :math:`{}_1F_1(a+m; a+b+m; -\kappa) =
    e^{-\kappa}\,{}_1F_1(b; a+b+m; \kappa)`, whose series has positive terms; it is
    summed in log space (log-sum-exp), so every value is accurate to rounding and
    the result is differentiable in all four rates (``jax.grad``, ``jax.jacfwd``).

    Moments: :math:`\langle M\rangle = K k_\text{on}/(\delta(k_\text{on}+k_\text{off}))`
    and Fano factor :math:`1 + K k_\text{off}/((k_\text{on}+k_\text{off})
    (k_\text{on}+k_\text{off}+\delta))`.

    Arguments:
        k_on: gene activation rate (``> 0``).
        k_off: gene inactivation rate (``> 0``).
        K: transcription rate while on (``> 0``).
        delta: mRNA degradation rate (``> 0``).
        n_max: the largest count returned (static).
        terms: the number of series terms (static); default ``2·max(kappa, n_max) + 64``
            (the terms' ratio is below ``kappa/(n+1)``, so the tail is below
            ``2**-64`` of the sum), with kappa taken as ``n_max`` when the rates are
            traced. A traced call whose kappa needs more terms fails with an error
            (:func:`equinox.error_if`) that names the number to pass.

    Returns:
        ``P(0), ..., P(n_max)`` (they sum to less than 1 by the tail beyond ``n_max``).

    Raises:
        ModelError: a concrete rate is not positive and finite, or ``n_max`` is not a
            non-negative integer.

    Examples:
        >>> from jaxcell.stochastic import telegraph_distribution
        >>> p = telegraph_distribution(0.5, 1.0, 20.0, 1.0, n_max=4)
        >>> [round(float(v), 5) for v in p]
        [0.19817, 0.09908, 0.07431, 0.06193, 0.05419]

    References:
        Peccoud, J. & Ycart, B. (1995). Markovian modeling of gene-product synthesis.
        Theor. Popul. Biol. 48:222–234.
        Raj, A., Peskin, C. S., Tranchina, D., Vargas, D. Y. & Tyagi, S. (2006).
        Stochastic mRNA synthesis in mammalian cells. PLoS Biol. 4:e309.
    """
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 0:
        raise ModelError(f"telegraph_distribution: n_max must be a non-negative integer; "
                         f"got {n_max!r}.")
    rates = {"k_on": k_on, "k_off": k_off, "K": K, "delta": delta}
    known = {}
    for k, v in rates.items():
        if is_concrete(v):
            known[k] = x = float(np.asarray(v))
            if not (math.isfinite(x) and x > 0):
                raise ModelError(f"telegraph_distribution: {k} must be positive and "
                                 f"finite; got {x!r}.")
    if terms is None:
        kappa_bound = n_max
        if "K" in known and "delta" in known:
            kappa_bound = max(n_max, math.ceil(known["K"] / known["delta"]))
        terms = 2 * kappa_bound + _TAIL
    dtype = jnp.result_type(float)
    k_on, k_off, K, delta = (jnp.asarray(v, dtype) for v in rates.values())
    return _distribution(k_on, k_off, K, delta, n_max, terms)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _distribution(k_on, k_off, K, delta, n_max: int, terms: int) -> Array:
    dtype = k_on.dtype
    a, b, kappa = k_on / delta, k_off / delta, K / delta
    m = jnp.arange(n_max + 1, dtype=dtype)
    n = jnp.arange(terms, dtype=dtype)
    c = a + b + m  # (n_max + 1,)
    # log of the series terms of 1F1(b; c; kappa): (b)_n / (c)_n * kappa^n / n!
    log_terms = (gammaln(b + n)[None, :] - gammaln(b) - gammaln(c[:, None] + n[None, :])
                 + gammaln(c)[:, None] + n[None, :] * jnp.log(kappa) - gammaln(n + 1)[None, :])
    log_f = jax.scipy.special.logsumexp(log_terms, axis=1)
    # the last term must be negligible (the series converged)
    tail = jnp.max(log_terms[:, -1] - log_f)
    log_f = eqx.error_if(
        log_f, tail > -36.0,
        f"telegraph_distribution: {terms} series terms are too few for these rates "
        f"(K/delta is large); pass terms= at least 2·K/delta + 64.")
    log_p = (gammaln(a + m) - gammaln(a) + gammaln(a + b) - gammaln(a + b + m)
             + m * jnp.log(kappa) - gammaln(m + 1) - kappa + log_f)
    return jnp.exp(log_p)
