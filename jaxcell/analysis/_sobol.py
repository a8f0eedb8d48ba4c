r"""Variance-based global sensitivity analysis: Sobol' first-order and total indices.

Also holds the helpers shared with :mod:`._morris` (bounds and output checks, percentile
bootstrap intervals, the result table).
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._custom_types import Key

# -- shared helpers --------------------------------------------------------------------


def _check_bounds(bounds, where: str) -> np.ndarray:
    """``bounds`` as a float ``(d, 2)`` NumPy array of finite ``low < high`` pairs."""
    try:
        b = np.asarray(bounds, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: bounds must be a (d, 2) array of numbers, one (low, high) row per "
            f"parameter; got {bounds!r}."
        ) from None
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] < 1:
        raise ValueError(
            f"{where}: bounds must have shape (d, 2), one (low, high) row per parameter; "
            f"got shape {b.shape}."
        )
    if not np.all(np.isfinite(b)):
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(b))[0]})
        raise ValueError(f"{where}: bounds of parameters {bad} are not finite: {b[bad].tolist()}.")
    bad = np.nonzero(b[:, 0] >= b[:, 1])[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{where}: bounds need low < high for every parameter; parameter {i} has "
            f"low={float(b[i, 0])!r}, high={float(b[i, 1])!r} ({bad.size} such row(s))."
        )
    return b


def _check_names(names, d: int, where: str) -> tuple[str, ...]:
    if names is None:
        return tuple(f"x{i}" for i in range(d))
    if isinstance(names, str):
        raise ValueError(f"{where}: names must be a sequence of {d} strings, not one string.")
    names = tuple(str(n) for n in names)
    if len(names) != d:
        raise ValueError(f"{where}: got {len(names)} names for {d} parameters (rows of bounds).")
    return names


def _check_int(value, name: str, minimum: int, where: str) -> int:
    try:
        v = operator.index(value)  # ints and NumPy integers, not floats
    except TypeError:
        v = None
    if v is None or isinstance(value, bool) or v < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}; got {value!r}.")
    return v


def _check_confidence(confidence, where: str) -> float:
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"{where}: confidence must lie strictly between 0 and 1; got {c!r}.")
    return c


def _check_outputs(y, x, where: str, what: str) -> tuple[Array, bool]:
    """Validate model outputs for the ``N`` rows of ``x``; return ``(N, k)`` and a flag."""
    n = x.shape[0]
    y = jnp.asarray(y)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(
            f"{where}: {what} must have shape (N,) or (N, k) with N = {n} (one output row "
            f"per parameter row); got shape {y.shape}."
        )
    if not jnp.issubdtype(y.dtype, jnp.floating) and not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{where}: {what} must be real numbers; got dtype {y.dtype}.")
    squeeze = y.ndim == 1
    y2 = (y[:, None] if squeeze else y).astype(jnp.result_type(float))
    bad = np.asarray(~jnp.all(jnp.isfinite(y2), axis=1))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{where}: {what} has non-finite values (NaN or inf) in {int(bad.sum())} of "
            f"{n} rows; the first is row {i}, parameters {np.asarray(x[i]).tolist()}. "
            f"Restrict the bounds, or map failed simulations to a finite value."
        )
    if y2.shape[1] == 0:
        raise ValueError(f"{where}: {what} has no outputs (shape {y.shape}).")
    return y2, squeeze


def _warn_constant(y: Array, where: str) -> None:
    const = np.nonzero(np.asarray(jnp.ptp(y, axis=0) == 0))[0]
    if const.size:
        warnings.warn(
            f"{where}: output(s) {const.tolist()} are constant over all samples; their "
            f"indices are reported as 0.",
            UserWarning,
            stacklevel=3,
        )


def _percentiles(samples: Array, confidence) -> Array:
    """Percentile interval over the leading (replicate) axis: shape ``(2, ...)``."""
    q = jnp.stack([(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return jnp.quantile(samples, q, axis=0)


def _table(title: str, names: tuple[str, ...], columns: dict[str, np.ndarray],
           intervals: dict[str, np.ndarray]) -> str:
    """Plain text table: one line per parameter, each column ``value [lo, hi]``."""
    w = max(9, *(len(n) for n in names))
    head = f"{'parameter':<{w}}" + "".join(
        f"  {c:>9}" + (f"  {'interval':>19}" if c in intervals else "") for c in columns)
    lines = [title, head]
    for i, n in enumerate(names):
        line = f"{n:<{w}}"
        for c, v in columns.items():
            line += f"  {v[i]:>9.4g}"
            if c in intervals:
                lo, hi = intervals[c][0][i], intervals[c][1][i]
                line += f"  [{lo:>8.3g}, {hi:>8.3g}]"
        lines.append(line)
    return "\n".join(lines)


def _by_output(a: Array, squeeze: bool) -> np.ndarray:
    """``(k, d)`` view of an index array stored as ``(d,)`` or ``(k, d)``."""
    a = np.asarray(a)
    return a[None] if squeeze else a


# -- Sobol' ----------------------------------------------------------------------------


class SobolIndices(eqx.Module):
    """First-order and total Sobol' indices with bootstrap percentile intervals.

    Index arrays have shape ``(d,)`` when ``fn`` returned one output per row and
    ``(k, d)`` for ``k`` outputs; an interval array stacks ``(low, high)`` on a leading
    axis of size 2. ``str(result)`` or :meth:`table` gives a readable table.

    Attributes:
        first_order: :math:`S_i`, the share of the output variance explained by
            parameter :math:`i` alone.
        total: :math:`S_{Ti}`, the share involving parameter :math:`i` (alone or in
            interactions).
        first_order_interval: bootstrap interval of ``first_order``, shape ``(2, ...)``.
        total_interval: bootstrap interval of ``total``, shape ``(2, ...)``.
        names: parameter names, one per row of ``bounds``.
        n_evaluations: number of rows evaluated, ``n (d + 2)``.
        confidence: coverage of the intervals.
    """

    first_order: Float[Array, "*k d"]
    total: Float[Array, "*k d"]
    first_order_interval: Float[Array, "2 *k d"]
    total_interval: Float[Array, "2 *k d"]
    names: tuple[str, ...] = eqx.field(static=True)
    n_evaluations: int = eqx.field(static=True)
    confidence: float = eqx.field(static=True)

    def table(self) -> str:
        """The indices as a plain text table (one block per output)."""
        squeeze = np.ndim(self.first_order) == 1
        s1, st = _by_output(self.first_order, squeeze), _by_output(self.total, squeeze)
        i1 = np.asarray(self.first_order_interval)
        it = np.asarray(self.total_interval)
        if squeeze:
            i1, it = i1[:, None], it[:, None]
        blocks = []
        for k in range(s1.shape[0]):
            title = (f"Sobol' indices ({self.n_evaluations} evaluations, "
                     f"{self.confidence:.0%} bootstrap intervals)")
            if not squeeze:
                title += f", output {k}"
            blocks.append(_table(title, self.names, {"S1": s1[k], "ST": st[k]},
                                 {"S1": i1[:, k], "ST": it[:, k]}))
        return "\n\n".join(blocks)

    def __repr__(self) -> str:
        return self.table()


def saltelli_sample(
    bounds: Float[ArrayLike, "d 2"], n: int, key: Key
) -> Float[Array, "N d"]:
    r"""Saltelli's design: base matrices :math:`A`, :math:`B` and the :math:`A_B^{(i)}`.

    :math:`A` and :math:`B` are ``(n, d)`` matrices of independent uniform draws on
    the box ``bounds``; :math:`A_B^{(i)}` is :math:`A` with column :math:`i` taken
    from :math:`B`. The rows are returned stacked in blocks,
    ``[A; B; A_B^(1); ...; A_B^(d)]``, ready for one call of a vectorised model.

    The draws are plain pseudo-random (``jax.random.uniform``), not a scrambled Sobol'
    sequence: the rows are then independent, which is what the row bootstrap of
    :func:`sobol_indices_from_outputs` assumes (for quasi-random rows its intervals are
    not calibrated), any ``n`` and any dimension work, and no SciPy is needed. A
    low-discrepancy design converges faster; build ``A`` and ``B`` with one (e.g.
    ``scipy.stats.qmc.Sobol``), stack them in the layout above and pass the outputs
    to :func:`sobol_indices_from_outputs`.

    Arguments:
        bounds: ``(d, 2)`` array of ``(low, high)`` per parameter (uniform inputs).
        n: number of base samples (rows of :math:`A`), at least 2.
        key: a ``jax.random`` key.

    Returns:
        The ``(n (d + 2), d)`` parameter rows.

    Raises:
        ValueError: for bounds not of shape ``(d, 2)`` with finite ``low < high``, or
            ``n < 2``.

    Examples:
        >>> import jax, jaxcell as jc
        >>> x = jc.analysis.saltelli_sample([[0.0, 1.0], [10.0, 20.0]], 4,
        ...                                 jax.random.key(0))
        >>> x.shape
        (16, 2)
        >>> bool((x[8:12, 0] == x[4:8, 0]).all() and (x[8:12, 1] == x[0:4, 1]).all())
        True

    References:
        Saltelli, A. (2002). Making best use of model evaluations to compute
        sensitivity indices. Comput. Phys. Commun. 145:280–297.
    """
    b = _check_bounds(bounds, "saltelli_sample")
    n = _check_int(n, "n", 2, "saltelli_sample")
    return _saltelli(jnp.asarray(b), n, key)


@functools.partial(jax.jit, static_argnums=1)
def _saltelli(b: Array, n: int, key: Key) -> Array:
    d = b.shape[0]
    ka, kb = jax.random.split(key)
    a = jax.random.uniform(ka, (n, d), dtype=b.dtype)
    bb = jax.random.uniform(kb, (n, d), dtype=b.dtype)
    ab = jnp.where(jnp.eye(d, dtype=bool)[:, None, :], bb[None], a[None])
    u = jnp.concatenate([a, bb, ab.reshape(d * n, d)])
    return b[:, 0][None] + u * (b[:, 1] - b[:, 0])[None]


def _sobol_estimates(fa: Array, fb: Array, fab: Array) -> tuple[Array, Array]:
    """S1 (Saltelli 2010) and ST (Jansen 1999), each ``(k, d)``.

    ``fa``, ``fb``: ``(n, k)``; ``fab``: ``(d, n, k)``. Outputs are centred on the mean
    of all evaluations first (as SALib does), which removes the bias that a large mean
    gives the first-order estimator.
    """
    n, d = fa.shape[0], fab.shape[0]
    m = (fa.sum(0) + fb.sum(0) + fab.sum((0, 1))) / (n * (d + 2))
    fa, fb, fab = fa - m[None], fb - m[None], fab - m[None, None]
    var = jnp.var(jnp.concatenate([fa, fb]), axis=0)
    ok = var > 0
    safe = jnp.where(ok, var, 1.0)[None]
    s1 = jnp.mean(fb[None] * (fab - fa[None]), axis=1) / safe
    st = 0.5 * jnp.mean((fa[None] - fab) ** 2, axis=1) / safe
    return jnp.where(ok[None], s1, 0.0).T, jnp.where(ok[None], st, 0.0).T


@functools.partial(jax.jit, static_argnames=("d", "n_bootstrap"))
def _sobol_analyze(y, key, confidence, *, d: int, n_bootstrap: int):
    n = y.shape[0] // (d + 2)
    fa, fb, fab = y[:n], y[n:2 * n], y[2 * n:].reshape(d, n, y.shape[1])
    s1, st = _sobol_estimates(fa, fb, fab)

    def replicate(k):
        i = jax.random.randint(k, (n,), 0, n)
        return _sobol_estimates(fa[i], fb[i], fab[:, i])

    keys = jax.random.split(key, n_bootstrap)
    b1, bt = jax.lax.map(replicate, keys, batch_size=min(n_bootstrap, 32))
    return s1, st, _percentiles(b1, confidence), _percentiles(bt, confidence)


def sobol_indices_from_outputs(
    outputs: Float[ArrayLike, " N"] | Float[ArrayLike, "N k"],
    n_parameters: int,
    key: Key,
    *,
    names: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> SobolIndices:
    r"""Sobol' indices from model outputs on a Saltelli design.

    ``outputs`` are the model's values on the rows of :func:`saltelli_sample` (or any
    design in the same block layout ``[A; B; A_B^(1); ...; A_B^(d)]``). With outputs
    centred on their mean and :math:`V` the variance of the :math:`f(A)` and
    :math:`f(B)` values together,

    .. math::

        S_i = \frac{1}{V n}\sum_j f(B)_j\,\bigl(f(A_B^{(i)})_j - f(A)_j\bigr),\qquad
        S_{Ti} = \frac{1}{2 V n}\sum_j \bigl(f(A)_j - f(A_B^{(i)})_j\bigr)^2

    (Saltelli et al. 2010, their Table 2, b and f: the first-order estimator of
    Saltelli 2010 and the total-effect estimator of Jansen 1999; the formulas of
    ``SALib.analyze.sobol``). Intervals: ``n_bootstrap`` resamplings of the ``n``
    base rows with replacement (the same rows of :math:`A`, :math:`B` and every
    :math:`A_B^{(i)}`), vmapped and jit-compiled, percentile intervals.

    Arguments:
        outputs: ``(n (d + 2),)`` or ``(n (d + 2), k)`` model outputs.
        n_parameters: :math:`d`.
        key: a ``jax.random`` key for the bootstrap.
        names: parameter names (default ``x0, x1, ...``).
        n_bootstrap: number of bootstrap replicates (at least 2).
        confidence: coverage of the percentile intervals, in (0, 1).

    Returns:
        A :class:`SobolIndices`.

    Raises:
        ValueError: for outputs whose length is not a multiple ``n (d + 2)`` with
            ``n >= 2``, non-finite outputs, or bad ``names``, ``n_bootstrap`` or
            ``confidence``. Outputs that are constant get indices 0 and a warning.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxcell as jc
        >>> x = jc.analysis.saltelli_sample([[0.0, 1.0]] * 2, 256, jax.random.key(0))
        >>> r = jc.analysis.sobol_indices_from_outputs(x[:, 0], 2, jax.random.key(1))
        >>> [round(float(v), 1) for v in r.total]  # only x0 matters
        [1.0, 0.0]

    References:
        Saltelli, A., Annoni, P., Azzini, I., Campolongo, F., Ratto, M. & Tarantola,
        S. (2010). Variance based sensitivity analysis of model output. Design and
        estimator for the total sensitivity index. Comput. Phys. Commun.
        181:259–270. Jansen, M. J. W. (1999). Analysis of variance designs for model
        output. Comput. Phys. Commun. 117:35–43. Sobol', I. M. (2001). Global
        sensitivity indices for nonlinear mathematical models and their Monte Carlo
        estimates. Math. Comput. Simul. 55:271–280.
    """
    where = "sobol_indices_from_outputs"
    d = _check_int(n_parameters, "n_parameters", 1, where)
    names = _check_names(names, d, where)
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", 2, where)
    confidence = _check_confidence(confidence, where)
    y = jnp.asarray(outputs)
    rows = y.shape[0] if y.ndim else 0
    if y.ndim not in (1, 2) or rows % (d + 2) or rows < 2 * (d + 2):
        raise ValueError(
            f"{where}: outputs must have shape (n (d + 2),) or (n (d + 2), k) with d = "
            f"{d} and n >= 2, in the layout of saltelli_sample; got shape {y.shape}."
        )
    y, squeeze = _check_outputs(y, np.zeros((rows, d)), where, "outputs")
    return _sobol_result(y, squeeze, d, key, names, n_bootstrap, confidence, where)


def _sobol_result(y, squeeze, d, key, names, n_bootstrap, confidence, where):
    _warn_constant(y, where)
    s1, st, i1, it = _sobol_analyze(y, key, confidence, d=d, n_bootstrap=n_bootstrap)
    if squeeze:
        s1, st, i1, it = s1[0], st[0], i1[:, 0], it[:, 0]
    return SobolIndices(s1, st, i1, it, names, int(y.shape[0]), confidence)


def sobol_indices(
    fn: Callable[[Float[Array, "N d"]], Float[Array, " N"] | Float[Array, "N k"]],
    bounds: Float[ArrayLike, "d 2"],
    n: int,
    key: Key,
    *,
    names: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> SobolIndices:
    r"""First-order and total Sobol' indices of ``fn`` over uniform inputs on a box.

    For independent inputs :math:`X_i` and output :math:`Y = f(X)`, the first-order
    index :math:`S_i = \mathrm{Var}(E[Y\mid X_i])/\mathrm{Var}(Y)` is the share of
    the variance that :math:`X_i` explains alone, and the total index
    :math:`S_{Ti} = E[\mathrm{Var}(Y\mid X_{\sim i})]/\mathrm{Var}(Y)` the share it
    has a part in, interactions included (Sobol' 2001). :math:`S_{Ti} = 0` means the
    parameter can be fixed anywhere in its range; :math:`S_{Ti} - S_i` measures its
    interactions.

    Draws the Saltelli design with :func:`saltelli_sample` (pseudo-random uniform
    rows; see there why), calls ``fn`` **once** on all ``n (d + 2)`` rows, so ``fn``
    can be a jit-compiled, vmapped simulation such as :func:`jaxcell.ensemble`, and
    estimates the indices with :func:`sobol_indices_from_outputs`.

    Arguments:
        fn: maps an ``(N, d)`` array of parameter rows to ``(N,)`` or ``(N, k)``
            outputs.
        bounds: ``(d, 2)`` array of ``(low, high)`` per parameter.
        n: number of base samples; the cost is ``n (d + 2)`` evaluations. The Monte
            Carlo error falls as :math:`1/\sqrt n`: read it off the intervals.
        key: a ``jax.random`` key (split for the design and the bootstrap).
        names: parameter names (default ``x0, x1, ...``).
        n_bootstrap: number of bootstrap replicates (at least 2).
        confidence: coverage of the percentile intervals, in (0, 1).

    Returns:
        A :class:`SobolIndices`.

    Raises:
        ValueError: for bad bounds (shape, ``low >= high``, not finite), ``n < 2``,
            an output of the wrong shape, or non-finite outputs (the message says
            how many rows and gives the first one's parameters).

    Examples:
        >>> import jax, jax.numpy as jnp, jaxcell as jc
        >>> def f(x):  # x0 matters alone, x1 and x2 only together, x3 not at all
        ...     return x[:, 0] + x[:, 1] * x[:, 2]
        >>> r = jc.analysis.sobol_indices(f, [[-1.0, 1.0]] * 4, 1024, jax.random.key(0),
        ...                               n_bootstrap=200)
        >>> r.n_evaluations
        6144
        >>> # analytic: S1 = (0.75, 0, 0, 0), ST = (0.75, 0.25, 0.25, 0)
        >>> bool(jnp.allclose(r.first_order, jnp.array([0.75, 0.0, 0.0, 0.0]), atol=0.05))
        True
        >>> bool(jnp.allclose(r.total, jnp.array([0.75, 0.25, 0.25, 0.0]), atol=0.05))
        True

    References:
        Sobol', I. M. (2001). Math. Comput. Simul. 55:271–280. Saltelli, A. (2002).
        Comput. Phys. Commun. 145:280–297. Saltelli, A. et al. (2010). Comput.
        Phys. Commun. 181:259–270. Jansen, M. J. W. (1999). Comput. Phys. Commun.
        117:35–43.
    """
    where = "sobol_indices"
    b = _check_bounds(bounds, where)
    d = b.shape[0]
    n = _check_int(n, "n", 2, where)
    names = _check_names(names, d, where)
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", 2, where)
    confidence = _check_confidence(confidence, where)
    k_sample, k_boot = jax.random.split(key)
    x = _saltelli(jnp.asarray(b), n, k_sample)
    y, squeeze = _check_outputs(fn(x), x, where, "fn(x)")
    return _sobol_result(y, squeeze, d, k_boot, names, n_bootstrap, confidence, where)
