"""Simulating an imported SBML model: ``simulate_sbml`` and ``solve_sbml``.

Models without events or delays are one diffrax solve. Models with events run a loop of
segments inside one compiled program (fixed-shape arrays; see ``_events.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ..solvers import Rodas5
from ._errors import SBMLError, SBMLUnsupportedError
from ._events import STATUS_MESSAGES, STATUS_OK, STATUS_SOLVER, STATUS_TIE, solve_with_events
from ._model import SBMLModel


def _vf(t, x, args):
    model, c = args
    return model.derivative(t, x, c)


SBML_TERM = diffrax.ODETerm(_vf)


def plain_solve(model, ts, x0, c, rtol, atol, max_steps, forward_mode):
    ctrl = diffrax.PIDController(rtol=rtol, atol=atol)
    adjoint = diffrax.ForwardMode() if forward_mode else diffrax.RecursiveCheckpointAdjoint()
    sol = diffrax.diffeqsolve(
        SBML_TERM, Rodas5(), ts[0], ts[-1], None, x0, args=(model, c),
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=ctrl,
        max_steps=max_steps, throw=False, adjoint=adjoint,
    )
    obs = jax.vmap(lambda t, x: model.observe(t, x, c))(ts, sol.ys)
    steps = sol.stats["num_accepted_steps"]
    status = jnp.where(sol.result == diffrax.RESULTS.successful, STATUS_OK, STATUS_SOLVER)
    return obs, status, steps


@eqx.filter_jit
def _solve(model: SBMLModel, ts, rtol, atol, max_steps, max_segments, forward_mode):
    x0, c = model.initialize(ts[0])
    if model.has_events or model.has_delays or model.structure.discontinuities:
        return solve_with_events(model, ts, x0, c, rtol, atol, max_steps, max_segments,
                                 forward_mode)
    return plain_solve(model, ts, x0, c, rtol, atol, max_steps, forward_mode)


def _times(ts) -> Array:
    arr = np.asarray(ts, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise SBMLError(f"ts must be a 1-D array of at least two output times; got shape "
                        f"{arr.shape}.")
    if np.any(np.diff(arr) < 0) or not np.all(np.isfinite(arr)):
        raise SBMLError("ts must be finite and non-decreasing.")
    return jnp.asarray(arr)


def solve_sbml(model: SBMLModel, ts: ArrayLike, rtol: float = 1e-8, atol: float = 1e-10,
               max_steps: int = 100_000, max_segments: int = 4096,
               adjoint: diffrax.AbstractAdjoint | None = None):
    """The values of ``model.output_ids`` at ``ts``: an array ``(len(ts), len(ids))``.

    A pure JAX function of the model's parameters, differentiable through the model
    pytree: reverse mode (``jax.grad``; the default, checkpointed loops) or, with
    ``adjoint=diffrax.ForwardMode()``, forward mode (``jax.jvp`` / ``jax.jacfwd``; faster
    for a few parameters). Returns ``(values, status, steps)``; ``status`` is 0 on
    success (``SBMLSolution.messages`` explains the other codes).
    """
    if not isinstance(model, SBMLModel):
        raise SBMLError(f"solve_sbml needs an SBMLModel (from load_sbml); got "
                        f"{type(model).__name__}.")
    if adjoint is None or isinstance(adjoint, diffrax.RecursiveCheckpointAdjoint):
        forward_mode = False
    elif isinstance(adjoint, diffrax.ForwardMode):
        forward_mode = True
    else:
        raise SBMLError(
            f"solve_sbml supports adjoint=diffrax.RecursiveCheckpointAdjoint() (reverse "
            f"mode, the default) or diffrax.ForwardMode(); got {type(adjoint).__name__}.")
    return _solve(model, jnp.asarray(ts), rtol, atol, int(max_steps), int(max_segments),
                  forward_mode)


@dataclasses.dataclass(frozen=True)
class SBMLSolution:
    """Values of every SBML symbol at the output times.

    ``value(id)`` is the value as SBML defines it (species: concentration unless
    ``hasOnlySubstanceUnits``); ``amount(id)`` and ``concentration(id)`` convert species.
    """

    ts: np.ndarray
    ids: tuple[str, ...]
    values: np.ndarray  # (len(ts), len(ids))
    status: int
    num_steps: int
    model: SBMLModel = dataclasses.field(repr=False)

    def _col(self, name: str) -> np.ndarray:
        """The column of ``name`` (``KeyError`` naming it if unknown)."""
        try:
            return self.values[:, self.ids.index(name)]
        except ValueError:
            raise KeyError(f"{name!r} is not a species, compartment, parameter or species "
                           f"reference of SBML model {self.model.name!r}.") from None

    def value(self, name: str) -> np.ndarray:
        """The SBML value of a symbol over ``ts`` (species: concentration unless
        ``hasOnlySubstanceUnits``)."""
        return self._col(name)

    def __getitem__(self, name: str) -> np.ndarray:
        """Same as :meth:`value`."""
        return self._col(name)

    def _species(self, name):
        sym = self.model.structure.symbols.get(name)
        if sym is None or sym.kind != "species":
            return None, None
        comp = self.model.structure.symbols[sym.compartment]
        vol = self._col(sym.compartment) if self.model.structure.has_size(comp.id) \
            else np.ones_like(self.ts)
        return sym, vol

    def amount(self, name: str) -> np.ndarray:
        """A species' amount over ``ts`` (other symbols: their value)."""
        sym, vol = self._species(name)
        v = self._col(name)
        if sym is None or sym.only_substance:
            return v
        return v * vol

    def concentration(self, name: str) -> np.ndarray:
        """A species' concentration over ``ts`` (other symbols: their value)."""
        sym, vol = self._species(name)
        v = self._col(name)
        if sym is None or not sym.only_substance:
            return v
        return v / vol

    @property
    def success(self) -> bool:
        """Whether the simulation finished without a solver or event problem."""
        return self.status == STATUS_OK

    def messages(self) -> list[str]:
        """Why the simulation failed (empty on success)."""
        if self.success:
            return []
        return [STATUS_MESSAGES.get(self.status, f"status {self.status}")]

    def to_columns(self) -> dict[str, np.ndarray]:
        """``{"time": ts, id: values, ...}`` for every symbol."""
        out = {"time": self.ts}
        for i, k in enumerate(self.ids):
            out[k] = self.values[:, i]
        return out


def simulate_sbml(model: SBMLModel, ts: ArrayLike, *, t0: float | None = 0.0,
                  rtol: float = 1e-8, atol: float = 1e-10, max_steps: int = 100_000,
                  max_segments: int = 4096,
                  parameters: Mapping[str, ArrayLike] | None = None) -> SBMLSolution:
    """Simulate an imported SBML model and report every symbol at the times ``ts``.

    The model's initial values hold at ``t0`` (SBML's time 0 by default; ``t0=None``
    starts at ``ts[0]``); ``ts`` must not start before ``t0``. Events, delays, rules and
    all SBML semantics that :func:`load_sbml` accepts are handled; see
    :class:`SBMLSolution`."""
    if parameters:
        model = model.replace_parameters(parameters)
    t = _times(ts)
    start = float(t[0]) if t0 is None else float(t0)
    if float(t[0]) < start:
        raise SBMLError(f"ts starts at {float(t[0])}, before t0 = {start}.")
    extra = float(t[0]) > start
    full = jnp.concatenate([jnp.asarray([start]), t]) if extra else t
    values, status, steps = solve_sbml(model, full, rtol, atol, max_steps, max_segments)
    if int(status) == STATUS_TIE:
        raise SBMLUnsupportedError(
            "random execution order of simultaneous events with equal priorities", None,
            "SBML asks for a random order; jaxcell executes events deterministically")
    values = np.asarray(values)[1:] if extra else np.asarray(values)
    return SBMLSolution(ts=np.asarray(t), ids=model.output_ids, values=values,
                        status=int(status), num_steps=int(steps), model=model)
