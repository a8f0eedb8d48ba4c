"""Read an SBML document with python-libsbml into plain, hashable data (:class:`ModelIR`).

Everything libsbml-specific lives here and in ``_ast.py``; the rest of the importer works
on the frozen dataclasses below. Unsupported features are refused here, by name.
"""

from __future__ import annotations

import dataclasses
import math
import os
import xml.parsers.expat
from pathlib import Path

import libsbml

from .._safe_io import check_size, reraise_as
from ._ast import convert, convert_lambda
from ._errors import SBMLError, SBMLUnsupportedError

# Validity rules whose violation does not make the meaning of a model ambiguous, and which
# published models (and other simulators) commonly let pass: 21121, a species used in a
# kinetic law but not declared as a modifier of the reaction.
_TOLERATED = {21121} | set(range(10300, 10400))  # 103xx: unit references (units are not
# part of a simulation's meaning)

_IGNORED_PACKAGES = {"layout", "render", "l3v2extendedmath"}


@dataclasses.dataclass(frozen=True)
class Symbol:
    """A compartment, species, parameter or species reference with an id."""

    id: str
    kind: str  # "compartment" | "species" | "parameter" | "speciesref"
    constant: bool
    value: float | None  # the attribute value (initial value); None if unset
    compartment: str | None = None  # species only
    only_substance: bool = False  # species: hasOnlySubstanceUnits
    boundary: bool = False  # species: boundaryCondition
    initial_is_concentration: bool = False  # species: value is initialConcentration
    conversion: str | None = None  # species: conversionFactor
    dims: float = 3.0  # compartments: spatialDimensions


@dataclasses.dataclass(frozen=True)
class SpeciesRef:
    species: str
    stoichiometry: tuple  # expression tree (a number, a species-reference id, or math)
    sign: int  # -1 reactant, +1 product


@dataclasses.dataclass(frozen=True)
class Reaction:
    id: str
    refs: tuple[SpeciesRef, ...]
    law: tuple | None  # None: no kinetic law (rate 0)
    locals: tuple[str, ...]  # local parameter ids (values in parameters as "rid.lid")


@dataclasses.dataclass(frozen=True)
class Event:
    id: str
    trigger: tuple
    initial_value: bool
    persistent: bool
    delay: tuple | None
    priority: tuple | None
    use_trigger_values: bool
    assignments: tuple[tuple[str, tuple], ...]


@dataclasses.dataclass(frozen=True)
class ModelIR:
    id: str
    level: int
    version: int
    symbols: tuple[Symbol, ...]
    functions: tuple[tuple[str, tuple[str, ...], tuple], ...]
    assignment_rules: tuple[tuple[str, tuple], ...]
    rate_rules: tuple[tuple[str, tuple], ...]
    initial_assignments: tuple[tuple[str, tuple], ...]
    reactions: tuple[Reaction, ...]
    events: tuple[Event, ...]
    local_values: tuple[tuple[str, float], ...]  # ("rid.lid", value)
    conversion: str | None  # model conversionFactor
    source: str
    # the document as libsbml read it (units, names and notes for export); not part of
    # the model's identity
    document: str = dataclasses.field(default="", compare=False, repr=False)


#: The deepest XML element nesting handed to libsbml (its parser recurses on the C
#: stack: a document nested some thousands of levels deep crashes the process).
MAX_XML_DEPTH = 1000


def _check_depth(data: bytes, label: str) -> None:
    """Refuse XML nested deeper than ``MAX_XML_DEPTH`` before libsbml sees it. A
    document expat cannot parse is left to libsbml, which reports it."""
    parser = xml.parsers.expat.ParserCreate()
    depth = 0

    def start(name, attrs):
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise SBMLError(f"{label}: XML elements nested more than {MAX_XML_DEPTH} "
                            f"levels deep (at <{name}>, line {parser.CurrentLineNumber}).")

    def end(name):
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except SBMLError:
        raise
    except (xml.parsers.expat.ExpatError, ValueError, RecursionError):
        pass  # not well-formed: libsbml says why


def _read_document(source: str | os.PathLike) -> tuple[libsbml.SBMLDocument, str]:
    text = os.fspath(source)
    if isinstance(text, bytes):
        raise SBMLError(f"load_sbml: expected a file path or an XML string, got bytes "
                        f"{text[:40]!r}...; decode it first.")
    is_xml = isinstance(source, str) and text.lstrip("\ufeff \t\r\n").startswith("<")
    if is_xml:
        label = "<SBML string>"
        _check_depth(text.lstrip("\ufeff").encode("utf-8", "surrogatepass"), label)
        doc = libsbml.readSBMLFromString(text.lstrip("\ufeff"))
    else:
        label = text
        if "\x00" in text:
            raise SBMLError(f"SBML file name {text[:80]!r} contains a NUL character.")
        if os.path.isdir(text):
            raise SBMLError(f"{text!r} is a directory, not an SBML file.")
        if not os.path.isfile(text):
            raise SBMLError(f"SBML file {text!r} does not exist.")
        check_size(Path(text), SBMLError, "SBML file")
        _check_depth(Path(text).read_bytes(), label)
        doc = libsbml.readSBMLFromFile(text)
    if doc is None:
        raise SBMLError(f"{label}: libsbml could not read the document.")
    errors = [
        doc.getError(i)
        for i in range(doc.getNumErrors())
        if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if errors:
        msgs = "; ".join(
            f"line {e.getLine()}: {e.getMessage().strip()}" for e in errors[:5]
        )
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise SBMLError(f"{label}: not valid SBML: {msgs}{more}")
    if doc.getModel() is None:
        raise SBMLError(f"{label}: the document has no <model>.")
    return doc, label


def _packages(doc, label: str) -> None:
    for i in range(doc.getNumPlugins()):
        name = doc.getPlugin(i).getPackageName()
        if name and name not in _IGNORED_PACKAGES and doc.isPackageEnabled(name):
            raise SBMLUnsupportedError(f"the SBML '{name}' package", None, label)
    if doc.getNumUnknownPackages() > 0:
        for i in range(doc.getNumUnknownPackages()):
            if doc.getUnknownPackageRequired(i) if hasattr(doc, "getUnknownPackageRequired") \
                    else True:
                uri = doc.getUnknownPackageURI(i)
                raise SBMLUnsupportedError(f"the SBML package {uri}", None, label)


def _validate(doc, label: str) -> None:
    """libsbml's consistency checks (SBML validity rules; units and modelling-practice
    advice are left out: they do not change the meaning of a simulation)."""
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_UNITS_CONSISTENCY, False)
    doc.setConsistencyChecks(libsbml.LIBSBML_CAT_MODELING_PRACTICE, False)
    doc.checkConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
              and doc.getError(i).getErrorId() not in _TOLERATED]
    if errors:
        msgs = "; ".join(f"line {e.getLine()}: {e.getMessage().strip()}" for e in errors[:5])
        raise SBMLError(f"{label}: invalid SBML: {msgs}")


def _value(el, isset: str, get: str) -> float | None:
    if getattr(el, isset)():
        return float(getattr(el, get)())
    return None


def _algebraic_name(rule, i: int) -> str:
    """An algebraic rule in words: its id if it has one, else its position and formula
    (an algebraic rule has no variable)."""
    formula = libsbml.formulaToL3String(rule.getMath()) if rule.isSetMath() else None
    name = f"algebraic rule #{i + 1}"
    if rule.isSetId() and rule.getId():
        name += f" {rule.getId()!r}"
    if formula:
        name += f": 0 = {formula[:200]}"
    return name


def read_sbml(source: str | os.PathLike) -> ModelIR:
    """Parse and validate an SBML document (path or XML string) into a :class:`ModelIR`.

    Anything libsbml or the conversion raises that is not an :class:`SBMLError` (deep
    recursion, odd values) becomes one, naming the file."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        label = "<SBML string>" if isinstance(text, str) and text.lstrip(
            "\ufeff \t\r\n").startswith("<") else str(text)
    else:
        raise SBMLError(f"load_sbml: expected a file path or an XML string, got "
                        f"{type(source).__name__}.")
    with reraise_as(SBMLError, label, "SBML document"):
        return _read_sbml(source)


def _read_sbml(source: str | os.PathLike) -> ModelIR:
    doc, label = _read_document(source)
    _packages(doc, label)
    _validate(doc, label)
    m = doc.getModel()
    level, version = doc.getLevel(), doc.getVersion()

    def where(kind: str, el_id: str) -> str:
        return f"{label}: {kind} {el_id!r}"

    symbols: list[Symbol] = []
    for c in m.getListOfCompartments():
        dims = 3.0
        if c.isSetSpatialDimensions():
            dims = float(c.getSpatialDimensionsAsDouble())
        size = _value(c, "isSetSize", "getSize")
        if size is None and level < 3 and dims != 0:
            size = 1.0  # L1/L2 default compartment size
        if size is None and dims == 0:
            size = math.nan  # a 0-D compartment has no size
        symbols.append(Symbol(c.getId(), "compartment", bool(c.getConstant()), size, dims=dims))
    for s in m.getListOfSpecies():
        conc = s.isSetInitialConcentration()
        val = s.getInitialConcentration() if conc else _value(
            s, "isSetInitialAmount", "getInitialAmount")
        symbols.append(
            Symbol(
                s.getId(), "species", bool(s.getConstant()),
                None if val is None else float(val),
                compartment=s.getCompartment(),
                only_substance=bool(s.getHasOnlySubstanceUnits()),
                boundary=bool(s.getBoundaryCondition()),
                initial_is_concentration=bool(conc),
                conversion=s.getConversionFactor() if s.isSetConversionFactor() else None,
            )
        )
    for p in m.getListOfParameters():
        symbols.append(Symbol(p.getId(), "parameter", bool(p.getConstant()),
                              _value(p, "isSetValue", "getValue")))

    functions = []
    for fd in m.getListOfFunctionDefinitions():
        if not fd.isSetMath():
            continue  # SBML L3v2: a function definition without math (unusable if called)
        args, body = convert_lambda(fd.getMath(), where("function definition", fd.getId()))
        functions.append((fd.getId(), args, body))

    assignment_rules, rate_rules = [], []
    for i, r in enumerate(m.getListOfRules()):
        if r.isAlgebraic():
            raise SBMLUnsupportedError("algebraic rules", _algebraic_name(r, i), label)
        var = r.getVariable()
        if not r.isSetMath():
            continue  # SBML L3v2: a rule without math has no effect
        tree = convert(r.getMath(), where("rule for", var))
        (assignment_rules if r.isAssignment() else rate_rules).append((var, tree))

    initial_assignments = [
        (ia.getSymbol(), convert(ia.getMath(), where("initial assignment to", ia.getSymbol())))
        for ia in m.getListOfInitialAssignments()
        if ia.isSetMath()  # SBML L3v2: without math it has no effect
    ]

    reactions, local_values = [], []
    for rx in m.getListOfReactions():
        rid = rx.getId()
        if rx.isSetFast() and rx.getFast():
            raise SBMLUnsupportedError("fast reactions", rid, label)
        refs = []
        for sign, lst in ((-1, rx.getListOfReactants()), (1, rx.getListOfProducts())):
            for sr in lst:
                if sr.isSetStoichiometryMath():
                    st = convert(sr.getStoichiometryMath().getMath(),
                                 where("stoichiometryMath in reaction", rid))
                elif sr.isSetId() and sr.getId():
                    st = ("name", sr.getId())
                    v = sr.getStoichiometry() if sr.isSetStoichiometry() else None
                    if level < 3 and v is None:
                        v = 1.0
                    symbols.append(Symbol(sr.getId(), "speciesref",
                                          bool(sr.getConstant()) if level >= 3 else True,
                                          None if v is None or math.isnan(v) else float(v)))
                else:
                    if level >= 3 and not sr.isSetStoichiometry():
                        raise SBMLError(
                            f"{where('reaction', rid)}: species reference to "
                            f"{sr.getSpecies()!r} has no stoichiometry (SBML Level 3 has "
                            "no default)."
                        )
                    st = ("num", float(sr.getStoichiometry()))
                refs.append(SpeciesRef(sr.getSpecies(), st, sign))
        law, locs = None, []
        if rx.isSetKineticLaw():
            kl = rx.getKineticLaw()
            law = convert(kl.getMath(), where("kinetic law of reaction", rid)) \
                if kl.isSetMath() else None
            plist = list(kl.getListOfParameters())
            if level >= 3:
                plist += list(kl.getListOfLocalParameters())
            for lp in plist:
                if not lp.isSetValue():
                    raise SBMLError(f"{where('reaction', rid)}: local parameter "
                                    f"{lp.getId()!r} has no value.")
                locs.append(lp.getId())
                local_values.append((f"{rid}.{lp.getId()}", float(lp.getValue())))
        reactions.append(Reaction(rid, tuple(refs), law, tuple(dict.fromkeys(locs))))

    events = []
    for i, ev in enumerate(m.getListOfEvents()):
        eid = ev.getId() or f"event{i}"
        trig = ev.getTrigger()
        if trig is None or not trig.isSetMath():
            continue  # SBML L3v2: an event without trigger math never fires
        init_val = bool(trig.getInitialValue()) if level >= 3 else True
        persistent = bool(trig.getPersistent()) if level >= 3 else True
        delay = convert(ev.getDelay().getMath(), where("delay of event", eid)) \
            if ev.isSetDelay() and ev.getDelay().isSetMath() else None
        prio = convert(ev.getPriority().getMath(), where("priority of event", eid)) \
            if level >= 3 and ev.isSetPriority() and ev.getPriority().isSetMath() else None
        use_trig = bool(ev.getUseValuesFromTriggerTime())
        assigns = tuple(
            (ea.getVariable(), convert(ea.getMath(), where(f"event {eid!r} assignment to",
                                                          ea.getVariable())))
            for ea in ev.getListOfEventAssignments()
            if ea.isSetMath()
        )
        events.append(Event(eid, convert(trig.getMath(), where("trigger of event", eid)),
                            init_val, persistent, delay, prio, use_trig, assigns))

    return ModelIR(
        id=m.getId() or "sbml_model",
        level=level,
        version=version,
        symbols=tuple(symbols),
        functions=tuple(functions),
        assignment_rules=tuple(assignment_rules),
        rate_rules=tuple(rate_rules),
        initial_assignments=tuple(initial_assignments),
        reactions=tuple(reactions),
        events=tuple(events),
        local_values=tuple(local_values),
        conversion=m.getConversionFactor() if m.isSetConversionFactor() else None,
        source=label,
        document=libsbml.writeSBMLToString(doc),
    )
