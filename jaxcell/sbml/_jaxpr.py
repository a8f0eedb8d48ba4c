"""A JAX function of named scalars -> an SBML expression tree (see ``_ast.py``).

Rate laws, right-hand sides and couplings written as Python functions are traced once
with ``jax.make_jaxpr`` on scalar inputs, and the resulting program is read back,
equation by equation, into the same tuple tree the SBML reader produces. Only
elementwise scalar arithmetic has an SBML meaning: anything else (arrays, matrix
products, loops, random numbers) is refused with :class:`ExportError`, naming the part
and the JAX primitive. Nothing here evaluates text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np

from ._errors import SBMLError


class ExportError(SBMLError):
    """A model, or part of one, cannot be written as SBML. The message names the part
    (process, reaction, variable) and what SBML cannot express."""


_BINARY = {"add": "plus", "sub": "minus", "mul": "times", "div": "divide", "pow": "power",
           "max": "max", "min": "min", "atan2": None, "rem": "rem",
           "gt": "gt", "lt": "lt", "ge": "geq", "le": "leq", "eq": "eq", "ne": "neq",
           "and": "and", "or": "or", "xor": "xor"}
_UNARY = {"exp": "exp", "log": "ln", "sin": "sin", "cos": "cos", "tan": "tan",
          "tanh": "tanh", "sinh": "sinh", "cosh": "cosh", "asin": "arcsin",
          "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh",
          "atanh": "arctanh", "abs": "abs", "floor": "floor", "ceil": "ceiling",
          "not": "not"}
_IDENTITY = {"convert_element_type", "copy", "copy_p", "stop_gradient", "reduce_precision",
             "optimization_barrier"}
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
          "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr",
          "remat": "jaxpr", "checkpoint": "jaxpr"}


def _num(v: float) -> tuple:
    v = float(v)
    return ("nan",) if math.isnan(v) else ("num", v)


def _op(name: str, *kids) -> tuple:
    return ("op", name, *kids)


def _scalar_const(value, where: str) -> tuple:
    a = np.asarray(value)
    if a.shape != ():
        raise ExportError(f"{where}: uses an array constant of shape {a.shape}; only "
                          "scalar expressions can be written as SBML.")
    if a.dtype == bool:
        return ("true",) if bool(a) else ("false",)
    return _num(a)


def _translate(jaxpr, consts: Sequence, args: Sequence[tuple], where: str) -> list[tuple]:
    env: dict = {}

    def read(v):
        if isinstance(v, jex.core.Literal):
            return _scalar_const(v.val, where)
        return env[v]

    for var, c in zip(jaxpr.constvars, consts):
        env[var] = _scalar_const(c, where)
    for var, a in zip(jaxpr.invars, args):
        env[var] = a
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        for v in list(eqn.invars) + list(eqn.outvars):
            shape = getattr(v.aval, "shape", ())
            if shape not in ((), (1,)):
                raise ExportError(
                    f"{where}: computes with arrays (JAX primitive {name!r} on shape "
                    f"{shape}); only scalar expressions can be written as SBML.")
        ins = [read(v) for v in eqn.invars]
        if name in _CALLS:
            inner = eqn.params.get(_CALLS[name])
            if inner is None:
                raise ExportError(f"{where}: cannot read inside JAX primitive {name!r}.")
            closed = inner if hasattr(inner, "consts") else None
            body = closed.jaxpr if closed is not None else inner
            outs = _translate(body, closed.consts if closed is not None else (),
                              ins[:len(body.invars)], where)
        elif name in _IDENTITY or name in ("broadcast_in_dim", "reshape", "squeeze"):
            outs = [ins[0]]
        elif name in _BINARY and _BINARY[name] is not None:
            outs = [_op(_BINARY[name], *ins)]
        elif name in _UNARY:
            outs = [_op(_UNARY[name], *ins)]
        elif name == "neg":
            outs = [_op("minus", ins[0])]
        elif name == "integer_pow":
            outs = [_op("power", ins[0], _num(eqn.params["y"]))]
        elif name == "square":
            outs = [_op("power", ins[0], _num(2.0))]
        elif name == "sqrt":
            outs = [_op("root", ins[0])]
        elif name == "rsqrt":
            outs = [_op("divide", _num(1.0), _op("root", ins[0]))]
        elif name == "cbrt":
            outs = [_op("root", _num(3.0), ins[0])]
        elif name == "log1p":
            outs = [_op("ln", _op("plus", _num(1.0), ins[0]))]
        elif name == "expm1":
            outs = [_op("minus", _op("exp", ins[0]), _num(1.0))]
        elif name == "exp2":
            outs = [_op("power", _num(2.0), ins[0])]
        elif name == "logistic":
            outs = [_op("divide", _num(1.0),
                        _op("plus", _num(1.0), _op("exp", _op("minus", ins[0]))))]
        elif name == "sign":
            x = ins[0]
            outs = [_op("piecewise", _num(1.0), _op("gt", x, _num(0.0)), _num(-1.0),
                        _op("lt", x, _num(0.0)), _num(0.0))]
        elif name == "select_n":
            pred, *cases = ins
            if len(cases) != 2 or eqn.invars[0].aval.dtype != jnp.bool_:
                raise ExportError(f"{where}: a multi-way select has no SBML form.")
            outs = [_op("piecewise", cases[1], pred, cases[0])]
        elif name == "clamp":
            lo, x, hi = ins
            outs = [_op("min", _op("max", x, lo), hi)]
        else:
            raise ExportError(f"{where}: JAX primitive {name!r} has no SBML (MathML) "
                              "form.")
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def expression_tree(fn: Callable, names: Sequence[str], where: str,
                    symbols: Sequence[tuple] | None = None) -> tuple | dict:
    """Trace ``fn`` on one scalar per name and return its output as tree(s).

    ``fn`` receives the scalars as positional arguments. ``symbols`` gives the tree
    each input stands for (default ``("name", name)``). A dict output gives a dict of
    trees, a scalar output one tree.
    """
    symbols = list(symbols) if symbols is not None else [("name", n) for n in names]
    ftype = jnp.result_type(float)
    zeros = [jnp.zeros((), ftype) for _ in names]
    try:
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*zeros)
    except ExportError:
        raise
    except Exception as e:  # a function that cannot be traced on scalars
        raise ExportError(f"{where}: could not be traced on scalar inputs to write it as "
                          f"SBML ({type(e).__name__}: {e}).") from e
    leaves, treedef = jax.tree_util.tree_flatten(out_shape)
    for leaf in leaves:
        if leaf.shape not in ((), (1,)):
            raise ExportError(f"{where}: returns shape {leaf.shape}; SBML needs one scalar "
                              "expression per variable.")
    trees = _translate(closed.jaxpr, closed.consts, symbols, where)
    return jax.tree_util.tree_unflatten(treedef, trees)
