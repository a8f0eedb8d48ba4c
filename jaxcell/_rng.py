"""Fast uniform random numbers for the jump loop: SplitMix64 in counter mode.

The jump loop needs two uniforms per firing, and millions of firings per trajectory.
JAX's default generator (threefry, 20 rounds of 32-bit arithmetic per draw) costs about
80 ns per pair on a CPU core; SplitMix64 (Steele, Lea & Flood 2014; the output function
passes BigCrush) costs about 8 ns. Each trajectory gets a 64-bit seed drawn from its JAX
key (``jax.random.bits``), and draw ``i`` is ``mix(seed + i·golden)``: stateless, so a
path is reproducible from its key and independent of how trajectories are batched.

References:
    Steele, G. L., Lea, D. & Flood, C. H. (2014). Fast splittable pseudorandom number
    generators. OOPSLA '14, 453-472.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def seed_of(key) -> jax.Array:
    """A 64-bit seed from a JAX key."""
    return jax.random.bits(key, (), jnp.uint64)


def _mix(z):
    z = (z ^ (z >> jnp.uint64(30))) * jnp.uint64(_M1)
    z = (z ^ (z >> jnp.uint64(27))) * jnp.uint64(_M2)
    return z ^ (z >> jnp.uint64(31))


def uniforms(seed, counter, n: int, dtype) -> jax.Array:
    """``n`` uniforms in ``[0, 1)`` (53 random bits each): draws ``n·counter`` to
    ``n·counter + n - 1`` of the stream of ``seed``."""
    i = counter.astype(jnp.uint64) * jnp.uint64(n) + jnp.arange(n, dtype=jnp.uint64)
    z = _mix(seed + i * jnp.uint64(_GOLDEN))
    return ((z >> jnp.uint64(11)).astype(jnp.float64) * (2.0**-53)).astype(dtype)


def _log_factorial(k):
    """``log(k!)`` for ``k >= 0`` (to about 1e-12): Stirling's series at ``k + 7``, shifted
    down by the product of the 6 factors in between (cheaper than ``lgamma``)."""
    z = jnp.maximum(k, 0.0) + 7.0
    stirling = (z - 0.5) * jnp.log(z) - z + 0.5 * np.log(2 * np.pi) + 1.0 / (12.0 * z) \
        - 1.0 / (360.0 * z**3) + 1.0 / (1260.0 * z**5)
    shift = (z - 1) * (z - 2) * (z - 3) * (z - 4) * (z - 5) * (z - 6)
    return stirling - jnp.log(shift)


_SMALL = 12.0
_TERMS = 48
_TRIES = 8
UNIFORMS_PER_POISSON = 1 + 2 * _TRIES


def poisson(u, lam) -> jax.Array:
    """Poisson draws for rates ``lam`` (any shape) from uniforms ``u`` of shape
    ``lam.shape + (UNIFORMS_PER_POISSON,)``, with a fixed amount of work (no loops, so
    that ``vmap`` stays cheap).

    ``lam < 12``: inversion over the first 48 terms of the distribution (the mass beyond
    is below 1e-12). Otherwise Hörmann's transformed rejection (PTRS) with 8 candidate
    pairs evaluated at once and the first accepted one taken; its acceptance rate is
    above 0.9 there, so all 8 are rejected with probability below 1e-8, and then the
    normal approximation is used.

    References:
        Hörmann, W. (1993). The transformed rejection method for generating Poisson
        random variables. Insurance: Mathematics and Economics 12:39-45.
    """
    dt = u.dtype
    lam = jnp.asarray(lam, dt)
    small = lam < _SMALL
    # inversion: count the cumulative probabilities below u
    # (a loop of scalar updates: no (..., 48) intermediates, which cost memory traffic
    # under vmap)
    ls = jnp.where(small, lam, 1.0)
    u0 = u[..., 0]

    def term(k, c):
        p, cdf, x = c
        x = x + (cdf <= u0).astype(dt)
        p = p * ls / (k + 1.0)
        return p, cdf + p, x

    p0 = jnp.exp(-ls)
    x_small = jax.lax.fori_loop(0, _TERMS, term, (p0, p0, jnp.zeros_like(ls)))[2]
    # PTRS: 8 candidates at once, the first accepted kept
    lb = jnp.where(small, _SMALL, lam)[..., None]
    slam = jnp.sqrt(lb)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    uu = u[..., 1::2] - 0.5
    v = u[..., 2::2]
    us = 0.5 - jnp.abs(uu)
    kk = jnp.floor((2.0 * a / us + b) * uu + lb + 0.43)
    quick = (us >= 0.07) & (v <= vr)
    bad = (kk < 0) | ((us < 0.013) & (v > us))
    slow = jnp.log(v * inv_alpha / (a / (us * us) + b)) <= \
        -lb + kk * jnp.log(lb) - _log_factorial(kk)
    ok = quick | (~bad & slow)
    # the first accepted candidate (no gather: cheaper under vmap)
    okf = ok.astype(dt)
    before = jnp.cumsum(okf, axis=-1) - okf
    x_big = jnp.sum(jnp.where(ok & (before == 0), kk, 0.0), axis=-1)
    normal = jnp.maximum(jnp.round(lam + jnp.sqrt(jnp.maximum(lam, 0.0)) *
                                   jax.scipy.special.ndtri(jnp.clip(u[..., 1], 1e-300,
                                                                    1 - 1e-16))), 0.0)
    x_big = jnp.where(jnp.any(ok, axis=-1), x_big, normal)
    return jnp.where(lam > 0, jnp.where(small, x_small, x_big), 0.0)
