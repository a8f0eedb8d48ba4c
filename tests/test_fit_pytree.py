"""`fit` trains any pytree: network weights (`Weights`) beside scalar parameters, flat
search vector, per-group optimisers, penalties, L-BFGS and Adam compiled once, early
stopping on a held-out objective, checkpoint and resume of an optax run, Bayesian use."""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcell as jc
from jaxcell.inference import (
    L1,
    L2,
    Experiment,
    InferenceError,
    Linear,
    Minibatch,
    MultipleShooting,
    Normal,
    Objective,
    OutputL1,
    Parameter,
    Parameters,
    Weights,
    fit,
    fit_checkpointed,
    group_optimizer,
    growing_horizon,
)

KW = {"solver": diffrax.Tsit5(),
      "stepsize_controller": diffrax.PIDController(rtol=1e-7, atol=1e-9)}
TS = np.linspace(0.0, 1.5, 11)
SIGMA = 0.05


def _lv():
    truth = jc.models.lotka_volterra(1.3, 0.9, 0.8, 1.8, x0=0.44249296, y0=4.6280594)
    data = np.asarray(jc.simulate(truth, 0.0, 1.5, saveat=TS, solver=diffrax.Tsit5())[
        truth.path])
    known = jc.ReactionNetwork("lv", species={"x": 0.44249296, "y": 4.6280594}, reactions=[
        jc.Reaction("prey_birth", "x", "2 x", jc.MassAction("alpha")),
        jc.Reaction("predator_death", "y", "", jc.MassAction("delta"))],
        parameters={"alpha": 1.3, "delta": 1.8})
    mlp = eqx.nn.MLP(2, 2, 3, 1, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    net = jc.neural.neural_coupling("interaction", mlp, reads=known.path,
                                    shift=data.mean(0), scale=data.std(0))
    model = jc.Composite([known, net], name="ude")
    return model, Experiment(TS, data, "molecular/lv/species", noise=Normal(SIGMA))


MODEL, EXPERIMENT = _lv()
PARAMS = Parameters([Parameter("alpha", group="rates"), Weights("interaction.net")],
                    model=MODEL)
OBJ = Objective(MODEL, PARAMS, EXPERIMENT, **KW)


def test_weights_are_flat_coordinates():
    net = MODEL.children[1].fn.net
    n_net = sum(a.size for a in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_array)))
    assert len(PARAMS) == 1 + n_net == PARAMS.x0.shape[0] == len(PARAMS.names)
    assert PARAMS.names[:2] == ("alpha", "interaction.net[0]")
    values = PARAMS.values(PARAMS.x0)
    assert isinstance(values["interaction.net"], eqx.nn.MLP)
    assert np.allclose(PARAMS.to_search(values), PARAMS.x0)
    x = PARAMS.x0.at[1:].add(0.5)
    moved = PARAMS.to_model(MODEL, x).children[1].fn.net
    assert np.allclose(moved.layers[0].weight, net.layers[0].weight + 0.5)
    assert float(PARAMS.to_model(MODEL, x).parameters()["lv.alpha"]) == pytest.approx(1.3)
    last = Parameters([Weights("interaction.net.layers[-1]")], model=MODEL)
    assert len(last) == net.layers[-1].weight.size + net.layers[-1].bias.size


def test_weights_errors_name_the_culprit():
    with pytest.raises(InferenceError, match="'interaction.nett'.*no field 'nett'"):
        Parameters([Weights("interaction.nett")], model=MODEL)
    with pytest.raises(InferenceError, match="no process 'other'"):
        Parameters([Weights("other.net")], model=MODEL)
    free = Parameters([Weights("free.array", init=jnp.zeros(3))], model=MODEL)
    with pytest.raises(InferenceError, match="'free.array' is not a node of the model"):
        Objective(MODEL, free, EXPERIMENT, **KW)
    with pytest.raises(InferenceError, match="no item or group 'nope'"):
        group_optimizer(PARAMS, {"nope": optax.adam(1.0)})
    with pytest.raises(InferenceError, match="belong to no group"):
        group_optimizer(PARAMS, {"rates": optax.adam(1.0)})


def test_gradient_wrt_weights_matches_finite_differences():
    x = PARAMS.x0 + 0.05 * jax.random.normal(jax.random.key(1), PARAMS.x0.shape)
    _, g = OBJ.value_and_grad(x)
    for i in (0, 1, 7, len(PARAMS) - 1):  # alpha, first weight, a middle one, last bias
        h = 1e-5
        fd = (OBJ.nll(x.at[i].add(h)) - OBJ.nll(x.at[i].add(-h))) / (2 * h)
        assert float(g[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6), i


@pytest.mark.parametrize("method", [optax.adam(1e-2), optax.lbfgs()],
                         ids=["adam", "lbfgs"])
def test_optax_steps_compile_once(method):
    fit(OBJ, method=method, max_steps=2)  # compiles
    x1 = PARAMS.x0 + 0.01
    with jc.count_compilations() as n:
        result = fit(OBJ, method=method, starts=x1[None], max_steps=15)
    assert n() == 0
    assert result.starts[0].steps == 15 or result.converged
    assert result.value < float(OBJ.nll(x1))


def test_group_learning_rates_and_weight_decay():
    # lr 0 for the rates: alpha does not move while the network trains
    opt = group_optimizer(PARAMS, {"rates": optax.sgd(0.0)}, default=optax.adam(1e-2))
    result = fit(OBJ, method=opt, max_steps=10)
    assert result.x[0] == PARAMS.x0[0]
    assert not np.allclose(result.x[1:], PARAMS.x0[1:])
    # decoupled weight decay shrinks coordinates the loss does not touch, at its rate
    ps = Parameters([Parameter(n, scale=Linear(), init=1.0, group=g)
                     for n, g in (("a", "plain"), ("b", "decayed"))])
    opt = group_optimizer(ps, {"plain": optax.adamw(0.1, weight_decay=0.0),
                               "decayed": optax.adamw(0.1, weight_decay=0.5)})
    state = opt.init(ps.x0)
    x = ps.x0
    for _ in range(10):
        u, state = opt.update(jnp.zeros(2), state, x)
        x = x + u
    assert float(x[0]) == 1.0
    assert float(x[1]) == pytest.approx(0.95**10, rel=1e-12)


def test_penalties_enter_the_objective():
    l2 = Parameters([Weights("interaction.net", penalty=L2(0.3))], model=MODEL)
    plain = Parameters([Weights("interaction.net")], model=MODEL)
    o2, o0 = Objective(MODEL, l2, EXPERIMENT, **KW), Objective(MODEL, plain, EXPERIMENT, **KW)
    x = l2.x0
    assert o2.is_least_squares
    assert float(o2.nll(x) - o0.nll(x)) == pytest.approx(0.15 * float(jnp.sum(x**2)))
    r = o2.residuals(x)
    assert float(0.5 * jnp.sum(r**2) + o2.nll_constant()) == pytest.approx(float(o2.nll(x)))
    l1 = Parameters([Weights("interaction.net", penalty=L1(0.2))], model=MODEL)
    o1 = Objective(MODEL, l1, EXPERIMENT, **KW)
    assert not o1.is_least_squares
    assert float(o1.nll(x) - o0.nll(x)) == pytest.approx(0.2 * float(jnp.sum(jnp.abs(x))))
    inputs = np.zeros((4, 2))
    out = Parameters([Weights("interaction.net", penalty=OutputL1(1.0, inputs))],
                     model=MODEL)
    net = MODEL.children[1].fn.net
    expected = float(jnp.sum(jnp.abs(net(jnp.zeros(2)))))
    assert float(Objective(MODEL, out, EXPERIMENT, **KW).nll(x) - o0.nll(x)) == \
        pytest.approx(expected)


def test_early_stopping_returns_the_validation_best_iterate():
    # validation: a different window of the same system (later times, fixed start)
    ts = np.linspace(1.5, 2.5, 6)
    truth = jc.models.lotka_volterra(1.3, 0.9, 0.8, 1.8, x0=0.44249296, y0=4.6280594)
    vdata = np.asarray(jc.simulate(truth, 0.0, 2.5, saveat=ts, solver=diffrax.Tsit5())[
        truth.path])
    val = Objective(MODEL, PARAMS, Experiment(ts, vdata, "molecular/lv/species",
                                              noise=Normal(SIGMA)), **KW)
    result = fit(OBJ, method=optax.adam(5e-2), max_steps=40, validation=val, patience=5)
    start = result.starts[0]
    assert len(start.validation) == start.steps + 1  # x0 and every iteration
    assert start.validation_value == pytest.approx(min(start.validation))
    assert float(val.nll(result.x)) == pytest.approx(start.validation_value, rel=1e-10)
    best_at = int(np.argmin(start.validation))
    assert start.steps == 40 or start.steps - best_at == 5  # stopped by patience
    with pytest.raises(InferenceError, match="patience needs validation"):
        fit(OBJ, method=optax.adam(1e-2), patience=3)
    other = Objective(MODEL, Parameters([Weights("interaction.net.layers[0]"),
                                         Parameter("delta")], model=MODEL),
                      EXPERIMENT, **KW)
    with pytest.raises(InferenceError, match="validation has coordinates"):
        fit(OBJ, method=optax.adam(1e-2), validation=other)


def test_checkpointed_optax_run_resumes_exactly(tmp_path):
    opt = optax.adam(1e-2)
    whole = fit(OBJ, method=opt, max_steps=12, ftol=0.0)

    class Stop(Exception):
        pass

    def crash(start, step, value):
        if step == 8:
            raise Stop

    with pytest.raises(Stop):
        fit_checkpointed(OBJ, directory=tmp_path, method=opt, max_steps=12, every=5,
                         callback=crash)
    steps = sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit())
    assert steps == [5]  # iteration 5 of start 0, optimiser state included
    resumed = fit_checkpointed(OBJ, directory=tmp_path, method=opt, max_steps=12, every=5)
    assert np.array_equal(resumed.x, whole.x)
    assert resumed.starts[0].history == whole.starts[0].history


def test_minibatch_and_shooting_are_consistent():
    single = MultipleShooting(MODEL, PARAMS, EXPERIMENT, segments=1, **KW)
    x = PARAMS.x0
    assert float(single.nll(x)) == pytest.approx(float(OBJ.nll(x)), rel=1e-9)
    ms = MultipleShooting(MODEL, PARAMS, EXPERIMENT, segments=5, continuity=4.0, **KW)
    assert len(ms.parameters) == len(PARAMS) + 4 * 2
    assert ms.n_items == 5
    r = ms.residuals(ms.parameters.x0)
    assert float(0.5 * jnp.sum(r**2) + ms.nll_constant()) == pytest.approx(
        float(ms.nll(ms.parameters.x0)))
    # the full batch is the objective; batches of 2 estimate it without bias
    full = Minibatch(ms, 5)
    xs = ms.parameters.x0
    assert float(full.stochastic_nll(xs, 3)) == pytest.approx(float(ms.nll(xs)), rel=1e-9)
    mb = Minibatch(ms, 2, key=jax.random.key(3))
    est = jax.vmap(lambda k: mb.stochastic_nll(xs, k))(jnp.arange(200))
    assert float(jnp.mean(est)) == pytest.approx(float(ms.nll(xs)), rel=0.1)
    with pytest.raises(InferenceError, match="batch_size must be between 1 and 5"):
        Minibatch(ms, 6)
    with pytest.raises(InferenceError, match="segments must be between 1 and 5"):
        MultipleShooting(MODEL, PARAMS, EXPERIMENT, segments=6, **KW)


def test_stochastic_steps_and_growing_horizon_compile_once():
    ms = MultipleShooting(MODEL, PARAMS, EXPERIMENT, segments=5, **KW)
    opt = optax.adam(1e-2)
    mb = Minibatch(ms, 2)
    first = fit(mb, method=opt, max_steps=3)
    with jc.count_compilations() as n:
        again = fit(mb, method=opt, max_steps=10, starts=first.x[None])
    assert n() == 0
    assert again.value < first.value
    result, stages = growing_horizon(ms, [0.6, 1.5], steps=3, method=opt)
    with jc.count_compilations() as n:
        growing_horizon(ms, [0.8, 1.2], steps=3, method=opt)
    assert n() == 0 and len(stages) == 2
    assert np.isfinite(result.value)


def test_bayesian_last_layer():
    import numpyro.distributions as dist

    from jaxcell.inference import fit_svi, log_density, objective_model

    ps = Parameters([Weights("interaction.net.layers[-1]", prior=dist.Normal(0.0, 1.0))],
                    model=MODEL)
    obj = Objective(MODEL, ps, EXPERIMENT, **KW)
    model = objective_model(obj)
    values = {"interaction.net.layers[-1]": np.asarray(ps.x0)}
    lp = float(log_density(model, values))
    prior = float(jnp.sum(dist.Normal(0.0, 1.0).log_prob(ps.x0)))
    assert lp == pytest.approx(prior - float(obj.nll(ps.x0)), rel=1e-9)
    svi = fit_svi(model, key=jax.random.key(0), num_steps=20)
    assert svi.median["interaction.net.layers[-1]"].shape == (len(ps),)
