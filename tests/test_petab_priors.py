"""PEtab objective priors against scipy.stats (jaxcell.petab._priors)."""

import csv
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats

import jaxcell as jc
from jaxcell.petab._priors import PRIOR_TYPES, neg_log_prior, parse_prior

SHARED = Path(__file__).resolve().parents[1] / "../shared/data/petab"


@pytest.mark.parametrize("kind", PRIOR_TYPES[1:])
def test_each_prior_type_matches_scipy(kind):
    x = np.array([-0.3, 0.2, 0.7])          # parameter scale (log10 here)
    theta = 10.0**x                          # linear scale
    a, b = (-0.5, 1.0) if "niform" in kind else (0.1, 0.4)
    code, pa, pb = parse_prior(kind, f"{a};{b}", "test")
    got = float(neg_log_prior(np.full(3, code), np.full(3, pa), np.full(3, pb), x, theta))
    if kind.startswith("parameterScale"):
        v = x
        base = kind[len("parameterScale"):].lower()
    else:
        v = theta
        base = kind
    ref = {
        "normal": lambda v: stats.norm(a, b).logpdf(v),
        "laplace": lambda v: stats.laplace(a, b).logpdf(v),
        "uniform": lambda v: stats.uniform(a, b - a).logpdf(v),
        "lognormal": lambda v: stats.lognorm(s=b, scale=math.exp(a)).logpdf(v),
        "loglaplace": lambda v: stats.laplace(a, b).logpdf(np.log(v)) - np.log(v),
    }[base.lower()](v)
    np.testing.assert_allclose(got, -np.sum(ref), rtol=1e-12)


def test_prior_gradient_matches_finite_differences():
    code, a, b = parse_prior("logNormal", "0.1;0.5", "test")
    f = lambda x: neg_log_prior(np.array([code]), np.array([a]), np.array([b]), x,  # noqa: E731
                                10.0**x)
    x = np.array([0.3])
    h = 1e-6
    fd = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(lambda x: f(x))(x), fd, rtol=1e-6)


def test_bad_priors_are_named():
    with pytest.raises(jc.io.PetabError, match="two numbers"):
        parse_prior("normal", "1", "parameters.tsv: parameter 'k'")
    with pytest.raises(jc.io.PetabError, match="lower < upper"):
        parse_prior("uniform", "2;1", "parameters.tsv: parameter 'k'")
    with pytest.raises(jc.io.PetabUnsupportedError, match="objectivePriorType"):
        parse_prior("gamma", "1;1", "parameters.tsv: parameter 'k'")


def test_problems_without_priors_have_zero_prior():
    here = Path(__file__).parent / "data/petab/Boehm_JProteomeRes2014"
    problem = jc.io.load_petab(here / "Boehm_JProteomeRes2014.yaml")
    assert not problem.has_priors
    assert float(problem.neg_log_prior(problem.x_nominal)) == 0.0


@pytest.mark.skipif(not (SHARED / "Schwen_PONE2014").is_dir(),
                    reason="../shared/data/petab (Schwen 2014) is not available")
def test_schwen_priors_from_the_table():
    folder = SHARED / "Schwen_PONE2014"
    problem = jc.io.load_petab(folder / "Schwen_PONE2014.yaml")
    assert problem.has_priors
    with open(folder / "parameters_Schwen_PONE2014.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    ref = 0.0
    for r in rows:
        if r["estimate"] != "1" or r.get("objectivePriorType") != "parameterScaleNormal":
            continue
        mu, sd = (float(v) for v in r["objectivePriorParameters"].split(";"))
        nominal = float(r["nominalValue"])
        x = {"log10": math.log10, "log": math.log, "lin": float}[r["parameterScale"]](nominal)
        ref -= stats.norm(mu, sd).logpdf(x)
    np.testing.assert_allclose(float(problem.neg_log_prior(problem.x_nominal)), ref,
                               rtol=1e-12)
