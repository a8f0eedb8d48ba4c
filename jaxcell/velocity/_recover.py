"""Fitting the dynamical model to an AnnData: per gene, then on one shared clock."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._data import VelocityError, check_layers, dense
from ._dynamical import GeneFits, fit_genes, fit_weights
from ._latent_time import align, consensus_time, fit_shared_time

#: default span of the shared clock (scVelo's ``t_max`` default)
DEFAULT_T_MAX = 20.0


def _genes(adata: Any, genes: Any) -> np.ndarray:
    """Boolean mask over ``adata.var_names`` from None (all), a var column name, a
    boolean mask or a list of names."""
    n = adata.n_vars
    if genes is None:
        return np.ones(n, bool)
    if isinstance(genes, str):
        if genes not in adata.var:
            raise VelocityError(f"genes={genes!r}: no such column in adata.var "
                                f"(columns: {list(adata.var.columns)}).")
        return np.asarray(adata.var[genes], bool)
    arr = np.asarray(genes)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise VelocityError(f"genes: a boolean mask must have shape ({n},); got "
                                f"{arr.shape}.")
        return arr
    names = list(map(str, arr.ravel()))
    index = {g: i for i, g in enumerate(map(str, adata.var_names))}
    missing = [g for g in names if g not in index]
    if missing:
        raise VelocityError(f"genes: {missing[:5]} not in adata.var_names.")
    mask = np.zeros(n, bool)
    mask[[index[g] for g in names]] = True
    return mask


def counts(adata: Any, use_raw: bool | None = None, genes: Any = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(u, s, gene_mask, use_raw)``: the unspliced and spliced arrays ``(C, G')`` the
    model is fitted to: the moments ``Mu``/``Ms`` when present (unless ``use_raw``),
    else the ``unspliced``/``spliced`` layers."""
    if use_raw is None:
        use_raw = not ("Mu" in adata.layers and "Ms" in adata.layers)
    layers = ("unspliced", "spliced") if use_raw else ("Mu", "Ms")
    check_layers(adata, layers)
    mask = _genes(adata, genes)
    if not mask.any():
        raise VelocityError("genes: no gene selected.")
    u = dense(adata.layers[layers[0]][:, mask])
    s = dense(adata.layers[layers[1]][:, mask])
    return u, s, mask, bool(use_raw)


def _put_var(adata, mask, name, values, fill=np.nan):
    col = np.full(adata.n_vars, fill, dtype=np.asarray(values).dtype
                  if np.asarray(values).dtype == bool else np.float64)
    col[mask] = np.asarray(values)
    adata.var[name] = col


def recover_dynamics(adata: Any, *, genes: Any = None, use_raw: bool | None = None,
                     t_max: float = DEFAULT_T_MAX, n_steps: int = 20,
                     devices: int | None = None) -> GeneFits:
    """Fit the dynamical model (transcription on/off, splicing, degradation) to every
    selected gene at once; results go into ``adata`` with scVelo's names.

    Each gene has its own clock; the clocks are then aligned to a consensus time in
    ``[0, t_max]`` by one factor per gene (``var["fit_alignment_scaling"]``), so rates
    are comparable between genes. Run :func:`latent_time` for one shared clock.

    Args:
        adata: AnnData with ``Mu``/``Ms`` (see :func:`moments`) or raw layers.
        genes: None (all), a boolean ``var`` column name (e.g. ``"highly_variable"``),
            a boolean mask or a list of gene names.
        use_raw: fit the raw ``unspliced``/``spliced`` layers instead of the moments
            (default: raw only when there are no moments).
        t_max: span of the consensus clock the rates are expressed in.
        n_steps: Levenberg-Marquardt steps after the best of three starts.
        devices: number of local devices to spread the genes over (default all).

    Returns:
        The :class:`GeneFits` (on each gene's own clock). ``adata.var`` gets
        ``fit_alpha, fit_beta, fit_gamma, fit_t_, fit_scaling`` (aligned clock;
        ``fit_beta`` is per observed unspliced count), ``fit_std_u, fit_std_s,
        fit_mse, fit_loglik, fit_likelihood, fit_alignment_scaling`` and
        ``velocity_genes``; ``adata.layers["fit_t"]`` each cell's time per gene;
        ``adata.uns["recover_dynamics"]`` the settings.
    """
    t_max = _check_t_max(t_max)
    u, s, mask, raw = counts(adata, use_raw, genes)
    fits = fit_genes(u, s, n_steps=int(n_steps), devices=devices)
    w = jnp.asarray(fit_weights(u, s), dtype=jnp.float64)
    t0 = consensus_time(fits.t, w, fits.fitted) * t_max
    theta_al = align(fits.theta, fits.t, w, t0)
    k = np.exp(np.asarray(theta_al[:, 3] - fits.theta[:, 3]))
    a, b, g, ts, c = (np.exp(np.asarray(theta_al[:, i])) for i in range(5))
    ok = np.asarray(fits.fitted)
    nan = np.where(ok, 1.0, np.nan)
    for name, v in (("fit_alpha", a), ("fit_beta", b / c), ("fit_gamma", g),
                    ("fit_t_", ts), ("fit_scaling", c), ("fit_std_u", fits.std_u),
                    ("fit_std_s", fits.std_s), ("fit_mse", fits.mse),
                    ("fit_loglik", fits.loglik),
                    ("fit_likelihood", np.exp(np.asarray(fits.loglik))),
                    ("fit_alignment_scaling", k)):
        _put_var(adata, mask, name, np.asarray(v) * nan)
    _put_var(adata, mask, "velocity_genes", ok, fill=False)
    fit_t = np.full((adata.n_obs, adata.n_vars), np.nan)
    fit_t[:, mask] = np.asarray(fits.t) * k[None, :] * nan[None, :]
    adata.layers["fit_t"] = fit_t
    adata.uns["recover_dynamics"] = {"tool": "jaxcell", "use_raw": raw,
                                     "t_max": t_max, "n_steps": int(n_steps)}
    return fits


def _check_t_max(t_max) -> float:
    t = float(t_max)
    if not np.isfinite(t) or t <= 0:
        raise VelocityError(f"t_max must be a positive finite time; got {t_max!r}.")
    return t


class SharedTimeFit(eqx.Module):
    """Kinetics of every gene on one shared clock and each cell's latent time.

    Attributes:
        theta: ``(G, 5)`` log of ``alpha, beta, gamma, t_, scaling`` (model units, as
            in :class:`GeneFits`) on the shared clock.
        t: ``(C,)`` each cell's time in ``[0, ~t_max]``.
        mse: ``(G,)`` per-gene mean squared standardised distance at the shared times.
        t_max: the span of the clock.
    """

    theta: Array
    t: Array
    mse: Array
    t_max: float = eqx.field(static=True)


def latent_time(adata: Any, *, t_max: float | None = None, n_rounds: int = 12,
                n_grid: int = 200) -> SharedTimeFit:
    """Fit one latent time per cell shared by all fitted genes, with each gene's
    kinetics on that clock (run :func:`recover_dynamics` first).

    The unit of time is fixed by ``t_max``: the 99th percentile of the cells' times
    is put at ``0.99 t_max`` (the data determine rates only up to a common unit).

    Args:
        adata: AnnData after :func:`recover_dynamics`.
        t_max: span of the clock (default: the one used by :func:`recover_dynamics`).
        n_rounds: rounds of (cell times, gene kinetics) updates.
        n_grid: grid points of the search over each cell's time.

    Returns:
        The :class:`SharedTimeFit`. ``adata.obs["latent_time"]`` gets ``t / t_max``
        (clipped to ``[0, 1]``); ``adata.var`` gets ``shared_alpha, shared_beta,
        shared_gamma, shared_t_, shared_scaling, shared_mse``.
    """
    if "fit_alpha" not in adata.var or "recover_dynamics" not in adata.uns:
        raise VelocityError("latent_time: run jaxcell.velocity.recover_dynamics(adata) "
                            "first (adata.var has no 'fit_alpha').")
    info = adata.uns["recover_dynamics"]
    t_max = _check_t_max(info.get("t_max", DEFAULT_T_MAX) if t_max is None else t_max)
    mask = np.asarray(adata.var["velocity_genes"], bool)
    if mask.sum() < 1:
        raise VelocityError("latent_time: no gene was fitted (velocity_genes is empty).")
    u, s, _, _ = counts(adata, bool(info.get("use_raw", False)), mask)
    var = adata.var[mask]
    theta = jnp.log(jnp.asarray(np.stack(
        [var.fit_alpha, var.fit_beta * var.fit_scaling, var.fit_gamma, var.fit_t_,
         var.fit_scaling], 1), dtype=jnp.float64))
    t_gene = jnp.asarray(np.asarray(adata.layers["fit_t"])[:, mask])
    w = jnp.asarray(fit_weights(u, s), dtype=jnp.float64)
    std_u = jnp.asarray(var.fit_std_u.values)
    std_s = jnp.asarray(var.fit_std_s.values)
    ok = jnp.ones(theta.shape[0], bool)
    theta, t, mse = fit_shared_time(theta, t_gene, u, s, w, std_u, std_s, ok, t_max,
                                    n_rounds=int(n_rounds), n_grid=int(n_grid))
    a, b, g, ts, c = (np.exp(np.asarray(theta[:, i])) for i in range(5))
    for name, v in (("shared_alpha", a), ("shared_beta", b / c), ("shared_gamma", g),
                    ("shared_t_", ts), ("shared_scaling", c), ("shared_mse", mse)):
        _put_var(adata, mask, name, np.asarray(v))
    adata.obs["latent_time"] = np.clip(np.asarray(t) / t_max, 0.0, 1.0)
    adata.uns["latent_time"] = {"tool": "jaxcell", "t_max": t_max}
    return SharedTimeFit(theta=theta, t=t, mse=mse, t_max=t_max)
