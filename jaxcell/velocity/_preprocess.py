"""RNA-velocity preprocessing on AnnData: gene filtering, normalisation, highly variable
genes, PCA, an exact k-nearest-neighbour graph and neighbourhood moments.

The conventions follow scVelo (``pp.filter_and_normalize``, ``pp.moments``) and scanpy
(``pp.highly_variable_genes(flavor="seurat")``, ``pp.pca``, ``pp.neighbors``) so that
results can be compared with theirs; neither package is needed at run time.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import sparse

from ._data import VelocityError, check_layers, dense

_TOL = 1e-5  # UMAP's tolerance on the smoothed neighbour count
_MIN_SCALE = 1e-3  # UMAP's lower bound on sigma, relative to the mean kNN distance
_BLOCK_ELEMENTS = 2**24  # entries of one (rows x n_obs) distance block
_MARGIN = 8  # extra candidates kept by the float32 preselection of neighbours


# --------------------------------------------------------------------------- helpers

def _row_sums(x: Any) -> np.ndarray:
    return np.asarray(x.sum(axis=1), dtype=np.float64).ravel()


def _scale_rows(x: Any, factors: np.ndarray) -> Any:
    """``x`` with row ``i`` multiplied by ``factors[i]`` (float64; CSR stays sparse)."""
    if sparse.issparse(x):
        return sparse.csr_matrix(sparse.diags(factors) @ sparse.csr_matrix(x, dtype=np.float64))
    return dense(x) * factors.reshape(-1, 1)


def _check_counts(adata: Any, names: tuple[str, ...]) -> None:
    for name in names:
        x = adata.X if name == "X" else adata.layers[name]
        data = np.asarray(x.data if sparse.issparse(x) else x)
        if data.size and not np.all(np.mod(data, 1) == 0):
            raise VelocityError(
                f"{'adata.X' if name == 'X' else f'layer {name!r}'} holds non-integer "
                "values; filter_and_normalize expects raw counts (not normalised or "
                "log-transformed data).")


def _check_n_neighbors(adata: Any, n_neighbors: int) -> None:
    if not 2 <= int(n_neighbors) < adata.n_obs:
        raise VelocityError(
            f"n_neighbors={n_neighbors}; expected 2 <= n_neighbors < n_obs = {adata.n_obs} "
            "(the cell itself counts as one of its neighbours).")


# ------------------------------------------------------------- filter and normalize

def _set_initial_sizes(adata: Any) -> None:
    """Counts per cell before any filtering (kept if already present, as scVelo does)."""
    for name in ("unspliced", "spliced"):
        key = f"initial_size_{name}"
        if key not in adata.obs:
            adata.obs[key] = _row_sums(adata.layers[name])
    if "initial_size" not in adata.obs:
        x = adata.layers["spliced"] if adata.X is None else adata.X
        adata.obs["initial_size"] = _row_sums(x)


def _shared_counts(adata: Any) -> np.ndarray:
    """Per gene: spliced + unspliced counts summed over cells where both are > 0."""
    s, u = adata.layers["spliced"], adata.layers["unspliced"]
    if sparse.issparse(s) or sparse.issparse(u):
        s, u = sparse.csr_matrix(s, dtype=np.float64), sparse.csr_matrix(u, dtype=np.float64)
        both = (s > 0).multiply(u > 0)
        return np.asarray((both.multiply(s) + both.multiply(u)).sum(axis=0)).ravel()
    s, u = dense(s), dense(u)
    return np.sum(np.where((s > 0) & (u > 0), s + u, 0.0), axis=0)


def _normalize_factors(size: np.ndarray) -> np.ndarray:
    """Row factors that bring each cell to the median of ``size`` (scVelo's rule)."""
    target = np.median(size)
    target = target + (target == 0)
    scaled = size / target
    scaled = scaled + (scaled == 0)
    return 1.0 / scaled


def _dispersion_table(x: Any, n_bins: int = 20) -> pd.DataFrame:
    """Seurat-flavour log mean, log dispersion and per-bin normalised dispersion."""
    n = x.shape[0]
    if sparse.issparse(x):
        mean = np.asarray(x.mean(axis=0)).ravel()
        mean_sq = np.asarray(x.multiply(x).mean(axis=0)).ravel()
    else:
        mean, mean_sq = x.mean(axis=0), (x * x).mean(axis=0)
    var = (mean_sq - mean**2) * (n / max(n - 1, 1))
    mean = np.where(mean == 0, 1e-12, mean)
    disp = var / mean
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.log(np.where(disp == 0, np.nan, disp))
    mean = np.log1p(mean)
    codes = np.asarray(pd.cut(mean, bins=n_bins).codes)
    ok = ~np.isnan(disp)
    count = np.bincount(codes[ok], minlength=n_bins).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.bincount(codes[ok], disp[ok], minlength=n_bins) / count
        dev = np.sqrt(np.bincount(codes[ok], (disp[ok] - avg[codes[ok]]) ** 2,
                                  minlength=n_bins) / (count - 1))
    lonely = ~(count >= 2)  # std undefined: normalised dispersion set to 1 as in Seurat
    dev, avg = np.where(lonely, avg, dev), np.where(lonely, 0.0, avg)
    norm = (disp - avg[codes]) / dev[codes]
    return pd.DataFrame({"means": mean, "dispersions": disp, "dispersions_norm": norm})


def _top_genes(norm: np.ndarray, n_top_genes: int) -> np.ndarray:
    """Genes whose normalised dispersion reaches the ``n_top_genes``-th highest."""
    finite = np.sort(norm[~np.isnan(norm)])[::-1]
    if finite.size == 0:
        return np.ones(norm.shape, dtype=bool)
    cut = finite[min(n_top_genes, finite.size) - 1]
    return np.nan_to_num(norm, nan=-np.inf) >= cut


def _normalize(adata: Any) -> None:
    """Scale ``X``, ``spliced`` and ``unspliced`` per cell by their initial sizes."""
    for name, key in (("X", "initial_size"), ("spliced", "initial_size_spliced"),
                      ("unspliced", "initial_size_unspliced")):
        factors = _normalize_factors(np.asarray(adata.obs[key], dtype=np.float64))
        if name == "X":
            adata.X = _scale_rows(adata.X, factors)
        else:
            adata.layers[name] = _scale_rows(adata.layers[name], factors)
    adata.obs["n_counts"] = _row_sums(adata.X)


def _select_variable_genes(adata: Any, n_top_genes: int) -> None:
    """Annotate the dispersion statistics and subset to the highly variable genes."""
    table = _dispersion_table(adata.X)
    for column in table:
        adata.var[column] = table[column].to_numpy()
    adata.var["highly_variable"] = _top_genes(table["dispersions_norm"].to_numpy(),
                                              n_top_genes)
    adata._inplace_subset_var(adata.var["highly_variable"].to_numpy())


def filter_and_normalize(adata: Any, *, min_shared_counts: int = 20, n_top_genes: int = 2000,
                         log: bool = True) -> Any:
    """Filter genes, normalise counts per cell, keep highly variable genes, log-transform.

    The steps of scVelo's ``pp.filter_and_normalize(adata, min_shared_counts=...,
    n_top_genes=..., log=...)`` (the scVelo 0.2 recipe): record each cell's initial
    size, keep genes whose shared counts (spliced + unspliced counts summed over the
    cells where both are positive) reach ``min_shared_counts``, scale ``X``,
    ``spliced`` and ``unspliced`` per cell to the median of their initial sizes, select
    highly variable genes with Seurat's binned normalised dispersion (20 bins of log
    mean, as scanpy's ``flavor="seurat"``), subset to them and take ``log1p`` of ``X``.

    Writes ``obs["initial_size_spliced"]``, ``obs["initial_size_unspliced"]``,
    ``obs["initial_size"]`` (only if absent), ``obs["n_counts"]``, ``var["means"]``,
    ``var["dispersions"]``, ``var["dispersions_norm"]``, ``var["highly_variable"]`` and
    ``uns["log1p"]``; layers and ``X`` become float64 (CSR input stays CSR). If
    ``adata.X`` is ``None`` it is taken from ``spliced``.

    Args:
        adata: AnnData with raw (integer) counts in ``layers["spliced"]`` and
            ``layers["unspliced"]``.
        min_shared_counts: minimum shared count a gene needs to be kept.
        n_top_genes: number of highly variable genes to keep (ties at the cut-off are
            all kept; all genes are kept if fewer remain).
        log: whether to replace ``X`` by ``log1p(X)`` at the end.

    Returns:
        ``adata``, modified in place.

    Raises:
        VelocityError: a layer is missing or not raw counts, ``n_top_genes`` < 1, or no
            gene reaches ``min_shared_counts``.
    """
    check_layers(adata)
    if int(n_top_genes) < 1:
        raise VelocityError(f"n_top_genes={n_top_genes}; expected at least 1.")
    _check_counts(adata, ("spliced", "unspliced") + (() if adata.X is None else ("X",)))
    shared = _shared_counts(adata)
    keep = shared >= min_shared_counts
    if not keep.any():
        best = int(np.argmax(shared))
        raise VelocityError(
            f"no gene reaches min_shared_counts={min_shared_counts}; the best gene "
            f"({adata.var_names[best]!r}) has {shared[best]:g} shared counts.")
    if adata.X is None:
        adata.X = adata.layers["spliced"].copy()
    _set_initial_sizes(adata)
    adata._inplace_subset_var(keep)
    _normalize(adata)
    _select_variable_genes(adata, int(n_top_genes))
    if log:
        adata.X = adata.X.log1p() if sparse.issparse(adata.X) else np.log1p(adata.X)
        adata.uns["log1p"] = {"base": None}
    return adata


# ----------------------------------------------------------------------------- PCA

def _eig_components(x: Any, mean: np.ndarray, n_comps: int) -> tuple[np.ndarray, np.ndarray]:
    """Leading eigenvalues of the centred scatter matrix and the gene loadings, from
    the smaller of the genes x genes and cells x cells Gram matrices."""
    n, g = x.shape
    if g <= n:
        gram = (x.T @ x).toarray() if sparse.issparse(x) else dense(x).T @ dense(x)
        evals, evecs = np.linalg.eigh(np.asarray(gram) - n * np.outer(mean, mean))
        return evals[::-1][:n_comps], evecs[:, ::-1][:, :n_comps]
    xc = dense(x) - mean.reshape(1, -1)
    evals, evecs = np.linalg.eigh(xc @ xc.T)
    evals, u = evals[::-1][:n_comps], evecs[:, ::-1][:, :n_comps]
    return evals, xc.T @ u / np.sqrt(np.maximum(evals, 1e-300)).reshape(1, -1)


def pca(adata: Any, n_comps: int = 30) -> Any:
    """Principal components of ``X`` (genes centred), as scanpy's ``pp.pca`` up to sign.

    The eigen-decomposition of the smaller Gram matrix (genes x genes or cells x cells)
    of the centred data gives the scores without densifying a sparse ``X``. Each
    component's sign makes its largest-magnitude gene loading positive.

    Args:
        adata: AnnData whose ``X`` holds the (normalised, log) expression.
        n_comps: number of components, at most ``min(n_obs - 1, n_vars)``.

    Returns:
        ``adata`` with ``obsm["X_pca"]`` (n_obs, n_comps), ``varm["PCs"]`` (n_vars,
        n_comps) and ``uns["pca"]`` (``variance``, ``variance_ratio``).

    Raises:
        VelocityError: ``adata.X`` is missing or ``n_comps`` is out of range.
    """
    if getattr(adata, "X", None) is None:
        raise VelocityError("pca: adata.X is missing; expected an (n_obs, n_vars) matrix.")
    n, g = adata.shape
    if not 1 <= int(n_comps) <= min(n - 1, g):
        raise VelocityError(f"pca: n_comps={n_comps}; expected 1 <= n_comps <= "
                            f"min(n_obs - 1, n_vars) = {min(n - 1, g)}.")
    x = adata.X
    mean = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    evals, loadings = _eig_components(x, mean, int(n_comps))
    signs = np.sign(loadings[np.argmax(np.abs(loadings), axis=0), np.arange(loadings.shape[1])])
    loadings = loadings * np.where(signs == 0, 1.0, signs).reshape(1, -1)
    adata.obsm["X_pca"] = np.asarray(x @ loadings) - (mean @ loadings).reshape(1, -1)
    adata.varm["PCs"] = loadings
    squares = x.multiply(x).sum(axis=0) if sparse.issparse(x) else np.sum(dense(x) ** 2, axis=0)
    total = float(np.sum(np.asarray(squares, dtype=np.float64).ravel() - n * mean**2))
    variance = np.maximum(evals, 0.0) / (n - 1)
    adata.uns["pca"] = {"variance": variance, "variance_ratio": variance * (n - 1) / total}
    return adata


# ----------------------------------------------------------------------- neighbours

def _smallest(values: jax.Array, k: int) -> jax.Array:
    """Column indices of the ``k`` smallest entries per row. ``top_k`` runs in float32
    (XLA's CPU kernel is ~20x faster than in float64) on ``k + _MARGIN`` entries, and
    the final choice among those is made in float64."""
    wide = min(values.shape[1], k + _MARGIN)
    cand = jax.lax.top_k(-values.astype(jnp.float32), wide)[1]
    if wide == k:
        return cand
    pick = jax.lax.top_k(-jnp.take_along_axis(values, cand, axis=1), k)[1]
    return jnp.take_along_axis(cand, pick, axis=1)


@partial(jax.jit, static_argnames=("k", "chunk"))
def _knn_block(x: jax.Array, sq: jax.Array, rows: jax.Array, k: int, chunk: int):
    """The ``k`` nearest cells (self first) to a block of rows and exact distances.

    Squared distances ``|a|^2 + |b|^2 - 2 a.b`` to all cells form one ``(rows, n_obs)``
    block, split into chunks of ``chunk`` columns. The ``k`` nearest cells lie in the
    ``k`` chunks with the smallest minima, so ``top_k`` runs on the chunk minima and
    then on those chunks only (much cheaper than on whole rows). The chosen distances
    are recomputed from coordinate differences.
    """
    b = rows.shape[0]
    xb = x[rows]
    d2 = sq.reshape(1, -1) + sq[rows].reshape(-1, 1) - 2.0 * (xb @ x.T)  # padding: +inf
    cols = jnp.arange(x.shape[0]).reshape(1, -1)
    d2 = jnp.where(cols == rows.reshape(-1, 1), -jnp.inf, d2).reshape(b, -1, chunk)
    best = _smallest(jnp.min(d2, axis=2), min(d2.shape[1], k + _MARGIN))
    cand = d2[jnp.arange(b).reshape(-1, 1), best].reshape(b, -1)
    pos = _smallest(cand, k)
    idx = jnp.take_along_axis(best, pos // chunk, axis=1) * chunk + pos % chunk
    diff = x[idx] - xb.reshape(b, 1, xb.shape[1])
    return idx, jnp.sqrt(jnp.sum(diff * diff, axis=2))


def _knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours (self first) and their Euclidean distances."""
    n = x.shape[0]
    block = max(1, min(n, _BLOCK_ELEMENTS // n))
    chunk = max(1, int(np.sqrt(n / k)))
    xj = jnp.asarray(np.pad(x, ((0, -n % chunk), (0, 0))), dtype=jnp.float64)
    sq = jnp.where(jnp.arange(xj.shape[0]) < n, jnp.sum(xj * xj, axis=1), jnp.inf)
    idx, dist = np.empty((n, k), dtype=np.int64), np.empty((n, k))
    for start in range(0, n, block):
        rows = np.arange(start, start + block) % n  # last block wraps; extra rows dropped
        stop = min(start + block, n)
        i, d = _knn_block(xj, sq, jnp.asarray(rows), k, chunk)
        idx[start:stop] = np.asarray(i)[: stop - start]
        dist[start:stop] = np.asarray(d)[: stop - start]
    order = np.argsort(dist[:, 1:], axis=1, kind="stable") + 1
    order = np.concatenate([np.zeros((n, 1), dtype=np.int64), order], axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _smooth_knn(dist: np.ndarray, k: int, n_iter: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's per-cell ``sigma`` (binary search) and ``rho`` (nearest nonzero distance)."""
    dist = dist.astype(np.float32)
    positive = np.where(dist > 0, dist, np.inf)
    rho = np.min(positive, axis=1)
    rho = np.where(np.isfinite(rho), rho, 0.0).astype(np.float32)
    target = np.log2(k)
    lo, hi, mid = np.zeros(len(dist)), np.full(len(dist), np.inf), np.ones(len(dist))
    active = np.ones(len(dist), dtype=bool)
    shifted = (dist[:, 1:] - rho.reshape(-1, 1)).astype(np.float64)
    for _ in range(n_iter):
        with np.errstate(over="ignore"):
            terms = np.where(shifted > 0, np.exp(-shifted / mid.reshape(-1, 1)), 1.0)
        psum = terms.sum(axis=1)
        active &= ~(np.abs(psum - target) < _TOL)
        down, up = active & (psum > target), active & ~(psum > target)
        hi = np.where(down, mid, hi)
        lo = np.where(up, mid, lo)
        mid = np.where(down | (up & np.isfinite(hi)), (lo + hi) / 2.0,
                       np.where(up, mid * 2.0, mid))
    sigma = mid.astype(np.float32)
    floor = _MIN_SCALE * np.where(rho > 0, dist.mean(axis=1), dist.mean())
    return np.where(sigma < floor, floor, sigma).astype(np.float32), rho


def _fuzzy_union(idx: np.ndarray, dist: np.ndarray, k: int) -> sparse.csr_matrix:
    """UMAP fuzzy simplicial set weights, symmetrised as ``A + A^T - A o A^T``."""
    n = idx.shape[0]
    sigma, rho = _smooth_knn(dist, k)
    d = dist.astype(np.float32)
    gap = d - rho.reshape(-1, 1)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        w = np.where((gap <= 0) | (sigma.reshape(-1, 1) == 0), 1.0,
                     np.exp(-(np.maximum(gap, 0) / sigma.reshape(-1, 1))))
    w = np.where(idx == np.arange(n).reshape(-1, 1), 0.0, w).astype(np.float32)
    a = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    a.eliminate_zeros()
    union = a + a.T - a.multiply(a.T)
    union = sparse.csr_matrix(union, dtype=np.float64)
    union.eliminate_zeros()
    return union


def neighbors(adata: Any, n_neighbors: int = 30, n_pcs: int = 30) -> Any:
    """Exact k-nearest-neighbour graph on principal components, as scanpy's
    ``pp.neighbors(adata, n_neighbors=..., n_pcs=..., use_rep="X_pca")``.

    Distances are Euclidean on ``obsm["X_pca"][:, :n_pcs]`` (PCA is computed first if
    missing); each cell counts itself as one of its ``n_neighbors``. Candidates come
    from blocks of rows in JAX (``jax.lax.top_k``, never an n x n matrix at once);
    the chosen distances are then recomputed exactly. Connectivities are UMAP's fuzzy
    simplicial set weights.

    Args:
        adata: AnnData with ``obsm["X_pca"]`` or an ``X`` to compute it from.
        n_neighbors: neighbours per cell including the cell itself (2 <= n < n_obs).
        n_pcs: number of leading principal components to use.

    Returns:
        ``adata`` with ``obsp["distances"]`` (CSR, ``n_neighbors - 1`` per row, self
        excluded), ``obsp["connectivities"]`` (CSR, symmetric) and ``uns["neighbors"]``.

    Raises:
        VelocityError: ``n_neighbors`` or ``n_pcs`` out of range.
    """
    _check_n_neighbors(adata, n_neighbors)
    k = int(n_neighbors)
    if "X_pca" not in adata.obsm:
        limit = min(adata.n_obs - 1, adata.n_vars)
        if not 1 <= int(n_pcs) <= limit:
            raise VelocityError(f"n_pcs={n_pcs}; obsm['X_pca'] is missing and a PCA of X "
                                f"has at most {limit} components (expected 1 <= n_pcs <= "
                                f"{limit}).")
        pca(adata, n_comps=int(n_pcs))
    rep = np.asarray(adata.obsm["X_pca"], dtype=np.float64)
    if not 1 <= int(n_pcs) <= rep.shape[1]:
        raise VelocityError(f"n_pcs={n_pcs}; obsm['X_pca'] has {rep.shape[1]} components "
                            f"(expected 1 <= n_pcs <= {rep.shape[1]}).")
    idx, dist = _knn(rep[:, : int(n_pcs)], k)
    n = adata.n_obs
    indptr = np.arange(0, n * (k - 1) + 1, k - 1)
    adata.obsp["distances"] = sparse.csr_matrix(
        (dist[:, 1:].ravel(), idx[:, 1:].ravel(), indptr), shape=(n, n))
    adata.obsp["connectivities"] = _fuzzy_union(idx, dist, k)
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities", "distances_key": "distances",
        "params": {"n_neighbors": k, "method": "umap", "random_state": 0,
                   "metric": "euclidean", "use_rep": "X_pca", "n_pcs": int(n_pcs)}}
    return adata


# -------------------------------------------------------------------------- moments

def _graph(adata: Any, key: str) -> Any:
    info = adata.uns["neighbors"]
    name = info.get(f"{key}_key", key)
    if name in adata.obsp:
        return adata.obsp[name]
    if key in info:
        return info[key]
    raise VelocityError(f"uns['neighbors'] names {key} {name!r}, but obsp has no such "
                        f"matrix (obsp: {sorted(adata.obsp.keys())}).")


def _trim(c: sparse.csr_matrix, n_neighbors: int) -> sparse.csr_matrix:
    """Keep each row's ``n_neighbors`` strongest connections (scVelo's rule)."""
    c = sparse.csr_matrix(c, dtype=np.float64, copy=True)
    c.data[c.data < 0] = 0
    c.eliminate_zeros()
    counts = np.diff(c.indptr)
    keep_n = min(int(counts.min()), n_neighbors)
    rows = np.repeat(np.arange(c.shape[0]), counts)
    pos = np.arange(c.data.size)
    order = np.lexsort((-pos, -c.data, rows))
    rank = np.empty_like(pos)
    rank[order] = pos - c.indptr[rows[order]]
    c.data[rank >= keep_n] = 0
    c.eliminate_zeros()
    return c


def _averaging(adata: Any, n_neighbors: int | None = None) -> sparse.csr_matrix:
    """Binarised graph plus self, row-normalised (scVelo's ``get_connectivities``)."""
    c = sparse.csr_matrix(_graph(adata, "connectivities"))
    stored = adata.uns["neighbors"].get("params", {}).get("n_neighbors", 0)
    if n_neighbors is not None and n_neighbors < stored:
        c = _trim(c, n_neighbors)
    b = sparse.csr_matrix(c > 0, dtype=np.float64)
    b = sparse.csr_matrix(b - sparse.diags(b.diagonal()) + sparse.identity(b.shape[0]))
    b.eliminate_zeros()
    return sparse.csr_matrix(sparse.diags(1.0 / _row_sums(b)) @ b)


def moments(adata: Any, n_neighbors: int = 30) -> Any:
    """First moments of spliced and unspliced abundances over each cell's neighbourhood,
    as scVelo's ``pp.moments``.

    Uses the graph in ``uns["neighbors"]`` / ``obsp["connectivities"]`` if present
    (from :func:`neighbors` or scanpy; trimmed to each row's ``n_neighbors`` strongest
    connections if it was built with more), otherwise builds it with
    :func:`neighbors`. The graph is binarised, the cell itself added, rows normalised
    to sum 1, and the layers averaged with it. The layers are used as they are (run
    :func:`filter_and_normalize` first for raw counts).

    Args:
        adata: AnnData with ``spliced`` and ``unspliced`` layers.
        n_neighbors: neighbours per cell (including itself) to average over.

    Returns:
        ``adata`` with dense float64 ``layers["Ms"]`` and ``layers["Mu"]``.

    Raises:
        VelocityError: a layer is missing or ``n_neighbors`` is out of range.
    """
    check_layers(adata)
    _check_n_neighbors(adata, n_neighbors)
    if "neighbors" not in adata.uns:
        neighbors(adata, n_neighbors=n_neighbors,
                  n_pcs=min(30, adata.obsm["X_pca"].shape[1]) if "X_pca" in adata.obsm
                  else min(30, adata.n_obs - 1, adata.n_vars))
    w = _averaging(adata, int(n_neighbors))
    adata.layers["Ms"] = np.asarray(w @ dense(adata.layers["spliced"]))
    adata.layers["Mu"] = np.asarray(w @ dense(adata.layers["unspliced"]))
    return adata


def second_moments(adata: Any) -> tuple[np.ndarray, np.ndarray]:
    """Second moments over each cell's neighbourhood, as scVelo's
    ``second_order_moments``: the averages of ``s * s`` and ``s * u``.

    The whole stored graph is used (binarised, self added, rows normalised), without
    trimming to a number of neighbours.

    Args:
        adata: AnnData with ``spliced`` and ``unspliced`` layers and a neighbour graph
            (``uns["neighbors"]``, e.g. from :func:`moments` or :func:`neighbors`).

    Returns:
        ``(Mss, Mus)``, dense float64 arrays of shape (n_obs, n_vars).

    Raises:
        VelocityError: a layer or the neighbour graph is missing.
    """
    check_layers(adata)
    if "neighbors" not in adata.uns:
        raise VelocityError("second_moments: uns['neighbors'] is missing; run neighbors() "
                            "or moments() first.")
    w = _averaging(adata)
    s, u = dense(adata.layers["spliced"]), dense(adata.layers["unspliced"])
    return np.asarray(w @ (s * s)), np.asarray(w @ (s * u))
