"""fit() on a PEtab problem (Boehm_JProteomeRes2014, shipped in tests/data/petab)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import jaxcell.io as jio
from jaxcell.inference import AbstractBoundedObjective, InferenceError, fit
from jaxcell.petab import PetabObjective, petab_objective

BOEHM_YAML = (Path(__file__).resolve().parent / "data" / "petab" / "Boehm_JProteomeRes2014"
              / "Boehm_JProteomeRes2014.yaml")
BOEHM_BEST = 138.2220  # AMICI/pyPESTO reference optimum (nllh at the nominal point)

_CACHE: dict[str, jio.PetabProblem] = {}


def _boehm() -> jio.PetabProblem:
    if "boehm" not in _CACHE:
        # Forward mode: Levenberg-Marquardt needs the Jacobian of ~300 residuals with
        # respect to 9 parameters (9 JVPs instead of ~300 backward passes).
        _CACHE["boehm"] = jio.load_petab(BOEHM_YAML, forward_mode=True)
    return _CACHE["boehm"]


def test_adapter_residuals_match_nllh():
    pb = _boehm()
    obj = petab_objective(pb)
    assert isinstance(obj, PetabObjective) and obj.is_least_squares
    assert isinstance(obj, AbstractBoundedObjective) and obj.forward_mode
    assert petab_objective(obj) is obj
    assert len(obj.parameters) == len(pb.parameter_ids) == 9
    for x in (pb.x_nominal, np.asarray(pb.x_nominal) + 0.2):
        r = jax.jit(obj.residuals)(x)
        nll = 0.5 * float(r @ r) + float(obj.nll_constant())
        assert abs(nll - float(pb.nllh(x))) < 1e-6
    starts = np.asarray(obj.parameters.sample_starts(jax.random.key(0), 20))
    assert np.all(starts >= pb.lower_bounds) and np.all(starts <= pb.upper_bounds)
    vals = obj.parameters.values(pb.x_nominal)
    assert vals["k_phos"] == pytest.approx(15766.5070195731, rel=1e-10)  # log10 scale
    with pytest.raises(InferenceError, match="PetabProblem.*got float"):
        petab_objective(3.0)


def test_fit_boehm_from_near_the_optimum():
    pb = _boehm()
    x0 = np.asarray(pb.x_nominal) + 0.1 * np.sin(np.arange(9.0))
    result = fit(pb, starts=x0[None], max_steps=60)
    assert result.value <= BOEHM_BEST + 1e-3 and result.converged
    # k_exp_hetero sits on its lower PEtab bound (1e-5) at the optimum: held there
    lo, hi = pb.lower_bounds, pb.upper_bounds
    assert np.all(result.x >= lo) and np.all(result.x <= hi)
    i = list(pb.parameter_ids).index("k_exp_hetero")
    assert result.x[i] == lo[i]
    assert set(result.values) == set(pb.parameter_ids)
    assert result.values["sd_pSTAT5A_rel"] == pytest.approx(3.8526, rel=0.05)


def test_fit_boehm_random_starts_are_within_bounds():
    pb = _boehm()
    result = fit(pb, starts=2, key=jax.random.key(3), max_steps=3)
    # Forward mode and the default reverse mode give the same nllh.
    np.testing.assert_allclose(float(jio.load_petab(BOEHM_YAML).nllh(pb.x_nominal)),
                               float(pb.nllh(pb.x_nominal)), rtol=1e-12)
    assert len(result.starts) == 2
    for s in result.starts:
        assert np.all(s.x0 >= pb.lower_bounds) and np.all(s.x0 <= pb.upper_bounds)
        assert np.all(s.x >= pb.lower_bounds) and np.all(s.x <= pb.upper_bounds)
        assert not np.allclose(s.x0, pb.x_nominal)
        assert s.value == pytest.approx(float(pb.nllh(s.x)), rel=1e-9)


@pytest.mark.slow
def test_fit_boehm_multistart_50():
    """Issue 6 check: 50 uniform starts within the PEtab bounds; the best reaches the
    reference optimum. Prints the fraction of starts at the optimum to 1e-3."""
    pb = _boehm()
    result = fit(pb, starts=50, key=jax.random.key(0), max_steps=300)
    at_best = sum(s.value <= BOEHM_BEST + 1e-3 for s in result.starts)
    print(f"Boehm multistart: best {result.value:.6f}, {at_best}/50 at the optimum")
    assert result.value <= BOEHM_BEST + 1e-3
