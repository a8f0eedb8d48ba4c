"""Candidate-term libraries for sparse identification of dynamics.

A library maps the state vector ``x`` (one sample, shape ``(d,)``, or many, shape
``(n, d)``) to the vector of candidate terms :math:`\\Theta(x)`. Every library is
vectorised (no Python loop over terms in the trace), knows the names of its terms for a
given list of variable names, and writes each term as an SBML Level 3 infix formula
(the same text, so that a discovered model prints and exports identically).
Libraries combine with ``+`` (concatenation) and ``*`` (all pairwise products).
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import DiscoveryError


def _num(v: float) -> str:
    """A number as short, exact-enough text for a term name."""
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _select(owner: str, inputs: tuple[str, ...] | None, variables: Sequence[str]
            ) -> np.ndarray:
    """Indices of ``inputs`` among ``variables`` (all variables when ``inputs`` is
    None)."""
    variables = tuple(variables)
    if inputs is None:
        return np.arange(len(variables))
    missing = [v for v in inputs if v not in variables]
    if missing:
        raise DiscoveryError(
            f"{owner}: inputs {missing} are not among the variables {list(variables)}."
        )
    return np.asarray([variables.index(v) for v in inputs], dtype=int)


def _power(name: str, k: int) -> str:
    return name if k == 1 else f"{name}^{k}"


class AbstractLibrary(eqx.Module):
    """Base class of candidate-term libraries.

    Subclasses implement :meth:`names` (the terms as formulas, for the given variable
    names) and :meth:`evaluate` (the terms of one state vector). Calling a library on
    an array of shape ``(n, d)`` evaluates every row.
    """

    @abc.abstractmethod
    def names(self, variables: Sequence[str]) -> tuple[str, ...]:
        """The terms, as SBML L3 infix formulas in the variable names."""

    @abc.abstractmethod
    def evaluate(self, x: Array, variables: Sequence[str]) -> Array:
        """The terms of one state vector ``x`` (shape ``(d,)``); returns ``(m,)``."""

    def __call__(self, x: ArrayLike, variables: Sequence[str]) -> Array:
        """:math:`\\Theta(x)`: shape ``(m,)`` for one state, ``(n, m)`` for ``n``."""
        x = jnp.asarray(x, dtype=float)
        variables = tuple(variables)
        if x.ndim not in (1, 2) or x.shape[-1] != len(variables):
            raise DiscoveryError(
                f"{type(self).__name__}: expected states of shape (d,) or (n, d) with "
                f"d = {len(variables)} variables {list(variables)}; got shape {x.shape}."
            )
        return _evaluate(self, x, variables)

    def __add__(self, other: AbstractLibrary) -> ConcatLibrary:
        return ConcatLibrary((self, other))

    def __mul__(self, other: AbstractLibrary) -> TensorLibrary:
        return TensorLibrary(self, other)


class PolynomialLibrary(AbstractLibrary):
    """All monomials of the variables up to a total degree.

    Terms are ordered by degree, and within a degree as
    ``itertools.combinations_with_replacement`` (the order of scikit-learn's and
    PySINDy's polynomial features): ``1, x, y, x^2, x*y, y^2, ...``.

    Arguments:
        degree: the highest total degree.
        include_bias: include the constant term ``1``.
        interaction_only: only products of distinct variables (no powers above 1).
        inputs: the variables the monomials are built from (default: all).

    Examples:
        >>> import jaxcell as jc
        >>> jc.discovery.PolynomialLibrary(2).names(["x", "y"])
        ('1', 'x', 'y', 'x^2', 'x*y', 'y^2')
    """

    degree: int = eqx.field(static=True)
    include_bias: bool = eqx.field(static=True, default=True)
    interaction_only: bool = eqx.field(static=True, default=False)
    inputs: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if int(self.degree) != self.degree or self.degree < 0:
            raise DiscoveryError(
                f"PolynomialLibrary: degree must be a non-negative integer; got "
                f"{self.degree!r}."
            )

    def _exponents(self, variables: Sequence[str]) -> np.ndarray:
        idx = _select("PolynomialLibrary", self.inputs, variables)
        rows = []
        first = 0 if self.include_bias else 1
        for deg in range(first, int(self.degree) + 1):
            combos = (itertools.combinations(idx, deg) if self.interaction_only
                      else itertools.combinations_with_replacement(idx, deg))
            for combo in combos:
                e = np.zeros(len(variables), dtype=int)
                for i in combo:
                    e[i] += 1
                rows.append(e)
        return np.asarray(rows, dtype=int).reshape(-1, len(variables))

    def names(self, variables):
        out = []
        for e in self._exponents(variables):
            factors = [_power(v, int(k)) for v, k in zip(variables, e) if k]
            out.append("*".join(factors) if factors else "1")
        return tuple(out)

    def evaluate(self, x, variables):
        e = self._exponents(variables)
        if e.size == 0:
            return jnp.zeros((0,), x.dtype)
        # integer powers by repeated products: exact, and finite at x = 0
        return jnp.prod(jnp.where(e > 0, x[None, :] ** jnp.asarray(e), 1.0), axis=1)


class FourierLibrary(AbstractLibrary):
    """``sin(k*x)`` and ``cos(k*x)`` for every variable and ``k = 1..n_frequencies``.

    Examples:
        >>> import jaxcell as jc
        >>> jc.discovery.FourierLibrary(1).names(["x"])
        ('sin(x)', 'cos(x)')
    """

    n_frequencies: int = eqx.field(static=True, default=1)
    include_sin: bool = eqx.field(static=True, default=True)
    include_cos: bool = eqx.field(static=True, default=True)
    inputs: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.n_frequencies < 1 or not (self.include_sin or self.include_cos):
            raise DiscoveryError(
                "FourierLibrary: need n_frequencies >= 1 and sin or cos terms; got "
                f"n_frequencies={self.n_frequencies}, include_sin={self.include_sin}, "
                f"include_cos={self.include_cos}."
            )

    def _table(self, variables):
        idx = _select("FourierLibrary", self.inputs, variables)
        rows = []
        for i in idx:
            for k in range(1, self.n_frequencies + 1):
                if self.include_sin:
                    rows.append((i, k, 0))
                if self.include_cos:
                    rows.append((i, k, 1))
        return np.asarray(rows, dtype=int).reshape(-1, 3)

    def names(self, variables):
        out = []
        for i, k, c in self._table(variables):
            arg = variables[i] if k == 1 else f"{k}*{variables[i]}"
            out.append(f"{'cos' if c else 'sin'}({arg})")
        return tuple(out)

    def evaluate(self, x, variables):
        tab = self._table(variables)
        arg = jnp.asarray(tab[:, 1], x.dtype) * x[jnp.asarray(tab[:, 0])]
        return jnp.where(jnp.asarray(tab[:, 2]) == 1, jnp.cos(arg), jnp.sin(arg))


class HillLibrary(AbstractLibrary):
    """Saturating terms of biochemistry, one per variable, with given constants.

    - activation: :math:`x^n / (K^n + x^n)` (Michaelis-Menten for ``n = 1``);
    - repression: :math:`K^n / (K^n + x^n)`.

    ``K`` and ``n`` are fixed (the regression is linear in the coefficients); give
    several libraries, or a grid of ``K``, to search over them.

    Arguments:
        K: the half-saturation constant (one value, or one per input).
        n: the Hill coefficient (one value, or one per input).
        kind: ``"activation"``, ``"repression"`` or ``"both"``.
        inputs: the variables (default: all).

    Examples:
        >>> import jaxcell as jc
        >>> jc.discovery.HillLibrary(K=2.0, n=1).names(["s"])
        ('s/(2+s)',)
    """

    K: tuple[float, ...] | float = eqx.field(static=True)
    n: tuple[float, ...] | float = eqx.field(static=True, default=1.0)
    kind: str = eqx.field(static=True, default="activation")
    inputs: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.kind not in ("activation", "repression", "both"):
            raise DiscoveryError(
                f"HillLibrary: kind must be 'activation', 'repression' or 'both'; got "
                f"{self.kind!r}."
            )
        for what, v in (("K", self.K), ("n", self.n)):
            vals = np.atleast_1d(np.asarray(v, dtype=float))
            if not np.all(np.isfinite(vals)) or np.any(vals <= 0):
                raise DiscoveryError(f"HillLibrary: {what} must be positive and finite; "
                                     f"got {v!r}.")

    def _consts(self, variables):
        idx = _select("HillLibrary", self.inputs, variables)
        K = np.broadcast_to(np.asarray(self.K, float), idx.shape) if np.ndim(
            self.K) == 0 else np.asarray(self.K, float)
        n = np.broadcast_to(np.asarray(self.n, float), idx.shape) if np.ndim(
            self.n) == 0 else np.asarray(self.n, float)
        if K.shape != idx.shape or n.shape != idx.shape:
            raise DiscoveryError(
                f"HillLibrary: K and n need one value or one per input ({len(idx)}); got "
                f"K={self.K!r}, n={self.n!r}."
            )
        return idx, K, n

    def _kinds(self):
        return {"activation": (0,), "repression": (1,), "both": (0, 1)}[self.kind]

    def names(self, variables):
        idx, K, n = self._consts(variables)
        out = []
        for i, k, m in zip(idx, K, n):
            v = variables[i]
            xn = v if m == 1 else f"{v}^{_num(m)}"
            kn = _num(k) if m == 1 else f"{_num(k)}^{_num(m)}"
            for kind in self._kinds():
                top = xn if kind == 0 else kn
                out.append(f"{top}/({kn}+{xn})")
        return tuple(out)

    def evaluate(self, x, variables):
        idx, K, n = self._consts(variables)
        xi = x[jnp.asarray(idx)]
        xn = jnp.abs(xi) ** jnp.asarray(n) * jnp.sign(xi) ** (np.asarray(n) % 2 == 1)
        kn = jnp.asarray(K**n)
        parts = [xn / (kn + xn) if kind == 0 else kn / (kn + xn) for kind in self._kinds()]
        return jnp.stack(parts, axis=1).reshape(-1)


class MassActionLibrary(AbstractLibrary):
    """Mass-action rate terms from species names: every product of up to ``order``
    species (with repeats, ``A^2`` for ``2 A``), and a zero-order source ``1``.

    It is a :class:`PolynomialLibrary` over the named species; the discovered
    coefficient of ``A*B`` in ``dC/dt`` is then a mass-action rate constant times the
    net stoichiometry of ``C``.

    Examples:
        >>> import jaxcell as jc
        >>> jc.discovery.MassActionLibrary(("A", "B"), order=2).names(["A", "B", "C"])
        ('1', 'A', 'B', 'A^2', 'A*B', 'B^2')
    """

    species: tuple[str, ...] = eqx.field(static=True)
    order: int = eqx.field(static=True, default=2)
    include_source: bool = eqx.field(static=True, default=True)

    def _poly(self):
        return PolynomialLibrary(self.order, include_bias=self.include_source,
                                 inputs=tuple(self.species))

    def names(self, variables):
        return self._poly().names(variables)

    def evaluate(self, x, variables):
        return self._poly().evaluate(x, variables)


class CustomLibrary(AbstractLibrary):
    """User functions applied to every variable (``arity=1``) or to every combination
    of ``arity`` distinct variables.

    Arguments:
        functions: JAX-traceable functions of ``arity`` arrays.
        formulas: one template per function, in SBML L3 infix syntax, with ``{0}``,
            ``{1}``, ... standing for the variables, e.g. ``"exp(-{0})"``. It names the
            term and is what SBML export writes.
        arity: how many variables each function takes.
        inputs: the variables (default: all).

    Examples:
        >>> import jax.numpy as jnp, jaxcell as jc
        >>> lib = jc.discovery.CustomLibrary([jnp.exp], ["exp({0})"])
        >>> lib.names(["x", "y"])
        ('exp(x)', 'exp(y)')
    """

    functions: tuple[Callable, ...] = eqx.field(static=True)
    formulas: tuple[str, ...] = eqx.field(static=True)
    arity: int = eqx.field(static=True, default=1)
    inputs: tuple[str, ...] | None = eqx.field(static=True, default=None)

    def __init__(self, functions: Sequence[Callable], formulas: Sequence[str], *,
                 arity: int = 1, inputs: Sequence[str] | None = None):
        self.functions = tuple(functions)
        self.formulas = tuple(formulas)
        self.arity = int(arity)
        self.inputs = None if inputs is None else tuple(inputs)
        if len(self.functions) != len(self.formulas) or not self.functions:
            raise DiscoveryError(
                f"CustomLibrary: give one formula per function; got "
                f"{len(self.functions)} functions and {len(self.formulas)} formulas."
            )
        if self.arity < 1:
            raise DiscoveryError(f"CustomLibrary: arity must be >= 1; got {arity}.")

    def _combos(self, variables):
        idx = _select("CustomLibrary", self.inputs, variables)
        return list(itertools.combinations(idx, self.arity))

    def names(self, variables):
        return tuple(f.format(*(variables[i] for i in c))
                     for f in self.formulas for c in self._combos(variables))

    def evaluate(self, x, variables):
        combos = np.asarray(self._combos(variables), dtype=int).reshape(-1, self.arity)
        args = [x[jnp.asarray(combos[:, a])] for a in range(self.arity)]
        return jnp.concatenate([jnp.broadcast_to(f(*args), combos.shape[:1])
                                for f in self.functions])


class ConcatLibrary(AbstractLibrary):
    """The terms of several libraries, one after the other (``lib_a + lib_b``)."""

    libraries: tuple[AbstractLibrary, ...]

    def __init__(self, libraries: Sequence[AbstractLibrary]):
        flat = []
        for lib in libraries:
            if not isinstance(lib, AbstractLibrary):
                raise DiscoveryError(f"ConcatLibrary: expected libraries; got {lib!r}.")
            flat.extend(lib.libraries if isinstance(lib, ConcatLibrary) else [lib])
        self.libraries = tuple(flat)

    def names(self, variables):
        return tuple(n for lib in self.libraries for n in lib.names(variables))

    def evaluate(self, x, variables):
        return jnp.concatenate([lib.evaluate(x, variables) for lib in self.libraries])


def _paren(name: str) -> str:
    simple = all(c.isalnum() or c in "_^.*()" for c in name) and "/" not in name
    return name if simple else f"({name})"


class TensorLibrary(AbstractLibrary):
    """Every product of a term of ``left`` with a term of ``right`` (``lib_a * lib_b``);
    constant factors ``1`` are dropped from the names."""

    left: AbstractLibrary
    right: AbstractLibrary

    def names(self, variables):
        out = []
        for a in self.left.names(variables):
            for b in self.right.names(variables):
                if a == "1" or b == "1":
                    out.append(b if a == "1" else a)
                else:
                    out.append(f"{_paren(a)}*{_paren(b)}")
        return tuple(out)

    def evaluate(self, x, variables):
        a = self.left.evaluate(x, variables)
        b = self.right.evaluate(x, variables)
        return (a[:, None] * b[None, :]).reshape(-1)


def library_names(library: AbstractLibrary, variables: Sequence[str]) -> tuple[str, ...]:
    """The term names of ``library`` for ``variables``, checked to be unique."""
    if not isinstance(library, AbstractLibrary):
        raise DiscoveryError(
            f"expected a library (PolynomialLibrary, HillLibrary, ...); got {library!r}."
        )
    names = library.names(tuple(variables))
    seen, dup = set(), []
    for n in names:
        (dup.append(n) if n in seen else seen.add(n))
    if dup:
        raise DiscoveryError(
            f"the library has repeated terms {sorted(set(dup))}; remove the overlap "
            f"(e.g. the constant in both parts of a concatenation)."
        )
    if not names:
        raise DiscoveryError("the library has no terms for variables "
                             f"{list(variables)}.")
    return names


@eqx.filter_jit
def _evaluate(library, x, variables):
    if x.ndim == 1:
        return library.evaluate(x, variables)
    return jax.vmap(lambda row: library.evaluate(row, variables))(x)
