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
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jax.flatten_util import ravel_pytree

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
    the step, factorises ``I - gamma h J`` once (LU, ``gamma = 0.19``) and solves one
    linear system per stage: no Newton iterations. In the transformed form of Hairer and
    Wanner (1996, IV.7):

    ``(I/(gamma h) - J) k_i = f(t0 + c_i h, y0 + sum_j a_ij k_j) + sum_j (C_ij / h) k_j
    + h d_i df/dt``, ``i = 1..8``, ``y1 = y0 + sum_j a_6j k_j + k_6 + k_7 + k_8``.

    The method has 8 internal stages (the 6 stages of the order-5 formula plus 2 that make
    it stiffly accurate and provide the embedded order-4 solution); the error estimate
    is ``k_8``. The state may be any pytree of floating arrays (it is ravelled into one
    vector internally), so the Jacobian is dense: this suits models with up to a few
    hundred state variables.

    Dense output (``SaveAt(ts=...)``, events) uses
    :class:`diffrax.ThirdOrderHermitePolynomialInterpolation` from ``y0``, ``y1`` and
    ``f`` at both ends (one extra evaluation of ``f`` per step), so values between steps
    are accurate to third order in the step size, not fifth.

    Coefficients: G. Di Marzo (1993), *RODAS5(4)*, Université de Genève; Hairer & Wanner,
    *Solving ODEs II*, 2nd ed. (1996); values as published in OrdinaryDiffEq.jl
    (``Rodas5Tableau``), verified against the order conditions (see module docstring).

    Only ODE terms (``diffrax.ODETerm`` or terms whose ``vf_prod`` is linear in the
    control) are supported.
    """

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation

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

        # h f(t0, y0) and h df/dt(t0, y0)
        g0, g_t = jax.jvp(lambda t: g(t, y0_flat), (t0,), (jnp.ones_like(t0),))
        # h J
        hjac = jax.jacfwd(lambda y: g(t0, y))(y0_flat)
        n = y0_flat.shape[0]
        lu = jsl.lu_factor(jnp.eye(n, dtype=dtype) / GAMMA - hjac)

        # Multiplied through by h: (I/gamma - hJ) k_i = h f(...) + sum_j C_ij k_j
        #                                                + d_i h (h df/dt).
        ks = []
        point = y0_flat
        for i in range(len(A)):
            if i == 0:
                gi = g0
            else:
                if i < 6:
                    point = y0_flat + sum(a * k for a, k in zip(A[i], ks))
                else:  # stages 7, 8: previous stage point plus the previous k
                    point = point + ks[-1]
                gi = g(t0 + CS[i] * h, point)
            rhs = gi
            if D[i] != 0.0:
                rhs = rhs + (D[i] * h) * g_t
            if i > 0:
                rhs = rhs + sum(c * k for c, k in zip(C[i], ks))
            ks.append(jsl.lu_solve(lu, rhs))
        y1_flat = point + ks[-1]
        y_error = unravel(ks[-1])
        y1 = unravel(y1_flat)
        g1 = g(t1, y1_flat)
        dense_info = dict(y0=y0, y1=y1, k0=unravel(g0), k1=unravel(g1))
        return y1, y_error, dense_info, None, diffrax.RESULTS.successful
