"""Minibatches: stochastic optax steps over a few items (experiments, conditions, cells,
time windows or shooting segments) of a separable objective."""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from ._objective import AbstractSeparableObjective, AbstractStochasticObjective
from ._parameters import Parameters


class Minibatch(AbstractStochasticObjective):
    r"""A separable objective seen ``batch_size`` items at a time by optax steps.

    Step ``k`` of :func:`~jaxcell.inference.fit` with an optax method minimises

    .. math:: \frac{N}{B} \sum_{i \in I_k} \mathrm{nll}_i(x) + \mathrm{penalty}(x)

    with :math:`I_k` ``batch_size`` distinct items drawn from ``fold_in(key, k)``: an
    unbiased estimate of the full objective, at ``B/N`` of its cost. The draw depends
    on the step number only, so a resumed run (:func:`fit_checkpointed` with
    ``every=``) draws the same batches, and shapes are fixed, so nothing recompiles.
    Everything else (the reported values, validation, Levenberg–Marquardt and BFGS)
    uses the full objective.

    Arguments:
        objective: an :class:`AbstractSeparableObjective`: an :class:`Objective`
            (items: its experiments, i.e. conditions or cells) or a
            :class:`MultipleShooting` (items: its segments, i.e. time windows).
        batch_size: items per step, ``1 <= batch_size <= objective.n_items``.
        key: a :func:`jax.random.key` (default ``key(0)``).

    Raises:
        InferenceError: ``objective`` is not separable; bad ``batch_size``.
    """

    objective: AbstractSeparableObjective
    batch_size: int = eqx.field(static=True)
    key: Array

    def __init__(self, objective: AbstractSeparableObjective, batch_size: int, *,
                 key: Any = None):
        if not isinstance(objective, AbstractSeparableObjective):
            raise InferenceError(
                f"Minibatch: objective must be separable into items (Objective: its "
                f"experiments; MultipleShooting: its segments); got "
                f"{type(objective).__name__}.")
        n = int(objective.n_items)
        if isinstance(batch_size, bool) or not 1 <= int(batch_size) <= n:
            raise InferenceError(f"Minibatch: batch_size must be between 1 and {n} (the "
                                 f"objective's items); got {batch_size!r}.")
        self.objective = objective
        self.batch_size = int(batch_size)
        key = jax.random.key(0) if key is None else key
        if not jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
            key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))
        self.key = key

    @property
    def parameters(self):
        """The objective's parameters."""
        return self.objective.parameters

    @property
    def is_least_squares(self) -> bool:
        """As the objective."""
        return self.objective.is_least_squares

    @property
    def forward_mode(self) -> bool:
        """As the objective."""
        return self.objective.forward_mode

    @property
    def default_ftol(self) -> float:
        """As the objective."""
        return self.objective.default_ftol

    @property
    def random_starts_only(self) -> bool:
        """As the objective."""
        return self.objective.random_starts_only

    def nll(self, x: ArrayLike) -> Array:
        """The full objective."""
        return self.objective.nll(x)

    def residuals(self, x: ArrayLike) -> Array:
        """The full objective's residuals."""
        return self.objective.residuals(x)

    def nll_constant(self) -> Array:
        """The full objective's constant."""
        return self.objective.nll_constant()

    def batch(self, step: ArrayLike) -> Array:
        """The items of step ``step``."""
        n = self.objective.n_items
        return jax.random.choice(jax.random.fold_in(self.key, jnp.asarray(step)), n,
                                 (self.batch_size,), replace=False)

    def stochastic_nll(self, x: ArrayLike, step: ArrayLike) -> Array:
        """``N/B`` times the nll of step ``step``'s items, plus the penalties."""
        x = jnp.asarray(x, float)
        n = self.objective.n_items
        value = (n / self.batch_size) * self.objective.items_nll(x, self.batch(step))
        params = self.objective.parameters
        if isinstance(params, Parameters) and params.has_penalty:
            value = value + params.penalty(x)
        return value
