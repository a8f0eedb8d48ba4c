"""Discrete processes interleaved with integration (jaxcell._hybrid, DiscreteRule)."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc


def _life(t, x, p, key):
    b = x["board"]
    n = sum(jnp.roll(b, (i, j), (0, 1)) for i in (-1, 0, 1) for j in (-1, 0, 1)
            if (i, j) != (0, 0))
    return {"board": jnp.where((n == 3) | ((b == 1) & (n == 2)), 1.0, 0.0)}


def test_game_of_life_glider_translates_by_one_cell_every_four_steps():
    # A glider is a period-4 pattern that moves one cell diagonally (Gardner 1970).
    glider = np.zeros((8, 8))
    for i, j in [(0, 1), (1, 2), (2, 0), (2, 1), (2, 2)]:
        glider[i, j] = 1.0
    rule = jc.DiscreteRule("life", 1.0, _life, variables={"board": glider})
    traj = jc.simulate(rule, 0.0, 8.0, saveat=[0.0, 4.0, 8.0])
    boards = np.asarray(traj["tissue/life/board"])
    np.testing.assert_array_equal(boards[1], np.roll(glider, (1, 1), (0, 1)))
    np.testing.assert_array_equal(boards[2], np.roll(glider, (2, 2), (0, 1)))
    assert boards[2].sum() == 5


def _dosing(k=0.5, dose=1.0):
    drug = jc.ODE("drug", {"x": 0.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                  parameters={"k": k})
    rule = jc.DiscreteRule("dose", 1.0, lambda t, x, p, key: {"x": x["x"] + p["D"]},
                           changes={"x": "molecular/drug/x"}, parameters={"D": dose})
    return drug, rule


_TIGHT = diffrax.PIDController(rtol=1e-11, atol=1e-13)


def test_repeated_dosing_matches_the_analytic_series():
    # Doses D at t = 1, 2, ..., decay k between them: x(n) = D sum_{j<n} e^{-jk}
    # (just after dose n), and between doses x(n + s) = x(n) e^{-ks}.
    drug, rule = _dosing()
    traj = jc.simulate([drug, rule], 0.0, 10.0, saveat=np.arange(11.0),
                       stepsize_controller=_TIGHT)
    expected = [sum(np.exp(-0.5 * j) for j in range(n)) for n in range(11)]
    np.testing.assert_allclose(traj["molecular/drug/x"], expected, rtol=1e-10, atol=1e-14)


def test_gradient_through_discrete_updates_matches_finite_differences():
    def final(k, dose):
        drug, rule = _dosing(k, dose)
        traj = jc.simulate([drug, rule], 0.0, 5.0, saveat=[5.0], stepsize_controller=_TIGHT)
        return traj["molecular/drug/x"][-1]

    g = jax.grad(final, argnums=(0, 1))(0.5, 1.0)
    h = 1e-5
    fd_k = (final(0.5 + h, 1.0) - final(0.5 - h, 1.0)) / (2 * h)
    fd_d = (final(0.5, 1.0 + h) - final(0.5, 1.0 - h)) / (2 * h)
    np.testing.assert_allclose(g[0], fd_k, rtol=1e-6)
    np.testing.assert_allclose(g[1], fd_d, rtol=1e-6)
    # Analytic: x(5) = D (1 + e^-k + ... + e^-4k) just after the 5th dose.
    np.testing.assert_allclose(g[1], sum(np.exp(-0.5 * j) for j in range(5)), rtol=1e-9)


def test_intervals_and_save_times_are_checked():
    drug, rule = _dosing()
    with pytest.raises(jc.SimulationError, match="whole multiple"):
        jc.simulate([drug, rule], 0.0, 2.5)
    with pytest.raises(jc.SimulationError, match="not an update time"):
        jc.simulate([drug, rule], 0.0, 3.0, saveat=[0.5])
    with pytest.raises(jc.SimulationError, match="forward in time"):
        jc.simulate([drug, rule], 3.0, 0.0)
    with pytest.raises(jc.ModelError, match="interval"):
        jc.DiscreteRule("bad", -1.0, lambda t, x, p, k: {}, variables={"a": 0.0})
    with pytest.raises(jc.ModelError, match="variables"):
        jc.DiscreteRule("bad", 1.0, lambda t, x, p, k: {})
    other = jc.DiscreteRule("other", 0.3, lambda t, x, p, k: {}, variables={"a": 0.0})
    with pytest.raises(jc.SimulationError, match="not a whole multiple"):
        jc.simulate([drug, rule, other], 0.0, 3.0)


def test_a_rule_writing_an_undeclared_path_is_a_wiring_error():
    drug, _ = _dosing()
    rule = jc.DiscreteRule("dose", 1.0, lambda t, x, p, key: {"y": 1.0},
                           changes={"x": "molecular/drug/x"})
    with pytest.raises(jc.WiringError, match="'y'"):
        jc.simulate([drug, rule], 0.0, 2.0)


def test_random_rules_are_reproducible_from_the_key():
    def noise(t, x, p, key):
        return {"w": x["w"] + jax.random.normal(key, x["w"].shape)}

    walk = jc.DiscreteRule("walk", 1.0, noise, variables={"w": jnp.zeros(2000)})
    a = jc.simulate(walk, 0.0, 16.0, saveat=[16.0], key=jax.random.key(1))
    b = jc.simulate(walk, 0.0, 16.0, saveat=[16.0], key=jax.random.key(1))
    c = jc.simulate(walk, 0.0, 16.0, saveat=[16.0], key=jax.random.key(2))
    wa = np.asarray(a["tissue/walk/w"][-1])
    np.testing.assert_array_equal(wa, b["tissue/walk/w"][-1])
    assert not np.array_equal(wa, c["tissue/walk/w"][-1])
    # A Gaussian random walk after 16 unit steps has variance 16 (2000 walkers:
    # the sample variance is within 4 standard errors, 16·sqrt(2/1999)·4 ≈ 2.0).
    assert abs(wa.var() - 16.0) < 2.0
    assert abs(wa.mean()) < 4 * np.sqrt(16.0 / 2000)
