"""``write_petab``: a (fitted) PEtab v2 / PEtab SciML problem written back to files.

The problem's files are copied to a new folder; the parameter table's nominal values
of the estimated mechanistic parameters become the values at ``x`` (linear scale), and
the network parameters at ``x`` are written, in PyTorch layout, to one HDF5 array file
that replaces the array files holding network parameters (array files holding network
inputs are kept). The result is an ordinary PEtab SciML problem: it loads in jaxcell
and in other tools that read the standard, with the fitted values as nominal values.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from jaxtyping import ArrayLike

from ._math import PetabError, PetabUnsupportedError

_FITTED = "networks_fitted.hdf5"


def _copy_listed(spec_dir: Path, out: Path, files) -> None:
    for f in files:
        src = spec_dir / f
        dst = out / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)


def write_petab(problem, x: ArrayLike, out_dir: str | os.PathLike) -> Path:
    """Write ``problem`` (a PEtab v2 problem from :func:`load_petab`, with or without
    neural networks) to ``out_dir`` with the parameters ``x`` as nominal values.

    Returns the path of the new problem YAML. Loading it with :func:`load_petab` gives
    a problem whose ``x_nominal`` is ``x`` (so its ``nllh(x_nominal)`` equals the
    original ``nllh(x)``).

    Raises:
        PetabUnsupportedError: the problem is PEtab v1 (convert it to v2 first, e.g.
            with ``petab.v2.petab1to2``).
        PetabError: ``x`` has the wrong shape, or ``out_dir`` is the problem's own
            folder (the original files are never overwritten).
    """
    from ._problem_v2 import PetabV2Problem

    if not isinstance(problem, PetabV2Problem):
        raise PetabUnsupportedError("writing PEtab v1 problems",
                                    "convert to v2 (petab.v2.petab1to2) and load that")
    x = np.asarray(x, float)
    if x.shape != (len(problem.parameter_ids),):
        raise PetabError(f"write_petab: x must have shape ({len(problem.parameter_ids)},) "
                         f"(the estimated parameters); got {x.shape}.")
    src_yaml = problem.yaml_path
    base = src_yaml.parent
    out = Path(out_dir)
    if out.resolve() == base.resolve():
        raise PetabError(f"write_petab: {str(out)!r} is the problem's own folder; choose "
                         "another (the original files are kept).")
    out.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(src_yaml.read_text())
    # every file the problem names, except the parameter tables and network arrays
    listed = []
    for key in ("measurement_files", "observable_files", "condition_files",
                "experiment_files", "mapping_files"):
        listed += list(spec.get(key) or [])
    listed += [m["location"] for m in (spec.get("model_files") or {}).values()]
    sciml = ((spec.get("extensions") or {}).get("sciml")) or {}
    listed += list(sciml.get("hybridization_files") or [])
    listed += [n["location"] for n in (sciml.get("neural_networks") or {}).values()]
    _copy_listed(base, out, listed)
    # parameter table: nominal values at x (linear scale) for estimated mechanistic ones
    ptables = spec.get("parameter_files") or [spec.get("parameter_file")]
    values = {}
    for pid, scale, v in zip(problem.mechanistic_ids, problem.parameter_scales,
                             x[:len(problem.mechanistic_ids)]):
        values[pid] = {"lin": v, "log": math.exp(v), "log10": 10.0 ** v}[scale]
    for f in ptables:
        df = pd.read_csv(base / f, sep="\t", dtype=str, keep_default_na=False)
        for i, pid in enumerate(df["parameterId"]):
            if pid.strip() in values:
                df.loc[i, "nominalValue"] = repr(float(values[pid.strip()]))
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / f, sep="\t", index=False)
    # network arrays
    if problem.sciml is not None and sciml:
        import h5py

        from ..neural import network_arrays, write_network_arrays

        keep = []
        for f in sciml.get("array_files") or []:
            with h5py.File(base / f, "r") as h:
                has_inputs = "inputs" in h
            if has_inputs:
                _copy_listed(base, out, [f])
                keep.append(f)
        nets = problem.networks(x)
        write_network_arrays(out / _FITTED, {nid: {k: np.asarray(v) for k, v in
                                                   network_arrays(net).items()}
                                             for nid, net in nets.items()})
        sciml["array_files"] = [*keep, _FITTED]
        # every network row now reads its values from the array file
        for f in ptables:
            df = pd.read_csv(out / f, sep="\t", dtype=str, keep_default_na=False)
            for i, pid in enumerate(df["parameterId"]):
                if pid.strip() in problem.sciml.params:
                    df.loc[i, "nominalValue"] = "array"
            df.to_csv(out / f, sep="\t", index=False)
    dst = out / src_yaml.name
    dst.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dst


