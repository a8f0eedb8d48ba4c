"""Derivatives from forward mode only, for simulations that cannot be reverse-differentiated."""

from __future__ import annotations

from collections.abc import Callable

import jax
from jaxtyping import Array


def forward_only(f: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """``f`` with its derivative built from ``jax.jacfwd`` alone (``len(x)`` JVPs), so
    that reverse mode (gradients, ``vjp``) works for objectives whose simulations
    can only be differentiated forwards (``diffrax.ForwardMode``)."""

    @jax.custom_jvp
    def g(x):
        return f(x)

    @g.defjvp
    def g_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        jac, y = jax.jacfwd(lambda z: (lambda v: (v, v))(f(z)), has_aux=True)(x)
        return y, jac @ t

    return g
