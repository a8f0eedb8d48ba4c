"""Read and write PEtab SciML HDF5 array files (PyTorch layout, row-major).

Layout of the files of the PEtab SciML standard and test suite::

    metadata/pytorch_format          uint8 scalar 1 (arrays are in PyTorch axis order)
    parameters/<net id>/<layer id>/<weight | bias | running_mean | ...>
    inputs/<input id>/data           (or inputs/<input id>/<condition id>/data)
    outputs/<output id>/data
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
from jaxtyping import ArrayLike

from .._safe_io import MAX_ARRAY_ELEMENTS, MAX_NESTING, reraise_as
from ._torch_base import NetworkFormatError


def _open(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    try:
        return h5py.File(path, mode)
    except (OSError, ValueError, RuntimeError) as err:
        raise NetworkFormatError(f"cannot open HDF5 file {str(path)!r}: {err}") from None


def _dataset(item: h5py.Dataset, path) -> np.ndarray:
    """A dataset's values, refused (naming the file and dataset) when they are not
    numbers, when the array is absurdly large, or when its data lives in another file
    (external storage, virtual datasets)."""
    where = f"HDF5 file {str(path)!r}, dataset {item.name!r}"
    with reraise_as(NetworkFormatError, where, "dataset"):
        if item.is_virtual or item.external:
            raise NetworkFormatError(f"{where}: its data lives in another file (virtual "
                                     "or external dataset); such datasets are not read.")
        if item.dtype.kind not in "biuf":
            raise NetworkFormatError(f"{where}: expected numbers, got dtype {item.dtype}.")
        if item.size > MAX_ARRAY_ELEMENTS:
            raise NetworkFormatError(f"{where}: shape {item.shape} has {item.size} "
                                     f"elements; at most {MAX_ARRAY_ELEMENTS} are accepted.")
        return np.asarray(item[()])


def _member(group: h5py.Group, name: str, path, depth: int = 0):
    """``group[name]``, refusing links to other files (and absurd nesting)."""
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise NetworkFormatError(f"HDF5 file {str(path)!r}: {group.name}/{name} is a link "
                                 "to another file; such links are not followed.")
    if depth > MAX_NESTING:
        raise NetworkFormatError(f"HDF5 file {str(path)!r}: groups nested more than "
                                 f"{MAX_NESTING} levels deep at {group.name}.")
    with reraise_as(NetworkFormatError, f"HDF5 file {str(path)!r}",
                    f"object {group.name}/{name}"):
        return group[name]


def _read_group(group: h5py.Group, path, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in list(group.keys()):
        item = _member(group, name, path, depth)
        if isinstance(item, h5py.Dataset):
            out[name] = _dataset(item, path)
        elif not isinstance(item, h5py.Group):
            raise NetworkFormatError(f"HDF5 file {str(path)!r}: {item.name} is neither a "
                                     "group nor a dataset.")
        elif set(item.keys()) == {"data"} and isinstance(
                _member(item, "data", path, depth + 1), h5py.Dataset):
            out[name] = _dataset(item["data"], path)
        else:
            out[name] = _read_group(item, path, depth + 1)
    return out


def read_hdf5_arrays(path: str | os.PathLike, group: str) -> dict[str, Any]:
    """The arrays under one group of an HDF5 file, as nested dicts of numpy arrays.

    A dataset becomes an array; a group holding only a ``data`` dataset (the PEtab
    SciML layout of inputs and outputs) becomes that array; any other group becomes a
    nested dict. So ``read_hdf5_arrays(path, "inputs")`` gives ``{"input0": array}``,
    and for condition-specific inputs (``inputs/net6_input2/cond1/data``) it gives
    ``{"net6_input2": {"cond1": array}}``. Arrays keep the file's layout and dtype.

    Raises:
        NetworkFormatError: the file cannot be opened or has no such group.
    """
    with reraise_as(NetworkFormatError, f"HDF5 file {str(path)!r}", "HDF5 file"):
        with _open(path) as f:
            if group not in f:
                raise NetworkFormatError(
                    f"HDF5 file {str(path)!r} has no group {group!r}; top-level groups: "
                    f"{sorted(f.keys())}"
                )
            item = _member(f, group, path)
            if isinstance(item, h5py.Dataset):
                raise NetworkFormatError(f"{path}: {group!r} is a dataset, not a group")
            return _read_group(item, path)


def read_network_arrays(path: str | os.PathLike, net_id: str) -> dict[str, np.ndarray]:
    """The arrays of one network from ``parameters/<net_id>`` of a PEtab SciML HDF5 file.

    Returns:
        ``{"<layer id>.<array name>": array}`` (PyTorch state-dict names and layout), as
        :func:`with_network_arrays` takes them.

    Raises:
        NetworkFormatError: the file cannot be opened, or it has no
            ``parameters/<net_id>`` group (the message lists the networks it has).
    """
    with reraise_as(NetworkFormatError, f"HDF5 file {str(path)!r}", "HDF5 file"):
        with _open(path) as f:
            params = _member(f, "parameters", path) if "parameters" in f else None
            if not isinstance(params, h5py.Group) or net_id not in params:
                have = sorted(params.keys()) if isinstance(params, h5py.Group) else []
                raise NetworkFormatError(
                    f"HDF5 file {str(path)!r} has no group 'parameters/{net_id}' "
                    f"(networks in the file: {have})"
                )
            out: dict[str, np.ndarray] = {}
            net = _member(params, net_id, path)
            if not isinstance(net, h5py.Group):
                raise NetworkFormatError(f"HDF5 file {str(path)!r}: parameters/{net_id} is "
                                         "not a group.")

            def visit(group: h5py.Group, prefix: str, depth: int) -> None:
                for name in list(group.keys()):
                    item = _member(group, name, path, depth)
                    full = f"{prefix}/{name}" if prefix else name
                    if isinstance(item, h5py.Dataset):
                        layer_id, _, array_name = full.rpartition("/")
                        key = f"{layer_id}.{array_name}" if layer_id else array_name
                        out[key] = _dataset(item, path)
                    elif isinstance(item, h5py.Group):
                        visit(item, full, depth + 1)

            visit(net, "", 0)
            return out


def write_network_arrays(
    path: str | os.PathLike, arrays_by_net: Mapping[str, Mapping[str, ArrayLike]]
) -> None:
    """Write network arrays to a PEtab SciML HDF5 file (overwriting it).

    Arguments:
        path: the file to write.
        arrays_by_net: ``{net id: {"<layer id>.<array name>": array}}``, e.g.
            ``{net.id: network_arrays(net)}``; arrays are written in PyTorch layout as
            float64 to ``parameters/<net id>/<layer id>/<array name>``, with the
            ``metadata/pytorch_format`` flag the standard's files carry.
    """
    with _open(path, "w") as f:
        f.create_dataset("metadata/pytorch_format", data=np.uint8(1))
        for net_id, arrays in arrays_by_net.items():
            for name, value in arrays.items():
                layer_id, _, array_name = str(name).rpartition(".")
                if not layer_id:
                    raise NetworkFormatError(
                        f"array name {name!r} of network {net_id!r} is not "
                        "'<layer id>.<array name>'"
                    )
                f.create_dataset(
                    f"parameters/{net_id}/{layer_id}/{array_name}",
                    data=np.asarray(value, dtype=np.float64),
                )
