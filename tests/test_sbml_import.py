"""jaxcell.io SBML import: semantics against analytic solutions, errors, composition and
gradients (finite differences)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.sbml import SBMLError, SBMLUnsupportedError, load_sbml, simulate_sbml, solve_sbml
from tests.sbml_builder import build

DECAY = build(
    compartments=(("cell", 2.0, True),),
    species=(("A", "cell", 10.0, False), ("B", "cell", 0.0, False)),
    parameters=(("k", 0.5, True),),
    reactions=(("r", {"A": 1}, {"B": 1}, "k * A * cell"),),
)

#: The tolerances these checks against analytic solutions use (tighter than the
#: shared defaults of simulate and simulate_sbml, rtol 1e-6 and atol 1e-8).
TIGHT = dict(rtol=1e-8, atol=1e-10)


def test_mass_action_amounts_and_concentrations_match_analytic():
    model = load_sbml(DECAY)
    ts = np.linspace(0.0, 4.0, 9)
    sol = simulate_sbml(model, ts, **TIGHT)
    assert sol.success
    a = 10.0 * np.exp(-0.5 * ts)  # amount; rate k*[A]*V = k*A in amount units
    np.testing.assert_allclose(sol.amount("A"), a, rtol=1e-7)
    np.testing.assert_allclose(sol.concentration("A"), a / 2.0, rtol=1e-7)
    np.testing.assert_allclose(sol.value("A"), a / 2.0, rtol=1e-7)  # SBML value: conc
    np.testing.assert_allclose(sol.amount("A") + sol.amount("B"), 10.0, rtol=1e-10)


def test_rules_initial_assignments_functions_and_local_parameters():
    xml = build(
        species=(("A", "cell", 3.0, True),),
        parameters=(("k0", 0.25, True), ("k", 0.0, True), ("y", 0.0, False),
                    ("z", 1.0, False)),
        functions=(("mul", "lambda(a, b, a * b)"),),
        initial_assignments=(("k", "2 * k0"),),
        # local k shadows the global one inside the kinetic law
        reactions=(("r", {"A": 1}, {}, "mul(k, A)", {"k": 0.5}),),
        assignment_rules=(("y", "A / 3 + time"),),
        rate_rules=(("z", "-k * z"),),
    )
    model = load_sbml(xml)
    ts = np.linspace(0.0, 2.0, 5)
    sol = simulate_sbml(model, ts, **TIGHT)
    np.testing.assert_allclose(sol.value("A"), 3.0 * np.exp(-0.5 * ts), rtol=1e-7)
    np.testing.assert_allclose(sol.value("y"), np.exp(-0.5 * ts) + ts, rtol=1e-7)
    np.testing.assert_allclose(sol.value("z"), np.exp(-0.5 * ts), rtol=1e-7)  # k = 0.5
    np.testing.assert_allclose(sol.value("k"), 0.5)
    # parameters are leaves: changing k0 changes the initial assignment of k
    sol2 = simulate_sbml(model, ts, parameters={"k0": 0.1, "r.k": 1.0}, **TIGHT)
    np.testing.assert_allclose(sol2.value("z"), np.exp(-0.2 * ts), rtol=1e-7)
    np.testing.assert_allclose(sol2.value("A"), 3.0 * np.exp(-ts), rtol=1e-7)


def test_event_resets_make_a_sawtooth():
    xml = build(
        parameters=(("x", 0.0, False),),
        rate_rules=(("x", "1"),),
        events=(dict(trigger="x >= 1.5", assignments=[("x", "0")]),),
    )
    ts = np.linspace(0.0, 5.0, 51)
    sol = simulate_sbml(load_sbml(xml), ts, **TIGHT)
    assert sol.success
    np.testing.assert_allclose(sol.value("x"), np.mod(ts, 1.5), atol=1e-8)


def test_delayed_event_uses_values_from_trigger_time():
    xml = build(
        parameters=(("x", 0.0, False), ("y", 0.0, False)),
        rate_rules=(("x", "1"),),
        events=(dict(trigger="time >= 1", delay="0.5", assignments=[("y", "x")]),),
    )
    ts = np.linspace(0.0, 3.0, 31)
    sol = simulate_sbml(load_sbml(xml), ts, **TIGHT)
    # y becomes x(1) = 1 at t = 1.5 (value computed at trigger time)
    np.testing.assert_allclose(sol.value("y"), np.where(ts >= 1.5 - 1e-12, 1.0, 0.0))


def test_piecewise_rate_switches_exactly_where_its_condition_changes():
    # dA/dt = -1 while A > 1, then -0.1: A = 2 - t until t = 1, then 1 - 0.1 (t - 1)
    xml = build(
        species=(("A", "cell", 2.0, True),),
        reactions=(("r", {"A": 1}, {}, "piecewise(1, A > 1, 0.1)"),),
    )
    ts = np.linspace(0.0, 3.0, 31)
    sol = simulate_sbml(load_sbml(xml), ts, **TIGHT)
    expected = np.where(ts <= 1, 2 - ts, 1 - 0.1 * (ts - 1))
    np.testing.assert_allclose(sol.value("A"), expected, atol=1e-9)


def test_delay_differential_equation_matches_method_of_steps():
    # dx/dt = -delay(x, 1), x = 1 for t <= 0
    xml = build(parameters=(("x", 1.0, False),), rate_rules=(("x", "-delay(x, 1)"),))
    ts = np.linspace(0.0, 2.0, 21)
    sol = simulate_sbml(load_sbml(xml), ts, **TIGHT)
    exact = np.where(ts <= 1, 1 - ts, 1 - ts + (ts - 1) ** 2 / 2)
    np.testing.assert_allclose(sol.value("x"), exact, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, feature, element",
    [
        (dict(parameters=(("x", 1.0, False),), algebraic_rules=("x - 1",)),
         "algebraic rules", None),
        (dict(species=(("A", "cell", 1.0, True),),
              reactions=(("fastr", {"A": 1}, {}, "A", {}, True),), version=1),
         "fast reactions", "fastr"),
    ],
)
def test_unsupported_features_name_the_feature(kwargs, feature, element):
    with pytest.raises(SBMLUnsupportedError) as info:
        load_sbml(build(**kwargs))
    assert info.value.feature == feature
    assert feature in str(info.value)
    if element:
        assert info.value.element == element


def test_bad_input_gives_clear_errors(tmp_path):
    with pytest.raises(SBMLError, match="does not exist"):
        load_sbml(tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<sbml><model>")
    with pytest.raises(SBMLError, match="bad.xml"):
        load_sbml(bad)
    xml = build(species=(("A", "cell", 1.0, True),),
                reactions=(("r", {"A": 1}, {}, "kk * A"),))
    with pytest.raises(SBMLError, match="kk"):  # libsbml's validator names it
        load_sbml(xml)
    model = load_sbml(DECAY)
    with pytest.raises(SBMLError, match="no parameter 'nope'"):
        model.replace_parameters({"nope": 1.0})
    with pytest.raises(KeyError, match="zz"):
        simulate_sbml(model, [0.0, 1.0], **TIGHT).value("zz")


def test_model_with_events_runs_under_simulate():
    """dx/dt = 1, x reset to 0 when x > 1: a sawtooth, x(t) = t mod 1, through
    jc.simulate (the one engine) as through simulate_sbml."""
    xml = build(parameters=(("x", 0.0, False),), rate_rules=(("x", "1"),),
                events=(dict(trigger="x > 1", assignments=[("x", "0")]),))
    model = load_sbml(xml, name="saw")
    ts = np.array([0.5, 1.5, 2.5])
    traj = jc.simulate(model, 0.0, 2.5, saveat=ts)
    x = np.asarray(traj["molecular/saw/state"])[:, model.state_ids.index("x")]
    np.testing.assert_allclose(x, [0.5, 0.5, 0.5], rtol=1e-6, atol=1e-6)


def test_gradient_through_events_matches_finite_differences():
    # dx/dt = k; reset to 0 when x >= 1; output x(2.5): event times depend on k
    xml = build(parameters=(("x", 0.0, False), ("k", 0.7, True)),
                rate_rules=(("x", "k"),),
                events=(dict(trigger="x >= 1", assignments=[("x", "0")]),))
    model = load_sbml(xml)
    ts = jnp.linspace(0.0, 2.5, 6)
    i = model.output_ids.index("x")

    def f(k):
        vals, status, _ = solve_sbml(model.replace_parameters({"k": k}), ts, **TIGHT)
        return vals[-1, i]

    k = 0.7
    np.testing.assert_allclose(float(f(k)), (2.5 * k) % 1.0, rtol=1e-8)
    g = jax.grad(f)(k)
    h = 1e-6
    fd = (f(k + h) - f(k - h)) / (2 * h)
    np.testing.assert_allclose(float(g), float(fd), rtol=1e-5)
    np.testing.assert_allclose(float(g), 2.5, rtol=1e-6)  # d/dk (2.5 k - 1)


@pytest.mark.slow  # the fast run checks forward mode through events in test_events.py
def test_forward_mode_through_events_and_a_time_switch():
    """jax.jacfwd with adjoint=diffrax.ForwardMode() goes through the event loop and
    a time-only piecewise input (a dose switched off at t_end), and agrees with reverse
    mode, the analytic derivative and finite differences."""
    import diffrax

    # dx/dt = k * (t <= t_end ? 1 : 0) - d x; reset x to 0 when it reaches 1.5
    xml = build(parameters=(("x", 0.0, False), ("k", 2.0, True), ("d", 0.5, True),
                            ("t_end", 1.2, True)),
                rate_rules=(("x", "piecewise(k, time <= t_end, 0) - d * x"),),
                events=(dict(trigger="x >= 1.5", assignments=[("x", "0")]),))
    model = load_sbml(xml)
    ts = jnp.linspace(0.0, 3.0, 7)
    i = model.output_ids.index("x")

    def f(q, adjoint=None):
        m = model.replace_parameters({"k": q[0], "d": q[1], "t_end": q[2]})
        vals, status, _ = solve_sbml(m, ts, adjoint=adjoint, **TIGHT)
        return vals[:, i]

    q = jnp.array([2.0, 0.5, 1.2])
    jf = jax.jacfwd(lambda q: f(q, diffrax.ForwardMode()))(q)
    jr = jax.jacrev(f)(q)
    np.testing.assert_allclose(jf, jr, rtol=1e-9, atol=1e-12)
    h = 1e-6
    fd = jnp.stack([(f(q.at[j].add(h)) - f(q.at[j].add(-h))) / (2 * h) for j in range(3)],
                   axis=1)
    np.testing.assert_allclose(jf, fd, rtol=1e-4, atol=1e-6)
    # after the reset at t* (k/d)(1 - e^{-d t*}) = 1.5 and before t_end, x grows again
    # from 0; after t_end it decays: x(3) = x(t_end) e^{-d (3 - t_end)}
    k, d, te = 2.0, 0.5, 1.2
    t_star = -np.log(1 - 1.5 * d / k) / d
    x_te = (k / d) * (1 - np.exp(-d * (te - t_star)))
    np.testing.assert_allclose(float(f(q)[-1]), x_te * np.exp(-d * (3.0 - te)), rtol=1e-7)
    with pytest.raises(jc.SimulationError, match="ForwardMode"):
        solve_sbml(model, ts, adjoint=diffrax.BacksolveAdjoint())


def test_sbml_model_per_cell_in_a_composite_simulates_and_differentiates():
    # gene expression in each of 3 cells (SBML), driven by a shared signal s (ODE) that
    # the cells' protein produces: a per-cell SBML process composed with other processes
    gene = build(
        species=(("m", "cell", 0.0, True), ("p", "cell", 0.0, True)),
        parameters=(("ktx", 1.0, True), ("ktl", 2.0, True), ("dm", 1.0, True),
                    ("dp", 0.5, True)),
        reactions=(("tx", {}, {"m": 1}, "ktx"), ("mdeg", {"m": 1}, {}, "dm * m"),
                   ("tl", {}, {"p": 1}, "ktl * m"), ("pdeg", {"p": 1}, {}, "dp * p")),
    )
    net = load_sbml(gene, name="gene").per_cell(3).replace_parameters(
        {"ktx": jnp.array([0.5, 1.0, 1.5])})
    im = net.state_ids.index("m")
    signal = jc.ODE("signal", {"s": 0.0},
                    lambda t, y, p: {"s": p["a"] * jnp.mean(y["x"][:, -1]) - y["s"]},
                    parameters={"a": 0.3}, inputs={"x": "molecular/gene/state"})
    drive = jc.Coupling(
        "drive",
        lambda t, y, p: {"x": jnp.zeros_like(y["x"]).at[:, im].set(p["b"] * y["s"])},
        changes={"x": "molecular/gene/state"}, reads={"s": "molecular/signal/s"},
        parameters={"b": 0.2})
    model = jc.Composite([net, signal, drive])

    def final_s(ktl):
        m = model.replace_parameters({"gene.ktl": ktl})
        tr = jc.simulate(m, 0.0, 5.0, saveat=[5.0],
                         stepsize_controller=jc.default_controller(rtol=1e-10, atol=1e-12))
        return tr["molecular/signal/s"][-1]

    # reference: the same system written by hand, integrated by scipy
    from scipy.integrate import solve_ivp

    ktx = np.array([0.5, 1.0, 1.5])

    def rhs(t, y, ktl=2.0):
        m, p, s = y[:3], y[3:6], y[6]
        dm = ktx - m + 0.2 * s
        dp = ktl * m - 0.5 * p
        return np.concatenate([dm, dp, [0.3 * p.mean() - s]])

    ref = solve_ivp(rhs, (0, 5), np.zeros(7), method="LSODA", rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(float(final_s(2.0)), ref.y[6, -1], rtol=1e-7)
    g = jax.grad(final_s)(2.0)
    h = 1e-5
    fd = (final_s(2.0 + h) - final_s(2.0 - h)) / (2 * h)
    np.testing.assert_allclose(float(g), float(fd), rtol=1e-5)


def test_invalid_sbml_is_reported_with_libsbml_messages():
    # a reaction whose species reference names a compartment, not a species
    xml = build(species=(("A", "cell", 1.0, True),),
                reactions=(("r", {"A": 1}, {}, "A"),)).replace('species="A" stoichiometry',
                                                               'species="cell" stoichiometry')
    with pytest.raises(SBMLError, match="invalid SBML.*line"):
        load_sbml(xml)
