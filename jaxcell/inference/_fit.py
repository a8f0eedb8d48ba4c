"""fit(): local optimisation from one or many starts (optimistix or optax)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, ArrayLike

from ._objective import Objective
from ._petab import is_petab_problem, petab_objective

logger = logging.getLogger("jaxcell.inference")


class _Problem(eqx.Module):
    """An objective with some search coordinates held fixed (for profiles)."""

    objective: Objective
    fixed_values: Array
    free: tuple[int, ...] = eqx.field(static=True)
    fixed: tuple[int, ...] = eqx.field(static=True)

    def full(self, xr: Array) -> Array:
        x = jnp.zeros(len(self.free) + len(self.fixed), dtype=xr.dtype)
        x = x.at[np.asarray(self.free, dtype=int)].set(xr)
        if self.fixed:
            x = x.at[np.asarray(self.fixed, dtype=int)].set(self.fixed_values)
        return x

    def nll(self, xr: Array) -> Array:
        return self.objective._nll(self.full(xr))


def _problem(objective: Objective, fixed: dict[int, float] | None = None) -> _Problem:
    fixed = fixed or {}
    n = len(objective.parameters)
    return _Problem(objective, jnp.asarray([fixed[i] for i in sorted(fixed)], float),
                    tuple(i for i in range(n) if i not in fixed), tuple(sorted(fixed)))


def _ls_fn(xr, problem):
    return problem.objective._residuals(problem.full(xr)), None


def _min_fn(xr, problem):
    return problem.nll(xr), None


@eqx.filter_jit
def _optx_init(solver, fn, problem, x, options):
    f_struct = jax.eval_shape(lambda: fn(x, problem)[0])
    return solver.init(fn, x, problem, options, f_struct, None, frozenset())


@eqx.filter_jit
def _optx_step(solver, fn, problem, x, state, options):
    x, state, _ = solver.step(fn, x, problem, options, state, frozenset())
    done, result = solver.terminate(fn, x, problem, options, state, frozenset())
    info = state.f_info
    if hasattr(info, "residual"):
        loss = 0.5 * jnp.sum(info.residual**2)
    else:
        loss = info.f
    return x, state, done, result == optx.RESULTS.successful, loss


@eqx.filter_jit
def _optax_step(opt, problem, x, opt_state):
    value, grad = jax.value_and_grad(problem.nll)(x)
    updates, opt_state = opt.update(grad, opt_state, x)
    return optax.apply_updates(x, updates), opt_state, value, jnp.max(jnp.abs(grad))


@dataclasses.dataclass(frozen=True)
class StartResult:
    """One local optimisation: its start, end point, final value and history."""

    x0: np.ndarray
    x: np.ndarray
    value: float
    converged: bool
    steps: int
    history: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The best of all starts, and every start.

    Attributes:
        x: best point on the search scale.
        values: best natural-scale values ``{name: float}``.
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


def default_method(objective: Objective) -> Any:
    """:class:`optimistix.LevenbergMarquardt` for least-squares objectives, else
    :class:`optimistix.BFGS` (both with ``rtol = atol = 1e-8``)."""
    if objective.is_least_squares:
        return optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    return optx.BFGS(rtol=1e-8, atol=1e-8)


def _run_one(problem, method, x0, max_steps, options, callback, index):
    n = len(problem.free)
    if n == 0:
        v = float(problem.nll(x0))
        return x0, v, True, 0, (v,)
    history = [float(_nll_jit(problem, x0))]
    best_x, best_v = x0, history[0]
    converged, steps = False, 0
    if isinstance(method, optax.GradientTransformation):
        x, state = x0, method.init(x0)
        tol = 1e-10
        quiet, prev = 0, history[0]
        for steps in range(1, max_steps + 1):
            x_new, state, v, gmax = _optax_step(method, problem, x, state)
            v = float(v)
            if steps > 1:
                history.append(v)
            if np.isfinite(v) and v <= best_v:
                best_x, best_v = x, v
            small = abs(prev - v) <= tol * (1 + abs(v)) or float(gmax) < 1e-8
            quiet, prev = (quiet + 1 if small and steps > 1 else 0), v
            x = x_new
            if callback is not None:
                callback(index, steps, v)
            if quiet >= 10:
                converged = True
                break
        v_last = float(_nll_jit(problem, x))
        if np.isfinite(v_last) and v_last <= best_v:
            best_x, best_v = x, v_last
        return best_x, best_v, converged, steps, tuple(history)
    least_squares = isinstance(method, optx.AbstractLeastSquaresSolver)
    if least_squares and not problem.objective.is_least_squares:
        raise ValueError(
            f"fit: {type(method).__name__} needs a sum-of-squares objective (Normal, "
            f"LogNormal or Log10Normal noise with a fixed sigma); use a minimiser such "
            f"as optimistix.BFGS.")
    if not isinstance(method, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)):
        raise TypeError(f"fit: method must be an optimistix least-squares solver or "
                        f"minimiser, or an optax GradientTransformation; got {method!r}.")
    fn = _ls_fn if least_squares else _min_fn
    const = float(problem.objective.nll_constant()) if least_squares else 0.0
    x = x0
    state = _optx_init(method, fn, problem, x, options)
    for steps in range(1, max_steps + 1):
        x, state, done, ok, loss = _optx_step(method, fn, problem, x, state, options)
        v = float(loss) + const
        history.append(v)
        if callback is not None:
            callback(index, steps, v)
        if bool(done):
            converged = bool(ok)
            break
    v_last = float(_nll_jit(problem, x))
    if not np.isfinite(best_v) or v_last <= best_v or converged:
        best_x, best_v = x, v_last
    return best_x, best_v, converged, steps, tuple(history)


@eqx.filter_jit
def _nll_jit(problem, x):
    return problem.nll(x)


def draw_starts(objective: Any, n: int, key: Any) -> Array:
    """The ``n`` start points :func:`fit` uses: ``parameters.x0`` and then points drawn
    uniformly within the search bounds from ``key`` (default ``key(0)``); all drawn for
    objectives that say ``random_starts_only`` (PEtab problems)."""
    if getattr(objective, "random_starts_only", False):
        key = jax.random.key(0) if key is None else key
        return objective.parameters.sample_starts(key, n)
    points = objective.parameters.x0[None, :]
    if n > 1:
        key = jax.random.key(0) if key is None else key
        points = jnp.concatenate([points, objective.parameters.sample_starts(key, n - 1)])
    return points


def fit(objective: Objective, *, method: Any = None, starts: int | ArrayLike = 1,
        key: Any = None, max_steps: int = 500,
        callback: Callable[[int, int, float], None] | None = None,
        _fixed: dict[int, float] | None = None) -> FitResult:
    """Minimise ``objective.nll`` from one or many starting points.

    Each start is a local optimisation driven step by step from Python by one compiled
    step function, which every start (and every later call on an objective of the same
    structure) reuses; the objective values after each step form the history.

    **Default method, and why.** :class:`optimistix.LevenbergMarquardt` when the
    objective is a sum of squares (Gaussian noise with fixed sigma), else
    :class:`optimistix.BFGS`. All three reach the same optimum; Levenberg–Marquardt
    needs the fewest iterations, Adam by far the most. Measured (2-core CPU, float64,
    steps to reach the optimum to 1e-6 relative in the nll, from the default start):

    ==========================  ===================  =================  ===============
    problem                     Levenberg–Marquardt  BFGS               Adam (lr 0.05)
    ==========================  ===================  =================  ===============
    Puromycin (2 params)        4 (stops at 11)      36 (stops at 38)   87 (236)
    Michaelis–Menten ODE        32 (stops at 48)     65 (stops at 68)   1526 (1855)
    ==========================  ===================  =================  ===============

    (Puromycin: the 12 treated-cell rates, Vm and K from 200 and 0.1. Michaelis–Menten:
    ``michaelis_menten`` simulated at vmax = 1, km = 0.5, 16 times with noise 0.01,
    fitted from vmax = 0.3, km = 2; log scales; ``tests/test_inference.py``.)

    Arguments:
        objective: an :class:`Objective`, or a :class:`jaxcell.io.PetabProblem` (from
            :func:`jaxcell.io.load_petab`; see :func:`petab_objective`: BFGS on its
            ``nllh``, every start uniform within the PEtab bounds on the parameter
            scale, ``values`` on the linear scale).
        method: an optimistix least-squares solver (Gauss–Newton family) or minimiser
            (``optimistix.BFGS(...)``), or an optax ``GradientTransformation``
            (``optax.adam(0.05)``). Default: see above.
        starts: number of starts (the first is ``parameters.x0``, the others uniform
            within the search-scale bounds; for a PEtab problem all uniform), or an
            array ``(n, len(parameters))`` of search-scale starting points.
        key: a :func:`jax.random.key` for random starts (default ``key(0)``).
        max_steps: maximum iterations per start.
        callback: ``callback(start, step, value)`` after every iteration (progress);
            each finished start is also logged at INFO level on ``jaxcell.inference``.

    Returns:
        A :class:`FitResult`.

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
    if is_petab_problem(objective):
        objective = petab_objective(objective)
    method = default_method(objective) if method is None else method
    problem = _problem(objective, _fixed)
    free = np.asarray(problem.free, dtype=int)
    if np.ndim(starts) == 0:
        n = int(starts)
        if n < 1:
            raise ValueError(f"fit: starts must be at least 1; got {starts}.")
        points = draw_starts(objective, n, key)
    else:
        points = jnp.asarray(starts, float)
        if points.ndim != 2 or points.shape[1] != len(objective.parameters):
            raise ValueError(f"fit: starts must have shape (n, {len(objective.parameters)});"
                             f" got {points.shape}.")
    adjoint = objective.simulate_kwargs.get("adjoint")
    options = {"jac": "fwd" if isinstance(adjoint, diffrax.ForwardMode) else "bwd"}
    results = []
    for i, p in enumerate(points):
        xr0 = p[free]
        x, v, ok, steps, hist = _run_one(problem, method, xr0, max_steps,
                                         options if isinstance(
                                             method, optx.AbstractLeastSquaresSolver)
                                         else {}, callback, i)
        results.append(StartResult(np.asarray(problem.full(xr0)),
                                   np.asarray(problem.full(x)), v, ok, steps, hist))
        logger.info("fit: start %d/%d: nll %.6g after %d steps (%s)", i + 1,
                    len(points), v, steps, "converged" if ok else "not converged")
    finite = [r for r in results if np.isfinite(r.value)] or results
    best = min(finite, key=lambda r: r.value)
    values = {k: float(v) for k, v in objective.parameters.values(best.x).items()}
    return FitResult(best.x, values, best.value, best.converged, tuple(results),
                     best.history, method)
