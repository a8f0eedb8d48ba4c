"""SED-ML targets: XPaths into an SBML model, and SED-ML symbols.

Only the XPath forms that name one element by id are understood::

    /sbml:sbml/sbml:model/sbml:listOfParameters/sbml:parameter[@id='k1']/@value
    /sbml:sbml/sbml:model/sbml:listOfSpecies/sbml:species[@id='S1']/@initialConcentration
    /sbml:sbml/sbml:model/sbml:listOfCompartments/sbml:compartment[@id='c']/@size
    /sbml:sbml/sbml:model/sbml:listOfReactions/sbml:reaction[@id='R1']/sbml:kineticLaw
        /sbml:listOfLocalParameters/sbml:localParameter[@id='k']/@value

(the attribute is optional for variables and set values; any namespace prefix, or
none, is accepted).
"""

from __future__ import annotations

import dataclasses
import re

from ._errors import SEDMLUnsupportedError

TIME = "urn:sedml:symbol:time"

_P = r"(?:\w+:)?"
_ID = r"\[\s*@id\s*=\s*(?:'([^']*)'|\"([^\"]*)\")\s*\]"
_ROOT = rf"^/{_P}sbml/{_P}model"
_GLOBAL = re.compile(
    rf"{_ROOT}/{_P}listOf(Parameters|Species|Compartments)/{_P}(parameter|species|"
    rf"compartment){_ID}(?:/@(\w+))?$")
_LOCAL = re.compile(
    rf"{_ROOT}/{_P}listOfReactions/{_P}reaction{_ID}/{_P}kineticLaw/{_P}"
    rf"listOf(?:Local)?Parameters/{_P}(?:localParameter|parameter){_ID}(?:/@(\w+))?$")
_ATTRIBUTES = {
    "parameter": ("value",),
    "species": ("initialConcentration", "initialAmount"),
    "compartment": ("size",),
    "local": ("value",),
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One SBML element named by a SED-ML target: ``kind`` (``"parameter"``,
    ``"species"``, ``"compartment"``, ``"local"``), its id (``"reaction.param"`` for a
    local parameter) and the attribute (``None`` when the XPath names the element)."""

    kind: str
    id: str
    attribute: str | None

    @property
    def key(self) -> str:
        """The name of the element in :meth:`jaxcell.sbml.SBMLModel.parameters` and in
        a simulation's outputs."""
        return self.id


def parse_target(xpath: str, where: str, element: str | None) -> Target:
    """The :class:`Target` of an XPath (``where`` and ``element`` name the SED-ML
    element for errors)."""
    text = xpath.strip()
    m = _GLOBAL.match(text)
    if m:
        kind = {"Parameters": "parameter", "Species": "species",
                "Compartments": "compartment"}[m.group(1)]
        if kind != m.group(2):
            m = None
        else:
            target = Target(kind, m.group(3) or m.group(4), m.group(5))
    if m is None:
        m = _LOCAL.match(text)
        if m is None:
            raise SEDMLUnsupportedError(
                "target XPath", element, where,
                f"{xpath!r}; jaxcell understands XPaths that name one SBML parameter, "
                "species, compartment or local parameter by id, e.g. "
                "/sbml:sbml/sbml:model/sbml:listOfParameters/sbml:parameter[@id='k1']"
                "/@value")
        rid, lid = m.group(1) or m.group(2), m.group(3) or m.group(4)
        target = Target("local", f"{rid}.{lid}", m.group(5))
    if target.attribute is not None and target.attribute not in _ATTRIBUTES[target.kind]:
        raise SEDMLUnsupportedError(
            f"attribute {target.attribute!r} of an SBML {target.kind}", element, where,
            f"supported: {', '.join(_ATTRIBUTES[target.kind])}")
    return target
