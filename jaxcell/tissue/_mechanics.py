"""SoftSpheres: centre-based cell mechanics (overdamped soft spheres), with the pair
interaction given by a potential object (:class:`Springs`, :class:`PhysiCell`)."""

from __future__ import annotations

import abc
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

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

_NONNEGATIVE = ("radius",)
_POSITIVE = ("drag",)


class AbstractPotential(eqx.Module):
    """The pair interaction of :class:`SoftSpheres`.

    A potential holds its parameters (``params``, pytree leaves, fittable through the
    :class:`SoftSpheres` that uses it) and gives, for every pair of cells, the
    magnitude of the push along ``(x_i - x_j) / d`` (negative: a pull). Concrete
    potentials are final: :class:`Springs` (linear springs, the default) and
    :class:`PhysiCell` (PhysiCell's polynomial potentials).
    """

    params: eqx.AbstractVar[dict[str, Array]]
    nonnegative: eqx.AbstractClassVar[tuple[str, ...]]
    positive: eqx.AbstractClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def check(self, owner: str, n: int) -> None:
        """Raise :class:`~jaxcell.ModelError` (naming ``owner``) unless the parameters
        fit ``n`` cells."""

    @abc.abstractmethod
    def magnitude(self, d: Float[Array, "cells cells"], radius: Float[Array, " cells"],
                  p: Mapping[str, Array]) -> Float[Array, "cells cells"]:
        """The push between cells ``i`` and ``j`` at distance ``d[i, j]``, with the
        (checked) parameters ``p``."""


class Springs(AbstractPotential):
    r"""Linear springs: repulsion while two spheres overlap, adhesion just beyond
    contact (the default potential of :class:`SoftSpheres`).

    With ``s = r_i + r_j``, the push is ``stiffness · (s - d)`` for ``d < s`` and the
    pull ``adhesion · (d - s)`` for ``s <= d < s + adhesion_range`` (zero beyond).
    Parameters (scalars, non-negative): ``stiffness`` (force per length),
    ``adhesion`` (force per length), ``adhesion_range`` (length).

    Examples:
        >>> from jaxcell.tissue import SoftSpheres, Springs
        >>> cells = SoftSpheres("c", [[0.0, 0.0], [1.5, 0.0]],
        ...                     potential=Springs(stiffness=2.0))
        >>> float(cells.forces(cells.initial)[1, 0])  # 2 * (2 - 1.5), pushing +x
        1.0
    """

    params: dict[str, Array]
    nonnegative = ("stiffness", "adhesion", "adhesion_range")
    positive = ()

    def __init__(self, stiffness: ArrayLike = 1.0, adhesion: ArrayLike = 0.0,
                 adhesion_range: ArrayLike = 0.0):
        owner = "Springs"
        self.params = {"stiffness": as_parameter_array(owner, "stiffness", stiffness),
                       "adhesion": as_parameter_array(owner, "adhesion", adhesion),
                       "adhesion_range": as_parameter_array(owner, "adhesion_range",
                                                            adhesion_range)}

    def check(self, owner: str, n: int) -> None:
        for k, v in self.params.items():
            if v.shape != ():
                raise ModelError(f"{owner}: {k} must be a scalar; got shape {v.shape}.")

    def magnitude(self, d, radius, p):
        gap = d - (radius[:, None] + radius[None, :])
        push = p["stiffness"] * jnp.maximum(-gap, 0.0)
        pull = jnp.where((gap >= 0) & (gap < p["adhesion_range"]), p["adhesion"] * gap,
                         0.0)
        return push - pull


class PhysiCell(AbstractPotential):
    r"""PhysiCell's repulsion and adhesion potentials (Ghaffarizadeh et al. 2018).

    For cells at distance ``d`` with radii ``r_i``, ``r_j``, the push (a velocity in
    PhysiCell, with :class:`SoftSpheres`' ``drag = 1``) is

    $$
    c^{\mathrm{rep}}_{ij}\Big(1 - rac{d}{R_{ij}}\Big)^2 \mathbb{1}_{d < R_{ij}}
    - c^{\mathrm{adh}}_{ij}\Big(1 - rac{d}{S_{ij}}\Big)^2 \mathbb{1}_{d < S_{ij}},
    $$

    with ``R_ij = r_i + r_j`` (contact), ``S_ij = ρ_i r_i + ρ_j r_j`` (the reach of
    adhesion), ``c_rep,ij = sqrt(c_rep,i c_rep,j)`` and
    ``c_adh,ij = sqrt(c_adh,i a_ij c_adh,j a_ji)``, where ``a_ij`` is the affinity of
    cell ``i``'s type for cell ``j``'s (1 without ``affinity``). Two equal cells with
    repulsion only separate as ``s(t) = s0 / (1 + 2 c s0 t / R)``, ``s = 1 - d/R``;
    with adhesion they settle at ``d*/R = (1 - q) / (1 - q/ρ)``, ``q = sqrt(c_adh /
    c_rep)`` (``20/21`` for the defaults).

    Arguments:
        c_rep: repulsion strength (velocity; PhysiCell's default 10 µm/min), a
            scalar or one value per cell.
        c_adh: adhesion strength (velocity; default 0.4 µm/min), a scalar or one
            value per cell.
        rho: relative maximum adhesion distance (default 1.25), a scalar or one
            value per cell; at least 1 makes sense (adhesion reaches beyond contact).
        affinity: optional ``(T, T)`` matrix of adhesion affinities between ``T``
            cell types (differential adhesion), with ``types``.
        types: the type of each cell, ``(N,)`` integers in ``[0, T)`` (fixed per slot).

    All parameters are pytree leaves (``types`` is not a parameter), non-negative
    (``rho`` positive).

    References:
        Ghaffarizadeh, A., Heiland, R., Friedman, S. H., Mumenthaler, S. M. &
        Macklin, P. (2018). PhysiCell: an open source physics-based cell simulator for
        3-D multicellular systems. *PLoS Computational Biology* 14(2), e1005991.

    Examples:
        >>> from jaxcell.tissue import PhysiCell, SoftSpheres
        >>> pair = SoftSpheres("c", [[0.0, 0.0], [12.0, 0.0]], radius=8.4125,
        ...                    potential=PhysiCell())
        >>> v = pair.forces(pair.initial)
        >>> round(float(v[1, 0]), 6)   # overlapping: pushed along +x
        0.748642
        >>> float(v.sum())             # equal and opposite
        0.0
    """

    params: dict[str, Array]
    types: Int[Array, " cells"] | None
    nonnegative = ("c_rep", "c_adh", "affinity")
    positive = ("rho",)

    def __init__(self, c_rep: ArrayLike = 10.0, c_adh: ArrayLike = 0.4,
                 rho: ArrayLike = 1.25, *, affinity: ArrayLike | None = None,
                 types: ArrayLike | None = None):
        owner = "PhysiCell"
        params = {"c_rep": as_parameter_array(owner, "c_rep", c_rep),
                  "c_adh": as_parameter_array(owner, "c_adh", c_adh),
                  "rho": as_parameter_array(owner, "rho", rho)}
        if (affinity is None) != (types is None):
            raise ModelError(f"{owner}: differential adhesion needs both affinity (a "
                             f"(T, T) matrix) and types (one per cell); got only "
                             f"{'affinity' if types is None else 'types'}.")
        self.types = None
        if affinity is not None:
            params["affinity"] = as_parameter_array(owner, "affinity", affinity)
            t = np.asarray(types)
            aff = params["affinity"]
            if aff.ndim != 2 or aff.shape[0] != aff.shape[1]:
                raise ModelError(f"{owner}: affinity must be a square (T, T) matrix; got "
                                 f"shape {aff.shape}.")
            if (t.ndim != 1 or not np.issubdtype(t.dtype, np.integer)
                    or (t < 0).any() or (t >= aff.shape[0]).any()):
                raise ModelError(f"{owner}: types must be integers in [0, "
                                 f"{aff.shape[0]}), one per cell; got {t.tolist()}.")
            self.types = jnp.asarray(t, dtype=jnp.int32)
        self.params = params

    def check(self, owner: str, n: int) -> None:
        for k in ("c_rep", "c_adh", "rho"):
            if self.params[k].shape not in ((), (n,)):
                raise ModelError(f"{owner}: PhysiCell {k} must be a scalar or one per "
                                 f"cell ({n}); got shape {self.params[k].shape}.")
        if self.types is not None and self.types.shape != (n,):
            raise ModelError(f"{owner}: PhysiCell types must have one entry per cell "
                             f"({n},); got shape {self.types.shape}.")

    def magnitude(self, d, radius, p):
        n = radius.shape[0]
        c_rep, c_adh, rho = (jnp.broadcast_to(p[k], (n,)) for k in ("c_rep", "c_adh",
                                                                    "rho"))
        contact = radius[:, None] + radius[None, :]
        reach = (rho * radius)[:, None] + (rho * radius)[None, :]
        rep = _sqrt(c_rep[:, None] * c_rep[None, :])
        adh = c_adh[:, None] * c_adh[None, :]
        if self.types is not None:
            a = p["affinity"][self.types[:, None], self.types[None, :]]
            adh = adh * a * a.T
        push = rep * jnp.maximum(1.0 - d / contact, 0.0) ** 2
        pull = _sqrt(adh) * jnp.maximum(1.0 - d / reach, 0.0) ** 2
        return push - pull


def _sqrt(x: Array) -> Array:
    """``sqrt(x)`` with a finite (zero) derivative at ``x = 0`` (a strength of 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


class SoftSpheres(AbstractContinuousProcess):
    r"""Cells as soft spheres that push apart when they overlap and stick when close.

    Overdamped motion, ``drag · dx_i/dt = sum_j F_ij``, with pair forces along the line
    of centres (``d = |x_i - x_j|``, ``e = (x_i - x_j) / d``), ``F_ij = f(d) e``, where
    the magnitude ``f`` is given by the ``potential``:

    - :class:`Springs` (the default): linear springs, repulsion
      ``stiffness · (s - d)`` while the spheres overlap (``s = r_i + r_j > d``) and
      adhesion ``-adhesion · (d - s)`` while ``s <= d < s + adhesion_range``;
    - :class:`PhysiCell`: PhysiCell's quadratic repulsion and adhesion potentials,
      whose strengths are velocities (keep ``drag = 1``).

    The forces are equal and opposite, so the centre of mass does not move. Owns
    ``("cellular", name, "position")`` of shape ``(N, dim)`` (dim 2 or 3); radii are a
    per-cell parameter. All pairs are evaluated as one ``(N, N)`` array operation,
    suited to up to a few thousand cells. Parameters: ``radius``, ``drag`` and the
    potential's (``stiffness``, ``adhesion``, ``adhesion_range`` of :class:`Springs`;
    ``c_rep``, ``c_adh``, ``rho`` and ``affinity`` of :class:`PhysiCell`), all pytree
    leaves addressed by name (``"cells.c_rep"``).

    With a ``population`` (a :class:`jaxcell.cellular.Population` of capacity ``N``),
    only alive cells exert and feel forces; free slots stay where they are. Two cells at
    exactly the same point have no direction to push along and feel no force from each
    other, so divide positions with :class:`jaxcell.cellular.Displace`.

    Arguments:
        name: the process's name.
        positions: initial centres, ``(N, 2)`` or ``(N, 3)``.
        radius: a scalar or one per cell (non-negative).
        potential: an :class:`AbstractPotential` (default ``Springs()`` with the
            three arguments below).
        stiffness: shorthand for ``potential=Springs(stiffness=...)`` (default 1);
            not allowed together with ``potential``, like the next two.
        adhesion: shorthand for ``potential=Springs(adhesion=...)`` (default 0).
        adhesion_range: shorthand for ``potential=Springs(adhesion_range=...)``
            (default 0).
        drag: the drag coefficient (positive, default 1).
        population: optional :class:`jaxcell.cellular.Population` whose alive mask
            says which slots hold cells.

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
    potential: AbstractPotential
    alive: Path | None = eqx.field(static=True)

    def __init__(self, name: str, positions: ArrayLike, *, radius: ArrayLike = 1.0,
                 potential: AbstractPotential | None = None,
                 stiffness: ArrayLike | None = None, adhesion: ArrayLike | None = None,
                 adhesion_range: ArrayLike | None = None, drag: ArrayLike = 1.0,
                 population=None):
        owner = f"SoftSpheres {name!r}"
        x = as_parameter_array(owner, "positions", positions)
        if x.ndim != 2 or x.shape[1] not in (2, 3) or x.shape[0] < 1:
            raise ModelError(f"{owner}: positions must have shape (N, 2) or (N, 3); got "
                             f"{x.shape}.")
        springs = {"stiffness": stiffness, "adhesion": adhesion,
                   "adhesion_range": adhesion_range}
        given = [k for k, v in springs.items() if v is not None]
        if potential is None:
            try:
                potential = Springs(**{k: springs[k] for k in given})
            except ModelError as e:
                raise ModelError(f"{owner}: {e}") from e
        elif not isinstance(potential, AbstractPotential):
            raise ModelError(f"{owner}: potential must be a jaxcell.tissue potential "
                             f"(Springs(...), PhysiCell(...)); got "
                             f"{type(potential).__name__}.")
        elif given:
            raise ModelError(f"{owner}: {', '.join(given)} belong to Springs; give them "
                             f"to the potential (potential=Springs({given[0]}=...)) "
                             f"rather than next to potential={type(potential).__name__}"
                             f"(...).")
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
                  "drag": as_parameter_array(owner, "drag", drag)}
        if params["radius"].shape not in ((), (x.shape[0],)):
            raise ModelError(f"{owner}: radius must be a scalar or one per cell "
                             f"({x.shape[0]}); got shape {params['radius'].shape}.")
        if params["drag"].shape != ():
            raise ModelError(f"{owner}: drag must be a scalar; got shape "
                             f"{params['drag'].shape}.")
        potential.check(owner, x.shape[0])
        self.params = params
        self.potential = potential
        check_parameters(owner, self.parameters(), **self._rules())

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
        return {**self.params, **self.potential.params}

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> SoftSpheres:
        owner = f"SoftSpheres {self.name!r}"
        new = replace_in_dict(owner, self.parameters(), values)
        check_parameters(owner, new, **self._rules())
        own = {k: new[k] for k in self.params}
        pot = {k: new[k] for k in self.potential.params}
        return eqx.tree_at(lambda s: (s.params, s.potential.params), self, (own, pot))

    def forces(self, x: Float[Array, "cells dim"], alive: Float[Array, " cells"] | None
               = None) -> Float[Array, "cells dim"]:
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
        magnitude = jnp.where(off, self.potential.magnitude(d, r, p), 0.0)
        return jnp.sum((magnitude / d)[:, :, None] * diff, axis=1)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        alive = None if self.alive is None else state[self.alive]
        return {self.path: self.forces(state[self.path], alive) / self._checked()["drag"]}

    def _rules(self) -> dict[str, tuple[str, ...]]:
        return {"nonnegative": _NONNEGATIVE + self.potential.nonnegative,
                "positive": _POSITIVE + self.potential.positive}

    def _checked(self) -> dict[str, Array]:
        return checked_parameters(f"SoftSpheres {self.name!r}", self.parameters(),
                                  **self._rules())
