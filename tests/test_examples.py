"""Every script in examples/ runs at its quick size.

Each example defines ``main(quick: bool = False, out_dir: str | None = None) -> dict``;
paths to ``.png`` files among the returned values must exist. An example that fits
parameters to data made from known values returns them as ``"fitted"`` and ``"true"``
(dicts by name); the fit must recover them (relative error below ``RECOVERY_RTOL``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
RECOVERY_RTOL = 0.01


def _load(path: Path):
    name = f"_example_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _pngs(result) -> list[Path]:
    """Every ``.png`` path mentioned among the (possibly nested) returned values."""
    if isinstance(result, dict):
        return [p for v in result.values() for p in _pngs(v)]
    if isinstance(result, (list, tuple)):
        return [p for v in result for p in _pngs(v)]
    if isinstance(result, (str, Path)) and str(result).lower().endswith(".png"):
        return [Path(result)]
    return []


def test_there_are_examples():
    assert EXAMPLES, f"no examples found in {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(path, tmp_path):
    module = _load(path)
    try:
        assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
        result = module.main(quick=True, out_dir=str(tmp_path))
    finally:
        sys.modules.pop(module.__name__, None)
    assert isinstance(result, dict), f"{path.name}: main() returned {type(result)}"
    for png in _pngs(result):
        assert png.is_file() and png.stat().st_size > 0, f"{path.name}: {png} missing"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    if "true" in result:
        fitted, true = result["fitted"], result["true"]
        assert set(fitted) == set(true), f"{path.name}: fitted {fitted}, true {true}"
        for name, value in true.items():
            assert abs(fitted[name] / value - 1.0) < RECOVERY_RTOL, (
                f"{path.name}: {name} fitted {fitted[name]:.4g}, true {value:.4g}")
