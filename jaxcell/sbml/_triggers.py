"""Event triggers as continuous functions, so the solver can locate when they change.

A trigger is a boolean expression. For root finding we also need a real-valued function
``g`` that is positive where the trigger is true and crosses zero where it changes:
relations give differences (``a > b`` -> ``a - b``), ``and``/``or`` give minima/maxima,
``not`` a sign change. Anything else (``eq``, ``xor``, boolean-valued piecewise, ...)
falls back to +1/-1, located by bisection.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._eval import Env, _bool, _num


def _pairs(env, tree, scope):
    xs = [_num(env.evaluate(k, scope)) for k in tree[2:]]
    return list(zip(xs[:-1], xs[1:]))


def trigger_g(env: Env, tree: tuple, scope=None):
    tag = tree[0]
    if tag == "op" and len(tree) > 2:  # (with no arguments: a boolean constant below)
        op = tree[1]
        if op in ("gt", "geq"):
            return _min([a - b for a, b in _pairs(env, tree, scope)])
        if op in ("lt", "leq"):
            return _min([b - a for a, b in _pairs(env, tree, scope)])
        if op == "and":
            return _min([trigger_g(env, k, scope) for k in tree[2:]])
        if op == "or":
            return _max([trigger_g(env, k, scope) for k in tree[2:]])
        if op == "not":
            return -trigger_g(env, tree[2], scope)
    if tag == "call":
        return trigger_g(env, env.st.inline(tree), scope)
    b = _bool(env.evaluate(tree, scope))
    return jnp.where(b, 1.0, -1.0).astype(env.dtype)


def _min(xs):
    out = xs[0]
    for x in xs[1:]:
        out = jnp.minimum(out, x)
    return out


def _max(xs):
    out = xs[0]
    for x in xs[1:]:
        out = jnp.maximum(out, x)
    return out


def discontinuity_value(env: Env, kind: str, tree: tuple):
    """The current (unfrozen) value of a discontinuity: a condition's truth (0/1) or
    ``floor``/``ceiling`` of the argument."""
    if kind == "cond":
        return _bool(env.evaluate(tree)).astype(env.dtype)
    x = _num(env.evaluate(tree))
    return jnp.floor(x) if kind == "floor" else jnp.ceil(x)


def discontinuity_g(env: Env, kind: str, tree: tuple, z):
    """Negative while the frozen value ``z`` is still right; crosses zero upwards where
    it stops being right."""
    if kind == "cond":
        g = trigger_g(env, tree)
        return jnp.where(z > 0.5, -g, g)
    x = _num(env.evaluate(tree))
    lo = z if kind == "floor" else z - 1.0
    return -jnp.minimum(x - lo, lo + 1.0 - x)


def discontinuity_flip(env: Env, kind: str, tree: tuple, z):
    """The new value when the solver stopped because ``z`` stopped being right."""
    if kind == "cond":
        return 1.0 - z
    x = _num(env.evaluate(tree))
    lo = z if kind == "floor" else z - 1.0
    return jnp.where(x - lo > 0.5, z + 1.0, z - 1.0)


_RELATIONS = ("lt", "leq", "gt", "geq")
_LOGICAL = ("and", "or", "not", "xor")


def time_switches(st, tree: tuple) -> list[tuple] | None:
    """The switching times of a condition that depends on time alone, else ``None``.

    A condition qualifies when it is built with ``and``/``or``/``not``/``xor`` from
    comparisons ``time < c`` (``<=``, ``>``, ``>=``, either way round) with ``c`` free of
    time and state (numbers, constant symbols, assignment rules of those), and
    constant comparisons. Its truth can then change only at the times ``c``: the
    returned trees, evaluated once at the start. Such a condition (a dosing schedule,
    an input switched off at ``t_end``) needs no root finding: the integrator stops at
    the switching times exactly.
    """
    points: list[tuple] = []

    def free(t: tuple, seen=frozenset()) -> bool:
        tag = t[0]
        if tag in ("num", "nan", "true", "false", "avogadro"):
            return True
        if tag == "name":
            name = t[1]
            if name in st.const_index:
                return True
            if name in st.assigned and name not in seen:
                return free(st.assigned[name], seen | {name})
            return False
        if tag == "op":
            return all(free(k, seen) for k in t[2:])
        if tag == "call":
            return free(st.inline(t), seen)
        return False

    def walk(t: tuple) -> bool:
        tag = t[0]
        if tag == "call":
            return walk(st.inline(t))
        if tag == "op" and t[1] in _LOGICAL:
            return all(walk(k) for k in t[2:])
        if tag == "op" and t[1] in _RELATIONS and len(t) == 4:
            a, b = t[2], t[3]
            if a == ("time",) and free(b):
                points.append(b)
                return True
            if b == ("time",) and free(a):
                points.append(a)
                return True
        return free(t)

    return points if walk(tree) and points else None
