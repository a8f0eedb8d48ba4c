"""A neural network read from a PEtab SciML YAML file, as one equinox module.

The layers are a dict of equinox modules whose arrays (PyTorch names and layouts) are
the pytree leaves; the forward graph (torch.fx-like nodes) and every constructor
argument are static. Calling the network walks the graph once at trace time, so under
``jax.jit`` it is one fused XLA program, differentiable in its inputs and weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from ._torch_base import AbstractTorchLayer, NetworkFormatError

#: arrays PyTorch keeps in state dicts that carry no numbers a forward pass needs
_IGNORED_ARRAYS = ("num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class NodeRef:
    """A reference to the value of an earlier node of the forward graph."""

    name: str


@dataclasses.dataclass(frozen=True)
class GraphNode:
    """One node of the forward graph (``torch.fx.Node``): ``op`` is ``placeholder``,
    ``call_module``, ``call_function``, ``call_method`` or ``output``; ``args`` and
    ``kwargs`` hold literals (lists as tuples) and :class:`NodeRef` s; ``fn`` is the
    JAX implementation of a function or method node."""

    name: str
    op: str
    target: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    fn: Callable[..., Any] | None = None


def _resolve(value: Any, env: Mapping[str, Any]) -> Any:
    if isinstance(value, NodeRef):
        return env[value.name]
    if isinstance(value, tuple):
        return tuple(_resolve(v, env) for v in value)
    return value


class Network(eqx.Module):
    """A neural network in the PEtab SciML format (a PyTorch model as data).

    Fields:
        layers: layer id -> layer module; trainable arrays are leaves with PyTorch
            names and shapes (``net.layers["layer1"].weight`` is ``(out, in)`` for a
            ``Linear`` layer).
        id: the network id (``nn_model_id``).
        input_ids: the ids of the network inputs, in the order ``__call__`` takes them.
        nodes: the forward graph (static).
        layer_ids: the layer ids in file order (static; used when writing).

    Call it with one array per input in PyTorch layout, exactly as stored in PEtab SciML
    HDF5 input files (with a batch axis if the file has one). Dropout is the identity
    without a ``key`` and random (PyTorch training semantics) with one. Batch norm uses
    the batch statistics unless the layer holds running statistics.

    A network holds its layers in a dict, so it is not hashable: compile with
    ``eqx.filter_jit`` (or close over the network) rather than passing it to
    ``jax.jit`` as a static argument.
    """

    layers: dict[str, AbstractTorchLayer]
    id: str = eqx.field(static=True)
    input_ids: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[GraphNode, ...] = eqx.field(static=True)
    layer_ids: tuple[str, ...] = eqx.field(static=True)

    def __call__(
        self, *inputs: ArrayLike, key: PRNGKeyArray | None = None
    ) -> Array | tuple[Array, ...]:
        if len(inputs) != len(self.input_ids):
            raise TypeError(
                f"network {self.id!r} takes {len(self.input_ids)} input(s) "
                f"{list(self.input_ids)}, got {len(inputs)}"
            )
        env: dict[str, Any] = {}
        n_placeholder = 0
        for index, node in enumerate(self.nodes):
            if node.op == "placeholder":
                env[node.name] = jnp.asarray(inputs[n_placeholder], dtype=float)
                n_placeholder += 1
                continue
            args = _resolve(node.args, env)
            kwargs = {k: _resolve(v, env) for k, v in node.kwargs}
            if node.op == "output":
                return args[0]
            if node.op == "call_module":
                subkey = None if key is None else jax.random.fold_in(key, index)
                env[node.name] = self.layers[node.target](*args, key=subkey, **kwargs)
            else:
                fn: Callable[..., Any] = node.fn  # type: ignore[assignment]
                env[node.name] = fn(*args, **kwargs)
        raise NetworkFormatError(f"network {self.id!r} has no output node")


def network_arrays(net: Network) -> dict[str, Array]:
    """The arrays of a network by PyTorch state-dict name (``"layer1.weight"`` of
    shape ``(out, in)`` for a ``Linear`` layer ``layer1``), in file order; absent
    optional arrays (a bias switched off, running statistics) are left out."""
    out = {}
    for layer_id in net.layer_ids:
        for name, value in net.layers[layer_id].arrays().items():
            out[f"{layer_id}.{name}"] = value
    return out


def _split_name(name: str, net: Network) -> tuple[str, str]:
    layer_id, _, array_name = name.rpartition(".")
    if not layer_id or layer_id not in net.layers:
        raise NetworkFormatError(
            f"network {net.id!r} has no layer for array {name!r} "
            f"(expected '<layer id>.<array name>' with a layer id in {list(net.layer_ids)})"
        )
    return layer_id, array_name


def with_network_arrays(net: Network, arrays: Mapping[str, ArrayLike]) -> Network:
    """A copy of ``net`` with some arrays replaced (PyTorch names and shapes).

    Arguments:
        net: the network.
        arrays: ``{"layer1.weight": ..., "layer1.bias": ...}``; arrays not given keep
            their values. Running statistics (``"norm1.running_mean"``,
            ``"norm1.running_var"``) may be given to batch/instance norm layers that
            track them; ``num_batches_tracked`` is ignored.

    Raises:
        NetworkFormatError: an unknown layer or array name, or a shape that differs from
            the PyTorch shape of that array (the message names both shapes).
    """
    updates: dict[str, dict[str, Array]] = {}
    for name, value in arrays.items():
        layer_id, array_name = _split_name(name, net)
        if array_name in _IGNORED_ARRAYS:
            continue
        layer = net.layers[layer_id]
        expected = layer.array_shapes()
        if array_name not in expected:
            raise NetworkFormatError(
                f"network {net.id!r}: layer {layer_id!r} ({layer.layer_type}) has no array "
                f"{array_name!r} (given as {name!r}); it holds {sorted(expected)}"
            )
        shape = tuple(np.shape(value))
        if shape != tuple(expected[array_name]):
            raise NetworkFormatError(
                f"network {net.id!r}: array {name!r} has shape {shape}, but layer "
                f"{layer_id!r} ({layer.layer_type}) needs shape {tuple(expected[array_name])}"
            )
        updates.setdefault(layer_id, {})[array_name] = jnp.asarray(value, dtype=float)
    layers = dict(net.layers)
    for layer_id, new in updates.items():
        layer = layers[layer_id]
        names = tuple(new)
        layer = eqx.tree_at(
            lambda m, names=names: tuple(getattr(m, n) for n in names),
            layer,
            tuple(new[n] for n in names),
            is_leaf=lambda x: x is None,
        )
        layers[layer_id] = layer
    return eqx.tree_at(lambda n: n.layers, net, layers)


def init_network(net: Network, key: PRNGKeyArray) -> Network:
    """PyTorch's default initialisation of every layer's trainable arrays.

    ``Linear``/``Conv``/``ConvTranspose``: weight and bias uniform in
    ``±1/sqrt(fan_in)`` (``kaiming_uniform_(a=sqrt(5))``, as ``reset_parameters``);
    ``Bilinear``: uniform in ``±1/sqrt(in1_features)``; norm layers: weight 1, bias 0.
    Running statistics are left as they are.
    """
    arrays = {}
    for index, layer_id in enumerate(net.layer_ids):
        layer = net.layers[layer_id]
        for name, value in layer.init_arrays(jax.random.fold_in(key, index)).items():
            arrays[f"{layer_id}.{name}"] = value
    return with_network_arrays(net, arrays)
