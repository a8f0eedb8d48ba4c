"""Pooling layers (max, average, power-average, adaptive; 1-3d) with PyTorch semantics.

Pools act on the last 1-3 axes, so ``(N, C, *spatial)`` and unbatched
``(C, *spatial)`` inputs both work. Output sizes, ``ceil_mode``, ``count_include_pad``
and ``divisor_override`` follow PyTorch's CPU kernels exactly.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._torch_base import REQUIRED, AbstractTorchLayer, NetworkFormatError, ntuple


def _out_size(length: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    # torch's pooling_output_shape
    numerator = length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    return out


def _window_geometry(shape, kernel, stride, padding, dilation, ceil_mode, where):
    """Per spatial axis: (left pad, right pad incl. ceil-mode overhang)."""
    pads = []
    for length, k, s, p, d in zip(shape, kernel, stride, padding, dilation):
        out = _out_size(length, k, s, p, d, ceil_mode)
        if out < 1:
            raise NetworkFormatError(
                f"{where}: input of spatial shape {tuple(shape)} is too small for "
                f"kernel {kernel} (stride {stride}, padding {padding})"
            )
        extra = max(0, (out - 1) * s + d * (k - 1) + 1 - (length + 2 * p))
        pads.append((p, p + extra))
    return tuple(pads)


def _reduce(x, init, op, kernel, stride, dilation, pads):
    lead = x.ndim - len(kernel)
    return lax.reduce_window(
        x,
        np.asarray(init, x.dtype),
        op,
        (1,) * lead + tuple(kernel),
        (1,) * lead + tuple(stride),
        ((0, 0),) * lead + pads,
        window_dilation=(1,) * lead + tuple(dilation),
    )


def _avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor, where):
    n = len(kernel)
    spatial = x.shape[-n:]
    pads = _window_geometry(spatial, kernel, stride, padding, (1,) * n, ceil_mode, where)
    total = _reduce(x, 0.0, lax.add, kernel, stride, (1,) * n, pads)
    if divisor is not None:
        return total / divisor
    # torch divides by the window clipped to the padded input (count_include_pad) or to
    # the input itself; computed once on a static array of ones
    if count_include_pad:
        ones = np.ones(tuple(size + 2 * p for size, p in zip(spatial, padding)))
        count_pads = tuple((0, hi - lo) for lo, hi in pads)
    else:
        ones = np.ones(spatial)
        count_pads = pads
    count = _reduce(jnp.asarray(ones, x.dtype), 0.0, lax.add, kernel, stride, (1,) * n, count_pads)
    return total / jnp.reshape(count, (1,) * (x.ndim - n) + count.shape)


def _pool_signature(kind: str, n: int) -> tuple[tuple[str, Any], ...]:
    if kind == "MaxPool":
        return (
            ("kernel_size", REQUIRED),
            ("stride", None),
            ("padding", 0),
            ("dilation", 1),
            ("return_indices", False),
            ("ceil_mode", False),
        )
    if kind == "AvgPool":
        sig = (
            ("kernel_size", REQUIRED),
            ("stride", None),
            ("padding", 0),
            ("ceil_mode", False),
            ("count_include_pad", True),
        )
        return sig if n == 1 else sig + (("divisor_override", None),)
    if kind == "LPPool":
        return (
            ("norm_type", REQUIRED),
            ("kernel_size", REQUIRED),
            ("stride", None),
            ("ceil_mode", False),
        )
    if kind == "AdaptiveMaxPool":
        return (("output_size", REQUIRED), ("return_indices", False))
    return (("output_size", REQUIRED),)


class _AbstractPool(AbstractTorchLayer):
    array_names: ClassVar = ()

    @classmethod
    def build(cls, layer_type, args, where):
        layer = cls(layer_type=layer_type, args=args, where=where)
        layer.check()
        return layer

    def array_shapes(self):
        return {}

    def init_arrays(self, key):
        return {}

    @property
    def n(self) -> int:
        return int(self.layer_type[-2])

    def check(self) -> None:
        if self.args and dict(self.args).get("return_indices"):
            raise NetworkFormatError(
                f"{self.where}: {self.layer_type}(return_indices=True) is not supported"
            )

    def window(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        n = self.n
        kernel = ntuple(self.arg("kernel_size"), n, "kernel_size", self.where)
        stride = self.arg("stride")
        stride = kernel if stride is None else ntuple(stride, n, "stride", self.where)
        return kernel, stride


def _types(kind: str) -> dict[str, tuple[tuple[str, Any], ...]]:
    return {f"{kind}{n}d": _pool_signature(kind, n) for n in (1, 2, 3)}


class MaxPool(_AbstractPool):
    """``torch.nn.MaxPool1d/2d/3d`` (padding with -inf, dilation, ``ceil_mode``)."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)
    signatures: ClassVar = _types("MaxPool")

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        kernel, stride = self.window()
        padding = ntuple(self.arg("padding"), self.n, "padding", self.where)
        dilation = ntuple(self.arg("dilation"), self.n, "dilation", self.where)
        pads = _window_geometry(
            x.shape[-self.n :],
            kernel,
            stride,
            padding,
            dilation,
            self.arg("ceil_mode"),
            self.where,
        )
        return _reduce(x, -jnp.inf, lax.max, kernel, stride, dilation, pads)


class AvgPool(_AbstractPool):
    """``torch.nn.AvgPool1d/2d/3d`` (``ceil_mode``, ``count_include_pad``,
    ``divisor_override``)."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)
    signatures: ClassVar = _types("AvgPool")

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        kernel, stride = self.window()
        padding = ntuple(self.arg("padding"), self.n, "padding", self.where)
        divisor = dict(self.args).get("divisor_override")
        return _avg_pool(
            x,
            kernel,
            stride,
            padding,
            self.arg("ceil_mode"),
            self.arg("count_include_pad"),
            divisor,
            self.where,
        )


class LPPool(_AbstractPool):
    """``torch.nn.LPPool1d/2d/3d``: ``(sum over the window of x^p)^(1/p)``, computed as
    PyTorch does (average pool of ``x^p`` times the window size)."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)
    signatures: ClassVar = _types("LPPool")

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        kernel, stride = self.window()
        p = float(self.arg("norm_type"))
        out = _avg_pool(
            x**p,
            kernel,
            stride,
            (0,) * self.n,
            self.arg("ceil_mode"),
            True,
            None,
            self.where,
        )
        out = jnp.sign(out) * jnp.maximum(jnp.abs(out), 0.0) * math.prod(kernel)
        return out ** (1.0 / p)


def _adaptive_bounds(length: int, out: int) -> list[tuple[int, int]]:
    return [(i * length // out, -(-(i + 1) * length // out)) for i in range(out)]


class _AbstractAdaptivePool(_AbstractPool):
    def sizes(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n = self.n
        size = self.arg("output_size")
        if isinstance(size, int) or size is None:
            size = (size,) * n
        if len(size) != n:
            raise NetworkFormatError(
                f"{self.where}: output_size must be an int or {n} values, got {size!r}"
            )
        return tuple(length if s is None else int(s) for s, length in zip(size, shape))


class AdaptiveAvgPool(_AbstractAdaptivePool):
    """``torch.nn.AdaptiveAvgPool1d/2d/3d``: window ``i`` spans
    ``[floor(i L / out), ceil((i + 1) L / out))`` on each axis."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)
    signatures: ClassVar = _types("AdaptiveAvgPool")

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        n = self.n
        for axis, out in zip(range(x.ndim - n, x.ndim), self.sizes(x.shape[-n:])):
            length = x.shape[axis]
            matrix = np.zeros((out, length))
            for i, (lo, hi) in enumerate(_adaptive_bounds(length, out)):
                matrix[i, lo:hi] = 1.0 / (hi - lo)
            moved = jnp.moveaxis(x, axis, -1)
            pooled = jnp.einsum("...l,ol->...o", moved, jnp.asarray(matrix, x.dtype))
            x = jnp.moveaxis(pooled, -1, axis)
        return x


class AdaptiveMaxPool(_AbstractAdaptivePool):
    """``torch.nn.AdaptiveMaxPool1d/2d/3d`` (the windows of :class:`AdaptiveAvgPool`)."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)
    signatures: ClassVar = _types("AdaptiveMaxPool")

    def __call__(self, x, *, key=None):
        x = jnp.asarray(x)
        n = self.n
        for axis, out in zip(range(x.ndim - n, x.ndim), self.sizes(x.shape[-n:])):
            length = x.shape[axis]
            mask = np.zeros((out, length), dtype=bool)
            for i, (lo, hi) in enumerate(_adaptive_bounds(length, out)):
                mask[i, lo:hi] = True
            moved = jnp.moveaxis(x, axis, -1)[..., None, :]
            mask = np.reshape(mask, (1,) * (moved.ndim - 2) + mask.shape)
            pooled = jnp.max(jnp.where(mask, moved, -jnp.inf), axis=-1)
            x = jnp.moveaxis(pooled, -1, axis)
        return x
