"""SoftSpheres: centre-based cell mechanics (overdamped soft spheres)."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
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

_NONNEGATIVE = ("radius", "stiffness", "adhesion", "adhesion_range")
_POSITIVE = ("drag",)


class SoftSpheres(AbstractContinuousProcess):
    r"""Cells as soft spheres that push apart when they overlap and stick when close.

    Overdamped motion, ``drag · dx_i/dt = sum_j F_ij``, with pair forces along the line
    of centres (``d = |x_i - x_j|``, ``s = r_i + r_j``, ``e = (x_i - x_j) / d``):

    - repulsion ``stiffness · (s - d) · e`` while the spheres overlap (``d < s``);
    - adhesion ``-adhesion · (d - s) · e`` while ``s <= d < s + adhesion_range`` (a
      spring pulling neighbours back into contact; zero beyond the range).

    The forces are equal and opposite, so the centre of mass does not move. Owns
    ``("cellular", name, "position")`` of shape ``(N, dim)`` (dim 2 or 3); radii are a
    per-cell parameter. All pairs are evaluated as one ``(N, N)`` array operation,
    suited to up to a few thousand cells.

    With a ``population`` (a :class:`jaxcell.cellular.Population` of capacity ``N``),
    only alive cells exert and feel forces; free slots stay where they are. Two cells at
    exactly the same point have no direction to push along and feel no force from each
    other, so divide positions with :class:`jaxcell.cellular.Displace`.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.tissue import SoftSpheres
        >>> pair = SoftSpheres("cells", [[0.0, 0.0], [1.5, 0.0]], radius=1.0)
        >>> traj = jc.simulate(pair, 0.0, 20.0, saveat=[20.0])
        >>> x = traj["cellular/cells/position"][-1]
        >>> round(float(x[1, 0] - x[0, 0]), 4)  # pushed apart to contact, 2 r
        2.0
    """

    name: str
    initial: Array
    params: dict[str, Array]
    alive: Path | None = eqx.field(static=True)

    def __init__(self, name: str, positions: ArrayLike, *, radius: ArrayLike = 1.0,
                 stiffness: ArrayLike = 1.0, adhesion: ArrayLike = 0.0,
                 adhesion_range: ArrayLike = 0.0, drag: ArrayLike = 1.0,
                 population=None):
        owner = f"SoftSpheres {name!r}"
        x = as_parameter_array(owner, "positions", positions)
        if x.ndim != 2 or x.shape[1] not in (2, 3) or x.shape[0] < 1:
            raise ModelError(f"{owner}: positions must have shape (N, 2) or (N, 3); got "
                             f"{x.shape}.")
        self.name = name
        self.initial = x
        self.alive = None
        if population is not None:
            from ..cellular import Population

            if not isinstance(population, Population):
                raise ModelError(f"{owner}: population must be a jaxcell.cellular."
                                 f"Population; got {type(population).__name__}.")
            if population.capacity != x.shape[0]:
                raise ModelError(f"{owner}: {x.shape[0]} positions but the population "
                                 f"has capacity {population.capacity}; give one position "
                                 f"per slot.")
            self.alive = population.alive_path
        params = {"radius": as_parameter_array(owner, "radius", radius),
                  "stiffness": as_parameter_array(owner, "stiffness", stiffness),
                  "adhesion": as_parameter_array(owner, "adhesion", adhesion),
                  "adhesion_range": as_parameter_array(owner, "adhesion_range",
                                                       adhesion_range),
                  "drag": as_parameter_array(owner, "drag", drag)}
        if params["radius"].shape not in ((), (x.shape[0],)):
            raise ModelError(f"{owner}: radius must be a scalar or one per cell "
                             f"({x.shape[0]}); got shape {params['radius'].shape}.")
        for k, v in params.items():
            if k != "radius" and v.shape != ():
                raise ModelError(f"{owner}: {k} must be a scalar; got shape {v.shape}.")
        check_parameters(owner, params, nonnegative=_NONNEGATIVE, positive=_POSITIVE)
        self.params = params

    @property
    def path(self) -> Path:
        """``("cellular", name, "position")``: cell centres, shape ``(N, dim)``."""
        return ("cellular", self.name, "position")

    def ports(self) -> Ports:
        reads = {} if self.alive is None else {self.alive: Var((self.initial.shape[0],))}
        return Ports(owns={self.path: Var(tuple(self.initial.shape))}, reads=reads)

    def initial_values(self) -> dict[Path, Array]:
        return {self.path: self.initial}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> SoftSpheres:
        owner = f"SoftSpheres {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new, nonnegative=_NONNEGATIVE, positive=_POSITIVE)
        return eqx.tree_at(lambda s: s.params, self, new)

    def forces(self, x: Array, alive: Array | None = None) -> Array:
        """Total pair force on each cell, shape ``(N, dim)`` (only between cells with
        ``alive > 0.5`` when ``alive`` is given)."""
        p = self._checked()
        n = x.shape[0]
        r = jnp.broadcast_to(p["radius"], (n,))
        diff = x[:, None, :] - x[None, :, :]                      # x_i - x_j
        d2 = jnp.sum(diff**2, axis=-1)
        off = ~jnp.eye(n, dtype=bool) & (d2 > 0)
        if alive is not None:
            live = alive > 0.5
            off = off & live[:, None] & live[None, :]
        d = jnp.sqrt(jnp.where(off, d2, 1.0))                     # safe where masked
        s = r[:, None] + r[None, :]
        gap = d - s
        push = p["stiffness"] * jnp.maximum(-gap, 0.0)
        pull = jnp.where((gap >= 0) & (gap < p["adhesion_range"]), p["adhesion"] * gap, 0.0)
        magnitude = jnp.where(off, push - pull, 0.0)
        return jnp.sum((magnitude / d)[:, :, None] * diff, axis=1)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        alive = None if self.alive is None else state[self.alive]
        return {self.path: self.forces(state[self.path], alive) / self._checked()["drag"]}

    def _checked(self) -> dict[str, Array]:
        return checked_parameters(f"SoftSpheres {self.name!r}", self.params,
                                  nonnegative=_NONNEGATIVE, positive=_POSITIVE)
