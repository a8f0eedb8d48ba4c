"""RNA velocity kinetics: closed-form derivatives against autodiff, gradients against
finite differences, the simulator against the exact solution, the forward step and the
forward simulation (the one engine) against each other, and clear errors."""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

import jaxcell as jc
import jaxcell.velocity as jv
from jaxcell.cellular import Splicing, splicing_solution
from jaxcell.velocity import _kinetics as K
from jaxcell.velocity._bayes import _model

TRUE = dict(alpha=[4.0, 6.0, 3.0], beta=[0.5, 0.3, 0.8], gamma=[0.3, 0.3, 0.2],
            switch=[8.0, 12.0, 5.0])


@pytest.fixture(scope="module")
def clean():
    """Noise-free snapshots of three genes with known kinetics."""
    return jv.simulate_data(60, 3, noise=0.0, seed=3, **TRUE)


def _piecewise(t, a, b, g, ts):
    """The on/off solution written with the plain splicing solution (two pieces)."""
    u1, s1 = splicing_solution(np.minimum(t, ts), 0.0, 0.0, a, b, g)
    return splicing_solution(np.maximum(t - ts, 0.0), u1, s1, 0.0, b, g)


def test_simulator_matches_the_exact_solution(clean):
    t = clean.obs["true_t"].to_numpy()
    for j in range(3):
        u, s = _piecewise(t, TRUE["alpha"][j], TRUE["beta"][j], TRUE["gamma"][j],
                          TRUE["switch"][j])
        np.testing.assert_allclose(clean.layers["unspliced"][:, j], u, rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(clean.layers["spliced"][:, j], s, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("theta", [[5.0, 0.5, 0.3, 4.0, 1.3], [2.0, 0.4, 0.4, 3.0, 0.7],
                                   [2.0, 0.4, 0.4 * (1 + 1e-7), 3.0, 0.7],
                                   [1.0, 3.0, 0.2, 2.0, 2.0]])
def test_closed_form_jacobian_matches_autodiff(theta):
    th = jnp.log(jnp.asarray(theta))
    rng = np.random.default_rng(0)
    tau = jnp.asarray(rng.uniform(0, 6, 40))
    on = jnp.asarray(rng.uniform(size=40) < 0.5)

    def curve(th):
        a, b, g, ts, c = K.unpack(th)
        u, s = K.branch(tau, on, a, b, g, ts)
        return jnp.stack([c * u, s])

    cu, s, ju, js = K.curve_jacobian(th, tau, on)
    ref = jax.jacfwd(curve)(th)
    np.testing.assert_allclose(cu, curve(th)[0], rtol=1e-13)
    np.testing.assert_allclose(ju, ref[0].T, rtol=1e-9, atol=1e-12 * np.abs(ju).max())
    np.testing.assert_allclose(js, ref[1].T, rtol=1e-9, atol=1e-9 * np.abs(js).max())


def test_shared_clock_jacobian_matches_autodiff():
    """With absolute times, the repression branch's elapsed time moves with t_."""
    from jaxcell.velocity._latent_time import shared_jacobian

    t = jnp.linspace(0.1, 19.0, 57)
    th = jnp.log(jnp.asarray([5.0, 0.5, 0.3, 9.0, 1.3]))

    def curve(th):
        a, b, g, ts, c = K.unpack(th)
        u, s, _ = K.at_time(t, a, b, g, ts)
        return jnp.stack([c * u, s])

    _, _, ju, js = shared_jacobian(th, t)
    ref = jax.jacfwd(curve)(th)
    np.testing.assert_allclose(ju, ref[0].T, rtol=1e-9, atol=1e-12 * np.abs(ju).max())
    np.testing.assert_allclose(js, ref[1].T, rtol=1e-9, atol=1e-12 * np.abs(js).max())


def _noisy(seed=1):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 20, 80))
    u, s = _piecewise(t, 5.0, 0.5, 0.3, 9.0)
    return (np.clip(u + rng.normal(0, 0.3, t.size), 0.01, None),
            np.clip(s + rng.normal(0, 0.5, t.size), 0.01, None), t)


def test_likelihood_gradient_matches_finite_differences():
    """Log-likelihood of the shared-time model (cells at fixed times) with respect to the
    log-rates: autodiff against central differences."""
    u, s, t = _noisy()
    data = tuple(jnp.asarray(x) for x in (u[:, None], s[:, None], np.ones((80, 1)), t,
                                          np.array([1.2]), np.array([2.1])))
    theta = jnp.log(jnp.asarray([[4.5, 0.45, 0.33, 8.5, 1.1]]))
    noise = jnp.asarray([[0.3, 0.4]])

    @jax.jit
    def loglik(th):
        return log_density(_model, (data,), {}, {"log_kinetics": th, "noise": noise})[0]

    g = jax.grad(loglik)(theta)
    h = 1e-6
    for k in range(5):
        e = jnp.zeros_like(theta).at[0, k].set(h)
        fd = (loglik(theta + e) - loglik(theta - e)) / (2 * h)
        np.testing.assert_allclose(g[0, k], fd, rtol=1e-6, atol=1e-6)


def test_profile_objective_gradient_matches_finite_differences():
    """The per-gene objective with cells re-projected at every evaluation: its gradient
    (cell times held, the envelope theorem) against central differences."""
    u, s, _ = _noisy(2)
    std_u, std_s = jnp.asarray(np.std(u)), jnp.asarray(np.std(s))
    w = jnp.ones_like(jnp.asarray(u))
    theta = jnp.log(jnp.asarray([4.5, 0.45, 0.33, 8.5, 1.1]))

    @jax.jit
    def f(th):
        return K.gene_loss(th, jnp.asarray(u), jnp.asarray(s), w, std_u, std_s,
                           n_grid=64, steps=8)

    g = jax.grad(f)(theta)
    h = 1e-5
    for k in range(5):
        e = jnp.zeros(5).at[k].set(h)
        fd = (f(theta + e) - f(theta - e)) / (2 * h)
        np.testing.assert_allclose(g[k], fd, rtol=1e-4, atol=1e-7)


def test_projection_finds_the_nearest_point_of_the_curve():
    """Cells placed exactly on the curve are projected back to their own time."""
    theta = jnp.log(jnp.asarray([5.0, 0.5, 0.3, 9.0, 1.0]))
    t = jnp.linspace(0.3, 19.0, 50)
    u, s, on = K.at_time(t, 5.0, 0.5, 0.3, 9.0)
    tt, o, d = K.cell_times(u, s, theta, 1.0, 1.0, n_grid=64, steps=6)
    np.testing.assert_array_equal(o, on)
    np.testing.assert_allclose(tt, t, rtol=1e-6)
    assert float(jnp.max(d)) < 1e-12


def test_forward_step_and_forward_simulation_agree(clean):
    """`predict` (exact, with the switch) against `simulate_forward` (Splicing on the one
    engine), from the fitted kinetics; dt = 0 gives the observed state, and the
    velocity is the derivative of the forward step."""
    a = clean.copy()
    jv.recover_dynamics(a, n_steps=8)
    jv.velocity(a)
    k = jv.kinetics(a)
    u0, s0 = jv.predict(a, 0.0)
    np.testing.assert_allclose(u0, k["u"], rtol=1e-13)
    np.testing.assert_allclose(s0, k["s"], rtol=1e-13)
    h = 1e-6
    _, s_h = jv.predict(a, h)
    np.testing.assert_allclose((s_h - s0) / h, a.layers["velocity"][:, k["mask"]],
                               rtol=1e-4, atol=1e-6)
    ts = [0.0, 0.5, 2.0]
    out = jv.simulate_forward(a, ts, rtol=1e-11, atol=1e-13)
    for i, dt in enumerate(ts):
        u, s = jv.predict(a, dt)
        np.testing.assert_allclose(out["unspliced"][i], u, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(out["spliced"][i], s, rtol=1e-6, atol=1e-9)
    proc = jv.forward_process(a)
    assert isinstance(proc, Splicing) and proc.u0.shape == (60 * int(k["mask"].sum()),)


def test_splicing_switch_time_stops_transcription():
    gene = Splicing("g", 2, alpha=2.0, beta=1.0, gamma=0.5, switch_time=[1.0, np.inf])
    traj = jc.simulate(gene, 0.0, 3.0, saveat=[3.0], solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
    u, s = _piecewise(np.array(3.0), 2.0, 1.0, 0.5, 1.0)
    got = np.asarray(traj["cellular/g/unspliced"][-1])
    np.testing.assert_allclose(got[0], u, rtol=1e-7)
    np.testing.assert_allclose(got[1], splicing_solution(3.0, 0.0, 0.0, 2.0, 1.0, 0.5)[0],
                               rtol=1e-7)
    with pytest.raises(jc.ModelError, match="switch_time must be a scalar or one value"):
        Splicing("g", 2, alpha=2.0, beta=1.0, gamma=0.5, switch_time=[1.0, 2.0, 3.0])


def test_clear_errors(tmp_path, clean):
    junk = tmp_path / "cells.h5ad"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(jv.VelocityError, match="cells.h5ad: not a readable AnnData"):
        jv.read(junk)
    with pytest.raises(jv.VelocityError, match="no such file"):
        jv.read(tmp_path / "missing.h5ad")
    a = clean.copy()
    del a.layers["unspliced"]
    with pytest.raises(jv.VelocityError, match="layer 'unspliced' is missing"):
        jv.recover_dynamics(a)
    a = clean.copy()
    a.layers["spliced"] = -a.layers["spliced"] - 1.0
    with pytest.raises(jv.VelocityError, match="negative values"):
        jv.recover_dynamics(a)
    a = clean.copy()
    a.layers["spliced"][0, 0] = np.nan
    with pytest.raises(jv.VelocityError, match="1 NaN or infinite"):
        jv.steady_state(a)
    with pytest.raises(jv.VelocityError, match="genes: \\['nope'\\] not in"):
        jv.recover_dynamics(clean.copy(), genes=["nope"])
    with pytest.raises(jv.VelocityError, match="run jaxcell.velocity.recover_dynamics"):
        jv.latent_time(clean.copy())
    with pytest.raises(jv.VelocityError, match="recover_dynamics\\(adata\\) first"):
        jv.predict(clean.copy(), 1.0)
    with pytest.raises(jv.VelocityError, match="t_max must be a positive"):
        jv.recover_dynamics(clean.copy(), t_max=-1.0)
    with pytest.raises(jv.VelocityError, match="mode must be one of"):
        jv.velocity(clean.copy(), mode="stochastic")
    with pytest.raises(jv.VelocityError, match="n_cells >= 3"):
        jv.simulate_data(2, 3)
