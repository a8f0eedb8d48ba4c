"""Shared defences of the file readers (SBML, PEtab, PEtab SciML, checkpoints) against
hostile or broken input: the limits they enforce, a YAML loader without aliases, the
rule that files named by a problem stay inside its folder, and one place that turns an
unexpected exception of a parser into the reader's own error, naming the file.

The limits are documented in ``docs/security.md``; change them there too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from ._errors import JaxcellError

#: The largest text file (YAML, TSV) a reader opens, in bytes.
MAX_TEXT_BYTES = 256 * 2**20
#: The most elements of one array read from a file or declared by a network layer
#: (2**28 float64 values are 2 GiB).
MAX_ARRAY_ELEMENTS = 2**28
#: The deepest nesting of MathML (and of YAML) a reader accepts.
MAX_NESTING = 100


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors/aliases (no "billion laughs" structures; no
    PEtab or network file needs them) and with a nesting limit."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not accepted",
                event.start_mark)
        depth = getattr(self, "_depth", 0) + 1
        if depth > MAX_NESTING:
            raise yaml.composer.ComposerError(
                None, None, f"YAML nested more than {MAX_NESTING} levels deep",
                self.peek_event().start_mark)
        self._depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth - 1


def check_size(path: Path, error: type[JaxcellError], what: str,
               limit: int = MAX_TEXT_BYTES) -> None:
    """Refuse a file larger than ``limit`` bytes (or one that is not a regular file)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}.") from None
    if not os.path.isfile(path):
        raise error(f"{path}: the {what} is not a regular file.")
    if st.st_size > limit:
        raise error(f"{path}: the {what} has {st.st_size} bytes; at most {limit} are "
                    "accepted.")


def load_yaml(path: str | os.PathLike, error: type[JaxcellError], what: str):
    """Parse a YAML file safely: size limit, UTF-8 (a BOM is allowed), no aliases, no
    tags other than plain data, bounded nesting. Errors are ``error`` naming ``path``."""
    path = Path(path)
    check_size(path, error, what)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read the {what}: {e.strerror or e}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path}: the {what} is not UTF-8 text (byte {e.start}).") from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        raise error(f"{path}: the {what} is not valid YAML: {e}") from None
    except RecursionError:
        raise error(f"{path}: the {what} is nested too deeply.") from None


def inside(yaml_path: Path, name, error: type[JaxcellError], what: str) -> Path:
    """The file ``name`` given in ``yaml_path``, which must resolve (symbolic links
    followed) inside the YAML file's folder.

    Names are relative to that folder. Absolute names (even of files inside the
    folder: a problem folder must stay relocatable, and the petab library joins names to
    the folder), URLs, ``..`` that leaves the folder, and symbolic links that lead out
    of it are refused with ``error`` naming the YAML file and the entry.
    """
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise error(f"{yaml_path}: the {what} entry {name!r} is not a file name.")
    text = os.fspath(name)
    if "\x00" in text or "://" in text:
        raise error(f"{yaml_path}: the {what} entry {text!r} is not a local file name "
                    "(URLs are not read).")
    if os.path.isabs(text) or text.startswith("~"):
        raise error(f"{yaml_path}: the {what} {text!r} is an absolute path; name the "
                    "files of a problem relative to its YAML file's folder (so that the "
                    "folder can be moved).")
    base = yaml_path.parent.resolve()
    target = (yaml_path.parent / text).resolve()
    if not target.is_relative_to(base):
        raise error(f"{yaml_path}: the {what} {text!r} resolves to {str(target)!r}, "
                    f"outside the problem folder {str(base)!r}; files of a problem must "
                    "be inside its folder.")
    return yaml_path.parent / text


_EXPECTED = (ValueError, TypeError, KeyError, IndexError, AttributeError, LookupError,
             ArithmeticError, UnicodeError, OSError, RecursionError, MemoryError,
             AssertionError, RuntimeError, yaml.YAMLError)


@contextlib.contextmanager
def reraise_as(error: type[JaxcellError], label: str, what: str) -> Iterator[None]:
    """Turn an unexpected exception of a parser (pandas, h5py, petab, libsbml, ...)
    into ``error`` naming ``label``; jaxcell's own errors pass through, with ``label``
    put in front of their message when it does not name that file yet."""
    try:
        yield
    except JaxcellError as e:
        name = os.path.basename(label.rstrip("/")) or label
        if name not in str(e) and e.args and isinstance(e.args[0], str):
            e.args = (f"{label}: {e.args[0]}", *e.args[1:])  # say which problem
        raise
    except RecursionError:
        raise error(f"{label}: the {what} is nested too deeply (or defined "
                    "recursively).") from None
    except MemoryError:
        raise error(f"{label}: the {what} is too large to read.") from None
    except _EXPECTED as e:
        raise error(f"{label}: cannot read the {what} ({type(e).__name__}: "
                    f"{_short(e)}).") from e


def _short(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip() or repr(e)
    return text if len(text) <= limit else text[:limit] + " ..."
