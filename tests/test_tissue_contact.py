"""Neighbour graphs and juxtacrine signalling: the Collier et al. (1996) Notch-Delta
model on a 12 x 12 periodic hexagonal lattice (REFERENCE-MODELS T1)."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.tissue import ContactAverage, from_positions, hex_lattice, square_lattice

A, B, K, H, V = 0.01, 100.0, 2.0, 2.0, 1.0
N_STAR, D_STAR = 0.353772, 0.0739893  # homogeneous steady state (REFERENCE-MODELS T1)


def _collier(nb, n0, d0):
    def rhs(t, y, p):
        dbar = y["d_mean"]
        f = dbar**K / (A + dbar**K)
        g = 1.0 / (1.0 + B * y["n"] ** H)
        return {"n": f - y["n"], "d": V * (g - y["d"])}

    cells = jc.ODE("notch", {"n": n0, "d": d0}, rhs, scale="cellular",
                   inputs={"d_mean": "tissue/contact/d_mean"})
    contact = ContactAverage("contact", nb, source="cellular/notch/d",
                             target="tissue/contact/d_mean")
    return jc.Composite([cells, contact])


def test_lattice_graphs():
    hexa = hex_lattice(12, 12)
    assert np.all(np.asarray(hexa.counts()) == 6)
    adj = hexa.adjacency()
    assert (adj == adj.T).all() and not adj.diagonal().any()
    # neighbours are at unit distance (on the torus, away from the wrap)
    open_hex = hex_lattice(5, 4, periodic=False)
    p = np.asarray(open_hex.positions)
    a = open_hex.adjacency()
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    np.testing.assert_allclose(d[a], 1.0, rtol=1e-12)
    # the graph from positions with a radius between 1 and sqrt(3) is the same graph
    assert (from_positions(p, 1.2).adjacency() == a).all()
    assert np.all(np.asarray(square_lattice(6, 6).counts()) == 4)
    # the neighbour mean of a constant is that constant
    assert np.allclose(hexa.mean(jnp.ones(144)), 1.0)


def test_homogeneous_state_is_unstable_on_the_hexagonal_lattice():
    # f'(d*) g'(n*) < -2 (the hexagonal neighbour-average operator reaches -1/2)
    fp = K * A * D_STAR ** (K - 1) / (A + D_STAR**K) ** 2
    gp = -B * H * N_STAR ** (H - 1) / (1 + B * N_STAR**H) ** 2
    np.testing.assert_allclose(fp * gp, -2.394, rtol=1e-3)
    assert fp * gp < -2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collier_pattern_one_third_high_none_adjacent(seed):
    nb = hex_lattice(12, 12)
    rng = np.random.default_rng(seed)
    n0 = N_STAR * (1 + 0.01 * rng.standard_normal(144))
    d0 = D_STAR * (1 + 0.01 * rng.standard_normal(144))
    traj = jc.simulate(_collier(nb, n0, d0), 0.0, 500.0, saveat=[500.0])
    d = np.asarray(traj["cellular/notch/d"][-1])
    n = np.asarray(traj["cellular/notch/n"][-1])
    high = d > 0.5
    assert high.sum() == 48  # exactly one third
    adj = nb.adjacency()
    assert not (adj & high[:, None] & high[None, :]).any()  # no two high cells touch
    assert (adj[~high][:, high].any(axis=1)).all()  # every low cell touches a high one
    np.testing.assert_allclose(d[high], 0.987333, rtol=1e-4)
    np.testing.assert_allclose(d[~high], 0.0107035, rtol=1e-4)
    np.testing.assert_allclose(n[high], 0.0113267, rtol=1e-4)
    np.testing.assert_allclose(n[~high], 0.961393, rtol=1e-4)


def test_square_lattice_checkerboard_is_kept():
    nb = square_lattice(12, 12)
    cols, rows = np.meshgrid(np.arange(12), np.arange(12))
    checker = ((cols + rows) % 2 == 0).ravel()
    d0 = np.where(checker, 0.9, 0.02)
    n0 = np.where(checker, 0.02, 0.9)
    traj = jc.simulate(_collier(nb, n0, d0), 0.0, 200.0, saveat=[200.0])
    high = np.asarray(traj["cellular/notch/d"][-1]) > 0.5
    assert high.sum() == 72 and (high == checker).all()


def test_bad_input_is_named():
    with pytest.raises(jc.ModelError, match="even ny"):
        hex_lattice(12, 11)
    with pytest.raises(jc.ModelError, match="radius"):
        from_positions(np.zeros((3, 2)), 0.0)
    with pytest.raises(jc.ModelError, match="neighbours must come from"):
        ContactAverage("c", object(), source="a/b/c", target="d/e/f")
    with pytest.raises(jc.ModelError, match="rows"):
        hex_lattice(6, 6).mean(jnp.ones(5))
