"""Fit a PEtab problem (:func:`jaxcell.petab.load_petab`) with :func:`fit`: a
:class:`~jaxcell.petab.PetabProblem` as a :class:`jaxcell.inference.AbstractObjective`."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from .._results import RESULTS
from ..inference import AbstractBoundedObjective, AbstractParameters

_SCALE_FORWARD = {
    "lin": lambda x: x,
    "log": jnp.exp,
    "log10": lambda x: 10.0 ** x,
}


_K = 50.0  # log(2πσ²) + K > 0 for σ > 1e-11
_FAILED_RESIDUAL = 1e8


class PetabParameters(AbstractParameters):
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


class PetabObjective(AbstractBoundedObjective):
    """A :class:`~jaxcell.petab.PetabProblem` as a
    :class:`jaxcell.inference.AbstractObjective` for :func:`fit`: ``nll`` is the
    problem's ``nllh`` (priors excluded), minimised by Levenberg–Marquardt when every
    noise model is normal (see :attr:`is_least_squares`), else :class:`optimistix.BFGS`.
    All ``starts`` that :func:`fit` draws are uniform within the PEtab bounds (the
    nominal point is not used as a start unless given explicitly).

    **Bounds.** The PEtab bounds are part of the problem: this is an
    :class:`jaxcell.inference.AbstractBoundedObjective`. The default
    :class:`LevenbergMarquardt` projects every step into them. The other optimisers
    (optimistix, optax) are unconstrained, so for them :func:`fit` adds a steep
    quadratic penalty outside the bounds, ``(10⁴ · distance)² / 2`` (zero within),
    clips each end point into the bounds and reports the ``nllh`` there: every
    reported point is feasible.

    Build it with :func:`petab_objective`; :func:`fit` also accepts the problem itself.
    """

    problem: Any = eqx.field(static=True)
    parameters: PetabParameters

    #: :func:`fit` draws every start at random (none at ``parameters.x0``).
    random_starts_only: ClassVar[bool] = True
    #: :func:`fit` stops a start whose ``nllh`` stalls (see its ``ftol``).
    default_ftol: ClassVar[float] = 1e-8

    def __init__(self, problem: Any):
        self.problem = problem
        self.parameters = PetabParameters(
            tuple(problem.parameter_ids), tuple(problem.parameter_scales),
            tuple(float(v) for v in problem.lower_bounds),
            tuple(float(v) for v in problem.upper_bounds),
            tuple(float(v) for v in np.asarray(problem.x_nominal)))

    @property
    def forward_mode(self) -> bool:
        """The problem's ``forward_mode`` (a :func:`load_petab` argument): then
        :func:`fit` builds every derivative with ``jax.jacfwd``."""
        return bool(self.problem.forward_mode)

    @property
    def is_least_squares(self) -> bool:
        """Whether every observable has normal noise: then ``nll = ||r||²/2 + c`` with
        residuals ``r`` = the weighted errors ``(ỹ - h̃)/σ`` and, per measurement,
        ``sqrt(log(2πσ²) + K)`` (so estimated noise parameters stay in a sum of
        squares; ``K`` = 50), and :func:`fit` uses Levenberg–Marquardt."""
        return all(o["dist"] == "normal" for o in self.problem._observables)

    def nll(self, x: ArrayLike) -> Array:
        """The problem's negative log-likelihood ``nllh`` at ``x`` (compiled once;
        traceable)."""
        return self.problem.nllh(x)

    def residuals(self, x: ArrayLike) -> Array:
        """The residuals of :attr:`is_least_squares` at ``x`` (compiled once;
        traceable).

        Raises:
            InferenceError: some observable's noise is not normal.
        """
        if not self.is_least_squares:
            raise InferenceError("PetabObjective.residuals: the problem is not a sum of "
                                 "squares (an observable's noise distribution is not "
                                 "normal).")
        return _residuals_jit(self, jnp.asarray(x, dtype=float))

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
        ok = jnp.all(status == RESULTS.successful)
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


@eqx.filter_jit
def _residuals_jit(objective: PetabObjective, x: Array) -> Array:
    return objective._residuals(x)


def is_petab_problem(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`jaxcell.petab.PetabProblem`."""
    from ._problem import PetabProblem

    return isinstance(obj, PetabProblem)


def petab_objective(problem: Any) -> PetabObjective:
    """Wrap a :class:`~jaxcell.petab.PetabProblem` for :func:`fit` (which also does this
    itself when given the problem).

    Raises:
        InferenceError: ``problem`` is not a :class:`~jaxcell.petab.PetabProblem`.

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
        raise InferenceError(f"petab_objective: expected a jaxcell.petab.PetabProblem "
                             f"(from load_petab); got {type(problem).__name__}.")
    return PetabObjective(problem)
