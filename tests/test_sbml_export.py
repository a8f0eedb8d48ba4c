"""SBML export: models written by jaxcell, simulated by libRoadRunner, read back by jaxcell.

The reference is libRoadRunner (CVODE) run on the exported file at tight tolerances:
every species of the built-in reference models and of every PEtab model we ship or
that ``../shared/data/petab`` holds agrees with jaxcell's own simulation of the model
to 1e-6 of the species' scale. Reading the file back gives the same structure.
"""

from __future__ import annotations

import pathlib

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell._composite import as_composite
from jaxcell.analysis._steady_state import flat_field, initial_state
from jaxcell.sbml import ExportError, export_sbml, load_sbml, simulate_sbml

roadrunner = pytest.importorskip("roadrunner")
libsbml = pytest.importorskip("libsbml")

HERE = pathlib.Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "data" / "petab"
TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)


def _with_values(xml: str, values: dict) -> str:
    """The document with some parameter values changed (by libsbml, before loading,
    so that initial assignments see them)."""
    doc = libsbml.readSBMLFromString(xml)
    for k, v in values.items():
        doc.getModel().getParameter(k).setValue(v)
    return libsbml.writeSBMLToString(doc)


def _roadrunner(xml: str, ts: np.ndarray, changes: dict | None = None):
    rr = roadrunner.RoadRunner(_with_values(xml, changes) if changes else xml)
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.setValue("maximum_num_steps", 1_000_000)
    species = list(rr.model.getFloatingSpeciesIds()) + list(rr.model.getBoundarySpeciesIds())
    rr.timeCourseSelections = (["time"] + [f"[{s}]" for s in species]
                               + list(rr.model.getGlobalParameterIds()))
    res = rr.simulate(float(ts[0]), float(ts[-1]), len(ts))
    return {c.strip("[]"): np.asarray(res[:, i]) for i, c in enumerate(res.colnames)}


def _close(ours: np.ndarray, theirs: np.ndarray, what: str, tol: float = 1e-6):
    scale = max(float(np.max(np.abs(theirs))), 1e-300)
    err = float(np.max(np.abs(ours - theirs))) / scale
    assert err <= tol, f"{what}: max |jaxcell - roadrunner| / max|x| = {err:.2e}"
    return err


REFERENCE = {
    "repressilator": (jc.models.repressilator, 30.0),
    "goodwin": (jc.models.goodwin, 20.0),
    "toggle_switch": (lambda: jc.models.toggle_switch(iptg=1e-5), 20.0),
    "lotka_volterra": (jc.models.lotka_volterra, 10.0),
    "michaelis_menten": (jc.models.michaelis_menten, 5.0),
    "michaelis_menten_mass_action": (jc.models.michaelis_menten_mass_action, 5.0),
    "kholodenko_mapk": (jc.models.kholodenko_mapk, 1500.0),
    "huang_ferrell_mapk": (jc.models.huang_ferrell_mapk, 5.0),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_model_round_trip_against_roadrunner(name):
    make, t1 = REFERENCE[name]
    net = make()
    xml = export_sbml(net)
    ts = np.linspace(0.0, t1, 21)
    theirs = _roadrunner(xml, ts)
    ours = jc.simulate(net, 0.0, t1, saveat=jnp.asarray(ts), stepsize_controller=TIGHT,
                       max_steps=200_000)
    for s in net.species:
        _close(np.asarray(ours[s]), theirs[s], f"{name}: {s}")
    # read back: the same species, parameters and net stoichiometry
    back = load_sbml(xml)
    ids = set(back.state_ids)
    assert set(net.species) <= ids
    for k, v in net.parameters().items():
        assert back.params[k.replace(".", "_")] == pytest.approx(float(v), rel=1e-15)
    # ... and the same right-hand side at random states
    comp = as_composite(back)
    f, x0, _ = flat_field(comp, initial_state(comp, None), 0.0, None)
    f = jax.jit(f)
    order = [back.state_ids.index(s) for s in net.species]
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.uniform(0.1, 2.0, len(net.species)) * (np.abs(np.asarray(net.x0)) + 1e-3)
        xs = np.zeros(x0.shape[0])
        xs[order] = x
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(xs)))[order],
                                   np.asarray(net.derivative(jnp.asarray(x))),
                                   rtol=1e-12, atol=1e-14 * float(np.max(np.abs(x))))


def test_composite_of_ode_coupling_and_assignment():
    """An ODE, a network, a coupling and an assignment rule in one model:
    x' = -k x + sin(t) written in code, A -> B by mass action, a coupling that feeds
    max(A, 0) back into x, and the readout y = x + B."""
    ode = jc.ODE("drive", {"x": 1.0},
                 lambda t, y, p: {"x": -p["k"] * y["x"] + jnp.sin(t)},
                 parameters={"k": 0.7})
    net = jc.ReactionNetwork("net", {"A": 0.5, "B": 0.0},
                             [jc.Reaction("conv", "A", "B", jc.MassAction("kc"))], {"kc": 1.3})
    feed = jc.Coupling("feed", lambda t, x, p: {"x": p["g"] * jnp.maximum(x["A"], 0.0)},
                       changes={"x": "molecular/drive/x"},
                       reads={"A": "molecular/net/species/A"}, parameters={"g": 0.4})
    obs = jc.Assignment("obs", "molecular/obs/y", lambda t, x, p: x["x"] + x["B"],
                        reads={"x": "molecular/drive/x", "B": "molecular/net/species/B"})
    model = jc.Composite([ode, net, feed, obs])
    xml = export_sbml(model)
    ts = np.linspace(0.0, 8.0, 17)
    theirs = _roadrunner(xml, ts)
    ours = jc.simulate(model, 0.0, 8.0, saveat=jnp.asarray(ts), stepsize_controller=TIGHT)
    _close(np.asarray(ours["molecular/drive/x"]), theirs["x"], "x")
    _close(np.asarray(ours["A"]), theirs["A"], "A")
    _close(np.asarray(ours["B"]), theirs["B"], "B")
    _close(np.asarray(ours["molecular/obs/y"]), theirs["y"], "y")


def test_neural_rate_law_is_written_out_and_unexpressible_parts_are_named():
    """A small MLP rate law becomes an explicit formula with its weights, which
    roadrunner runs to the same trajectory; what has no MathML form is refused by
    name."""
    import equinox as eqx
    import jax

    mlp = eqx.nn.MLP(1, 1, 4, 1, activation=jax.nn.softplus, key=jax.random.key(0))
    net = jc.ReactionNetwork(
        "hybrid", {"A": 1.0, "B": 0.0},
        [jc.Reaction("learned", "A", "B",
                     jc.Custom(lambda s, p: s["A"] * jax.nn.sigmoid(mlp(s["A"][None])[0])))])
    ts = np.linspace(0.0, 3.0, 7)
    theirs = _roadrunner(export_sbml(net), ts)
    ours = jc.simulate(net, 0.0, 3.0, saveat=jnp.asarray(ts), stepsize_controller=TIGHT)
    _close(np.asarray(ours["B"]), theirs["B"], "B")

    loop = jc.ReactionNetwork(
        "looped", {"A": 1.0},
        [jc.Reaction("cum", "A", "", jc.Custom(lambda s, p: jnp.cumsum(s["A"] * jnp.ones(3))[-1]))])
    with pytest.raises(ExportError, match=r"looped.*reaction 'cum'.*'cumsum'"):
        export_sbml(loop)
    vec = jc.ODE("v", {"x": jnp.ones(3)}, lambda t, y, p: {"x": -y["x"]})
    with pytest.raises(ExportError, match=r"ODE 'v', variable 'x'.*shape \(3,\)"):
        export_sbml(vec)
    per_cell = load_sbml(export_sbml(jc.models.goodwin())).per_cell(3)
    with pytest.raises(ExportError, match="per-cell"):
        export_sbml(per_cell)


def _petab_models() -> list[pathlib.Path]:
    """The SBML model of every PEtab problem shipped in tests/data and in ../shared."""
    dirs = sorted(p for p in (HERE / "data" / "petab").iterdir() if p.is_dir())
    if SHARED.is_dir():
        have = {d.name for d in dirs}
        dirs += sorted(p for p in SHARED.iterdir() if p.is_dir() and p.name not in have)
    return [x for d in dirs for x in sorted(d.glob("*.xml"))[:1]]


def _fitted(model) -> dict[str, float]:
    """Every constant global parameter moved by 5 %, as a fit leaves them."""
    return {s.id: 1.05 * float(model.params[s.id]) for s in model.structure.ir.symbols
            if s.kind == "parameter" and s.constant and s.id in model.params
            and np.isfinite(float(model.params[s.id]))}


def _t1(xml: pathlib.Path) -> float:
    import pandas as pd

    t1 = 0.0
    for f in xml.parent.glob("measurement*.tsv"):
        t = pd.read_csv(f, sep="\t")["time"].astype(float)
        t1 = max(t1, float(t[np.isfinite(t)].max()))
    return t1 if t1 > 0 else 10.0


@pytest.mark.parametrize("xml", _petab_models(), ids=lambda p: p.parent.name)
def test_petab_model_exports_with_fitted_values(xml, tmp_path):
    """Each PEtab model with fitted values written in: roadrunner runs the exported file
    as it runs the original with the same values set, and jaxcell reads back the same
    reactions, rules and values."""
    model = load_sbml(xml)
    fitted = _fitted(model)
    assert fitted
    model = model.replace_parameters(fitted)
    out = tmp_path / "model.xml"
    export_sbml(model, out)
    ts = np.linspace(0.0, _t1(xml), 11)
    theirs = _roadrunner(out.read_text(), ts)
    original = _roadrunner(xml.read_text(), ts, fitted)
    for sid in model.state_ids:
        if sid in original:
            _close(theirs[sid], original[sid], f"{xml.parent.name}: {sid}", tol=1e-9)
    back = load_sbml(out)
    for k, v in fitted.items():
        assert float(back.params[k]) == pytest.approx(v, rel=1e-14), k
    ir, ir_back = model.structure.ir, back.structure.ir
    assert ir_back.reactions == ir.reactions
    assert ir_back.assignment_rules == ir.assignment_rules
    assert ir_back.rate_rules == ir.rate_rules
    assert ir_back.events == ir.events
    # units and names come along (L2 defaults become explicit L3 unit definitions)
    src, out_m = libsbml.readSBMLFromFile(str(xml)).getModel(), \
        libsbml.readSBMLFromFile(str(out)).getModel()
    for p in src.getListOfParameters():
        if p.isSetUnits():
            assert out_m.getParameter(p.getId()).getUnits() == p.getUnits()
    for sp in src.getListOfSpecies():
        assert out_m.getSpecies(sp.getId()).getName() == sp.getName()
    have = {u.getId() for u in out_m.getListOfUnitDefinitions()}
    assert {u.getId() for u in src.getListOfUnitDefinitions()} <= have


@pytest.mark.parametrize("xml", _petab_models(), ids=lambda p: p.parent.name)
def test_petab_model_export_matches_jaxcell(xml, tmp_path):
    """jaxcell's simulation of a PEtab model (fitted values written in) against
    roadrunner's of the exported file, to 1e-6 of each species' scale."""
    model = load_sbml(xml)
    model = model.replace_parameters(_fitted(model))
    text = export_sbml(model)
    ts = np.linspace(0.0, _t1(xml), 11)
    theirs = _roadrunner(text, ts)
    ours = simulate_sbml(model, ts, stepsize_controller=TIGHT, max_steps=1_000_000)
    checked = [_close(ours.value(s), theirs[s], f"{xml.parent.name}: {s}")
               for s in model.state_ids if s in theirs]
    assert checked


def test_events_written_in_code_against_roadrunner():
    """A periodic dose (a schedule with stop) and a threshold event (a real-valued
    condition, located by root finding) written with jc.Event."""
    decay = jc.ODE("drug", {"x": 0.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": 0.5})
    net = jc.ReactionNetwork("r", {"A": 2.0}, [jc.Reaction("use", "A", "", jc.MassAction("ka"))],
                             {"ka": 0.3})
    dose = jc.Event("dose", lambda t, x, p: {"x": x["x"] + p["amount"]}, period=2.0,
                    stop=6.0, changes={"x": "molecular/drug/x"}, parameters={"amount": 1.0})
    refill = jc.Event("refill", lambda t, x, p: {"A": x["A"] + 2.0 * x["x"]},
                      lambda t, x, p: 0.8 - x["A"], reads={"x": "molecular/drug/x"},
                      changes={"A": "molecular/r/species/A"})
    model = jc.Composite([decay, net, dose, refill])
    xml = export_sbml(model)
    doc = libsbml.readSBMLFromString(xml)
    assert doc.getModel().getNumEvents() == 5  # four doses (t = 0, 2, 4, 6) and refill
    ts = np.linspace(0.0, 9.0, 19)
    theirs = _roadrunner(xml, ts)
    ours = jc.simulate(model, 0.0, 9.0, saveat=jnp.asarray(ts), stepsize_controller=TIGHT)
    _close(np.asarray(ours["molecular/drug/x"]), theirs["x"], "x", tol=1e-6)
    _close(np.asarray(ours["A"]), theirs["A"], "A", tol=1e-6)
    assert np.any(np.diff(theirs["A"]) > 0)  # the refill fired (A only decays otherwise)


def test_discovered_model_is_written_as_its_equations():
    """A model found by jc.discovery (Lotka–Volterra from its own trajectory) exported
    and run by roadrunner: the same trajectory as jaxcell's run of the discovered
    model."""
    from jaxcell import discovery as dc

    lv = jc.models.lotka_volterra()
    ts = np.linspace(0.0, 5.0, 201)
    traj = jc.simulate(lv, 0.0, 5.0, saveat=jnp.asarray(ts), stepsize_controller=TIGHT)
    xs = np.stack([np.asarray(traj["x"]), np.asarray(traj["y"])], axis=1)
    found = dc.discover(ts, xs, dc.PolynomialLibrary(2), variables="xy",
                        optimizer=dc.STLSQ(0.1))
    xml = export_sbml(found.model)
    theirs = _roadrunner(xml, ts[::20])
    ours = jc.simulate(found.model, 0.0, 5.0, saveat=jnp.asarray(ts[::20]),
                       stepsize_controller=TIGHT)
    for v in "xy":
        _close(np.asarray(ours[f"molecular/discovered/{v}"]), theirs[v], v)
