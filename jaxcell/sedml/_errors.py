"""Errors raised while reading and running SED-ML documents and COMBINE archives."""

from __future__ import annotations

from .._errors import JaxcellError


class SEDMLError(JaxcellError, ValueError):
    """A SED-ML document or COMBINE archive cannot be run as written: malformed XML,
    a reference to an element that does not exist, a model file that is missing, an
    unsafe archive entry, a failed simulation. The message names the file and the
    SED-ML element (or archive entry)."""


class SEDMLUnsupportedError(SEDMLError):
    """The document uses a SED-ML feature jaxcell does not run (a change kind, a
    simulation type, an algorithm, a model source that would need a download, ...).

    Attributes:
        feature: the SED-ML feature, e.g. ``"addXML change"``.
        element: the id of the element that uses it (or ``None``).
    """

    def __init__(self, feature: str, element: str | None = None, where: str = "",
                 detail: str = ""):
        self.feature = feature
        self.element = element
        msg = f"{where}: " if where else ""
        msg += f"unsupported SED-ML feature: {feature}"
        if element:
            msg += f" (element {element!r})"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
