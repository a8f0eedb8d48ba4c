"""``simulate(..., stochastic=...)``: the checks, and the choice between the jump loop
(SSA, tau-leaping), the splitting loop (jumps beside deterministic or discrete
processes) and the SDE solve (CLE)."""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._composite import Composite
from ._engine import cast_floats, initial_state
from ._errors import SimulationError
from ._failure import raise_on_failure
from ._hybrid import make_schedule, solve_hybrid
from ._jumps import JumpSystem, solve_jumps
from ._process import AbstractContinuousProcess, is_concrete
from ._results import RESULTS
from ._stochastic import CLE, AbstractStochasticMethod
from ._trajectory import Trajectory

_DEFAULT_POINTS = 101


def _others_continuous(model: Composite) -> list[str]:
    jumpers = set(model.jump_processes)
    return [p.name for i, p in enumerate(model.leaves)
            if isinstance(p, AbstractContinuousProcess) and i not in jumpers]


def simulate_stochastic(composite: Composite, t0, t1, saveat, method, key, y0, args,
                        dtype, throw, solver, controller, adjoint, max_steps, dt0,
                        progress_meter, event) -> Trajectory:
    if not isinstance(method, AbstractStochasticMethod):
        raise SimulationError(
            f"stochastic must be jaxcell.SSA(), jaxcell.TauLeaping() or "
            f"jaxcell.CLE(dt=...); got {type(method).__name__}.")
    if not composite.jump_processes:
        raise SimulationError(
            "stochastic= was given, but no process of the model can run as jumps (a "
            "ReactionNetwork, an SBML model, or PerCell of one).")
    if event is not None:
        raise SimulationError("event= (a diffrax.Event) is not supported in stochastic "
                              "simulations; add a jaxcell.Event process instead.")
    if y0 is not None:
        y0 = jax.tree_util.tree_map(
            lambda v: v if isinstance(v, jax.Array) else np.asarray(v), y0)
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if not (is_concrete(t0) and is_concrete(t1)):
        raise SimulationError("Stochastic simulations need concrete t0 and t1.")
    t0f, t1f = float(t0), float(t1)
    if not (np.isfinite(t0f) and np.isfinite(t1f)) or t1f <= t0f:
        raise SimulationError(
            f"Stochastic simulations run forward in time over a finite span; got "
            f"t0={t0}, t1={t1}.")
    model = composite.as_stochastic()
    for i in model.event_processes:
        if model.leaves[i].ports().history:
            raise SimulationError(
                f"{model.leaves[i].name!r} reads the past (delay): delays are not "
                f"supported in stochastic simulations.")
    others = _others_continuous(model)
    ts = _save_times(saveat, t0f, t1f)
    if isinstance(method, CLE):
        if model.discrete_processes or model.event_processes:
            raise SimulationError(
                "CLE (the chemical Langevin equation) does not yet support models with "
                "discrete or event processes; use SSA or TauLeaping.")
        n = math.ceil((t1f - t0f) / method.dt - 1e-9) + 1
        traj = _solve_cle(model, y0, jnp.asarray(t0f), jnp.asarray(t1f), ts, key,
                          method, args, dtype, adjoint or diffrax.RecursiveCheckpointAdjoint(),
                          max(n, int(max_steps or 0)))
    elif model.discrete_processes or others:
        if model.event_processes:
            raise SimulationError(
                "A stochastic model with events and deterministic or discrete processes "
                "is not supported; events run with the jump processes alone.")
        if method.interval is None and not model.discrete_processes:
            raise SimulationError(
                f"The model has deterministic processes ({', '.join(others)}) beside its "
                f"jump processes: pass {type(method).__name__}(interval=h), the step at "
                f"which the two parts are interleaved (the jump processes are advanced "
                f"exactly over each interval with the other variables held).")
        schedule = make_schedule(model, t0f, t1f, saveat, method.interval)
        from ._simulate import _DEFAULT_SOLVER, default_controller

        traj = solve_hybrid(model, y0, jnp.asarray(t0f), schedule,
                            solver or _DEFAULT_SOLVER, controller or default_controller(),
                            adjoint or diffrax.RecursiveCheckpointAdjoint(),
                            max_steps, args, key, dtype, dt0, progress_meter,
                            jumps=method)
    else:
        traj = solve_jumps(model, y0, jnp.asarray(t0f), ts, key, method, args, dtype)
    if throw:
        traj = raise_on_failure(traj, solver=None, max_steps=max_steps, max_segments=None)
    return traj


def _save_times(saveat, t0: float, t1: float):
    if saveat is None:
        return np.linspace(t0, t1, _DEFAULT_POINTS)
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        parts = []
        if subs.t0:  # pyright: ignore
            parts.append([t0])
        if subs.ts is not None:  # pyright: ignore
            parts.append(subs.ts)  # pyright: ignore
        if subs.t1:  # pyright: ignore
            parts.append([t1])
        if not parts or subs.steps:  # pyright: ignore
            raise SimulationError("Stochastic simulations save at given times: pass an "
                                  "array of times (or a SaveAt with t0, ts, t1).")
        return jnp.concatenate([jnp.atleast_1d(jnp.asarray(p, float)) for p in parts])
    ts = saveat if isinstance(saveat, jax.Array) else np.asarray(saveat, dtype=float)
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise SimulationError(f"saveat must be a 1-D array of times; got shape {ts.shape}.")
    if is_concrete(ts):
        a = np.asarray(ts)
        if np.any(np.diff(a) < 0):
            raise SimulationError("saveat times must be increasing.")
        if a.min() < t0 - 1e-12 * max(1.0, abs(t0)) or a.max() > t1 + 1e-12 * max(1.0, abs(t1)):
            raise SimulationError(f"saveat times must lie in [t0, t1] = [{t0}, {t1}]; got "
                                  f"range [{a.min()}, {a.max()}].")
    return ts


def _stoichiometry(js: JumpSystem, n_flat: int, dtype):
    s = jnp.zeros((n_flat, js.n_channels), dtype)
    cols = np.repeat(np.arange(js.n_channels)[:, None], js.index.shape[1], axis=1)
    return s.at[js.index.reshape(-1), cols.reshape(-1)].add(
        jnp.asarray(js.delta.reshape(-1), dtype))


@eqx.filter_jit
def _solve_cle(model: Composite, y0, t0, t1, ts, key, method: CLE, args, dtype, adjoint,
               max_steps):
    model = cast_floats(model.prepared(t0), dtype)
    y = cast_floats(initial_state(model, y0), dtype)
    x0, unravel = ravel_pytree(y)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    ts = jnp.asarray(ts, dtype)

    def parts(t, x, model):
        js = JumpSystem(model, args, unravel, dtype)
        a = js.propensities(t, x)
        return js, jnp.where(a > 0, a, 0.0)

    def drift(t, x, model):
        js, a = parts(t, x, model)
        s = _stoichiometry(js, x.shape[0], x.dtype)
        det = ravel_pytree(model.vector_field(t, unravel(x), args))[0].astype(x.dtype)
        return det + s @ a

    def diffusion(t, x, model):
        js, a = parts(t, x, model)
        s = _stoichiometry(js, x.shape[0], x.dtype)
        return s * jnp.sqrt(a)[None, :]

    n_ch = JumpSystem(model, args, unravel, dtype).n_channels
    tol = method.tol if method.tol is not None else method.dt / 2
    bm = diffrax.VirtualBrownianTree(t0, t1, tol=tol,
                                     shape=jax.ShapeDtypeStruct((n_ch,), dtype), key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
    sol = diffrax.diffeqsolve(terms, method.solver, t0, t1, jnp.asarray(method.dt, dtype),
                              x0, args=model, saveat=diffrax.SaveAt(ts=ts),
                              stepsize_controller=diffrax.ConstantStepSize(),
                              adjoint=adjoint, max_steps=max_steps, throw=False)
    ys = jax.vmap(unravel)(sol.ys)
    if model.spec.derived:
        full = jax.vmap(lambda t, y: model.derived_at(t, y, args))(ts, ys)
    else:
        full = ys
    return Trajectory(ts=ts, values=full, stats=dict(sol.stats),
                      result=RESULTS.promote(sol.result), spec=model.spec)
