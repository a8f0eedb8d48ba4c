"""Centre-based mechanics: two-cell relaxation against the exact solution, momentum
conservation, adhesion, gradients and bad input."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcell as jc
from jaxcell.tissue import SoftSpheres

TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)


def _positions(model, ts):
    traj = jc.simulate(model, 0.0, float(ts[-1]), saveat=ts, stepsize_controller=TIGHT)
    return np.asarray(traj[f"cellular/{model.name}/position"])


def test_two_overlapping_cells_relax_exactly():
    # drag dd/dt = 2 k (s - d) while overlapping: d(t) = s - (s - d0) exp(-2 k t / drag)
    k, drag, r, d0 = 1.5, 2.0, 1.0, 1.2
    pair = SoftSpheres("pair", [[0.0, 0.0, 0.0], [d0, 0.0, 0.0]], radius=r, stiffness=k,
                       drag=drag)
    ts = np.linspace(0.0, 3.0, 7)
    x = _positions(pair, ts)
    d = x[:, 1, 0] - x[:, 0, 0]
    np.testing.assert_allclose(d, 2 * r - (2 * r - d0) * np.exp(-2 * k * ts / drag),
                               rtol=1e-8)
    np.testing.assert_allclose(x[:, :, 1:], 0.0, atol=1e-14)  # stays on the line


def test_centre_of_mass_is_fixed_and_overlaps_resolve():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(0.0, 3.0, (12, 2))
    cells = SoftSpheres("c", x0, radius=0.5, stiffness=5.0)
    x = _positions(cells, np.array([0.0, 40.0]))
    np.testing.assert_allclose(x[-1].mean(axis=0), x0.mean(axis=0), atol=1e-9)
    d = np.linalg.norm(x[-1][:, None] - x[-1][None], axis=-1)[~np.eye(12, dtype=bool)]
    assert d.min() > 1.0 - 1e-3  # no overlap left (sum of radii 1)


def test_adhesion_pulls_separated_cells_into_contact():
    # gap g = d - s < range: drag dg/dt = -2 a g -> g(t) = g0 exp(-2 a t / drag)
    a, g0 = 0.8, 0.3
    pair = SoftSpheres("pair", [[0.0, 0.0], [2.0 + g0, 0.0]], radius=1.0, adhesion=a,
                       adhesion_range=0.5)
    ts = np.linspace(0.0, 2.0, 5)
    x = _positions(pair, ts)
    gap = x[:, 1, 0] - x[:, 0, 0] - 2.0
    np.testing.assert_allclose(gap, g0 * np.exp(-2 * a * ts), rtol=1e-7)
    far = SoftSpheres("far", [[0.0, 0.0], [3.0, 0.0]], radius=1.0, adhesion=a,
                      adhesion_range=0.5)
    np.testing.assert_allclose(_positions(far, ts)[-1], [[0.0, 0.0], [3.0, 0.0]])


def test_gradient_of_a_distance_matches_finite_differences():
    def distance(k):
        pair = SoftSpheres("pair", [[0.0, 0.0], [1.4, 0.0]], radius=1.0, stiffness=k)
        traj = jc.simulate(pair, 0.0, 1.0, saveat=[1.0], stepsize_controller=TIGHT)
        x = traj["cellular/pair/position"][-1]
        return x[1, 0] - x[0, 0]

    g = jax.grad(distance)(0.7)
    fd = (distance(0.7 + 1e-5) - distance(0.7 - 1e-5)) / 2e-5
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    np.testing.assert_allclose(g, 2 * 0.6 * np.exp(-1.4), rtol=1e-7)  # d(s-(s-d0)e^-2kt)/dk


def test_bad_input_is_named():
    with pytest.raises(jc.ModelError, match=r"shape \(N, 2\) or \(N, 3\)"):
        SoftSpheres("c", jnp.zeros((3,)))
    with pytest.raises(jc.ModelError, match="radius must be a scalar or one per cell"):
        SoftSpheres("c", jnp.zeros((3, 2)), radius=jnp.ones(2))
    with pytest.raises(jc.ModelError, match="'stiffness' .* must be non-negative"):
        SoftSpheres("c", jnp.zeros((3, 2)), stiffness=-1.0)
    with pytest.raises(jc.ModelError, match="parameter 'drag' .* must be positive"):
        SoftSpheres("c", jnp.zeros((3, 2)), drag=0.0)


def test_free_slots_of_a_population_neither_push_nor_move():
    from jaxcell.cellular import Population

    pop = Population("cells", capacity=4, n_initial=2)
    # Two live cells overlapping, two free slots sitting right on top of them.
    x0 = jnp.array([[0.0, 0.0], [1.5, 0.0], [0.0, 0.0], [1.5, 0.0]])
    spheres = SoftSpheres("body", x0, radius=1.0, population=pop)
    traj = jc.simulate([pop, spheres], 0.0, 20.0, saveat=[20.0])
    x = np.asarray(traj["cellular/body/position"][-1])
    # The live pair relaxes exactly as if alone (contact at 2 r, centre of mass fixed).
    np.testing.assert_allclose(x[1, 0] - x[0, 0], 2.0, rtol=1e-6)
    np.testing.assert_allclose(x[:2].mean(axis=0), [0.75, 0.0], atol=1e-12)
    np.testing.assert_array_equal(x[2:], x0[2:])
    with pytest.raises(jc.ModelError, match="capacity"):
        SoftSpheres("body", x0[:3], population=pop)


def test_displace_divider_keeps_the_centre_and_sets_the_distance():
    from jaxcell.cellular import Displace

    x = jnp.arange(12.0).reshape(6, 2)
    mother, daughter = Displace(0.8).split(x, jax.random.key(0))
    np.testing.assert_allclose((mother + daughter) / 2, x, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(daughter - mother, axis=1), 0.8, rtol=1e-12)
