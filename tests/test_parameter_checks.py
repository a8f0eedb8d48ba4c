"""Checks that hold everywhere: a NaN, infinite or wrongly signed parameter stops a
simulation with the same message, naming the process and the parameter, whether the
model is built eagerly, simulated as is, under ``jit``, under ``vmap`` (one bad member)
or inside a fit."""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.cellular import Death, Division, Population, Sizer, Splicing
from jaxcell.inference import Experiment, Linear, Objective, Parameter, Parameters, fit
from jaxcell.tissue import (
    DiffusingField,
    FieldExchange,
    GapJunction,
    Grid,
    SoftSpheres,
    square_lattice,
)

NAN = "is NaN"
NEG = "is negative; it must be non-negative"
NONPOS = "is zero or negative; it must be positive"


def _decay(k=0.5):
    return jc.ReactionNetwork("net", {"A": 1.0}, [jc.Reaction("r", "A", "", "k1")],
                              {"k1": k})


def _mm():
    return jc.ReactionNetwork("mm", {"S": 1.0, "P": 0.0},
                              [jc.Reaction("r", "S", "P", jc.MichaelisMenten(1.0, "km"))],
                              {"km": 0.5})


def _hill():
    return jc.ReactionNetwork("hill", {"R": 1.0, "X": 0.0},
                              [jc.Reaction("r", "", "X", jc.HillRepression(1.0, 1.0, "n",
                                                                           repressor="R"))],
                              {"n": 2.0})


def _cells():
    return jc.ODE("cells", {"x": jnp.arange(9.0)}, lambda t, y, p: {}, scale="cellular")


def _field():
    return DiffusingField("f", Grid((3,)), D=0.1, decay=0.1, initial=1.0)


def _exchange():
    field = _field()
    return jc.Composite([field, FieldExchange("ex", field, positions=[[0.5], [2.5]],
                                              uptake=0.2, V_max=0.1, K_m=0.5)])


def _gap():
    return jc.Composite([_cells(), GapJunction("gap", square_lattice(3, 3),
                                               "cellular/cells/x", D=0.1)])


def _spheres():
    return SoftSpheres("ss", [[0.0, 0.0], [1.5, 0.0]], radius=1.0, stiffness=1.0)


def _division():
    pop = Population("pop", capacity=4, n_initial=1, growth_rate=0.1)
    return jc.Composite([pop, Division("div", pop, Sizer(3.0), interval=0.5)])


def _death():
    pop = Population("pop", capacity=4)
    return jc.Composite([pop, Death("death", pop, rate=0.1, interval=0.5)])


@dataclasses.dataclass
class Case:
    id: str
    build: Callable
    name: str  # the parameter's name for replace_parameters
    owner: str  # how messages name the process and parameter
    sign: str | None  # the sign message of a negative value, None when allowed


CASES = [
    Case("mass-action", _decay, "k1", "ReactionNetwork 'net'", NEG),
    Case("michaelis-menten", _mm, "km", "ReactionNetwork 'mm'", NEG),
    Case("hill", _hill, "n", "ReactionNetwork 'hill'", NONPOS),
    Case("field", _field, "decay", "DiffusingField 'f'", NEG),
    Case("exchange", _exchange, "ex.K_m", "FieldExchange 'ex'", NONPOS),
    Case("gap-junction", _gap, "gap.D", "GapJunction 'gap'", NEG),
    Case("soft-spheres", _spheres, "stiffness", "SoftSpheres 'ss'", NEG),
    Case("population", lambda: Population("pop", capacity=2, growth_rate=0.1),
         "growth_rate", "Population 'pop'", None),
    Case("splicing", lambda: Splicing("sp", 2, alpha=1.0, beta=1.0, gamma=0.5), "gamma",
         "Splicing 'sp'", NEG),
    Case("division", _division, "div.size", "Division 'div'", NEG),
    Case("death", _death, "death.rate", "Death 'death'", NEG),
]


def _pname(case: Case) -> str:
    return case.name.split(".")[-1]


def _msg(case: Case, bad: float) -> str:
    what = NAN if np.isnan(bad) else case.sign
    return f"{case.owner}: parameter '{_pname(case)}' {what}"


def _total(traj):
    leaves = jax.tree_util.tree_leaves(eqx.filter(traj, eqx.is_inexact_array))
    return sum(jnp.sum(jnp.nan_to_num(x)) for x in leaves)


def _simulate(model):
    return jc.simulate(model, 0.0, 1.0, saveat=[1.0])


def _bad_values(case: Case) -> list[float]:
    return [np.nan] + ([-0.5] if case.sign is not None else [])


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def compiled(request):
    """The case, and its simulation as a compiled function of the parameter value (one
    compilation for all bad values), plus the vmapped version."""
    case = request.param
    model = case.build()

    def run(v):
        return _total(_simulate(model.replace_parameters({case.name: v})))

    return case, model, jax.jit(run), jax.jit(jax.vmap(run))


def test_eager_replace_gives_the_named_message(compiled):
    case, model, _, _ = compiled
    for bad in _bad_values(case):
        with pytest.raises(jc.ModelError, match=_msg(case, bad)):
            model.replace_parameters({case.name: bad})


def test_infinite_values_are_refused():
    with pytest.raises(jc.ModelError, match="Population 'p': parameter 'growth_rate' is "
                                            "infinite"):
        Population("p", capacity=2, growth_rate=np.inf)


def test_plain_simulation_of_a_bad_model_gives_the_same_message(compiled):
    case, model, _, _ = compiled
    # a model made bad inside a trace skips the eager check; simulate still stops
    force = eqx.filter_jit(lambda m, v: m.replace_parameters({case.name: v}))
    for bad in _bad_values(case):
        with pytest.raises(Exception, match=_msg(case, bad)):
            jax.block_until_ready(_total(_simulate(force(model, jnp.asarray(bad)))))


def test_jit_gives_the_same_message(compiled):
    case, _, run, _ = compiled
    assert np.isfinite(float(run(jnp.asarray(0.7))))
    for bad in _bad_values(case):
        with pytest.raises(Exception, match=_msg(case, bad)):
            jax.block_until_ready(run(jnp.asarray(bad)))


def test_vmap_with_one_bad_member_gives_the_same_message(compiled):
    case, _, _, batched = compiled
    assert np.isfinite(np.asarray(batched(jnp.array([0.7, 0.9])))).all()
    for bad in _bad_values(case):
        with pytest.raises(Exception, match=_msg(case, bad)):
            jax.block_until_ready(batched(jnp.array([0.7, bad])))


def test_a_good_model_still_matches_the_analytic_decay():
    ks = jnp.array([0.3, 0.5, 1.2])
    traj = jax.vmap(lambda k: jc.simulate(_decay().replace_parameters({"k1": k}), 0.0, 2.0,
                                          saveat=[1.0, 2.0])["A"])(ks)
    exact = np.exp(-np.asarray(ks)[:, None] * np.array([1.0, 2.0]))
    np.testing.assert_allclose(traj, exact, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("init,kind", [(-0.5, NEG), (np.nan, NAN)])
def test_fit_from_a_bad_start_gives_the_same_message(init, kind):
    net = _decay()
    t = np.array([1.0, 2.0])
    obj = Objective(net, Parameters([Parameter("k1", scale=Linear(), init=init)]),
                    Experiment(t, np.exp(-0.5 * t), "A"))
    with pytest.raises(Exception, match=f"ReactionNetwork 'net': parameter 'k1' {kind}"):
        fit(obj, max_steps=3)
