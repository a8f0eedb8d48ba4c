"""simulate(): a thin layer over :func:`diffrax.diffeqsolve` returning a Trajectory."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ._composite import as_composite
from ._custom_types import RealScalarLike, State
from ._engine import TERM, as_key, cast_floats, initial_state
from ._errors import SimulationError
from ._failure import raise_on_failure
from ._hybrid import make_schedule, solve_hybrid
from ._process import AbstractProcess, is_concrete
from ._results import RESULTS
from ._segments import default_max_segments, make_context, solve_events, unravel_states
from ._stochastic import AbstractStochasticMethod
from ._trajectory import Trajectory
from .solvers import Rodas5

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8
DEFAULT_POINTS = 101


logger = logging.getLogger("jaxcell")

DENSE_LIMIT = 500
"""Above this many state variables :func:`default_solver` picks an explicit method."""


def default_solver(n_states: int | None = None) -> diffrax.AbstractSolver:
    """The solver :func:`simulate` uses when none is given: :class:`jaxcell.solvers.Rodas5`
    for models with up to ``DENSE_LIMIT`` (500) state variables, ``diffrax.Tsit5()``
    above.

    Rodas5 is an L-stable, stiffly accurate Rosenbrock method of order 5(4): one
    Jacobian and one LU factorisation per step, no Newton iterations. Most biochemical
    models are stiff, so the default must be stiff-capable; among the stiff solvers we
    measured it was the fastest on small and medium models (6.8x faster per
    simulation than diffrax's Kvaerno5 with a chord root finder on the repressilator,
    5.1x on the Kholodenko MAPK cascade; 2-core CPU) and it compiles faster. A BDF
    method with Jacobian reuse (CVODE's strategy) was considered and not written: see
    ``docs/concepts/simulate-and-solvers.md``.

    Its Jacobian is dense: ``n`` forward-mode passes and an ``n³`` factorisation per
    step, which past a few hundred variables (tissues of many cells) costs more than an
    explicit method's extra steps on the mildly stiff models of that size (per-cell
    gene circuits coupled by diffusion). So large models default to Tsit5, an explicit
    Runge-Kutta method of order 5(4). A large *stiff* model then takes many small
    steps (or stops at ``max_steps``): pass ``solver=`` explicitly.
    """
    if n_states is not None and n_states > DENSE_LIMIT:
        return diffrax.Tsit5()
    return Rodas5()


@functools.lru_cache(maxsize=32)
def default_controller(
    rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL
) -> diffrax.AbstractStepSizeController:
    """The step-size controller used when none is given (rtol 1e-6, atol 1e-8)."""
    return diffrax.PIDController(rtol=rtol, atol=atol)


def _large_model_solver(composite, y0, t0, t1, args, dtype, max_steps):
    """The default above ``DENSE_LIMIT`` states: Tsit5, unless the stiffness check says
    the model is stiff (then Rodas5 up to ``DENSE_MAX`` states, else an error). Inside
    ``jit``/``vmap`` (traced inputs) the check cannot run and Tsit5 is used."""
    from ._stiffness import DENSE_MAX, STIFF_STEPS, explicit_steps

    leaves = jax.tree_util.tree_leaves((eqx.filter(composite, eqx.is_array), y0, t0, t1,
                                        args))
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return _EXPLICIT_SOLVER
    steps = explicit_steps(composite, y0, t0, t1, args, dtype)
    n = composite.spec.size
    if steps <= STIFF_STEPS:
        return _EXPLICIT_SOLVER
    if n <= DENSE_MAX:
        logger.info("simulate: %d state variables, and stiff (an explicit method would need "
                    "at least %.3g steps for stability): using Rodas5.", n, steps)
        return _DEFAULT_SOLVER
    raise SimulationError(
        f"The model has {n} state variables and is stiff: the Jacobian at t0 has an "
        f"eigenvalue of magnitude about {steps * 3.3 / abs(float(t1) - float(t0)):.3g}, so "
        f"an explicit method would need at least {steps:.3g} steps (max_steps="
        f"{max_steps}), and the dense default Rodas5 is too large above {DENSE_MAX} "
        f"states. Pass solver= explicitly: jaxcell.solvers.Rodas5() (dense Jacobian, "
        f"O(n^3) per step), or diffrax.Tsit5() with a larger max_steps if the fast modes "
        f"are short-lived.")


# Made once: building diffrax modules costs tens of microseconds per call.
_DEFAULT_SOLVER = default_solver()
_EXPLICIT_SOLVER = diffrax.Tsit5()
_DEFAULT_ADJOINT = diffrax.RecursiveCheckpointAdjoint()
_NO_PROGRESS = diffrax.NoProgressMeter()


class _UserArgs(eqx.Module):
    """Calls an event condition with the user's ``args`` (jaxcell passes the model too)."""

    fn: Any

    def __call__(self, t, y, args, **kwargs):
        return self.fn(t, y, args[1], **kwargs)


def _wrap_event(event: diffrax.Event | None) -> diffrax.Event | None:
    if event is None:
        return None
    if not isinstance(event, diffrax.Event):
        raise SimulationError(f"event must be a diffrax.Event; got {type(event).__name__}.")
    cond = jax.tree_util.tree_map(_UserArgs, event.cond_fn, is_leaf=callable)
    return diffrax.Event(cond, event.root_finder)


@eqx.filter_jit
def _solve(model, y0, t0, t1, dt0, saveat, solver, controller, adjoint, max_steps,
           args, event, progress_meter, dtype):
    # Casting, the initial state and the SaveAt are built here, inside the compiled
    # function, where they cost nothing per call (outside they are ~0.5 ms of small
    # array dispatches, as much as a whole simulation of a small model).
    model = cast_floats(model.prepared(t0), dtype)
    y0 = cast_floats(initial_state(model, y0), dtype)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    dt0 = None if dt0 is None else jnp.asarray(dt0, dtype)
    if not isinstance(saveat, diffrax.SaveAt):
        saveat = diffrax.SaveAt(ts=saveat)
    saveat = cast_floats(saveat, dtype)
    sol = diffrax.diffeqsolve(
        TERM,
        solver,
        t0,
        t1,
        dt0,
        y0,
        args=(model, args),
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=adjoint,
        event=event,
        max_steps=max_steps,
        throw=False,
        progress_meter=progress_meter,
    )
    ts, ys = sol.ts, sol.ys
    if model.spec.derived:
        full = jax.vmap(lambda t, y: model.derived_at(t, y, args))(ts, ys)
    else:
        full = ys
    return Trajectory(ts=ts, values=full, stats=dict(sol.stats),
                      result=RESULTS.promote(sol.result), spec=model.spec)


def _as_array(x: Any) -> Any:
    """A JAX array (or tracer) as it is; anything else as a NumPy array (cheap to make,
    and traced, not static, when passed to the compiled solve)."""
    return x if isinstance(x, jax.Array) else np.asarray(x)


def _as_saveat(saveat, t0, t1) -> diffrax.SaveAt | Any:
    """A user's SaveAt (checked), or the save times as an array."""
    if saveat is None:
        if is_concrete(t0) and is_concrete(t1):
            return np.linspace(float(t0), float(t1), DEFAULT_POINTS)
        return jnp.linspace(t0, t1, DEFAULT_POINTS)
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        if not isinstance(subs, diffrax.SubSaveAt):
            raise SimulationError(
                "simulate() takes a SaveAt with a single set of save points (t0, t1, ts or "
                "steps); for several, call diffrax.diffeqsolve on model.vector_field."
            )
        if subs.fn is not diffrax.SubSaveAt(t1=True).fn:
            raise SimulationError(
                "simulate() saves the whole state so that it can be addressed by name; a "
                "SaveAt with a custom 'fn' is not supported. Select variables from the "
                "Trajectory instead."
            )
        ts = subs.ts
    else:
        ts = _as_array(saveat)
        if ts.ndim != 1 or ts.shape[0] == 0:
            raise SimulationError(
                f"saveat must be a diffrax.SaveAt or a 1-D array of times; got shape "
                f"{ts.shape}."
            )
        saveat = ts
    if ts is not None and is_concrete(ts) and is_concrete(t0) and is_concrete(t1):
        a = np.asarray(ts)
        lo, hi = sorted((float(t0), float(t1)))
        if np.any(np.diff(a) * np.sign(float(t1) - float(t0)) < 0):
            raise SimulationError("saveat times must be ordered from t0 towards t1.")
        if a.min() < lo - 1e-12 * max(1.0, abs(lo)) or a.max() > hi + 1e-12 * max(1.0, abs(hi)):
            raise SimulationError(
                f"saveat times must lie in [t0, t1] = [{t0}, {t1}]; got range "
                f"[{a.min()}, {a.max()}]."
            )
    return saveat


def simulate(
    model: AbstractProcess | Sequence[AbstractProcess],
    t0: RealScalarLike,
    t1: RealScalarLike,
    *,
    saveat: diffrax.SaveAt | ArrayLike | Sequence[float] | None = None,
    solver: diffrax.AbstractSolver | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    max_steps: int | None = 100_000,
    throw: bool = True,
    dt0: RealScalarLike | None = None,
    y0: Mapping[Any, ArrayLike] | State | None = None,
    args: Any = None,
    event: diffrax.Event | None = None,
    progress_meter: diffrax.AbstractProgressMeter | None = None,
    dtype: Any = None,
    key: Any = None,
    max_segments: int | None = None,
    stochastic: AbstractStochasticMethod | None = None,
) -> Trajectory:
    """Integrate a model from ``t0`` to ``t1`` and return its :class:`Trajectory`.

    A thin layer over :func:`diffrax.diffeqsolve`: the model becomes one
    :class:`diffrax.ODETerm` and every diffrax object you pass goes straight through.
    The compiled program is cached on the model's *structure*: new parameter values,
    initial values, time spans or save times of the same length reuse it.

    **Defaults, and why.** ``solver=jaxcell.solvers.Rodas5()`` (see
    :func:`default_solver`) with
    ``diffrax.PIDController(rtol=1e-6, atol=1e-8)``: most biochemical models are stiff
    (fast binding next to slow expression), and an explicit solver then needs
    impractically many steps or fails. Rodas5 is an L-stable, 5th-order Rosenbrock
    method with an embedded error estimate (one Jacobian and one LU per step), so it is
    also efficient on non-stiff models of modest size at these tolerances. For clearly
    non-stiff models ``diffrax.Tsit5()`` is cheaper still; for very large models pass
    ``diffrax.Kvaerno5`` (see :func:`default_solver`).
    The adjoint defaults to :class:`diffrax.RecursiveCheckpointAdjoint` (exact
    reverse-mode gradients of the discretised solve); pass
    :class:`diffrax.ForwardMode` for forward-mode (``jax.jvp``/``jax.jacfwd``).
    Computation is in float64 unless ``dtype=jnp.float32`` is given.

    Arguments:
        model: a process or :class:`Composite` (or a list of processes).
        t0: start time.
        t1: end time.
        saveat: a :class:`diffrax.SaveAt` with one set of save points, or an array of
            times. Default: 101 equally spaced times in ``[t0, t1]``.
        solver: a diffrax solver, passed through unchanged (default:
            :func:`default_solver`).
        stepsize_controller: a diffrax step-size controller, passed through unchanged
            (default: :func:`default_controller`).
        adjoint: a diffrax adjoint, passed through unchanged (default:
            :class:`diffrax.RecursiveCheckpointAdjoint`).
        event: a :class:`diffrax.Event`; its condition functions receive the state and
            your ``args`` (``cond_fn(t, y, args, **kwargs)``). A terminating event
            counts as success (``Trajectory.event_occurred`` tells it apart).
        progress_meter: a diffrax progress meter, passed through unchanged.
        max_steps: maximum number of solver steps.
        throw: raise on solver failure (the default); with ``False`` the failure is
            recorded in ``Trajectory.result`` (one code per member under ``vmap``).
        dt0: initial step size (``None`` lets the controller choose).
        y0: initial values: a nested state, or overrides of some of the model's own
            initial values by ``"scale/entity/variable"``, by
            ``"scale/entity/variable/label"`` or by a unique label (e.g. a species
            name): ``{"p_lacI": 5.0}``.
        args: passed to every process as ``args``.
        dtype: floating dtype of the computation (default ``float64``).
        key: a :func:`jax.random.key` for the random choices of discrete processes
            (stochastic division, death); default ``jax.random.key(0)``, so runs are
            reproducible. Ignored by models without discrete processes.
        max_segments: the event loop's budget of segments (event firings,
            switches, save points) for models with event processes; default
            ``16384 + 64·(save points) + 256·(events)``. Running out is reported as
            ``RESULTS.max_segments_reached``, naming this argument.
        stochastic: run the model's jump processes (reaction networks, SBML models,
            per cell too) stochastically: :class:`SSA` (exact sample paths),
            :class:`TauLeaping` or :class:`CLE` (the chemical Langevin equation). One
            call is one sample path for ``key``; ``jax.vmap`` over keys (or
            :func:`ensemble` with ``trajectories=``) gives many. Species are molecule
            counts. See the concept page on stochastic simulation.

    **Models with events** (:class:`Event` processes, SBML models with events,
    ``piecewise`` or ``delay``: see :class:`AbstractEventProcess`) run through the event
    loop: a sequence of ``diffeqsolve`` calls with your solver, controller and adjoint,
    each ending where a trigger or switch changes (root finding) or at a scheduled
    time; events execute between them. The loop compiles once, has fixed shapes and is
    differentiable (event times included) in both modes. With a
    ``diffrax.PIDController`` without ``dtmax``, steps are limited to 1/100 of the
    span so that a trigger cannot turn on and off inside one step unseen.

    **Models with discrete processes** (division, death, cellular automata: see
    :class:`AbstractDiscreteProcess`) are integrated interval by interval, with the
    discrete updates applied at ``t0 + k·h`` (``h`` the shortest interval). Then
    ``t1 - t0`` must be a whole number of intervals, save times must be update times
    (default: up to 101 of them), and ``event`` is not supported.

    Returns:
        A :class:`Trajectory`.

    Raises:
        WiringError: the model reads or changes a path no process provides.
        SimulationError: bad ``y0``, ``saveat`` or time span; with ``throw=True``, a
            failed solve, with what to do (a stiff solver after a step limit with an
            explicit one; the first non-finite variable and time).

    Examples:
        >>> import jaxcell as jc
        >>> model = jc.models.repressilator()
        >>> traj = jc.simulate(model, 0.0, 100.0, saveat=[0.0, 50.0, 100.0])
        >>> traj["p_lacI"].shape
        (3,)
    """
    composite = as_composite(model)
    composite.check_closed()
    if stochastic is not None:
        return _simulate_stochastic(composite, t0, t1, saveat, stochastic, key, y0, args,
                                    dtype, throw, solver, stepsize_controller, adjoint,
                                    max_steps, dt0, progress_meter, event)
    if y0 is not None and not isinstance(y0, Mapping):
        raise SimulationError(
            f"y0 must be a state dict (nested, or {{'scale/entity/variable': value}}); "
            f"got {type(y0).__name__}."
        )
    dtype = jnp.result_type(float) if dtype is None else jnp.dtype(dtype)
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise SimulationError(
            "float64 needs jax_enable_x64; jaxcell turns it on at import, but it was "
            "turned off afterwards. Pass dtype=jnp.float32 or re-enable it."
        )
    if is_concrete(t0) and is_concrete(t1):
        if not (np.isfinite(float(t0)) and np.isfinite(float(t1))):
            raise SimulationError(f"t0 and t1 must be finite; got t0={t0}, t1={t1}.")
        if float(t0) == float(t1):
            raise SimulationError(f"t0 and t1 must differ; both are {t0}.")
    t0, t1 = _as_array(t0), _as_array(t1)
    if not composite.discrete_processes:
        saveat = _as_saveat(saveat, t0, t1)
    y0 = None if y0 is None else jax.tree_util.tree_map(_as_array, y0)
    dt0 = None if dt0 is None else _as_array(dt0)
    if solver is None:
        n_states = composite.spec.size
        solver = _DEFAULT_SOLVER if n_states <= DENSE_LIMIT else _large_model_solver(
            composite, y0, t0, t1, args, dtype, max_steps)
    if stepsize_controller is None:
        stepsize_controller = default_controller()
        if dt0 is None and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise SimulationError(
                f"{type(solver).__name__} has no error estimate: pass dt0 and "
                f"stepsize_controller=diffrax.ConstantStepSize()."
            )
    adjoint = _DEFAULT_ADJOINT if adjoint is None else adjoint
    progress_meter = _NO_PROGRESS if progress_meter is None else progress_meter
    if composite.discrete_processes:
        if composite.event_processes:
            raise SimulationError(
                "A model with both discrete processes (fixed-interval updates) and event "
                "processes is not supported yet; write the discrete rule as an "
                "jaxcell.Event with period= (a schedule), which the event loop runs."
            )
        traj = _simulate_hybrid(composite, y0, t0, t1, saveat, solver,
                                stepsize_controller, adjoint, max_steps, args, event, key,
                                dtype, dt0, progress_meter)
    elif composite.event_processes:
        traj = _simulate_events(composite, y0, t0, t1, saveat, solver, stepsize_controller,
                                adjoint, max_steps, max_segments, args, event, dt0,
                                progress_meter, dtype)
    else:
        traj = _solve(composite, y0, t0, t1, dt0, saveat, solver, stepsize_controller,
                      adjoint, max_steps, args, _wrap_event(event), progress_meter, dtype)
    if throw:
        traj = raise_on_failure(traj, solver=solver, max_steps=max_steps,
                                max_segments=max_segments)
    return traj


def _event_times(saveat, t0, t1):
    """The save times of a model with events, as one array from t0 to t1."""
    if isinstance(saveat, diffrax.SaveAt):
        subs = saveat.subs
        if subs.steps:  # pyright: ignore
            raise SimulationError(
                "Models with events save at given times: SaveAt(steps=True) is not "
                "supported; pass save times (saveat=array) instead."
            )
        parts = []
        if subs.t0:  # pyright: ignore
            parts.append(jnp.reshape(jnp.asarray(t0), (1,)))
        if subs.ts is not None:  # pyright: ignore
            parts.append(jnp.asarray(subs.ts))  # pyright: ignore
        if subs.t1:  # pyright: ignore
            parts.append(jnp.reshape(jnp.asarray(t1), (1,)))
        if not parts:
            raise SimulationError("saveat names no save times.")
        ts = jnp.concatenate([jnp.atleast_1d(jnp.asarray(a, float)) for a in parts])
    else:
        ts = saveat
    # the loop runs from the first to the last save time: add t0 and t1 around them
    return ts


@eqx.filter_jit
def _solve_events(model, y0, t0, t1, ts, solver, controller, adjoint, max_steps,
                  max_segments, args, dt0, progress_meter, dtype):
    model = cast_floats(model.prepared(t0), dtype)
    y0 = cast_floats(initial_state(model, y0), dtype)
    ts = jnp.asarray(ts, dtype)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    # the loop saves at its own grid: t0, the save times, t1 (then the ends are dropped)
    grid = jnp.concatenate([t0[None], ts, t1[None]])
    out = solve_events(model, y0, grid, solver=solver, controller=controller,
                       adjoint=adjoint, max_steps=max_steps, max_segments=max_segments,
                       args=args, dt0=None if dt0 is None else jnp.asarray(dt0, dtype),
                       progress_meter=progress_meter)
    ys = unravel_states(y0, out.xs[1:-1])
    full = jax.vmap(lambda t, y, z: model.derived_at(
        t, y, args, make_context(model, z, out.hist)))(ts, ys, out.zs[1:-1])
    stats = {"num_steps": out.steps, "num_segments": out.segments}
    return Trajectory(ts=ts, values=full, stats=stats, result=out.result, spec=model.spec)


def _simulate_events(composite, y0, t0, t1, saveat, solver, controller, adjoint,
                     max_steps, max_segments, args, event, dt0, progress_meter, dtype
                     ) -> Trajectory:
    if event is not None:
        raise SimulationError(
            "event= (a diffrax.Event) is not supported for models with event processes; "
            "add a jaxcell.Event process instead (it can stop nothing, but it can set the "
            "state)."
        )
    if is_concrete(t0) and is_concrete(t1) and float(t1) < float(t0):
        raise SimulationError(
            f"Models with events run forward in time; got t0={t0}, t1={t1}.")
    ts = _event_times(saveat, t0, t1)
    if max_steps is None:
        raise SimulationError("Models with events need a finite max_steps (per segment).")
    if max_segments is None:
        n_events = sum(composite.leaves[i].events().n_events  # pyright: ignore
                       for i in composite.event_processes)
        max_segments = default_max_segments(int(np.shape(ts)[0]), n_events)
    return _solve_events(composite, y0, t0, t1, ts, solver, controller, adjoint,
                         int(max_steps), int(max_segments), args, dt0, progress_meter,
                         dtype)


def _simulate_hybrid(composite, y0, t0, t1, saveat, solver, controller, adjoint,
                     max_steps, args, event, key, dtype, dt0, progress_meter
                     ) -> Trajectory:
    if event is not None:
        raise SimulationError(
            "event is not supported for models with discrete processes; express the "
            "condition as a discrete process, or simulate the continuous part alone."
        )
    if not (is_concrete(t0) and is_concrete(t1)):
        raise SimulationError(
            "Models with discrete processes need concrete t0 and t1 (the number of "
            "discrete updates fixes the shape of the computation); they cannot be traced."
        )
    schedule = make_schedule(composite, float(t0), float(t1), saveat)
    key = as_key(key)
    return solve_hybrid(composite, y0, t0, schedule, solver, controller, adjoint,
                        max_steps, args, key, dtype, dt0, progress_meter)


def _simulate_stochastic(composite, t0, t1, saveat, method, key, y0, args, dtype, throw,
                         solver, controller, adjoint, max_steps, dt0, progress_meter,
                         event) -> Trajectory:
    from ._stochastic_run import simulate_stochastic

    return simulate_stochastic(composite, t0, t1, saveat, method, as_key(key), y0, args,
                               dtype, throw, solver, controller, adjoint, max_steps, dt0,
                               progress_meter, event)


def count_compilations():
    """Context manager counting XLA compilations inside its block.

    Examples:
        >>> with count_compilations() as n:
        ...     pass
        >>> n()
        0
    """
    return _CompileCounter()


class _CompileCounter:
    def __init__(self):
        self.count = 0
        self._active = False

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if self._active and event == "/jax/core/compile/backend_compile_duration":
            self.count += 1

    def __enter__(self):
        from jax import monitoring

        self._active = True
        monitoring.register_event_duration_secs_listener(self._listener)
        return lambda: self.count

    def __exit__(self, *exc):
        self._active = False
        try:
            from jax._src import monitoring as _m

            _m.unregister_event_duration_listener(self._listener)
        except Exception:  # noqa: BLE001 - older jax has no unregister; listener is inert
            pass
        return False

