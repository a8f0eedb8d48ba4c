"""RNA velocity on real data (scVelo's dentate gyrus and pancreas subsets, shipped in
tests/data/velocity) against scVelo itself on the same preprocessed input: the
dynamical model (gamma/beta ratios and per-gene likelihoods), the steady-state model
and the velocity embedding; and the plots."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell.velocity as jv
from jaxcell.velocity._dynamical import FINAL_GRID, fit_weights
from jaxcell.velocity._kinetics import gene_loss, loglik_from_mse

scv = pytest.importorskip("scvelo")
DATA = Path(__file__).parent / "data" / "velocity"
FILES = ["dentategyrus_100obs_preprocessed.h5ad", "pancreas_100obs_preprocessed.h5ad"]


def _quiet(fn, *args, **kwargs):
    scv.settings.verbosity = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module", params=FILES, ids=["dentategyrus", "pancreas"])
def both(request):
    """The same preprocessed AnnData fitted by jaxcell and by scVelo."""
    ours = jv.read(DATA / request.param)
    theirs = ours.copy()
    jv.recover_dynamics(ours)
    _quiet(scv.tl.recover_dynamics, theirs, n_jobs=1)
    return ours, theirs


def test_dynamical_model_agrees_with_scvelo(both):
    ours, theirs = both
    ok = (np.asarray(ours.var["velocity_genes"]) & np.isfinite(theirs.var["fit_alpha"]))
    assert ok.sum() >= 100
    r_ours = (ours.var["fit_gamma"] / ours.var["fit_beta"])[ok]
    r_theirs = (theirs.var["fit_gamma"] / theirs.var["fit_beta"])[ok]
    assert np.corrcoef(r_ours, r_theirs)[0, 1] >= 0.9
    # both parameter sets scored by one objective: each cell at its nearest point of
    # the gene's curve, distances in units of the gene's standard deviations
    u = np.asarray(ours.layers["Mu"])[:, ok]
    s = np.asarray(ours.layers["Ms"])[:, ok]
    w = jnp.asarray(fit_weights(u, s), dtype=float)
    std_u = jnp.asarray(ours.var["fit_std_u"][ok].to_numpy())
    std_s = jnp.asarray(ours.var["fit_std_s"][ok].to_numpy())
    score = jax.jit(jax.vmap(lambda th, u, s, w, a, b: gene_loss(th, u, s, w, a, b,
                                                                 FINAL_GRID, 6),
                             in_axes=(0, 1, 1, 1, 0, 0)))

    def loglik(var):
        theta = np.log(np.stack([var.fit_alpha, var.fit_beta * var.fit_scaling,
                                 var.fit_gamma, var.fit_t_, var.fit_scaling], 1))
        return np.asarray(loglik_from_mse(score(jnp.asarray(theta), u, s, w, std_u, std_s)))

    ll_ours, ll_theirs = loglik(ours.var[ok]), loglik(theirs.var[ok])
    assert np.mean(ll_ours >= ll_theirs - 1e-9) >= 0.9
    # the stored per-gene log-likelihood is the same objective
    np.testing.assert_allclose(ours.var["fit_loglik"][ok], ll_ours, atol=1e-3)


@pytest.mark.parametrize("name", FILES, ids=["dentategyrus", "pancreas"])
def test_steady_state_model_matches_scvelo(name):
    ours = jv.read(DATA / name)
    theirs = ours.copy()
    jv.steady_state(ours)
    _quiet(scv.tl.velocity, theirs, mode="deterministic")
    np.testing.assert_allclose(ours.var["velocity_gamma"], theirs.var["velocity_gamma"],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.var["velocity_r2"], theirs.var["velocity_r2"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.var["velocity_genes"], theirs.var["velocity_genes"])
    g = np.asarray(theirs.var["velocity_genes"])
    np.testing.assert_allclose(ours.layers["velocity"][:, g], theirs.layers["velocity"][:, g],
                               rtol=1e-4, atol=1e-5)


def test_velocity_embedding_agrees_with_scvelo(both):
    ours, _ = both
    a = ours.copy()
    jv.velocity(a)
    arrows = jv.velocity_embedding(a, "pca")
    b = a.copy()
    _quiet(scv.tl.velocity_graph, b, vkey="velocity")
    _quiet(scv.tl.velocity_embedding, b, basis="pca", vkey="velocity")
    ref = np.asarray(b.obsm["velocity_pca"])[:, :2]
    cos = np.sum(arrows * ref, 1) / (np.linalg.norm(arrows, axis=1)
                                     * np.linalg.norm(ref, axis=1))
    assert np.median(cos) >= 0.9, np.median(cos)


def test_plots(both, tmp_path):
    ours, _ = both
    a = ours.copy()
    jv.latent_time(a)
    jv.velocity(a)
    genes = list(a.var_names[a.var["velocity_genes"]][:3])
    fig = jv.plot_phase(a, genes)
    line = fig.axes[0].lines[0]
    k = jv.kinetics(a)
    i = 0
    xs, ys = line.get_xdata(), line.get_ydata()
    assert xs[0] == 0.0 and ys[0] == 0.0  # the curve starts at the origin
    assert np.max(ys) <= k["scaling"][i] * k["alpha"][i] / k["beta"][i] + 1e-9
    fig.savefig(tmp_path / "phase.png")
    fig = jv.plot_velocity_embedding(a)
    assert len(fig.axes[0].collections) == 2  # cells and arrows
    fig.savefig(tmp_path / "embedding.png")
    with pytest.raises(jv.VelocityError, match="not among the fitted genes"):
        jv.plot_phase(a, ["no-such-gene"])
    with pytest.raises(jv.VelocityError, match="basis='umap'"):
        jv.velocity_embedding(a, "umap")
