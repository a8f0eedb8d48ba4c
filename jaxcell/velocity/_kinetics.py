"""The per-gene transcription-splicing model with a switch, and projection of cells.

One gene: transcription at rate ``alpha`` until the switch time ``t_``, then off;
``du/dt = a(t) - beta u``, ``ds/dt = beta u - gamma s`` from ``u = s = 0`` (Bergen et
al. 2020, Nat. Biotechnol. 38:1408). The unspliced counts are observed as
``scaling * u`` (``u`` is in the model's own units). Both branches are the exact
solution of :class:`jaxcell.cellular.Splicing` (:func:`splicing_solution`).

A cell is placed on the curve by orthogonal projection in standardised units
(``u / std_u``, ``s / std_s``): a grid search on each branch, then Gauss-Newton steps
using the ODE right-hand side as the derivative of the curve.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..cellular import splicing_solution

#: order of the per-gene parameter vector (all in log space while fitting)
PARAMS = ("alpha", "beta", "gamma", "t_", "scaling")


def unpack(theta: Array) -> tuple[Array, Array, Array, Array, Array]:
    """``exp`` of the log-parameter vector ``(..., 5)`` as five arrays."""
    p = jnp.exp(theta)
    return p[..., 0], p[..., 1], p[..., 2], p[..., 3], p[..., 4]


def switch_point(alpha, beta, gamma, t_):
    """``(u, s)`` (model units) at the switch time."""
    return splicing_solution(t_, 0.0, 0.0, alpha, beta, gamma)


def branch(tau, on, alpha, beta, gamma, t_):
    """``(u, s)`` at time ``tau`` after the start of the branch (``on``: from zero with
    ``alpha``; off: from the switch point with no transcription)."""
    u0_, s0_ = switch_point(alpha, beta, gamma, t_)
    u0 = jnp.where(on, 0.0, u0_)
    s0 = jnp.where(on, 0.0, s0_)
    a = jnp.where(on, alpha, 0.0)
    return splicing_solution(tau, u0, s0, a, beta, gamma)


def at_time(t, alpha, beta, gamma, t_):
    """``(u, s, on)`` at absolute time ``t`` (on while ``t < t_``)."""
    on = t < t_
    tau = jnp.where(on, t, t - t_)
    u, s = branch(tau, on, alpha, beta, gamma, t_)
    return u, s, on


def off_span(beta, gamma):
    """Length of the repression branch searched for cells (to ~0.1% of the switch)."""
    return 7.0 / jnp.minimum(beta, gamma)


def _refine(tau, lo, hi, on, u, s, alpha, beta, gamma, t_, scaling, std_u, std_s,
            steps):
    """Gauss-Newton steps on each cell's time; the best time seen is kept (a step
    never makes a cell's distance worse)."""
    a = jnp.where(on, alpha, 0.0)

    def evaluate(tau):
        ut, st = branch(tau, on, alpha, beta, gamma, t_)
        du = (scaling * ut - u) / std_u
        ds = (st - s) / std_s
        return ut, st, du, ds, du * du + ds * ds

    def body(carry, _):
        tau, best, best_d = carry
        ut, st, du, ds, d = evaluate(tau)
        better = d < best_d
        best = jnp.where(better, tau, best)
        best_d = jnp.where(better, d, best_d)
        ju = scaling * (a - beta * ut) / std_u
        js = (beta * ut - gamma * st) / std_s
        step = (du * ju + ds * js) / (ju * ju + js * js + 1e-30)
        return (jnp.clip(tau - step, lo, hi), best, best_d), None

    init = (tau, tau, jnp.full_like(tau, jnp.inf))
    (tau, best, best_d), _ = jax.lax.scan(body, init, None, length=steps)
    d = evaluate(tau)[-1]
    return jnp.where(d < best_d, tau, best)


def project(u: Array, s: Array, theta: Array, std_u: Array, std_s: Array,
            n_grid: int = 24, steps: int = 3) -> tuple[Array, Array, Array, Array]:
    """Best time on each branch for cells ``u, s`` (shape ``(C,)``) of one gene.

    Returns ``(tau_on, tau_off, d_on, d_off)``: times after the branch start and the
    squared standardised distances to the curve there.
    """
    alpha, beta, gamma, t_, scaling = unpack(theta)
    span = off_span(beta, gamma)
    q = jnp.linspace(0.0, 1.0, n_grid)
    half = jnp.linspace(0.0, 1.0, n_grid // 2 + 1)[1:]
    # induction: uniform in time, plus points dense near the start (the curve moves
    # fastest there; when t_ >> 1/beta the uniform points all sit on the plateau)
    on_grid = jnp.concatenate([t_ * q[: n_grid - half.size],
                               jnp.minimum(t_, span) * half * half])
    grids = (on_grid, span * q * q)
    out = []
    for on, grid, hi in ((True, grids[0], t_), (False, grids[1], span)):
        ug, sg = branch(grid, on, alpha, beta, gamma, t_)
        d = (((scaling * ug)[None, :] - u[:, None]) / std_u) ** 2 \
            + ((sg[None, :] - s[:, None]) / std_s) ** 2
        tau = grid[jnp.argmin(d, axis=1)]
        tau = _refine(tau, 0.0, hi, on, u, s, alpha, beta, gamma, t_, scaling,
                      std_u, std_s, steps)
        out.append(tau)
    tau_on, tau_off = out
    d_on = distance(u, s, tau_on, True, theta, std_u, std_s)
    d_off = distance(u, s, tau_off, False, theta, std_u, std_s)
    return tau_on, tau_off, d_on, d_off


def distance(u, s, tau, on, theta, std_u, std_s):
    """Squared standardised distance of cells to the curve at ``tau`` on a branch."""
    alpha, beta, gamma, t_, scaling = unpack(theta)
    ut, st = branch(tau, on, alpha, beta, gamma, t_)
    return ((scaling * ut - u) / std_u) ** 2 + ((st - s) / std_s) ** 2


def refine(u, s, tau_on, tau_off, theta, std_u, std_s, steps: int = 1):
    """Gauss-Newton steps from given branch times (after a small parameter change)."""
    alpha, beta, gamma, t_, scaling = unpack(theta)
    span = off_span(beta, gamma)
    args = (u, s, alpha, beta, gamma, t_, scaling, std_u, std_s, steps)
    return (_refine(jnp.clip(tau_on, 0.0, t_), 0.0, t_, True, *args),
            _refine(jnp.clip(tau_off, 0.0, span), 0.0, span, False, *args))


def gene_loss(theta: Array, u: Array, s: Array, w: Array, std_u: Array, std_s: Array,
              n_grid: int = 24, steps: int = 3) -> Array:
    """Mean squared standardised distance of the weighted cells to the fitted curve.

    The cells' times are the projections (held fixed for the gradient: at the optimum
    of the inner problem its derivative vanishes, the envelope theorem).
    """
    tau_on, tau_off, _, _ = jax.lax.stop_gradient(
        project(u, s, jax.lax.stop_gradient(theta), std_u, std_s, n_grid, steps))
    d_on = distance(u, s, tau_on, True, theta, std_u, std_s)
    d_off = distance(u, s, tau_off, False, theta, std_u, std_s)
    return jnp.sum(w * jnp.minimum(d_on, d_off)) / jnp.maximum(jnp.sum(w), 1.0)


def loglik_from_mse(mse: Array) -> Array:
    """Mean per-cell log-density of an isotropic 2-D Gaussian with its maximum-
    likelihood variance (``sigma^2 = mse / 2`` per coordinate): ``-1 - log(pi mse)``."""
    return -1.0 - jnp.log(jnp.pi * jnp.maximum(mse, 1e-300))


def cell_times(u, s, theta, std_u, std_s, n_grid: int = 24, steps: int = 3):
    """``(t, on, d)``: each cell's time on the gene's own clock (``tau`` on the
    induction branch, ``t_ + tau`` on repression), its branch and distance."""
    tau_on, tau_off, d_on, d_off = project(u, s, theta, std_u, std_s, n_grid, steps)
    on = d_on <= d_off
    t_ = jnp.exp(theta[3])
    return jnp.where(on, tau_on, t_ + tau_off), on, jnp.where(on, d_on, d_off)


def _k_terms(tau, beta, gamma):
    """``K = (e^{-gamma tau} - e^{-beta tau}) / (gamma - beta)`` and its derivatives in
    ``beta`` and ``gamma``, smooth through ``beta = gamma``."""
    eb, eg = jnp.exp(-beta * tau), jnp.exp(-gamma * tau)
    x = (beta - gamma) * tau
    small = jnp.abs(x) < 1e-3
    safe_x = jnp.where(small, 1.0, x)
    safe_d = jnp.where(small, 1.0, gamma - beta)
    k = jnp.where(small, -tau * eb * (1.0 + x / 2.0 + x * x / 6.0), (eg - eb) / safe_d)
    dk_dg = jnp.where(small, tau * tau * eb * (0.5 + x / 3.0 + x * x / 8.0),
                      tau * tau * (eg * (x - 1.0) + eb) / (safe_x * safe_x))
    dk_db = -tau * k - dk_dg
    return eb, eg, k, dk_db, dk_dg


def _solution_and_partials(tau, u0, s0, a, beta, gamma):
    """``(u, s)`` from ``(u0, s0)`` with transcription ``a`` and their partial
    derivatives in ``a, beta, gamma, u0, s0``."""
    eb, eg, k, dk_db, dk_dg = _k_terms(tau, beta, gamma)
    u = u0 * eb + a / beta * (1.0 - eb)
    s = s0 * eg + a / gamma * (1.0 - eg) + (a - beta * u0) * k
    du = {"a": (1.0 - eb) / beta,
          "beta": tau * eb * (a / beta - u0) - a / (beta * beta) * (1.0 - eb),
          "u0": eb}
    ds = {"a": (1.0 - eg) / gamma + k,
          "beta": -u0 * k + (a - beta * u0) * dk_db,
          "gamma": tau * eg * (a / gamma - s0) - a / (gamma * gamma) * (1.0 - eg)
          + (a - beta * u0) * dk_dg,
          "u0": -beta * k, "s0": eg}
    return u, s, du, ds


def curve_jacobian(theta, tau, on):
    """``(cu, s, J_u, J_s)``: observed-scale unspliced ``scaling * u`` and spliced at
    ``tau`` on each cell's branch, and their derivatives in the five log-parameters
    (each ``(5, C)``), in closed form (checked against ``jax.jacfwd`` in the tests)."""
    alpha, beta, gamma, t_, c = unpack(theta)
    # switch point and its derivatives (on-branch from zero at time t_)
    uT, sT, duT, dsT = _solution_and_partials(t_, 0.0, 0.0, alpha, beta, gamma)
    zero = jnp.zeros_like(tau)
    a = jnp.where(on, alpha, 0.0)
    u0 = jnp.where(on, 0.0, uT)
    s0 = jnp.where(on, 0.0, sT)
    u, s, du, ds = _solution_and_partials(tau, u0, s0, a, beta, gamma)
    # off-branch: the start depends on beta, gamma, t_ through the switch point
    off = jnp.logical_not(on)
    uT_b, uT_t = duT["beta"], alpha - beta * uT
    sT_b, sT_g, sT_t = dsT["beta"], dsT["gamma"], beta * uT - gamma * sT
    du_b = du["beta"] + jnp.where(off, du["u0"] * uT_b, 0.0)
    du_t = jnp.where(off, du["u0"] * uT_t, 0.0)
    ds_b = ds["beta"] + jnp.where(off, ds["u0"] * uT_b + ds["s0"] * sT_b, 0.0)
    ds_g = ds["gamma"] + jnp.where(off, ds["s0"] * sT_g, 0.0)
    ds_t = jnp.where(off, ds["u0"] * uT_t + ds["s0"] * sT_t, 0.0)
    # u and s are linear in alpha on both branches
    ju = jnp.stack([c * u, c * beta * du_b, zero, c * t_ * du_t, c * u])
    js = jnp.stack([s, beta * ds_b, gamma * ds_g, t_ * ds_t, zero])
    return c * u, s, ju, js


#: bounds of the log-parameters while fitting
LOG_BOUNDS = (float(np.log(1e-6)), float(np.log(1e6)))


def lm_trial(theta, lam, cu, st, ju, js, u, s, sw, std_u, std_s):
    """One damped Gauss-Newton (Levenberg-Marquardt) proposal for a gene's
    log-parameters from the curve and its Jacobian at the cells' current times.

    Returns ``(trial, sq)``: the proposed parameters (steps clipped to 2 in log space,
    parameters to ``LOG_BOUNDS``) and the current weighted sum of squares.
    """
    ru, rs = sw * (cu - u) / std_u, sw * (st - s) / std_s
    ju, js = sw[None] * ju / std_u, sw[None] * js / std_s
    ju = jnp.where(jnp.isfinite(ju), ju, 0.0)
    js = jnp.where(jnp.isfinite(js), js, 0.0)
    g = jnp.sum(ju * ru[None] + js * rs[None], axis=1)
    h = jnp.sum(ju[:, None] * ju[None] + js[:, None] * js[None], axis=2)
    damp = lam * (jnp.diag(h) + 1e-12 * jnp.trace(h) + 1e-300)
    delta = jnp.linalg.solve(h + jnp.diag(damp), g)
    delta = jnp.where(jnp.all(jnp.isfinite(delta)), delta, 0.0)
    trial = jnp.clip(theta - jnp.clip(delta, -2.0, 2.0), *LOG_BOUNDS)
    return trial, jnp.sum(ru * ru) + jnp.sum(rs * rs)
