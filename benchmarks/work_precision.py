#!/usr/bin/env python
"""Comparison table and work-precision: jaxcell vs libRoadRunner, AMICI and scipy.

Float64 throughout. Timings are wall-clock medians over repeated calls; the first call of
every measurement is left out of the median (it compiles jaxcell's program, and warms the
peers up).

**Part 1 — comparison table** (cases ``boehm``, ``fujita``, ``mapk``, ``repressilator``
from ``_models.spec``: 101 output times, rtol 1e-6, atol 1e-8). Rows per case and tool:

* ``single_s``: one simulation. jaxcell: the user-facing call, ``jaxcell.sbml.solve_sbml``
  (Boehm, Fujita) or ``jc.simulate`` (MAPK, repressilator), waited for with
  ``block_until_ready``; libroadrunner: ``rr.reset()`` + ``rr.simulate(0, t1, 101)``
  (CVODE); amici: ``_amici.simulate`` (CVODES, no sensitivities); scipy:
  ``solve_ivp(LSODA)`` through ``_models.solve_scipy``.
* ``gradient_s``: gradient of ``L(p) = 0.5 sum_{t,i} (y_i(t; p) - d_i(t))^2`` over the 101
  times and all species, with respect to all kinetic parameters (``spec.params``), at
  ``p = nominal * exp(0.1 z)``, ``z ~ N(0, 1)``, seed 0; ``d``: the nominal trajectory of
  scipy LSODA at rtol 1e-10, atol 1e-12 (the same data for every tool). jaxcell: both
  ``jax.jit(jax.grad(L))`` (reverse mode, diffrax's ``RecursiveCheckpointAdjoint``) and
  ``jax.jit(jax.jacfwd(L))`` (forward mode; ``adjoint=diffrax.ForwardMode()`` passed to
  ``jc.simulate`` or ``solve_sbml``); the row is the faster mode (its note says
  ``reverse`` or ``forward``), the other mode's time is a global note and a printed
  line. amici:
  ``_amici.loss_and_gradient`` (forward sensitivities, note ``forward sensitivities``);
  libroadrunner and scipy: forward finite differences, n + 1 simulations, relative step
  ``sqrt(rtol)`` = 1e-3 (note ``finite differences``).
  Accuracy (printed and in the notes, not rows): ``max |g - g_ref| / max |g_ref|``;
  ``g_ref``: central differences at relative steps 2e-4 and 1e-4, Richardson-extrapolated,
  of the scipy loss at rtol 1e-12, atol 1e-14 (LSODA; Radau for Fujita, where LSODA's
  differences are noise-limited; see ``REF_GRAD_METHOD``). Central differences of LSODA
  at rtol 1e-10 (step 1e-4) were not good enough: off by 1e-3 on Fujita and 4e-4 on the
  repressilator, the size of the errors being measured.
* ``compile_s``: jaxcell: first call minus median (trace + XLA compile); libroadrunner:
  ``roadrunner.RoadRunner(sbml)`` (parse + LLVM JIT); amici: the model build (SBML import +
  C++ compile), or, when ``bench-results/amici-build/<case>`` already holds the build, the
  time to load it (note ``cached build ...``).
* ``gradient_compile_s`` (jaxcell only): first gradient call minus median, of the mode
  reported in ``gradient_s``.

The printed table has the tools side by side and the ratios jaxcell / libroadrunner and
jaxcell / amici (below 1: jaxcell faster), then the trajectory and gradient errors.

**Part 2 — work-precision** for Robertson's stiff chemical kinetics
(``y1' = -0.04 y1 + 1e4 y2 y3``, ``y2' = 0.04 y1 - 1e4 y2 y3 - 3e7 y2^2``,
``y3' = 3e7 y2^2``, ``y(0) = (1, 0, 0)``, t in [0, 1e5], output at 0 and at 21 log-spaced
times from 1e-4 to 1e5), Boehm and Fujita. For rtol in 1e-4 ... 1e-8 with
atol = 1e-2 rtol: time (median) and error = max over output times and species of
``|y - ref| / max(|ref|, 1e-3 max_t |ref_i|)`` (a floor per species: Robertson's y2 peaks
at 3.6e-5), ``ref`` from scipy Radau at rtol 1e-12, atol 1e-14 (checked against LSODA at
the same tolerances; their difference is a note). Tools: jaxcell Rodas5 (Robertson as a
``jc.ODE`` process through ``jc.simulate``; Boehm and Fujita through ``solve_sbml``),
libroadrunner (CVODE, ``reset()`` + ``simulate(times=ts)``), amici (CVODES,
``_amici.simulate``) and scipy ``solve_ivp`` with LSODA and BDF (no Jacobian given: finite
differences). Robertson is written as SBML with python-libsbml for roadrunner and AMICI.
Rows ``wp_time_s@rtol=1e-6`` (s) and ``wp_error@rtol=1e-6`` (rel); the note is the method
(scipy has two rows per metric, notes ``LSODA`` and ``BDF``).

AMICI builds are cached in ``bench-results/amici-build/<case>`` (about 15 s per model,
once); libroadrunner and AMICI are optional (missing: a note, no rows).

Usage::

    python benchmarks/work_precision.py [--quick] [--json PATH]
        [--models boehm,fujita,mapk,repressilator] [--skip-wp] [--skip-table]

``--models`` picks the Part 1 cases and the Part 2 problems among Boehm and Fujita
(Robertson always runs with Part 2). ``--quick``: fewer repeats; all of it took 3.5 min
on a 2-core AMD EPYC VM with other jobs running (load average 4), plus about 1 min the
first time for the AMICI builds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _amici  # noqa: E402
import _common as C  # noqa: E402
import _models  # noqa: E402
import _sbml  # noqa: E402

import jaxcell as jc  # noqa: E402
import jaxcell.io as jio  # noqa: E402

try:
    import roadrunner
except ImportError:  # optional peer
    roadrunner = None

TOOLS = ["jaxcell", "libroadrunner", "amici", "scipy"]
JX, RR, AM, SP = TOOLS
CASES = ("boehm", "fujita", "mapk", "repressilator")
RTOL, ATOL = 1e-6, 1e-8
DATA_RTOL, DATA_ATOL = 1e-10, 1e-12     # the data d (LSODA)
FD_STEP = RTOL ** 0.5                   # forward differences of the peers (relative)
# Reference gradient: central differences at relative steps h and h/2 of scipy at rtol
# 1e-12, atol 1e-14, Richardson-extrapolated, (4 D(h/2) - D(h)) / 3. Plain central
# differences (step 1e-4) of LSODA at rtol 1e-10 were off by 4e-4 (repressilator:
# truncation) and 1e-3 (Fujita: solver noise); LSODA at 1e-12 is still noise-limited
# (6e-5) on Fujita (EGFR 4e7 next to pS6 1e-5), Radau is not. Checked once against
# jaxcell's reverse-mode gradient at rtol 1e-11: within 1.1e-6 on all four models.
REF_GRAD_TOL = (1e-12, 1e-14)
REF_GRAD_STEPS = (2e-4, 1e-4)
REF_GRAD_METHOD = {"fujita": "Radau"}   # default LSODA
SIGMA, SEED = 0.1, 0
WP_RTOLS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
WP_ATOL_FACTOR = 1e-2                   # atol = rtol * 1e-2
WP_REF = ("Radau", 1e-12, 1e-14)        # scipy method, rtol, atol of the reference
WP_CHECK = "LSODA"                      # the same tolerances, to check the reference
WP_SBML_CASES = ("boehm", "fujita")
AMICI_DIR = Path(__file__).resolve().parents[1] / "bench-results" / "amici-build"
GRAD_TAGS = {"reverse": "rev", "forward": "fwd", "finite differences": "FD",
             "forward sensitivities": "FSA"}


def settings(quick: bool) -> dict[str, dict[str, float]]:
    """Repeats per measurement: at least ``n`` calls after the first, more until ``min_s``
    seconds (at most ``max_n`` calls), fewer once they add up to ``max_s``."""
    if quick:
        return {"single": dict(n=5, min_s=0.5, max_n=200, max_s=5.0),
                "grad": dict(n=3, min_s=0.5, max_n=50, max_s=5.0),
                "fd": dict(n=1, min_s=0.0, max_n=1, max_s=5.0),
                "wp": dict(n=3, min_s=0.3, max_n=100, max_s=3.0)}
    return {"single": dict(n=20, min_s=3.0, max_n=2000, max_s=30.0),
            "grad": dict(n=10, min_s=2.0, max_n=500, max_s=30.0),
            "fd": dict(n=3, min_s=1.0, max_n=20, max_s=30.0),
            "wp": dict(n=10, min_s=1.0, max_n=1000, max_s=20.0)}


# -- measures -------------------------------------------------------------------------------


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max over times and species of |a - ref| / max(|ref|, 1e-3 max_t |ref_species|)."""
    a, ref = np.asarray(a, float), np.asarray(ref, float)
    floor = np.maximum(1e-3 * np.max(np.abs(ref), axis=0, keepdims=True), 1e-300)
    return float(np.max(np.abs(a - ref) / np.maximum(np.abs(ref), floor)))


def grad_err(g: np.ndarray, ref: np.ndarray) -> float:
    """max |g - ref| / max |ref|."""
    return float(np.max(np.abs(np.asarray(g) - ref)) / np.max(np.abs(ref)))


def loss_np(y: np.ndarray, data: np.ndarray) -> float:
    return 0.5 * float(np.sum((np.asarray(y) - data) ** 2))


def tol_label(x: float) -> str:
    """1e-06 -> '1e-6'."""
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def short(e: BaseException) -> str:
    """One line naming an exception."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160] if text else ''}"


@dataclass
class Timing:
    first: float      # the first call (compile + run for jaxcell)
    median: float     # median of the later calls
    calls: int        # number of later calls
    out: Any          # the first call's result


def measure(fn, rep: dict[str, float]) -> Timing:
    """Time a first call of ``fn()``, then the later calls of ``settings``' ``rep``."""
    first, out = C.timed(fn)
    times = C.repeat(fn, int(rep["n"]), rep["min_s"], int(rep["max_n"]), rep["max_s"])
    return Timing(first, C.median(times), len(times), out)


def perturbed(s: _models.Spec) -> np.ndarray:
    """The kinetic parameters (``spec.params`` order) times exp(0.1 z), seed 0."""
    p0 = np.array(list(s.params.values()), float)
    return p0 * np.exp(SIGMA * np.random.default_rng(SEED).standard_normal(p0.size))


def fd_gradient(solve, names: list[str], p: np.ndarray, data: np.ndarray, step: float,
                central: bool = False) -> np.ndarray:
    """Finite-difference gradient of ``0.5 sum((solve(params) - data)^2)``; ``solve`` takes
    a dict name -> value; relative step ``step`` (forward: n + 1 solves, central: 2n)."""
    def loss(q):
        return loss_np(solve(dict(zip(names, q))), data)

    l0 = None if central else loss(p)
    g = np.zeros(len(p))
    for j in range(len(p)):
        h = step * abs(p[j]) if p[j] != 0 else step
        up, down = p.copy(), p.copy()
        up[j] += h
        down[j] -= h
        g[j] = (loss(up) - loss(down)) / (2 * h) if central else (loss(up) - l0) / h
    return g


# -- Robertson ------------------------------------------------------------------------------
ROBERTSON_K = {"k1": 0.04, "k2": 1e4, "k3": 3e7}
ROBERTSON_VAR = "y"  # the jc.ODE's one (vector) variable


def robertson_rhs(t, y, p):
    """jaxcell right-hand side of Robertson's kinetics (``y``: the ODE's variables)."""
    y1, y2, y3 = y[ROBERTSON_VAR]
    a, b, c = p["k1"] * y1, p["k2"] * y2 * y3, p["k3"] * y2 ** 2
    return {ROBERTSON_VAR: jnp.stack([-a + b, a - b - c, c])}


def robertson_numpy_rhs(params: dict[str, float]):
    k1, k2, k3 = (params[k] for k in ("k1", "k2", "k3"))

    def f(t, y):
        a, b, c = k1 * y[0], k2 * y[1] * y[2], k3 * y[1] ** 2
        return np.array([-a + b, a - b - c, c])

    return f


def robertson_sbml() -> str:
    """Robertson's kinetics as SBML L3V2 (unit compartment): y1 -> y2 (k1 y1), y2 -> y1
    with modifier y3 (k2 y2 y3), y2 -> y3 (k3 y2^2)."""
    lib = _sbml.libsbml
    if lib is None:
        raise ImportError("python-libsbml is not installed")
    doc, model = _sbml._new_model("robertson", ["y1", "y2", "y3"], [1.0, 0.0, 0.0])
    for k, v in ROBERTSON_K.items():
        p = model.createParameter()
        _sbml._check(p.setId(k), f"parameter id {k}")
        p.setValue(v)
        p.setConstant(True)
    for rid, source, target, modifier, law in (("r1", "y1", "y2", None, "k1 * y1"),
                                               ("r2", "y2", "y1", "y3", "k2 * y2 * y3"),
                                               ("r3", "y2", "y3", None, "k3 * y2^2")):
        rx = model.createReaction()
        _sbml._check(rx.setId(rid), f"reaction id {rid}")
        rx.setReversible(False)
        for ref, species in ((rx.createReactant(), source), (rx.createProduct(), target)):
            ref.setSpecies(species)
            ref.setStoichiometry(1.0)
            ref.setConstant(True)
        if modifier:
            rx.createModifier().setSpecies(modifier)
        _sbml._check(rx.createKineticLaw().setMath(lib.parseL3Formula(law)), f"law of {rid}")
    return lib.writeSBMLToString(doc)


def robertson_spec() -> _models.Spec:
    ode = jc.ODE("robertson", {ROBERTSON_VAR: jnp.array([1.0, 0.0, 0.0])}, robertson_rhs,
                 parameters=ROBERTSON_K)
    ts = np.concatenate([[0.0], np.logspace(-4.0, 5.0, 21)])
    return _models.Spec("robertson", ode, ("y1", "y2", "y3"), 1e5, ts,
                        np.array([1.0, 0.0, 0.0]), dict(ROBERTSON_K), robertson_numpy_rhs,
                        robertson_sbml())


# -- jaxcell --------------------------------------------------------------------------------


def jaxcell_solver(s: _models.Spec, rtol: float, atol: float, adjoint=None):
    """``(call, pick)``: ``call(model)`` is the user-facing solve of ``s`` (``solve_sbml``
    or ``jc.simulate``), ``pick(out)`` its species trajectory ``(len(ts), n_species)``."""
    ts = jnp.asarray(s.ts)
    if s.is_sbml:
        cols = jnp.asarray([s.model.output_ids.index(k) for k in s.species])

        def call(model):
            return jio.solve_sbml(model, ts, rtol, atol, adjoint=adjoint)

        def pick(out):
            return out[0][:, cols]  # out: (values, status, steps)

        return call, pick
    var = "species" if isinstance(s.model, jc.ReactionNetwork) else ROBERTSON_VAR
    path = f"{s.model.scale}/{s.model.name}/{var}"
    ctrl = diffrax.PIDController(rtol=rtol, atol=atol)

    def call(model):
        return jc.simulate(model, 0.0, s.t1, saveat=ts, stepsize_controller=ctrl,
                           adjoint=adjoint)

    def pick(traj):
        return traj[path]

    return call, pick


def jaxcell_run(s: _models.Spec, rtol: float, atol: float):
    """``(run, to_array)``: ``run()`` the user-facing solve at the nominal parameters,
    ``to_array(out)`` its species trajectory as numpy (raises if the solver failed)."""
    call, pick = jaxcell_solver(s, rtol, atol)
    if not s.is_sbml:  # jc.simulate raises on failure
        return (lambda: call(s.model)), (lambda traj: np.asarray(pick(traj)))
    cols = np.array([s.model.output_ids.index(k) for k in s.species])

    def to_array(out):
        values, result, _ = out
        if not bool(result == jc.RESULTS.successful):
            raise RuntimeError(f"solve_sbml failed: {result}")
        return np.asarray(values)[:, cols]  # numpy: an eager jnp gather costs ~1 ms

    return (lambda: call(s.model)), to_array


def jaxcell_loss(s: _models.Spec, names: list[str], data: np.ndarray, adjoint=None):
    """``L(p)`` for jaxcell, ``p`` the kinetic parameters in ``names`` order."""
    call, pick = jaxcell_solver(s, RTOL, ATOL, adjoint)
    d = jnp.asarray(data)

    def loss(p):
        model = s.with_params(dict(zip(names, p)))
        return 0.5 * jnp.sum((pick(call(model)) - d) ** 2)

    return loss


def jaxcell_single(s: _models.Spec, res: C.Results, cfg) -> np.ndarray:
    call, pick = jaxcell_solver(s, RTOL, ATOL)
    tm = measure(lambda: call(s.model), cfg["single"])
    what = "solve_sbml" if s.is_sbml else "jc.simulate"
    res.add(s.name, JX, "single_s", tm.median, "s", note=f"{what}, median of {tm.calls}")
    res.add(s.name, JX, "compile_s", tm.first - tm.median, "s",
            note="first call - median (trace + XLA compile)")
    return np.asarray(pick(tm.out))


def jaxcell_gradients(s: _models.Spec, p: np.ndarray, data: np.ndarray, cfg
                      ) -> dict[str, Timing | str]:
    """Reverse and forward mode: mode -> Timing (``out`` the gradient) or why it failed."""
    names = list(s.params)
    x = jnp.asarray(p)
    fns = {"reverse": lambda: jax.jit(jax.grad(jaxcell_loss(s, names, data))),
           "forward": lambda: jax.jit(jax.jacfwd(
               jaxcell_loss(s, names, data, diffrax.ForwardMode())))}
    out: dict[str, Timing | str] = {}
    for mode, make in fns.items():
        fn = make()
        try:
            out[mode] = measure(lambda fn=fn: fn(x), cfg["grad"])
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            out[mode] = short(e)
    return out


# -- libRoadRunner --------------------------------------------------------------------------


class RRModel:
    """A libRoadRunner instance of ``s.sbml`` reporting the species concentrations."""

    def __init__(self, s: _models.Spec, rtol: float = RTOL, atol: float = ATOL):
        self.s = s
        self.load_s, self.rr = C.timed(lambda: roadrunner.RoadRunner(s.sbml))
        self.rr.setIntegrator("cvode")
        self.rr.integrator.maximum_num_steps = 1_000_000
        self.rr.timeCourseSelections = [f"[{k}]" for k in s.species]
        self.set_tolerances(rtol, atol)

    def set_tolerances(self, rtol: float, atol: float) -> None:
        self.rr.integrator.relative_tolerance = rtol
        self.rr.integrator.absolute_tolerance = atol

    def set_params(self, params: dict[str, float]) -> None:
        for k, v in params.items():
            self.rr.setValue(k, float(v))

    def single(self) -> np.ndarray:
        """``reset()`` + ``simulate(0, t1, len(ts))`` (equally spaced times)."""
        self.rr.reset()
        return np.asarray(self.rr.simulate(0.0, self.s.t1, len(self.s.ts)))

    def at_times(self) -> np.ndarray:
        """``reset()`` + ``simulate(times=ts)``."""
        self.rr.reset()
        return np.asarray(self.rr.simulate(times=list(self.s.ts)))

    def solve_with(self, params: dict[str, float]) -> np.ndarray:
        """Trajectory with ``params`` set (nominal values restored after)."""
        self.set_params(params)
        try:
            return self.single()
        finally:
            self.set_params(self.s.params)


# -- AMICI --------------------------------------------------------------------------------

_AMICI_HANDLES: dict[str, tuple[Any, float]] = {}


def amici_model(s: _models.Spec) -> tuple[Any, float]:
    """``(handle, seconds)``: the AMICI build of ``s.sbml`` (observables: the species in
    ``s.species`` order), built or loaded from ``bench-results/amici-build/<case>``
    once per process."""
    if s.name not in _AMICI_HANDLES:
        out = AMICI_DIR / s.name
        path = out / f"{s.name}.xml"
        obs = {f"y_{k}": k for k in s.species}

        def build():
            out.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != s.sbml:
                path.write_text(s.sbml)
            return _amici.build(str(path), f"jaxcell_wp_{s.name}", str(out), observables=obs)

        # (_amici.build locks the folder: ensemble.py shares these builds)
        seconds, h = C.timed(build)
        _AMICI_HANDLES[s.name] = (h, seconds)
    return _AMICI_HANDLES[s.name]


def amici_run(s: _models.Spec, h, rtol: float, atol: float):
    """``() -> (len(ts), n_species)`` with ``_amici.simulate`` (states reordered)."""
    cols = [h.state_ids.index(k) for k in s.species]

    def run():
        _amici.set_tolerances(h, rtol, atol)
        return _amici.simulate(h, s.ts)[:, cols]

    return run


def amici_data(h, s: _models.Spec, data: np.ndarray) -> np.ndarray:
    """``data`` (species columns) in the order of ``h.observable_ids``."""
    return data[:, [s.species.index(o.removeprefix("y_")) for o in h.observable_ids]]


# -- scipy --------------------------------------------------------------------------------


def scipy_run(s: _models.Spec, method: str, rtol: float, atol: float, params=None):
    def run():
        y = _models.solve_scipy(s, params, method, rtol, atol)
        if not np.all(np.isfinite(y)):
            raise RuntimeError(f"solve_ivp({method}) failed")
        return y

    return run


# -- Part 1: one case of the comparison table ---------------------------------------------


@dataclass
class Accuracy:
    """Errors of one case (printed, not rows): trajectory at rtol 1e-6 and gradient."""

    trajectory: dict[str, float] = field(default_factory=dict)
    gradient: dict[str, float] = field(default_factory=dict)
    other: tuple[str, float | None] | None = None   # jaxcell's slower gradient mode


def bench_jaxcell(s, p, data, g_ref, res, cfg, acc: Accuracy) -> None:
    acc.trajectory[JX] = rel_err(jaxcell_single(s, res, cfg), data)
    grads = jaxcell_gradients(s, p, data, cfg)
    ok = {m: t for m, t in grads.items() if isinstance(t, Timing)}
    for m, t in ok.items():
        acc.gradient[f"{JX} {m}"] = grad_err(np.asarray(t.out), g_ref)
    if not ok:
        res.note(f"{s.name}: jaxcell gradient failed: {grads}")
        return
    best = min(ok, key=lambda m: ok[m].median)
    (other,) = (m for m in grads if m != best)
    t = ok[best]
    res.add(s.name, JX, "gradient_s", t.median, "s", note=best)
    res.add(s.name, JX, "gradient_compile_s", t.first - t.median, "s", note=best)
    o = grads[other]
    if isinstance(o, Timing):
        res.note(f"{s.name}: jaxcell {other}-mode gradient {C.fmt(o.median, 's')} "
                 f"(compile {C.fmt(o.first - o.median, 's')}); {best} mode is reported")
    else:
        res.note(f"{s.name}: jaxcell {other}-mode gradient not available: {o}")
    acc.other = (other, o.median if isinstance(o, Timing) else None)


def bench_roadrunner(s, p, data, g_ref, res, cfg, acc: Accuracy) -> None:
    m = RRModel(s)
    res.add(s.name, RR, "compile_s", m.load_s, "s", note="RoadRunner(sbml): parse + LLVM JIT")
    tm = measure(m.single, cfg["single"])
    res.add(s.name, RR, "single_s", tm.median, "s",
            note=f"reset() + simulate(0, t1, {len(s.ts)}), median of {tm.calls}")
    acc.trajectory[RR] = rel_err(tm.out, data)
    names = list(s.params)
    tg = measure(lambda: fd_gradient(m.solve_with, names, p, data, FD_STEP), cfg["fd"])
    res.add(s.name, RR, "gradient_s", tg.median, "s", note="finite differences")
    acc.gradient[RR] = grad_err(tg.out, g_ref)


def bench_amici(s, p, data, g_ref, res, cfg, acc: Accuracy) -> None:
    h, seconds = amici_model(s)
    if h.reused:
        note = f"cached build loaded (the build took {h.build_time:.1f} s when made)"
    else:
        note = "new build: SBML import + C++ compile + load"
    res.add(s.name, AM, "compile_s", seconds, "s", note=note)
    _amici.set_tolerances(h, RTOL, ATOL)
    tm = measure(lambda: _amici.simulate(h, s.ts), cfg["single"])
    res.add(s.name, AM, "single_s", tm.median, "s", note=f"median of {tm.calls}")
    acc.trajectory[AM] = rel_err(tm.out[:, [h.state_ids.index(k) for k in s.species]], data)
    names, d = list(s.params), amici_data(h, s, data)
    tg = measure(lambda: _amici.loss_and_gradient(h, s.ts, d, dict(zip(names, p)), names),
                 cfg["grad"])
    res.add(s.name, AM, "gradient_s", tg.median, "s", note="forward sensitivities")
    acc.gradient[AM] = grad_err(tg.out[1], g_ref)


def bench_scipy(s, p, data, g_ref, res, cfg, acc: Accuracy) -> None:
    tm = measure(scipy_run(s, "LSODA", RTOL, ATOL), cfg["single"])
    res.add(s.name, SP, "single_s", tm.median, "s", note=f"LSODA, median of {tm.calls}")
    acc.trajectory[SP] = rel_err(tm.out, data)
    names = list(s.params)

    def solve(q):
        return scipy_run(s, "LSODA", RTOL, ATOL, q)()

    tg = measure(lambda: fd_gradient(solve, names, p, data, FD_STEP), cfg["fd"])
    res.add(s.name, SP, "gradient_s", tg.median, "s", note="finite differences")
    acc.gradient[SP] = grad_err(tg.out, g_ref)


def reference_gradient(s: _models.Spec, p: np.ndarray, data: np.ndarray
                       ) -> tuple[np.ndarray, str]:
    """Richardson-extrapolated central differences of the tight scipy loss, and what
    it is."""
    method = REF_GRAD_METHOD.get(s.name, "LSODA")
    rtol, atol = REF_GRAD_TOL
    names = list(s.params)

    def solve(q):
        return scipy_run(s, method, rtol, atol, q)()

    h, h2 = REF_GRAD_STEPS
    coarse = fd_gradient(solve, names, p, data, h, central=True)
    fine = fd_gradient(solve, names, p, data, h2, central=True)
    how = (f"central differences (steps {h:g}, {h2:g}, Richardson) of {method} rtol "
           f"{rtol:g} atol {atol:g}")
    return (4.0 * fine - coarse) / 3.0, how


def bench_case(name: str, res: C.Results, cfg, peers: dict[str, bool]) -> Accuracy:
    s = _models.spec(name)
    names, p = list(s.params), perturbed(s)
    print(f"\n=== {name}: {len(s.species)} species, {len(names)} kinetic parameters, "
          f"t in [0, {s.t1:g}], {len(s.ts)} times ===", flush=True)
    data = scipy_run(s, "LSODA", DATA_RTOL, DATA_ATOL)()

    g_ref, how = reference_gradient(s, p, data)
    acc = Accuracy()
    steps = [(JX, bench_jaxcell, True), (RR, bench_roadrunner, peers[RR]),
             (AM, bench_amici, peers[AM]), (SP, bench_scipy, True)]
    for tool, bench, available in steps:
        if not available:
            continue
        try:
            bench(s, p, data, g_ref, res, cfg, acc)
        except Exception as e:  # noqa: BLE001 - a failing peer must not stop the others
            res.note(f"{name}: {tool} failed: {short(e)}")
        print(f"  ({res.elapsed():.0f} s elapsed)", flush=True)
    errs = ", ".join(f"{k} {v:.2g}" for k, v in acc.gradient.items())
    res.note(f"{name}: gradient rel. error vs {how}: {errs}")
    return acc


# -- Part 2: work-precision --------------------------------------------------------------


def wp_runners(s: _models.Spec, peers: dict[str, bool], res: C.Results):
    """``[(tool, method, make)]``; ``make(rtol, atol)`` gives ``(run, to_array)``: the
    timed call and the conversion of its result to the species trajectory."""
    out = [(JX, "Rodas5", lambda r, a: jaxcell_run(s, r, a))]
    if peers[RR]:
        try:
            m = RRModel(s)
        except Exception as e:  # noqa: BLE001
            res.note(f"{s.name}: libroadrunner failed to load: {short(e)}")
        else:
            def rr_make(r, a, m=m):
                m.set_tolerances(r, a)
                return m.at_times, np.asarray
            out.append((RR, "CVODE", rr_make))
    if peers[AM]:
        try:
            h, _ = amici_model(s)
        except Exception as e:  # noqa: BLE001
            res.note(f"{s.name}: AMICI build failed: {short(e)}")
        else:
            out.append((AM, "CVODES", lambda r, a, h=h: (amici_run(s, h, r, a), np.asarray)))
    for method in ("LSODA", "BDF"):
        out.append((SP, method, lambda r, a, m=method: (scipy_run(s, m, r, a), np.asarray)))
    return out


def wp_reference(s: _models.Spec, res: C.Results) -> np.ndarray:
    method, rtol, atol = WP_REF
    ref = scipy_run(s, method, rtol, atol)()
    check = scipy_run(s, WP_CHECK, rtol, atol)()
    res.note(f"{s.name}: work-precision reference scipy {method} rtol {rtol:g} atol "
             f"{atol:g}; {WP_CHECK} at the same tolerances differs by {rel_err(check, ref):.2g}")
    return ref


def bench_wp(s: _models.Spec, res: C.Results, cfg, peers) -> dict:
    """Rows ``wp_time_s@rtol=..`` and ``wp_error@rtol=..``; returns
    ``{(tool, method): {rtol: (time, error)}}`` for the printed table."""
    print(f"\n=== work-precision: {s.name} ===", flush=True)
    ref = wp_reference(s, res)
    table: dict[tuple[str, str], dict[float, tuple]] = {}
    for tool, method, make in wp_runners(s, peers, res):
        for rtol in WP_RTOLS:
            atol = rtol * WP_ATOL_FACTOR
            lab = tol_label(rtol)
            try:
                run, to_array = make(rtol, atol)
                tm = measure(run, cfg["wp"])
                t, err = tm.median, rel_err(to_array(tm.out), ref)
            except Exception as e:  # noqa: BLE001 - a failure is a result here
                t = err = None
                res.note(f"{s.name}: {tool} {method} failed at rtol {lab}: {short(e)}")
            res.add(s.name, tool, f"wp_time_s@rtol={lab}", t, "s", note=method, echo=False)
            res.add(s.name, tool, f"wp_error@rtol={lab}", err, "rel", note=method, echo=False)
            table.setdefault((tool, method), {})[rtol] = (t, err)
        print(f"  {tool} {method}: done ({res.elapsed():.0f} s elapsed)", flush=True)
    return table


# -- printing -----------------------------------------------------------------------------


def print_comparison(res: C.Results, cases: list[str], accs: dict[str, Accuracy]) -> None:
    """Tools side by side, ratios jaxcell / libroadrunner and jaxcell / amici."""
    metrics = ["single_s", "gradient_s", "compile_s", "gradient_compile_s"]
    cell = {(r["case"], r["metric"], r["tool"]): r for r in res.rows
            if r["metric"] in metrics}
    ratios = [RR, AM]
    head = f"{'case':<14} {'metric':<20}" + "".join(f" {t:>17}" for t in TOOLS)
    head += "".join(f" {'jaxcell/' + t:>21}" for t in ratios)
    print("\n== Part 1: comparison (rtol 1e-6, atol 1e-8, 101 times; median wall time) ==")
    print(head)
    print("-" * len(head))

    def show(r) -> str:
        if r is None:
            return ""
        note = r.get("note") or ""
        tag = GRAD_TAGS.get(note) or ("cached" if note.startswith("cached") else "")
        return C.fmt(r["value"], "s") + (f" ({tag})" if tag else "")

    for case in cases:
        for metric in metrics:
            line = f"{case:<14} {metric:<20}"
            line += "".join(f" {show(cell.get((case, metric, t))):>17}" for t in TOOLS)
            jx = cell.get((case, metric, JX))
            for t in ratios:
                r = cell.get((case, metric, t))
                ok = jx and r and jx["value"] and r["value"]
                ratio = f"{jx['value'] / r['value']:.3g}" if ok else ""
                line += f" {ratio:>21}"
            print(line)
            other = accs[case].other if case in accs else None
            if metric == "gradient_s" and other:
                mode, t = other
                val = C.fmt(t, "s") if t is not None else "n/a"
                print(f"{'':<14} {'  (jaxcell ' + mode + ')':<20} {val:>17}")
    print("  rev / fwd: jaxcell reverse / forward mode; FD: forward finite differences; "
          "FSA: AMICI forward sensitivities; cached: AMICI build loaded from disk")

    print("\n== Part 1: accuracy (max relative error; printed, not rows) ==")
    traj = [(JX, "jaxcell"), (RR, "roadrunner"), (AM, "amici"), (SP, "scipy")]
    grad = [(f"{JX} reverse", "jaxcell rev"), (f"{JX} forward", "jaxcell fwd"),
            (AM, "amici FSA"), (RR, "roadrunner FD"), (SP, "scipy FD")]
    widths = [max(9, len(label)) for _, label in traj + grad]
    head = f"{'':<14} trajectory" + " " * (sum(w + 1 for w in widths[:4]) - 10) + " gradient"
    print(head)
    head = f"{'case':<14}" + "".join(f" {label:>{w}}"
                                     for (_, label), w in zip(traj + grad, widths))
    print(head)
    print("-" * len(head))
    for case in cases:
        a = accs[case]
        values = [a.trajectory.get(k) for k, _ in traj] + [a.gradient.get(k) for k, _ in grad]
        print(f"{case:<14}" + "".join(f" {_e(v):>{w}}" for v, w in zip(values, widths)))
    print("  trajectory: vs the data d (LSODA rtol 1e-10); gradient: max|g - g_ref| / "
          "max|g_ref|, g_ref in the notes")


def _e(x: float | None) -> str:
    return "" if x is None else f"{x:.2e}"


def print_wp(name: str, table: dict) -> None:
    """Rows: tolerances; two columns (time, error) per tool and method."""
    cols = list(table)
    labels = [("roadrunner" if t == RR else t) if t != SP else f"scipy {m}" for t, m in cols]
    w = [max(19, len(lab)) for lab in labels]
    print(f"\n== Part 2: work-precision, {name} (atol = 1e-2 rtol; median time, max rel. "
          "error) ==")
    print(f"{'':<6}" + "".join(f" {lab:>{wi}}" for lab, wi in zip(labels, w)))
    head = f"{'rtol':<6}" + "".join(f" {'time':>{wi - 10}} {'error':>9}" for wi in w)
    print(head)
    print("-" * len(head))
    for rtol in WP_RTOLS:
        line = f"{tol_label(rtol):<6}"
        for col, wi in zip(cols, w):
            t, err = table[col].get(rtol, (None, None))
            line += f" {C.fmt(t, 's'):>{wi - 10}} {_e(err) or 'failed':>9}"
        print(line)


# -- main ---------------------------------------------------------------------------------


def check_peers(res: C.Results) -> dict[str, bool]:
    peers = {RR: roadrunner is not None, AM: _amici.available()}
    if not peers[RR]:
        res.note("libroadrunner is not installed: its rows are skipped "
                 "(pip install libroadrunner)")
    if not peers[AM]:
        res.note("AMICI is not available: its rows are skipped (see benchmarks/_amici.py)")
    return peers


def warm_up(robertson: _models.Spec) -> None:
    """First jc.simulate and solve_sbml of the process on small models, so that compile
    times are per model."""
    C.block(jc.simulate(jc.models.lotka_volterra(), 0.0, 1.0).ts)
    C.block(jio.solve_sbml(jio.load_sbml(robertson.sbml), jnp.asarray(robertson.ts[:5]),
                           RTOL, ATOL))


def main() -> None:
    ap = C.base_parser(__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(CASES),
                    help="comma-separated subset of " + ", ".join(CASES)
                    + " (Part 1 cases; Part 2 runs Robertson and those of boehm, fujita)")
    ap.add_argument("--skip-wp", action="store_true", help="skip Part 2 (work-precision)")
    ap.add_argument("--skip-table", action="store_true", help="skip Part 1 (comparison)")
    args = ap.parse_args()
    cases = [m for m in args.models.split(",") if m]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown models {unknown}; choose from {', '.join(CASES)}")
    cfg = settings(args.quick)
    res = C.Results("benchmarks/work_precision.py", args)
    res.versions["amici"] = C._version("amici")
    print(f"jax {jax.__version__} on {jax.default_backend()}; {res.machine['cpu']}, "
          f"{res.machine['usable_cores']} usable cores; mode {'quick' if args.quick else 'full'}")
    peers = check_peers(res)
    robertson = robertson_spec()
    warm_up(robertson)

    accs: dict[str, Accuracy] = {}
    if not args.skip_table:
        for name in cases:
            accs[name] = bench_case(name, res, cfg, peers)
    wp_tables = {}
    if not args.skip_wp:
        res.note("work-precision: atol = 1e-2 * rtol; error = max over output times and "
                 "species of |y - ref| / max(|ref|, 1e-3 max_t |ref_species|)")
        problems = [robertson] + [_models.spec(n) for n in WP_SBML_CASES if n in cases]
        for s in problems:
            wp_tables[s.name] = bench_wp(s, res, cfg, peers)

    print(f"\n==== work_precision.py results (total {res.elapsed():.0f} s) ====")
    if accs:
        print_comparison(res, list(accs), accs)
    for name, table in wp_tables.items():
        print_wp(name, table)
    print()
    res.finish(args.json)


if __name__ == "__main__":
    main()
