"""Pieces of jaxcell.discovery: derivative estimators against calculus, the optimisers'
defining properties (constraints, inclusion probabilities, information criteria), the
discovered model as a process (fit, gradients, per cell, SBML), and input checks."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell import discovery as dc
from jaxcell.inference import Experiment, Normal, Objective, Parameters, fit

TIGHT = {"solver": diffrax.Tsit5(),
         "stepsize_controller": diffrax.PIDController(rtol=1e-11, atol=1e-11),
         "max_steps": 10**6}


# -- derivatives ---------------------------------------------------------------------------
def test_finite_differences_are_second_order_on_uneven_grids():
    errs = []
    for n in (50, 100, 200):
        u = np.linspace(0, 1, n)
        ts = np.sort(2.0 * (u + 0.3 * u * (1 - u)))  # smoothly uneven
        d = np.asarray(dc.FiniteDifference()(ts, np.sin(ts)))[:, 0]
        errs.append(np.max(np.abs(d - np.cos(ts))))
    orders = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
    assert np.all(orders > 1.8), orders
    # exact on quadratics, ends included
    ts = np.cumsum(np.r_[0.0, np.random.default_rng(0).uniform(0.05, 0.2, 30)])
    d = np.asarray(dc.FiniteDifference()(ts, 3 * ts**2 - ts))[:, 0]
    np.testing.assert_allclose(d, 6 * ts - 1, rtol=1e-10, atol=1e-10)


def test_savitzky_golay_is_exact_on_polynomials_of_its_order():
    ts = np.linspace(-1.0, 2.0, 41)
    x = 0.5 * ts**3 - ts**2 + 2.0
    d = np.asarray(dc.SavitzkyGolay(window=9, order=3)(ts, x))[:, 0]
    np.testing.assert_allclose(d, 1.5 * ts**2 - 2 * ts, rtol=1e-9, atol=1e-9)


def test_total_variation_recovers_a_piecewise_constant_derivative_from_noise():
    """Chartrand's test case: |t - 1/2| sampled with noise; TV keeps the kink sharp and
    the slopes right, where finite differences of the noise are useless."""
    ts = np.linspace(0, 1, 201)
    rng = np.random.default_rng(0)
    x = np.abs(ts - 0.5) + 0.005 * rng.standard_normal(ts.shape)
    tv = np.asarray(dc.TotalVariation(alpha=0.05, iterations=40)(ts, x))[:, 0]
    fd = np.asarray(dc.FiniteDifference()(ts, x))[:, 0]
    truth = np.sign(ts - 0.5)
    inner = np.abs(ts - 0.5) > 0.1
    tv_err = np.sqrt(np.mean((tv - truth)[inner] ** 2))
    fd_err = np.sqrt(np.mean((fd - truth)[inner] ** 2))
    assert tv_err < 0.15 and fd_err > 3 * tv_err, (tv_err, fd_err)


def test_weak_form_is_integration_by_parts():
    """For x = sin t: -int phi' x dt equals int phi cos t dt (test functions vanish at
    the window ends), to quadrature accuracy."""
    ts = np.linspace(0, 10, 4001)
    weak = dc.WeakForm(n_windows=20, width=401)
    g, b = weak.system(ts, np.sin(ts)[:, None], np.cos(ts)[:, None])
    np.testing.assert_allclose(np.asarray(b), np.asarray(g), rtol=1e-5, atol=1e-7)


# -- optimisers ----------------------------------------------------------------------------
def si_data():
    """SI epidemic dS = -b S I, dI = b S I - g I: S + I changes only by -g I."""
    b, g = 0.5, 0.1
    model = jc.ODE("si", {"S": 0.99, "I": 0.01}, lambda t, y, p: {
        "S": -b * y["S"] * y["I"], "I": b * y["S"] * y["I"] - g * y["I"]})
    ts = np.linspace(0, 40, 801)
    traj = jc.simulate(model, 0.0, 40.0, saveat=ts, **TIGHT)
    xs = np.stack([np.asarray(traj["molecular/si/S"]), np.asarray(traj["molecular/si/I"])],
                  axis=1)
    return ts, xs, b, g


def test_sr3_with_a_conservation_constraint():
    ts, xs, b, g = si_data()
    rng = np.random.default_rng(0)
    lib = dc.PolynomialLibrary(2)
    names = lib.names(["S", "I"])
    xdot = np.stack([-b * xs[:, 0] * xs[:, 1], b * xs[:, 0] * xs[:, 1] - g * xs[:, 1]], 1)
    noisy = xdot + 0.002 * rng.standard_normal(xdot.shape)
    theta = lib(xs, ["S", "I"])
    m = len(names)
    c = np.zeros((1, 2 * m))
    c[0, names.index("S*I")] = 1.0  # coefficient of S*I in dS/dt ...
    c[0, m + names.index("S*I")] = 1.0  # ... plus that in dI/dt is zero
    coef = np.asarray(dc.SR3(0.05, nu=1.0, constraint_lhs=c, constraint_rhs=[0.0])(
        theta, noisy))
    assert coef[0, names.index("S*I")] + coef[1, names.index("S*I")] == pytest.approx(
        0.0, abs=1e-10)
    assert {(i, names[j]) for i, j in zip(*np.nonzero(coef))} == {
        (0, "S*I"), (1, "S*I"), (1, "I")}
    assert coef[1, names.index("I")] == pytest.approx(-g, rel=0.02)
    assert coef[1, names.index("S*I")] == pytest.approx(b, rel=0.02)
    # without the constraint the same fit breaks the conservation law (and, measured,
    # keeps spurious S and S^2 terms in dI/dt)
    free = np.asarray(dc.SR3(0.05)(theta, noisy))
    assert abs(free[0, names.index("S*I")] + free[1, names.index("S*I")]) > 1e-4


def test_ensemble_inclusion_probabilities_and_vmapped_thresholds():
    ts, xs, b, g = si_data()
    lib = dc.PolynomialLibrary(2)
    names = lib.names(["S", "I"])
    rng = np.random.default_rng(1)
    noisy = xs + 0.002 * rng.standard_normal(xs.shape)
    xdot = dc.SavitzkyGolay(21, 3)(ts, noisy)
    theta = lib(noisy, ["S", "I"])
    ens = dc.Ensemble(dc.STLSQ(0.05), n_models=40, seed=0)
    probs = np.asarray(ens.inclusion_probabilities(theta, xdot))
    true = {(0, "S*I"), (1, "S*I"), (1, "I")}
    for i, j in np.ndindex(probs.shape):
        if (i, names[j]) in true:
            assert probs[i, j] == 1.0
    coef = np.asarray(ens(theta, xdot))
    assert {(i, names[j]) for i, j in zip(*np.nonzero(coef))} == true
    # the ensemble's models are vmapped STLSQ fits of bootstrap rows: one by hand agrees
    models = np.asarray(ens.models(theta, xdot))
    assert models.shape == (40, 2, len(names))
    # ModelSelection vmaps thresholds; each slice equals a separate STLSQ call
    grid = np.array([1e-3, 0.05, 0.5])
    path = dc.ModelSelection(grid).path(theta, xdot)
    for k, thr in enumerate(grid):
        np.testing.assert_allclose(np.asarray(path.coefficients[k]),
                                   np.asarray(dc.STLSQ(float(thr))(theta, xdot)), atol=1e-12)
    chosen = np.asarray(dc.ModelSelection(np.logspace(-3, 0, 13))(theta, xdot))
    assert {(i, names[j]) for i, j in zip(*np.nonzero(chosen))} == true
    front = path.pareto_front(1)
    assert [k for k, _, _ in front] == sorted(k for k, _, _ in front)
    assert all(r2 < r1 for (_, r1, _), (_, r2, _) in zip(front, front[1:]))


def test_information_criteria_match_their_formulas():
    rss, k, n = jnp.array([2.0]), jnp.array([3]), 50
    base = n * np.log(2.0 / n)
    assert float(dc.information_criterion(rss, k, n, "aic")[0]) == pytest.approx(base + 6)
    assert float(dc.information_criterion(rss, k, n, "aicc")[0]) == pytest.approx(
        base + 6 + 24 / 46)
    assert float(dc.information_criterion(rss, k, n, "bic")[0]) == pytest.approx(
        base + np.log(50) * 3)


# -- the discovered model as a process -------------------------------------------------------
def lv_discovery(noise=0.02, seed=0):
    truth = jc.models.lotka_volterra(1.3, 0.9, 0.8, 1.8, x0=0.44249296, y0=4.6280594)
    ts = np.linspace(0.0, 10.0, 201)
    xs = np.asarray(jc.simulate(truth, 0.0, 10.0, saveat=ts, **TIGHT)[truth.path])
    sd = noise * xs.std(0, keepdims=True)
    data = xs + sd * np.random.default_rng(seed).standard_normal(xs.shape)
    found = dc.discover(ts, data, dc.PolynomialLibrary(2), variables="xy",
                        optimizer=dc.STLSQ(0.2), derivatives=dc.WeakForm(60, 31),
                        name="lv", x0={"x": 0.44249296, "y": 4.6280594})
    return ts, xs, data, sd[0], found


TRUE_LV = {"x:x": 1.3, "x:x*y": -0.9, "y:x*y": 0.8, "y:y": -1.8}


def test_discovered_coefficients_are_parameters_that_fit_refines():
    ts, xs, data, sd, found = lv_discovery()
    model = found.model
    assert set(model.parameters()) == set(TRUE_LV)
    before = {k: float(v) for k, v in model.parameters().items()}
    params = Parameters(dc.coefficient_parameters(model), model=model)
    exps = [Experiment(ts, data[:, 0], "molecular/lv/x", noise=Normal(sd[0])),
            Experiment(ts, data[:, 1], "molecular/lv/y", noise=Normal(sd[1]))]
    obj = Objective(model, params, exps, **TIGHT)
    res = fit(obj)
    after = {k: float(v) for k, v in obj.parameters.values(res.x).items()}
    err_before = max(abs(before[k] - v) / abs(v) for k, v in TRUE_LV.items())
    err_after = max(abs(after[k] - v) / abs(v) for k, v in TRUE_LV.items())
    assert err_after < 5e-3 and err_after < err_before, (err_before, err_after)
    # gradients of the data misfit with respect to the coefficients: finite differences
    x0 = jnp.asarray(res.x) + 0.01
    g = np.asarray(jax.grad(obj.nll)(x0))
    h = 1e-6
    for i in range(len(x0)):
        e = jnp.zeros_like(x0).at[i].set(h)
        fd = (float(obj.nll(x0 + e)) - float(obj.nll(x0 - e))) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_sparse_model_per_cell_and_in_a_composite():
    _, _, _, _, found = lv_discovery(noise=0.0)
    cells = jc.cellular.PerCell(found.model, n_cells=3)
    y0 = jnp.array([0.44249296, 1.0, 2.0])
    cells = jc.as_composite(cells)
    state = cells.initial_state()
    state["molecular"]["lv"]["x"] = y0
    traj = jc.simulate(cells, 0.0, 2.0, y0=state, saveat=[2.0], **TIGHT)
    for c in range(3):
        single = jc.as_composite(found.model)
        st = single.initial_state()
        st["molecular"]["lv"]["x"] = y0[c]
        one = jc.simulate(single, 0.0, 2.0, y0=st, saveat=[2.0], **TIGHT)
        assert float(traj["molecular/lv/x"][-1, c]) == pytest.approx(
            float(one["molecular/lv/x"][-1]), rel=1e-9)


def test_sbml_round_trip_against_libroadrunner_and_reimport():
    rr = pytest.importorskip("roadrunner")
    _, _, _, _, found = lv_discovery(noise=0.0)
    text = dc.to_sbml(found.model)
    runner = rr.RoadRunner(text)
    runner.integrator.relative_tolerance = 1e-12
    runner.integrator.absolute_tolerance = 1e-12
    out = runner.simulate(0.0, 10.0, 101)
    ts = np.linspace(0.0, 10.0, 101)
    ours = jc.simulate(found.model, 0.0, 10.0, saveat=ts, **TIGHT)
    for v in "xy":
        np.testing.assert_allclose(out[f"[{v}]"], np.asarray(ours[f"molecular/lv/{v}"]),
                                   rtol=1e-6, atol=1e-9)
    # read back with jaxcell's own importer: same species, coefficients and dynamics
    back = jc.sbml.load_sbml(text, name="lv")
    coefs = {k: float(v) for k, v in back.parameters().items() if k.startswith("c_")}
    np.testing.assert_allclose(sorted(coefs.values()), sorted(
        float(v) for v in found.model.parameters().values()), rtol=1e-14)
    traj = jc.simulate(back, 0.0, 10.0, saveat=ts, **TIGHT)
    for v in "xy":
        np.testing.assert_allclose(np.asarray(traj[v]), np.asarray(ours[f"molecular/lv/{v}"]),
                                   rtol=1e-8, atol=1e-10)


def test_rational_model_prints_and_exports():
    ts = np.linspace(0, 8, 201)
    s = 5.0 * np.exp(-0.3 * ts)
    xdot = (-1.5 * s / (0.8 + s))[:, None]
    found = dc.discover(ts, s[:, None], dc.PolynomialLibrary(2), variables=["s"],
                        optimizer=dc.SINDyPI(), x_dot=xdot)
    assert found.equations(4) == ["ds/dt = (-1.875*s) / (1 + 1.25*s)"] or found.equations(
        4) == ["ds/dt = (-1.5*s) / (0.8 + s)"]
    text = dc.to_sbml(found.model)
    assert "<rateRule" in text and text.count("<parameter ") == 3


# -- input checks ----------------------------------------------------------------------------
def test_bad_input_names_what_is_wrong():
    ts = np.linspace(0, 1, 20)
    xs = np.stack([np.sin(ts), np.cos(ts)], 1)
    lib = dc.PolynomialLibrary(2)
    with pytest.raises(dc.DiscoveryError, match="2 columns but 3 variables"):
        dc.discover(ts, xs, lib, variables="xyz")
    bad = xs.copy()
    bad[4, 1] = np.nan
    with pytest.raises(dc.DiscoveryError, match="sample 4, variable 1"):
        dc.discover(ts, bad, lib, variables="xy")
    with pytest.raises(dc.DiscoveryError, match="strictly increasing"):
        dc.discover(ts[::-1], xs, lib, variables="xy")
    with pytest.raises(dc.DiscoveryError, match="repeated terms"):
        dc.discover(ts, xs, lib + dc.PolynomialLibrary(1), variables="xy")
    with pytest.raises(dc.DiscoveryError, match="uniformly spaced"):
        dc.SavitzkyGolay(5, 2)(ts**2, xs)
    with pytest.raises(dc.DiscoveryError, match="window must be odd"):
        dc.SavitzkyGolay(4, 2)
    with pytest.raises(dc.DiscoveryError, match="inputs \\['q'\\]"):
        dc.PolynomialLibrary(2, inputs=("q",)).names(["x", "y"])
    with pytest.raises(dc.DiscoveryError, match="optimizer must be"):
        dc.discover(ts, xs, lib, variables="xy", optimizer="stlsq")
    with pytest.raises(dc.DiscoveryError, match="threshold must be >= 0"):
        dc.STLSQ(-1.0)
    with pytest.raises(dc.DiscoveryError, match="log\\(x\\)' is not finite"):
        dc.discover(ts, xs, dc.CustomLibrary([jnp.log], ["log({0})"]), variables="xy")
    with pytest.raises(dc.DiscoveryError, match="constraint_lhs must have 12 columns"):
        dc.SR3(0.1, constraint_lhs=np.ones((1, 5)), constraint_rhs=[0.0])(
            lib(xs, "xy"), xs)
    found = dc.discover(ts, xs, lib, variables=["x y", "z"], x_dot=xs)
    with pytest.raises(dc.DiscoveryError, match="'x y' is not a valid SBML identifier"):
        dc.to_sbml(found.model)
    with pytest.raises(jc.ModelError, match="coefficients must have shape"):
        dc.SparseModel("m", lib, np.zeros((2, 3)), variables="xy", x0={"x": 0, "y": 0})


@pytest.mark.slow
def test_nuts_intervals_on_discovered_coefficients():
    """NUTS on the kept coefficients of a discovered Lotka-Volterra model (weak priors
    centred on the discovered values): every true value lies in its 99 % interval and
    the chain mixes (r_hat < 1.05)."""
    from jaxcell.inference import objective_model, sample_nuts

    ts, xs, data, sd, found = lv_discovery(noise=0.02, seed=2)
    model = found.model
    params = Parameters(dc.coefficient_parameters(model, prior_scale=0.5), model=model)
    exps = [Experiment(ts, data[:, 0], "molecular/lv/x", noise=Normal(sd[0])),
            Experiment(ts, data[:, 1], "molecular/lv/y", noise=Normal(sd[1]))]
    obj = Objective(model, params, exps, solver=diffrax.Tsit5(),
                    stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))
    res = sample_nuts(objective_model(obj), key=jax.random.key(0), num_warmup=300,
                      num_samples=400)
    summary = res.summary(prob=0.99)
    for name, true in TRUE_LV.items():
        s = summary[name]
        assert s["q0.5"] <= true <= s["q99.5"], (name, s)
        assert s["r_hat"] < 1.05


def test_distill_refuses_a_process_that_owns_its_variables():
    model = jc.Composite([jc.ODE("a", {"x": 1.0}, lambda t, y, p: {"x": -y["x"]})])
    traj = jc.simulate(model, 0.0, 1.0, saveat=np.linspace(0, 1, 5))
    with pytest.raises(dc.DiscoveryError, match="owns variables"):
        dc.distill(model, "a", traj, dc.PolynomialLibrary(1))
    with pytest.raises(dc.DiscoveryError, match="no process named 'b'"):
        dc.distill(model, "b", traj, dc.PolynomialLibrary(1))
