"""The steady-state (deterministic) model of RNA velocity (La Manno et al. 2018).

Per gene, the ratio ``gamma' = gamma / beta`` is the slope through the origin of the
unspliced against the spliced counts over the cells at the upper extreme (both counts,
each divided by its maximum, summed, at or above the ``perc``-th percentile): cells
assumed to be at the induced steady state. The velocity is ``u - gamma' s``.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ._data import VelocityError
from ._recover import _put_var, counts


def steady_state_ratio(u, s, perc: float = 95.0):
    """``(gamma', r2)`` for ``(C, G)`` arrays: the extreme-quantile slope and the
    coefficient of determination of ``u ~ gamma' s`` over all cells."""
    u, s = jnp.asarray(u), jnp.asarray(s)
    norm = (s / jnp.clip(jnp.max(s, 0), 1e-3, None)[None]
            + u / jnp.clip(jnp.max(u, 0), 1e-3, None)[None])
    top = norm >= jnp.percentile(norm, perc, axis=0)[None]
    xx = jnp.sum(jnp.where(top, s * s, 0.0), 0)
    xy = jnp.sum(jnp.where(top, s * u, 0.0), 0)
    gamma = jnp.where(xx > 0, xy / jnp.where(xx > 0, xx, 1.0), 0.0)
    res = u - gamma[None] * s
    tot = u - jnp.mean(u, 0)[None]
    den = jnp.sum(tot * tot, 0)
    r2 = jnp.where(den > 0, 1.0 - jnp.sum(res * res, 0) / jnp.where(den > 0, den, 1.0),
                   0.0)
    return gamma, r2


def steady_state(adata: Any, *, perc: float = 95.0, min_r2: float = 0.01,
                 min_ratio: float = 0.01, genes: Any = None,
                 use_raw: bool | None = None) -> Any:
    """Fit the steady-state model and write ``layers["velocity"]`` (``u - gamma' s``),
    ``var["velocity_gamma"]``, ``var["velocity_r2"]`` and ``var["velocity_genes"]``
    (``r2 > min_r2`` and ``gamma' > min_ratio``); returns ``adata``.

    Args:
        adata: AnnData with moments ``Mu``/``Ms`` (or raw layers).
        perc: percentile of the extreme cells used for the slope.
        min_r2: minimum coefficient of determination of a velocity gene.
        min_ratio: minimum ``gamma'`` of a velocity gene.
        genes: genes to fit (as in :func:`recover_dynamics`).
        use_raw: use the raw layers instead of the moments.
    """
    if not 0.0 < float(perc) < 100.0:
        raise VelocityError(f"perc must be in (0, 100); got {perc!r}.")
    u, s, mask, _ = counts(adata, use_raw, genes)
    gamma, r2 = steady_state_ratio(u, s, float(perc))
    gamma, r2 = np.asarray(gamma), np.asarray(r2)
    _put_var(adata, mask, "velocity_gamma", gamma)
    _put_var(adata, mask, "velocity_r2", r2)
    ok = (r2 > min_r2) & (gamma > min_ratio) & (u.max(0) > 0) & (s.max(0) > 0)
    _put_var(adata, mask, "velocity_genes", ok, fill=False)
    v = np.full((adata.n_obs, adata.n_vars), np.nan)
    v[:, mask] = u - gamma[None] * s
    adata.layers["velocity"] = v
    adata.uns["velocity_params"] = {"mode": "steady_state", "tool": "jaxcell",
                                    "perc": float(perc)}
    return adata
