"""Running the tasks of a SED-ML document.

A task's result is ``{name: array}``: ``"time"`` and every output of the model
(:attr:`jaxcell.sbml.SBMLModel.output_ids`: species as SBML defines their values,
concentrations unless ``hasOnlySubstanceUnits``), plus the model's parameter values.
A ``uniformTimeCourse`` gives arrays of shape ``(steps + 1,)``, a ``steadyState`` of
shape ``()``. A ``repeatedTask`` gives ``(iterations, sub-tasks, *sub-task shape)``,
right-padded with NaN (BioSimulators' convention).

Within a repeated task the state of each model carries from one sub-task to the next
(each simulation restarts its clock at its ``initialTime``), and from one iteration to
the next when ``resetModel="false"``. A repeated task with one sub-task, a time course,
and ``resetModel="true"`` is one ``vmap`` over its iterations.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..sbml import SBMLModel
from . import _engine
from ._document import (
    Document,
    RepeatedTaskDef,
    SetValue,
    SteadyStateSim,
    TaskDef,
    TimeCourse,
)
from ._errors import SEDMLError, SEDMLUnsupportedError
from ._math import evaluate
from ._models import ModelLoader


@dataclasses.dataclass
class _Current:
    """A model as it stands inside a repeated task: its parameters, and its stored
    state when it carries over (``None``: start from its initial values)."""

    model: SBMLModel
    x: object = None


class Executor:
    """Runs the tasks of one document, each once (results are cached)."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.loader = ModelLoader(doc)
        self.results: dict[str, dict[str, np.ndarray]] = {}

    def task(self, task_id: str) -> dict[str, np.ndarray]:
        """The result of the task ``task_id``."""
        if task_id not in self.results:
            t = self.doc.tasks[task_id]
            if isinstance(t, TaskDef):
                out, _ = self._simulate(t, _Current(self.loader.model(t.model)))
            else:
                out = self._repeated(t, {}, ())
            self.results[task_id] = out
        return self.results[task_id]

    # -- one simulation ----------------------------------------------------------------
    def _simulate(self, t: TaskDef, cur: _Current):
        sim = self.doc.simulations[t.simulation]
        m = cur.model
        where = f"{self.doc.path}: task {t.id!r}"
        alg = sim.algorithm
        if isinstance(sim, SteadyStateSim):
            if m.has_events:
                raise SEDMLUnsupportedError("steadyState of a model with events", t.id,
                                            self.doc.path)
            if cur.x is not None:
                raise SEDMLUnsupportedError(
                    "steadyState from a state carried over in a repeatedTask", t.id,
                    self.doc.path)
            values, x, ok = _engine.steady(m, alg.rtol, alg.atol, alg.max_steps)
            if not ok:
                raise SEDMLError(f"{where}: no steady state found for model {t.model!r} "
                                 f"(simulation {sim.id!r}).")
            out = {"time": np.asarray(np.nan)}
            out.update({k: values[i] for i, k in enumerate(m.output_ids)})
            return _with_parameters(out, m, ()), x
        ts = sim.times()
        full = np.concatenate([[sim.initial], ts]) if sim.initial < sim.start else ts
        values, x, ok = _engine.time_course(m, full, cur.x, alg.rtol, alg.atol,
                                            alg.max_steps)
        if not ok:
            raise SEDMLError(f"{where}: the simulation of model {t.model!r} failed "
                             f"(simulation {sim.id!r}); try tighter tolerances or more "
                             "steps (KISAO_0000209, KISAO_0000211, KISAO_0000415).")
        values = values[len(full) - len(ts):]
        out = {"time": ts}
        out.update({k: values[:, i] for i, k in enumerate(m.output_ids)})
        return _with_parameters(out, m, ts.shape), x

    # -- repeated tasks ----------------------------------------------------------------
    def _repeated(self, rt: RepeatedTaskDef, base: dict[str, _Current],
                  stack: tuple[str, ...]) -> dict[str, np.ndarray]:
        if rt.id in stack:
            raise SEDMLError(f"{self.doc.path}: repeatedTask {rt.id!r} contains itself "
                             f"({' -> '.join((*stack, rt.id))}).")
        fast = self._scan(rt, base)
        if fast is not None:
            return fast
        state: dict[str, _Current] = {}
        rows = []
        for i in range(rt.iterations):
            if i == 0 or rt.reset:
                state = {k: dataclasses.replace(v) for k, v in base.items()}
            self._set_values(rt, i, state)
            row = []
            for sub in rt.subtasks:
                t = self.doc.tasks[sub]
                if isinstance(t, TaskDef):
                    cur = self._current(state, t.model)
                    out, x = self._simulate(t, cur)
                    state[t.model] = _Current(cur.model, x)
                else:
                    out = self._repeated(t, state, (*stack, rt.id))
                row.append(out)
            rows.append(row)
        return _stack(rows)

    def _current(self, state, model_id) -> _Current:
        if model_id not in state:
            state[model_id] = _Current(self.loader.model(model_id))
        return state[model_id]

    def _values(self, rt: RepeatedTaskDef, ch: SetValue, i) -> np.ndarray:
        where = f"{self.doc.path}: repeatedTask {rt.id!r}, setValue of {ch.target.id!r}"
        env = {k: v[i] for k, v in rt.values.items()}
        env.update(dict(ch.parameters))
        return np.asarray(evaluate(ch.tree, env, where), dtype=float)

    def _set_values(self, rt: RepeatedTaskDef, i: int, state) -> None:
        for ch in rt.changes:
            cur = self._current(state, ch.model)
            if ch.target.kind == "species" and cur.x is not None:
                raise SEDMLUnsupportedError(
                    "setValue of a species whose state carries over", rt.id, self.doc.path,
                    f"species {ch.target.id!r} (resetModel='false' or an earlier sub-task)")
            v = self._values(rt, ch, i)
            if v.shape != ():
                raise SEDMLError(f"{self.doc.path}: repeatedTask {rt.id!r}: the setValue "
                                 f"of {ch.target.id!r} is not a scalar.")
            key, value = _parameter(cur.model, ch, float(v), self.doc.path, rt.id)
            cur.model = cur.model.replace_parameters({key: value})

    def _scan(self, rt: RepeatedTaskDef, base) -> dict[str, np.ndarray] | None:
        """A repeated task as one vmapped solve, when it is a plain parameter scan."""
        if not rt.reset or len(rt.subtasks) != 1:
            return None
        t = self.doc.tasks[rt.subtasks[0]]
        if not isinstance(t, TaskDef):
            return None
        sim = self.doc.simulations[t.simulation]
        if not isinstance(sim, TimeCourse) or any(ch.model != t.model for ch in rt.changes):
            return None
        cur = base.get(t.model)
        if cur is not None and cur.x is not None:
            return None
        model = cur.model if cur is not None else self.loader.model(t.model)
        if model.has_events:
            return None  # the event loop runs one iteration at a time
        keys: list[str] = []
        rows = []
        for i in range(rt.iterations):
            m = model
            for ch in rt.changes:
                v = self._values(rt, ch, i)
                if v.shape != ():
                    raise SEDMLError(f"{self.doc.path}: repeatedTask {rt.id!r}: the "
                                     f"setValue of {ch.target.id!r} is not a scalar.")
                key, value = _parameter(m, ch, float(v), self.doc.path, rt.id)
                m = m.replace_parameters({key: value})
                if key not in keys:
                    keys.append(key)
            rows.append(m.params)
        table = np.asarray([[float(p[k]) for k in keys] for p in rows]).reshape(len(rows),
                                                                                 len(keys))
        ts = sim.times()
        full = np.concatenate([[sim.initial], ts]) if sim.initial < sim.start else ts
        alg = sim.algorithm
        values, ok = _engine.scan(model, tuple(keys), table, full, alg.rtol, alg.atol,
                                  alg.max_steps)
        if not np.all(ok):
            bad = int(np.argmin(ok))
            raise SEDMLError(f"{self.doc.path}: repeatedTask {rt.id!r}: the simulation of "
                             f"model {t.model!r} failed at iteration {bad}; try tighter "
                             "tolerances or more steps.")
        values = values[:, len(full) - len(ts):]
        n = rt.iterations
        out = {"time": np.broadcast_to(ts, (n, 1, len(ts))).copy()}
        for j, k in enumerate(model.output_ids):
            out[k] = values[:, None, :, j]
        for k in model.params:
            if k not in out:
                col = np.asarray([float(p[k]) for p in rows])
                out[k] = np.broadcast_to(col[:, None, None], (n, 1, len(ts))).copy()
        return out


def _with_parameters(out: dict, m: SBMLModel, shape) -> dict[str, np.ndarray]:
    for k, v in m.params.items():
        if k not in out:
            out[k] = np.full(shape, float(v))
    return out


def _parameter(m: SBMLModel, ch: SetValue, value: float, path: str, rt_id: str):
    """The parameter of ``m`` that the setValue ``ch`` changes, and its new value (a
    species value converted to the form the SBML file gives its initial value in)."""
    t = ch.target
    params = m.params
    if t.id not in params:
        raise SEDMLError(f"{path}: repeatedTask {rt_id!r}: setValue targets {t.kind} "
                         f"{t.id!r}, which model {ch.model!r} does not have as a value.")
    if t.kind != "species":
        return t.id, value
    sym = m.structure.symbols[t.id]
    want_conc = (t.attribute == "initialConcentration"
                 or (t.attribute is None and not sym.only_substance))
    have_conc = sym.initial_is_concentration
    if want_conc == have_conc:
        return t.id, value
    size = params.get(sym.compartment)
    if size is None:
        raise SEDMLUnsupportedError(
            "setValue converting between amount and concentration", rt_id, path,
            f"species {t.id!r}: the size of compartment {sym.compartment!r} is not a value")
    size = float(size)
    return t.id, value * size if want_conc else value / size


def _stack(rows: list[list[dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """``rows[i][j]`` (iteration ``i``, sub-task ``j``) stacked per name into
    ``(iterations, sub-tasks, *shape)``, right-padded with NaN."""
    keys: list[str] = []
    for row in rows:
        for out in row:
            keys.extend(k for k in out if k not in keys)
    result = {}
    n_sub = max(len(r) for r in rows)
    for k in keys:
        parts = [np.asarray(out[k], dtype=float) for row in rows for out in row if k in out]
        ndim = max(p.ndim for p in parts)
        shape = tuple(max(p.shape[d] if d < p.ndim else 1 for p in parts)
                      for d in range(ndim))
        arr = np.full((len(rows), n_sub, *shape), np.nan)
        for i, row in enumerate(rows):
            for j, out in enumerate(row):
                if k in out:
                    v = np.asarray(out[k], dtype=float)
                    arr[(i, j, *(slice(0, s) for s in v.shape))] = v
        result[k] = arr
    return result


