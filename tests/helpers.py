"""Small helpers shared by tests."""

from __future__ import annotations

import jax
import numpy as np


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8) -> bool:
    """True when two pytrees have the same structure and allclose leaves."""
    if jax.tree_util.tree_structure(x) != jax.tree_util.tree_structure(y):
        return False
    return all(
        np.allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)
        for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y))
    )


def central_difference(f, x: np.ndarray, h: float | np.ndarray = 1e-6) -> np.ndarray:
    """Central finite-difference gradient of a scalar function of a vector."""
    x = np.asarray(x, dtype=float)
    h = np.broadcast_to(np.asarray(h, dtype=float), x.shape)
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h.flat[i]
        g.flat[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h.flat[i])
    return g


def peak_times(t, x) -> np.ndarray:
    """Peak times by a parabola through each local maximum (independent of jaxcell)."""
    t = np.asarray(t)
    x = np.asarray(x)
    out = []
    for i in range(1, len(x) - 1):
        if x[i] > x[i - 1] and x[i] >= x[i + 1]:
            A = np.vstack([t[i - 1 : i + 2] ** 2, t[i - 1 : i + 2], np.ones(3)]).T
            a, b, _ = np.linalg.solve(A, x[i - 1 : i + 2])
            out.append(-b / (2 * a))
    return np.asarray(out)
