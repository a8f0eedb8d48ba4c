"""The truncated state space of a finite state projection: the box of counts, and the
static index arrays of the chemical master equation's generator on it.

Everything here is NumPy, computed once when an :class:`~jaxcell.stochastic.FSP` is
built (or, for reachability, when its stationary distribution is traced); the traced
code gathers with these arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

import numpy as np

from .._errors import ModelError
from .._state import suggest

#: the largest box (number of states) an FSP accepts.
MAX_STATES = 2_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class Box:
    """The box ``{0..max_0} x {0..max_1} x ...`` over the species that change, and the
    generator's index arrays (hashable by content, so equal boxes share compiled code).

    Attributes:
        species: the names of the box's axes (the species some channel changes).
        columns: each axis's position in the network's species vector.
        shape: ``max_count + 1`` per axis.
        grid: ``(n_states, n_axes)`` counts of every state, C order.
        source: ``(n_states, n_channels)`` flat index into the ``(n_states + 1,
            n_channels)`` padded flux table: the flux of channel ``j`` into state ``x``
            comes from ``x - delta_j`` (the padding row, zero flux, where that state is
            outside the box).
        exits: ``(n_states, n_channels)`` whether channel ``j`` takes state ``x``
            outside the box (the FSP sink).
        target: ``(n_states, n_channels)`` flat index of ``x + delta_j`` (``-1`` where
            outside the box).
        support: flat indices where the initial distribution is positive.
    """

    species: tuple[str, ...]
    columns: tuple[int, ...]
    shape: tuple[int, ...]
    grid: np.ndarray
    source: np.ndarray
    exits: np.ndarray
    target: np.ndarray
    support: np.ndarray

    def __post_init__(self):
        h = hashlib.sha256()
        h.update(repr((self.species, self.columns, self.shape)).encode())
        for a in (self.source, self.target, self.support):
            h.update(np.ascontiguousarray(a).tobytes())
        object.__setattr__(self, "_digest", h.hexdigest())

    def __hash__(self) -> int:
        return hash(self._digest)  # pyright: ignore[reportAttributeAccessIssue]

    def __eq__(self, other) -> bool:
        return isinstance(other, Box) and other._digest == self._digest  # pyright: ignore

    @property
    def n_states(self) -> int:
        """The number of states in the box."""
        return int(self.grid.shape[0])

    def reachable(self) -> np.ndarray:
        """Flat indices of the box states reachable from :attr:`support` by channels
        that stay in the box (a structural superset: propensities are not consulted),
        sorted."""
        reached = np.zeros(self.n_states, bool)
        reached[self.support] = True
        frontier = np.asarray(self.support)
        while frontier.size:
            nxt = self.target[frontier].reshape(-1)
            nxt = np.unique(nxt[nxt >= 0])
            nxt = nxt[~reached[nxt]]
            reached[nxt] = True
            frontier = nxt
        return np.flatnonzero(reached)


def channel_deltas(n_species: int, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Dense ``(n_channels, n_species)`` change of every channel from a jump table's
    padded ``index``/``delta`` arrays."""
    out = np.zeros((index.shape[0], n_species))
    for j in range(index.shape[0]):
        np.add.at(out[j], index[j], delta[j])
    return out


def build_box(where: str, species: tuple[str, ...], deltas: np.ndarray,
              max_counts: Mapping[str, int], initial: np.ndarray | None) -> Box:
    """The box of ``max_counts`` over the species that ``deltas`` change.

    Arguments:
        where: the owner, for error messages.
        species: the network's species names.
        deltas: ``(n_channels, n_species)`` change of every channel.
        max_counts: ``{species: largest count kept}`` for every species that changes.
        initial: the initial distribution (box-shaped) to take the support from, or
            ``None`` to fill in later with :func:`with_support`.

    Raises:
        ModelError: a key of ``max_counts`` is not a species, names a species no
            channel changes, or is missing for one that changes; a bound that is not a
            non-negative integer; a box of more than ``MAX_STATES`` states; a channel
            changing a count by a non-integer amount.
    """
    if not isinstance(max_counts, Mapping):
        raise ModelError(f"{where}: max_counts must be a dict {{species: largest count}}; "
                         f"got {type(max_counts).__name__}.")
    changes = np.any(deltas != 0, axis=0)
    moving = tuple(s for s, c in zip(species, changes) if c)
    for k in max_counts:
        if k not in species:
            raise ModelError(f"{where}: max_counts names {k!r}, which is not a species of "
                             f"the network.{suggest(str(k), species)} Species: "
                             f"{list(species)}.")
        if k not in moving:
            raise ModelError(f"{where}: species {k!r} never changes (held fixed, or only "
                             f"a catalyst), so it is not an axis of the box and needs no "
                             f"bound: remove it from max_counts (its propensity factor "
                             f"uses its initial count).")
    missing = [s for s in moving if s not in max_counts]
    if missing:
        raise ModelError(f"{where}: max_counts has no bound for {missing}; give the "
                         f"largest count kept for every species that changes: "
                         f"{list(moving)}.")
    if not np.all(deltas == np.round(deltas)):
        raise ModelError(f"{where}: the chemical master equation needs integer "
                         f"stoichiometry; a channel changes a count by "
                         f"{deltas[deltas != np.round(deltas)][0]}.")
    bounds = []
    for s in moving:
        m = max_counts[s]
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 0:
            raise ModelError(f"{where}: max_counts[{s!r}] must be a non-negative integer; "
                             f"got {m!r}.")
        bounds.append(int(m))
    shape = tuple(b + 1 for b in bounds)
    n = int(np.prod(shape, dtype=np.float64))
    if n > MAX_STATES:
        raise ModelError(f"{where}: the box {dict(zip(moving, bounds))} has {n:,} states, "
                         f"more than the {MAX_STATES:,} an FSP accepts; lower max_counts "
                         f"(or use a stochastic simulation, jc.simulate(..., "
                         f"stochastic=jc.SSA()), for this network).")
    columns = tuple(species.index(s) for s in moving)
    grid = np.stack(np.unravel_index(np.arange(n), shape), axis=1).astype(np.int64)
    d = deltas[:, columns].astype(np.int64)  # (channels, axes)
    upper = np.asarray(shape)[None, None, :]
    nch = d.shape[0]

    def flat(points):  # (n, nch, axes) -> (n, nch), -1 outside
        inside = np.all((points >= 0) & (points < upper), axis=2)
        safe = np.where(inside[..., None], points, 0)
        idx = np.ravel_multi_index(tuple(np.moveaxis(safe, 2, 0)), shape)
        return np.where(inside, idx, -1)

    target = flat(grid[:, None, :] + d[None, :, :])
    src = flat(grid[:, None, :] - d[None, :, :])
    src = np.where(src >= 0, src, n)  # the padding row
    source = (src * nch + np.arange(nch)[None, :]).astype(np.int64)
    support = (np.flatnonzero(np.asarray(initial).reshape(-1) > 0) if initial is not None
               else np.zeros((0,), np.int64))
    return Box(moving, columns, shape, grid, source, target < 0, target, support)


def with_support(box: Box, initial: np.ndarray) -> Box:
    """``box`` with the support of ``initial`` (box-shaped)."""
    support = np.flatnonzero(np.asarray(initial).reshape(-1) > 0)
    return dataclasses.replace(box, support=support)
