"""Simulating an imported SBML model: ``simulate_sbml`` and ``solve_sbml``.

Both run on the core engine: a model without events, discontinuities or delays is one
``diffrax.diffeqsolve`` of the model's vector field (the same term ``jaxcell.simulate``
uses); any other model runs the core event loop (``jaxcell/_segments.py``), to which the
model contributes its events and switches as an event process. What is SBML-specific
here is the output: every symbol's value as SBML defines it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._composite import as_composite
from .._engine import TERM, initial_state
from .._failure import advice
from .._results import RESULTS
from .._segments import default_max_segments, make_context, solve_events, unravel_states
from .._simulate import DEFAULT_ATOL, DEFAULT_RTOL, default_controller, default_solver
from ._ast import names_in
from ._errors import SBMLError, SBMLUnsupportedError
from ._model import SBMLModel


class _ContextPast:
    """The past of the model's state from the loop's history (for outputs with delay)."""

    def __init__(self, ctx, path):
        self.ctx, self.path, self.t0 = ctx, path, ctx.start

    def __call__(self, tq):
        return self.ctx.past(self.path, tq)


def run_sbml(model: SBMLModel, ts, *, x0=None, solver=None, controller=None, adjoint=None,
             max_steps: int = 100_000, max_segments: int | None = None, dt0=None,
             progress_meter=None):
    """The values of ``model.output_ids`` at ``ts`` (traceable; not compiled here):
    ``(values (len(ts), len(ids)), result, steps)``. ``x0`` replaces the initial state."""
    comp = as_composite(model).prepared(ts[0])
    m = comp.leaves[0]
    path = (m.scale, m.name, "state")
    y0 = initial_state(comp, None)
    if x0 is not None:
        y0 = initial_state(comp, {path: x0})
    solver = default_solver(comp.spec.size) if solver is None else solver
    controller = default_controller() if controller is None else controller
    adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    c = m.consts
    if comp.event_processes:
        n_events = len(model.structure.ir.events)
        budget = default_max_segments(ts.shape[0], n_events) if max_segments is None \
            else max_segments
        out = solve_events(comp, y0, ts, solver=solver, controller=controller,
                           adjoint=adjoint, max_steps=max_steps, max_segments=budget,
                           args=None, dt0=dt0, progress_meter=progress_meter)
        ys = unravel_states(y0, out.xs)

        def observe(t, y, z):
            ctx = make_context(comp, z, out.hist)
            hist = _ContextPast(ctx, path) if ctx.has_history else None
            frozen = m.frozen(z)
            return m.observe(t, y[path[0]][path[1]][path[2]], c, hist, frozen)

        values = jax.vmap(observe)(ts, ys, out.zs)
        return values, out.result, out.steps
    sol = diffrax.diffeqsolve(
        TERM, solver, ts[0], ts[-1], dt0, y0, args=(comp, None),
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller, max_steps=max_steps,
        throw=False, adjoint=adjoint,
        progress_meter=diffrax.NoProgressMeter() if progress_meter is None else progress_meter)
    values = jax.vmap(lambda t, y: m.observe(t, y[path[0]][path[1]][path[2]], c))(
        ts, sol.ys)
    return values, RESULTS.promote(sol.result), sol.stats["num_accepted_steps"]


@eqx.filter_jit
def _solve(model, ts, solver, controller, adjoint, max_steps, max_segments, dt0,
           progress_meter):
    return run_sbml(model, ts, solver=solver, controller=controller, adjoint=adjoint,
                    max_steps=max_steps, max_segments=max_segments, dt0=dt0,
                    progress_meter=progress_meter)


def _times(ts) -> Array:
    arr = np.asarray(ts, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise SBMLError(f"ts must be a 1-D array of at least two output times; got shape "
                        f"{arr.shape}.")
    if np.any(np.diff(arr) < 0) or not np.all(np.isfinite(arr)):
        raise SBMLError("ts must be finite and non-decreasing.")
    return jnp.asarray(arr)


def _controller(stepsize_controller, rtol, atol):
    if stepsize_controller is not None:
        if rtol is not None or atol is not None:
            raise SBMLError("give either rtol/atol or stepsize_controller, not both.")
        return stepsize_controller
    return default_controller(DEFAULT_RTOL if rtol is None else float(rtol),
                              DEFAULT_ATOL if atol is None else float(atol))


def solve_sbml(model: SBMLModel, ts: ArrayLike, rtol: float | None = None,
               atol: float | None = None, max_steps: int = 100_000,
               max_segments: int | None = None,
               adjoint: diffrax.AbstractAdjoint | None = None, *,
               solver: diffrax.AbstractSolver | None = None,
               stepsize_controller: diffrax.AbstractStepSizeController | None = None,
               dt0=None, progress_meter: diffrax.AbstractProgressMeter | None = None):
    """The values of ``model.output_ids`` at ``ts``: an array ``(len(ts), len(ids))``.

    A pure JAX function of the model's parameters, differentiable through the model
    pytree: reverse mode (``jax.grad``; the default) or, with
    ``adjoint=diffrax.ForwardMode()``, forward mode (``jax.jvp`` / ``jax.jacfwd``; faster
    for a few parameters). Defaults are :func:`jaxcell.simulate`'s (``Rodas5``,
    ``PIDController(rtol=1e-6, atol=1e-8)``); any diffrax solver, controller, adjoint or
    progress meter passes through. Returns ``(values, result, steps)`` with ``result``
    a :class:`jaxcell.RESULTS` (``RESULTS.successful`` on success).
    """
    if not isinstance(model, SBMLModel):
        raise SBMLError(f"solve_sbml needs an SBMLModel (from load_sbml); got "
                        f"{type(model).__name__}.")
    controller = _controller(stepsize_controller, rtol, atol)
    return _solve(model, jnp.asarray(ts), solver, controller, adjoint, int(max_steps),
                  None if max_segments is None else int(max_segments), dt0, progress_meter)


@dataclasses.dataclass(frozen=True)
class SBMLSolution:
    """Values of every SBML symbol at the output times.

    ``value(id)`` is the value as SBML defines it (species: concentration unless
    ``hasOnlySubstanceUnits``); ``amount(id)`` and ``concentration(id)`` convert species.
    """

    ts: np.ndarray
    ids: tuple[str, ...]
    values: np.ndarray  # (len(ts), len(ids))
    result: RESULTS
    num_steps: int
    model: SBMLModel = dataclasses.field(repr=False)
    detail: str = ""
    """What the failure concerns (the species that went negative, and when)."""

    def _col(self, name: str) -> np.ndarray:
        """The column of ``name`` (``KeyError`` naming it if unknown)."""
        try:
            return self.values[:, self.ids.index(name)]
        except ValueError:
            raise KeyError(f"{name!r} is not a species, compartment, parameter or species "
                           f"reference of SBML model {self.model.name!r}.") from None

    def value(self, name: str) -> np.ndarray:
        """The SBML value of a symbol over ``ts`` (species: concentration unless
        ``hasOnlySubstanceUnits``)."""
        return self._col(name)

    def __getitem__(self, name: str) -> np.ndarray:
        """Same as :meth:`value`."""
        return self._col(name)

    def _species(self, name):
        sym = self.model.structure.symbols.get(name)
        if sym is None or sym.kind != "species":
            return None, None
        comp = self.model.structure.symbols[sym.compartment]
        vol = self._col(sym.compartment) if self.model.structure.has_size(comp.id) \
            else np.ones_like(self.ts)
        return sym, vol

    def amount(self, name: str) -> np.ndarray:
        """A species' amount over ``ts`` (other symbols: their value)."""
        sym, vol = self._species(name)
        v = self._col(name)
        if sym is None or sym.only_substance:
            return v
        return v * vol

    def concentration(self, name: str) -> np.ndarray:
        """A species' concentration over ``ts`` (other symbols: their value)."""
        sym, vol = self._species(name)
        v = self._col(name)
        if sym is None or not sym.only_substance:
            return v
        return v / vol

    @property
    def status(self) -> int:
        """The integer code of :attr:`result` (0 on success)."""
        return int(self.result._value)  # noqa: SLF001

    @property
    def success(self) -> bool:
        """Whether the simulation finished without a solver or event problem."""
        return bool(self.result == RESULTS.successful)

    def messages(self) -> list[str]:
        """Why the simulation failed (empty on success)."""
        if self.success:
            return []
        msg = RESULTS._index_to_message[int(self.result._value)]  # noqa: SLF001
        return [f"{msg} {self.detail}".strip()]

    def to_columns(self) -> dict[str, np.ndarray]:
        """``{"time": ts, id: values, ...}`` for every symbol."""
        out = {"time": self.ts}
        for i, k in enumerate(self.ids):
            out[k] = self.values[:, i]
        return out


def simulate_sbml(model: SBMLModel, ts: ArrayLike, *, t0: float | None = 0.0,
                  rtol: float | None = None, atol: float | None = None,
                  max_steps: int = 100_000, max_segments: int | None = None,
                  parameters: Mapping[str, ArrayLike] | None = None, throw: bool = True,
                  solver: diffrax.AbstractSolver | None = None,
                  stepsize_controller: diffrax.AbstractStepSizeController | None = None,
                  adjoint: diffrax.AbstractAdjoint | None = None, dt0=None,
                  progress_meter: diffrax.AbstractProgressMeter | None = None,
                  allow_negative: bool = False) -> SBMLSolution:
    """Simulate an imported SBML model and report every symbol at the times ``ts``.

    :func:`jaxcell.simulate` plus SBML's output conventions: the same engine, the same
    defaults (``Rodas5``, ``PIDController(rtol=1e-6, atol=1e-8)``, ``max_steps``,
    ``throw=True``: a failure raises :class:`jaxcell.SimulationError` saying what to
    do; with ``throw=False`` it is in ``SBMLSolution.result``), and any diffrax solver,
    controller (or ``rtol``/``atol`` for the default one), adjoint or progress meter.

    The model's initial values hold at ``t0`` (SBML's time 0 by default; ``t0=None``
    starts at ``ts[0]``); ``ts`` must not start before ``t0``. Events, delays, rules and
    all SBML semantics that :func:`load_sbml` accepts are handled; see
    :class:`SBMLSolution`.

    SBML allows negative values (zero-order consumption, negative stoichiometry), but a
    species that only reactions change, starts non-negative and goes negative beyond the
    tolerances (``100·(atol + rtol·max|x|)``) while a rate law of its reactions holds a
    negative parameter means a wrong parameter (a negative rate constant): it is
    reported, naming the species and the parameter, as ``RESULTS.negative_amount``
    (raised with ``throw=True``) unless ``allow_negative=True``."""
    if parameters:
        model = model.replace_parameters(parameters)
    t = _times(ts)
    start = float(t[0]) if t0 is None else float(t0)
    if float(t[0]) < start:
        raise SBMLError(f"ts starts at {float(t[0])}, before t0 = {start}.")
    extra = float(t[0]) > start
    full = jnp.concatenate([jnp.asarray([start]), t]) if extra else t
    values, result, steps = solve_sbml(
        model, full, rtol, atol, max_steps, max_segments, adjoint, solver=solver,
        stepsize_controller=stepsize_controller, dt0=dt0, progress_meter=progress_meter)
    if result == RESULTS.event_tie:
        raise SBMLUnsupportedError(
            "random execution order of simultaneous events with equal priorities", None,
            "SBML asks for a random order; jaxcell executes events deterministically")
    values = np.asarray(values)[1:] if extra else np.asarray(values)
    sol = SBMLSolution(ts=np.asarray(t), ids=model.output_ids, values=values,
                       result=result, num_steps=int(steps), model=model)
    if sol.success and not allow_negative:
        sol = _check_negative(sol, stepsize_controller, rtol, atol)
    if throw and not sol.success:
        from .._errors import SimulationError

        solver_used = default_solver(len(model.state_ids)) if solver is None else solver
        budget = max_segments if max_segments is not None else default_max_segments(
            len(full), len(model.structure.ir.events))
        what = sol.detail if sol.result == RESULTS.negative_amount else advice(
            result, solver_used, max_steps, budget)
        raise SimulationError(f"simulate_sbml failed for SBML model {model.name!r}: "
                              f"{what}")
    return sol


def _negative_constants(model: SBMLModel, sid: str) -> list[tuple[str, str, float]]:
    """``(parameter, reaction, value)`` for each negative parameter in a kinetic law of
    a reaction that changes species ``sid`` (global parameters and ``rid.lid`` locals)."""
    st = model.structure
    params = model.parameters()
    out = []
    for r in st.ir.reactions:
        if r.law is None or not any(ref.species == sid for ref in r.refs):
            continue
        for name in sorted(names_in(r.law)):
            if name in r.locals:
                key = f"{r.id}.{name}"
            else:
                sym = st.symbols.get(name)
                if sym is None or sym.kind != "parameter":
                    continue
                key = name
            v = params.get(key)
            if v is None:
                continue
            a = np.asarray(v, dtype=float)
            if a.size and np.nanmin(a) < 0:
                out.append((key, r.id, float(np.nanmin(a))))
    return out


def _check_negative(sol: SBMLSolution, controller, rtol, atol) -> SBMLSolution:
    """``sol`` marked failed if a species that only reactions change went negative while
    a kinetic law of its reactions holds a negative parameter (a negative rate constant).

    Negative amounts alone are legal SBML (zero-order consumption, negative
    stoichiometry, laws that change sign); the check fires only when a negative
    parameter explains them, and names it."""
    st = sol.model.structure
    if isinstance(controller, diffrax.PIDController):
        rtol, atol = float(controller.rtol), float(controller.atol)  # pyright: ignore
    rtol = DEFAULT_RTOL if rtol is None else float(rtol)
    atol = DEFAULT_ATOL if atol is None else float(atol)
    assigned = {var for ev in st.ir.events for var, _ in ev.assignments}
    worst = None
    for sid in st.reacting_state:
        if st.symbols[sid].kind != "species" or sid in assigned:
            continue
        a = np.asarray(sol.amount(sid), dtype=float)
        if a.size == 0 or not np.all(np.isfinite(a)) or np.min(a[0]) < 0:
            continue
        tol = 100.0 * (atol + rtol * float(np.max(np.abs(a))))
        bad = np.nonzero(np.any(a.reshape(a.shape[0], -1) < -tol, axis=1))[0]
        if not bad.size or (worst is not None and sol.ts[bad[0]] >= worst[1]):
            continue
        culprits = _negative_constants(sol.model, sid)
        if culprits:
            v = float(np.min(a[bad[0]]))
            worst = (sid, float(sol.ts[bad[0]]), v, culprits)
    if worst is None:
        return sol
    sid, t, v, culprits = worst
    named = ", ".join(f"{k!r} = {val:.3g} in reaction {rid!r}" for k, rid, val in culprits[:5])
    detail = (f"species {sid!r} went negative (amount {v:.3g} at t = {t:g}), though only "
              f"reactions change it, and its reactions' rate laws hold negative "
              f"parameters: {named}. Check these values (pass allow_negative=True if "
              f"negative amounts are meant).")
    return dataclasses.replace(sol, result=RESULTS.negative_amount, detail=detail)
