"""Conservation laws: the left null space of the stoichiometry matrix."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

EXACT_MAX_ENTRIES = 200_000


@dataclasses.dataclass(frozen=True)
class ConservationLaw:
    """``sum(coefficients[s] * x[s]) == total`` for all time.

    Attributes:
        coefficients: nonzero coefficients by species name.
        total: the conserved value, evaluated at the initial state.
    """

    coefficients: dict[str, float]
    total: float

    def __str__(self) -> str:
        terms = []
        for s, c in self.coefficients.items():
            if c == 1:
                terms.append(s)
            elif c == -1:
                terms.append(f"-{s}")
            else:
                terms.append(f"{c:g} {s}")
        lhs = " + ".join(terms).replace("+ -", "- ")
        return f"{lhs} = {self.total:g}"

    def evaluate(self, x: np.ndarray, species: Sequence[str]) -> np.ndarray:
        """The conserved combination for states ``x`` (last axis: species)."""
        c = np.array([self.coefficients.get(s, 0.0) for s in species])
        return np.asarray(x) @ c


def _rref_exact(a: list[list[Fraction]]) -> tuple[list[list[Fraction]], list[int]]:
    rows, cols = len(a), len(a[0]) if a else 0
    pivots: list[int] = []
    r = 0
    for c in range(cols):
        piv = next((i for i in range(r, rows) if a[i][c] != 0), None)
        if piv is None:
            continue
        a[r], a[piv] = a[piv], a[r]
        inv = 1 / a[r][c]
        a[r] = [v * inv for v in a[r]]
        for i in range(rows):
            if i != r and a[i][c] != 0:
                f = a[i][c]
                a[i] = [vi - f * vr for vi, vr in zip(a[i], a[r])]
        pivots.append(c)
        r += 1
        if r == rows:
            break
    return a, pivots


def left_null_space(N: np.ndarray) -> np.ndarray:
    """A basis (rows) of ``{c : c @ N = 0}`` in reduced row-echelon form.

    Exact rational arithmetic for integer-valued matrices of moderate size; an SVD
    otherwise.
    """
    n_s, n_r = N.shape
    if n_r == 0:
        return np.eye(n_s)
    integer = np.allclose(N, np.round(N)) and N.size <= EXACT_MAX_ENTRIES
    if integer:
        # Null space of N^T: rref of N^T, free columns give basis vectors.
        a = [[Fraction(int(round(v))) for v in row] for row in N.T]
        a, pivots = _rref_exact(a)
        free = [j for j in range(n_s) if j not in pivots]
        basis = []
        for f in free:
            vec = [Fraction(0)] * n_s
            vec[f] = Fraction(1)
            for i, pc in enumerate(pivots):
                vec[pc] = -a[i][f]
            basis.append(vec)
        if not basis:
            return np.zeros((0, n_s))
        b, _ = _rref_exact(basis)
        return np.array([[float(v) for v in row] for row in b if any(row)])
    u, s, _ = np.linalg.svd(N)
    tol = max(N.shape) * np.finfo(float).eps * (s[0] if s.size else 1.0)
    rank = int((s > tol).sum())
    basis = u[:, rank:].T
    if basis.size == 0:
        return np.zeros((0, n_s))
    # Reduced row-echelon form for readability.
    b = basis.copy()
    r = 0
    for c in range(n_s):
        if r == b.shape[0]:
            break
        piv = r + int(np.argmax(np.abs(b[r:, c])))
        if abs(b[piv, c]) < 1e-10:
            continue
        b[[r, piv]] = b[[piv, r]]
        b[r] /= b[r, c]
        for i in range(b.shape[0]):
            if i != r:
                b[i] -= b[i, c] * b[r]
        r += 1
    b[np.abs(b) < 1e-12] = 0.0
    return b


def conservation_laws(
    N: np.ndarray, species: Sequence[str], x0: np.ndarray
) -> list[ConservationLaw]:
    """Conservation laws of a network with stoichiometry ``N`` and initial state ``x0``."""
    out = []
    for row in left_null_space(np.asarray(N, dtype=float)):
        coeffs = {s: float(c) for s, c in zip(species, row) if c != 0}
        out.append(ConservationLaw(coeffs, float(row @ x0)))
    return out
