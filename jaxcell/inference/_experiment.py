"""Experiments: measured data, what they observe, and under which conditions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._errors import InferenceError
from .._trajectory import Trajectory
from ._noise import AbstractNoise, Normal


class Experiment(eqx.Module):
    """One experiment: observations of the model at some times, under one condition.

    Arguments:
        times: measurement times, increasing (one time for endpoint-only data).
        data: observed values, shape ``(len(times),)`` or ``(len(times), k)`` to match
            the observable; ``NaN`` marks a missing value (it is ignored).
        observable: what is measured: a name the :class:`jaxcell.Trajectory` accepts
            (``"scale/entity/variable"``, ``".../label"`` or a unique label), or a
            function ``observable(trajectory) -> array`` of ``data``'s shape.
        noise: the noise model (default ``Normal(1.0)``).
        t0: start of the simulation (default 0).
        y0: initial-value overrides of this condition, as for :func:`jaxcell.simulate`.
        parameters: fixed parameter values of this condition, ``{name: value}``
            (e.g. an inducer concentration), applied after the fitted ones.
        name: a label for reports.
    """

    times: Array
    data: Array
    mask: Array
    observable: str | Callable = eqx.field(static=True)
    noise: AbstractNoise
    t0: Array
    y0: dict[str, Array] | None
    overrides: dict[str, Array]
    name: str = eqx.field(static=True)

    def __init__(self, times: ArrayLike, data: ArrayLike, observable: str | Callable, *,
                 noise: AbstractNoise | None = None, t0: float = 0.0,
                 y0: Mapping[str, ArrayLike] | None = None,
                 parameters: Mapping[str, ArrayLike] | None = None,
                 name: str = "experiment"):
        times = np.atleast_1d(np.asarray(times, dtype=float))
        data = np.asarray(data, dtype=float)
        if times.ndim != 1:
            raise InferenceError(f"Experiment {name!r}: times must be 1-D; got shape "
                                 f"{times.shape}.")
        if data.ndim == 0 or data.shape[0] != times.shape[0]:
            raise InferenceError(f"Experiment {name!r}: data must have one row per time "
                                 f"({times.shape[0]}); got shape {data.shape}.")
        if np.any(np.diff(times) <= 0) or times[0] < t0:
            raise InferenceError(f"Experiment {name!r}: times must increase from t0={t0}; "
                                 f"got {times}.")
        if times[-1] == t0:
            raise InferenceError(f"Experiment {name!r}: the last time must be after t0.")
        if not (isinstance(observable, str) or callable(observable)):
            raise InferenceError(f"Experiment {name!r}: observable must be a name or a "
                                 f"function of the Trajectory; got {observable!r}.")
        noise = Normal(1.0) if noise is None else noise
        if not isinstance(noise, AbstractNoise):
            raise InferenceError(f"Experiment {name!r}: noise must be a noise model "
                                 f"(Normal, LogNormal, ...); got {noise!r}.")
        mask = np.isfinite(data)
        self.times = jnp.asarray(times)
        self.data = jnp.asarray(np.where(mask, data, 1.0))  # placeholder keeps logs finite
        self.mask = jnp.asarray(mask)
        self.observable = observable
        self.noise = noise
        self.t0 = jnp.asarray(float(t0))
        self.y0 = None if y0 is None else {k: jnp.asarray(v, float) for k, v in y0.items()}
        self.overrides = {k: jnp.asarray(v, float) for k, v in (parameters or {}).items()}
        self.name = name

    def observe(self, traj: Trajectory) -> Array:
        """The observable's values at :attr:`times`, shaped like :attr:`data`."""
        out = traj[self.observable] if isinstance(self.observable, str) else (
            self.observable(traj))
        out = jnp.asarray(out)
        if out.shape != self.data.shape:
            raise InferenceError(f"Experiment {self.name!r}: the observable has shape "
                                 f"{out.shape}; the data have shape {self.data.shape}.")
        return out

    def sigma(self, values: Mapping[str, Any]) -> Array:
        """The noise scale, given the parameter values (for an estimated sigma)."""
        return self.noise.scale(values)
