"""Fuzzing the SED-ML reader and the COMBINE archive reader.

Seeded from a real experiment (a time course, a repeated task with a vector range, data
generators, a report and a plot, written with python-libsedml) and its archive, each
mutated input must either be read or refused with a ``JaxcellError`` that names the
file; never another exception type, never a hang (hypothesis' deadline), never a
memory blow-up (huge step counts and ranges are refused before anything is
allocated). A bounded number of examples runs in ``make test``; ``slow`` runs more.
"""

from __future__ import annotations

import os
import re
import zipfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import jaxcell  # noqa: E402,F401  (loads libsedml before libsbml)
from jaxcell._errors import JaxcellError  # noqa: E402
from jaxcell.sedml import SEDMLError  # noqa: E402
from jaxcell.sedml._archive import extract  # noqa: E402
from jaxcell.sedml._document import read_document  # noqa: E402

libsedml = pytest.importorskip("libsedml")
libcombine = pytest.importorskip("libcombine")

SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
 <model id="decay">
  <listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
  <listOfSpecies><species id="S1" compartment="c" initialConcentration="1"
   hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/></listOfSpecies>
  <listOfParameters><parameter id="k" value="0.5" constant="true"/></listOfParameters>
  <listOfReactions><reaction id="r" reversible="false">
   <listOfReactants><speciesReference species="S1" stoichiometry="1" constant="true"/>
   </listOfReactants>
   <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><times/><ci>k</ci>
    <ci>S1</ci></apply></math></kineticLaw></reaction></listOfReactions>
 </model>
</sbml>
"""


def _experiment() -> str:
    doc = libsedml.SedDocument(1, 4)
    m = doc.createModel()
    m.setId("model1")
    m.setLanguage("urn:sedml:language:sbml.level-3.version-2")
    m.setSource("model.xml")
    s = doc.createUniformTimeCourse()
    s.setId("sim")
    s.setInitialTime(0.0)
    s.setOutputStartTime(0.0)
    s.setOutputEndTime(5.0)
    s.setNumberOfSteps(10)
    s.createAlgorithm().setKisaoID("KISAO_0000019")
    t = doc.createTask()
    t.setId("task")
    t.setModelReference("model1")
    t.setSimulationReference("sim")
    rt = doc.createRepeatedTask()
    rt.setId("scan")
    rt.setRangeId("r")
    rt.setResetModel(True)
    r = rt.createVectorRange()
    r.setId("r")
    r.setValues([0.1, 0.2])
    sv = rt.createTaskChange()
    sv.setModelReference("model1")
    sv.setTarget("/sbml:sbml/sbml:model/sbml:listOfParameters/sbml:parameter[@id='k']")
    sv.setRange("r")
    sv.setMath(libsedml.parseL3Formula("r"))
    sub = rt.createSubTask()
    sub.setTask("task")
    sub.setOrder(1)
    for gid, target in (("time", None), ("s1", "S1")):
        g = doc.createDataGenerator()
        g.setId(gid)
        v = g.createVariable()
        v.setId(f"v_{gid}")
        v.setTaskReference("task")
        if target is None:
            v.setSymbol("urn:sedml:symbol:time")
        else:
            v.setTarget("/sbml:sbml/sbml:model/sbml:listOfSpecies/sbml:species[@id='S1']")
        g.setMath(libsedml.parseL3Formula(f"2 * v_{gid}"))
    rep = doc.createReport()
    rep.setId("report")
    for gid in ("time", "s1"):
        ds = rep.createDataSet()
        ds.setId(f"ds_{gid}")
        ds.setLabel(gid)
        ds.setDataReference(gid)
    p = doc.createPlot2D()
    p.setId("plot")
    c = p.createCurve()
    c.setId("curve")
    c.setXDataReference("time")
    c.setYDataReference("s1")
    return libsedml.writeSedMLToString(doc)


SEED = _experiment()
ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
JUNK = ["", "NaN", "inf", "-inf", "-1", "0", "1e308", "1e-320", "abc", "12345678901234567890",
        "\u00e9\u4e2d", "../../etc/passwd", "urn:miriam:biomodels.db:BIOMD0000000012",
        "http://example.org/model.xml", "/etc/passwd", "x" * 5000, "'\"<>&"]


def _check(path: str, fn) -> None:
    try:
        fn(path)
    except JaxcellError as e:
        assert os.path.basename(path) in str(e), f"the error does not name the file: {e}"


def _write(tmp, text_or_bytes) -> str:
    path = os.path.join(tmp, "experiment.sedml")
    with open(os.path.join(tmp, "model.xml"), "w") as f:
        f.write(SBML)
    mode = "wb" if isinstance(text_or_bytes, bytes) else "w"
    with open(path, mode) as f:
        f.write(text_or_bytes)
    return path


@st.composite
def _mutants(draw):
    text = SEED
    kind = draw(st.sampled_from(["truncate", "attribute", "delete", "duplicate", "bytes",
                                 "nest"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "attribute":
        attrs = list(ATTRIBUTE.finditer(text))
        m = attrs[draw(st.integers(0, len(attrs) - 1))]
        junk = draw(st.sampled_from(JUNK) | st.text(max_size=20))
        junk = junk.replace('"', "&quot;").replace("<", "&lt;").replace("&", "&amp;")
        return text[: m.start(2)] + junk + text[m.end(2):]
    if kind in ("delete", "duplicate"):
        tags = list(re.finditer(r"<(\w+)\b[^>]*/>", text))
        m = tags[draw(st.integers(0, len(tags) - 1))]
        piece = "" if kind == "delete" else m.group(0) * 2
        return text[: m.start()] + piece + text[m.end():]
    if kind == "bytes":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    depth = draw(st.integers(50, 3000))
    nested = "<apply><plus/><cn>1</cn>" * depth + "<ci>v_s1</ci>" + "</apply>" * depth
    return re.sub(r"(<dataGenerator id=\"s1\".*?<math[^>]*>).*?(</math>)",
                  lambda mm: mm.group(1) + nested + mm.group(2), text, count=1, flags=re.S)


def _fuzz(examples: int):
    @settings(max_examples=examples, deadline=10_000, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(_mutants())
    def run(tmp_path, mutant):
        _check(_write(str(tmp_path), mutant), read_document)

    return run


test_sedml_reader_fuzz = _fuzz(150)
test_sedml_reader_fuzz_many = pytest.mark.slow(_fuzz(2000))


def _archive(tmp) -> str:
    folder = os.path.join(tmp, "src")
    os.makedirs(folder, exist_ok=True)
    _write(folder, SEED)
    a = libcombine.CombineArchive()
    a.addFile(os.path.join(folder, "model.xml"), "./model.xml",
              libcombine.KnownFormats.lookupFormat("sbml"), False)
    a.addFile(os.path.join(folder, "experiment.sedml"), "./experiment.sedml",
              libcombine.KnownFormats.lookupFormat("sedml"), True)
    path = os.path.join(tmp, "archive.omex")
    assert a.writeToFile(path)
    a.cleanUp()
    return path


@settings(max_examples=40, deadline=10_000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_archive_reader_fuzz(tmp_path, data):
    """Truncated and corrupted archives: refused naming the archive, or extracted."""
    path = _archive(str(tmp_path))
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    else:
        for _ in range(data.draw(st.integers(1, 16))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    bad = os.path.join(str(tmp_path), "mutant.omex")
    with open(bad, "wb") as f:
        f.write(bytes(raw))
    dest = os.path.join(str(tmp_path), f"out{data.draw(st.integers(0, 10**9))}")
    _check(bad, lambda p: extract(p, dest))


def test_huge_sizes_are_refused_before_allocation(tmp_path):
    """numberOfSteps and ranges past the documented bounds are refused by name."""
    big_steps = SEED.replace('numberOfSteps="10"', 'numberOfSteps="2000000000"')
    with pytest.raises(SEDMLError, match="numberOfSteps"):
        read_document(_write(str(tmp_path), big_steps))
    doc = libsedml.readSedMLFromString(SEED)
    rt = doc.getTask("scan")
    u = rt.createUniformRange()
    u.setId("huge")
    u.setStart(0.0)
    u.setEnd(1.0)
    u.setNumberOfSteps(10**9)
    u.setType("linear")
    with pytest.raises(SEDMLError, match="huge.*numberOfSteps"):
        read_document(_write(str(tmp_path), libsedml.writeSedMLToString(doc)))


def test_zip_bomb_is_bounded(tmp_path):
    """An archive whose entries decompress past the bound is refused."""
    path = os.path.join(str(tmp_path), "bomb.omex")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.xml", "<omexManifest/>")
        z.writestr("zeros.bin", b"\0" * (4 << 20))
    with pytest.raises(SEDMLError, match="bomb.omex"):
        extract(path, os.path.join(str(tmp_path), "out"), max_bytes=1 << 20)
