"""Errors raised while importing SBML."""

from __future__ import annotations

from .._errors import ModelError


class SBMLError(ModelError):
    """The SBML file or string cannot be turned into a model (malformed, invalid, or
    inconsistent). The message names the file and the element."""


class SBMLUnsupportedError(SBMLError):
    """The model uses an SBML feature jaxcell does not simulate.

    Attributes:
        feature: the SBML feature, e.g. ``"algebraic rules"``.
        element: the id of the element that uses it (or ``None``).
    """

    def __init__(self, feature: str, element: str | None = None, detail: str = ""):
        self.feature = feature
        self.element = element
        where = f" (element {element!r})" if element else ""
        msg = f"unsupported SBML feature: {feature}{where}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
