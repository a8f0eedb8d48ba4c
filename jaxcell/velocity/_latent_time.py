"""The shared-time model: one latent time per cell for all genes.

Every gene ``g`` follows its own kinetics (``alpha, beta, gamma, t_, scaling``) on one
clock shared by all genes; cell ``c`` sits at time ``t_c`` in ``[0, t_max]``. Started
from the per-gene fits (each gene's clock is aligned to the consensus by one factor,
scVelo's "alignment scaling"), it alternates

1. cell times: a grid search over ``[0, t_max]`` of the summed squared standardised
   distances of all genes (three matrix products), then Gauss-Newton steps;
2. gene kinetics: Levenberg-Marquardt steps for every gene at the cells' times (on at
   most 512 evenly spread cells; two steps on all cells at the end);
3. the clock is rescaled so that the 99th percentile of the cells' times is at
   ``0.99 t_max`` (rates divided by the same factor; the likelihood does not change:
   only the unit of time is fixed, by the span ``t_max`` the user gives).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._dynamical import COMPILER_OPTIONS, FIT_CELLS
from ._kinetics import at_time, curve_jacobian, lm_trial, unpack

#: the clock is fixed by putting this quantile of the cells' times at the same
#: fraction of ``t_max`` (a range robust to a few outlying cells)
SPAN_QUANTILE = 0.99
#: rounds between global (grid) searches of the cells' times
GRID_EVERY = 3
#: cells may be placed up to this multiple of ``t_max`` (then the clock is rescaled)
OVERSHOOT = 1.25


def _residual_at(theta, t, u, s, sw, std_u, std_s):
    alpha, beta, gamma, t_, c = unpack(theta)
    ut, st, _ = at_time(t, alpha, beta, gamma, t_)
    return jnp.concatenate([sw * (c * ut - u) / std_u, sw * (st - s) / std_s])


def shared_jacobian(theta, t):
    """``(cu, s, J_u, J_s)`` at absolute times ``t``: as :func:`curve_jacobian`, plus
    the dependence of the repression branch's elapsed time ``t - t_`` on ``t_``
    (checked against ``jax.jacfwd`` in the tests)."""
    alpha, beta, gamma, t_, c = unpack(theta)
    on = t < t_
    tau = jnp.where(on, t, t - t_)
    cu, st, ju, js = curve_jacobian(theta, tau, on)
    off = jnp.logical_not(on)
    ju = ju.at[3].add(jnp.where(off, t_ * beta * cu, 0.0))
    js = js.at[3].add(jnp.where(off, -t_ * (beta * cu / c - gamma * st), 0.0))
    return cu, st, ju, js


def _gene_lm(theta, lam, t, u, s, w, std_u, std_s, n_steps):
    """Levenberg-Marquardt for one gene at fixed cell times ``t`` (closed-form
    Jacobian)."""
    sw = jnp.sqrt(w / jnp.maximum(jnp.sum(w), 1.0))

    def sq(theta):
        r = _residual_at(theta, t, u, s, sw, std_u, std_s)
        return jnp.sum(r * r)

    def step(carry, _):
        theta, lam = carry
        cu, st, ju, js = shared_jacobian(theta, t)
        trial, current = lm_trial(theta, lam, cu, st, ju, js, u, s, sw, std_u, std_s)
        new = sq(trial)
        ok = jnp.isfinite(new) & (new < current)
        return (jnp.where(ok, trial, theta),
                jnp.clip(jnp.where(ok, lam / 3.0, lam * 4.0), 1e-9, 1e9)), None

    (theta, lam), _ = jax.lax.scan(step, (theta, lam), None, length=n_steps)
    return theta, lam


def _standardised_curves(theta, grid, std_u, std_s):
    """``(a_u, a_s)``: each gene's curve at the grid times, standardised, ``(G, K)``."""
    alpha, beta, gamma, t_, c = unpack(theta)
    ug, sg, _ = at_time(grid[None, :], alpha[:, None], beta[:, None], gamma[:, None],
                        t_[:, None])
    return c[:, None] * ug / std_u[:, None], sg / std_s[:, None]


def _cell_times_grid(theta, u, s, w, std_u, std_s, grid):
    """Best grid time per cell: the summed squared distance over genes as matrix
    products (``C x G`` by ``G x K``)."""
    au, as_ = _standardised_curves(theta, grid, std_u, std_s)
    xu, xs = u / std_u[None, :], s / std_s[None, :]
    d = (w @ (au * au + as_ * as_)) - 2.0 * ((w * xu) @ au + (w * xs) @ as_)
    return grid[jnp.argmin(d, axis=1)]


def _cell_times_refine(t, theta, u, s, w, std_u, std_s, t_max, steps=3):
    """Gauss-Newton steps on each cell's time (the sum over genes), within [0, t_max]."""
    alpha, beta, gamma, t_, c = unpack(theta)

    def body(t, _):
        ut, st, on = at_time(t[:, None], alpha[None], beta[None], gamma[None], t_[None])
        du = (c[None] * ut - u) / std_u[None]
        ds = (st - s) / std_s[None]
        a = jnp.where(on, alpha[None], 0.0)
        ju = c[None] * (a - beta[None] * ut) / std_u[None]
        js = (beta[None] * ut - gamma[None] * st) / std_s[None]
        num = jnp.sum(w * (du * ju + ds * js), axis=1)
        den = jnp.sum(w * (ju * ju + js * js), axis=1) + 1e-30
        return jnp.clip(t - num / den, 0.0, t_max), None

    t, _ = jax.lax.scan(body, t, None, length=steps)
    return t


def shared_loss(theta, t, u, s, w, std_u, std_s):
    """Per-gene mean squared standardised distance at the shared times, ``(G,)``."""
    alpha, beta, gamma, t_, c = unpack(theta)
    ut, st, _ = at_time(t[:, None], alpha[None], beta[None], gamma[None], t_[None])
    d = ((c[None] * ut - u) / std_u[None]) ** 2 + ((st - s) / std_s[None]) ** 2
    return jnp.sum(w * d, 0) / jnp.maximum(jnp.sum(w, 0), 1.0)


def align(theta, t_gene, w, t0):
    """Per-gene kinetics on the shared clock ``t0``: each gene's own clock is scaled by
    the least-squares factor ``k`` with ``k t_gene ~ t0`` (rates divided by ``k``)."""
    k = jnp.sum(w * t_gene * t0[:, None], 0) / jnp.maximum(
        jnp.sum(w * t_gene * t_gene, 0), 1e-300)
    k = jnp.where(jnp.isfinite(k) & (k > 0), k, 1.0)
    lk = jnp.log(k)
    return theta + jnp.stack([-lk, -lk, -lk, lk, jnp.zeros_like(lk)], -1)


def consensus_time(t_gene, w, gene_ok):
    """First guess of the shared time in [0, 1]: per cell, the median over genes of
    each gene's time divided by its latest fit cell's time."""
    tmax = jnp.max(jnp.where(w > 0, t_gene, 0.0), axis=0)
    tn = t_gene / jnp.where(tmax > 0, tmax, 1.0)[None]
    tn = jnp.where((w > 0) & gene_ok[None], tn, jnp.nan)
    t0 = jnp.nanmedian(tn, axis=1)
    return jnp.where(jnp.isfinite(t0), t0, 0.5)


@functools.partial(jax.jit, static_argnames=("n_rounds", "n_grid", "gene_steps"),
                   compiler_options=COMPILER_OPTIONS)
def fit_shared_time(theta, t_gene, u, s, w, std_u, std_s, gene_ok, t_max, *,
                    n_rounds: int = 12, n_grid: int = 200, gene_steps: int = 4):
    """Alternate cell times and gene kinetics; returns ``(theta, t, loss)`` with
    ``theta`` on the shared clock (``(G, 5)``), ``t`` in ``[0, t_max]`` (``(C,)``) and
    the per-gene loss at the end."""
    wg = w * gene_ok[None, :]
    t = consensus_time(t_gene, w, gene_ok) * t_max
    theta = align(theta, t_gene, w, t)
    t_hi = OVERSHOOT * t_max
    grid = jnp.linspace(0.0, t_hi, n_grid)
    lm = jax.vmap(_gene_lm, in_axes=(0, 0, None, 1, 1, 1, 0, 0, None))
    lam = jnp.full(theta.shape[0], 1e-2, theta.dtype)

    def round_(carry, i):
        theta, lam, t = carry
        # a global search every GRID_EVERY-th round; Gauss-Newton from the last times
        # in between (the times move little from one round to the next)
        t = jax.lax.cond(i % GRID_EVERY == 0,
                         lambda: _cell_times_grid(theta, u, s, wg, std_u, std_s, grid),
                         lambda: t)
        t = _cell_times_refine(t, theta, u, s, wg, std_u, std_s, t_hi)
        # gene kinetics from at most FIT_CELLS evenly spread cells (then all, below)
        theta, lam = lm(theta, lam, t[sub], u[sub], s[sub], w[sub], std_u, std_s,
                        gene_steps)
        # rescale the clock: the 99th percentile of the cells at 0.99 t_max
        k = SPAN_QUANTILE * t_max / jnp.maximum(jnp.quantile(t, SPAN_QUANTILE), 1e-12)
        lk = jnp.log(k)
        t = t * k
        theta = theta + jnp.stack([-lk, -lk, -lk, lk, 0.0])[None, :]
        return (theta, lam, t), None

    n_cells = u.shape[0]
    sub = np.unique(np.linspace(0, n_cells - 1, min(n_cells, FIT_CELLS)).astype(int))
    (theta, lam, t), _ = jax.lax.scan(round_, (theta, lam, t), jnp.arange(n_rounds))
    if n_cells > FIT_CELLS:  # two steps on every cell at the final times
        theta, lam = lm(theta, lam, t, u, s, w, std_u, std_s, 2)
    return theta, t, shared_loss(theta, t, u, s, w, std_u, std_s)
