"""Chemotaxis (Keller-Segel, REFERENCE-MODELS T4): the growth rate of an unstable mode
against the exact dispersion relation of the discretised model and its convergence to
the continuous one, the virial identity of the 2-D parabolic-elliptic model on both
sides of the critical mass 8 pi / chi, conservation and positivity, and bad input."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.tissue import Chemotaxis, DiffusingField, Dirichlet, Grid, NoFlux, Periodic

U, V = "tissue/u/concentration", "tissue/v/concentration"


def _production(alpha):
    """The source alpha u of the attractant (its decay beta v is the field's decay)."""
    return jc.Coupling("production", lambda t, x, p: {"v": p["alpha"] * x["u"]},
                       changes={"v": V}, reads={"u": U}, parameters={"alpha": alpha})


def _growth(lam, D, chi, alpha, beta, u0):
    """Largest eigenvalue and its eigenvector of the linearised Keller-Segel model for
    a mode whose (discrete or continuous) Laplacian symbol is -lam."""
    a = np.array([[-D * lam, chi * u0 * lam], [alpha, -D * lam - beta]])
    w, vecs = np.linalg.eig(a)
    i = int(np.argmax(w.real))
    return float(w[i].real), vecs[:, i].real


def test_unstable_mode_grows_at_the_discrete_and_continuous_rate():
    # T4 test 1: D = 1, chi = 5, alpha = beta = u0 = 1, periodic L = 8 pi, mode 3
    D, chi, alpha, beta, u0 = 1.0, 5.0, 1.0, 1.0, 1.0
    L, m = 8 * np.pi, 3
    k = 2 * np.pi * m / L
    sigma, _ = _growth(k**2, D, chi, alpha, beta, u0)
    np.testing.assert_allclose(k, 0.75, rtol=1e-15)
    np.testing.assert_allclose(sigma, 0.6875, rtol=1e-12)  # the catalogue's value

    # About a uniform state the face flux is chi u0 (v_{i+1} - v_i) / h to first order,
    # so the discrete model has the same 2x2 matrix with k^2 replaced by the discrete
    # Laplacian's symbol lam_h = (4 / h^2) sin^2(k h / 2) = k^2 (1 - (k h)^2 / 12 + ...):
    # second-order convergence to sigma, within 1e-4 from n = 384 cells.
    def discrete(n):
        h = L / n
        return _growth(4 / h**2 * np.sin(k * h / 2) ** 2, D, chi, alpha, beta, u0)

    errors = [abs(discrete(n)[0] - sigma) for n in (96, 192, 384)]
    np.testing.assert_allclose(np.log2(np.divide(errors[:-1], errors[1:])), 2.0, atol=1e-2)
    n = 384
    h = L / n
    sigma_h, vec = discrete(n)
    assert abs(sigma_h - sigma) < 1e-4

    # Start on the growing eigenvector with amplitude 1e-6 (linear regime), measure
    # the growth of the cos(k x) component between t = 1 and t = 3.
    grid = Grid((n,), spacing=h)
    mode = np.cos(k * (np.arange(n) + 0.5) * h)
    eps = 1e-6
    u = DiffusingField("u", grid, D=D, initial=u0 + eps * vec[0] * mode,
                       boundary=Periodic())
    v = DiffusingField("v", grid, D=D, decay=beta,
                       initial=alpha * u0 / beta + eps * vec[1] * mode, boundary=Periodic())
    model = [u, v, _production(alpha), Chemotaxis("taxis", u, v, chi=chi)]
    traj = jc.simulate(model, 0.0, 3.0, saveat=[1.0, 3.0], solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
                       max_steps=100_000)
    amp = 2 / n * ((np.asarray(traj[U]) - u0) * mode).sum(axis=1)
    measured = np.log(amp[1] / amp[0]) / 2.0
    np.testing.assert_allclose(measured, sigma_h, rtol=0, atol=1e-6)  # measured: ~1e-9
    np.testing.assert_allclose(measured, 0.6875, rtol=0, atol=1e-4)   # measured: 4.8e-5


def _newton_potential(u, h):
    """v = G * u with the free-space Green's function G = -ln|x| / (2 pi) of -Δ in 2-D,
    by a zero-padded FFT convolution (Hockney's method: no periodic images); G at the
    origin is its mean over a disc of the cell's area."""
    n = u.shape[0]
    i = np.arange(2 * n)
    i = np.where(i < n, i, i - 2 * n) * h
    r = np.hypot(i[:, None], i[None, :])
    green = -np.log(np.where(r > 0, r, 1.0)) / (2 * np.pi)
    a = h / np.sqrt(np.pi)  # disc of area h^2: mean of -ln r / 2 pi is -(ln a - 1/2)/2 pi
    green[0, 0] = -(np.log(a) - 0.5) / (2 * np.pi)
    padded = np.zeros((2 * n, 2 * n))
    padded[:n, :n] = u
    conv = np.fft.irfft2(np.fft.rfft2(padded) * np.fft.rfft2(green), s=padded.shape)
    return conv[:n, :n] * h * h


@pytest.mark.parametrize("mass_over_pi", [4.0, 12.0])
def test_virial_identity_flips_sign_at_the_critical_mass(mass_over_pi):
    # T4 test 2: parabolic-elliptic Keller-Segel on the plane, u_t = Δu - chi ∇·(u∇v),
    # -Δv = u. The second moment obeys d/dt ∫|x|^2 u = 4 M - chi M^2 / (2 pi): it grows
    # below the critical mass 8 pi / chi and shrinks (blow-up) above. With v the
    # Newtonian potential of u (solved here by FFT) held in a field with D = 0, the
    # model's initial rate of the second moment of a Gaussian (width 1, on a box of
    # +-6.4 widths with closed walls, h = 0.05) matches within 1 % (measured: 0.15 %
    # at M = 4 pi, 0.45 % at 12 pi; the error is the scheme's, O(h^2)).
    n, h, chi = 256, 0.05, 1.0
    grid = Grid((n, n), spacing=h)
    x = np.asarray(grid.centres()) - n * h / 2
    r2 = (x**2).sum(axis=-1)
    u0 = mass_over_pi / 2 * np.exp(-r2 / 2)          # M / (2 pi) exp(-r^2 / 2)
    mass = u0.sum() * h * h
    u = DiffusingField("u", grid, D=1.0, initial=u0)
    v = DiffusingField("v", grid, D=0.0, initial=_newton_potential(u0, h))
    model = jc.Composite([u, v, Chemotaxis("taxis", u, v, chi=chi)])
    du = np.asarray(model.vector_field(0.0, model.initial_state())["tissue"]["u"]
                    ["concentration"])
    rate = (r2 * du).sum() * h * h
    exact = 4 * mass - chi * mass**2 / (2 * np.pi)
    np.testing.assert_allclose(mass, mass_over_pi * np.pi, rtol=1e-8)
    np.testing.assert_allclose(rate, exact, rtol=1e-2)
    assert np.sign(rate) == (1.0 if mass < 8 * np.pi / chi else -1.0)


@pytest.mark.parametrize("boundary", [NoFlux(), Periodic()], ids=["no-flux", "periodic"])
def test_mass_is_conserved_and_density_stays_non_negative(boundary):
    # strong aggregation of a density with empty regions, into the nonlinear regime
    n, h = 16, 0.25
    grid = Grid((n, n), spacing=h)
    x = np.asarray(grid.centres())
    r2 = ((x - np.array([1.6, 2.3])) ** 2).sum(axis=-1)
    u0 = np.maximum(0.0, 1.0 - r2 / 1.5) * (1.0 + 0.3 * np.sin(5 * x[..., 0]))
    assert (u0 == 0).sum() > n * n // 3  # a third of the dish starts empty
    u = DiffusingField("u", grid, D=0.05, initial=u0, boundary=boundary)
    v = DiffusingField("v", grid, D=0.5, decay=1.0, initial=0.0, boundary=boundary)
    model = [u, v, _production(2.0), Chemotaxis("taxis", u, v, chi=3.0)]
    traj = jc.simulate(model, 0.0, 3.0, saveat=[0.0, 1.0, 3.0],
                       stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10))
    c = np.asarray(traj[U])
    m = c.sum(axis=(1, 2)) * grid.cell_volume
    np.testing.assert_allclose(m, m[0], rtol=1e-12, atol=0)
    assert c.min() >= 0.0
    assert c[-1].max() > 1.5 * c[0].max()  # it did aggregate


def test_three_d_fluxes_sum_to_zero_and_vanish_for_a_flat_attractant():
    rng = np.random.default_rng(1)
    grid = Grid((5, 4, 6), spacing=0.3)
    u = DiffusingField("u", grid, D=0.0, initial=rng.uniform(0, 1, grid.shape),
                       boundary=[Periodic(), NoFlux(), Periodic()])
    v = DiffusingField("v", grid, D=0.0, initial=rng.uniform(0, 1, grid.shape),
                       boundary=[Periodic(), Dirichlet(0.0), Periodic()])
    taxis = Chemotaxis("taxis", u, v, chi=2.0)
    du = taxis.drift(jnp.asarray(u.initial), jnp.asarray(v.initial))
    assert abs(float(du.sum())) < 1e-12 * float(jnp.abs(du).sum())
    flat = taxis.drift(jnp.asarray(u.initial), jnp.full(grid.shape, 3.0))
    np.testing.assert_array_equal(flat, 0.0)


def test_new_chi_does_not_recompile_and_its_gradient_matches_finite_differences():
    grid = Grid((12,), spacing=0.5)
    x = np.asarray(grid.centres())[:, 0]
    u = DiffusingField("u", grid, D=0.2, initial=1.0 + 0.5 * np.sin(x))
    v = DiffusingField("v", grid, D=0.0, initial=np.cos(x))
    model = jc.Composite([u, v, Chemotaxis("taxis", u, v, chi=1.0)])

    def left_mass(chi):
        traj = jc.simulate(model.replace_parameters({"taxis.chi": chi}), 0.0, 1.0,
                           saveat=[1.0], solver=diffrax.Tsit5(),
                           stepsize_controller=diffrax.PIDController(rtol=1e-10,
                                                                     atol=1e-12))
        return traj[U][-1, :6].sum()

    left_mass(1.0)
    with jc.count_compilations() as n:
        left_mass(1.5)
    assert n() == 0
    g = jax.grad(left_mass)(1.0)
    # a wide step: adaptive step sizes make a narrow difference noisy
    fd = (left_mass(1.0 + 1e-3) - left_mass(1.0 - 1e-3)) / 2e-3
    np.testing.assert_allclose(g, fd, rtol=1e-5)  # measured: 2e-6


def test_bad_input_is_named():
    grid = Grid((8, 8))
    u = DiffusingField("u", grid, D=1.0)
    v = DiffusingField("v", grid, D=1.0)
    with pytest.raises(jc.ModelError, match=r"Chemotaxis 'c'.*'chi'.*non-negative"):
        Chemotaxis("c", u, v, chi=-1.0)
    with pytest.raises(jc.ModelError, match=r"Chemotaxis 'c'.*'chi'.*NaN"):
        Chemotaxis("c", u, v, chi=float("nan"))
    with pytest.raises(jc.ModelError, match=r"Chemotaxis 'c': chi must be a scalar"):
        Chemotaxis("c", u, v, chi=jnp.ones(2))
    with pytest.raises(jc.ModelError, match=r"'chi'.*non-negative"):
        Chemotaxis("c", u, v, chi=1.0).replace_parameters({"chi": -2.0})
    other = DiffusingField("w", Grid((8, 4)), D=1.0)
    with pytest.raises(jc.ModelError, match=r"Chemotaxis 'c'.*attractant 'w'.*\(8, 4\)"):
        Chemotaxis("c", u, other, chi=1.0)
    with pytest.raises(jc.ModelError, match=r"attractant must be a jaxcell.tissue"):
        Chemotaxis("c", u, V, chi=1.0)  # pyright: ignore[reportArgumentType]
    sink = DiffusingField("s", grid, D=1.0, boundary=Dirichlet(0.0))
    with pytest.raises(jc.ModelError, match=r"density 's' has boundary Dirichlet"):
        Chemotaxis("c", sink, v, chi=1.0)
    ring = DiffusingField("r", grid, D=1.0, boundary=[Periodic(), NoFlux()])
    with pytest.raises(jc.ModelError, match=r"axis 0 is periodic for one"):
        Chemotaxis("c", ring, v, chi=1.0)
