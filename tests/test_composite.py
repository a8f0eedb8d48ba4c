"""Wiring checks, derived ordering, nesting and summed contributions."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc


class Owner(jc.AbstractContinuousProcess):
    """Minimal process owning one path (used to provoke two-owner conflicts)."""

    name: str
    path: tuple
    x0: float = 1.0

    def ports(self):
        return jc.Ports(owns={self.path: jc.Var(())})

    def initial_values(self):
        return {self.path: jnp.asarray(self.x0)}

    def parameters(self):
        return {}

    def replace_parameters(self, values):
        return self

    def rates(self, t, state, args):
        return {self.path: -state[self.path]}


def decay(name="x", k=1.0, x0=1.0):
    return jc.ODE(name, {"x": x0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                  parameters={"k": k})


def test_contributions_are_summed_analytic():
    # dx/dt = -k x + c  =>  x(t) = c/k + (x0 - c/k) exp(-k t)
    k, c, x0 = 0.7, 0.3, 2.0
    model = jc.Composite([
        decay(k=k, x0=x0),
        jc.Coupling("source", lambda t, x, p: {"x": p["c"] + 0.0 * x["x"]},
                    changes={"x": "molecular/x/x"}, parameters={"c": c}),
    ])
    ts = jnp.linspace(0, 5, 11)
    traj = jc.simulate(model, 0.0, 5.0, saveat=ts,
                       stepsize_controller=jc.default_controller(1e-10, 1e-12))
    exact = c / k + (x0 - c / k) * np.exp(-k * np.asarray(ts))
    np.testing.assert_allclose(traj["molecular/x/x"], exact, rtol=1e-8)


def test_missing_path_names_process_and_path():
    model = jc.Composite([
        decay(),
        jc.Coupling("leak", lambda t, x, p: {"x": -x["y"]}, changes={"x": "molecular/x/x"},
                    reads={"y": "molecular/x/why"}),
    ])
    with pytest.raises(jc.WiringError, match=r"Coupling 'leak' read 'molecular/x/why'"):
        jc.simulate(model, 0.0, 1.0)


def test_change_of_unowned_path():
    model = jc.Composite([decay(), jc.Coupling("c", lambda t, x, p: {"z": 1.0},
                                                 changes={"z": "molecular/nobody/z"})])
    with pytest.raises(jc.WiringError, match="'molecular/nobody/z', which no process owns"):
        model.check_closed()


def test_two_owners():
    with pytest.raises(jc.WiringError, match="'a' and Owner 'b' both own 'm/e/x'|"
                                               "'b' and Owner 'a' both own 'm/e/x'"):
        jc.Composite([Owner("a", ("m", "e", "x")), Owner("b", ("m", "e", "x"))])


def test_two_setters_of_one_variable():
    a = jc.Assignment("obs1", "molecular/x/total", lambda t, x, p: 2 * x["x"],
                      reads={"x": "molecular/x/x"})
    b = jc.Assignment("obs2", "molecular/x/total", lambda t, x, p: 3 * x["x"],
                      reads={"x": "molecular/x/x"})
    with pytest.raises(jc.WiringError, match="both set 'molecular/x/total'"):
        jc.Composite([decay(), a, b])


def test_owned_and_set():
    a = jc.Assignment("obs", "molecular/x/x", lambda t, x, p: 1.0)
    with pytest.raises(jc.WiringError, match="owned .* and also set"):
        jc.Composite([decay(), a])


def test_changes_of_derived_variable():
    a = jc.Assignment("obs", "molecular/x/y", lambda t, x, p: 2 * x["x"],
                      reads={"x": "molecular/x/x"})
    c = jc.Coupling("c", lambda t, x, p: {"y": 1.0}, changes={"y": "molecular/x/y"})
    with pytest.raises(jc.WiringError, match="derived variable"):
        jc.Composite([decay(), a, c])


def test_duplicate_names():
    with pytest.raises(jc.WiringError, match="Two processes are named 'x'"):
        jc.Composite([decay("x"), decay("x")])


def test_shape_mismatch_on_read():
    vec = jc.ODE("v", {"u": jnp.ones(2)}, lambda t, y, p: {"u": -y["u"]})
    net = jc.ReactionNetwork("n", {"A": 1.0}, [jc.Reaction("r", "A", "", jc.MassAction(1.0))],
                             inputs={"u": "molecular/v/u"})
    with pytest.raises(jc.WiringError, match=r"ReactionNetwork 'n' reads 'molecular/v/u' "
                                             r"with shape \(\)"):
        jc.Composite([vec, net])


def test_rate_shape_mismatch_detected_at_trace():
    bad = jc.Coupling("bad", lambda t, x, p: {"x": jnp.ones(3)}, changes={"x": "molecular/x/x"})
    with pytest.raises(jc.WiringError, match=r"'bad' returned a rate for 'molecular/x/x' "
                                             r"with shape \(3,\)"):
        jc.simulate(jc.Composite([decay(), bad]), 0.0, 1.0)


def test_undeclared_return_and_read():
    bad = jc.Coupling("bad", lambda t, x, p: {"q": 1.0}, changes={"x": "molecular/x/x"})
    with pytest.raises(jc.WiringError, match="returned \\['q'\\]"):
        jc.simulate(jc.Composite([decay(), bad]), 0.0, 1.0)


def test_derived_cycle():
    a = jc.Assignment("a", "m/e/a", lambda t, x, p: x["b"], reads={"b": "m/e/b"})
    b = jc.Assignment("b", "m/e/b", lambda t, x, p: x["a"], reads={"a": "m/e/a"})
    with pytest.raises(jc.WiringError, match="cycle"):
        jc.Composite([decay(), a, b])


def test_derived_order_and_saved_observables():
    # Listed in reverse dependency order on purpose: total2 reads total.
    total2 = jc.Assignment("total2", "molecular/x/total2", lambda t, x, p: 2 * x["tot"],
                           reads={"tot": "molecular/x/total"})
    total = jc.Assignment("total", "molecular/x/total", lambda t, x, p: x["x"] + 1,
                          reads={"x": "molecular/x/x"})
    model = jc.Composite([total2, decay(), total])
    ts = jnp.linspace(0, 1, 5)
    traj = jc.simulate(model, 0.0, 1.0, saveat=ts,
                       stepsize_controller=jc.default_controller(1e-10, 1e-12))
    x = np.exp(-np.asarray(ts))
    np.testing.assert_allclose(traj["molecular/x/total"], x + 1, rtol=1e-8)
    np.testing.assert_allclose(traj["total2"], 2 * (x + 1), rtol=1e-8)


def test_nested_composites_and_parameters():
    # The inner composite reads a path that only the outer one provides.
    inner = jc.Composite([
        jc.ODE("y", {"y": 0.0}, lambda t, y, p: {"y": p["a"] * y["x"] - y["y"]},
               inputs={"x": "molecular/x/x"}, parameters={"a": 2.0}),
    ], name="inner")
    with pytest.raises(jc.WiringError, match="no process owns or sets"):
        inner.check_closed()
    outer = jc.Composite([inner, decay(k=0.5)], name="outer")
    assert sorted(outer.parameters()) == ["x.k", "y.a"]
    outer2 = outer.replace_parameters({"y.a": 4.0})
    assert float(outer2.parameters()["y.a"]) == 4.0
    assert isinstance(outer2.children[0], jc.Composite)
    # y' = a x - y with x = exp(-t/2): y = 2a (exp(-t/2) - exp(-t))
    ts = jnp.linspace(0, 4, 9)
    traj = jc.simulate(outer2, 0.0, 4.0, saveat=ts,
                       stepsize_controller=jc.default_controller(1e-10, 1e-12))
    t = np.asarray(ts)
    np.testing.assert_allclose(traj["molecular/y/y"], 8 * (np.exp(-t / 2) - np.exp(-t)),
                               rtol=1e-7, atol=1e-10)
    with pytest.raises(jc.ModelError, match="No parameter 'z.a'"):
        outer.replace_parameters({"z.a": 1.0})


def test_component_reads_by_label():
    """Processes read one labelled component, e.g. one species of a network."""
    # Network: A -> 0 at rate 1 (A = exp(-t)); a reporter integrates dG/dt = A.
    net = jc.ReactionNetwork("net", {"A": 1.0, "B": 5.0}, [jc.Reaction("decay", "A", "", 1.0)])
    reporter = jc.ODE("rep", {"G": 0.0}, lambda t, y, p: {"G": y["a"]},
                      inputs={"a": "molecular/net/species/A"})
    double = jc.Assignment("double", "molecular/net/twoA", lambda t, x, p: 2 * x["a"],
                           reads={"a": "molecular/net/species/A"})
    gene = jc.ReactionNetwork("gene", {"X": 0.0}, [
        jc.Reaction("expr", "", "X", jc.Custom(lambda s, p: s["a"], modifiers=("a",)))],
        inputs={"a": "molecular/net/species/A"})
    model = jc.Composite([net, reporter, double, gene])
    ts = jnp.linspace(0, 3, 7)
    traj = jc.simulate(model, 0.0, 3.0, saveat=ts, stepsize_controller=jc.default_controller(1e-10, 1e-12))
    t = np.asarray(ts)
    np.testing.assert_allclose(traj["molecular/rep/G"], 1 - np.exp(-t), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(traj["X"], 1 - np.exp(-t), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(traj["molecular/net/twoA"], 2 * np.exp(-t), rtol=1e-7)


def test_component_read_of_unknown_label():
    net = jc.ReactionNetwork("net", {"A": 1.0}, [jc.Reaction("decay", "A", "", 1.0)])
    reporter = jc.ODE("rep", {"G": 0.0}, lambda t, y, p: {"G": y["a"]},
                      inputs={"a": "molecular/net/species/Aa"})
    with pytest.raises(jc.WiringError, match="reads component 'Aa' of 'molecular/net/species'.*"
                                             "Did you mean 'A'"):
        jc.Composite([net, reporter])


class BadInit(jc.AbstractContinuousProcess):
    """Declares a scalar but gives a vector initial value."""

    name: str = "badinit"

    def ports(self):
        return jc.Ports(owns={("m", "b", "x"): jc.Var(())})

    def initial_values(self):
        return {("m", "b", "x"): jnp.ones(2)}

    def parameters(self):
        return {}

    def replace_parameters(self, values):
        return self

    def rates(self, t, state, args):
        return {("m", "b", "x"): jnp.zeros(())}


class BadDerived(jc.AbstractDerivedProcess):
    """Declares 'm/d/y' but computes 'm/d/z'."""

    name: str = "badderived"

    def ports(self):
        return jc.Ports(sets={("m", "d", "y"): jc.Var(())})

    def initial_values(self):
        return {}

    def parameters(self):
        return {}

    def replace_parameters(self, values):
        return self

    def compute(self, t, state, args):
        return {("m", "d", "z"): jnp.zeros(())}


def test_process_outputs_checked_against_declarations():
    with pytest.raises(jc.WiringError, match=r"BadInit 'badinit': initial value of 'm/b/x' "
                                             r"has shape \(2,\); declared \(\)"):
        jc.simulate(BadInit(), 0.0, 1.0)
    with pytest.raises(jc.WiringError, match="BadDerived 'badderived' gave a computed value "
                                             "for 'm/d/z', which it does not declare"):
        jc.simulate(jc.Composite([decay(), BadDerived()]), 0.0, 1.0)


def test_as_composite_wires_a_process_once_and_forgets_it_when_it_is_gone():
    import gc

    from jaxcell._composite import _WRAPPED

    p = jc.ODE("decay_cache", {"x": 1.0}, lambda t, y, q: {"x": -q["k"] * y["x"]},
               parameters={"k": 0.5})
    c1 = jc.as_composite(p)
    assert jc.as_composite(p).spec is c1.spec  # cached: the wiring is reused
    q = p.replace_parameters({"k": 2.0})       # a new process is wired anew
    assert jc.as_composite(q).spec is not c1.spec
    assert float(jc.as_composite(q).parameters()["decay_cache.k"]) == 2.0
    key = id(p)
    del p, c1
    gc.collect()
    assert key not in _WRAPPED
