"""Regular grids and boundary conditions for finite-volume fields.

A :class:`Grid` is a box of ``shape`` cubic cells of side ``spacing`` (1-D to 3-D). A
field on it is an array of that shape: the mean concentration in each cell. The
finite-volume Laplacian sums, over each axis, the fluxes through a cell's two faces,
``(c[i+1] - 2 c[i] + c[i-1]) / h^2``, where a cell on the edge of the box takes its
missing neighbour (a *ghost cell*) from the boundary condition of that side:

- :class:`NoFlux`: the ghost equals the edge cell, so nothing crosses the face (mass
  is conserved);
- :class:`Dirichlet`: the ghost is ``2 v - c_edge``, so the concentration *at the face*
  is ``v`` (second-order accurate);
- :class:`Periodic`: the ghost is the cell on the opposite side.

Everything is array slicing and padding, with no loop over cells. A grid made with
``devices=`` splits its first axis over those devices; the Laplacian then exchanges one
layer of halo cells with the neighbouring blocks (``_halo.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import ModelError
from . import _halo


class AbstractBoundary(eqx.Module):
    """A boundary condition of one side of a grid axis."""

    def ghost(self, edge: Array, opposite: Array) -> Array:
        """The ghost-cell layer next to ``edge`` (the edge layer of cells);
        ``opposite`` is the edge layer on the other side of the axis."""
        raise NotImplementedError


class NoFlux(AbstractBoundary):
    """Zero flux through the face (a closed, reflecting wall)."""

    def ghost(self, edge, opposite):
        return edge


class Dirichlet(AbstractBoundary):
    """A fixed concentration ``value`` at the face (a source or a sink held constant).

    ``value`` is a pytree leaf: it can be fitted like any parameter."""

    value: Array

    def __init__(self, value: ArrayLike):
        self.value = jnp.asarray(value, dtype=jnp.result_type(float))

    def ghost(self, edge, opposite):
        return 2.0 * self.value - edge


class Periodic(AbstractBoundary):
    """The axis wraps around (both sides of the axis must be periodic)."""

    def ghost(self, edge, opposite):
        return opposite


class Grid(eqx.Module):
    """A regular grid of ``shape`` cubic cells of side ``spacing`` (1-D, 2-D or 3-D).

    ``devices`` (a count of local devices, or a list of :class:`jax.Device`) splits
    the grid's first axis into one block per device (``shape[0]`` must divide evenly):
    fields on it are computed block by block with a one-layer halo exchange
    (``jax.shard_map`` + ``jax.lax.ppermute``), for grids larger than one device. The
    result equals the single-device one to rounding.

    Examples:
        >>> from jaxcell.tissue import Grid
        >>> g = Grid((4, 3), spacing=0.5)
        >>> g.centres().shape, float(g.cell_volume)
        ((4, 3, 2), 0.25)
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    spacing: float = eqx.field(static=True)
    mesh: Any = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], spacing: float = 1.0, *,
                 devices: int | Sequence[Any] | None = None):
        shape = tuple(int(n) for n in shape)
        if not 1 <= len(shape) <= 3 or any(n < 1 for n in shape):
            raise ModelError(
                f"Grid: shape must have 1 to 3 positive sizes; got {tuple(shape)}.")
        if not float(spacing) > 0:
            raise ModelError(f"Grid: spacing must be positive; got {spacing}.")
        self.shape = shape
        self.spacing = float(spacing)
        self.mesh = _halo.make_mesh(f"Grid{shape}", devices, shape[0])

    @property
    def ndim(self) -> int:
        """The number of dimensions (1 to 3)."""
        return len(self.shape)

    @property
    def cell_volume(self) -> float:
        """Volume (area in 2-D, length in 1-D) of one cell."""
        return self.spacing ** self.ndim

    def centres(self) -> Array:
        """Cell centres, shape ``(*shape, ndim)``; the box starts at the origin."""
        axes = [(jnp.arange(n) + 0.5) * self.spacing for n in self.shape]
        return jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)

    def laplacian(self, c: Array, boundaries: tuple[tuple[AbstractBoundary,
                                                          AbstractBoundary], ...]) -> Array:
        """Finite-volume Laplacian of ``c`` (shape ``self.shape``) with one
        ``(low, high)`` pair of boundary conditions per axis."""
        if self.mesh is None:
            return _laplacian(c, boundaries, self.spacing, None)
        k = self.mesh.devices.size
        spec = jax.sharding.PartitionSpec(_halo.AXIS)
        return jax.shard_map(
            lambda c, b: _laplacian(c, b, self.spacing, k), mesh=self.mesh,
            in_specs=(spec, jax.sharding.PartitionSpec()), out_specs=spec,
            check_vma=False)(c, boundaries)


def _laplacian(c, boundaries, spacing: float, k: int | None):
    """The Laplacian of a whole grid (``k=None``) or of one of ``k`` blocks of its first
    axis inside ``shard_map`` (the ghosts of axis 0 come from the neighbouring blocks,
    and from the boundary conditions at the first and last block)."""
    h2 = spacing ** 2
    out = jnp.zeros_like(c)
    for axis, (lo, hi) in enumerate(boundaries):
        n = c.shape[axis]
        first = jax.lax.slice_in_dim(c, 0, 1, axis=axis)
        last = jax.lax.slice_in_dim(c, n - 1, n, axis=axis)
        if axis == 0 and k is not None:
            from_left, from_right = _halo.exchange(c, 1, k)
            low = jnp.where(_halo.is_first_block(), lo.ghost(first, from_left), from_left)
            high = jnp.where(_halo.is_last_block(k), hi.ghost(last, from_right),
                             from_right)
        else:
            low, high = lo.ghost(first, last), hi.ghost(last, first)
        padded = jnp.concatenate([low, c, high], axis=axis)
        left = jax.lax.slice_in_dim(padded, 0, n, axis=axis)
        right = jax.lax.slice_in_dim(padded, 2, n + 2, axis=axis)
        out = out + (left - 2.0 * c + right) / h2
    return out


def as_boundaries(grid: Grid, boundary) -> tuple[tuple[AbstractBoundary,
                                                       AbstractBoundary], ...]:
    """One ``(low, high)`` pair per axis from a single condition (all sides), one per
    axis, or pairs; checks that periodic sides come in pairs."""
    if isinstance(boundary, AbstractBoundary):
        pairs = [(boundary, boundary)] * grid.ndim
    else:
        items = list(boundary)
        if len(items) != grid.ndim:
            raise ModelError(
                f"boundary: give one condition, or one per axis ({grid.ndim} for a grid of "
                f"shape {grid.shape}); got {len(items)}.")
        pairs = [(b, b) if isinstance(b, AbstractBoundary) else tuple(b) for b in items]
    for axis, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(b, AbstractBoundary) for b in pair):
            raise ModelError(
                f"boundary of axis {axis}: expected a condition (NoFlux(), Dirichlet(v), "
                f"Periodic()) or a (low, high) pair of them; got {pair!r}.")
        if isinstance(pair[0], Periodic) != isinstance(pair[1], Periodic):
            raise ModelError(f"boundary of axis {axis}: Periodic must be on both sides.")
    return tuple(tuple(p) for p in pairs)
