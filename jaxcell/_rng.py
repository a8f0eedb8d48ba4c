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
