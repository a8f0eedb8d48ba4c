"""DiffusingField: a concentration field on a grid with diffusion, decay and sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    Ports,
    as_parameter_array,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import Path, StateView, Var
from ._grid import AbstractBoundary, Grid, NoFlux, as_boundaries

_NONNEGATIVE = ("D", "decay")


class DiffusingField(AbstractContinuousProcess):
    r"""A diffusing, decaying field on a regular grid (finite volumes).

    ``dc/dt = D ∇²c - decay · c + source``, with ``∇²`` the finite-volume Laplacian of
    :class:`Grid` and the boundary conditions given per side. It owns
    ``("tissue", name, "concentration")``, an array of the grid's shape; other processes
    (cells secreting or taking up the field, a reaction) read it and add to its rate
    through the shared state.

    Parameters (pytree leaves, fittable): ``D`` (diffusion coefficient, length²/time),
    ``decay`` (first-order decay rate), ``source`` (production per unit volume and
    time, a scalar or an array of the grid's shape; may be negative, a sink). ``D`` and
    ``decay`` must be non-negative and every parameter finite: a violation raises
    :class:`~jaxcell.ModelError` at construction and the same message from inside
    ``jit``/``vmap`` (:func:`equinox.error_if`). Dirichlet boundary values are
    leaves of the boundary objects. ``boundary``: one condition for every side
    (default :class:`NoFlux`), one per axis, or ``(low, high)`` pairs per axis.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.tissue import DiffusingField, Grid
        >>> field = DiffusingField("morphogen", Grid((8, 8)), D=1.0, initial=1.0)
        >>> traj = jc.simulate(field, 0.0, 1.0, saveat=[1.0])
        >>> round(float(traj["tissue/morphogen/concentration"][-1].sum()), 6)
        64.0
    """

    name: str
    grid: Grid
    boundaries: tuple[tuple[AbstractBoundary, AbstractBoundary], ...]
    initial: Array
    params: dict[str, Array]

    def __init__(self, name: str, grid: Grid, *, D: ArrayLike, decay: ArrayLike = 0.0,
                 source: ArrayLike = 0.0, initial: ArrayLike = 0.0,
                 boundary: Any = None):
        owner = f"DiffusingField {name!r}"
        if not isinstance(grid, Grid):
            raise ModelError(f"{owner}: grid must be a jaxcell.tissue.Grid; got "
                             f"{type(grid).__name__}.")
        self.name = name
        self.grid = grid
        self.boundaries = as_boundaries(grid, NoFlux() if boundary is None else boundary)
        init = as_parameter_array(owner, "initial", initial)
        self.initial = self._on_grid(owner, "initial", init)
        params = {"D": as_parameter_array(owner, "D", D),
                  "decay": as_parameter_array(owner, "decay", decay),
                  "source": as_parameter_array(owner, "source", source)}
        for k in ("D", "decay"):
            if params[k].shape != ():
                raise ModelError(f"{owner}: {k} must be a scalar; got shape "
                                 f"{params[k].shape}.")
        if params["source"].shape not in ((), grid.shape):
            raise ModelError(f"{owner}: source must be a scalar or have the grid's shape "
                             f"{grid.shape}; got shape {params['source'].shape}.")
        check_parameters(owner, params, nonnegative=_NONNEGATIVE)
        self.params = params

    def _on_grid(self, owner, what, value):
        if value.shape == ():
            return jnp.full(self.grid.shape, value)
        if value.shape != self.grid.shape:
            raise ModelError(f"{owner}: {what} must be a scalar or have the grid's shape "
                             f"{self.grid.shape}; got shape {value.shape}.")
        return value

    @property
    def path(self) -> Path:
        """``("tissue", name, "concentration")``: the field, of the grid's shape."""
        return ("tissue", self.name, "concentration")

    def ports(self) -> Ports:
        return Ports(owns={self.path: Var(self.grid.shape)})

    def initial_values(self) -> dict[Path, Array]:
        return {self.path: self.initial}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> DiffusingField:
        owner = f"DiffusingField {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new, nonnegative=_NONNEGATIVE)
        return eqx.tree_at(lambda f: f.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        c = state[self.path]
        p = checked_parameters(f"DiffusingField {self.name!r}", self.params,
                               nonnegative=_NONNEGATIVE)
        lap = self.grid.laplacian(c, self.boundaries)
        return {self.path: p["D"] * lap - p["decay"] * c + p["source"]}
