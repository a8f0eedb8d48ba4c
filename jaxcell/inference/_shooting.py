"""Multiple shooting: a trajectory fit split into segments with free initial states and
a continuity penalty; and a growing horizon (curriculum over the time span)."""

# No `from __future__ import annotations`: equinox reads eqx.AbstractVar annotations.
from collections.abc import Sequence
from typing import Any, ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._composite import as_composite
from .._errors import InferenceError
from .._simulate import simulate
from .._state import as_path, path_str
from ._experiment import Experiment
from ._noise import AbstractGaussianNoise
from ._objective import _FAILED_RESIDUAL, AbstractSeparableObjective
from ._parameters import Parameters, _names_in
from ._weights import Weights

_STATES = "shooting.states"


class MultipleShooting(AbstractSeparableObjective):
    r"""Multiple shooting: the experiment's time span cut into ``segments`` windows,
    each simulated from its own free initial state, joined by a continuity penalty.

    .. math:: \mathrm{nll}(x) = \sum_{k}\sum_{i \in k} -\log p(d_i \mid y^{(k)}_i)
        + \frac{\lambda}{2}\sum_{k<K} \lVert (y^{(k)}(\tau_{k+1}) - s_{k+1})/\sigma
        \rVert^2

    Segment ``k`` starts at data time :math:`\tau_k` from :math:`s_k` (the model's own
    initial value for the first segment) and runs to :math:`\tau_{k+1}`; the
    :math:`s_k` of segments 2..K are extra coordinates of the search vector (a
    :class:`Weights` item named ``"shooting.states"``, initialised from the data at
    :math:`\tau_k` when the data observe the state, else from a simulation), so a fit
    trains them with the model's parameters. Each data point counts once. Short
    segments keep a poorly trained model from running far off the data, which
    smooths the loss landscape of long or oscillating time series (Bock & Plitt
    1984; Turan & Jäschke 2022). All segments are one ``vmap``-ped
    :func:`jaxcell.simulate` call (equal lengths: the last is padded by repeating its
    last time, masked), compiled once. ``segments=1`` is single shooting.

    ``horizon`` masks data and continuity terms after that time and stops each
    simulation there (:func:`growing_horizon` raises it stage by stage; a new value
    reuses the compiled program).

    Arguments:
        model: a process or composite.
        parameters: the model's free :class:`Parameters` (scalars and :class:`Weights`);
            the segment states are appended.
        experiment: one :class:`Experiment` whose observable is a state path (or a
            function of the trajectory, with ``state=``); noise with a fixed sigma.
        segments: the number of segments ``K`` (each holds about
            ``(len(times)-1)/K`` intervals).
        state: the owned variable whose initial value each segment frees (default:
            the experiment's observable, when it is a path).
        continuity: the weight :math:`\lambda` of the continuity penalty; ``sigma``
            is the noise's fixed scale.
        horizon: the time after which data are ignored (default: all data).
        **simulate_kwargs: passed to :func:`jaxcell.simulate` (``solver``, ...);
            defaults ``throw=False``, ``max_steps=4096``.

    Raises:
        InferenceError: fewer than 2 intervals per segment; no state path; a noise
            model with an estimated sigma; a parameter that is neither in the model nor
            a :class:`Weights` item.

    References:
        Bock, H. G. & Plitt, K. J. (1984). A multiple shooting algorithm for direct
        solution of optimal control problems. IFAC Proceedings 17:1603-1608.
        Turan, E. M. & Jäschke, J. (2022). Multiple shooting for training neural
        differential equations on time series. IEEE Control Systems Letters 6:1897.
    """

    model: Any
    parameters: Parameters
    experiment: Experiment
    seg_times: Float[Array, "K m"]
    seg_data: Array
    seg_mask: Bool[Array, "K m"]
    sigma: Array
    continuity: float = eqx.field(static=True)
    horizon: Array
    simulate_kwargs: dict[str, Any]
    state: str = eqx.field(static=True)
    model_names: tuple[str, ...] = eqx.field(static=True)
    n_model_coords: int = eqx.field(static=True)

    default_ftol: ClassVar[float] = 0.0
    random_starts_only: ClassVar[bool] = False

    def __init__(self, model: Any, parameters: Parameters | Sequence[Any],
                 experiment: Experiment, *, segments: int, state: str | None = None,
                 continuity: float = 1.0, horizon: float | None = None,
                 **simulate_kwargs: Any):
        model = as_composite(model)
        if not isinstance(parameters, Parameters):
            parameters = Parameters(parameters, model=model)
        if not isinstance(experiment, Experiment):
            raise InferenceError(f"MultipleShooting: experiment must be an Experiment; got "
                                 f"{type(experiment).__name__}.")
        noise = experiment.noise
        if noise.sigma_name is not None:
            raise InferenceError("MultipleShooting: the noise sigma must be fixed (it "
                                 f"scales the continuity penalty); got {noise.sigma_name!r}.")
        if state is None:
            if not isinstance(experiment.observable, str):
                raise InferenceError("MultipleShooting: give state= (the variable whose "
                                     "segment initial values are free): the observable is "
                                     "a function.")
            state = experiment.observable
        try:
            spath = as_path(state)
        except Exception as e:  # noqa: BLE001 - reported with the name given
            raise InferenceError(f"MultipleShooting: state must be a path "
                                 f"'scale/entity/variable'; got {state!r}.") from e
        if spath not in model.initial_values():
            raise InferenceError(f"MultipleShooting: {state!r} is not a variable the model "
                                 f"owns; owned: {[path_str(p) for p in model.initial_values()]}.")
        known = _names_in(model)
        for p, lay in zip(parameters.items, parameters.layouts):
            if (lay is None and p.name not in known) or (lay is not None and lay.getter is None):
                raise InferenceError(f"MultipleShooting: {p.name!r} is neither a parameter of "
                                     f"the model nor a Weights item of it ('process.field').")
        segments = int(segments)
        times = np.asarray(experiment.times)
        n = len(times) - 1
        if segments < 1 or n < 2 * segments:
            raise InferenceError(f"MultipleShooting: segments must be between 1 and "
                                 f"{max(n // 2, 1)} (at least 2 intervals each) for "
                                 f"{len(times)} times; got {segments}.")
        bounds = np.round(np.linspace(0, n, segments + 1)).astype(int)
        m = int(np.max(np.diff(bounds)))  # intervals in the longest segment
        idx = np.stack([np.minimum(np.arange(a, a + m + 1), b)
                        for a, b in zip(bounds[:-1], bounds[1:])])
        mask = np.zeros(idx.shape, bool)
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            mask[k, :b - a + (k == segments - 1)] = True  # the last keeps its end point
        if times[0] > float(experiment.t0):
            raise InferenceError("MultipleShooting: the first data time must be t0 (the "
                                 "first segment starts from the model's initial state).")
        data = np.asarray(experiment.data)
        dmask = np.asarray(experiment.mask)
        x0_model = np.asarray(model.initial_values()[spath])
        if isinstance(experiment.observable, str) and as_path(
                experiment.observable) == spath and dmask[idx[1:, 0]].all():
            init = data[idx[1:, 0]]
        else:
            traj = simulate(model, times[0], times[-1], saveat=times, throw=True,
                            **{k: v for k, v in simulate_kwargs.items() if k != "throw"})
            init = np.asarray(traj[state])[idx[1:, 0]]
        init = np.asarray(init, float).reshape((segments - 1,) + x0_model.shape)
        items = list(parameters.items)
        if segments > 1:
            items.append(Weights(_STATES, init=jnp.asarray(init)))
        self.n_model_coords = len(parameters)
        self.parameters = Parameters(items, model=model)
        self.model = model
        self.experiment = experiment
        self.seg_times = jnp.asarray(times[idx])
        self.seg_data = jnp.asarray(data[idx])
        self.seg_mask = jnp.asarray(mask & dmask[idx].reshape(idx.shape + (-1,)).all(-1))
        self.sigma = jnp.asarray(noise.sigma if noise.sigma is not None else 1.0, float)
        self.continuity = float(continuity)
        self.horizon = jnp.asarray(np.inf if horizon is None else float(horizon))
        self.simulate_kwargs = {"throw": False, "max_steps": 4096, **simulate_kwargs}
        self.state = path_str(spath)
        self.model_names = tuple(p.name for p, lay in zip(parameters.items,
                                                          parameters.layouts)
                                 if lay is None)

    # -- AbstractObjective ----------------------------------------------------------------
    @property
    def is_least_squares(self) -> bool:
        """Whether the noise is Gaussian (fixed sigma) and every penalty a sum of
        squares."""
        return isinstance(self.experiment.noise, AbstractGaussianNoise) and \
            self.parameters.squared_penalties

    @property
    def forward_mode(self) -> bool:
        """Whether the simulations are differentiated forwards only."""
        return isinstance(self.simulate_kwargs.get("adjoint"), diffrax.ForwardMode)

    @property
    def n_items(self) -> int:
        """The number of segments (the items a :class:`Minibatch` draws from)."""
        return int(self.seg_times.shape[0])

    def with_horizon(self, horizon: float) -> "MultipleShooting":
        """The same objective with data after ``horizon`` ignored (no recompile)."""
        return eqx.tree_at(lambda o: o.horizon, self, jnp.asarray(float(horizon)))

    def _segments(self, x: Array, idx: Array):
        """Per selected segment: weighted data residuals (masked), continuity
        residuals (masked), success."""
        values = self.parameters.values(x)
        model = self.parameters.apply(self.model, values, self.model_names)
        spath = as_path(self.state)
        first = model.initial_values()[spath]
        K = self.n_items
        if K > 1:
            states = values[_STATES]
            starts = jnp.concatenate([first[None], states], axis=0)
            nexts = jnp.concatenate([states, first[None]], axis=0)  # last: unused
        else:
            starts = nexts = first[None]
        noise, obs = self.experiment.noise, self.experiment.observable

        def one(k):
            ts = self.seg_times[k]
            t_start = ts[0]
            t_end = jnp.maximum(jnp.minimum(ts[-1], self.horizon),
                                t_start + 1e-9 * (1.0 + jnp.abs(t_start)))
            ts_c = jnp.clip(ts, t_start, t_end)
            traj = simulate(model, t_start, t_end, saveat=ts_c, y0={self.state: starts[k]},
                            **self.simulate_kwargs)
            pred = traj[obs] if isinstance(obs, str) else obs(traj)
            pred = jnp.reshape(pred, self.seg_data.shape[1:])
            r = noise.residual(pred, self.seg_data[k],
                               jnp.broadcast_to(self.sigma, self.seg_data.shape[1:]))
            keep = self.seg_mask[k] & (ts <= self.horizon)
            r = jnp.where(keep.reshape(keep.shape + (1,) * (r.ndim - 1)), r, 0.0)
            end = traj[self.state][-1]
            c = jnp.sqrt(self.continuity) * (end - nexts[k]) / self._state_sigma(end)
            c_keep = (k < K - 1) & (ts[-1] <= self.horizon)
            c = jnp.where(c_keep, c, 0.0)
            ok = jnp.all(traj.success)
            return (jnp.where(ok, r, _FAILED_RESIDUAL).ravel(),
                    jnp.where(ok, c, _FAILED_RESIDUAL * c_keep).ravel(), ok)

        return jax.vmap(one)(idx)

    def _state_sigma(self, end: Array) -> Array:
        """The scale of the continuity residuals: the noise sigma where it matches the
        state's shape (data observing the state), else its mean."""
        one = jnp.broadcast_to(self.sigma, self.seg_data.shape[1:])[0]
        return one if one.shape == end.shape else jnp.mean(self.sigma)

    def _constant(self, idx: Array) -> Array:
        noise = self.experiment.noise
        c = noise.constant(self.seg_data[idx],
                           jnp.broadcast_to(self.sigma, self.seg_data[idx].shape))
        keep = self.seg_mask[idx] & (self.seg_times[idx] <= self.horizon)
        c = jnp.broadcast_to(c, self.seg_data[idx].shape)
        return jnp.sum(jnp.where(keep.reshape(keep.shape + (1,) * (c.ndim - 2)), c, 0.0))

    def items_nll(self, x: ArrayLike, idx: ArrayLike) -> Array:
        """The nll of the segments ``idx`` (data and continuity terms; no penalties)."""
        x, idx = jnp.asarray(x, float), jnp.asarray(idx)
        if isinstance(self.experiment.noise, AbstractGaussianNoise):
            r, c, ok = self._segments(x, idx)
            value = 0.5 * (jnp.sum(r**2) + jnp.sum(c**2)) + self._constant(idx)
        else:
            raise InferenceError("MultipleShooting: only Gaussian noise models (Normal, "
                                 "LogNormal, Log10Normal) are supported.")
        return jnp.where(jnp.all(ok), value, jnp.inf)

    def nll(self, x: ArrayLike) -> Array:
        """Negative log-likelihood plus continuity penalty (and item penalties)."""
        return _nll_jit(self, jnp.asarray(x, float))

    def residuals(self, x: ArrayLike) -> Array:
        """Data residuals, continuity residuals and penalty residuals."""
        if not self.is_least_squares:
            raise InferenceError("MultipleShooting.residuals: a penalty is not a sum of "
                                 "squares (L1); use a minimiser (BFGS, optax).")
        return _residuals_jit(self, jnp.asarray(x, float))

    def nll_constant(self) -> Array:
        """``nll - ||residuals||²/2``."""
        return self._constant(jnp.arange(self.n_items))

    def _nll(self, x):
        value = self.items_nll(x, jnp.arange(self.n_items))
        if self.parameters.has_penalty:
            value = value + self.parameters.penalty(x)
        return value

    def _residuals(self, x):
        r, c, _ = self._segments(x, jnp.arange(self.n_items))
        parts = [r.ravel(), c.ravel()]
        if self.parameters.has_penalty:
            parts.append(self.parameters.penalty_residuals(x))
        return jnp.concatenate(parts)

    def predict(self, x: ArrayLike, times: ArrayLike) -> Array:
        """The model's observable at ``times``, simulated in one piece from its own
        initial state with the model parameters of ``x`` (for extrapolation)."""
        values = self.parameters.values(jnp.asarray(x, float))
        model = self.parameters.apply(self.model, values, self.model_names)
        times = jnp.asarray(times, float)
        traj = simulate(model, self.experiment.t0, times[-1], saveat=times,
                        **self.simulate_kwargs)
        obs = self.experiment.observable
        return traj[obs] if isinstance(obs, str) else obs(traj)


@eqx.filter_jit
def _nll_jit(objective, x):
    return objective._nll(x)


@eqx.filter_jit
def _residuals_jit(objective, x):
    return objective._residuals(x)


def growing_horizon(objective: MultipleShooting, horizons: Sequence[float], *,
                    steps: int | Sequence[int] = 200, **fit_kwargs: Any):
    """Fit over a growing time span (a curriculum): ``fit`` with data up to
    ``horizons[0]``, then from that result with data up to ``horizons[1]``, and so on.

    Early stages see short, easy stretches of the time series (a network that is still
    wrong cannot drift far), later ones refine on the whole span. Each stage changes
    only :attr:`MultipleShooting.horizon` (an array), so the compiled steps are reused.

    Arguments:
        objective: a :class:`MultipleShooting` (``segments=1`` for single shooting).
        horizons: increasing end times; the last is usually the last data time.
        steps: ``max_steps`` per stage (one number, or one per stage).
        **fit_kwargs: passed to every :func:`fit` (``method``, ``callback``, ...;
            not ``starts``).

    Returns:
        ``(result, stages)``: the last stage's :class:`FitResult` and the list of all.

    Raises:
        InferenceError: ``objective`` is not a :class:`MultipleShooting`; horizons
            not increasing; ``starts`` among ``fit_kwargs``.
    """
    from ._fit import fit

    if not isinstance(objective, MultipleShooting):
        raise InferenceError(f"growing_horizon: objective must be a MultipleShooting "
                             f"(segments=1 for single shooting); got "
                             f"{type(objective).__name__}.")
    horizons = [float(h) for h in horizons]
    if not horizons or any(b <= a for a, b in zip(horizons, horizons[1:])):
        raise InferenceError(f"growing_horizon: horizons must increase; got {horizons}.")
    if "starts" in fit_kwargs:
        raise InferenceError("growing_horizon: each stage starts where the previous "
                             "ended; pass x0 through the objective's parameters instead "
                             "of starts=.")
    steps = [int(steps)] * len(horizons) if np.ndim(steps) == 0 else [int(s) for s in steps]
    if len(steps) != len(horizons):
        raise InferenceError(f"growing_horizon: {len(horizons)} horizons but {len(steps)} "
                             f"step counts.")
    x = objective.parameters.x0
    stages = []
    for h, n in zip(horizons, steps):
        result = fit(objective.with_horizon(h), starts=np.asarray(x)[None, :], max_steps=n,
                     **fit_kwargs)
        stages.append(result)
        x = result.x
    return stages[-1], stages
