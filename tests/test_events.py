"""Events in the core engine: events written in code (doses, resets, thresholds), SBML
events composed with other processes and per cell, gradients through event times, the
segment budget. References are analytic solutions, finite differences and the SBML
model simulated alone."""

from __future__ import annotations

from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.sbml import load_sbml, simulate_sbml

HERE = Path(__file__).resolve().parent
CASE_00026 = HERE / "data" / "sbml-test-suite" / "cases" / "00026" / "00026-sbml-l3v2.xml"
TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)


# -- events written in code ------------------------------------------------------------
def _dosed(k=0.5, amount=1.0, period=2.0):
    decay = jc.ODE("drug", {"x": 0.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": k})
    dose = jc.Event("dose", lambda t, x, p: {"x": x["x"] + p["amount"]}, period=period,
                    changes={"x": "molecular/drug/x"}, parameters={"amount": amount})
    return jc.Composite([decay, dose])


def _bolus_analytic(t, k=0.5, amount=1.0, period=2.0):
    """x(t) after boluses at 0, period, 2·period, ... (the one at t itself included)."""
    n = np.floor(t / period + 1e-12)
    return sum(amount * np.exp(-k * (t - j * period)) for j in range(int(n) + 1))


def test_periodic_bolus_dose_matches_analytic_solution():
    ts = np.array([0.0, 0.5, 1.999, 2.0, 3.3, 6.0, 7.9])
    traj = jc.simulate(_dosed(), 0.0, 8.0, saveat=ts, stepsize_controller=TIGHT)
    expected = np.array([_bolus_analytic(t) for t in ts])
    np.testing.assert_allclose(np.asarray(traj["molecular/drug/x"]), expected, rtol=1e-8)
    # the dose at t = 2 is in the saved value at t = 2 (the state after the event)
    assert abs(float(traj["molecular/drug/x"][3]) - (1 + np.exp(-1.0))) < 1e-8


def _neuron(current=2.0, threshold=1.0):
    """A leaky integrate-and-fire neuron, dv/dt = I - v, reset to 0 at v = threshold;
    the reset records its time in ``t_spike`` and counts spikes in ``n``."""
    cell = jc.ODE("neuron", {"v": 0.0, "t_spike": 0.0, "n": 0.0},
                  lambda t, y, p: {"v": p["I"] - y["v"], "t_spike": 0.0, "n": 0.0},
                  parameters={"I": current})
    fire = jc.Event(
        "fire", lambda t, x, p: {"v": 0.0, "t_spike": t, "n": x["n"] + 1.0},
        lambda t, x, p: x["v"] - p["threshold"],
        changes={"v": "molecular/neuron/v", "t_spike": "molecular/neuron/t_spike",
                 "n": "molecular/neuron/n"},
        parameters={"threshold": threshold})
    return jc.Composite([cell, fire])


def test_integrate_and_fire_period_matches_analytic():
    current, threshold = 2.0, 1.0
    period = np.log(current / (current - threshold))  # time from 0 to the threshold
    traj = jc.simulate(_neuron(current, threshold), 0.0, 10.0, saveat=[10.0],
                       stepsize_controller=TIGHT)
    n = float(traj["molecular/neuron/n"][-1])
    assert n == np.floor(10.0 / period)
    np.testing.assert_allclose(float(traj["molecular/neuron/t_spike"][-1]), n * period,
                               rtol=1e-9)
    v_end = current * (1 - np.exp(-(10.0 - n * period)))
    np.testing.assert_allclose(float(traj["molecular/neuron/v"][-1]), v_end, rtol=1e-8)


def _first_spike(current, adjoint=None):
    traj = jc.simulate(_neuron(current), 0.0, 1.0, saveat=[1.0], stepsize_controller=TIGHT,
                       adjoint=adjoint)
    return traj["molecular/neuron/t_spike"][-1]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_gradient_of_event_time_matches_analytic_and_finite_differences(mode):
    """t* = ln(I / (I - 1)), so dt*/dI = 1/I - 1/(I - 1)."""
    current = 2.0
    if mode == "reverse":
        grad = jax.grad(_first_spike)(current)
    else:
        grad = jax.jacfwd(lambda c: _first_spike(c, diffrax.ForwardMode()))(current)
    analytic = 1 / current - 1 / (current - 1)
    np.testing.assert_allclose(float(_first_spike(current)), np.log(2.0), rtol=1e-10)
    np.testing.assert_allclose(float(grad), analytic, rtol=1e-6)
    h = 1e-5
    fd = (_first_spike(current + h) - _first_spike(current - h)) / (2 * h)
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-5)


def test_events_under_vmap_each_member_fires_its_own():
    """A vmapped simulation over the input current: each member's spike count is its
    own analytic count."""
    currents = jnp.array([1.5, 2.0, 4.0])

    def count(c):
        model = _neuron().replace_parameters({"neuron.I": c})
        return jc.simulate(model, 0.0, 6.0, saveat=[6.0])["molecular/neuron/n"][-1]

    counts = jax.vmap(count)(currents)
    expected = np.floor(6.0 / np.log(np.asarray(currents) / (np.asarray(currents) - 1.0)))
    np.testing.assert_array_equal(np.asarray(counts), expected)


def test_per_cell_event_fires_per_cell():
    """``cells=3``: each cell resets on its own threshold crossing."""
    rates = np.array([1.0, 2.0, 3.0])
    growth = jc.ODE("cells", {"v": jnp.zeros(3)}, lambda t, y, p: {"v": p["r"]},
                    parameters={"r": rates})
    reset = jc.Event("reset", lambda t, x, p: {"v": jnp.zeros(3)},
                     lambda t, x, p: x["v"] - 1.0, changes={"v": "molecular/cells/v"},
                     cells=3)
    traj = jc.simulate([growth, reset], 0.0, 2.4, saveat=[2.4], stepsize_controller=TIGHT)
    np.testing.assert_allclose(np.asarray(traj["molecular/cells/v"][-1]),
                               (2.4 * rates) % 1.0, atol=1e-8)


def test_competing_events_retriggering_hundreds_of_times_run_to_the_end():
    """Two non-persistent events switch a flow back and forth every 0.02 time units
    over [0, 100] (thousands of firings): the loop's budget grows with the request."""
    flow = jc.ODE("tank", {"x": 0.0, "up": 1.0}, lambda t, y, p: {
        "x": jnp.where(y["up"] > 0.5, 1.0, -1.0), "up": 0.0})
    top = jc.Event("top", lambda t, x, p: {"up": 0.0}, lambda t, x, p: x["x"] - 0.01,
                   changes={"up": "molecular/tank/up"}, reads={"x": "molecular/tank/x"},
                   persistent=False, initial_value=True)
    bottom = jc.Event("bottom", lambda t, x, p: {"up": 1.0}, lambda t, x, p: -0.01 - x["x"],
                      changes={"up": "molecular/tank/up"}, reads={"x": "molecular/tank/x"},
                      persistent=False, initial_value=True)
    traj = jc.simulate([flow, top, bottom], 0.0, 100.0, saveat=[100.0])
    assert bool(traj.success)
    assert int(traj.stats["num_segments"]) > 4000
    # a triangle wave between -0.01 and 0.01 with period 0.04: x(100) = 0 (t = 0.01 +
    # 2499.75 periods... exactly: rising from 0 at t = 0, x(t) = tri(t))
    phase = (100.0 - 0.01) % 0.04
    x = 0.01 - phase if phase <= 0.02 else -0.01 + (phase - 0.02)
    np.testing.assert_allclose(float(traj["molecular/tank/x"][-1]), x, atol=1e-6)
    with pytest.raises(jc.SimulationError, match="max_segments=50"):
        jc.simulate([flow, top, bottom], 0.0, 100.0, saveat=[100.0], max_segments=50)


# -- SBML events on the same engine ---------------------------------------------------------
def test_sbml_events_compose_with_a_reaction_network_per_cell():
    """SBML Test Suite case 00026 (S1 -> S2, S1 reset to 1 when it falls below 0.1)
    in each of 3 cells with different rate constants, composed with a reaction network:
    each cell equals the model simulated alone with its parameter, to 1e-8."""
    base = load_sbml(CASE_00026, name="case")
    ks = np.array([0.8, 1.0, 1.7])
    cells = base.per_cell(3).replace_parameters({"k1": ks})
    net = jc.ReactionNetwork("other", {"A": 1.0, "B": 0.0},
                             [jc.Reaction("conv", "A", "B", jc.MassAction(0.3))])
    ts = np.linspace(0.0, 5.0, 11)
    traj = jc.simulate(jc.Composite([cells, net]), 0.0, 5.0, saveat=ts,
                       stepsize_controller=TIGHT)
    state = np.asarray(traj["molecular/case/state"])  # (times, cells, ids)
    i1 = base.state_ids.index("S1")
    for c, k in enumerate(ks):
        alone = simulate_sbml(base.replace_parameters({"k1": k}), ts, rtol=1e-10,
                              atol=1e-12)
        np.testing.assert_allclose(state[:, c, i1], alone.amount("S1"), atol=1e-8)
    # the network next to it is untouched by the events
    np.testing.assert_allclose(np.asarray(traj["A"]), np.exp(-0.3 * ts), rtol=1e-8)
