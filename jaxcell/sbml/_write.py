"""Write a :class:`~jaxcell.sbml._reader.ModelIR` as an SBML Level 3 Version 2 document.

The inverse of ``_reader.py`` + ``_ast.py``: expression trees become libsbml ASTNodes
(MathML), symbols become compartments, species and parameters, and the values given
(the model's current parameters, e.g. after a fit) replace the attribute values. Units,
names and notes are carried over from the document the model was read from, when there
is one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import libsbml

from ._ast import _NAMED_FUNCTION_TYPES, names_in
from ._jaxpr import ExportError
from ._reader import ModelIR

_TYPES = {"plus": libsbml.AST_PLUS, "minus": libsbml.AST_MINUS,
          "times": libsbml.AST_TIMES, "divide": libsbml.AST_DIVIDE,
          "power": libsbml.AST_POWER}
for _t in _NAMED_FUNCTION_TYPES:
    _n = libsbml.ASTNode(_t).getName()
    if _n and _n not in _TYPES:
        _TYPES[_n] = _t

_UNIT_ATTRS = ("SubstanceUnits", "TimeUnits", "VolumeUnits", "AreaUnits", "LengthUnits",
               "ExtentUnits")


def tree_to_ast(tree: tuple, where: str) -> libsbml.ASTNode:
    """An expression tree (``_ast.py``'s grammar) as a libsbml ASTNode."""
    tag = tree[0]
    if tag == "num":
        node = libsbml.ASTNode(libsbml.AST_REAL)
        v = float(tree[1])
        if v.is_integer() and abs(v) < 2**31:
            node = libsbml.ASTNode(libsbml.AST_INTEGER)
            node.setValue(int(v))
        else:
            node.setValue(v)
        return node
    if tag == "nan":
        node = libsbml.ASTNode(libsbml.AST_REAL)
        node.setValue(math.nan)
        return node
    if tag == "name":
        node = libsbml.ASTNode(libsbml.AST_NAME)
        node.setName(tree[1])
        return node
    simple = {"time": libsbml.AST_NAME_TIME, "avogadro": libsbml.AST_NAME_AVOGADRO,
              "true": libsbml.AST_CONSTANT_TRUE, "false": libsbml.AST_CONSTANT_FALSE}
    if tag in simple:
        node = libsbml.ASTNode(simple[tag])
        if tag == "time":
            node.setName("time")
        elif tag == "avogadro":
            node.setName("avogadro")
        return node
    if tag == "op":
        t = _TYPES.get(tree[1])
        if t is None:
            raise ExportError(f"{where}: the operation {tree[1]!r} has no MathML form.")
        node = libsbml.ASTNode(t)
        kids = tree[2:]
    elif tag == "call":
        node = libsbml.ASTNode(libsbml.AST_FUNCTION)
        node.setName(tree[1])
        kids = tree[2:]
    elif tag == "delay":
        node = libsbml.ASTNode(libsbml.AST_FUNCTION_DELAY)
        node.setName("delay")
        kids = tree[1:]
    elif tag == "rateOf":
        node = libsbml.ASTNode(libsbml.AST_FUNCTION_RATE_OF)
        node.setName("rateOf")
        kids = tree[1:]
    else:
        raise ExportError(f"{where}: unknown expression node {tag!r}.")
    for k in kids:
        node.addChild(tree_to_ast(k, where))
    return node


def _lambda(args: tuple[str, ...], body: tuple, where: str) -> libsbml.ASTNode:
    node = libsbml.ASTNode(libsbml.AST_LAMBDA)
    for a in args:
        b = libsbml.ASTNode(libsbml.AST_NAME)
        b.setName(a)
        node.addChild(b)
    node.addChild(tree_to_ast(body, where))
    return node


def _check(rc: int, what: str) -> None:
    if rc != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ExportError(f"libsbml refused {what}: {libsbml.OperationReturnValue_toString(rc)}"
                          ".")


def _source_model(ir: ModelIR) -> libsbml.Model | None:
    """The model of the document ``ir`` was read from, converted to L3v2 (or None)."""
    if not ir.document:
        return None
    doc = libsbml.readSBMLFromString(ir.document)
    if doc is None or doc.getModel() is None:
        return None
    if (doc.getLevel(), doc.getVersion()) != (3, 2):
        props = libsbml.ConversionProperties(libsbml.SBMLNamespaces(3, 2))
        props.addOption("setLevelAndVersion", True)
        props.addOption("strict", False)
        if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
            return None
    doc._keep = doc  # the model needs its document alive
    model = doc.getModel()
    model._doc = doc
    return model


def _copy_meta(src, dst, *, units: str | None = None) -> None:
    if src is None:
        return
    if src.isSetName():
        dst.setName(src.getName())
    if src.isSetNotes():
        dst.setNotes(src.getNotes())
    if units and getattr(src, f"isSet{units}")():
        getattr(dst, f"set{units}")(getattr(src, f"get{units}")())


def write_document(ir: ModelIR, values: Mapping[str, float]) -> libsbml.SBMLDocument:
    """The SBML L3v2 document of ``ir``, with ``values`` (symbol ids and
    ``"reaction.local"`` ids) as the attribute values."""
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId(ir.id)
    src = _source_model(ir)
    if src is not None:
        _copy_meta(src, m)
        for i in range(src.getNumUnitDefinitions()):
            m.addUnitDefinition(src.getUnitDefinition(i))
        for a in _UNIT_ATTRS:
            if getattr(src, f"isSet{a}")():
                getattr(m, f"set{a}")(getattr(src, f"get{a}")())
    if ir.conversion:
        m.setConversionFactor(ir.conversion)

    def value(sid: str, default):
        v = values.get(sid, default)
        return None if v is None else float(v)

    for fid, args, body in ir.functions:
        fd = m.createFunctionDefinition()
        fd.setId(fid)
        _check(fd.setMath(_lambda(args, body, f"function definition {fid!r}")),
               f"the function definition {fid!r}")
    for s in ir.symbols:
        if s.kind == "compartment":
            c = m.createCompartment()
            c.setId(s.id)
            c.setConstant(s.constant)
            c.setSpatialDimensions(s.dims)
            v = value(s.id, s.value)
            if v is not None and not math.isnan(v):
                c.setSize(v)
            _copy_meta(src.getCompartment(s.id) if src else None, c, units="Units")
    for s in ir.symbols:
        if s.kind == "species":
            sp = m.createSpecies()
            sp.setId(s.id)
            sp.setCompartment(s.compartment)
            sp.setConstant(s.constant)
            sp.setBoundaryCondition(s.boundary)
            sp.setHasOnlySubstanceUnits(s.only_substance)
            if s.conversion:
                sp.setConversionFactor(s.conversion)
            v = value(s.id, s.value)
            if v is not None:
                (sp.setInitialConcentration if s.initial_is_concentration
                 else sp.setInitialAmount)(v)
            _copy_meta(src.getSpecies(s.id) if src else None, sp, units="SubstanceUnits")
        elif s.kind == "parameter":
            p = m.createParameter()
            p.setId(s.id)
            p.setConstant(s.constant)
            v = value(s.id, s.value)
            if v is not None:
                p.setValue(v)
            _copy_meta(src.getParameter(s.id) if src else None, p, units="Units")
    refs = {s.id: s for s in ir.symbols if s.kind == "speciesref"}
    for var, tree in ir.initial_assignments:
        ia = m.createInitialAssignment()
        ia.setSymbol(var)
        _check(ia.setMath(tree_to_ast(tree, f"initial assignment to {var!r}")),
               f"the initial assignment to {var!r}")
    for kind, rules in (("assignment", ir.assignment_rules), ("rate", ir.rate_rules)):
        for var, tree in rules:
            r = m.createAssignmentRule() if kind == "assignment" else m.createRateRule()
            r.setVariable(var)
            _check(r.setMath(tree_to_ast(tree, f"{kind} rule for {var!r}")),
                   f"the {kind} rule for {var!r}")
    local_values = dict(ir.local_values)
    for rx in ir.reactions:
        r = m.createReaction()
        r.setId(rx.id)
        r.setReversible(False)
        _copy_meta(src.getReaction(rx.id) if src else None, r)
        for ref in rx.refs:
            sr = r.createReactant() if ref.sign < 0 else r.createProduct()
            sr.setSpecies(ref.species)
            st = ref.stoichiometry
            if st[0] == "num":
                sr.setStoichiometry(st[1])
                sr.setConstant(True)
            elif st[0] == "name" and st[1] in refs:
                sym = refs[st[1]]
                sr.setId(sym.id)
                sr.setConstant(sym.constant)
                v = value(sym.id, sym.value)
                if v is not None:
                    sr.setStoichiometry(v)
            else:
                raise ExportError(f"reaction {rx.id!r}: a stoichiometry given by an "
                                  "expression (SBML Level 2 stoichiometryMath) has no "
                                  "Level 3 form without an id; give it a species "
                                  "reference id and an assignment rule.")
        if rx.law is not None:
            names = names_in(rx.law)
            changed = {ref.species for ref in rx.refs}
            for sid in sorted(names):
                sym = next((s for s in ir.symbols if s.id == sid and s.kind == "species"),
                           None)
                if sym is not None and sid not in changed:
                    r.createModifier().setSpecies(sid)
            kl = r.createKineticLaw()
            for lid in rx.locals:
                lp = kl.createLocalParameter()
                lp.setId(lid)
                lp.setValue(float(values.get(f"{rx.id}.{lid}",
                                             local_values.get(f"{rx.id}.{lid}"))))
            _check(kl.setMath(tree_to_ast(rx.law, f"kinetic law of reaction {rx.id!r}")),
                   f"the kinetic law of reaction {rx.id!r}")
    for ev in ir.events:
        e = m.createEvent()
        e.setId(ev.id)
        e.setUseValuesFromTriggerTime(ev.use_trigger_values)
        tr = e.createTrigger()
        tr.setInitialValue(ev.initial_value)
        tr.setPersistent(ev.persistent)
        _check(tr.setMath(tree_to_ast(ev.trigger, f"trigger of event {ev.id!r}")),
               f"the trigger of event {ev.id!r}")
        if ev.delay is not None:
            e.createDelay().setMath(tree_to_ast(ev.delay, f"delay of event {ev.id!r}"))
        if ev.priority is not None:
            e.createPriority().setMath(tree_to_ast(ev.priority,
                                                   f"priority of event {ev.id!r}"))
        for var, tree in ev.assignments:
            ea = e.createEventAssignment()
            ea.setVariable(var)
            _check(ea.setMath(tree_to_ast(tree, f"event {ev.id!r} assignment to {var!r}")),
                   f"the assignment to {var!r} of event {ev.id!r}")
    return doc

