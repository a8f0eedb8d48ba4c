"""The stiffness check that guards the explicit default of large models (issue 15).

Above 500 state variables ``simulate`` defaults to Tsit5 unless the Jacobian's spectral
radius (estimated by power iteration) says an explicit method would need more than
10,000 steps for stability: then Rodas5, or above 5,000 states an error naming what to
pass. References: the exact solution x_i(t) = exp(-k_i t) of independent decays, whose
Jacobian diag(-k) has spectral radius max k.
"""

import logging

import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell._stiffness import spectral_radius


def _decays(rates):
    return jc.ODE("decay", {"x": jnp.ones(len(rates))},
                  lambda t, y, p: {"x": -p["k"] * y["x"]}, parameters={"k": jnp.asarray(rates)})


def test_spectral_radius_of_a_diagonal_jacobian():
    rates = np.linspace(1.0, 250.0, 50)
    model = jc.as_composite(_decays(rates))
    rho = float(spectral_radius(model, None, jnp.asarray(0.0), None, jnp.float64))
    np.testing.assert_allclose(rho, 250.0, rtol=0.05)


def test_large_stiff_model_gets_an_implicit_solver(caplog):
    rates = np.logspace(-1, 4, 600)  # explicit: >= 1e4 * 10 / 3.3 = 3e4 steps
    with caplog.at_level(logging.INFO, logger="jaxcell"):
        traj = jc.simulate(_decays(rates), 0.0, 10.0, saveat=[1.0, 10.0])
    assert any("stiff" in r.getMessage() and "Rodas5" in r.getMessage()
               for r in caplog.records)
    assert int(traj.stats["num_steps"]) < 1000
    np.testing.assert_allclose(np.asarray(traj["x"])[0], np.exp(-rates), rtol=1e-4,
                               atol=1e-8)


def test_large_nonstiff_model_stays_explicit(caplog):
    rates = np.linspace(0.1, 1.0, 600)
    with caplog.at_level(logging.INFO, logger="jaxcell"):
        traj = jc.simulate(_decays(rates), 0.0, 10.0, saveat=[10.0])
    assert not any("stiff" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(np.asarray(traj["x"])[-1], np.exp(-10.0 * rates), rtol=1e-4,
                               atol=1e-8)


def test_very_large_stiff_model_is_an_error_that_says_what_to_pass():
    with pytest.raises(jc.SimulationError, match=r"6000 state variables and is stiff.*solver="):
        jc.simulate(_decays(np.full(6000, 1e5)), 0.0, 10.0)
