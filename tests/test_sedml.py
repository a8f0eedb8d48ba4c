"""SED-ML and COMBINE archives (``jaxcell.sedml``), checked against libRoadRunner
running the same experiments (changes, time courses, parameter scans, steady states),
plus the report files, the CLI and hostile archives."""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import h5py
import libcombine
import libsedml
import numpy as np
import pytest

from jaxcell._cli import main
from jaxcell.sedml import SEDMLError, SEDMLUnsupportedError, run, run_omex, run_sedml

roadrunner = pytest.importorskip("roadrunner")

# Inflow, interconversion and decay in a compartment of size 2 (so that amounts and
# concentrations differ); a unique, stable steady state.
SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
 <model id="m">
  <listOfCompartments><compartment id="c" size="2" constant="true"/></listOfCompartments>
  <listOfSpecies>
   <species id="S1" compartment="c" initialConcentration="10" hasOnlySubstanceUnits="false"
    boundaryCondition="false" constant="false"/>
   <species id="S2" compartment="c" initialConcentration="0" hasOnlySubstanceUnits="false"
    boundaryCondition="false" constant="false"/>
  </listOfSpecies>
  <listOfParameters>
   <parameter id="k0" value="1" constant="true"/>
   <parameter id="k1" value="0.5" constant="true"/>
   <parameter id="k2" value="0.2" constant="true"/>
   <parameter id="k3" value="0.3" constant="true"/>
  </listOfParameters>
  <listOfReactions>
   <reaction id="R0" reversible="false">
    <listOfProducts><speciesReference species="S1" stoichiometry="1" constant="true"/>
    </listOfProducts>
    <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
     <apply><times/><ci>k0</ci><ci>c</ci></apply></math></kineticLaw>
   </reaction>
   <reaction id="R1" reversible="false">
    <listOfReactants><speciesReference species="S1" stoichiometry="1" constant="true"/>
    </listOfReactants>
    <listOfProducts><speciesReference species="S2" stoichiometry="1" constant="true"/>
    </listOfProducts>
    <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
     <apply><times/><ci>k1</ci><ci>S1</ci><ci>c</ci></apply></math></kineticLaw>
   </reaction>
   <reaction id="R2" reversible="false">
    <listOfReactants><speciesReference species="S2" stoichiometry="1" constant="true"/>
    </listOfReactants>
    <listOfProducts><speciesReference species="S1" stoichiometry="1" constant="true"/>
    </listOfProducts>
    <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
     <apply><times/><ci>k2</ci><ci>S2</ci><ci>c</ci></apply></math></kineticLaw>
   </reaction>
   <reaction id="R3" reversible="false">
    <listOfReactants><speciesReference species="S2" stoichiometry="1" constant="true"/>
    </listOfReactants>
    <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
     <apply><times/><ci>k3</ci><ci>S2</ci><ci>c</ci></apply></math></kineticLaw>
   </reaction>
  </listOfReactions>
 </model>
</sbml>
"""

RTOL, ATOL = 1e-10, 1e-12
SUITE = Path(__file__).parent / "data" / "sbml-test-suite" / "cases"
AGREE = 1e-6


def _xpath(kind: str, sid: str, attribute: str | None = None) -> str:
    lists = {"parameter": "listOfParameters", "species": "listOfSpecies",
             "compartment": "listOfCompartments"}
    path = f"/sbml:sbml/sbml:model/sbml:{lists[kind]}/sbml:{kind}[@id='{sid}']"
    return path + (f"/@{attribute}" if attribute else "")


class Experiment:
    """A SED-ML L1V4 document built with libsedml."""

    def __init__(self, source: str = "model.xml"):
        self.doc = libsedml.SedDocument(1, 4)
        self.doc.getSedNamespaces().getNamespaces().add("http://www.sbml.org/sbml/level3/version2/core",
                                        "sbml")
        m = self.doc.createModel()
        m.setId("model1")
        m.setLanguage("urn:sedml:language:sbml.level-3.version-2")
        m.setSource(source)
        self.model = m

    def change(self, target: str, value: float):
        ch = self.model.createChangeAttribute()
        ch.setTarget(target)
        ch.setNewValue(repr(value))

    def _algorithm(self, sim, kisao="KISAO_0000019"):
        alg = sim.createAlgorithm()
        alg.setKisaoID(kisao)
        for k, v in (("KISAO_0000209", RTOL), ("KISAO_0000211", ATOL)):
            p = alg.createAlgorithmParameter()
            p.setKisaoID(k)
            p.setValue(repr(v))

    def time_course(self, sid, t0, start, end, steps, kisao="KISAO_0000019"):
        s = self.doc.createUniformTimeCourse()
        s.setId(sid)
        s.setInitialTime(t0)
        s.setOutputStartTime(start)
        s.setOutputEndTime(end)
        s.setNumberOfSteps(steps)
        self._algorithm(s, kisao)

    def steady_state(self, sid):
        s = self.doc.createSteadyState()
        s.setId(sid)
        self._algorithm(s, "KISAO_0000407")

    def task(self, tid, sim, model="model1"):
        t = self.doc.createTask()
        t.setId(tid)
        t.setModelReference(model)
        t.setSimulationReference(sim)

    def scan(self, tid, subtask, ranges, changes, reset=True):
        """``ranges``: ``[(id, kind, spec)]`` with kind ``vector`` (values) or
        ``uniform`` ((start, end, steps, type)); the first is the master range.
        ``changes``: ``[(parameter id, range id)]``."""
        rt = self.doc.createRepeatedTask()
        rt.setId(tid)
        rt.setResetModel(reset)
        rt.setRangeId(ranges[0][0])
        for rid, kind, spec in ranges:
            if kind == "vector":
                r = rt.createVectorRange()
                r.setValues(list(spec))
            else:
                r = rt.createUniformRange()
                r.setStart(spec[0])
                r.setEnd(spec[1])
                r.setNumberOfSteps(spec[2])
                r.setType(spec[3])
            r.setId(rid)
        for pid, rid in changes:
            sv = rt.createTaskChange()
            sv.setModelReference("model1")
            sv.setTarget(_xpath("parameter", pid))
            sv.setRange(rid)
            sv.setMath(libsedml.parseL3Formula(rid))
        st = rt.createSubTask()
        st.setTask(subtask)
        st.setOrder(1)

    def data(self, gid, task, formula, targets):
        """A data generator ``formula`` over ``targets`` (``{var: species id or
        'time'}``)."""
        g = self.doc.createDataGenerator()
        g.setId(gid)
        g.setName(gid)
        for var, what in targets.items():
            v = g.createVariable()
            v.setId(var)
            v.setTaskReference(task)
            if what == "time":
                v.setSymbol("urn:sedml:symbol:time")
            else:
                kind = "species" if what.startswith("S") else "parameter"
                v.setTarget(_xpath(kind, what))
        g.setMath(libsedml.parseL3Formula(formula))

    def report(self, rid, sets):
        r = self.doc.createReport()
        r.setId(rid)
        for label, dg in sets:
            ds = r.createDataSet()
            ds.setId(f"ds_{label}")
            ds.setLabel(label)
            ds.setDataReference(dg)

    def plot(self, pid, x, ys):
        p = self.doc.createPlot2D()
        p.setId(pid)
        for i, y in enumerate(ys):
            c = p.createCurve()
            c.setId(f"{pid}_c{i}")
            c.setXDataReference(x)
            c.setYDataReference(y)

    def write(self, folder, name="experiment.sedml", sbml=SBML) -> str:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "model.xml"), "w") as f:
            f.write(sbml)
        path = os.path.join(folder, name)
        assert libsedml.writeSedMLToFile(self.doc, path)
        return path


def _rr(changes=()):
    rr = roadrunner.RoadRunner(SBML)
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    for key, value in changes:
        rr[key] = value
    rr.timeCourseSelections = ["time", "[S1]", "[S2]"]
    return rr


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))


def _time_course_experiment():
    e = Experiment()
    e.change(_xpath("parameter", "k1", "value"), 0.7)
    e.change(_xpath("species", "S1", "initialConcentration"), 5.0)
    e.time_course("sim", 0.0, 2.0, 10.0, 40)
    e.task("task1", "sim")
    e.data("t", "task1", "tv", {"tv": "time"})
    e.data("s1", "task1", "S1", {"S1": "S1"})
    e.data("s2", "task1", "S2", {"S2": "S2"})
    e.data("total", "task1", "S1 + 2 * S2 / (1 + k)", {"S1": "S1", "S2": "S2", "k": "k3"})
    e.report("report1", [("time", "t"), ("S1", "s1"), ("S2", "s2"), ("total", "total")])
    e.plot("plot1", "t", ["s1", "s2"])
    return e


def test_time_course_with_changes_matches_roadrunner(tmp_path):
    sedml = _time_course_experiment().write(str(tmp_path / "in"))
    out = tmp_path / "out"
    res = run_sedml(sedml, out)
    rep = res.report("report1")
    rr = _rr([("init([S1])", 5.0), ("k1", 0.7)])  # init first: it resets k1
    ref = rr.simulate(0.0, 10.0, 51)  # steps of 0.2; the report starts at t = 2
    ref = np.asarray(ref)[10:]
    np.testing.assert_allclose(rep["time"], ref[:, 0], rtol=1e-12)
    assert _rel(rep["S1"], ref[:, 1]) < AGREE
    assert _rel(rep["S2"], ref[:, 2]) < AGREE
    assert _rel(rep["total"], ref[:, 1] + 2 * ref[:, 2] / 1.3) < AGREE

    # the CSV: columns = labels, one row per time point
    with open(out / "experiment.sedml" / "report1.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time", "S1", "S2", "total"]
    table = np.asarray(rows[1:], dtype=float)
    assert table.shape == (41, 4)
    np.testing.assert_array_equal(table, rep.data.T)
    # reports.h5 as BioSimulators writes it
    with h5py.File(out / "reports.h5") as f:
        ds = f["experiment.sedml/report1"]
        assert ds.shape == (4, 41)
        assert list(ds.attrs["sedmlDataSetIds"]) == ["ds_time", "ds_S1", "ds_S2",
                                                     "ds_total"]
        assert list(ds.attrs["sedmlDataSetLabels"]) == ["time", "S1", "S2", "total"]
        assert len(ds.attrs["sedmlDataSetNames"]) == 4
        np.testing.assert_array_equal(ds[()], rep.data)
    assert (out / "experiment.sedml" / "plot1.png").stat().st_size > 1000


def test_parameter_scan_matches_roadrunner(tmp_path):
    e = Experiment()
    e.time_course("sim", 0.0, 0.0, 5.0, 10)
    e.task("task1", "sim")
    e.scan("scan", "task1", [("r1", "vector", [0.1, 0.5, 1.0, 2.0]),
                             ("r2", "uniform", (0.1, 1.0, 3, "log"))],
           [("k1", "r1"), ("k2", "r2")])
    rt = e.doc.getTask("scan")  # and k3 = 0.1 + r1 / 2, a functional range
    f = rt.createFunctionalRange()
    f.setId("f")
    f.setRange("r1")
    f.setMath(libsedml.parseL3Formula("0.1 + r1 / 2"))
    sv = rt.createTaskChange()
    sv.setModelReference("model1")
    sv.setTarget(_xpath("parameter", "k3", "value"))
    sv.setRange("f")
    sv.setMath(libsedml.parseL3Formula("f"))
    e.data("t", "scan", "tv", {"tv": "time"})
    e.data("s2", "scan", "S2", {"S2": "S2"})
    e.data("k1", "scan", "k", {"k": "k1"})
    e.report("report1", [("time", "t"), ("S2", "s2"), ("k1", "k1")])
    res = run_sedml(e.write(str(tmp_path / "in")), tmp_path / "out")
    rep = res.report("report1")
    assert rep.data.shape == (3, 4, 1, 11)  # data sets, iterations, sub-tasks, times
    worst = 0.0
    for i, (k1, k2) in enumerate(zip([0.1, 0.5, 1.0, 2.0], np.geomspace(0.1, 1.0, 4))):
        rr = _rr([("k1", k1), ("k2", k2), ("k3", 0.1 + k1 / 2)])
        ref = np.asarray(rr.simulate(0.0, 5.0, 11))
        worst = max(worst, _rel(rep["S2"][i, 0, 1:], ref[1:, 2]))
        np.testing.assert_allclose(rep["k1"][i, 0], k1)
    assert worst < AGREE
    with h5py.File(tmp_path / "out" / "reports.h5") as f:
        assert f["experiment.sedml/report1"].shape == (3, 4, 1, 11)
    with open(tmp_path / "out" / "experiment.sedml" / "report1.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 4 * 11


def test_repeated_task_without_reset_matches_roadrunner(tmp_path):
    e = Experiment()
    e.time_course("sim", 0.0, 0.0, 2.0, 4)
    e.task("task1", "sim")
    e.scan("scan", "task1", [("r1", "uniform", (0.2, 1.0, 2, "linear"))], [("k1", "r1")],
           reset=False)
    e.data("s1", "scan", "S1", {"S1": "S1"})
    e.report("report1", [("S1", "s1")])
    rep = run_sedml(e.write(str(tmp_path / "in"))).report("report1")
    rr = _rr()
    for i, k1 in enumerate([0.2, 0.6, 1.0]):
        rr["k1"] = k1
        ref = np.asarray(rr.simulate(0.0, 2.0, 5))  # continues from the current state
        assert _rel(rep["S1"][i, 0], ref[:, 1]) < AGREE


def test_steady_state_matches_roadrunner(tmp_path):
    e = Experiment()
    e.change(_xpath("parameter", "k3", "value"), 0.6)
    e.steady_state("ss")
    e.task("task1", "ss")
    e.data("s1", "task1", "S1", {"S1": "S1"})
    e.data("s2", "task1", "S2", {"S2": "S2"})
    e.report("report1", [("S1", "s1"), ("S2", "s2")])
    rep = run_sedml(e.write(str(tmp_path / "in"))).report("report1")
    rr = _rr([("k3", 0.6)])
    rr.steadyState()
    assert rep.data.shape == (2,)
    assert _rel(rep["S1"], rr["[S1]"]) < AGREE
    assert _rel(rep["S2"], rr["[S2]"]) < AGREE
    # analytic: S2 = k0 / k3, S1 = (k0 + k2 S2) / k1
    np.testing.assert_allclose([rep["S1"], rep["S2"]], [(1 + 0.2 / 0.6) / 0.5, 1 / 0.6],
                               rtol=1e-9)


def _omex(folder, sedml_name="experiment.sedml", extra=()) -> str:
    archive = libcombine.CombineArchive()
    archive.addFile(os.path.join(folder, "model.xml"), "./model.xml",
                    libcombine.KnownFormats.lookupFormat("sbml"), False)
    archive.addFile(os.path.join(folder, sedml_name), f"./{sedml_name}",
                    libcombine.KnownFormats.lookupFormat("sedml"), True)
    path = os.path.join(folder, "archive.omex")
    assert archive.writeToFile(path)
    archive.cleanUp()
    if extra:
        with zipfile.ZipFile(path, "a") as z:
            for name, data in extra:
                z.writestr(name, data)
    return path


def test_omex_archive_and_cli(tmp_path, capsys):
    folder = str(tmp_path / "in")
    _time_course_experiment().write(folder)
    omex = _omex(folder)
    res = run_omex(omex, tmp_path / "out")
    assert res.report("report1").data.shape == (4, 41)
    assert run(omex).report("experiment.sedml/report1").data.shape == (4, 41)

    assert main(["run", omex, "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "reports.h5").exists()
    assert (tmp_path / "cli" / "experiment.sedml" / "report1.csv").exists()
    assert (tmp_path / "cli" / "experiment.sedml" / "plot1.png").exists()
    capsys.readouterr()

    bad = _omex(folder, extra=[("../evil.txt", "x")])
    assert main(["run", bad, "--out", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "../evil.txt" in err


def _hostile(tmp_path, name, edit):
    """The time-course experiment with ``edit(experiment)`` applied, written out."""
    e = _time_course_experiment()
    edit(e)
    return e.write(str(tmp_path / name))


def test_archive_entries_are_checked(tmp_path):
    folder = str(tmp_path / "in")
    _time_course_experiment().write(folder)
    for entry in ("../evil.txt", "/tmp/sedml_evil.txt", "a/../../evil.txt"):
        bad = _omex(folder, extra=[(entry, "x")])
        with pytest.raises(SEDMLError, match=r"unsafe archive entry") as info:
            run_omex(bad)
        assert entry in str(info.value) and "archive.omex" in str(info.value)
    link = _omex(folder)
    with zipfile.ZipFile(link, "a") as z:
        zi = zipfile.ZipInfo("link")
        zi.external_attr = 0o120777 << 16
        z.writestr(zi, "/etc/passwd")
    with pytest.raises(SEDMLError, match="symbolic link"):
        run_omex(link)
    big = _omex(folder)
    with pytest.raises(SEDMLError, match="more than 100 bytes"):
        run_omex(big, max_bytes=100)


def test_missing_model_file(tmp_path):
    path = _hostile(tmp_path, "missing", lambda e: e.model.setSource("absent.xml"))
    with pytest.raises(SEDMLError, match=r"model 'model1'.*'absent.xml' not found"):
        run_sedml(path)


@pytest.mark.parametrize("source", ["urn:miriam:biomodels.db:BIOMD0000000012",
                                    "https://example.org/model.xml"])
def test_remote_model_source_is_refused(tmp_path, source):
    path = _hostile(tmp_path, "urn", lambda e: e.model.setSource(source))
    with pytest.raises(SEDMLUnsupportedError, match="downloads nothing") as info:
        run_sedml(path)
    assert info.value.element == "model1" and "model1" in str(info.value)


def test_unsupported_change_kind(tmp_path):
    def edit(e):
        ch = e.model.createAddXML()
        ch.setTarget("/sbml:sbml/sbml:model/sbml:listOfParameters")
    path = _hostile(tmp_path, "addxml", edit)
    with pytest.raises(SEDMLUnsupportedError, match=r"addXML change.*model1"):
        run_sedml(path)


def test_unsupported_simulation_type(tmp_path):
    def edit(e):
        s = e.doc.createOneStep()
        s.setId("one")
        s.setStep(0.1)
        s.createAlgorithm().setKisaoID("KISAO_0000019")
    path = _hostile(tmp_path, "onestep", edit)
    with pytest.raises(SEDMLUnsupportedError, match=r"oneStep simulation.*'one'"):
        run_sedml(path)


def test_unknown_algorithm(tmp_path):
    e = _time_course_experiment()
    e.doc.getSimulation("sim").getAlgorithm().setKisaoID("KISAO_0000029")
    with pytest.raises(SEDMLUnsupportedError, match=r"algorithm KISAO_0000029.*'sim'"):
        run_sedml(e.write(str(tmp_path / "alg")))


def test_nested_repeated_tasks_and_species_set_value(tmp_path):
    """An outer loop over the initial concentration of S1 (a species setValue) around
    an inner parameter scan over k1: (outer iterations, 1, inner iterations, 1, times)."""
    e = Experiment()
    e.time_course("sim", 0.0, 0.0, 3.0, 6)
    e.task("task1", "sim")
    e.scan("inner", "task1", [("r1", "vector", [0.3, 0.9, 1.5])], [("k1", "r1")])
    outer = e.doc.createRepeatedTask()
    outer.setId("outer")
    outer.setResetModel(True)
    outer.setRangeId("s0")
    r = outer.createVectorRange()
    r.setId("s0")
    r.setValues([2.0, 8.0])
    sv = outer.createTaskChange()
    sv.setModelReference("model1")
    sv.setTarget(_xpath("species", "S1"))
    sv.setRange("s0")
    sv.setMath(libsedml.parseL3Formula("s0"))
    st = outer.createSubTask()
    st.setTask("inner")
    st.setOrder(1)
    e.data("s1", "outer", "S1", {"S1": "S1"})
    e.report("report1", [("S1", "s1")])
    rep = run_sedml(e.write(str(tmp_path / "in"))).report("report1")
    assert rep.data.shape == (1, 2, 1, 3, 1, 7)
    worst = 0.0
    for i, s0 in enumerate([2.0, 8.0]):
        for j, k1 in enumerate([0.3, 0.9, 1.5]):
            rr = _rr([("init([S1])", s0), ("k1", k1)])
            ref = np.asarray(rr.simulate(0.0, 3.0, 7))
            worst = max(worst, _rel(rep["S1"][i, 0, j, 0], ref[:, 1]))
    assert worst < AGREE


def test_iterations_do_not_recompile(tmp_path):
    from jaxcell import count_compilations

    def experiment(values, folder):
        e = Experiment()
        e.time_course("sim", 0.0, 0.0, 2.0, 4)
        e.task("task1", "sim")
        e.scan("scan", "task1", [("r1", "vector", values)], [("k1", "r1")], reset=False)
        e.data("s1", "scan", "S1", {"S1": "S1"})
        e.report("report1", [("S1", "s1")])
        return e.write(str(tmp_path / folder))

    run_sedml(experiment([0.1, 0.2], "a"))
    with count_compilations() as n:
        rep = run_sedml(experiment([0.3, 0.4, 0.5, 0.6, 0.7], "b")).report("report1")
    assert rep.data.shape == (1, 5, 1, 5)
    assert n() == 0


@pytest.mark.slow  # compiles the event loop (about 6 s)
def test_model_with_events_matches_roadrunner(tmp_path):
    """SBML test-suite case 00026 (an event): a scan whose iterations run the event loop
    one at a time."""
    xml = (SUITE / "00026" / "00026-sbml-l3v2.xml").read_text()
    e = Experiment()
    e.time_course("sim", 0.0, 0.0, 5.0, 50)
    e.task("task1", "sim")
    e.scan("scan", "task1", [("r1", "vector", [0.5, 1.0])], [("k1", "r1")])
    e.data("s1", "scan", "S1", {"S1": "S1"})
    e.report("report1", [("S1", "s1")])
    rep = run_sedml(e.write(str(tmp_path / "in"), sbml=xml)).report("report1")
    for i, k1 in enumerate([0.5, 1.0]):
        rr = roadrunner.RoadRunner(xml)
        rr.integrator.relative_tolerance = RTOL
        rr.integrator.absolute_tolerance = ATOL
        rr["k1"] = k1
        rr.timeCourseSelections = ["time", "[S1]"]
        ref = np.asarray(rr.simulate(0.0, 5.0, 51))
        assert _rel(rep["S1"][i, 0], ref[:, 1]) < AGREE  # measured: 8e-9


def test_missing_model_in_archive_names_the_archive(tmp_path):
    folder = str(tmp_path / "in")
    e = _time_course_experiment()
    e.model.setSource("absent.xml")
    e.write(folder)
    omex = _omex(folder)
    with pytest.raises(SEDMLError, match=r"archive\.omex:experiment\.sedml: model "
                                         r"'model1': model file 'absent.xml' not found"):
        run_omex(omex)
