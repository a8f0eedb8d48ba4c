"""``jaxcell.petab.load_petab`` on the PEtab benchmark collection.

Reference log-likelihoods at the nominal parameters (priors excluded) come from
``reference_llh.csv`` of ``../shared/data/petab`` (the simulation tables of the
Benchmark-Models-PEtab collection, commit 4d20850; most agree with AMICI's benchmark
reference). Boehm_JProteomeRes2014 is shipped in ``tests/data/petab`` and always runs;
the other problems skip when ``../shared/data/petab`` is absent.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxcell as jc
import jaxcell.io as jio

REPO = Path(__file__).resolve().parents[1]
SHARED_PETAB = REPO.parent / "shared" / "data" / "petab"
SHIPPED_PETAB = Path(__file__).resolve().parent / "data" / "petab"
BOEHM_YAML = SHIPPED_PETAB / "Boehm_JProteomeRes2014" / "Boehm_JProteomeRes2014.yaml"
# AMICI's benchmark reference (= reference_llh.csv of the collection)
BOEHM_NLLH = 138.22199970618027

PROBLEMS = [
    "Bachmann_MSB2011",
    "Bertozzi_PNAS2020",
    "Boehm_JProteomeRes2014",
    "Brannmark_JBC2010",
    "Elowitz_Nature2000",
    "Fiedler_BMCSystBiol2016",
    "Liu_IFACPapersOnLine2025",
    "Schwen_PONE2014",
]

_CACHE: dict[Path, jio.PetabProblem] = {}


def _problem(yaml: Path) -> jio.PetabProblem:
    """Load each problem once per session (its nllh compiles once)."""
    if yaml not in _CACHE:
        _CACHE[yaml] = jio.load_petab(yaml)
    return _CACHE[yaml]


def _shared_yaml(name: str) -> Path:
    folder = SHARED_PETAB / name
    if not folder.is_dir():
        pytest.skip(f"PEtab benchmark collection not found at {SHARED_PETAB}")
    (yaml,) = sorted(folder.glob("*.yaml"))
    return yaml


def _reference() -> dict[str, float]:
    with open(SHARED_PETAB / "reference_llh.csv", newline="") as f:
        return {r["problem"]: float(r["llh_at_nominal"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def boehm() -> jio.PetabProblem:
    return _problem(BOEHM_YAML)


def test_boehm_nllh_at_nominal(boehm):
    assert boehm.parameter_ids[0] == "Epo_degradation_BaF3"
    assert len(boehm.parameter_ids) == 9
    value = float(boehm.nllh(boehm.x_nominal))
    assert value == pytest.approx(BOEHM_NLLH, abs=1e-3)
    assert value == pytest.approx(138.2220, abs=1e-3)


def test_new_parameters_do_not_recompile(boehm):
    boehm.nllh(boehm.x_nominal)
    xs = [np.asarray(boehm.x_nominal) + d for d in (0.01, -0.02)]
    with jc.count_compilations() as n:
        for x in xs:
            float(boehm.nllh(x))
    assert n() == 0


@pytest.mark.parametrize("name", PROBLEMS)
def test_llh_matches_reference(name):
    yaml = _shared_yaml(name)
    if name == "Boehm_JProteomeRes2014":
        yaml = BOEHM_YAML  # the same files (tests/data/petab/README.md): compile once
    problem = _problem(yaml)
    ref = _reference()[name]
    llh = -float(problem.nllh(problem.x_nominal))
    assert llh == pytest.approx(ref, abs=1e-3), f"{name}: llh {llh} vs reference {ref}"


def _check_gradient(problem: jio.PetabProblem, seed: int):
    rng = np.random.default_rng(seed)
    x = np.asarray(problem.x_nominal) + 0.1 * rng.standard_normal(len(problem.parameter_ids))
    grad = np.asarray(jax.grad(problem.nllh)(x))
    h = 1e-5
    fd = np.empty_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (float(problem.nllh(x + e)) - float(problem.nllh(x - e))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-2, atol=1e-3)


def test_boehm_gradient_matches_finite_differences(boehm):
    _check_gradient(boehm, seed=0)


def test_bertozzi_gradient_matches_finite_differences():
    _check_gradient(_problem(_shared_yaml("Bertozzi_PNAS2020")), seed=1)


# -- bad input ---------------------------------------------------------------------------
def test_missing_yaml_names_the_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(jio.PetabError, match="nope.yaml"):
        jio.load_petab(path)


def test_missing_table_file_names_the_file():
    # the shipped Fujita problem lacks its observables table (see tests/data/petab/README)
    yaml = SHIPPED_PETAB / "Fujita_SciSignal2010" / "Fujita_SciSignal2010.yaml"
    with pytest.raises(jio.PetabError, match="observables_Fujita_SciSignal2010.tsv"):
        jio.load_petab(yaml)


def _boehm_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "boehm"
    shutil.copytree(BOEHM_YAML.parent, folder)
    return folder


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_missing_column_names_column_and_file(tmp_path):
    folder = _boehm_copy(tmp_path)
    _edit(folder / "observables_Boehm_JProteomeRes2014.tsv", "noiseFormula", "noiseFormulaX")
    with pytest.raises(jio.PetabError, match=r"noiseFormula.*missing|observables_Boehm"):
        jio.load_petab(folder / BOEHM_YAML.name)


def test_missing_measurement_column(tmp_path):
    folder = _boehm_copy(tmp_path)
    _edit(folder / "measurementData_Boehm_JProteomeRes2014.tsv", "simulationConditionId",
          "simConditionId")
    with pytest.raises(jio.PetabError, match="simulationConditionId"):
        jio.load_petab(folder / BOEHM_YAML.name)


def test_unknown_symbol_in_formula(tmp_path):
    folder = _boehm_copy(tmp_path)
    _edit(folder / "observables_Boehm_JProteomeRes2014.tsv", "(100 * pApB", "(100 * nothere")
    with pytest.raises(jio.PetabError, match="nothere"):
        jio.load_petab(folder / BOEHM_YAML.name)


def test_v1_layout_marked_v2_and_v1_mapping_tables_are_named(tmp_path):
    """A v1 problem file that claims format_version 2 is an error naming the version
    and the layout (v2 itself is supported: tests/test_petab_sciml.py); mapping tables
    in a v1 file are refused by name."""
    folder = _boehm_copy(tmp_path)
    yaml = folder / BOEHM_YAML.name
    _edit(yaml, "format_version: 1", "format_version: 2.0.0")
    with pytest.raises(jio.PetabError, match="format_version '2.0.0' but the v1 layout"):
        jio.load_petab(yaml)
    _edit(yaml, "format_version: 2.0.0", "format_version: 1")
    _edit(yaml, "  measurement_files:", "  mapping_files:\n  - mapping.tsv\n  measurement_files:")
    with pytest.raises(jio.PetabUnsupportedError, match="mapping tables"):
        jio.load_petab(yaml)


def test_bad_x_shape(boehm):
    with pytest.raises(jio.PetabError, match="shape"):
        boehm.nllh(np.zeros(3))
