"""Continuation of steady states and bifurcations (`jaxcell.analysis.continuation`)
against closed-form bifurcation points: the toggle pitchfork (M4), the Goodwin secant
condition (M3), the Sel'kov (M7) and Brusselator (M5) Hopf boundaries and the IPTG
switch point of the toggle (M4)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.optimize import brentq, fsolve

import jaxcell as jc
from jaxcell.analysis import Branch, continuation


def _symmetric(model, a):
    return model.replace_parameters({"toggle.alpha1": a, "toggle.alpha2": a})


def test_toggle_pitchfork():
    """M4: the symmetric toggle (α1 = α2 = α, β = γ = n) has its pitchfork at
    α_c = n/(n−1)·(n−1)^(−1/n): 2 for n = 2 and 1.1906 for n = 3 (1e-8). The symmetric
    branch is stable before and unstable after; the diagram plots."""
    for n, ac_catalogue in ((2.0, 2.0), (3.0, 1.1906)):
        toggle = jc.models.toggle_switch(1.0, 1.0, beta=n, gamma=n, eta=1.0, u0=0.5,
                                         v0=0.5)
        br = continuation(toggle, _symmetric, 1.0, 3.0)
        assert isinstance(br, Branch)
        assert [pt.kind for pt in br.points] == ["branch point"]
        ac = n / (n - 1) * (n - 1) ** (-1 / n)
        np.testing.assert_allclose(br.points[0].p, ac, rtol=1e-8)
        np.testing.assert_allclose(ac, ac_catalogue, rtol=1e-4)
        assert np.all(br.stable[br.p < ac - 1e-6]) and not np.any(br.stable[br.p > ac + 1e-6])
        # on the symmetric branch u = v and u solves u = α/(1+u^n) at every point
        np.testing.assert_allclose(br["u"], br["v"], rtol=1e-9)
        np.testing.assert_allclose(br["u"], br.p / (1 + br["u"] ** n), rtol=1e-9)
    ax = br.plot("u")
    assert ax.get_xlabel() == "_symmetric" and len(ax.lines) >= 3


def test_goodwin_hopf_secant_condition():
    """M3: the Hopf point in n (a = 100) is where the loop gain n(1 − z*/a) reaches
    sec(π/3)³ = 8 with z*^n = a/z* − 1 (scipy, 1e-8), at frequency √3 (1e-6)."""
    a = 100.0

    def gain_minus_8(z):
        n = 8.0 / (1 - z / a)
        return n * np.log(z) - np.log(a / z - 1)

    z = brentq(gain_minus_8, 1.0, 10.0, xtol=1e-15)
    n_hopf = 8.0 / (1 - z / a)
    br = continuation(jc.models.goodwin(n=5.0), "goodwin.n", 5.0, 12.0)
    hopf = br.of_kind("hopf")
    assert len(hopf) == 1 and len(br.points) == 1
    np.testing.assert_allclose(hopf[0].p, n_hopf, rtol=1e-8)
    np.testing.assert_allclose(hopf[0].frequency, np.sqrt(3.0), rtol=1e-6)
    # the catalogue: n = 7 decays, n = 9 oscillates
    assert 7 < hopf[0].p < 9


def _selkov(a=0.08, b=0.1):
    return jc.ODE("selkov", {"x": b, "y": b / (a + b * b)},
                  lambda t, s, p: {"x": -s["x"] + p["a"] * s["y"] + s["x"] ** 2 * s["y"],
                                   "y": p["b"] - p["a"] * s["y"] - s["x"] ** 2 * s["y"]},
                  parameters={"a": a, "b": b})


def _brusselator(a=1.0, b=1.0):
    return jc.ODE("bruss", {"x": a, "y": b / a},
                  lambda t, s, p: {"x": p["A"] - (p["B"] + 1) * s["x"] + s["x"] ** 2 * s["y"],
                                   "y": p["B"] * s["x"] - s["x"] ** 2 * s["y"]},
                  parameters={"A": a, "B": b})


def test_selkov_and_brusselator_hopf_boundaries():
    """M7: Sel'kov (a = 0.08) has Hopf points at b² = (1 − 2a ± √(1 − 8a))/2, i.e.
    b = 0.346410 and 0.848528 (1e-8), oscillating between them. M5: the Brusselator's
    Hopf is at B = 1 + A² with frequency A (1e-8), for A = 1 and 1.5."""
    a = 0.08
    br = continuation(_selkov(a, 0.1), "selkov.b", 0.1, 1.0)
    hopf = br.of_kind("hopf")
    expected = np.sqrt([(1 - 2 * a - np.sqrt(1 - 8 * a)) / 2, (1 - 2 * a + np.sqrt(1 - 8 * a)) / 2])
    np.testing.assert_allclose([pt.p for pt in hopf], expected, rtol=1e-8)
    np.testing.assert_allclose(expected, [0.34641, 0.84853], atol=1e-5)
    inside = (br.p > expected[0] + 1e-6) & (br.p < expected[1] - 1e-6)
    assert not np.any(br.stable[inside]) and np.all(br.stable[~inside & (np.abs(br.p - expected[0]) > 1e-6) & (np.abs(br.p - expected[1]) > 1e-6)])
    # the steady state along the branch is (b, b/(a + b²))
    np.testing.assert_allclose(br["x"], br.p, rtol=1e-9)
    for A in (1.0, 1.5):
        bb = continuation(_brusselator(A, 1.0), "bruss.B", 1.0, 2.0 + A * A)
        (pt,) = bb.of_kind("hopf")
        np.testing.assert_allclose(pt.p, 1 + A * A, rtol=1e-8)
        np.testing.assert_allclose(pt.frequency, A, rtol=1e-8)


def test_toggle_iptg_switch_point():
    """M4: continuing the high-u state of the pTAK117 toggle in IPTG finds the fold at
    3.93e-5 M (catalogue, ±1 %), equal (1e-7) to the fold of the nullcline equations
    solved by scipy (u, v and the zero of the Jacobian determinant)."""
    p = dict(a1=156.25, a2=15.6, b=2.5, g=1.0, eta=2.0015, K=2.9618e-5)

    def equations(z):
        u, v, iptg = z[0], z[1], z[2] * 1e-5
        s = (1 + iptg / p["K"]) ** p["eta"]
        w = u / s
        f1 = p["a1"] / (1 + v ** p["b"]) - u
        f2 = p["a2"] / (1 + w ** p["g"]) - v
        du = -p["a1"] * p["b"] * v ** (p["b"] - 1) / (1 + v ** p["b"]) ** 2
        dv = -p["a2"] * p["g"] * w ** (p["g"] - 1) / (1 + w ** p["g"]) ** 2 / s
        return [f1, f2, 1 - du * dv]

    br = continuation(jc.models.toggle_switch(u0=150.0, v0=0.1), "toggle.iptg", 0.0, 1e-4)
    folds = br.of_kind("fold")
    assert len(folds) == 1
    pt = folds[0]
    z = fsolve(equations, [float(pt.state["u"]), float(pt.state["v"]), pt.p * 1e5],
               xtol=1e-12)
    np.testing.assert_allclose(pt.p, z[2] * 1e-5, rtol=1e-7)
    np.testing.assert_allclose(pt.p, 3.93e-5, rtol=1e-2)
    # three steady states below the fold (the branch doubles back), one above
    assert br.p.max() == pytest.approx(pt.p, rel=1e-3)


def test_continuation_errors():
    """Bad requests name the problem."""
    g = jc.models.goodwin()
    with pytest.raises(jc.SimulationError, match="no parameter 'goodwin.nn'"):
        continuation(g, "goodwin.nn", 5.0, 6.0)
    with pytest.raises(jc.SimulationError, match="finite and different"):
        continuation(g, "goodwin.n", 5.0, 5.0)
    with pytest.raises(jc.SimulationError, match="ds must be positive"):
        continuation(g, "goodwin.n", 5.0, 6.0, ds=0.0)
    with pytest.raises(jc.SimulationError, match="a name or a function"):
        continuation(g, 3, 5.0, 6.0)  # pyright: ignore
