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
    rational :class:`SparseModel`. Every candidate left-hand side of every target is
    solved at every threshold at once (``jax.vmap``) from one QR decomposition per
    target. The implicit library holds many exact relations at once (``s (K + s) xdot
    = -V s^2`` as well as ``(K + s) xdot = -V s``), so one threshold does not suit
    every candidate; the scan over thresholds finds each candidate's sparse form.

    Arguments:
        thresholds: STLSQ thresholds (on the coefficients of unit-norm columns)
            scanned for every candidate.
        alpha: ridge weight during thresholding.
        max_iter: thresholding rounds.
        tolerance: fits whose relative derivative error is within
            ``(1 + tolerance)`` of the best (plus ``1e-8``) compete on sparsity;
            among equally sparse ones the left side earliest in the library wins (the
            lowest degree, so that no common factor such as ``s`` in
            ``s^2/(K s + s^2)`` is kept).

    References:
        Kaheman, K., Kutz, J. N. & Brunton, S. L. (2020). SINDy-PI: a robust algorithm
        for parallel implicit sparse identification of nonlinear dynamics. Proc. R. Soc.
        A 476, 20200279.
    """

    thresholds: tuple[float, ...] = eqx.field(
        static=True, default=tuple(float(v) for v in np.logspace(-4, 0, 17)))
    alpha: float = eqx.field(static=True, default=0.0)
    max_iter: int = eqx.field(static=True, default=20)
    tolerance: float = eqx.field(static=True, default=0.5)

    def __check_init__(self):
        th = np.asarray(self.thresholds, dtype=float)
        if th.ndim != 1 or th.size < 1 or np.any(th < 0):
            raise DiscoveryError("SINDyPI: thresholds must be a non-empty 1-d grid of "
                                 "values >= 0.")

    def candidates(self, theta: ArrayLike, xdot: ArrayLike) -> tuple[Array, Array, Array]:
        """Every fit: ``(numerators, denominators, errors)`` with shapes
        ``(k, m, p, m)``, ``(k, m, p, m)`` and ``(k, m, p)`` (target, candidate left
        side, threshold, term)."""
        theta, xdot = _check_system(theta, xdot, "SINDyPI")
        return _candidates(self, theta, xdot)

    def _candidates(self, theta: Array, xdot: Array) -> tuple[Array, Array, Array]:
        m = theta.shape[1]
        ths = jnp.asarray(np.asarray(self.thresholds, dtype=float))

        def per_target(xd):
            a = jnp.concatenate([theta, xd[:, None] * theta], axis=1)
            norms = jnp.linalg.norm(a, axis=0)
            s = jnp.where(norms > 0, norms, 1.0)
            _, r = jnp.linalg.qr(a / s[None, :], mode="reduced")

            def per_candidate(j, thr):
                col = m + j
                allowed = jnp.arange(2 * m) != col
                qy = r[:, col]
                _, mask, _ = stlsq_core(r, qy, thr, self.alpha, self.max_iter, allowed)
                coef = masked_lstsq(r, qy, mask) * s[col] / s  # original columns
                num = coef[:m]
                den = jnp.zeros(m).at[j].set(1.0) - coef[m:]
                pred = (theta @ num) / (theta @ den)
                err = jnp.linalg.norm(pred - xd) / jnp.maximum(jnp.linalg.norm(xd), 1e-300)
                err = jnp.where(jnp.isfinite(err), err, jnp.inf)
                return num, den, err

            over_thr = jax.vmap(per_candidate, in_axes=(None, 0))
            return jax.vmap(over_thr, in_axes=(0, None))(jnp.arange(m), ths)

        return jax.vmap(per_target, in_axes=1)(xdot)

    def __call__(self, theta: ArrayLike, xdot: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        nums, dens, errs = (np.asarray(v) for v in self.candidates(theta, xdot))
        k, m, p, _ = nums.shape
        num_out = np.zeros((k, m))
        den_out = np.zeros((k, m))
        for i in range(k):
            err = errs[i].reshape(-1)
            if not np.any(np.isfinite(err)):
                raise DiscoveryError(
                    f"SINDyPI: no candidate gives a finite derivative for target {i}; "
                    f"include a constant term in the library, or lower the thresholds."
                )
            best = np.min(err)
            ok = np.flatnonzero(err <= best * (1 + self.tolerance) + 1e-8)
            flat_num = nums[i].reshape(m * p, m)
            flat_den = dens[i].reshape(m * p, m)
            size = (np.count_nonzero(flat_num[ok], axis=1)
                    + np.count_nonzero(flat_den[ok], axis=1))
            cand = ok // p  # the left side's library index
            pick = ok[np.lexsort((err[ok], cand, size))[0]]
            num, den = flat_num[pick], flat_den[pick]
            norm = den[np.argmax(np.abs(den))]
            num_out[i], den_out[i] = num / norm, den / norm
        return num_out, den_out


@eqx.filter_jit
def _candidates(opt, theta, xdot):
    return opt._candidates(theta, xdot)
