"""SED-ML outputs: data generators evaluated, reports written as CSV and HDF5
(BioSimulators' layout), plot2D drawn with matplotlib."""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from ._document import DataGeneratorDef, Document, PlotDef, ReportDef
from ._errors import SEDMLError
from ._execute import Executor
from ._math import evaluate


@dataclasses.dataclass(frozen=True)
class SEDMLReport:
    """The values of one SED-ML report.

    Attributes:
        location: the SED-ML file's location (inside the archive, or its file name).
        id: the report's id.
        name: the report's name (``""`` if none).
        dataset_ids: ids of the data sets, in order.
        labels: their labels (the CSV columns).
        names: their names (``""`` if none).
        data: ``(data sets, *shape)``: one row per data set, NaN-padded to a common
            shape (``(steps + 1,)`` for a time course; ``(iterations, sub-tasks,
            steps + 1)`` for a repeated task over a time course; ``()`` for a steady
            state).
    """

    location: str
    id: str
    name: str
    dataset_ids: tuple[str, ...]
    labels: tuple[str, ...]
    names: tuple[str, ...]
    data: np.ndarray

    def __getitem__(self, label: str) -> np.ndarray:
        """The values of the data set with this label (or id)."""
        for i, (ds, lab) in enumerate(zip(self.dataset_ids, self.labels)):
            if label in (lab, ds):
                return self.data[i]
        raise KeyError(f"report {self.id!r} has no data set labelled {label!r}; it has "
                       f"{list(self.labels)}.")


def data_generator(ex: Executor, g: DataGeneratorDef) -> np.ndarray:
    """The values of a data generator."""
    where = f"{ex.doc.path}: dataGenerator {g.id!r}"
    env: dict[str, np.ndarray] = dict((k, np.asarray(v)) for k, v in g.parameters)
    for v in g.variables:
        result = ex.task(v.task)
        key = "time" if v.target is None else v.target.key
        if key not in result:
            raise SEDMLError(f"{where}, variable {v.id!r}: task {v.task!r} has no value "
                             f"{key!r} (its model has no such species, parameter or "
                             "compartment).")
        env[v.id] = result[key]
    return np.asarray(evaluate(g.tree, env, where), dtype=float)


def _pad(arrays: list[np.ndarray]) -> np.ndarray:
    ndim = max(a.ndim for a in arrays)
    arrays = [a.reshape(a.shape + (1,) * (ndim - a.ndim)) if a.ndim < ndim else a
              for a in arrays]
    shape = tuple(max(a.shape[d] for a in arrays) for d in range(ndim))
    out = np.full((len(arrays), *shape), np.nan)
    for i, a in enumerate(arrays):
        out[(i, *(slice(0, s) for s in a.shape))] = a
    return out


def report(ex: Executor, r: ReportDef, location: str, values) -> SEDMLReport:
    """A report's values (``values`` caches the data generators)."""
    rows = [values(ds.data) for ds in r.datasets]
    data = _pad(rows) if rows else np.zeros((0,))
    return SEDMLReport(location, r.id, r.name, tuple(d.id for d in r.datasets),
                       tuple(d.label for d in r.datasets),
                       tuple(d.name for d in r.datasets), data)


def write_csv(rep: SEDMLReport, path: str) -> None:
    """One column per data set (its label), one row per value: each data set flattened
    in C order (a repeated task's iterations one after the other)."""
    cols = rep.data.reshape(rep.data.shape[0], -1) if rep.data.size else rep.data
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(rep.labels)
        for row in np.asarray(cols).T:
            w.writerow([repr(float(x)) for x in row])


def write_hdf5(reports: list[SEDMLReport], path: str) -> None:
    """``reports.h5`` as BioSimulators writes it: a dataset at ``<location>/<report id>``
    (rows = data sets) with the attributes ``_type``, ``uri``, ``sedmlId``,
    ``sedmlName``, ``sedmlDataSetIds``, ``sedmlDataSetLabels``, ``sedmlDataSetNames``,
    ``sedmlDataSetDataTypes`` and ``sedmlDataSetShapes``."""
    import h5py

    with h5py.File(path, "w") as f:
        for rep in reports:
            key = f"{rep.location}/{rep.id}"
            ds = f.create_dataset(key, data=rep.data)
            ds.attrs["_type"] = "SedReport"
            ds.attrs["uri"] = key
            ds.attrs["sedmlId"] = rep.id
            if rep.name:
                ds.attrs["sedmlName"] = rep.name
            ds.attrs["sedmlDataSetIds"] = list(rep.dataset_ids)
            ds.attrs["sedmlDataSetLabels"] = list(rep.labels)
            ds.attrs["sedmlDataSetNames"] = list(rep.names)
            ds.attrs["sedmlDataSetDataTypes"] = ["float64"] * len(rep.dataset_ids)
            ds.attrs["sedmlDataSetShapes"] = [",".join(map(str, rep.data.shape[1:]))
                                              ] * len(rep.dataset_ids)


def write_plot(doc: Document, p: PlotDef, values, path: str) -> None:
    """A plot2D as PNG: one line per curve (per iteration for a repeated task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    log_x = log_y = False
    for c in p.curves:
        x, y = values(c.x), values(c.y)
        try:
            x, y = np.broadcast_arrays(x, y)
        except ValueError:
            plt.close(fig)
            raise SEDMLError(f"{doc.path}: plot2D {p.id!r}, curve {c.id!r}: x and y have "
                             f"shapes {x.shape} and {y.shape}.") from None
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
        y2 = y.reshape(-1, y.shape[-1]) if y.ndim else y.reshape(1, 1)
        label = c.name or doc.data_generators[c.y].name or c.y
        for i in range(x2.shape[0]):
            ax.plot(x2[i], y2[i], marker="o" if x2.shape[1] == 1 else None,
                    color=f"C{p.curves.index(c) % 10}", label=label if i == 0 else None)
        log_x |= c.log_x
        log_y |= c.log_y
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if p.curves:
        first = p.curves[0]
        ax.set_xlabel(doc.data_generators[first.x].name or first.x)
        ax.legend(loc="best", fontsize="small")
    ax.set_title(p.name or p.id)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ensure_dir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``."""
    os.makedirs(path, exist_ok=True)
