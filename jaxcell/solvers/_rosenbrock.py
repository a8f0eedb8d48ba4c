"""Rodas5: a linearly implicit (Rosenbrock) stiff solver usable as a diffrax solver.

Coefficients: G. Di Marzo, "RODAS5(4) - Méthodes de Rosenbrock d'ordre 5(4) adaptées aux
problèmes différentiels-algébriques", Mémoire de diplôme, Université de Genève (1993); see
also E. Hairer and G. Wanner, *Solving Ordinary Differential Equations II*, 2nd ed.,
Springer (1996), Section IV.7 (the transformed formulation used below, eq. (7.25)). The
numerical values of the transformed tableau (``a_ij``, ``C_ij``, ``c_i``, ``d_i``,
``gamma = 0.19``) are those published in OrdinaryDiffEq.jl
(``src/tableaus/rosenbrock_tableaus.jl``, ``Rodas5Tableau``), which also lists the method
in its standard form (``alpha_ij``, ``beta_ij``, ``b_i``). They were checked here by
converting back to the standard form and evaluating all 17 Rosenbrock order conditions up
to order 5 for the solution and all 8 conditions up to order 4 for the embedded solution
(residuals < 1e-14; see ``tests/test_rosenbrock.py``).

Dense output: the order-4 continuous extension of Rodas5 as given in OrdinaryDiffEq.jl
(the ``H`` matrix of ``Rodas5Tableau`` in
``lib/OrdinaryDiffEqRosenbrock/src/rosenbrock_tableaus.jl``, evaluated by the formula in
``rosenbrock_interpolants.jl`` there; the values were copied from there, not rederived). With
``theta = (t - t0)/h`` and ``K_i = sum_j H_ij k_j`` (``i = 1..3``, ``j = 1..8``),

    y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta) (K_1 + theta K_2 + theta^2 K_3)).

OrdinaryDiffEq.jl's stage vectors solve ``(I/(gamma h) - J) k_i = f(...) + ...``, the
same ``k_i`` as here (they are increments of ``y``, not slopes), so ``H`` is used
unchanged; ``tests/test_rosenbrock.py`` checks the local error of the interpolant is
``O(h^5)``.
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.tree_util as jtu
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, PyTree

from ._small_linalg import small_inv

# --- Rodas5 transformed tableau (8 internal stages; stages 6-8 all at c = 1). ---------
GAMMA = 0.19

# a[i][j], j < i: stage i is evaluated at y0 + sum_j a[i][j] * k_j.
_A6 = (-14.09640773051259, 6.925207756232704, -41.47510893210728, 2.343771018586405,
       24.13215229196062)
A = (
    (),
    (2.0,),
    (3.040894194418781, 1.041747909077569),
    (2.576417536461461, 1.622083060776640, -0.9089668560264532),
    (2.760842080225597, 1.446624659844071, -0.3036980084553738, 0.2877498600325443),
    _A6,
    _A6 + (1.0,),
    _A6 + (1.0, 1.0),
)
# The solution (stiffly accurate): y1 = y0 + sum_j M[j] * k_j  (= stage-8 point + k_8);
# the embedded 4th-order solution is the stage-8 point, so the error estimate is k_8.
M = _A6 + (1.0, 1.0, 1.0)

# C[i][j], j < i: coefficient of k_j / h on the right-hand side of stage i.
C = (
    (),
    (-10.31323885133993,),
    (-21.04823117650003, -7.234992135176716),
    (32.22751541853323, -4.943732386540191, 19.44922031041879),
    (-20.69865579590063, -8.816374604402768, 1.260436877740897, -0.7495647613787146),
    (-46.22004352711257, -17.49534862857472, -289.6389582892057, 93.60855400400906,
     318.3822534212147),
    (34.20013733472935, -14.15535402717690, 57.82335640988400, 25.83362985412365,
     1.408950972071624, -6.551835421242162),
    (42.57076742291101, -13.80770672017997, 93.98938432427124, 18.77919633714503,
     -31.58359187223370, -6.685968952921985, -5.810979938412932),
)
# Stage times (fractions of the step) and time-derivative coefficients.
CS = (0.0, 0.38, 0.3878509998321533, 0.4839718937873840, 0.4570477008819580, 1.0, 1.0, 1.0)
D = (GAMMA, -0.1823079225333714636, -0.319231832186874912, 0.3449828624725343,
     -0.377417564392089818, 0.0, 0.0, 0.0)

# Dense output: K_i = sum_j H[i][j] k_j, i = 1..3, j = 1..8 (OrdinaryDiffEq.jl,
# Rodas5Tableau ``H``; entries ~1e-13 there are rounding residue of zeros, kept as given).
H = (
    (27.354592673333357, -6.925207756232857, 26.40037733258859, 0.5635230501052979,
     -4.699151156849391, -1.6008677469422725, -1.5306074446748028, -1.3929872940716344),
    (44.19024239501722, 1.3677947663381929e-13, 202.93261852171622, -35.5669339789154,
     -181.91095152160645, 3.4116351403665033, 2.5793540257308067, 2.2435122582734066),
    (-44.0988150021747, -5.755396159656812e-13, -181.26175034586677, 56.99302194811676,
     183.21182741427398, -7.480257918273637, -5.792426076169686, -5.32503859794143),
)


def _stage_tables():
    """Stage points ``y0 + alpha_i . k`` and the ``C`` couplings as dense (8, 8)
    arrays (row i, zero from column i on)."""
    n = len(A)
    alpha = np.zeros((n, n))
    cmat = np.zeros((n, n))
    for i in range(1, n):
        alpha[i, : len(A[i])] = A[i]
        cmat[i, : len(C[i])] = C[i]
    return alpha, cmat


_STAGE_TABLES = _stage_tables()

# Vector fields with more jaxpr operations than this run the stages in a loop.
LOOP_THRESHOLD = 200
# Systems with at most this many state variables solve the stages with an explicit
# inverse of the iteration matrix (see ``Rodas5.explicit_inverse``).
INVERSE_THRESHOLD = 64


def _factor(w, explicit_inverse: bool):
    """``W`` prepared for repeated solves: its inverse (:func:`small_inv`: LAPACK for one
    system, batch-vectorised Gauss-Jordan under ``vmap``), or its LU factors."""
    if explicit_inverse:
        return small_inv(w)
    return jsl.lu_factor(w)


def _solve(factored, b, explicit_inverse: bool):
    if explicit_inverse:
        return factored @ b
    return jsl.lu_solve(factored, b)


def _jaxpr_size(g, t, y) -> int:
    """Number of operations in the traced vector field (nested calls counted inside)."""

    def count(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            total += 1
            for v in eqn.params.values():
                inner = getattr(v, "jaxpr", None)
                if inner is not None:
                    total += count(getattr(inner, "jaxpr", inner))
        return total

    return count(jax.make_jaxpr(g)(t, y).jaxpr)


class Rodas5Interpolation(diffrax.AbstractLocalInterpolation):
    r"""Rodas5's order-4 continuous extension on one step ``[t0, t1]``.

    ``y(theta) = (1 - theta) y0 + theta (y1 + (1 - theta) (K1 + theta K2 + theta^2 K3))``
    with ``theta = (t - t0) / (t1 - t0)``; ``K1, K2, K3`` are the combinations
    ``sum_j H_ij k_j`` of the stage vectors (see the module docstring). Stored as the
    coefficients of a quartic in ``theta`` (highest power first).
    """

    t0: ArrayLike
    t1: ArrayLike
    coeffs: PyTree[Array]  # each leaf: shape (5, *leaf_shape)

    def __init__(self, *, t0, t1, y0, y1, K1, K2, K3):
        def _calc(_y0, _y1, _k1, _k2, _k3):
            # theta (1-theta)(K1 + theta K2 + theta^2 K3)
            #   = theta K1 + theta^2 (K2-K1) + theta^3 (K3-K2) - theta^4 K3
            return jnp.stack([-_k3, _k3 - _k2, _k2 - _k1, _k1 + _y1 - _y0, _y0])

        self.t0 = t0
        self.t1 = t1
        self.coeffs = jtu.tree_map(_calc, y0, y1, K1, K2, K3)

    def evaluate(self, t0, t1=None, left=True):
        del left
        if t1 is not None:
            return jtu.tree_map(lambda a, b: b - a, self.evaluate(t0), self.evaluate(t1))
        # A zero-length step happens in lanes of a vmapped solve that have finished
        # (the loop body still runs for them): 0/0 there would be masked in the
        # values but turn the gradients of the whole batch lane into NaN.
        span = self.t1 - self.t0
        safe = jnp.where(span == 0, 1.0, span)
        theta = jnp.where(span == 0, 0.0, (t0 - self.t0) / safe)

        def _eval(c):
            with jax.numpy_dtype_promotion("standard"):
                return jnp.polyval(c, jnp.asarray(theta, dtype=c.dtype))

        return jtu.tree_map(_eval, self.coeffs)


def standard_form():
    """The tableau converted back to the standard Rosenbrock form.

    Returns ``(alpha, beta, b, b_hat)`` as NumPy arrays, where a step is
    ``k_i = h f(y0 + sum_j alpha_ij k_j) + h J sum_{j<=i} (beta_ij - alpha_ij) k_j``,
    ``y1 = y0 + sum_i b_i k_i`` and the embedded solution uses ``b_hat``. Used to check the
    order conditions.
    """
    s = len(A)
    a = np.zeros((s, s))
    c = np.zeros((s, s))
    for i in range(s):
        a[i, :i] = A[i]
        c[i, :i] = C[i]
    gamma_inv = np.eye(s) / GAMMA - c  # C = diag(1/gamma) - Gamma^{-1}
    big_gamma = np.linalg.inv(gamma_inv)
    alpha = a @ big_gamma
    beta = alpha + big_gamma
    b = np.asarray(M) @ big_gamma
    b_hat = np.concatenate([np.asarray(A[-1]), [0.0]]) @ big_gamma
    return alpha, beta, b, b_hat


class Rodas5(diffrax.AbstractAdaptiveSolver):
    r"""Rodas5: Di Marzo's L-stable, stiffly accurate Rosenbrock method of order 5(4).

    A linearly implicit method: each step computes one Jacobian ``J = df/dy`` (by
    ``jax.jacfwd``) and the time derivative ``df/dt`` (by ``jax.jvp``) at the start of
    the step, factorises ``I - gamma h J`` once (LU, ``gamma = 0.19``; for small systems
    it forms the inverse, see ``explicit_inverse``) and solves one linear system per
    stage: no Newton iterations. In the transformed form of Hairer and
    Wanner (1996, IV.7):

    ``(I/(gamma h) - J) k_i = f(t0 + c_i h, y0 + sum_j a_ij k_j) + sum_j (C_ij / h) k_j
    + h d_i df/dt``, ``i = 1..8``, ``y1 = y0 + sum_j a_6j k_j + k_6 + k_7 + k_8``.

    The method has 8 internal stages (the 6 stages of the order-5 formula plus 2 that make
    it stiffly accurate and provide the embedded order-4 solution); the error estimate
    is ``k_8``. The state may be any pytree of floating arrays (it is ravelled into one
    vector internally), so the Jacobian is dense: this suits models with up to a few
    hundred state variables.

    Dense output (``SaveAt(ts=...)``, events) uses the method's own continuous extension
    of order 4 (:class:`Rodas5Interpolation`; local error ``O(h^5)`` between steps),
    built from the stage vectors at no extra evaluations of ``f``.

    Coefficients: G. Di Marzo (1993), *RODAS5(4)*, Université de Genève; Hairer & Wanner,
    *Solving ODEs II*, 2nd ed. (1996); values as published in OrdinaryDiffEq.jl
    (``Rodas5Tableau``), verified against the order conditions (see module docstring).

    Only ODE terms (``diffrax.ODETerm`` or terms whose ``vf_prod`` is linear in the
    control) are supported.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = Rodas5Interpolation
    stage_loop: bool | None = eqx.field(static=True, default=None)
    """Run the 8 stages in a ``lax.fori_loop`` (``True``: the vector field is compiled
    once, compile time halves for large models, each step costs a little more) or
    unrolled (``False``: fastest steps for small models). ``None`` (default) decides by
    the size of the vector field's jaxpr (more than ``LOOP_THRESHOLD`` operations:
    loop)."""
    explicit_inverse: bool | None = eqx.field(static=True, default=None)
    """Form ``(I/gamma - hJ)^{-1}`` once per step and solve the 8 stages as
    matrix-vector products (``True``), or keep the LU factors and do 8 pairs of
    triangular solves (``False``). On CPU each LAPACK call costs a fixed ~0.3 µs that
    dominates for small systems, so the inverse is 2-3x faster per step there; it costs
    ``O(n^3)`` more flops and loses a little backward stability, so large systems keep
    the factors. ``None`` (default): the inverse for at most ``INVERSE_THRESHOLD`` (64)
    state variables. The inverse is LAPACK's (LU plus two triangular solves) for one
    simulation; under ``jax.vmap`` (ensembles), systems with at most
    ``GAUSS_JORDAN_MAX_N`` (16) state variables are inverted by Gauss-Jordan
    elimination vectorised over the batch instead of one LAPACK call per member
    (``jaxcell/solvers/_small_linalg.py``)."""

    def order(self, terms):
        return 5

    def error_order(self, terms):
        # Local error of the embedded 4th-order solution is O(h^5).
        return 5

    def init(self, terms, t0, t1, y0, args):
        return None

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        term = terms
        control = term.contr(t0, t1)
        y0_flat, unravel = ravel_pytree(y0)
        dtype = y0_flat.dtype
        h = jnp.asarray(t1 - t0, dtype=dtype)
        t0 = jnp.asarray(t0, dtype=dtype)

        def g(t, y_flat):
            # h * f(t, y), as a flat vector.
            out = term.vf_prod(t, unravel(y_flat), args, control)
            return ravel_pytree(out)[0].astype(dtype)

        # [h df/dt | h J] at (t0, y0) in one forward-mode pass
        n = y0_flat.shape[0]
        aug = jax.jacfwd(lambda ty: g(ty[0], ty[1:]))(jnp.concatenate([t0[None], y0_flat]))
        g_t, hjac = aug[:, 0], aug[:, 1:]
        inverse = self.explicit_inverse
        if inverse is None:
            inverse = n <= INVERSE_THRESHOLD
        w_fac = _factor(jnp.eye(n, dtype=dtype) / GAMMA - hjac, inverse)

        # Multiplied through by h: (I/gamma - hJ) k_i = h f(t0 + c_i h, y0 + alpha_i . k)
        #                                              + C_i . k + d_i h (h df/dt).
        alpha = jnp.asarray(_STAGE_TABLES[0], dtype)
        use_loop = self.stage_loop
        if use_loop is None:
            use_loop = _jaxpr_size(g, t0, y0_flat) > LOOP_THRESHOLD
        if use_loop:
            # a loop over stages: the vector field is compiled once (large models)
            cmat = jnp.asarray(_STAGE_TABLES[1], dtype)
            cs, ds = jnp.asarray(CS, dtype), jnp.asarray(D, dtype)

            def stage(i, ks):
                point = y0_flat + alpha[i] @ ks
                rhs = g(t0 + cs[i] * h, point) + (ds[i] * h) * g_t + cmat[i] @ ks
                return ks.at[i].set(_solve(w_fac, rhs, inverse))

            ks = jax.lax.fori_loop(0, len(A), stage, jnp.zeros((len(A), n), dtype))
        else:
            # unrolled stages: no loop overhead per stage (small models)
            klist = []
            for i in range(len(A)):
                point = y0_flat + sum((a * k for a, k in zip(A[i], klist)),
                                      jnp.zeros_like(y0_flat))
                rhs = g(t0 + CS[i] * h, point) + (D[i] * h) * g_t
                rhs = rhs + sum((c * k for c, k in zip(C[i], klist)), jnp.zeros_like(y0_flat))
                klist.append(_solve(w_fac, rhs, inverse))
            ks = jnp.stack(klist)
        y1_flat = y0_flat + alpha[-1] @ ks + ks[-1]
        y_error = unravel(ks[-1])
        y1 = unravel(y1_flat)
        big_k = [unravel(jnp.asarray(row, dtype) @ ks) for row in H]
        dense_info = dict(y0=y0, y1=y1, K1=big_k[0], K2=big_k[1], K3=big_k[2])
        return y1, y_error, dense_info, None, diffrax.RESULTS.successful
