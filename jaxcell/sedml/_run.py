"""``run_sedml``, ``run_omex`` and ``run``: execute SED-ML experiments, write reports
and plots, and return the reports in memory."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile

import numpy as np

from ._archive import MAX_BYTES, extract, sedml_locations
from ._document import PlotDef, ReportDef, read_document
from ._errors import SEDMLError
from ._execute import Executor
from ._outputs import (
    SEDMLReport,
    data_generator,
    ensure_dir,
    report,
    write_csv,
    write_hdf5,
    write_plot,
)


@dataclasses.dataclass(frozen=True)
class SEDMLResults:
    """What running SED-ML produced.

    Attributes:
        reports: every report, keyed ``"<location>/<report id>"`` (the path of its
            dataset in ``reports.h5``).
        files: the files written (CSV, HDF5, PNG), in the order written.
    """

    reports: dict[str, SEDMLReport]
    files: tuple[str, ...]

    def report(self, report_id: str) -> SEDMLReport:
        """The report with this id (or ``"<location>/<id>"`` key).

        Raises:
            KeyError: no such report, or the id is used in several SED-ML files.
        """
        if report_id in self.reports:
            return self.reports[report_id]
        found = [r for r in self.reports.values() if r.id == report_id]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise KeyError(f"{what} report with id {report_id!r}; reports: "
                           f"{sorted(self.reports)}.")
        return found[0]


def _execute(path: str, location: str, out_dir: str | None, files: list[str],
             name: str | None = None) -> list[SEDMLReport]:
    doc = read_document(path, name)
    ex = Executor(doc)
    cache: dict[str, np.ndarray] = {}

    def values(dg_id: str) -> np.ndarray:
        if dg_id not in cache:
            cache[dg_id] = data_generator(ex, doc.data_generators[dg_id])
        return cache[dg_id]

    reports = []
    folder = None if out_dir is None else os.path.join(out_dir, location)
    for o in doc.outputs:
        if isinstance(o, ReportDef):
            rep = report(ex, o, location, values)
            reports.append(rep)
            if folder is not None:
                ensure_dir(folder)
                csv_path = os.path.join(folder, f"{o.id}.csv")
                write_csv(rep, csv_path)
                files.append(csv_path)
        elif isinstance(o, PlotDef) and folder is not None:
            ensure_dir(folder)
            png = os.path.join(folder, f"{o.id}.png")
            write_plot(doc, o, values, png)
            files.append(png)
    return reports


def _finish(reports: list[SEDMLReport], out_dir: str | None,
            files: list[str]) -> SEDMLResults:
    if out_dir is not None and reports:
        h5 = os.path.join(out_dir, "reports.h5")
        write_hdf5(reports, h5)
        files.append(h5)
    return SEDMLResults({f"{r.location}/{r.id}": r for r in reports}, tuple(files))


def run_sedml(path: str | os.PathLike, out_dir: str | os.PathLike | None = None) \
        -> SEDMLResults:
    """Run a SED-ML file (its models are files next to it).

    Every task runs on jaxcell's engine (:func:`jaxcell.sbml.load_sbml`, the stiff
    default solver with the algorithm's tolerances); each report is written to
    ``out_dir/<file name>/<report id>.csv`` and all of them to ``out_dir/reports.h5``;
    each plot2D to ``out_dir/<file name>/<plot id>.png``. With ``out_dir=None`` nothing
    is written.

    Args:
        path: the SED-ML file.
        out_dir: the output folder (created if needed), or ``None``.

    Returns:
        The reports in memory and the files written (:class:`SEDMLResults`).

    Raises:
        SEDMLError: the document is invalid, refers to something missing, or a
            simulation failed; the message names the file and the element.
        SEDMLUnsupportedError: the document uses a feature jaxcell does not run.
    """
    path = os.fspath(path)
    out = None if out_dir is None else os.fspath(out_dir)
    files: list[str] = []
    reports = _execute(path, os.path.basename(path), out, files)
    return _finish(reports, out, files)


def run_omex(path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
             max_bytes: int = MAX_BYTES) -> SEDMLResults:
    """Run a COMBINE archive: its master SED-ML file, or every SED-ML file its manifest
    lists if none is master.

    The archive is extracted safely into a temporary folder (entries with absolute
    paths, ``..`` or symbolic links are refused, as is more than ``max_bytes``
    uncompressed). Outputs are laid out as BioSimulators does: ``out_dir/<location of
    the SED-ML file>/<report id>.csv``, ``.../<plot id>.png`` and ``out_dir/reports.h5``
    (datasets at ``<location>/<report id>``).

    Args:
        path: the ``.omex`` file.
        out_dir: the output folder (created if needed), or ``None`` to write nothing.
        max_bytes: the bound on the archive's total uncompressed size.

    Returns:
        The reports in memory and the files written (:class:`SEDMLResults`).

    Raises:
        SEDMLError: an unsafe or unreadable archive (naming the archive and the entry),
            or any error of :func:`run_sedml`.
        SEDMLUnsupportedError: a SED-ML feature jaxcell does not run.
    """
    path = os.fspath(path)
    out = None if out_dir is None else os.fspath(out_dir)
    files: list[str] = []
    reports: list[SEDMLReport] = []
    with tempfile.TemporaryDirectory(prefix="jaxcell-omex-") as tmp:
        extract(path, tmp, max_bytes)
        for loc in sedml_locations(path, tmp):
            reports.extend(_execute(os.path.join(tmp, loc), loc, out, files,
                                    f"{path}:{loc}"))
    return _finish(reports, out, files)


def run(path: str | os.PathLike, out_dir: str | os.PathLike | None = None) \
        -> SEDMLResults:
    """Run a COMBINE archive (:func:`run_omex`) or a SED-ML file (:func:`run_sedml`),
    whichever ``path`` is (a zip file is an archive).

    Args:
        path: the ``.omex`` or ``.sedml`` file.
        out_dir: the output folder, or ``None`` to write nothing.

    Returns:
        The reports in memory and the files written (:class:`SEDMLResults`).

    Raises:
        SEDMLError: see :func:`run_omex` and :func:`run_sedml`.
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise SEDMLError(f"{p}: no such file.")
    if zipfile.is_zipfile(p):
        return run_omex(p, out_dir)
    return run_sedml(p, out_dir)
