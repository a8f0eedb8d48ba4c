"""The command line reports every error as one line on stderr.

``jaxcell: error: <message>`` and exit status 2 for usage and input errors (any
``JaxcellError``, a missing or unreadable file), 1 for a simulation that failed, 3 for
an unexpected internal error, 130 for Ctrl-C; ``jaxcell --debug ...`` prints the
traceback as well. Includes the regression for ``jaxcell fit`` on a measurement table
with a non-numeric value (it printed a Python traceback), and a fuzz test of
``jaxcell simulate`` on mutated SBML files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fuzz_helpers import COUNTS, DATA, byte_mutation, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

import jaxcell.sbml
from jaxcell import SimulationError
from jaxcell._cli import main

BOEHM = DATA / "petab" / "Boehm_JProteomeRes2014"
SUITE = sorted((DATA / "sbml-test-suite" / "cases").glob("*/*-sbml-l3v2.xml"))


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("jaxcell: error:")]


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = _error_lines(err)
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def boehm(tmp_path) -> Path:
    if not BOEHM.is_dir():
        pytest.skip(f"{BOEHM} is missing")
    shutil.copytree(BOEHM, tmp_path / "boehm")
    return tmp_path / "boehm" / "Boehm_JProteomeRes2014.yaml"


def _spoil_measurement(yml: Path) -> Path:
    m = yml.parent / "measurementData_Boehm_JProteomeRes2014.tsv"
    lines = m.read_text().splitlines()
    col = lines[0].split("\t").index("measurement")
    cells = lines[5].split("\t")
    cells[col] = "n/a?"
    lines[5] = "\t".join(cells)
    m.write_text("\n".join(lines) + "\n")
    return m


def test_fit_non_numeric_measurement_is_one_line(boehm, tmp_path, capsys):
    """Regression: a bare ``ValueError: could not convert string to float: 'n/a?'``
    traceback; now one line naming the file, row and column, exit status 2."""
    m = _spoil_measurement(boehm)
    code = main(["fit", str(boehm), "--starts", "1", "--out", str(tmp_path / "out")])
    assert code == 2
    line = _one_error(capsys)
    assert m.name in line and "row 6" in line and "'measurement'" in line
    assert "'n/a?'" in line and "expected a number" in line


def test_debug_shows_the_traceback(boehm, tmp_path, capsys):
    _spoil_measurement(boehm)
    code = main(["--debug", "fit", str(boehm), "--starts", "1",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "PetabError" in err
    assert len(_error_lines(err)) == 1


def test_fit_path_outside_the_folder(boehm, tmp_path, capsys):
    text = boehm.read_text()
    boehm.write_text(text.replace("parameter_file: ", "parameter_file: ../", 1))
    assert main(["fit", str(boehm), "--out", str(tmp_path / "out")]) == 2
    assert "outside the problem folder" in _one_error(capsys)


def test_simulate_algebraic_rule_names_the_rule(tmp_path, capsys):
    if not SUITE:
        pytest.skip("no sbml-test-suite cases")
    math = ('<listOfRules><algebraicRule><math xmlns="http://www.w3.org/1998/Math/MathML">'
            "<apply><minus/><ci>k1</ci><cn>2</cn></apply></math></algebraicRule>"
            "</listOfRules>")
    text = SUITE[0].read_text().replace('value="1" constant="true"',
                                        'value="1" constant="false"')
    anchor = "<listOfReactions>" if "<listOfReactions>" in text else "</model>"
    path = tmp_path / "alg.xml"
    path.write_text(text.replace(anchor, math + anchor, 1))
    assert main(["simulate", str(path), "--t1", "1"]) == 2
    line = _one_error(capsys)
    assert "algebraic rule #1: 0 = k1 - 2" in line and "alg.xml" in line


@pytest.mark.parametrize(("raised", "code", "text"), [
    (KeyboardInterrupt(), 130, "interrupted"),
    (SimulationError("the solver gave up"), 1, "the solver gave up"),
    (FileNotFoundError(2, "No such file or directory", "/x/y.xml"), 2, "/x/y.xml"),
    (TypeError("oops"), 3, "internal error: TypeError: oops"),
    (jaxcell.sbml.SBMLError("m.xml: bad\n  second line"), 2, "m.xml: bad second line"),
])
def test_exit_codes(tmp_path, capsys, monkeypatch, raised, code, text):
    path = tmp_path / "m.xml"
    path.write_text("<sbml/>")

    def boom(*args, **kwargs):
        raise raised

    monkeypatch.setattr(jaxcell.sbml, "load_sbml", boom)
    assert main(["simulate", str(path), "--t1", "1"]) == code
    assert text in _one_error(capsys)


def test_debug_reraises_keyboard_interrupt(tmp_path, monkeypatch):
    path = tmp_path / "m.xml"
    path.write_text("<sbml/>")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxcell.sbml, "load_sbml", boom)
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "simulate", str(path), "--t1", "1"])


@pytest.mark.parametrize("n", COUNTS)
def test_simulate_fuzz_one_line(tmp_path, capsys, monkeypatch, n):
    """``jaxcell simulate`` on mutated SBML files (the simulation itself stubbed out):
    exit status 1 (read, then the stub fails) or 2, one error line, no traceback."""
    if not SUITE:
        pytest.skip("no sbml-test-suite cases")

    def no_simulation(*args, **kwargs):
        raise SimulationError("not simulated in this test")

    monkeypatch.setattr(jaxcell.sbml, "simulate_sbml", no_simulation)

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        seed = SUITE[data.draw(st.integers(0, len(SUITE) - 1))]
        path = tmp_path / "cli_model.xml"
        path.write_bytes(data.draw(byte_mutation(seed.read_bytes())))
        code = main(["simulate", str(path), "--t1", "1", "--out", str(tmp_path / "o.csv")])
        line = _one_error(capsys)
        assert code in (1, 2), (code, line)
        assert code == 1 or "cli_model.xml" in line, line

    check()
