"""A JAX function of named scalars -> an SBML expression tree (see ``_ast.py``).

Rate laws, right-hand sides and couplings written as Python functions are traced once
with ``jax.make_jaxpr`` on scalar inputs, and the resulting program is read back,
equation by equation, into the same tuple tree the SBML reader produces. Arrays of
fixed shape are unrolled into one tree per element (so a small neural network with
its weights becomes an explicit formula: products with constant weights are folded);
primitives with no MathML meaning (loops, random numbers, sorting, gathers with
computed indices, ...) are refused with :class:`ExportError`, naming the part and the
JAX primitive, and so is a formula of more than 200,000 nodes. Nothing here evaluates
text.
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


_MAX_NODES = 200_000


def _num(v: float) -> tuple:
    v = float(v)
    return ("nan",) if math.isnan(v) else ("num", v)


def _op(name: str, *kids) -> tuple:
    """An operation node, folded when every argument is a number and simplified for
    the neutral elements of plus and times (so that products with constant weights,
    e.g. an unrolled neural network, stay small)."""
    if name in ("plus", "times"):
        unit = 0.0 if name == "plus" else 1.0
        flat = []
        for k in kids:
            if k[0] == "op" and k[1] == name:
                flat.extend(k[2:])
            else:
                flat.append(k)
        nums = [k[1] for k in flat if k[0] == "num"]
        rest = [k for k in flat if k[0] != "num"]
        acc = unit
        for v in nums:
            acc = acc + v if name == "plus" else acc * v
        if name == "times" and acc == 0.0 and nums:
            return ("num", 0.0)
        args = rest if acc == unit else [*rest, ("num", acc)]
        if not args:
            return ("num", acc)
        return args[0] if len(args) == 1 else ("op", name, *args)
    if name == "minus" and len(kids) == 2 and kids[1] == ("num", 0.0):
        return kids[0]
    if all(k[0] == "num" for k in kids):
        folded = _fold(name, [k[1] for k in kids])
        if folded is not None:
            return folded
    return ("op", name, *kids)


_FOLD = {"minus": lambda *a: -a[0] if len(a) == 1 else a[0] - a[1],
         "divide": lambda a, b: a / b if b != 0 else None,
         "power": lambda a, b: a ** b if a > 0 else None,
         "exp": math.exp, "max": max, "min": min, "abs": abs}


def _fold(name: str, vals: list[float]) -> tuple | None:
    f = _FOLD.get(name)
    if f is None:
        return None
    try:
        v = f(*vals)
    except (OverflowError, ValueError, TypeError):
        return None
    return None if v is None or isinstance(v, complex) else _num(v)


def _scalar_tree(value) -> tuple:
    if isinstance(value, (bool, np.bool_)):
        return ("true",) if value else ("false",)
    return _num(value)


def _const(value) -> np.ndarray:
    a = np.asarray(value)
    out = np.empty(a.shape, dtype=object)
    for i in np.ndindex(a.shape):
        out[i] = _scalar_tree(a[i])
    return out


def _map(fn, *arrays) -> np.ndarray:
    b = np.broadcast_arrays(*arrays)
    out = np.empty(b[0].shape, dtype=object)
    for i in np.ndindex(out.shape):
        out[i] = fn(*(x[i] for x in b))
    return out


def _reduce(a: np.ndarray, axes, fn) -> np.ndarray:
    axes = tuple(axes)
    keep = [d for d in range(a.ndim) if d not in axes]
    moved = np.transpose(a, keep + list(axes))
    shape = tuple(a.shape[d] for d in keep)
    flat = moved.reshape((*shape, -1))
    out = np.empty(shape, dtype=object)
    for i in np.ndindex(shape):
        out[i] = fn(list(flat[i]))
    return out


def _dot_general(a: np.ndarray, b: np.ndarray, dims, where: str) -> np.ndarray:
    (lc, rc), (lb, rb) = dims
    if lb or rb:
        raise ExportError(f"{where}: a batched matrix product has no SBML form here.")
    lf = [d for d in range(a.ndim) if d not in lc]
    rf = [d for d in range(b.ndim) if d not in rc]
    a2 = np.transpose(a, lf + list(lc)).reshape(
        (*(a.shape[d] for d in lf), -1))
    b2 = np.transpose(b, rf + list(rc)).reshape(
        (*(b.shape[d] for d in rf), -1))
    out = np.empty(a2.shape[:-1] + b2.shape[:-1], dtype=object)
    for i in np.ndindex(a2.shape[:-1]):
        for j in np.ndindex(b2.shape[:-1]):
            out[i + j] = _op("plus", *(_op("times", x, y) for x, y in zip(a2[i], b2[j])))
    return out


def _size(tree: tuple, memo: dict) -> int:
    key = id(tree)
    if key not in memo:
        kids = tree[2:] if tree[0] in ("op", "call") else (
            tree[1:] if tree[0] in ("delay", "rateOf") else ())
        memo[key] = 1 + sum(_size(k, memo) for k in kids)
    return memo[key]


def _elementwise(name: str, eqn, ins: list, where: str) -> list:
    """The SBML form of an elementwise primitive (applied to arrays of trees)."""
    if name in _BINARY and _BINARY[name] is not None:
        return [_map(lambda *k: _op(_BINARY[name], *k), *ins)]
    if name in _UNARY:
        return [_map(lambda x: _op(_UNARY[name], x), ins[0])]
    one = {
        "neg": lambda x: _op("minus", x),
        "integer_pow": lambda x: _op("power", x, _num(eqn.params["y"])),
        "square": lambda x: _op("power", x, _num(2.0)),
        "sqrt": lambda x: _op("root", x),
        "rsqrt": lambda x: _op("divide", _num(1.0), _op("root", x)),
        "cbrt": lambda x: _op("root", _num(3.0), x),
        "log1p": lambda x: _op("ln", _op("plus", _num(1.0), x)),
        "expm1": lambda x: _op("minus", _op("exp", x), _num(1.0)),
        "exp2": lambda x: _op("power", _num(2.0), x),
        "logistic": lambda x: _op("divide", _num(1.0),
                                  _op("plus", _num(1.0), _op("exp", _op("minus", x)))),
        "sign": lambda x: _op("piecewise", _num(1.0), _op("gt", x, _num(0.0)), _num(-1.0),
                              _op("lt", x, _num(0.0)), _num(0.0)),
    }
    if name in one:
        return [_map(one[name], ins[0])]
    if name == "select_n":
        pred, *cases = ins
        if len(cases) != 2 or eqn.invars[0].aval.dtype != jnp.bool_:
            raise ExportError(f"{where}: a multi-way select has no SBML form.")
        return [_map(lambda p, f, t: _op("piecewise", t, p, f), pred, cases[0], cases[1])]
    if name == "clamp":
        return [_map(lambda lo, x, hi: _op("min", _op("max", x, lo), hi), *ins)]
    raise ExportError(f"{where}: JAX primitive {name!r} has no SBML (MathML) form.")


def _structural(name: str, p: dict, ins: list, where: str) -> list | None:
    """Shape-changing primitives, applied to arrays of trees (None: not one of them)."""
    x = ins[0] if ins else None
    if name == "broadcast_in_dim":
        shape = tuple(p["shape"])
        dims = tuple(p["broadcast_dimensions"])
        expanded = [1] * len(shape)
        for src, dst in enumerate(dims):
            expanded[dst] = x.shape[src]
        return [np.broadcast_to(x.reshape(expanded), shape).copy()]
    if name == "reshape":
        return [x.reshape(tuple(p["new_sizes"]))]
    if name == "squeeze":
        return [np.squeeze(x, axis=tuple(p["dimensions"]))]
    if name == "expand_dims":
        return [np.expand_dims(x, tuple(p["dimensions"]))]
    if name == "concatenate":
        return [np.concatenate(ins, axis=p["dimension"])]
    if name == "stack":
        return [np.stack(ins, axis=p.get("axis", 0))]
    if name == "transpose":
        return [np.transpose(x, tuple(p["permutation"]))]
    if name == "slice":
        strides = p.get("strides") or (1,) * x.ndim
        idx = tuple(slice(a, b, c) for a, b, c in
                    zip(p["start_indices"], p["limit_indices"], strides))
        return [x[idx]]
    if name == "rev":
        return [np.flip(x, axis=tuple(p["dimensions"]))]
    if name in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min"):
        op = {"reduce_sum": "plus", "reduce_prod": "times", "reduce_max": "max",
              "reduce_min": "min"}[name]
        return [_reduce(x, p["axes"], lambda ks: _op(op, *ks) if len(ks) > 1 else ks[0])]
    if name == "dot_general":
        return [_dot_general(ins[0], ins[1], p["dimension_numbers"], where)]
    return None


_MOVES = {"gather", "dynamic_slice", "scatter", "dynamic_update_slice", "select_n",
          "concatenate", "pad", "transpose", "rev", "slice", "broadcast_in_dim", "reshape",
          "squeeze", "expand_dims"}


def _numeric(a: np.ndarray) -> bool:
    return all(t[0] in ("num", "nan", "true", "false") for t in a.reshape(-1))


def _values(a: np.ndarray, dtype) -> np.ndarray:
    out = np.empty(a.shape, dtype=dtype)
    for i in np.ndindex(a.shape):
        t = a[i]
        out[i] = {"nan": math.nan, "true": True, "false": False}.get(t[0]) \
            if t[0] != "num" else t[1]
    return out


def _bind(eqn, ins: list) -> list | None:
    """Evaluate a primitive whose inputs are all numbers (constant folding), or move
    symbolic elements with a data-movement primitive whose indices are numbers (a
    gather or scatter with fixed indices): the primitive is run on element ids."""
    name = eqn.primitive.name
    avals = [v.aval for v in eqn.invars]
    if all(_numeric(a) for a in ins):
        args = [jnp.asarray(_values(a, av.dtype)) for a, av in zip(ins, avals)]
        outs = eqn.primitive.bind(*args, **eqn.params)
        outs = outs if eqn.primitive.multiple_results else [outs]
        return [_const(np.asarray(o)) for o in outs]
    if name not in _MOVES:
        return None
    pool, args = [], []
    for a, av in zip(ins, avals):
        if jnp.issubdtype(av.dtype, jnp.floating):
            ids = np.arange(len(pool), len(pool) + a.size, dtype=np.float64)
            pool.extend(a.reshape(-1))
            args.append(jnp.asarray(ids.reshape(a.shape)))
        elif _numeric(a):
            args.append(jnp.asarray(_values(a, av.dtype)))
        else:
            return None  # computed indices or predicates
    outs = eqn.primitive.bind(*args, **eqn.params)
    outs = outs if eqn.primitive.multiple_results else [outs]
    result = []
    for o in outs:
        o = np.asarray(o)
        arr = np.empty(o.shape, dtype=object)
        for i in np.ndindex(o.shape):
            arr[i] = pool[int(o[i])]
        result.append(arr)
    return result


def _translate(jaxpr, consts: Sequence, args: Sequence, where: str) -> list:
    env: dict = {}

    def read(v):
        if isinstance(v, jex.core.Literal):
            return _const(v.val)
        return env[v]

    for var, c in zip(jaxpr.constvars, consts):
        env[var] = _const(c)
    for var, a in zip(jaxpr.invars, args):
        env[var] = a if isinstance(a, np.ndarray) else _const_tree(a)
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        ins = [read(v) for v in eqn.invars]
        if name in _CALLS:
            inner = eqn.params.get(_CALLS[name])
            if inner is None:
                raise ExportError(f"{where}: cannot read inside JAX primitive {name!r}.")
            closed = inner if hasattr(inner, "consts") else None
            body = closed.jaxpr if closed is not None else inner
            outs = _translate(body, closed.consts if closed is not None else (),
                              ins[:len(body.invars)], where)
        elif name in _IDENTITY:
            outs = [ins[0]]
        else:
            outs = _bind(eqn, ins)
            if outs is None:
                outs = _structural(name, eqn.params, ins, where)
            if outs is None:
                outs = _elementwise(name, eqn, ins, where)
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _const_tree(tree: tuple) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = tree
    return out


def _as_array(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return _const_tree(x)


def trace_arrays(fn: Callable, inputs: Sequence, where: str):
    """Trace ``fn`` on arguments shaped like ``inputs`` (object arrays of trees, or
    single trees for scalars) and return its outputs as object arrays of trees (the
    same pytree structure as ``fn``'s output)."""
    arrays = [_as_array(x) for x in inputs]
    ftype = jnp.result_type(float)
    zeros = [jnp.zeros(a.shape, ftype) for a in arrays]
    try:
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*zeros)
    except ExportError:
        raise
    except Exception as e:  # a function that cannot be traced on these inputs
        raise ExportError(f"{where}: could not be traced to write it as SBML "
                          f"({type(e).__name__}: {e}).") from e
    _, treedef = jax.tree_util.tree_flatten(out_shape)
    outs = _translate(closed.jaxpr, closed.consts, arrays, where)
    memo: dict = {}
    for a in outs:
        for t in a.reshape(-1):
            if _size(t, memo) > _MAX_NODES:
                raise ExportError(f"{where}: its expression has more than {_MAX_NODES} "
                                  "MathML nodes written out; too large to write as SBML.")
    return jax.tree_util.tree_unflatten(treedef, outs)


def expression_tree(fn: Callable, names: Sequence[str], where: str,
                    symbols: Sequence[tuple] | None = None) -> tuple | dict:
    """Trace ``fn`` on one scalar per name and return its output as tree(s).

    ``fn`` receives the scalars as positional arguments. ``symbols`` gives the tree
    each input stands for (default ``("name", name)``). A dict output gives a dict of
    trees, a scalar output one tree.
    """
    symbols = list(symbols) if symbols is not None else [("name", n) for n in names]
    out = trace_arrays(fn, symbols, where)

    def scalar(a):
        if a.size != 1:
            raise ExportError(f"{where}: returns shape {a.shape}; SBML needs one scalar "
                              "expression per variable.")
        return a.reshape(()).item()

    return jax.tree_util.tree_map(scalar, out)
