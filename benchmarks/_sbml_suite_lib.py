"""The SBML Test Suite semantic cases, run against ``jaxcell.io``: the reusable pieces.

Case discovery, the settings and expected-results files, the suite's pass rule, one case
run end to end, a process pool that survives hung or crashed workers, and the per-group
table. ``benchmarks/sbml_suite.py`` is the command line around it; the tests in
``tests/test_sbml_suite.py`` import it directly.

Nothing here imports jax or jaxcell at module level: the parent process of a parallel run
only schedules work and never needs JAX, and the worker processes (started with the
"spawn" method, because JAX and ``fork`` do not mix) import it when they run a case.

References:
    SBML Test Suite, https://github.com/sbmlteam/sbml-test-suite (semantic cases, the
    pass rule in ``cases/semantic/README.md``).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import multiprocessing
import multiprocessing.connection
import re
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

STATUSES = ("pass", "fail", "unsupported", "error")
#: Feature groups jaxcell aims to pass; the others (algebraic rules, fast reactions,
#: SBML packages) are expected to be rejected as unsupported.
TARGET_GROUPS = ("core", "rules", "math-edge", "volume-units", "stoichiometry", "rateOf",
                 "events", "delay")
UNSUPPORTED_GROUPS = ("algebraic", "fast", "packages")
#: Minimum pass fraction per group (of all cases of the group, unsupported included).
TARGETS = {"core": 0.95, "rules": 0.95, "math-edge": 0.95, "volume-units": 0.95,
           "stoichiometry": 0.95, "rateOf": 0.95, "events": 0.90, "delay": 0.90}

_CASE_DIR = re.compile(r"^\d{5}$")
_XML = re.compile(r"^(\d{5})-sbml-l(\d+)v(\d+)\.xml$")


# -- cases -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One semantic case: its five-digit id, feature group and folder."""

    id: str
    group: str
    path: Path

    def model_file(self) -> Path:
        """The model at the highest SBML Level/Version present (l3v2 > l3v1 > l2v5 ...)."""
        found = []
        for f in self.path.iterdir():
            m = _XML.match(f.name)
            if m and m.group(1) == self.id:
                found.append(((int(m.group(2)), int(m.group(3))), f))
        if not found:
            raise FileNotFoundError(f"case {self.id}: no {self.id}-sbml-lXvY.xml in "
                                    f"{self.path}")
        return max(found)[1]

    def settings_file(self) -> Path:
        return self.path / f"{self.id}-settings.txt"

    def results_file(self) -> Path:
        return self.path / f"{self.id}-results.csv"


def read_groups(tsv: Path) -> dict[str, str]:
    """Case id -> group from a ``cases.tsv`` (columns case, group, ...)."""
    groups = {}
    with open(tsv, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            groups[row["case"].strip()] = row["group"].strip()
    return groups


def discover(root: str | Path) -> list[Case]:
    """All cases under ``root``, sorted by id.

    ``root`` is either a suite folder (``root/cases/NNNNN/`` and optionally
    ``root/cases.tsv``) or the folder that holds the ``NNNNN`` folders itself (its
    ``cases.tsv``, or its parent's, is used when present). Cases missing from
    ``cases.tsv``, or all cases when there is none, get the group ``"unknown"``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    folder = root / "cases" if (root / "cases").is_dir() else root
    groups: dict[str, str] = {}
    for tsv in (root / "cases.tsv", folder / "cases.tsv", folder.parent / "cases.tsv"):
        if tsv.is_file():
            groups = read_groups(tsv)
            break
    cases = [Case(d.name, groups.get(d.name, "unknown"), d)
             for d in sorted(folder.iterdir()) if d.is_dir() and _CASE_DIR.match(d.name)]
    if not cases:
        raise FileNotFoundError(f"no NNNNN case folders in {folder}")
    return cases


def select(cases: Sequence[Case], *, only: Iterable[str] | None = None,
           groups: Iterable[str] | None = None, every: int = 1,
           per_group: int | None = None) -> list[Case]:
    """A deterministic subset of ``cases``.

    ``only``: case ids (``"1"`` and ``"00001"`` both work); ``groups``: group names;
    ``every``: every k-th case of each group (its 1st, (k+1)-th, ...), a stratified
    sample; ``per_group``: at most this many cases of each group, spread evenly over the
    group's ids (first and last included).
    """
    out = list(cases)
    if only is not None:
        ids = {s.strip().zfill(5) for s in only if s.strip()}
        out = [c for c in out if c.id in ids]
    if groups is not None:
        gs = {g.strip() for g in groups if g.strip()}
        out = [c for c in out if c.group in gs]
    by_group: dict[str, list[Case]] = {}
    for c in out:
        by_group.setdefault(c.group, []).append(c)
    picked: list[Case] = []
    for members in by_group.values():
        members = members[::every]
        if per_group is not None and len(members) > per_group:
            if per_group <= 1:
                members = members[:per_group]
            else:
                idx = np.round(np.linspace(0, len(members) - 1, per_group)).astype(int)
                members = [members[i] for i in sorted(set(idx.tolist()))]
        picked.extend(members)
    return sorted(picked, key=lambda c: c.id)


# -- settings and expected results -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """A case's ``NNNNN-settings.txt``."""

    start: float
    duration: float
    steps: int
    variables: tuple[str, ...]
    absolute: float
    relative: float
    amount: frozenset[str]
    concentration: frozenset[str]

    def times(self) -> np.ndarray:
        """The output times: ``steps + 1`` points from start to start + duration."""
        return np.linspace(self.start, self.start + self.duration, self.steps + 1)

    def kind(self, var: str) -> str:
        """How ``var`` is compared: ``"amount"``, ``"concentration"`` or ``"value"``."""
        if var in self.amount:
            return "amount"
        if var in self.concentration:
            return "concentration"
        return "value"


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_settings(text: str) -> Settings:
    """Parse the text of a settings file (``key: value`` lines; CRLF allowed).

    Raises ``ValueError`` naming the missing key or the bad value.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
    missing = [k for k in ("start", "duration", "steps", "variables", "absolute",
                           "relative") if k not in fields]
    if missing:
        raise ValueError(f"settings: missing {', '.join(missing)}")
    try:
        steps_f = float(fields["steps"])
        if steps_f != int(steps_f) or steps_f < 1:
            raise ValueError(f"steps must be a positive integer, got {fields['steps']!r}")
        return Settings(
            start=float(fields["start"]), duration=float(fields["duration"]),
            steps=int(steps_f), variables=tuple(_names(fields["variables"])),
            absolute=float(fields["absolute"]), relative=float(fields["relative"]),
            amount=frozenset(_names(fields.get("amount", ""))),
            concentration=frozenset(_names(fields.get("concentration", ""))))
    except ValueError as e:
        raise ValueError(f"settings: {e}") from None


def read_expected(text: str) -> tuple[list[str], np.ndarray]:
    """Parse an expected-results CSV: (column names after time, values [times, columns + 1]).

    The first column is time. Values may be ``INF``, ``-INF``, ``NaN`` in any case and
    with surrounding spaces.
    """
    rows = [r for r in csv.reader(text.splitlines()) if r and any(s.strip() for s in r)]
    if len(rows) < 2:
        raise ValueError("results: need a header and at least one row")
    header = [s.strip() for s in rows[0]]
    try:
        values = np.array([[float(s) for s in r] for r in rows[1:]], dtype=float)
    except ValueError as e:
        raise ValueError(f"results: {e}") from None
    if values.shape[1] != len(header):
        raise ValueError(f"results: {len(header)} columns in the header, "
                         f"{values.shape[1]} in the rows")
    return header[1:], values


# -- the pass rule ---------------------------------------------------------------------


def violation(expected: np.ndarray, actual: np.ndarray, absolute: float,
              relative: float) -> np.ndarray:
    """Per-point violation ratio ``|C - U| / (absolute + relative |C|)``; <= 1 passes.

    NaN expected passes (0) only against NaN; an infinite expected value passes only
    against the same infinity; anything else non-finite on either side fails (inf).
    """
    c = np.asarray(expected, dtype=float)
    u = np.asarray(actual, dtype=float)
    c, u = np.broadcast_arrays(c, u)
    finite = np.isfinite(c) & np.isfinite(u)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        tol = absolute + relative * np.abs(c)
        diff = np.abs(c - u)
        ratio = np.where(finite, np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0),
                                          np.where(diff == 0, 0.0, np.inf)), np.inf)
    same_special = (np.isnan(c) & np.isnan(u)) | (np.isinf(c) & (c == u))
    return np.where(same_special, 0.0, ratio)


@dataclasses.dataclass(frozen=True)
class Comparison:
    passed: bool
    max_ratio: float
    first_variable: str | None = None
    first_time: float | None = None
    expected: float | None = None
    actual: float | None = None

    def detail(self) -> str:
        if self.passed:
            return f"max violation ratio {self.max_ratio:.3g}"
        return (f"max violation ratio {self.max_ratio:.3g}; first failure: "
                f"{self.first_variable} at t={self.first_time:g}: expected "
                f"{self.expected!r}, got {self.actual!r}")


def compare(ts: np.ndarray, names: Sequence[str], expected: np.ndarray,
            actual: np.ndarray, absolute: float, relative: float) -> Comparison:
    """Apply the pass rule to ``expected`` and ``actual`` of shape [times, variables].

    The first failure is the earliest time, then the first variable in ``names``.
    """
    ratio = violation(expected, actual, absolute, relative)
    worst = float(np.max(ratio)) if ratio.size else 0.0
    bad = np.argwhere(ratio > 1.0)
    if bad.size == 0:
        return Comparison(True, worst)
    i, j = (int(x) for x in bad[0])
    return Comparison(False, worst, names[j], float(ts[i]), float(expected[i, j]),
                      float(actual[i, j]))


def solver_tolerances(settings: Settings) -> tuple[float, float]:
    """Solver (rtol, atol) for a case, from its comparison tolerances.

    The global error of an adaptive solver is typically 10-100 times its local
    tolerance, and errors in amounts become errors in concentrations (and vice versa),
    so both are set four (rtol) and three (atol) orders of magnitude below the case's
    ``relative`` and ``absolute``, capped at 1e-8 / 1e-10 (the jaxcell defaults; the
    usual case, relative 1e-4, gets rtol 1e-8) and floored at 1e-12 / 1e-15 (float64).
    """
    rtol = min(1e-8, max(1e-12, 1e-4 * settings.relative))
    atol = min(1e-10, max(1e-15, 1e-3 * settings.absolute))
    return rtol, atol


# -- one case --------------------------------------------------------------------------


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def describe(e: BaseException) -> str:
    """One line for an exception: its type, its message and where in jaxcell it arose.

    Errors raised under ``jit`` (``EquinoxRuntimeError``) carry the traced stack and a
    page of advice in their message; only the error line and the innermost jaxcell frame
    of that stack are kept.
    """
    msg = str(e)
    frames = [(f.filename, f.lineno, f.name) for f in traceback.extract_tb(e.__traceback__)]
    m = re.search(r"EquinoxRuntimeError: (.*?)(?:\n\n|\Z)", msg, re.S)
    if m:
        frames = [(f, int(n), fn) for f, n, fn in _FRAME.findall(msg)]
        msg = m.group(1)
    ours = [f for f in frames if "jaxcell" in Path(f[0]).parts] or frames
    where = f" (at {Path(ours[-1][0]).name}:{ours[-1][1]} in {ours[-1][2]})" if ours else ""
    return _one_line(f"{type(e).__name__}: {msg}{where}")


def run_case(case: Case) -> dict[str, Any]:
    """Load, simulate and check one case in this process.

    Returns ``{"case", "group", "status", "detail", "seconds"}`` plus, by status,
    ``max_ratio``/``variable``/``time`` (fail), ``feature``/``element`` (unsupported) or
    ``exception`` (error). Never raises for a problem of the case itself.
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"case": case.id, "group": case.group}
    try:
        import jaxcell.io as jio

        settings = parse_settings(case.settings_file().read_text())
        names, expected = read_expected(case.results_file().read_text())
        ts = settings.times()
        if expected.shape[0] != ts.size:
            raise ValueError(f"results have {expected.shape[0]} rows, settings ask for "
                             f"{ts.size} times")
        rtol, atol = solver_tolerances(settings)
        try:
            model = jio.load_sbml(case.model_file())
            sol = jio.simulate_sbml(model, ts, rtol=rtol, atol=atol, throw=False)
        except jio.SBMLUnsupportedError as e:
            out.update(status="unsupported", feature=str(e.feature),
                       element=None if e.element is None else str(e.element),
                       detail=_one_line(str(e)))
            return out
        if not bool(sol.success):
            msgs = sol.messages()
            msgs = msgs if isinstance(msgs, str) else "; ".join(map(str, msgs))
            out.update(status="error", exception="SolverFailure",
                       detail=_one_line(f"solver failed: {msgs}"))
            return out
        actual = np.empty((ts.size, len(names)))
        for j, var in enumerate(names):
            getter = getattr(sol, settings.kind(var))
            actual[:, j] = np.asarray(getter(var), dtype=float).reshape(ts.size)
        cmp = compare(ts, names, expected[:, 1:], actual, settings.absolute,
                      settings.relative)
        out.update(status="pass" if cmp.passed else "fail", detail=cmp.detail(),
                   max_ratio=cmp.max_ratio if math.isfinite(cmp.max_ratio) else None)
        if not cmp.passed:
            out.update(variable=cmp.first_variable, time=cmp.first_time)
    except Exception as e:  # noqa: BLE001 - every other problem is an "error" of the case
        out.update(status="error", exception=type(e).__name__, detail=describe(e))
    finally:
        out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


# -- many cases in worker processes ----------------------------------------------------


def _worker(conn: multiprocessing.connection.Connection) -> None:
    """Worker loop: receive a Case, send back its result; ``None`` ends the loop."""
    import jaxcell  # noqa: F401  (import once per worker, not per case)

    while True:
        case = conn.recv()
        if case is None:
            break
        conn.send(run_case(case))


class _Slot:
    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.case: Case | None = None
        self.deadline = math.inf
        self.done = 0

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.proc.kill()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def run_parallel(cases: Sequence[Case], *, jobs: int, timeout: float = 120.0,
                 cases_per_worker: int = 40, progress: Any = None) -> list[dict[str, Any]]:
    """Run ``cases`` in ``jobs`` spawned worker processes, one case at a time each.

    A case that runs longer than ``timeout`` seconds (compile included) is an ``error``
    and its worker is killed and replaced; so is a worker that dies. Workers are also
    replaced after ``cases_per_worker`` cases, to bound the memory that compiled models
    hold. ``progress(result, n_done, n_total)`` is called after each case.
    """
    ctx = multiprocessing.get_context("spawn")
    todo = list(reversed(cases))
    results: list[dict[str, Any]] = []
    slots = [_Slot(ctx) for _ in range(max(1, min(jobs, len(cases))))]

    def finish(slot: _Slot, res: dict[str, Any]) -> None:
        results.append(res)
        slot.case, slot.deadline = None, math.inf
        if progress is not None:
            progress(res, len(results), len(cases))

    try:
        while todo or any(s.case is not None for s in slots):
            for i, s in enumerate(slots):
                if s.case is None and todo:
                    if s.done >= cases_per_worker or not s.proc.is_alive():
                        s.stop(kill=not s.proc.is_alive())
                        s = slots[i] = _Slot(ctx)
                    s.case = todo.pop()
                    s.deadline = time.monotonic() + timeout
                    s.done += 1
                    s.conn.send(s.case)
            busy = [s for s in slots if s.case is not None]
            wait = max(0.0, min(s.deadline for s in busy) - time.monotonic())
            ready = multiprocessing.connection.wait(
                [s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=wait)
            now = time.monotonic()
            for i, s in enumerate(slots):
                if s.case is None:
                    continue
                case = s.case
                base = {"case": case.id, "group": case.group, "status": "error"}
                if s.conn in ready:
                    try:
                        finish(s, s.conn.recv())
                        continue
                    except (EOFError, OSError):
                        pass
                if s.proc.sentinel in ready or not s.proc.is_alive():
                    s.proc.join(1)
                    finish(s, {**base, "exception": "WorkerDied", "seconds": None,
                               "detail": f"worker process died (exit code "
                                         f"{s.proc.exitcode})"})
                    s.stop(kill=True)
                    slots[i] = _Slot(ctx) if todo else s
                elif now >= s.deadline:
                    finish(s, {**base, "exception": "Timeout", "seconds": timeout,
                               "detail": f"timeout after {timeout:g} s (worker killed)"})
                    s.stop(kill=True)
                    slots[i] = _Slot(ctx) if todo else s
    finally:
        for s in slots:
            if s.proc.is_alive():
                s.stop(kill=s.case is not None)
    order = {c.id: k for k, c in enumerate(cases)}
    return sorted(results, key=lambda r: order[r["case"]])


# -- summaries -------------------------------------------------------------------------


def group_counts(results: Iterable[dict[str, Any]]) -> dict[str, Counter]:
    """Group -> Counter of statuses (plus ``"total"``), groups in suite order."""
    counts: dict[str, Counter] = {}
    for r in results:
        c = counts.setdefault(r["group"], Counter())
        c[r["status"]] += 1
        c["total"] += 1
    known = list(TARGET_GROUPS) + list(UNSUPPORTED_GROUPS)
    return dict(sorted(counts.items(),
                       key=lambda kv: (known.index(kv[0]) if kv[0] in known else 99, kv[0])))


def pass_fraction(c: Counter) -> float:
    return c["pass"] / c["total"] if c["total"] else 0.0


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Counts per group, then overall, as a fixed-width text table."""
    counts = group_counts(results)
    total: Counter = sum(counts.values(), Counter())
    w = max([len("group"), len("overall")] + [len(g) for g in counts])
    cols = (*STATUSES, "total")
    lines = [f"{'group':<{w}}" + "".join(f"  {c:>11}" for c in cols) + f"  {'pass%':>7}"]
    lines.append("-" * len(lines[0]))
    for g, c in [*counts.items(), ("overall", total)]:
        if g == "overall":
            lines.append("-" * len(lines[0]))
        lines.append(f"{g:<{w}}" + "".join(f"  {c[k]:>11}" for k in cols)
                     + f"  {100 * pass_fraction(c):>6.1f}%")
    return "\n".join(lines)


def unsupported_features(results: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """Unsupported features with the number of cases each stopped, most first."""
    c = Counter(r.get("feature") or "?" for r in results if r["status"] == "unsupported")
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def target_shortfalls(results: Sequence[dict[str, Any]],
                      targets: dict[str, float] | None = None) -> list[str]:
    """What misses the targets: groups under their pass fraction, and every ``fail``.

    An empty list means the targets are met.
    """
    targets = TARGETS if targets is None else targets
    problems = []
    for g, c in group_counts(results).items():
        if g in targets and pass_fraction(c) < targets[g]:
            problems.append(f"{g}: pass {c['pass']}/{c['total']} = "
                            f"{pass_fraction(c):.1%} < {targets[g]:.0%}")
    for r in results:
        if r["status"] == "fail":
            problems.append(f"{r['case']} ({r['group']}): fail: {r.get('detail')}")
    return problems
