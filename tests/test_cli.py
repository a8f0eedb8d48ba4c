"""The command-line demo runs, prints a correct summary and writes a plot."""

import subprocess
import sys

import pytest

from jaxcell._cli import main


def test_demo_in_process(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--t1", "300", "--points", "1501"]) == 0
    out = capsys.readouterr()
    png = tmp_path / "repressilator.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "result: success" in out.out
    # The summary's period estimate agrees with the published period (43.451).
    line = next(ln for ln in out.out.splitlines() if ln.strip().startswith("p_lacI"))
    assert abs(float(line.split()[-1]) / 43.451 - 1) < 2e-3
    assert "Compiling and simulating" in out.err  # progress goes to stderr


def test_bad_arguments(capsys):
    assert main(["demo", "--t1", "-5"]) == 2
    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_python_dash_m_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "jaxcell", "demo", "--no-plot", "--t1", "100",
                          "--points", "201", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Repressilator" in res.stdout
