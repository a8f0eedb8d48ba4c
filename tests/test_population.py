"""Cell populations: fixed capacity, alive mask, growth, division, death, PerCell."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import jaxcell as jc
from jaxcell.cellular import (
    Adder,
    Binomial,
    ConstantRate,
    Copy,
    Death,
    Division,
    Halve,
    PerCell,
    Population,
    Sizer,
    Timer,
)

MU = float(np.log(2.0))  # one doubling per time unit
H = 0.005  # discrete interval: division happens at most 0.35 % of V late
TSIT = diffrax.Tsit5()


def _divisions(traj, pop="cells"):
    """(birth volume, division volume) of every division seen in a trajectory saved at
    every interval: a slot whose volume halves between two saves divided then."""
    v = np.asarray(traj[f"cellular/{pop}/volume"])
    a = np.asarray(traj[f"cellular/{pop}/alive"])
    vb = np.asarray(traj[f"cellular/{pop}/birth_volume"])
    t = np.asarray(traj.ts)
    hit = (a[:-1] > 0.5) & (v[1:] < 0.75 * v[:-1])
    born_at = np.broadcast_to(t[:-1, None], hit.shape)
    return vb[:-1][hit], v[:-1][hit], born_at[hit]


@pytest.fixture(scope="module")
def size_control():
    out = {}
    for rule in (Adder(1.0, cv=0.1), Sizer(2.0, cv=0.1)):
        pop = Population("cells", capacity=8192, n_initial=48, volume=1.0, growth_rate=MU)
        div = Division("division", pop, rule, interval=H)
        traj = jc.simulate([pop, div], 0.0, 7.0, saveat=np.arange(0.0, 7.0 + H / 2, H),
                           solver=TSIT, key=jax.random.key(3))
        out[type(rule).__name__] = traj
    return out


def test_adder_gives_slope_one_and_the_predicted_birth_size_spread(size_control):
    # Amir 2014: V_d = V_b + Δ(1+ε) has slope 1 of V_d on V_b, <V_b> = Δ and
    # CV(V_b) = CV(Δ)/sqrt(3) (REFERENCE-MODELS C3: slope ±0.05, CV within 5 %).
    vb, vd, t = _divisions(size_control["Adder"])
    late = t > 3.5  # cells born after the founders' sizes are forgotten (3+ cycles)
    assert late.sum() > 2000
    slope = np.polyfit(vb[late], vd[late], 1)[0]
    assert abs(slope - 1.0) < 0.05
    np.testing.assert_allclose(vb[late].mean(), 1.0, rtol=0.02)
    cv = vb[late].std() / vb[late].mean()
    np.testing.assert_allclose(cv, 0.1 / np.sqrt(3), rtol=0.05)


def test_sizer_gives_slope_zero(size_control):
    vb, vd, t = _divisions(size_control["Sizer"])
    late = t > 3.5
    slope = np.polyfit(vb[late], vd[late], 1)[0]
    assert abs(slope) < 0.05


@pytest.fixture(scope="module")
def timer_run():
    # founders of different sizes: a timer keeps the spread (no size control), which
    # makes the slope well determined
    v0 = np.ones(8192)
    v0[:48] = np.linspace(0.5, 1.5, 48)
    pop = Population("cells", capacity=8192, n_initial=48, volume=v0, growth_rate=MU)
    div = Division("division", pop, Timer(1.0, cv=0.1), interval=H)
    return jc.simulate([pop, div], 0.0, 7.0, saveat=np.arange(0.0, 7.0 + H / 2, H),
                       solver=TSIT, key=jax.random.key(5))


def test_timer_gives_slope_two(timer_run):
    # Amir 2014: a timer (growth for a fixed time T, λT = ln 2) gives V_d = V_b e^{λτ}
    # with τ independent of V_b: slope E[e^{λτ}] = 2 of V_d on V_b (REFERENCE-MODELS C3:
    # ±0.05). Noise in T (cv 0.1) adds e^{(0.1 ln 2)^2/2} - 1 = 0.24 % and division
    # on the grid of H on average λH/2 = 0.17 %; both are inside the tolerance.
    vb, vd, t = _divisions(timer_run)
    # the recorded V_d is the volume one interval before the division (the last save
    # before the halving), so log2(V_d / V_b) = (age at division)/T - H
    born = t + H - np.log(vd / vb) / MU
    # every cell born in [2, 5.1] divided before the end (τ <= 1.9 T): a sample of
    # newborns free of the bias towards short cycles of divisions seen in a window
    sample = (born > 2.0) & (born < 5.1)
    assert sample.sum() > 2000
    slope = np.polyfit(vb[sample], vd[sample], 1)[0]
    assert abs(slope - 2.0) < 0.05
    # each cell grew for its drawn time: the age at division is τ rounded up to the grid
    # of H, mean T + H/2 (standard error 0.1/sqrt(2000) = 0.002)
    np.testing.assert_allclose(np.log2(vd[sample] / vb[sample]).mean(), 1.0 - H / 2,
                               atol=0.01)
    # ... and no size control: ln V_b spreads (a random walk), unlike the adder's
    assert np.std(np.log(vb[sample])) > 0.2


def test_timer_divides_at_the_drawn_age_and_restarts_the_age():
    pop = Population("cells", capacity=8, n_initial=2, growth_rate=0.0)
    div = Division("division", pop, Timer(jnp.array([1.0, 0.5] + [1.0] * 6)),
                   interval=0.25)
    traj = jc.simulate([pop, div], 0.0, 1.25, saveat=[0.25, 0.5, 1.0, 1.25])
    alive = np.asarray(traj["cellular/cells/alive"]).sum(axis=1)
    # slot 1 divides at age 0.5 (t = 0.5), its daughter (slot 2) inherits the
    # mother's duration 0.5; at t = 1.0 slot 0 (age 1) and slots 1 and 2 (age 0.5)
    # divide
    np.testing.assert_array_equal(alive, [2, 3, 6, 6])
    np.testing.assert_allclose(traj["cellular/division/age"][1, :3], [0.5, 0.0, 0.0])
    np.testing.assert_allclose(traj["cellular/division/age"][-1, :6], 0.25)


# -- S5: division and death at constant rates (a linear birth-death branching process) --
B_RATE, D_RATE, N0 = 1.0, 0.5, 3
DT_BD, T_BD, CAP_BD, REPLICAS = 0.05, 4.0, 256, 4000


def _offspring_pgf(s, dt):
    """One step of the discrete process: division (probability b) then death of each
    cell (probability d), the order of the processes in the model."""
    b, d = -np.expm1(-B_RATE * dt), -np.expm1(-D_RATE * dt)
    g = d + (1 - d) * s
    return (1 - b) * g + b * g * g


def _extinction_fixed_point(dt):
    """Ultimate extinction probability of one cell: the smallest fixed point of the
    offspring generating function (Galton-Watson)."""
    return brentq(lambda s: _offspring_pgf(s, dt) - s, 0.0, 1.0 - 1e-9)


def _distribution_at(n, dt, k_max):
    """P(N = 0..k_max) after n steps from N0 cells: the generating function iterated on
    truncated polynomials, F_{j+1} = f(F_j), then cubed (N0 = 3 independent lines)."""
    b, d = -np.expm1(-B_RATE * dt), -np.expm1(-D_RATE * dt)
    F = np.zeros(k_max + 1)
    F[1] = 1.0
    for _ in range(n):
        g = (1 - d) * F
        g[0] += d
        F = (1 - b) * g + b * np.convolve(g, g)[: k_max + 1]
    out = F
    for _ in range(N0 - 1):
        out = np.convolve(out, F)[: k_max + 1]
    return out


@pytest.fixture(scope="module")
def branching_counts():
    pop = Population("cells", capacity=CAP_BD, n_initial=N0)
    model = jc.Composite([
        pop,
        Division("division", pop, ConstantRate(B_RATE), interval=DT_BD),
        Death("death", pop, rate=D_RATE, interval=DT_BD),
    ])

    def count(key):
        traj = jc.simulate(model, 0.0, T_BD, saveat=[T_BD], key=key,
                           solver=diffrax.Euler(), dt0=DT_BD,
                           stepsize_controller=diffrax.ConstantStepSize())
        return traj["cellular/cells/alive"][-1].sum()

    keys = jax.random.split(jax.random.key(2026), REPLICAS)
    return np.asarray(jax.jit(jax.vmap(count))(keys))


def test_division_and_death_at_constant_rates_go_extinct_as_the_branching_process(
        branching_counts):
    """REFERENCE-MODELS S5: division at rate λ = 1 and death at μ = 0.5 from N0 = 3.
    The exact reference of the simulated process (step Δt) is the discrete-time
    branching process; its extinction probability tends to (μ/λ)^N0 = 0.125 as Δt -> 0.
    Assertions within 3 standard errors (DSMTS Z in (-3, 3), Y in (-5, 5))."""
    n = round(T_BD / DT_BD)
    p = _distribution_at(n, DT_BD, 4 * CAP_BD)
    # overflow of the capacity (an error, never a silent drop) is out of reach: the
    # chance that any replica exceeds 256 cells by T is 5e-6
    assert REPLICAS * (1.0 - p[: CAP_BD + 1].sum()) < 1e-4
    counts = branching_counts
    assert np.all(counts == np.round(counts)) and counts.max() <= CAP_BD
    # extinct by T: the exact probability p[0] = f^(n)(0)^N0
    q = _extinction_fixed_point(DT_BD)
    f_n = 0.0
    for _ in range(n):
        f_n = _offspring_pgf(f_n, DT_BD)
    np.testing.assert_allclose(p[0], f_n**N0, rtol=1e-12)
    extinct = np.mean(counts == 0)
    se = np.sqrt(p[0] * (1 - p[0]) / REPLICAS)
    assert abs(extinct - p[0]) < 3 * se
    # ultimate extinction: q^N is a martingale of the branching process, so
    # E[q^N_T] = q^N0 whatever T (lines still small at T may yet die out)
    ultimate = q ** counts
    se_u = ultimate.std(ddof=1) / np.sqrt(REPLICAS)
    assert abs(ultimate.mean() - q**N0) < 3 * se_u
    # q^N0 -> (μ/λ)^N0 = 0.125 at first order in Δt (the catalogue's value)
    errors = [abs(_extinction_fixed_point(dt) ** N0 - 0.125) for dt in (0.05, 5e-3, 5e-4)]
    assert errors[0] < 0.01 and errors[2] < 1e-4
    np.testing.assert_allclose(np.diff(np.log10(errors)), -1.0, atol=0.05)
    # moments of N_T (DSMTS-style): mean N0 m^n, variance N0 σ² m^(n-1) (m^n - 1)/(m - 1)
    k = np.arange(p.size)
    mean, var = (k * p).sum(), (k**2 * p).sum() - (k * p).sum() ** 2
    b, d = -np.expm1(-B_RATE * DT_BD), -np.expm1(-D_RATE * DT_BD)
    m, s2 = (1 - d) * (1 + b), 2 * b * (1 - d) ** 2 + (1 - d) * (1 + b) - ((1 - d) * (1 + b)) ** 2
    np.testing.assert_allclose(mean, N0 * m**n, rtol=1e-9)
    np.testing.assert_allclose(var, N0 * s2 * m ** (n - 1) * (m**n - 1) / (m - 1), rtol=1e-9)
    z = np.sqrt(REPLICAS) * (counts.mean() - mean) / np.sqrt(var)
    y = np.sqrt(REPLICAS / 2) * (counts.var(ddof=1) / var - 1)
    assert abs(z) < 3 and abs(y) < 5


def test_division_conserves_volume_so_total_volume_grows_exponentially(size_control):
    traj = size_control["Adder"]
    v = np.asarray(traj["cellular/cells/volume"])
    a = np.asarray(traj["cellular/cells/alive"])
    total = (v * a).sum(axis=1)
    np.testing.assert_allclose(total, 48.0 * np.exp(MU * np.asarray(traj.ts)), rtol=1e-6)
    # ... and the number of cells is the total volume over the mean cell volume, which
    # in balanced exponential growth with division at twice the birth size 1 is
    # ∫_0^1 2 ln2 · 2^-a · 2^a da = 2 ln 2 (age density 2 ln2 · 2^-a).
    np.testing.assert_allclose(a[-1].sum(), 48.0 * 2**7 / (2 * np.log(2.0)), rtol=0.05)


def test_capacity_overflow_is_an_error_not_a_silent_drop():
    pop = Population("cells", capacity=4, n_initial=3, growth_rate=MU)
    div = Division("division", pop, Sizer(1.5), interval=0.01)
    with pytest.raises(Exception, match="capacity 4 exceeded"):
        jc.simulate([pop, div], 0.0, 1.0, saveat=[1.0])


def test_dividers_halve_copy_and_binomial():
    pop = Population("cells", capacity=2000, n_initial=1000, growth_rate=MU)
    stuff = jc.ODE("stuff", {"amount": jnp.full(2000, 100.0), "conc": jnp.full(2000, 3.0),
                             "count": jnp.full(2000, 400.0)},
                   lambda t, y, p: {}, scale="cellular")
    div = Division("division", pop, Sizer(1.5), interval=0.1,
                   dividers={"cellular/stuff/amount": Halve(),
                             "cellular/stuff/conc": Copy(),
                             "cellular/stuff/count": Binomial()})
    traj = jc.simulate([pop, stuff, div], 0.0, 1.0, saveat=[0.0, 1.0])
    alive = np.asarray(traj["cellular/cells/alive"][-1]) > 0.5
    assert alive.sum() == 2000  # every founder divided once, into the free slots
    amount = np.asarray(traj["cellular/stuff/amount"][-1])
    np.testing.assert_allclose(amount, 50.0)
    np.testing.assert_allclose(traj["cellular/stuff/conc"][-1], 3.0)
    count = np.asarray(traj["cellular/stuff/count"][-1])
    mother, daughter = count[:1000], count[1000:]
    np.testing.assert_array_equal(mother + daughter, 400.0)  # exact conservation
    np.testing.assert_array_equal(count, np.round(count))
    # Binomial(400, 1/2): mean 200, variance 100 (1000 divisions; 5 standard errors).
    assert abs(mother.mean() - 200.0) < 5 * 10 / np.sqrt(1000)
    assert abs(mother.var() - 100.0) < 5 * 100 * np.sqrt(2 / 999)


def test_death_at_a_constant_hazard_leaves_exp_minus_rate_t_alive():
    pop = Population("cells", capacity=20000)
    death = Death("death", pop, rate=0.5, interval=0.1)
    traj = jc.simulate([pop, death], 0.0, 2.0, saveat=[0.0, 1.0, 2.0], key=jax.random.key(7))
    frac = np.asarray(traj["cellular/cells/alive"]).mean(axis=1)
    p = np.exp(-0.5 * np.array([0.0, 1.0, 2.0]))
    sd = np.sqrt(p * (1 - p) / 20000)
    assert np.all(np.abs(frac - p) <= 5 * sd + 1e-12)


def test_death_by_condition_and_frozen_dead_cells():
    pop = Population("cells", capacity=4, volume=jnp.array([1.0, 2.0, 3.0, 4.0]),
                     growth_rate=1.0)
    death = Death("death", pop, interval=0.5, condition=lambda t, x, p: x["v"] > 5.0,
                  reads={"v": "cellular/cells/volume"})
    traj = jc.simulate([pop, death], 0.0, 1.0, saveat=[0.5, 1.0],
                       stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
    e = np.e ** 0.5
    # At t = 0.5 volumes are (1, 2, 3, 4)·e^0.5 = (1.6, 3.3, 4.9, 6.6): cell 4 dies and
    # stops growing; at t = 1 the others are (1, 2, 3)·e = (2.7, 5.4, 8.2): two more die.
    np.testing.assert_array_equal(traj["cellular/cells/alive"][0], [1, 1, 1, 0])
    np.testing.assert_array_equal(traj["cellular/cells/alive"][1], [1, 0, 0, 0])
    np.testing.assert_allclose(traj["cellular/cells/volume"][1],
                               [e**2, 2 * e**2, 3 * e**2, 4 * e], rtol=1e-8)


def test_per_cell_parameters_and_alive_mask():
    decay = jc.ODE("x", {"m": 1.0}, lambda t, y, p: {"m": -p["k"] * y["m"]},
                   parameters={"k": 1.0})
    pop = Population("cells", capacity=3, n_initial=2)
    cells = PerCell(decay, population=pop).replace_parameters(
        {"k": jnp.array([0.5, 2.0, 1.0])})
    traj = jc.simulate([pop, cells], 0.0, 1.5, saveat=[1.5],
                       stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
    # Cells 0 and 1 decay at their own rate; slot 2 is empty, so frozen.
    np.testing.assert_allclose(traj["molecular/x/m"][-1],
                               [np.exp(-0.75), np.exp(-3.0), 1.0], rtol=1e-8)
    assert cells.parameters()["k"].shape == (3,)


def test_per_cell_network_equals_each_cell_simulated_alone():
    net = jc.models.repressilator()
    n = 4
    cells = PerCell(net, n_cells=n)
    alphas = np.array([100.0, 150.0, 216.0, 300.0])
    cells = cells.replace_parameters({"alpha": alphas}) if "alpha" in net.parameters() \
        else cells
    y0 = np.linspace(0.5, 5.0, n * 6).reshape(n, 6)
    ctl = diffrax.PIDController(rtol=1e-9, atol=1e-11)
    together = jc.simulate(cells, 0.0, 20.0, saveat=[20.0], stepsize_controller=ctl,
                           y0={"molecular/repressilator/species": y0})
    path = "molecular/repressilator/species"
    for i in range(n):
        one = net.replace_parameters({"alpha": alphas[i]}) if "alpha" in net.parameters() \
            else net
        alone = jc.simulate(one, 0.0, 20.0, saveat=[20.0], stepsize_controller=ctl,
                            y0={path: y0[i]})
        np.testing.assert_allclose(together[path][-1, i], alone[path][-1], rtol=1e-6)


def test_bad_population_input():
    with pytest.raises(jc.ModelError, match="capacity"):
        Population("p", capacity=0)
    with pytest.raises(jc.ModelError, match="n_initial"):
        Population("p", capacity=3, n_initial=5)
    with pytest.raises(jc.ModelError, match="volume"):
        Population("p", capacity=3, volume=jnp.ones(2))
    pop = Population("p", capacity=3)
    with pytest.raises(jc.ModelError, match="rule"):
        Division("d", pop, 2.0, interval=0.1)  # pyright: ignore
    with pytest.raises(jc.ModelError, match="divider"):
        Division("d", pop, Sizer(2.0), interval=0.1, dividers={"a/b/c": "halve"})
    with pytest.raises(jc.ModelError, match="'duration' .* must be non-negative"):
        Timer(-1.0)
    with pytest.raises(jc.ModelError, match="'rate' .* must be non-negative"):
        ConstantRate(-0.5)
    with pytest.raises(jc.ModelError, match=r"'rate' must be a scalar or have shape \(3,\)"):
        Division("d", pop, ConstantRate(jnp.ones(2)), interval=0.1)
    with pytest.raises(jc.ModelError, match="interval"):
        Death("d", pop, interval=0.0)
    with pytest.raises(jc.ModelError, match="rate"):
        Death("d", pop, interval=1.0, rate=-1.0)
    with pytest.raises(jc.ModelError, match="n_cells"):
        PerCell(jc.models.repressilator(), n_cells=0)
    with pytest.raises(jc.ModelError, match="shape"):
        PerCell(jc.models.repressilator(), n_cells=2).replace_parameters(
            {next(iter(jc.models.repressilator().parameters())): jnp.ones(3)})


def test_per_cell_runs_an_imported_sbml_model():
    # The Boehm 2014 PEtab model (shipped in tests/data): three cells, the third with
    # twice the Epo degradation rate; the first two must equal one cell alone.
    from pathlib import Path

    from jaxcell.sbml import load_sbml

    here = Path(__file__).parent / "data/petab/Boehm_JProteomeRes2014"
    model = load_sbml(here / "model_Boehm_JProteomeRes2014.xml")
    k = model.parameters()["Epo_degradation_BaF3"]
    cells = PerCell(model, n_cells=3).replace_parameters(
        {"Epo_degradation_BaF3": jnp.stack([k, k, 2 * k])})
    path = ("molecular", model.name, "state")
    ctl = diffrax.PIDController(rtol=1e-10, atol=1e-12)
    many = jc.simulate(cells, 0.0, 100.0, saveat=[100.0], stepsize_controller=ctl)[path][-1]
    one = jc.simulate(model, 0.0, 100.0, saveat=[100.0], stepsize_controller=ctl)[path][-1]
    np.testing.assert_allclose(many[0], one, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(many[1], one, rtol=1e-8, atol=1e-12)
    other = jc.simulate(model.replace_parameters({"Epo_degradation_BaF3": 2 * k}), 0.0,
                        100.0, saveat=[100.0], stepsize_controller=ctl)[path][-1]
    np.testing.assert_allclose(many[2], other, rtol=1e-8, atol=1e-12)
    assert np.max(np.abs(other - one)) > 1e-3  # the parameter matters
