"""Steady states of any continuous model: Newton on the vector field (optimistix), with
integration as the fallback, conservation laws handled by a reduced system, stability
from the Jacobian's eigenvalues, and derivatives by the implicit function theorem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool, Complex, Float

from .._composite import Composite, as_composite
from .._custom_types import State
from .._engine import initial_state
from .._errors import SimulationError
from .._process import AbstractProcess
from .._state import StateSpec, nest_state, path_str
from .._trajectory import Trajectory

CONSERVATION_RTOL = 1e-9
"""A direction is a conservation law when its singular value in the stacked Jacobians
is below this fraction of the largest (float64; float32 uses ``1e-4``)."""


class StateAt(eqx.Module):
    """The full state (owned and derived variables) at one point, addressable by name
    like a :class:`jaxcell.Trajectory` without the time axis: ``state["A"]``,
    ``state["molecular/net/species/A"]``, ``state["molecular/net/species"]``."""

    values: State
    spec: StateSpec = eqx.field(static=True)

    def __getitem__(self, key: Any) -> Array:
        path, index = Trajectory._resolve(self, key)  # pyright: ignore  # noqa: SLF001
        value = self.values[path[0]][path[1]][path[2]]
        return value if index is None else value[..., index]

    def names(self) -> list[str]:
        """Every addressable name: variables and their labelled components."""
        return Trajectory.names(self)  # pyright: ignore


class SteadyState(eqx.Module):
    """A steady state of a model, found by :func:`steady_state`.

    Attributes:
        t: the time at which the (autonomous) vector field was evaluated.
        y: the owned state as one flat vector (the order of
            :func:`jax.flatten_util.ravel_pytree` on the nested state).
        state: the full state (owned and derived), addressable by name
            (``result.state["molecular/net/species/x"]``; also ``result["x"]``).
        jacobian: the Jacobian of the vector field at the steady state, ``(n, n)``.
        eigenvalues: eigenvalues of the Jacobian *restricted to the conservation class*,
            sorted by decreasing real part; the ``m`` trailing entries that belong to the
            conservation laws are ``nan``.
        conservation: ``(n, n)`` orthonormal directions (rows) and a mask of which are
            conserved (``conserved``); the totals ``conservation @ y`` of conserved rows
            equal those of the initial state.
        conserved: mask over the rows of ``conservation``.
        residual: ``max |dy/dt|`` at the returned state.
        converged: whether Newton converged (from the start or after integration).
        integrated: whether the fallback (integration towards the steady state) was used.
    """

    t: Float[Array, ""]
    y: Float[Array, " n"]
    state: StateAt
    jacobian: Float[Array, "n n"]
    eigenvalues: Complex[Array, " n"]
    conservation: Float[Array, "n n"]
    conserved: Bool[Array, " n"]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]
    integrated: Bool[Array, ""]

    @property
    def stable(self) -> Bool[Array, ""]:
        """Linearly stable within its conservation class: every eigenvalue of the
        reduced Jacobian has a negative real part."""
        return jnp.nanmax(jnp.real(self.eigenvalues), axis=-1) < 0

    @property
    def n_conserved(self) -> Array:
        """The number of independent linear conservation laws used."""
        return jnp.sum(self.conserved, axis=-1)

    def __getitem__(self, key: Any) -> Array:
        return self.state[key]


# -- the flat vector field -------------------------------------------------------------


def _checked_model(model: Any, where: str) -> Composite:
    if not isinstance(model, (AbstractProcess, list, tuple)):
        raise SimulationError(f"{where}: model must be a process or a list of processes; "
                              f"got {type(model).__name__}.")
    comp = as_composite(model)
    comp.check_closed()
    bad = [comp.leaves[i].name for i in comp.event_processes + comp.discrete_processes]
    if bad:
        raise SimulationError(
            f"{where}: the model has event or discrete processes {bad}; a steady state "
            f"is defined for continuous dynamics only. Remove them (or pass the "
            f"continuous part) to find its steady states."
        )
    return comp


def flat_field(model: Composite, state0: State, t: Any, args: Any):
    """``(f, x0, unravel)``: the vector field as a function of one flat vector."""
    x0, unravel = ravel_pytree(state0)

    def f(x, m=model):
        dy = m.vector_field(t, unravel(x), args)
        return ravel_pytree(dy)[0]

    return f, x0, unravel


def _conservation_basis(f, x0: Array, key: Array) -> tuple[Array, Array]:
    """Orthonormal directions ``u`` (rows) and the mask of the conserved ones: the left
    null space of the Jacobian sampled at ``x0`` and three nearby states.

    A linear conservation law ``c`` satisfies ``c @ J(x) = 0`` at *every* state, so it is
    in the left null space of every Jacobian; sampling several states excludes
    directions that are singular only by accident at ``x0`` (a species at zero). Shapes
    are static (the mask is data), so this works under ``jit`` and ``vmap``."""
    n = x0.shape[0]
    scale = jnp.maximum(jnp.max(jnp.abs(x0)), 1.0) * 0.1
    noise = jax.random.normal(key, (3, n), dtype=x0.dtype)
    states = [x0] + [jnp.abs(x0) * jnp.exp(0.3 * z) + scale * jnp.abs(z) for z in noise]
    # a law c must satisfy c·J(x) = 0 and c·f(x) = 0 (a direction in which f is a
    # nonzero constant is not conserved)
    cols = [jax.jacfwd(f)(s) for s in states] + [f(s)[:, None] for s in states]
    jac = jnp.concatenate(cols, axis=1)
    jac = jax.lax.stop_gradient(jnp.where(jnp.isfinite(jac), jac, 0.0))
    u, s, _ = jnp.linalg.svd(jac, full_matrices=True)
    rtol = CONSERVATION_RTOL if x0.dtype == jnp.float64 else 1e-4
    conserved = s <= rtol * jnp.maximum(s[0], jnp.finfo(x0.dtype).tiny)
    return u.T, conserved


def reduced_system(f, basis: Array, conserved: Array, x_ref: Array):
    """``g(x)``: the square system whose roots are the steady states in the conservation
    class of ``x_ref``: ``u_i·f(x) = 0`` for free directions, ``u_i·(x - x_ref) = 0``
    for conserved ones."""

    def g(x):
        return jnp.where(conserved, basis @ (x - x_ref), basis @ f(x))

    return g


def reduced_eigenvalues(jac: Array, basis: Array, conserved: Array) -> Array:
    """Eigenvalues of the Jacobian restricted to the conservation class, sorted by
    decreasing real part, with ``nan`` for the conserved directions (static shape)."""
    free = (~conserved).astype(jac.dtype)
    proj = basis.T @ (free[:, None] * basis)  # projector onto the free subspace
    shift = 2.0 * (1.0 + jnp.sqrt(jnp.sum(jac**2)))
    # conserved directions get the eigenvalue -shift, below every true one
    m = proj @ jac @ proj - shift * (basis.T @ ((1 - free)[:, None] * basis))
    ev = jnp.linalg.eigvals(m)
    order = jnp.argsort(-jnp.real(ev))
    ev = ev[order]
    n_free = jnp.sum(~conserved)
    return jnp.where(jnp.arange(ev.shape[0]) < n_free, ev, jnp.nan + 0j)


class _Settled(eqx.Module):
    """Event condition: the state has (nearly) stopped changing."""

    model: Composite

    def __call__(self, t, y, args, **kwargs):
        dy = ravel_pytree(self.model.vector_field(t, y, args))[0]
        x = ravel_pytree(y)[0]
        return jnp.sqrt(jnp.mean(dy**2)) < 1e-10 + 1e-8 * jnp.sqrt(jnp.mean(x**2))


def _newton(g, x_start, tol: tuple[float, float], max_steps: int):
    sol = optx.root_find(lambda x, _: g(x), optx.Newton(rtol=tol[0], atol=tol[1]),
                         x_start, max_steps=max_steps, throw=False)
    ok = (sol.result == optx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.value))
    return sol.value, ok


def _left_orthant(x: Array, x0: Array, atol: float) -> Array:
    """True when ``x`` has a clearly negative entry although ``x0`` has none."""
    scale = jnp.max(jnp.abs(x0)) + atol
    return jnp.all(x0 >= 0) & jnp.any(x < -1e-6 * scale)


def steady_state(
    model: AbstractProcess | list[AbstractProcess],
    *,
    y0: Mapping[Any, ArrayLike] | State | None = None,
    args: Any = None,
    t: float = 0.0,
    conservation: bool | ArrayLike = True,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 100,
    integrate: float | None = 1e7,
    solver: diffrax.AbstractSolver | None = None,
    throw: bool = True,
) -> SteadyState:
    r"""A steady state :math:`f(y^*) = 0` of a continuous model, its Jacobian and stability.

    The model's vector field (every continuous process, derived variables included) is
    solved by Newton's method (:class:`optimistix.Newton`) from the initial state (or
    ``y0``). If Newton fails, or lands on a state with negative entries although the
    start had none (a non-physical root), the model is integrated from the start until it
    stops changing (``diffrax.steady_state_event``, at most ``integrate`` time units, with
    :func:`jaxcell.simulate`'s default stiff solver) and Newton polishes the result.

    **Conservation laws.** With ``conservation=True`` the linear conservation laws are
    found from the model itself: the directions :math:`c` with :math:`c^\top J(y) = 0`
    at the start and at three nearby states (so they hold for the model, not by accident
    at one point). Their totals :math:`c^\top y` are those of the start, and the steady
    state is sought in that class by the square reduced system
    :math:`u_i^\top f(y) = 0` (free directions), :math:`c^\top (y - y_0) = 0`
    (conserved). The eigenvalues are those of the Jacobian restricted to the class
    (the structural zeros are ``nan``), and ``stable`` asks that all be negative.
    ``conservation=False`` uses none.

    **Derivatives.** The result is differentiable with respect to parameters and the
    initial totals by the implicit function theorem (optimistix's ``ImplicitAdjoint``):
    ``jax.grad`` of a function of ``steady_state(...).y`` costs one linear solve, not a
    differentiation through Newton's iterations or the integration. It works under
    ``jit`` and ``vmap`` (shapes are static; the number of conservation laws is data).

    Args:
        model: a process or list of processes (no events or discrete processes).
        y0: initial-state overrides, as for :func:`jaxcell.simulate`: the starting guess
            and the source of the conserved totals.
        args: passed to the processes.
        t: the time at which to evaluate the vector field (for autonomous models, any).
        conservation: ``True`` (detect) or ``False``.
        rtol: Newton's relative tolerance on the state.
        atol: Newton's absolute tolerance on the state.
        max_steps: Newton's iteration limit.
        integrate: the integration horizon of the fallback; ``None`` for Newton only.
        solver: the fallback's diffrax solver (default: :func:`jaxcell.default_solver`).
        throw: raise if no steady state was found (``False``: see ``converged``).

    Returns:
        A :class:`SteadyState`.

    Raises:
        SimulationError: the model has event or discrete processes, or (``throw``) no
            steady state was found.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.analysis import steady_state
        >>> net = jc.models.michaelis_menten_mass_action(e0=0.5)
        >>> ss = steady_state(net)   # E + C and S + C + P are conserved
        >>> round(float(ss["P"]), 6), round(float(ss["E"]), 6), int(ss.n_conserved)
        (2.0, 0.5, 2)
    """
    where = "steady_state"
    comp = _checked_model(model, where)
    if not isinstance(conservation, bool):
        raise SimulationError(f"{where}: conservation must be True or False; got "
                              f"{type(conservation).__name__}.")
    if integrate is not None and not (isinstance(integrate, (int, float)) and integrate > 0):
        raise SimulationError(f"{where}: integrate must be a positive time horizon or None; "
                              f"got {integrate!r}.")
    state0 = initial_state(comp, y0)
    return _steady_state(comp, state0, jnp.asarray(t, dtype=float), args,
                         conservation=conservation, tol=(float(rtol), float(atol)),
                         max_steps=int(max_steps), integrate=integrate, solver=solver,
                         throw=throw)


@eqx.filter_jit
def _steady_state(comp: Composite, state0: State, t, args, *, conservation: bool,
                  tol: tuple[float, float], max_steps: int, integrate: float | None,
                  solver, throw: bool) -> SteadyState:
    f, x0, unravel = flat_field(comp, state0, t, args)
    n = x0.shape[0]
    if conservation:
        basis, conserved = _conservation_basis(f, jax.lax.stop_gradient(x0),
                                               jax.random.key(0))
        basis = jax.lax.stop_gradient(basis)
    else:
        basis, conserved = jnp.eye(n, dtype=x0.dtype), jnp.zeros(n, dtype=bool)
    g = reduced_system(f, basis, conserved, x0)
    x_first = jax.lax.stop_gradient(x0)
    x_newton, ok = _newton(g, x_first, tol, max_steps)
    ok = ok & ~_left_orthant(x_newton, x0, tol[1])

    def by_least_squares(_):
        # Levenberg-Marquardt on |g|^2: globally more robust than plain Newton
        sol = optx.least_squares(lambda x, _: g(x), optx.LevenbergMarquardt(
            rtol=tol[0], atol=tol[1]), x_first, max_steps=20 * max_steps, throw=False)
        return _newton(g, sol.value, tol, max_steps)

    x_newton, ok = jax.lax.cond(ok, lambda _: (x_newton, ok), by_least_squares, None)
    x_newton = jax.lax.stop_gradient(x_newton)
    ok = ok & ~_left_orthant(x_newton, x0, tol[1])
    if integrate is None:
        x_start, used = x_newton, jnp.asarray(False)
    else:
        def by_integration(_):
            from .._simulate import simulate  # the one engine

            ev = diffrax.Event(_Settled(comp))
            traj = simulate(comp, t, t + integrate, y0=state0, args=args,
                            saveat=diffrax.SaveAt(t1=True), event=ev, throw=False,
                            solver=solver, max_steps=100_000)
            x_end = ravel_pytree(traj.final_state())[0]
            return jax.lax.stop_gradient(x_end)

        x_start = jax.lax.cond(ok, lambda _: x_newton, by_integration, None)
        used = ~ok
    x_star, ok2 = _newton(g, jax.lax.stop_gradient(x_start), tol, max_steps)
    ok2 = ok2 & ~_left_orthant(x_star, x0, tol[1])
    res = jnp.max(jnp.abs(f(x_star)))
    f_scale = jnp.max(jnp.abs(f(x0)))
    ok2 = ok2 & (res <= 1e-7 * f_scale + 1e-10 * (1.0 + jnp.max(jnp.abs(x_star))))
    if throw:
        x_star = eqx.error_if(
            x_star, ~ok2,
            "steady_state: no steady state found: Newton did not converge from the "
            "start" + ("" if integrate is None else " nor after integrating towards "
                       "one") + ". Try another y0, a longer `integrate`, or throw=False.")
    jac = jax.jacfwd(f)(x_star)
    eig = reduced_eigenvalues(jax.lax.stop_gradient(jac), basis, conserved)
    full = comp.derived_at(t, unravel(x_star), args)
    return SteadyState(
        t=t, y=x_star, state=StateAt(full, comp.spec), jacobian=jac, eigenvalues=eig,
        conservation=basis, conserved=conserved, residual=res,
        converged=ok2, integrated=used,
    )


def state_names(model: Composite) -> list[str]:
    """Names of the entries of the flat owned-state vector, in ravel order."""
    state0 = nest_state(model.initial_values())
    leaves, _ = jax.tree_util.tree_flatten_with_path(state0)
    labels = {p: v.labels for p, v in model.spec.owned}
    out = []
    for keypath, leaf in leaves:
        path = tuple(k.key for k in keypath)  # pyright: ignore
        lab = labels.get(path)
        size = int(np.prod(np.shape(leaf)))
        if lab is not None and len(lab) == size:
            out += [f"{path_str(path)}/{x}" for x in lab]
        elif size == 1:
            out.append(path_str(path))
        else:
            out += [f"{path_str(path)}[{i}]" for i in range(size)]
    return out

