"""Fit a PEtab problem (:func:`jaxcell.petab.load_petab`) with :func:`fit`: an adapter
that gives a :class:`~jaxcell.petab.PetabProblem` the interface :func:`fit` uses."""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ..inference._forward import forward_only
from ..sbml._events import STATUS_OK

_SCALE_FORWARD = {
    "lin": lambda x: x,
    "log": jnp.exp,
    "log10": lambda x: 10.0 ** x,
}


_K = 50.0  # log(2πσ²) + K > 0 for σ > 1e-11
_FAILED_RESIDUAL = 1e8
#: weight of the bound penalty: residual ``W·(x - upper)`` above, ``W·(lower - x)`` below.
_BOUND_WEIGHT = 1e4


class PetabParameters(eqx.Module):
    """The estimated parameters of a PEtab problem as :func:`fit` sees them: the search
    vector is ``x`` of :meth:`PetabProblem.nllh` (each parameter on its PEtab
    ``parameterScale``), bounds are the PEtab bounds on that scale, and every random
    start is uniform within them.

    Attributes:
        names: the PEtab ``parameterId`` of the estimated parameters.
        scales: their ``parameterScale``.
        lower, upper: bounds on the parameter scale.
        nominal: the nominal values on the parameter scale.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    scales: tuple[str, ...] = eqx.field(static=True)
    lower: tuple[float, ...] = eqx.field(static=True)
    upper: tuple[float, ...] = eqx.field(static=True)
    nominal: tuple[float, ...] = eqx.field(static=True)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def x0(self) -> Array:
        """The nominal point on the parameter scale."""
        return jnp.asarray(self.nominal, dtype=float)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` on the parameter scale."""
        return np.asarray(self.lower, dtype=float), np.asarray(self.upper, dtype=float)

    def values(self, x: ArrayLike) -> dict[str, Array]:
        """``{parameterId: linear-scale value}`` for a search vector ``x``."""
        x = jnp.asarray(x)
        return {n: _SCALE_FORWARD[s](x[i]) for i, (n, s) in
                enumerate(zip(self.names, self.scales))}

    def sample_starts(self, key: Any, n: int) -> Array:
        """``n`` search vectors, uniform within :attr:`bounds` on the parameter scale."""
        lo, hi = self.bounds
        u = jax.random.uniform(key, (int(n), len(self.names)), dtype=float)
        return jnp.asarray(lo)[None, :] + u * jnp.asarray(hi - lo)[None, :]


class PetabObjective(eqx.Module):
    """A :class:`~jaxcell.petab.PetabProblem` as an objective for :func:`fit`: ``nll`` is
    the problem's ``nllh`` (priors excluded), minimised by Levenberg–Marquardt when
    every noise model is normal (see :attr:`is_least_squares`), else
    :class:`optimistix.BFGS`. All ``starts`` that :func:`fit` draws are uniform within
    the PEtab bounds (the nominal point is not used as a start unless given
    explicitly).

    **Bounds.** The PEtab bounds are part of the problem. The default
    :class:`LevenbergMarquardt` projects every step into them (:attr:`search_bounds`).
    The other optimisers (optimistix, optax) are unconstrained, so for them the
    objective gets a steep quadratic penalty outside the bounds,
    ``(10⁴ · distance)² / 2`` (zero within), and :func:`fit` clips each end point
    into the bounds (:meth:`project`) and reports the ``nllh`` there: every reported
    point is feasible.

    Build it with :func:`petab_objective`; :func:`fit` also accepts the problem itself.
    """

    problem: Any = eqx.field(static=True)
    parameters: PetabParameters

    #: :func:`fit` draws every start at random (none at ``parameters.x0``).
    random_starts_only = True
    #: :func:`fit` stops a start whose ``nllh`` stalls (see its ``ftol``).
    default_ftol = 1e-8

    def __init__(self, problem: Any):
        self.problem = problem
        self.parameters = PetabParameters(
            tuple(problem.parameter_ids), tuple(problem.parameter_scales),
            tuple(float(v) for v in problem.lower_bounds),
            tuple(float(v) for v in problem.upper_bounds),
            tuple(float(v) for v in np.asarray(problem.x_nominal)))

    @property
    def simulate_kwargs(self) -> dict[str, Any]:
        """The solver settings are the problem's (``load_petab`` arguments); with
        ``forward_mode=True`` this says so, and :func:`fit` builds Jacobians with
        ``jax.jacfwd``."""
        return {"adjoint": diffrax.ForwardMode()} if self.problem.forward_mode else {}

    @property
    def is_least_squares(self) -> bool:
        """Whether every observable has normal noise: then ``nll = ||r||²/2 + c`` with
        residuals ``r`` = the weighted errors ``(ỹ - h̃)/σ`` and, per measurement,
        ``sqrt(log(2πσ²) + K)`` (so estimated noise parameters stay in a sum of
        squares; ``K`` = 50), and :func:`fit` uses Levenberg–Marquardt."""
        return all(o["dist"] == "normal" for o in self.problem._observables)

    def _violation(self, x: Array) -> Array:
        lo, hi = (jnp.asarray(b) for b in self.parameters.bounds)
        return _BOUND_WEIGHT * (jnp.maximum(x - hi, 0.0) + jnp.maximum(lo - x, 0.0))

    def _nll(self, x: Array) -> Array:
        return self.problem._nllh_impl(x) + 0.5 * jnp.sum(self._violation(x) ** 2)

    @property
    def search_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The PEtab bounds on the parameter scale: :class:`LevenbergMarquardt` keeps
        every iterate within them."""
        return self.parameters.bounds

    def project(self, x: Array) -> Array:
        """``x`` clipped into the PEtab bounds (what :func:`fit` reports)."""
        lo, hi = (jnp.asarray(b) for b in self.parameters.bounds)
        return jnp.clip(x, lo, hi)

    def _residuals(self, x: Array) -> Array:
        groups, status = self.problem._predictions(x)
        parts = []
        for o, y, h, sigma in groups:
            if o["trans"] == "lin":
                r = y - h
            elif o["trans"] == "log":
                r = jnp.log(y) - jnp.log(h)
            else:
                r = jnp.log10(y) - jnp.log10(h)
            parts.append(r / sigma)
            parts.append(jnp.sqrt(jnp.maximum(jnp.log(2 * jnp.pi * sigma**2) + _K, 0.0)))
        res = jnp.concatenate(parts)
        ok = jnp.all(status == STATUS_OK)
        return jnp.where(ok & jnp.all(jnp.isfinite(res)), res, _FAILED_RESIDUAL)

    def nll_constant(self) -> Array:
        """``nll - ||residuals||²/2``: ``-K/2`` per measurement plus the Jacobian terms of
        log-transformed observables."""
        total = 0.0
        for o in self.problem._observables:
            y = np.asarray(o["y"])
            total -= 0.5 * _K * len(y)
            if o["trans"] == "log":
                total += float(np.sum(np.log(y)))
            elif o["trans"] == "log10":
                total += float(np.sum(np.log(y * np.log(10.0))))
        return jnp.asarray(total)

    def nll(self, x: ArrayLike) -> Array:
        """The problem's negative log-likelihood at ``x`` (compiled once)."""
        return self.problem.nllh(x)

    def value_and_grad(self, x: ArrayLike) -> tuple[Array, Array]:
        """``(nllh(x), ∇nllh(x))`` (compiled once)."""
        return _value_and_grad_jit(self, jnp.asarray(x, dtype=float))


@eqx.filter_jit
def _value_and_grad_jit(objective: PetabObjective, x: Array) -> tuple[Array, Array]:
    nll = objective.problem._nllh_impl
    if objective.problem.forward_mode:
        nll = forward_only(nll)
    return jax.value_and_grad(nll)(x)


def is_petab_problem(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`jaxcell.petab.PetabProblem`."""
    from ._problem import PetabProblem

    return isinstance(obj, PetabProblem)


def petab_objective(problem: Any) -> PetabObjective:
    """Wrap a :class:`~jaxcell.petab.PetabProblem` for :func:`fit` (which also does this
    itself when given the problem).

    Examples:
        >>> from jaxcell.petab import load_petab
        >>> from jaxcell.inference import fit
        >>> problem = load_petab("tests/data/petab/Boehm_JProteomeRes2014/"
        ...                      "Boehm_JProteomeRes2014.yaml")  # doctest: +SKIP
        >>> result = fit(problem, starts=20)  # doctest: +SKIP
        >>> round(result.value, 3)  # doctest: +SKIP
        138.222
    """
    if isinstance(problem, PetabObjective):
        return problem
    if not is_petab_problem(problem):
        raise TypeError(f"petab_objective: expected a jaxcell.petab.PetabProblem (from "
                        f"load_petab); got {type(problem).__name__}.")
    return PetabObjective(problem)
