"""Limit cycles by shooting (`jaxcell.analysis.limit_cycle`): periods against scipy's
DOP853 and the catalogue (M2, M5, M6b), Floquet multipliers against Liouville's
formula."""

from __future__ import annotations

import diffrax
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

import jaxcell as jc
from jaxcell.analysis import LimitCycle, limit_cycle


def _bruss_rates(t, s, p):
    return {"x": p["A"] - (p["B"] + 1) * s["x"] + s["x"] ** 2 * s["y"],
            "y": p["B"] * s["x"] - s["x"] ** 2 * s["y"]}


def _brusselator(a, b):
    return jc.ODE("bruss", {"x": a, "y": b / a + 0.5}, _bruss_rates,
                  parameters={"A": a, "B": b})


def _scipy_period(a, b):
    """Mean time between upward crossings of x = a (DOP853, rtol 1e-12), after a
    transient."""

    def rhs(t, z):
        x, y = z
        return [a - (b + 1) * x + x * x * y, b * x - x * x * y]

    def cross(t, z):
        return z[0] - a

    cross.direction = 1.0
    sol = solve_ivp(rhs, (0, 400), [a, b / a + 0.5], method="DOP853", rtol=1e-12,
                    atol=1e-12, events=cross, dense_output=True)
    times = sol.t_events[0]
    times = times[times > 200]
    return float(np.mean(np.diff(times))), sol


def test_brusselator_cycle_period_and_floquet():
    """M5: the Brusselator's cycle at A = 1 has period 6.322 at B = 2.1 and 7.157 at
    B = 3 (catalogue, 1e-3), equal to scipy's crossing times (1e-7). The Floquet
    multipliers: the trivial one is 1 (1e-7), and their product equals
    exp(∮ tr J dt) (Liouville, 1e-6)."""
    solver = diffrax.Tsit5()
    for b, catalogue in ((2.1, 6.322), (3.0, 7.157)):
        lc = limit_cycle(_brusselator(1.0, b), 6.5, transient=200.0, solver=solver)
        assert isinstance(lc, LimitCycle) and bool(lc.converged) and bool(lc.stable)
        ref, _ = _scipy_period(1.0, b)
        np.testing.assert_allclose(float(lc.period), ref, rtol=1e-7)
        np.testing.assert_allclose(float(lc.period), catalogue, rtol=1e-3)
        mu = np.asarray(lc.multipliers)
        np.testing.assert_allclose(mu[0], 1.0, atol=1e-7)
        # Liouville: det(monodromy) = exp(integral of the trace of J over one period)
        orbit = solve_ivp(lambda t, z, b=b: [1 - (b + 1) * z[0] + z[0] ** 2 * z[1],
                                             b * z[0] - z[0] ** 2 * z[1]],
                          (0, float(lc.period)), np.asarray(lc.y), method="DOP853",
                          rtol=1e-12, atol=1e-12, dense_output=True)

        def trace(t, orbit=orbit, b=b):
            x, y = orbit.sol(t)
            return -(b + 1) + 2 * x * y - x * x

        integral, _ = quad(trace, 0, float(lc.period), limit=400, epsabs=1e-12)
        np.testing.assert_allclose(np.prod(mu).real, np.exp(integral), rtol=1e-6)
    # the stored orbit closes on itself
    np.testing.assert_allclose(np.asarray(lc.orbit["x"][-1]), np.asarray(lc.y[0]),
                               rtol=1e-7)


def test_limit_cycle_errors():
    """At a steady state there is no cycle to shoot for; bad guesses are refused."""
    with pytest.raises(jc.SimulationError, match="period must be a positive"):
        limit_cycle(_brusselator(1.0, 2.1), -1.0)
    steady = jc.ODE("bruss", {"x": 1.0, "y": 1.9}, _bruss_rates,
                    parameters={"A": 1.0, "B": 1.9})
    with pytest.raises(jc.SimulationError, match="vector field vanishes"):
        limit_cycle(steady, 6.0)


@pytest.mark.slow
def test_repressilator_and_kholodenko_cycles():
    """M2: period 43.4510 (catalogue, 6 digits); M6 (b): 1299.8 s with MAPK_PP between
    35.8 and 296.6 nM (catalogue)."""
    rep = limit_cycle(jc.models.repressilator(), 43.0, transient=500.0)
    np.testing.assert_allclose(float(rep.period), 43.4510, atol=6e-5)
    mapk = limit_cycle(jc.models.kholodenko_mapk(), 1300.0, transient=20000.0)
    np.testing.assert_allclose(float(mapk.period), 1299.8, atol=0.06)
    pp = np.asarray(mapk.orbit["MAPK_PP"])
    np.testing.assert_allclose([pp.min(), pp.max()], [35.8, 296.6], atol=0.06)
    assert int(np.sum(np.isnan(np.asarray(mapk.multipliers)))) == 3  # three totals
