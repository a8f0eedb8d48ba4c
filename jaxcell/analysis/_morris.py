r"""Morris elementary-effects screening (one-at-a-time trajectories)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._custom_types import Key
from ._sobol import (
    _by_output,
    _check_bounds,
    _check_confidence,
    _check_int,
    _check_names,
    _check_outputs,
    _percentiles,
    _table,
)


class MorrisIndices(eqx.Module):
    """Morris screening measures per parameter, with a bootstrap interval on ``mu_star``.

    Elementary effects are in output units per unit of the *scaled* input (the whole
    range ``high - low`` counts as 1), so the measures of parameters with different
    units compare directly. Arrays have shape ``(d,)`` for one output and ``(k, d)``
    for ``k`` outputs; ``mu_star_interval`` stacks ``(low, high)`` on a leading axis of
    size 2. ``str(result)`` or :meth:`table` gives a readable table.

    Attributes:
        mu: mean elementary effect (signed; effects of opposite signs cancel).
        mu_star: mean absolute elementary effect, the screening measure
            (Campolongo et al. 2007).
        sigma: standard deviation of the elementary effects (``ddof=1``): large for
            non-linear effects or interactions.
        mu_star_interval: bootstrap percentile interval of ``mu_star``.
        names: parameter names.
        n_trajectories: number of trajectories ``r``.
        n_evaluations: ``r (d + 1)``.
        confidence: coverage of the interval.
    """

    mu: Float[Array, "*k d"]
    mu_star: Float[Array, "*k d"]
    sigma: Float[Array, "*k d"]
    mu_star_interval: Float[Array, "2 *k d"]
    names: tuple[str, ...] = eqx.field(static=True)
    n_trajectories: int = eqx.field(static=True)
    n_evaluations: int = eqx.field(static=True)
    confidence: float = eqx.field(static=True)

    def table(self) -> str:
        """The measures as a plain text table (one block per output)."""
        squeeze = np.ndim(self.mu) == 1
        mu, mus, sig = (_by_output(a, squeeze) for a in (self.mu, self.mu_star, self.sigma))
        ci = np.asarray(self.mu_star_interval)
        if squeeze:
            ci = ci[:, None]
        blocks = []
        for k in range(mu.shape[0]):
            title = (f"Morris screening ({self.n_trajectories} trajectories, "
                     f"{self.n_evaluations} evaluations, {self.confidence:.0%} bootstrap "
                     f"interval on mu*)")
            if not squeeze:
                title += f", output {k}"
            blocks.append(_table(title, self.names,
                                 {"mu": mu[k], "mu*": mus[k], "sigma": sig[k]},
                                 {"mu*": ci[:, k]}))
        return "\n\n".join(blocks)

    def __repr__(self) -> str:
        return self.table()


def _check_levels(levels, where: str) -> int:
    p = _check_int(levels, "levels", 2, where)
    if p % 2:
        raise ValueError(
            f"{where}: levels must be even (Morris 1991: then every grid level is "
            f"visited equally often); got {p}."
        )
    return p


def morris_sample(
    bounds: Float[ArrayLike, "d 2"], r: int, key: Key, *, levels: int = 4
) -> Float[Array, "N d"]:
    r"""Morris's random one-at-a-time trajectories on a ``levels``-level grid.

    Each trajectory starts at a random grid point of the unit cube (levels
    :math:`0, 1/(p-1), \dots, 1`) and moves every parameter once, in random order and
    random direction, by :math:`\Delta = p / (2 (p - 1))`; its :math:`d + 1` points
    are scaled to ``bounds``. This is the matrix :math:`B^*` of Morris (1991). The
    rows are returned trajectory by trajectory (SALib's layout).

    Arguments:
        bounds: ``(d, 2)`` array of ``(low, high)`` per parameter.
        r: number of trajectories, at least 2.
        key: a ``jax.random`` key.
        levels: number of grid levels :math:`p` (even; default 4).

    Returns:
        The ``(r (d + 1), d)`` parameter rows.

    Raises:
        ValueError: for bad bounds, ``r < 2`` or odd ``levels``.

    Examples:
        >>> import jax, jaxcell as jc
        >>> x = jc.analysis.morris_sample([[0.0, 1.0]] * 3, 2, jax.random.key(0))
        >>> x.shape
        (8, 3)
        >>> [int((x[i + 1] != x[i]).sum()) for i in range(3)]  # one change per step
        [1, 1, 1]

    References:
        Morris, M. D. (1991). Factorial sampling plans for preliminary computational
        experiments. Technometrics 33:161–174.
    """
    where = "morris_sample"
    b = _check_bounds(bounds, where)
    r = _check_int(r, "r", 2, where)
    return _morris_design(jnp.asarray(b), r, key, _check_levels(levels, where))


@functools.partial(jax.jit, static_argnums=(1, 3))
def _morris_design(b: Array, r: int, key: Key, levels: int) -> Array:
    d = b.shape[0]
    delta = levels / (2.0 * (levels - 1))
    k_base, k_sign, k_order = jax.random.split(key, 3)
    base = jax.random.randint(k_base, (r, d), 0, levels // 2).astype(b.dtype) / (levels - 1)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (r, d)), 1.0, -1.0).astype(b.dtype)
    # rank[t, i]: the step at which parameter i moves (a uniformly random permutation)
    rank = jnp.argsort(jnp.argsort(jax.random.uniform(k_order, (r, d)), axis=1), axis=1)
    start = base + delta * (1.0 - sign) / 2.0
    moved = rank[:, None, :] < jnp.arange(d + 1)[None, :, None]  # (r, d + 1, d)
    u = start[:, None, :] + delta * sign[:, None, :] * moved
    x = b[:, 0][None, None] + u * (b[:, 1] - b[:, 0])[None, None]
    return x.reshape(r * (d + 1), d)


@functools.partial(jax.jit, static_argnames=("n_bootstrap",))
def _morris_analyze(dx, dy, key, confidence, *, n_bootstrap: int):
    # dx: (r, d, d) scaled input steps (one non-zero per step), dy: (r, d, k)
    inv = jnp.where(dx != 0, 1.0 / jnp.where(dx != 0, dx, 1.0), 0.0)
    ee = jnp.einsum("tjk,tji->tki", dy, inv)  # (r, k, d)
    r = ee.shape[0]

    def stats(e):
        return jnp.mean(e, 0), jnp.mean(jnp.abs(e), 0), jnp.std(e, 0, ddof=1)

    def replicate(k):
        return jnp.mean(jnp.abs(ee[jax.random.randint(k, (r,), 0, r)]), 0)

    boot = jax.lax.map(replicate, jax.random.split(key, n_bootstrap),
                       batch_size=min(n_bootstrap, 64))
    return (*stats(ee), _percentiles(boot, confidence))


def morris_indices_from_outputs(
    x: Float[ArrayLike, "N d"],
    outputs: Float[ArrayLike, " N"] | Float[ArrayLike, "N k"],
    bounds: Float[ArrayLike, "d 2"],
    key: Key,
    *,
    names: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> MorrisIndices:
    r"""Morris measures from outputs on one-at-a-time trajectories.

    ``x`` holds trajectories of :math:`d + 1` rows each (as from :func:`morris_sample`
    or ``SALib.sample.morris.sample``), every step changing exactly one parameter,
    each parameter once per trajectory. The elementary effect of parameter :math:`i`
    in trajectory :math:`t` is

    .. math:: EE_i^{(t)} = \frac{f(x^{(t)} + \Delta_i e_i) - f(x^{(t)})}{\Delta_i}

    with :math:`\Delta_i` the step in scaled units (``step / (high - low)``); then
    :math:`\mu_i` is their mean, :math:`\mu^*_i` the mean of their absolute values and
    :math:`\sigma_i` their standard deviation (``ddof=1``), as in SALib. The interval
    of :math:`\mu^*` resamples whole trajectories ``n_bootstrap`` times (percentile
    interval).

    Arguments:
        x: ``(r (d + 1), d)`` trajectory points.
        outputs: ``(r (d + 1),)`` or ``(r (d + 1), k)`` model outputs on ``x``.
        bounds: ``(d, 2)`` array of ``(low, high)`` per parameter.
        key: a ``jax.random`` key for the bootstrap.
        names: parameter names (default ``x0, x1, ...``).
        n_bootstrap: number of bootstrap replicates (at least 2).
        confidence: coverage of the interval, in (0, 1).

    Returns:
        A :class:`MorrisIndices`.

    Raises:
        ValueError: for bad bounds, rows that do not form trajectories (a step that
            changes no or several parameters, a parameter moved twice), fewer than 2
            trajectories, outputs of the wrong shape or non-finite outputs.

    Examples:
        >>> import jax, jaxcell as jc
        >>> bounds = [[0.0, 2.0], [0.0, 1.0]]
        >>> x = jc.analysis.morris_sample(bounds, 10, jax.random.key(0))
        >>> m = jc.analysis.morris_indices_from_outputs(x, 3 * x[:, 0], bounds,
        ...                                              jax.random.key(1))
        >>> [round(float(v), 6) for v in m.mu]  # 3 per unit times a range of 2
        [6.0, 0.0]

    References:
        Morris, M. D. (1991). Technometrics 33:161–174. Campolongo, F., Cariboni, J.
        & Saltelli, A. (2007). An effective screening design for sensitivity analysis
        of large models. Environ. Model. Softw. 22:1509–1518.
    """
    where = "morris_indices_from_outputs"
    b = _check_bounds(bounds, where)
    d = b.shape[0]
    names = _check_names(names, d, where)
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", 2, where)
    confidence = _check_confidence(confidence, where)
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != d or x.shape[0] % (d + 1) or x.shape[0] < 2 * (d + 1):
        raise ValueError(
            f"{where}: x must have shape (r (d + 1), d) with d = {d} (rows of bounds) "
            f"and r >= 2 trajectories; got shape {x.shape}."
        )
    y, squeeze = _check_outputs(outputs, x, where, "outputs")
    return _morris_result(x, y, squeeze, b, key, names, n_bootstrap, confidence, where)


def _morris_result(x, y, squeeze, b, key, names, n_bootstrap, confidence, where):
    d = b.shape[0]
    r = x.shape[0] // (d + 1)
    dx = np.diff(x.reshape(r, d + 1, d), axis=1) / (b[:, 1] - b[:, 0])[None, None]
    changed = dx != 0
    per_step = changed.sum(axis=2)
    per_param = changed.sum(axis=1)
    if (per_step != 1).any() or (per_param != 1).any():
        t = int(np.nonzero((per_step != 1).any(1) | (per_param != 1).any(1))[0][0])
        raise ValueError(
            f"{where}: rows {t * (d + 1)}..{t * (d + 1) + d} are not a one-at-a-time "
            f"trajectory: each of the d = {d} steps must change exactly one parameter "
            f"and each parameter must change once (changes per step: "
            f"{per_step[t].tolist()})."
        )
    dy = jnp.diff(y.reshape(r, d + 1, y.shape[1]), axis=1)
    mu, mus, sig, ci = _morris_analyze(jnp.asarray(dx), dy, key, confidence,
                                       n_bootstrap=n_bootstrap)
    if squeeze:
        mu, mus, sig, ci = mu[0], mus[0], sig[0], ci[:, 0]
    return MorrisIndices(mu, mus, sig, ci, names, r, int(x.shape[0]), confidence)


def morris_indices(
    fn: Callable[[Float[Array, "N d"]], Float[Array, " N"] | Float[Array, "N k"]],
    bounds: Float[ArrayLike, "d 2"],
    r: int,
    key: Key,
    *,
    levels: int = 4,
    names: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> MorrisIndices:
    r"""Morris elementary-effects screening of ``fn`` over a box.

    A cheap first look when a model has many parameters: ``r (d + 1)`` evaluations
    (``r`` of 10–50 is usual) rank parameters by :math:`\mu^*`, the mean absolute
    elementary effect, which tracks the total Sobol' index (Campolongo et al. 2007);
    a large :math:`\sigma` flags non-linearity or interactions. Draws
    :func:`morris_sample`, calls ``fn`` **once** on all rows (so it can be a
    vmapped :func:`jaxcell.ensemble`) and summarises with
    :func:`morris_indices_from_outputs`.

    Arguments:
        fn: maps an ``(N, d)`` array of parameter rows to ``(N,)`` or ``(N, k)``
            outputs.
        bounds: ``(d, 2)`` array of ``(low, high)`` per parameter.
        r: number of trajectories, at least 2.
        key: a ``jax.random`` key (split for the design and the bootstrap).
        levels: grid levels :math:`p` (even; default 4).
        names: parameter names (default ``x0, x1, ...``).
        n_bootstrap: number of bootstrap replicates (at least 2).
        confidence: coverage of the interval on ``mu_star``, in (0, 1).

    Returns:
        A :class:`MorrisIndices`.

    Raises:
        ValueError: for bad bounds, ``r < 2``, odd ``levels``, an output of the wrong
            shape or non-finite outputs.

    Examples:
        >>> import jax, jaxcell as jc
        >>> def f(x):  # linear: every elementary effect is a coefficient times a range
        ...     return 2.0 * x[:, 0] - x[:, 1]
        >>> m = jc.analysis.morris_indices(f, [[0.0, 1.0], [0.0, 3.0], [0.0, 1.0]], 20,
        ...                                jax.random.key(0))
        >>> [round(float(v), 6) for v in m.mu], [round(float(v), 6) for v in m.mu_star]
        ([2.0, -3.0, 0.0], [2.0, 3.0, 0.0])

    References:
        Morris, M. D. (1991). Technometrics 33:161–174. Campolongo, F., Cariboni, J.
        & Saltelli, A. (2007). Environ. Model. Softw. 22:1509–1518.
    """
    where = "morris_indices"
    b = _check_bounds(bounds, where)
    d = b.shape[0]
    r = _check_int(r, "r", 2, where)
    levels = _check_levels(levels, where)
    names = _check_names(names, d, where)
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", 2, where)
    confidence = _check_confidence(confidence, where)
    k_sample, k_boot = jax.random.split(key)
    x = _morris_design(jnp.asarray(b), r, k_sample, levels)
    y, squeeze = _check_outputs(fn(x), x, where, "fn(x)")
    return _morris_result(np.asarray(x), y, squeeze, b, k_boot, names, n_bootstrap,
                          confidence, where)
