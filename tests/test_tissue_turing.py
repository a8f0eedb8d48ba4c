"""Turing patterns from composed processes: two DiffusingFields and a reaction Coupling
(Schnakenberg kinetics, Murray's form; REFERENCE-MODELS T2). The linear stability of the
discretised model (eigenvalues of its Jacobian, by jax.jacfwd) is checked against the
two-species theory: no unstable mode just below the critical diffusion ratio
d_c = 8.56763, unstable modes just above it, and the fastest-growing mode of a
simulation in its linear regime is the one the theory predicts."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import jaxcell as jc
from jaxcell.tissue import DiffusingField, Grid, NoFlux, Periodic

A_, B_, GAMMA = 0.1, 0.9, 1.0
U_STAR, V_STAR = A_ + B_, B_ / (A_ + B_) ** 2
D_C = 8.56763
N, H = 120, 0.75  # a ring of length 90: its modes k_m = 2 pi m / 90 sample k_c = 0.5845


def _model(d, u0, v0):
    grid = Grid((N, 1), spacing=H)
    bc = [Periodic(), NoFlux()]
    u = DiffusingField("u", grid, D=1.0, initial=u0, boundary=bc)
    v = DiffusingField("v", grid, D=d, initial=v0, boundary=bc)

    def kinetics(t, x, p):
        uu, vv = x["u"], x["v"]
        return {"u": GAMMA * (A_ - uu + uu**2 * vv), "v": GAMMA * (B_ - uu**2 * vv)}

    react = jc.Coupling("schnakenberg", kinetics,
                        changes={"u": "tissue/u/concentration", "v": "tissue/v/concentration"})
    return jc.Composite([u, v, react])


def _theory_growth(d):
    """Growth rate of each discrete mode m = 0..N/2: the largest eigenvalue of
    gamma J - mu_m diag(1, d), with mu_m the discrete Laplacian's eigenvalue."""
    jac = GAMMA * np.array([[-1 + 2 * U_STAR * V_STAR, U_STAR**2],
                            [-2 * U_STAR * V_STAR, -U_STAR**2]])
    m = np.arange(N // 2 + 1)
    mu = 4.0 / H**2 * np.sin(np.pi * m / N) ** 2
    return np.array([np.linalg.eigvals(jac - x * np.diag([1.0, d])).real.max() for x in mu])


def _jacobian_growth(d):
    model = _model(d, U_STAR, V_STAR)
    y0 = model.initial_values()
    paths = sorted(y0)
    flat0 = jnp.concatenate([y0[p].ravel() for p in paths])

    def f(flat):
        parts = jnp.split(flat, len(paths))
        state = jc.nest_state({p: x.reshape(y0[p].shape) for p, x in zip(paths, parts)})
        rates = model.vector_field(0.0, state, None)
        flat_rates = jc.flatten_state(rates)
        return jnp.concatenate([flat_rates[p].ravel() for p in paths])

    return np.linalg.eigvals(np.asarray(jax.jacfwd(f)(flat0))).real.max()


def test_homogeneous_state():
    np.testing.assert_allclose([U_STAR, V_STAR], [1.0, 0.9])


def test_pattern_forms_just_above_the_critical_ratio_and_not_below():
    below, above = 0.95 * D_C, 1.05 * D_C
    assert _theory_growth(below).max() < 0
    assert _theory_growth(above).max() > 0
    # the discretised composite model has the same spectrum
    np.testing.assert_allclose(_jacobian_growth(below), _theory_growth(below).max(),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_jacobian_growth(above), _theory_growth(above).max(),
                               rtol=1e-10, atol=1e-12)
    assert _jacobian_growth(below) < 0 < _jacobian_growth(above)


def test_fastest_growing_mode_of_a_simulation_matches_linear_stability():
    d = 20.0
    sigma = _theory_growth(d)
    m_fast = int(np.argmax(sigma))
    # a one-cell perturbation excites every mode equally; in the linear regime the
    # fastest-growing mode dominates
    u0 = np.full((N, 1), U_STAR)
    u0[0, 0] += 1e-6
    model = _model(d, u0, np.full((N, 1), V_STAR))
    t1 = 40.0
    traj = jc.simulate(model, 0.0, t1, saveat=[t1 / 2, t1],
                       stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-14))
    u_half = np.asarray(traj["tissue/u/concentration"][0])[:, 0] - U_STAR
    u = np.asarray(traj["tissue/u/concentration"][-1])[:, 0] - U_STAR
    spectrum = np.abs(np.fft.rfft(u))
    assert int(np.argmax(spectrum)) == m_fast
    # still linear (the mode's amplitude in each cell, 2 |F_m| / N, is below 1e-2) and
    # it grew at the predicted rate (the one-cell pulse gives each mode |F_m| = 1e-6)
    assert 2 * spectrum.max() / N < 1e-2
    # the growth rate between t1/2 and t1 (the slower eigen-component of the mode has
    # decayed by then) is the theory's to 1 % (catalogue T2, test 2)
    growth = np.log(spectrum[m_fast] / np.abs(np.fft.rfft(u_half))[m_fast]) / (t1 / 2)
    np.testing.assert_allclose(growth, sigma[m_fast], rtol=0.01)
    # and the wavenumber is the continuum fastest one, 0.4867 sqrt(gamma), to the grid
    np.testing.assert_allclose(2 * np.pi * m_fast / (N * H), 0.4867, atol=2 * np.pi / (N * H))
