"""SBML semantics taken from the specification (Level 3 Version 2 Core), each checked
against an analytic solution and against libRoadRunner as an external reference.

- A ``constant="true"`` species whose value is a concentration, in a compartment whose
  size changes, keeps its *amount*: "Does a 'constant' value of 'true' mean that the
  concentration is held constant if the compartment size changes? No; it is still the
  amount that is kept constant across a compartment size change" (SBML core
  specification, Species, "Additional considerations for interpreting the numerical
  value of a species"). A boundary species that no rule changes keeps its amount too
  ("the size change does not in itself cause an increase or decrease in the number of
  entities of any species in that compartment", same section).
- ``rateOf(S)`` of a species changed by reactions is the sum of stoichiometry times
  reaction rate (over the size, minus the dilution, for a concentration); it may appear
  in the kinetic law of another reaction. Only a rate that needs ``rateOf`` of a species
  it changes itself is circular.
"""

from __future__ import annotations

import numpy as np
import pytest

from jaxcell.sbml import SBMLError, load_sbml, simulate_sbml
from tests.sbml_builder import build

roadrunner = pytest.importorskip("roadrunner")

TS = np.array([0.0, 0.1, 0.5, 1.0])
RTOL, ATOL = 1e-10, 1e-12


def _roadrunner(xml: str, selections: list[str]) -> np.ndarray:
    rr = roadrunner.RoadRunner(xml)
    rr.setIntegrator("cvode")
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    res = np.asarray(rr.simulate(times=list(TS), selections=["time", *selections]))
    np.testing.assert_allclose(res[:, 0], TS, rtol=0, atol=1e-12)
    return res[:, 1:]


def _simulate(xml: str):
    sol = simulate_sbml(load_sbml(xml), TS, rtol=RTOL, atol=ATOL)
    assert sol.success
    return sol


# C grows exponentially by a rate rule (+10 % in 0.1 time units), C2 linearly by an
# assignment rule. S and S2: constant, concentration units; D: constant amount;
# B: boundary, not constant, changed by nothing; P: made at rate k*[S], decays at d*P;
# q' = rateOf(S) from q(0) = [S](0), so q tracks [S].
GROWING = build(
    compartments=(("C", 1.0, False), ("C2", 1.0, False)),
    species=(
        ("S", "C", 2.0, False, False, True, True),
        ("B", "C", 3.0, False, True, False, False),
        ("D", "C", 4.0, True, False, True, False),
        ("P", "C", 0.0, True),
        ("S2", "C2", 5.0, False, False, True, True),
    ),
    parameters=(("r", 1.0, True), ("k", 0.5, True), ("d", 3.0, True), ("q", 2.0, False)),
    reactions=(("make", {}, {"P": 1}, "k * S"), ("decay", {"P": 1}, {}, "d * P")),
    rate_rules=(("C", "r * C"), ("q", "rateOf(S)")),
    assignment_rules=(("C2", "1 + time"),),
)


def test_constant_species_keeps_its_amount_when_its_compartment_grows():
    sol = _simulate(GROWING)
    size = np.exp(TS)  # C' = C, C(0) = 1
    np.testing.assert_allclose(sol.value("C"), size, rtol=1e-8)
    # amounts kept, concentrations diluted
    np.testing.assert_allclose(sol.amount("S"), 2.0, rtol=1e-12)
    np.testing.assert_allclose(sol.value("S"), 2.0 / size, rtol=1e-8)
    np.testing.assert_allclose(sol.amount("S2"), 5.0, rtol=1e-12)
    np.testing.assert_allclose(sol.value("S2"), 5.0 / (1.0 + TS), rtol=1e-12)
    np.testing.assert_allclose(sol.amount("B"), 3.0, rtol=1e-12)
    np.testing.assert_allclose(sol.value("B"), 3.0 / size, rtol=1e-8)
    np.testing.assert_allclose(sol.value("D"), 4.0, rtol=1e-12)
    # what reads [S] sees the dilution: P' = k [S] - d P = e^-t - 3 P
    np.testing.assert_allclose(sol.amount("P"), (np.exp(-TS) - np.exp(-3.0 * TS)) / 2.0,
                               rtol=1e-7, atol=1e-10)
    # rateOf(S) is d[S]/dt = -[S] C'/C, not 0
    np.testing.assert_allclose(sol.value("q"), 2.0 / size, rtol=1e-7)


def test_constant_species_in_a_growing_compartment_matches_roadrunner():
    ids = ["C", "C2", "S", "S2", "B", "D", "P", "q"]
    ref = _roadrunner(GROWING, ["C", "C2", "S", "[S]", "S2", "[S2]", "B", "[B]", "D", "P",
                                "q"])
    sol = _simulate(GROWING)
    ours = np.stack([sol.value("C"), sol.value("C2"), sol.amount("S"), sol.value("S"),
                     sol.amount("S2"), sol.value("S2"), sol.amount("B"), sol.value("B"),
                     sol.amount("D"), sol.amount("P"), sol.value("q")], axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9, err_msg=str(ids))


def test_constant_species_in_a_fixed_compartment_stays_a_constant():
    xml = build(
        compartments=(("C", 2.0, True),),
        species=(("S", "C", 3.0, False, False, True, True), ("P", "C", 0.0, True)),
        parameters=(("k", 0.5, True),),
        reactions=(("make", {}, {"P": 1}, "k * S"),),
    )
    model = load_sbml(xml)
    assert "S" in model.structure.const_ids
    sol = _simulate(xml)
    np.testing.assert_allclose(sol.value("S"), 3.0, rtol=1e-12)
    np.testing.assert_allclose(sol.amount("P"), 1.5 * TS, rtol=1e-10, atol=1e-12)


# R1: A -> p1 at k [A] C (amount/time), C = 2 constant; R2: -> X at rateOf(p1).
# [A] = e^{-kt}, [p1] = 1 - e^{-kt}, X(amount) = [p1], q' = rateOf(p1), y = rateOf(p1).
RATE_OF = build(
    compartments=(("C", 2.0, True),),
    species=(
        ("A", "C", 1.0, False, False, False, True),
        ("p1", "C", 0.0, False, False, False, True),
        ("X", "C", 0.0, False, False, False, True),
    ),
    parameters=(("k", 0.7, True), ("q", 0.0, False), ("y", 0.0, False)),
    reactions=(("R1", {"A": 1}, {"p1": 1}, "k * A * C"), ("R2", {}, {"X": 1}, "rateOf(p1)")),
    rate_rules=(("q", "rateOf(p1)"),),
    assignment_rules=(("y", "rateOf(p1)"),),
)


def test_rate_of_a_reaction_species_in_another_kinetic_law():
    sol = _simulate(RATE_OF)
    e = np.exp(-0.7 * TS)
    np.testing.assert_allclose(sol.value("A"), e, rtol=1e-8)
    np.testing.assert_allclose(sol.value("p1"), 1.0 - e, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.amount("X"), 1.0 - e, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.value("q"), 1.0 - e, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sol.value("y"), 0.7 * e, rtol=1e-8)


def test_rate_of_in_a_kinetic_law_matches_roadrunner():
    ref = _roadrunner(RATE_OF, ["[A]", "[p1]", "X", "q", "y"])
    sol = _simulate(RATE_OF)
    ours = np.stack([sol.value("A"), sol.value("p1"), sol.amount("X"), sol.value("q"),
                     sol.value("y")], axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("laws", [
    # R1's rate needs rateOf(p1), which needs R1's rate
    ("k * A * C + rateOf(p1)", "1"),
    # R1 -> rateOf(X) -> R2 -> rateOf(p1) -> R1
    ("k * A * C + rateOf(X)", "rateOf(p1)"),
])
@pytest.mark.parametrize("version", [1, 2])
def test_a_real_rate_of_cycle_is_an_error_naming_the_symbol(laws, version):
    # L3V2 forbids it (section 4.9.5) and libsbml's validation says so when the model
    # is read; L3V1 documents (rateOf from the l3v2extendedmath package) are not
    # checked for it, and the interpreter reports the cycle when it meets it.
    xml = build(
        compartments=(("C", 2.0, True),),
        species=(("A", "C", 1.0, False), ("p1", "C", 0.0, False), ("X", "C", 0.0, False)),
        parameters=(("k", 0.7, True),),
        reactions=(("R1", {"A": 1}, {"p1": 1}, laws[0], {}, False),
                   ("R2", {}, {"X": 1}, laws[1], {}, False)),
        level=3, version=version,
    )
    if version == 2:
        with pytest.raises(SBMLError, match=r"(?s)circular dependencies.*'(p1|X)'"):
            load_sbml(xml)
    else:
        with pytest.raises(SBMLError, match=r"rateOf\('(p1|X)'\) depends on itself "
                                            r"\(.*rate of reaction 'R1'"):
            simulate_sbml(load_sbml(xml), TS)
