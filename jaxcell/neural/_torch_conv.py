"""Convolution and transposed-convolution layers (1-3d) with PyTorch semantics.

Weights keep PyTorch's layout: ``Conv`` ``(out, in / groups, *kernel)``,
``ConvTranspose`` ``(in, out / groups, *kernel)``; inputs are ``(N, C, *spatial)`` or
unbatched ``(C, *spatial)``, as in PyTorch. Both are one ``lax.conv_general_dilated``
(the transposed convolution as the input-dilated convolution with the flipped kernel).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ._torch_base import REQUIRED, AbstractTorchLayer, NetworkFormatError, ntuple, with_batch

_DIMENSION_NUMBERS = {
    1: ("NCH", "OIH", "NCH"),
    2: ("NCHW", "OIHW", "NCHW"),
    3: ("NCDHW", "OIDHW", "NCDHW"),
}
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _conv_signature(transpose: bool) -> tuple[tuple[str, Any], ...]:
    head = (
        ("in_channels", REQUIRED),
        ("out_channels", REQUIRED),
        ("kernel_size", REQUIRED),
        ("stride", 1),
        ("padding", 0),
    )
    if transpose:
        return head + (
            ("output_padding", 0),
            ("groups", 1),
            ("bias", True),
            ("dilation", 1),
            ("padding_mode", "zeros"),
        )
    return head + (("dilation", 1), ("groups", 1), ("bias", True), ("padding_mode", "zeros"))


class _ConvSpec(eqx.Module):
    """The parsed constructor arguments of a (transposed) convolution."""

    n: int
    c_in: int
    c_out: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    output_padding: tuple[int, ...]
    padding_mode: str


def _parse(layer_type: str, args: tuple, where: str) -> _ConvSpec:
    a = dict(args)
    n = int(layer_type[-2])
    transpose = layer_type.startswith("ConvTranspose")
    kernel = ntuple(a["kernel_size"], n, "kernel_size", where)
    stride = ntuple(a["stride"], n, "stride", where)
    dilation = ntuple(a["dilation"], n, "dilation", where)
    groups = int(a["groups"])
    c_in, c_out = int(a["in_channels"]), int(a["out_channels"])
    if groups < 1 or c_in % groups or c_out % groups:
        raise NetworkFormatError(
            f"{where}: in_channels={c_in} and out_channels={c_out} must both be "
            f"divisible by groups={groups}"
        )
    mode = a["padding_mode"]
    if mode != "zeros" and (transpose or mode not in _PAD_MODES):
        raise NetworkFormatError(
            f"{where}: padding_mode={mode!r} is not supported by {layer_type} "
            f"(expected 'zeros'{'' if transpose else ', ' + ', '.join(map(repr, _PAD_MODES))})"
        )
    padding = a["padding"]
    if padding == "valid":
        pairs = ((0, 0),) * n
    elif padding == "same" and not transpose:
        if any(s != 1 for s in stride):
            raise NetworkFormatError(f"{where}: padding='same' needs stride 1, got {stride}")
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        pairs = tuple((t // 2, t - t // 2) for t in total)
    else:
        pairs = tuple((p, p) for p in ntuple(padding, n, "padding", where))
    output_padding = (
        ntuple(a["output_padding"], n, "output_padding", where) if transpose else (0,) * n
    )
    return _ConvSpec(n, c_in, c_out, kernel, stride, pairs, dilation, groups, output_padding, mode)


class Conv(AbstractTorchLayer):
    """``torch.nn.Conv1d/2d/3d`` (cross-correlation; zeros, reflect, replicate or
    circular padding; strides, dilation and groups)."""

    weight: Array
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {f"Conv{n}d": _conv_signature(False) for n in (1, 2, 3)}
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        layer = cls(weight=jnp.zeros(()), bias=None, layer_type=layer_type, args=args, where=where)
        shapes = layer.array_shapes()
        bias = jnp.zeros(shapes["bias"]) if "bias" in shapes else None
        return cls(
            weight=jnp.zeros(shapes["weight"]),
            bias=bias,
            layer_type=layer_type,
            args=args,
            where=where,
        )

    @property
    def spec(self) -> _ConvSpec:
        return _parse(self.layer_type, self.args, self.where)

    def array_shapes(self):
        s = self.spec
        shapes = {"weight": (s.c_out, s.c_in // s.groups) + s.kernel}
        if self.arg("bias"):
            shapes["bias"] = (s.c_out,)
        return shapes

    def init_arrays(self, key):
        s = self.spec
        bound = 1.0 / math.sqrt(s.c_in // s.groups * math.prod(s.kernel))
        keys = jax.random.split(key)
        return {
            name: jax.random.uniform(k, shape, minval=-bound, maxval=bound)
            for (name, shape), k in zip(self.array_shapes().items(), keys)
        }

    def __call__(self, x, *, key=None):
        s = self.spec
        x, unbatched = with_batch(x, s.n, self.where)
        padding = s.padding
        if s.padding_mode != "zeros":
            x = jnp.pad(x, ((0, 0), (0, 0)) + padding, mode=_PAD_MODES[s.padding_mode])
            padding = ((0, 0),) * s.n
        y = lax.conv_general_dilated(
            x,
            self.weight,
            window_strides=s.stride,
            padding=padding,
            rhs_dilation=s.dilation,
            dimension_numbers=_DIMENSION_NUMBERS[s.n],
            feature_group_count=s.groups,
            precision=lax.Precision.HIGHEST,
        )
        if self.bias is not None:
            y = y + jnp.reshape(self.bias, (1, -1) + (1,) * s.n)
        return y[0] if unbatched else y


class ConvTranspose(AbstractTorchLayer):
    """``torch.nn.ConvTranspose1d/2d/3d`` (strides, padding, output_padding, dilation,
    groups): the adjoint of the matching convolution."""

    weight: Array
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {f"ConvTranspose{n}d": _conv_signature(True) for n in (1, 2, 3)}
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        layer = cls(weight=jnp.zeros(()), bias=None, layer_type=layer_type, args=args, where=where)
        shapes = layer.array_shapes()
        bias = jnp.zeros(shapes["bias"]) if "bias" in shapes else None
        return cls(
            weight=jnp.zeros(shapes["weight"]),
            bias=bias,
            layer_type=layer_type,
            args=args,
            where=where,
        )

    @property
    def spec(self) -> _ConvSpec:
        return _parse(self.layer_type, self.args, self.where)

    def array_shapes(self):
        s = self.spec
        shapes = {"weight": (s.c_in, s.c_out // s.groups) + s.kernel}
        if self.arg("bias"):
            shapes["bias"] = (s.c_out,)
        return shapes

    def init_arrays(self, key):
        # torch computes fan_in from weight.shape[1] (= out_channels / groups)
        s = self.spec
        bound = 1.0 / math.sqrt(s.c_out // s.groups * math.prod(s.kernel))
        keys = jax.random.split(key)
        return {
            name: jax.random.uniform(k, shape, minval=-bound, maxval=bound)
            for (name, shape), k in zip(self.array_shapes().items(), keys)
        }

    def __call__(self, x, *, key=None):
        s = self.spec
        x, unbatched = with_batch(x, s.n, self.where)
        g = s.groups
        # (in, out/g, *k) -> (out, in/g, *k), spatially flipped
        w = jnp.reshape(self.weight, (g, s.c_in // g, s.c_out // g) + s.kernel)
        w = jnp.swapaxes(w, 1, 2)
        w = jnp.reshape(w, (s.c_out, s.c_in // g) + s.kernel)
        w = jnp.flip(w, axis=tuple(range(2, 2 + s.n)))
        padding = tuple(
            (d * (k - 1) - lo, d * (k - 1) - hi + op)
            for d, k, (lo, hi), op in zip(s.dilation, s.kernel, s.padding, s.output_padding)
        )
        y = lax.conv_general_dilated(
            x,
            w,
            window_strides=(1,) * s.n,
            padding=padding,
            lhs_dilation=s.stride,
            rhs_dilation=s.dilation,
            dimension_numbers=_DIMENSION_NUMBERS[s.n],
            feature_group_count=g,
            precision=lax.Precision.HIGHEST,
        )
        if self.bias is not None:
            y = y + jnp.reshape(self.bias, (1, -1) + (1,) * s.n)
        return y[0] if unbatched else y
