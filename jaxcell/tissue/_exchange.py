r"""Cells and fields: secretion, uptake and sensing of a diffusing field.

N cells sit on the grid of a :class:`~jaxcell.tissue.DiffusingField`, each in one voxel
(finite-volume cell). Two processes couple them to the field:

- :class:`FieldExchange` (continuous) adds what the cells secrete to the field's
  concentration rate and removes what they take up, optionally crediting the uptake to a
  per-cell internal amount, so that mass is conserved between field and cells;
- :class:`FieldSensor` (derived) sets a per-cell variable to the concentration of the
  voxel each cell is in, for intracellular processes to read.

Both take the cells' places the same way (see :class:`AbstractCellsOnField`): fixed
positions, or a position variable of the state, so that moving cells exchange with the
voxel they are in at every moment. Scatters are one ``segment_sum`` and gathers one
index, with no loop over cells.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    AbstractDerivedProcess,
    AbstractProcess,
    Ports,
    as_parameter_array,
    check_parameters,
    checked_parameters,
    is_concrete,
    replace_in_dict,
)
from .._state import Ref, StateView, Var, as_ref
from ._field import DiffusingField
from ._grid import Grid
from ._refs import contribution, read, read_ports, whole_variable


def voxel_index(grid: Grid, positions: Array) -> Array:
    """The flat index (C order) of the voxel containing each position.

    ``positions`` has shape ``(N, grid.ndim)`` in the grid's length units, with the box
    starting at the origin. Voxel ``j`` along an axis spans ``[j h, (j + 1) h)``, so
    this is also the voxel whose centre is nearest. Positions outside the box are
    clipped to the edge voxel (a cell that leaves the box keeps exchanging with the
    nearest boundary voxel).
    """
    idx = jnp.floor(positions / grid.spacing).astype(jnp.int32)
    upper = jnp.asarray(grid.shape, dtype=jnp.int32) - 1
    idx = jnp.clip(idx, 0, upper[None, :])
    return jnp.ravel_multi_index(tuple(idx[:, d] for d in range(grid.ndim)), grid.shape,
                                 mode="clip")


class AbstractCellsOnField(AbstractProcess):
    """Base class of processes that place N cells in the voxels of a field's grid.

    Concrete subclasses hold where the cells are (``fixed_voxels`` computed once from
    positions given at construction, or ``position_path``, a state variable of shape
    ``(N, grid.ndim)`` read at every evaluation), an optional ``alive_path`` (shape
    ``(N,)``: 1.0 for a living cell, 0.0 for a dead cell or an empty slot) and the
    ``field`` path (shape ``grid.shape``). Each path may also name one labelled
    component (``"scale/entity/variable/label"``), as ``reads=`` does.
    """

    grid: eqx.AbstractVar[Grid]
    field: eqx.AbstractVar[Ref]
    n_cells: eqx.AbstractVar[int]
    fixed_voxels: eqx.AbstractVar[Array | None]
    position_path: eqx.AbstractVar[Ref | None]
    alive_path: eqx.AbstractVar[Ref | None]

    def _owner(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def concentration(self, state: StateView) -> Array:
        """The field, shape ``grid.shape``."""
        return read(self._owner(), state, self.field, self.grid.shape)

    def voxels(self, state: StateView) -> Array:
        """Flat voxel index of each cell, shape ``(N,)``, at the current state."""
        if self.fixed_voxels is not None:
            return self.fixed_voxels
        x = read(self._owner(), state, self.position_path,  # pyright: ignore
                 (self.n_cells, self.grid.ndim))
        return voxel_index(self.grid, x)

    def alive(self, state: StateView) -> Array | None:
        """The alive mask (shape ``(N,)``) or ``None`` when every cell is alive."""
        if self.alive_path is None:
            return None
        return read(self._owner(), state, self.alive_path, (self.n_cells,))

    def _placement_refs(self) -> dict[Ref, Var | None]:
        refs: dict[Ref, Var | None] = {self.field: Var(self.grid.shape)}
        if self.position_path is not None:
            refs[self.position_path] = Var((self.n_cells, self.grid.ndim))
        if self.alive_path is not None:
            refs[self.alive_path] = Var((self.n_cells,))
        return refs


def _placement(owner: str, field: Any, grid: Any, positions: Any, n_cells: Any,
               alive: Any) -> tuple[Grid, Ref, int, Array | None, Ref | None, Ref | None]:
    """Parse and check the arguments shared by :class:`FieldExchange` and
    :class:`FieldSensor`."""
    if isinstance(field, DiffusingField):
        if grid is not None and grid != field.grid:
            raise ModelError(f"{owner}: grid {grid!r} differs from the grid of field "
                             f"{field.name!r} ({field.grid!r}); leave grid out.")
        grid, field_path = field.grid, field.path
    else:
        if not isinstance(field, (str, tuple)):
            raise ModelError(f"{owner}: field must be a DiffusingField or the path of a "
                             f"concentration variable; got {type(field).__name__}.")
        field_path = as_ref(field)
        if grid is None:
            raise ModelError(f"{owner}: field is given as a path, so grid= (a "
                             f"jaxcell.tissue.Grid) is needed to place the cells.")
    if not isinstance(grid, Grid):
        raise ModelError(f"{owner}: grid must be a jaxcell.tissue.Grid; got "
                         f"{type(grid).__name__}.")
    if n_cells is not None and (isinstance(n_cells, bool) or not isinstance(n_cells, int)
                                or n_cells < 1):
        raise ModelError(f"{owner}: n_cells must be a positive integer; got {n_cells!r}.")

    fixed = None
    position_path = None
    if isinstance(positions, str) or (isinstance(positions, tuple) and positions
                                      and all(isinstance(p, str) for p in positions)):
        position_path = as_ref(positions)
        if n_cells is None:
            raise ModelError(f"{owner}: positions are read from {'/'.join(position_path)!r}, "
                             f"so n_cells= (the number of cells, N) is needed.")
    else:
        x = as_parameter_array(owner, "positions", positions)
        if x.ndim != 2 or x.shape[1] != grid.ndim or x.shape[0] < 1:
            raise ModelError(f"{owner}: positions must have shape (N, {grid.ndim}) for a "
                             f"{grid.ndim}-D grid of shape {grid.shape}; got {x.shape}.")
        if n_cells is not None and n_cells != x.shape[0]:
            raise ModelError(f"{owner}: n_cells={n_cells} but positions has "
                             f"{x.shape[0]} rows.")
        if not is_concrete(x) or not np.isfinite(np.asarray(x)).all():
            raise ModelError(f"{owner}: positions must be finite numbers known at "
                             f"construction (to move cells, give a position path).")
        n_cells = int(x.shape[0])
        fixed = voxel_index(grid, x)
    alive_path = None if alive is None else as_ref(alive)
    return grid, field_path, int(n_cells), fixed, position_path, alive_path


_NONNEGATIVE = ("secretion", "uptake", "V_max")
_POSITIVE = ("K_m",)


def _per_cell(owner: str, name: str, value: ArrayLike, n: int) -> Array:
    arr = as_parameter_array(owner, name, value)
    # a strong dtype, like the values replace_parameters makes: a Python float would
    # give a weakly typed leaf, and the first replacement would then recompile
    arr = jnp.asarray(arr, dtype=arr.dtype)
    if arr.shape not in ((), (n,)):
        raise ModelError(f"{owner}: {name} must be a scalar or one value per cell "
                         f"({n},); got shape {arr.shape}.")
    return arr


class FieldExchange(AbstractCellsOnField, AbstractContinuousProcess):
    r"""Cells secreting into and taking up a diffusing field.

    Cell ``i`` sits in voxel ``v(i)`` of volume ``V = h^d`` (``grid.cell_volume``) and is
    alive (``a_i = 1``) or not (``a_i = 0``; all alive without ``alive``). It secretes
    at the rate ``s_i`` and takes up at the rate ``u_i`` (amounts per time):

    $$
    s_i = a_i\,\sigma_i \;\;(\text{or } a_i\,\sigma_i\,g_i),
    \qquad
    u_i = a_i \Big(k_i\,c_{v(i)} + \frac{V_{\max,i}\,c_{v(i)}}{K_{m,i} + c_{v(i)}}\Big),
    $$

    where ``g`` is the ``secretion_from`` variable, and the field and the cells'
    internal amounts ``m`` (the ``into`` variable) change by

    $$
    \frac{dc_v}{dt} \mathrel{+}= \frac{1}{V}\sum_{i:\,v(i)=v} (s_i - u_i),
    \qquad \frac{dm_i}{dt} \mathrel{+}= u_i .
    $$

    Moving cells (``positions`` a state path) make the rates jump when a cell crosses
    a voxel face, and the voxel index has no derivative with respect to position. A
    solver whose error estimate sees such jumps refines the steps there
    (``solver=diffrax.Tsit5()`` with a tight ``PIDController`` for non-stiff models);
    the default Rodas5 may step over a crossing, so bound its step with
    ``PIDController(dtmax=...)`` below the time a cell takes to cross a voxel.

    Several cells in one voxel add up. Without secretion, the total amount
    ``sum_v c_v V + sum_i m_i`` is conserved exactly (up to what the field itself does:
    decay, sources, open boundaries). Dead cells neither secrete nor take up.

    Units: ``c`` amount per volume (the field's units); ``secretion`` ``σ`` amount per
    time per cell (or per unit of ``g`` with ``secretion_from``); ``uptake`` ``k``
    volume per time per cell (a clearance: linear uptake ``k c``); ``V_max`` amount per
    time per cell and ``K_m`` amount per volume (saturating Michaelis–Menten uptake,
    used when both are given). Each is a scalar or one value per cell, a pytree leaf
    (fittable, differentiable), non-negative (``K_m`` positive).

    Arguments:
        name: the process's name.
        field: the :class:`~jaxcell.tissue.DiffusingField` (its grid and
            concentration path are taken from it), or the path of a concentration
            variable of shape ``grid.shape`` together with ``grid``.
        positions: the cells' positions, an array ``(N, grid.ndim)`` in the grid's
            length units (the box starts at the origin), fixed; or the path of a state
            variable of that shape (e.g. ``"cellular/<mechanics>/position"``), read at
            every evaluation so that moving cells exchange with the voxel they are in.
            Each cell belongs to the voxel containing it (the nearest voxel centre);
            positions outside the box are clipped to the edge voxel.
        n_cells: ``N``; needed when ``positions`` is a path.
        alive: optional path of an alive mask of shape ``(N,)``.
        secretion: ``σ`` (default 0, or 1 with ``secretion_from``).
        secretion_from: optional path of a per-cell variable ``g`` of shape ``(N,)``
            (e.g. a gene product); the secretion rate is then ``σ g``. Like every path
            argument here (``field``, ``positions``, ``alive``, ``into``), it may name
            one labelled component, as ``reads=`` does:
            ``"molecular/rep/species/p_lacI"`` is the ``p_lacI`` column of an ``(N, k)``
            variable (e.g. a :class:`~jaxcell.cellular.PerCell` network).
        uptake: ``k``, linear uptake clearance (default 0).
        V_max: maximal saturating uptake rate (give ``K_m`` with it).
        K_m: half-saturation concentration of the saturating uptake.
        into: optional path of a per-cell amount of shape ``(N,)`` owned by another
            process, which receives what the cell takes up (declared in ``changes``);
            a component (``".../species/L"``) receives it in that column only.
        grid: the grid, only when ``field`` is a path.

    Raises:
        ModelError: for a grid that is not a :class:`~jaxcell.tissue.Grid`, positions
            of the wrong shape, parameters of the wrong shape, negative or NaN rates,
            ``V_max`` without ``K_m`` (or the reverse).

    References:
        Michaelis, L. & Menten, M. L. (1913). Die Kinetik der Invertinwirkung.
        *Biochemische Zeitschrift* 49, 333–369 (the saturating uptake law).

        Crick, F. (1970). Diffusion in embryogenesis. *Nature* 225, 420–422 (a local
        source with decay gives a steady gradient of length ``sqrt(D / decay)``).

    Examples:
        Two cells secreting 1 amount/time each into a closed field of 5 x 5 voxels of
        side 0.5 put 4 amounts into it in 2 time units; a :class:`FieldSensor` reads
        the concentration where they are:

        >>> import jaxcell as jc
        >>> from jaxcell.tissue import DiffusingField, FieldExchange, FieldSensor, Grid
        >>> field = DiffusingField("ligand", Grid((5, 5), spacing=0.5), D=0.1)
        >>> xy = [[0.3, 0.3], [2.2, 1.1]]
        >>> secrete = FieldExchange("secrete", field, positions=xy, secretion=1.0)
        >>> sense = FieldSensor("sense", field, positions=xy)
        >>> traj = jc.simulate(jc.Composite([field, secrete, sense]), 0.0, 2.0,
        ...                    saveat=[2.0])
        >>> c = traj["tissue/ligand/concentration"][-1]
        >>> round(float(c.sum() * field.grid.cell_volume), 8)
        4.0
        >>> traj["cellular/sense/concentration"].shape
        (1, 2)
    """

    name: str
    grid: Grid
    field: Ref = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)
    fixed_voxels: Array | None
    position_path: Ref | None = eqx.field(static=True)
    alive_path: Ref | None = eqx.field(static=True)
    secretion_path: Ref | None = eqx.field(static=True)
    into: Ref | None = eqx.field(static=True)
    params: dict[str, Array]

    def __init__(self, name: str, field: DiffusingField | PathLike, *,
                 positions: ArrayLike | PathLike, n_cells: int | None = None,
                 alive: PathLike | None = None, secretion: ArrayLike | None = None,
                 secretion_from: PathLike | None = None, uptake: ArrayLike = 0.0,
                 V_max: ArrayLike | None = None, K_m: ArrayLike | None = None,
                 into: PathLike | None = None, grid: Grid | None = None):
        owner = f"FieldExchange {name!r}"
        (self.grid, self.field, self.n_cells, self.fixed_voxels, self.position_path,
         self.alive_path) = _placement(owner, field, grid, positions, n_cells, alive)
        self.name = name
        n = self.n_cells
        if secretion is None:
            secretion = 0.0 if secretion_from is None else 1.0
        params = {"secretion": _per_cell(owner, "secretion", secretion, n),
                  "uptake": _per_cell(owner, "uptake", uptake, n)}
        if (V_max is None) != (K_m is None):
            raise ModelError(f"{owner}: saturating uptake needs both V_max and K_m; got "
                             f"only {'V_max' if K_m is None else 'K_m'}.")
        if V_max is not None:
            params["V_max"] = _per_cell(owner, "V_max", V_max, n)
            params["K_m"] = _per_cell(owner, "K_m", K_m, n)  # pyright: ignore
        check_parameters(owner, params, nonnegative=_NONNEGATIVE, positive=_POSITIVE)
        self.params = params
        self.secretion_path = None if secretion_from is None else as_ref(secretion_from)
        self.into = None if into is None else as_ref(into)

    def ports(self) -> Ports:
        refs = self._placement_refs()
        changes: tuple[Path, ...] = (self.field[:3],)  # pyright: ignore[reportAssignmentType]
        if self.secretion_path is not None:
            refs[self.secretion_path] = Var((self.n_cells,))
        if self.into is not None:
            refs[self.into] = Var((self.n_cells,))
            changes = changes + (self.into[:3],)  # pyright: ignore[reportAssignmentType]
        reads, components = read_ports(refs)
        return Ports(reads=reads, changes=changes, components=components)

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> FieldExchange:
        owner = f"FieldExchange {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new, nonnegative=_NONNEGATIVE, positive=_POSITIVE)
        return eqx.tree_at(lambda s: s.params, self, new)

    def fluxes(self, state: StateView) -> tuple[Array, Array, Array]:
        """``(voxels, s, u)``: each cell's voxel, secretion and uptake rates, ``(N,)``."""
        p = checked_parameters(f"FieldExchange {self.name!r}", self.params,
                               nonnegative=_NONNEGATIVE, positive=_POSITIVE)
        n = self.n_cells
        voxel = self.voxels(state)
        c = self.concentration(state).reshape(-1)[voxel]
        s = jnp.broadcast_to(p["secretion"], (n,))
        if self.secretion_path is not None:
            s = s * read(self._owner(), state, self.secretion_path, (n,))
        u = p["uptake"] * c
        if "V_max" in p:
            u = u + p["V_max"] * c / (p["K_m"] + c)
        u = jnp.broadcast_to(u, (n,))
        a = self.alive(state)
        if a is not None:
            s, u = a * s, a * u
        return voxel, s, u

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        voxel, s, u = self.fluxes(state)
        n_vox = int(np.prod(self.grid.shape))
        net = jax.ops.segment_sum(s - u, voxel, num_segments=n_vox)
        field, rate = contribution(state, self.field,
                                   net.reshape(self.grid.shape) / self.grid.cell_volume)
        out = {field: rate}
        if self.into is not None:
            into, gain = contribution(state, self.into, u)
            out[into] = out[into] + gain if into in out else gain
        return out


class FieldSensor(AbstractCellsOnField, AbstractDerivedProcess):
    r"""Sets a per-cell variable to the field's concentration where each cell is.

    ``target[i] = a_i c_{v(i)}``: the concentration of the voxel containing cell ``i``
    (0 for a dead cell when ``alive`` is given). ``target`` (default
    ``("cellular", name, "concentration")``, shape ``(N,)``) is a derived variable, so
    an intracellular process (an :class:`~jaxcell.ODE`, a reaction network's
    ``inputs``) can read it; it is recomputed at every evaluation, and saved in
    trajectories.

    The arguments ``field``, ``positions``, ``n_cells``, ``alive`` and ``grid`` are as
    for :class:`FieldExchange` (each path may name a labelled component); ``target`` is
    set as a whole, so it names a whole variable (a component raises
    :class:`~jaxcell.WiringError`). There are no parameters.

    Examples:
        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> from jaxcell.tissue import DiffusingField, FieldSensor, Grid
        >>> field = DiffusingField("m", Grid((4,)), D=0.0, initial=jnp.arange(4.0))
        >>> sense = FieldSensor("s", field, positions=[[0.5], [3.9], [2.0]])
        >>> traj = jc.simulate(jc.Composite([field, sense]), 0.0, 1.0, saveat=[1.0])
        >>> traj["cellular/s/concentration"][-1].tolist()
        [0.0, 3.0, 2.0]
    """

    name: str
    grid: Grid
    field: Ref = eqx.field(static=True)
    n_cells: int = eqx.field(static=True)
    fixed_voxels: Array | None
    position_path: Ref | None = eqx.field(static=True)
    alive_path: Ref | None = eqx.field(static=True)
    target: Path = eqx.field(static=True)

    def __init__(self, name: str, field: DiffusingField | PathLike, *,
                 positions: ArrayLike | PathLike, n_cells: int | None = None,
                 alive: PathLike | None = None, target: PathLike | None = None,
                 grid: Grid | None = None):
        owner = f"FieldSensor {name!r}"
        (self.grid, self.field, self.n_cells, self.fixed_voxels, self.position_path,
         self.alive_path) = _placement(owner, field, grid, positions, n_cells, alive)
        self.name = name
        self.target = ("cellular", name, "concentration") if target is None \
            else whole_variable(owner, "target", target)

    def ports(self) -> Ports:
        reads, components = read_ports(self._placement_refs())
        return Ports(reads=reads, components=components,
                     sets={self.target: Var((self.n_cells,))})

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return {}

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> FieldSensor:
        if values:
            raise ModelError(f"FieldSensor {self.name!r} has no parameters; got "
                             f"{sorted(values)}.")
        return self

    def compute(self, t, state: StateView, args) -> dict[Path, Array]:
        c = self.concentration(state).reshape(-1)[self.voxels(state)]
        a = self.alive(state)
        return {self.target: c if a is None else a * c}
