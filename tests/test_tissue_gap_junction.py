"""GapJunction: diffusive coupling of a per-cell variable over a neighbour graph.

Science checks: conservation of the total on symmetric graphs, the exact decay rate
``D λ`` of Fourier modes of the discrete Laplacian on periodic lattices, synchrony of
identical coupled repressilators, independence at D = 0, and the gradient with respect
to D against central finite differences.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import central_difference

import jaxcell as jc
from jaxcell.cellular import PerCell
from jaxcell.tissue import GapJunction, from_positions, hex_lattice, square_lattice

TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)
TSIT5 = diffrax.Tsit5()  # the repressilator is not stiff; explicit compiles faster
SPECIES = "molecular/repressilator/species"


def _holder(x0):
    """A per-cell variable with no dynamics of its own (only the coupling moves it)."""
    return jc.ODE("cells", {"x": jnp.asarray(x0)}, lambda t, y, p: {}, scale="cellular")


def _ring(n):
    """n cells on a circle, each touching its two nearest neighbours."""
    angle = 2 * np.pi * np.arange(n) / n
    radius = n / (2 * np.pi)  # unit spacing along the circle
    return from_positions(radius * np.stack([np.cos(angle), np.sin(angle)], 1), 1.2)


def _repressilators(nb, D, component="p_lacI"):
    cells = PerCell(jc.models.repressilator(), n_cells=nb.n_cells)
    return jc.Composite([cells, GapJunction("gap", nb, SPECIES, D=D, component=component)])


def _random_y0(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 20.0, size=(n, 6))


@pytest.mark.parametrize("shape", [(30,), (30, 3)])
def test_total_is_conserved_on_an_irregular_graph(shape):
    rng = np.random.default_rng(1)
    nb = from_positions(rng.uniform(0, 4, size=(30, 2)), 1.3)
    counts = np.asarray(nb.counts())
    assert counts.min() != counts.max()  # irregular: the test is not trivial
    x0 = rng.uniform(0, 5, size=shape)
    gap = GapJunction("gap", nb, "cellular/cells/x", D=0.7)
    traj = jc.simulate([_holder(x0), gap], 0.0, 10.0, saveat=[0.0, 1.0, 10.0])
    x = np.asarray(traj["cellular/cells/x"])
    np.testing.assert_allclose(x.sum(axis=1), np.broadcast_to(x0.sum(axis=0), x.shape[:1]
                                                              + shape[1:]), rtol=1e-13)
    assert np.ptp(x[-1], axis=0).max() < 0.5 * np.ptp(x0, axis=0).min()  # it spreads


@pytest.mark.parametrize("kind", ["square", "ring"])
def test_fourier_mode_decays_at_the_discrete_laplacian_rate(kind):
    if kind == "square":
        # periodic 8 x 6 lattice, mode (1, 2): λ = 4 - 2 cos(2π/8) - 2 cos(2π 2/6)
        graph = square_lattice(8, 6)
        col, row = np.arange(48) % 8, np.arange(48) // 8
        phase = 2 * np.pi * (col / 8 + 2 * row / 6)
        lam = 4 - 2 * np.cos(2 * np.pi / 8) - 2 * np.cos(2 * np.pi * 2 / 6)
    else:
        # ring of 10 cells, mode 3: λ = 2 - 2 cos(2π 3/10)
        graph = _ring(10)
        phase = 2 * np.pi * 3 * np.arange(10) / 10
        lam = 2 - 2 * np.cos(2 * np.pi * 3 / 10)
    assert np.all(np.asarray(graph.counts()) == (4 if kind == "square" else 2))
    x0 = 1.0 + 0.5 * np.cos(phase)
    D = 0.3
    ts = np.array([0.0, 0.5, 2.0, 5.0])
    gap = GapJunction("gap", graph, "cellular/cells/x", D=D)
    traj = jc.simulate([_holder(x0), gap], 0.0, 5.0, saveat=ts, stepsize_controller=TIGHT)
    exact = 1.0 + 0.5 * np.cos(phase)[None] * np.exp(-D * lam * ts)[:, None]
    np.testing.assert_allclose(np.asarray(traj["cellular/cells/x"]), exact, rtol=0,
                               atol=1e-9)


def test_identical_coupled_repressilators_stay_synchronised():
    nb = hex_lattice(4, 4)
    ts = np.linspace(50.0, 100.0, 11)
    traj = jc.simulate(_repressilators(nb, 0.5), 0.0, 100.0, saveat=ts, solver=TSIT5)
    x = np.asarray(traj[SPECIES])                       # (11, 16, 6)
    assert np.abs(x - x[:, :1]).max() <= 1e-12 * np.abs(x).max()
    single = jc.simulate(jc.models.repressilator(), 0.0, 100.0, saveat=ts, solver=TSIT5)
    np.testing.assert_allclose(x[:, 0], np.asarray(single[SPECIES]), rtol=1e-5, atol=1e-6)
    assert np.ptp(x[:, 0, 3]) > 10.0  # still oscillating, not a trivial steady state


def test_coupling_synchronises_cells_that_start_apart():
    # 9 repressilators from random states: coupled through p_lacI they fall into step
    # (spread across cells from ~7 to < 1e-4 by t = 400); uncoupled they do not.
    nb = square_lattice(3, 3)
    y0 = _random_y0(9)
    ts = np.array([0.0, 360.0, 370.0, 380.0, 390.0, 400.0])
    spread = {}
    for D in (0.0, 0.5):
        traj = jc.simulate(_repressilators(nb, D), 0.0, 400.0, saveat=ts, y0={SPECIES: y0},
                           solver=TSIT5)
        x = np.asarray(traj[SPECIES])
        spread[D] = x.std(axis=1).max(axis=1)         # over cells, worst species
    assert spread[0.0][0] > 5.0 and spread[0.0][-1] > 1.0
    assert spread[0.5][-1] < 1e-4 * spread[0.5][0]
    assert np.ptp(np.asarray(traj[SPECIES])[1:, 0, 3]) > 10.0  # in step and oscillating


def test_without_coupling_cells_are_independent():
    nb = square_lattice(2, 2, periodic=False)
    y0 = _random_y0(4)
    ts = [0.0, 20.0, 40.0]
    traj = jc.simulate(_repressilators(nb, 0.0), 0.0, 40.0, saveat=ts, y0={SPECIES: y0},
                       solver=TSIT5, stepsize_controller=TIGHT)
    for i in range(4):
        alone = jc.simulate(jc.models.repressilator(), 0.0, 40.0, saveat=ts,
                            y0={SPECIES: y0[i]}, solver=TSIT5, stepsize_controller=TIGHT)
        np.testing.assert_allclose(np.asarray(traj[SPECIES][:, i]),
                                   np.asarray(alone[SPECIES]), rtol=1e-7, atol=1e-9)


def _coupling_rate(nb, y0, path, **kwargs):
    """The derivative the GapJunction alone adds, from the composite's vector field."""
    cells = PerCell(jc.models.repressilator(), n_cells=nb.n_cells)
    model = jc.Composite([cells, GapJunction("gap", nb, path, D=0.2, **kwargs)])
    state = {"molecular": {"repressilator": {"species": jnp.asarray(y0)}}}
    with_gap = model.vector_field(0.0, state)["molecular"]["repressilator"]["species"]
    alone = jc.Composite([cells]).vector_field(0.0, state)
    return np.asarray(with_gap - alone["molecular"]["repressilator"]["species"])


def test_one_labelled_column_is_coupled_by_label_index_or_path():
    nb = hex_lattice(4, 4, periodic=False)
    y0 = _random_y0(16, seed=3)
    by_label = _coupling_rate(nb, y0, SPECIES, component="p_lacI")
    np.testing.assert_array_equal(_coupling_rate(nb, y0, SPECIES, component=3), by_label)
    np.testing.assert_array_equal(_coupling_rate(nb, y0, SPECIES, component=-3), by_label)
    np.testing.assert_array_equal(_coupling_rate(nb, y0, SPECIES + "/p_lacI"), by_label)
    assert np.all(by_label[:, [0, 1, 2, 4, 5]] == 0.0)
    a = nb.adjacency().astype(float)
    expected = 0.2 * (a @ y0[:, 3] - a.sum(1) * y0[:, 3])
    np.testing.assert_allclose(by_label[:, 3], expected, rtol=1e-12, atol=1e-12)
    # without a component every column is coupled
    every = _coupling_rate(nb, y0, SPECIES)
    np.testing.assert_allclose(every, 0.2 * (a @ y0 - a.sum(1)[:, None] * y0), rtol=1e-12,
                               atol=1e-12)


def test_gradient_wrt_D_matches_finite_differences():
    nb = square_lattice(2, 2, periodic=False)
    y0 = _random_y0(4, seed=2)
    model = _repressilators(nb, 0.1)
    ts = np.linspace(0.0, 8.0, 5)

    def loss(D):
        m = eqx.tree_at(lambda c: c.leaves[1].params["D"], model, D)
        traj = jc.simulate(m, 0.0, 8.0, saveat=ts, y0={SPECIES: y0}, solver=TSIT5,
                           stepsize_controller=TIGHT)
        p = traj[SPECIES][..., 3:]
        return jnp.sum((p - 5.0) ** 2) / p.size

    D = 0.1
    g = float(jax.jit(jax.grad(loss))(jnp.asarray(D)))
    fd = central_difference(lambda d: loss(jnp.asarray(d[0])), np.array([D]), h=1e-5)[0]
    assert abs(g) > 1e-3
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_new_D_does_not_recompile():
    model = jc.Composite([_holder(np.arange(9.0)),
                          GapJunction("gap", square_lattice(3, 3), "cellular/cells/x", D=0.1)])
    first = jc.simulate(model, 0.0, 5.0, saveat=[5.0])
    with jc.count_compilations() as n:
        second = jc.simulate(model.replace_parameters({"gap.D": 0.4}), 0.0, 5.0, saveat=[5.0])
    assert n() == 0
    assert np.ptp(second["cellular/cells/x"]) < np.ptp(first["cellular/cells/x"])


def test_bad_input_is_named():
    nb = square_lattice(3, 3)
    with pytest.raises(jc.ModelError, match="neighbours must come from"):
        GapJunction("g", object(), "a/b/c", D=1.0)  # pyright: ignore[reportArgumentType]
    with pytest.raises(jc.ModelError, match="non-negative"):
        GapJunction("g", nb, "a/b/c", D=-1.0)
    with pytest.raises(jc.ModelError, match="NaN"):
        GapJunction("g", nb, "a/b/c", D=float("nan"))
    with pytest.raises(jc.ModelError, match="scalar"):
        GapJunction("g", nb, "a/b/c", D=[1.0, 2.0])
    with pytest.raises(jc.ModelError, match="must be a number"):
        GapJunction("g", nb, "a/b/c", D="fast")  # pyright: ignore[reportArgumentType]
    with pytest.raises(jc.ModelError, match="label .string. or an integer"):
        GapJunction("g", nb, "a/b/c", D=1.0, component=1.5)  # pyright: ignore
    with pytest.raises(jc.ModelError, match="given twice"):
        GapJunction("g", nb, "a/b/c/x", D=1.0, component="x")
    with pytest.raises(jc.WiringError, match="three non-empty parts"):
        GapJunction("g", nb, "a/b", D=1.0)
    with pytest.raises(jc.ModelError, match="non-negative"):
        GapJunction("g", nb, "a/b/c", D=1.0).replace_parameters({"D": -0.5})
    with pytest.raises(jc.ModelError, match="no parameter named"):
        GapJunction("g", nb, "a/b/c", D=1.0).replace_parameters({"k": 0.5})
    # wiring: an unknown label, a graph of another size, a component of a 1-D variable
    with pytest.raises(jc.WiringError, match="p_lacY"):
        _repressilators(nb, 0.1, component="p_lacY")
    with pytest.raises(jc.WiringError, match=r"expected \(16,\) or \(16, k\)"):
        jc.simulate([_holder(np.ones(9)),
                     GapJunction("g", hex_lattice(4, 4), "cellular/cells/x", D=1.0)],
                    0.0, 1.0)
    with pytest.raises(jc.WiringError, match="needs a variable of shape"):
        jc.simulate([_holder(np.ones(9)),
                     GapJunction("g", nb, "cellular/cells/x", D=1.0, component=0)], 0.0, 1.0)
    with pytest.raises(jc.WiringError, match="out of range"):
        jc.simulate([_holder(np.ones((9, 2))),
                     GapJunction("g", nb, "cellular/cells/x", D=1.0, component=2)], 0.0, 1.0)
