"""COMBINE archives (.omex): safe extraction and the manifest (libcombine).

Every entry is checked before anything is written: no absolute paths or drive letters,
no ``..`` components, no symbolic links, and at most ``max_bytes`` uncompressed in
all (a zip bomb is refused from the sizes the archive declares, and extraction stops
if an entry turns out larger than declared).
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib

import libcombine

from ._errors import SEDMLError

MAX_BYTES = 1 << 30
"""The default bound on an archive's total uncompressed size (1 GiB)."""

SEDML_FORMAT = "http://identifiers.org/combine.specifications/sed-ml"


def _check_name(archive: str, name: str) -> str:
    """The entry's path, checked (``SEDMLError`` naming archive and entry if unsafe)."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise SEDMLError(f"{archive}: unsafe archive entry {name!r}: absolute path.")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise SEDMLError(f"{archive}: unsafe archive entry {name!r}: '..' in its path.")
    return "/".join(parts)


def extract(archive: str, dest: str, max_bytes: int = MAX_BYTES) -> list[str]:
    """Extract a COMBINE archive into ``dest`` (an empty directory) safely; returns the
    extracted paths relative to ``dest``.

    Raises:
        SEDMLError: not a zip file, an unsafe entry (absolute path, ``..``, symbolic
            link), or more than ``max_bytes`` uncompressed.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as e:
        raise SEDMLError(f"{archive}: not a readable COMBINE archive (zip file): {e}") \
            from None
    with zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SEDMLError(f"{archive}: unsafe archive entry {info.filename!r}: a "
                                 "symbolic link.")
            total += info.file_size
            if total > max_bytes:
                raise SEDMLError(f"{archive}: the archive holds more than {max_bytes} "
                                 f"bytes uncompressed (at entry {info.filename!r}).")
        out = []
        written = 0
        root = os.path.realpath(dest)
        for info in infos:
            rel = _check_name(archive, info.filename)
            if not rel:
                continue
            target = os.path.realpath(os.path.join(root, rel))
            if os.path.commonpath([root, target]) != root:
                raise SEDMLError(f"{archive}: unsafe archive entry {info.filename!r}: it "
                                 "would be written outside the extraction folder.")
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > max_bytes:
                            raise SEDMLError(f"{archive}: the archive holds more than "
                                             f"{max_bytes} bytes uncompressed (at entry "
                                             f"{info.filename!r}).")
                        dst.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                    RuntimeError, ValueError) as e:
                # a corrupt or truncated entry, an unknown compression method, an
                # encrypted entry (RuntimeError), a bad CRC
                raise SEDMLError(f"{archive}: archive entry {info.filename!r} cannot be "
                                 f"read: {e}") from None
            out.append(rel)
    return out


def sedml_locations(archive: str, dest: str) -> list[str]:
    """The SED-ML files to run, as locations relative to the archive root: the master
    file if the manifest marks one that is SED-ML, else every SED-ML file it lists.

    Raises:
        SEDMLError: no manifest, or no SED-ML file in it, or a listed file is missing.
    """
    manifest = os.path.join(dest, "manifest.xml")
    if not os.path.isfile(manifest):
        raise SEDMLError(f"{archive}: no manifest.xml in the archive.")
    m = libcombine.readOMEXFromFile(manifest)
    if m is None or m.getNumContents() == 0:
        raise SEDMLError(f"{archive}: manifest.xml is unreadable or lists no content.")
    sedml = []
    master = []
    for c in m.getListOfContents():
        loc = c.getLocation()
        fmt = c.getFormat() or ""
        if not fmt.startswith(SEDML_FORMAT):
            continue
        rel = _check_name(archive, loc)
        if not os.path.isfile(os.path.join(dest, rel)):
            raise SEDMLError(f"{archive}: the manifest lists SED-ML file {loc!r}, which "
                             "is not in the archive.")
        sedml.append(rel)
        if c.isSetMaster() and c.getMaster():
            master.append(rel)
    if not sedml:
        raise SEDMLError(f"{archive}: the manifest lists no SED-ML file.")
    return master if master else sedml
