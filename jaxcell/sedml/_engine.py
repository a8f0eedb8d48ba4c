"""The compiled solves behind SED-ML tasks.

One function per kind of run, each compiled once per model structure, output grid
length and tolerances (``equinox.filter_jit``): a time course (optionally from a given
state: SED-ML's ``resetModel="false"``), a batch of time courses as one ``vmap`` over
parameter values (a parameter scan), and a steady state
(:func:`jaxcell.analysis.steady_state`). Parameter values are leaves, so iterations of
a repeated task never recompile.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._composite import as_composite
from .._engine import TERM, initial_state
from .._results import RESULTS
from .._segments import default_max_segments, solve_events, unravel_states
from .._simulate import DEFAULT_ATOL, DEFAULT_RTOL, default_controller, default_solver
from ..sbml import SBMLModel


def _time_course(model: SBMLModel, ts, x0, rtol: float, atol: float, max_steps: int):
    """Traceable: the values of ``model.output_ids`` at ``ts`` ``(len(ts), n)``, the
    stored state at ``ts[-1]`` and the result code. The initial values hold at
    ``ts[0]``; ``x0`` (or ``None``) replaces the initial stored state."""
    comp = as_composite(model).prepared(ts[0])
    m = comp.leaves[0]
    path = (m.scale, m.name, "state")
    y0 = initial_state(comp, None if x0 is None else {path: x0})
    solver = default_solver(comp.spec.size)
    controller = default_controller(rtol, atol)
    c = m.consts
    if comp.event_processes:
        budget = default_max_segments(ts.shape[0], len(model.structure.ir.events))
        out = solve_events(comp, y0, ts, solver=solver, controller=controller,
                           adjoint=diffrax.RecursiveCheckpointAdjoint(),
                           max_steps=max_steps, max_segments=budget, args=None, dt0=None,
                           progress_meter=diffrax.NoProgressMeter())
        xs = unravel_states(y0, out.xs)[path[0]][path[1]][path[2]]

        def observe(t, x, z):  # models with delay() are refused before this
            return m.observe(t, x, c, None, m.frozen(z))

        values = jax.vmap(observe)(ts, xs, out.zs)
        return values, xs[-1], out.result
    sol = diffrax.diffeqsolve(
        TERM, solver, ts[0], ts[-1], None, y0, args=(comp, None),
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
        max_steps=max_steps, throw=False)
    xs = sol.ys[path[0]][path[1]][path[2]]  # pyright: ignore
    values = jax.vmap(lambda t, x: m.observe(t, x, c))(ts, xs)
    return values, xs[-1], RESULTS.promote(sol.result)


@eqx.filter_jit
def _compiled_time_course(model, ts, x0, rtol, atol, max_steps):
    return _time_course(model, ts, x0, rtol, atol, max_steps)


@eqx.filter_jit
def _compiled_scan(model, keys, values, ts, rtol, atol, max_steps):
    def one(row):
        params = dict(model.params)
        for i, k in enumerate(keys):
            params[k] = row[i].astype(params[k].dtype)
        m = eqx.tree_at(lambda s: s.params, model, params)
        out, _, result = _time_course(m, ts, None, rtol, atol, max_steps)
        return out, result

    return jax.vmap(one)(values)


def tolerances(rtol, atol, max_steps) -> tuple[float, float, int]:
    """The algorithm's tolerances and step limit, with jaxcell's defaults."""
    return (DEFAULT_RTOL if rtol is None else float(rtol),
            DEFAULT_ATOL if atol is None else float(atol),
            100_000 if max_steps is None else int(max_steps))


def time_course(model: SBMLModel, ts: np.ndarray, x0, rtol, atol, max_steps):
    """``(values (len(ts), n), last stored state, success)`` on the host."""
    values, x_last, result = _compiled_time_course(
        model, jnp.asarray(ts), x0, *tolerances(rtol, atol, max_steps))
    return np.asarray(values), x_last, bool(result == RESULTS.successful)


def scan(model: SBMLModel, keys: tuple[str, ...], values: np.ndarray, ts: np.ndarray,
         rtol, atol, max_steps):
    """A parameter scan as one vmapped solve: ``(values (batch, len(ts), n),
    successes (batch,))``; row ``b`` uses ``values[b]`` for the parameters ``keys``."""
    out, result = _compiled_scan(model, tuple(keys), jnp.asarray(values, dtype=float),
                                 jnp.asarray(ts), *tolerances(rtol, atol, max_steps))
    ok = np.asarray(result._value) == RESULTS.successful._value  # noqa: SLF001
    return np.asarray(out), ok


def steady(model: SBMLModel, rtol, atol, max_steps):
    """The outputs ``(n,)`` at a steady state of the model (Newton, then integration),
    and whether it converged."""
    from ..analysis import steady_state

    kwargs = {}
    if rtol is not None:
        kwargs["rtol"] = float(rtol)
    if atol is not None:
        kwargs["atol"] = float(atol)
    if max_steps is not None:
        kwargs["max_steps"] = int(max_steps)
    ss = steady_state(model, throw=False, **kwargs)
    m = model.prepared(0.0)
    values = m.observe(jnp.asarray(0.0), ss.y, m.consts)
    return np.asarray(values), ss.y, bool(ss.converged)
