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
from ._regression import _check_system, masked_lstsq


class SINDyPI(eqx.Module):
    """Parallel implicit SINDy: rational equations :math:`\\dot x_i = N_i(x)/D_i(x)`.

    Called as ``SINDyPI(...)(theta, xdot)`` it returns ``(numerator, denominator)``,
    each ``(targets, terms)``; :func:`discover` does this for you and returns a
    rational :class:`SparseModel`.

    Each candidate left side is regressed on the other columns by backward elimination
    (stepwise sparse regression): starting from all columns, the column whose removal
    raises the residual least is dropped, one at a time, down to one column; every
    step of every candidate is a fit. Thresholding (STLSQ) does not suit the implicit
    library, which holds several exact relations at once (``s (K + s) xdot = -V s^2``
    as well as ``(K + s) xdot = -V s``): their mixture has no small coefficient to
    threshold, while elimination drops the redundant columns at no cost. All
    candidates of a target are solved at once (``jax.vmap``) from one QR
    decomposition.

    Arguments:
        tolerance: fits whose relative derivative error is within
            ``(1 + tolerance)`` of the best (plus ``1e-8``) compete on sparsity;
            among equally sparse ones the left side earliest in the library wins (the
            lowest degree, so that no common factor such as ``s`` in
            ``s^2/(K s + s^2)`` is kept).

    References:
        Kaheman, K., Kutz, J. N. & Brunton, S. L. (2020). SINDy-PI: a robust algorithm
        for parallel implicit sparse identification of nonlinear dynamics. Proc. R. Soc.
        A 476, 20200279. Boninsegna, L., Nüske, F. & Clementi, C. (2018). Sparse
        learning of stochastic dynamical equations. J. Chem. Phys. 148, 241723
        (stepwise sparse regression).
    """

    tolerance: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not self.tolerance >= 0:
            raise DiscoveryError(f"SINDyPI: tolerance must be >= 0; got {self.tolerance}.")

    def candidates(self, theta: ArrayLike, xdot: ArrayLike) -> tuple[Array, Array, Array]:
        """Every fit: ``(numerators, denominators, errors)`` with shapes
        ``(k, m, p, m)``, ``(k, m, p, m)`` and ``(k, m, p)`` (target, candidate left
        side, elimination step, term); step ``q`` keeps ``2m - 1 - q`` columns."""
        theta, xdot = _check_system(theta, xdot, "SINDyPI")
        return _candidates(self, theta, xdot)

    def _candidates(self, theta: Array, xdot: Array) -> tuple[Array, Array, Array]:
        m = theta.shape[1]
        cols = jnp.arange(2 * m)

        def per_target(xd):
            a = jnp.concatenate([theta, xd[:, None] * theta], axis=1)
            norms = jnp.linalg.norm(a, axis=0)
            s = jnp.where(norms > 0, norms, 1.0)
            _, r = jnp.linalg.qr(a / s[None, :], mode="reduced")

            def per_candidate(j):
                col = m + j
                qy = r[:, col]

                def residual(mask):
                    return jnp.linalg.norm(r @ masked_lstsq(r, qy, mask) - qy)

                def eliminate(mask, _):
                    trial = jax.vmap(lambda c: jnp.where(
                        mask[c], residual(mask & (cols != c)), jnp.inf))(cols)
                    return mask.at[jnp.argmin(trial)].set(False), mask

                _, masks = jax.lax.scan(eliminate, cols != col, None, length=2 * m - 1)

                def fit(mask):
                    coef = masked_lstsq(r, qy, mask) * s[col] / s  # original columns
                    num = coef[:m]
                    den = jnp.zeros(m).at[j].set(1.0) - coef[m:]
                    pred = (theta @ num) / (theta @ den)
                    err = jnp.linalg.norm(pred - xd) / jnp.maximum(jnp.linalg.norm(xd),
                                                                   1e-300)
                    return num, den, jnp.where(jnp.isfinite(err), err, jnp.inf)

                return jax.vmap(fit)(masks)

            return jax.vmap(per_candidate)(jnp.arange(m))

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
                    f"include a constant term in the library."
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
