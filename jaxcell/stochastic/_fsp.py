"""FSP: the chemical master equation of a reaction network on a truncated box of counts,
as a continuous process that :func:`jaxcell.simulate` integrates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._custom_types import Path
from .._errors import ModelError
from .._process import AbstractContinuousProcess, Ports, is_concrete
from .._state import StateView, Var, suggest
from ..molecular import ReactionNetwork
from ._box import Box, build_box, channel_deltas, with_support


class FSP(AbstractContinuousProcess):
    r"""The chemical master equation (CME) of a reaction network by finite state
    projection: the probability of every state of a box of molecule counts, as one state
    variable that :func:`jaxcell.simulate` integrates like any ODE.

    For counts :math:`x` in the box :math:`B = \{0..m_1\} \times \{0..m_2\} \times
    \dots` (one axis per species that some reaction changes, :math:`m_i` from
    ``max_counts``), with channel propensities :math:`a_j(x)` and changes
    :math:`\nu_j`,

    .. math:: \frac{dp(x)}{dt} = \sum_j a_j(x - \nu_j)\,p(x - \nu_j)\,
        [x - \nu_j \in B] \;-\; \sum_j a_j(x)\,p(x).

    Flow out of the box is not returned (the FSP *sink*): the mass lost,
    :meth:`error` ``= 1 - sum(p)``, only grows, and it bounds the error of the truncated
    solution: :math:`0 \le p_\text{CME}(x, t) - p_\text{FSP}(x, t)` and
    :math:`\lVert p_\text{CME}(t) - p_\text{FSP}(t) \rVert_1 \le` ``error(p(t))``
    (Munsky & Khammash 2006). A small lost mass certifies the answer.

    The right-hand side is matrix-free and vectorised: the propensities of every
    channel at every box state (``jax.vmap`` of
    :meth:`~jaxcell.ReactionNetwork.propensity_columns`, computed once per solve), an
    outflow, and one gather for the inflow through static index arrays built with NumPy
    here. The network's rate constants are leaves, so distributions, likelihoods and
    their gradients are differentiable. Species that no reaction changes (held
    ``fixed``, or only catalysts) are not axes of the box: their propensity factor uses
    their initial count.

    The process owns ``(scale, name, "p")``, of the box's shape (axes in the network's
    species order, skipping constant species). The default solver (Rodas5 with a dense
    Jacobian) suits boxes of up to a few thousand states; for larger boxes pass an
    explicit solver, ``solver=diffrax.Tsit5()`` (the CME is mildly stiff: a box of
    ``n`` molecules has rates up to about ``n`` times the fastest rate constant).

    Arguments:
        network: a :class:`jaxcell.ReactionNetwork` (without inputs); mass action uses
            falling factorials (``k·A(A-1)`` for ``2A -> ...``), other laws their
            deterministic rate at the counts.
        max_counts: ``{species: largest count kept}`` for every species that changes.
        initial: the initial distribution (an array of the box's shape); default, a
            point mass at the network's initial counts (which must be integers in the
            box).
        name: the process's name (default: the network's).
        scale: the scale part of the state path (default ``"stochastic"``).

    Raises:
        ModelError: ``network`` is not a ReactionNetwork or has inputs; a key of
            ``max_counts`` is not a species (or one that never changes), or a species
            that changes has no bound; a box of more than 2,000,000 states; initial
            counts outside the box or not integers; an ``initial`` array of the wrong
            shape, negative, or of total mass above 1.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.stochastic import FSP
        >>> birth_death = jc.ReactionNetwork(
        ...     "bd", {"X": 0.0},
        ...     [jc.Reaction("make", "", "X", jc.MassAction("lam")),
        ...      jc.Reaction("decay", "X", "", jc.MassAction("mu"))],
        ...     {"lam": 5.0, "mu": 1.0})
        >>> fsp = FSP(birth_death, {"X": 40})
        >>> traj = jc.simulate(fsp, 0.0, 10.0, saveat=[10.0])
        >>> p = traj["stochastic/bd/p"][-1]
        >>> round(float(fsp.mean(p, "X")), 4), float(fsp.error(p)) < 1e-8
        (4.9998, True)

    References:
        Munsky, B. & Khammash, M. (2006). The finite state projection algorithm for the
        solution of the chemical master equation. J. Chem. Phys. 124:044104.
        Gillespie, D. T. (1992). A rigorous derivation of the chemical master equation.
        Physica A 188:404–425.
    """

    name: str
    network: ReactionNetwork
    p0: Array
    table: Array | None
    box: Box = eqx.field(static=True)
    scale: str = eqx.field(static=True)

    def __init__(self, network: ReactionNetwork, max_counts: Mapping[str, int], *,
                 initial: ArrayLike | None = None, name: str | None = None,
                 scale: str = "stochastic"):
        if not isinstance(network, ReactionNetwork):
            raise ModelError(f"FSP: network must be a jaxcell.ReactionNetwork; got "
                             f"{type(network).__name__}.")
        name = network.name if name is None else name
        where = f"FSP {name!r}"
        if network.inputs:
            raise ModelError(f"{where}: network {network.name!r} reads inputs "
                             f"{[a for a, _ in network.inputs]}; the master equation of a "
                             f"network driven by other variables is not supported (fold "
                             f"constant inputs into parameters).")
        table = network.jumps()
        deltas = channel_deltas(len(network.species), np.asarray(table.index),
                                np.asarray(table.delta))
        box = build_box(where, network.species, deltas, max_counts, None)
        if initial is None:
            p0 = _point_mass(where, network, box)
        else:
            p0 = _given(where, initial, box)
        self.name = name
        self.network = network
        self.p0 = jnp.asarray(p0, dtype=network.x0.dtype)
        self.table = None
        self.box = with_support(box, p0)
        self.scale = scale

    # -- declarations --------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The state path of the distribution, ``(scale, name, "p")``."""
        return (self.scale, self.name, "p")

    @property
    def species(self) -> tuple[str, ...]:
        """The species along the box's axes, in order."""
        return self.box.species

    @property
    def shape(self) -> tuple[int, ...]:
        """The box's shape (``max_count + 1`` per axis)."""
        return self.box.shape

    @property
    def states(self) -> np.ndarray:
        """``(n_states, n_axes)`` counts of every box state, in the (C) order of the
        flattened distribution."""
        return self.box.grid

    def ports(self) -> Ports:
        return Ports(owns={self.path: Var(self.box.shape)})

    def initial_values(self) -> dict[Path, Array]:
        return {self.path: self.p0}

    def parameters(self) -> dict[str, Array]:
        return self.network.parameters()

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> FSP:
        net = self.network.replace_parameters(values)
        return eqx.tree_at(lambda s: (s.network, s.table), self, (net, None),
                           is_leaf=lambda v: v is None)

    def prepared(self, t0: Array) -> FSP:
        """The process with its propensity table computed once for a solve."""
        return eqx.tree_at(lambda s: s.table, self, self.propensity_table(),
                           is_leaf=lambda v: v is None)

    # -- evaluation ----------------------------------------------------------------------
    def propensity_table(self) -> Float[Array, "states channels"]:
        """The propensity of every channel at every box state, ``(n_states,
        n_channels)`` (the flattened box in C order; channels as in the network's
        jump table)."""
        if self.table is not None:
            return self.table
        x0 = self.network.x0
        n = self.box.n_states
        x = jnp.broadcast_to(x0, (n, x0.shape[0]))
        x = x.at[:, np.asarray(self.box.columns)].set(jnp.asarray(self.box.grid, x0.dtype))
        return jax.vmap(self.network.propensity_columns)(x)

    def derivative(self, p: Float[Array, "*box"]) -> Float[Array, "*box"]:
        """``dp/dt``: the truncated CME generator applied to a distribution ``p`` of the
        box's shape (matrix-free)."""
        a = self.propensity_table()
        flux = a * p.reshape(-1, 1)
        padded = jnp.concatenate([flux, jnp.zeros((1, flux.shape[1]), flux.dtype)])
        inflow = jnp.sum(padded.reshape(-1)[self.box.source], axis=1)
        return (inflow - jnp.sum(flux, axis=1)).reshape(self.box.shape)

    def rates(self, t: Array, state: StateView, args: Any) -> dict[Path, Array]:
        return {self.path: self.derivative(state[self.path])}

    def generator(self) -> Float[Array, "states states"]:
        """The truncated generator as a dense matrix ``Q`` (``dp/dt = Q p`` for the
        flattened ``p``); columns sum to minus the rate of leaving the box. For small
        boxes (``n_states²`` entries)."""
        a = self.propensity_table()
        n, nch = a.shape
        rows = np.where(self.box.target >= 0, self.box.target, n)
        cols = np.broadcast_to(np.arange(n)[:, None], (n, nch))
        q = jnp.zeros((n, n), a.dtype).at[rows, cols].add(a, mode="drop")
        return q - jnp.diag(jnp.sum(a, axis=1))

    # -- reading distributions -----------------------------------------------------------
    def _axis(self, species: str) -> int:
        if species not in self.box.species:
            net = self.network.species
            why = (" It never changes, so it is not an axis of the box."
                   if species in net else suggest(species, self.box.species))
            raise ModelError(f"FSP {self.name!r}: no axis for species {species!r}.{why} "
                             f"Axes: {list(self.box.species)}.")
        return self.box.species.index(species)

    def _check_shape(self, p: Array) -> None:
        k = len(self.box.shape)
        if p.shape[p.ndim - k:] != self.box.shape or p.ndim < k:
            raise ModelError(f"FSP {self.name!r}: expected distributions of shape "
                             f"(..., {', '.join(map(str, self.box.shape))}); got shape "
                             f"{p.shape}.")

    def marginal(self, p: Float[ArrayLike, "*batch *box"], species: str
                 ) -> Float[Array, "*batch counts"]:
        """The marginal distribution of one species: ``p`` (box-shaped, with any
        leading axes, e.g. time) summed over the other axes."""
        p = jnp.asarray(p)
        self._check_shape(p)
        k = len(self.box.shape)
        i = self._axis(species)
        lead = p.ndim - k
        others = tuple(lead + j for j in range(k) if j != i)
        return jnp.sum(p, axis=others) if others else p

    def mean(self, p: Float[ArrayLike, "*batch *box"], species: str
             ) -> Float[Array, "*batch"]:
        """The mean count of one species under ``p`` (not renormalised)."""
        m = self.marginal(p, species)
        counts = jnp.arange(m.shape[-1], dtype=m.dtype).reshape((1,) * (m.ndim - 1) + (-1,))
        return jnp.sum(m * counts, axis=-1)

    def error(self, p: Float[ArrayLike, "*batch *box"]) -> Float[Array, "*batch"]:
        """The FSP error bound, the mass lost to the sink: ``1 - sum(p)`` over the box
        (per leading index). It bounds the 1-norm distance to the exact CME solution
        (Munsky & Khammash 2006)."""
        p = jnp.asarray(p)
        self._check_shape(p)
        k = len(self.box.shape)
        return 1.0 - jnp.sum(p, axis=tuple(range(p.ndim - k, p.ndim)))


def _point_mass(where: str, network: ReactionNetwork, box: Box) -> np.ndarray:
    if not is_concrete(network.x0):
        raise ModelError(f"{where}: the network's initial counts are traced; pass "
                         f"initial= (a distribution over the box).")
    x0 = np.asarray(network.x0)
    idx = []
    for s, c, size in zip(box.species, box.columns, box.shape):
        v = x0[c]
        if not (v == np.round(v) and 0 <= v < size):
            raise ModelError(f"{where}: the initial count of {s!r} is {v:g}; it must be an "
                             f"integer in 0..{size - 1} (the box from max_counts).")
        idx.append(int(v))
    p0 = np.zeros(box.shape)
    p0[tuple(idx)] = 1.0
    return p0


def _given(where: str, initial: ArrayLike, box: Box) -> np.ndarray:
    if not is_concrete(initial):
        raise ModelError(f"{where}: initial must be a concrete array (its support fixes "
                         f"the reachable states).")
    p0 = np.asarray(initial, dtype=float)
    if p0.shape != box.shape:
        raise ModelError(f"{where}: initial has shape {p0.shape}; the box over "
                         f"{list(box.species)} has shape {box.shape}.")
    if not np.all(np.isfinite(p0)) or np.any(p0 < 0) or p0.sum() > 1.0 + 1e-9:
        raise ModelError(f"{where}: initial must be a distribution (finite, non-negative, "
                         f"total mass at most 1); total mass {p0.sum():g}, smallest value "
                         f"{p0.min():g}.")
    return p0
