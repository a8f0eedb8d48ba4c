"""libsbml ASTNode -> a small immutable expression tree (nested tuples).

The tree is plain data (hashable, picklable) so it can live in a static field of an
equinox module. Nodes:

- ``("num", value)`` a number (``("nan",)`` for NaN so trees compare equal);
- ``("name", id)`` a model symbol or a function argument;
- ``("time",)``, ``("avogadro",)``, ``("true",)``, ``("false",)``;
- ``("op", name, *children)`` a MathML operator or function (``plus``, ``sin``, ...);
- ``("call", function_id, *children)`` a call of a function definition;
- ``("delay", expr, tau)``, ``("rateOf", expr)``.

Nothing here evaluates text: the tree is built from libsbml's parsed nodes.
"""

from __future__ import annotations

import math

import libsbml

from .._safe_io import MAX_NESTING
from ._errors import SBMLError, SBMLUnsupportedError

_OPERATORS = {
    libsbml.AST_PLUS: "plus",
    libsbml.AST_MINUS: "minus",
    libsbml.AST_TIMES: "times",
    libsbml.AST_DIVIDE: "divide",
    libsbml.AST_POWER: "power",
    libsbml.AST_FUNCTION_POWER: "power",
}

# MathML functions (libsbml's names) that we evaluate; checked in _math.py as well.
FUNCTIONS = frozenset(
    """abs exp ln log floor ceiling factorial root sqrt power piecewise
    sin cos tan sec csc cot sinh cosh tanh sech csch coth
    arcsin arccos arctan arcsec arccsc arccot arcsinh arccosh arctanh arcsech arccsch arccoth
    and or xor not implies eq neq gt lt geq leq max min quotient rem""".split()
)

_NAMED_FUNCTION_TYPES = {
    getattr(libsbml, n)
    for n in dir(libsbml)
    if (n.startswith("AST_FUNCTION_") or n.startswith("AST_LOGICAL_")
        or n.startswith("AST_RELATIONAL_"))
    and n not in ("AST_FUNCTION_DELAY", "AST_FUNCTION_RATE_OF")
}


def convert(node, where: str, depth: int = 0) -> tuple:
    """Convert a libsbml ASTNode into the tuple tree; ``where`` names the element.

    Maths nested more than ``MAX_NESTING`` levels deep is refused (every later pass
    over the tree is recursive too)."""
    if node is None:
        raise SBMLError(f"{where}: missing or unreadable math.")
    if depth > MAX_NESTING:
        raise SBMLError(f"{where}: the maths is nested more than {MAX_NESTING} levels "
                        "deep.")
    d = depth + 1
    t = node.getType()
    kids = [node.getChild(i) for i in range(node.getNumChildren())]
    if node.isNumber():
        v = node.getValue()
        if math.isnan(v):
            return ("nan",)
        return ("num", float(v))
    if t == libsbml.AST_NAME:
        return ("name", node.getName())
    if t == libsbml.AST_NAME_TIME:
        return ("time",)
    if t == libsbml.AST_NAME_AVOGADRO:
        return ("avogadro",)
    if t == libsbml.AST_CONSTANT_PI:
        return ("num", math.pi)
    if t == libsbml.AST_CONSTANT_E:
        return ("num", math.e)
    if t == libsbml.AST_CONSTANT_TRUE:
        return ("true",)
    if t == libsbml.AST_CONSTANT_FALSE:
        return ("false",)
    if t == libsbml.AST_FUNCTION_DELAY:
        if len(kids) != 2:
            raise SBMLError(f"{where}: delay() takes 2 arguments, got {len(kids)}.")
        return ("delay", convert(kids[0], where, d), convert(kids[1], where, d))
    if t == libsbml.AST_FUNCTION_RATE_OF:
        if len(kids) != 1:
            raise SBMLError(f"{where}: rateOf() takes 1 argument, got {len(kids)}.")
        return ("rateOf", convert(kids[0], where, d))
    if t in _OPERATORS:
        return ("op", _OPERATORS[t], *(convert(k, where, d) for k in kids))
    if t == libsbml.AST_FUNCTION:
        return ("call", node.getName(), *(convert(k, where, d) for k in kids))
    if t in _NAMED_FUNCTION_TYPES:
        name = node.getName()
        if name not in FUNCTIONS:
            raise SBMLUnsupportedError(f"MathML function {name!r}", None, where)
        return ("op", name, *(convert(k, where, d) for k in kids))
    if t == libsbml.AST_LAMBDA:
        raise SBMLError(f"{where}: a lambda expression outside a function definition.")
    name = node.getName() or f"type {t}"
    raise SBMLUnsupportedError(f"MathML element {name!r}", None, where)


def convert_lambda(node, where: str) -> tuple[tuple[str, ...], tuple]:
    """A function definition's lambda: (argument names, body tree)."""
    if node is None or node.getType() != libsbml.AST_LAMBDA:
        raise SBMLError(f"{where}: a function definition's math must be a lambda.")
    n = node.getNumChildren()
    if n == 0:
        raise SBMLError(f"{where}: empty lambda.")
    args = []
    for i in range(n - 1):
        a = node.getChild(i)
        if a.getType() != libsbml.AST_NAME:
            raise SBMLError(f"{where}: lambda arguments must be names.")
        args.append(a.getName())
    return tuple(args), convert(node.getChild(n - 1), where)


def names_in(tree: tuple, out: set[str] | None = None) -> set[str]:
    """The symbol names a tree refers to (function-call names excluded)."""
    if out is None:
        out = set()
    tag = tree[0]
    if tag == "name":
        out.add(tree[1])
    elif tag in ("op", "call"):
        for k in tree[2:]:
            names_in(k, out)
    elif tag in ("delay", "rateOf"):
        for k in tree[1:]:
            names_in(k, out)
    return out


def contains(tree: tuple, tag: str) -> bool:
    if tree[0] == tag:
        return True
    if tree[0] in ("op", "call"):
        return any(contains(k, tag) for k in tree[2:])
    if tree[0] in ("delay", "rateOf"):
        return any(contains(k, tag) for k in tree[1:])
    return False
