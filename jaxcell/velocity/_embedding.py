"""Velocities projected onto an embedding through transition probabilities.

For cell ``i`` and each neighbour ``j`` (the kNN graph in ``obsp``), the cosine of the
angle between the velocity ``v_i`` and the displacement ``x_j - x_i`` (centred, over the
velocity genes) gives a transition probability ``p_ij ~ exp(cos_ij / width)``. The
arrow of cell ``i`` in the embedding is ``sum_j p_ij d_ij - mean_j d_ij`` with ``d_ij``
the unit vector from ``e_i`` to ``e_j`` (Bergen et al. 2020; La Manno et al. 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._data import VelocityError, dense


def neighbour_indices(adata: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, mask)`` ``(C, k)``: each cell's neighbours from ``obsp["connectivities"]``
    (or ``obsp["distances"]``), padded, without the cell itself."""
    for key in ("connectivities", "distances"):
        if key in adata.obsp:
            graph = adata.obsp[key]
            break
    else:
        raise VelocityError("no neighbour graph: adata.obsp has no 'connectivities' or "
                            "'distances' (run jaxcell.velocity.neighbors(adata)).")
    if not hasattr(graph, "tocsr"):
        import scipy.sparse as sp
        graph = sp.csr_matrix(np.asarray(graph))
    graph = graph.tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    counts = np.diff(graph.indptr)
    k = max(int(counts.max()), 1)
    idx = np.zeros((adata.n_obs, k), dtype=np.int64)
    mask = np.zeros((adata.n_obs, k), dtype=bool)
    rows = np.repeat(np.arange(adata.n_obs), counts)
    slots = np.arange(graph.indices.size) - graph.indptr[rows]
    idx[rows, slots] = graph.indices
    mask[rows, slots] = True
    return idx, mask


def velocity_embedding(adata: Any, basis: str = "pca", *, vkey: str = "velocity",
                       width: float = 0.1) -> np.ndarray:
    """Arrows of the velocities on ``obsm["X_" + basis]`` (first two coordinates),
    written to ``obsm["velocity_" + basis]`` and returned.

    Args:
        adata: AnnData with ``layers[vkey]``, a neighbour graph and the embedding.
        basis: the embedding (``obsm["X_" + basis]``), e.g. ``"pca"`` or ``"umap"``.
        vkey: the velocity layer.
        width: the softness of the transition probabilities (scVelo: 0.1).
    """
    key = "X_" + basis
    if key not in adata.obsm:
        raise VelocityError(f"basis={basis!r}: adata.obsm has no {key!r} (obsm: "
                            f"{list(adata.obsm.keys())}).")
    if vkey not in adata.layers:
        raise VelocityError(f"vkey={vkey!r}: no such layer; run "
                            f"jaxcell.velocity.velocity(adata) first.")
    if not np.isfinite(width) or width <= 0:
        raise VelocityError(f"width must be > 0; got {width!r}.")
    v = dense(adata.layers[vkey])
    genes = np.all(np.isfinite(v), axis=0)
    if not genes.any():
        raise VelocityError(f"layer {vkey!r} has no gene with finite velocities.")
    x_layer = "Ms" if "Ms" in adata.layers else "spliced"
    x = dense(adata.layers[x_layer])[:, genes]
    v = v[:, genes]
    emb = np.asarray(adata.obsm[key], float)[:, :2]
    idx, mask = neighbour_indices(adata)
    dx = x[idx] - x[:, None, :]                                   # (C, k, G)
    dx = dx - dx.mean(-1, keepdims=True)
    vc = v - v.mean(-1, keepdims=True)
    num = np.einsum("ckg,cg->ck", dx, vc)
    den = np.linalg.norm(dx, axis=-1) * np.linalg.norm(vc, axis=-1)[:, None]
    cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    logits = np.where(mask, cos / width, -np.inf)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p = p / p.sum(1, keepdims=True)
    de = emb[idx] - emb[:, None, :]
    norm = np.linalg.norm(de, axis=-1, keepdims=True)
    de = np.where(norm > 0, de / np.where(norm > 0, norm, 1.0), 0.0)
    uniform = mask / np.maximum(mask.sum(1, keepdims=True), 1)
    arrows = np.einsum("ck,ckd->cd", p - uniform, de)
    adata.obsm["velocity_" + basis] = arrows
    return arrows
