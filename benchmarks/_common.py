"""Shared benchmark helpers: timing, machine/version info, result rows, tables, JSON.

Import this module *after* any ``XLA_FLAGS`` have been set (it imports jax).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax

# -- timing --------------------------------------------------------------------------------


def block(x: Any) -> Any:
    """Wait for all JAX arrays in ``x`` (no-op for anything else)."""
    return jax.block_until_ready(x)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call of ``fn()`` (JAX results are waited for)."""
    t = time.perf_counter()
    out = block(fn())
    return time.perf_counter() - t, out


def repeat(fn: Callable[[], Any], repeats: int, min_total: float = 0.0,
           max_repeats: int | None = None, max_total: float = math.inf,
           first: list[float] | None = None) -> list[float]:
    """Wall times of calls of ``fn()``.

    At least ``repeats`` calls (more, up to ``max_repeats``, until they add up to
    ``min_total`` s), but stop early, after at least one call, once they add up to
    ``max_total`` s. ``first`` are times already measured (counted as calls).
    """
    times: list[float] = list(first or [])
    limit = max_repeats if max_repeats is not None else repeats
    while len(times) < repeats or (sum(times) < min_total and len(times) < limit):
        if times and sum(times) >= max_total:
            break
        times.append(timed(fn)[0])
    return times


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


# -- machine and versions ------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        mem_gb = round(mem_kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        mem_gb = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_x64": bool(jax.config.jax_enable_x64),
        "jax_compilation_cache_dir": getattr(jax.config, "jax_compilation_cache_dir", None),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "loadavg_start": _loadavg(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _version(module: str, attr: str = "__version__") -> str | None:
    try:
        m = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - optional packages may fail to import in any way
        return None
    v = getattr(m, attr, None)
    return v() if callable(v) else (str(v) if v is not None else "unknown")


def versions() -> dict[str, str | None]:
    return {
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "diffrax": _version("diffrax"),
        "equinox": _version("equinox"),
        "optimistix": _version("optimistix"),
        "lineax": _version("lineax"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "roadrunner": _version("roadrunner"),
        "libsbml": _version("libsbml", "getLibSBMLDottedVersion"),
        "jaxcell": _version("jaxcell"),
    }


# -- results ------------------------------------------------------------------------------


class Results:
    """Collects rows ``{"case", "tool", "metric", "value", "unit"[, "note"]}``."""

    def __init__(self, script: str, args: argparse.Namespace):
        self.script = script
        self.args = args
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.t_start = time.perf_counter()
        self.machine = machine_info()
        self.versions = versions()

    def add(self, case: str, tool: str, metric: str, value: float | int | None,
            unit: str, note: str | None = None, echo: bool = True) -> None:
        row: dict[str, Any] = {"case": case, "tool": tool, "metric": metric,
                               "value": _clean(value), "unit": unit}
        if note:
            row["note"] = note
        self.rows.append(row)
        if echo:
            extra = f"  [{note}]" if note else ""
            print(f"  {case:<28} {tool:<22} {metric:<34} {fmt(value, unit):>12}{extra}",
                  flush=True)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(f"NOTE: {text}", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def finish(self, json_path: str | None) -> None:
        """Print the notes and, if a path is given, write the JSON."""
        for n in self.notes:
            print(f"NOTE: {n}")
        if json_path:
            self.write_json(json_path)

    def write_json(self, path: str) -> None:
        machine = dict(self.machine)
        machine["loadavg_end"] = _loadavg()
        doc = {
            "script": self.script,
            "mode": "quick" if getattr(self.args, "quick", False) else "full",
            "argv": sys.argv[1:],
            "total_wall_s": round(self.elapsed(), 1),
            "process_cpu_s": round(sum(os.times()[:4]), 1),
            "machine": machine,
            "versions": self.versions,
            "notes": self.notes,
            "rows": self.rows,
        }
        text = json.dumps(doc, indent=1, allow_nan=False)
        json.loads(text)  # validate
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"\nwrote {path} ({len(self.rows)} rows)")


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f) or math.isinf(f):
        return None
    if f == int(f) and abs(f) < 2**53 and "int" in type(v).__name__:
        return int(f)
    return f


# -- formatting ---------------------------------------------------------------------------


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if unit == "s":
        v = float(v)
        if v >= 100:
            return f"{v:.0f} s"
        if v >= 1:
            return f"{v:.2f} s"
        if v >= 1e-3:
            return f"{v * 1e3:.3g} ms"
        return f"{v * 1e6:.3g} us"
    if unit in ("count", "steps", "") and float(v) == int(float(v)):
        return f"{int(float(v))}"
    return f"{float(v):.3g}" + (f" {unit}" if unit and unit not in ("ratio", "rel") else "")


def print_table(results: Results, tools: list[str], ref_tool: str = "jaxcell",
                title: str = "") -> None:
    """Pivot table: one line per (case, metric), a column per tool, then ratios
    ``ref_tool / peer`` for rows whose unit is seconds. ``*`` marks rows with a note."""
    keys: list[tuple[str, str]] = []
    cell: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in results.rows:
        k = (r["case"], r["metric"])
        if k not in keys:
            keys.append(k)
        cell[(r["case"], r["metric"], r["tool"])] = r
    present = [t for t in tools if any(r["tool"] == t for r in results.rows)]
    peers = [t for t in present if t != ref_tool]
    w_case = max([len("case")] + [len(k[0]) for k in keys])
    w_met = max([len("metric")] + [len(k[1]) for k in keys])
    w_tool = {t: max(12, len(t)) for t in present}
    ratio_names = [f"{ref_tool}/{p}" for p in peers]
    head = f"{'case':<{w_case}}  {'metric':<{w_met}}"
    for t in present:
        head += f"  {t:>{w_tool[t]}}"
    for rn in ratio_names:
        head += f"  {rn:>{max(10, len(rn))}}"
    if title:
        print("\n" + title)
    print(head)
    print("-" * len(head))
    marks: list[str] = []

    def mark(text: str) -> int:
        if text not in marks:
            marks.append(text)
        return marks.index(text) + 1

    for case, metric in keys:
        line = f"{case:<{w_case}}  {metric:<{w_met}}"
        for t in present:
            r = cell.get((case, metric, t))
            if r is None:
                s = ""
            else:
                s = fmt(r["value"], r["unit"])
                if r.get("note"):
                    s += f"*{mark(r['note'])}"
            line += f"  {s:>{w_tool[t]}}"
        ref = cell.get((case, metric, ref_tool))
        for p, rn in zip(peers, ratio_names, strict=True):
            r = cell.get((case, metric, p))
            s = ""
            if (ref and r and ref["unit"] == "s" and r["unit"] == "s"
                    and ref["value"] and r["value"]):
                s = f"{ref['value'] / r['value']:.3g}"
            line += f"  {s:>{max(10, len(rn))}}"
        print(line)
    if marks:
        print()
        for i, m in enumerate(marks, 1):
            print(f"  *{i}: {m}")


def base_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true",
                    help="same cases with fewer repeats (about 5-10 min on 2 cores)")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    return ap


def print_matrix(results: Results, title: str = "", metrics: list[str] | None = None,
                 tool: str | None = None, exclude: tuple[str, ...] = ()) -> None:
    """Table with one line per case and one column per metric (for one tool)."""
    rows = [r for r in results.rows
            if (tool is None or r["tool"] == tool) and r["case"] not in exclude]
    cases: list[str] = []
    mets: list[str] = []
    cell: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])
        if r["metric"] not in mets:
            mets.append(r["metric"])
        cell[(r["case"], r["metric"])] = r
    if metrics is not None:
        mets = [m for m in metrics if m in mets]
    w_case = max([4] + [len(c) for c in cases])
    widths = [max(9, len(m)) for m in mets]
    head = f"{'case':<{w_case}}"
    head += "".join(f"  {m:>{w}}" for m, w in zip(mets, widths, strict=True))
    if title:
        print("\n" + title)
    print(head)
    print("-" * len(head))
    for c in cases:
        line = f"{c:<{w_case}}"
        for m, w in zip(mets, widths, strict=True):
            r = cell.get((c, m))
            line += f"  {fmt(r['value'], r['unit']) if r else '':>{w}}"
        print(line)
