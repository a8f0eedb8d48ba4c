"""profile(): profile likelihood of one parameter."""

from __future__ import annotations

import dataclasses

import numpy as np

from .._errors import InferenceError
from ._fit import FitResult, as_objective, fit
from ._objective import AbstractObjective
from ._transforms import AbstractTransform


@dataclasses.dataclass(frozen=True)
class Profile:
    """A profile likelihood.

    Attributes:
        name: the profiled parameter.
        x: its fixed values on the search scale.
        values: the same on the natural scale.
        nll: the minimum of the nll over the other parameters at each fixed value.
    """

    name: str
    x: np.ndarray
    values: np.ndarray
    nll: np.ndarray

    @property
    def range(self) -> float:
        """``max(nll) - min(nll)``: close to 0 for a flat (non-identifiable) profile."""
        return float(np.max(self.nll) - np.min(self.nll))


def profile(objective: AbstractObjective, result: FitResult, name: str, *, n_points: int = 11,
            span: float = 1.0, method=None, max_steps: int = 200) -> Profile:
    r"""Profile likelihood of parameter ``name``:
    :math:`\mathrm{PL}(\theta_i) = \min_{\theta_{j \ne i}} \mathrm{nll}(\theta)`.

    The parameter is fixed at ``n_points`` values spanning ``best ± span`` on its search
    scale (on a log scale ``span=1`` is a factor ``e`` either side), and the others are
    re-optimised from the best fit at each. A flat profile (``Profile.range`` near 0)
    means the data do not identify the parameter; the 95 % confidence interval of an
    identifiable one is where the profile stays within 1.92 of its minimum.

    Arguments:
        objective: the :class:`AbstractObjective` that was fitted (or a
            :class:`jaxcell.petab.PetabProblem`).
        result: its :class:`FitResult` (the grid is centred on ``result.x``).
        name: the profiled parameter, one of ``objective.parameters.names``.
        n_points: number of grid points.
        span: half-width of the grid on the parameter's search scale.
        method: as in :func:`fit` (default :func:`default_method`).
        max_steps: maximum iterations of each re-fit.

    Returns:
        A :class:`Profile`.

    Raises:
        InferenceError: ``objective`` is not an objective, or ``name`` is not one of
            its free parameters.

    References:
        Raue, A. et al. (2009). Structural and practical identifiability analysis of
        partially observed dynamical models by exploiting the profile likelihood.
        Bioinformatics 25:1923–1929.
    """
    objective = as_objective(objective, "profile")
    names = objective.parameters.names
    if name not in names:
        raise InferenceError(f"profile: {name!r} is not a free parameter; they are "
                             f"{names}.")
    i = names.index(name)
    grid = result.x[i] + np.linspace(-span, span, int(n_points))
    nll, natural = [], []
    for xi in grid:
        start = np.asarray(result.x, float).copy()
        start[i] = xi
        scale = objective.parameters.scales[i]
        natural.append(float(scale.forward(xi)) if isinstance(scale, AbstractTransform)
                       else float(objective.parameters.values(start)[name]))
        r = fit(objective, method=method, starts=start[None, :], max_steps=max_steps,
                _fixed={i: float(xi)})
        nll.append(r.value)
    return Profile(name, grid, np.asarray(natural), np.asarray(nll))
