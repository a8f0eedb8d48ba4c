"""SED-ML models: the SBML file (or another model of the document) with its
``changeAttribute`` changes applied by libsbml, loaded with :func:`jaxcell.sbml.load_sbml`."""

from __future__ import annotations

import os

import libsbml

from ..sbml import SBMLError, SBMLModel, load_sbml
from ._document import Document
from ._errors import SEDMLError, SEDMLUnsupportedError
from ._targets import Target


class ModelLoader:
    """Loads each SED-ML model of a document once (changes applied)."""

    def __init__(self, doc: Document):
        self.doc = doc
        self._xml: dict[str, str] = {}
        self._models: dict[str, SBMLModel] = {}

    def model(self, model_id: str) -> SBMLModel:
        """The model ``model_id`` as an :class:`jaxcell.sbml.SBMLModel`."""
        if model_id not in self._models:
            xml = self.xml(model_id, ())
            try:
                m = load_sbml(xml, name=model_id)
            except SBMLError as e:
                raise SEDMLError(f"{self.doc.path}: model {model_id!r}: {e}") from e
            if m.has_delays:
                raise SEDMLUnsupportedError("SBML models with delay()", model_id,
                                            self.doc.path)
            self._models[model_id] = m
        return self._models[model_id]

    def xml(self, model_id: str, seen: tuple[str, ...]) -> str:
        """The SBML text of ``model_id`` with its changes applied."""
        if model_id in self._xml:
            return self._xml[model_id]
        doc = self.doc
        mdef = doc.models[model_id]
        where = f"{doc.path}: model {model_id!r}"
        ref = mdef.source[1:] if mdef.source.startswith("#") else mdef.source
        if ref in doc.models:
            if ref in seen or ref == model_id:
                raise SEDMLError(f"{where}: models refer to each other in a cycle "
                                 f"({' -> '.join((*seen, model_id, ref))}).")
            text = self.xml(ref, (*seen, model_id))
        else:
            path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(doc.file)),
                                                 mdef.source))
            if not os.path.isfile(path):
                raise SEDMLError(f"{where}: model file {mdef.source!r} not found (relative "
                                 "to the SED-ML file).")
            with open(path, encoding="utf-8") as f:
                text = f.read()
        if mdef.changes:
            text = _apply_changes(text, mdef.changes, where)
        self._xml[model_id] = text
        return text


def _apply_changes(text: str, changes, where: str) -> str:
    sbml = libsbml.readSBMLFromString(text)
    if sbml.getNumErrors(libsbml.LIBSBML_SEV_FATAL) or sbml.getModel() is None:
        raise SEDMLError(f"{where}: the SBML file cannot be read.")
    model = sbml.getModel()
    for target, value in changes:
        _set(model, target, value, where)
    return libsbml.writeSBMLToString(sbml)


def _set(model, target: Target, value: float, where: str) -> None:
    kind, attr = target.kind, target.attribute
    missing = SEDMLError(f"{where}: changeAttribute targets {kind} {target.id!r}, which "
                         "the SBML model does not have.")
    if kind == "parameter":
        p = model.getParameter(target.id)
        if p is None:
            raise missing
        p.setValue(value)
    elif kind == "compartment":
        c = model.getCompartment(target.id)
        if c is None:
            raise missing
        c.setSize(value)
    elif kind == "species":
        s = model.getSpecies(target.id)
        if s is None:
            raise missing
        if attr is None:
            attr = "initialConcentration" if s.isSetInitialConcentration() else "initialAmount"
        if attr == "initialConcentration":
            s.unsetInitialAmount()
            s.setInitialConcentration(value)
        else:
            s.unsetInitialConcentration()
            s.setInitialAmount(value)
    else:
        rid, lid = target.id.split(".", 1)
        r = model.getReaction(rid)
        law = None if r is None else r.getKineticLaw()
        p = None if law is None else (law.getLocalParameter(lid) or law.getParameter(lid))
        if p is None:
            raise missing
        p.setValue(value)
