"""GapJunction: diffusive exchange of a per-cell variable between neighbouring cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._custom_types import Path, PathLike
from .._errors import ModelError, WiringError
from .._process import (
    AbstractContinuousProcess,
    Ports,
    as_parameter_array,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import StateView, as_ref, path_str
from . import _halo
from ._lattice import Neighbours


class GapJunction(AbstractContinuousProcess):
    r"""Linear diffusive coupling of a per-cell variable between neighbouring cells:
    small molecules passing through gap junctions (or any passive, symmetric exchange).

    For cells ``i`` with neighbours ``N(i)`` (a :class:`Neighbours` graph), it adds

    $$
    \frac{dx_i}{dt} \mathrel{+}= D \sum_{j \in N(i)} (x_j - x_i)
      = -D\,(L x)_i ,
    $$

    to the derivative of the variable at ``path``, where ``L`` is the graph Laplacian
    (degree minus adjacency). On a symmetric graph (every lattice and
    :func:`from_positions` graph is) ``sum_i x_i`` is conserved, and a Laplacian
    eigenvector decays as ``exp(-D λ t)``: on a periodic square lattice of ``nx × ny``
    cells the Fourier mode ``(a, b)`` has ``λ = 4 - 2 cos(2π a/nx) - 2 cos(2π b/ny)``.

    The variable is owned by another process and has the cells on its leading axis:
    shape ``(N,)``, or ``(N, k)`` (e.g. the species of a reaction network run in every
    cell by :class:`~jaxcell.cellular.PerCell`). ``component`` selects one column of an
    ``(N, k)`` variable, by label (``"p_lacI"``; the label is checked when the model is
    wired) or by index; without it every column is coupled with the same ``D``. The
    component may also be written as a fourth part of the path,
    ``"molecular/rep/species/p_lacI"``.

    The sums are one gather over the graph's ``(N, K)`` index and mask arrays, with no
    loop over cells, so the cost is ``O(N K)`` per evaluation.

    Arguments:
        name: the process's name.
        neighbours: the graph (:func:`hex_lattice`, :func:`square_lattice`,
            :func:`from_positions`).
        path: the per-cell variable (``"scale/entity/variable"``, optionally with
            ``"/label"``).
        D: the coupling constant (per time: permeability times junction area over cell
            volume), a non-negative scalar; a pytree leaf, so it can be fitted and
            differentiated.
        component: a label or an integer index of the column to couple.
        devices: a count of local devices or a list of :class:`jax.Device`: the cells
            are split, in index order, into one block per device, and each block
            takes the few neighbouring cells it needs from the adjacent blocks (a halo
            exchange with ``jax.lax.ppermute``), for tissues larger than one device.
            The number of cells must divide evenly, and every neighbour must lie in
            the same or an adjacent block (lattices ordered row by row do). The result
            equals the single-device one to rounding.

    Raises:
        ModelError: ``neighbours`` is not a :class:`Neighbours`, ``D`` is not a
            non-negative scalar, or ``component`` is neither a string nor an integer (or
            is given twice).
        WiringError: when the model is traced, if the variable's leading axis is not
            the graph's ``N`` cells, or ``component`` does not fit its shape.

    Examples:
        All of the substance starts in one cell of a 4 x 4 periodic square lattice and
        spreads evenly; the total stays 16:

        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> from jaxcell.tissue import GapJunction, square_lattice
        >>> cells = jc.ODE("cells", {"x": jnp.zeros(16).at[0].set(16.0)},
        ...                lambda t, y, p: {}, scale="cellular")
        >>> gap = GapJunction("gap", square_lattice(4, 4), "cellular/cells/x", D=0.5)
        >>> traj = jc.simulate(jc.Composite([cells, gap]), 0.0, 20.0, saveat=[20.0])
        >>> x = traj["cellular/cells/x"][-1]
        >>> round(float(x.sum()), 8), round(float(x.min()), 6), round(float(x.max()), 6)
        (16.0, 1.0, 1.0)

        One species of a gene circuit in every cell:
        ``GapJunction("gap", nb, "molecular/repressilator/species", D=0.1,
        component="p_lacI")`` next to
        ``PerCell(jc.models.repressilator(), n_cells=nb.n_cells)``.

    References:
        Othmer, H. G. & Scriven, L. E. (1971). Instability and dynamic pattern in
        cellular networks. J. Theor. Biol. 32:507–537.
    """

    name: str
    neighbours: Neighbours
    path: Path = eqx.field(static=True)
    component: str | int | None = eqx.field(static=True)
    params: dict[str, Array]
    mesh: Any = eqx.field(static=True)
    halo: int = eqx.field(static=True)
    local_index: Array | None

    def __init__(self, name: str, neighbours: Neighbours, path: PathLike, *,
                 D: ArrayLike, component: str | int | None = None,
                 devices: int | Sequence[Any] | None = None):
        owner = f"GapJunction {name!r}"
        if not isinstance(neighbours, Neighbours):
            raise ModelError(f"{owner}: neighbours must come from hex_lattice, "
                             f"square_lattice or from_positions; got "
                             f"{type(neighbours).__name__}.")
        ref = as_ref(path)
        if len(ref) == 4:
            if component is not None:
                raise ModelError(f"{owner}: the component is given twice, in the path "
                                 f"{path!r} and as component={component!r}.")
            component = ref[3]
        if component is not None and (isinstance(component, bool)
                                      or not isinstance(component, (str, int))):
            raise ModelError(f"{owner}: component must be a label (string) or an integer "
                             f"index; got {component!r}.")
        # A fixed (not weakly typed) dtype, like the values replace_parameters makes, so
        # that a new D reuses the compiled simulation.
        d = as_parameter_array(owner, "D", D, dtype=jnp.result_type(float))
        if d.shape != ():
            raise ModelError(f"{owner}: D must be a scalar; got shape {d.shape}.")
        check_parameters(owner, {"D": d}, nonnegative=("D",))
        self.name = name
        self.neighbours = neighbours
        self.path = ref[:3]  # pyright: ignore[reportAttributeAccessIssue]
        self.component = component
        self.params = {"D": d}
        self.mesh = _halo.make_mesh(owner, devices, neighbours.n_cells)
        self.halo, self.local_index = 0, None
        if self.mesh is not None:
            try:
                local, self.halo = _halo.local_neighbours(np.asarray(neighbours.index),
                                                          self.mesh.devices.size)
            except ModelError as e:
                raise ModelError(f"{owner}: {e}") from None
            self.local_index = jnp.asarray(local)

    def ports(self) -> Ports:
        comps = ((self.path, self.component),) if isinstance(self.component, str) else ()
        return Ports(reads={self.path: None}, changes=(self.path,), components=comps)

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> GapJunction:
        owner = f"GapJunction {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new, nonnegative=("D",))
        return eqx.tree_at(lambda s: s.params, self, new)

    def _column(self, state: StateView, shape: tuple[int, ...]) -> int:
        """The index of the coupled column of an ``(N, k)`` variable."""
        where = f"GapJunction {self.name!r}: {path_str(self.path)!r}"
        if len(shape) != 2:
            raise WiringError(f"{where} has shape {shape}; component={self.component!r} "
                              f"needs a variable of shape (N, k).")
        if isinstance(self.component, str):
            # The wiring check guarantees the label exists; the view knows the labels.
            labels = state._labels.get(self.path) or ()  # noqa: SLF001
            return labels.index(self.component)
        k = shape[1]
        if not -k <= self.component < k:  # pyright: ignore[reportOptionalOperand]
            raise WiringError(f"{where} has {k} columns; component={self.component} is "
                              f"out of range.")
        return self.component % k  # pyright: ignore[reportOptionalOperand]

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        x = state[self.path]
        nb = self.neighbours
        if x.ndim not in (1, 2) or x.shape[0] != nb.n_cells:
            raise WiringError(
                f"GapJunction {self.name!r}: {path_str(self.path)!r} has shape {x.shape}; "
                f"expected ({nb.n_cells},) or ({nb.n_cells}, k), one row per cell of the "
                f"graph.")
        col = None if self.component is None else self._column(state, x.shape)
        v = x if col is None else x[:, col]
        p = checked_parameters(f"GapJunction {self.name!r}", self.params,
                               nonnegative=("D",))
        if self.mesh is None:
            total = _neighbour_sum(v, v, nb.index, nb.mask)
        else:
            k, h = self.mesh.devices.size, self.halo
            spec = jax.sharding.PartitionSpec(_halo.AXIS)

            def block(v, index, mask):
                if h == 0:
                    return _neighbour_sum(v, v, index, mask)
                lo, hi = _halo.exchange(v, h, k)
                return _neighbour_sum(_halo.pad_rows(v, lo, hi), v, index, mask)

            total = jax.shard_map(block, mesh=self.mesh, in_specs=(spec, spec, spec),
                                  out_specs=spec, check_vma=False)(
                v, self.local_index, nb.mask)
        flux = p["D"] * total
        if col is not None:
            flux = jnp.zeros_like(x).at[:, col].set(flux)
        return {self.path: flux}


def _neighbour_sum(ext: Array, v: Array, index: Array, mask: Array) -> Array:
    """``sum_j (x_j - x_i)`` over each row's neighbours; ``index`` points into ``ext``
    (``v`` itself, or ``v`` with halo rows on both sides)."""
    diff = ext[index] - v[:, None]                             # (N, K[, k])
    mask = mask.reshape(mask.shape + (1,) * (v.ndim - 1))
    return jnp.sum(jnp.where(mask, diff, 0.0), axis=1)
