"""A stiffness check for the default solver of large models.

Above ``DENSE_LIMIT`` state variables :func:`~jaxcell.simulate` defaults to an explicit
method, whose step is limited by stability to about ``3.3 / rho`` (``rho``: the largest
magnitude of an eigenvalue of the Jacobian; Tsit5's stability region reaches about -3.3
on the negative real axis). Before choosing it, the spectral radius at ``t0`` is
estimated matrix-free, by power iteration with Jacobian-vector products (no Jacobian is
formed), and ``rho |t1 - t0| / 3.3`` gives the least number of explicit steps. A stiff
model (more than ``STIFF_STEPS``) gets the dense Rodas5 when it has at most
``DENSE_MAX`` state variables, and an error naming what to pass above that; never a
silent explicit solve of a stiff model.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._engine import cast_floats, initial_state

TSIT5_STABILITY = 3.3
"""Where Tsit5's stability region meets the negative real axis (about -3.3)."""
STIFF_STEPS = 10_000
"""A model whose explicit solve needs more steps than this, for stability alone, is
treated as stiff."""
DENSE_MAX = 5_000
"""The largest model that a stiff check may hand to the dense Rodas5."""
POWER_ITERATIONS = 40


@eqx.filter_jit
def spectral_radius(model, y0, t0, args, dtype):
    """An estimate (power iteration, ``POWER_ITERATIONS`` Jacobian-vector products) of
    the largest magnitude of an eigenvalue of the model's Jacobian at ``t0``."""
    model = cast_floats(model.prepared(t0), dtype)
    y = cast_floats(initial_state(model, y0), dtype)
    x0, unravel = ravel_pytree(y)
    t0 = jnp.asarray(t0, dtype)

    def f(x):
        return ravel_pytree(model.vector_field(t0, unravel(x), args))[0]

    _, jvp = jax.linearize(f, x0)
    v = jax.random.normal(jax.random.key(0), x0.shape, dtype)
    v = v / jnp.linalg.norm(v)

    def step(_, carry):
        v, _ = carry
        w = jvp(v)
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1.0), v), norm

    # the Rayleigh-free estimate |J v| / |v| converges to rho for the dominant mode;
    # complex pairs make it oscillate, so the largest of the last iterations is taken
    def step_max(i, carry):
        v, est, best = carry
        v, norm = step(i, (v, est))
        return v, norm, jnp.where(i >= POWER_ITERATIONS // 2, jnp.maximum(best, norm), best)

    _, _, rho = jax.lax.fori_loop(0, POWER_ITERATIONS, step_max,
                                  (v, jnp.zeros((), dtype), jnp.zeros((), dtype)))
    return rho


def explicit_steps(model, y0, t0, t1, args, dtype) -> float:
    """The least number of explicit (Tsit5) steps that stability allows on
    ``[t0, t1]``, from the spectral radius at ``t0``."""
    rho = float(spectral_radius(model, y0, t0, args, dtype))
    return rho * abs(float(t1) - float(t0)) / TSIT5_STABILITY
