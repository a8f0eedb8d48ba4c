"""Objectives: what :func:`fit` and friends minimise (:class:`AbstractObjective`), and
:class:`Objective`, the negative log-likelihood of experiments as a function of
parameters."""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from .._simulate import simulate
from ._experiment import Experiment
from ._forward import forward_only
from ._noise import AbstractGaussianNoise
from ._parameters import AbstractParameters, Parameters, _names_in

_FAILED_RESIDUAL = 1e8


class AbstractObjective(eqx.Module):
    r"""What :func:`~jaxcell.inference.fit`, :func:`~jaxcell.inference.profile`,
    :func:`~jaxcell.inference.fit_checkpointed` and
    :func:`~jaxcell.inference.draw_starts` minimise: a negative log-likelihood
    :math:`\mathrm{nll}(x)` of a search vector ``x`` over :attr:`parameters`.

    :class:`Objective` (experiments simulated with :func:`jaxcell.simulate`) and
    :class:`jaxcell.petab.PetabObjective` are the implementations jaxcell ships; write
    your own by subclassing this class (a final class: fill in every abstract member,
    override nothing concrete).

    :meth:`nll` and :meth:`residuals` must be JAX-traceable functions of ``x``:
    :func:`fit` calls them inside ``jit``, ``vmap``, ``grad`` and ``jacfwd``/``jacrev``.
    When :attr:`is_least_squares` is true,
    :math:`\mathrm{nll}(x) = \lVert r(x) \rVert^2 / 2 + c` with residuals ``r`` =
    :meth:`residuals` and constant ``c`` = :meth:`nll_constant`, and the default
    method is :class:`LevenbergMarquardt`; otherwise :meth:`residuals` and
    :meth:`nll_constant` are never called (raise :class:`jaxcell.InferenceError` in
    them) and the default method is :class:`optimistix.BFGS`.

    Attributes:
        parameters: the search space (:class:`Parameters`, or any
            :class:`AbstractParameters`): names, ``x0``, bounds, natural values.
        is_least_squares: whether the nll is a sum of squares (see above).
        forward_mode: whether ``nll`` can only be differentiated forwards (simulations
            with ``adjoint=diffrax.ForwardMode()``): :func:`fit` then builds every
            derivative with ``jax.jacfwd`` (``len(x)`` JVPs).
        default_ftol: :func:`fit`'s ``ftol`` when none is given (``0.0``: only the
            solver's own convergence test).
        random_starts_only: whether :func:`fit` draws every start at random within
            ``parameters.bounds`` (PEtab problems) rather than starting the first at
            ``parameters.x0``.

    Examples:
        A quadratic with its minimum at ``c`` (a sum of squares, ``r = x - c``):

        >>> from typing import ClassVar
        >>> import jax.numpy as jnp
        >>> from jaxcell.inference import (AbstractObjective, Linear, Parameter,
        ...                                Parameters, fit)
        >>> class Quadratic(AbstractObjective):
        ...     parameters: Parameters
        ...     centre: jnp.ndarray
        ...     is_least_squares: ClassVar[bool] = True
        ...     forward_mode: ClassVar[bool] = False
        ...     default_ftol: ClassVar[float] = 0.0
        ...     random_starts_only: ClassVar[bool] = False
        ...
        ...     def nll(self, x):
        ...         return 0.5 * jnp.sum((jnp.asarray(x) - self.centre) ** 2)
        ...
        ...     def residuals(self, x):
        ...         return jnp.asarray(x) - self.centre
        ...
        ...     def nll_constant(self):
        ...         return jnp.zeros(())
        >>> ps = Parameters([Parameter(n, scale=Linear(), init=0.0) for n in "ab"])
        >>> result = fit(Quadratic(ps, jnp.array([1.0, -2.0])))
        >>> [round(v, 6) for v in result.values.values()]
        [1.0, -2.0]
    """

    parameters: eqx.AbstractVar[AbstractParameters]
    is_least_squares: eqx.AbstractVar[bool]
    forward_mode: eqx.AbstractVar[bool]
    default_ftol: eqx.AbstractVar[float]
    random_starts_only: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def nll(self, x: ArrayLike) -> Array:
        """The negative log-likelihood at the search vector ``x``: a scalar, ``+inf``
        where the model cannot be evaluated (a failed simulation). Traceable."""

    @abc.abstractmethod
    def residuals(self, x: ArrayLike) -> Array:
        """The residual vector ``r(x)`` of a least-squares objective
        (``nll = ||r||²/2 + nll_constant()``); large where the model cannot be
        evaluated. Traceable. Raises :class:`jaxcell.InferenceError` if the objective
        is not a sum of squares."""

    @abc.abstractmethod
    def nll_constant(self) -> Array:
        """``nll(x) - ||residuals(x)||²/2`` of a least-squares objective (independent
        of ``x``)."""

    def value_and_grad(self, x: ArrayLike) -> tuple[Array, Array]:
        """``(nll(x), ∇nll(x))``: reverse mode, or built from forward mode when
        :attr:`forward_mode` (compiled once per objective structure)."""
        return _value_and_grad_jit(self, jnp.asarray(x, float))


class AbstractBoundedObjective(AbstractObjective):
    """An objective whose ``parameters.bounds`` are hard bounds of the problem (the
    PEtab bounds of :class:`jaxcell.petab.PetabObjective`), not only the range of
    random starts.

    For such an objective :func:`fit` keeps every :class:`LevenbergMarquardt` iterate
    within the bounds (by projection); the other optimisers (optimistix, optax) are
    unconstrained, so they minimise ``nll`` plus a steep quadratic penalty outside the
    bounds, ``(10⁴ · distance)² / 2`` (zero within), and :func:`fit` clips each end
    point into the bounds and reports ``nll`` there: every reported point is feasible.
    A capability marker: it adds no members.
    """


class AbstractSeparableObjective(AbstractObjective):
    """An objective that is a sum over items (experiments, conditions, cells, time
    windows, shooting segments) plus the parameters' penalties, so that a
    :class:`~jaxcell.inference.Minibatch` can estimate it from a few items.

    Attributes:
        n_items: the number of items.
    """

    n_items: eqx.AbstractVar[int]

    @abc.abstractmethod
    def items_nll(self, x: ArrayLike, idx: ArrayLike) -> Array:
        """The nll summed over the items ``idx`` (an integer array of fixed length;
        penalties excluded). Traceable."""


class AbstractStochasticObjective(AbstractObjective):
    """An objective that optax steps of :func:`~jaxcell.inference.fit` see one
    minibatch at a time (:class:`~jaxcell.inference.Minibatch`): step ``k`` minimises
    :meth:`stochastic_nll` ``(x, k)``, with fixed shapes, so nothing recompiles.
    Everything else (:meth:`nll`, the reported values, the other optimisers, validation)
    uses the full objective."""

    @abc.abstractmethod
    def stochastic_nll(self, x: ArrayLike, step: ArrayLike) -> Array:
        """An unbiased estimate of :meth:`nll` from the minibatch of step ``step``
        (a traced integer). Traceable."""


@eqx.filter_jit
def _value_and_grad_jit(objective: AbstractObjective, x: Array) -> tuple[Array, Array]:
    nll = forward_only(objective.nll) if objective.forward_mode else objective.nll
    return jax.value_and_grad(nll)(x)


class Objective(AbstractSeparableObjective):
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

    #: :func:`fit` stops only on the solver's own convergence test by default.
    default_ftol: ClassVar[float] = 0.0
    #: the first start of :func:`fit` is ``parameters.x0``.
    random_starts_only: ClassVar[bool] = False

    def __init__(self, model: Any, parameters: Parameters | Sequence[Any],
                 experiments: Experiment | Sequence[Experiment], **simulate_kwargs: Any):
        if not isinstance(parameters, Parameters):
            parameters = Parameters(parameters, model=model)
        if isinstance(experiments, Experiment):
            experiments = [experiments]
        experiments = tuple(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise InferenceError("Objective: experiments must be one or more Experiment; "
                                 f"got {type(experiments).__name__}.")
        known = _names_in(model)
        noise_names = {e.noise.sigma_name for e in experiments} - {None}
        for p, lay in zip(parameters.items, parameters.layouts):
            if lay is not None:
                if lay.getter is None:
                    raise InferenceError(
                        f"Objective: Weights {p.name!r} is not a node of the model (no "
                        f"process {p.name.partition('.')[0]!r}); address it as "
                        f"'process.field', e.g. 'interaction.net'.")
                continue
            if p.name not in known and p.name not in noise_names:
                raise InferenceError(
                    f"Objective: {p.name!r} is neither a parameter of the model "
                    f"({sorted(model.parameters())}) nor a noise parameter "
                    f"({sorted(noise_names)}), nor a Weights item ('process.field').")
        missing = noise_names - set(parameters.item_names)
        if missing:
            raise InferenceError(f"Objective: noise parameters {sorted(missing)} are not "
                                 f"among the free parameters; add them to Parameters.")
        self.model = model
        self.parameters = parameters
        self.experiments = experiments
        self.simulate_kwargs = {"throw": False, "max_steps": 4096, **simulate_kwargs}
        self.model_names = tuple(p.name for p, lay in zip(parameters.items,
                                                          parameters.layouts)
                                 if lay is None and p.name in known)

    # -- building blocks (traceable) ---------------------------------------------------
    @property
    def forward_mode(self) -> bool:
        """Whether the simulations are differentiated forwards only
        (``adjoint=diffrax.ForwardMode()`` among the ``simulate_kwargs``)."""
        return isinstance(self.simulate_kwargs.get("adjoint"), diffrax.ForwardMode)

    @property
    def is_least_squares(self) -> bool:
        """Whether ``nll = ||residuals||² / 2 + constant``: every noise model is
        Gaussian (possibly after a log) with a fixed sigma."""
        return all(isinstance(e.noise, AbstractGaussianNoise) and e.noise.sigma_name is None
                   for e in self.experiments) and self.parameters.squared_penalties

    def _model_with(self, values: Mapping[str, ArrayLike], overrides=None) -> Any:
        model = self.parameters.apply(self.model, values, self.model_names)
        return model.replace_parameters(dict(overrides)) if overrides else model

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
            nll = e.noise.nll(y, e.data, _sigma(e, values))
            nll = jnp.sum(jnp.where(e.mask, nll, 0.0))
            total = total - jnp.where(ok, nll, jnp.inf)
        return total

    @property
    def n_items(self) -> int:
        """The number of experiments (the items a :class:`Minibatch` draws from)."""
        return len(self.experiments)

    def items_nll(self, x: ArrayLike, idx: ArrayLike) -> Array:
        """The nll of the experiments ``idx`` (no penalties): one ``lax.switch`` per
        index (each branch simulates one experiment), mapped over ``idx``."""
        values = self.parameters.values(jnp.asarray(x, float))

        def branch(e):
            def f(_):
                model = self._model_with(values, e.overrides)
                traj = simulate(model, e.t0, e.times[-1], saveat=e.times, y0=e.y0,
                                **self.simulate_kwargs)
                nll = e.noise.nll(e.observe(traj), e.data, _sigma(e, values))
                nll = jnp.sum(jnp.where(e.mask, nll, 0.0))
                return jnp.where(traj.success, nll, jnp.inf)
            return f

        branches = [branch(e) for e in self.experiments]
        one = (lambda i: branches[0](i)) if len(branches) == 1 else (
            lambda i: jax.lax.switch(i, branches, i))
        return jnp.sum(jax.lax.map(one, jnp.asarray(idx)))

    def _nll(self, x: Array) -> Array:
        nll = -self.log_likelihood(self.parameters.values(x))
        if self.parameters.has_penalty:
            nll = nll + self.parameters.penalty(x)
        return nll

    def _residuals(self, x: Array) -> Array:
        values = self.parameters.values(x)
        parts = []
        for e, (y, ok) in zip(self.experiments, self.predict(values)):
            r = e.noise.residual(y, e.data, _sigma(e, values))
            r = jnp.where(e.mask, r, 0.0)
            parts.append(jnp.where(ok, r, _FAILED_RESIDUAL).ravel())
        if self.parameters.has_penalty:
            parts.append(self.parameters.penalty_residuals(x))
        return jnp.concatenate(parts)

    def nll_constant(self) -> Array:
        """``nll - ||residuals||²/2`` for a least-squares objective."""
        total = jnp.zeros((), float)
        for e in self.experiments:
            c = e.noise.constant(e.data, _sigma(e, {}))
            total = total + jnp.sum(jnp.where(e.mask, jnp.broadcast_to(c, e.data.shape),
                                              0.0))
        return total

    # -- compiled entry points ---------------------------------------------------------
    def nll(self, x: ArrayLike) -> Array:
        """Negative log-likelihood at the search vector ``x`` (compiled once;
        traceable)."""
        return _nll_jit(self, jnp.asarray(x, float))

    def residuals(self, x: ArrayLike) -> Array:
        """Weighted residuals of a least-squares objective (compiled once; traceable).

        Raises:
            InferenceError: a noise model is not Gaussian or estimates its sigma.
        """
        if not self.is_least_squares:
            raise InferenceError("Objective.residuals: the objective is not a sum of "
                                 "squares (a noise model is not Gaussian or estimates its "
                                 "sigma).")
        return _residuals_jit(self, jnp.asarray(x, float))


def _sigma(e: Experiment, values) -> Array:
    """The experiment's noise scale broadcast to its data's shape (a per-column sigma
    of shape ``(k,)`` for data ``(n, k)``, without implicit rank promotion)."""
    return jnp.broadcast_to(jnp.asarray(e.sigma(values)), e.data.shape)


@eqx.filter_jit
def _nll_jit(objective: Objective, x: Array) -> Array:
    return objective._nll(x)


@eqx.filter_jit
def _residuals_jit(objective: Objective, x: Array) -> Array:
    return objective._residuals(x)
