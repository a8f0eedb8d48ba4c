"""The README's code runs and says what it shows."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quick_start_is_two_commands():
    text = README.read_text()
    block = re.search(r"## Quick start.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_python_example_runs():
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)  # our own README, not a model file
    traj, net = ns["traj"], ns["net"]
    laws = [str(c) for c in net.conservation_laws()]
    assert laws == ["E + C = 0.01", "S + C + P = 2"]
    total = np.asarray(traj["S"] + traj["molecular/enzyme/species/C"] + traj["P"])
    np.testing.assert_allclose(total, 2.0, rtol=1e-8)
