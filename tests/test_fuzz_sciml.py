"""Fuzzing the PEtab SciML readers: network YAML files (``jaxcell.neural.load_network``)
and HDF5 array files (``read_network_arrays``, ``read_hdf5_arrays``), seeded from
``tests/data/petab-sciml``.

Property (``fuzz_helpers.reads_cleanly``): a mutated file reads, or raises a
``NetworkFormatError`` (a ``JaxcellError``) naming the file; never another exception,
never a hang, and absurd sizes (a layer of 10**12 units, a dataset of 10**12 elements)
are refused before anything is allocated.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml
from fuzz_helpers import COUNTS, DATA, byte_mutation, fuzz_settings, reads_cleanly
from hypothesis import given
from hypothesis import strategies as st

from jaxcell.neural import (
    NetworkFormatError,
    load_network,
    read_hdf5_arrays,
    read_network_arrays,
)

SCIML = DATA / "petab-sciml"
NETS = sorted(SCIML.glob("ml_model_import/*/net.yaml"))
H5 = sorted(SCIML.glob("ml_model_import/*/net_ps_1.hdf5"))[:4] + sorted(
    SCIML.glob("ml_model_import/*/net_input_1.hdf5"))[:2]


def _needs(files):
    if not files:
        pytest.skip(f"no PEtab SciML test files under {SCIML}")


@pytest.mark.parametrize("n", COUNTS)
def test_network_yaml_bytes(tmp_path, n):
    _needs(NETS)

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        seed = NETS[data.draw(st.integers(0, len(NETS) - 1))]
        path = tmp_path / "mutated_net.yaml"
        path.write_bytes(data.draw(byte_mutation(seed.read_bytes())))
        reads_cleanly(lambda: load_network(path), "mutated_net.yaml")

    check()


_VALUES = [None, -1, 0, 10**12, 2**63, 1.5, "abc", [], {}, [1, 2], True, "Linear",
           float("nan"), float("inf"), "x" * 200]


def _entries(spec, prefix=()):
    if isinstance(spec, dict):
        for k, v in spec.items():
            yield (*prefix, k)
            yield from _entries(v, (*prefix, k))
    elif isinstance(spec, list):
        for i, v in enumerate(spec):
            yield (*prefix, i)
            yield from _entries(v, (*prefix, i))


@pytest.mark.parametrize("n", COUNTS)
def test_network_yaml_structure(tmp_path, n):
    """Any entry replaced by a wrong type, a huge or negative size, or deleted; ids
    duplicated."""
    _needs(NETS)

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        seed = NETS[data.draw(st.integers(0, len(NETS) - 1))]
        spec = yaml.safe_load(seed.read_text())
        entries = list(_entries(spec))
        where = entries[data.draw(st.integers(0, len(entries) - 1))]
        node = spec
        for k in where[:-1]:
            node = node[k]
        if data.draw(st.booleans()) and isinstance(node, dict):
            del node[where[-1]]
        else:
            node[where[-1]] = data.draw(st.sampled_from(_VALUES))
        path = tmp_path / "structure_net.yaml"
        path.write_text(yaml.safe_dump(spec))
        reads_cleanly(lambda: load_network(path), "structure_net.yaml")

    check()


@pytest.mark.parametrize("args", [{"in_features": 10**6, "out_features": 10**6},
                                  {"in_features": 10**12, "out_features": 1},
                                  {"in_features": -3, "out_features": 2},
                                  {"in_features": 2**70, "out_features": 2}])
def test_huge_layers_are_refused_before_allocating(tmp_path, args):
    spec = {"nn_model_id": "net", "inputs": [{"input_id": "x"}],
            "layers": [{"layer_id": "big", "layer_type": "Linear", "args": args}],
            "forward": [{"name": "x", "op": "placeholder", "target": "x"},
                        {"name": "big", "op": "call_module", "target": "big",
                         "args": ["x"]},
                        {"name": "output", "op": "output", "target": "output",
                         "args": ["big"]}]}
    path = tmp_path / "huge_net.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(NetworkFormatError, match=r"huge_net\.yaml.*layer 'big'"):
        load_network(path)


def test_yaml_aliases_and_nesting_are_refused(tmp_path):
    path = tmp_path / "alias_net.yaml"
    path.write_text("a: &x [1, 2]\nb: [*x, *x]\n")
    with pytest.raises(NetworkFormatError, match=r"alias_net\.yaml.*alias"):
        load_network(path)
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(NetworkFormatError, match=r"alias_net\.yaml.*nested"):
        load_network(path)


@pytest.mark.parametrize("n", COUNTS)
def test_hdf5_bytes(tmp_path, n):
    """Truncated and byte-mutated HDF5 files (the library's own checks, and ours)."""
    _needs(H5)

    @fuzz_settings(n)
    @given(st.data())
    def check(data):
        seed = H5[data.draw(st.integers(0, len(H5) - 1))]
        path = tmp_path / "mutated_arrays.hdf5"
        raw = seed.read_bytes()
        mutated = data.draw(byte_mutation(raw))
        path.write_bytes(mutated)
        if "net_ps" in seed.name:
            with h5py.File(seed, "r") as f:
                nets = list(f["parameters"].keys())
            reads_cleanly(lambda: read_network_arrays(path, nets[0]), "mutated_arrays.hdf5")
        else:
            reads_cleanly(lambda: read_hdf5_arrays(path, "inputs"), "mutated_arrays.hdf5")

    check()


def test_hdf5_hostile_datasets(tmp_path):
    """Absurd shapes (never allocated), strings, external links and external storage
    (data in another file) are refused with the file and dataset named."""
    outside = tmp_path / "outside.hdf5"
    with h5py.File(outside, "w") as f:
        f["secret"] = np.arange(3.0)
    cases = {
        "huge": lambda f: f.create_dataset("parameters/net/l/weight", shape=(10**6, 10**6),
                                           dtype="f8"),
        "strings": lambda f: f.create_dataset("parameters/net/l/weight", data=["a", "b"]),
        "link": lambda f: f.create_group("parameters/net/l").__setitem__(
            "weight", h5py.ExternalLink(str(outside), "secret")),
        "external": lambda f: f.create_dataset(
            "parameters/net/l/weight", shape=(3,), dtype="f8",
            external=[(str(outside), 0, 24)]),
    }
    for name, make in cases.items():
        path = tmp_path / f"{name}_arrays.hdf5"
        with h5py.File(path, "w") as f:
            make(f)
        with pytest.raises(NetworkFormatError, match=rf"{name}_arrays\.hdf5") as info:
            read_network_arrays(path, "net")
        assert "weight" in str(info.value) or "link" in str(info.value)
    with pytest.raises(NetworkFormatError, match="no group"):
        read_network_arrays(path, "other")
    empty = tmp_path / "empty.hdf5"
    empty.write_bytes(b"")
    with pytest.raises(NetworkFormatError, match="empty.hdf5"):
        read_hdf5_arrays(empty, "inputs")
