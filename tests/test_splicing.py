"""Splicing kinetics: simulation against the exact solution (including gamma = beta),
RNA velocity, gradients, recovering gamma/beta from simulated counts, bad input."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcell as jc
from jaxcell.cellular import Splicing, splicing_solution

TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)
TS = np.linspace(0.0, 6.0, 13)


def _simulate(gene, ts=TS):
    traj = jc.simulate(gene, 0.0, float(ts[-1]), saveat=ts, stepsize_controller=TIGHT)
    return (np.asarray(traj[f"cellular/{gene.name}/unspliced"]),
            np.asarray(traj[f"cellular/{gene.name}/spliced"]))


@pytest.mark.parametrize("gamma", [0.4, 0.9, 0.9 + 1e-9], ids=["gamma<beta", "gamma=beta",
                                                                  "gamma~beta"])
def test_simulation_matches_the_exact_solution(gamma):
    alpha = jnp.array([2.0, 0.0, 1.0])   # induced, repressed, induced from a state
    u0, s0 = jnp.array([0.0, 3.0, 1.0]), jnp.array([0.0, 2.0, 0.5])
    gene = Splicing("g", 3, alpha=alpha, beta=0.9, gamma=gamma, u0=u0, s0=s0)
    u, s = _simulate(gene)
    ue, se = splicing_solution(TS[:, None], u0, s0, alpha, 0.9, gamma)
    np.testing.assert_allclose(u, ue, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(s, se, rtol=1e-7, atol=1e-10)


def test_exact_solution_at_gamma_equal_beta_is_the_limit():
    # gamma = beta: s = s0 e^{-bt} + (a/b)(1 - e^{-bt}) + (b u0 - a) t e^{-bt}
    a, b, u0, s0, t = 2.0, 0.7, 0.5, 0.2, np.linspace(0, 5, 11)
    _, s = splicing_solution(t, u0, s0, a, b, b)
    eb = np.exp(-b * t)
    np.testing.assert_allclose(s, s0 * eb + a / b * (1 - eb) + (b * u0 - a) * t * eb,
                               rtol=1e-12)
    _, s_near = splicing_solution(t, u0, s0, a, b, b * (1 + 1e-5))
    np.testing.assert_allclose(s_near, s, rtol=1e-4)


def test_velocity_is_ds_dt():
    gene = Splicing("g", 2, alpha=1.0, beta=2.0, gamma=0.5, u0=[0.3, 1.0], s0=[0.1, 5.0])
    u, s = jnp.array([0.3, 1.0]), jnp.array([0.1, 5.0])
    np.testing.assert_allclose(gene.velocity(u, s), 2.0 * u - 0.5 * s)
    assert float(gene.velocity(u, s)[1]) < 0  # the second cell is past steady state


def test_gamma_over_beta_is_recovered_from_simulated_counts():
    # data: an induction time course (alpha = 1 known); fit log beta, log gamma by
    # gradient descent through the simulation
    truth = dict(beta=1.3, gamma=0.4)
    ts = np.linspace(0.0, 8.0, 17)
    u_obs, s_obs = _simulate(Splicing("g", 1, alpha=1.0, **truth), ts)

    def loss(logp):
        gene = Splicing("g", 1, alpha=1.0, beta=jnp.exp(logp[0]), gamma=jnp.exp(logp[1]))
        traj = jc.simulate(gene, 0.0, 8.0, saveat=ts)
        return (jnp.sum((traj["cellular/g/unspliced"] - u_obs) ** 2)
                + jnp.sum((traj["cellular/g/spliced"] - s_obs) ** 2))

    g = jax.grad(loss)(jnp.log(jnp.array([1.0, 1.0])))
    eps = 1e-6
    fd = [(loss(jnp.array([eps if j == 0 else 0.0, eps if j == 1 else 0.0]))
           - loss(jnp.array([-eps if j == 0 else 0.0, -eps if j == 1 else 0.0]))) / (2 * eps)
          for j in range(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    opt = optax.adam(0.05)
    x = jnp.log(jnp.array([1.0, 1.0]))
    state = opt.init(x)
    step = jax.jit(lambda x, st: (lambda l_g: (l_g, opt.update(l_g[1], st, x)))(
        jax.value_and_grad(loss)(x)))
    for _ in range(400):
        (val, grad), (upd, state) = step(x, state)
        x = optax.apply_updates(x, upd)
    beta, gamma = np.exp(np.asarray(x))
    np.testing.assert_allclose(gamma / beta, truth["gamma"] / truth["beta"], rtol=1e-3)


def test_bad_input_is_named():
    with pytest.raises(jc.ModelError, match="n_cells must be positive"):
        Splicing("g", 0, alpha=1.0, beta=1.0, gamma=1.0)
    with pytest.raises(jc.ModelError, match="alpha must be a scalar or one value per cell"):
        Splicing("g", 3, alpha=jnp.ones(2), beta=1.0, gamma=1.0)
    with pytest.raises(jc.ModelError, match="'gamma' .* must be non-negative"):
        Splicing("g", 3, alpha=1.0, beta=1.0, gamma=-0.1)
