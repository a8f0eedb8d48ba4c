"""PEtab errors, and PEtab formulas (observables, noise) as JAX functions.

Formulas are parsed by ``petab.v1.math.sympify_petab`` (PEtab's own ANTLR grammar: no
``eval`` of file text) into a sympy tree, which :func:`compile_formula` walks once to
build a JAX function. Only the node types listed in ``_FUNCS`` are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import sympy as sp

from ..sbml._errors import SBMLError


class PetabError(SBMLError):
    """A PEtab problem cannot be read: a file or a table column is missing, a table
    entry is invalid, or a formula names an unknown symbol. The message names the file,
    column or entry."""


class PetabUnsupportedError(PetabError):
    """The PEtab problem uses a feature :func:`jaxcell.petab.load_petab` does not support.

    Attributes:
        feature: the PEtab feature, e.g. ``"mapping tables"``.
    """

    def __init__(self, feature: str, detail: str = ""):
        self.feature = feature
        msg = f"unsupported PEtab feature: {feature}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


def parse_formula(text, where: str) -> sp.Expr:
    """A PEtab formula (or number) as a sympy expression, without ``eval``."""
    from petab.v1.math import sympify_petab

    if isinstance(text, int | float):
        return sp.Float(float(text))
    text = str(text)
    if len(text) > _MAX_FORMULA:
        raise PetabError(f"{where}: the formula has {len(text)} characters; at most "
                         f"{_MAX_FORMULA} are accepted.")
    try:
        # first unevaluated: sympy would compute 9^9^9^9 exactly (and never finish)
        _check_powers(sympify_petab(text, evaluate=False), text, where)
        return sympify_petab(text)
    except PetabError:
        raise
    except Exception as e:  # noqa: BLE001 - the parser raises several kinds
        raise PetabError(f"{where}: cannot parse formula {_clip(text)!r}: "
                         f"{type(e).__name__}: {_clip(str(e))}") from None


_MAX_FORMULA = 100_000  # characters


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _numeric(e) -> bool:
    return isinstance(e, sp.Basic) and not e.free_symbols


def _check_powers(expr, text: str, where: str) -> None:
    """Refuse powers of numbers that sympy would compute exactly at absurd cost: a
    numeric power tower (``9^9^9^9``) or an integer exponent beyond 10000."""
    stack = [expr]
    while stack:
        e = stack.pop()
        if not isinstance(e, sp.Basic):
            continue
        if isinstance(e, sp.Pow) and _numeric(e.base) and _numeric(e.exp):
            tower = any(isinstance(k, sp.Pow) for k in sp.preorder_traversal(e.exp))
            big = e.exp.is_Number and abs(e.exp) > 10_000
            if tower or big:
                raise PetabError(f"{where}: the formula {_clip(text)!r} raises a number "
                                 "to a power too large to evaluate.")
        stack.extend(e.args)


def _piecewise(*args):
    # sympy Piecewise: (value, condition) pairs, the first true wins
    out = args[-1][0]
    for val, cond in reversed(args[:-1]):
        out = jnp.where(cond, val, out)
    return out


_FUNCS: dict[type, Callable] = {
    sp.Add: lambda *a: sum(a[1:], a[0]),
    sp.Mul: lambda *a: _prod(a),
    sp.Pow: lambda a, b: a**b,
    sp.exp: jnp.exp,
    sp.log: jnp.log,
    sp.sin: jnp.sin,
    sp.cos: jnp.cos,
    sp.tan: jnp.tan,
    sp.Abs: jnp.abs,
    sp.sign: jnp.sign,
    sp.floor: jnp.floor,
    sp.ceiling: jnp.ceil,
    sp.Min: lambda *a: _fold(jnp.minimum, a),
    sp.Max: lambda *a: _fold(jnp.maximum, a),
    sp.StrictLessThan: lambda a, b: a < b,
    sp.LessThan: lambda a, b: a <= b,
    sp.StrictGreaterThan: lambda a, b: a > b,
    sp.GreaterThan: lambda a, b: a >= b,
    sp.Eq: lambda a, b: a == b,
    sp.Ne: lambda a, b: a != b,
    sp.And: lambda *a: _fold(jnp.logical_and, a),
    sp.Or: lambda *a: _fold(jnp.logical_or, a),
    sp.Not: jnp.logical_not,
}


def _prod(a):
    out = a[0]
    for x in a[1:]:
        out = out * x
    return out


def _fold(f, a):
    out = a[0]
    for x in a[1:]:
        out = f(out, x)
    return out


def compile_formula(expr: sp.Expr, resolve: Mapping[str, Callable], where: str) -> Callable:
    """A function ``env -> value`` evaluating ``expr``; ``resolve[name](env)`` gives the
    value of each free symbol. Unknown symbols or functions raise :class:`PetabError`
    naming them and ``where``."""

    def build(e):
        if e.is_Symbol:
            name = str(e)
            if name not in resolve:
                raise PetabError(f"{where}: unknown symbol {name!r} (not a model entity, "
                                 "PEtab parameter or placeholder).")
            return resolve[name]
        if e is sp.true or e is sp.false:
            v = bool(e)
            return lambda env: jnp.asarray(v)
        if e.is_Number:
            if e in (sp.oo, -sp.oo, sp.zoo, sp.nan):
                v = float(e)
            else:
                v = float(e)
            return lambda env: jnp.asarray(v)
        if isinstance(e, sp.NumberSymbol):
            v = float(e)
            return lambda env: jnp.asarray(v)
        if isinstance(e, sp.Piecewise):
            parts = [(build(a.expr), build(a.cond)) for a in e.args]
            return lambda env: _piecewise(*[(v(env), c(env)) for v, c in parts])
        f = _FUNCS.get(type(e))
        if f is None:
            raise PetabUnsupportedError(f"function {type(e).__name__} in a formula", where)
        if isinstance(e, sp.log) and len(e.args) == 2:
            a, b = build(e.args[0]), build(e.args[1])
            return lambda env: jnp.log(a(env)) / jnp.log(b(env))
        args = [build(a) for a in e.args]
        return lambda env: f(*[a(env) for a in args])

    return build(expr)
