"""Implicit sparse regression (SINDy-PI) for rational right-hand sides.

Michaelis-Menten and Hill kinetics make :math:`\\dot x` a ratio of polynomials, which
no linear library holds with few terms. Written implicitly, :math:`D(x)\\,\\dot x =
N(x)` is linear in the coefficients of :math:`N` and :math:`D`: with the library
:math:`[\\Theta(x),\\ \\dot x_i\\Theta(x)]`, each column :math:`\\dot x_i\\theta_j` in
turn is regressed sparsely on all the others; a candidate gives
:math:`\\dot x_i = \\Theta a / \\Theta(e_j - b)`, and the sparsest candidate whose implied
derivative fits the data (within ``tolerance`` of the best) is kept.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import DiscoveryError
from ._regression import _check_system, masked_lstsq, stlsq_core


class SINDyPI(eqx.Module):
    """Parallel implicit SINDy: rational equations :math:`\\dot x_i = N_i(x)/D_i(x)`.

    Called as ``SINDyPI(...)(theta, xdot)`` it returns ``(numerator, denominator)``,
    each ``(targets, terms)``; :func:`discover` does this for you and returns a
    rational :class:`SparseModel`. All candidate left-hand sides of a target are solved
    at once (``jax.vmap``) from one QR decomposition.

    Arguments:
        threshold: STLSQ threshold on the coefficients of unit-norm columns.
        alpha: ridge weight during thresholding.
        max_iter: thresholding rounds.
        tolerance: candidates whose relative derivative error is within
            ``(1 + tolerance)`` of the best compete on sparsity.

    References:
        Kaheman, K., Kutz, J. N. & Brunton, S. L. (2020). SINDy-PI: a robust algorithm
        for parallel implicit sparse identification of nonlinear dynamics. Proc. R. Soc.
        A 476, 20200279.
    """

    threshold: float = 0.05
    alpha: float = eqx.field(static=True, default=0.0)
    max_iter: int = eqx.field(static=True, default=20)
    tolerance: float = eqx.field(static=True, default=0.5)

    def candidates(self, theta: ArrayLike, xdot: ArrayLike) -> tuple[Array, Array, Array]:
        """Every candidate: ``(numerators, denominators, errors)`` with shapes
        ``(k, m, m)``, ``(k, m, m)`` and ``(k, m)`` (target, candidate, term)."""
        theta, xdot = _check_system(theta, xdot, "SINDyPI")
        m = theta.shape[1]

        def per_target(xd):
            a = jnp.concatenate([theta, xd[:, None] * theta], axis=1)
            norms = jnp.linalg.norm(a, axis=0)
            s = jnp.where(norms > 0, norms, 1.0)
            _, r = jnp.linalg.qr(a / s[None, :], mode="reduced")

            def per_candidate(j):
                col = m + j
                allowed = jnp.arange(2 * m) != col
                qy = r[:, col]
                _, mask, _ = stlsq_core(r, qy, self.threshold, self.alpha, self.max_iter,
                                        allowed)
                coef = masked_lstsq(r, qy, mask) * s[col] / s  # original columns
                num = coef[:m]
                den = jnp.zeros(m).at[j].set(1.0) - coef[m:]
                pred = (theta @ num) / (theta @ den)
                err = jnp.linalg.norm(pred - xd) / jnp.maximum(jnp.linalg.norm(xd), 1e-300)
                err = jnp.where(jnp.isfinite(err), err, jnp.inf)
                return num, den, err

            return jax.vmap(per_candidate)(jnp.arange(m))

        return jax.vmap(per_target, in_axes=1)(xdot)

    def __call__(self, theta: ArrayLike, xdot: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        nums, dens, errs = (np.asarray(v) for v in self.candidates(theta, xdot))
        k = nums.shape[0]
        num_out = np.zeros(nums.shape[::2])
        den_out = np.zeros(dens.shape[::2])
        for i in range(k):
            err = errs[i]
            if not np.any(np.isfinite(err)):
                raise DiscoveryError(
                    f"SINDyPI: no candidate gives a finite derivative for target {i}; "
                    f"include a constant term in the library, or lower the threshold."
                )
            best = np.nanmin(err)
            ok = np.flatnonzero(err <= best * (1 + self.tolerance) + 1e-12)
            size = np.count_nonzero(nums[i, ok], axis=1) + np.count_nonzero(dens[i, ok],
                                                                              axis=1)
            j = ok[np.lexsort((err[ok], size))[0]]
            num, den = nums[i, j], dens[i, j]
            norm = den[np.argmax(np.abs(den))]
            num_out[i], den_out[i] = num / norm, den / norm
        return num_out, den_out
