import jax.numpy as jnp
import pytest

import jaxcell as jc
from jaxcell._state import StateSpec


def test_as_path_forms():
    assert jc.as_path("a/b/c") == ("a", "b", "c")
    assert jc.as_path(("a", "b", "c")) == ("a", "b", "c")
    for bad in ["a/b", "a/b/c/d", ("a", "", "c"), 3, "a//c"]:
        with pytest.raises(jc.WiringError, match="path"):
            jc.as_path(bad)


def test_var_labels_checked():
    v = jc.Var((3,), ("x", "y", "z"))
    assert v.index("y") == 1
    with pytest.raises(KeyError, match="Did you mean 'y'"):
        v.index("yy")
    with pytest.raises(jc.WiringError, match="do not match"):
        jc.Var((2,), ("x", "y", "z"))
    with pytest.raises(jc.WiringError, match="unique"):
        jc.Var((2,), ("x", "x"))


def test_flatten_nest_roundtrip():
    state = {"mol": {"net": {"species": jnp.ones(3)}, "g": {"x": jnp.zeros(())}},
             "cell": {"pop": {"volume": jnp.ones(5)}}}
    flat = jc.flatten_state(state)
    assert set(flat) == {("mol", "net", "species"), ("mol", "g", "x"), ("cell", "pop", "volume")}
    assert jc.nest_state(flat).keys() == state.keys()
    assert jc.nest_state(flat)["cell"]["pop"]["volume"].shape == (5,)


def test_spec_lookup_and_labels():
    spec = StateSpec(owned=((("m", "n", "s"), jc.Var((2,), ("A", "B"))),),
                     derived=((("m", "n", "obs"), jc.Var(())),))
    assert spec.var("m/n/s").labels == ("A", "B")
    assert spec.find_label("B") == [(("m", "n", "s"), 1)]
    with pytest.raises(KeyError, match="Did you mean"):
        spec.var("m/n/ss")


def test_state_view_rejects_undeclared_reads():
    flat = {("a", "b", "c"): jnp.ones(()), ("a", "b", "d"): jnp.zeros(())}
    view = jc.StateView(flat, [("a", "b", "c")], owner="proc")
    assert float(view["a/b/c"]) == 1.0
    assert list(view) == [("a", "b", "c")]
    with pytest.raises(jc.WiringError, match="'proc' read 'a/b/d'"):
        view["a/b/d"]
