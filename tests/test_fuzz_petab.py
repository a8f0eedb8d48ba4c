"""Fuzzing the PEtab readers (v1 and v2: ``jaxcell.petab.load_petab``) with mutated
copies of the real problems in ``tests/data/petab`` and ``tests/data/petab-sciml``.

Property (``fuzz_helpers.reads_cleanly``): a problem with one mutated table or YAML
file loads, or raises a ``JaxcellError`` (``PetabError`` and ``SBMLError`` are) naming
the mutated file, the problem's YAML file or, when the files now disagree, the other
file of the problem involved; never another exception, never a hang. Files named by a problem must stay inside
its folder (``..``, absolute paths outside it, symbolic links out of it, URLs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from fuzz_helpers import (
    COUNTS,
    DATA,
    SHARED_DATA,
    byte_mutation,
    fuzz_settings,
    reads_cleanly,
    table_mutation,
)
from hypothesis import given
from hypothesis import strategies as st

from jaxcell import JaxcellError
from jaxcell.petab import PetabError, load_petab

V1 = {
    "Boehm": DATA / "petab" / "Boehm_JProteomeRes2014" / "Boehm_JProteomeRes2014.yaml",
    "Fujita": DATA / "petab" / "Fujita_SciSignal2010" / "Fujita_SciSignal2010.yaml",
}
V2 = {"sciml_002": DATA / "petab-sciml" / "sciml_problem_import" / "002" / "petab"
      / "problem.yaml"}
PROBLEMS = {**V1, **V2}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """One private copy of each problem folder (mutated and restored per example)."""
    out = {}
    for name, yml in PROBLEMS.items():
        if not yml.is_file():
            continue
        dest = tmp_path_factory.mktemp(name) / "problem"
        shutil.copytree(yml.parent, dest)
        out[name] = dest / yml.name
    return out


def _tables(yml: Path) -> list[Path]:
    return sorted(p for p in yml.parent.iterdir() if p.suffix == ".tsv")


def _load_mutated(yml: Path, target: Path, data: bytes):
    original = target.read_bytes()
    target.write_bytes(data)
    try:
        # the mutated file, or another file of the problem when the error is that the
        # files disagree (a measurement row naming an observable the table now lacks)
        names = (target.name, yml.name, *(p.name for p in yml.parent.iterdir()))
        try:
            return load_petab(yml)
        except JaxcellError as e:
            assert any(n in str(e) for n in names), f"the error names neither {names}: {e}"
            return e
    finally:
        target.write_bytes(original)


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_mutated_tables(copies, problem, n):
    """Cells replaced (random strings, NaN, Inf, 1e308, ...), rows and columns deleted
    or duplicated, headers damaged, ids duplicated."""
    if problem not in copies:
        pytest.skip(f"{PROBLEMS[problem]} is missing")
    yml = copies[problem]
    tables = _tables(yml)

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        target = tables[data.draw(st.integers(0, len(tables) - 1))]
        text = target.read_text()
        for _ in range(data.draw(st.integers(1, 2))):
            text = data.draw(table_mutation(text))
        _load_timed(yml, target, text.encode())

    check()


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_mutated_bytes(copies, problem, n):
    """Truncation, flipped and inserted bytes, BOMs and encodings, in a table or the
    YAML file."""
    if problem not in copies:
        pytest.skip(f"{PROBLEMS[problem]} is missing")
    yml = copies[problem]
    files = [yml, *_tables(yml)]

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        target = files[data.draw(st.integers(0, len(files) - 1))]
        _load_timed(yml, target, data.draw(byte_mutation(target.read_bytes())))

    check()


_YAML_VALUES = [None, "", 1, 1.5, [], {}, "missing.tsv", "../../etc/passwd", "/etc/passwd",
                ["a", "b"], [None], [1], {"a": 1}, "http://example.org/x.tsv", "a\x00b",
                "3.0", "1.0.0", [["nested"]], True]


def _yaml_paths(spec, prefix=()):
    """Every (path, value) of a nested YAML structure."""
    yield prefix, spec
    if isinstance(spec, dict):
        for k, v in spec.items():
            yield from _yaml_paths(v, (*prefix, k))
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            yield from _yaml_paths(v, (*prefix, i))


@pytest.mark.parametrize("n", COUNTS)
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_mutated_yaml_structure(copies, problem, n):
    """Any entry of the YAML replaced by a value of the wrong type, a missing file, a
    path outside the folder, a URL, ..."""
    if problem not in copies:
        pytest.skip(f"{PROBLEMS[problem]} is missing")
    yml = copies[problem]
    spec = yaml.safe_load(yml.read_text())
    entries = [p for p, _ in _yaml_paths(spec) if p]

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        new = yaml.safe_load(yml.read_text())
        where = entries[data.draw(st.integers(0, len(entries) - 1))]
        node = new
        for k in where[:-1]:
            node = node[k]
        if data.draw(st.booleans()) and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(st.sampled_from(_YAML_VALUES))
        _load_timed(yml, yml, yaml.safe_dump(new).encode())

    check()


def _load_timed(yml: Path, target: Path, data: bytes):
    """Load with ``target`` replaced by ``data``: timed, and any error names a file
    (an error that is not a JaxcellError fails the test)."""
    reads_cleanly(lambda: _load_mutated(yml, target, data), yml.name)


# -- files outside the problem folder ---------------------------------------------------
def _boehm(tmp_path) -> Path:
    if not V1["Boehm"].is_file():
        pytest.skip(f"{V1['Boehm']} is missing")
    dest = tmp_path / "problem"
    shutil.copytree(V1["Boehm"].parent, dest)
    return dest / V1["Boehm"].name


def _rename(yml: Path, key: str, value) -> None:
    spec = yaml.safe_load(yml.read_text())
    if key == "parameter_file":
        spec[key] = value
    else:
        spec["problems"][0][key] = [value]
    yml.write_text(yaml.safe_dump(spec))


@pytest.mark.parametrize("key", ["parameter_file", "measurement_files", "sbml_files"])
def test_paths_outside_the_folder_are_refused(tmp_path, key):
    yml = _boehm(tmp_path)
    outside = tmp_path / "outside.tsv"
    spec = yaml.safe_load(yml.read_text())
    name = spec[key] if key == "parameter_file" else spec["problems"][0][key][0]
    shutil.copy(yml.parent / name, outside)
    inner = yml.parent / "inner.tsv"
    shutil.copy(yml.parent / name, inner)
    for bad in ("../outside.tsv", str(outside), "sub/../../outside.tsv",
                "https://example.org/x.tsv", str(inner), "~/x.tsv"):
        _rename(yml, key, bad)
        with pytest.raises(PetabError,
                           match=r"outside the problem folder|URL|absolute") as info:
            load_petab(yml)
        assert yml.name in str(info.value) and bad in str(info.value)
    # a symbolic link that leads out of the folder
    link = yml.parent / "link.tsv"
    link.symlink_to(outside)
    _rename(yml, key, "link.tsv")
    with pytest.raises(PetabError, match="outside the problem folder"):
        load_petab(yml)
    # relative names, with ".." or symbolic links, that stay inside the folder are fine
    (yml.parent / "sub").mkdir()
    (yml.parent / "link_in.tsv").symlink_to(inner)
    for good in ("link_in.tsv", "sub/../inner.tsv", "./inner.tsv"):
        _rename(yml, key, good)
        load_petab(yml)


def test_v2_paths_outside_the_folder_are_refused(tmp_path):
    if not V2["sciml_002"].is_file():
        pytest.skip(f"{V2['sciml_002']} is missing")
    dest = tmp_path / "problem"
    shutil.copytree(V2["sciml_002"].parent, dest)
    yml = dest / "problem.yaml"
    original = yaml.safe_load(yml.read_text())
    (tmp_path / "secret.tsv").write_text("x\n")
    mutations = [
        lambda s: s.update(measurement_files=["../secret.tsv"]),
        lambda s: s["model_files"][next(iter(s["model_files"]))].update(
            location=str(tmp_path / "secret.tsv")),
        lambda s: s["extensions"]["sciml"].update(array_files=["../secret.tsv"]),
        lambda s: s["extensions"]["sciml"].update(hybridization_files=["../secret.tsv"]),
        lambda s: next(iter(s["extensions"]["sciml"]["neural_networks"].values())).update(
            location="../secret.tsv"),
    ]
    for mutate in mutations:
        spec = yaml.safe_load(yaml.safe_dump(original))
        mutate(spec)
        yml.write_text(yaml.safe_dump(spec))
        with pytest.raises(PetabError,
                           match="outside the problem folder|absolute path") as info:
            load_petab(yml)
        assert "problem.yaml" in str(info.value)


# -- regressions ------------------------------------------------------------------------
def _measurement(yml: Path) -> Path:
    return yml.parent / yaml.safe_load(yml.read_text())["problems"][0]["measurement_files"][0]


@pytest.mark.parametrize("value", ["n/a?", "nan", "inf", "", "1e999"])
def test_non_numeric_measurement_names_file_row_column(tmp_path, value):
    """Regression: ``could not convert string to float: 'n/a?'`` without file, row or
    column."""
    yml = _boehm(tmp_path)
    m = _measurement(yml)
    lines = m.read_text().splitlines()
    header = lines[0].split("\t")
    col = header.index("measurement")
    cells = lines[3].split("\t")
    cells[col] = value
    lines[3] = "\t".join(cells)
    m.write_text("\n".join(lines) + "\n")
    with pytest.raises(PetabError) as info:
        load_petab(yml)
    msg = str(info.value)
    assert m.name in msg and "row 4" in msg and "'measurement'" in msg, msg


def test_non_numeric_time_and_bounds(tmp_path):
    yml = _boehm(tmp_path)
    m = _measurement(yml)
    text = m.read_text()
    lines = text.splitlines()
    col = lines[0].split("\t").index("time")
    cells = lines[1].split("\t")
    cells[col] = "soon"
    m.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(PetabError, match=rf"{m.name}, row 2, column 'time': expected a "
                                         "number, got 'soon'"):
        load_petab(yml)
    m.write_text(text)
    p = yml.parent / yaml.safe_load(yml.read_text())["parameter_file"]
    lines = p.read_text().splitlines()
    col = lines[0].split("\t").index("lowerBound")
    cells = lines[1].split("\t")
    cells[col] = "low"
    p.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(PetabError, match=rf"{p.name}, row 2 .*'lowerBound'.*'low'"):
        load_petab(yml)


@pytest.mark.parametrize("text", ["a: &x [1]\nb: *x\n", "[" * 500 + "]" * 500,
                                  "\xff\xfe\x00", "format_version: 1\nproblems: 3\n", ""])
def test_hostile_yaml(tmp_path, text):
    """Aliases (no "billion laughs"), deep nesting, binary and wrong types: PetabError."""
    yml = tmp_path / "problem.yaml"
    yml.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    with pytest.raises(PetabError, match="problem.yaml"):
        load_petab(yml)


def test_missing_and_directory(tmp_path):
    with pytest.raises(PetabError, match="does not exist"):
        load_petab(tmp_path / "nope.yaml")
    with pytest.raises(PetabError, match=str(tmp_path)):
        load_petab(tmp_path)


def test_shared_petab_problems(tmp_path):
    """Table mutations of the PEtab problems in ../shared/data (skipped when absent)."""
    found = sorted((SHARED_DATA / "petab").glob("*/*.yaml")) if SHARED_DATA.is_dir() else []
    found = [p for p in found if p.is_file()][:3]
    if not found:
        pytest.skip(f"no PEtab problems under {SHARED_DATA / 'petab'}")
    for i, src in enumerate(found):
        dest = tmp_path / f"p{i}"
        shutil.copytree(src.parent, dest, symlinks=False,
                        ignore=lambda d, names: [n for n in names
                                                 if os.path.getsize(os.path.join(d, n))
                                                 > 2**22])
        yml = dest / src.name
        tables = _tables(yml)
        if not tables:
            continue

        _fuzz_tables(yml, tables, 4)


def _fuzz_tables(yml: Path, tables: list[Path], n: int) -> None:
    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        target = tables[data.draw(st.integers(0, len(tables) - 1))]
        _load_timed(yml, target, data.draw(table_mutation(target.read_text())).encode())

    check()


@pytest.mark.parametrize("formula", ["9^9^9^9", "2^100000", "(" * 3000 + "1" + ")" * 3000])
def test_formulas_that_would_hang_are_refused(tmp_path, formula):
    """Regression: sympy evaluated ``9^9^9^9`` exactly and never finished."""
    yml = _boehm(tmp_path)
    obs = yml.parent / "observables_Boehm_JProteomeRes2014.tsv"
    lines = obs.read_text().splitlines()
    col = lines[0].split("\t").index("observableFormula")
    cells = lines[1].split("\t")
    cells[col] = formula
    obs.write_text("\n".join([lines[0], "\t".join(cells), *lines[2:]]) + "\n")
    out = reads_cleanly(lambda: load_petab(yml), obs.name)
    assert isinstance(out, PetabError) and "observableFormula" in str(out)
