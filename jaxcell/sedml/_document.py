"""A SED-ML file read with libsedml into plain frozen dataclasses.

Everything jaxcell does not run is refused here, before any simulation, with an error
naming the file, the element id and the feature.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from ._errors import SEDMLError, SEDMLUnsupportedError
from ._libsedml import libsedml
from ._math import evaluate, parse_math
from ._targets import TIME, Target, parse_target


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """A SED-ML model: its source (a path relative to the SED-ML file, or ``#id`` of
    another model of the document) and its ``changeAttribute`` changes."""

    id: str
    source: str
    changes: tuple[tuple[Target, float], ...]


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A KiSAO algorithm and the tolerances and step limit from its parameters."""

    kisao: str
    rtol: float | None
    atol: float | None
    max_steps: int | None


@dataclasses.dataclass(frozen=True)
class TimeCourse:
    """A ``uniformTimeCourse``: output at ``steps + 1`` times from ``start`` to ``end``;
    the model's initial values hold at ``initial``."""

    id: str
    initial: float
    start: float
    end: float
    steps: int
    algorithm: Algorithm

    def times(self) -> np.ndarray:
        """The output times."""
        return np.linspace(self.start, self.end, self.steps + 1)


@dataclasses.dataclass(frozen=True)
class SteadyStateSim:
    """A ``steadyState`` simulation."""

    id: str
    algorithm: Algorithm


@dataclasses.dataclass(frozen=True)
class TaskDef:
    """A ``task``: one simulation of one model."""

    id: str
    model: str
    simulation: str


@dataclasses.dataclass(frozen=True)
class SetValue:
    """A ``setValue`` change of a repeated task: ``target`` of ``model`` becomes the
    value of ``tree`` (which may name ranges and parameters)."""

    model: str
    target: Target
    tree: tuple
    parameters: tuple[tuple[str, float], ...]


@dataclasses.dataclass(frozen=True)
class RepeatedTaskDef:
    """A ``repeatedTask``: ``values`` maps every range id to its values per iteration
    (the master range fixes the number of iterations); sub-tasks in execution order."""

    id: str
    values: dict[str, np.ndarray]
    reset: bool
    changes: tuple[SetValue, ...]
    subtasks: tuple[str, ...]

    @property
    def iterations(self) -> int:
        """The number of iterations."""
        return len(next(iter(self.values.values()))) if self.values else 0


@dataclasses.dataclass(frozen=True)
class Variable:
    """A data-generator variable: a model target or the time symbol, from a task."""

    id: str
    task: str
    target: Target | None  # None: time


@dataclasses.dataclass(frozen=True)
class DataGeneratorDef:
    """A ``dataGenerator``: math over variables and parameters."""

    id: str
    name: str
    tree: tuple
    variables: tuple[Variable, ...]
    parameters: tuple[tuple[str, float], ...]


@dataclasses.dataclass(frozen=True)
class DataSetDef:
    """A data set of a report."""

    id: str
    label: str
    name: str
    data: str


@dataclasses.dataclass(frozen=True)
class ReportDef:
    """A ``report``."""

    id: str
    name: str
    datasets: tuple[DataSetDef, ...]


@dataclasses.dataclass(frozen=True)
class CurveDef:
    """A curve of a ``plot2D``."""

    id: str
    name: str
    x: str
    y: str
    log_x: bool
    log_y: bool


@dataclasses.dataclass(frozen=True)
class PlotDef:
    """A ``plot2D``."""

    id: str
    name: str
    curves: tuple[CurveDef, ...]


@dataclasses.dataclass(frozen=True)
class Document:
    """A SED-ML file: its name in messages (``path``), where it is on disk (``file``)
    and its elements by id (outputs in document order)."""

    path: str
    file: str
    models: dict[str, ModelDef]
    simulations: dict[str, TimeCourse | SteadyStateSim]
    tasks: dict[str, TaskDef | RepeatedTaskDef]
    data_generators: dict[str, DataGeneratorDef]
    outputs: tuple[ReportDef | PlotDef, ...]


# KiSAO terms of deterministic ODE integrators, run with jaxcell's stiff solver.
ODE_ALGORITHMS = {
    "KISAO_0000019": "CVODE",
    "KISAO_0000088": "LSODA",
    "KISAO_0000496": "CVODES",
    "KISAO_0000560": "LSODA/LSODAR hybrid method",
    "KISAO_0000694": "ODE solver",
}
# KiSAO terms of steady-state solvers (steadyState simulations only).
STEADY_STATE_ALGORITHMS = {
    "KISAO_0000407": "steady state root-finding problem",
    "KISAO_0000408": "Newton-type method",
    "KISAO_0000568": "NLEQ1",
    "KISAO_0000569": "NLEQ2",
}
_RTOL, _ATOL, _MAX_STEPS = "KISAO_0000209", "KISAO_0000211", "KISAO_0000415"
MAX_OUTPUT_STEPS = 10_000_000
"""The most output intervals of a time course (a bound on memory: a hostile file must
not make jaxcell allocate without limit)."""
MAX_RANGE_VALUES = 1_000_000
"""The most values of one range of a repeated task (the same bound)."""


def read_document(path: str | os.PathLike, name: str | None = None) -> Document:
    """Read and check a SED-ML file (``name``: how messages call it; its path by
    default).

    Raises:
        SEDMLError: the file cannot be read, libsedml reports errors, or an element
            refers to something that does not exist.
        SEDMLUnsupportedError: the document uses a feature jaxcell does not run.
    """
    file = os.fspath(path)
    path = file if name is None else name
    if not os.path.isfile(file):
        raise SEDMLError(f"{path}: SED-ML file not found.")
    doc = libsedml.readSedMLFromFile(file)
    log = doc.getErrorLog()
    errors = [log.getError(i) for i in range(log.getNumErrors())]
    errors = [e for e in errors if e.getSeverity() >= libsedml.LIBSEDML_SEV_ERROR]
    if errors:
        text = "; ".join(f"line {e.getLine()}: {e.getMessage().strip()}"
                         for e in errors[:5])
        raise SEDMLError(f"{path}: not a valid SED-ML document: {text}")
    return _Reader(path, file, doc).read()


class _Reader:
    def __init__(self, path: str, file: str, doc):
        self.path = path
        self.file = file
        self.doc = doc

    def where(self, kind: str, element) -> str:
        return f"{self.path}: {kind} {element.getId()!r}"

    def read(self) -> Document:
        d = self.doc
        models = {m.getId(): self.model(m) for m in d.getListOfModels()}
        sims = {s.getId(): self.simulation(s) for s in d.getListOfSimulations()}
        tasks = {}
        for t in d.getListOfTasks():
            tasks[t.getId()] = self.task(t, models, sims)
        for t in tasks.values():
            if isinstance(t, RepeatedTaskDef):
                for sub in t.subtasks:
                    if sub not in tasks:
                        raise SEDMLError(f"{self.path}: repeatedTask {t.id!r} has a subTask "
                                         f"referring to {sub!r}, which is not a task.")
        dgs = {g.getId(): self.data_generator(g, tasks) for g in d.getListOfDataGenerators()}
        outputs = tuple(self.output(o, dgs) for o in d.getListOfOutputs())
        return Document(self.path, self.file, models, sims, tasks, dgs, outputs)

    # -- models ------------------------------------------------------------------------
    def model(self, m) -> ModelDef:
        where = self.where("model", m)
        lang = m.getLanguage() or ""
        if lang and "sbml" not in lang.lower():
            raise SEDMLUnsupportedError(f"model language {lang!r}", m.getId(), self.path,
                                        "jaxcell runs SBML models")
        source = m.getSource().strip()
        if not source:
            raise SEDMLError(f"{where}: no source.")
        low = source.lower()
        if low.startswith(("urn:", "http:", "https:", "ftp:", "file:")) or "://" in low:
            raise SEDMLUnsupportedError(
                "model source that is not a file", m.getId(), self.path,
                f"source {source!r}; jaxcell reads models from files next to the SED-ML "
                "file (or inside the archive) and downloads nothing")
        changes = []
        for ch in m.getListOfChanges():
            code = ch.getTypeCode()
            if code != libsedml.SEDML_CHANGE_ATTRIBUTE:
                kind = ch.getElementName()
                raise SEDMLUnsupportedError(f"{kind} change", m.getId(), self.path,
                                            f"change of target {ch.getTarget()!r}; jaxcell "
                                            "applies changeAttribute changes only")
            target = parse_target(ch.getTarget(), where, m.getId())
            changes.append((target, _number(ch.getNewValue(), f"{where}: changeAttribute "
                                                              f"of {ch.getTarget()!r}")))
        return ModelDef(m.getId(), source, tuple(changes))

    # -- simulations -------------------------------------------------------------------
    def algorithm(self, s, allowed: dict[str, str]) -> Algorithm:
        where = self.where(s.getElementName(), s)
        alg = s.getAlgorithm() if s.isSetAlgorithm() else None
        kisao = alg.getKisaoID().strip() if alg is not None else "KISAO_0000019"
        kisao = kisao.replace(":", "_")
        if kisao not in allowed:
            known = ", ".join(f"{k} ({v})" for k, v in allowed.items())
            raise SEDMLUnsupportedError(f"algorithm {kisao}", s.getId(), self.path,
                                        f"jaxcell runs {known}")
        values: dict[str, float] = {}
        for p in ([] if alg is None else alg.getListOfAlgorithmParameters()):
            pk = p.getKisaoID().strip().replace(":", "_")
            if pk not in (_RTOL, _ATOL, _MAX_STEPS):
                raise SEDMLUnsupportedError(
                    f"algorithm parameter {pk}", s.getId(), self.path,
                    f"jaxcell reads {_RTOL} (relative tolerance), {_ATOL} (absolute "
                    f"tolerance) and {_MAX_STEPS} (maximum number of steps)")
            values[pk] = _number(p.getValue(), f"{where}: algorithm parameter {pk}")
        for key in (_RTOL, _ATOL):
            if key in values and not values[key] > 0:
                raise SEDMLError(f"{where}: algorithm parameter {key} must be positive; "
                                 f"got {values[key]}.")
        steps = values.get(_MAX_STEPS)
        if steps is not None and not (steps >= 1 and float(steps).is_integer()):
            raise SEDMLError(f"{where}: {_MAX_STEPS} (maximum number of steps) must be a "
                             f"positive integer; got {steps}.")
        return Algorithm(kisao, values.get(_RTOL), values.get(_ATOL),
                         None if steps is None else int(steps))

    def simulation(self, s):
        code = s.getTypeCode()
        where = self.where(s.getElementName(), s)
        if code == libsedml.SEDML_SIMULATION_UNIFORMTIMECOURSE:
            alg = self.algorithm(s, ODE_ALGORITHMS)
            t0, t1, t2 = s.getInitialTime(), s.getOutputStartTime(), s.getOutputEndTime()
            n = s.getNumberOfSteps()
            if not all(math.isfinite(v) for v in (t0, t1, t2)):
                raise SEDMLError(f"{where}: times must be finite.")
            if not (t0 <= t1 < t2) or n < 1:
                raise SEDMLError(f"{where}: need initialTime <= outputStartTime < "
                                 f"outputEndTime and numberOfSteps >= 1; got {t0}, {t1}, "
                                 f"{t2}, {n}.")
            if n > MAX_OUTPUT_STEPS:
                raise SEDMLError(f"{where}: numberOfSteps = {n} is more than jaxcell "
                                 f"accepts ({MAX_OUTPUT_STEPS}).")
            return TimeCourse(s.getId(), float(t0), float(t1), float(t2), int(n), alg)
        if code == libsedml.SEDML_SIMULATION_STEADYSTATE:
            return SteadyStateSim(s.getId(), self.algorithm(
                s, {**STEADY_STATE_ALGORITHMS, **ODE_ALGORITHMS}))
        raise SEDMLUnsupportedError(f"{s.getElementName()} simulation", s.getId(),
                                    self.path, "jaxcell runs uniformTimeCourse and "
                                    "steadyState simulations")

    # -- tasks -------------------------------------------------------------------------
    def task(self, t, models, sims):
        code = t.getTypeCode()
        where = self.where(t.getElementName(), t)
        if code == libsedml.SEDML_TASK:
            model, sim = t.getModelReference(), t.getSimulationReference()
            if model not in models:
                raise SEDMLError(f"{where}: modelReference {model!r} is not a model.")
            if sim not in sims:
                raise SEDMLError(f"{where}: simulationReference {sim!r} is not a "
                                 "simulation.")
            return TaskDef(t.getId(), model, sim)
        if code != libsedml.SEDML_TASK_REPEATEDTASK:
            raise SEDMLUnsupportedError(f"{t.getElementName()} task", t.getId(), self.path,
                                        "jaxcell runs task and repeatedTask")
        if t.getConcatenate():
            raise SEDMLUnsupportedError("repeatedTask with concatenate='true'", t.getId(),
                                        self.path)
        values: dict[str, np.ndarray] = {}
        functional = []
        for rg in t.getListOfRanges():
            rcode = rg.getTypeCode()
            rwhere = f"{where}, range {rg.getId()!r}"
            if rcode == libsedml.SEDML_RANGE_UNIFORMRANGE:
                values[rg.getId()] = _uniform(rg, rwhere)
            elif rcode == libsedml.SEDML_RANGE_VECTORRANGE:
                values[rg.getId()] = np.asarray(list(rg.getValues()), dtype=float)
                if values[rg.getId()].size > MAX_RANGE_VALUES:
                    raise SEDMLError(f"{rwhere}: {values[rg.getId()].size} values, more "
                                     f"than jaxcell accepts ({MAX_RANGE_VALUES}).")
            elif rcode == libsedml.SEDML_RANGE_FUNCTIONALRANGE:
                functional.append(rg)
            else:
                raise SEDMLUnsupportedError(f"{rg.getElementName()} range", rg.getId(),
                                            self.path)
        master = t.getRangeId()
        for rg in functional:
            rwhere = f"{where}, functionalRange {rg.getId()!r}"
            if rg.getNumVariables():
                raise SEDMLUnsupportedError("functionalRange with model variables",
                                            rg.getId(), self.path)
            env = dict(values)
            env.update({p.getId(): np.asarray(p.getValue()) for p in rg.getListOfParameters()})
            v = evaluate(parse_math(rg.getMath(), rwhere), env, rwhere)
            values[rg.getId()] = np.asarray(v, dtype=float).reshape(-1)
        if master not in values:
            raise SEDMLError(f"{where}: range {master!r} is not one of its ranges "
                             f"({sorted(values)}).")
        n = len(values[master])
        if n == 0:
            raise SEDMLError(f"{where}: range {master!r} is empty.")
        for k, v in values.items():
            if len(v) < n:
                raise SEDMLError(f"{where}: range {k!r} has {len(v)} values, fewer than "
                                 f"the {n} iterations of range {master!r}.")
        ordered = {master: values[master][:n]}
        ordered.update({k: v[:n] for k, v in values.items() if k != master})
        changes = []
        for sv in t.getListOfTaskChanges():
            swhere = f"{where}, setValue of {sv.getTarget()!r}"
            if sv.getModelReference() not in models:
                raise SEDMLError(f"{swhere}: modelReference {sv.getModelReference()!r} is "
                                 "not a model.")
            if sv.getNumVariables():
                raise SEDMLUnsupportedError("setValue with model variables", t.getId(),
                                            self.path, f"the setValue of "
                                            f"{sv.getTarget()!r}; use ranges and parameters")
            if sv.isSetSymbol() and sv.getSymbol():
                raise SEDMLUnsupportedError(f"setValue of symbol {sv.getSymbol()!r}",
                                            t.getId(), self.path)
            target = parse_target(sv.getTarget(), swhere, t.getId())
            params = tuple((p.getId(), float(p.getValue())) for p in sv.getListOfParameters())
            changes.append(SetValue(sv.getModelReference(), target,
                                    parse_math(sv.getMath(), swhere), params))
        subs = sorted(((s.getOrder() if s.isSetOrder() else 0, i, s.getTask())
                       for i, s in enumerate(t.getListOfSubTasks())))
        if not subs:
            raise SEDMLError(f"{where}: no subTasks.")
        return RepeatedTaskDef(t.getId(), ordered, bool(t.getResetModel()), tuple(changes),
                               tuple(s[2] for s in subs))

    # -- data generators and outputs ---------------------------------------------------
    def data_generator(self, g, tasks) -> DataGeneratorDef:
        where = self.where("dataGenerator", g)
        variables = []
        for v in g.getListOfVariables():
            vwhere = f"{where}, variable {v.getId()!r}"
            task = v.getTaskReference()
            if task not in tasks:
                raise SEDMLError(f"{vwhere}: taskReference {task!r} is not a task.")
            if v.isSetSymbol() and v.getSymbol():
                if v.getSymbol() != TIME:
                    raise SEDMLUnsupportedError(f"symbol {v.getSymbol()!r}", v.getId(),
                                                self.path, f"only {TIME}")
                variables.append(Variable(v.getId(), task, None))
            elif v.isSetTerm() and v.getTerm():
                raise SEDMLUnsupportedError(f"variable term {v.getTerm()!r}", v.getId(),
                                            self.path)
            else:
                target = parse_target(v.getTarget(), vwhere, v.getId())
                if target.attribute is not None:
                    raise SEDMLUnsupportedError(
                        "variable target naming an attribute", v.getId(), self.path,
                        f"{v.getTarget()!r}; name the element (its value over time)")
                variables.append(Variable(v.getId(), task, target))
        params = tuple((p.getId(), float(p.getValue())) for p in g.getListOfParameters())
        return DataGeneratorDef(g.getId(), g.getName() or "", parse_math(g.getMath(), where),
                                tuple(variables), params)

    def output(self, o, dgs):
        code = o.getTypeCode()
        where = self.where(o.getElementName(), o)

        def ref(name, value):
            if value not in dgs:
                raise SEDMLError(f"{where}: {name} {value!r} is not a dataGenerator.")
            return value

        if code == libsedml.SEDML_OUTPUT_REPORT:
            sets = tuple(DataSetDef(ds.getId(), ds.getLabel() or ds.getId(),
                                    ds.getName() or "", ref("dataReference",
                                                            ds.getDataReference()))
                         for ds in o.getListOfDataSets())
            return ReportDef(o.getId(), o.getName() or "", sets)
        if code == libsedml.SEDML_OUTPUT_PLOT2D:
            curves = []
            for c in o.getListOfCurves():
                if c.getTypeCode() != libsedml.SEDML_OUTPUT_CURVE:
                    raise SEDMLUnsupportedError(f"{c.getElementName()} in a plot2D",
                                                c.getId(), self.path)
                log_x = bool(c.getLogX()) or _axis_log(o.getXAxis())
                log_y = bool(c.getLogY()) or _axis_log(o.getYAxis())
                curves.append(CurveDef(c.getId(), c.getName() or "",
                                       ref("xDataReference", c.getXDataReference()),
                                       ref("yDataReference", c.getYDataReference()),
                                       log_x, log_y))
            return PlotDef(o.getId(), o.getName() or "", tuple(curves))
        raise SEDMLUnsupportedError(f"{o.getElementName()} output", o.getId(), self.path,
                                    "jaxcell writes reports and plot2D")


def _axis_log(axis) -> bool:
    return axis is not None and (axis.getType() or "").lower() == "log"


def _number(text, where: str) -> float:
    try:
        v = float(str(text).strip())
    except ValueError:
        raise SEDMLError(f"{where}: {text!r} is not a number.") from None
    return v


def _uniform(rg, where: str) -> np.ndarray:
    start, end, n = float(rg.getStart()), float(rg.getEnd()), int(rg.getNumberOfSteps())
    kind = (rg.getType() or "linear").lower()
    if n < 0:
        raise SEDMLError(f"{where}: numberOfSteps must be >= 0; got {n}.")
    if n + 1 > MAX_RANGE_VALUES:
        raise SEDMLError(f"{where}: numberOfSteps = {n} gives more values than jaxcell "
                         f"accepts ({MAX_RANGE_VALUES}).")
    if kind == "linear":
        return np.linspace(start, end, n + 1)
    if kind == "log":
        if not (start > 0 and end > 0):
            raise SEDMLError(f"{where}: a log range needs positive start and end; got "
                             f"{start}, {end}.")
        return np.geomspace(start, end, n + 1)
    raise SEDMLError(f"{where}: uniformRange type must be 'linear' or 'log'; got {kind!r}.")
