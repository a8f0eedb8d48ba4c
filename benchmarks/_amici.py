"""A small adapter to AMICI (C++ CVODES with forward sensitivities) for the benchmarks.

AMICI is optional (``pip install -e ".[benchmark]"``; it compiles from source, see the
comment next to it in ``pyproject.toml``). It is imported lazily: importing this module
always works, :func:`available` says whether AMICI can be used, and the other functions
raise :class:`AmiciUnavailable` (an ``ImportError``) when it cannot.

Written against the AMICI 1.x Python API (``amici.importers.sbml.SbmlImporter``,
``amici.sim.sundials.run_simulation``, snake_case model/solver methods).

Typical use::

    h = build("model.xml", "mymodel", "build/amici_mymodel")
    set_tolerances(h, rtol=1e-6, atol=1e-8)
    x = simulate(h, ts, {"k": 0.5})              # (len(ts), len(h.state_ids))
    loss, grad = loss_and_gradient(h, ts, data, {"k": 0.5}, wrt=["k"])

Parameters are always on linear scale. Each ``simulate`` / ``loss_and_gradient`` call starts
from the model's nominal (SBML) parameter values, overridden by the ``params`` it is given,
and integrates from t = 0 with the SBML initial conditions.

Run ``python benchmarks/_amici.py`` for a self-check against an analytic solution.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_STAMP = "jaxcell_amici_build.json"  # written into outdir after a successful build


class AmiciUnavailable(ImportError):
    """AMICI is not installed (or its compiled extension cannot be loaded)."""


def _amici() -> tuple[Any, Any]:
    """Import and return ``(amici, amici.sim.sundials)``, or raise :class:`AmiciUnavailable`."""
    try:
        import amici
        import amici.sim.sundials as sundials
    except ImportError as e:  # not installed, or an older (pre-1.0) API
        raise AmiciUnavailable(
            "AMICI (>= 1.0) is needed for this benchmark but could not be imported "
            f"({e}). Install it with `pip install -e \".[benchmark]\"` (builds from "
            "source: needs a C++20 compiler; see pyproject.toml)."
        ) from e
    return amici, sundials


def available() -> bool:
    """Whether AMICI can be imported."""
    try:
        _amici()
    except AmiciUnavailable:
        return False
    return True


@dataclass
class Handle:
    """A compiled AMICI model plus a solver, as returned by :func:`build`.

    ``state_ids``: order of the columns of :func:`simulate` (SBML species ids);
    ``observable_ids``: order of the columns of ``data`` in :func:`loss_and_gradient`;
    ``free_ids`` / ``fixed_ids``: parameter ids with / without sensitivities, in AMICI's
    order (all ids here are SBML ids, also where AMICI renamed one, e.g. ``k``);
    ``build_time``: seconds the import + compilation took (when the build was made);
    ``reused``: whether an existing build in ``outdir`` was loaded instead.
    """

    model: Any
    solver: Any
    module: Any
    state_ids: list[str]
    observable_ids: list[str]
    free_ids: list[str]
    fixed_ids: list[str]
    build_time: float
    reused: bool
    nominal_free: list[float] = field(default_factory=list)
    nominal_fixed: list[float] = field(default_factory=list)


def _sbml_ids(sbml_path: str) -> tuple[list[str], set[str]]:
    """Species ids (SBML order) and all ids of the model's species and parameters."""
    import libsbml

    m = libsbml.readSBMLFromFile(sbml_path).getModel()
    species = [s.getId() for s in m.getListOfSpecies()]
    return species, set(species) | {p.getId() for p in m.getListOfParameters()}


def _to_sbml(amici_id: str, sbml_ids: set[str]) -> str:
    """AMICI renames ids that clash with its reserved symbols (``k`` -> ``amici_k``)."""
    stripped = amici_id.removeprefix("amici_")
    return stripped if amici_id not in sbml_ids and stripped in sbml_ids else amici_id


@contextlib.contextmanager
def _venv_tools_on_path() -> Iterator[None]:
    """Let AMICI's model build find the ``swig`` / ``cmake`` / ``ninja`` that pip installed
    next to this interpreter: CMake searches ``PATH``, which lacks the venv's ``bin`` unless
    the venv is activated. Appended, so tools already on ``PATH`` take precedence."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = old + os.pathsep + os.path.dirname(sys.executable)
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _build_key(sbml_path: str, name: str, observables: dict[str, str],
               fixed: list[str], version: str) -> dict[str, Any]:
    with open(sbml_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"sbml_sha256": digest, "name": name, "observables": observables,
            "fixed": sorted(fixed), "amici": version}


def build(sbml_path: str, name: str, outdir: str,
          observables: dict[str, str] | None = None,
          fixed: list[str] | None = None) -> Handle:
    """:func:`_build` under an exclusive lock on ``<outdir>.lock``: two processes building
    into one folder (``ensemble.py`` and ``work_precision.py`` share their builds) break
    each other's CMake build."""
    import fcntl

    lock_path = os.fspath(outdir).rstrip("/") + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(sbml_path, name, outdir, observables, fixed)


def _build(sbml_path: str, name: str, outdir: str,
           observables: dict[str, str] | None = None,
           fixed: list[str] | None = None) -> Handle:
    """Import an SBML model with AMICI, compile it into ``outdir`` and load it.

    ``name`` must be a valid Python module name, unique within a process.
    ``observables`` maps observable id to formula; default: one per species,
    ``{"y_<species>": "<species>"}`` in SBML order. ``fixed`` lists parameter ids excluded
    from sensitivity analysis. If ``outdir`` already holds a build of the same SBML file
    (by content hash), name, observables, fixed parameters and AMICI version, it is loaded
    instead of rebuilt (``handle.reused``; ``handle.build_time`` is then the time recorded
    when it was built).
    """
    amici, sundials = _amici()
    from amici.importers.sbml import SbmlImporter

    sbml_path = os.fspath(sbml_path)
    species, sbml_ids = _sbml_ids(sbml_path)
    if observables is None:
        observables = {f"y_{s}": s for s in species}
    fixed = list(fixed or [])
    key = _build_key(sbml_path, name, observables, fixed, amici.__version__)
    stamp = os.path.join(outdir, _STAMP)

    reused = False
    if os.path.exists(stamp):
        with open(stamp) as f:
            old = json.load(f)
        if old.get("key") == key:
            try:
                module = amici.import_model_module(name, outdir)
                build_time, reused = float(old["build_time"]), True
            except ImportError:  # stale or broken build: make a new one
                os.remove(stamp)
    if not reused:
        channels = [amici.MeasurementChannel(oid, formula=formula, noise_distribution="normal",
                                             sigma=1.0)
                    for oid, formula in observables.items()]
        t0 = time.perf_counter()
        with _venv_tools_on_path():
            SbmlImporter(sbml_path).sbml2amici(name, outdir, fixed_parameters=fixed,
                                               observation_model=channels)
        module = amici.import_model_module(name, outdir)
        build_time = time.perf_counter() - t0
        with open(stamp, "w") as f:
            json.dump({"key": key, "build_time": build_time}, f, indent=1)

    model = module.get_model()
    model.set_parameter_scale(sundials.ParameterScaling_none)
    ids = {a: _to_sbml(a, sbml_ids) for a in [*model.get_state_ids(),
                                              *model.get_free_parameter_ids(),
                                              *model.get_fixed_parameter_ids()]}
    h = Handle(model=model, solver=model.create_solver(), module=module,
               state_ids=[ids[a] for a in model.get_state_ids()],
               observable_ids=list(model.get_observable_ids()),
               free_ids=[ids[a] for a in model.get_free_parameter_ids()],
               fixed_ids=[ids[a] for a in model.get_fixed_parameter_ids()],
               build_time=build_time, reused=reused,
               nominal_free=list(model.get_free_parameters()),
               nominal_fixed=list(model.get_fixed_parameters()))
    set_tolerances(h)
    return h


def set_tolerances(h: Handle, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    """Set the solver's relative/absolute tolerances (states and forward sensitivities)."""
    h.solver.set_relative_tolerance(rtol)
    h.solver.set_absolute_tolerance(atol)
    h.solver.set_relative_tolerance_fsa(rtol)
    h.solver.set_absolute_tolerance_fsa(atol)


def set_timepoints(h: Handle, ts: Sequence[float]) -> None:
    """Set the output times (non-decreasing, >= 0; integration starts at t = 0)."""
    h.model.set_timepoints(np.asarray(ts, dtype=float).tolist())


def set_parameters(h: Handle, params: dict[str, float] | None) -> None:
    """Set all parameters to their nominal values, overridden by ``params`` (id -> linear value)."""
    free, fixed = list(h.nominal_free), list(h.nominal_fixed)
    for pid, value in (params or {}).items():
        if pid in h.free_ids:
            free[h.free_ids.index(pid)] = float(value)
        elif pid in h.fixed_ids:
            fixed[h.fixed_ids.index(pid)] = float(value)
        else:
            raise KeyError(f"unknown parameter id {pid!r} (model has {h.free_ids + h.fixed_ids})")
    h.model.set_free_parameters(free)
    h.model.set_fixed_parameters(fixed)


def _run(h: Handle, ts: Sequence[float], params: dict[str, float] | None, sensi: bool) -> Any:
    _, sundials = _amici()
    set_timepoints(h, ts)
    set_parameters(h, params)
    if sensi:
        h.solver.set_sensitivity_method(sundials.SensitivityMethod_forward)
        h.solver.set_sensitivity_order(sundials.SensitivityOrder_first)
    else:
        h.solver.set_sensitivity_order(sundials.SensitivityOrder_none)
    rdata = sundials.run_simulation(h.model, h.solver)
    if rdata.status != sundials.AMICI_SUCCESS:
        raise RuntimeError("AMICI simulation failed: "
                           + sundials.simulation_status_to_str(rdata.status))
    return rdata


def simulate(h: Handle, ts: Sequence[float], params: dict[str, float] | None = None) -> np.ndarray:
    """States at ``ts``, shape ``(len(ts), len(h.state_ids))``, columns in ``h.state_ids`` order.

    No sensitivities are computed.
    """
    return np.array(_run(h, ts, params, sensi=False).x, dtype=float)


def observables(h: Handle, ts: Sequence[float],
                params: dict[str, float] | None = None) -> np.ndarray:
    """Observables at ``ts``, shape ``(len(ts), len(h.observable_ids))``."""
    return np.array(_run(h, ts, params, sensi=False).y, dtype=float)


def loss_and_gradient(h: Handle, ts: Sequence[float], data: np.ndarray,
                      params: dict[str, float] | None, wrt: Sequence[str]
                      ) -> tuple[float, np.ndarray]:
    """``L = 0.5 * sum((y - data)**2)`` over all observables and times, and ``dL/dp``.

    ``data`` has shape ``(len(ts), len(h.observable_ids))``. The gradient is with respect
    to the free parameters ``wrt`` (linear scale), in that order, from AMICI's first-order
    forward sensitivities: ``dL/dp = sum_{t,o} (y - data)[t, o] * dy[t, o]/dp``.
    """
    wrt = list(wrt)
    missing = [p for p in wrt if p not in h.free_ids]
    if missing:
        raise KeyError(f"not free (sensitivity) parameters: {missing}")
    data = np.asarray(data, dtype=float)
    if data.shape != (len(ts), len(h.observable_ids)):
        raise ValueError(f"data has shape {data.shape}, "
                         f"expected {(len(ts), len(h.observable_ids))}")
    h.model.set_parameter_list([h.free_ids.index(p) for p in wrt])
    rdata = _run(h, ts, params, sensi=True)
    res = np.asarray(rdata.y, dtype=float) - data                  # (nt, ny)
    sy = np.asarray(rdata.sy, dtype=float)                         # (nt, len(wrt), ny)
    return 0.5 * float(np.sum(res**2)), np.einsum("to,tpo->p", res, sy)


# -- self-check ----------------------------------------------------------------------------


def _write_decay_sbml(path: str, k: float = 0.7, d: float = 0.3, a0: float = 2.0) -> None:
    """Write the test model A -> B (rate k*A), B -> 0 (rate d*B), unit volume, to ``path``."""
    import libsbml

    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("decay")
    c = m.createCompartment()
    c.setId("c"), c.setSize(1.0), c.setConstant(True), c.setSpatialDimensions(3)
    for sid, x0 in (("A", a0), ("B", 0.0)):
        s = m.createSpecies()
        s.setId(sid), s.setCompartment("c"), s.setInitialConcentration(x0)
        s.setHasOnlySubstanceUnits(False), s.setBoundaryCondition(False), s.setConstant(False)
    for pid, v in (("k", k), ("d", d)):
        p = m.createParameter()
        p.setId(pid), p.setValue(v), p.setConstant(True)
    for rid, reactant, product, law in (("r1", "A", "B", "k*A*c"), ("r2", "B", None, "d*B*c")):
        r = m.createReaction()
        r.setId(rid), r.setReversible(False)
        sr = r.createReactant()
        sr.setSpecies(reactant), sr.setStoichiometry(1.0), sr.setConstant(True)
        if product:
            sp = r.createProduct()
            sp.setSpecies(product), sp.setStoichiometry(1.0), sp.setConstant(True)
        r.createKineticLaw().setMath(libsbml.parseL3Formula(law))
    if not libsbml.writeSBMLToFile(doc, path):
        raise OSError(f"could not write {path}")


def _decay_exact(ts: np.ndarray, k: float, d: float, a0: float = 2.0) -> np.ndarray:
    """Analytic solution of the test model, columns (A, B)."""
    a = a0 * np.exp(-k * ts)
    b = a0 * k / (d - k) * (np.exp(-k * ts) - np.exp(-d * ts))
    return np.stack([a, b], axis=1)


def _selfcheck(outdir: str | None = None) -> dict[str, float]:
    """Build the 2-species test model, compare states with the analytic solution and the
    forward-sensitivity gradient with central finite differences; print and return the
    relative errors."""
    import tempfile

    outdir = outdir or os.path.join(tempfile.gettempdir(), "jaxcell_amici_selfcheck")
    os.makedirs(outdir, exist_ok=True)
    sbml = os.path.join(outdir, "decay.xml")
    _write_decay_sbml(sbml)
    h = build(sbml, "jaxcell_amici_decay", os.path.join(outdir, "model"))
    print(f"AMICI build: {h.build_time:.1f} s ({'reused' if h.reused else 'new'}); "
          f"states {h.state_ids}, observables {h.observable_ids}, free {h.free_ids}")

    ts = np.linspace(0.0, 10.0, 21)
    p = {"k": 0.7, "d": 0.3}
    xcols = [("A", "B").index(s) for s in h.state_ids]                      # exact -> states
    ycols = [("A", "B").index(o.removeprefix("y_")) for o in h.observable_ids]  # -> observables
    data = _decay_exact(ts, 0.5, 0.2)[:, ycols]  # "data" from other parameter values

    def exact_loss(k: float, d: float) -> float:
        return 0.5 * float(np.sum((_decay_exact(ts, k, d)[:, ycols] - data) ** 2))

    def amici_loss(q: dict[str, float]) -> float:
        return 0.5 * float(np.sum((observables(h, ts, q) - data) ** 2))

    def central(f, q: str, step: float) -> float:  # central difference of f(params) in q
        return (f({**p, q: p[q] + step}) - f({**p, q: p[q] - step})) / (2 * step)

    fd = np.array([central(lambda x: exact_loss(**x), q, 1e-6) for q in ("k", "d")])
    out: dict[str, float] = {}
    for rtol, atol in ((1e-6, 1e-8), (1e-10, 1e-12)):
        set_tolerances(h, rtol, atol)
        exact = _decay_exact(ts, p["k"], p["d"])[:, xcols]
        err_x = float(np.max(np.abs(simulate(h, ts, p) - exact)) / np.max(np.abs(exact)))
        loss, grad = loss_and_gradient(h, ts, data, p, ["k", "d"])
        err_l = abs(loss - exact_loss(**p)) / exact_loss(**p)
        # step rtol**(1/3) * p balances solver noise against truncation error
        fd_amici = np.array([central(amici_loss, q, rtol ** (1 / 3) * p[q]) for q in ("k", "d")])
        err_g = float(np.max(np.abs(grad - fd)) / np.max(np.abs(fd)))
        err_ga = float(np.max(np.abs(grad - fd_amici)) / np.max(np.abs(fd_amici)))
        print(f"rtol={rtol:g} atol={atol:g}: states max rel err {err_x:.2e}, loss rel err "
              f"{err_l:.2e}, gradient {grad} rel err vs central FD of the exact loss {err_g:.2e}"
              f" (FD {fd}), vs central FD of AMICI's loss {err_ga:.2e}")
        out[f"states_{rtol:g}"], out[f"loss_{rtol:g}"] = err_x, err_l
        out[f"grad_vs_fd_exact_{rtol:g}"], out[f"grad_vs_fd_amici_{rtol:g}"] = err_g, err_ga
    return out


if __name__ == "__main__":
    _selfcheck()
