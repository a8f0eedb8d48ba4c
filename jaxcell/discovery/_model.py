"""A discovered model as an ordinary jaxcell process.

:class:`SparseModel` computes :math:`\\dot x_i = \\sum_j \\xi_{ij}\\,\\theta_j(x)`
(or, from an implicit fit, the ratio of two such sums) with the library that found it.
Its kept coefficients are named parameters (``"x:x*y"``: the coefficient of ``x*y`` in
the equation of ``x``), so :func:`jaxcell.inference.fit` refines them and NUTS puts
intervals on them; it composes, runs per cell, prints as equations and writes SBML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._custom_types import Path, PathLike
from .._errors import ModelError
from .._process import AbstractContinuousProcess, Ports, as_parameter_array, replace_in_dict
from .._state import StateView, Var, as_path, path_str
from ._library import AbstractLibrary, library_names


def _fmt(v: float, digits: int) -> str:
    return f"{v:.{digits}g}"


def _sum_text(coefs: Sequence[float], terms: Sequence[str], digits: int) -> str:
    parts = []
    for c, t in zip(coefs, terms):
        mag = _fmt(abs(c), digits)
        body = mag if t == "1" else (t if mag == "1" else f"{mag}*{t}")
        parts.append(("- " if c < 0 else "+ ") + body)
    if not parts:
        return "0"
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


class SparseModel(AbstractContinuousProcess):
    """Equations found by sparse regression, as a process.

    Either it **owns** its variables (``x0`` given: a standalone discovered model,
    variables at ``"<scale>/<name>/<variable>"``), or it **changes** variables owned
    by other processes (``reads`` and ``changes`` given: the stand-in for a neural term
    of a hybrid model).

    Arguments:
        name: the process name.
        library: the library the coefficients refer to.
        coefficients: ``(targets, terms)``; zeros are terms left out.
        variables: the library's input names, in order.
        x0: ``{variable: initial value}`` (owning form; the targets are the variables).
        reads: ``{path: [names]}``, the state paths whose values (ravelled, in order)
            are the library inputs (coupled form).
        changes: ``{path: [names]}``, the paths whose derivatives receive the targets.
        denominator: ``(targets, terms)`` for a rational right-hand side
            :math:`N_i(x)/D_i(x)` (from :class:`SINDyPI`); ``None`` for a linear one.
        scale: the scale of owned variables.

    The parameters are the nonzero coefficients, named ``"<target>:<term>"`` (and
    ``"<target>:den:<term>"`` for the denominator). The initial values of an owning
    model are the array field ``y0``: fit them with
    ``jaxcell.inference.Weights("<name>.y0")``.
    """

    name: str
    library: AbstractLibrary
    coeffs: dict[str, Array]
    y0: dict[str, Array]
    variables: tuple[str, ...] = eqx.field(static=True)
    targets: tuple[str, ...] = eqx.field(static=True)
    terms: tuple[str, ...] = eqx.field(static=True)
    index: tuple[tuple[str, int, int, int], ...] = eqx.field(static=True)
    reads_: tuple[tuple[Path, int], ...] = eqx.field(static=True)
    changes_: tuple[tuple[Path, int], ...] = eqx.field(static=True)
    rational: bool = eqx.field(static=True)
    scale: str = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        library: AbstractLibrary,
        coefficients: ArrayLike,
        *,
        variables: Sequence[str],
        x0: Mapping[str, ArrayLike] | None = None,
        reads: Mapping[PathLike, Sequence[str]] | None = None,
        changes: Mapping[PathLike, Sequence[str]] | None = None,
        denominator: ArrayLike | None = None,
        scale: str = "molecular",
    ):
        owner = f"SparseModel {name!r}"
        self.name = name
        self.library = library
        self.variables = tuple(variables)
        self.terms = library_names(library, self.variables)
        self.scale = scale
        if (x0 is None) == (reads is None or changes is None):
            raise ModelError(f"{owner}: give either x0 (it owns its variables) or both "
                             f"reads and changes (it changes other processes' variables).")
        if x0 is not None:
            missing = set(self.variables) - set(x0)
            if missing or set(x0) - set(self.variables):
                raise ModelError(f"{owner}: x0 must give exactly the variables "
                                 f"{list(self.variables)}; got {sorted(x0)}.")
            self.y0 = {v: as_parameter_array(owner, v, x0[v]) for v in self.variables}
            for v, val in self.y0.items():
                if val.shape != ():
                    raise ModelError(f"{owner}: x0[{v!r}] must be a scalar; got shape "
                                     f"{val.shape}.")
            self.targets = self.variables
            self.reads_ = ()
            self.changes_ = ()
        else:
            self.y0 = {}
            r_names = [n for ns in reads.values() for n in ns]
            if tuple(r_names) != self.variables:
                raise ModelError(f"{owner}: the names in reads {r_names} must be the "
                                 f"variables {list(self.variables)}, in order.")
            self.reads_ = tuple((as_path(p), len(ns)) for p, ns in reads.items())
            self.changes_ = tuple((as_path(p), len(ns)) for p, ns in changes.items())
            self.targets = tuple(n for ns in changes.values() for n in ns)
        k, m = len(self.targets), len(self.terms)
        num = np.asarray(coefficients, dtype=float)
        if num.shape != (k, m):
            raise ModelError(f"{owner}: coefficients must have shape (targets, terms) = "
                             f"({k}, {m}) for targets {list(self.targets)}; got {num.shape}.")
        self.rational = denominator is not None
        den = None if denominator is None else np.asarray(denominator, dtype=float)
        if den is not None and den.shape != (k, m):
            raise ModelError(f"{owner}: denominator must have shape ({k}, {m}); got "
                             f"{den.shape}.")
        if not np.all(np.isfinite(num)) or (den is not None and not np.all(np.isfinite(den))):
            raise ModelError(f"{owner}: the coefficients hold NaN or infinite values.")
        if den is not None and np.any(np.all(den == 0, axis=1)):
            i = int(np.flatnonzero(np.all(den == 0, axis=1))[0])
            raise ModelError(f"{owner}: the denominator of {self.targets[i]!r} is zero.")
        coeffs, index = {}, []
        for part, mat in ((0, num), (1, den)):
            if mat is None:
                continue
            for i, j in zip(*np.nonzero(mat)):
                key = (f"{self.targets[i]}:{self.terms[j]}" if part == 0
                       else f"{self.targets[i]}:den:{self.terms[j]}")
                coeffs[key] = as_parameter_array(owner, key, mat[i, j])
                index.append((key, part, int(i), int(j)))
        self.coeffs = coeffs
        self.index = tuple(index)

    # -- process interface ------------------------------------------------------------
    def _path(self, var: str) -> Path:
        return (self.scale, self.name, var)

    def ports(self) -> Ports:
        if self.y0:
            return Ports(owns={self._path(v): Var(()) for v in self.variables})
        reads = {p: Var((n,)) if n > 1 else None for p, n in self.reads_}
        reads.update({p: None for p, _ in self.changes_})
        return Ports(reads=reads, changes=tuple(p for p, _ in self.changes_))

    def initial_values(self) -> dict[Path, Array]:
        return {self._path(v): x for v, x in self.y0.items()}

    def parameters(self) -> dict[str, Array]:
        return dict(self.coeffs)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> SparseModel:
        new = replace_in_dict(f"SparseModel {self.name!r}", self.coeffs, values)
        return eqx.tree_at(lambda s: s.coeffs, self, new)

    def coefficient_matrices(self) -> tuple[Array, Array | None]:
        """``(numerator, denominator)`` as ``(targets, terms)`` arrays (denominator
        ``None`` for a linear model)."""
        k, m = len(self.targets), len(self.terms)
        mats = [jnp.zeros((k, m)), jnp.zeros((k, m)) if self.rational else None]
        for key, part, i, j in self.index:
            mats[part] = mats[part].at[i, j].set(self.coeffs[key])
        return mats[0], mats[1]

    def right_hand_side(self, x: Array) -> Array:
        """The targets' derivatives for library inputs ``x`` (shape ``(d,)``)."""
        theta = self.library.evaluate(x, self.variables)
        num, den = self.coefficient_matrices()
        out = num @ theta
        return out if den is None else out / (den @ theta)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        if self.y0:
            x = jnp.stack([state[self._path(v)] for v in self.variables])
            dx = self.right_hand_side(x)
            return {self._path(v): dx[i] for i, v in enumerate(self.variables)}
        x = jnp.concatenate([jnp.reshape(state[p], (-1,)) for p, _ in self.reads_])
        dx = self.right_hand_side(x)
        out, k = {}, 0
        for p, n in self.changes_:
            out[p] = jnp.reshape(dx[k: k + n], jnp.shape(state[p]))
            k += n
        return out

    # -- reading it back ---------------------------------------------------------------
    def equations(self, digits: int = 6) -> list[str]:
        """The model as text, one line per target: ``d<target>/dt = ...``."""
        num, den = (None if m is None else np.asarray(m) for m in self.coefficient_matrices())
        lines = []
        for i, tgt in enumerate(self.targets):
            keep = np.flatnonzero(num[i])
            top = _sum_text(num[i, keep], [self.terms[j] for j in keep], digits)
            if den is not None:
                keep_d = np.flatnonzero(den[i])
                bottom = _sum_text(den[i, keep_d], [self.terms[j] for j in keep_d], digits)
                top = f"({top}) / ({bottom})"
            lines.append(f"d{tgt}/dt = {top}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.equations())

    @property
    def paths(self) -> dict[str, str]:
        """``{variable: state path}`` of the owned variables."""
        return {v: path_str(self._path(v)) for v in self.y0}
