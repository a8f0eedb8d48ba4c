"""``export_sbml``: a jaxcell model as an SBML Level 3 Version 2 document.

A model becomes the plain model description of ``_reader.py`` (:class:`ModelIR`), which
``_write.py`` turns into SBML, so what goes out is read back by the same code that reads
every other SBML file:

- an imported :class:`SBMLModel` is written from its own description with its current
  parameter values (e.g. after :func:`jaxcell.inference.fit`), keeping the units,
  names and notes of the file it came from;
- a :class:`~jaxcell.ReactionNetwork` gives one compartment of size 1 (so amounts and
  concentrations agree, as in jaxcell), a species per species (held species have
  ``boundaryCondition``), a parameter per parameter and a reaction per reaction with its
  net stoichiometry: mass action, Michaelis–Menten and Hill laws are written as their
  formulas, :class:`~jaxcell.Custom` laws are traced with JAX and read back as MathML;
- an :class:`~jaxcell.ODE` gives a parameter with a rate rule per (scalar) variable, an
  :class:`~jaxcell.Assignment` an assignment rule, and a :class:`~jaxcell.Coupling` adds
  its terms to the rules of the variables it changes (for a species: a reaction with no
  reactants whose rate is the term);
- a :class:`~jaxcell.Composite` of these is written as one model, reads resolved to the
  ids of the variables they name.

Anything else (neural rate laws, array-valued variables, tissue processes, events
written in code, stochastic-only processes) raises :class:`ExportError` naming the part.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import libsbml
import numpy as np

from .._composite import Composite
from .._event import Event as CodeEvent
from .._generic import ODE, Assignment, Coupling
from .._process import AbstractContinuousProcess, AbstractProcess
from .._state import StateView
from ..molecular import ReactionNetwork
from ..molecular._ratelaws import (
    Custom,
    HillActivation,
    HillRepression,
    MassAction,
    MichaelisMenten,
)
from ._jaxpr import ExportError, expression_tree, trace_arrays
from ._model import SBMLModel
from ._reader import Event, ModelIR, Reaction, SpeciesRef, Symbol
from ._write import write_document

_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COMPARTMENT = "default_compartment"


def _op(name, *kids):
    return ("op", name, *kids)


def _name(i):
    return ("name", i)


def _plus(terms: list[tuple]) -> tuple:
    if not terms:
        return ("num", 0.0)
    return terms[0] if len(terms) == 1 else _op("plus", *terms)


class _Ids:
    """SBML ids for jaxcell names: valid, unique, and the plain name when possible."""

    def __init__(self):
        self.taken: set[str] = set()

    def new(self, name: str, prefix: str = "") -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if not _ID.match(base):
            base = f"_{base}"
        candidates = [base]
        if prefix:
            candidates.append(re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{base}"))
        for c in candidates:
            if c not in self.taken:
                self.taken.add(c)
                return c
        k = 2
        while f"{candidates[-1]}_{k}" in self.taken:
            k += 1
        out = f"{candidates[-1]}_{k}"
        self.taken.add(out)
        return out


def _scalar(value, where: str) -> float:
    a = np.asarray(value)
    if a.shape != ():
        raise ExportError(f"{where}: has shape {a.shape}; only scalar values can be "
                          "written as SBML.")
    return float(a)


class _Builder:
    def __init__(self, model_id: str):
        self.model_id = model_id
        self.ids = _Ids()
        self.ids.taken.add(_COMPARTMENT)
        self.symbols: list[Symbol] = [Symbol(_COMPARTMENT, "compartment", True, 1.0)]
        self.reactions: list[Reaction] = []
        self.rate_terms: dict[str, list[tuple]] = {}  # ODE variable id -> terms
        self.rate_rule_order: list[str] = []
        self.assignment_rules: list[tuple[str, tuple]] = []
        self.paths: dict[tuple, str] = {}  # state path (with label) -> id
        self.vectors: dict[tuple, tuple[str, ...]] = {}  # network species path -> ids
        self.labels: dict[tuple, tuple[str, ...]] = {}
        self.events: list[Event] = []
        self.species_ids: set[str] = set()
        self.pending: list = []  # (process, kind) resolved after every variable has an id

    # -- variables -------------------------------------------------------------------
    def claim(self, proc: AbstractProcess) -> None:
        if isinstance(proc, SBMLModel):
            raise ExportError(f"SBML model {proc.name!r}: an imported SBML model can be "
                              "exported on its own (jaxcell.sbml.export_sbml(model)), not "
                              "as part of a composite.")
        if isinstance(proc, ReactionNetwork):
            held = ~np.any(np.asarray(proc.structure["N"]) != 0.0, axis=1)
            self.labels[proc.path] = tuple(proc.species)
            for name, x0, h in zip(proc.species, np.asarray(proc.x0), held):
                sid = self.ids.new(name, proc.name)
                self.paths[(*proc.path, name)] = sid
                self.species_ids.add(sid)
                self.vectors.setdefault(proc.path, ())
                self.vectors[proc.path] += (sid,)
                self.symbols.append(Symbol(sid, "species", False, float(x0),
                                           compartment=_COMPARTMENT,
                                           initial_is_concentration=True,
                                           boundary=bool(h and self._reacts(proc, name))))
        elif isinstance(proc, ODE):
            for var, y0 in proc.y0.items():
                where = f"ODE {proc.name!r}, variable {var!r}"
                sid = self.ids.new(var, proc.name)
                self.paths[proc._path(var)] = sid
                self.symbols.append(Symbol(sid, "parameter", False, _scalar(y0, where)))
                self.rate_terms[sid] = []
                self.rate_rule_order.append(sid)
        elif isinstance(proc, Assignment):
            if proc.var.shape != ():
                raise ExportError(f"Assignment {proc.name!r}: sets a value of shape "
                                  f"{proc.var.shape}; only scalars can be written as SBML.")
            sid = self.ids.new(proc.target[-1], proc.name)
            self.paths[proc.target] = sid
            self.symbols.append(Symbol(sid, "parameter", False, None))
        elif isinstance(proc, CodeEvent):
            if proc.cells:
                raise ExportError(f"Event {proc.name!r}: a per-cell event ({proc.cells} "
                                  "cells) has no SBML form.")
        elif isinstance(proc, AbstractContinuousProcess) and not isinstance(proc, Coupling):
            init = proc.initial_values()
            for path, var in proc.ports().owns.items():
                where = f"{type(proc).__name__} {proc.name!r}, variable {path[-1]!r}"
                if var.shape != ():
                    raise ExportError(f"{where}: has shape {var.shape}; only scalar "
                                      "variables can be written as SBML.")
                sid = self.ids.new(path[-1], proc.name)
                self.paths[tuple(path)] = sid
                self.symbols.append(Symbol(sid, "parameter", False,
                                           _scalar(init[path], where)))
                self.rate_terms[sid] = []
                self.rate_rule_order.append(sid)
        elif isinstance(proc, Coupling):
            pass
        else:
            raise ExportError(f"{type(proc).__name__} {getattr(proc, 'name', '')!r}: this "
                              "kind of process has no SBML form; export_sbml writes "
                              "continuous processes with scalar variables (reaction "
                              "networks, ODE, Coupling, discovered models, ...), "
                              "Assignment and Event processes, and imported SBML models.")
        self.pending.append(proc)

    @staticmethod
    def _reacts(net: ReactionNetwork, name: str) -> bool:
        """Whether a species with no net change is a reactant or product of some
        reaction (then it is a held, ``fixed`` species: a boundary species in SBML)."""
        i = net.species.index(name)
        for block in net.structure.blocks:
            if block.kind is MassAction and np.any(np.asarray(block.arrays["orders"]) == i):
                return True
        return False

    def parameters(self, proc, params: Mapping[str, object]) -> dict[str, str]:
        out = {}
        for k, v in params.items():
            where = f"{type(proc).__name__} {proc.name!r}, parameter {k!r}"
            sid = self.ids.new(k, proc.name)
            self.symbols.append(Symbol(sid, "parameter", True, _scalar(v, where)))
            out[k] = sid
        return out

    def ref(self, proc, alias: str, path: tuple) -> tuple:
        sid = self.paths.get(tuple(path))
        if sid is None:
            raise ExportError(f"{type(proc).__name__} {proc.name!r}: reads "
                              f"{'/'.join(map(str, path))!r} (as {alias!r}), which no "
                              "exported process provides as a scalar.")
        return _name(sid)

    def value_of(self, proc, path) -> np.ndarray:
        """The SBML symbols of a state path (or labelled component) as an object array
        of name trees: 0-d for a scalar, 1-d for a network's species vector."""
        path = tuple(path)
        if path in self.paths:
            out = np.empty((), dtype=object)
            out[()] = _name(self.paths[path])
            return out
        if path in self.vectors:
            out = np.empty(len(self.vectors[path]), dtype=object)
            for i, sid in enumerate(self.vectors[path]):
                out[i] = _name(sid)
            return out
        raise ExportError(f"{type(proc).__name__} {proc.name!r}: uses "
                          f"{'/'.join(map(str, path))!r}, which no exported process "
                          "provides.")

    def add_rate(self, proc, path, value: np.ndarray) -> None:
        """Add a derivative contribution: to an ODE variable's rate rule, or to a
        species as a reaction with no reactants whose rate is the term."""
        path = tuple(path)
        sid = self.paths.get(path)
        if sid in self.rate_terms:
            self.rate_terms[sid].append(np.asarray(value, dtype=object).reshape(()).item())
            return
        if path in self.vectors:
            ids = self.vectors[path]
            terms = np.broadcast_to(np.asarray(value, dtype=object), (len(ids),))
            for sid, term in zip(ids, terms):
                if term == ("num", 0.0):
                    continue
                rid = self.ids.new(f"{proc.name}_{sid}")
                self.reactions.append(Reaction(rid, (SpeciesRef(sid, ("num", 1.0), 1),),
                                               term, ()))
            return
        raise ExportError(f"{type(proc).__name__} {proc.name!r}: changes "
                          f"{'/'.join(map(str, path))!r}, which is not a scalar ODE "
                          "variable or a species vector.")

    def _generic(self, proc) -> None:
        """Any continuous process: ``rates`` traced on the SBML symbols it can read."""
        ports = proc.ports()
        paths = list(dict.fromkeys([tuple(p) for p in ports.owns]
                                   + [tuple(p) for p in ports.reads]
                                   + [tuple(p) for p in ports.changes]))
        inputs = [self.value_of(proc, p) for p in paths]
        labels = {p: self.labels.get(p) for p in paths}

        def fn(t, *xs):
            view = StateView(dict(zip(paths, xs)), paths, proc.name, labels)
            return {"/".join(k): v for k, v in proc.rates(t, view, None).items()}

        out = trace_arrays(fn, [("time",), *inputs],
                           f"{type(proc).__name__} {proc.name!r}")
        for key, value in out.items():
            self.add_rate(proc, tuple(key.split("/")), value)

    def _event(self, ev: CodeEvent) -> None:
        where = f"Event {ev.name!r}"
        pid = self.parameters(ev, ev.params)
        refs = {**ev.reads_, **ev.changes_}
        aliases = list(refs)
        inputs = [("time",), *[self.value_of(ev, r) for r in refs.values()],
                  *[_name(pid[k]) for k in pid]]

        def call(f):
            def g(t, *xs):
                return f(t, dict(zip(aliases, xs[:len(aliases)])),
                         dict(zip(pid, xs[len(aliases):])))
            return g

        new = trace_arrays(call(ev.apply), inputs, f"{where}, apply")
        assignments = []
        for alias, value in dict(new).items():
            if alias not in ev.changes_:
                raise ExportError(f"{where}: apply returns {alias!r}, which is not in "
                                  "its changes.")
            targets = self.value_of(ev, ev.changes_[alias])
            values = np.broadcast_to(np.asarray(value, dtype=object), targets.shape)
            for tgt, tree in zip(targets.reshape(-1), values.reshape(-1)):
                assignments.append((tgt[1], tree))
        if ev.condition is not None:
            cond = trace_arrays(call(ev.condition), inputs, f"{where}, condition")
            tree = np.asarray(cond, dtype=object).reshape(()).item()
            zeros = [np.zeros(np.shape(x)) if isinstance(x, np.ndarray) else 0.0
                     for x in inputs]
            is_bool = jax.eval_shape(call(ev.condition), *zeros).dtype == jnp.bool_
            triggers = [tree if is_bool else ("op", "gt", tree, ("num", 0.0))]
        else:
            if ev.times is not None:
                times = [float(t) for t in np.asarray(ev.times)]
            else:
                if ev.stop is None:
                    raise ExportError(f"{where}: a periodic schedule without stop= has "
                                      "no finite SBML form (give stop=).")
                start, period = float(ev.start), float(ev.period)
                count = int(np.floor((float(ev.stop) - start) / period + 1e-9)) + 1
                if count > 10_000:
                    raise ExportError(f"{where}: {count} scheduled times; SBML needs one "
                                      "event per time (at most 10,000 written).")
                times = [start + k * period for k in range(count)]
            triggers = [("op", "geq", ("time",), ("num", t)) for t in times]
        delay = None if ev.delay is None else ("num", float(ev.delay))
        priority = None if ev.priority is None else ("num", float(ev.priority))
        for i, trig in enumerate(triggers):
            eid = self.ids.new(ev.name if len(triggers) == 1 else f"{ev.name}_{i}")
            self.events.append(Event(eid, trig, bool(ev.initial_value), bool(ev.persistent),
                                     delay, priority, bool(ev.use_trigger_values),
                                     tuple(assignments)))

    # -- equations -------------------------------------------------------------------
    def emit(self, proc) -> None:
        if isinstance(proc, ReactionNetwork):
            self._network(proc)
        elif isinstance(proc, ODE):
            pid = self.parameters(proc, proc.params)
            names = list(proc.y0) + list(proc.inputs) + list(pid)
            syms = ([_name(self.paths[proc._path(v)]) for v in proc.y0]
                    + [self.ref(proc, a, r) for a, r in proc.inputs.items()]
                    + [_name(pid[k]) for k in pid])
            ny, ni = len(proc.y0), len(proc.inputs)

            def rhs(t, *xs):
                y = dict(zip(names[:ny + ni], xs[:ny + ni]))
                p = dict(zip(pid, xs[ny + ni:]))
                return dict(proc.rhs(t, y, p))

            out = expression_tree(rhs, ["t", *names], f"ODE {proc.name!r}",
                                  [("time",), *syms])
            for var, tree in out.items():
                self.rate_terms[self.paths[proc._path(var)]].append(tree)
        elif isinstance(proc, Assignment):
            pid = self.parameters(proc, proc.params)
            aliases = list(proc.reads_)
            syms = [self.ref(proc, a, r) for a, r in proc.reads_.items()]

            def fn(t, *xs):
                return proc.fn(t, dict(zip(aliases, xs[:len(aliases)])),
                               dict(zip(pid, xs[len(aliases):])))

            tree = expression_tree(fn, ["t", *aliases, *pid], f"Assignment {proc.name!r}",
                                   [("time",), *syms, *[_name(pid[k]) for k in pid]])
            self.assignment_rules.append((self.paths[proc.target], tree))
        elif isinstance(proc, Coupling):
            pid = self.parameters(proc, proc.params)
            refs = {**proc.reads_, **proc.changes_}
            aliases = list(refs)
            inputs = [self.value_of(proc, r) for r in refs.values()]

            def fn(t, *xs):
                return dict(proc.fn(t, dict(zip(aliases, xs[:len(aliases)])),
                                    dict(zip(pid, xs[len(aliases):]))))

            out = trace_arrays(fn, [("time",), *inputs, *[_name(pid[k]) for k in pid]],
                               f"Coupling {proc.name!r}")
            for alias, value in out.items():
                self.add_rate(proc, proc.changes_[alias], value)
        elif isinstance(proc, CodeEvent):
            self._event(proc)
        else:
            self._generic(proc)

    def _network(self, net: ReactionNetwork) -> None:
        where = f"ReactionNetwork {net.name!r}"
        pnames = net.parameter_names
        pid = self.parameters(net, dict(zip(pnames, np.asarray(net.p))))
        ext = [_name(self.paths[(*net.path, s)]) for s in net.species]
        ext += [self.ref(net, a, r) for a, r in net.inputs]
        ext.append(("num", 1.0))
        P = [_name(pid[n]) for n in pnames]
        st = net.structure
        col_rxn = np.asarray(st["col_rxn"])
        col_sign = np.asarray(st["col_sign"])
        laws: dict[int, list[tuple]] = {}
        ext_names = list(net.species) + [a for a, _ in net.inputs]
        for block, blaws in zip(st.blocks, net.laws):
            a = {k: np.asarray(v) for k, v in block.arrays.items()}
            for j in range(block.stop - block.start):
                c = block.start + j
                rname = block.reaction_names[j]
                kind = block.kind
                if kind is MassAction:
                    factors = [ext[i] for i in a["orders"][j] if i != len(ext) - 1]
                    term = _op("times", P[a["k"][j]], *factors) if factors \
                        else P[a["k"][j]]
                elif kind is MichaelisMenten:
                    s = ext[a["s"][j]]
                    num = [P[a["vmax"][j]]]
                    if a["e"][j] != len(ext) - 1:
                        num.append(ext[a["e"][j]])
                    term = _op("divide", _op("times", *num, s),
                               _op("plus", P[a["km"][j]], s))
                elif kind in (HillActivation, HillRepression):
                    kn = _op("power", P[a["k"][j]], P[a["n"][j]])
                    sn = _op("power", ext[a["s"][j]], P[a["n"][j]])
                    top = sn if kind is HillActivation else kn
                    term = _op("divide", _op("times", P[a["vmax"][j]], top),
                               _op("plus", kn, sn))
                elif kind is Custom:
                    law = blaws[j]
                    names = ext_names + list(pnames)

                    def fn(*xs, law=law, names=names):
                        s = dict(zip(names[:len(ext_names)], xs[:len(ext_names)]))
                        p = dict(zip(names[len(ext_names):], xs[len(ext_names):]))
                        return law.fn(s, p)

                    term = expression_tree(fn, names, f"{where}, reaction {rname!r}",
                                           ext[:-1] + P)
                else:
                    raise ExportError(f"{where}, reaction {rname!r}: its {kind.__name__} "
                                      "rate law has no SBML form.")
                if col_sign[c] < 0:
                    term = _op("minus", term)
                laws.setdefault(int(col_rxn[c]), []).append(term)
        N = np.asarray(net.stoichiometry)
        for r, rname in enumerate(net.reaction_names):
            refs = []
            for i, s in enumerate(net.species):
                if N[i, r] != 0.0:
                    refs.append(SpeciesRef(self.paths[(*net.path, s)],
                                           ("num", float(abs(N[i, r]))), int(np.sign(N[i, r]))))
            rid = self.ids.new(rname, net.name)
            self.reactions.append(Reaction(rid, tuple(refs), _plus(laws.get(r, [])), ()))

    def ir(self) -> ModelIR:
        rate_rules = tuple((sid, _plus(self.rate_terms[sid])) for sid in self.rate_rule_order)
        return ModelIR(id=self.model_id, level=3, version=2, symbols=tuple(self.symbols),
                       functions=(), assignment_rules=tuple(self.assignment_rules),
                       rate_rules=rate_rules, initial_assignments=(),
                       reactions=tuple(self.reactions), events=tuple(self.events),
                       local_values=(),
                       conversion=None, source=f"<jaxcell model {self.model_id!r}>")


def _leaves(model) -> list:
    if isinstance(model, Composite):
        return list(model.leaves)
    if isinstance(model, (list, tuple)):
        return [p for m in model for p in _leaves(m)]
    return [model]


def model_description(model) -> tuple[ModelIR, dict[str, float]]:
    """The SBML description (:class:`ModelIR`) of a model and its values by id."""
    if isinstance(model, SBMLModel):
        if model.cells:
            raise ExportError(f"SBML model {model.name!r}: a per-cell model "
                              f"({model.cells} cells) has no single-cell SBML form; export "
                              "the model before per_cell().")
        if model.externals:
            raise ExportError(f"SBML model {model.name!r}: some of its parameters are "
                              "computed by neural networks (a PEtab SciML model); SBML "
                              "cannot express them.")
        values = {k: _scalar(v, f"SBML model {model.name!r}, parameter {k!r}")
                  for k, v in model.params.items()}
        return model.structure.ir, values
    leaves = _leaves(model)
    name = getattr(model, "name", None) or "model"
    b = _Builder(_Ids().new(name))
    for p in leaves:
        b.claim(p)
    for p in b.pending:
        b.emit(p)
    return b.ir(), {}


def export_sbml(model, path: str | os.PathLike | None = None) -> str:
    """Write a model as SBML Level 3 Version 2 and return the XML text.

    Arguments:
        model: an imported :class:`SBMLModel` (written with its current parameter
            values, e.g. fitted ones), a :class:`~jaxcell.ReactionNetwork`,
            :class:`~jaxcell.ODE`, :class:`~jaxcell.Coupling` or
            :class:`~jaxcell.Assignment` process, or a :class:`~jaxcell.Composite` (or
            list) of them.
        path: where to write the file (optional).

    Returns:
        The SBML document as a string.

    Raises:
        ExportError: a part of the model has no SBML form (named in the message), or
            the written document is not valid SBML.
    """
    ir, values = model_description(model)
    doc = write_document(ir, values)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.checkConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        msgs = "; ".join(e.getMessage().strip() for e in errors[:3])
        raise ExportError(f"{ir.source}: the exported document is not valid SBML: {msgs}")
    text = libsbml.writeSBMLToString(doc)
    if path is not None:
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(text)
    return text
