"""Velocities, a step forward in time, and forward simulation with fitted kinetics."""

from __future__ import annotations

from typing import Any

import diffrax
import jax.numpy as jnp
import numpy as np

from .._simulate import simulate
from ..cellular import Splicing, splicing_solution
from ._data import VelocityError
from ._recover import counts

_MODES = ("dynamical", "shared")


def kinetics(adata: Any, mode: str = "dynamical") -> dict[str, Any]:
    """The fitted kinetics and cell states from ``adata`` as arrays over the fitted
    genes: ``alpha, beta, gamma, t_, scaling`` (``beta`` per model unit), each cell's
    time ``t`` ``(C, G)`` on the same clock, whether it is on the induction branch, the
    observed ``u, s`` and the gene mask.

    ``mode="dynamical"``: the per-gene fits of :func:`recover_dynamics` (aligned
    clock); ``"shared"``: the shared clock of :func:`latent_time`.
    """
    if mode not in _MODES:
        raise VelocityError(f"mode must be one of {_MODES}; got {mode!r}.")
    prefix = "fit_" if mode == "dynamical" else "shared_"
    if prefix + "alpha" not in adata.var or "recover_dynamics" not in adata.uns:
        what = "recover_dynamics" if mode == "dynamical" else "latent_time"
        raise VelocityError(f"mode={mode!r}: run jaxcell.velocity.{what}(adata) first "
                            f"(adata.var has no {prefix + 'alpha'!r}).")
    mask = np.asarray(adata.var["velocity_genes"], bool) & np.isfinite(
        np.asarray(adata.var[prefix + "alpha"], float))
    if not mask.any():
        raise VelocityError(f"mode={mode!r}: no fitted gene.")
    var = adata.var[mask]
    u, s, _, _ = counts(adata, bool(adata.uns["recover_dynamics"]["use_raw"]), mask)
    c = np.asarray(var[prefix + "scaling"], float)
    k = {"alpha": np.asarray(var[prefix + "alpha"], float),
         "beta": np.asarray(var[prefix + "beta"], float) * c,
         "gamma": np.asarray(var[prefix + "gamma"], float),
         "t_": np.asarray(var[prefix + "t_"], float), "scaling": c}
    if mode == "dynamical":
        t = np.asarray(adata.layers["fit_t"], float)[:, mask]
    else:
        t_max = float(adata.uns["latent_time"]["t_max"])
        t = np.repeat(np.asarray(adata.obs["latent_time"], float)[:, None] * t_max,
                      mask.sum(), 1)
    k.update(t=t, on=t < k["t_"][None], u=u, s=s, mask=mask)
    return k


def velocity(adata: Any, mode: str = "dynamical") -> Any:
    """Write ``layers["velocity"]`` (``ds/dt = beta u - gamma s``) and
    ``layers["velocity_u"]`` (``du/dt``, observed units) at each cell's observed state
    with the fitted kinetics; genes that were not fitted get NaN. Returns ``adata``.

    Args:
        adata: AnnData after :func:`recover_dynamics` (and :func:`latent_time` for
            ``mode="shared"``).
        mode: ``"dynamical"`` (per-gene fits) or ``"shared"`` (shared clock).
    """
    k = kinetics(adata, mode)
    a = np.where(k["on"], k["alpha"][None], 0.0)
    b, g, c = k["beta"][None], k["gamma"][None], k["scaling"][None]
    vs = b * k["u"] / c - g * k["s"]
    vu = c * a - b * k["u"]
    for name, v in (("velocity", vs), ("velocity_u", vu)):
        full = np.full((adata.n_obs, adata.n_vars), np.nan)
        full[:, k["mask"]] = v
        adata.layers[name] = full
    adata.uns["velocity_params"] = {"mode": mode, "tool": "jaxcell"}
    return adata


def _step(u_int, s, on, remaining, alpha, beta, gamma, dt):
    """Exact state after ``dt``: transcription ``alpha`` while on, for at most
    ``remaining``, then off."""
    d1 = jnp.where(on, jnp.minimum(dt, remaining), 0.0)
    u1, s1 = splicing_solution(d1, u_int, s, jnp.where(on, alpha, 0.0), beta, gamma)
    return splicing_solution(dt - d1, u1, s1, 0.0, beta, gamma)


def predict(adata: Any, dt: float, mode: str = "dynamical") -> tuple[np.ndarray,
                                                                      np.ndarray]:
    """Each cell's expected ``(unspliced, spliced)`` after a time ``dt`` (``(C, G)``
    over the fitted genes, observed units), from its observed state with the fitted
    kinetics: the exact solution, switching transcription off at the gene's switch
    time. ``dt`` is in the units of the fitted clock (``t_max``).

    Args:
        adata: AnnData after :func:`recover_dynamics`.
        dt: time step (>= 0).
        mode: ``"dynamical"`` or ``"shared"``.
    """
    dt = float(dt)
    if not np.isfinite(dt) or dt < 0:
        raise VelocityError(f"dt must be a finite time >= 0; got {dt!r}.")
    k = kinetics(adata, mode)
    c = k["scaling"][None]
    u, s = _step(k["u"] / c, k["s"], k["on"], k["t_"][None] - k["t"], k["alpha"][None],
                 k["beta"][None], k["gamma"][None], dt)
    return np.asarray(u) * c, np.asarray(s)


def forward_process(adata: Any, mode: str = "dynamical", name: str = "velocity"
                    ) -> Splicing:
    """The fitted kinetics as a :class:`jaxcell.cellular.Splicing` process over every
    (cell, fitted gene) pair (flattened cell-major, ``C * G`` elements), starting from
    the observed state in model units (``unspliced / scaling``); cells on the
    induction branch switch transcription off at their gene's switch time. Compose it
    with other processes or pass it to :func:`jaxcell.simulate`.

    Args:
        adata: AnnData after :func:`recover_dynamics`.
        mode: ``"dynamical"`` or ``"shared"``.
        name: the process name (its state is ``("cellular", name, "unspliced")`` and
            ``("cellular", name, "spliced")``).
    """
    k = kinetics(adata, mode)
    n_c, n_g = k["u"].shape
    rep = lambda v: np.broadcast_to(v[None], (n_c, n_g)).ravel()  # noqa: E731
    return Splicing(name, n_c * n_g,
                    alpha=np.where(k["on"], k["alpha"][None], 0.0).ravel(),
                    beta=rep(k["beta"]), gamma=rep(k["gamma"]),
                    u0=(k["u"] / k["scaling"][None]).ravel(), s0=k["s"].ravel(),
                    switch_time=np.where(k["on"], k["t_"][None] - k["t"], np.inf).ravel())


def simulate_forward(adata: Any, ts: Any, mode: str = "dynamical", *,
                     rtol: float = 1e-8, atol: float = 1e-10) -> dict[str, np.ndarray]:
    """Simulate every cell forward with its fitted kinetics (:func:`forward_process`
    on the one engine, :func:`jaxcell.simulate`, with ``diffrax.Tsit5``: the model is
    linear and not stiff) and return ``{"t": ts, "unspliced": (T, C, G),
    "spliced": (T, C, G)}`` in observed units over the fitted genes.

    Args:
        adata: AnnData after :func:`recover_dynamics`.
        ts: increasing save times (>= 0) after the present.
        mode: ``"dynamical"`` or ``"shared"``.
        rtol: relative tolerance of the step-size controller.
        atol: absolute tolerance of the step-size controller.
    """
    ts = np.asarray(ts, dtype=float).ravel()
    if ts.size == 0 or not np.all(np.isfinite(ts)) or ts[0] < 0 or np.any(np.diff(ts) < 0):
        raise VelocityError("ts must be a non-empty, increasing array of finite times "
                            f">= 0; got {ts!r}.")
    proc = forward_process(adata, mode)
    k = kinetics(adata, mode)
    n_c, n_g = k["u"].shape
    traj = simulate(proc, 0.0, float(ts[-1]), saveat=ts, solver=diffrax.Tsit5(),
                    stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol))
    u = np.asarray(traj[f"cellular/{proc.name}/unspliced"]).reshape(-1, n_c, n_g)
    s = np.asarray(traj[f"cellular/{proc.name}/spliced"]).reshape(-1, n_c, n_g)
    return {"t": ts, "unspliced": u * k["scaling"][None, None], "spliced": s}
