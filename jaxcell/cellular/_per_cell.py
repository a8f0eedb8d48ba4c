"""PerCell: any continuous process, one copy per cell, evaluated with ``jax.vmap``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._custom_types import Path, PathLike
from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    AbstractJumpProcess,
    AbstractProcess,
    JumpTable,
    Ports,
)
from .._state import StateView, Var, as_path
from ._population import Population


class PerCell(AbstractContinuousProcess, AbstractJumpProcess):
    """Runs a continuous process (a reaction network, an ODE, an imported SBML model)
    in every one of ``n_cells`` cells, vectorised with :func:`jax.vmap`.

    Every variable the process owns gets a leading cells axis: a network owning
    ``("molecular", "rep", "species")`` of shape ``(6,)`` becomes a process owning the
    same path with shape ``(n_cells, 6)`` (labels unchanged). Paths the process reads or
    changes are taken per cell too (their leading axis is the cells axis: e.g. a
    ``("tissue", "contact", "signal")`` of shape ``(n_cells,)``), except those listed
    in ``shared``, which every cell sees whole (a global input).

    Each floating parameter gets a leading cells axis, so cells may differ:
    ``parameters()`` returns arrays of shape ``(n_cells, ...)`` and
    ``replace_parameters`` takes a scalar (the same in every cell) or one value per cell.

    With a :class:`Population`, derivatives of cells whose ``alive`` flag is 0 (dead
    cells and empty slots) are zero, so they are frozen until division fills the slot.

    If the process is a jump process (a reaction network, an SBML model), so is the
    wrapper: in ``simulate(..., stochastic=jaxcell.SSA())`` every cell fires its own
    channels (cell-major order), and free slots have zero propensities.

    Examples:
        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import PerCell
        >>> decay = jc.ODE("x", {"m": 1.0}, lambda t, y, p: {"m": -p["k"] * y["m"]},
        ...                parameters={"k": 1.0})
        >>> cells = PerCell(decay, n_cells=3).replace_parameters({"k": jnp.array([0.0, 1.0, 2.0])})
        >>> traj = jc.simulate(cells, 0.0, 1.0, saveat=[1.0])
        >>> traj["molecular/x/m"][-1].round(4).tolist()
        [1.0, 0.3679, 0.1353]
    """

    name: str
    n_cells: int = eqx.field(static=True)
    cell_params: Any
    template: AbstractProcess
    owned: tuple[tuple[Path, Var], ...] = eqx.field(static=True)
    mapped: tuple[Path, ...] = eqx.field(static=True)
    shared: tuple[Path, ...] = eqx.field(static=True)
    changed: tuple[Path, ...] = eqx.field(static=True)
    labels: tuple[tuple[Path, tuple[str, ...] | None], ...] = eqx.field(static=True)
    alive: Path | None = eqx.field(static=True)

    def __init__(self, process: AbstractContinuousProcess, *, n_cells: int | None = None,
                 population: Population | None = None,
                 shared: Sequence[PathLike] = ()):
        owner = f"PerCell({getattr(process, 'name', type(process).__name__)!r})"
        if not isinstance(process, AbstractContinuousProcess):
            raise ModelError(
                f"{owner}: PerCell runs continuous processes (rates); got "
                f"{type(process).__name__}. Derived and discrete per-cell processes are "
                f"not supported: write them over the cells axis directly."
            )
        if population is not None:
            if not isinstance(population, Population):
                raise ModelError(f"{owner}: population must be a jaxcell.cellular."
                                 f"Population; got {type(population).__name__}.")
            if n_cells is not None and n_cells != population.capacity:
                raise ModelError(f"{owner}: n_cells={n_cells} differs from the "
                                 f"population's capacity {population.capacity}.")
            n_cells = population.capacity
        if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
            raise ModelError(f"{owner}: n_cells must be a positive integer (or give a "
                             f"population); got {n_cells!r}.")
        ports = process.ports()
        if ports.sets:
            raise ModelError(f"{owner}: processes that set derived variables are not "
                             f"supported per cell.")
        self.name = process.name
        self.n_cells = n_cells
        params, self.template = eqx.partition(process, eqx.is_inexact_array)
        self.cell_params = jax.tree_util.tree_map(
            lambda a: jnp.broadcast_to(a, (n_cells, *a.shape)), params)
        self.owned = tuple(ports.owns.items())
        self.shared = tuple(as_path(p) for p in shared)
        reads = set(ports.reads) | set(ports.changes)
        unknown = set(self.shared) - reads
        if unknown:
            raise ModelError(f"{owner}: shared paths {sorted(unknown)} are not read by the "
                             f"process; it reads {sorted(reads)}.")
        self.mapped = tuple(sorted((set(ports.owns) | reads) - set(self.shared)))
        self.changed = tuple(ports.changes)
        self.labels = tuple((p, v.labels) for p, v in ports.owns.items())
        self.alive = None if population is None else population.alive_path

    def _process(self, cell_params) -> AbstractProcess:
        return eqx.combine(cell_params, self.template)

    def ports(self) -> Ports:
        owns = {p: Var((self.n_cells, *v.shape), v.labels) for p, v in self.owned}
        reads: dict[Path, Var | None] = {p: None for p in self.mapped if p not in owns}
        reads.update({p: None for p in self.shared})
        if self.alive is not None:
            reads[self.alive] = Var((self.n_cells,))
        return Ports(owns=owns, reads=reads, changes=self.changed)

    def initial_values(self) -> dict[Path, Array]:
        return jax.vmap(lambda cp: self._process(cp).initial_values())(self.cell_params)

    def parameters(self) -> dict[str, Array]:
        return jax.vmap(lambda cp: self._process(cp).parameters())(self.cell_params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> PerCell:
        known = self.parameters()
        vals = {}
        for k, v in values.items():
            if k not in known:
                raise ModelError(f"PerCell({self.name!r}): no parameter named {k!r}; "
                                 f"parameters are {sorted(known)}.")
            v = jnp.asarray(v, dtype=known[k].dtype)
            cell_shape = known[k].shape[1:]
            if v.shape == cell_shape:
                v = jnp.broadcast_to(v, known[k].shape)
            elif v.shape != known[k].shape:
                raise ModelError(
                    f"PerCell({self.name!r}): parameter {k!r} takes shape {cell_shape} "
                    f"(the same in every cell) or {known[k].shape} (one per cell); got "
                    f"{v.shape}.")
            vals[k] = v

        def one(cp, vals):
            new = self._process(cp).replace_parameters(vals)
            return eqx.filter(new, eqx.is_inexact_array)

        new_params = jax.vmap(one)(self.cell_params, vals)
        return eqx.tree_at(lambda s: s.cell_params, self, new_params)

    def _each_cell(self, state: StateView, fn):
        """``fn(process, view)`` in every cell (``vmap``), with the cell's parameters and
        its slice of the mapped paths (shared paths whole)."""
        cells = {p: state[p] for p in self.mapped}
        whole = {p: state[p] for p in self.shared}
        labels = dict(self.labels)
        allowed = (*self.mapped, *self.shared)
        name = self.name

        def one(cp, cell):
            return fn(self._process(cp), StateView({**cell, **whole}, allowed, name, labels))

        return jax.vmap(one)(self.cell_params, cells)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        out = self._each_cell(state, lambda proc, view: proc.rates(t, view, args))
        if self.alive is not None:
            alive = state[self.alive]
            out = {p: v * alive.reshape(alive.shape + (1,) * (v.ndim - 1))
                   for p, v in out.items()}
        return out

    # -- jumps ---------------------------------------------------------------------------
    @property
    def can_jump(self) -> bool:
        return isinstance(self.template, AbstractJumpProcess) and self.template.can_jump

    def jumps(self) -> JumpTable:
        if not self.can_jump:
            raise ModelError(f"PerCell({self.name!r}): {type(self.template).__name__} "
                             f"is not a jump process.")
        inner = self.template.jumps()  # pyright: ignore
        size = int(np.prod(dict(self.owned)[inner.path].shape, dtype=int))
        offs = (np.arange(self.n_cells) * size)[:, None, None]
        index = (inner.index[None] + offs).reshape(-1, inner.index.shape[1])
        delta = np.tile(inner.delta, (self.n_cells, 1))
        names = tuple(f"{n}[{c}]" for c in range(self.n_cells) for n in inner.names)
        orders = None if inner.orders is None else np.tile(inner.orders, self.n_cells)
        return JumpTable(inner.path, index.astype(np.int32), delta, names, orders)

    def propensities(self, t, state: StateView, args) -> Array:
        a = self._each_cell(state, lambda proc, view: proc.propensities(t, view, args))
        if self.alive is not None:
            a = a * state[self.alive][:, None]
        return a.reshape(-1)
