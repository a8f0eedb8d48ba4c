"""Models out and experiments in: export a jaxcell model as SBML, describe a simulation
experiment on it in SED-ML, pack both in a COMBINE archive and run the archive.

The Goodwin oscillator (``jc.models.goodwin``: a Hill repression law and mass action)
is written as SBML Level 3 Version 2 with :func:`jaxcell.sbml.export_sbml`, the file
any SBML tool opens. A SED-ML document (written with python-libsedml) asks for a time
course and a scan of the Hill coefficient ``n`` across the Hopf point (n = 8.13 with
a = 100: below it the oscillation decays, above it persists), and a report and a
plot of ``z``. The archive (python-libcombine) is what BioModels and BioSimulations
distribute; :func:`jaxcell.sedml.run` runs it as any other archive, the scan as one
vmapped solve, and writes CSV, ``reports.h5`` and PNG.

Run: ``python examples/interchange.py [--quick] [--out DIR]``
(or ``jaxcell run DIR/goodwin.omex --out DIR/results`` on the written archive).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

import jaxcell as jc
import jaxcell.sedml
from jaxcell.sbml import export_sbml


def _sedml(n_values: list[float], t_end: float, steps: int):
    import libsedml

    doc = libsedml.SedDocument(1, 4)
    model = doc.createModel()
    model.setId("goodwin")
    model.setLanguage("urn:sedml:language:sbml.level-3.version-2")
    model.setSource("goodwin.xml")
    sim = doc.createUniformTimeCourse()
    sim.setId("course")
    sim.setInitialTime(0.0)
    sim.setOutputStartTime(0.0)
    sim.setOutputEndTime(t_end)
    sim.setNumberOfSteps(steps)
    alg = sim.createAlgorithm()
    alg.setKisaoID("KISAO_0000019")  # CVODE: run with jaxcell's stiff solver
    for kisao, value in (("KISAO_0000209", 1e-8), ("KISAO_0000211", 1e-10)):
        p = alg.createAlgorithmParameter()
        p.setKisaoID(kisao)
        p.setValue(repr(value))
    task = doc.createTask()
    task.setId("run")
    task.setModelReference("goodwin")
    task.setSimulationReference("course")
    scan = doc.createRepeatedTask()
    scan.setId("scan_n")
    scan.setResetModel(True)
    scan.setRangeId("n_values")
    rng = scan.createVectorRange()
    rng.setId("n_values")
    rng.setValues(list(n_values))
    change = scan.createTaskChange()
    change.setModelReference("goodwin")
    change.setTarget("/sbml:sbml/sbml:model/sbml:listOfParameters/"
                     "sbml:parameter[@id='n']")
    change.setRange("n_values")
    change.setMath(libsedml.parseL3Formula("n_values"))
    sub = scan.createSubTask()
    sub.setTask("run")
    sub.setOrder(1)
    for gid, task_id, target in (("time", "run", None), ("z", "run", "z"),
                                 ("scan_time", "scan_n", None), ("scan_z", "scan_n", "z")):
        g = doc.createDataGenerator()
        g.setId(gid)
        v = g.createVariable()
        v.setId(f"{gid}_var")
        v.setTaskReference(task_id)
        if target is None:
            v.setSymbol("urn:sedml:symbol:time")
        else:
            v.setTarget("/sbml:sbml/sbml:model/sbml:listOfSpecies/"
                        f"sbml:species[@id='{target}']")
        g.setMath(libsedml.parseL3Formula(f"{gid}_var"))
    for rid, sets in (("course_report", ("time", "z")), ("scan_report", ("scan_time", "scan_z"))):
        r = doc.createReport()
        r.setId(rid)
        for label in sets:
            ds = r.createDataSet()
            ds.setId(f"{rid}_{label}")
            ds.setLabel(label)
            ds.setDataReference(label)
    plot = doc.createPlot2D()
    plot.setId("z_plot")
    curve = plot.createCurve()
    curve.setId("z_curve")
    curve.setXDataReference("time")
    curve.setYDataReference("z")
    return doc


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    import libcombine
    import libsedml

    out_dir = out_dir or tempfile.mkdtemp(prefix="jaxcell-interchange-")
    os.makedirs(out_dir, exist_ok=True)
    t_end, steps = (40.0, 80) if quick else (100.0, 400)
    n_values = [7.0, 10.0] if quick else [6.0, 7.0, 8.0, 9.0, 10.0, 12.0]

    sbml_path = os.path.join(out_dir, "goodwin.xml")
    export_sbml(jc.models.goodwin(), sbml_path)
    sedml_path = os.path.join(out_dir, "experiment.sedml")
    if not libsedml.writeSedMLToFile(_sedml(n_values, t_end, steps), sedml_path):
        raise OSError(f"could not write {sedml_path}")
    archive = libcombine.CombineArchive()
    archive.addFile(sbml_path, "./goodwin.xml",
                    libcombine.KnownFormats.lookupFormat("sbml"), False)
    archive.addFile(sedml_path, "./experiment.sedml",
                    libcombine.KnownFormats.lookupFormat("sedml"), True)
    omex = os.path.join(out_dir, "goodwin.omex")
    if not archive.writeToFile(omex):
        raise OSError(f"could not write {omex}")
    archive.cleanUp()

    results = jaxcell.sedml.run(omex, os.path.join(out_dir, "results"))
    scan = results.report("scan_report")
    z = np.asarray(scan["scan_z"]).reshape(len(n_values), -1)
    late = z[:, z.shape[1] // 2:]
    amplitude = {n: float(np.ptp(row)) for n, row in zip(n_values, late)}
    for n, a in amplitude.items():
        print(f"n = {n:5.1f}: late peak-to-peak of z = {a:.4f}")
    pngs = sorted(os.path.join(root, f) for root, _, files in
                  os.walk(os.path.join(out_dir, "results")) for f in files
                  if f.endswith(".png"))
    return {"sbml": sbml_path, "archive": omex, "amplitude": amplitude, "plots": pngs}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    main(quick=a.quick, out_dir=a.out)
