"""fit(): local optimisation from one or many starts (optimistix or optax)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from ._fit_loop import _problem, _run_group, _Validation
from ._levenberg_marquardt import LevenbergMarquardt
from ._objective import AbstractObjective

logger = logging.getLogger("jaxcell.inference")
#: above this many coordinates the default method is L-BFGS (no dense n×n matrices).
_LM_MAX = 200


def as_objective(objective: Any, caller: str) -> AbstractObjective:
    """``objective`` itself if it is an :class:`AbstractObjective`; a
    :class:`jaxcell.petab.PetabProblem` wrapped by :func:`jaxcell.petab.petab_objective`;
    else an :class:`InferenceError` naming ``caller`` and what was given."""
    if isinstance(objective, AbstractObjective):
        return objective
    from ..petab import PetabProblem, petab_objective  # petab builds on inference

    if isinstance(objective, PetabProblem):
        return petab_objective(objective)
    raise InferenceError(
        f"{caller}: objective must be a jaxcell.inference.AbstractObjective (such as "
        f"Objective or jaxcell.petab.PetabObjective) or a jaxcell.petab.PetabProblem; "
        f"got {type(objective).__module__}.{type(objective).__qualname__}.")


@dataclasses.dataclass(frozen=True)
class StartResult:
    """One local optimisation: its start, end point, final value and history."""

    x0: np.ndarray
    x: np.ndarray
    value: float
    converged: bool
    steps: int
    history: tuple[float, ...]
    #: the validation objective along the iterations (with ``validation=``).
    validation: tuple[float, ...] = ()
    #: its best value, reached at ``x`` (with ``validation=``).
    validation_value: float | None = None


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The best of all starts, and every start.

    Attributes:
        x: best point on the search scale.
        values: best natural-scale values ``{name: value}``: a float per scalar
            parameter, the pytree (e.g. the trained network) of each
            :class:`Weights` item.
        value: the objective (negative log-likelihood) there.
        converged: whether the best start met the solver's convergence test.
        starts: every :class:`StartResult`, in start order.
        history: objective values along the best start's iterations.
        method: the solver or optax transformation used.
    """

    x: np.ndarray
    values: dict[str, float]
    value: float
    converged: bool
    starts: tuple[StartResult, ...]
    history: tuple[float, ...]
    method: Any

    @property
    def n_converged(self) -> int:
        """How many starts converged."""
        return sum(s.converged for s in self.starts)


def default_method(objective: AbstractObjective) -> Any:
    """:class:`LevenbergMarquardt` for least-squares objectives
    (:attr:`AbstractObjective.is_least_squares`), else :class:`optimistix.BFGS` (both
    with ``rtol = atol = 1e-8``); for more than 200 coordinates (networks), where a
    dense Jacobian or Hessian approximation no longer pays, ``optax.lbfgs()`` (limited
    memory, compiled once).

    Raises:
        InferenceError: ``objective`` is not an :class:`AbstractObjective` (or a
            :class:`jaxcell.petab.PetabProblem`).
    """
    objective = as_objective(objective, "default_method")
    if len(objective.parameters) > _LM_MAX:
        return optax.lbfgs()
    if objective.is_least_squares:
        return LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    return optx.BFGS(rtol=1e-8, atol=1e-8)


def _check_method(problem, method):
    if isinstance(method, optax.GradientTransformation):
        return
    least_squares = isinstance(method, (optx.AbstractLeastSquaresSolver,
                                        LevenbergMarquardt))
    if least_squares and not problem.objective.is_least_squares:
        raise InferenceError(
            f"fit: {type(method).__name__} needs a sum-of-squares objective (Normal, "
            f"LogNormal or Log10Normal noise with a fixed sigma); "
            f"{type(problem.objective).__name__} is not one (is_least_squares is "
            f"False). Use a minimiser such as optimistix.BFGS.")
    if not isinstance(method, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser,
                               LevenbergMarquardt)):
        raise InferenceError(f"fit: method must be jaxcell.inference.LevenbergMarquardt, "
                             f"an optimistix least-squares solver or minimiser, or an "
                             f"optax GradientTransformation; got {method!r}.")


def _projected(problem, xr, value):
    """The full end point, clipped into the hard bounds of a bounded objective
    (PEtab problems), and the objective value there."""
    x = problem.full(xr)
    if problem.bounds is None:
        return np.asarray(x), value
    xp = jnp.clip(x, *problem.bounds)
    if bool(jnp.all(xp == x)):
        return np.asarray(x), value
    return np.asarray(xp), float(_nll_full_jit(problem.objective, xp))


@eqx.filter_jit
def _nll_full_jit(objective, x):
    return objective.nll(x)


def draw_starts(objective: AbstractObjective, n: int, key: Any) -> Array:
    """The ``n`` start points :func:`fit` uses: ``parameters.x0`` and then points drawn
    uniformly within the search bounds from ``key`` (default ``key(0)``); all drawn for
    objectives that say ``random_starts_only`` (PEtab problems).

    Raises:
        InferenceError: ``objective`` is not an :class:`AbstractObjective` (or a
            :class:`jaxcell.petab.PetabProblem`).
    """
    objective = as_objective(objective, "draw_starts")
    if objective.random_starts_only:
        key = jax.random.key(0) if key is None else key
        return objective.parameters.sample_starts(key, n)
    points = objective.parameters.x0[None, :]
    if n > 1:
        key = jax.random.key(0) if key is None else key
        points = jnp.concatenate([points, objective.parameters.sample_starts(key, n - 1)])
    return points


def fit(objective: AbstractObjective, *, method: Any = None, starts: int | ArrayLike = 1,
        key: Any = None, max_steps: int = 500,
        callback: Callable[[int, int, float], None] | None = None,
        ftol: float | None = None, batch: bool = False,
        validation: AbstractObjective | None = None, patience: int | None = None,
        validate_every: int = 1, target: float | None = None,
        _fixed: dict[int, float] | None = None, _hook: Any = None,
        _resume: Any = None) -> FitResult:
    """Minimise ``objective.nll`` from one or many starting points.

    Each start is a local optimisation driven step by step from Python by one compiled
    step function, which every start (and every later call on an objective of the same
    structure) reuses; the objective values after each step form the history. With
    ``batch=True`` all starts advance together through one ``vmap``-ped step (one
    dispatch per iteration for all of them; finished starts are frozen): worth it on
    an accelerator, or for small, cheap models; on a CPU each iteration waits for the
    slowest start (measured on Boehm in ``benchmarks/fit.py``). For an objective
    differentiated forwards (``forward_mode``: PEtab problems loaded so, or
    ``adjoint=diffrax.ForwardMode()``), the batch is split over every local device
    like :func:`jaxcell.ensemble` (on a CPU, one device per core); reverse-mode batches
    stay on one device (see the "Scale out" page).

    **Default method, and why.** :class:`LevenbergMarquardt` (ours: Marquardt
    scaling, bounds by projection, safe to vmap) when the objective is a sum of
    squares (Gaussian noise with fixed sigma, or a PEtab problem with normal noise),
    else :class:`optimistix.BFGS`. All reach the same optimum; Levenberg–Marquardt
    needs the fewest iterations, Adam by far the most. Measured (2-core CPU, float64,
    steps to reach the optimum to 1e-6 relative in the nll, from the default start;
    in brackets, the step at which each stopped):

    ====================  ===========  ===================  ==========  ============
    problem               jaxcell LM   optimistix LM        BFGS        Adam (0.05)
    ====================  ===========  ===================  ==========  ============
    Puromycin (2 params)  3 (5)        4 (11)               36 (38)     87 (235)
    Michaelis–Menten ODE  21 (23)      28 (35)              61 (67)     1598 (1936)
    ====================  ===========  ===================  ==========  ============

    On Boehm (PEtab, 9 parameters, bounds active at the optimum), the projected
    Levenberg–Marquardt reaches the reference optimum from 3 of 12 random starts
    within 70 steps each, where ``optimistix.LevenbergMarquardt`` (unbounded) walked
    out of the PEtab bounds and mostly stopped at the 400-step limit.

    (Puromycin: the 12 treated-cell rates, Vm and K from 200 and 0.1. Michaelis–Menten:
    ``michaelis_menten`` simulated at vmax = 1, km = 0.5, 16 times with noise 0.01,
    fitted from vmax = 0.3, km = 2; log scales; ``tests/test_inference.py``.)

    Arguments:
        objective: an :class:`AbstractObjective`: an :class:`Objective`, your own
            subclass, or a :class:`jaxcell.petab.PetabObjective`; or a
            :class:`jaxcell.petab.PetabProblem` (from :func:`jaxcell.petab.load_petab`),
            which is wrapped with :func:`jaxcell.petab.petab_objective`: every start
            uniform within the PEtab bounds on the parameter scale, results within
            them, ``values`` on the linear scale.
        method: :class:`LevenbergMarquardt`, an optimistix least-squares solver
            (Gauss–Newton family) or minimiser
            (``optimistix.BFGS(...)``), or an optax ``GradientTransformation``
            (``optax.adam(0.05)``). Default: see above.
        starts: number of starts (the first is ``parameters.x0``, the others uniform
            within the search-scale bounds; for a PEtab problem all uniform), or an
            array ``(n, len(parameters))`` of search-scale starting points.
        key: a :func:`jax.random.key` for random starts (default ``key(0)``).
        max_steps: maximum iterations per start.
        callback: ``callback(start, step, value)`` after every iteration (progress);
            each finished start is also logged at INFO level on ``jaxcell.inference``.
        ftol: also stop a start (counted as converged) once its value improved by at
            most ``ftol * (1 + |value|)`` over its last 5 accepted steps (for optax:
            changed by at most that in each of 10 iterations).
            Default: the objective's ``default_ftol``: ``1e-8`` for PEtab problems
            (close to fides's absolute 1e-6 at Boehm's scale), else 0 (only the
            solver's own test; 1e-10 for optax).
        batch: run all starts as one ``vmap``-ped batch, over the devices when the
            objective is differentiated forwards (see above).
        validation: a held-out objective (other time windows or conditions) whose
            coordinates are among this objective's, by name (e.g. the network of a
            :class:`MultipleShooting` objective); evaluated every ``validate_every``
            iterations. Each start then returns its iterate with the lowest
            validation value (:attr:`StartResult.validation_value`), and the best
            start is the one best on validation.
        patience: with ``validation``, stop a start after this many evaluations
            without improvement (early stopping); ``None``: run to the end.
        validate_every: iterations between validation evaluations.
        target: also stop a start (counted as converged) once its objective value
            is at most ``target`` (e.g. the noise level: Morozov's discrepancy
            principle for networks that could fit the noise).

    **Networks.** :class:`Weights` items (network weights) are coordinates like any
    other. Optax transformations (``optax.adam``, ``optax.adamw`` with schedules,
    per-group settings with :func:`group_optimizer`, ``optax.lbfgs()``) are stepped by
    one compiled function: L-BFGS's line search is given ``value_fn`` and its stored
    value and gradient are reused, and its initial state is made strongly typed, so
    no step recompiles. An :class:`AbstractStochasticObjective` (:class:`Minibatch`)
    is given the step number: each optax step sees its own minibatch.

    Returns:
        A :class:`FitResult`.

    Raises:
        InferenceError: ``objective`` is neither an :class:`AbstractObjective` nor a
            PEtab problem; ``starts`` is not a positive count or an array of shape
            ``(n, len(parameters))``; ``method`` is not a supported optimiser, or a
            least-squares solver for an objective that is not a sum of squares;
            ``validation`` has coordinates this objective lacks; bad ``patience``.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.inference import Experiment, Objective, Parameters, fit, Normal
        >>> decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.2})
        >>> data = Experiment([1.0, 2.0, 3.0], [0.6065, 0.3679, 0.2231],
        ...                   "molecular/decay/x", noise=Normal(0.01))
        >>> result = fit(Objective(decay, Parameters(["k"], model=decay), data))
        >>> round(result.values["k"], 3)
        0.5
    """
    objective = as_objective(objective, "fit")
    method = default_method(objective) if method is None else method
    problem = _problem(objective, _fixed)
    free = np.asarray(problem.free, dtype=int)
    if np.ndim(starts) == 0:
        n = int(starts)
        if n < 1:
            raise InferenceError(f"fit: starts must be at least 1; got {starts}.")
        points = draw_starts(objective, n, key)
    else:
        points = jnp.asarray(starts, float)
        if points.ndim != 2 or points.shape[1] != len(objective.parameters):
            raise InferenceError(f"fit: starts must have shape (n, "
                                 f"{len(objective.parameters)}); got {points.shape}.")
    _check_method(problem, method)
    vproblem = None
    if validation is not None:
        vproblem = _validation(objective, validation)
    if patience is not None and (isinstance(patience, bool) or int(patience) < 1):
        raise InferenceError(f"fit: patience must be a positive integer; got {patience!r}.")
    if patience is not None and validation is None:
        raise InferenceError("fit: patience needs validation= (a held-out objective).")
    if int(validate_every) < 1:
        raise InferenceError(f"fit: validate_every must be at least 1; got "
                             f"{validate_every!r}.")
    options = ({"jac": "fwd" if problem.forward_mode else "bwd"}
               if isinstance(method, optx.AbstractLeastSquaresSolver) else {})
    if ftol is None:
        ftol = float(objective.default_ftol)
    X = points[:, free]
    groups = [np.arange(len(points))] if batch else [[i] for i in range(len(points))]
    results = []
    for g in groups:
        g = np.asarray(g)
        for j, (x, v, ok, steps, hist, vhist, vbest) in zip(g, _run_group(
                problem, method, X[g], max_steps, options, callback, int(g[0]), ftol,
                batch, vproblem, patience, int(validate_every), _hook, _resume,
                None if target is None else float(target))):
            x_full, v = _projected(problem, x, v)
            results.append(StartResult(np.asarray(problem.full(X[j])), x_full, v, ok, steps,
                                       hist, vhist, vbest))
            logger.info("fit: start %d/%d: nll %.6g after %d steps (%s)", j + 1,
                        len(points), v, steps, "converged" if ok else "not converged")
    return _result(objective, results, method)


def _result(objective, results, method) -> FitResult:
    """The :class:`FitResult` of ``results``: the best start (on validation if there
    was one) with its natural values."""
    def score(r):
        return r.validation_value if r.validation_value is not None else r.value

    finite = [r for r in results if np.isfinite(score(r))] or results
    best = min(finite, key=score)
    return FitResult(best.x, natural_values(objective.parameters, best.x), best.value,
                     best.converged, tuple(results), best.history, method)


def natural_values(parameters, x) -> dict[str, Any]:
    """``parameters.values(x)`` with scalars as floats (pytrees kept)."""
    out = {}
    for k, v in parameters.values(jnp.asarray(x)).items():
        out[k] = float(v) if eqx.is_array(v) and v.ndim == 0 else v
    return out


def _validation(objective, validation) -> _Validation:
    validation = as_objective(validation, "fit (validation)")
    names = list(objective.parameters.names)
    vnames = list(validation.parameters.names)
    missing = [n for n in vnames if n not in names]
    if missing:
        raise InferenceError(
            f"fit: validation has coordinates this objective lacks: {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}; the validation objective's parameters "
            f"must be among the fitted ones (the same Weights/Parameter names).")
    return _Validation(validation, tuple(names.index(n) for n in vnames))
