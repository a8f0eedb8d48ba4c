"""SED-ML maths (data generators, set values, functional ranges) as NumPy.

libsedml parses the MathML of the document and writes it back as MathML text;
:func:`parse_math` reads that text with ``xml.etree`` into a small immutable tree
(the node forms of ``jaxcell/sbml/_ast.py``: ``("num", v)``, ``("name", id)``,
``("op", name, *children)``, ...), which :func:`evaluate` interprets with NumPy
element-wise operations. No formula text is ever evaluated as code.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np

from ._errors import SEDMLError, SEDMLUnsupportedError
from ._libsedml import libsedml

_UNARY = {
    "abs": np.abs, "exp": np.exp, "ln": np.log, "floor": np.floor, "ceiling": np.ceil,
    "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh,
    "cosh": np.cosh, "tanh": np.tanh, "arcsin": np.arcsin, "arccos": np.arccos,
    "arctan": np.arctan, "arcsinh": np.arcsinh, "arccosh": np.arccosh,
    "arctanh": np.arctanh, "not": np.logical_not,
    "sec": lambda x: 1.0 / np.cos(x), "csc": lambda x: 1.0 / np.sin(x),
    "cot": lambda x: 1.0 / np.tan(x),
}
_BINARY = {
    "power": np.power, "eq": np.equal, "neq": np.not_equal, "gt": np.greater,
    "lt": np.less, "geq": np.greater_equal, "leq": np.less_equal,
    "quotient": lambda a, b: np.trunc(a / b), "rem": np.fmod,
}
_FOLD = {"plus": np.add, "times": np.multiply, "and": np.logical_and,
         "or": np.logical_or, "xor": np.logical_xor, "max": np.maximum,
         "min": np.minimum}
_EMPTY = {"plus": 0.0, "times": 1.0, "and": True, "or": False, "xor": False}
_OPERATORS = (set(_UNARY) | set(_BINARY) | set(_FOLD)
              | {"minus", "divide", "log", "root", "factorial"})
_CONSTANTS = {"pi": ("num", math.pi), "exponentiale": ("num", math.e),
              "true": ("true",), "false": ("false",), "notanumber": ("nan",),
              "infinity": ("num", math.inf)}


def parse_math(ast, where: str) -> tuple:
    """The expression tree of a libsedml ASTNode (``where`` names the element)."""
    if ast is None:
        raise SEDMLError(f"{where}: missing or unreadable math.")
    text = libsedml.writeMathMLToString(ast)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise SEDMLError(f"{where}: the math could not be read: {e}") from None
    kids = list(root)
    if len(kids) != 1:
        raise SEDMLError(f"{where}: the math must hold one expression.")
    return _node(kids[0], where)


def _tag(el) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _node(el, where: str) -> tuple:
    tag = _tag(el)
    text = (el.text or "").strip()
    if tag == "ci":
        return ("name", text)
    if tag == "cn":
        return _number(el, where)
    if tag == "csymbol":
        if (el.get("definitionURL") or "").endswith("/time"):
            return ("time",)
        raise SEDMLUnsupportedError(f"csymbol {el.get('definitionURL')!r} in SED-ML math",
                                    None, where)
    if tag in _CONSTANTS:
        return _CONSTANTS[tag]
    if tag == "piecewise":
        args = []
        otherwise = None
        for piece in el:
            parts = [_node(c, where) for c in piece]
            if _tag(piece) == "piece" and len(parts) == 2:
                args.extend(parts)
            elif _tag(piece) == "otherwise" and len(parts) == 1:
                otherwise = parts[0]
            else:
                raise SEDMLError(f"{where}: malformed piecewise.")
        return ("op", "piecewise", *args, *(() if otherwise is None else (otherwise,)))
    if tag == "apply":
        kids = list(el)
        if not kids:
            raise SEDMLError(f"{where}: empty <apply>.")
        op = _tag(kids[0])
        if op not in _OPERATORS:
            raise SEDMLUnsupportedError(f"MathML function {op!r}", None, where)
        args = []
        qualifier = None
        for k in kids[1:]:
            if _tag(k) in ("logbase", "degree"):
                inner = list(k)
                if len(inner) != 1:
                    raise SEDMLError(f"{where}: malformed <{_tag(k)}>.")
                qualifier = _node(inner[0], where)
            else:
                args.append(_node(k, where))
        if op in ("log", "root"):
            default = ("num", 10.0) if op == "log" else ("num", 2.0)
            return ("op", op, qualifier or default, *args)
        return ("op", op, *args)
    raise SEDMLUnsupportedError(f"MathML element {tag!r}", None, where)


def _number(el, where: str) -> tuple:
    kind = el.get("type", "real")
    parts = [(el.text or "").strip()] + [(s.tail or "").strip() for s in el]
    try:
        if kind == "e-notation":
            return ("num", float(parts[0]) * 10.0 ** float(parts[1]))
        if kind == "rational":
            return ("num", float(parts[0]) / float(parts[1]))
        return ("num", float(parts[0]))
    except (ValueError, IndexError):
        raise SEDMLError(f"{where}: unreadable number in the math.") from None


def evaluate(tree: tuple, env: dict[str, np.ndarray], where: str) -> np.ndarray:
    """The value of ``tree`` with symbols from ``env`` (NumPy broadcasting)."""
    tag = tree[0]
    if tag == "num":
        return np.asarray(tree[1], dtype=float)
    if tag == "nan":
        return np.asarray(math.nan)
    if tag == "true":
        return np.asarray(True)
    if tag == "false":
        return np.asarray(False)
    if tag == "name":
        if tree[1] not in env:
            raise SEDMLError(f"{where}: the math refers to {tree[1]!r}, which is not a "
                             f"variable or parameter here (known: {sorted(env)}).")
        return np.asarray(env[tree[1]])
    if tag != "op":
        raise SEDMLUnsupportedError(f"{tag!r} in SED-ML math", None, where)
    name, kids = tree[1], tree[2:]
    args = [evaluate(k, env, where) for k in kids]
    try:
        with np.errstate(all="ignore"):
            return _apply(name, args, where)
    except ValueError as e:  # shapes that do not broadcast
        raise SEDMLError(f"{where}: cannot combine the values of the math: {e}") from None


def _apply(name: str, args: list[np.ndarray], where: str) -> np.ndarray:
    if name == "minus":
        return -args[0] if len(args) == 1 else args[0] - args[1]
    if name == "divide":
        return args[0] / args[1]
    if name in _FOLD:
        if not args:
            return np.asarray(_EMPTY.get(name, math.nan))
        out = args[0]
        for a in args[1:]:
            out = _FOLD[name](out, a)
        return out
    if name in _UNARY and len(args) == 1:
        return _UNARY[name](args[0])
    if name in _BINARY and len(args) == 2:
        return _BINARY[name](args[0], args[1])
    if name == "log" and len(args) == 2:
        return np.log(args[1]) / np.log(args[0])
    if name == "root" and len(args) == 2:
        return np.power(args[1], 1.0 / args[0])
    if name == "factorial":
        return np.vectorize(lambda v: math.gamma(v + 1.0))(args[0])
    if name == "piecewise":
        out = args[-1] if len(args) % 2 else np.asarray(math.nan)
        for i in range(len(args) // 2 - 1, -1, -1):
            out = np.where(args[2 * i + 1], args[2 * i], out)
        return out
    raise SEDMLUnsupportedError(f"MathML function {name!r} with {len(args)} argument(s)",
                                None, where)
