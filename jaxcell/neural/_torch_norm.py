"""Normalisation layers (batch, instance, layer, group) with PyTorch semantics.

Batch and instance norm use the statistics of the input they are given (PyTorch's
training mode, which is how the PEtab SciML reference outputs are computed) unless the
layer holds running statistics (``running_mean`` and ``running_var``, e.g. read from an
HDF5 file): then they use those (PyTorch's evaluation mode). Variances are biased
(divided by the number of elements), as PyTorch normalises.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ._torch_base import REQUIRED, AbstractTorchLayer, NetworkFormatError, freeze


def _normalise(x, axes, eps, mean=None, var=None):
    if mean is None:
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


def _norm_signature(track: bool, affine: bool) -> tuple[tuple[str, Any], ...]:
    # ``bias`` is not a torch argument of these layers, but the PEtab SciML exporter
    # writes it; False drops the bias of an affine layer.
    return (
        ("num_features", REQUIRED),
        ("eps", 1e-5),
        ("momentum", 0.1),
        ("affine", affine),
        ("track_running_stats", track),
        ("bias", True),
    )


class _AbstractChannelNorm(AbstractTorchLayer):
    array_names: ClassVar = ("weight", "bias", "running_mean", "running_var")

    @classmethod
    def build(cls, layer_type, args, where):
        a = dict(args)
        c = int(a["num_features"])
        weight = jnp.ones((c,)) if a["affine"] else None
        bias = jnp.zeros((c,)) if a["affine"] and a["bias"] else None
        return cls(
            weight=weight,
            bias=bias,
            running_mean=None,
            running_var=None,
            layer_type=layer_type,
            args=args,
            where=where,
        )

    def array_shapes(self):
        c = self.arg("num_features")
        shapes = {}
        if self.arg("affine"):
            shapes["weight"] = (c,)
            if self.arg("bias"):
                shapes["bias"] = (c,)
        if self.arg("track_running_stats"):
            shapes["running_mean"] = (c,)
            shapes["running_var"] = (c,)
        return shapes

    def init_arrays(self, key):
        c = self.arg("num_features")
        out = {}
        if self.arg("affine"):
            out["weight"] = jnp.ones((c,))
            if self.arg("bias"):
                out["bias"] = jnp.zeros((c,))
        return out

    def affine(self, y: Array, channel_axis: int) -> Array:
        shape = (1,) * channel_axis + (-1,) + (1,) * (y.ndim - channel_axis - 1)
        if self.weight is not None:
            y = y * jnp.reshape(self.weight, shape)
        if self.bias is not None:
            y = y + jnp.reshape(self.bias, shape)
        return y

    def running(self, ndim: int, channel_axis: int):
        if self.running_mean is None or self.running_var is None:
            return None, None
        shape = (1,) * channel_axis + (-1,) + (1,) * (ndim - channel_axis - 1)
        return jnp.reshape(self.running_mean, shape), jnp.reshape(self.running_var, shape)


class BatchNorm(_AbstractChannelNorm):
    """``torch.nn.BatchNorm1d/2d/3d`` on ``(N, C, *spatial)`` (``BatchNorm1d``: also
    ``(N, C)``): statistics over all axes but the channel axis."""

    weight: Array | None
    bias: Array | None
    running_mean: Array | None
    running_var: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {f"BatchNorm{n}d": _norm_signature(True, True) for n in (1, 2, 3)}

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        n = int(self.layer_type[-2])
        allowed = (2, 3) if n == 1 else (n + 2,)
        if x.ndim not in allowed:
            raise NetworkFormatError(
                f"{self.where}: {self.layer_type} expects an input with {allowed} axes "
                f"(batch, channels, ...), got shape {x.shape}"
            )
        axes = (0,) + tuple(range(2, x.ndim))
        mean, var = self.running(x.ndim, 1)
        return self.affine(_normalise(x, axes, self.arg("eps"), mean, var), 1)


class InstanceNorm(_AbstractChannelNorm):
    """``torch.nn.InstanceNorm1d/2d/3d`` on ``(N, C, *spatial)`` or unbatched
    ``(C, *spatial)``: statistics per sample and channel over the spatial axes."""

    weight: Array | None
    bias: Array | None
    running_mean: Array | None
    running_var: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {f"InstanceNorm{n}d": _norm_signature(False, False) for n in (1, 2, 3)}

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        n = int(self.layer_type[-2])
        if x.ndim not in (n + 1, n + 2):
            raise NetworkFormatError(
                f"{self.where}: {self.layer_type} expects {n + 1} or {n + 2} axes, "
                f"got shape {x.shape}"
            )
        channel_axis = x.ndim - n - 1
        axes = tuple(range(x.ndim - n, x.ndim))
        mean, var = self.running(x.ndim, channel_axis)
        y = _normalise(x, axes, self.arg("eps"), mean, var)
        return self.affine(y, channel_axis)


class LayerNorm(AbstractTorchLayer):
    """``torch.nn.LayerNorm``: statistics over the last ``len(normalized_shape)`` axes;
    ``weight`` and ``bias`` have shape ``normalized_shape``."""

    weight: Array | None
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {
        "LayerNorm": (
            ("normalized_shape", REQUIRED),
            ("eps", 1e-5),
            ("elementwise_affine", True),
            ("bias", True),
        )
    }
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        layer = cls(weight=None, bias=None, layer_type=layer_type, args=args, where=where)
        shapes = layer.array_shapes()
        weight = jnp.ones(shapes["weight"]) if "weight" in shapes else None
        bias = jnp.zeros(shapes["bias"]) if "bias" in shapes else None
        return cls(weight=weight, bias=bias, layer_type=layer_type, args=args, where=where)

    @property
    def shape(self) -> tuple[int, ...]:
        shape = self.arg("normalized_shape")
        return (int(shape),) if isinstance(shape, int) else tuple(freeze(shape))

    def array_shapes(self):
        shapes = {}
        if self.arg("elementwise_affine"):
            shapes["weight"] = self.shape
            if self.arg("bias"):
                shapes["bias"] = self.shape
        return shapes

    def init_arrays(self, key):
        shapes = self.array_shapes()
        return {
            name: (jnp.ones if name == "weight" else jnp.zeros)(shape)
            for name, shape in shapes.items()
        }

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        shape = self.shape
        if x.shape[x.ndim - len(shape) :] != shape:
            raise NetworkFormatError(
                f"{self.where}: LayerNorm{list(shape)} got an input of shape {x.shape}"
            )
        axes = tuple(range(x.ndim - len(shape), x.ndim))
        y = _normalise(x, axes, self.arg("eps"))
        lead = (1,) * (x.ndim - len(shape))
        if self.weight is not None:
            y = y * jnp.reshape(self.weight, lead + shape)
        if self.bias is not None:
            y = y + jnp.reshape(self.bias, lead + shape)
        return y


class GroupNorm(AbstractTorchLayer):
    """``torch.nn.GroupNorm(num_groups, num_channels)`` on ``(N, C, *spatial)``."""

    weight: Array | None
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {
        "GroupNorm": (
            ("num_groups", REQUIRED),
            ("num_channels", REQUIRED),
            ("eps", 1e-5),
            ("affine", True),
        )
    }
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        a = dict(args)
        g, c = int(a["num_groups"]), int(a["num_channels"])
        if g < 1 or c % g:
            raise NetworkFormatError(
                f"{where}: num_channels={c} must be divisible by num_groups={g}"
            )
        if a["affine"]:
            return cls(
                weight=jnp.ones((c,)),
                bias=jnp.zeros((c,)),
                layer_type=layer_type,
                args=args,
                where=where,
            )
        return cls(weight=None, bias=None, layer_type=layer_type, args=args, where=where)

    def array_shapes(self):
        c = self.arg("num_channels")
        return {"weight": (c,), "bias": (c,)} if self.arg("affine") else {}

    def init_arrays(self, key):
        c = self.arg("num_channels")
        return {"weight": jnp.ones((c,)), "bias": jnp.zeros((c,))} if self.arg("affine") else {}

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        g = self.arg("num_groups")
        grouped = jnp.reshape(x, (x.shape[0], g, -1))
        y = jnp.reshape(_normalise(grouped, (2,), self.arg("eps")), x.shape)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.weight is not None:
            y = y * jnp.reshape(self.weight, shape) + jnp.reshape(self.bias, shape)
        return y
