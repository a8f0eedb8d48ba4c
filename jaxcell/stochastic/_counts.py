"""Likelihood of molecule-count data (single-cell snapshots, e.g. smFISH) under the
master equation: :func:`fsp_log_likelihood` and :class:`CountsObjective` for
:func:`jaxcell.inference.fit` and NUTS."""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from jaxtyping import Array, ArrayLike, Float, Int

from .._errors import InferenceError
from .._process import is_concrete
from .._simulate import simulate
from ..inference import AbstractObjective, Parameter, Parameters
from ._fsp import FSP
from ._stationary import stationary_distribution

#: probabilities are floored here before the log: an observed count the model gives
#: (numerically) zero probability costs about 690 nats instead of infinity.
_TINY = 1e-300


def _histogram(where: str, counts: Any, n_bins: int) -> np.ndarray:
    c = np.asarray(counts)
    if c.size and not np.all(np.isfinite(c.astype(float))):
        raise InferenceError(f"{where}: counts must be finite non-negative integers.")
    c = c.astype(float).reshape(-1)
    if np.any(c != np.round(c)) or np.any(c < 0):
        bad = c[(c != np.round(c)) | (c < 0)][0]
        raise InferenceError(f"{where}: counts must be non-negative integers; got {bad:g}.")
    if c.size and c.max() >= n_bins:
        raise InferenceError(
            f"{where}: a count of {int(c.max())} lies outside the distribution's support "
            f"0..{n_bins - 1} (the FSP box); raise max_counts above the largest observed "
            f"count (with some margin, so that the box holds the distribution).")
    return np.bincount(c.astype(np.int64), minlength=n_bins).astype(float)


def fsp_log_likelihood(p_marginal: Float[ArrayLike, " counts"],
                       counts: Int[ArrayLike, " cells"]) -> Float[Array, ""]:
    r"""The log-likelihood of independent count observations under a distribution:
    :math:`\sum_i \log p(c_i)`.

    ``p_marginal[k]`` is the probability of count ``k`` (e.g.
    :meth:`FSP.marginal` of an FSP solution, or :func:`telegraph_distribution`).
    Probabilities are floored at ``1e-300`` before the log, so a count the model gives
    (numerically) zero or slightly negative probability costs about 690 nats rather
    than ``-inf`` or NaN. Concrete counts are binned first (one term per distinct
    count).

    Arguments:
        p_marginal: the distribution over counts ``0..n-1``.
        counts: the observed counts (any shape), integers in ``0..n-1``.

    Returns:
        The log-likelihood (a scalar), differentiable in ``p_marginal``. Traced counts
        outside ``0..n-1`` give ``-inf``.

    Raises:
        InferenceError: a concrete count is negative, not an integer, or ``>= n`` (outside
            the box: enlarge ``max_counts``).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxcell.stochastic import fsp_log_likelihood
        >>> p = jnp.array([0.5, 0.25, 0.25])
        >>> round(float(fsp_log_likelihood(p, [0, 0, 2])), 6)
        -2.772589
    """
    p = jnp.asarray(p_marginal)
    if p.ndim != 1:
        raise InferenceError(f"fsp_log_likelihood: p_marginal must be one-dimensional (a "
                             f"distribution over counts); got shape {p.shape}.")
    n = p.shape[0]
    logp = jnp.log(jnp.maximum(p, _TINY))
    if is_concrete(counts):
        hist = jnp.asarray(_histogram("fsp_log_likelihood", counts, n), p.dtype)
        return jnp.sum(jnp.where(hist > 0, hist * logp, 0.0))
    c = jnp.asarray(counts).reshape(-1)
    inside = (c >= 0) & (c < n)
    terms = jnp.where(inside, logp[jnp.clip(c, 0, n - 1).astype(jnp.int32)], -jnp.inf)
    return jnp.sum(terms)


class CountsObjective(AbstractObjective):
    r"""The negative log-likelihood of count snapshots of one species under an FSP, as
    an objective of the free parameters: for :func:`jaxcell.inference.fit` (BFGS by
    default), profiles, and NUTS through :meth:`numpyro_model`.

    .. math:: \mathrm{nll}(x) = -\sum_s \sum_k n_{sk} \log p_{s}(k;\ \theta(x))

    where :math:`n_{sk}` is how many cells of snapshot :math:`s` have count :math:`k`,
    and :math:`p_s` the species' marginal: the stationary distribution
    (:func:`stationary_distribution`, ``times=None``) or the FSP solved by
    :func:`jaxcell.simulate` from time 0 to each snapshot time. Exact gradients either
    way (a linear solve, or the ODE solve's adjoint).

    Arguments:
        fsp: the :class:`FSP` (its current parameter values are the defaults).
        counts: the observed counts: one array (one snapshot), or a sequence of arrays,
            one per time of ``times``.
        species: the observed species (an axis of the box).
        parameters: the free parameters: a :class:`jaxcell.inference.Parameters`, or
            names / :class:`jaxcell.inference.Parameter` items of the network's rate
            constants (log scale by default). Give each a ``prior`` for NUTS.
        times: ``None`` for stationary snapshots, else one time per snapshot
            (increasing, after 0; the FSP starts from its initial distribution at 0).
        **simulate_kwargs: passed to :func:`jaxcell.simulate` for timed snapshots
            (``solver``, ``adjoint``, ``max_steps``, ...); default ``throw=False`` (a
            failed solve gives ``nll = inf``).

    Raises:
        InferenceError: a parameter that is not one of the network's, an array
            (``Weights``) item, counts outside the box or not non-negative integers,
            counts and times of different lengths, times not increasing and positive.

    Examples:
        >>> import numpy as np
        >>> from jaxcell.stochastic import (CountsObjective, FSP, telegraph_distribution,
        ...                                 telegraph_network)
        >>> rng = np.random.default_rng(0)
        >>> p = np.asarray(telegraph_distribution(0.5, 1.0, 20.0, 1.0, n_max=80))
        >>> counts = rng.choice(81, size=200, p=p / p.sum())
        >>> fsp = FSP(telegraph_network(), {"G_off": 1, "G_on": 1, "M": 80})
        >>> obj = CountsObjective(fsp, counts, species="M", parameters=["k_on", "K"])
        >>> bool(np.isfinite(obj.nll(obj.parameters.x0)))
        True

    References:
        Munsky, B., Fox, Z. & Neuert, G. (2015). Integrating single-molecule
        experiments and discrete stochastic models to understand heterogeneous gene
        transcription dynamics. Methods 85:12–21.
    """

    fsp: FSP
    parameters: Parameters
    histograms: Array
    simulate_kwargs: dict[str, Any]
    species: str = eqx.field(static=True)
    times: tuple[float, ...] | None = eqx.field(static=True)

    is_least_squares: ClassVar[bool] = False
    #: :func:`fit` stops only on the solver's own convergence test by default.
    default_ftol: ClassVar[float] = 0.0
    #: the first start of :func:`fit` is ``parameters.x0``.
    random_starts_only: ClassVar[bool] = False

    def __init__(self, fsp: FSP, counts: Int[ArrayLike, " cells"] | Sequence[Any], *,
                 species: str, parameters: Parameters | Sequence[Any],
                 times: Sequence[float] | None = None, **simulate_kwargs: Any):
        where = "CountsObjective"
        if not isinstance(fsp, FSP):
            raise InferenceError(f"{where}: fsp must be a jaxcell.stochastic.FSP; got "
                                 f"{type(fsp).__name__}.")
        known = set(fsp.parameters())
        items = parameters.items if isinstance(parameters, Parameters) else list(parameters)
        for item in items:
            name = item if isinstance(item, str) else getattr(item, "name", item)
            if not isinstance(item, (str, Parameter)):
                raise InferenceError(f"{where}: only scalar parameters (names or "
                                     f"Parameter items) can be fitted; got {name!r}.")
            if name not in known:
                raise InferenceError(f"{where}: {name!r} is not a parameter of the "
                                     f"network; parameters are {sorted(known)}.")
        if not isinstance(parameters, Parameters):
            parameters = Parameters(items, model=fsp)
        n_bins = fsp.shape[fsp._axis(species)]
        if times is None:
            snapshots = [counts]
        else:
            times = tuple(float(t) for t in times)
            if not times or times[0] <= 0 or any(b <= a for a, b in zip(times, times[1:])):
                raise InferenceError(f"{where}: times must be increasing and after 0; got "
                                     f"{times}.")
            snapshots = list(counts)
            if len(snapshots) != len(times):
                raise InferenceError(f"{where}: {len(times)} times but {len(snapshots)} "
                                     f"count arrays; give one array per time.")
        hist = np.stack([_histogram(where, c, n_bins) for c in snapshots])
        self.fsp = fsp
        self.parameters = parameters
        self.histograms = jnp.asarray(hist)
        self.simulate_kwargs = {"throw": False, **simulate_kwargs}
        self.species = species
        self.times = times

    @property
    def forward_mode(self) -> bool:
        """Whether the simulations are differentiated forwards only
        (``adjoint=diffrax.ForwardMode()`` among the ``simulate_kwargs``)."""
        return isinstance(self.simulate_kwargs.get("adjoint"), diffrax.ForwardMode)

    def distributions(self, values: dict[str, ArrayLike]) -> Float[Array, "snapshots counts"]:
        """The observed species' marginal at every snapshot, ``(snapshots, counts)``,
        for natural-scale ``values`` (NaN-free but meaningless where a timed solve
        failed; :meth:`log_likelihood` is ``-inf`` there)."""
        return self._distributions(values)[0]

    def _distributions(self, values):
        model = self.parameters.apply(self.fsp, dict(values))
        if self.times is None:
            p = stationary_distribution(model)[None]
            ok = jnp.asarray(True)
        else:
            traj = simulate(model, 0.0, self.times[-1], saveat=jnp.asarray(self.times),
                            **self.simulate_kwargs)
            p, ok = traj[model.path], jnp.all(traj.success)
        return model.marginal(p, self.species), ok

    def log_likelihood(self, values: dict[str, ArrayLike]) -> Float[Array, ""]:
        """The log-likelihood at natural-scale ``values`` ``{name: value}``: ``-inf``
        where a value is not finite (an overflowing proposal of NUTS or a line search;
        the model is then evaluated at its own values, so no parameter check fires) or
        a solve failed. Traceable."""
        defaults = self.fsp.parameters()
        finite = jnp.all(jnp.stack([jnp.isfinite(jnp.asarray(v)) for v in values.values()]))
        values = {k: jnp.where(finite, v, jax.lax.stop_gradient(defaults[k]))
                  for k, v in values.items()}
        marg, ok = self._distributions(values)
        ok = ok & finite
        logp = jnp.log(jnp.maximum(marg, _TINY))
        ll = jnp.sum(jnp.where(self.histograms > 0, self.histograms * logp, 0.0))
        return jnp.where(ok, ll, -jnp.inf)

    def nll(self, x: ArrayLike) -> Array:
        """The negative log-likelihood (plus penalties) at the search vector ``x``
        (compiled once per objective structure; traceable)."""
        return _nll_jit(self, jnp.asarray(x, float))

    def residuals(self, x: ArrayLike) -> Array:
        """Not a sum of squares: raises :class:`jaxcell.InferenceError`."""
        raise InferenceError("CountsObjective is a count likelihood, not a sum of squares; "
                             "fit it with a minimiser such as optimistix.BFGS (the default).")

    def nll_constant(self) -> Array:
        """Not a sum of squares: raises :class:`jaxcell.InferenceError`."""
        raise InferenceError("CountsObjective is a count likelihood, not a sum of squares.")

    def numpyro_model(self) -> Callable[..., None]:
        """The posterior as a numpyro model for
        :func:`jaxcell.inference.sample_nuts`: each free parameter drawn from its
        ``prior`` (natural scale), the log-likelihood (and penalties) as a factor. Call
        it with no data (the counts live in the objective).

        Raises:
            InferenceError: a free parameter has no prior.
        """
        missing = [p.name for p in self.parameters.items if p.prior is None]
        if missing:
            raise InferenceError(f"CountsObjective.numpyro_model: parameters {missing} have "
                                 f"no prior; give Parameter(..., prior=numpyro."
                                 f"distributions.X(...)).")
        objective = self

        def model(data: Any = None) -> None:
            values = {p.name: numpyro.sample(p.name, p.prior)
                      for p in objective.parameters.items}
            ll = objective.log_likelihood(values)
            if objective.parameters.has_penalty:
                ll = ll - objective.parameters.penalty(objective.parameters.to_search(values))
            numpyro.factor("log_likelihood", jnp.where(jnp.isfinite(ll), ll, -jnp.inf))

        return model


@eqx.filter_jit
def _nll_jit(objective: CountsObjective, x: Array) -> Array:
    nll = -objective.log_likelihood(objective.parameters.values(x))
    if objective.parameters.has_penalty:
        nll = nll + objective.parameters.penalty(x)
    return nll
