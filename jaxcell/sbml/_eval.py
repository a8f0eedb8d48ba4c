"""Evaluate SBML expression trees as JAX computations.

An :class:`Env` holds the time, the state vector and the constants of one evaluation;
symbol values are computed lazily and memoised at trace time, so assignment rules,
reaction rates and initial assignments are evaluated in dependency order without an
explicit sort (and a cycle is reported as an error). The tree is interpreted: nothing
from the model file is ever turned into source code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from ._errors import SBMLError, SBMLUnsupportedError
from ._structure import Structure

AVOGADRO = 6.02214179e23  # the value SBML Level 3 prescribes (CODATA 2006)
_TIME = "\0time"  # scope key that overrides the time (rateOf of assigned variables)


def _num(v):
    v = jnp.asarray(v)
    if v.dtype == jnp.bool_:
        return v.astype(jnp.result_type(float))
    return v


def _bool(v):
    v = jnp.asarray(v)
    if v.dtype == jnp.bool_:
        return v
    return v != 0


def _reduce(fn, xs):
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


def _chain(cmp, xs):
    xs = [_num(x) for x in xs]
    out = cmp(xs[0], xs[1])
    for a, b in zip(xs[1:-1], xs[2:]):
        out = out & cmp(a, b)
    return out


def _piecewise(xs):
    pieces = list(xs)
    otherwise = pieces.pop() if len(pieces) % 2 == 1 else None
    values = [pieces[i] for i in range(0, len(pieces), 2)]
    conds = [_bool(pieces[i]) for i in range(1, len(pieces), 2)]
    all_bool = all(jnp.asarray(v).dtype == jnp.bool_ for v in values) and (
        otherwise is None or jnp.asarray(otherwise).dtype == jnp.bool_)
    conv = (lambda v: jnp.asarray(v)) if all_bool else _num
    out = conv(otherwise) if otherwise is not None else (
        jnp.asarray(False) if all_bool else jnp.asarray(jnp.nan))
    for v, c in reversed(list(zip(values, conds))):
        out = jnp.where(c, conv(v), out)
    return out


def _log(xs):
    if len(xs) == 1:
        return jnp.log10(_num(xs[0]))
    base, x = _num(xs[0]), _num(xs[1])
    return jnp.log(x) / jnp.log(base)


def _root(xs):
    if len(xs) == 1:
        return jnp.sqrt(_num(xs[0]))
    deg, x = _num(xs[0]), _num(xs[1])
    # odd integer roots of negative numbers are real
    odd = (jnp.mod(deg, 2) == 1)
    mag = jnp.abs(x) ** (1.0 / deg)
    return jnp.where(odd & (x < 0), -mag, x ** (1.0 / deg))


def _minus(xs):
    if len(xs) == 1:
        return -_num(xs[0])
    return _num(xs[0]) - _num(xs[1])


def _power(xs):
    a, b = _num(xs[0]), _num(xs[1])
    return jnp.power(a, b)


_UNARY = {
    "abs": jnp.abs, "exp": jnp.exp, "ln": jnp.log, "floor": jnp.floor, "ceiling": jnp.ceil,
    "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan,
    "sec": lambda x: 1 / jnp.cos(x), "csc": lambda x: 1 / jnp.sin(x),
    "cot": lambda x: 1 / jnp.tan(x),
    "sinh": jnp.sinh, "cosh": jnp.cosh, "tanh": jnp.tanh,
    "sech": lambda x: 1 / jnp.cosh(x), "csch": lambda x: 1 / jnp.sinh(x),
    "coth": lambda x: 1 / jnp.tanh(x),
    "arcsin": jnp.arcsin, "arccos": jnp.arccos, "arctan": jnp.arctan,
    "arcsec": lambda x: jnp.arccos(1 / x), "arccsc": lambda x: jnp.arcsin(1 / x),
    "arccot": lambda x: jnp.arctan(1 / x),
    "arcsinh": jnp.arcsinh, "arccosh": jnp.arccosh, "arctanh": jnp.arctanh,
    "arcsech": lambda x: jnp.arccosh(1 / x), "arccsch": lambda x: jnp.arcsinh(1 / x),
    "arccoth": lambda x: jnp.arctanh(1 / x),
    "factorial": lambda x: jnp.round(jnp.exp(gammaln(x + 1.0))),
}

_NARY = {
    "plus": lambda xs: _reduce(jnp.add, [_num(x) for x in xs]) if xs else jnp.asarray(0.0),
    "times": lambda xs: _reduce(jnp.multiply, [_num(x) for x in xs]) if xs
    else jnp.asarray(1.0),
    "minus": _minus,
    "divide": lambda xs: _num(xs[0]) / _num(xs[1]),
    "power": _power,
    "log": _log,
    "root": _root,
    "sqrt": lambda xs: jnp.sqrt(_num(xs[0])),
    "piecewise": _piecewise,
    "and": lambda xs: _reduce(jnp.logical_and, [_bool(x) for x in xs]) if xs
    else jnp.asarray(True),
    "or": lambda xs: _reduce(jnp.logical_or, [_bool(x) for x in xs]) if xs
    else jnp.asarray(False),
    "xor": lambda xs: _reduce(jnp.logical_xor, [_bool(x) for x in xs]) if xs
    else jnp.asarray(False),
    "not": lambda xs: jnp.logical_not(_bool(xs[0])),
    "implies": lambda xs: jnp.logical_or(jnp.logical_not(_bool(xs[0])), _bool(xs[1])),
    "eq": lambda xs: _chain(jnp.equal, xs),
    "neq": lambda xs: jnp.not_equal(_num(xs[0]), _num(xs[1])),
    "gt": lambda xs: _chain(jnp.greater, xs),
    "lt": lambda xs: _chain(jnp.less, xs),
    "geq": lambda xs: _chain(jnp.greater_equal, xs),
    "leq": lambda xs: _chain(jnp.less_equal, xs),
    "max": lambda xs: _reduce(jnp.maximum, [_num(x) for x in xs]),
    "min": lambda xs: _reduce(jnp.minimum, [_num(x) for x in xs]),
    "quotient": lambda xs: jnp.trunc(_num(xs[0]) / _num(xs[1])),
    "rem": lambda xs: jnp.fmod(_num(xs[0]), _num(xs[1])),
}


def _describe(key) -> str:
    """A memo key of :class:`Env` in words (for cycle errors)."""
    kind, name = key
    if kind == "d":
        return f"rateOf({name!r})"
    if kind == "r":
        return f"rate of reaction {name!r}"
    return repr(name)


class Locals(dict):
    """The local parameters of a kinetic law (constants that shadow global ids)."""


class Env:
    """One evaluation of a model's symbols.

    ``mode="initial"``: values at the start, from ``p`` (attribute values), initial
    assignments and assignment rules. ``mode="dynamic"``: values at time ``t`` from the
    state vector ``x`` and the constants ``c``. ``history(t)`` (dynamic mode, optional)
    returns the state at an earlier time, for ``delay``.
    """

    def __init__(self, st: Structure, mode: str, *, t, p=None, x=None, c=None,
                 history=None, dtype=None, frozen=None, past=False, externals=()):
        self.st = st
        self.externals = externals  # callables of ("op", "extern", k, j, *inputs) nodes
        self.mode = mode
        self.t = t
        self.p = p
        self.x = x
        self.c = c
        self.history = history
        self.frozen = frozen
        self.past = past  # an initial-mode env for a time before the start
        self.initial = None  # dynamic env without x/c: take values from this initial env
        self.dtype = dtype or jnp.result_type(float)
        self.cache: dict = {}
        self.active: dict = {}  # keys being computed, in the order they were asked for

    # -- symbols -----------------------------------------------------------------------
    def value(self, name: str):
        key = ("v", name)
        return self._memo(key, lambda: self._value(name), (
            f"the definitions of {name!r} are circular (assignment rules / initial "
            "assignments depend on each other)"))

    def _memo(self, key, compute, cycle_message: str):
        """Compute once per evaluation; a request for a value that is being computed is
        a cycle in the model, reported with ``cycle_message`` (or, when the cycle goes
        through a ``rateOf``, as that ``rateOf`` depending on itself) and the path."""
        if key in self.cache:
            return self.cache[key]
        if key in self.active:
            chain = list(self.active)
            loop = chain[chain.index(key):] + [key]
            rate_ofs = [k for k in loop if k[0] == "d"]
            head = (f"rateOf({rate_ofs[0][1]!r}) depends on itself" if rate_ofs
                    else cycle_message)
            path = " -> ".join(_describe(k) for k in loop)
            raise SBMLError(f"{self.st.ir.source}: {head} ({path}).")
        self.active[key] = None
        try:
            out = compute()
        finally:
            self.active.pop(key, None)
        self.cache[key] = out
        return out

    def _value(self, name: str):
        st = self.st
        if name in st.reactions:
            return self.rate(name)
        sym = st.symbols[name]
        if self.mode == "initial":
            if name in st.assigned:
                return _num(self.evaluate(st.assigned[name]))
            if name in st.initial_assignments:
                return _num(self.evaluate(st.initial_assignments[name]))
            v = jnp.asarray(self.p[name], self.dtype)
            if sym.kind == "species" and st.has_size(sym.compartment):
                if sym.initial_is_concentration and sym.only_substance:
                    v = v * self.value(sym.compartment)
                elif not sym.initial_is_concentration and not sym.only_substance:
                    v = v / self.value(sym.compartment)
            return v
        if name in st.assigned:
            return _num(self.evaluate(st.assigned[name]))
        if self.initial is not None:
            return self.initial.value(name)
        if name in st.state_index:
            v = self.x[st.state_index[name]]
            if (sym.kind == "species" and not sym.only_substance
                    and name not in st.stored_as_concentration
                    and st.has_size(sym.compartment)):
                v = v / self.value(sym.compartment)
            return v
        return self.c[st.const_index[name]]

    def stored(self, name: str):
        """The value as stored in the state vector (amount for state species)."""
        v = self.value(name)
        sym = self.st.symbols[name]
        if (sym.kind == "species" and not sym.only_substance
                and name not in self.st.stored_as_concentration
                and self.st.has_size(sym.compartment)):
            v = v * self.value(sym.compartment)
        return v

    def rate(self, rid: str):
        return self._memo(("r", rid), lambda: self._rate(rid),
                          f"the kinetic law of reaction {rid!r} depends on its own rate")

    def _rate(self, rid: str):
        r = self.st.reactions[rid]
        if r.law is None:
            return jnp.zeros((), self.dtype)
        scope = Locals({lid: self._local(rid, lid) for lid in r.locals})
        return _num(self.evaluate(r.law, scope))

    def _local(self, rid, lid):
        return jnp.asarray(self.p[f"{rid}.{lid}"], self.dtype)

    def rates(self):
        return jnp.stack([self.rate(r.id) for r in self.st.ir.reactions]) \
            if self.st.ir.reactions else jnp.zeros((0,), self.dtype)

    # -- derivatives -------------------------------------------------------------------
    def derivative(self):
        """d(stored state)/dt as a vector."""
        key = ("dx",)
        if key in self.cache:
            return self.cache[key]
        st = self.st
        n = len(st.state_ids)
        dx = jnp.zeros((n,), self.dtype)
        if st.ir.reactions and st.reacting_state:
            v = self.rates()
            dx = dx + jnp.asarray(st.numeric_stoichiometry, self.dtype) @ v
            for i, j, sign, tree in st.symbolic_stoichiometry:
                dx = dx.at[i].add(sign * _num(self.evaluate(tree)) * v[j])
            cf = [self._conversion(s) for s in st.state_ids]
            if any(c is not None for c in cf):
                dx = dx * jnp.stack([jnp.ones((), self.dtype) if c is None else c for c in cf])
        for name, tree in st.rate_rules.items():
            i = st.state_index[name]
            dx = dx.at[i].set(_num(self.evaluate(tree)))
        self.cache[key] = dx
        return dx

    def _conversion(self, name):
        sym = self.st.symbols[name]
        if sym.kind != "species":
            return None
        cf = sym.conversion or self.st.ir.conversion
        return None if cf is None else self.value(cf)

    def rate_of(self, name: str):
        """``rateOf(name)``: the time derivative of a symbol's value.

        Only what ``name`` depends on is evaluated: for a species changed by reactions,
        the rates of *its* reactions (the sum of stoichiometry times reaction rate, times
        the conversion factor: SBML L3V2 Core, the rateOf csymbol), so a kinetic law may use
        ``rateOf`` of a species of other reactions. A real cycle (a rate that needs
        ``rateOf`` of a species it changes itself; SBML L3V2 Core section 4.9.5 forbids
        it and libsbml's validation usually reports it first) is an :class:`SBMLError`."""
        return self._memo(("d", name), lambda: self._rate_of(name),
                          f"rateOf({name!r}) depends on itself")

    def _rate_of(self, name):
        st = self.st
        if name in st.reactions:
            raise SBMLUnsupportedError("rateOf of a reaction", name)
        if name in st.assigned:
            return self._rate_of_expression(st.assigned[name])
        if name in st.const_index:
            return jnp.zeros((), self.dtype)
        if name in st.rate_rules:
            return _num(self.evaluate(st.rate_rules[name]))
        d = self._reaction_rate_of(name)
        sym = st.symbols[name]
        if (sym.kind == "species" and not sym.only_substance
                and name not in st.stored_as_concentration
                and st.has_size(sym.compartment)):
            vol = self.value(sym.compartment)
            d = d / vol - self.value(name) * self.rate_of(sym.compartment) / vol
        return d

    def _reaction_rate_of(self, name):
        """d(stored amount)/dt of a state symbol from the reactions that change it
        (zero for one no reaction changes): the row of :meth:`derivative` for ``name``,
        computed from that row's reactions only."""
        st = self.st
        i = st.state_index[name]
        if name not in st.reacting_state:
            return jnp.zeros((), self.dtype)
        d = jnp.zeros((), self.dtype)
        for j, r in enumerate(st.ir.reactions):
            n = st.numeric_stoichiometry[i, j]
            if n != 0:
                d = d + jnp.asarray(n, self.dtype) * self.rate(r.id)
        for k, j, sign, tree in st.symbolic_stoichiometry:
            if k == i:
                rid = st.ir.reactions[j].id
                d = d + sign * _num(self.evaluate(tree)) * self.rate(rid)
        cf = self._conversion(name)
        return d if cf is None else d * cf

    def _rate_of_expression(self, tree):
        from ._ast import names_in

        names = sorted(names_in(tree))
        primals = [self.value(n) for n in names]
        tangents = [jnp.asarray(self.rate_of(n), jnp.result_type(p)) for n, p in
                    zip(names, primals)]
        t = jnp.asarray(self.t, self.dtype)

        def f(t_, *vals):
            scope = dict(zip(names, vals))
            scope[_TIME] = t_
            return _num(self.evaluate(tree, scope, memo=False))

        _, out = jax.jvp(f, (t, *primals), (jnp.ones_like(t), *tangents))
        return out

    # -- expressions -------------------------------------------------------------------
    def evaluate(self, tree, scope=None, memo=True):
        tag = tree[0]
        if tag == "num":
            return jnp.asarray(tree[1], self.dtype)
        if tag == "name":
            name = tree[1]
            if scope is not None and name in scope:
                return scope[name]
            return self.value(name)
        if tag == "op":
            op = tree[1]
            if op == "extern":
                return self._extern(tree, scope, memo)
            if self.frozen is not None:
                if op == "piecewise":
                    return self._piecewise_frozen(tree, scope, memo)
                key = (op, tree[2]) if op in ("floor", "ceiling") else None
                if key is not None and key in self.frozen:
                    return self.frozen[key]
            args = [self.evaluate(k, scope, memo) for k in tree[2:]]
            if op in _UNARY:
                return _UNARY[op](_num(args[0]))
            return _NARY[op](args)
        if tag == "call":
            # inline: the body with the argument trees substituted, in the caller's scope
            return self.evaluate(self.st.inline(tree), scope, memo)
        if tag == "time":
            if scope is not None and _TIME in scope:
                return scope[_TIME]
            return jnp.asarray(self.t, self.dtype)
        if tag == "avogadro":
            return jnp.asarray(AVOGADRO, self.dtype)
        if tag == "true":
            return jnp.asarray(True)
        if tag == "false":
            return jnp.asarray(False)
        if tag == "nan":
            return jnp.asarray(math.nan, self.dtype)
        if tag == "rateOf":
            arg = tree[1]
            if arg[0] != "name":
                raise SBMLUnsupportedError("rateOf of an expression (not a symbol)")
            if isinstance(scope, Locals) and arg[1] in scope:
                return jnp.zeros((), self.dtype)  # a local parameter: constant
            if self.mode == "initial":
                return self._initial_rate_of(arg[1])
            return self.rate_of(arg[1])
        if tag == "delay":
            return self._delay(tree, scope)
        raise SBMLError(f"unknown expression node {tag!r}")

    def _extern(self, tree, scope, memo):
        """``("op", "extern", ("num", k), ("num", j), *inputs)``: output ``j`` of the
        external function ``k`` (a neural network set by PEtab SciML) of the inputs'
        values; evaluated once per evaluation for the same inputs."""
        k, j = int(tree[2][1]), int(tree[3][1])
        if k >= len(self.externals):
            raise SBMLError(f"{self.st.ir.source}: an external function (#{k}) is used but "
                            "none is attached to the model.")

        def compute():
            xs = [_num(self.evaluate(a, scope, memo)) for a in tree[4:]]
            x = jnp.stack([jnp.asarray(v, self.dtype) for v in xs]) if xs \
                else jnp.zeros((0,), self.dtype)
            return jnp.ravel(self.externals[k](x))

        if scope is not None or not memo:
            return compute()[j]
        return self._memo(("x", (k, tree[4:])), compute,
                          "an external function depends on its own output")[j]

    def _piecewise_frozen(self, tree, scope, memo):
        kids = tree[2:]
        xs = []
        for i, k in enumerate(kids):
            is_cond = i % 2 == 1 and not (len(kids) % 2 == 1 and i == len(kids) - 1)
            if is_cond and ("cond", k) in self.frozen:
                xs.append(self.frozen[("cond", k)])
            else:
                xs.append(self.evaluate(k, scope, memo))
        return _piecewise(xs)

    def _initial_rate_of(self, name):
        """rateOf at the start (initial assignments): the derivative at the initial
        state. Before the start (a delayed expression) the state is at rest: 0."""
        if self.past:
            return jnp.zeros((), self.dtype)
        dyn = Env(self.st, "dynamic", t=self.t, p=self.p, dtype=self.dtype,
                  externals=self.externals)
        dyn.initial = self  # values come lazily from the initial definitions
        return dyn.rate_of(name)

    def _before_start(self, tree, scope, t_past):
        # Before the start, variables follow their initial definitions evaluated at the
        # earlier time (initial assignments may depend on time) and do not change.
        past = Env(self.st, "initial", t=t_past, p=self.p, dtype=self.dtype, past=True,
                   externals=self.externals)
        return _num(past.evaluate(tree, scope))

    def _delay(self, tree, scope):
        tau = _num(self.evaluate(tree[2], scope))
        t_past = jnp.asarray(self.t, self.dtype) - tau
        if self.mode == "initial":
            return self._before_start(tree[1], scope, t_past)
        if self.history is None:
            raise SBMLUnsupportedError("delay() outside simulate_sbml (no history)")
        x_past = self.history(t_past)
        past = Env(self.st, "dynamic", t=t_past, p=self.p, x=x_past, c=self.c,
                   history=self.history, dtype=self.dtype, externals=self.externals)
        now = _num(self.evaluate(tree[1], scope))
        before = self._before_start(tree[1], scope, t_past)
        value = jnp.where(t_past < self.history.t0, before, _num(past.evaluate(tree[1], scope)))
        return jnp.where(tau <= 0, now, value)
