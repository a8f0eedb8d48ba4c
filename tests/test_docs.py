"""The documentation: docstrings, API-reference coverage, a strict build, and examples.

- Every public name of the public modules has a docstring, and so does every public
  method and property of the public classes.
- Every public name appears in a ``::: identifier`` directive of ``docs/api/*.md``, so
  a new public name cannot ship undocumented; every directive names a real object.
- ``mkdocs build --strict`` succeeds (broken links, unknown docstring parameters and
  unresolved cross-references are errors).
- The ``python`` code blocks of the narrative pages run, in order, in one namespace per
  page; when a ``text`` block follows a ``python`` block, it is the exact output that the
  block prints. (These are our own documentation pages, so ``exec`` is fine here.)
  Every page that has ``python`` blocks must be in ``EXECUTED_PAGES``.
- ``docs/models.md`` describes every built-in model, and the file map in
  ``docs/architecture.md`` lists every module of ``jaxcell/``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PUBLIC_MODULES = (
    "jaxcell",
    "jaxcell.stochastic",
    "jaxcell.models",
    "jaxcell.neural",
    "jaxcell.analysis",
    "jaxcell.molecular",
    "jaxcell.solvers",
    "jaxcell.io",
    "jaxcell.sbml",
    "jaxcell.sedml",
    "jaxcell.petab",
    "jaxcell.cellular",
    "jaxcell.tissue",
    "jaxcell.inference",
    "jaxcell.discovery",
    "jaxcell.velocity",
)
# Narrative pages whose ``python`` blocks are executed. Pages that compile several
# solves (about 10 s or more) are slow tests.
EXECUTED_PAGES = (
    "concepts/stochastic.md",
    pytest.param("concepts/master-equation.md", marks=pytest.mark.slow),
    "index.md",
    "getting-started.md",
    "scale-out.md",
    "concepts/state-and-processes.md",
    pytest.param("concepts/simulate-and-solvers.md", marks=pytest.mark.slow),
    pytest.param("concepts/events.md", marks=pytest.mark.slow),
    "concepts/reaction-networks.md",
    "concepts/sbml.md",
    "concepts/cells-and-tissues.md",
    "concepts/checkpoints.md",
    "concepts/fitting.md",
    pytest.param("concepts/petab-sciml.md", marks=pytest.mark.slow),
    pytest.param("concepts/training.md", marks=pytest.mark.slow),
    pytest.param("concepts/french-flag.md", marks=pytest.mark.slow),
    pytest.param("concepts/bayesian.md", marks=pytest.mark.slow),
    pytest.param("concepts/ensembles.md", marks=pytest.mark.slow),
    pytest.param("concepts/hybrid-neural.md", marks=pytest.mark.slow),
    pytest.param("concepts/sensitivity.md", marks=pytest.mark.slow),
    pytest.param("concepts/discovery.md", marks=pytest.mark.slow),
    pytest.param("concepts/steady-states.md", marks=pytest.mark.slow),
    pytest.param("concepts/velocity.md", marks=pytest.mark.slow),
)


def _public_names(module_name: str) -> list[tuple[str, object]]:
    """``(qualified name, object)`` for the public, non-module names of a module."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in dir(module) if n[0] != "_"]
    out = []
    for name in names:
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType) or type(obj).__module__ == "__future__":
            continue  # subpackages are documented through their own names
        out.append((f"{module_name}.{name}", obj))
    return out


PUBLIC = [item for m in PUBLIC_MODULES for item in _public_names(m)]


def _own_docstring(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    # Dataclasses (and so equinox modules) without a docstring get "Name(fields...)".
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return doc.strip()


@pytest.mark.parametrize("name, obj", PUBLIC, ids=[n for n, _ in PUBLIC])
def test_public_name_has_docstring(name, obj):
    assert _own_docstring(obj), f"{name} has no docstring."


def _public_members() -> list[tuple[str, object]]:
    out, seen = [], set()
    for name, cls in PUBLIC:
        if not inspect.isclass(cls) or cls in seen:
            continue
        seen.add(cls)
        for attr, value in vars(cls).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (property, classmethod, staticmethod)) or (
                inspect.isfunction(value)
            ):
                out.append((f"{name}.{attr}", getattr(cls, attr)))
    return out


PUBLIC_MEMBERS = _public_members()


@pytest.mark.parametrize("name, obj", PUBLIC_MEMBERS, ids=[n for n, _ in PUBLIC_MEMBERS])
def test_public_member_has_docstring(name, obj):
    # inspect.getdoc inherits from the base class, so implementations of documented
    # abstract methods pass.
    assert (inspect.getdoc(obj) or "").strip(), f"{name} has no docstring."


def _resolve(identifier: str) -> object:
    parts = identifier.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(identifier)


def _api_directives() -> list[tuple[str, str]]:
    out = []
    for page in sorted((DOCS / "api").glob("*.md")):
        for ident in re.findall(r"^:::\s+([\w.]+)", page.read_text(), flags=re.M):
            out.append((page.name, ident))
    return out


def test_api_directives_resolve():
    directives = _api_directives()
    assert directives, "docs/api/*.md has no '::: identifier' directives."
    bad = []
    for page, ident in directives:
        try:
            _resolve(ident)
        except (ImportError, AttributeError) as e:
            bad.append(f"{page}: ::: {ident} ({type(e).__name__}: {e})")
    assert not bad, "API directives that name nothing:\n" + "\n".join(bad)


def test_every_public_name_is_in_the_api_reference():
    documented = set()
    for _, ident in _api_directives():
        with contextlib.suppress(ImportError, AttributeError):
            documented.add(id(_resolve(ident)))
    missing = [name for name, obj in PUBLIC if id(obj) not in documented]
    assert not missing, (
        "Public names missing from docs/api/*.md (add a '::: jaxcell.Name' line to the "
        "right page):\n" + "\n".join(missing)
    )


def test_reference_models_page_covers_every_model():
    text = (DOCS / "models.md").read_text()
    missing = [name for name, _ in _public_names("jaxcell.models")
               if f"`{name.split('.')[-1]}" not in text]
    assert not missing, f"docs/models.md does not describe {missing}."


def test_architecture_file_map_lists_every_module():
    text = (DOCS / "architecture.md").read_text()
    modules = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "jaxcell").rglob("*.py")
    )
    missing = [m for m in modules if f"`{m}`" not in text]
    assert not missing, f"docs/architecture.md's file map lacks {missing}."


def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    )
    assert (tmp_path / "site" / "index.html").exists()


_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", flags=re.M | re.S)


def _blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """``(label, code, expected output or None)`` for each python block of a page."""
    text = page.read_text()
    fences = list(_FENCE.finditer(text))
    out = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        expected = None
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        between = text[m.end():nxt.start()] if nxt is not None else "x"
        if nxt is not None and nxt.group(1) == "text" and not between.strip():
            expected = nxt.group(2)
        line = text.count("\n", 0, m.start()) + 1
        out.append((f"{page.relative_to(DOCS)}:{line}", m.group(2), expected))
    return out


def _normalise(s: str) -> str:
    return "\n".join(line.rstrip() for line in s.strip().splitlines())


def _page_name(page) -> str:
    return page if isinstance(page, str) else page.values[0]


def test_every_page_with_python_blocks_is_executed():
    executed = {_page_name(p) for p in EXECUTED_PAGES}
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    untested = [p for p in pages if "```python" in (DOCS / p).read_text()
                and p not in executed]
    assert not untested, (
        f"{untested} have python blocks that no test runs; add them to EXECUTED_PAGES "
        f"(or use a ```text block for code that is not meant to run)."
    )


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_doc_page_examples_run(page, monkeypatch):
    blocks = _blocks(DOCS / page)
    assert blocks, f"docs/{page} has no python blocks."
    # A real (temporary) module as the namespace, so that classes defined in the docs
    # (equinox modules are dataclasses) can find their module in sys.modules.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for label, code, expected in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, label, "exec"), module.__dict__)  # noqa: S102 - our docs
        if expected is not None:
            assert _normalise(buf.getvalue()) == _normalise(expected), (
                f"{label}: the block printed\n{buf.getvalue()}\nbut the page shows\n"
                f"{expected}"
            )
