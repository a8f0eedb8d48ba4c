"""Objective: the negative log-likelihood of experiments as a function of parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._simulate import simulate
from ._experiment import Experiment
from ._noise import AbstractGaussianNoise
from ._parameters import Parameters, _names_in

_FAILED_RESIDUAL = 1e8


class Objective(eqx.Module):
    r"""Negative log-likelihood of one or more experiments, as a function of the search
    vector ``x`` of :class:`Parameters`.

    .. math:: \mathrm{nll}(x) = \sum_{e}\sum_{i\,:\,d_{ei}\ \text{observed}}
        -\log p_e(d_{ei} \mid y_{ei}(v(x)))

    where ``y_e`` is experiment ``e``'s observable, simulated with
    :func:`jaxcell.simulate` under its condition, and ``v(x)`` the natural values.
    :meth:`nll`, :meth:`value_and_grad` and :meth:`residuals` are compiled once for the
    objective's structure: new ``x`` (or new data of the same shapes) reuse the program.
    A failed simulation gives ``nll = inf`` (and large residuals), which optimisers treat
    as a rejected step.

    Arguments:
        model: a process or composite.
        parameters: the free :class:`Parameters` (model parameters and noise scales).
        experiments: one :class:`Experiment` or a list.
        **simulate_kwargs: passed to :func:`jaxcell.simulate` (``solver``,
            ``stepsize_controller``, ``adjoint``, ``max_steps``, ...). Defaults here:
            ``throw=False`` and ``max_steps=4096``.
    """

    model: Any
    parameters: Parameters
    experiments: tuple[Experiment, ...]
    simulate_kwargs: dict[str, Any]
    model_names: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, model: Any, parameters: Parameters | Sequence[Any],
                 experiments: Experiment | Sequence[Experiment], **simulate_kwargs: Any):
        if not isinstance(parameters, Parameters):
            parameters = Parameters(parameters, model=model)
        if isinstance(experiments, Experiment):
            experiments = [experiments]
        experiments = tuple(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise TypeError("Objective: experiments must be one or more Experiment.")
        known = _names_in(model)
        noise_names = {e.noise.sigma_name for e in experiments} - {None}
        for n in parameters.names:
            if n not in known and n not in noise_names:
                raise ValueError(
                    f"Objective: {n!r} is neither a parameter of the model "
                    f"({sorted(model.parameters())}) nor a noise parameter "
                    f"({sorted(noise_names)}).")
        missing = noise_names - set(parameters.names)
        if missing:
            raise ValueError(f"Objective: noise parameters {sorted(missing)} are not "
                             f"among the free parameters; add them to Parameters.")
        self.model = model
        self.parameters = parameters
        self.experiments = experiments
        self.simulate_kwargs = {"throw": False, "max_steps": 4096, **simulate_kwargs}
        self.model_names = tuple(n for n in parameters.names if n in known)

    # -- building blocks (traceable) ---------------------------------------------------
    @property
    def is_least_squares(self) -> bool:
        """Whether ``nll = ||residuals||² / 2 + constant``: every noise model is
        Gaussian (possibly after a log) with a fixed sigma."""
        return all(isinstance(e.noise, AbstractGaussianNoise) and e.noise.sigma_name is None
                   for e in self.experiments)

    def _model_with(self, values: Mapping[str, ArrayLike], overrides=None) -> Any:
        vals = {n: values[n] for n in self.model_names}
        if overrides:
            vals.update(overrides)
        return self.model.replace_parameters(vals) if vals else self.model

    def predict(self, values: Mapping[str, ArrayLike]) -> list[tuple[Array, Array]]:
        """For each experiment, ``(prediction, success)`` at natural ``values``."""
        out = []
        for e in self.experiments:
            model = self._model_with(values, e.overrides)
            traj = simulate(model, e.t0, e.times[-1], saveat=e.times, y0=e.y0,
                            **self.simulate_kwargs)
            out.append((e.observe(traj), traj.success))
        return out

    def log_likelihood(self, values: Mapping[str, ArrayLike]) -> Array:
        """Log-likelihood at natural-scale ``values`` ``{name: value}`` (for numpyro
        and other Bayesian use; not compiled here: compile the caller)."""
        total = jnp.zeros((), float)
        for e, (y, ok) in zip(self.experiments, self.predict(values)):
            nll = e.noise.nll(y, e.data, e.sigma(values))
            nll = jnp.sum(jnp.where(e.mask, nll, 0.0))
            total = total - jnp.where(ok, nll, jnp.inf)
        return total

    def _nll(self, x: Array) -> Array:
        return -self.log_likelihood(self.parameters.values(x))

    def _residuals(self, x: Array) -> Array:
        values = self.parameters.values(x)
        parts = []
        for e, (y, ok) in zip(self.experiments, self.predict(values)):
            r = e.noise.residual(y, e.data, e.sigma(values))
            r = jnp.where(e.mask, r, 0.0)
            parts.append(jnp.where(ok, r, _FAILED_RESIDUAL).ravel())
        return jnp.concatenate(parts)

    def nll_constant(self) -> Array:
        """``nll - ||residuals||²/2`` for a least-squares objective."""
        total = jnp.zeros((), float)
        for e in self.experiments:
            c = e.noise.constant(e.data, e.sigma({}))
            total = total + jnp.sum(jnp.where(e.mask, jnp.broadcast_to(c, e.data.shape),
                                              0.0))
        return total

    # -- compiled entry points ---------------------------------------------------------
    def nll(self, x: ArrayLike) -> Array:
        """Negative log-likelihood at the search vector ``x`` (compiled once)."""
        return _nll_jit(self, jnp.asarray(x, float))

    def value_and_grad(self, x: ArrayLike) -> tuple[Array, Array]:
        """``(nll(x), ∇nll(x))`` (reverse mode through the solves; compiled once)."""
        return _value_and_grad_jit(self, jnp.asarray(x, float))

    def residuals(self, x: ArrayLike) -> Array:
        """Weighted residuals of a least-squares objective (compiled once)."""
        if not self.is_least_squares:
            raise ValueError("Objective.residuals: the objective is not a sum of squares "
                             "(a noise model is not Gaussian or estimates its sigma).")
        return _residuals_jit(self, jnp.asarray(x, float))


@eqx.filter_jit
def _nll_jit(objective: Objective, x: Array) -> Array:
    return objective._nll(x)


@eqx.filter_jit
def _value_and_grad_jit(objective: Objective, x: Array) -> tuple[Array, Array]:
    return jax.value_and_grad(objective._nll)(x)


@eqx.filter_jit
def _residuals_jit(objective: Objective, x: Array) -> Array:
    return objective._residuals(x)
