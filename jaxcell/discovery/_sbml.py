"""Write a discovered model as SBML Level 3 Version 2 (python-libsbml).

Each variable is a species in one compartment of size 1 (concentration = amount), its
equation a rate rule; each kept coefficient is a global parameter (id ``c_<k>``, name
the coefficient's name), so COPASI, libRoadRunner or AMICI simulate and refit it.
"""

from __future__ import annotations

import os

import libsbml

from .._errors import DiscoveryError
from ._model import SparseModel


def _check(status: int, what: str) -> None:
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise DiscoveryError(f"to_sbml: libsbml could not {what} "
                             f"({libsbml.OperationReturnValue_toString(status)}).")


def to_sbml(model: SparseModel, path: str | os.PathLike | None = None, *,
            model_id: str | None = None) -> str:
    """The SBML text of a standalone :class:`SparseModel` (one that owns its variables);
    written to ``path`` when given.

    Raises:
        DiscoveryError: the model changes other processes' variables (export the whole
            model instead), a variable name is not a valid SBML identifier, or a term
            has no SBML formula.
    """
    if not isinstance(model, SparseModel):
        raise DiscoveryError(f"to_sbml: expected a SparseModel; got {type(model).__name__}.")
    if not model.y0:
        raise DiscoveryError(
            f"to_sbml: SparseModel {model.name!r} changes variables of other processes "
            f"(it stands in a larger model); only a model that owns its variables can be "
            f"written on its own."
        )
    doc = libsbml.SBMLDocument(3, 2)
    sbml = doc.createModel()
    mid = model_id or model.name
    if not libsbml.SyntaxChecker.isValidSBMLSId(mid):
        mid = "discovered"
    _check(sbml.setId(mid), "set the model id")
    comp = sbml.createCompartment()
    comp.setId("compartment")
    comp.setSize(1.0)
    comp.setConstant(True)
    comp.setSpatialDimensions(3)
    for v in model.variables:
        if not libsbml.SyntaxChecker.isValidSBMLSId(v) or v in ("compartment", "time"):
            raise DiscoveryError(f"to_sbml: variable name {v!r} is not a valid SBML "
                                 f"identifier (letters, digits, underscores; not "
                                 f"starting with a digit).")
        sp = sbml.createSpecies()
        _check(sp.setId(v), f"create species {v!r}")
        sp.setCompartment("compartment")
        sp.setInitialConcentration(float(model.y0[v]))
        sp.setHasOnlySubstanceUnits(False)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
    ids = {}
    for k, (key, _part, _i, _j) in enumerate(model.index):
        p = sbml.createParameter()
        ids[key] = f"c_{k}"
        _check(p.setId(ids[key]), f"create the parameter for {key!r}")
        p.setName(key)
        p.setValue(float(model.coeffs[key]))
        p.setConstant(True)
    for i, tgt in enumerate(model.targets):
        sums = []
        for part in (0, 1):
            items = [(key, j) for key, pt, ii, j in model.index if pt == part and ii == i]
            sums.append(" + ".join(f"{ids[key]} * ({model.terms[j]})" for key, j in items)
                        or "0")
        formula = sums[0] if not model.rational else f"({sums[0]}) / ({sums[1]})"
        ast = libsbml.parseL3Formula(formula)
        if ast is None:
            raise DiscoveryError(f"to_sbml: the equation of {tgt!r} has a term SBML cannot "
                                 f"read: {libsbml.getLastParseL3Error()} in {formula!r}.")
        rule = sbml.createRateRule()
        rule.setVariable(tgt)
        _check(rule.setMath(ast), f"set the rate rule of {tgt!r}")
    text = libsbml.writeSBMLToString(doc)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return text
