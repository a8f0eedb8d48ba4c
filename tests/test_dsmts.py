"""The DSMTS stochastic cases through ``jaxcell.simulate(..., stochastic=SSA())``.

The runner's pieces live in ``benchmarks/_dsmts_lib.py`` (shared with the
``benchmarks/dsmts_suite.py`` command line). Layers:

* unit tests of the case rule (binomial tail bound) and the file readers;
* the four cases shipped in ``tests/data/dsmts`` (LGPL, unmodified) at the suite's
  recommended n = 10,000 trajectories: all pass;
* every case of ``../shared/data/dsmts`` (skipped when absent) in the slow run.

Reference: Evans, Gillespie & Wilkinson (2008), Bioinformatics 24:285.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import _dsmts_lib as lib  # noqa: E402
import dsmts_suite  # noqa: E402

import jaxcell as jc  # noqa: E402

SAMPLE = REPO / "tests" / "data" / "dsmts"
SHARED = REPO.parent / "shared" / "data" / "dsmts"


def test_case_rule_is_a_binomial_tail_bound():
    # P(Bin(51, 0.0027) >= 3) = 4.1e-4 < 0.001 <= P(... >= 2) = 8.6e-3
    assert lib.allowed_out(51) == 2
    assert lib.binomial_tail(3, 51) < lib.ALPHA <= lib.binomial_tail(2, 51)
    assert lib.binomial_tail(0, 51) == 1.0
    from scipy.stats import binom

    for k in (1, 2, 3, 5):
        expected = binom.sf(k - 1, 51, 0.0027)
        assert abs(lib.binomial_tail(k, 51) - expected) < 1e-10 * expected


def test_statistics_of_exact_samples():
    """Samples drawn from the exact distribution give |Z| < 3, |Y| < 5 (seeded), and
    a shifted mean is caught."""
    rng = np.random.default_rng(0)
    mu, sd = np.full(5, 10.0), np.full(5, 2.0)
    s = lib.Settings(0, 4, 4, ["X"], ["X"], [])
    x = rng.normal(10.0, 2.0, size=(10_000, 5))
    z_out, y_out, pts, mz, my = lib.statistics(x, mu, sd, s)
    assert (z_out, y_out, pts) == (0, 0, 5)
    z_out, *_ = lib.statistics(x + 0.1, mu, sd, s)
    assert z_out == 5


def test_readers():
    settings = lib.read_settings(SAMPLE / "cases" / "00030" / "00030-settings.txt")
    assert settings.variables == ["P", "P2"] and settings.steps == 50
    assert settings.mean_range == (-3.0, 3.0) and settings.sd_range == (-5.0, 5.0)
    times, means, sds = lib.read_results(SAMPLE / "cases" / "00030" / "00030-results.csv")
    assert len(times) == 51 and abs(means["P"][-1] - 28.542298) < 1e-6
    assert abs(sds["P"][-1] - 4.789331) < 1e-6


@pytest.mark.parametrize("case", ["00002", "00024", "00028", "00030"])
def test_sample_case_passes(case):
    r = lib.run_case(SAMPLE / "cases" / case, jc.SSA(), n=10_000, seed=1)
    assert r.status == "pass", r.as_json()


def test_a_biased_simulator_fails():
    """The rule has power: the same case with a 3 % error in a rate constant fails
    (both sets of trajectories)."""
    folder = SAMPLE / "cases" / "00002"
    model, _ = lib.load_model(folder)
    biased = model.replace_parameters({"Death.Mu": 0.11 * 1.03})
    times, means, sds = lib.read_results(folder / "00002-results.csv")
    settings = lib.read_settings(folder / "00002-settings.txt")
    run, keys = lib.make_sampler(biased, times, jc.SSA(), 10_000, 3)
    x = np.asarray(run(keys)[0])[:, :, 0]
    z_out, y_out, pts, mz, my = lib.statistics(x, means["X"], sds["X"], settings)
    assert lib.binomial_tail(z_out, pts) < lib.ALPHA, (z_out, mz)


def test_runner_writes_json(tmp_path, capsys):
    out = tmp_path / "dsmts.json"
    assert dsmts_suite.main(["--cases", str(SAMPLE), "--only", "00028", "--trajectories",
                             "2000", "--json", str(out)]) == 0
    import json

    data = json.loads(out.read_text())
    assert data["cases"]["00028"]["status"] in ("pass", "fail")
    assert data["cases"]["00028"]["points"] == 51
    assert set(data["cases"]["00028"]) >= {"status", "z_out", "y_out", "points", "feature"}
    assert "00028" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/dsmts is not present")
def test_every_shared_case_passes_with_ssa():
    failures = {}
    for folder in lib.discover(SHARED):
        r = lib.run_case(folder, jc.SSA(), n=10_000, seed=2)
        if r.status != "pass":
            failures[folder.name] = r.as_json()
    assert not failures, failures
