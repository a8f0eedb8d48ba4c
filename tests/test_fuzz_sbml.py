"""Fuzzing the SBML reader (``jaxcell.sbml.load_sbml``) with mutated real files.

Seeds: the sbml-test-suite subset in ``tests/data`` and, when present, the models under
``../shared/data``. Property (``fuzz_helpers.reads_cleanly``): a mutated file loads, or
raises an ``SBMLError`` naming the file; never another exception, never a hang.
Regression tests for the bugs found name the element.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fuzz_helpers import COUNTS, DATA, SHARED_DATA, byte_mutation, fuzz_settings, reads_cleanly
from hypothesis import given
from hypothesis import strategies as st

from jaxcell.sbml import SBMLError, SBMLUnsupportedError, load_sbml

SUITE = sorted((DATA / "sbml-test-suite" / "cases").glob("*/*-sbml-l3v2.xml"))
MATHML = 'xmlns="http://www.w3.org/1998/Math/MathML"'


def _seed(i: int) -> Path:
    return SUITE[i % len(SUITE)]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    out = tmp_path / name
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("n", COUNTS)
def test_mutated_bytes(tmp_path, n):
    assert SUITE, "no sbml-test-suite cases in tests/data"

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        seed = _seed(data.draw(st.integers(0, len(SUITE) - 1)))
        mutated = data.draw(byte_mutation(seed.read_bytes()))
        path = _write(tmp_path, "mutated_model.xml", mutated)
        reads_cleanly(lambda: load_sbml(path), "mutated_model.xml")

    check()


_ELEMENT_MUTATIONS = [
    # (pattern, replacement): attribute values, ids, whole elements
    (r'value="[^"]*"', 'value="{v}"'),
    (r'initialConcentration="[^"]*"', 'initialConcentration="{v}"'),
    (r'initialAmount="[^"]*"', 'initialAmount="{v}"'),
    (r'size="[^"]*"', 'size="{v}"'),
    (r'stoichiometry="[^"]*"', 'stoichiometry="{v}"'),
    (r'id="[^"]*"', 'id="{i}"'),
    (r'species="[^"]*"', 'species="{i}"'),
    (r'<cn[^>]*>[^<]*</cn>', "<cn>{v}</cn>"),
    (r"<ci>[^<]*</ci>", "<ci>{i}</ci>"),
    (r"<listOf\w+>", ""),
    (r"</listOf\w+>", ""),
]
_VALUES = ["NaN", "INF", "-INF", "1e308", "-1e308", "1e999", "abc", "", "0", "-0",
           "1e-320", "99999999999999999999999"]
_IDS = ["", "x", "S", "k", "c", "time", "eval", "__import__", "1bad", "a b", "S1", "S2",
        "compartment", "reaction1", "k1", "\u00e9"]


@pytest.mark.parametrize("n", COUNTS)
def test_mutated_elements(tmp_path, n):
    """Values (NaN, Inf, 1e308, text), ids (missing, duplicated, keywords) and list
    elements of real models replaced one at a time."""

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        text = _seed(data.draw(st.integers(0, len(SUITE) - 1))).read_text()
        for _ in range(data.draw(st.integers(1, 3))):
            pattern, repl = data.draw(st.sampled_from(_ELEMENT_MUTATIONS))
            hits = list(re.finditer(pattern, text))
            if not hits:
                continue
            m = hits[data.draw(st.integers(0, len(hits) - 1))]
            new = repl.format(v=data.draw(st.sampled_from(_VALUES)),
                              i=data.draw(st.sampled_from(_IDS)))
            text = text[:m.start()] + new + text[m.end():]
        path = _write(tmp_path, "element_model.xml", text.encode())
        reads_cleanly(lambda: load_sbml(path), "element_model.xml")

    check()


def _with_law(law: str, functions: str = "", rules: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
 <model id="m">
  {functions}
  <listOfCompartments><compartment id="c" size="1" constant="true"/></listOfCompartments>
  <listOfSpecies><species id="S" compartment="c" initialAmount="1"
   hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/></listOfSpecies>
  <listOfParameters><parameter id="k" value="1" constant="false"/>
   <parameter id="q" value="1" constant="false"/></listOfParameters>
  {rules}
  <listOfReactions><reaction id="r" reversible="false">
   <listOfReactants><speciesReference species="S" stoichiometry="1" constant="true"/>
   </listOfReactants>
   <kineticLaw><math {MATHML}>{law}</math></kineticLaw></reaction></listOfReactions>
 </model>
</sbml>"""


@pytest.mark.parametrize("depth", [50, 150, 2000, 20000])
def test_deep_nesting_is_refused_or_read(tmp_path, depth):
    """Deep MathML: up to the limit it loads, beyond it an SBMLError (no RecursionError;
    20000 levels used to crash libsbml's parser with a segmentation fault)."""
    law = "<ci>S</ci>"
    for _ in range(depth):
        law = f"<apply><plus/>{law}<cn>1</cn></apply>"
    path = _write(tmp_path, "deep.xml", _with_law(law).encode())
    out = reads_cleanly(lambda: load_sbml(path), "deep.xml")
    if depth <= 50:
        assert not isinstance(out, Exception)
    else:
        assert isinstance(out, SBMLError)
        assert "nested more than" in str(out)
        if depth < 1000:  # the MathML limit; beyond 1000 the XML limit, before libsbml
            assert "kinetic law of reaction 'r'" in str(out)


def test_chained_functions_nest_too_deep(tmp_path):
    """Function definitions that are each shallow but inline to absurd depth."""
    fds = []
    for i in range(60):
        body = "<ci>x</ci>"
        for _ in range(10):
            body = f"<apply><plus/>{body}<cn>1</cn></apply>"
        if i:
            body = f"<apply><ci>f{i - 1}</ci>{body}</apply>"
        fds.append(f'<functionDefinition id="f{i}"><math {MATHML}><lambda><bvar><ci>x</ci>'
                   f"</bvar>{body}</lambda></math></functionDefinition>")
    functions = f"<listOfFunctionDefinitions>{''.join(fds)}</listOfFunctionDefinitions>"
    path = _write(tmp_path, "chain.xml",
                  _with_law("<apply><ci>f59</ci><ci>S</ci></apply>", functions).encode())
    with pytest.raises(SBMLError, match=r"chain\.xml.*levels deep"):
        load_sbml(path)


def test_cycles_are_named(tmp_path):
    """Recursive functions and circular assignment rules: an SBMLError naming them."""
    rec = ('<listOfFunctionDefinitions><functionDefinition id="f"><math ' + MATHML +
           '><lambda><bvar><ci>x</ci></bvar><apply><ci>f</ci><ci>x</ci></apply></lambda>'
           "</math></functionDefinition></listOfFunctionDefinitions>")
    path = _write(tmp_path, "recursive.xml",
                  _with_law("<apply><ci>f</ci><ci>S</ci></apply>", rec).encode())
    with pytest.raises(SBMLError, match=r"recursive\.xml.*recursive"):
        load_sbml(path)
    rules = (f'<listOfRules><assignmentRule variable="k"><math {MATHML}><ci>q</ci></math>'
             f'</assignmentRule><assignmentRule variable="q"><math {MATHML}><ci>k</ci>'
             "</math></assignmentRule></listOfRules>")
    path = _write(tmp_path, "circular.xml", _with_law("<ci>k</ci>", rules=rules).encode())
    with pytest.raises(SBMLError, match=r"circular\.xml.*circular"):
        load_sbml(path)


def test_algebraic_rule_is_named(tmp_path):
    """Regression: an algebraic rule was refused as ``(element None)``; it is now
    "algebraic rule #1" with its formula, and the file."""
    rules = (f"<listOfRules><algebraicRule><math {MATHML}><apply><minus/><ci>k</ci>"
             "<cn>2</cn></apply></math></algebraicRule></listOfRules>")
    path = _write(tmp_path, "algebraic.xml", _with_law("<ci>S</ci>", rules=rules).encode())
    with pytest.raises(SBMLUnsupportedError) as info:
        load_sbml(path)
    assert info.value.element == "algebraic rule #1: 0 = k - 2"
    assert "algebraic.xml" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\x00" * 64, bytes(range(256)),
                                  b"<?xml version='1.0' encoding='UTF-16'?><sbml/>",
                                  b"<?xml version='1.0' encoding='x-unknown'?><sbml/>",
                                  b"<sbml>" * 1000])
def test_garbage_files(tmp_path, data):
    path = _write(tmp_path, "garbage.xml", data)
    with pytest.raises(SBMLError, match="garbage.xml"):
        load_sbml(path)


def test_strings_and_paths(tmp_path):
    """XML strings with a BOM load; NUL bytes, bytes and directories are SBMLErrors."""
    text = SUITE[0].read_text()
    load_sbml("\ufeff" + text)
    with pytest.raises(SBMLError, match="NUL"):
        load_sbml("model\x00.xml")
    with pytest.raises(SBMLError, match="bytes"):
        load_sbml(text.encode())
    with pytest.raises(SBMLError, match="directory"):
        load_sbml(str(tmp_path))


def test_shared_models(tmp_path):
    """Byte mutations of the SBML models in ../shared/data (skipped when absent)."""
    models = sorted(SHARED_DATA.rglob("*.xml"))[:20] if SHARED_DATA.is_dir() else []
    if not models:
        pytest.skip(f"no SBML models under {SHARED_DATA}")

    @fuzz_settings(8)
    @given(st.data())
    def check(data):
        seed = models[data.draw(st.integers(0, len(models) - 1))]
        path = _write(tmp_path, "shared_model.xml",
                      data.draw(byte_mutation(seed.read_bytes())))
        reads_cleanly(lambda: load_sbml(path), "shared_model.xml")

    check()
