"""The machinery of :func:`fit`: the problem (an objective with coordinates held
fixed, and the bound penalty), the compiled step of every kind of method (Levenberg-
Marquardt, optimistix, optax; one start or a vmapped batch), and the loop that drives a
group of starts (histories, stopping rules, validation, checkpoint hooks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array

from .._devices import map_batch
from ._forward import forward_only as _forward_only
from ._levenberg_marquardt import LevenbergMarquardt
from ._objective import AbstractBoundedObjective, AbstractObjective, AbstractStochasticObjective

#: weight of the bound penalty of an :class:`AbstractBoundedObjective` for unconstrained
#: optimisers: ``(W · distance)² / 2`` outside the bounds.
_BOUND_WEIGHT = 1e4


class _Problem(eqx.Module):
    """An objective with some search coordinates held fixed (for profiles)."""

    objective: AbstractObjective
    fixed_values: Array
    bounds: tuple[Array, Array] | None  # hard bounds of a bounded objective (all coords)
    free: tuple[int, ...] = eqx.field(static=True)
    fixed: tuple[int, ...] = eqx.field(static=True)

    def full(self, xr: Array) -> Array:
        x = jnp.zeros(len(self.free) + len(self.fixed), dtype=xr.dtype)
        x = x.at[np.asarray(self.free, dtype=int)].set(xr)
        if self.fixed:
            x = x.at[np.asarray(self.fixed, dtype=int)].set(self.fixed_values)
        return x

    def nll(self, xr: Array) -> Array:
        """The objective's nll; for a bounded objective plus the penalty outside the
        bounds (zero within them)."""
        x = self.full(xr)
        value = self.objective.nll(x)
        if self.bounds is not None:
            lo, hi = self.bounds
            violation = _BOUND_WEIGHT * (jnp.maximum(x - hi, 0.0) + jnp.maximum(lo - x, 0.0))
            value = value + 0.5 * jnp.sum(violation**2)
        return value

    def train_nll(self, xr: Array, step: Array) -> Array:
        """What a stochastic (optax) step minimises: the objective's minibatch nll
        for step ``step`` (:class:`AbstractStochasticObjective`), else :meth:`nll`."""
        if not isinstance(self.objective, AbstractStochasticObjective):
            return self.nll(xr)
        x = self.full(xr)
        value = self.objective.stochastic_nll(x, step)
        if self.bounds is not None:
            lo, hi = self.bounds
            violation = _BOUND_WEIGHT * (jnp.maximum(x - hi, 0.0) + jnp.maximum(lo - x, 0.0))
            value = value + 0.5 * jnp.sum(violation**2)
        return value

    def residuals(self, xr: Array) -> Array:
        return self.objective.residuals(self.full(xr))

    def search_bounds(self):
        """The hard bounds of a bounded objective on the free coordinates, or ``None``."""
        if self.bounds is None:
            return None
        free = np.asarray(self.free, dtype=int)
        return tuple(b[free] for b in self.bounds)

    @property
    def forward_mode(self) -> bool:
        """Whether the simulations are differentiated forwards only."""
        return bool(self.objective.forward_mode)


def _problem(objective: AbstractObjective, fixed: dict[int, float] | None = None) -> _Problem:
    fixed = fixed or {}
    n = len(objective.parameters)
    bounds = None
    if isinstance(objective, AbstractBoundedObjective):  # read outside any trace
        lo, hi = objective.parameters.bounds
        bounds = (jnp.asarray(np.asarray(lo, float)), jnp.asarray(np.asarray(hi, float)))
    return _Problem(objective, jnp.asarray([fixed[i] for i in sorted(fixed)], float),
                    bounds, tuple(i for i in range(n) if i not in fixed),
                    tuple(sorted(fixed)))


def _ls_fn(xr, problem):
    return problem.residuals(xr), None


def _min_fn(xr, problem):
    return problem.nll(xr), None


def _ls_fn_fwd(xr, problem):
    return _forward_only(problem.residuals)(xr), None


def _min_fn_fwd(xr, problem):
    return _forward_only(problem.nll)(xr), None


def _optx_init_impl(solver, fn, problem, x, options):
    f_struct = jax.eval_shape(lambda: fn(x, problem)[0])
    return solver.init(fn, x, problem, options, f_struct, None, frozenset())


def _optx_step_impl(solver, fn, problem, x, state, options):
    x, state, _ = solver.step(fn, x, problem, options, state, frozenset())
    done, result = solver.terminate(fn, x, problem, options, state, frozenset())
    info = state.f_info
    if isinstance(solver, optx.AbstractLeastSquaresSolver):
        loss = 0.5 * jnp.sum(info.residual**2)
    else:
        loss = info.f
    return x, state, done, result == optx.RESULTS.successful, loss


def _optax_step_impl(opt, problem, x, opt_state, k, from_state):
    def nll(z):
        return problem.train_nll(z, k)

    nll = _forward_only(nll) if problem.forward_mode else nll
    if from_state:  # L-BFGS: reuse the value and gradient its line search computed
        value, grad = optax.value_and_grad_from_state(nll)(x, state=opt_state)
    else:
        value, grad = jax.value_and_grad(nll)(x)
    updates, opt_state = opt.update(grad, opt_state, x, value=value, grad=grad,
                                    value_fn=nll)
    return optax.apply_updates(x, updates), opt_state, value, jnp.max(jnp.abs(grad))


_FAST: dict[Any, Any] = {}


def _fast_optax_step(opt, problem, from_state):
    """The optax step as a ``jax.jit`` function of the arrays of ``(opt, problem)``,
    the iterate, the state and the step number, with the rest (the objective's
    structure) closed over: cheaper to dispatch every iteration than
    ``eqx.filter_jit``, which flattens and hashes the whole objective on each call.
    Cached on that structure, so a later fit of an objective of the same structure
    reuses the compiled step."""
    static = eqx.filter((opt, problem), eqx.is_array, inverse=True)
    leaves, treedef = jax.tree_util.tree_flatten(static)
    try:
        key = (treedef, tuple(leaves), bool(from_state))
        hash(key)
    except TypeError:  # an unhashable static leaf: fall back to filter_jit
        return lambda dyn, x, s, k: _optax_step(*eqx.combine(dyn, static), x, s, k,
                                                from_state)
    fn = _FAST.get(key)
    if fn is None:
        def run(dyn, x, s, k):
            o, pr = eqx.combine(dyn, static)
            return _optax_step_impl(o, pr, x, s, k, from_state)

        fn = jax.jit(run)
        if len(_FAST) > 64:
            _FAST.clear()
        _FAST[key] = fn
    return fn


def _strong(tree):
    """``tree`` with weakly typed arrays made strongly typed: optax's initial states
    (L-BFGS's counters and scalars) hold weak scalars that its updates return strong,
    which would otherwise recompile the step once."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, dtype=a.dtype) if eqx.is_array(a) else a, tree)


_WRAPPED: dict[int, tuple[Any, Any, bool]] = {}
_NO = np.zeros(1, bool)


def _optax_wrapped(method, n):
    """``method`` with extra-args support, and whether its state carries the line
    search's value and gradient; cached per method object, so that later fits with the
    same method reuse the compiled step."""
    hit = _WRAPPED.get(id(method))
    if hit is None or hit[0] is not method:
        opt = optax.with_extra_args_support(method)
        hit = (method, opt, _has_value_state(opt.init(jnp.zeros(n))))
        if len(_WRAPPED) > 256:
            _WRAPPED.clear()
        _WRAPPED[id(method)] = hit
    return hit[1], hit[2]


def _has_value_state(state) -> bool:
    """Whether an optax state carries its line search's value and gradient."""
    try:
        return bool(optax.tree_utils.tree_get_all_with_path(state, "value")) and bool(
            optax.tree_utils.tree_get_all_with_path(state, "grad"))
    except Exception:  # noqa: BLE001 - any unusual state: compute them afresh
        return False


def _residuals_and_jacobian(problem):
    """``x ↦ (residuals, Jacobian)``: forward mode when the simulations are
    differentiated forwards (``len(x)`` JVPs), else reverse mode."""
    def f(z):
        r = problem.residuals(z)
        return r, r

    jac = jax.jacfwd if problem.forward_mode else jax.jacrev

    def fn(x):
        j, r = jac(f, has_aux=True)(x)
        return r, j
    return fn


def _lm_init_impl(lm, problem, x):
    return lm.init(_residuals_and_jacobian(problem), x, problem.search_bounds())


def _lm_step_impl(lm, problem, state):
    state, done, ok = lm.step(_residuals_and_jacobian(problem), state)
    return state, done, ok


_lm_init = eqx.filter_jit(_lm_init_impl)
_lm_step = eqx.filter_jit(_lm_step_impl)


@eqx.filter_jit
def _lm_init_batch(lm, problem, xs):
    return jax.vmap(lambda x: _lm_init_impl(lm, problem, x))(xs)


@eqx.filter_jit
def _lm_step_batch(lm, problem, states, active):
    new, done, ok = jax.vmap(lambda st: _lm_step_impl(lm, problem, st))(states)
    return _freeze(active, new, states), done, ok


_optx_init = eqx.filter_jit(_optx_init_impl)
_optx_step = eqx.filter_jit(_optx_step_impl)
_optax_step = eqx.filter_jit(_optax_step_impl)


def _freeze(active, new, old):
    """``new`` where ``active`` (one flag per start, leading axis), else ``old``."""
    def pick(n, o):
        if not eqx.is_array(n):
            return n
        return jnp.where(active.reshape(active.shape + (1,) * (n.ndim - 1)), n, o)
    return jax.tree_util.tree_map(pick, new, old)


@eqx.filter_jit
def _optx_init_batch(solver, fn, problem, xs, options):
    return eqx.filter_vmap(lambda x: _optx_init_impl(solver, fn, problem, x, options))(xs)


@eqx.filter_jit
def _optx_step_batch(solver, fn, problem, xs, states, active, options):
    out = eqx.filter_vmap(
        lambda x, st: _optx_step_impl(solver, fn, problem, x, st, options))(xs, states)
    xn, sn, done, ok, loss = out
    return _freeze(active, xn, xs), _freeze(active, sn, states), done, ok, loss


@eqx.filter_jit
def _optax_step_batch(opt, problem, xs, states, active, k, from_state):
    xn, sn, v, gmax = eqx.filter_vmap(
        lambda x, st: _optax_step_impl(opt, problem, x, st, k, from_state))(xs, states)
    return _freeze(active, xn, xs), _freeze(active, sn, states), v, gmax


# Chunks of a batch of starts, as `map_batch` calls them: (replicated args, batch).
def _optax_init_chunk(opt, xs):
    return jax.vmap(opt.init)(xs)


def _optax_step_chunk(args, batch):
    opt, problem, k, from_state = args
    xs, states, active = batch
    return _optax_step_batch(opt, problem, xs, states, active, k, from_state)


def _lm_init_chunk(args, xs):
    return _lm_init_batch(*args, xs)


def _lm_step_chunk(args, batch):
    return _lm_step_batch(*args, *batch)


@eqx.filter_jit
def _nll_batch(problem, xs):
    return jax.vmap(problem.nll)(xs)


def _steppers(problem, method, options, batch):
    """``(init(X) -> S, step(X, S, active) -> (X, S, done, ok, value, small))`` for a
    group of starts ``X`` (rows), vmapped when ``batch`` else one start at a time;
    ``value`` is the objective before (optax) or after (optimistix) the step and
    ``small`` the optax gradient test. Batches of starts spread over the local devices
    (``jaxcell/_devices.py``) when the objective is differentiated forwards: reverse
    mode through diffrax's checkpointed loop does not trace under ``shard_map`` (jax
    0.10, equinox 0.13), so those batches stay on one device without trying."""
    devices = None if problem.forward_mode else 1
    if isinstance(method, optax.GradientTransformation):
        opt, from_state = _optax_wrapped(method, len(problem.free))
        if batch:
            # the starts spread over the local devices (and processes), like ensembles
            def init(X):
                return _strong(map_batch(_optax_init_chunk, opt, X, where="fit",
                                         devices=devices))

            def step(X, S, active, k):
                X, S, v, g = map_batch(_optax_step_chunk,
                                       (opt, problem, np.asarray(k), from_state),
                                       (X, S, jnp.asarray(active)), where="fit",
                                       devices=devices)
                v, g = np.asarray(v), np.asarray(g)
                return X, S, np.zeros(len(v), bool), np.zeros(len(v), bool), v, g < 1e-8
        else:
            def init(X):
                return _strong(opt.init(X))

            fast = _fast_optax_step(opt, problem, from_state)
            dyn = eqx.filter((opt, problem), eqx.is_array)

            def step(X, S, active, k):
                # X is the one start's vector (not a row: no slicing per step); one
                # device-to-host transfer for the value and the gradient test
                x, S, v, g = fast(dyn, X, S, np.asarray(k))
                v, g = jax.device_get((v, g))
                return (x, S, _NO, _NO, np.asarray([v]), np.asarray([g < 1e-8]))
        return init, step
    if isinstance(method, LevenbergMarquardt):
        const = float(problem.objective.nll_constant())
        n = len(problem.free)
        if batch:
            def init(X):
                return map_batch(_lm_init_chunk, (method, problem), X, where="fit",
                                 devices=devices)

            def step(X, S, active, k):
                S, done, ok = map_batch(_lm_step_chunk, (method, problem),
                                        (S, jnp.asarray(active)), where="fit",
                                        devices=devices)
                v = np.asarray(S.loss) + const
                return S.x, S, np.asarray(done), np.asarray(ok), v, np.zeros(len(v), bool)
        else:
            def init(X):
                return _lm_init(method, problem, X[0])

            def step(X, S, active, k):
                S, done, ok = _lm_step(method, problem, S)
                return (S.x.reshape(1, n), S, np.asarray([bool(done)]),
                        np.asarray([bool(ok)]), np.asarray([float(S.loss) + const]),
                        np.zeros(1, bool))
        return init, step
    least_squares = isinstance(method, optx.AbstractLeastSquaresSolver)
    if problem.forward_mode:
        fn = _ls_fn_fwd if least_squares else _min_fn_fwd
    else:
        fn = _ls_fn if least_squares else _min_fn
    const = float(problem.objective.nll_constant()) if least_squares else 0.0
    if batch:
        def init(X):
            return _optx_init_batch(method, fn, problem, X, options)

        def step(X, S, active, k):
            X, S, done, ok, loss = _optx_step_batch(method, fn, problem, X, S,
                                                    jnp.asarray(active), options)
            v = np.asarray(loss) + const
            return X, S, np.asarray(done), np.asarray(ok), v, np.zeros(len(v), bool)
    else:
        def init(X):
            return _optx_init(method, fn, problem, X[0], options)

        def step(X, S, active, k):
            x, S, done, ok, loss = _optx_step(method, fn, problem, X[0], S, options)
            return (x[None], S, np.asarray([bool(done)]), np.asarray([bool(ok)]),
                    np.asarray([float(loss) + const]), np.zeros(1, bool))
    return init, step


class _Validation(eqx.Module):
    """A held-out objective evaluated at the training coordinates ``idx``."""

    objective: AbstractObjective
    idx: tuple[int, ...] = eqx.field(static=True)

    def nll(self, x_full: Array) -> Array:
        return self.objective.nll(x_full[np.asarray(self.idx, dtype=int)])


@eqx.filter_jit
def _val_nll(validation, problem, x):
    return validation.nll(problem.full(x))


@eqx.filter_jit
def _val_nll_batch(validation, problem, xs):
    return jax.vmap(lambda x: validation.nll(problem.full(x)))(xs)


class _Lazy:
    """Row ``i`` of a (device) array, copied to the host only when read (the best
    iterate so far changes at almost every optax step)."""

    __slots__ = ("a", "i")

    def __init__(self, a, i):
        self.a, self.i = a, i

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.a if self.i is None else self.a[self.i], dtype=dtype)


@dataclasses.dataclass
class _Loop:
    """The bookkeeping of :func:`_run_group` between iterations (numpy, host side): what
    a checkpoint of a long optax run stores besides the iterate and optimiser state."""

    k: int
    history: list[list[float]]
    moved: list[list[float]]
    best_x: list[np.ndarray]
    best_v: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    active: np.ndarray
    quiet: np.ndarray
    prev: np.ndarray
    val_history: list[list[float]]
    val_best_x: list[np.ndarray]
    val_best_v: np.ndarray
    val_since: np.ndarray


def _new_loop(X0, v0, validation_values) -> _Loop:
    B = X0.shape[0]
    vv = (np.full(B, np.inf) if validation_values is None else validation_values)
    return _Loop(0, [[float(v)] for v in v0], [[float(v)] for v in v0],
                 [np.asarray(X0[i]) for i in range(B)], v0.copy(), np.zeros(B, bool),
                 np.zeros(B, int), np.ones(B, bool), np.zeros(B, int), v0.copy(),
                 [[] if validation_values is None else [float(vv[i])] for i in range(B)],
                 [np.asarray(X0[i]) for i in range(B)], np.asarray(vv, float).copy(),
                 np.zeros(B, int))


def _run_group(problem, method, X0, max_steps, options, callback, offset, ftol, batch,
               validation=None, patience=None, validate_every=1, hook=None, resume=None,
               target=None):
    """Optimise the starts ``X0`` (rows, reduced coordinates) together; returns one
    ``(x, value, converged, steps, history, validation_history, validation_value)`` per
    start.

    ``validation`` (a :class:`_Validation`) is evaluated every ``validate_every``
    iterations; a start stops after ``patience`` evaluations without improvement and
    returns its validation-best iterate. ``hook(loop, X, S)`` is called after every
    iteration (checkpoints); ``resume=(loop, X, S)`` continues such a run."""
    B = X0.shape[0]
    if len(problem.free) == 0:
        return [(X0[i], float(problem.nll(X0[i])), True, 0, (float(problem.nll(X0[i])),),
                 (), None) for i in range(B)]
    is_optax = isinstance(method, optax.GradientTransformation)
    rows = batch or not is_optax  # else the one start's iterate is a plain vector

    def row(X, i):
        return _Lazy(X, i if rows else None)

    def val_values(X):
        if validation is None:
            return None
        if batch:
            return np.asarray(_val_nll_batch(validation, problem, X))
        return np.asarray([float(_val_nll(validation, problem, X[0] if rows else X))])

    window = 10 if is_optax else 5
    tol = ftol if ftol else (1e-10 if is_optax else 0.0)
    init, step = _steppers(problem, method, options, batch)
    # A deterministic optax run takes its values from the compiled step itself (the
    # value before the update), so the nll is not compiled separately.
    by_step = is_optax and not batch and not isinstance(problem.objective,
                                                        AbstractStochasticObjective)
    if resume is None:
        X = X0 if rows else X0[0]
        S = init(X)
        if by_step:
            v0 = step(X, S, np.ones(1, bool), 0)[4]
        else:
            v0 = np.asarray(_nll_batch(problem, X0)) if batch else np.asarray(
                [float(_nll_jit(problem, X0[0]))])
        L = _new_loop(X0, v0, val_values(X))
    else:  # a checkpointed start in progress: (loop, X, optimiser state leaves)
        L, X, leaves = resume
        X = jnp.asarray(X)
        treedef = jax.tree_util.tree_structure(init(X0 if rows else X0[0]))
        S = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in leaves])
    while L.k < max_steps and L.active.any():
        k = L.k + 1
        X_before = X
        X, S, done, ok, v, small = step(X, S, L.active, L.k)
        check = validation is not None and k % validate_every == 0
        vv = val_values(X) if check else None
        for i in np.nonzero(L.active)[0]:
            L.steps[i] = k
            if is_optax:
                if k > 1:
                    L.history[i].append(float(v[i]))
                if np.isfinite(v[i]) and v[i] <= L.best_v[i]:
                    L.best_x[i], L.best_v[i] = row(X_before, i), v[i]
                flat = abs(L.prev[i] - v[i]) <= tol * (1 + abs(v[i])) or small[i]
                L.quiet[i] = L.quiet[i] + 1 if flat and k > 1 else 0
                L.prev[i] = v[i]
                stop = L.quiet[i] >= window
                L.converged[i] = stop
            else:
                if v[i] != L.history[i][-1]:  # an accepted step
                    L.moved[i].append(float(v[i]))
                L.history[i].append(float(v[i]))
                h = L.moved[i]
                stalled = (tol > 0 and len(h) > window and np.isfinite(h[-1])
                           and h[-window - 1] - h[-1] <= tol * (1 + abs(h[-1])))
                stop = bool(done[i]) or stalled
                L.converged[i] = bool(ok[i]) if done[i] else stalled
            if target is not None and np.isfinite(v[i]) and v[i] <= target:
                stop = True
                L.converged[i] = True
            if check:
                L.val_history[i].append(float(vv[i]))
                if np.isfinite(vv[i]) and vv[i] < L.val_best_v[i]:
                    L.val_best_v[i], L.val_best_x[i] = vv[i], row(X, i)
                    L.val_since[i] = 0
                else:
                    L.val_since[i] += 1
                if patience is not None and L.val_since[i] >= patience:
                    stop = True
            if callback is not None:
                callback(offset + i, k, float(v[i]))
            if stop:
                L.active[i] = False
        L.k = k
        if hook is not None:
            hook(L, X, S)
    if by_step:
        v_last = step(X, S, L.active, L.k)[4]
    else:
        v_last = np.asarray(_nll_batch(problem, X)) if batch else np.asarray(
            [float(_nll_jit(problem, X[0] if rows else X))])
    out = []
    for i in range(B):
        if validation is not None:
            x = np.asarray(L.val_best_x[i])
            value = float(_nll_jit(problem, jnp.asarray(x)))
            out.append((x, value, bool(L.converged[i]), int(L.steps[i]),
                        tuple(L.history[i]), tuple(L.val_history[i]),
                        float(L.val_best_v[i])))
            continue
        better = np.isfinite(v_last[i]) and v_last[i] <= L.best_v[i]
        if better or (not is_optax and (not np.isfinite(L.best_v[i]) or L.converged[i])):
            L.best_x[i], L.best_v[i] = row(X, i), v_last[i]
        out.append((np.asarray(L.best_x[i]), float(L.best_v[i]), bool(L.converged[i]),
                    int(L.steps[i]), tuple(L.history[i]), (), None))
    return out


@eqx.filter_jit
def _nll_jit(problem, x):
    return problem.nll(x)


