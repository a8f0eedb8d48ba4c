#!/usr/bin/env python
"""Hybrid (neural) model training: jaxcell ``fit`` against a hand-written diffrax + optax loop.

**Case ``lv-ude``** (universal differential equation, Lotka-Volterra). Truth: alpha 1.3,
beta 0.9, gamma 0.8, delta 1.8, x0 = (1, 1) (from the UDE paper's start, (0.44, 4.63),
the window [0, 3] never shows predator growth, so no model learns it; see
``tests/test_ude_training.py``). Data: t in [0, 3], 31 points, Gaussian noise with sd 5 %
of each state's mean (``numpy.random.default_rng(0)``). Hybrid: prey growth alpha x and
predator death -delta y known, the interaction terms replaced by
``eqx.nn.MLP(2, 2, 8, 2, tanh)`` (key 0, 106 weights) on standardised inputs. Loss: the
Gaussian negative log-likelihood of the data (sd known). Tsit5, PID rtol 1e-6, atol
1e-8, reverse-mode (``RecursiveCheckpointAdjoint``), float64, both tools.

* ``jaxcell``: ``fit(Objective(model, Parameters([Weights("interaction.net")]), ...),
  method=optax.adam(1e-2))`` for the Adam rows, then ``fit(..., method=optax.lbfgs(),
  starts=adam.x[None])``; multiple shooting: ``MultipleShooting(..., segments=5,
  continuity=10)`` trained the same way (Adam then L-BFGS).
* ``diffrax+optax``: the same vector field written by hand (``diffrax.diffeqsolve`` of
  ``[alpha x, -delta y] + MLP((u - shift)/scale)``), the same loss, the same optax
  transformation, one ``eqx.filter_jit`` step (L-BFGS with ``value_fn`` and
  ``optax.value_and_grad_from_state``, as optax documents).

Rows: ``time per epoch`` (median wall time of one optimiser step after the first, which
compiles; one epoch = one full-batch step), ``first step (compiles)``, ``time to target``
(from the first Adam call, compilation included, until the loss first reaches the target:
the Gaussian nll where the mean squared standardised residual is 2, i.e. a fit at
twice the noise variance), ``final loss``; for the multiple-shooting rows also the
forecast RMSE on t in (3, 6] of a single simulation from x0 with the trained network,
against single shooting with the same budget. Ratios jaxcell / diffrax+optax below 1:
jaxcell faster.

**Case ``petab-sciml 022``**: see :func:`case_petab_sciml` (PEtab SciML test-suite
problem 022, loaded with ``load_petab``, against the same model written by hand).
AMICI's JAX backend is not in the comparison: it is not part of the benchmark extra
(AMICI there is the C++ backend for PEtab v1), so it is not measured here.

Adding a case: write ``def case_name(res, cfg) -> None`` that adds rows with
``res.add(case, tool, metric, value, unit)`` and append it to ``CASES`` (a PEtab SciML
problem, for example).

Usage: ``python benchmarks/hybrid.py [--quick] [--json PATH]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import jaxcell as jc  # noqa: E402
from jaxcell.inference import (  # noqa: E402
    Experiment,
    MultipleShooting,
    Normal,
    Objective,
    Parameters,
    Weights,
    fit,
)

TOOLS = ["jaxcell", "diffrax+optax"]
RATES = (1.3, 0.9, 0.8, 1.8)
X0 = (1.0, 1.0)
RTOL, ATOL = 1e-6, 1e-8
MAX_STEPS = 2000


def settings(quick: bool) -> dict:
    return {"adam": 200 if quick else 1000, "lbfgs": 100 if quick else 500, "lr": 1e-2,
            "segments": 5, "continuity": 10.0}


# -- the Lotka-Volterra UDE ----------------------------------------------------------------


def lv_problem():
    truth = jc.models.lotka_volterra(*RATES, x0=X0[0], y0=X0[1])
    ts = np.linspace(0.0, 3.0, 31)
    t6 = np.linspace(0.0, 6.0, 61)
    exact6 = np.asarray(jc.simulate(truth, 0.0, 6.0, saveat=t6, solver=diffrax.Tsit5(),
                                    stepsize_controller=diffrax.PIDController(
                                        rtol=1e-10, atol=1e-12))[truth.path])
    exact = exact6[:31]
    sd = 0.05 * exact.mean(0)
    data = exact + sd * np.random.default_rng(0).standard_normal(exact.shape)
    mlp = eqx.nn.MLP(2, 2, 8, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    return {"ts": ts, "t6": t6, "exact6": exact6, "data": data, "sd": sd, "mlp": mlp,
            "shift": data.mean(0), "scale": data.std(0)}


def jaxcell_model(p):
    known = jc.ReactionNetwork("lv", species={"x": X0[0], "y": X0[1]}, reactions=[
        jc.Reaction("prey_birth", "x", "2 x", jc.MassAction("alpha")),
        jc.Reaction("predator_death", "y", "", jc.MassAction("delta"))],
        parameters={"alpha": RATES[0], "delta": RATES[3]})
    net = jc.neural.neural_coupling("interaction", p["mlp"], reads=known.path,
                                    shift=p["shift"], scale=p["scale"])
    return jc.Composite([known, net], name="ude")


def simulate_kwargs():
    return {"solver": diffrax.Tsit5(),
            "stepsize_controller": diffrax.PIDController(rtol=RTOL, atol=ATOL),
            "max_steps": MAX_STEPS}


class Timer:
    """``fit`` callback: wall-clock stamps after every iteration (each one waits for
    the step's value)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.stamps: list[float] = []
        self.values: list[float] = []

    def __call__(self, start, step, value):
        self.stamps.append(time.perf_counter() - self.t0)
        self.values.append(value)


def summarise(res, case, tool, stamps, values, target, offset=0.0):
    """Rows from per-step stamps (since the first call) and loss values; ``offset``:
    the time spent before this optimiser (Adam before L-BFGS), counted in the time to
    target. Returns the total time."""
    stamps = np.asarray(stamps)
    per = np.diff(stamps)
    res.add(case, tool, "first step (compiles)", float(stamps[0]), "s")
    res.add(case, tool, "time per epoch", float(np.median(per)) if len(per) else None, "s")
    hit = np.nonzero(np.asarray(values) <= target)[0]
    res.add(case, tool, "time to target (Adam + L-BFGS)" if offset else "time to target",
            offset + float(stamps[hit[0]]) if len(hit) else None, "s",
            note=None if len(hit) else "target not reached")
    res.add(case, tool, "final loss", float(min(values)), "")
    return offset + float(stamps[-1])


# -- the hand-written loop ------------------------------------------------------------------


class HandField(eqx.Module):
    net: eqx.nn.MLP
    shift: jax.Array
    scale: jax.Array

    def __call__(self, t, u, args):
        known = jnp.stack([RATES[0] * u[0], -RATES[3] * u[1]])
        return known + self.net((u - self.shift) / self.scale)


def hand_loss(params, static, ts, data, sd):
    field = eqx.combine(params, static)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), ts[0], ts[-1], None,
        jnp.asarray(X0), saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
        max_steps=MAX_STEPS, throw=False)
    r = (sol.ys - data) / sd
    const = jnp.sum(jnp.log(jnp.broadcast_to(sd, data.shape)) + 0.5 * jnp.log(2 * jnp.pi))
    ok = sol.result == diffrax.RESULTS.successful
    return jnp.where(ok, 0.5 * jnp.sum(r**2) + const, jnp.inf)


def hand_train(p, opt, params, static, n_steps, lbfgs: bool):
    ts, data, sd = jnp.asarray(p["ts"]), jnp.asarray(p["data"]), jnp.asarray(p["sd"])

    @eqx.filter_jit
    def step(params, state):
        def value_fn(q):
            return hand_loss(q, static, ts, data, sd)

        if lbfgs:
            value, grad = optax.value_and_grad_from_state(value_fn)(params, state=state)
        else:
            value, grad = eqx.filter_value_and_grad(value_fn)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=value_fn)
        return eqx.apply_updates(params, updates), state, value

    state = opt.init(params)
    if lbfgs:  # weak scalars in the initial state would recompile the second step
        state = jax.tree_util.tree_map(lambda a: jnp.asarray(a, a.dtype), state)
    t0 = time.perf_counter()
    stamps, values = [], []
    for _ in range(n_steps):
        params, state, value = step(params, state)
        values.append(float(value))  # waits for the step
        stamps.append(time.perf_counter() - t0)
    # values[k] is the loss before step k; the loss after the last step:
    last = float(eqx.filter_jit(hand_loss)(params, static, ts, data, sd))
    return params, stamps, values, last


# -- the case -------------------------------------------------------------------------------


def case_lv_ude(res, cfg):
    p = lv_problem()
    model = jaxcell_model(p)
    ps = Parameters([Weights("interaction.net")], model=model)
    experiment = Experiment(p["ts"], p["data"], "molecular/lv/species",
                            noise=Normal(p["sd"]))
    obj = Objective(model, ps, experiment, **simulate_kwargs())
    const = float(obj.nll_constant())
    target = const + p["data"].size  # mean squared standardised residual 2
    res.note(f"lv-ude: {len(ps)} weights; target loss {target:.4g} (nll at twice the "
             f"noise variance); loss of the truth on the data "
             f"{float(const + 0.5 * np.sum(((p['exact6'][:31] - p['data']) / p['sd'])**2)):.4g}")

    # jaxcell: Adam, then L-BFGS
    adam = optax.adam(cfg["lr"])
    timer = Timer()
    r_adam = fit(obj, method=adam, max_steps=cfg["adam"], callback=timer)
    spent = summarise(res, "lv-ude adam", "jaxcell", timer.stamps,
                      timer.values + [r_adam.value], target)
    lbfgs = optax.lbfgs()
    timer_l = Timer()
    r_lbfgs = fit(obj, method=lbfgs, starts=r_adam.x[None], max_steps=cfg["lbfgs"],
                  callback=timer_l)
    summarise(res, "lv-ude lbfgs", "jaxcell", timer_l.stamps,
              timer_l.values + [r_lbfgs.value], target, offset=spent)

    # hand-written: the same network, data, loss and optimiser settings
    params, static = eqx.partition(HandField(p["mlp"], jnp.asarray(p["shift"]),
                                             jnp.asarray(p["scale"])),
                                   lambda x: False)
    params = eqx.tree_at(lambda f: f.net, params, eqx.filter(p["mlp"], eqx.is_inexact_array))
    static = eqx.tree_at(lambda f: f.net, static, eqx.filter(p["mlp"], eqx.is_inexact_array,
                                                             inverse=True))
    params, stamps, values, last = hand_train(p, optax.adam(cfg["lr"]), params, static,
                                              cfg["adam"], lbfgs=False)
    spent = summarise(res, "lv-ude adam", "diffrax+optax", stamps, values + [last], target)
    params, stamps, values, last = hand_train(p, optax.with_extra_args_support(
        optax.lbfgs()), params, static, cfg["lbfgs"], lbfgs=True)
    summarise(res, "lv-ude lbfgs", "diffrax+optax", stamps, values + [last], target,
              offset=spent)

    # multiple against single shooting, same budget (Adam then L-BFGS)
    for name, segments in (("single shooting", 1), ("multiple shooting", cfg["segments"])):
        ms = MultipleShooting(model, ps, experiment, segments=segments,
                              continuity=cfg["continuity"], **simulate_kwargs())
        t0 = time.perf_counter()
        a = fit(ms, method=adam, max_steps=cfg["adam"])
        forecast_a = forecast(model, ps, a.x, p)
        b = fit(ms, method=lbfgs, starts=a.x[None], max_steps=cfg["lbfgs"])
        wall = time.perf_counter() - t0
        case = f"lv-ude {name}"
        res.add(case, "jaxcell", "train time (Adam + L-BFGS)", wall, "s")
        res.add(case, "jaxcell", "loss on data (one piece)",
                float(obj.nll(b.x[:len(ps)])), "")
        res.add(case, "jaxcell", "forecast RMSE t in (3,6] after Adam", forecast_a, "")
        res.add(case, "jaxcell", "forecast RMSE t in (3,6] after L-BFGS",
                forecast(model, ps, b.x, p), "")


def forecast(model, ps, x, p):
    m = ps.to_model(model, np.asarray(x)[:len(ps)])
    traj = jc.simulate(m, 0.0, 6.0, saveat=p["t6"], throw=False, **simulate_kwargs())
    if not bool(np.all(traj.success)):
        return None
    pred = np.asarray(traj["molecular/lv/species"])
    return float(np.sqrt(np.mean((pred[31:] - p["exact6"][31:]) ** 2)))


# -- a PEtab SciML problem ------------------------------------------------------------------

SCIML = (Path(__file__).resolve().parents[1] / "tests" / "data" / "petab-sciml"
         / "sciml_problem_import" / "022" / "petab" / "problem.yaml")


def case_petab_sciml(res, cfg):
    """PEtab SciML test-suite problem 022 (Lotka-Volterra; one network, ``net4``, whose
    second output is the predator production rate (SBML reaction v4, rate gamma) and whose first
    output is the prey observable): jaxcell ``fit`` of the loaded problem (network
    weights and alpha, beta, delta together, Adam) against the same model written by
    hand in diffrax (the same network module, loss and optax transformation). Both with
    Tsit5 at rtol 1e-8, atol 1e-10. The hand-written loss is checked against the
    problem's nllh at the nominal point before timing."""
    from jaxcell.petab import load_petab, petab_objective

    problem = load_petab(SCIML, rtol=1e-8, atol=1e-10, solver=diffrax.Tsit5())
    obj = petab_objective(problem)
    x0 = np.asarray(problem.x_nominal)
    n_mech = len(problem.mechanistic_ids)
    mech = dict(zip(problem.mechanistic_ids, x0[:n_mech]))
    net0 = problem.networks(x0)["net4"]
    y0 = jnp.asarray([0.44249296, 4.6280594])  # the SBML initial values
    meas = pd_read(SCIML.parent / "measurements.tsv")
    ts = jnp.asarray(sorted(set(meas["time"])))
    prey_t = jnp.asarray(meas[meas.observableId == "prey_o"]["time"].to_numpy(float))
    pred_t = jnp.asarray(meas[meas.observableId == "predator_o"]["time"].to_numpy(float))
    prey_y = jnp.asarray(meas[meas.observableId == "prey_o"]["measurement"].to_numpy(float))
    pred_y = jnp.asarray(meas[meas.observableId == "predator_o"]["measurement"]
                         .to_numpy(float))
    sd = 0.05

    def field(t, u, args):
        net, th = args
        g = net(u)[1]
        prey, pred = u[0], u[1]
        return jnp.stack([th[0] * prey - th[2] * prey * pred, g - th[1] * pred])

    def loss(params):
        net, th = params
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, ts[-1], None, y0,
            args=(net, th), saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
            max_steps=100_000, throw=False)
        idx = lambda tq: jnp.searchsorted(ts, tq)  # noqa: E731
        u_prey = sol.ys[idx(prey_t)]
        h_prey = jax.vmap(lambda u: net(u)[0])(u_prey)
        h_pred = sol.ys[idx(pred_t), 1]
        r = jnp.concatenate([(prey_y - h_prey) / sd, (pred_y - h_pred) / sd])
        return 0.5 * jnp.sum(r**2) + r.size * 0.5 * jnp.log(2 * jnp.pi * sd**2)

    th0 = jnp.asarray([mech["alpha"], mech["delta"], mech["beta"]])
    params = (eqx.filter(net0, eqx.is_inexact_array), th0)
    static = eqx.filter(net0, eqx.is_inexact_array, inverse=True)

    def full(p):
        return (eqx.combine(p[0], static), p[1])

    check = float(eqx.filter_jit(lambda p: loss(full(p)))(params))
    ref = float(problem.nllh(x0))
    res.note(f"petab-sciml 022: {len(x0)} estimated ({n_mech} mechanistic); nllh at the "
             f"nominal point: problem {ref:.8g}, hand-written {check:.8g}")
    if abs(check - ref) > 1e-5 * max(1.0, abs(ref)):
        raise RuntimeError("hand-written PEtab SciML loss disagrees with the problem's")
    n = cfg["adam"] // 2
    timer = Timer()
    r = fit(obj, method=optax.adam(1e-3), starts=x0[None], max_steps=n, callback=timer)
    target = ref - 1.0  # one log-likelihood unit better than the nominal point
    summarise(res, "petab-sciml 022 adam", "jaxcell", timer.stamps,
              timer.values + [r.value], target)
    opt = optax.adam(1e-3)

    @eqx.filter_jit
    def step(p, state):
        value, grad = eqx.filter_value_and_grad(lambda q: loss(full(q)))(p)
        updates, state = opt.update(grad, state, p)
        return eqx.apply_updates(p, updates), state, value

    state = opt.init(params)
    t0 = time.perf_counter()
    stamps, values = [], []
    p = params
    for _ in range(n):
        p, state, value = step(p, state)
        values.append(float(value))
        stamps.append(time.perf_counter() - t0)
    last = float(eqx.filter_jit(lambda q: loss(full(q)))(p))
    summarise(res, "petab-sciml 022 adam", "diffrax+optax", stamps, values + [last], target)


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path, sep="\t")


CASES = [case_lv_ude, case_petab_sciml]


def main():
    ap = C.base_parser(__doc__.splitlines()[0])
    args = ap.parse_args()
    cfg = settings(args.quick)
    res = C.Results("benchmarks/hybrid.py", args)
    res.versions["optax"] = C._version("optax")
    print(f"jax {jax.__version__} on {jax.default_backend()}; {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; mode "
          f"{'quick' if args.quick else 'full'}; {cfg}", flush=True)
    for case in CASES:
        case(res, cfg)
    print(f"\n==== hybrid.py results (total {res.elapsed():.0f} s) ====")
    C.print_table(res, TOOLS, title="UDE training: jaxcell fit vs hand-written loop")
    res.finish(args.json)


if __name__ == "__main__":
    main()
