"""Phase portraits and velocity arrows (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._data import VelocityError
from ._embedding import velocity_embedding
from ._kinetics import at_time
from ._velocity import kinetics


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("jaxcell.velocity plots need matplotlib: pip install "
                          "'jaxcell[plot]'.") from e
    return plt


def plot_phase(adata: Any, genes: Any, *, mode: str = "dynamical", ncols: int = 4,
               color: str | None = "latent_time") -> Any:
    """Phase portraits: unspliced against spliced per gene, with the fitted curve
    (induction and repression branches) and, when fitted, the steady-state line.

    Args:
        adata: AnnData after :func:`recover_dynamics`.
        genes: gene names to draw (fitted genes).
        mode: ``"dynamical"`` or ``"shared"`` kinetics.
        ncols: panels per row.
        color: an ``obs`` column to colour cells by (if present).

    Returns:
        The matplotlib figure.
    """
    plt = _pyplot()
    k = kinetics(adata, mode)
    names = np.asarray(adata.var_names)[k["mask"]]
    genes = [genes] if isinstance(genes, str) else list(genes)
    where = {g: i for i, g in enumerate(map(str, names))}
    missing = [g for g in genes if g not in where]
    if missing or not genes:
        raise VelocityError(f"plot_phase: {missing or 'no genes'} not among the fitted "
                            f"genes.")
    n = len(genes)
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows),
                             squeeze=False)
    c = np.asarray(adata.obs[color], float) if color and color in adata.obs else None
    for ax, g in zip(axes.ravel(), genes):
        i = where[g]
        ax.scatter(k["s"][:, i], k["u"][:, i], s=16, c=c, cmap="viridis", lw=0)
        a, b, gm, ts, sc = (k[x][i] for x in ("alpha", "beta", "gamma", "t_", "scaling"))
        tt = np.linspace(0.0, ts + 7.0 / min(b, gm), 400)
        ut, st, _ = at_time(tt, a, b, gm, ts)
        ax.plot(np.asarray(st), sc * np.asarray(ut), color="purple", lw=2)
        gcol = adata.var["velocity_gamma"] if "velocity_gamma" in adata.var else None
        if gcol is not None:
            gam = float(np.asarray(gcol)[np.flatnonzero(k["mask"])[i]])
            if np.isfinite(gam):
                xs = np.array([0.0, k["s"][:, i].max()])
                ax.plot(xs, gam * xs, ls="--", color="grey", lw=1)
        ax.set_title(g)
        ax.set_xlabel("spliced")
        ax.set_ylabel("unspliced")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_velocity_embedding(adata: Any, basis: str = "pca", *, color: str | None =
                            "latent_time", ax: Any = None, scale: float | None = None
                            ) -> Any:
    """Cells on an embedding with their velocity arrows (:func:`velocity_embedding`).

    Args:
        adata: AnnData with velocities, a neighbour graph and ``obsm["X_" + basis]``.
        basis: the embedding.
        color: an ``obs`` column to colour cells by (if present).
        ax: a matplotlib axes to draw into (default: a new figure).
        scale: matplotlib ``quiver`` scale (default: automatic).

    Returns:
        The matplotlib figure.
    """
    plt = _pyplot()
    key = "velocity_" + basis
    arrows = adata.obsm[key] if key in adata.obsm else velocity_embedding(adata, basis)
    emb = np.asarray(adata.obsm["X_" + basis], float)[:, :2]
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
    else:
        fig = ax.figure
    c = np.asarray(adata.obs[color], float) if color and color in adata.obs else None
    ax.scatter(emb[:, 0], emb[:, 1], s=18, c=c, cmap="viridis", lw=0, alpha=0.7)
    ax.quiver(emb[:, 0], emb[:, 1], arrows[:, 0], arrows[:, 1], angles="xy",
              scale_units="xy" if scale is None else None, scale=scale, width=0.003)
    ax.set_xlabel(f"{basis} 1")
    ax.set_ylabel(f"{basis} 2")
    return fig
