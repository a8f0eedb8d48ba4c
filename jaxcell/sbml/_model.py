"""``SBMLModel``: an imported SBML model as a jaxcell process."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._custom_types import Path
from .._process import (
    AbstractContinuousProcess,
    AbstractEventProcess,
    AbstractJumpProcess,
    EventTable,
    JumpTable,
    Ports,
    as_parameter_array,
    host_asarray,
    jump_table,
)
from .._safe_io import reraise_as
from .._state import StateView, Var
from ._errors import SBMLError, SBMLUnsupportedError
from ._eval import Env
from ._events import env_factory, timed_switches
from ._reader import read_sbml
from ._structure import Structure


class SBMLModel(AbstractContinuousProcess, AbstractEventProcess, AbstractJumpProcess):
    """An SBML model imported with :func:`load_sbml`.

    As a process it owns one state variable, ``(scale, name, "state")``, whose labelled
    components are the SBML ids in :attr:`state_ids` (species as amounts, except species
    with a concentration rate rule). Its parameters are the attribute values of the SBML
    file — parameter values, compartment sizes, species initial amounts or
    concentrations, constant stoichiometries — plus local parameters as
    ``"reaction_id.parameter_id"``: all are pytree leaves and can be fitted.
    Initial assignments and assignment rules are re-evaluated from them.

    It is also an event process (:class:`jaxcell.AbstractEventProcess`): its events,
    the discontinuities of its right-hand side (``piecewise``, ``floor``, ``ceiling``)
    and its delays run in the core event loop, alone (:func:`simulate_sbml`) or
    composed with any other process (:func:`jaxcell.simulate`), per cell too
    (:meth:`per_cell`: each cell fires its own events).

    And it is a jump process (:class:`jaxcell.AbstractJumpProcess`), read with SBML's
    stochastic interpretation: each reaction is a channel whose propensity is its
    kinetic law (substance per time, with species values as the file defines them:
    amounts for ``hasOnlySubstanceUnits``, else concentrations in their compartment)
    and whose jump is its stoichiometry, so ``simulate(model, ...,
    stochastic=jaxcell.SSA())`` runs the DSMTS models. Rate rules, conversion factors,
    variable stoichiometry and ``delay`` have no stochastic reading here and are refused
    by name.
    """

    name: str = eqx.field(static=True)
    scale: str = eqx.field(static=True)
    structure: Structure = eqx.field(static=True)
    params: dict[str, Array]
    cells: int | None = eqx.field(static=True)
    consts: Array | None
    start: Array | None
    externals: tuple

    def __init__(self, structure: Structure, *, name: str | None = None,
                 scale: str = "molecular", parameters: Mapping[str, ArrayLike] | None = None,
                 cells: int | None = None, externals: tuple = ()):
        self.structure = structure
        self.externals = tuple(externals)
        self.name = name or structure.ir.id
        self.scale = scale
        values = dict(structure.default_parameters)
        if parameters:
            values.update(parameters)
        # strongly typed float leaves, so that replacing values never recompiles
        ftype = jnp.result_type(float)
        self.params = {k: host_asarray(v, dtype=ftype) if cells else
                       host_asarray(as_parameter_array(self.name, k, v), dtype=ftype)
                       for k, v in values.items()}
        self.cells = cells
        self.consts = None
        self.start = None

    def with_external_rules(self, rules: Mapping[str, tuple],
                            externals: tuple) -> SBMLModel:
        """The model with some symbols computed by external functions (the neural
        networks of a PEtab SciML problem) instead of their fixed values: ``rules`` maps
        a parameter id to an expression tree that may hold
        ``("op", "extern", ("num", k), ("num", j), *inputs)`` nodes (output ``j`` of
        ``externals[k]`` applied to the stacked input values). The symbols become
        assignment rules evaluated wherever the right-hand side needs them.

        Raises:
            SBMLError: a target is not a parameter of the model, or already has a rule.
        """
        ir = self.structure.ir
        symbols = {s.id: s for s in ir.symbols}
        for target in rules:
            sym = symbols.get(target)
            if sym is None or sym.kind not in ("parameter", "compartment"):
                raise SBMLError(f"{ir.source}: {target!r} cannot be set by a network: it "
                                "is not a parameter of the model.")
            if target in dict(ir.assignment_rules) or target in dict(ir.rate_rules):
                raise SBMLError(f"{ir.source}: {target!r} cannot be set by a network: it "
                                "already has a rule.")
        new_symbols = tuple(dataclasses.replace(s, constant=False) if s.id in rules else s
                            for s in ir.symbols)
        new_ir = dataclasses.replace(
            ir, symbols=new_symbols,
            assignment_rules=ir.assignment_rules + tuple(rules.items()))
        return SBMLModel(Structure(new_ir), name=self.name, scale=self.scale,
                         parameters=self.params, cells=self.cells, externals=externals)

    def per_cell(self, n_cells: int) -> SBMLModel:
        """The same model in each of ``n_cells`` cells: the state becomes
        ``(n_cells, len(state_ids))`` (labels on the last axis) and every parameter may be
        a scalar (shared) or an array of shape ``(n_cells,)`` (one value per cell)."""
        if not isinstance(n_cells, int) or isinstance(n_cells, bool) or n_cells < 1:
            raise SBMLError(f"per_cell: n_cells must be a positive integer; got {n_cells!r}.")
        return SBMLModel(self.structure, name=self.name, scale=self.scale,
                         parameters=self.params, cells=n_cells)

    # -- descriptions ------------------------------------------------------------------
    @property
    def state_ids(self) -> tuple[str, ...]:
        """SBML ids of the integrated state vector's components, in order."""
        return self.structure.state_ids

    @property
    def output_ids(self) -> tuple[str, ...]:
        """SBML ids whose values a solution reports, in order."""
        return self.structure.output_ids

    @property
    def varying_ids(self) -> tuple[str, ...]:
        """Species, and parameters, compartments and species references that are not
        constant: what a results table usually shows."""
        st = self.structure
        return tuple(s.id for s in st.ir.symbols
                     if s.kind == "species" or s.id in st.state_index or s.id in st.assigned)

    @property
    def species_ids(self) -> tuple[str, ...]:
        """SBML ids of the species, in document order."""
        return tuple(s.id for s in self.structure.ir.symbols if s.kind == "species")

    @property
    def has_events(self) -> bool:
        """Whether the model has events (then it needs :func:`simulate_sbml`)."""
        return bool(self.structure.ir.events)

    @property
    def has_delays(self) -> bool:
        """Whether the model uses ``delay`` (then it needs :func:`simulate_sbml`)."""
        return self.structure.has_delay

    # -- process interface -------------------------------------------------------------
    def _path(self) -> Path:
        return (self.scale, self.name, "state")

    def ports(self) -> Ports:
        if self.has_delays and self.cells is not None:
            raise SBMLUnsupportedError(
                "delay() in an SBML model simulated per cell (per_cell)", self.name)
        shape = (len(self.state_ids),) if self.cells is None else (
            self.cells, len(self.state_ids))
        return Ports(owns={self._path(): Var(shape, self.state_ids)},
                     history=self.has_delays)

    def _axes(self):
        return {k: (0 if jnp.ndim(v) == 1 else None) for k, v in self.params.items()}

    def _single(self, params) -> SBMLModel:
        return eqx.tree_at(lambda s: s.params, self, params)

    def initial_values(self, t0: ArrayLike | None = None) -> dict[Path, Array]:
        if t0 is None:
            t0 = 0.0 if self.start is None else self.start
        if self.cells is None:
            x0, _ = self.initialize(t0)
        else:
            x0 = jax.vmap(lambda p: self._single(p).initialize(t0)[0], in_axes=(self._axes(),),
                          axis_size=self.cells)(self.params)
        return {self._path(): x0}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> SBMLModel:
        new = dict(self.params)
        for k, v in values.items():
            if k not in new:
                raise SBMLError(
                    f"SBML model {self.name!r} has no parameter {k!r}; it has "
                    f"{sorted(new)[:20]}{' ...' if len(new) > 20 else ''}.")
            new[k] = host_asarray(v, dtype=jnp.result_type(new[k]))
            allowed = [()] if self.cells is None else [(), (self.cells,)]
            if new[k].shape not in allowed:
                raise SBMLError(f"SBML model {self.name!r}: parameter {k!r} must have shape "
                                f"{' or '.join(map(str, allowed))}; got {new[k].shape}.")
        return eqx.tree_at(lambda s: s.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        dx = self._each_cell(state, lambda ev, x, z: ev.env(t, x, z).derivative())
        return {self._path(): dx}

    # -- the jump process --------------------------------------------------------------
    def jumps(self) -> JumpTable:
        st = self.structure
        ir = st.ir
        where = f"{ir.source}: stochastic simulation of SBML model {self.name!r}"
        if st.rate_rules:
            raise SBMLUnsupportedError(f"{where}: rate rules (on {sorted(st.rate_rules)})",
                                       self.name)
        if st.symbolic_stoichiometry:
            raise SBMLUnsupportedError(f"{where}: variable stoichiometry", self.name)
        if ir.conversion is not None or any(
                s.kind == "species" and s.conversion for s in ir.symbols):
            raise SBMLUnsupportedError(f"{where}: conversion factors", self.name)
        if st.has_delay or any(ev.delay is not None for ev in ir.events):
            raise SBMLUnsupportedError(f"{where}: delays", self.name)
        n = np.asarray(st.numeric_stoichiometry, dtype=float)
        names = tuple(r.id for r in ir.reactions)
        if self.cells is not None:
            n = np.kron(np.eye(self.cells), n)
            names = tuple(f"{r}[{c}]" for c in range(self.cells) for r in names)
        return jump_table(self._path(), n, names)

    def propensities(self, t, state: StateView, args) -> Array:
        a = self._each_cell(state, lambda ev, x, z: ev.env(t, x, z).rates())
        return a.reshape(-1)

    # -- the event process -------------------------------------------------------------
    def prepared(self, t0) -> SBMLModel:
        """The model with its constants (after initial assignments at ``t0``) computed
        once for a solve."""
        if self.cells is None:
            _, c = self.initialize(t0)
        else:
            c = jax.vmap(lambda p: self._single(p).initialize(t0)[1],
                         in_axes=(self._axes(),), axis_size=self.cells)(self.params)
        return eqx.tree_at(lambda s: (s.consts, s.start), self, (c, jnp.asarray(t0)),
                           is_leaf=lambda v: v is None)

    def frozen(self, z):
        """The switch values ``z`` as the interpreter's frozen branches."""
        if z is None or not self.structure.discontinuities:
            return None
        return {d: (z[i] > 0.5 if d[0] == "cond" else z[i])
                for i, d in enumerate(self.structure.discontinuities)}

    def _consts(self) -> Array:
        if self.consts is not None:
            return self.consts
        return self.prepared(0.0 if self.start is None else self.start).consts  # pyright: ignore

    def _each_cell(self, state: StateView, fn):
        """``fn(events, x, z)`` for the model (or, per cell, ``vmap``-ped over cells):
        ``events`` is the :class:`SBMLEvents` of one cell, ``x`` its state, ``z`` its
        frozen switches (``None``: evaluated afresh)."""
        x = state[self._path()]
        z = state.switches
        c = self._consts()
        if self.cells is None:
            hist = _Past(state, self._path()) if state.history_start is not None else None
            return fn(env_factory(self, c, hist, x.dtype), x, z)
        zc = None if z is None else z.reshape(self.cells, -1)

        def one(p, ci, xi, zi):
            return fn(env_factory(self._single(p), ci, None, xi.dtype), xi, zi)

        return jax.vmap(one, in_axes=(self._axes(), 0, 0, None if zc is None else 0))(
            self.params, c, x, zc)

    def _cell_model(self, cell):
        """One cell's model, its constants and its frozen switches selector."""
        params = {k: (v[cell] if ax == 0 else v)
                  for (k, v), ax in zip(self.params.items(), self._axes().values())}
        return self._single(params), self._consts()[cell]

    def events(self) -> EventTable:
        st = self.structure
        n = self.cells or 1
        evs = st.ir.events
        names = tuple(ev.id if self.cells is None else f"{ev.id}[{i}]"
                      for i in range(n) for ev in evs)
        n_disc = len(st.discontinuities)
        timed = timed_switches(st)
        return EventTable(
            names=names,
            persistent=tuple(ev.persistent for _ in range(n) for ev in evs),
            initial_value=tuple(ev.initial_value for _ in range(n) for ev in evs),
            use_trigger_values=tuple(ev.use_trigger_values for _ in range(n) for ev in evs),
            has_priority=tuple(ev.priority is not None for _ in range(n) for ev in evs),
            scheduled=(False,) * (n * len(evs)),
            n_switches=n * n_disc,
            timed_switches=tuple(c * n_disc + j for c in range(n) for j in timed))

    def triggers(self, t, state: StateView, args):
        b, g = self._each_cell(state, lambda ev, x, z: ev.triggers(t, x, z))
        return b.reshape(-1), g.reshape(-1)

    def event_values(self, t, state: StateView, args):
        v = self._each_cell(state, lambda ev, x, z: ev.values(t, x, z))
        return v.reshape(-1, v.shape[-1])

    def event_delays(self, t, state: StateView, args):
        return self._each_cell(state, lambda ev, x, z: ev.delays(t, x, z)).reshape(-1)

    def event_priorities(self, t, state: StateView, args):
        return self._each_cell(state, lambda ev, x, z: ev.priorities(t, x, z)).reshape(-1)

    def execute(self, k, t, state: StateView, args, values):
        x = state[self._path()]
        z = state.switches
        if self.cells is None:
            hist = _Past(state, self._path()) if state.history_start is not None else None
            ev = env_factory(self, self._consts(), hist, x.dtype)
            return {self._path(): ev.execute(k, t, x, values, z)}
        n_ev = len(self.structure.ir.events)
        cell, kk = k // n_ev, k % n_ev
        m, c = self._cell_model(cell)
        zi = None if z is None else z.reshape(self.cells, -1)[cell]
        row = env_factory(m, c, None, x.dtype).execute(kk, t, x[cell], values, zi)
        return {self._path(): x.at[cell].set(row)}

    def switch_values(self, t, state: StateView, args):
        return self._each_cell(state, lambda ev, x, z: ev.switch_values(t, x, z)).reshape(-1)

    def switch_crossings(self, t, state: StateView, args):
        return self._each_cell(state, lambda ev, x, z: ev.switch_crossings(t, x, z)
                               ).reshape(-1)

    def switch_flips(self, t, state: StateView, args):
        return self._each_cell(state, lambda ev, x, z: ev.switch_flips(t, x, z)).reshape(-1)

    def next_time(self, t, state: StateView, args):
        return jnp.min(self._each_cell(state, lambda ev, x, z: ev.next_time(t, x)))

    def min_delay(self, t, state: StateView, args):
        return jnp.min(self._each_cell(state, lambda ev, x, z: ev.min_delay(t, x)))

    # -- numerics ----------------------------------------------------------------------
    def initialize(self, t0: ArrayLike = 0.0) -> tuple[Array, Array]:
        """Initial stored state ``x0`` and the constants ``c`` (after initial assignments)."""
        st = self.structure
        env = Env(st, "initial", t=t0, p=self.params, dtype=self._dtype(),
                  externals=self.externals)
        x0 = jnp.stack([env.stored(k) for k in st.state_ids]) if st.state_ids \
            else jnp.zeros((0,), self._dtype())
        c = jnp.stack([env.value(k) for k in st.const_ids]) if st.const_ids \
            else jnp.zeros((0,), self._dtype())
        return x0, c

    def env(self, t, x, c, history=None, frozen=None) -> Env:
        """An expression evaluator at time ``t``, state ``x`` and constants ``c``."""
        return Env(self.structure, "dynamic", t=t, p=self.params, x=x, c=c,
                   history=history, dtype=x.dtype, frozen=frozen,
                   externals=self.externals)

    def derivative(self, t, x, c, history=None, frozen=None) -> Array:
        """d(state)/dt at time ``t``, state ``x`` and constants ``c``."""
        return self.env(t, x, c, history, frozen).derivative()

    def observe(self, t, x, c, history=None, frozen=None) -> Array:
        """Values of :attr:`output_ids` (SBML units: concentrations for species unless
        ``hasOnlySubstanceUnits``)."""
        env = self.env(t, x, c, history, frozen)
        return jnp.stack([env.value(k) for k in self.output_ids])

    def _dtype(self):
        if self.cells is not None and any(jnp.ndim(v) for v in self.params.values()):
            raise SBMLError(f"SBML model {self.name!r} has per-cell parameters; simulate it "
                            "with jaxcell.simulate (inside a Composite), not simulate_sbml.")
        leaves = list(self.params.values())
        return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


class _Past:
    """The past of an SBML model's state, read from the event loop's history (what
    the expression interpreter needs for ``delay``)."""

    def __init__(self, state: StateView, path: Path):
        self.state = state
        self.path = path
        self.t0 = state.history_start

    def __call__(self, tq):
        return self.state.past(self.path, tq)


def load_sbml(source: str | os.PathLike, *, name: str | None = None,
              scale: str = "molecular") -> SBMLModel:
    """Import an SBML model (a file path or an XML string) as a jaxcell process.

    Parsed with python-libsbml; maths becomes JAX computations through an interpreter of
    libsbml's expression tree (nothing in the file is executed). Raises
    :class:`SBMLError` for malformed or invalid documents, with libsbml's messages, and
    :class:`SBMLUnsupportedError` naming the feature and element for what jaxcell does
    not simulate (algebraic rules, fast reactions, SBML packages such as comp and fbc).

    Examples:
        >>> import numpy as np
        >>> from jaxcell.sbml import load_sbml, simulate_sbml
        >>> xml = '''<?xml version="1.0" encoding="UTF-8"?>
        ... <sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
        ...  <model id="decay">
        ...   <listOfCompartments>
        ...    <compartment id="cell" size="1" constant="true"/>
        ...   </listOfCompartments>
        ...   <listOfSpecies>
        ...    <species id="A" compartment="cell" initialAmount="10"
        ...     hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
        ...   </listOfSpecies>
        ...   <listOfParameters><parameter id="k" value="0.5" constant="true"/></listOfParameters>
        ...   <listOfReactions>
        ...    <reaction id="r" reversible="false">
        ...     <listOfReactants>
        ...      <speciesReference species="A" stoichiometry="1" constant="true"/>
        ...     </listOfReactants>
        ...     <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
        ...      <apply><times/><ci>k</ci><ci>A</ci></apply></math></kineticLaw>
        ...    </reaction>
        ...   </listOfReactions>
        ...  </model>
        ... </sbml>'''
        >>> model = load_sbml(xml)
        >>> sol = simulate_sbml(model, np.linspace(0.0, 2.0, 3))
        >>> np.round(sol.amount("A"), 5).tolist()
        [10.0, 6.06531, 3.67879]
    """
    ir = read_sbml(source)
    with reraise_as(SBMLError, ir.source, "SBML model"):
        return SBMLModel(Structure(ir), name=name, scale=scale)
