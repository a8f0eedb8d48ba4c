"""Griffe extensions used by the API reference (see ``mkdocs.yml``).

``EquinoxModules``: give equinox modules the ``__init__`` that equinox generates.

``eqx.Module`` subclasses are dataclasses created by a metaclass, which static analysis
cannot see; without this extension the API reference would show ``MassAction()`` with no
parameters and warn that the ``Arguments:`` of the docstring are unknown. For every
concrete class (name not starting with ``Abstract``) that derives from ``equinox.Module``
and defines no ``__init__`` of its own, this builds one from the annotated fields, as
equinox does: fields in definition order, defaults taken from ``= value`` or
``eqx.field(default=...)``, ``eqx.AbstractVar`` fields left out. (Fields inherited from a
concrete parent are not collected: jaxcell's concrete classes are final.)

``SphinxRoles``: jaxcell's docstrings use Sphinx roles (``:class:`X```, ``:math:`...```,
``.. math::``), which mkdocstrings would print literally. This turns them into Markdown
at load time: cross-references to documented public objects, inline code otherwise, and
arithmatex maths. The source stays readable in a terminal and in ``help()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import griffe

_MODULE = {"equinox.Module", "equinox._module.Module"}
_FIELD = {"equinox.field", "equinox._module.field", "dataclasses.field"}
_ABSTRACT_VAR = {"equinox.AbstractVar", "equinox._module.AbstractVar"}


def _canonical(expr: Any) -> str:
    return getattr(expr, "canonical_path", "") or str(expr)


def _is_equinox_module(cls: griffe.Class, seen: frozenset[str] = frozenset()) -> bool:
    if cls.path in seen:
        return False
    for base in cls.bases:
        if _canonical(base) in _MODULE:
            return True
        try:
            parent = cls.modules_collection[_canonical(base)]
        except (KeyError, AttributeError):
            continue
        if isinstance(parent, griffe.Alias):
            try:
                parent = parent.final_target
            except griffe.AliasResolutionError:
                continue
        if isinstance(parent, griffe.Class) and _is_equinox_module(
            parent, seen | {cls.path}
        ):
            return True
    return False


def _fields(cls: griffe.Class) -> list[griffe.Parameter]:
    params = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "property" in member.labels or (
            "class-attribute" in member.labels and "instance-attribute" not in member.labels
        ):
            continue
        annotation = member.annotation
        if _canonical(annotation) in _ABSTRACT_VAR or _canonical(
            getattr(annotation, "left", None)
        ) in _ABSTRACT_VAR:
            continue
        default = member.value
        if isinstance(default, griffe.ExprCall) and _canonical(default.function) in _FIELD:
            kwargs = {
                a.name: a.value
                for a in default.arguments
                if isinstance(a, griffe.ExprKeyword)
            }
            if str(kwargs.get("init", "True")) == "False":
                continue
            default = kwargs.get("default")
        params.append(
            griffe.Parameter(
                member.name,
                annotation=annotation,
                kind=griffe.ParameterKind.positional_or_keyword,
                default=default,
                docstring=member.docstring,
            )
        )
    return params


def _add_init(cls: griffe.Class) -> None:
    if "__init__" in cls.members or cls.name.startswith("Abstract"):
        return
    if not _is_equinox_module(cls):
        return
    init = griffe.Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=griffe.Parameters(
            griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
            *_fields(cls),
        ),
        returns="None",
    )
    cls.set_member("__init__", init)


def _walk(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if isinstance(obj, griffe.Class):
        _add_init(obj)
    for member in obj.members.values():
        if not member.is_alias and (member.is_module or member.is_class):
            _walk(member, seen)  # pyright: ignore[reportArgumentType]


class EquinoxModules(griffe.Extension):
    """Synthesise ``__init__`` for equinox modules (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())


# --------------------------------------------------------------------------------------
# Sphinx-style roles in docstrings.

_ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`(~?)([^`]+)`(\\ )?")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def _xref(pkg: griffe.Module, name: str) -> str | None:
    """The identifier ``jaxcell.X...`` if ``name`` is a documented public object."""
    name = name.removeprefix(pkg.name + ".")
    head = name.split(".", 1)[0]
    if head.startswith("_") or head not in pkg.members:
        return None
    try:
        obj = pkg[name]
        if isinstance(obj, griffe.Alias):
            obj = obj.final_target
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if obj.docstring is None or not obj.docstring.value.strip():
        return None
    return f"{pkg.name}.{name}"


def _math_blocks(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, body = m.group(1), [m.group(2)] if m.group(2).strip() else []
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            if not lines[i].strip() and body:
                break
            if lines[i].strip():
                body.append(lines[i].strip())
            i += 1
        out += ["", f"{indent}$$", *(indent + b for b in body), f"{indent}$$", ""]
    return "\n".join(out)


def convert_roles(text: str, pkg: griffe.Module) -> str:
    """Turn Sphinx roles into Markdown that mkdocstrings renders.

    ``:class:`X``` becomes a cross-reference when ``jaxcell.X`` is documented, inline
    code otherwise; ``:math:`...``` and ``.. math::`` become arithmatex maths.
    """

    def role(m: re.Match) -> str:
        tilde, name = m.group(1), m.group(2)
        shown = name.rsplit(".", 1)[-1] if tilde else name
        target = _xref(pkg, name)
        return f"[`{shown}`][{target}]" if target else f"`{shown}`"

    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(role, text)
    return _math_blocks(text)


def _all_objects(obj: griffe.Object, seen: set[str]) -> Iterator[griffe.Object]:
    if obj.path in seen:
        return
    seen.add(obj.path)
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _all_objects(member, seen)  # pyright: ignore[reportArgumentType]


class SphinxRoles(griffe.Extension):
    """Render the Sphinx roles found in docstrings (see :func:`convert_roles`)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _all_objects(pkg, set()):
            if obj.docstring is not None:
                obj.docstring.value = convert_roles(obj.docstring.value, pkg)
