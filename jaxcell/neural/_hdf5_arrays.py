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

from ._torch_base import NetworkFormatError


def _open(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise NetworkFormatError(f"cannot open HDF5 file {str(path)!r}: {err}") from None


def _read_group(group: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, item in group.items():
        if isinstance(item, h5py.Dataset):
            out[name] = np.asarray(item[()])
        elif set(item.keys()) == {"data"} and isinstance(item["data"], h5py.Dataset):
            out[name] = np.asarray(item["data"][()])
        else:
            out[name] = _read_group(item)
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
    with _open(path) as f:
        if group not in f:
            raise NetworkFormatError(
                f"HDF5 file {str(path)!r} has no group {group!r}; top-level groups: "
                f"{sorted(f.keys())}"
            )
        item = f[group]
        if isinstance(item, h5py.Dataset):
            raise NetworkFormatError(f"{path}: {group!r} is a dataset, not a group")
        return _read_group(item)


def read_network_arrays(path: str | os.PathLike, net_id: str) -> dict[str, np.ndarray]:
    """The arrays of one network from ``parameters/<net_id>`` of a PEtab SciML HDF5 file.

    Returns:
        ``{"<layer id>.<array name>": array}`` (PyTorch state-dict names and layout), as
        :func:`with_network_arrays` takes them.

    Raises:
        NetworkFormatError: the file cannot be opened, or it has no
            ``parameters/<net_id>`` group (the message lists the networks it has).
    """
    with _open(path) as f:
        params = f.get("parameters")
        if not isinstance(params, h5py.Group) or net_id not in params:
            have = sorted(params.keys()) if isinstance(params, h5py.Group) else []
            raise NetworkFormatError(
                f"HDF5 file {str(path)!r} has no group 'parameters/{net_id}' "
                f"(networks in the file: {have})"
            )
        out: dict[str, np.ndarray] = {}

        def visit(name: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset):
                layer_id, _, array_name = name.rpartition("/")
                key = f"{layer_id}.{array_name}" if layer_id else array_name
                out[key] = np.asarray(item[()])

        params[net_id].visititems(visit)
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
