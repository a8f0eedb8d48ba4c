"""Shared pieces of the fuzz tests (``tests/test_fuzz_*.py``): hypothesis settings,
mutations of real files, and the property every reader must keep.

The property: reading a mutated file either succeeds or raises a
:class:`jaxcell.JaxcellError` subclass whose message names the mutated file; never
another exception type, never a hang (each read is timed).

The default run uses few examples, derandomized (reproducible in CI, no example
database); ``-m slow`` runs the same tests with many more examples.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from jaxcell import JaxcellError

DATA = Path(__file__).parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: examples per fuzz test: the default run, and ``-m slow``
FAST, SLOW = 12, 300
#: the longest a single read may take (a hang or an exponential blow-up fails)
READ_SECONDS = 20.0

COUNTS = [pytest.param(FAST, id="fast"),
          pytest.param(SLOW, id="slow", marks=pytest.mark.slow)]


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=n == FAST, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def reads_cleanly(read, name: str):
    """Call ``read()``: it returns a value, or raises a JaxcellError naming ``name``."""
    start = time.monotonic()
    try:
        out = read()
    except JaxcellError as e:
        out = e
        assert name in str(e), f"the error does not name {name!r}: {e}"
    elapsed = time.monotonic() - start
    assert elapsed < READ_SECONDS, f"reading took {elapsed:.1f} s"
    return out


# -- byte mutations ---------------------------------------------------------------------
HOSTILE = [b"", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\x80\x81", b"<", b">", b"&",
           b"]]>", b"\t", b"\n", b"\r\n", b'"', b"'", b"nan", b"inf", b"-1e308", b"1e999",
           b"9" * 40, b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"&a;", b"*a", b"&a x", b"{",
           b"[[[[[[[[", b"\\u0000"]


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, replaced or inserted, or prefixed by a BOM."""
    kind = draw(st.sampled_from(["truncate", "flip", "replace", "insert", "bom",
                                 "encoding"]))
    n = len(data)
    if kind == "truncate":
        return data[:draw(st.integers(0, max(n - 1, 0)))]
    if kind == "bom":
        return draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + data
    if kind == "encoding":
        return data.replace(b"UTF-8", draw(st.sampled_from([b"UTF-16", b"EBCDIC-XX",
                                                            b"latin-1", b"\x00"])), 1)
    i = draw(st.integers(0, max(n - 1, 0)))
    if kind == "flip":
        if not n:
            return data
        bit = 1 << draw(st.integers(0, 7))
        return data[:i] + bytes([data[i] ^ bit]) + data[i + 1:]
    chunk = draw(st.one_of(st.sampled_from(HOSTILE), st.binary(min_size=1, max_size=16)))
    if kind == "replace":
        j = draw(st.integers(i, min(n, i + 32)))
        return data[:i] + chunk + data[j:]
    return data[:i] + chunk + data[i:]


# -- table mutations --------------------------------------------------------------------
CELLS = ["", "n/a?", "nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e999", "0", "-1",
         "abc", "1;2;3", "\u00e9\u4e2d", "\x00", " ", "true", "None", "[1, 2]",
         "a" * 300, "log10", "../../etc/passwd", "9" * 30, "1,5", "9^9^9^9", "2^100000",
         "(" * 2000 + "x" + ")" * 2000, "x" + "+x" * 3000]


@st.composite
def table_mutation(draw, text: str) -> str:
    """A TSV table with a cell replaced, a row or column deleted or duplicated, the
    header damaged, or two ids made equal."""
    rows = [line.split("\t") for line in text.splitlines()]
    if not rows:
        return text
    kind = draw(st.sampled_from(["cell", "cell", "cell", "del_row", "dup_row", "del_col",
                                 "dup_col", "header", "dup_id", "ragged"]))
    width = len(rows[0])
    r = draw(st.integers(0, len(rows) - 1))
    c = draw(st.integers(0, max(width - 1, 0)))
    if kind == "cell":
        r = draw(st.integers(1, len(rows) - 1)) if len(rows) > 1 else 0
        if c < len(rows[r]):
            rows[r][c] = draw(st.one_of(st.sampled_from(CELLS),
                                        st.text(max_size=12).map(_tsv_safe),
                                        st.floats().map(repr)))
    elif kind == "del_row" and len(rows) > 1:
        del rows[draw(st.integers(1, len(rows) - 1))]
    elif kind == "dup_row":
        rows.insert(r, list(rows[r]))
    elif kind == "del_col":
        rows = [row[:c] + row[c + 1:] for row in rows]
    elif kind == "dup_col":
        rows = [row[:c + 1] + row[c:c + 1] + row[c + 1:] for row in rows]
    elif kind == "header":
        rows[0][c] = draw(st.sampled_from(["", "x", rows[0][c].upper(),
                                           rows[0][c] + " ", rows[0][0]]))
    elif kind == "dup_id" and len(rows) > 2:
        rows[draw(st.integers(1, len(rows) - 1))][0] = rows[1][0]
    elif kind == "ragged":
        rows[r] = rows[r] + ["extra"] * draw(st.integers(1, 3))
    return "\n".join("\t".join(row) for row in rows) + "\n"


def _tsv_safe(s: str) -> str:
    return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")
