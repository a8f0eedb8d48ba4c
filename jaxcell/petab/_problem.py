"""``load_petab``: a PEtab (v1) parameter-estimation problem as a differentiable
negative log-likelihood.

The tables are read with the ``petab`` library. Everything that depends on the
estimated parameters is turned into fixed-shape index arrays once, at load time:

* per simulated condition (a unique ``(preequilibrationConditionId,
  simulationConditionId)`` pair), the values of the model parameters that the
  parameters or condition table set, as ``where(src >= 0, p[src], const)`` with ``p``
  all PEtab parameters on the linear scale;
* per measurement, its condition, its output-time index and its placeholder overrides
  (``observableParameter{n}_{obsId}``, ``noiseParameter{n}_{obsId}``) in the same form.

All conditions run through one traced solve (``jax.lax.map``), so the problem compiles
once whatever the number of conditions.
"""

from __future__ import annotations

import os
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._composite import as_composite
from .._engine import TERM
from .._results import RESULTS
from .._safe_io import load_yaml, reraise_as
from ..sbml._model import SBMLModel
from ..sbml._solve import run_sbml
from ..solvers import Rodas5
from ._math import PetabError
from ._priors import neg_log_prior
from ._tables import PetabTables

_PREEQ_T1 = 1e8  # pre-equilibration gives up (error) without a steady state by then


class PetabProblem(PetabTables):
    """A PEtab v1 problem read by :func:`load_petab` (a plain, immutable-by-convention
    class: the arrays it holds are built once; :meth:`nllh` is a pure, jit-compiled JAX
    function of the estimated parameters).

    Attributes:
        model: the :class:`SBMLModel` of the problem's SBML file.
        parameter_ids: ids of the estimated parameters (``estimate == 1``), in the
            parameters table's order: the order of ``x`` in :meth:`nllh`.
        parameter_scales: their ``parameterScale`` (``lin``, ``log``, ``log10``).
        lower_bounds, upper_bounds: their bounds, on the parameter scale.
        x_nominal: their nominal values, on the parameter scale.
        conditions: the simulated ``(preequilibration or None, simulation)`` pairs.
    """

    def __init__(self, yaml_path, *, rtol: float = 1e-8, atol: float = 1e-10,
                 max_steps: int = 100_000, max_segments: int = 4096,
                 forward_mode: bool = False, solver: diffrax.AbstractSolver | None = None):
        self.yaml_path = Path(yaml_path)
        self.forward_mode = bool(forward_mode)
        if solver is not None and not isinstance(solver, diffrax.AbstractSolver):
            raise PetabError(f"load_petab: solver must be a diffrax solver (such as "
                             f"jaxcell.solvers.Rodas5() or diffrax.Dopri8()); got "
                             f"{type(solver).__name__}.")
        self.solver = Rodas5() if solver is None else solver
        self.rtol, self.atol = float(rtol), float(atol)
        self.max_steps, self.max_segments = int(max_steps), int(max_segments)
        with reraise_as(PetabError, str(self.yaml_path), "PEtab problem"):
            self._read()
            self._build_parameters()
            self._build_conditions()
            self._build_measurements()
        self._nllh = jax.jit(self._nllh_impl)

    def _p_all(self, x) -> Array:
        """All PEtab parameters on the linear scale (estimated ones from ``x``)."""
        x = jnp.asarray(x, dtype=float)
        lin = jnp.where(self._scale_code == 0, x,
                        jnp.where(self._scale_code == 1, jnp.exp(x), 10.0**x))
        p = jnp.asarray(self._nominal_lin)
        return p.at[self._est_idx].set(lin) if len(self._est_idx) else p

    def fitted_model(self, x: ArrayLike) -> SBMLModel:
        """The SBML model with the estimated parameters that are parameters of the model
        set to their values at ``x`` (on the parameter scale, e.g. a fit's ``x``): what
        :func:`jaxcell.sbml.export_sbml` writes after a fit. Observable and noise
        parameters and condition-table values are not parameters of the model and stay
        out (they are in the PEtab tables)."""
        lin = np.asarray(self._p_all(x))
        values = {k: float(lin[self._pindex[k]]) for k in self.parameter_ids
                  if k in self.model.params}
        return self.model.replace_parameters(values)

    # -- simulation and likelihood --------------------------------------------------------
    def _model_with(self, values) -> SBMLModel:
        params = dict(self.model.params)
        params.update({k: values[i] for i, k in enumerate(self._keys)})
        return eqx.tree_at(lambda s: s.params, self.model, params)

    def _steady_state(self, values):
        m = self._model_with(values)
        comp = as_composite(m).prepared(0.0)
        y0 = comp.initial_state()
        sol = diffrax.diffeqsolve(
            TERM, self.solver, 0.0, _PREEQ_T1, None, y0, args=(comp, None),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            event=diffrax.Event(diffrax.steady_state_event(rtol=self.rtol, atol=self.atol)),
            max_steps=self.max_steps, throw=False,
            adjoint=(diffrax.ForwardMode() if self.forward_mode
                     else diffrax.RecursiveCheckpointAdjoint()))
        done = (sol.result == diffrax.RESULTS.successful) | (
            sol.result == diffrax.RESULTS.event_occurred)
        ok = done & jnp.any(jnp.asarray(sol.event_mask))
        return sol.ys[m.scale][m.name]["state"][-1], ok

    def _simulate_one(self, values, ts, x_pre, mask):
        return self._run(self._model_with(values), ts, x_pre, mask)

    def _run(self, m, ts, x_pre, mask):
        """Simulate the model ``m`` at ``ts`` (initial state from ``x_pre`` where
        ``mask``): ``(outputs, result)``."""
        x0, _ = m.initialize(ts[0])
        x0 = jnp.where(mask, x_pre, x0)
        obs, result, _ = run_sbml(
            m, ts, x0=x0, solver=self.solver,
            controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            adjoint=(diffrax.ForwardMode() if self.forward_mode
                     else diffrax.RecursiveCheckpointAdjoint()),
            max_steps=self.max_steps, max_segments=self.max_segments)
        return obs, result

    def _values(self, src, const, p):
        return jnp.where(src >= 0, p[jnp.clip(src, 0)], const)

    def _simulate_impl(self, x, ts=None):
        ts = jnp.asarray(self._ts if ts is None else ts)
        p = self._p_all(x)
        n_state = len(self.model.state_ids)
        if self._pre_ids:
            pre_vals = self._values(self._pre_src, self._pre_const, p)
            x_pre, ok = jax.lax.map(self._steady_state, pre_vals)
            x_pre = eqx.error_if(
                x_pre, ~jnp.all(ok),
                "pre-equilibration: no steady state reached (solver failure or "
                f"t > {_PREEQ_T1:g}) in a pre-equilibration condition")
            x_pre = x_pre[self._pre_of]
        else:
            x_pre = jnp.zeros((len(self.conditions), n_state))
        sim_vals = self._values(self._sim_src, self._sim_const, p)
        return jax.lax.map(lambda a: self._simulate_one(*a),
                           (sim_vals, ts, x_pre, jnp.asarray(self._mask)))

    def _predictions(self, x):
        """``([(observable, y, h, sigma), ...], status)``: for each observable group its
        measurements ``y``, simulated observables ``h`` and noise ``sigma``, plus the
        per-condition simulation status (shared by :meth:`nllh` and the fitting
        residuals of :class:`jaxcell.petab.PetabObjective`)."""
        p = self._p_all(x)
        outs, status = self._simulate_impl(x)
        groups = []
        for o in self._observables:
            out = outs[o["cond"], o["tix"]]
            ph_o = self._values(o["osrc"], o["oconst"], p)
            ph_n = self._values(o["nsrc"], o["nconst"], p)

            def one(out, ph_o, ph_n, t, o=o):
                h = o["obs"]({"out": out, "ph": ph_o, "p": p, "t": t})
                s = o["noise"]({"out": out, "ph": ph_n, "p": p, "t": t})
                return h, s

            h, sigma = jax.vmap(one)(out, ph_o, ph_n, jnp.asarray(o["t"]))
            groups.append((o, jnp.asarray(o["y"]), h, sigma))
        return groups, status

    def _nllh_impl(self, x):
        groups, status = self._predictions(x)
        total = jnp.zeros(())
        for o, y, h, sigma in groups:
            total = total + jnp.sum(_nllh_terms(y, h, sigma, o["trans"], o["dist"]))
        return jnp.where(jnp.all(status == RESULTS.successful), total, jnp.inf)

    def nllh(self, x: ArrayLike) -> Array:
        """Negative log-likelihood of the measurements (priors excluded) at the estimated
        parameters ``x`` (on their parameter scale, in :attr:`parameter_ids` order).

        Jit-compiled once per problem and differentiable (``jax.grad``). ``+inf`` when a
        simulation fails; an error when a pre-equilibration reaches no steady state.
        """
        x = jnp.asarray(x, dtype=float)
        if x.shape != (len(self.parameter_ids),):
            raise PetabError(f"nllh: x must have shape ({len(self.parameter_ids)},) (the "
                             f"estimated parameters); got {x.shape}.")
        return self._nllh(x)

    @property
    def has_priors(self) -> bool:
        """Whether any estimated parameter has an objective prior."""
        return bool(np.any(self._prior_code > 0))

    def neg_log_prior(self, x: ArrayLike) -> Array:
        """Negative log of the objective priors (``objectivePriorType``) at ``x``; 0
        when the problem has none. ``parameterScale*`` priors are densities on the
        parameter scale, the others on the linear scale (PEtab v1); differentiable."""
        x = jnp.asarray(x, dtype=float)
        theta = jnp.where(self._scale_code == 0, x,
                          jnp.where(self._scale_code == 1, jnp.exp(x), 10.0**x))
        return neg_log_prior(self._prior_code, self._prior_a, self._prior_b, x, theta)

    def nlpost(self, x: ArrayLike) -> Array:
        """Negative log-posterior, ``nllh(x) + neg_log_prior(x)``: what PEtab tools
        minimise when the problem has priors."""
        return self.nllh(x) + self.neg_log_prior(x)

    def simulate(self, x: ArrayLike) -> dict[tuple[str | None, str], tuple]:
        """Model outputs per condition: ``{(pre, sim): (times, values, status)}`` with
        ``values`` of shape ``(len(times), len(model.output_ids))``."""
        outs, status = jax.jit(self._simulate_impl)(jnp.asarray(x, dtype=float))
        return {c: (np.asarray(self._times[i]), np.asarray(outs[i, :len(self._times[i])]),
                    int(status._value[i])) for i, c in enumerate(self.conditions)}

    def observable_curves(self, x: ArrayLike, points: int = 200) -> dict:
        """Every observable on a fine time grid: ``{observableId: {condition index: (t,
        h)}}`` for the conditions where it is measured, from 0 to the last measurement
        (``points`` times), with the placeholder values of its first measurement in
        that condition. For plots of fits against data."""
        x = jnp.asarray(x, dtype=float)
        t_end = [max(ts) if max(ts) > 0 else 1.0 for ts in self._times]
        fine = np.stack([np.linspace(0.0, te, int(points)) for te in t_end])
        outs, _ = jax.jit(lambda x, ts: self._simulate_impl(x, ts))(x, jnp.asarray(fine))
        p = self._p_all(x)
        nets = self._curve_context(x)
        curves = {}
        for o in self._observables:
            per = {}
            for ci in sorted(set(int(c) for c in o["cond"])):
                k = int(np.flatnonzero(np.asarray(o["cond"]) == ci)[0])
                ph = self._values(o["osrc"][k], o["oconst"][k], p)

                def h(out, t, ph=ph, o=o, ci=ci):
                    return o["obs"]({"out": out, "ph": ph, "p": p, "t": t,
                                     **nets(ci)})

                per[ci] = (fine[ci], np.asarray(jax.vmap(h)(outs[ci], jnp.asarray(fine[ci]))))
            curves[o["id"]] = per
        return curves

    def _curve_context(self, x):
        """Extra entries of a formula's environment at ``x`` for condition ``ci``."""
        return lambda ci: {}

    def simulated_measurements(self, x: ArrayLike) -> np.ndarray:
        """The simulated observable of every measurement at ``x``, in the order of the
        measurement table (what PEtab tools report as the simulation table)."""
        hs = jax.jit(lambda x: tuple(g[2] for g in self._predictions(x)[0]))(
            jnp.asarray(x, dtype=float))
        n = sum(len(o["y"]) for o in self._observables)
        out = np.full(n, np.nan)
        for o, h in zip(self._observables, hs):
            out[o["row"]] = np.asarray(h)
        return out

    def __repr__(self) -> str:
        n_meas = sum(len(o["y"]) for o in self._observables)
        return (f"PetabProblem({self.yaml_path.name!r}, {len(self.parameter_ids)} estimated "
                f"parameters, {len(self.conditions)} conditions, {n_meas} measurements)")


def _nllh_terms(y, h, sigma, trans, dist):
    """Negative log-density of measurements ``y`` given simulations ``h`` and noise
    parameters ``sigma`` (PEtab v1 conventions: for log-transformed observables the
    density is that of ``y`` itself, i.e. with the Jacobian ``1/(y ln b)``)."""
    if trans == "lin":
        r, jac = y - h, 0.0
    elif trans == "log":
        r, jac = jnp.log(y) - jnp.log(h), jnp.log(y)
    else:
        r, jac = jnp.log10(y) - jnp.log10(h), jnp.log(y * jnp.log(10.0))
    if dist == "normal":
        return 0.5 * jnp.log(2 * jnp.pi * sigma**2) + 0.5 * (r / sigma) ** 2 + jac
    return jnp.log(2 * sigma) + jnp.abs(r) / sigma + jac


def load_petab(yaml_path: str | os.PathLike, *, rtol: float = 1e-8, atol: float = 1e-10,
               max_steps: int = 100_000, max_segments: int = 4096,
               forward_mode: bool = False,
               solver: diffrax.AbstractSolver | None = None) -> PetabProblem:
    """Read a PEtab v1 problem (YAML file and its tables) as a :class:`PetabProblem`.

    The SBML model is imported with :func:`load_sbml`; observable and noise formulas
    are parsed by PEtab's grammar into sympy trees and turned into JAX operations
    (nothing is ``eval``-ed). ``problem.nllh(x)`` is the negative log-likelihood

    $$-\\log L = \\sum_i \\tfrac12\\log(2\\pi\\sigma_i^2) +
    \\tfrac12\\bigl((\\tilde y_i - \\tilde h_i)/\\sigma_i\\bigr)^2 \\;(+\\log(y_i\\ln b))$$

    for normal noise (Laplace: $\\log(2\\sigma_i) + |\\tilde y_i - \\tilde h_i|/\\sigma_i$),
    with $\\tilde{\\cdot}$ the observable transformation (lin, log, log10).
    Pre-equilibration runs to a steady state (``diffrax.steady_state_event``).

    ``solver`` is any diffrax solver (default :class:`jaxcell.solvers.Rodas5`, for
    stiff models); for non-stiff models with non-smooth right-hand sides (ReLU networks
    in PEtab SciML problems) an explicit method of high order such as
    ``diffrax.Dopri8()`` is more accurate at tight tolerances.

    ``forward_mode=True`` differentiates the solves in forward mode
    (``diffrax.ForwardMode``): what Jacobians of many residuals with respect to few
    parameters need (Levenberg–Marquardt in :func:`jaxcell.inference.fit`, which then
    uses ``jax.jacfwd``); ``jax.grad`` of ``nllh`` is cheaper in the default reverse
    mode.

    Raises:
        PetabError: missing file or column, invalid entry, unknown formula symbol.
        PetabUnsupportedError: PEtab v2, mapping tables, several models, steady-state
            measurements, pre-equilibration of models with events, other noise models.

    Examples:
        >>> from jaxcell.petab import load_petab
        >>> problem = load_petab("tests/data/petab/Boehm_JProteomeRes2014/"
        ...                      "Boehm_JProteomeRes2014.yaml")  # doctest: +SKIP
        >>> float(problem.nllh(problem.x_nominal))  # doctest: +SKIP
        138.22199...

    References:
        Schmiester et al. (2021). PEtab — Interoperable specification of parameter
        estimation problems in systems biology. PLoS Comput Biol 17:e1008646.
    """
    cls = PetabProblem
    path = Path(yaml_path)
    if path.is_file():
        spec = load_yaml(path, PetabError, "PEtab problem file")
        if isinstance(spec, dict) and str(spec.get("format_version", "")).startswith("2"):
            from ._problem_v2 import PetabV2Problem

            cls = PetabV2Problem
    return cls(yaml_path, rtol=rtol, atol=atol, max_steps=max_steps,
               max_segments=max_segments, forward_mode=forward_mode, solver=solver)
