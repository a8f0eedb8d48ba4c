"""The command-line interface: ``jaxcell demo`` (the French flag by default, the
repressilator with ``--model repressilator``) runs, prints a correct summary and writes
its plots; ``jaxcell simulate model.xml`` writes a CSV that matches an analytic solution and
fails cleanly (one line on stderr, exit code 2) on bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcell._cli import main


def _png(path):
    assert path.exists() and path.stat().st_size > 10_000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_french_flag_in_process(tmp_path, capsys):
    """The default demo: two PNGs, and boundaries within one cell of lam ln(c0/T)
    (REFERENCE-MODELS T6: 13.86 and 46.05 cells for lam = 20, c0 = 1, T = 0.5, 0.1)."""
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    _png(tmp_path / "french_flag.png")
    _png(tmp_path / "french_flag_cell30.png")
    assert "French flag" in out.out and "result: success" in out.out
    rows = [ln.split() for ln in out.out.splitlines() if ln.strip().startswith("boundary")]
    simulated = [float(r[1]) for r in rows]
    theory = [20.0 * np.log(1.0 / T) for T in (0.5, 0.1)]
    assert len(simulated) == 2
    np.testing.assert_allclose(simulated, theory, atol=1.0)
    # the cross-scale derivative it prints is lam coth((L - x)/lam), about 20 cells
    line = next(ln for ln in out.out.splitlines() if "d(boundary)/d ln c0" in ln)
    derivs = [float(v.rstrip(",")) for v in line.split(":")[1].split()[:2]]
    np.testing.assert_allclose(derivs, 20.0 / np.tanh((100.0 - np.array(simulated)) / 20.0),
                               rtol=1e-3)
    assert "Compiling and simulating" in out.err  # progress goes to stderr


def test_demo_repressilator_in_process(tmp_path, capsys):
    assert main(["demo", "--model", "repressilator", "--out", str(tmp_path), "--t1", "300",
                 "--points", "1501"]) == 0
    out = capsys.readouterr()
    _png(tmp_path / "repressilator.png")
    assert "result: success" in out.out
    # The summary's period estimate agrees with the published period (43.451).
    line = next(ln for ln in out.out.splitlines() if ln.strip().startswith("p_lacI"))
    assert abs(float(line.split()[-1]) / 43.451 - 1) < 2e-3


def test_bad_arguments(capsys):
    assert main(["demo", "--t1", "-5"]) == 2
    assert main(["demo", "--points", "1"]) == 2
    with pytest.raises(SystemExit):
        main(["nonsense"])
    with pytest.raises(SystemExit):
        main(["demo", "--model", "nonsense"])


def test_python_dash_m_entry_point():
    """``python -m jaxcell`` is the same CLI in a fresh process (``make demo`` runs its
    ``demo`` command; the demo itself is checked in process above)."""
    res = subprocess.run([sys.executable, "-m", "jaxcell", "demo", "--help"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "--out" in res.stdout and "--no-plot" in res.stdout
    bad = subprocess.run([sys.executable, "-m", "jaxcell", "no-such-command"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no-such-command" in bad.stderr


# -- jaxcell simulate -------------------------------------------------------------------

K, A0, VOL = 0.3, 2.0, 2.5
A_TO_B = f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="a_to_b">
    <listOfCompartments>
      <compartment id="cell" size="{VOL}" spatialDimensions="3" constant="true"/>
    </listOfCompartments>
    <listOfSpecies>
      <species id="A" compartment="cell" initialConcentration="{A0}"
               hasOnlySubstanceUnits="false" boundaryCondition="false" constant="false"/>
      <species id="B" compartment="cell" initialAmount="0"
               hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters>
      <parameter id="k" value="{K}" constant="true"/>
      <parameter id="total" constant="false"/>
    </listOfParameters>
    <listOfRules>
      <assignmentRule variable="total">
        <math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><plus/><apply><times/><ci>A</ci><ci>cell</ci></apply><ci>B</ci></apply>
        </math>
      </assignmentRule>
    </listOfRules>
    <listOfReactions>
      <reaction id="conversion" reversible="false">
        <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/>
        </listOfReactants>
        <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/>
        </listOfProducts>
        <kineticLaw>
          <math xmlns="http://www.w3.org/1998/Math/MathML">
            <apply><times/><ci>cell</ci><ci>k</ci><ci>A</ci></apply>
          </math>
        </kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def _read_csv(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(x) for x in r] for r in rows[1:]])


def test_simulate_sbml_to_csv_matches_analytic_solution(tmp_path, capsys):
    """A -> B, rate k A (per volume): [A](t) = A0 exp(-k t) (a concentration), B is
    hasOnlySubstanceUnits, so its column is the amount A0 V (1 - exp(-k t))."""
    model = tmp_path / "a_to_b.xml"
    model.write_text(A_TO_B)
    out, png = tmp_path / "result.csv", tmp_path / "result.png"
    rc = main(["simulate", str(model), "--t1", "10", "--points", "101", "--out", str(out),
               "--plot", str(png), "--rtol", "1e-10", "--atol", "1e-12"])
    err = capsys.readouterr().err
    assert rc == 0, err
    names, table = _read_csv(out)
    assert names[0] == "time" and set(names) == {"time", "A", "B", "total"}
    col = {n: table[:, i] for i, n in enumerate(names)}
    t = np.linspace(0.0, 10.0, 101)
    np.testing.assert_allclose(col["time"], t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(col["A"], A0 * np.exp(-K * t), rtol=1e-7)
    np.testing.assert_allclose(col["B"], A0 * VOL * (1 - np.exp(-K * t)), rtol=1e-7,
                               atol=1e-12)
    np.testing.assert_allclose(col["total"], A0 * VOL, rtol=1e-9)
    assert names.index("A") < names.index("total") and names.index("B") < names.index("total")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_later_start_time(tmp_path, capsys):
    """--t0 is the first output time; SBML time still starts at 0."""
    model = tmp_path / "a_to_b.xml"
    model.write_text(A_TO_B)
    out = tmp_path / "late.csv"
    assert main(["simulate", str(model), "--t0", "2", "--t1", "4", "--points", "3",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    names, table = _read_csv(out)
    np.testing.assert_allclose(table[:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_allclose(table[:, names.index("A")],
                               A0 * np.exp(-K * np.array([2.0, 3.0, 4.0])), rtol=1e-6)


def test_simulate_writes_csv_to_stdout(tmp_path, capsys):
    model = tmp_path / "a_to_b.xml"
    model.write_text(A_TO_B)
    assert main(["simulate", str(model), "--t1", "1", "--points", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split(",")[0] == "time" and len(lines) == 4


@pytest.mark.parametrize("case", ["missing", "directory", "malformed", "not-sbml",
                                  "bad-times"])
def test_simulate_errors_exit_2_without_traceback(tmp_path, capsys, case):
    path = tmp_path / "model.xml"
    args = ["--t1", "10"]
    if case == "directory":
        path = tmp_path
    elif case == "malformed":
        path.write_text(A_TO_B.replace("</listOfSpecies>", "", 1))
    elif case == "not-sbml":
        path.write_text('<?xml version="1.0"?>\n<html><body>hello</body></html>\n')
    elif case == "bad-times":
        path.write_text(A_TO_B)
        args = ["--t0", "5", "--t1", "1"]
    out = tmp_path / "never.csv"
    assert main(["simulate", str(path), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "jaxcell: error:" in err and "Traceback" not in err
    if case in ("missing", "malformed", "not-sbml"):
        assert str(path) in err or path.name in err, err
    assert not out.exists()


def test_simulate_entry_point_error(tmp_path):
    """Through the real entry point: a missing file is one line on stderr, exit 2."""
    res = subprocess.run([sys.executable, "-m", "jaxcell", "simulate",
                          str(tmp_path / "nope.xml"), "--t1", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "nope.xml" in res.stderr


# -- jaxcell fit --------------------------------------------------------------------------
def test_fit_petab_boehm(tmp_path, capsys):
    import json

    yaml = (Path(__file__).resolve().parent / "data" / "petab" / "Boehm_JProteomeRes2014"
            / "Boehm_JProteomeRes2014.yaml")
    out = tmp_path / "fit"
    assert main(["fit", str(yaml), "--starts", "3", "--seed", "1", "--max-steps", "5",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "best nllh" in text and "k_phos" in text and "start 3/3" in text
    data = json.loads((out / "fit.json").read_text())
    assert len(data["starts"]) == 3
    assert data["nllh"] == min(s["nllh"] for s in data["starts"])
    assert set(data["parameters"]) >= {"k_phos", "sd_pSTAT5A_rel"}
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["fit_pSTAT5A_rel.png", "fit_pSTAT5B_rel.png", "fit_rSTAT5A_rel.png"]
    # the fitted values are written back into the SBML model
    from jaxcell.sbml import load_sbml

    fitted = load_sbml(out / "model_fitted.xml")
    assert float(fitted.params["k_phos"]) == pytest.approx(data["parameters"]["k_phos"],
                                                           rel=1e-14)
    assert main(["fit", str(tmp_path / "none.yaml")]) == 2


def test_fit_petab_sciml_problem(tmp_path, capsys):
    """A PEtab SciML problem (a network before the simulation) fitted from the command
    line: networks and mechanistic parameters together, reverse mode by default; the
    best nllh is no worse than the nominal point's, the trained network is written in
    the PEtab SciML array format, and the plots are drawn."""
    import json

    from jaxcell.neural import read_network_arrays
    from jaxcell.petab import load_petab

    yaml = (Path(__file__).resolve().parent / "data" / "petab-sciml" / "sciml_problem_import"
            / "002" / "petab" / "problem.yaml")
    out = tmp_path / "fit"
    assert main(["fit", str(yaml), "--starts", "1", "--max-steps", "4", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "network net1: 51 weights" in text and "alpha" in text
    data = json.loads((out / "fit.json").read_text())
    problem = load_petab(yaml)
    assert len(data["x"]) == len(problem.parameter_ids) == 3 + 51
    assert data["nllh"] == pytest.approx(float(problem.nllh(np.asarray(data["x"]))),
                                         rel=1e-9)
    arrays = read_network_arrays(out / "networks_fitted.hdf5", "net1")
    assert arrays["layer1.weight"].shape == (5, 2)
    assert sorted(p.name for p in out.glob("*.png")) == ["fit_predator_o.png",
                                                          "fit_prey_o.png"]
