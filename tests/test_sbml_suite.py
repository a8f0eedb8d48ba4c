"""jaxcell.io against the SBML Test Suite semantic cases.

The runner's pieces live in ``benchmarks/_sbml_suite_lib.py`` (shared with the
``benchmarks/sbml_suite.py`` command line). Three layers:

* unit tests of the suite's pass rule, the settings and results files, case discovery;
* every case of the small sample shipped in ``tests/data/sbml-test-suite`` (SBML Test
  Suite, LGPL-2.1-or-later, unmodified): the supported groups pass, algebraic rules, fast
  reactions and packages are rejected as unsupported;
* the development subset in ``../shared/data/sbml-test-suite`` (skipped when absent): a
  deterministic, stratified part of every group in the default run, all cases in the slow
  run, held to the per-group targets of ``TARGETS`` with no wrong numbers anywhere.

Reference: SBML Test Suite, https://github.com/sbmlteam/sbml-test-suite.
"""

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _sbml_suite_lib as lib  # noqa: E402
import sbml_suite  # noqa: E402

SAMPLE = REPO / "tests" / "data" / "sbml-test-suite"
SHARED = REPO.parent / "shared" / "data" / "sbml-test-suite"
#: Cases per group in the default (not slow) run over the shared suite: 4 (the 95% groups
#: must then all pass), 6 where the target is 90%, 1 of each group that should be
#: unsupported; spread over each group's numbering. About 45 cases, 2-4 s each (compile
#: included); ``make test-slow`` runs every case.
PER_GROUP = {"events": 6, "delay": 6, "algebraic": 1, "fast": 1, "packages": 1}

SETTINGS = (
    "start: 0\r\nduration: 5\r\nsteps: 50\r\nvariables: S1, S2, k\r\n"
    "absolute: 1.000000e-007\r\nrelative: 0.0001\r\namount: S1, S2\r\nconcentration:\r\n"
)


# -- unit tests ------------------------------------------------------------------------


def test_parse_settings():
    s = lib.parse_settings(SETTINGS)
    assert (s.start, s.duration, s.steps) == (0.0, 5.0, 50)
    assert s.variables == ("S1", "S2", "k")
    assert (s.absolute, s.relative) == (1e-7, 1e-4)
    assert s.amount == {"S1", "S2"} and s.concentration == frozenset()
    assert [s.kind(v) for v in s.variables] == ["amount", "amount", "value"]
    ts = s.times()
    assert ts.shape == (51,) and ts[0] == 0.0 and ts[-1] == 5.0
    np.testing.assert_allclose(np.diff(ts), 0.1)
    c = lib.parse_settings("start: 1\nduration: 2.0\nsteps: 4\nvariables: x\n"
                           "absolute: 0.001\nrelative: 0.01\nconcentration: x\n")
    assert c.kind("x") == "concentration" and c.amount == frozenset()
    np.testing.assert_allclose(c.times(), [1.0, 1.5, 2.0, 2.5, 3.0])


@pytest.mark.parametrize("bad, what", [
    (SETTINGS.replace("relative: 0.0001\r\n", ""), "missing relative"),
    (SETTINGS.replace("steps: 50", "steps: 2.5"), "positive integer"),
    (SETTINGS.replace("duration: 5", "duration: five"), "five"),
])
def test_parse_settings_rejects(bad, what):
    with pytest.raises(ValueError, match=what):
        lib.parse_settings(bad)


def test_read_expected_specials():
    names, v = lib.read_expected("time, P, Q, R,S\r\n0,INF,-INF, NaN,1e-3\r\n"
                                 "0.5,inf,-Inf,nan,2\r\n")
    assert names == ["P", "Q", "R", "S"]
    assert v.shape == (2, 5)
    assert np.all(np.isposinf(v[:, 1])) and np.all(np.isneginf(v[:, 2]))
    assert np.all(np.isnan(v[:, 3]))
    np.testing.assert_array_equal(v[:, 4], [1e-3, 2.0])
    with pytest.raises(ValueError, match="columns"):
        lib.read_expected("time,a,b\n0,1\n")


def test_pass_rule_boundary():
    """|C - U| <= absolute + relative |C| passes, one ulp-ish beyond fails."""
    c = np.array([0.0, 1.0, -100.0])
    tol = 1e-6 + 1e-4 * np.abs(c)
    ok = lib.violation(c, c + 0.999 * tol, 1e-6, 1e-4)
    assert np.all(ok <= 1.0) and ok[1] == pytest.approx(0.999)
    bad = lib.violation(c, c - 1.001 * tol, 1e-6, 1e-4)
    assert np.all(bad > 1.0)
    # zero tolerance: only exact equality passes
    assert lib.violation(np.array([2.0, 2.0]), np.array([2.0, 2.0 + 1e-15]), 0.0,
                         0.0).tolist() == [0.0, math.inf]


def test_pass_rule_nan_and_inf():
    inf, nan = math.inf, math.nan
    c = np.array([nan, nan, inf, inf, -inf, 1.0, 1.0])
    u = np.array([nan, 1.0, inf, -inf, -inf, nan, inf])
    r = lib.violation(c, u, 1e-4, 1e-4)
    assert (r <= 1.0).tolist() == [True, False, True, False, True, False, False]


def test_compare_reports_first_failure():
    ts = np.linspace(0, 1, 5)
    expected = np.column_stack([np.exp(-ts), 2 * ts])
    good = expected * (1 + 1e-6)
    cmp = lib.compare(ts, ["S1", "S2"], expected, good, 1e-7, 1e-4)
    assert cmp.passed and cmp.max_ratio < 0.02
    bad = good.copy()
    bad[3, 1] += 1e-2  # S2 at t=0.75
    bad[4, 0] += 1.0  # S1 at t=1, later
    cmp = lib.compare(ts, ["S1", "S2"], expected, bad, 1e-7, 1e-4)
    assert not cmp.passed
    assert (cmp.first_variable, cmp.first_time) == ("S2", 0.75)
    assert cmp.max_ratio == pytest.approx(1.0 / (1e-7 + 1e-4 * np.exp(-1.0)), rel=1e-6)
    assert "S2 at t=0.75" in cmp.detail()


def test_solver_tolerances_follow_case_tolerances():
    s = lib.parse_settings(SETTINGS)
    assert lib.solver_tolerances(s) == (1e-8, 1e-10)
    tight = lib.parse_settings(SETTINGS.replace("relative: 0.0001", "relative: 1e-9")
                               .replace("absolute: 1.000000e-007", "absolute: 1e-9"))
    rtol, atol = lib.solver_tolerances(tight)
    assert rtol == 1e-12 and atol == pytest.approx(1e-12)


def _fake_case(folder: Path, cid: str, levels: list[str]) -> None:
    d = folder / cid
    d.mkdir(parents=True)
    for lv in levels:
        (d / f"{cid}-sbml-{lv}.xml").write_text("<sbml/>")
    (d / "other-l3v2.xml").write_text("<sbml/>")  # comp's external files are not models


def test_discover_layouts_and_model_choice(tmp_path):
    _fake_case(tmp_path / "cases", "00001", ["l1v2", "l2v5", "l3v1", "l3v2"])
    _fake_case(tmp_path / "cases", "00002", ["l2v4", "l2v5"])
    _fake_case(tmp_path / "cases", "00003", ["l2v5", "l3v1"])
    (tmp_path / "cases" / "notes").mkdir()
    no_tsv = lib.discover(tmp_path)
    assert [(c.id, c.group) for c in no_tsv] == [("00001", "unknown"), ("00002", "unknown"),
                                                 ("00003", "unknown")]
    assert [c.model_file().name for c in no_tsv] == [
        "00001-sbml-l3v2.xml", "00002-sbml-l2v5.xml", "00003-sbml-l3v1.xml"]
    (tmp_path / "cases.tsv").write_text(
        "case\tgroup\tgeneratedBy\tcomponentTags\ttestTags\n"
        "00001\tcore\tAnalytic\tSpecies\tAmount\n00003\tevents\tNumeric\t\t\n")
    for root in (tmp_path, tmp_path / "cases"):  # the suite folder or its cases/ folder
        assert [c.group for c in lib.discover(root)] == ["core", "unknown", "events"]
    with pytest.raises(FileNotFoundError, match="NNNNN"):
        lib.discover(tmp_path / "cases" / "notes")


def test_select_is_stratified_and_deterministic():
    cases = [lib.Case(f"{i:05d}", "a" if i % 3 else "b", Path(".")) for i in range(1, 31)]
    a = [c for c in cases if c.group == "a"]
    q = lib.select(cases, every=4)
    assert {c.id for c in q if c.group == "a"} == {c.id for c in a[::4]}
    assert len([c for c in q if c.group == "b"]) == 3  # 10 b's: 1st, 5th, 9th
    p = lib.select(cases, per_group=3)
    assert [c.id for c in p if c.group == "a"] == [a[0].id, a[10].id, a[-1].id]
    assert lib.select(cases, per_group=3) == p
    assert [c.id for c in lib.select(cases, only=["3", "00004", " 7"])] == [
        "00003", "00004", "00007"]
    assert {c.group for c in lib.select(cases, groups=["b"])} == {"b"}


def test_table_and_targets():
    res = ([{"case": f"{i:05d}", "group": "core", "status": "pass"} for i in range(19)]
           + [{"case": "00100", "group": "core", "status": "error", "detail": "x"},
              {"case": "00200", "group": "events", "status": "fail", "detail": "S1"},
              {"case": "00300", "group": "fast", "status": "unsupported",
               "feature": "FastReaction"}])
    counts = lib.group_counts(res)
    assert list(counts) == ["core", "events", "fast"]
    assert counts["core"]["total"] == 20 and lib.pass_fraction(counts["core"]) == 0.95
    table = lib.format_table(res)
    assert "overall" in table and "95.0%" in table
    assert lib.unsupported_features(res) == [("FastReaction", 1)]
    short = lib.target_shortfalls(res)
    assert len(short) == 2 and short[0].startswith("events: pass 0/1")
    assert "00200 (events): fail" in short[1]


# -- the shipped sample ----------------------------------------------------------------


SAMPLE_CASES = lib.discover(SAMPLE)


def test_sample_is_complete():
    groups = {c.group for c in SAMPLE_CASES}
    assert groups == set(lib.TARGET_GROUPS) | set(lib.UNSUPPORTED_GROUPS)
    for c in SAMPLE_CASES:
        lib.parse_settings(c.settings_file().read_text())
        lib.read_expected(c.results_file().read_text())
        assert c.model_file().is_file()
    assert (SAMPLE / "LICENSE.txt").is_file() and (SAMPLE / "COPYING.txt").is_file()


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=lambda c: f"{c.id}-{c.group}")
def test_sample_case(case):
    r = lib.run_case(case)
    want = "pass" if case.group in lib.TARGET_GROUPS else "unsupported"
    assert r["status"] == want, r


def test_cli_runs_cases_in_worker_processes(tmp_path):
    """The command line end to end: spawned workers, table, JSON (unsupported cases are
    rejected while loading, so this is quick)."""
    ids = [c.id for c in SAMPLE_CASES if c.group in lib.UNSUPPORTED_GROUPS]
    out = tmp_path / "suite.json"
    rc = sbml_suite.main(["--cases", str(SAMPLE), "--only", ",".join(ids), "--jobs", "2",
                          "--json", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert set(doc["cases"]) == set(ids)
    assert {v["status"] for v in doc["cases"].values()} == {"unsupported"}
    assert all(v["feature"] for v in doc["cases"].values())
    rows = {(r["case"], r["metric"]): r["value"] for r in doc["rows"]}
    assert rows[("overall", "pass_fraction")] == 0.0
    assert rows[("overall", "unsupported")] == len(ids)
    assert {"machine", "versions"} <= set(doc)


def test_cli_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sbml_suite.main(["--cases", str(tmp_path / "missing")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        sbml_suite.main(["--cases", str(SAMPLE), "--only", "99999"])
    assert e.value.code == 2
    assert "no cases selected" in capsys.readouterr().err


# -- the shared development subset -----------------------------------------------------


def _shared_cases() -> list[lib.Case]:
    if not SHARED.is_dir():
        pytest.skip(f"SBML Test Suite cases not found at {SHARED} (../shared/data next "
                    "to the repository)")
    return lib.discover(SHARED)


def _assert_targets(results):
    counts = lib.group_counts(results)
    report = lib.format_table(results) + "\n" + "\n".join(
        f"{r['case']} {r['group']} {r['status']}: {r.get('detail')}"
        for r in results if r["status"] in ("fail", "error"))
    assert not lib.target_shortfalls(results), report
    assert all(c["fail"] == 0 for c in counts.values()), report


# What jaxcell refuses by name inside the target groups: SBML asks for a random order of
# simultaneous events with equal priorities (the suite's RandomEventExecution cases).
ALLOWED_IN_TARGET_GROUPS = ("random execution order of simultaneous events",)


@pytest.mark.parametrize("group", lib.TARGET_GROUPS + lib.UNSUPPORTED_GROUPS)
def test_shared_suite_stratified(group):
    """PER_GROUP cases of each group, spread evenly over its ids, run in this process.

    A sample of 4-6 cases is too small for the per-group percentage targets (one
    refused case in 6 is already 17 %), so this fast check asserts what must hold case by
    case: no wrong numbers, no errors, and refusals only for the features jaxcell names.
    The percentage targets are asserted over all cases by ``test_shared_suite_all``
    (slow) and measured by ``make sbml-suite``."""
    n = PER_GROUP.get(group, 4)
    cases = lib.select(_shared_cases(), groups=[group], per_group=n)
    results = [lib.run_case(c) for c in cases]
    report = lib.format_table(results) + "\n" + "\n".join(
        f"{r['case']} {r['group']} {r['status']}: {r.get('detail')}" for r in results
        if r["status"] != "pass")
    assert all(r["status"] in ("pass", "unsupported") for r in results), report
    if group in lib.UNSUPPORTED_GROUPS:
        assert {r["status"] for r in results} == {"unsupported"}, report
    else:
        refused = [r for r in results if r["status"] == "unsupported"]
        assert all(any(a in str(r.get("detail")) for a in ALLOWED_IN_TARGET_GROUPS)
                   for r in refused), report
        assert len(refused) <= 2, report


@pytest.mark.slow
def test_shared_suite_all():
    """Every case, in worker processes, held to the targets."""
    cases = _shared_cases()
    jobs = max(1, min(4, os.cpu_count() or 1))
    results = lib.run_parallel(cases, jobs=jobs, timeout=300.0)
    assert len(results) == len(cases)
    _assert_targets(results)
