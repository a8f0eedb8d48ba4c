"""Write small SBML Level 3 models for tests, with python-libsbml (formulas in libsbml's
L3 infix syntax, parsed by libsbml)."""

from __future__ import annotations

import libsbml


def _math(formula: str):
    ast = libsbml.parseL3Formula(formula)
    if ast is None:
        raise ValueError(f"libsbml cannot parse {formula!r}: {libsbml.getLastParseL3Error()}")
    return ast


def build(
    *,
    compartments=(("cell", 1.0, True),),
    species=(),
    parameters=(),
    reactions=(),
    assignment_rules=(),
    rate_rules=(),
    initial_assignments=(),
    functions=(),
    events=(),
    algebraic_rules=(),
    level=3,
    version=2,
) -> str:
    """species: (id, compartment, initial amount, hasOnlySubstanceUnits[, boundary[,
    constant[, initial value is a concentration]]]);
    parameters: (id, value, constant); reactions: (id, {species: stoich} reactants,
    {species: stoich} products, formula[, {local: value}[, fast]]); rules: (var, formula);
    functions: (id, "lambda(x, y, x*y)"); events: dict(trigger=..., assignments=[(v, f)],
    delay=None, priority=None, persistent=True, initial_value=True,
    use_trigger_values=True)."""
    doc = libsbml.SBMLDocument(level, version)
    m = doc.createModel()
    m.setId("test_model")
    for cid, size, const in compartments:
        c = m.createCompartment()
        c.setId(cid)
        c.setSize(size)
        c.setConstant(const)
        c.setSpatialDimensions(3)
    for sp in species:
        sid, comp, amount, only = sp[:4]
        s = m.createSpecies()
        s.setId(sid)
        s.setCompartment(comp)
        if len(sp) > 6 and sp[6]:
            s.setInitialConcentration(amount)
        else:
            s.setInitialAmount(amount)
        s.setHasOnlySubstanceUnits(only)
        s.setBoundaryCondition(sp[4] if len(sp) > 4 else False)
        s.setConstant(sp[5] if len(sp) > 5 else False)
    for pid, value, const in parameters:
        p = m.createParameter()
        p.setId(pid)
        p.setValue(value)
        p.setConstant(const)
    for fid, lam in functions:
        f = m.createFunctionDefinition()
        f.setId(fid)
        f.setMath(_math(lam))
    for r in reactions:
        rid, reactants, products, formula = r[:4]
        locs = r[4] if len(r) > 4 else {}
        rx = m.createReaction()
        rx.setId(rid)
        rx.setReversible(False)
        if len(r) > 5 and level == 3 and version == 1:
            rx.setFast(r[5])
        for sid, st in reactants.items():
            sr = rx.createReactant()
            sr.setSpecies(sid)
            sr.setStoichiometry(st)
            sr.setConstant(True)
        for sid, st in products.items():
            sr = rx.createProduct()
            sr.setSpecies(sid)
            sr.setStoichiometry(st)
            sr.setConstant(True)
        kl = rx.createKineticLaw()
        for lid, val in locs.items():
            lp = kl.createLocalParameter()
            lp.setId(lid)
            lp.setValue(val)
        kl.setMath(_math(formula))
    for var, formula in assignment_rules:
        r = m.createAssignmentRule()
        r.setVariable(var)
        r.setMath(_math(formula))
    for var, formula in rate_rules:
        r = m.createRateRule()
        r.setVariable(var)
        r.setMath(_math(formula))
    for formula in algebraic_rules:
        r = m.createAlgebraicRule()
        r.setMath(_math(formula))
    for var, formula in initial_assignments:
        ia = m.createInitialAssignment()
        ia.setSymbol(var)
        ia.setMath(_math(formula))
    for i, ev in enumerate(events):
        e = m.createEvent()
        e.setId(ev.get("id", f"ev{i}"))
        e.setUseValuesFromTriggerTime(ev.get("use_trigger_values", True))
        t = e.createTrigger()
        t.setMath(_math(ev["trigger"]))
        t.setPersistent(ev.get("persistent", True))
        t.setInitialValue(ev.get("initial_value", True))
        if ev.get("delay") is not None:
            e.createDelay().setMath(_math(ev["delay"]))
        if ev.get("priority") is not None:
            e.createPriority().setMath(_math(ev["priority"]))
        for var, formula in ev["assignments"]:
            ea = e.createEventAssignment()
            ea.setVariable(var)
            ea.setMath(_math(formula))
    return libsbml.writeSBMLToString(doc)
