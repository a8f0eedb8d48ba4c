"""Cell–field exchange: mass conservation, analytic well-mixed secretion and uptake
(exponential and Lambert-W), the exact discrete and continuum steady profile around a
secreting cell, sensing with fixed and moving cells and an alive mask, gradients
against finite differences, no recompilation, and bad input."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import lambertw

import jaxcell as jc
from jaxcell.tissue import DiffusingField, FieldExchange, FieldSensor, Grid, NoFlux

TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-12)


def _simulate(model, ts, solver=None):
    """Tight tolerances; Tsit5 (these small models are not stiff, and it compiles faster
    than the default Rodas5) unless a solver is given."""
    ts = np.asarray(ts, dtype=float)
    return jc.simulate(model, 0.0, float(ts[-1]), saveat=ts, stepsize_controller=TIGHT,
                       solver=solver or diffrax.Tsit5())


def _cells(n, **variables):
    """A per-cell ODE owning ``variables`` (constant unless a coupling changes them)."""
    return jc.ODE("cells", variables,
                  lambda t, y, p: {k: jnp.zeros_like(y[k]) for k in variables},
                  scale="cellular")


def _voxel(grid_shape, h, x):
    """Independent reference: the voxel containing each position, clipped to the box."""
    idx = np.floor(np.asarray(x) / h).astype(int)
    return tuple(np.clip(idx[:, d], 0, grid_shape[d] - 1) for d in range(idx.shape[1]))


def test_uptake_into_cells_conserves_mass():
    # field + internal amounts: d/dt (sum_v c_v V + sum_i m_i) = 0 with closed walls and
    # no decay; two cells share a voxel, one cell is dead and must take up nothing
    rng = np.random.default_rng(1)
    grid = Grid((6, 5), spacing=0.5)
    c0 = rng.uniform(0.5, 2.0, grid.shape)
    field = DiffusingField("m", grid, D=0.3, initial=c0, boundary=NoFlux())
    xy = np.array([[0.1, 0.1], [0.2, 0.4], [1.6, 2.2], [2.9, 1.3], [1.1, 0.7]])
    alive = np.array([1.0, 1.0, 1.0, 0.0, 1.0])
    cells = _cells(5, amount=np.zeros(5), alive=alive)
    ex = FieldExchange("ex", field, positions=xy, uptake=[0.2, 0.1, 0.3, 0.5, 0.05],
                       V_max=0.4, K_m=0.7, into="cellular/cells/amount",
                       alive="cellular/cells/alive")
    ts = np.linspace(0.0, 5.0, 6)
    traj = _simulate(jc.Composite([field, cells, ex]), ts)
    c = np.asarray(traj["tissue/m/concentration"])
    m = np.asarray(traj["cellular/cells/amount"])
    total = c.sum(axis=(1, 2)) * grid.cell_volume + m.sum(axis=1)
    np.testing.assert_allclose(total, total[0], rtol=1e-10)
    assert m[-1, 3] == 0.0  # the dead cell took up nothing
    assert (m[-1, alive == 1] > 0.05).all()
    assert m[-1].sum() > 0.3 * total[0]  # a real transfer, not a trivial one


def test_secretion_into_a_decaying_well_mixed_field():
    # one voxel of volume V = 0.25: dc/dt = S / V - k c, so c = S/(kV) (1 - exp(-k t));
    # three cells in the voxel add up to S = 1
    k, S = 0.8, np.array([0.3, 0.5, 0.2])
    grid = Grid((1, 1), spacing=0.5)
    field = DiffusingField("m", grid, D=1.0, decay=k)
    ex = FieldExchange("ex", field, positions=np.full((3, 2), 0.25), secretion=S)
    ts = np.linspace(0.0, 6.0, 7)
    c = np.asarray(_simulate(jc.Composite([field, ex]), ts)["tissue/m/concentration"])
    V = 0.25
    np.testing.assert_allclose(c[:, 0, 0], S.sum() / (k * V) * (1 - np.exp(-k * ts)),
                               rtol=1e-9, atol=1e-13)


def test_secretion_from_a_growing_gene_product_on_a_grid():
    # cells in different voxels of a closed 4 x 4 grid: the field integral M obeys
    # dM/dt = sigma sum_i g_i(t) - k M exactly, with g_i = g0_i + r_i t, so
    # M(t) = sigma [G0 (1 - e^{-kt}) / k + R (t / k - (1 - e^{-kt}) / k^2)]
    k, sigma = 0.5, 0.7
    g0, r = np.array([1.0, 0.5, 2.0]), np.array([0.2, 0.0, 0.4])
    grid = Grid((4, 4), spacing=0.5)
    field = DiffusingField("m", grid, D=0.2, decay=k)
    genes = jc.ODE("cells", {"g": g0}, lambda t, y, p: {"g": p["r"]},
                   parameters={"r": r}, scale="cellular")
    ex = FieldExchange("ex", field, positions=[[0.1, 0.1], [1.9, 0.6], [1.2, 1.7]],
                       secretion=sigma, secretion_from="cellular/cells/g")
    ts = np.linspace(0.0, 4.0, 5)
    traj = _simulate(jc.Composite([field, genes, ex]), ts)
    M = np.asarray(traj["tissue/m/concentration"]).sum(axis=(1, 2)) * grid.cell_volume
    E = 1 - np.exp(-k * ts)
    expected = sigma * (g0.sum() * E / k + r.sum() * (ts / k - E / k**2))
    np.testing.assert_allclose(M, expected, rtol=1e-9, atol=1e-13)


def test_linear_uptake_decays_exponentially_into_the_cell():
    # one cell in one voxel of volume V = 2: dc/dt = -(k/V) c, the cell gains V (c0 - c)
    k, V, c0 = 0.6, 2.0, 3.0
    field = DiffusingField("m", Grid((1,), spacing=V), D=0.0, initial=c0)
    cells = _cells(1, amount=np.zeros(1))
    ex = FieldExchange("ex", field, positions=[[1.0]], uptake=k,
                       into="cellular/cells/amount")
    ts = np.linspace(0.0, 8.0, 9)
    traj = _simulate(jc.Composite([field, cells, ex]), ts)
    c = np.asarray(traj["tissue/m/concentration"])[:, 0]
    np.testing.assert_allclose(c, c0 * np.exp(-k * ts / V), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(traj["cellular/cells/amount"])[:, 0],
                               V * (c0 - c), rtol=1e-12, atol=1e-14)


def test_michaelis_menten_uptake_follows_lambert_w():
    # dc/dt = -(Vmax/V) c / (Km + c) integrates to Km ln(c/c0) + c - c0 = -(Vmax/V) t,
    # i.e. c(t) = Km W((c0/Km) exp((c0 - (Vmax/V) t) / Km))
    vmax, km, V, c0 = 1.2, 0.5, 2.0, 3.0
    field = DiffusingField("m", Grid((1,), spacing=V), D=0.0, initial=c0)
    ex = FieldExchange("ex", field, positions=[[0.3]], V_max=vmax, K_m=km)
    ts = np.linspace(0.0, 10.0, 11)
    c = np.asarray(_simulate(jc.Composite([field, ex]), ts)["tissue/m/concentration"])
    exact = km * lambertw(c0 / km * np.exp((c0 - vmax / V * ts) / km)).real
    np.testing.assert_allclose(c[:, 0], exact, rtol=1e-8)
    assert exact[-1] < 0.05 * c0  # through the saturated and the linear regime


def test_secreting_cell_gives_the_steady_exponential_profile():
    # a cell secreting S in the centre voxel of a closed line, decay k: the steady state
    # solves (D L - k) c = -S e_s / h exactly (L the finite-volume Laplacian), and it
    # approximates the continuum Green's function of -D c'' + k c = S delta(x - xs) with
    # no flux at 0 and L:  S cosh(x_< / lam) cosh((L - x_>) / lam) / (D/lam sinh(L/lam))
    D, k, S = 0.5, 2.0, 1.3
    lam = np.sqrt(D / k)
    h = lam / 10.0
    n, s = 121, 60
    grid = Grid((n,), spacing=h)
    field = DiffusingField("m", grid, D=D, decay=k)
    ex = FieldExchange("ex", field, positions=[[(s + 0.5) * h]], secretion=S)
    # stiff (D/h^2 = 200 k): the default Rodas5
    c = np.asarray(_simulate(jc.Composite([field, ex]), [40.0 / k], solver=jc.default_solver())
                   ["tissue/m/concentration"][-1])
    L = (np.diag(np.full(n - 1, 1.0), -1) + np.diag(np.full(n - 1, 1.0), 1)
         - 2 * np.eye(n))
    L[0, 0] = L[-1, -1] = -1.0  # no flux: the ghost cell equals the edge cell
    b = np.zeros(n)
    b[s] = S / h
    discrete = np.linalg.solve(D * L / h**2 - k * np.eye(n), -b)
    np.testing.assert_allclose(c, discrete, rtol=1e-8)

    x = (np.arange(n) + 0.5) * h
    xs, length = x[s], n * h
    lo, hi = np.minimum(x, xs), np.maximum(x, xs)
    continuum = (S * np.cosh(lo / lam) * np.cosh((length - hi) / lam)
                 / (D / lam * np.sinh(length / lam)))
    # the scheme is second order: the relative error is about (h/lam)^2 / 8 = 1.25e-3
    # here (it quarters when h halves), up to 4 decay lengths either side of the source
    near = np.abs(x - xs) <= 4 * lam
    assert c[near].max() / c[near].min() > np.exp(3.9)  # falls by e^4 over the window
    np.testing.assert_allclose(c[near], continuum[near], rtol=(h / lam) ** 2 / 5)


def test_sensor_reads_the_voxel_of_each_cell_and_zero_when_dead():
    rng = np.random.default_rng(2)
    h, shape = 0.4, (5, 4)
    c0 = rng.uniform(0.0, 1.0, shape)
    field = DiffusingField("m", Grid(shape, spacing=h), D=0.0, initial=c0)
    # the last two cells are outside the box and are clipped to the edge voxels
    xy = np.array([[0.05, 0.05], [1.95, 1.55], [0.81, 0.39], [1.1, 0.9], [-0.3, 0.5],
                   [2.5, 9.0]])
    alive = np.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    cells = _cells(6, alive=alive)
    sense = FieldSensor("sense", field, positions=xy, alive="cellular/cells/alive",
                        target="cellular/cells/ligand")
    model = jc.Composite([field, cells, sense])
    got = np.asarray(model.derived_at(0.0, model.initial_state())["cellular"]["cells"]
                     ["ligand"])  # derived variables only need the state, not a solve
    expected = c0[_voxel(shape, h, xy)] * alive
    np.testing.assert_array_equal(got, expected)
    assert got[3] == 0.0 and expected[4] == c0[0, 1] and expected[5] == c0[4, 3]


def test_sensor_follows_moving_cells():
    # cells move at constant velocity (an ODE owns their positions); the field does not
    # change (D = 0), so the sensed value is c0 at the voxel of x0 + v t
    rng = np.random.default_rng(3)
    h, shape = 0.5, (6, 6)
    c0 = rng.uniform(0.0, 1.0, shape)
    field = DiffusingField("m", Grid(shape, spacing=h), D=0.0, initial=c0)
    x0 = np.array([[0.1, 0.2], [2.9, 0.3], [1.3, 2.6]])
    v = np.array([[0.7, 0.3], [-0.5, 0.45], [0.1, -0.6]])
    movers = jc.ODE("movers", {"position": x0}, lambda t, y, p: {"position": p["v"]},
                    parameters={"v": v}, scale="cellular")
    sense = FieldSensor("sense", field, positions="cellular/movers/position", n_cells=3)
    ts = np.linspace(0.0, 3.3, 12)
    traj = _simulate(jc.Composite([field, movers, sense]), ts)
    got = np.asarray(traj["cellular/sense/concentration"])
    for j, t in enumerate(ts):
        np.testing.assert_array_equal(got[j], c0[_voxel(shape, h, x0 + v * t)])
    assert len({tuple(_voxel(shape, h, x0 + v * t)[0]) for t in ts}) > 3  # it moved


def test_a_moving_cell_secretes_along_its_path():
    # a cell crossing a closed 1-D line at speed u, secreting S, with D = 0 and no decay:
    # a voxel of width h receives S (time spent) / h, i.e. S/u for each voxel crossed
    # entirely, S (h - 0.25 h)/(u h) for the first one (it starts a quarter in)
    h, u, S = 0.5, 0.8, 1.5
    grid = Grid((8,), spacing=h)
    field = DiffusingField("m", grid, D=0.0)
    mover = jc.ODE("mover", {"position": np.array([[0.25 * h]])},
                   lambda t, y, p: {"position": jnp.full((1, 1), u)}, scale="cellular")
    ex = FieldExchange("ex", field, positions="cellular/mover/position", n_cells=1,
                       secretion=S)
    t1 = (5.5 * h - 0.25 * h) / u  # ends in the middle of voxel 5
    # the rate jumps at each face crossing: Tsit5's error estimate sees the jumps and
    # refines there (Rodas5's, dominated by its last stages, can step over them)
    traj = jc.simulate(jc.Composite([field, mover, ex]), 0.0, t1, saveat=[t1],
                       solver=diffrax.Tsit5(), stepsize_controller=TIGHT)
    c = np.asarray(traj["tissue/m/concentration"][-1])
    expected = np.array([0.75 / u, 1 / u, 1 / u, 1 / u, 1 / u, 0.5 / u, 0, 0]) * S
    np.testing.assert_allclose(c, expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(c.sum() * h, S * t1, rtol=1e-13)  # all of it, exactly


def test_gradient_of_sensed_concentration_matches_finite_differences():
    grid = Grid((6,), spacing=0.5)
    field = DiffusingField("m", grid, D=0.2, decay=0.3)
    source = FieldExchange("source", field, positions=[[0.6]], secretion=1.0)
    sink = FieldExchange("sink", field, positions=[[2.1]], V_max=0.5, K_m=0.4)
    sense = FieldSensor("sense", field, positions=[[2.1], [2.8]])
    model = jc.Composite([field, source, sink, sense])

    def loss(q):
        m = model.replace_parameters({"source.secretion": q[0], "sink.V_max": q[1]})
        traj = _simulate(m, [1.5])  # reverse mode: transposes the scatter and gathers
        return traj["cellular/sense/concentration"][-1] @ jnp.array([1.0, 0.5])

    q = jnp.array([1.0, 0.5])
    g = np.asarray(jax.grad(loss)(q))
    eps = 1e-5
    fd = [(loss(q.at[j].add(eps)) - loss(q.at[j].add(-eps))) / (2 * eps) for j in range(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    assert g[0] > 0 > g[1]  # more secretion, more ligand; more uptake, less


def test_new_parameter_values_do_not_recompile():
    field = DiffusingField("m", Grid((4, 4)), D=0.5)
    ex = FieldExchange("ex", field, positions=[[1.5, 2.5]], secretion=1.0, uptake=0.1)
    model = jc.Composite([field, ex])
    jc.simulate(model, 0.0, 1.0, saveat=[1.0])
    with jc.count_compilations() as n:
        jc.simulate(model.replace_parameters({"ex.secretion": 2.0, "ex.uptake": 0.3}),
                    0.0, 1.0, saveat=[1.0])
    assert n() == 0


def test_bad_input_is_named():
    grid = Grid((4, 4))
    field = DiffusingField("m", grid, D=1.0)
    xy = [[0.5, 0.5], [1.5, 2.5]]
    with pytest.raises(jc.ModelError, match="grid must be a jaxcell.tissue.Grid"):
        FieldExchange("e", "tissue/m/concentration", grid=(4, 4), positions=xy)
    with pytest.raises(jc.ModelError, match="grid= .* is needed"):
        FieldExchange("e", "tissue/m/concentration", positions=xy)
    with pytest.raises(jc.ModelError, match="differs from the grid of field"):
        FieldSensor("s", field, grid=Grid((3, 3)), positions=xy)
    with pytest.raises(jc.ModelError, match="field must be a DiffusingField"):
        FieldSensor("s", 3.0, positions=xy)
    with pytest.raises(jc.ModelError, match=r"positions must have shape \(N, 2\)"):
        FieldExchange("e", field, positions=[[0.5, 0.5, 0.5]])
    with pytest.raises(jc.ModelError, match=r"positions must have shape \(N, 2\)"):
        FieldSensor("s", field, positions=[0.5, 0.5])
    with pytest.raises(jc.ModelError, match="positions must be finite"):
        FieldSensor("s", field, positions=[[np.nan, 0.5]])
    with pytest.raises(jc.ModelError, match="n_cells= .* is needed"):
        FieldSensor("s", field, positions="cellular/c/position")
    with pytest.raises(jc.ModelError, match="n_cells=3 but positions has 2 rows"):
        FieldSensor("s", field, positions=xy, n_cells=3)
    with pytest.raises(jc.ModelError, match="'secretion' .* must be non-negative"):
        FieldExchange("e", field, positions=xy, secretion=-1.0)
    with pytest.raises(jc.ModelError, match=r"uptake must be a scalar or one value per "
                                            r"cell \(2,\)"):
        FieldExchange("e", field, positions=xy, uptake=[0.1, 0.2, 0.3])
    with pytest.raises(jc.ModelError, match="'uptake' is NaN"):
        FieldExchange("e", field, positions=xy, uptake=np.nan)
    with pytest.raises(jc.ModelError, match="needs both V_max and K_m; got only V_max"):
        FieldExchange("e", field, positions=xy, V_max=1.0)
    with pytest.raises(jc.ModelError, match="'K_m' .* must be positive"):
        FieldExchange("e", field, positions=xy, V_max=1.0, K_m=0.0)
    ex = FieldExchange("e", field, positions=xy, secretion=1.0)
    with pytest.raises(jc.ModelError, match="no parameter named 'V_max'"):
        ex.replace_parameters({"V_max": 1.0})
    with pytest.raises(jc.ModelError, match="has no parameters"):
        FieldSensor("s", field, positions=xy).replace_parameters({"x": 1.0})
    # a position variable of the wrong shape is a wiring error naming the path
    cells = _cells(2, position=np.zeros((2, 3)))
    moving = FieldSensor("s", field, positions="cellular/cells/position", n_cells=2)
    with pytest.raises(jc.WiringError, match=r"cellular/cells/position.*shape \(2, 2\)"):
        jc.Composite([field, cells, moving])
