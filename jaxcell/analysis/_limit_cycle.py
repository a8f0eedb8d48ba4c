"""Limit cycles by shooting: the periodic orbit and its period as the root of
``phi_T(x0) = x0`` with a phase condition, and its Floquet multipliers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Bool, Complex, Float

from .._composite import Composite
from .._custom_types import State
from .._engine import initial_state
from .._errors import SimulationError
from .._process import AbstractProcess
from .._trajectory import Trajectory
from ._steady_state import StateAt, _checked_model, _conservation_basis, flat_field


class LimitCycle(eqx.Module):
    """A periodic orbit found by :func:`limit_cycle`.

    Attributes:
        period: the period.
        y: the flat owned state at the orbit's phase point.
        state: the full state there, addressable by name.
        multipliers: Floquet multipliers (eigenvalues of the monodromy matrix on the
            conservation class), sorted by decreasing modulus; one of them is the
            trivial multiplier 1 (along the flow); ``nan`` for conserved directions.
        stable: every non-trivial multiplier lies inside the unit circle.
        orbit: one period of the orbit, sampled at ``samples`` equally spaced times.
        residual: ``max |phi_T(y) - y|``.
        converged: whether Newton's method converged.
    """

    period: Float[Array, ""]
    y: Float[Array, " n"]
    state: StateAt
    multipliers: Complex[Array, " n"]
    stable: Bool[Array, ""]
    orbit: Trajectory
    residual: Float[Array, ""]
    converged: Bool[Array, ""]

    def __getitem__(self, key: Any) -> Array:
        return self.state[key]


class _Shooting(eqx.Module):
    model: Composite
    template: State
    args: Any
    basis: Array
    conserved: Array
    x_ref: Array
    normal: Array
    t0: Array
    solver: Any
    controller: Any

    def flow(self, x0, period):
        from .._simulate import simulate  # the one engine

        _, _, unravel = flat_field(self.model, self.template, self.t0, self.args)
        traj = simulate(self.model, self.t0, self.t0 + period, y0=unravel(x0),
                        args=self.args, saveat=diffrax.SaveAt(t1=True),
                        solver=self.solver, stepsize_controller=self.controller,
                        adjoint=diffrax.ForwardMode(), max_steps=1_000_000)
        return ravel_pytree(traj.final_state())[0]

    def residual(self, z):
        x0, period = z[:-1], z[-1]
        x1 = self.flow(x0, period)
        eqs = jnp.where(self.conserved, self.basis @ (x0 - self.x_ref),
                        self.basis @ (x1 - x0))
        phase = self.normal @ (x0 - self.x_ref)
        return jnp.concatenate([eqs, phase[None]])


@eqx.filter_jit
def _newton_step(problem: _Shooting, z):
    r = problem.residual(z)
    jac = jax.jacfwd(problem.residual)(z)
    dz = jnp.linalg.solve(jac, -r)
    return z + dz, jnp.max(jnp.abs(r)), jnp.max(jnp.abs(dz))


@eqx.filter_jit
def _monodromy(problem: _Shooting, x0, period):
    return jax.jacfwd(lambda x: problem.flow(x, period))(x0)


def limit_cycle(
    model: AbstractProcess | list[AbstractProcess],
    period: float,
    *,
    y0: Mapping[Any, ArrayLike] | State | None = None,
    args: Any = None,
    t: float = 0.0,
    transient: float = 0.0,
    conservation: bool = True,
    tol: float = 1e-9,
    max_steps: int = 25,
    samples: int = 200,
    solver: diffrax.AbstractSolver | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
) -> LimitCycle:
    r"""A limit cycle, its exact period and its Floquet multipliers, by single shooting.

    Newton's method solves :math:`\varphi_T(x_0) = x_0` for the point :math:`x_0` and
    the period :math:`T` together, with the phase fixed by the hyperplane through the
    starting point orthogonal to the flow (:math:`f(x_s)\cdot(x_0 - x_s) = 0`). The
    flow :math:`\varphi_T` is :func:`jaxcell.simulate` (the one engine) and its
    derivatives are forward-mode sensitivities, so each Newton step is one compiled
    call. Conservation laws are handled as in :func:`steady_state` (the totals of the
    start are kept). The Floquet multipliers are the eigenvalues of the monodromy
    matrix :math:`\partial\varphi_T/\partial x_0`; the cycle is stable when all but the
    trivial multiplier 1 lie inside the unit circle.

    The period of a stable cycle measured this way does not depend on where peaks fall
    on a save grid, so it is exact to the integration tolerance. Start close to the
    cycle: simulate past the transient (``transient`` does that here) and guess the
    period, e.g. with :func:`jaxcell.analysis.period`, or start near a Hopf point found
    by :func:`continuation` with :math:`T \approx 2\pi/\omega`.

    Args:
        model: a process or list of processes (no events or discrete processes).
        period: a guess of the period.
        y0: initial-state overrides (the starting point, and the conserved totals).
        args: passed to the processes.
        t: the start time (autonomous models: any).
        transient: simulate this long first and start from the end point.
        conservation: keep linear conservation laws (as :func:`steady_state`).
        tol: Newton's tolerance on the residual and the step (relative to the state).
        max_steps: Newton's iteration limit.
        samples: points of one period stored in ``orbit``.
        solver: the diffrax solver (default :func:`jaxcell.default_solver`).
        stepsize_controller: default ``diffrax.PIDController(rtol=1e-10, atol=1e-12)``.

    Returns:
        A :class:`LimitCycle`.

    Raises:
        SimulationError: bad arguments, or Newton did not converge (not close enough to
            a cycle, or the orbit is a steady state).
    """
    where = "limit_cycle"
    comp = _checked_model(model, where)
    if not (np.isfinite(period) and period > 0):
        raise SimulationError(f"{where}: period must be a positive guess; got {period!r}.")
    if not (np.isfinite(transient) and transient >= 0):
        raise SimulationError(f"{where}: transient must be >= 0; got {transient!r}.")
    from .._simulate import default_solver, simulate

    controller = stepsize_controller or diffrax.PIDController(rtol=1e-10, atol=1e-12)
    template = initial_state(comp, y0)
    solver = solver or default_solver(int(ravel_pytree(template)[0].shape[0]))
    t0 = jnp.asarray(t, dtype=float)
    if transient > 0:
        traj = simulate(comp, t, t + transient, y0=template, args=args,
                        saveat=diffrax.SaveAt(t1=True), solver=solver,
                        stepsize_controller=controller, max_steps=1_000_000)
        template = traj.final_state()
    f, x_start, _ = flat_field(comp, template, t0, args)
    n = x_start.shape[0]
    if conservation:
        basis, conserved = _conservation_basis(f, x_start, jax.random.key(0))
    else:
        basis, conserved = jnp.eye(n), jnp.zeros(n, bool)
    fx = f(x_start)
    if not float(jnp.linalg.norm(fx)) > 0:
        raise SimulationError(f"{where}: the vector field vanishes at the start (a steady "
                              f"state); start on or near the cycle.")
    normal = fx / jnp.linalg.norm(fx)
    problem = _Shooting(comp, template, args, basis, conserved, x_start, normal, t0,
                        solver, controller)
    z = jnp.concatenate([x_start, jnp.asarray([period], dtype=x_start.dtype)])
    scale = 1.0 + float(jnp.max(jnp.abs(x_start)))
    converged = False
    res = np.inf
    for _ in range(max_steps):
        z, res, step = _newton_step(problem, z)
        res, step = float(res), float(step)
        if not np.all(np.isfinite(np.asarray(z))) or float(z[-1]) <= 0:
            break
        if res <= tol * scale and step <= tol * (1.0 + float(jnp.max(jnp.abs(z)))):
            converged = True
            break
        if step <= tol * 1e-3 * scale:  # no further progress possible
            converged = res <= 1e3 * tol * scale
            break
    if not converged:
        raise SimulationError(
            f"{where}: Newton's method did not converge in {max_steps} steps (last "
            f"residual {res:.3g}); start closer to the cycle (a longer transient) or "
            f"give a better period guess.")
    x0, T = z[:-1], z[-1]
    mono = _monodromy(problem, x0, T)
    free = (~conserved).astype(mono.dtype)
    proj = basis.T @ (free[:, None] * basis)
    mu = jnp.linalg.eigvals(proj @ mono @ proj)
    mu = mu[jnp.argsort(-jnp.abs(mu))]
    n_free = int(jnp.sum(~conserved))
    mu = jnp.where(jnp.arange(n) < n_free, mu, jnp.nan + 0j)
    # the trivial multiplier is the one closest to 1
    mu_np = np.asarray(mu)
    finite = np.isfinite(mu_np)
    trivial = int(np.nanargmin(np.where(finite, np.abs(mu_np - 1.0), np.inf)))
    others = np.delete(mu_np[finite], [np.flatnonzero(finite).tolist().index(trivial)])
    stable = bool(np.all(np.abs(others) < 1.0))
    _, _, unravel = flat_field(comp, template, t0, args)
    orbit = simulate(comp, t, t + T, y0=unravel(x0), args=args,
                     saveat=jnp.linspace(t, t + T, samples), solver=solver,
                     stepsize_controller=controller, max_steps=1_000_000)
    full = comp.derived_at(t0, unravel(x0), args)
    return LimitCycle(period=T, y=x0, state=StateAt(full, comp.spec), multipliers=mu,
                      stable=jnp.asarray(stable), orbit=orbit,
                      residual=jnp.asarray(res), converged=jnp.asarray(converged))



