"""Neighbour graphs of cells: hexagonal and square lattices, or cell positions.

A :class:`Neighbours` holds, for each of ``N`` cells, the indices of up to ``K``
neighbours (``index``, shape ``(N, K)``) and which of those slots are real (``mask``).
Fixed shapes, so averaging over neighbours is one gather and one masked mean, vectorised
over all cells (no loop over cells inside traced code).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import ModelError


class Neighbours(eqx.Module):
    """For each cell, the indices of its neighbours (padded to a fixed count ``K``).

    Attributes:
        index: ``(N, K)`` integer array of neighbour indices (padding points at the cell
            itself).
        mask: ``(N, K)`` boolean array, true where the slot is a real neighbour.
        positions: ``(N, dim)`` cell positions (for plots and geometry).
    """

    index: Array
    mask: Array
    positions: Array

    @property
    def n_cells(self) -> int:
        """The number of cells (nodes) of the graph."""
        return int(self.index.shape[0])

    def counts(self) -> Array:
        """Number of neighbours of each cell."""
        return jnp.sum(self.mask, axis=1)

    def mean(self, values: Array) -> Array:
        """Mean over each cell's neighbours of a per-cell array (leading axis ``N``)."""
        if values.shape[0] != self.n_cells:
            raise ModelError(f"Neighbours.mean: values have {values.shape[0]} rows; the "
                             f"graph has {self.n_cells} cells.")
        gathered = values[self.index]                     # (N, K, ...)
        w = self.mask.reshape(self.mask.shape + (1,) * (values.ndim - 1))
        total = jnp.sum(jnp.where(w, gathered, 0.0), axis=1)
        count = jnp.maximum(self.counts(), 1).reshape((-1,) + (1,) * (values.ndim - 1))
        return total / count

    def adjacency(self) -> np.ndarray:
        """Dense ``(N, N)`` boolean adjacency matrix (NumPy; for checks and plots)."""
        idx, mask = np.asarray(self.index), np.asarray(self.mask)
        a = np.zeros((idx.shape[0],) * 2, bool)
        rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        a[rows[mask.ravel()], idx.ravel()[mask.ravel()]] = True
        return a


def _from_lists(lists: list[list[int]], positions: np.ndarray) -> Neighbours:
    k = max((len(x) for x in lists), default=0)
    index = np.array([x + [i] * (k - len(x)) for i, x in enumerate(lists)], dtype=np.int32)
    mask = np.array([[True] * len(x) + [False] * (k - len(x)) for x in lists], dtype=bool)
    return Neighbours(jnp.asarray(index.reshape(len(lists), k)),
                      jnp.asarray(mask.reshape(len(lists), k)), jnp.asarray(positions))


def _cell_indices(cells, nx: int, ny: int, periodic: bool) -> list[int]:
    """Indices ``row * nx + column`` of lattice positions, wrapped around when
    ``periodic``, dropped when outside the lattice otherwise."""
    out = []
    for c, r in cells:
        if periodic:
            c, r = c % nx, r % ny
        elif not (0 <= c < nx and 0 <= r < ny):
            continue
        out.append(r * nx + c)
    return out


def hex_lattice(nx: int, ny: int, *, periodic: bool = True) -> Neighbours:
    """A hexagonal lattice of ``nx`` columns and ``ny`` rows (odd rows shifted right by
    half a cell; unit distance between neighbouring centres); 6 neighbours per cell, or
    fewer on the edges when not ``periodic``. A periodic lattice needs an even ``ny``.
    Cell ``i`` sits at column ``i % nx``, row ``i // nx``."""
    nx, ny = int(nx), int(ny)
    if nx < 1 or ny < 1:
        raise ModelError(f"hex_lattice: nx and ny must be positive; got {nx}, {ny}.")
    if periodic and (ny % 2 or nx < 3 or ny < 2):
        raise ModelError(f"hex_lattice: a periodic lattice needs an even ny >= 2 and "
                         f"nx >= 3; got nx={nx}, ny={ny}.")
    lists, pos = [], []
    for r in range(ny):
        shift = r % 2  # odd rows are shifted right: their diagonal neighbours are c, c+1
        for c in range(nx):
            cand = [(c - 1, r), (c + 1, r)]
            for dr in (-1, 1):
                cand += [(c - 1 + shift, r + dr), (c + shift, r + dr)]
            lists.append(_cell_indices(cand, nx, ny, periodic))
            pos.append((c + 0.5 * shift, r * np.sqrt(3.0) / 2.0))
    return _from_lists(lists, np.asarray(pos))


def square_lattice(nx: int, ny: int, *, periodic: bool = True) -> Neighbours:
    """A square lattice with 4 neighbours per cell (von Neumann); cell ``i`` sits at
    column ``i % nx``, row ``i // nx``."""
    nx, ny = int(nx), int(ny)
    if nx < 1 or ny < 1 or (periodic and (nx < 3 or ny < 3)):
        raise ModelError(f"square_lattice: needs nx, ny >= 1 (>= 3 when periodic); got "
                         f"{nx}, {ny}.")
    lists, pos = [], []
    for r in range(ny):
        for c in range(nx):
            cand = [(c - 1, r), (c + 1, r), (c, r - 1), (c, r + 1)]
            lists.append(_cell_indices(cand, nx, ny, periodic))
            pos.append((float(c), float(r)))
    return _from_lists(lists, np.asarray(pos))


def from_positions(positions: ArrayLike, radius: float) -> Neighbours:
    """The neighbour graph of cells at ``positions`` (``(N, dim)``): two cells are
    neighbours when their centres are closer than ``radius``. Built once, with NumPy
    (for cells that move, rebuild it between simulation segments)."""
    p = np.asarray(positions, dtype=float)
    if p.ndim != 2 or p.shape[0] < 1:
        raise ModelError(f"from_positions: positions must have shape (N, dim); got "
                         f"{p.shape}.")
    if not radius > 0:
        raise ModelError(f"from_positions: radius must be positive; got {radius}.")
    d = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    close = (d < radius) & ~np.eye(len(p), dtype=bool)
    return _from_lists([list(np.flatnonzero(row)) for row in close], p)
