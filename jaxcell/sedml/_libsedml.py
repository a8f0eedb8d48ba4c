"""python-libsedml, imported only in an order that keeps python-libsbml working.

libsedml and libsbml are both SWIG modules with their own ``ASTNode`` class, and SWIG
keeps one table of wrapped types per process: the module imported *second* replaces
the first one's ``ASTNode`` wrapper, so with libsbml first, libsbml's expression trees
come back as libsedml objects whose ``getType()`` is unusable and every SBML import
fails. With libsedml first, both work. ``import jaxcell`` therefore imports libsedml
before anything imports libsbml; if libsbml was imported earlier by someone else,
loading libsedml now would break it, and this module refuses with an explanation
instead.
"""

from __future__ import annotations

import sys

if "libsedml" not in sys.modules and "libsbml" in sys.modules:
    raise ImportError(
        "jaxcell.sedml needs python-libsedml to be imported before python-libsbml: both "
        "are SWIG modules with an ASTNode type, and importing libsedml after libsbml "
        "breaks libsbml's expression trees (and so SBML import) in this process. Import "
        "jaxcell (or libsedml) before libsbml, petab or any package that imports libsbml.")

import libsedml  # noqa: E402

__all__ = ["libsedml"]
