"""One rule for path arguments: every path argument of the tissue and cellular processes
accepts what ``reads=`` accepts, a whole variable or one labelled component."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.cellular import Death, Division, PerCell, Population, Sizer
from jaxcell.tissue import (
    ContactAverage,
    DiffusingField,
    FieldExchange,
    FieldSensor,
    Grid,
    square_lattice,
)

XY = [[0.3, 0.3], [1.2, 0.8], [0.4, 1.4]]
GRID = Grid((2, 3), spacing=0.5)


def _gene():
    """Per-cell gene: P made at rate a, decays; L is what the cell has taken up."""
    net = jc.ReactionNetwork("gene", {"P": 1.0, "L": 0.0},
                             [jc.Reaction("make", "", "P", 0.5),
                              jc.Reaction("loss", "P", "", 0.2)])
    return PerCell(net, n_cells=3)


def _plain():
    """The same per-cell P as a plain (N,) variable, and an (N,) sink for the uptake."""
    return jc.ODE("plain", {"P": jnp.ones(3), "L": jnp.zeros(3)},
                  lambda t, y, p: {"P": 0.5 - 0.2 * y["P"]}, scale="cellular")


def _field():
    return DiffusingField("lig", GRID, D=0.05, initial=0.5)


def _run(processes):
    return jc.simulate(processes, 0.0, 2.0, saveat=[1.0, 2.0])


@pytest.fixture(scope="module")
def reference():
    field = _field()
    ex = FieldExchange("ex", field, positions=XY, secretion=0.3,
                       secretion_from="cellular/plain/P", uptake=0.4,
                       into="cellular/plain/L")
    return _run([field, _plain(), ex])


@pytest.mark.parametrize("form", ["string", "tuple"])
def test_field_exchange_component_paths_equal_whole_variable_paths(reference, form):
    def ref(label):
        parts = ("molecular", "gene", "species", label)
        return "/".join(parts) if form == "string" else parts

    field = _field()
    ex = FieldExchange("ex", field, positions=XY, secretion=0.3,
                       secretion_from=ref("P"), uptake=0.4, into=ref("L"))
    traj = _run([field, _gene(), ex])
    np.testing.assert_allclose(traj["tissue/lig/concentration"],
                               reference["tissue/lig/concentration"], rtol=1e-10,
                               atol=1e-12)
    species = np.asarray(traj["molecular/gene/species"])
    np.testing.assert_allclose(species[..., 0], reference["cellular/plain/P"], rtol=1e-10)
    np.testing.assert_allclose(species[..., 1], reference["cellular/plain/L"], rtol=1e-10,
                               atol=1e-12)


def test_a_component_label_is_checked_when_wired():
    field = _field()
    ex = FieldExchange("ex", field, positions=XY, secretion_from="molecular/gene/species/Q")
    with pytest.raises(jc.WiringError, match="component 'Q'"):
        jc.Composite([field, _gene(), ex])


def test_sensor_alive_may_be_a_component_and_target_must_be_whole():
    field = DiffusingField("m", Grid((4,)), D=0.0, initial=jnp.arange(4.0))
    flags = jc.ReactionNetwork("flags", {"on": 1.0, "off": 0.0}, [])
    cells = PerCell(flags, n_cells=3)
    sense = FieldSensor("s", field, positions=[[0.5], [3.9], [2.0]],
                        alive="molecular/flags/species/off")
    traj = jc.simulate([field, cells, sense], 0.0, 1.0, saveat=[1.0])
    np.testing.assert_array_equal(traj["cellular/s/concentration"][-1], 0.0)
    with pytest.raises(jc.WiringError, match="target .* names a component"):
        FieldSensor("s", field, positions=[[0.5]], target="cellular/s/c/x")


def test_contact_average_reads_a_component():
    nb = square_lattice(3, 3)
    net = jc.ReactionNetwork("n", {"D": 1.0, "X": 0.0}, [])
    cells = PerCell(net, n_cells=9)
    avg = ContactAverage("avg", nb, source="molecular/n/species/D", target="tissue/avg/d")
    traj = jc.simulate([cells, avg], 0.0, 1.0, saveat=[0.0])
    np.testing.assert_allclose(traj["tissue/avg/d"][0], 1.0)
    with pytest.raises(jc.WiringError, match="target .* names a component"):
        ContactAverage("avg", nb, source="molecular/n/species/D", target="tissue/a/d/x")


def test_death_reads_a_component_and_dividers_name_whole_variables():
    pop = Population("cells", capacity=3)
    flags = jc.ReactionNetwork("flags", {"doomed": 0.0, "x": 0.0}, [])
    cells = PerCell(flags, n_cells=3)
    death = Death("death", pop, interval=0.5,
                  condition=lambda t, x, p: x["d"] > 0.5,
                  reads={"d": "molecular/flags/species/doomed"})
    traj = jc.simulate([pop, cells, death], 0.0, 1.0, saveat=[1.0])
    np.testing.assert_array_equal(traj["cellular/cells/alive"][-1], 1.0)
    with pytest.raises(jc.ModelError, match="names a component; a divider"):
        Division("div", pop, Sizer(2.0), interval=0.1,
                 dividers={"molecular/flags/species/x": jc.cellular.Halve()})


def test_assignment_shape_is_declared_and_the_error_says_which():
    x = jc.ODE("x", {"v": jnp.ones(3)}, lambda t, y, p: {"v": -y["v"]})
    double = jc.Assignment("double", "molecular/double/v", lambda t, x, p: 2 * x["v"],
                           reads={"v": "molecular/x/v"})
    with pytest.raises(jc.WiringError, match=r"Pass shape=\(3,\) to Assignment"):
        jc.simulate([x, double], 0.0, 1.0, saveat=[0.0])
