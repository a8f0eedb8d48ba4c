"""Inverse of a small dense matrix that vectorises under ``jax.vmap`` on CPU.

``jax.lax.linalg.lu`` and ``triangular_solve`` lower on CPU to LAPACK calls; under
``jax.vmap`` XLA runs one call per batch member, and for the 5-15 state variables of a
typical reaction network that fixed per-call cost was more than half of a batched
Rosenbrock step. :func:`small_inv` keeps LAPACK for one matrix (where it is fastest) and,
through a ``custom_vmap`` rule, inverts a *batch* of small matrices on CPU by Gauss-Jordan
elimination with partial pivoting (:func:`gauss_jordan_inv`) written with ``argmax``,
gathers, ``where`` and rank-1 updates, so the whole batch is eliminated by a few fused
array operations per column instead of one library call per member.

Algorithm (in place, "exchange" form; W. H. Press et al., *Numerical Recipes*, 3rd ed.,
Cambridge (2007), Section 2.1, ``gaussj``, here with row (partial) pivoting and
without physical row swaps): for each column ``k`` pick the not yet used row ``p`` with
the largest ``|m[p, k]|`` and pivot on ``(p, k)``::

    m[p, :] <- m[p, :] / m[p, k],   m[p, k] <- 1 / m[p, k]
    m[i, :] <- m[i, :] - m[i, k] m[p, :],   m[i, k] <- -m[i, k] / m[p, k]   (i != p)

Each pivot exchanges the roles of ``x_k`` and ``y_p`` in ``y = A x``; after ``n`` pivots
the table ``T`` gives ``x_k = sum_j T[p_k, j] y_{p_j}``, so ``inv(A)[k, m] = T[p_k,
q_m]`` with ``q`` the inverse permutation of ``p``: one gather at the end. The pivots
are those of LU with partial pivoting on the same matrix, and Gauss-Jordan elimination
with partial pivoting is forward stable: its error ``|X - inv(A)|`` is bounded like that
of an inverse from LU factors (N. J. Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., SIAM (2002), Section 14.4). ``tests/test_small_linalg.py`` checks
the residual ``||A X - I||`` against ``cond(A)`` and against LAPACK's.

A singular matrix meets a zero pivot: the result holds ``inf``/``nan``, as the
LAPACK-based inverse does; in a Rosenbrock step that makes the error estimate
non-finite and the step is rejected.

Derivatives use ``d inv(A) = -inv(A) dA inv(A)`` (a ``custom_jvp``), not the pivoting,
so forward and reverse mode work for both paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

# Batches of matrices with at most this many rows use Gauss-Jordan elimination; larger
# ones use LAPACK per member. Measured for 1,000 members on a 2-core CPU: Gauss-Jordan
# 1.3-2.5x faster per member for n = 6-16, slower for n = 20 (the batch no longer fits
# in cache and the O(n^3) arithmetic, not the per-call cost, dominates).
GAUSS_JORDAN_MAX_N = 16


def lu_inv(a: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """Inverse from LAPACK's LU with partial pivoting and two triangular solves."""
    n = a.shape[0]
    lu, _, perm = jax.lax.linalg.lu(a)
    x = jax.lax.linalg.triangular_solve(
        lu, jnp.eye(n, dtype=a.dtype)[perm], left_side=True, lower=True,
        unit_diagonal=True)
    return jax.lax.linalg.triangular_solve(lu, x, left_side=True, lower=False)


def _pivot(k, carry):
    """Pivot column ``k`` on the unused row with the largest ``|entry|``."""
    m, used, perm, q = carry
    rows = jnp.arange(m.shape[0])
    col = m[:, k]
    p = jnp.argmax(jnp.where(used, -1.0, jnp.abs(col)))
    at_p = rows == p
    is_k = rows == k
    inv_piv = 1.0 / col[p]
    # gathers and masks, not masked sums or in-place updates: under vmap these stay
    # elementwise over the batch (XLA's CPU reductions over a middle axis are slow)
    row = m[p] * inv_piv
    rest = jnp.where(is_k[None, :], -col[:, None] * inv_piv,
                     m - col[:, None] * row[None, :])
    m = jnp.where(at_p[:, None], jnp.where(is_k, inv_piv, row)[None, :], rest)
    perm = jnp.where(is_k, p.astype(perm.dtype), perm)
    q = jnp.where(at_p, jnp.asarray(k, q.dtype), q)
    return m, used | at_p, perm, q


def gauss_jordan_inv(a: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """Inverse by Gauss-Jordan elimination with partial pivoting, in ``n`` steps of a
    ``lax.fori_loop`` of elementwise operations (see the module docstring).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxcell.solvers._small_linalg import gauss_jordan_inv
        >>> a = jnp.array([[0.0, 2.0], [4.0, 1.0]])  # needs a row exchange
        >>> bool(jnp.allclose(gauss_jordan_inv(a) @ a, jnp.eye(2)))
        True
    """
    a = jnp.asarray(a)
    n = a.shape[0]
    idx = jnp.zeros(n, dtype=jnp.int32)
    carry = (a, jnp.zeros(n, dtype=bool), idx, idx)
    t, _, perm, q = jax.lax.fori_loop(0, n, _pivot, carry)
    return t[perm[:, None], q[None, :]]


@jax.custom_batching.custom_vmap
def _inv(a):
    return lu_inv(a)


@_inv.def_vmap
def _inv_vmap(axis_size, in_batched, a):
    del axis_size
    (batched,) = in_batched
    if not batched:
        return lu_inv(a), False
    if a.shape[-1] > GAUSS_JORDAN_MAX_N:
        return jax.vmap(lu_inv)(a), True
    # CPU only: on GPUs XLA has batched LU kernels (not measured against this here)
    out = jax.lax.platform_dependent(
        a, cpu=jax.vmap(gauss_jordan_inv), default=jax.vmap(lu_inv))
    return out, True


@jax.custom_jvp
def small_inv(a: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """Inverse of a small square matrix, fast both alone and under ``jax.vmap``.

    One matrix: LAPACK (:func:`lu_inv`). Under ``jax.vmap`` on CPU, matrices with at
    most ``GAUSS_JORDAN_MAX_N`` rows: :func:`gauss_jordan_inv`, vectorised over the
    batch (no per-member library call); larger ones, and other platforms (which have
    batched LU kernels): :func:`lu_inv`. Both pivot by rows (partial pivoting) and
    agree to rounding.

    Arguments:
        a: a square floating-point matrix.

    Returns:
        ``inv(a)``; ``inf``/``nan`` entries if ``a`` is singular.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxcell.solvers._small_linalg import small_inv
        >>> a = jnp.array([[[0.0, 2.0], [4.0, 1.0]], [[2.0, 0.0], [0.0, 4.0]]])
        >>> x = jax.vmap(small_inv)(a)  # Gauss-Jordan over the batch
        >>> bool(jnp.allclose(x @ a, jnp.stack([jnp.eye(2), jnp.eye(2)])))
        True
    """
    return _inv(jnp.asarray(a))


@small_inv.defjvp
def _small_inv_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    x = small_inv(a)
    return x, -(x @ da @ x)
