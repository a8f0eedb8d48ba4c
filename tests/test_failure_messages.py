"""Failures that say what to do: a step limit with an explicit solver on a stiff model
suggests a stiff one; an SBML species that only reactions change going negative is
reported by name; the same failure inside jit is an error with the same advice."""

from __future__ import annotations

import diffrax
import jax
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.sbml import load_sbml, simulate_sbml
from tests.sbml_builder import build


def _robertson():
    """Robertson's stiff chemical kinetics (rate constants 0.04, 3e7, 1e4)."""
    return jc.ODE("rober", {"y1": 1.0, "y2": 0.0, "y3": 0.0}, lambda t, y, p: {
        "y1": -0.04 * y["y1"] + 1e4 * y["y2"] * y["y3"],
        "y2": 0.04 * y["y1"] - 1e4 * y["y2"] * y["y3"] - 3e7 * y["y2"] ** 2,
        "y3": 3e7 * y["y2"] ** 2})


def test_step_limit_on_a_stiff_model_suggests_a_stiff_solver():
    with pytest.raises(jc.SimulationError) as e:
        jc.simulate(_robertson(), 0.0, 100.0, solver=diffrax.Tsit5(), max_steps=200)
    msg = str(e.value)
    assert "max_steps=200" in msg and "stiff" in msg and "Rodas5" in msg
    assert "EQX_ON_ERROR" not in msg  # no equinox debugging text at the user level
    # the suggested solver does the job (y1 + y2 + y3 = 1 is conserved)
    traj = jc.simulate(_robertson(), 0.0, 100.0, saveat=[100.0])
    total = sum(float(traj[f"molecular/rober/{k}"][-1]) for k in ("y1", "y2", "y3"))
    assert abs(total - 1.0) < 1e-7


def test_step_limit_inside_jit_is_an_error_with_the_same_advice():
    @jax.jit
    def run(scale):
        model = jc.ODE("rober", {"y1": 1.0, "y2": 0.0, "y3": 0.0}, lambda t, y, p: {
            "y1": -0.04 * y["y1"] + p["s"] * 1e4 * y["y2"] * y["y3"],
            "y2": 0.04 * y["y1"] - p["s"] * 1e4 * y["y2"] * y["y3"] - 3e7 * y["y2"] ** 2,
            "y3": 3e7 * y["y2"] ** 2}, parameters={"s": scale})
        return jc.simulate(model, 0.0, 100.0, solver=diffrax.Tsit5(), max_steps=200).ts

    with pytest.raises(Exception, match="probably stiff"):  # jax wraps equinox's error
        run(1.0)


def _negative_rate_model(k):
    return build(species=(("A", "cell", 1.0, True), ("B", "cell", 0.0, True)),
                 parameters=(("k", k, True),),
                 reactions=(("r", {"A": 1}, {"B": 1}, "k * A"),))


def test_sbml_species_going_negative_is_reported_by_name():
    """A -> B with k = -0.5: A grows as e^{0.5 t} and B = 1 - e^{0.5 t} < 0. SBML allows
    negative values, so the simulation itself is right; jaxcell reports B by name."""
    model = load_sbml(_negative_rate_model(-0.5))
    ts = np.linspace(0.0, 2.0, 5)
    with pytest.raises(jc.SimulationError, match="species 'B' went negative"):
        simulate_sbml(model, ts)
    sol = simulate_sbml(model, ts, throw=False)
    assert not sol.success and "'B'" in sol.messages()[0]
    assert sol.result == jc.RESULTS.negative_amount
    # the numbers are still the exact solution; allow_negative accepts them
    ok = simulate_sbml(model, ts, allow_negative=True)
    assert ok.success
    np.testing.assert_allclose(ok.amount("B"), 1.0 - np.exp(0.5 * ts), rtol=1e-5)
    with pytest.raises(jc.SimulationError, match="'k' = -0.5 in reaction 'r'"):
        simulate_sbml(model, ts)
    # a positive rate constant: no report
    good = simulate_sbml(load_sbml(_negative_rate_model(0.5)), ts)
    np.testing.assert_allclose(good.amount("B"), 1.0 - np.exp(-0.5 * ts), rtol=1e-5)


def test_legal_negative_amounts_are_not_reported():
    """Zero-order consumption A -> (rate k = 0.5) takes A below zero by SBML's own
    semantics (the SBML Test Suite expects such values): no report, A = 1 - k t."""
    xml = build(species=(("A", "cell", 1.0, True),), parameters=(("k", 0.5, True),),
                reactions=(("r", {"A": 1}, {}, "k"),))
    ts = np.linspace(0.0, 4.0, 5)
    sol = simulate_sbml(load_sbml(xml), ts)
    assert sol.success
    np.testing.assert_allclose(sol.amount("A"), 1.0 - 0.5 * ts, rtol=1e-9, atol=1e-9)


def test_bad_parameter_under_nuts_gives_the_named_message():
    """A prior that proposes negative rate constants: NUTS stops with the same message
    that names the network and the parameter outside jit."""
    import numpyro.distributions as dist

    from jaxcell.inference import numpyro_model, sample_nuts

    net = jc.ReactionNetwork("net", {"A": 1.0}, [jc.Reaction("r", "A", "", "k1")],
                             {"k1": 0.5})
    ts = np.linspace(0.0, 2.0, 3)

    def simulate(theta):
        return jc.simulate(net.replace_parameters({"k1": theta["k1"]}), 0.0, 2.0,
                           saveat=ts, throw=False)

    model = numpyro_model(simulate, {"k1": dist.Normal(-1.0, 0.1)},
                          lambda traj, theta: dist.Normal(traj["A"], 0.1))
    with pytest.raises(Exception, match="'net'.*'k1'.*negative"):
        sample_nuts(model, np.exp(-0.5 * ts), key=jax.random.key(0), num_warmup=2,
                    num_samples=2)
    with pytest.raises(jc.ModelError, match="'net'.*'k1'.*negative"):
        net.replace_parameters({"k1": -1.0})
