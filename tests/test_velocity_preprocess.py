"""RNA-velocity preprocessing against scVelo and scanpy: gene filtering and normalisation,
highly variable genes, PCA, the exact kNN graph with UMAP weights, first and second
moments, and the error messages for bad input."""

import os
import warnings

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from jaxcell.velocity import _preprocess as pp
from jaxcell.velocity._data import VelocityError

DATA = os.path.join(os.path.dirname(__file__), "data", "velocity")
RAW = os.path.join(DATA, "pancreas_50obs_3000genes.h5ad")
PRE = os.path.join(DATA, "dentategyrus_100obs_preprocessed.h5ad")


def _quiet(fn, *args, **kwargs):
    """Call scanpy/scVelo with their deprecation and future warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _arr(x):
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


@pytest.fixture(scope="module")
def scv():
    return pytest.importorskip("scvelo")


@pytest.fixture(scope="module")
def sc():
    return pytest.importorskip("scanpy")


@pytest.fixture(scope="module")
def normalized(scv, sc):
    """(ours, reference) after filter_and_normalize on the raw pancreas subset.

    scVelo 0.3 dropped ``n_top_genes``/``log`` from ``filter_and_normalize``; the
    reference is its filtering + normalisation, then scanpy's Seurat-flavour HVG
    selection (which undoes the log internally) and log1p, i.e. the scVelo 0.2 recipe.
    X is cast to float64 before log1p so that scanpy's expm1 round trip is exact."""
    ours = pp.filter_and_normalize(ad.read_h5ad(RAW), min_shared_counts=10, n_top_genes=500)
    ref = ad.read_h5ad(RAW)
    _quiet(scv.pp.filter_and_normalize, ref, min_shared_counts=10)
    ref.X = ref.X.astype(np.float64)
    _quiet(sc.pp.log1p, ref)
    _quiet(sc.pp.highly_variable_genes, ref, flavor="seurat", n_top_genes=500, subset=True)
    return ours, ref


def test_filter_and_normalize_matches_scvelo(normalized):
    ours, ref = normalized
    assert list(ours.var_names) == list(ref.var_names)
    assert ours.n_vars == 500
    for name in ("spliced", "unspliced"):
        np.testing.assert_allclose(_arr(ours.layers[name]), _arr(ref.layers[name]), rtol=1e-6)
    np.testing.assert_allclose(_arr(ours.X), _arr(ref.X), rtol=1e-6, atol=1e-7)
    for key in ("initial_size", "initial_size_spliced", "initial_size_unspliced", "n_counts"):
        np.testing.assert_allclose(ours.obs[key], ref.obs[key], rtol=1e-6)
    for key in ("means", "dispersions", "dispersions_norm"):
        np.testing.assert_allclose(ours.var[key], ref.var[key], rtol=1e-5, atol=1e-6)
    assert ours.var["highly_variable"].all()


def test_filter_and_normalize_dense_equals_sparse(normalized):
    raw = ad.read_h5ad(RAW)
    raw.X = raw.X.toarray()
    for name in ("spliced", "unspliced"):
        raw.layers[name] = raw.layers[name].toarray()
    out = pp.filter_and_normalize(raw, min_shared_counts=10, n_top_genes=500)
    ours = normalized[0]
    assert list(out.var_names) == list(ours.var_names)
    np.testing.assert_allclose(out.X, _arr(ours.X), rtol=1e-12)
    np.testing.assert_allclose(out.layers["unspliced"], _arr(ours.layers["unspliced"]),
                               rtol=1e-12)


def test_pca_matches_scanpy_up_to_sign(normalized, sc):
    ours, ref = normalized[0].copy(), normalized[1].copy()
    pp.pca(ours, n_comps=20)
    _quiet(sc.pp.pca, ref, n_comps=20)
    a, b = ours.obsm["X_pca"], np.asarray(ref.obsm["X_pca"], dtype=np.float64)
    signs = np.sign(np.sum(a * b, axis=0)).reshape(1, -1)
    np.testing.assert_allclose(a * signs, b, atol=1e-5 * np.abs(b).max())
    np.testing.assert_allclose(ours.uns["pca"]["variance_ratio"],
                               ref.uns["pca"]["variance_ratio"], rtol=1e-4)


@pytest.mark.parametrize("shape", [(40, 12), (12, 40)], ids=["cells>genes", "genes>cells"])
def test_pca_equals_svd_of_centred_data(shape):
    x = np.random.default_rng(2).gamma(2.0, size=shape)
    adata = pp.pca(ad.AnnData(x), n_comps=5)
    xc = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    scores = u[:, :5] * s[:5].reshape(1, -1)
    signs = np.sign(np.sum(scores * adata.obsm["X_pca"], axis=0)).reshape(1, -1)
    np.testing.assert_allclose(adata.obsm["X_pca"], scores * signs, atol=1e-10)
    np.testing.assert_allclose(adata.uns["pca"]["variance_ratio"], s[:5] ** 2 / np.sum(s**2),
                               rtol=1e-10)
    load = adata.varm["PCs"]
    assert (load[np.argmax(np.abs(load), axis=0), np.arange(5)] > 0).all()


@pytest.mark.parametrize("k", [15, 30])
def test_neighbors_match_scanpy(sc, k):
    ours = ad.read_h5ad(PRE)
    # scanpy computes float32 distances from a float32 X_pca; in float64 the two agree
    # to rounding, so the UMAP weights can be compared tightly.
    ours.obsm["X_pca"] = ours.obsm["X_pca"].astype(np.float64)
    ref = ours.copy()
    pp.neighbors(ours, n_neighbors=k, n_pcs=30)
    _quiet(sc.pp.neighbors, ref, n_neighbors=k, use_rep="X_pca")
    d, dref = ours.obsp["distances"], ref.obsp["distances"]
    assert isinstance(d, sparse.csr_matrix) and (np.diff(d.indptr) == k - 1).all()
    assert ((d > 0) != (dref > 0)).nnz == 0
    np.testing.assert_allclose(_arr(d), _arr(dref), rtol=1e-10, atol=1e-12)
    c, cref = ours.obsp["connectivities"], ref.obsp["connectivities"]
    assert ((c > 0) != (cref > 0)).nnz == 0
    assert abs(c - c.T).max() == 0
    np.testing.assert_allclose(_arr(c), _arr(cref), rtol=1e-5, atol=1e-7)
    info, ref_info = ours.uns["neighbors"], ref.uns["neighbors"]
    for key in ("connectivities_key", "distances_key"):
        assert info[key] == ref_info[key]
    for key in ("n_neighbors", "method", "metric", "use_rep"):
        assert info["params"][key] == ref_info["params"][key]


def test_neighbor_sets_match_scanpy_in_float32(sc):
    ours = ad.read_h5ad(PRE)
    ref = ours.copy()
    pp.neighbors(ours, n_neighbors=30, n_pcs=30)
    _quiet(sc.pp.neighbors, ref, n_neighbors=30, use_rep="X_pca")
    assert ((ours.obsp["distances"] > 0) != (ref.obsp["distances"] > 0)).nnz == 0
    assert ((ours.obsp["connectivities"] > 0) != (ref.obsp["connectivities"] > 0)).nnz == 0
    np.testing.assert_allclose(_arr(ours.obsp["connectivities"]),
                               _arr(ref.obsp["connectivities"]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("n", "k"), [(37, 6), (401, 12), (50, 49)])
def test_blocked_knn_equals_brute_force(monkeypatch, n, k):
    x = np.random.default_rng(n).normal(size=(n, 5))
    monkeypatch.setattr(pp, "_BLOCK_ELEMENTS", n * 8)  # 8-row blocks, the last one wraps
    idx, dist = pp._knn(x, k)
    full = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    want = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(dist, np.take_along_axis(full, want, axis=1), atol=1e-12)
    assert (idx[:, 0] == np.arange(n)).all() and (dist[:, 0] == 0).all()


def test_neighbors_computes_pca_when_missing(normalized):
    adata = normalized[0].copy()
    pp.neighbors(adata, n_neighbors=10, n_pcs=15)
    assert adata.obsm["X_pca"].shape == (50, 15)
    assert (np.diff(adata.obsp["distances"].indptr) == 9).all()
    assert adata.uns["neighbors"]["params"]["n_pcs"] == 15


@pytest.fixture(scope="module")
def with_moments(scv):
    """(ours, scVelo's) moments on the stored 30-neighbour graph of the dentate gyrus."""
    ours, ref = ad.read_h5ad(PRE), ad.read_h5ad(PRE)
    pp.moments(ours, n_neighbors=30)
    _quiet(scv.pp.moments, ref, n_neighbors=30)
    return ours, ref


def test_moments_match_stored_and_scvelo(with_moments):
    ours, ref = with_moments
    stored = ad.read_h5ad(PRE)
    for key in ("Ms", "Mu"):
        np.testing.assert_allclose(ours.layers[key], stored.layers[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.layers[key], ref.layers[key], rtol=1e-5, atol=1e-6)


def test_moments_trim_a_larger_graph_like_scvelo(scv):
    ours, ref = ad.read_h5ad(PRE), ad.read_h5ad(PRE)
    pp.moments(ours, n_neighbors=10)
    _quiet(scv.pp.moments, ref, n_neighbors=10)
    for key in ("Ms", "Mu"):
        np.testing.assert_allclose(ours.layers[key], ref.layers[key], rtol=1e-5, atol=1e-6)


def test_moments_build_the_graph_when_missing():
    adata = ad.read_h5ad(PRE)
    del adata.uns["neighbors"]
    del adata.obsp["connectivities"], adata.obsp["distances"]
    pp.moments(adata, n_neighbors=30)
    # same graph as the stored one (also an exact 30-nn UMAP graph on X_pca)
    np.testing.assert_allclose(adata.layers["Ms"], ad.read_h5ad(PRE).layers["Ms"],
                               rtol=1e-5, atol=1e-6)


def test_second_moments_match_scvelo(with_moments):
    from scvelo.preprocessing.moments import second_order_moments

    ours, ref = with_moments
    mss, mus = pp.second_moments(ours)
    ref_mss, ref_mus = _quiet(second_order_moments, ref)
    np.testing.assert_allclose(mss, ref_mss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mus, ref_mus, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- errors

def _small():
    rng = np.random.default_rng(1)
    adata = ad.AnnData(rng.poisson(3.0, size=(12, 8)).astype(np.float64))
    adata.layers["spliced"] = adata.X.copy()
    adata.layers["unspliced"] = rng.poisson(2.0, size=(12, 8)).astype(np.float64)
    return adata


def test_missing_layer_is_named():
    adata = _small()
    del adata.layers["unspliced"]
    with pytest.raises(VelocityError, match="'unspliced' is missing"):
        pp.filter_and_normalize(adata)
    with pytest.raises(VelocityError, match="'unspliced' is missing"):
        pp.moments(adata, n_neighbors=3)


@pytest.mark.parametrize("k", [1, 12, 40])
def test_n_neighbors_out_of_range(k):
    adata = _small()
    for fn in (pp.neighbors, pp.moments):
        with pytest.raises(VelocityError, match=rf"n_neighbors={k}; expected 2 <= .* 12"):
            fn(adata, n_neighbors=k)


def test_n_pcs_above_available():
    adata = _small()
    adata.obsm["X_pca"] = np.zeros((12, 4))
    with pytest.raises(VelocityError, match=r"n_pcs=5; obsm\['X_pca'\] has 4 components"):
        pp.neighbors(adata, n_neighbors=3, n_pcs=5)


def test_n_pcs_above_what_pca_can_give():
    with pytest.raises(VelocityError, match=r"n_pcs=30; obsm\['X_pca'\] is missing .* 8"):
        pp.neighbors(_small(), n_neighbors=3, n_pcs=30)


def test_more_top_genes_than_genes_keeps_all():
    adata = pp.filter_and_normalize(_small(), min_shared_counts=1, n_top_genes=100, log=False)
    assert adata.n_vars == 8 and adata.var["highly_variable"].all()
    sizes = adata.obs["initial_size"].to_numpy()
    np.testing.assert_allclose(adata.X.sum(axis=1), np.median(sizes) * np.ones(12))


def test_n_comps_out_of_range():
    with pytest.raises(VelocityError, match=r"n_comps=9; expected .* = 8"):
        pp.pca(_small(), n_comps=9)


def test_n_top_genes_below_one():
    with pytest.raises(VelocityError, match="n_top_genes=0; expected at least 1"):
        pp.filter_and_normalize(_small(), n_top_genes=0)


def test_no_gene_left_names_threshold_and_best_count():
    adata = _small()
    both = (adata.layers["spliced"] > 0) & (adata.layers["unspliced"] > 0)
    best = np.max(np.sum(np.where(both, adata.layers["spliced"] + adata.layers["unspliced"],
                                  0.0), axis=0))
    with pytest.raises(VelocityError, match=rf"min_shared_counts=1000.* has {best:g} shared"):
        pp.filter_and_normalize(adata, min_shared_counts=1000)


def test_normalised_input_is_rejected():
    adata = _small()
    adata.layers["spliced"] = adata.layers["spliced"] * 0.5 + 0.25
    with pytest.raises(VelocityError, match="layer 'spliced' holds non-integer"):
        pp.filter_and_normalize(adata)


def test_second_moments_need_a_graph():
    with pytest.raises(VelocityError, match=r"uns\['neighbors'\] is missing"):
        pp.second_moments(_small())
