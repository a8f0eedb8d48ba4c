"""Equation discovery (jaxcell.discovery) against analytic truth and PySINDy.

References checked: REFERENCE-MODELS E1 (Brunton, Proctor & Kutz 2016: Lorenz, degree-5
library, 168 coefficients, threshold 0.025) and M5 (Lotka-Volterra parameters of the UDE
paper); PySINDy 2.1.0's STLSQ on the same library, data and threshold.
"""

from __future__ import annotations

import functools
import warnings

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell import discovery as dc

TIGHT = {"solver": diffrax.Tsit5(),
         "stepsize_controller": diffrax.PIDController(rtol=1e-11, atol=1e-11),
         "max_steps": 10**6}
LV = (1.3, 0.9, 0.8, 1.8)  # alpha, beta, gamma, delta (M5)
LV0 = (0.44249296, 4.6280594)


def lorenz_rhs(x):
    return np.stack([10 * (x[:, 1] - x[:, 0]), x[:, 0] * (28 - x[:, 2]) - x[:, 1],
                     x[:, 0] * x[:, 1] - 8 / 3 * x[:, 2]], axis=1)


@functools.cache
def lorenz_data():
    """E1: x0 (-8, 7, 27), dt 0.001, t in [0, 100]."""
    model = jc.ODE("lorenz", {"x": -8.0, "y": 7.0, "z": 27.0}, lambda t, y, p: {
        "x": 10 * (y["y"] - y["x"]), "y": y["x"] * (28 - y["z"]) - y["y"],
        "z": y["x"] * y["y"] - 8 / 3 * y["z"]})
    ts = np.arange(100001) * 0.001
    traj = jc.simulate(model, 0.0, 100.0, saveat=ts, **TIGHT)
    xs = np.stack([np.asarray(traj[f"molecular/lorenz/{v}"]) for v in "xyz"], axis=1)
    return ts, xs


def lorenz_truth(names):
    truth = np.zeros((3, len(names)))
    for i, term, c in [(0, "x", -10), (0, "y", 10), (1, "x", 28), (1, "y", -1),
                       (1, "x*z", -1), (2, "z", -8 / 3), (2, "x*y", 1)]:
        truth[i, names.index(term)] = c
    return truth


@functools.cache
def lv_data(t_end=10.0, n=1001):
    truth = jc.models.lotka_volterra(*LV, x0=LV0[0], y0=LV0[1])
    ts = np.linspace(0.0, t_end, n)
    xs = np.asarray(jc.simulate(truth, 0.0, t_end, saveat=ts, **TIGHT)[truth.path])
    return ts, xs


def lv_rhs(x):
    a, b, g, d = LV
    return np.stack([a * x[:, 0] - b * x[:, 0] * x[:, 1],
                     g * x[:, 0] * x[:, 1] - d * x[:, 1]], axis=1)


LV_TRUTH = {("x", "x"): LV[0], ("x", "x*y"): -LV[1], ("y", "x*y"): LV[2], ("y", "y"): -LV[3]}


def support_of(coef, names, targets):
    coef = np.asarray(coef)
    return {(targets[i], names[j]) for i, j in zip(*np.nonzero(coef))}


# -- E1: Lorenz ------------------------------------------------------------------------
@pytest.mark.parametrize("derivs", ["exact", "finite-difference", "eta=1"])
def test_lorenz_e1_exact_support_and_coefficients(derivs):
    ts, xs = lorenz_data()
    lib = dc.PolynomialLibrary(5)
    names = lib.names("xyz")
    assert len(names) == 56
    kwargs = {"exact": {"x_dot": lorenz_rhs(xs)},
              "finite-difference": {"derivatives": dc.FiniteDifference()},
              "eta=1": {"x_dot": lorenz_rhs(xs) + np.random.default_rng(1).standard_normal(
                  xs.shape)}}[derivs]
    found = dc.discover(ts, xs, lib, variables="xyz", optimizer=dc.STLSQ(0.025, max_iter=10),
                        **kwargs)
    truth = lorenz_truth(names)
    coef = np.asarray(found.coefficients)
    assert coef.shape == (3, 56)
    np.testing.assert_array_equal(coef != 0, truth != 0)  # 7 of 168
    rel = np.abs(coef[truth != 0] - truth[truth != 0]) / np.abs(truth[truth != 0])
    assert rel.max() < (5e-3 if derivs == "eta=1" else 1e-3), rel


def test_stlsq_equals_pysindy():
    """Same library, data, threshold, ridge weight: PySINDy 2.1.0's STLSQ to 1e-8."""
    ps = pytest.importorskip("pysindy")
    ts, xs = lorenz_data()
    xs, ts = xs[:20000:2], ts[:20000:2]
    rng = np.random.default_rng(3)
    xdot = lorenz_rhs(xs) + 5.0 * rng.standard_normal(xs.shape)  # thresholding matters
    lib = dc.PolynomialLibrary(3)
    theta = np.asarray(lib(xs, "xyz"))
    for threshold, alpha in [(0.5, 0.05), (0.1, 0.0), (2.0, 0.05)]:
        with warnings.catch_warnings():  # PySINDy warns when an equation loses every term
            warnings.simplefilter("ignore", UserWarning)
            ref = ps.STLSQ(threshold=threshold, alpha=alpha, max_iter=20).fit(theta, xdot).coef_
        ours = np.asarray(dc.STLSQ(threshold, alpha=alpha)(theta, xdot))
        np.testing.assert_array_equal(ours != 0, ref != 0)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-8)
    # PySINDy's library names agree with ours term by term
    plib = ps.PolynomialLibrary(degree=3).fit(xs)
    theirs = [n.replace(" ", "*").replace("x0", "x").replace("x1", "y").replace("x2", "z")
              for n in plib.get_feature_names()]
    ours_n = [n for n in lib.names("xyz")]
    assert [n.replace("^", "^") for n in theirs] == ours_n


# -- Lotka-Volterra, rational right-hand sides -------------------------------------------
def test_lotka_volterra_support_strong_and_weak_form():
    ts, xs = lv_data()
    lib = dc.PolynomialLibrary(2)
    names = lib.names("xy")
    for kwargs in ({"derivatives": dc.FiniteDifference()},
                   {"derivatives": dc.SavitzkyGolay(11, 3)},
                   {"derivatives": dc.WeakForm(n_windows=100, width=51)}):
        found = dc.discover(ts, xs, lib, variables="xy", optimizer=dc.STLSQ(0.1), **kwargs)
        assert support_of(found.coefficients, names, "xy") == set(LV_TRUTH), kwargs
        for (i, term), c in LV_TRUTH.items():
            got = float(found.coefficients["xy".index(i), names.index(term)])
            assert got == pytest.approx(c, rel=2e-3), (kwargs, i, term)
    # the discovered model is a process: it simulates the truth
    traj = jc.simulate(found.model, 0.0, 10.0, saveat=ts, **TIGHT)
    sim = np.stack([np.asarray(traj[p]) for p in found.model.paths.values()], axis=1)
    assert np.max(np.abs(sim - xs)) / np.max(np.abs(xs)) < 1e-2


def lv_max_rel_error(coef, names):
    return max(abs(float(coef["xy".index(i), names.index(t)]) - c) / abs(c)
               for (i, t), c in LV_TRUTH.items())


def test_weak_form_beats_finite_differences_on_noisy_data():
    """20 % noise (of each state's sd), 2001 samples on t in [0, 20]: the weak form keeps
    the exact support with coefficients within 3 %; finite differences of the same data
    are at least 2.5 times further off (measured: 2.7 % against 10 %)."""
    ts, xs = lv_data(t_end=20.0, n=2001)
    rng = np.random.default_rng(0)
    noisy = xs + 0.2 * xs.std(0, keepdims=True) * rng.standard_normal(xs.shape)
    lib = dc.PolynomialLibrary(2)
    names = lib.names("xy")
    weak = dc.discover(ts, noisy, lib, variables="xy", optimizer=dc.STLSQ(0.2),
                       derivatives=dc.WeakForm(n_windows=200, width=101))
    assert support_of(weak.coefficients, names, "xy") == set(LV_TRUTH)
    weak_err = lv_max_rel_error(weak.coefficients, names)
    assert weak_err < 0.03
    strong = dc.discover(ts, noisy, lib, variables="xy", optimizer=dc.STLSQ(0.2),
                         derivatives=dc.FiniteDifference())
    assert lv_max_rel_error(strong.coefficients, names) > 2.5 * weak_err


def mm_data(hill=1, n=401):
    """dS/dt = -V S^h / (K^h + S^h) from S0 = 5 (closed form for h = 1 via scipy)."""
    V, K = 1.5, 0.8
    model = jc.ODE("mm", {"s": 5.0},
                   lambda t, y, p: {"s": -V * y["s"] ** hill / (K**hill + y["s"] ** hill)})
    ts = np.linspace(0.0, 8.0, n)
    s = np.asarray(jc.simulate(model, 0.0, 8.0, saveat=ts, **TIGHT)["molecular/mm/s"])
    return ts, s[:, None], V, K


@pytest.mark.parametrize("hill", [1, 2])
def test_sindy_pi_recovers_michaelis_menten_and_hill(hill):
    ts, xs, V, K = mm_data(hill)
    xdot = -V * xs**hill / (K**hill + xs**hill)
    lib = dc.PolynomialLibrary(2 * hill)
    found = dc.discover(ts, xs, lib, variables=["s"], optimizer=dc.SINDyPI(),
                        x_dot=xdot)
    names = lib.names(["s"])
    num, den = np.asarray(found.coefficients)[0], np.asarray(found.denominator)[0]
    # normalise so that the denominator's S^h coefficient is 1: D = K^h + S^h, N = -V S^h
    scale = den[names.index(f"s^{hill}" if hill > 1 else "s")]
    num, den = num / scale, den / scale
    want_den = {"1": K**hill, (f"s^{hill}" if hill > 1 else "s"): 1.0}
    want_num = {(f"s^{hill}" if hill > 1 else "s"): -V}
    assert {names[j] for j in np.flatnonzero(den)} == set(want_den)
    assert {names[j] for j in np.flatnonzero(num)} == set(want_num)
    for k, v in want_den.items():
        assert den[names.index(k)] == pytest.approx(v, rel=1e-6)
    for k, v in want_num.items():
        assert num[names.index(k)] == pytest.approx(v, rel=1e-6)
    # the rational model simulates the data
    traj = jc.simulate(found.model, 0.0, 8.0, saveat=ts, **TIGHT)
    np.testing.assert_allclose(np.asarray(traj["molecular/discovered/s"]), xs[:, 0],
                               rtol=1e-6, atol=1e-8)
    # and reads as the law
    assert "/" in found.equations()[0]


def test_hill_library_term_recovers_a_known_saturation():
    ts, xs, V, K = mm_data(1)
    lib = dc.PolynomialLibrary(1) + dc.HillLibrary(K=K, n=1)
    found = dc.discover(ts, xs, lib, variables=["s"], optimizer=dc.STLSQ(0.05),
                        derivatives=dc.FiniteDifference())
    assert found.terms == ("1", "s", "s/(0.8+s)")
    c = np.asarray(found.coefficients)[0]
    assert np.flatnonzero(c).tolist() == [2]
    assert c[2] == pytest.approx(-V, rel=1e-3)


# -- E2: from a neural term to equations ----------------------------------------------------
def test_e2_ideal_missing_terms_give_u1u2():
    """E2 test 1: noise-free states and the exact missing terms, polynomials to degree 5
    plus sin: STLSQ keeps exactly u1*u2 in both equations."""
    ts, xs = lv_data(t_end=3.0, n=31)
    missing = np.stack([-LV[1] * xs[:, 0] * xs[:, 1], LV[2] * xs[:, 0] * xs[:, 1]], axis=1)
    lib = dc.PolynomialLibrary(5) + dc.FourierLibrary(1, include_cos=False)
    found = dc.discover(ts, xs, lib, variables=["u1", "u2"], optimizer=dc.STLSQ(0.1),
                        x_dot=missing)
    names = lib.names(["u1", "u2"])
    assert support_of(found.coefficients, names, ["u1", "u2"]) == {("u1", "u1*u2"),
                                                                   ("u2", "u1*u2")}
    c = np.asarray(found.coefficients)
    assert c[0, names.index("u1*u2")] == pytest.approx(-LV[1], rel=1e-3)
    assert c[1, names.index("u1*u2")] == pytest.approx(LV[2], rel=1e-3)


def hybrid_lv(key, data):
    """E2's UDE: known prey growth and predator death, a network for the rest."""
    import equinox as eqx

    known = jc.ReactionNetwork("lv", species={"x": LV0[0], "y": LV0[1]}, reactions=[
        jc.Reaction("prey_birth", "x", "2 x", jc.MassAction("alpha")),
        jc.Reaction("predator_death", "y", "", jc.MassAction("delta"))],
        parameters={"alpha": LV[0], "delta": LV[3]})
    mlp = eqx.nn.MLP(2, 2, 5, 3, activation=jc.neural.rbf, key=key)
    net = jc.neural.neural_coupling("interaction", mlp, reads=known.path,
                                    shift=data.mean(0), scale=data.std(0))
    return jc.Composite([known, net], name="ude")


def supervised(model, states, targets, steps=3000):
    """Train the network on the missing terms at the observed states (a stand-in for
    training through the ODE, which the slow test does)."""
    import equinox as eqx
    import optax

    params, static = eqx.partition(model, jc.neural.neural_weights(model))
    net_of = lambda p: eqx.combine(p, static).leaves[1].fn  # noqa: E731
    opt = optax.adam(1e-2)

    @eqx.filter_jit
    def step(p, s):
        def loss(p):
            out = jax.vmap(lambda u: net_of(p)(0.0, {"x": u}, {})["x"])(states)
            return jnp.mean((out - targets) ** 2)

        val, g = eqx.filter_value_and_grad(loss)(p)
        upd, s = opt.update(g, s, p)
        return eqx.apply_updates(p, upd), s, val

    state = opt.init(params)
    for _ in range(steps):
        params, state, val = step(params, state)
    return eqx.combine(params, static), float(val)


def test_e2_network_to_equations_refit_and_extrapolation():
    """E2, noise-free and at reduced cost: a network fitted to the missing terms along
    the observed trajectory (t in [0, 3]) is replaced by the recovered terms; the AICc of
    refits to the data picks {u1 u2} in both equations; the recovered model follows the
    truth to t = 50 (relative L2 < 5 %), where the hybrid with the network does not."""
    from jaxcell.inference import Experiment, Normal

    ts, xs = lv_data(t_end=3.0, n=31)
    missing = np.stack([-LV[1] * xs[:, 0] * xs[:, 1], LV[2] * xs[:, 0] * xs[:, 1]], 1)
    model, mse = supervised(hybrid_lv(jax.random.PRNGKey(0), xs), xs, missing)
    assert mse < 1e-3 * np.mean(missing**2)
    kw = {"solver": diffrax.Tsit5(), "max_steps": 100_000}
    fine = jc.simulate(model, 0.0, 3.0, saveat=np.linspace(0, 3, 301), **kw)
    sel = dc.refit_select(model, "interaction", fine, dc.PolynomialLibrary(2),
                          Experiment(ts, xs, "molecular/lv/species", noise=Normal(0.01)),
                          thresholds=np.logspace(-1.5, 0.5, 9), max_terms=6, **kw)
    sparse = [p for p in sel.model.leaves if p.name == "interaction"][0]
    assert set(sparse.parameters()) == {"x:x*y", "y:x*y"}, sel.best.equations("interaction")
    assert len(sel.candidates) >= 2  # a real choice was made
    assert float(sparse.parameters()["x:x*y"]) == pytest.approx(-LV[1], rel=1e-3)
    assert float(sparse.parameters()["y:x*y"]) == pytest.approx(LV[2], rel=1e-3)
    _, truth50 = lv_data(t_end=50.0, n=501)
    t50 = np.linspace(0.0, 50.0, 501)
    rec = np.asarray(jc.simulate(sel.model, 0.0, 50.0, saveat=t50, **TIGHT)[
        "molecular/lv/species"])
    assert np.linalg.norm(rec - truth50) / np.linalg.norm(truth50) < 0.05
    net = jc.simulate(model, 0.0, 50.0, saveat=t50, throw=False, **kw)
    pred = np.asarray(net["molecular/lv/species"])
    net_err = np.linalg.norm(pred - truth50) / np.linalg.norm(truth50)
    assert not np.all(np.isfinite(pred)) or net_err > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_e2_full_pipeline_ude_training_then_equations(noise):
    """E2 test 2, the whole pipeline with a fixed seed: UDE trained through the ODE on
    the paper's data (t in [0, 3], 31 points, noise sd 5 % of each state's mean), then
    :func:`refit_select`. Asserted: training SSE <= 1.5 x the true model's SSE on the
    same data; active set {u1 u2} in both equations; coefficients within 10 %; the
    network alone fails on [0, 50]. The recovered model is within 5 % relative L2 of
    the truth on [0, 50] for noise-free data; with 5 % noise the 31 points fix gamma
    only to a few per cent and the phase error of ~12 periods is not within 5 % (the
    figure is reported, not asserted: measured 0.38 with seed 0)."""
    import sys
    from pathlib import Path

    from jaxcell.inference import Experiment, Normal, fit

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import ude_lotka_volterra as ex

    key_noise, key_net = jax.random.split(jax.random.PRNGKey(0))
    exact, data = ex.make_data(noise, key_noise)
    model, _ = ex.build_ude(key_net, data)
    obj = ex.objective(model, data)
    const = float(obj.nll_constant())
    target = (0.5 * float(np.mean((noise * exact.mean(0)) ** 2)) * data.size + const
              if noise else None)
    res = fit(obj, method=ex.ADAM, max_steps=2000, target=target)
    if target is None or res.value > target:
        res = fit(obj, method=ex.LBFGS, starts=res.x[None], max_steps=3000, target=target)
    trained = obj.parameters.to_model(model, res.x)
    kw = {"solver": diffrax.Tsit5(), "max_steps": 100_000}
    fitted = np.asarray(jc.simulate(trained, 0.0, 3.0, saveat=ex.T_DATA, **kw)[
        "molecular/lv/species"])
    if noise:
        assert np.sum((fitted - data) ** 2) <= 1.5 * np.sum((exact - data) ** 2)
    fine = jc.simulate(trained, 0.0, 3.0, saveat=np.linspace(0, 3, 301), **kw)
    sd = noise * exact.mean(0) if noise else np.full(2, 0.01)
    sel = dc.refit_select(trained, "interaction", fine, dc.PolynomialLibrary(2),
                          Experiment(ex.T_DATA, data, "molecular/lv/species",
                                     noise=Normal(sd)), **kw)
    sparse = [p for p in sel.model.leaves if p.name == "interaction"][0]
    assert set(sparse.parameters()) == {"x:x*y", "y:x*y"}, sel.best.equations("interaction")
    assert float(sparse.parameters()["x:x*y"]) == pytest.approx(-LV[1], rel=0.1)
    assert float(sparse.parameters()["y:x*y"]) == pytest.approx(LV[2], rel=0.1)
    t50 = np.linspace(0.0, 50.0, 501)
    _, truth50 = lv_data(t_end=50.0, n=501)
    net = np.asarray(jc.simulate(trained, 0.0, 50.0, saveat=t50, throw=False, **kw)[
        "molecular/lv/species"])
    assert not np.all(np.isfinite(net)) or (
        np.linalg.norm(net - truth50) / np.linalg.norm(truth50) > 0.5)
    rec = np.asarray(jc.simulate(sel.model, 0.0, 50.0, saveat=t50, **TIGHT)[
        "molecular/lv/species"])
    l2 = np.linalg.norm(rec - truth50) / np.linalg.norm(truth50)
    print(f"E2 noise={noise}: {sparse.equations(5)}; relative L2 on [0, 50] = {l2:.4f}")
    if noise == 0.0:
        assert l2 < 0.05
