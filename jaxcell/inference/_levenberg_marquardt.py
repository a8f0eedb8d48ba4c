"""A Levenberg–Marquardt least-squares solver that is safe to ``vmap`` over starts."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..solvers._small_linalg import small_inv


class LMState(eqx.Module):
    """One start's iterate: the point, its residuals and Jacobian, and the damping."""

    x: Float[Array, " n"]
    r: Float[Array, " m"]
    jac: Float[Array, "m n"]
    loss: Float[Array, ""]
    damping: Float[Array, ""]
    growth: Float[Array, ""]
    lower: Float[Array, " n"]
    upper: Float[Array, " n"]


class LevenbergMarquardt(eqx.Module):
    """Levenberg–Marquardt with Marquardt's diagonal scaling and Nielsen's damping
    update (Madsen, Nielsen & Tingleff, *Methods for non-linear least squares
    problems*, 2004, §3.2; Marquardt 1963 for the scaling).

    Each iteration solves ``(JᵀJ + λ D) h = -Jᵀr`` with ``D = diag(JᵀJ)`` (floored
    at ``10⁻¹²·max D``; so badly scaled parameters, common in ODE fits, do not slow
    it down), tries ``x + h``, and accepts it when the gain ratio ``ρ`` (actual over
    predicted reduction) is positive: then ``λ ← λ·max(1/3, 1 - (2ρ - 1)³)``, else
    ``λ ← λ·ν`` with ``ν`` doubling while steps are rejected. A start has converged
    when an accepted step changes the loss by at most ``atol + rtol·loss`` and ``x``
    by at most ``atol + rtol·‖x‖`` (as :class:`optimistix.LevenbergMarquardt`), or
    when the Gauss–Newton model of the step promises a decrease of at most
    ``atol + rtol·loss``, or when the gradient ``‖Jᵀr‖∞ ≤ gtol`` (over the
    coordinates not held at a bound); the short-step tests only count while
    ``λ ≤ 1`` (a step cut short by heavy damping is not convergence). It gives up (not
    converged) once ``λ > 10²⁰``.

    **Bounds** (``init(..., bounds=(lower, upper))``; :func:`fit` passes the PEtab
    bounds): coordinates at a bound whose gradient points outwards are held there
    (left out of the linear solve), each trial point is the step projected into the
    box, and the gain ratio uses the projected step (a projected Levenberg–Marquardt
    method, Kanzow, Yamashita & Fukushima 2004), so every iterate is feasible.

    Every branch is a ``jnp.where``, so ``vmap`` over starts gives each start exactly
    the iterates it has alone: :func:`fit` uses it for ``batch=True``. (Measured:
    ``optimistix.LevenbergMarquardt`` 0.1.0 under ``vmap`` can leave a start stuck
    at its initial point.) This is the default method of :func:`fit` for
    sum-of-squares objectives.

    Attributes:
        rtol, atol: the step/loss convergence test above.
        gtol: the gradient test.
        damping0: initial ``λ`` (dimensionless: ``D`` carries the scale).
    """

    rtol: float = 1e-8
    atol: float = 1e-8
    gtol: float = 1e-10
    damping0: float = 1e-3

    def init(self, fn: Callable[[Array], tuple[Array, Array]], x: Array,
             bounds: tuple[Array, Array] | None = None) -> LMState:
        """The state at ``x`` (clipped into ``bounds``, default none); ``fn(x)``
        returns ``(residuals, Jacobian)``."""
        if bounds is None:
            lower, upper = jnp.full_like(x, -jnp.inf), jnp.full_like(x, jnp.inf)
        else:
            lower, upper = (jnp.broadcast_to(jnp.asarray(b, x.dtype), x.shape)
                            for b in bounds)
        x = jnp.clip(x, lower, upper)
        r, jac = fn(x)
        loss = 0.5 * jnp.sum(r**2)
        finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(jac))
        damping = jnp.asarray(self.damping0, x.dtype)
        return LMState(x, r, jac, jnp.where(finite, loss, jnp.inf), damping,
                       jnp.asarray(2.0, x.dtype), lower, upper)

    def step(self, fn: Callable[[Array], tuple[Array, Array]], state: LMState
             ) -> tuple[LMState, Bool[Array, ""], Bool[Array, ""]]:
        """One iteration: ``(new state, done, converged)``."""
        jac, r = state.jac, state.r
        g = jac.T @ r
        a = jac.T @ jac
        diag = jnp.diag(a)
        d = jnp.maximum(diag, 1e-12 * jnp.maximum(jnp.max(diag), 1e-300))
        # coordinates held at a bound (the gradient pushes outwards) are left out
        held = (((state.x <= state.lower) & (g > 0))
                | ((state.x >= state.upper) & (g < 0)))
        g_free = jnp.where(held, 0.0, g)
        keep = ~held
        a_free = jnp.where(keep[:, None] & keep[None, :], a, 0.0)
        d_free = jnp.where(keep, d, 1.0)
        # an explicit inverse: LAPACK for one start, a Gauss-Jordan elimination
        # vectorised over the starts under vmap (no per-start LAPACK call, so a batch of
        # starts can spread over CPU devices; see jaxcell/_devices.py)
        h = small_inv(a_free + state.damping * jnp.diag(d_free)
                      + jnp.diag(held.astype(a.dtype))) @ -g_free
        h = jnp.where(jnp.all(jnp.isfinite(h)), h, 0.0)
        x_try = jnp.clip(state.x + h, state.lower, state.upper)
        h = x_try - state.x  # the projected step
        r_try, jac_try = fn(x_try)
        loss_try = 0.5 * jnp.sum(r_try**2)
        predicted = -(g @ h + 0.5 * h @ (a @ h))  # the Gauss-Newton model's decrease
        rho = (state.loss - loss_try) / jnp.where(predicted > 0, predicted, jnp.inf)
        ok_try = jnp.isfinite(loss_try) & jnp.all(jnp.isfinite(jac_try))
        accept = ok_try & (rho > 0) & jnp.any(h != 0)
        damping = jnp.where(
            accept, state.damping * jnp.maximum(1 / 3, 1 - (2 * rho - 1) ** 3),
            state.damping * state.growth)
        growth = jnp.where(accept, 2.0, 2.0 * state.growth)
        small_f = jnp.abs(state.loss - loss_try) <= self.atol + self.rtol * state.loss
        small_x = (jnp.linalg.norm(h) <= self.atol + self.rtol * jnp.linalg.norm(state.x))
        # a short step only counts when it is close to a Gauss-Newton step (λ ≤ 1),
        # not when heavy damping after rejections made it short
        # converged: a short accepted step, or the model itself promises no more than
        # the loss tolerance (at an optimum, rounding makes further steps fail)
        tiny_model = jnp.abs(predicted) <= self.atol + self.rtol * state.loss
        converged = (((accept & small_f & small_x) | tiny_model) & (state.damping <= 1.0)
                     | (jnp.max(jnp.abs(g_free)) <= self.gtol))
        stuck = damping > 1e20

        def pick(new, old):
            return jnp.where(accept, new, old)

        new = LMState(pick(x_try, state.x), pick(r_try, r), pick(jac_try, jac),
                      pick(loss_try, state.loss), damping, growth, state.lower,
                      state.upper)
        return new, converged | stuck, converged
