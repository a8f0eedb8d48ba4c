"""simulate(): analytic solutions, options passed through, errors, compilation."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc

TIGHT = jc.default_controller(1e-10, 1e-12)


def decay(k=0.5, x0=1.0):
    return jc.ODE("decay", {"x": x0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                  parameters={"k": k})


def test_float64_by_default_and_analytic():
    traj = jc.simulate(decay(), 0.0, 4.0, saveat=jnp.linspace(0, 4, 9),
                       stepsize_controller=TIGHT)
    x = traj["molecular/decay/x"]
    assert x.dtype == jnp.float64
    np.testing.assert_allclose(x, np.exp(-0.5 * np.linspace(0, 4, 9)), rtol=1e-7)
    assert bool(traj.success)
    assert traj.messages() == [""]
    assert int(traj.stats["num_accepted_steps"]) > 0


def test_float32_option():
    traj = jc.simulate(decay(), 0.0, 4.0, saveat=[4.0], dtype=jnp.float32,
                       stepsize_controller=jc.default_controller(1e-5, 1e-7))
    x = traj["molecular/decay/x"]
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(float(x[0]), np.exp(-2.0), rtol=1e-4)


def test_backwards_in_time():
    traj = jc.simulate(decay(x0=np.exp(-2.0)), 4.0, 0.0, saveat=[4.0, 2.0, 0.0],
                       stepsize_controller=TIGHT)
    np.testing.assert_allclose(traj["x"], np.exp(-0.5 * np.array([4.0, 2.0, 0.0])),
                               rtol=1e-8)


def test_real_diffrax_objects_pass_through():
    traj = jc.simulate(decay(), 0.0, 2.0, solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.ConstantStepSize(), dt0=0.01,
                       saveat=diffrax.SaveAt(t0=True, t1=True))
    np.testing.assert_allclose(traj["x"], [1.0, np.exp(-1.0)], rtol=1e-10)
    assert int(traj.stats["num_steps"]) == 200


def test_saveat_steps_and_final_state():
    traj = jc.simulate(decay(), 0.0, 2.0, saveat=diffrax.SaveAt(steps=True), max_steps=500)
    n = int(traj.stats["num_accepted_steps"])
    assert np.isfinite(np.asarray(traj.ts[:n])).all()
    final = traj.final_state()["molecular"]["decay"]["x"]
    np.testing.assert_allclose(final, np.exp(-1.0), rtol=1e-5)


def test_y0_override_and_errors():
    model = decay()
    traj = jc.simulate(model, 0.0, 1.0, saveat=[1.0], y0={"molecular/decay/x": 3.0},
                       solver=diffrax.Tsit5(), stepsize_controller=TIGHT)
    np.testing.assert_allclose(traj["x"][0], 3 * np.exp(-0.5), rtol=1e-9)
    with pytest.raises(jc.SimulationError, match="'molecular/decay/y', which is not a state"):
        jc.simulate(model, 0.0, 1.0, y0={"molecular/decay/y": 1.0})
    with pytest.raises(jc.SimulationError, match=r"shape \(2,\); expected \(\)"):
        jc.simulate(model, 0.0, 1.0, y0={"molecular/decay/x": jnp.ones(2)})


@pytest.mark.parametrize("kwargs,match", [
    ({"saveat": [0.0, 5.0]}, "must lie in"),
    ({"saveat": [1.0, 0.5]}, "ordered"),
    ({"saveat": np.ones((2, 2))}, "1-D"),
    ({"saveat": diffrax.SaveAt(ts=[0.5], fn=lambda t, y, a: y)}, "custom 'fn'"),
])
def test_bad_saveat(kwargs, match):
    with pytest.raises(jc.SimulationError, match=match):
        jc.simulate(decay(), 0.0, 1.0, **kwargs)


def test_bad_time_span():
    with pytest.raises(jc.SimulationError, match="must differ"):
        jc.simulate(decay(), 1.0, 1.0)
    with pytest.raises(jc.SimulationError, match="finite"):
        jc.simulate(decay(), 0.0, float("inf"))


def test_nonadaptive_solver_needs_dt0():
    with pytest.raises(jc.SimulationError, match="pass dt0"):
        jc.simulate(decay(), 0.0, 1.0, solver=diffrax.Euler())


def test_failure_is_a_result_code_with_throw_false():
    tsit = diffrax.Tsit5()
    traj = jc.simulate(decay(), 0.0, 100.0, max_steps=3, throw=False, solver=tsit)
    assert not bool(traj.success)
    assert "maximum number of solver steps" in traj.messages()[0]
    # with throw=True: a SimulationError that names the limit and suggests a stiff
    # solver, without equinox's debugging text
    with pytest.raises(jc.SimulationError, match="maximum number of solver steps") as e:
        jc.simulate(decay(), 0.0, 100.0, max_steps=3, solver=tsit)
    assert "Rodas5" in str(e.value) and "max_steps=3" in str(e.value)
    assert "EQX_ON_ERROR" not in str(e.value)


def test_ensemble_member_result_codes():
    """Under vmap, each member gets its own result code (throw=False)."""
    model = jc.models.repressilator()

    def run(alpha):
        m = model.replace_parameters({"alpha": alpha})
        return jc.simulate(m, 0.0, 200.0, saveat=[200.0], max_steps=300, throw=False,
                           solver=diffrax.Tsit5())

    # alpha = 0.5: no oscillation, few steps; alpha = 216: oscillates, needs many steps.
    trajs = jax.jit(jax.vmap(run))(jnp.array([0.5, 216.404, 0.6]))
    np.testing.assert_array_equal(np.asarray(trajs.success), [True, False, True])
    msgs = trajs.messages()
    assert msgs[0] == "" and "maximum number of solver steps" in msgs[1]
    assert trajs["p_lacI"].shape == (3, 1)


def test_no_recompilation_for_new_values():
    model = jc.models.goodwin(n=10.0)

    def runs(a, n, x0, shift, y0):
        ts = jnp.linspace(0.0, 20.0, 21)
        jc.simulate(model.replace_parameters({"a": a, "n": n}), 0.0, 20.0, saveat=ts)
        jc.simulate(model.replace_initial({"x": x0}), 0.0, 20.0, saveat=ts)
        jc.simulate(model, 0.0, 20.0 + shift, saveat=ts + shift)
        jc.simulate(model, 0.0, 20.0, saveat=ts, y0={"molecular/goodwin/species": y0})

    runs(100.0, 10.0, 0.1, 0.0, jnp.zeros(3))  # first calls compile
    with jc.count_compilations() as n:
        runs(90.0, 9.0, 3.0, 5.0, jnp.ones(3))
    assert n() == 0
    # Control: the counter does see compilations (a new saveat length is a new program).
    with jc.count_compilations() as n:
        jc.simulate(model, 0.0, 20.0, saveat=jnp.linspace(0.0, 20.0, 7))
    assert n() > 0


def _goodwin_loss(params, model, ts):
    m = model.replace_parameters({"a": params[0], "n": params[1]})
    traj = jc.simulate(m, 0.0, 8.0, saveat=ts,
                       stepsize_controller=jc.default_controller(1e-9, 1e-11))
    return jnp.sum(traj["z"] ** 2) / ts.shape[0]


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_gradient_matches_finite_differences(mode):
    model = jc.models.goodwin(n=9.0)
    ts = jnp.linspace(0.5, 8.0, 16)
    x = np.array([80.0, 9.0])
    f = jax.jit(lambda p: _goodwin_loss(p, model, ts))
    if mode == "reverse":
        g = np.asarray(jax.jit(jax.grad(lambda p: _goodwin_loss(p, model, ts)))(x))
    else:
        def loss_fwd(p):
            m = model.replace_parameters({"a": p[0], "n": p[1]})
            traj = jc.simulate(m, 0.0, 8.0, saveat=ts, adjoint=diffrax.ForwardMode(),
                               stepsize_controller=jc.default_controller(1e-9, 1e-11))
            return jnp.sum(traj["z"] ** 2) / ts.shape[0]
        g = np.asarray(jax.jit(jax.jacfwd(loss_fwd))(x))
    from helpers import central_difference

    fd = central_difference(f, x, h=np.array([1e-3, 1e-4]))
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6)


def test_ensemble_helper_matches_individual_runs_and_does_not_recompile():
    model = jc.models.goodwin(n=10.0)
    a = jnp.array([60.0, 100.0, 140.0])
    z0 = jnp.array([[0.1, 0.2, 2.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    kw = dict(saveat=[2.0, 5.0], solver=diffrax.Tsit5())
    batch = jc.ensemble(model, 0.0, 5.0, parameters={"a": a},
                        y0={"molecular/goodwin/species": z0}, **kw)
    assert batch["z"].shape == (3, 2)
    for i in range(3):
        one = jc.simulate(model.replace_parameters({"a": a[i]}), 0.0, 5.0,
                          y0={"molecular/goodwin/species": z0[i]}, **kw)
        np.testing.assert_allclose(batch["z"][i], one["z"], rtol=1e-12)
    a2, z2 = a + 1.0, z0 + 0.5  # (eager arithmetic compiles on its own; keep it outside)
    with jc.count_compilations() as n:
        jc.ensemble(model, 0.0, 6.0, parameters={"a": a2},
                    y0={"molecular/goodwin/species": z2},
                    saveat=[1.0, 6.0], solver=diffrax.Tsit5())
    assert n() == 0
    with pytest.raises(jc.SimulationError, match="same leading batch size"):
        jc.ensemble(model, 0.0, 5.0, parameters={"a": a},
                    y0={"molecular/goodwin/species": z0[:2]})
    with pytest.raises(jc.SimulationError, match="'b' is not a parameter"):
        jc.ensemble(model, 0.0, 5.0, parameters={"b": a})


def test_y0_by_label_and_component():
    model = jc.models.goodwin()
    kw = dict(saveat=[0.0], solver=diffrax.Tsit5())
    traj = jc.simulate(model, 0.0, 1.0, y0={"z": 7.0, "molecular/goodwin/species/x": 3.0}, **kw)
    np.testing.assert_allclose(traj["molecular/goodwin/species"][0], [3.0, 0.2, 7.0])
    with pytest.raises(jc.SimulationError, match="'q' names no labelled component"):
        jc.simulate(model, 0.0, 1.0, y0={"q": 1.0}, **kw)
    with pytest.raises(jc.SimulationError, match="No component named 'zz'"):
        jc.simulate(model, 0.0, 1.0, y0={"molecular/goodwin/species/zz": 1.0}, **kw)


def test_terminating_event_sees_user_args_and_counts_as_success():
    # x = exp(-t/2) crosses the threshold given in args at t = 2 ln 2.
    event = diffrax.Event(lambda t, y, args, **kw: y["molecular"]["decay"]["x"] - args,
                          root_finder=__import__("optimistix").Newton(1e-10, 1e-10))
    traj = jc.simulate(decay(), 0.0, 10.0, saveat=diffrax.SaveAt(t1=True), args=0.5,
                       event=event, solver=diffrax.Tsit5(), stepsize_controller=TIGHT)
    assert bool(traj.success) and bool(traj.event_occurred)
    np.testing.assert_allclose(traj.ts[-1], 2 * np.log(2), rtol=1e-8)


def test_composite_parameter_names():
    model = jc.Composite([jc.models.goodwin(), decay()])
    assert float(model.parameter("goodwin.a")) == 100.0
    assert float(model.parameter("a")) == 100.0  # unique bare name
    assert float(model.replace_parameters({"k": 2.0}).parameter("decay.k")) == 2.0
    two = jc.Composite([decay(), jc.ODE("other", {"y": 1.0}, lambda t, y, p: {"y": -y["y"]},
                                       parameters={"k": 1.0})])
    with pytest.raises(jc.ModelError, match="parameter of \\['decay', 'other'\\]"):
        two.parameter("k")
    batch = jc.ensemble(model, 0.0, 1.0, parameters={"goodwin.a": jnp.array([1.0, 2.0]),
                                                     "k": jnp.array([0.1, 0.2])},
                        saveat=[1.0], solver=diffrax.Tsit5())
    np.testing.assert_allclose(batch["molecular/decay/x"][:, 0], np.exp(-np.array([0.1, 0.2])),
                               rtol=1e-5)
