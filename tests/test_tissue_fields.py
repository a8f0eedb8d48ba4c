"""Diffusing fields on grids: conservation, exact discrete eigenmodes, the steady
morphogen gradient (decay length sqrt(D/k)), boundary conditions and bad input."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.tissue import DiffusingField, Dirichlet, Grid, NoFlux, Periodic

TIGHT = diffrax.PIDController(rtol=1e-9, atol=1e-12)


def _final(field, t1, **kw):
    traj = jc.simulate(field, 0.0, t1, saveat=[t1], stepsize_controller=TIGHT, **kw)
    return np.asarray(traj[f"tissue/{field.name}/concentration"][-1])


@pytest.mark.parametrize("boundary", [NoFlux(), Periodic()], ids=["no-flux", "periodic"])
def test_mass_is_conserved_without_decay(boundary):
    rng = np.random.default_rng(0)
    c0 = rng.uniform(0.0, 2.0, (12, 9))
    grid = Grid((12, 9), spacing=0.5)
    field = DiffusingField("m", grid, D=0.7, initial=c0, boundary=boundary)
    c1 = _final(field, 3.0)
    np.testing.assert_allclose(c1.sum() * grid.cell_volume, c0.sum() * grid.cell_volume,
                               rtol=1e-11)
    assert c1.std() < 0.2 * c0.std()  # and it did diffuse


def test_periodic_mode_decays_at_the_exact_discrete_rate():
    # cos(2 pi i / N) is an eigenvector of the periodic finite-volume Laplacian with
    # eigenvalue -(4 / h^2) sin^2(pi / N): the amplitude decays as exp(-D lambda t)
    n, h, D, t1 = 16, 0.25, 0.3, 2.0
    i = np.arange(n)
    c0 = np.cos(2 * np.pi * i / n)[:, None] * np.ones((1, 5))
    field = DiffusingField("m", Grid((n, 5), h), D=D, initial=c0, boundary=Periodic())
    lam = 4.0 / h**2 * np.sin(np.pi / n) ** 2
    np.testing.assert_allclose(_final(field, t1), c0 * np.exp(-D * lam * t1), atol=1e-9)


def test_decay_with_uniform_source_relaxes_to_source_over_decay():
    field = DiffusingField("m", Grid((4, 4, 3)), D=1.0, decay=2.0, source=3.0, initial=0.0)
    # uniform: dc/dt = 3 - 2c  ->  c(t) = 1.5 (1 - exp(-2t))
    np.testing.assert_allclose(_final(field, 1.3), 1.5 * (1 - np.exp(-2.6)), rtol=1e-9)


def test_steady_morphogen_gradient_has_decay_length_sqrt_d_over_k():
    # a source held at c0 on the left face, decay everywhere, closed elsewhere: the
    # steady profile is c0 exp(-x / lambda) with lambda = sqrt(D / k) (REFERENCE-MODELS T1)
    D, k, c0 = 0.5, 2.0, 3.0
    lam = np.sqrt(D / k)
    h = lam / 10.0
    n = 200  # 20 decay lengths: the far wall does not matter
    grid = Grid((n, 1), spacing=h)
    field = DiffusingField("m", grid, D=D, decay=k, initial=0.0,
                           boundary=[(Dirichlet(c0), NoFlux()), NoFlux()])
    c = _final(field, 40.0 / k)[:, 0]  # 80 relaxation times
    x = np.asarray(grid.centres())[:, 0, 0]
    window = slice(5, 60)  # away from the source face; c spans 3 decades here
    slope = np.polyfit(x[window], np.log(c[window]), 1)[0]
    np.testing.assert_allclose(-1.0 / slope, lam, rtol=1e-3)
    # the whole profile is the exact steady state of the discrete scheme: c_i = A r^i
    # with r + 1/r = 2 + k h^2 / D and the face condition (c_ghost + c_0) / 2 = c0,
    # c_ghost = A / r, i.e. A = 2 c0 r / (1 + r)
    beta = k * h**2 / D
    r = ((2 + beta) - np.sqrt((2 + beta) ** 2 - 4)) / 2
    exact = 2 * c0 * r / (1 + r) * r ** np.arange(n)
    np.testing.assert_allclose(c[:100], exact[:100], rtol=1e-6, atol=1e-12)


def test_gradient_of_a_field_readout_matches_finite_differences():
    grid = Grid((10, 1), spacing=0.2)

    def readout(dk):
        field = DiffusingField("m", grid, D=dk[0], decay=dk[1], initial=0.0,
                               boundary=[(Dirichlet(1.0), NoFlux()), NoFlux()])
        return jnp.asarray(_final_jax(field, 2.0))[5, 0]

    def _final_jax(field, t1):
        traj = jc.simulate(field, 0.0, t1, saveat=[t1], stepsize_controller=TIGHT)
        return traj["tissue/m/concentration"][-1]

    q = jnp.array([0.4, 1.5])
    g = jax.grad(readout)(q)
    eps = 1e-5
    fd = [(readout(q.at[j].add(eps)) - readout(q.at[j].add(-eps))) / (2 * eps)
          for j in range(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5)
    assert g[0] > 0 > g[1]  # more diffusion reaches further; more decay less


def test_bad_input_is_named():
    grid = Grid((4, 4))
    with pytest.raises(jc.ModelError, match="shape"):
        Grid((0, 3))
    with pytest.raises(jc.ModelError, match="spacing"):
        Grid((3, 3), spacing=-1.0)
    with pytest.raises(jc.ModelError, match="source must be a scalar or have the grid"):
        DiffusingField("m", grid, D=1.0, source=np.ones((3, 4)))
    with pytest.raises(jc.ModelError, match="initial must be a scalar or have the grid"):
        DiffusingField("m", grid, D=1.0, initial=np.ones(4))
    with pytest.raises(jc.ModelError, match="'D' .* must be non-negative"):
        DiffusingField("m", grid, D=-1.0)
    with pytest.raises(jc.ModelError, match="Periodic must be on both sides"):
        DiffusingField("m", grid, D=1.0, boundary=[(Periodic(), NoFlux()), NoFlux()])
    with pytest.raises(jc.ModelError, match="one per axis"):
        DiffusingField("m", grid, D=1.0, boundary=[NoFlux()])
