"""Read and write PEtab SciML neural-network YAML files.

The format (PEtab SciML ``NNModel``) is a ``torch.fx`` graph as data::

    nn_model_id: net0
    inputs: [{input_id: input0}]
    layers: [{layer_id: layer1, layer_type: Linear, args: {in_features: 2, ...}}]
    forward:
      - {name: net_input, op: placeholder, target: net_input, args: [], kwargs: {}}
      - {name: layer1, op: call_module, target: layer1, args: [net_input], kwargs: {}}
      - {name: tanh, op: call_method, target: tanh, args: [layer1], kwargs: {}}
      - {name: output, op: output, target: output, args: [tanh], kwargs: {}}

Layer types and arguments are PyTorch's. Nothing read from a file is evaluated: every
layer type, function and method name is looked up in fixed tables, and anything else is
a :class:`NetworkFormatError`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .._safe_io import MAX_ARRAY_ELEMENTS, load_yaml, reraise_as
from ._network import GraphNode, Network, NodeRef
from ._torch_base import AbstractTorchLayer, NetworkFormatError, freeze
from ._torch_conv import Conv, ConvTranspose
from ._torch_functional import FUNCTIONS, METHODS
from ._torch_layers import Activation, Bilinear, Dropout, Flatten, Linear
from ._torch_norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from ._torch_pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, LPPool, MaxPool

_LAYER_CLASSES: tuple[type[AbstractTorchLayer], ...] = (
    Linear,
    Bilinear,
    Flatten,
    Activation,
    Dropout,
    Conv,
    ConvTranspose,
    MaxPool,
    AvgPool,
    LPPool,
    AdaptiveMaxPool,
    AdaptiveAvgPool,
    BatchNorm,
    InstanceNorm,
    LayerNorm,
    GroupNorm,
)

#: PyTorch layer type -> the class that implements it
LAYER_TYPES: dict[str, type[AbstractTorchLayer]] = {
    layer_type: cls for cls in _LAYER_CLASSES for layer_type in cls.signatures
}
_OPS = ("placeholder", "call_module", "call_function", "call_method", "output")


def _to_refs(value: Any, names: set[str]) -> Any:
    if isinstance(value, str) and value in names:
        return NodeRef(value)
    if isinstance(value, (list, tuple)):
        return tuple(_to_refs(v, names) for v in value)
    return freeze(value)


def _from_refs(value: Any) -> Any:
    if isinstance(value, NodeRef):
        return value.name
    if isinstance(value, tuple):
        return [_from_refs(v) for v in value]
    return value


def _check_bind(fn, args, kwargs, where: str, what: str) -> None:
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as err:
        raise NetworkFormatError(f"{where}: {what} cannot take these arguments ({err})") from None


def _read_source(source: str | os.PathLike | Mapping) -> tuple[dict, str]:
    if isinstance(source, Mapping):
        return dict(source), "<network dict>"
    path = Path(source)
    if not path.exists():
        raise NetworkFormatError(f"cannot read network file {str(path)!r}: no such file")
    data = load_yaml(path, NetworkFormatError, "network file")
    if not isinstance(data, Mapping):
        raise NetworkFormatError(
            f"{path}: expected a mapping with nn_model_id, inputs, "
            f"layers and forward, got {type(data).__name__}"
        )
    return dict(data), str(path)


def _load_layers(data: Mapping, where: str) -> dict[str, AbstractTorchLayer]:
    layers: dict[str, AbstractTorchLayer] = {}
    total = 0
    for entry in data.get("layers") or []:
        if not isinstance(entry, Mapping) or "layer_id" not in entry or "layer_type" not in entry:
            raise NetworkFormatError(
                f"{where}: each layer needs layer_id and layer_type, got {entry!r}"
            )
        layer_id, layer_type = str(entry["layer_id"]), str(entry["layer_type"])
        if layer_id in layers:
            raise NetworkFormatError(f"{where}: layer id {layer_id!r} is used twice")
        cls = LAYER_TYPES.get(layer_type)
        if cls is None:
            raise NetworkFormatError(
                f"{where}: layer {layer_id!r} has unsupported layer type {layer_type!r}; "
                f"supported: {', '.join(sorted(LAYER_TYPES))}"
            )
        args = entry.get("args") or {}
        if not isinstance(args, Mapping):
            raise NetworkFormatError(f"{where}: args of layer {layer_id!r} must be a mapping")
        try:
            layers[layer_id] = cls.from_args(layer_type, args, f"layer {layer_id!r} ({layer_type})")
        except NetworkFormatError as err:
            raise NetworkFormatError(f"{where}: {err}") from None
        total += sum(int(a.size) for a in layers[layer_id].arrays().values())
        if total > MAX_ARRAY_ELEMENTS:
            raise NetworkFormatError(f"{where}: the layers up to {layer_id!r} hold {total} "
                                     f"numbers; at most {MAX_ARRAY_ELEMENTS} are accepted.")
    return layers


def _load_nodes(data: Mapping, layers: Mapping, n_inputs: int, where: str):
    nodes: list[GraphNode] = []
    names: set[str] = set()
    n_placeholders = 0
    has_output = False
    for entry in data.get("forward") or []:
        if not isinstance(entry, Mapping) or not {"name", "op", "target"} <= set(entry):
            raise NetworkFormatError(
                f"{where}: each forward node needs name, op and target, got {entry!r}"
            )
        name, op, target = str(entry["name"]), str(entry["op"]), str(entry["target"])
        node_where = f"{where}: forward node {name!r}"
        if op not in _OPS:
            raise NetworkFormatError(
                f"{node_where} has unsupported op {op!r}; expected one of {list(_OPS)}"
            )
        args = _to_refs(entry.get("args") or [], names)
        kwargs_in = entry.get("kwargs") or {}
        if not isinstance(kwargs_in, Mapping):
            raise NetworkFormatError(f"{node_where}: kwargs must be a mapping")
        kwargs = tuple((str(k), _to_refs(v, names)) for k, v in kwargs_in.items())
        fn = None
        if op == "placeholder":
            n_placeholders += 1
        elif op == "call_module":
            if target not in layers:
                raise NetworkFormatError(
                    f"{node_where} calls layer {target!r}, which is "
                    f"not among the layers {sorted(layers)}"
                )
            _check_bind(
                layers[target].__call__, args, dict(kwargs), node_where, f"layer {target!r}"
            )
        elif op in ("call_function", "call_method"):
            table = FUNCTIONS if op == "call_function" else METHODS
            fn = table.get(target)
            if fn is None:
                raise NetworkFormatError(
                    f"{node_where}: unsupported {op} target {target!r}; supported: "
                    f"{', '.join(sorted(table))}"
                )
            _check_bind(fn, args, dict(kwargs), node_where, f"{op} {target!r}")
        elif op == "output":
            if len(args) != 1:
                raise NetworkFormatError(f"{node_where}: output takes one argument")
            has_output = True
        nodes.append(GraphNode(name, op, target, args, kwargs, fn))
        names.add(name)
        if has_output:
            break
    if not has_output:
        raise NetworkFormatError(f"{where}: the forward graph has no output node")
    if n_placeholders != n_inputs:
        raise NetworkFormatError(
            f"{where}: the forward graph has {n_placeholders} placeholder node(s) but "
            f"{n_inputs} input(s) are declared under 'inputs'"
        )
    return tuple(nodes)


def load_network(source: str | os.PathLike | Mapping, *, net_id: str | None = None) -> Network:
    """Read a PEtab SciML neural-network YAML file (or its parsed mapping).

    Arguments:
        source: a path to the YAML file, or the already-parsed mapping.
        net_id: the id to give the network (default: the file's ``nn_model_id``), e.g.
            the id under which a PEtab SciML problem lists it.

    Returns:
        A :class:`Network` whose arrays are zeros (norm layers: PyTorch's ones and
        zeros); set them with :func:`with_network_arrays` (e.g. from
        :func:`read_network_arrays`) or :func:`init_network`.

    Raises:
        NetworkFormatError: a malformed file, an unknown layer type, activation,
            function, method or op, or arguments PyTorch would not accept; the message
            names the file, the layer or node and the feature.

    Examples:
        >>> from jaxcell.neural import load_network, with_network_arrays
        >>> net = load_network({
        ...     "nn_model_id": "net",
        ...     "inputs": [{"input_id": "x"}],
        ...     "layers": [{"layer_id": "lin", "layer_type": "Linear",
        ...                 "args": {"in_features": 2, "out_features": 1}}],
        ...     "forward": [
        ...         {"name": "x", "op": "placeholder", "target": "x"},
        ...         {"name": "lin", "op": "call_module", "target": "lin", "args": ["x"]},
        ...         {"name": "y", "op": "call_method", "target": "tanh", "args": ["lin"]},
        ...         {"name": "output", "op": "output", "target": "output", "args": ["y"]},
        ...     ],
        ... })
        >>> net = with_network_arrays(net, {"lin.weight": [[1.0, -1.0]], "lin.bias": [0.5]})
        >>> net([2.0, 2.0])
        Array([0.46211716], dtype=float64)
    """
    data, where = _read_source(source)
    with reraise_as(NetworkFormatError, where, "network"):
        return _build_network(data, where, net_id)


def _build_network(data: dict, where: str, net_id: str | None) -> Network:
    ident = net_id if net_id is not None else data.get("nn_model_id")
    if not ident:
        raise NetworkFormatError(f"{where}: no nn_model_id (and no net_id given)")
    inputs = data.get("inputs") or []
    input_ids = []
    for entry in inputs:
        if not isinstance(entry, Mapping) or "input_id" not in entry:
            raise NetworkFormatError(f"{where}: each input needs an input_id, got {entry!r}")
        input_ids.append(str(entry["input_id"]))
    layers = _load_layers(data, where)
    nodes = _load_nodes(data, layers, len(input_ids), where)
    return Network(
        layers=layers,
        id=str(ident),
        input_ids=tuple(input_ids),
        nodes=nodes,
        layer_ids=tuple(layers),
    )


def network_to_yaml(net: Network) -> dict[str, Any]:
    """The PEtab SciML YAML mapping of a network (constructor arguments with PyTorch's
    defaults filled in), such that ``load_network(network_to_yaml(net))`` has the same
    structure as ``net``."""
    return {
        "nn_model_id": net.id,
        "inputs": [{"input_id": i} for i in net.input_ids],
        "layers": [
            {
                "layer_id": layer_id,
                "layer_type": net.layers[layer_id].layer_type,
                "args": net.layers[layer_id].torch_args(),
            }
            for layer_id in net.layer_ids
        ],
        "forward": [
            {
                "name": node.name,
                "op": node.op,
                "target": node.target,
                "args": _from_refs(node.args),
                "kwargs": {k: _from_refs(v) for k, v in node.kwargs},
            }
            for node in net.nodes
        ],
    }


def write_network(net: Network, path: str | os.PathLike) -> None:
    """Write a network as a PEtab SciML YAML file (arrays go to HDF5:
    :func:`write_network_arrays`)."""
    with open(path, "w") as f:
        yaml.safe_dump(network_to_yaml(net), f, sort_keys=False)
