"""An untrusted SBML file cannot read local files, exhaust memory or run code.

* XML external entities (XXE): general, parameter and external-DTD entities that point
  at a local file are never expanded; the file is not even opened (a named pipe would
  block the reader, and the test watches for a reader);
* entity expansion bombs ("billion laughs", quadratic blow-up) are refused quickly and
  with bounded memory (run in a subprocess with a timeout);
* MathML names that are Python builtins or dunders are plain SBML ids: undefined ones
  are an ``SBMLError``, defined ones (a parameter called ``eval``, a function definition
  called ``exec``) are ordinary numbers and functions;
* ``jaxcell/io`` never calls ``eval``, ``exec``, ``compile`` or ``__import__``;
* malformed or non-SBML XML is an ``SBMLError`` that names the file and carries
  libsbml's message.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import jaxcell
import jaxcell.io as jio

libsbml = pytest.importorskip("libsbml")

SECRET = "TOP-SECRET-4f1c9e0b-do-not-leak"
IO_DIR = Path(jaxcell.__file__).resolve().parent / "io"
L3V2 = "http://www.sbml.org/sbml/level3/version2/core"
MATHML = "http://www.w3.org/1998/Math/MathML"


def sbml_body(doctype: str = "", name_attr: str = "", notes: str = "") -> str:
    """A valid SBML L3V2 model (S -> nothing at rate k S, S0 = 1, k = 1)."""
    return textwrap.dedent(f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        {doctype}
        <sbml xmlns="{L3V2}" level="3" version="2">
          <model id="m"{name_attr}>
            {notes}
            <listOfCompartments>
              <compartment id="c" size="1" constant="true" spatialDimensions="3"/>
            </listOfCompartments>
            <listOfSpecies>
              <species id="S" compartment="c" initialConcentration="1"
                       hasOnlySubstanceUnits="false" boundaryCondition="false"
                       constant="false"/>
            </listOfSpecies>
            <listOfParameters>
              <parameter id="k" value="1" constant="true"/>
            </listOfParameters>
            <listOfReactions>
              <reaction id="decay" reversible="false">
                <listOfReactants>
                  <speciesReference species="S" stoichiometry="1" constant="true"/>
                </listOfReactants>
                <kineticLaw>
                  <math xmlns="{MATHML}">
                    <apply><times/><ci> k </ci><ci> S </ci></apply>
                  </math>
                </kineticLaw>
              </reaction>
            </listOfReactions>
          </model>
        </sbml>
        """).lstrip()


def xxe_documents(target: Path) -> dict[str, str]:
    """SBML documents that try to pull ``target`` in through entities."""
    uri = target.resolve().as_uri()
    notes = ('<notes><body xmlns="http://www.w3.org/1999/xhtml"><p>&xxe;</p></body>'
             '</notes>')
    return {
        "general entity in notes": sbml_body(
            f'<!DOCTYPE sbml [ <!ENTITY xxe SYSTEM "{uri}"> ]>', notes=notes),
        "general entity in an attribute": sbml_body(
            f'<!DOCTYPE sbml [ <!ENTITY xxe SYSTEM "{uri}"> ]>', name_attr=' name="&xxe;"'),
        "parameter entity": sbml_body(
            f'<!DOCTYPE sbml [ <!ENTITY % xxe SYSTEM "{uri}"> %xxe; ]>'),
        "external DTD": sbml_body(f'<!DOCTYPE sbml SYSTEM "{uri}">'),
    }


def all_strings(obj, seen=None, depth=0) -> list[str]:
    """Every string reachable from ``obj`` through dataclass fields (equinox modules),
    ``__dict__``, mappings and sequences (array leaves are skipped)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 40:
        return []
    seen.add(id(obj))
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, bytes):
        return [obj.decode("latin-1")]
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += all_strings(k, seen, depth + 1) + all_strings(v, seen, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            out += all_strings(v, seen, depth + 1)
    elif dataclasses.is_dataclass(obj) or type(obj).__module__.startswith("jaxcell"):
        names = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) \
            else []
        names += list(getattr(obj, "__dict__", {}))
        for n in dict.fromkeys(names):
            try:
                v = getattr(obj, n)
            except Exception:  # noqa: BLE001 - abstract or lazily computed attributes
                continue
            out += all_strings(v, seen, depth + 1)
    return out


# -- (a) XML external entities ----------------------------------------------------------


@pytest.mark.parametrize("as_string", [False, True], ids=["path", "string"])
def test_xxe_does_not_leak_a_local_file(tmp_path, as_string):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    for what, text in xxe_documents(secret).items():
        path = tmp_path / "xxe.xml"
        path.write_text(text)
        try:
            model = jio.load_sbml(text if as_string else path)
        except jio.SBMLError as e:  # rejected: fine, but the message must not leak it
            assert SECRET not in str(e), what
            continue
        found = [s for s in all_strings(model) if SECRET in s]
        found += [s for s in (repr(model), str(model)) if SECRET in s]
        found += [k for k in model.parameters() if SECRET in k]
        found += [k for k in (*model.species_ids, *model.state_ids) if SECRET in k]
        assert not found, f"{what}: the secret reached the model: {found[:3]}"


_XXE_CHILD = """
import sys
import jaxcell.io as jio
for p in sys.argv[1:]:
    try:
        jio.load_sbml(p)
    except jio.SBMLError:
        pass
print("done", flush=True)
"""


def readers_of(fifo: Path, argv: list[str], timeout: float = 240) -> tuple[int, str, str]:
    """Run ``argv``; count how often it opens ``fifo`` for reading while it runs.

    Opening a pipe for reading blocks until a writer comes, and a non-blocking open for
    writing succeeds only while a reader is there: poll for a reader, feed it the secret
    and close, for as long as the child runs. Returns (polls that found a reader, stdout,
    stderr)."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    opened = 0
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            time.sleep(0.005)
            continue
        try:
            if not opened:  # feed the secret once; later polls only see the reader
                os.write(fd, (SECRET + "\n").encode())
        finally:
            os.close(fd)
        opened += 1
    if child.poll() is None:
        child.kill()
    out, err = child.communicate()
    assert child.returncode == 0, err[-2000:]
    return opened, out, err


def test_xxe_never_opens_the_entity_target(tmp_path):
    """The entities point at a named pipe; the SBML reader never opens it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    files = []
    for i, text in enumerate(xxe_documents(fifo).values()):
        p = tmp_path / f"xxe{i}.xml"
        p.write_text(text)
        files.append(str(p))
    # the detector works: a child that does read the pipe is seen
    seen, out, _ = readers_of(fifo, [sys.executable, "-c",
                                     f"print(open({str(fifo)!r}).read())"], timeout=30)
    assert seen >= 1 and SECRET in out
    opened, out, err = readers_of(fifo, [sys.executable, "-c", _XXE_CHILD, *files])
    assert opened == 0, "the SBML reader opened the file an external entity names"
    assert "done" in out, err[-2000:]


# -- (b) entity expansion bombs -------------------------------------------------------------


def billion_laughs() -> str:
    ents = ['<!ENTITY lol0 "lol">']
    ents += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return sbml_body("<!DOCTYPE sbml [ " + " ".join(ents) + " ]>", name_attr=' name="&lol9;"',
                     notes='<notes><body xmlns="http://www.w3.org/1999/xhtml"><p>&lol9;'
                           '</p></body></notes>')


def quadratic_blowup() -> str:
    # 100 kB entity used 20,000 times: 2 GB when expanded
    return sbml_body(f'<!DOCTYPE sbml [ <!ENTITY a "{"A" * 100_000}"> ]>',
                     name_attr=f' name="{"&a;" * 20_000}"')


_BOMB_CHILD = """
import resource, sys, time
import jaxcell.io as jio
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    m = jio.load_sbml(sys.argv[1])
    outcome = "loaded; repr length %d" % len(repr(m))
except jio.SBMLError as e:
    outcome = "SBMLError: " + str(e)[:200].replace(chr(10), " ")
dt = time.perf_counter() - t
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT", dt, rss1 - rss0, outcome, flush=True)
"""


@pytest.mark.parametrize("bomb", [billion_laughs, quadratic_blowup])
def test_entity_expansion_bomb_is_refused_quickly(tmp_path, bomb):
    path = tmp_path / "bomb.xml"
    path.write_text(bomb())
    assert path.stat().st_size < 3_000_000
    try:
        res = subprocess.run([sys.executable, "-c", _BOMB_CHILD, str(path)],
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{bomb.__name__}: load_sbml still running after 120 s")
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert res.returncode == 0 and line, res.stderr[-2000:]
    _, seconds, extra_kib, outcome = line.split(" ", 3)
    print(f"{bomb.__name__}: {float(seconds):.3f} s, +{int(extra_kib) / 1024:.0f} MiB, "
          f"{outcome}")
    assert float(seconds) < 10.0
    assert int(extra_kib) < 200 * 1024  # peak RSS grew by less than 200 MiB
    if outcome.startswith("loaded"):  # then the entities were not expanded
        assert int(outcome.rsplit(" ", 1)[1]) < 1_000_000


# -- (c) MathML names that are Python builtins ---------------------------------------------


def builtin_named_model(kinetic_math: str, extra_functions: str = "",
                        extra_parameters: str = "") -> str:
    return textwrap.dedent(f"""\
        <?xml version="1.0" encoding="UTF-8"?>
        <sbml xmlns="{L3V2}" level="3" version="2">
          <model id="builtins_everywhere">
            <listOfFunctionDefinitions>{extra_functions}</listOfFunctionDefinitions>
            <listOfCompartments>
              <compartment id="__builtins__" size="1" constant="true" spatialDimensions="3"/>
            </listOfCompartments>
            <listOfSpecies>
              <species id="sys" compartment="__builtins__" initialConcentration="1.5"
                       hasOnlySubstanceUnits="false" boundaryCondition="false"
                       constant="false"/>
            </listOfSpecies>
            <listOfParameters>
              <parameter id="eval" value="2" constant="true"/>
              <parameter id="os" value="1" constant="true"/>
              {extra_parameters}
            </listOfParameters>
            <listOfReactions>
              <reaction id="__class__" reversible="false">
                <listOfReactants>
                  <speciesReference species="sys" stoichiometry="1" constant="true"/>
                </listOfReactants>
                <kineticLaw><math xmlns="{MATHML}">{kinetic_math}</math></kineticLaw>
              </reaction>
            </listOfReactions>
          </model>
        </sbml>
        """).lstrip()


BUILTIN_FUNCTIONS = f"""
  <functionDefinition id="exec">
    <math xmlns="{MATHML}"><lambda><bvar><ci>__class__</ci></bvar><ci>__class__</ci></lambda></math>
  </functionDefinition>
  <functionDefinition id="__import__">
    <math xmlns="{MATHML}"><lambda><bvar><ci>x</ci></bvar><bvar><ci>__dict__</ci></bvar>
      <apply><times/><ci>x</ci><ci>__dict__</ci></apply></lambda></math>
  </functionDefinition>
"""


def test_builtin_names_are_ordinary_sbml_ids():
    """d sys/dt = -__builtins__ * __import__(eval, sys) * exec(os) = -2 sys."""
    law = ("<apply><times/><ci>__builtins__</ci>"
           "<apply><ci>__import__</ci><ci>eval</ci><ci>sys</ci></apply>"
           "<apply><ci>exec</ci><ci>os</ci></apply></apply>")
    before = {n: id(getattr(builtins, n)) for n in ("eval", "exec", "compile", "__import__",
                                                    "open")}
    model = jio.load_sbml(builtin_named_model(law, BUILTIN_FUNCTIONS))
    params = model.parameters()
    assert float(params["eval"]) == 2.0 and float(params["os"]) == 1.0
    ts = np.linspace(0.0, 2.0, 11)
    sol = jio.simulate_sbml(model, ts, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sol.value("sys"), 1.5 * np.exp(-2.0 * ts), rtol=1e-7)
    # as a number, `eval` is a parameter like any other
    sol3 = jio.simulate_sbml(model.replace_parameters({"eval": 3.0}), ts, rtol=1e-10,
                             atol=1e-12)
    np.testing.assert_allclose(sol3.value("sys"), 1.5 * np.exp(-3.0 * ts), rtol=1e-7)
    after = {n: id(getattr(builtins, n)) for n in before}
    assert after == before  # nothing rebound in Python's builtins


UNDEFINED = {
    "__import__ as a value": "<apply><times/><ci>__import__</ci><ci>sys</ci></apply>",
    "eval as a function": "<apply><times/><apply><ci>eval</ci><cn>1</cn></apply><ci>sys</ci>"
                          "</apply>",
    "open as a value": "<apply><times/><ci>open</ci><ci>sys</ci></apply>",
    "__globals__ as a value": "<apply><times/><ci>__globals__</ci><ci>sys</ci></apply>",
    "exec as a function": "<apply><times/><apply><ci>exec</ci><ci>os</ci></apply><ci>sys</ci>"
                          "</apply>",
}


@pytest.mark.parametrize("what", sorted(UNDEFINED))
def test_undefined_builtin_names_are_sbml_errors(what):
    """Names that exist in Python but not in the model are undefined SBML symbols.
    (``eval`` is a parameter, so calling it as a function is an error too.)"""
    name = what.split()[0]
    with pytest.raises(jio.SBMLError) as info:
        jio.load_sbml(builtin_named_model(UNDEFINED[what]))
    assert name in str(info.value), str(info.value)


# -- (d) no eval/exec/compile/__import__ in jaxcell.io -----------------------------------

FORBIDDEN = {"eval", "exec", "compile", "__import__", "import_module"}


def test_io_sources_never_eval_or_exec():
    sources = sorted(IO_DIR.rglob("*.py"))
    assert sources, f"no sources found in {IO_DIR}"
    problems = []
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(IO_DIR.parent)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Name) and node.id in FORBIDDEN:
                problems.append(f"{where}: name {node.id}")  # a call, or an alias to one
            elif isinstance(node, ast.Attribute):
                owner = node.value.id if isinstance(node.value, ast.Name) else None
                if node.attr in ("__import__", "import_module"):
                    problems.append(f"{where}: attribute {node.attr}")
                elif owner in ("builtins", "__builtins__") and node.attr in FORBIDDEN:
                    problems.append(f"{where}: {owner}.{node.attr}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "getattr" and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)
                  and node.args[1].value in FORBIDDEN):
                problems.append(f"{where}: getattr(..., {node.args[1].value!r})")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom):
                    mods.append(node.module or "")
                bad = [m for m in mods if m.split(".")[0] in ("builtins", "importlib", "code",
                                                             "codeop", "pickle", "marshal")]
                if bad:
                    problems.append(f"{where}: imports {bad}")
    assert not problems, "\n".join(problems)


def test_the_ast_check_would_catch_eval(tmp_path):
    """The check above is not vacuous: the same walk flags these snippets."""
    for snippet in ("eval('1')", "f = exec", "builtins.compile('1', 's', 'eval')",
                    "x.__import__('os')"):
        tree = ast.parse(snippet)
        hits = [n for n in ast.walk(tree)
                if (isinstance(n, ast.Name) and n.id in FORBIDDEN)
                or (isinstance(n, ast.Attribute)
                    and (n.attr == "__import__" or n.attr in FORBIDDEN
                         and isinstance(n.value, ast.Name) and n.value.id == "builtins"))]
        assert hits, snippet


# -- (e) malformed and non-SBML XML ---------------------------------------------------------


def libsbml_first_error(path: Path) -> str:
    doc = libsbml.readSBMLFromFile(str(path))
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert errors
    return errors[0].getMessage().strip().split(".")[0]  # the first sentence


def test_malformed_xml_is_an_sbml_error_naming_file_and_libsbml_message(tmp_path):
    path = tmp_path / "broken_model.xml"
    good = sbml_body()
    path.write_text(good.replace('constant="true"/>\n', 'constant="true">\n', 1))
    expected = libsbml_first_error(path)  # e.g. "Element tag mismatch or missing tag"
    with pytest.raises(jio.SBMLError) as info:
        jio.load_sbml(path)
    msg = str(info.value)
    assert str(path) in msg or path.name in msg, msg
    assert expected in msg, msg
    assert isinstance(info.value, jaxcell.ModelError)


def test_truncated_file_is_an_sbml_error(tmp_path):
    path = tmp_path / "truncated.xml"
    path.write_text(sbml_body()[:400])
    with pytest.raises(jio.SBMLError) as info:
        jio.load_sbml(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize("text", [
    '<?xml version="1.0"?>\n<html><body><p>not a model</p></body></html>\n',
    f'<?xml version="1.0"?>\n<sbml xmlns="{L3V2}" level="3" version="2"/>\n',  # no model
    '<?xml version="1.0"?>\n<root xmlns="urn:example"><item/></root>\n',
], ids=["html", "sbml-without-model", "other-namespace"])
def test_non_sbml_xml_is_an_sbml_error(tmp_path, text):
    path = tmp_path / "not_sbml.xml"
    path.write_text(text)
    with pytest.raises(jio.SBMLError):
        jio.load_sbml(path)
    with pytest.raises(jio.SBMLError):
        jio.load_sbml(text)

