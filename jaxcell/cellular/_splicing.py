"""Splicing kinetics (unspliced -> spliced mRNA) per cell, and RNA velocity.

The model of La Manno et al. (2018, Nature 560:494) and Bergen et al. (2020, Nat.
Biotechnol. 38:1408): ``du/dt = alpha - beta u``, ``ds/dt = beta u - gamma s``; the RNA
velocity is ``ds/dt``.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._custom_types import Path
from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    Ports,
    as_parameter_array,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import StateView, Var


def splicing_solution(t: ArrayLike, u0: ArrayLike, s0: ArrayLike, alpha: ArrayLike,
                      beta: ArrayLike, gamma: ArrayLike) -> tuple[Array, Array]:
    """Exact ``(u(t), s(t))`` for constant rates (broadcasting over all arguments).

    ``u = alpha/beta + (u0 - alpha/beta) e^{-beta t}`` and
    ``s = s0 e^{-gamma t} + alpha/gamma (1 - e^{-gamma t})
    + (alpha - beta u0) (e^{-gamma t} - e^{-beta t}) / (gamma - beta)``, where the last
    fraction is evaluated as ``-t e^{-beta t} expm1(x)/x`` with ``x = (beta - gamma) t``,
    which is exact and smooth through ``gamma = beta`` (limit ``-t e^{-beta t}``).
    """
    t, u0, s0, alpha, beta, gamma = jnp.broadcast_arrays(
        *(jnp.asarray(a, dtype=jnp.result_type(float))
          for a in (t, u0, s0, alpha, beta, gamma)))
    eb, eg = jnp.exp(-beta * t), jnp.exp(-gamma * t)
    u = alpha / beta + (u0 - alpha / beta) * eb
    x = (beta - gamma) * t
    small = jnp.abs(x) < 1e-6
    safe_x = jnp.where(small, 1.0, x)
    phi = jnp.where(small, 1.0 + x / 2.0 + x * x / 6.0, jnp.expm1(safe_x) / safe_x)
    s = s0 * eg + alpha / gamma * (1.0 - eg) - (alpha - beta * u0) * t * eb * phi
    return u, s

_RATES = ("alpha", "beta", "gamma")


class Splicing(AbstractContinuousProcess):
    """Unspliced (``u``) and spliced (``s``) mRNA of one gene in each of ``N`` cells.

    ``du/dt = alpha - beta u``, ``ds/dt = beta u - gamma s``. Owns
    ``("cellular", name, "unspliced")`` and ``("cellular", name, "spliced")``, each of
    shape ``(N,)``. Parameters (fittable leaves): ``alpha`` (transcription; a scalar or
    one per cell, e.g. induced and repressed cells), ``beta`` (splicing), ``gamma``
    (degradation of spliced mRNA), each finite and non-negative (checked at
    construction and, with the same message, inside ``jit``/``vmap``).
    ``switch_time`` (a scalar or one per cell; default ``inf``, never) is the time at
    which transcription stops (``alpha`` becomes 0): the on/off model of RNA velocity
    (Bergen et al. 2020), used by the RNA-velocity package to run fitted kinetics
    forward. It is not a fitted parameter.
    The method ``velocity(u, s)`` is the RNA velocity ``ds/dt``; :func:`splicing_solution` is the
    exact solution for constant rates.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import Splicing
        >>> gene = Splicing("gene", n_cells=3, alpha=2.0, beta=1.0, gamma=0.5)
        >>> traj = jc.simulate(gene, 0.0, 40.0, saveat=[40.0])
        >>> [round(float(v), 4) for v in traj["cellular/gene/spliced"][-1]]
        [4.0, 4.0, 4.0]
    """

    name: str
    u0: Array
    s0: Array
    params: dict[str, Array]
    switch_time: Array

    def __init__(self, name: str, n_cells: int, *, alpha: ArrayLike, beta: ArrayLike,
                 gamma: ArrayLike, u0: ArrayLike = 0.0, s0: ArrayLike = 0.0,
                 switch_time: ArrayLike = float("inf")):
        owner = f"Splicing {name!r}"
        n = int(n_cells)
        if n < 1:
            raise ModelError(f"{owner}: n_cells must be positive; got {n_cells}.")
        self.name = name
        params = {k: as_parameter_array(owner, k, v)
                  for k, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma))}
        for k, v in params.items():
            if v.shape not in ((), (n,)):
                raise ModelError(f"{owner}: {k} must be a scalar or one value per cell "
                                 f"({n}); got shape {v.shape}.")
        check_parameters(owner, params, nonnegative=_RATES)
        self.params = params
        init = {}
        for k, v in (("u0", u0), ("s0", s0)):
            a = as_parameter_array(owner, k, v)
            if a.shape not in ((), (n,)):
                raise ModelError(f"{owner}: {k} must be a scalar or one value per cell "
                                 f"({n}); got shape {a.shape}.")
            init[k] = jnp.broadcast_to(a, (n,))
        self.u0, self.s0 = init["u0"], init["s0"]
        sw = jnp.asarray(switch_time, dtype=jnp.result_type(float))
        if sw.shape not in ((), (n,)):
            raise ModelError(f"{owner}: switch_time must be a scalar or one value per "
                             f"cell ({n}); got shape {sw.shape}.")
        if not isinstance(sw, jax.core.Tracer) and bool(jnp.any(jnp.isnan(sw))):
            raise ModelError(f"{owner}: switch_time must not be NaN (inf: never).")
        self.switch_time = jnp.broadcast_to(sw, (n,))

    def _path(self, var: str) -> Path:
        return ("cellular", self.name, var)

    def ports(self) -> Ports:
        n = self.u0.shape[0]
        return Ports(owns={self._path("unspliced"): Var((n,)),
                           self._path("spliced"): Var((n,))})

    def initial_values(self) -> dict[Path, Array]:
        return {self._path("unspliced"): self.u0, self._path("spliced"): self.s0}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Splicing:
        owner = f"Splicing {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new, nonnegative=_RATES)
        return eqx.tree_at(lambda s: s.params, self, new)

    def velocity(self, u: Array, s: Array) -> Array:
        """RNA velocity ``ds/dt = beta u - gamma s``."""
        p = self._checked()
        return p["beta"] * u - p["gamma"] * s

    def _checked(self) -> dict[str, Array]:
        return checked_parameters(f"Splicing {self.name!r}", self.params,
                                  nonnegative=_RATES)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        u, s = state[self._path("unspliced")], state[self._path("spliced")]
        p = self._checked()
        alpha = jnp.where(t < self.switch_time, p["alpha"], 0.0)
        return {self._path("unspliced"): alpha - p["beta"] * u,
                self._path("spliced"): p["beta"] * u - p["gamma"] * s}
