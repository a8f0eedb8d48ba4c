"""Bayesian inference of jaxcell models with numpyro: NUTS and stochastic variational
inference.

A jaxcell model is a pytree whose parameters are leaves, and :func:`jaxcell.simulate` is
a differentiable JAX function, so a simulation can sit inside a numpyro model like any
other deterministic function. This module adds the few pieces that are specific to
simulations:

- :func:`numpyro_model` builds the numpyro model function from priors, a function that
  simulates, and an observation likelihood; a failed solve (``throw=False``) gives the
  proposal a log density of ``-inf`` instead of NaN, so HMC rejects it and carries on.
- :func:`sample_nuts` runs NUTS and returns a :class:`BayesResult` (summary table with
  R-hat and effective sample size, ArviZ export, posterior predictive draws).
- :func:`fit_svi` fits an automatic guide (default ``AutoNormal``) with an optax or
  numpyro optimiser and returns a :class:`SVIResult` (median and quantiles).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoGuide, AutoNormal
from numpyro.infer.initialization import init_to_median, init_to_value
from numpyro.optim import optax_to_numpyro

from .._errors import InferenceError
from .._trajectory import Trajectory
from ._objective import Objective

_FAILED = "solve_failed"
_NON_FINITE = "non_finite_parameter"


def _sanitise(prediction: Any, ok: jax.Array) -> Any:
    """Replace a failed solve's values by ones (finite, positive), with no gradient, so
    that the likelihood stays finite and only the ``-inf`` factor rejects the point."""

    def fix(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
            safe = jnp.where(jnp.isfinite(x), x, 1.0)
            return jnp.where(ok, safe, jax.lax.stop_gradient(jnp.ones_like(x)))
        return x

    return jax.tree_util.tree_map(fix, prediction)


def numpyro_model(
    simulate_fn: Callable[[dict[str, jax.Array]], Any],
    priors: Mapping[str, dist.Distribution],
    likelihood: Callable[[Any, dict[str, jax.Array]], dist.Distribution],
    *,
    obs_name: str = "obs",
) -> Callable[..., None]:
    r"""Build a numpyro model function from priors, a simulation and a likelihood.

    The returned function ``model(data=None)``

    1. draws every prior, ``theta[name] = numpyro.sample(name, priors[name])``, in the
       order given;
    2. simulates, ``sim = simulate_fn(theta)`` — typically
       ``jc.simulate(model.replace_parameters({...}), t0, t1, saveat=ts, y0={...},
       throw=False)``. ``simulate_fn`` may return a :class:`jaxcell.Trajectory`, or a
       pair ``(prediction, success)`` of any pytree and a boolean;
    3. adds a factor ``log p = 0`` if the solve succeeded and ``-inf`` if it failed
       (or returned non-finite values) or a drawn value is not finite (site
       ``"non_finite_parameter"``: the model is then simulated at a fixed draw of the
       priors instead, so its own checks on parameter values do not abort sampling)
       (site ``"solve_failed"``), and replaces the failed solve's values by ones, so
       the log density is exactly ``-inf`` (never NaN) and NUTS rejects the proposal;
    4. observes ``numpyro.sample(obs_name, likelihood(sim, theta), obs=data)``. With
       ``data=None`` the observation is sampled instead (prior or posterior predictive).

    Noise parameters (e.g. a log-normal :math:`\sigma`) are priors like the others; the
    likelihood receives all of ``theta``.

    Arguments:
        simulate_fn: ``theta -> Trajectory`` (or ``(prediction, success)``). Use
            ``throw=False`` in :func:`jaxcell.simulate`.
        priors: ``{name: numpyro distribution}``.
        likelihood: ``(sim, theta) -> distribution`` of the observations.
        obs_name: name of the observed site.

    Returns:
        A numpyro model ``model(data=None)``.

    Raises:
        InferenceError: a prior is not a numpyro distribution, or a prior is named like
            the observed site; when the model runs, ``simulate_fn`` returned neither a
            Trajectory nor a ``(prediction, success)`` pair.

    Examples:
        >>> import diffrax, jax.numpy as jnp, numpyro.distributions as dist
        >>> import jaxcell as jc
        >>> from jaxcell.inference import numpyro_model
        >>> decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...                parameters={"k": 0.5})
        >>> ts = jnp.linspace(0.0, 4.0, 5)
        >>> model = numpyro_model(
        ...     lambda th: jc.simulate(decay, 0.0, 4.0, saveat=ts, y0={"x": th["x0"]},
        ...                            solver=diffrax.Tsit5(), throw=False),
        ...     {"x0": dist.Normal(1.0, 0.5)},
        ...     lambda traj, th: dist.Normal(traj["x"], 0.1),
        ... )
    """
    priors = dict(priors)
    for name, prior in priors.items():
        if not isinstance(prior, dist.Distribution):
            raise InferenceError(
                f"numpyro_model: priors[{name!r}] must be a numpyro distribution; got "
                f"{type(prior).__name__}."
            )
    if obs_name in priors or _FAILED in priors or _NON_FINITE in priors:
        raise InferenceError(
            f"numpyro_model: prior names must differ from the observed site {obs_name!r} and from "
            f"{_FAILED!r} and {_NON_FINITE!r}."
        )

    # A value inside each prior's support, used in place of a non-finite proposal (an
    # unconstrained coordinate far out in a leapfrog step maps to inf): the model's own
    # checks would otherwise abort the whole run instead of rejecting the proposal.
    fallback = {name: prior.sample(jax.random.key(0)) for name, prior in priors.items()}

    def model(data=None):
        theta = {name: numpyro.sample(name, prior) for name, prior in priors.items()}
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in theta.values()]))
        numpyro.factor(_NON_FINITE, jnp.where(finite, 0.0, -jnp.inf))
        theta = {name: jnp.where(finite, v, fallback[name]) for name, v in theta.items()}
        sim = simulate_fn(theta)
        if isinstance(sim, Trajectory):
            ok = jnp.all(sim.success)
        elif isinstance(sim, tuple) and len(sim) == 2:
            sim, ok = sim[0], jnp.all(jnp.asarray(sim[1]))
        else:
            raise InferenceError(
                "numpyro_model: simulate_fn must return a jaxcell.Trajectory or a pair "
                f"(prediction, success); got {type(sim).__name__}."
            )
        # a solve that "succeeded" with non-finite values (overflow) is a failure too
        leaves = [x for x in jax.tree_util.tree_leaves(sim) if isinstance(x, jax.Array)
                  and jnp.issubdtype(x.dtype, jnp.floating)]
        if leaves:
            ok = ok & jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        numpyro.factor(_FAILED, jnp.where(ok, 0.0, -jnp.inf))
        sim = _sanitise(sim, ok)
        numpyro.sample(obs_name, likelihood(sim, theta), obs=data)

    return model


def objective_model(objective: Objective) -> Callable[..., None]:
    """The numpyro model of a fitting :class:`~jaxcell.inference.Objective`: every free
    parameter drawn from its ``prior`` (natural scale), and the objective's own
    log-likelihood (its experiments and noise models) as a ``numpyro.factor``. The same
    problem that :func:`~jaxcell.inference.fit` optimises, as a posterior for
    :func:`sample_nuts` or :func:`fit_svi` (call the model with no data: the data live
    in the objective). A failed simulation gives log density ``-inf``.

    :class:`~jaxcell.inference.Weights` items (network weights) are one site each,
    named like the item, holding all their elements; the prior is broadcast over them
    (a Bayesian last layer: ``Weights("interaction.net.layers[-1]",
    prior=dist.Normal(0, 1))`` with the rest of the trained network fixed in the
    model). Penalties count as log-prior terms.

    Only :class:`~jaxcell.inference.Objective` has what this needs (priors on its
    :class:`~jaxcell.inference.Parameters`, a log-likelihood on the natural scale); a
    PEtab problem's priors are read by ``jaxcell.petab``.

    Raises:
        InferenceError: ``objective`` is not an :class:`~jaxcell.inference.Objective`,
            or a free parameter has no prior.
    """
    if not isinstance(objective, Objective):
        raise InferenceError(
            f"objective_model: objective must be a jaxcell.inference.Objective (priors "
            f"on its Parameters, log-likelihood of its experiments); got "
            f"{type(objective).__module__}.{type(objective).__qualname__}.")
    missing = [p.name for p in objective.parameters.items if p.prior is None]
    if missing:
        raise InferenceError(f"objective_model: parameters {missing} have no prior; give "
                             f"Parameter(..., prior=numpyro.distributions.X(...)).")

    def model(data: Any = None) -> None:
        values = {}
        for p, lay in zip(objective.parameters.items, objective.parameters.layouts):
            if lay is None:
                values[p.name] = numpyro.sample(p.name, p.prior)
            else:  # Weights: one site of all its elements (natural scale)
                prior = p.prior
                if prior.event_shape != (lay.size,):
                    prior = prior.expand((lay.size,)).to_event(1)
                values[p.name] = lay.unflatten(numpyro.sample(p.name, prior))
        ll = objective.log_likelihood(values)
        if objective.parameters.has_penalty:
            ll = ll - objective.parameters.penalty(objective.parameters.to_search(values))
        numpyro.factor("log_likelihood", jnp.where(jnp.isfinite(ll), ll, -jnp.inf))

    return model


def log_density(model_fn: Callable[..., None], params: Mapping[str, Any],
                data: Any = None) -> jax.Array:
    """The joint log density of ``model_fn(data)`` at ``params`` (constrained values),
    as NUTS sees it (up to the Jacobian of the transforms to unconstrained space).

    ``-inf`` where the simulation failed or a value is outside a prior's support.
    """
    logp, _ = numpyro.infer.util.log_density(model_fn, (data,), {}, dict(params))
    return logp


def _init_strategy(init):
    if init is None:
        return init_to_median(num_samples=15)
    if isinstance(init, Mapping):
        return init_to_value(values=dict(init))
    return init


def _quantile_keys(prob: float) -> tuple[str, str]:
    lo, hi = (1.0 - prob) / 2.0, (1.0 + prob) / 2.0
    return f"q{100 * lo:g}", f"q{100 * hi:g}"


def _summarise(samples: Mapping[str, np.ndarray], prob: float) -> dict[str, dict[str, Any]]:
    """Statistics per site of samples shaped ``(chains, draws, ...)``."""
    klo, khi = _quantile_keys(prob)
    out = {}
    for name, x in samples.items():
        x = np.asarray(x, dtype=float)
        flat = x.reshape((-1,) + x.shape[2:])
        row = {
            "mean": flat.mean(0),
            "sd": flat.std(0, ddof=1),
            klo: np.quantile(flat, (1.0 - prob) / 2.0, axis=0),
            "median": np.median(flat, axis=0),
            khi: np.quantile(flat, (1.0 + prob) / 2.0, axis=0),
            "r_hat": np.asarray(split_gelman_rubin(x)),
            "ess": np.asarray(effective_sample_size(x)),
        }
        out[name] = {k: (float(v) if np.ndim(v) == 0 else v) for k, v in row.items()}
    return out


class BayesResult:
    """Posterior draws from :func:`sample_nuts`, with diagnostics.

    Attributes:
        samples: ``{site: array}`` with shape ``(chains, draws, *site_shape)``.
        mcmc: the :class:`numpyro.infer.MCMC` object.
        model_fn: the numpyro model.
        data: the observed data the chain was conditioned on.
        num_divergent: number of divergent transitions after warm-up.
        seconds: wall-clock time of warm-up and sampling (including compilation).
    """

    def __init__(self, mcmc: MCMC, model_fn: Callable[..., None], data: Any,
                 seconds: float):
        self.mcmc = mcmc
        self.model_fn = model_fn
        self.data = data
        self.seconds = seconds
        self.samples = {k: np.asarray(v)
                        for k, v in mcmc.get_samples(group_by_chain=True).items()}
        extra = mcmc.get_extra_fields(group_by_chain=True)
        self.num_divergent = int(np.sum(np.asarray(extra["diverging"])))

    def summary(self, prob: float = 0.8) -> dict[str, dict[str, Any]]:
        """Posterior statistics per parameter.

        For every sampled site: ``mean``, ``sd``, the central ``prob`` interval (keys
        ``q10`` and ``q90`` for ``prob=0.8``), ``median``, split-chain ``r_hat``
        (:func:`numpyro.diagnostics.split_gelman_rubin`) and ``ess``
        (:func:`numpyro.diagnostics.effective_sample_size`). Scalars are floats,
        vector-valued sites give arrays.
        """
        return _summarise(self.samples, prob)

    def table(self, prob: float = 0.8, digits: int = 4) -> str:
        """The summary as a plain-text table, one row per scalar component."""
        klo, khi = _quantile_keys(prob)
        cols = ("mean", "sd", klo, khi, "r_hat", "ess")
        lines = [f"{'':>10}" + "".join(f"{c:>11}" for c in cols)]
        for name, row in self.summary(prob).items():
            size = np.size(row["mean"])
            for i in range(size):
                label = name if size == 1 else f"{name}[{i}]"
                vals = [np.ravel(row[c])[i] for c in cols]
                lines.append(f"{label:>10}" + "".join(f"{v:>11.{digits}g}" for v in vals))
        return "\n".join(lines)

    def to_arviz(self):
        """The run as an :class:`arviz.InferenceData` (``arviz.from_numpyro``).

        Raises:
            ImportError: arviz is not installed (``pip install arviz``).
        """
        try:
            with warnings.catch_warnings():
                # arviz 0.23 announces its 1.0 refactor with a FutureWarning at import:
                # nothing the caller can act on.
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        message=r"\s*ArviZ is undergoing")
                import arviz
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "BayesResult.to_arviz() needs arviz: pip install 'arviz>=0.17' (or "
                "jaxcell[dev])."
            ) from e
        return arviz.from_numpyro(self.mcmc)

    def posterior_predictive(self, key: jax.Array, *, num_samples: int | None = None,
                             data: Any = None) -> dict[str, np.ndarray]:
        """Draws of the observations (and every other site) given posterior draws.

        Arguments:
            key: a :func:`jax.random.key`.
            num_samples: how many posterior draws to use (evenly thinned); default all.
            data: passed to the model unobserved; ``None`` samples the observations.

        Returns:
            ``{site: array}`` with a leading axis of draws, e.g. ``out["obs"]``.
        """
        flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in self.samples.items()}
        n = next(iter(flat.values())).shape[0]
        if num_samples is not None and num_samples < n:
            idx = np.linspace(0, n - 1, num_samples).round().astype(int)
            flat = {k: v[idx] for k, v in flat.items()}
        # Observed sites would be returned as the data: drop them from the draws.
        flat = {k: jnp.asarray(v) for k, v in flat.items() if k != _FAILED}
        pred = Predictive(self.model_fn, posterior_samples=flat)
        return {k: np.asarray(v) for k, v in pred(key, data).items()}


def sample_nuts(
    model_fn: Callable[..., None],
    data: Any = None,
    *,
    key: jax.Array,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    chain_method: str = "sequential",
    init: Mapping[str, Any] | Callable | None = None,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    progress_bar: bool = False,
) -> BayesResult:
    """Sample the posterior of ``model_fn(data)`` with the No-U-Turn sampler.

    Arguments:
        model_fn: a numpyro model taking the data as its one argument, e.g. from
            :func:`numpyro_model`.
        data: the observations.
        key: a :func:`jax.random.key` (or legacy ``PRNGKey``).
        num_warmup: adaptation steps per chain (discarded).
        num_samples: retained draws per chain.
        num_chains: number of chains.
        chain_method: ``"sequential"``, ``"parallel"`` or ``"vectorized"`` (numpyro).
        init: initial values ``{name: value}`` (constrained), a numpyro init
            strategy, or ``None`` for ``init_to_median``.
        target_accept_prob: NUTS step-size adaptation target.
        max_tree_depth: NUTS maximum tree depth.
        dense_mass: adapt a dense mass matrix (correlated posteriors).
        progress_bar: show numpyro's progress bar.

    Returns:
        A :class:`BayesResult`.

    References:
        Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn sampler. JMLR 15:1593–1623.
        Phan, D., Pradhan, N. & Jankowiak, M. (2019). Composable effects for flexible
        and accelerated probabilistic programming in NumPyro. arXiv:1912.11554.
    """
    kernel = NUTS(model_fn, init_strategy=_init_strategy(init),
                  target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                  dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method=chain_method,
                progress_bar=progress_bar)
    start = time.perf_counter()
    mcmc.run(key, data, extra_fields=("diverging",))
    jax.block_until_ready(mcmc.get_samples())
    return BayesResult(mcmc, model_fn, data, time.perf_counter() - start)


class SVIResult:
    """A fitted variational approximation from :func:`fit_svi`.

    Attributes:
        guide: the numpyro guide.
        params: the fitted guide parameters.
        losses: the ELBO loss (negative ELBO) at each step.
        median: ``{name: value}``, the guide's median of each latent site.
    """

    def __init__(self, guide: AutoGuide, params: dict[str, Any], losses: np.ndarray):
        self.guide = guide
        self.params = params
        self.losses = losses
        self.median = {k: np.asarray(v) for k, v in guide.median(params).items()}

    def quantiles(self, q: Sequence[float] | float) -> dict[str, np.ndarray]:
        """The guide's quantiles of each latent site: ``{name: array}`` with a leading
        axis over ``q``."""
        qs = jnp.atleast_1d(jnp.asarray(q, dtype=float))
        return {k: np.asarray(v) for k, v in self.guide.quantiles(self.params, qs).items()}

    def sample_posterior(self, key: jax.Array, num_samples: int) -> dict[str, np.ndarray]:
        """Draws from the fitted guide: ``{name: array}`` with a leading axis of draws."""
        out = self.guide.sample_posterior(key, self.params, sample_shape=(num_samples,))
        return {k: np.asarray(v) for k, v in out.items()}


def fit_svi(
    model_fn: Callable[..., None],
    data: Any = None,
    *,
    key: jax.Array,
    guide: type[AutoGuide] | AutoGuide = AutoNormal,
    optimizer: Any = None,
    num_steps: int = 2000,
    num_particles: int = 1,
    init: Mapping[str, Any] | Callable | None = None,
) -> SVIResult:
    """Fit a variational approximation of the posterior of ``model_fn(data)``.

    Maximises the evidence lower bound (``Trace_ELBO``) of an automatic guide.

    Arguments:
        model_fn: a numpyro model taking the data as its one argument.
        data: the observations.
        key: a :func:`jax.random.key`.
        guide: an :class:`~numpyro.infer.autoguide.AutoGuide` class (built on
            ``model_fn``; default ``AutoNormal``, a diagonal normal in unconstrained
            space; ``AutoDelta`` gives the MAP) or a guide already built.
        optimizer: an ``optax.GradientTransformation`` or a ``numpyro.optim``
            optimiser; default ``optax.adam`` with a learning rate decaying from 0.02
            to 0.0002, so that the stochastic optimum settles.
        num_steps: optimisation steps.
        num_particles: Monte-Carlo samples of the ELBO per step.
        init: initial values ``{name: value}``, an init strategy, or ``None``.

    Returns:
        A :class:`SVIResult`.

    References:
        Kucukelbir, A. et al. (2017). Automatic differentiation variational inference.
        JMLR 18:1–45.
    """
    if isinstance(guide, type):
        guide = guide(model_fn, init_loc_fn=_init_strategy(init))
    if optimizer is None:
        optimizer = optax.adam(optax.exponential_decay(0.02, num_steps, 0.01))
    if isinstance(optimizer, optax.GradientTransformation):
        optimizer = optax_to_numpyro(optimizer)
    svi = SVI(model_fn, guide, optimizer, loss=Trace_ELBO(num_particles=num_particles))
    res = svi.run(key, num_steps, data, progress_bar=False)
    return SVIResult(guide, res.params, np.asarray(res.losses))
