"""The dynamical model fitted for every gene at once (``vmap`` over genes and starts).

Per gene the parameters are ``log(alpha, beta, gamma, t_, scaling)``; the objective is
the mean squared standardised distance of the gene's fit cells to the curve, each cell
at its orthogonal projection (re-projected every step, see :func:`gene_loss`). It is
minimised by Adam from several starts (scVelo's initial guesses, the steady-state
ratio from the extreme quantiles, with different switch times); the best start wins.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jaxtyping import Array

from .._devices import resolve_devices
from ._kinetics import (
    cell_times,
    curve_jacobian,
    distance,
    lm_trial,
    loglik_from_mse,
    project,
    refine,
)

#: switch times of the starts, in units of ``1/beta`` (``beta = 1`` at the start)
START_SWITCH = (0.7, 1.5, 3.0)


def fit_weights(u: np.ndarray, s: np.ndarray, perc: float = 99.0) -> np.ndarray:
    """Cells used for a gene's fit: both counts positive and below the ``perc``-th
    percentile of the positive cells (scVelo's rule). ``u, s``: ``(C, G)``."""
    nz = (u > 0) & (s > 0)
    um = np.where(nz, u, np.nan)
    sm = np.where(nz, s, np.nan)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ub_u = np.nanpercentile(um, perc, axis=0)
            ub_s = np.nanpercentile(sm, perc, axis=0)
    ub_u = np.where(np.isfinite(ub_u) & (ub_u > 0), ub_u, np.inf)
    ub_s = np.where(np.isfinite(ub_s) & (ub_s > 0), ub_s, np.inf)
    return nz & (u <= ub_u) & (s <= ub_s)


def _weighted_std(x, w):
    n = jnp.maximum(jnp.sum(w, 0), 1.0)
    m = jnp.sum(w * x, 0) / n
    return jnp.sqrt(jnp.sum(w * (x - m[None]) ** 2, 0) / n)


def initial_guesses(u: Array, s: Array, w: Array) -> tuple[Array, Array, Array]:
    """``(theta0 (G, S, 5), std_u, std_s)``: starts for every gene (the quantiles from
    at most ``FIT_CELLS`` evenly spread cells; the standard deviations from all)."""
    std_u, std_s = _weighted_std(u, w), _weighted_std(s, w)
    bad = (std_u <= 0) | (std_s <= 0)
    std_u = jnp.where(bad, 1.0, std_u)
    std_s = jnp.where(bad, 1.0, std_s)
    scaling = std_u / std_s
    n_cells = u.shape[0]
    sub = np.unique(np.linspace(0, n_cells - 1, min(n_cells, FIT_CELLS)).astype(int))
    u, s, w = u[sub], s[sub], w[sub]
    ui = u / scaling[None]
    um = jnp.where(w > 0, ui, jnp.nan)
    sm = jnp.where(w > 0, s, jnp.nan)
    top_s = s >= jnp.nanpercentile(sm, 98.0, axis=0)[None]
    top_u = ui >= jnp.nanpercentile(um, 98.0, axis=0)[None]
    ws = w * top_s
    ratio = jnp.sum(ws * ui * s, 0) / jnp.maximum(jnp.sum(ws * s * s, 0), 1e-300) + 1e-6
    u_hi = jnp.sum(w * (top_u | top_s) * ui, 0) / jnp.maximum(
        jnp.sum(w * (top_u | top_s), 0), 1.0)
    u_hi = jnp.maximum(u_hi, 1e-6)
    beta = 1.0
    gamma = jnp.clip(ratio, 1e-3, 1e3) * beta
    starts = []
    for ts in START_SWITCH:
        alpha = beta * u_hi / (1.0 - jnp.exp(-beta * ts))
        starts.append(jnp.stack([jnp.log(alpha), jnp.full_like(alpha, np.log(beta)),
                                 jnp.log(gamma), jnp.full_like(alpha, np.log(ts)),
                                 jnp.log(scaling)], -1))
    return jnp.stack(starts, 1), std_u, std_s


def _lm_step(u, s, w, sw, std_u, std_s, n_grid, regrid):
    """One Levenberg-Marquardt step on the profile objective: residuals at the cells'
    current projections, a damped Gauss-Newton step in the five log-parameters, then
    the cells are projected again (a grid search every ``regrid``-th step, else
    Gauss-Newton from their current times) and the step is kept only if the objective
    fell."""
    wsum = jnp.maximum(jnp.sum(w), 1.0)

    def reproject(trial, tau_on, tau_off):
        t_on, t_off = refine(u, s, tau_on, tau_off, trial, std_u, std_s, 1)
        return (t_on, t_off, distance(u, s, t_on, True, trial, std_u, std_s),
                distance(u, s, t_off, False, trial, std_u, std_s))

    def step(carry, i):
        theta, tau_on, tau_off, d_on, d_off, loss, lam = carry
        on = d_on <= d_off
        tau = jnp.where(on, tau_on, tau_off)
        cu, st, ju, js = curve_jacobian(theta, tau, on)
        trial, _ = lm_trial(theta, lam, cu, st, ju, js, u, s, sw, std_u, std_s)
        t_on, t_off, td_on, td_off = jax.lax.cond(
            i % regrid == 0,
            lambda: project(u, s, trial, std_u, std_s, n_grid, 2),
            lambda: reproject(trial, tau_on, tau_off))
        t_loss = jnp.sum(w * jnp.minimum(td_on, td_off)) / wsum
        ok = jnp.isfinite(t_loss) & (t_loss < loss)
        theta = jnp.where(ok, trial, theta)
        tau_on = jnp.where(ok, t_on, tau_on)
        tau_off = jnp.where(ok, t_off, tau_off)
        d_on = jnp.where(ok, td_on, d_on)
        d_off = jnp.where(ok, td_off, d_off)
        loss = jnp.where(ok, t_loss, loss)
        lam = jnp.clip(jnp.where(ok, lam / 3.0, lam * 4.0), 1e-9, 1e9)
        return (theta, tau_on, tau_off, d_on, d_off, loss, lam), None

    return step


def _lm_init(theta, u, s, w, std_u, std_s, n_grid):
    tau_on, tau_off, d_on, d_off = project(u, s, theta, std_u, std_s, n_grid, 2)
    loss = jnp.sum(w * jnp.minimum(d_on, d_off)) / jnp.maximum(jnp.sum(w), 1.0)
    return (theta, tau_on, tau_off, d_on, d_off, loss, jnp.asarray(1e-2, theta.dtype))


def _lm_run(carry, u, s, w, std_u, std_s, n_steps, n_grid, regrid):
    """``n_steps`` steps, a full grid projection every ``regrid``-th step."""
    sw = jnp.sqrt(w / jnp.maximum(jnp.sum(w), 1.0))
    step = _lm_step(u, s, w, sw, std_u, std_s, n_grid, regrid)
    carry, _ = jax.lax.scan(step, carry, jnp.arange(n_steps))
    return carry


#: cells (at most, evenly spread) of the main Levenberg-Marquardt iterations; with more
#: cells, ``POLISH_STEPS`` steps on all of them follow (per-step cost grows with cells,
#: the parameters' precision hardly does past a thousand)
FIT_CELLS = 512
POLISH_STEPS = 2
#: grid points per branch of the final placement of the cells
FINAL_GRID = 32
#: cells (at most) on which the starts are compared before the full fit
START_CELLS = 256


#: XLA options of the fit: LLVM's most expensive passes cost a third of the compile
#: time and nothing measurable at run time (measured on CPU)
COMPILER_OPTIONS = {"xla_llvm_disable_expensive_passes": True}


#: genes fitted together in one pass, chosen so that a pass's arrays (cells x genes)
#: stay near this many elements: the fit is memory-bound once they leave the cache
CHUNK_ELEMENTS = 2**21


def _fit_chunk(u, s, w, n_starts_steps, n_steps, n_grid, regrid):
    """Fit the genes of one chunk (``(C, g)`` arrays), all at once."""
    theta0, std_u, std_s = initial_guesses(u, s, w)
    n_cells = u.shape[0]
    # the starts are run on an evenly spread subset of the cells, the best goes on
    sub = np.unique(np.linspace(0, n_cells - 1, min(n_cells, START_CELLS)).astype(int))

    fit_sub = np.unique(np.linspace(0, n_cells - 1, min(n_cells, FIT_CELLS)).astype(int))
    polish = n_cells > FIT_CELLS and n_steps > 0

    def gene(theta0, u, s, w, std_u, std_s):
        data = (u[sub], s[sub], w[sub], std_u, std_s)
        carry = jax.vmap(lambda th: _lm_init(th, *data, n_grid))(theta0)
        carry = jax.vmap(lambda c: _lm_run(c, *data, n_starts_steps, n_grid, regrid))(
            carry)
        best = jnp.argmin(jnp.where(jnp.isfinite(carry[-2]), carry[-2], jnp.inf))
        theta = carry[0][best]
        data = (u[fit_sub], s[fit_sub], w[fit_sub], std_u, std_s)
        carry = _lm_run(_lm_init(theta, *data, n_grid), *data, n_steps, n_grid, regrid)
        if polish:  # a few steps on every cell from the subset's optimum
            data = (u, s, w, std_u, std_s)
            carry = _lm_run(_lm_init(carry[0], *data, n_grid), *data, POLISH_STEPS,
                            n_grid, regrid)
        return carry[0], carry[-2]

    theta, _ = jax.vmap(gene, in_axes=(0, 1, 1, 1, 0, 0))(theta0, u, s, w, std_u, std_s)
    # the final placement of every cell: a fine grid and Gauss-Newton steps
    t, on, d = jax.vmap(lambda *a: cell_times(*a, n_grid=FINAL_GRID, steps=6),
                        in_axes=(1, 1, 0, 0, 0), out_axes=1)(u, s, theta, std_u, std_s)
    mse = jnp.sum(w * d, 0) / jnp.maximum(jnp.sum(w, 0), 1.0)
    return theta, mse, std_u, std_s, t, on, d


def _fit_all_impl(u, s, w, n_starts_steps, n_steps, n_grid, regrid):
    """All genes, in chunks of genes (``lax.map``) so that each pass fits in cache."""
    n_cells, n_genes = u.shape
    chunk = int(min(n_genes, max(1, CHUNK_ELEMENTS // n_cells)))
    n_chunks = -(-n_genes // chunk)
    pad = n_chunks * chunk - n_genes

    def split(a):  # (C, G) -> (n_chunks, C, chunk), padded with copies of gene 0
        if pad:
            a = jnp.concatenate([a, jnp.repeat(a[:, :1], pad, axis=1)], axis=1)
        return a.reshape(n_cells, n_chunks, chunk).transpose(1, 0, 2)

    out = jax.lax.map(lambda x: _fit_chunk(*x, n_starts_steps, n_steps, n_grid, regrid),
                      (split(u), split(s), split(w)))
    theta, mse, std_u, std_s, t, on, d = out
    per_gene = [a.reshape((n_chunks * chunk,) + a.shape[2:])[:n_genes]
                for a in (theta, mse, std_u, std_s)]
    per_cell = [a.transpose(1, 0, 2).reshape(n_cells, n_chunks * chunk)[:, :n_genes]
                for a in (t, on, d)]
    return (*per_gene, *per_cell)


_fit_all = jax.jit(_fit_all_impl, static_argnames=("n_starts_steps", "n_steps", "n_grid",
                                                   "regrid"),
                   compiler_options=COMPILER_OPTIONS)


class GeneFits(eqx.Module):
    """Per-gene dynamical-model fits (arrays over genes ``G`` and cells ``C``).

    Attributes:
        theta: ``(G, 5)`` log of ``alpha, beta, gamma, t_, scaling`` in model units
            (``beta`` is the decay rate of unspliced in model units; the splicing rate
            per observed unspliced count is ``beta / scaling``).
        mse: ``(G,)`` mean squared standardised distance of the fit cells.
        loglik: ``(G,)`` mean per-cell Gaussian log-likelihood (:func:`loglik_from_mse`).
        std_u: ``(G,)`` standard deviations used to standardise unspliced counts.
        std_s: ``(G,)`` same for spliced counts.
        t: ``(C, G)`` each cell's time on each gene's own clock.
        on: ``(C, G)`` whether the cell is on the induction branch.
        fitted: ``(G,)`` whether the gene had enough cells to fit (more than 2).
    """

    theta: Array
    mse: Array
    loglik: Array
    std_u: Array
    std_s: Array
    t: Array
    on: Array
    fitted: Array

    @property
    def alpha(self) -> Array:
        """Transcription rate (model units of unspliced per time)."""
        return jnp.exp(self.theta[:, 0])

    @property
    def beta(self) -> Array:
        """Splicing rate per observed unspliced count (scVelo's ``fit_beta``)."""
        return jnp.exp(self.theta[:, 1] - self.theta[:, 4])

    @property
    def gamma(self) -> Array:
        """Degradation rate of spliced mRNA."""
        return jnp.exp(self.theta[:, 2])

    @property
    def t_(self) -> Array:
        """Switch time (transcription off) on the gene's own clock."""
        return jnp.exp(self.theta[:, 3])

    @property
    def scaling(self) -> Array:
        """Observed unspliced counts per model unit."""
        return jnp.exp(self.theta[:, 4])


@functools.lru_cache(maxsize=16)
def _sharded_fit(devices: tuple, n_starts_steps: int, n_steps: int, n_grid: int,
                 regrid: int):
    """``_fit_all`` with the genes split over ``devices`` (each fits its share)."""
    mesh = Mesh(np.array(devices), ("g",))
    cg, g = P(None, "g"), P("g")

    def body(u, s, w):
        return _fit_all_impl(u, s, w, n_starts_steps, n_steps, n_grid, regrid)

    return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(cg, cg, cg),
                                 out_specs=(g, g, g, g, cg, cg, cg), check_vma=False),
                   compiler_options=COMPILER_OPTIONS)


def fit_genes(u: np.ndarray, s: np.ndarray, *, n_steps: int = 20, n_starts_steps: int = 6,
              n_grid: int = 16, regrid: int = 4, perc: float = 99.0,
              devices: int | None = None) -> GeneFits:
    """Fit the dynamical model to every gene of ``(C, G)`` unspliced/spliced arrays,
    the genes spread over ``devices`` (default: every local device)."""
    u = np.asarray(u, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    w = fit_weights(u, s, perc).astype(np.float64)
    n_genes = u.shape[1]
    devs = tuple(resolve_devices(devices, "velocity fit"))
    n_dev = min(len(devs), n_genes)
    if n_dev > 1:
        pad = -n_genes % n_dev
        if pad:  # pad with copies of the first gene, dropped below
            u, s, w = (np.concatenate([a, np.repeat(a[:, :1], pad, 1)], 1)
                       for a in (u, s, w))
        fn = _sharded_fit(devs[:n_dev], n_starts_steps, n_steps, n_grid, regrid)
        out = fn(u, s, w)
        out = tuple(a[:n_genes] for a in out[:4]) + tuple(a[:, :n_genes] for a in out[4:])
    else:
        out = _fit_all(jnp.asarray(u), jnp.asarray(s), jnp.asarray(w), n_starts_steps,
                       n_steps, n_grid, regrid)
    theta, mse, std_u, std_s, t, on, _ = out
    fitted = jnp.asarray(w[:, :n_genes].sum(0) > 2) & jnp.isfinite(mse)
    return GeneFits(theta=theta, mse=mse, loglik=loglik_from_mse(mse), std_u=std_u,
                    std_s=std_s, t=t, on=on, fitted=fitted)
