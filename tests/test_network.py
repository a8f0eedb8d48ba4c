"""Reaction networks: stoichiometry, vectorised rate laws, conservation, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc


def mixed_network(**kw):
    """One reaction of every rate-law kind, with hand-computable rates."""
    species = {"A": 1.5, "B": 0.7, "C": 0.2, "E": 0.3, "R": 2.0}
    reactions = [
        jc.Reaction("bind", "A + 2 B", "C", jc.MassAction("k1", "k2")),
        jc.Reaction("conv", "C", "A", jc.MichaelisMenten("vm", "km", enzyme="E")),
        jc.Reaction("act", "", "B", jc.HillActivation("va", "ka", "na", activator="A")),
        jc.Reaction("rep", "", "E", jc.HillRepression("vr", "kr", "nr", repressor="R")),
        jc.Reaction("cust", "E", "", jc.Custom(lambda s, p: p["kc"] * s["E"] * s["R"]),
                    modifiers=("R",)),
        jc.Reaction("source", "", "R", 0.4),
    ]
    params = {"k1": 2.0, "k2": 0.5, "vm": 1.2, "km": 0.4, "va": 0.9, "ka": 0.8, "na": 2.5,
              "vr": 1.1, "kr": 1.3, "nr": 3.0, "kc": 0.25}
    params.update(kw)
    return jc.ReactionNetwork("mixed", species, reactions, params)


def hand_derivative(x, p):
    A, B, C, E, R = x
    v_bind = p["k1"] * A * B**2 - p["k2"] * C
    v_conv = p["vm"] * E * C / (p["km"] + C)
    v_act = p["va"] * A ** p["na"] / (p["ka"] ** p["na"] + A ** p["na"])
    v_rep = p["vr"] * p["kr"] ** p["nr"] / (p["kr"] ** p["nr"] + R ** p["nr"])
    v_cust = p["kc"] * E * R
    v_src = 0.4
    return np.array([
        -v_bind + v_conv,
        -2 * v_bind + v_act,
        v_bind - v_conv,
        v_rep - v_cust,
        v_src,
    ])


def test_rates_match_hand_computation():
    net = mixed_network()
    x = np.asarray(net.x0)
    p = {k: float(v) for k, v in net.parameters().items()}
    np.testing.assert_allclose(net.derivative(net.x0), hand_derivative(x, p), rtol=1e-13)
    assert net.parameter_names[-1] == "source.k"  # literal numbers become parameters
    assert net.species == ("A", "B", "C", "E", "R")


def test_stoichiometry_and_reaction_rates():
    net = mixed_network()
    N = net.stoichiometry
    assert N.shape == (5, 6)
    np.testing.assert_array_equal(N[:, 0], [-1, -2, 1, 0, 0])
    v = net.reaction_rates(net.x0)
    np.testing.assert_allclose(N @ np.asarray(v), net.derivative(net.x0), rtol=1e-13)
    x = np.asarray(net.x0)
    np.testing.assert_allclose(v[0], 2.0 * x[0] * x[1] ** 2 - 0.5 * x[2], rtol=1e-13)


def test_sparse_and_dense_paths_agree():
    """A large network switches to the sparse product; both give the same rates."""
    rng = np.random.default_rng(0)
    n_s, n_r = 60, 120
    species = {f"S{i}": float(rng.uniform(0.1, 2)) for i in range(n_s)}
    reactions, params = [], {}
    for j in range(n_r):
        a, b, c = rng.choice(n_s, 3, replace=False)
        params[f"k{j}"] = float(rng.uniform(0.1, 1))
        reactions.append(jc.Reaction(f"r{j}", f"S{a} + S{b}", f"S{c}", jc.MassAction(f"k{j}")))
    net = jc.ReactionNetwork("big", species, reactions, params)
    assert net.structure.sparse
    x = np.asarray(net.x0)
    v = np.array([params[f"k{j}"] * np.prod([x[species_idx] for species_idx in
                  np.nonzero(net.stoichiometry[:, j] < 0)[0]]) for j in range(n_r)])
    np.testing.assert_allclose(net.derivative(net.x0), net.stoichiometry @ v, rtol=1e-12)


def test_conservation_laws_mass_action_mm():
    net = jc.models.michaelis_menten_mass_action()
    laws = net.conservation_laws()
    assert [law.coefficients for law in laws] == [{"E": 1.0, "C": 1.0},
                                                  {"S": 1.0, "C": 1.0, "P": 1.0}]
    assert [law.total for law in laws] == pytest.approx([0.01, 2.0])
    # Each law is in the left null space of N.
    for law in laws:
        c = np.array([law.coefficients.get(s, 0.0) for s in net.species])
        np.testing.assert_allclose(c @ net.stoichiometry, 0.0, atol=1e-14)


def test_conservation_laws_mapk_totals():
    net = jc.models.kholodenko_mapk()
    totals = sorted(law.total for law in net.conservation_laws())
    assert totals == pytest.approx([100.0, 300.0, 300.0])


def test_fixed_species_and_inputs():
    inducer = jc.ODE("inducer", {"I": 2.0}, lambda t, y, p: {"I": 0.0 * y["I"]})
    net = jc.ReactionNetwork(
        "gene", {"G": 1.0, "X": 0.0},
        [jc.Reaction("expr", "G", "G + X", jc.Custom(lambda s, p: p["k"] * s["G"] * s["I"],
                                                     modifiers=("I",))),
         jc.Reaction("use", "G", "", jc.MassAction("d"))],
        {"k": 0.5, "d": 1.0}, inputs={"I": "molecular/inducer/I"}, fixed=("G",))
    model = jc.Composite([inducer, net])
    traj = jc.simulate(model, 0.0, 2.0, saveat=[2.0],
                       stepsize_controller=jc.default_controller(1e-10, 1e-12))
    # G is fixed at 1, so X = k * G * I * t = 0.5 * 1 * 2 * 2.
    np.testing.assert_allclose(traj["X"], [2.0], rtol=1e-9)
    np.testing.assert_allclose(traj["G"], [1.0], rtol=1e-12)


def test_reaction_strings():
    r = jc.Reaction.from_string("r", "2 A + B <-> C", jc.MassAction(1.0, 2.0))
    assert r.reactants == {"A": 2.0, "B": 1.0} and r.products == {"C": 1.0}
    assert r.reversible
    assert jc.Reaction("s", "", "A", 1.0).reactants == {}
    with pytest.raises(jc.ModelError, match="must be MassAction"):
        jc.Reaction.from_string("r", "A <-> B", jc.MassAction(1.0))
    with pytest.raises(jc.ModelError, match="no arrow"):
        jc.Reaction.from_string("r", "A = B", 1.0)
    with pytest.raises(jc.ModelError, match="cannot read '2x A'"):
        jc.Reaction("r", "2x A", "B", 1.0)
    with pytest.raises(jc.ModelError, match="coefficient -1.0"):
        jc.Reaction("r", {"A": -1}, "B", 1.0)


@pytest.mark.parametrize("build,match", [
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "Bx", 1.0)]),
     "reaction 'r': unknown product species 'Bx'"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", "kk")], {"k": 1.0}),
     "refers to parameter 'kk'.*Did you mean 'k'"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", "k")], {"k": -1.0}),
     "parameter 'k' is negative; it must be non-negative"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", "k")],
                                {"k": float("nan")}),
     "parameter 'k' is NaN"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [
        jc.Reaction("r", "", "A", jc.HillRepression(1.0, 1.0, 0.0, repressor="A"))]),
     "parameter 'r.n' is zero or negative; it must be positive"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [
        jc.Reaction("r", "", "A", jc.HillRepression(1.0, 1.0, 2.0, repressor="Q"))]),
     "repressor 'Q' is not a species or input"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "1.5 A", "", 1.0)]),
     "whole-number coefficients"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", 1.0),
                                                  jc.Reaction("r", "", "A", 1.0)]),
     "two reactions are named 'r'"),
    (lambda: jc.ReactionNetwork("n", {"A": jnp.ones(2)}, [jc.Reaction("r", "A", "", 1.0)]),
     "initial value of species 'A' must be a scalar"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, ["A -> B"]),
     "must be jc.Reaction objects"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", 1.0)],
                                fixed=("Z",)),
     "fixed species 'Z'"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0, "B": 1.0}, [
        jc.Reaction("r", "A + B", "", jc.MichaelisMenten(1.0, 1.0))]),
     "MichaelisMenten needs 'substrate='"),
    (lambda: jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", 1.0)],
                                {"k": "fast"}),
     "parameter 'k' must be a scalar number"),
])
def test_bad_input_names_the_culprit(build, match):
    with pytest.raises(jc.ModelError, match=match):
        build()


def test_replace_parameters_validates():
    net = jc.models.repressilator()
    with pytest.raises(jc.ModelError, match="'beta' is negative; it must be non-negative"):
        net.replace_parameters({"beta": -0.1})
    with pytest.raises(jc.ModelError, match="no parameter 'alfa'.*Did you mean 'alpha'"):
        net.replace_parameters({"alfa": 1.0})
    with pytest.raises(jc.ModelError, match=r"scalar; got shape \(2,\)"):
        net.replace_parameters({"alpha": jnp.ones(2)})
    with pytest.raises(jc.ModelError, match="no species 'p_lac'"):
        net.replace_initial({"p_lac": 1.0})


def test_unknown_name_in_custom_law_is_reported():
    net = jc.ReactionNetwork("n", {"A": 1.0}, [
        jc.Reaction("r", "A", "", jc.Custom(lambda s, p: p["k"] * s["Aa"]))], {"k": 1.0})
    with pytest.raises(jc.ModelError, match="species or input: no 'Aa'.*Did you mean 'A'"):
        net.derivative(net.x0)


def test_hill_gradient_finite_at_zero():
    """Hill terms stay differentiable (no NaN) when a species is exactly zero."""
    net = jc.ReactionNetwork("n", {"A": 0.0, "B": 0.0}, [
        jc.Reaction("r", "", "B", jc.HillActivation(1.0, 1.0, "n", activator="A"))],
        {"n": 2.0})
    g = jax.grad(lambda p: net.replace_parameters({"n": p}).derivative(net.x0)[1])(2.0)
    assert np.isfinite(float(g)) and float(g) == 0.0


def test_a_new_rate_law_kind_is_one_class():
    """A kind owns its compile (index arrays) and evaluate (vectorised rates)."""
    from jaxcell.molecular._kinds import Compiled, index_array

    class Constant(jc.AbstractRateLaw):
        v: str | float

        @classmethod
        def compile(cls, reactions, ctx):
            return Compiled({"v": index_array([ctx.parameter(r, "v", r.rate.v)
                                               for r in reactions])},
                            [(i, 1.0) for i in range(len(reactions))])

        @classmethod
        def evaluate(cls, arrays, laws, xe, p, ctx):
            return p[arrays["v"]]

    net = jc.ReactionNetwork("n", {"A": 1.0, "B": 0.0}, [
        jc.Reaction("make", "", "B", Constant("v")),
        jc.Reaction("decay", "A", "", jc.MassAction(0.5)),
        jc.Reaction("make2", "", "A", Constant(0.25))], {"v": 2.0})
    np.testing.assert_allclose(net.derivative(net.x0), [-0.5 + 0.25, 2.0], rtol=1e-14)
    assert net.parameter_names == ("v", "decay.k", "make2.v")
    with pytest.raises(jc.ModelError, match="'v' is negative; it must be non-negative"):
        net.replace_parameters({"v": -1.0})
