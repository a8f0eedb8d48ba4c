"""The objective interface of jaxcell.inference: AbstractObjective (and its bounded
capability), objectives written outside jaxcell, and InferenceError for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from jaxtyping import Array

import jaxcell as jc
from jaxcell.inference import (
    AbstractBoundedObjective,
    AbstractObjective,
    AbstractParameters,
    Experiment,
    InferenceError,
    LevenbergMarquardt,
    Linear,
    Normal,
    Objective,
    Parameter,
    Parameters,
    default_method,
    draw_starts,
    fit,
    objective_model,
    profile,
)

# nll(x) = (x - c)ᵀ A (x - c) / 2 + NLL_MIN, A = L Lᵀ: minimum NLL_MIN at c, and the
# profile of x_i is (x_i - c_i)² / (2 Σ_ii) + NLL_MIN with Σ = A⁻¹ (Gaussian algebra).
CENTRE = np.array([1.5, -2.0, 0.25])
CHOL = np.array([[2.0, 0.0, 0.0], [0.6, 1.0, 0.0], [-0.3, 0.4, 0.5]])
HESSIAN = CHOL @ CHOL.T
NLL_MIN = 3.0


class Quadratic(AbstractObjective):
    """A correlated Gaussian negative log-likelihood, written outside jaxcell."""

    parameters: Parameters
    centre: Array
    chol: Array
    is_least_squares: bool = eqx.field(static=True)

    forward_mode: ClassVar[bool] = False
    default_ftol: ClassVar[float] = 0.0
    random_starts_only: ClassVar[bool] = False

    def nll(self, x):
        return 0.5 * jnp.sum(self.residuals_unchecked(x) ** 2) + NLL_MIN

    def residuals_unchecked(self, x):
        return self.chol.T @ (jnp.asarray(x, float) - self.centre)

    def residuals(self, x):
        if not self.is_least_squares:
            raise InferenceError("Quadratic.residuals: not a sum of squares.")
        return self.residuals_unchecked(x)

    def nll_constant(self):
        return jnp.asarray(NLL_MIN)


class BoxedQuadratic(AbstractBoundedObjective):
    """The same, with ``parameters.bounds`` as hard bounds (minimum outside them)."""

    parameters: Parameters
    centre: Array
    chol: Array

    is_least_squares: ClassVar[bool] = True
    forward_mode: ClassVar[bool] = False
    default_ftol: ClassVar[float] = 0.0
    random_starts_only: ClassVar[bool] = True

    def nll(self, x):
        return 0.5 * jnp.sum(self.residuals(x) ** 2)

    def residuals(self, x):
        return self.chol.T @ (jnp.asarray(x, float) - self.centre)

    def nll_constant(self):
        return jnp.zeros(())


def _parameters(bounds=None) -> Parameters:
    return Parameters([Parameter(n, scale=Linear(), init=0.0, bounds=bounds)
                       for n in ("a", "b", "c")])


def _quadratic(least_squares: bool = True) -> Quadratic:
    return Quadratic(parameters=_parameters(), centre=jnp.asarray(CENTRE),
                     chol=jnp.asarray(CHOL), is_least_squares=least_squares)


def test_custom_objective_fit_finds_the_analytic_minimum():
    obj = _quadratic()
    assert isinstance(default_method(obj), LevenbergMarquardt)
    result = fit(obj, starts=3, key=jax.random.key(1))
    np.testing.assert_allclose(result.x, CENTRE, atol=1e-7)
    assert result.values == pytest.approx(dict(zip("abc", CENTRE)), abs=1e-7)
    assert result.value == pytest.approx(NLL_MIN, abs=1e-12) and result.converged
    # Not a sum of squares: BFGS by default, same minimum; optax too.
    minimise = _quadratic(least_squares=False)
    assert isinstance(default_method(minimise), optx.BFGS)
    np.testing.assert_allclose(fit(minimise).x, CENTRE, atol=1e-6)
    np.testing.assert_allclose(fit(minimise, method=optax.adam(0.1), max_steps=2000).x,
                               CENTRE, atol=1e-4)
    with pytest.raises(InferenceError, match="sum-of-squares.*Quadratic"):
        fit(minimise, method=LevenbergMarquardt())


def test_custom_objective_value_and_grad_and_profile_are_analytic():
    obj = _quadratic()
    x = jnp.array([0.3, 0.1, -0.7])
    value, grad = obj.value_and_grad(x)
    np.testing.assert_allclose(value, 0.5 * (x - CENTRE) @ HESSIAN @ (x - CENTRE) + NLL_MIN,
                               rtol=1e-12)
    np.testing.assert_allclose(grad, HESSIAN @ (x - CENTRE), rtol=1e-12)
    result = fit(obj)
    prof = profile(obj, result, "b", n_points=5, span=0.5)
    sigma_bb = np.linalg.inv(HESSIAN)[1, 1]
    np.testing.assert_allclose(prof.values, CENTRE[1] + np.linspace(-0.5, 0.5, 5))
    np.testing.assert_allclose(prof.nll, (prof.values - CENTRE[1]) ** 2 / (2 * sigma_bb)
                               + NLL_MIN, atol=1e-8)


def test_bounded_objective_results_stay_within_the_bounds():
    obj = BoxedQuadratic(_parameters(bounds=(-1.0, 1.0)), jnp.asarray(CENTRE),
                         jnp.asarray(CHOL))
    lo, hi = obj.parameters.bounds
    starts = np.asarray(draw_starts(obj, 4, jax.random.key(0)))
    assert not np.any(np.all(starts == 0.0, axis=1))  # random_starts_only: no x0
    # Projected Levenberg–Marquardt and penalised-then-clipped BFGS agree on the
    # bound-constrained minimum (a and b held at their bounds).
    lm = fit(obj, starts=starts)
    bfgs = fit(obj, starts=starts, method=optx.BFGS(rtol=1e-10, atol=1e-10))
    for r in (lm, bfgs):
        assert np.all(r.x >= lo) and np.all(r.x <= hi)
        assert r.value == pytest.approx(float(obj.nll(r.x)), rel=1e-12)
    np.testing.assert_allclose(lm.x[:2], [1.0, -1.0])
    np.testing.assert_allclose(bfgs.x, lm.x, atol=1e-3)


def test_incomplete_objective_cannot_be_built():
    class NoNll(AbstractObjective):
        parameters: Parameters
        is_least_squares: ClassVar[bool] = False
        forward_mode: ClassVar[bool] = False
        default_ftol: ClassVar[float] = 0.0
        random_starts_only: ClassVar[bool] = False

        def residuals(self, x):
            raise InferenceError("not a sum of squares")

        def nll_constant(self):
            raise InferenceError("not a sum of squares")

    with pytest.raises(TypeError, match="abstract"):
        NoNll(_parameters())  # pyright: ignore[reportAbstractUsage]
    assert issubclass(Parameters, AbstractParameters)


def test_non_objective_raises_inference_error_naming_the_type():
    class Duck:  # has what fit used to probe for, but is no AbstractObjective
        parameters = _parameters()
        is_least_squares = True

        def nll(self, x):
            return jnp.sum(x**2)

    for bad, name in [("nll", "builtins.str"), (Duck(), "Duck"), (None, "NoneType")]:
        with pytest.raises(InferenceError, match=rf"fit: objective must be a "
                           rf"jaxcell.inference.AbstractObjective.*got .*{name}"):
            fit(bad)  # type: ignore[arg-type]
    with pytest.raises(InferenceError, match="profile: .*got .*Duck"):
        profile(Duck(), None, "a")  # type: ignore[arg-type]
    with pytest.raises(InferenceError, match="draw_starts: .*got .*str"):
        draw_starts("nll", 2, None)  # type: ignore[arg-type]
    with pytest.raises(InferenceError, match="objective_model: .*Objective.*Quadratic"):
        objective_model(_quadratic())  # type: ignore[arg-type]


def test_inference_error_is_a_value_error_and_a_jaxcell_error():
    assert issubclass(InferenceError, ValueError)
    assert issubclass(InferenceError, jc.JaxcellError)
    assert jc.InferenceError is InferenceError
    obj = _quadratic()
    # Input errors across jaxcell.inference (some were TypeErrors before).
    cases = [
        (lambda: fit(obj, starts=0), "starts must be at least 1"),
        (lambda: fit(obj, starts=np.zeros((2, 2))), r"shape \(n, 3\)"),
        (lambda: fit(obj, method="bfgs"), "method must be"),
        (lambda: profile(obj, fit(obj), "z"), "'z' is not a free parameter"),
        (lambda: Parameter("k", scale="log"), "scale must be a transform"),  # type: ignore
        (lambda: Parameters(["k", "k"]), "names given twice"),
        (lambda: Experiment([1.0], [1.0], "x", noise="normal"),  # type: ignore
         "noise must be a noise model"),
        (lambda: Experiment([1.0], [1.0], 3.0), "observable must be"),  # type: ignore
        (lambda: Normal(-1.0), "sigma must be positive"),
    ]
    for call, match in cases:
        with pytest.raises(InferenceError, match=match):
            call()
    decay = jc.ODE("decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
                   parameters={"k": 0.2})
    with pytest.raises(InferenceError, match="one or more Experiment"):
        Objective(decay, Parameters(["k"], model=decay), [])


BOEHM_YAML = (Path(__file__).resolve().parent / "data" / "petab" / "Boehm_JProteomeRes2014"
              / "Boehm_JProteomeRes2014.yaml")


def test_petab_problem_is_an_objective_through_the_interface():
    """A PetabProblem goes through the same interface (fitting it is checked in
    tests/test_petab_fit.py::test_fit_boehm_random_starts_are_within_bounds; nothing
    is compiled here)."""
    from jaxcell.petab import PetabObjective, load_petab, petab_objective

    pb = load_petab(BOEHM_YAML)
    obj = petab_objective(pb)
    assert isinstance(obj, PetabObjective) and isinstance(obj, AbstractBoundedObjective)
    assert isinstance(obj.parameters, AbstractParameters)
    assert obj.random_starts_only and obj.default_ftol == 1e-8 and not obj.forward_mode
    assert isinstance(default_method(pb), LevenbergMarquardt)
    starts = np.asarray(draw_starts(pb, 5, jax.random.key(2)))
    assert starts.shape == (5, 9)
    assert np.all(starts >= pb.lower_bounds) and np.all(starts <= pb.upper_bounds)
