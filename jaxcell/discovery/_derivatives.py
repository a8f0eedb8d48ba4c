"""Time derivatives of sampled trajectories, and the weak (integral) form.

Strong-form discovery regresses estimated derivatives :math:`\\dot X` on
:math:`\\Theta(X)`; each estimator here is an equinox module called as
``method(ts, xs) -> dx/dt`` (``xs`` of shape ``(n, d)``). The weak form
(:class:`WeakForm`) needs no derivatives: it integrates the equations against smooth
test functions and moves the derivative onto them by parts, which averages noise out.
"""

from __future__ import annotations

import abc
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import DiscoveryError


def check_series(ts: ArrayLike, xs: ArrayLike, owner: str) -> tuple[np.ndarray, Array]:
    """Times (strictly increasing, finite) and states ``(n, d)`` (finite), checked."""
    ts = np.asarray(ts, dtype=float)
    xs = jnp.asarray(xs, dtype=float)
    if xs.ndim == 1:
        xs = xs[:, None]
    if ts.ndim != 1 or xs.ndim != 2 or xs.shape[0] != ts.shape[0]:
        raise DiscoveryError(
            f"{owner}: expected times of shape (n,) and states of shape (n, d) with the "
            f"same n; got {ts.shape} and {tuple(xs.shape)}."
        )
    if ts.shape[0] < 3:
        raise DiscoveryError(f"{owner}: need at least 3 time points; got {ts.shape[0]}.")
    if not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise DiscoveryError(f"{owner}: times must be finite and strictly increasing.")
    if isinstance(xs, jax.core.Tracer):  # under jit or vmap: checked when it runs
        return ts, eqx.error_if(xs, ~jnp.all(jnp.isfinite(xs)),
                                f"{owner}: the states hold a non-finite value.")
    if not bool(jnp.all(jnp.isfinite(xs))):
        bad = np.argwhere(~np.isfinite(np.asarray(xs)))[0]
        raise DiscoveryError(
            f"{owner}: the states hold a non-finite value (first at sample {bad[0]}, "
            f"variable {bad[1]}); remove or interpolate it."
        )
    return ts, xs


def _uniform_step(ts: np.ndarray, owner: str) -> float:
    dt = np.diff(ts)
    if np.max(np.abs(dt - dt[0])) > 1e-9 * max(abs(dt[0]), 1e-300) * len(ts):
        raise DiscoveryError(f"{owner}: needs uniformly spaced times; the steps range "
                             f"from {dt.min():g} to {dt.max():g}.")
    return float(dt[0])


class AbstractDerivative(eqx.Module):
    """Base class of derivative estimators: ``method(ts, xs)`` returns ``dx/dt`` at
    every sample, shape ``(n, d)``."""

    @abc.abstractmethod
    def __call__(self, ts: ArrayLike, xs: ArrayLike) -> Array:
        """The estimated derivatives at the sample times."""


class FiniteDifference(AbstractDerivative):
    """Second-order finite differences on any grid (central inside, one-sided
    second-order at the two ends), as :func:`numpy.gradient` with ``edge_order=2``.

    Examples:
        >>> import numpy as np, jaxcell as jc
        >>> t = np.linspace(0, 1, 11)
        >>> d = jc.discovery.FiniteDifference()(t, t**2)
        >>> bool(np.allclose(d[:, 0], 2 * t))
        True
    """

    def __call__(self, ts, xs):
        ts, xs = check_series(ts, xs, "FiniteDifference")
        return _finite_difference(jnp.asarray(ts), xs)


@jax.jit
def _finite_difference(ts, xs):
    h = jnp.diff(ts)
    h1, h2 = h[:-1, None], h[1:, None]
    # interior: weights of x[i-1], x[i], x[i+1] on a non-uniform grid
    a = -h2 / (h1 * (h1 + h2))
    b = (h2 - h1) / (h1 * h2)
    c = h1 / (h2 * (h1 + h2))
    mid = a * xs[:-2] + b * xs[1:-1] + c * xs[2:]
    d1, d2 = h[0], h[1]
    first = (-(2 * d1 + d2) / (d1 * (d1 + d2)) * xs[0] + (d1 + d2) / (d1 * d2) * xs[1]
             - d1 / (d2 * (d1 + d2)) * xs[2])
    e1, e2 = h[-1], h[-2]
    last = ((2 * e1 + e2) / (e1 * (e1 + e2)) * xs[-1] - (e1 + e2) / (e1 * e2) * xs[-2]
            + e1 / (e2 * (e1 + e2)) * xs[-3])
    return jnp.concatenate([first[None], mid, last[None]])


def _savgol_matrix(window: int, order: int, h: float) -> np.ndarray:
    """``(window, window)``: row j gives the derivative at position j of the window
    from the least-squares polynomial of ``order`` through the window's samples."""
    pos = np.arange(window, dtype=float) - (window - 1) / 2
    vander = pos[:, None] ** np.arange(order + 1)[None, :]
    coef = np.linalg.pinv(vander)  # (order+1, window): polynomial coefficients
    dvander = np.zeros_like(vander)
    dvander[:, 1:] = np.arange(1, order + 1)[None, :] * pos[:, None] ** np.arange(order)
    return dvander @ coef / h


class SavitzkyGolay(AbstractDerivative):
    """Savitzky-Golay derivatives: the slope of a least-squares polynomial of ``order``
    through ``window`` neighbouring samples (uniform grid); near the ends, the slope of
    the polynomial through the first or last window.

    References:
        Savitzky, A. & Golay, M. J. E. (1964). Smoothing and differentiation of data
        by simplified least squares procedures. Analytical Chemistry 36, 1627-1639.
    """

    window: int = eqx.field(static=True, default=11)
    order: int = eqx.field(static=True, default=3)

    def __check_init__(self):
        if self.window < 3 or self.window % 2 == 0 or not 1 <= self.order < self.window:
            raise DiscoveryError(
                f"SavitzkyGolay: window must be odd and >= 3, and 1 <= order < window; "
                f"got window={self.window}, order={self.order}."
            )

    def __call__(self, ts, xs):
        ts, xs = check_series(ts, xs, "SavitzkyGolay")
        n = ts.shape[0]
        if n < self.window:
            raise DiscoveryError(f"SavitzkyGolay: the window ({self.window}) is longer "
                                 f"than the series ({n} samples).")
        m = _savgol_matrix(self.window, self.order, _uniform_step(ts, "SavitzkyGolay"))
        return _savgol_apply(jnp.asarray(m), xs, self.window)


@functools.partial(jax.jit, static_argnums=2)
def _savgol_apply(m, xs, window):
    half = window // 2
    centre = m[half][::-1]
    mid = jax.vmap(lambda col: jnp.convolve(col, centre, mode="valid"),
                   in_axes=1, out_axes=1)(xs)
    head = m[:half] @ xs[:window]
    tail = m[half + 1:] @ xs[-window:]
    return jnp.concatenate([head, mid, tail])


class TotalVariation(AbstractDerivative):
    """Total-variation regularised differentiation (Chartrand 2011): the derivative
    :math:`u` minimises :math:`\\alpha \\sum_i |u_{i+1}-u_i| + \\tfrac12 \\|A u -
    (x - x_0)\\|^2`, with :math:`A` the trapezoidal antiderivative, so that :math:`u`
    is piecewise smooth and its integral follows the data. Solved by lagged
    diffusivity: ``iterations`` linear solves by conjugate gradients (matrix-free, so
    long series are fine).

    Arguments:
        alpha: regularisation weight (larger: smoother derivative).
        iterations: lagged-diffusivity iterations.
        epsilon: smoothing of :math:`|\\cdot|` near zero.
        cg_steps: the most conjugate-gradient steps per linear solve.

    References:
        Chartrand, R. (2011). Numerical differentiation of noisy, nonsmooth data. ISRN
        Applied Mathematics 2011, 164564.
    """

    alpha: float = eqx.field(static=True, default=1e-2)
    iterations: int = eqx.field(static=True, default=20)
    epsilon: float = eqx.field(static=True, default=1e-8)
    cg_steps: int = eqx.field(static=True, default=200)

    def __check_init__(self):
        if not self.alpha > 0 or self.iterations < 1:
            raise DiscoveryError(f"TotalVariation: need alpha > 0 and iterations >= 1; got "
                                 f"alpha={self.alpha}, iterations={self.iterations}.")

    def __call__(self, ts, xs):
        ts, xs = check_series(ts, xs, "TotalVariation")
        return _tv(self, jnp.asarray(ts), xs)


@eqx.filter_jit
def _tv(method, ts, xs):
    h = jnp.diff(ts)
    x0 = _finite_difference(ts, xs)
    return jax.vmap(lambda f, u0: _tv_one(h, f, u0, method.alpha, method.iterations,
                                          method.epsilon, method.cg_steps),
                    in_axes=(1, 1), out_axes=1)(xs, x0)


def _tv_one(h, f, u0, alpha, iterations, eps, cg_steps):
    def antider(u):  # trapezoid integral from t0, at every sample
        return jnp.concatenate([jnp.zeros(1, u.dtype), jnp.cumsum(0.5 * h * (u[1:] + u[:-1]))])

    def antider_t(v):  # its adjoint
        r = jnp.cumsum(v[::-1])[::-1]  # r[k] = sum_{i>=k} v[i]
        w = 0.5 * h * r[1:]
        out = jnp.zeros_like(v)
        out = out.at[1:].add(w)
        return out.at[:-1].add(w)

    def diff(u):
        return (u[1:] - u[:-1]) / h

    def diff_t(v):
        v = v / h
        out = jnp.zeros(v.shape[0] + 1, v.dtype)
        return out.at[1:].add(v).at[:-1].add(-v)

    rhs = antider_t(f - f[0])
    scale = jnp.mean(h)

    def step(u, _):
        weight = 1.0 / jnp.sqrt((diff(u) * scale) ** 2 + eps)

        def op(v):
            return antider_t(antider(v)) + alpha * scale * diff_t(weight * diff(v) * scale)

        u_new, _ = jax.scipy.sparse.linalg.cg(op, rhs, x0=u, maxiter=cg_steps)
        return u_new, None

    u, _ = jax.lax.scan(step, u0, None, length=iterations)
    return u


class WeakForm(eqx.Module):
    """The weak (integral) form: no derivatives of the data are taken.

    For test functions :math:`\\phi_k(t) = ((t-a_k)(b_k-t))^p` on ``n_windows``
    windows :math:`[a_k, b_k]` of ``width`` samples spread evenly over the series,
    integration by parts turns :math:`\\dot x = \\Theta(x)\\xi` into
    :math:`-\\int \\phi_k' x\\,dt = \\int \\phi_k \\Theta(x)\\,dt\\;\\xi` (the boundary
    terms vanish), a linear regression of the same coefficients with integrals
    (trapezoid rule) that average measurement noise out.

    Arguments:
        n_windows: the number of test functions (windows spread evenly; duplicates
            on short series are dropped).
        width: the support of each test function, in samples.
        power: the exponent :math:`p` (smoothness at the window ends).

    References:
        Messenger, D. A. & Bortz, D. M. (2021). Weak SINDy: Galerkin-based data-driven
        model selection. Multiscale Modeling & Simulation 19, 1474-1497.
    """

    n_windows: int = eqx.field(static=True, default=200)
    width: int = eqx.field(static=True, default=41)
    power: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        if self.n_windows < 1 or self.width < 5 or self.power < 1:
            raise DiscoveryError(
                f"WeakForm: need n_windows >= 1, width >= 5 samples and power >= 1; got "
                f"n_windows={self.n_windows}, width={self.width}, power={self.power}."
            )

    def test_functions(self, ts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """``(phi, dphi)``, each ``(windows, n)``, already multiplied by the trapezoid
        weights (so ``phi @ f`` is the integral of :math:`\\phi_k f`)."""
        ts = np.asarray(ts, dtype=float)
        n = ts.shape[0]
        if n < self.width:
            raise DiscoveryError(f"WeakForm: the window width ({self.width} samples) is "
                                 f"longer than the series ({n} samples).")
        starts = np.unique(np.round(np.linspace(0, n - self.width, self.n_windows)
                                    ).astype(int))
        w = np.zeros(n)
        dt = np.diff(ts)
        w[:-1] += dt / 2
        w[1:] += dt / 2
        phi = np.zeros((starts.size, n))
        dphi = np.zeros((starts.size, n))
        p = self.power
        for k, s in enumerate(starts):
            a, b = ts[s], ts[s + self.width - 1]
            t = ts[s: s + self.width]
            scale = ((b - a) / 2) ** (2 * p)  # phi peaks at 1
            g = (t - a) * (b - t)
            phi[k, s: s + self.width] = g**p / scale
            dphi[k, s: s + self.width] = p * g ** (p - 1) * (a + b - 2 * t) / scale
        return phi * w[None, :], dphi * w[None, :]

    def system(self, ts: ArrayLike, xs: ArrayLike, theta: ArrayLike) -> tuple[Array, Array]:
        """``(G, b)``: the weak library :math:`\\int\\phi_k\\Theta` and the weak left
        side :math:`-\\int\\phi_k' x`."""
        phi, dphi = self.test_functions(ts)
        return jnp.asarray(phi) @ jnp.asarray(theta), -jnp.asarray(dphi) @ jnp.asarray(xs)
