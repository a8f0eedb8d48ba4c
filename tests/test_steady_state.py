"""Steady states (`jaxcell.analysis.steady_state`) against closed forms, scipy root
finding, the catalogue's numbers (M2, M4, M6) and finite differences."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import jaxcell as jc
from jaxcell.analysis import SteadyState, steady_state


def _isomerisation(k1=2.0, k2=0.5, a0=3.0, b0=1.0):
    return jc.ODE(
        "iso", {"A": a0, "B": b0},
        lambda t, y, p: {"A": -p["k1"] * y["A"] + p["k2"] * y["B"],
                         "B": p["k1"] * y["A"] - p["k2"] * y["B"]},
        parameters={"k1": k1, "k2": k2})


def test_conservation_class_and_closed_form():
    """A <-> B: the steady state of the class A + B = 4 is A = 4 k2/(k1+k2) (1e-12);
    one conservation law is found, the reduced eigenvalue is -(k1 + k2)."""
    ss = steady_state(_isomerisation())
    assert isinstance(ss, SteadyState)
    assert int(ss.n_conserved) == 1
    np.testing.assert_allclose(float(ss["molecular/iso/A"]), 4 * 0.5 / 2.5, rtol=1e-12)
    np.testing.assert_allclose(float(ss["A"] + ss["B"]), 4.0, rtol=1e-13)
    ev = np.asarray(ss.eigenvalues)
    np.testing.assert_allclose(ev[0].real, -2.5, rtol=1e-10)
    assert np.isnan(ev[1])
    assert bool(ss.stable) and float(ss.residual) < 1e-12
    # mass action network: E + C and S + C + P conserved (two laws)
    mm = steady_state(jc.models.michaelis_menten_mass_action(e0=0.5))
    assert int(mm.n_conserved) == 2
    np.testing.assert_allclose([float(mm["E"]), float(mm["P"])], [0.5, 2.0], rtol=1e-12)


@pytest.fixture(scope="module")
def repressilator_ss():
    return steady_state(jc.models.repressilator())


def test_repressilator_fixed_point_and_eigenvalue(repressilator_ss):
    """M2: the symmetric fixed point p* solves p = α/(1+p²) + α0 (scipy, 1e-12); the
    Jacobian equals the analytic one (1e-10); the leading eigenvalue is +0.04169
    (catalogue, rel 1e-4): unstable."""
    ss = repressilator_ss
    alpha, alpha0, beta = 216.404, 0.2164, 0.2
    p_star = brentq(lambda p: alpha / (1 + p**2) + alpha0 - p, 0.0, 100.0, xtol=1e-15)
    for g in ("lacI", "tetR", "cI"):
        np.testing.assert_allclose(float(ss[f"p_{g}"]), p_star, rtol=1e-12)
        np.testing.assert_allclose(float(ss[f"m_{g}"]), p_star, rtol=1e-12)
    np.testing.assert_allclose(p_star, 6.02257, rtol=1e-6)
    # analytic Jacobian, species order m_lacI, m_tetR, m_cI, p_lacI, p_tetR, p_cI
    h = -alpha * 2 * p_star / (1 + p_star**2) ** 2
    jac = np.zeros((6, 6))
    jac[:3, :3] = -np.eye(3)
    jac[3:, :3] = beta * np.eye(3)
    jac[3:, 3:] = -beta * np.eye(3)
    repressor = {0: 5, 1: 3, 2: 4}  # lacI <- cI, tetR <- lacI, cI <- tetR
    for i, j in repressor.items():
        jac[i, j] = h
    np.testing.assert_allclose(np.asarray(ss.jacobian), jac, rtol=1e-10, atol=1e-12)
    lead = np.max(np.linalg.eigvals(jac).real)
    np.testing.assert_allclose(float(np.asarray(ss.eigenvalues[0]).real), lead, rtol=1e-10)
    np.testing.assert_allclose(lead, 0.04169, rtol=1e-4)
    assert not bool(ss.stable)


def test_toggle_bistable_states_match_nullclines():
    """M4: from two starts the toggle reaches its two stable states; each solves the
    nullcline equations (scipy brentq, 1e-10)."""
    a1, a2, b, g = 156.25, 15.6, 2.5, 1.0
    tog = jc.models.toggle_switch()

    def h(u):  # u - a1 / (1 + v(u)^b) with v = a2/(1+u^g)
        return u - a1 / (1 + (a2 / (1 + u**g)) ** b)

    grid = np.linspace(1e-6, 160, 20001)
    roots = [brentq(h, x0, x1, xtol=1e-14) for x0, x1 in zip(grid[:-1], grid[1:])
             if np.sign(h(x0)) != np.sign(h(x1))]
    assert len(roots) == 3  # bistable at IPTG = 0
    low = steady_state(tog, y0={"u": 0.0, "v": 10.0})
    high = steady_state(tog, y0={"u": 150.0, "v": 0.0})
    np.testing.assert_allclose(float(low["u"]), roots[0], rtol=1e-10)
    np.testing.assert_allclose(float(high["u"]), roots[-1], rtol=1e-10)
    assert bool(low.stable) and bool(high.stable)
    mid = steady_state(tog, y0={"u": roots[1] * 1.01, "v": a2 / (1 + roots[1])})
    np.testing.assert_allclose(float(mid["u"]), roots[1], rtol=1e-10)
    assert not bool(mid.stable)


def test_gradient_by_implicit_function_theorem():
    """d y*/d parameter (one linear solve) equals central finite differences of the
    steady state itself (rel 1e-6), for a parameter and for the initial total. (Newton
    only: the implicit-function gradient does not depend on how the root was found.)"""

    def z_star(a):
        return steady_state(jc.models.goodwin(n=7.0, a=a), integrate=None)["z"]

    g = float(jax.grad(z_star)(100.0))
    fd = float((z_star(100.0 + 1e-3) - z_star(100.0 - 1e-3)) / 2e-3)
    np.testing.assert_allclose(g, fd, rtol=1e-6)

    def a_star(a0):  # steady A of A <-> B depends on the total A0 + B0
        return steady_state(_isomerisation(), y0={"molecular/iso/A": a0},
                            integrate=None)["A"]

    np.testing.assert_allclose(float(jax.grad(a_star)(3.0)), 0.5 / 2.5, rtol=1e-10)


def _hill_coefficient(e1, x):
    x = np.asarray(x) / np.max(x)
    le = np.log(e1)
    e10, e90 = np.interp(0.1, x, le), np.interp(0.9, x, le)
    return np.log(81.0) / (e90 - e10)


def test_huang_ferrell_ultrasensitivity():
    """M6 (a): the steady-state dose response (200 log points of E1 in [1e-7, 1e-2] µM,
    one jit(vmap) of steady_state) gives free-species Hill coefficients 1.06 / 1.72 /
    4.86 (± 0.1) increasing down the cascade; the 7 conservation laws hold to 1e-9."""
    net = jc.models.huang_ferrell_mapk()
    e1 = jnp.logspace(-7, -2, 200)

    @eqx.filter_jit
    def sweep(e1):
        return jax.vmap(lambda e: steady_state(net, y0={"E1": e}, throw=False))(e1)

    out = sweep(e1)
    assert bool(jnp.all(out.converged))
    assert np.all(np.asarray(out.n_conserved) == 7)
    assert int(jnp.sum(out.integrated)) > 0  # some needed the integration fallback
    nh = [_hill_coefficient(np.asarray(e1), out[s]) for s in ("KKKs", "KKPP", "KPP")]
    np.testing.assert_allclose(nh, [1.06, 1.72, 4.86], atol=0.1)
    assert nh[0] < nh[1] < nh[2]
    # conservation: MAPK total (free and in complexes) stays 1.2 µM at every dose
    k_total = sum(out[s] for s in ("K", "KP", "KPP", "K_KKPP", "KP_KKPP", "KP_KPase",
                                   "KPP_KPase"))
    np.testing.assert_allclose(np.asarray(k_total), 1.2, rtol=1e-9)
    e1_total = out["E1"] + out["KKK_E1"]
    np.testing.assert_allclose(np.asarray(e1_total), np.asarray(e1), rtol=1e-9)


def test_steady_state_errors():
    """Clear errors: event processes, bad arguments, and no steady state (throw)."""
    ev = jc.Event("dose", lambda t, x, p: {"x": x["x"] + 1.0}, period=2.0,
                  changes={"x": "molecular/iso/A"})
    with pytest.raises(jc.SimulationError, match="event or discrete processes"):
        steady_state([_isomerisation(), ev])
    with pytest.raises(jc.SimulationError, match="conservation must be True or False"):
        steady_state(_isomerisation(), conservation="yes")  # pyright: ignore
    with pytest.raises(jc.SimulationError, match="integrate must be"):
        steady_state(_isomerisation(), integrate=-1.0)
    growth = jc.ODE("g", {"x": 1.0}, lambda t, y, p: {"x": p["r"] + 0 * y["x"]},
                    parameters={"r": 1.0})
    with pytest.raises(Exception, match="no steady state found"):
        steady_state(growth, integrate=10.0)
    out = steady_state(growth, integrate=10.0, throw=False)
    assert not bool(out.converged)
