"""Dense, bilinear, flatten, activation and dropout layers with PyTorch semantics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from . import _torch_functional as F
from ._torch_base import REQUIRED, AbstractTorchLayer, NetworkFormatError


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], bound: float) -> Array:
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


class Linear(AbstractTorchLayer):
    """``torch.nn.Linear``: ``y = x W^T + b`` with ``weight`` (out, in), ``bias`` (out,)."""

    weight: Array
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {
        "Linear": (("in_features", REQUIRED), ("out_features", REQUIRED), ("bias", True))
    }
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        a = dict(args)
        n_in, n_out = int(a["in_features"]), int(a["out_features"])
        bias = jnp.zeros((n_out,)) if a["bias"] else None
        return cls(
            weight=jnp.zeros((n_out, n_in)),
            bias=bias,
            layer_type=layer_type,
            args=args,
            where=where,
        )

    def array_shapes(self):
        n_in, n_out = self.arg("in_features"), self.arg("out_features")
        shapes = {"weight": (n_out, n_in)}
        if self.arg("bias"):
            shapes["bias"] = (n_out,)
        return shapes

    def init_arrays(self, key):
        bound = 1.0 / math.sqrt(self.arg("in_features")) if self.arg("in_features") else 0.0
        kw, kb = jax.random.split(key)
        return {
            name: _uniform(k, shape, bound)
            for (name, shape), k in zip(self.array_shapes().items(), (kw, kb))
        }

    def __call__(self, x, *, key=None):
        y = jnp.einsum("...i,oi->...o", x, self.weight)
        return y if self.bias is None else y + jnp.reshape(self.bias, (1,) * (y.ndim - 1) + (-1,))


class Bilinear(AbstractTorchLayer):
    """``torch.nn.Bilinear``: ``y_k = x_1^T A_k x_2 + b_k``, ``weight`` (out, in1, in2)."""

    weight: Array
    bias: Array | None
    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {
        "Bilinear": (
            ("in1_features", REQUIRED),
            ("in2_features", REQUIRED),
            ("out_features", REQUIRED),
            ("bias", True),
        )
    }
    array_names: ClassVar = ("weight", "bias")

    @classmethod
    def build(cls, layer_type, args, where):
        a = dict(args)
        shape = (int(a["out_features"]), int(a["in1_features"]), int(a["in2_features"]))
        bias = jnp.zeros(shape[:1]) if a["bias"] else None
        return cls(
            weight=jnp.zeros(shape), bias=bias, layer_type=layer_type, args=args, where=where
        )

    def array_shapes(self):
        out = self.arg("out_features")
        shapes = {"weight": (out, self.arg("in1_features"), self.arg("in2_features"))}
        if self.arg("bias"):
            shapes["bias"] = (out,)
        return shapes

    def init_arrays(self, key):
        bound = 1.0 / math.sqrt(self.arg("in1_features"))
        kw, kb = jax.random.split(key)
        return {
            name: _uniform(k, shape, bound)
            for (name, shape), k in zip(self.array_shapes().items(), (kw, kb))
        }

    def __call__(self, x1, x2, *, key=None):
        y = jnp.einsum("...i,kij,...j->...k", x1, self.weight, x2)
        return y if self.bias is None else y + jnp.reshape(self.bias, (1,) * (y.ndim - 1) + (-1,))


class Flatten(AbstractTorchLayer):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {"Flatten": (("start_dim", 1), ("end_dim", -1))}
    array_names: ClassVar = ()

    @classmethod
    def build(cls, layer_type, args, where):
        return cls(layer_type=layer_type, args=args, where=where)

    def array_shapes(self):
        return {}

    def init_arrays(self, key):
        return {}

    def __call__(self, x, *, key=None):
        return F.flatten(x, self.arg("start_dim"), self.arg("end_dim"))


_INPLACE = (("inplace", False),)

#: activation module type -> (function, constructor signature)
_ACTIVATION_MODULES: dict[str, tuple[Callable[..., Array], tuple]] = {
    "ReLU": (F.relu, _INPLACE),
    "ReLU6": (F.relu6, _INPLACE),
    "Hardtanh": (F.hardtanh, (("min_val", -1.0), ("max_val", 1.0), ("inplace", False))),
    "Hardswish": (F.hardswish, _INPLACE),
    "Hardsigmoid": (F.hardsigmoid, _INPLACE),
    "SELU": (F.selu, _INPLACE),
    "ELU": (F.elu, (("alpha", 1.0), ("inplace", False))),
    "CELU": (F.celu, (("alpha", 1.0), ("inplace", False))),
    "SiLU": (F.silu, _INPLACE),
    "LeakyReLU": (F.leaky_relu, (("negative_slope", 0.01), ("inplace", False))),
    "GELU": (F.gelu, (("approximate", "none"),)),
    "LogSigmoid": (F.logsigmoid, ()),
    "Tanhshrink": (F.tanhshrink, ()),
    "Softsign": (F.softsign, ()),
    "Softplus": (F.softplus, (("beta", 1.0), ("threshold", 20.0))),
    "Tanh": (F.tanh, ()),
    "Sigmoid": (F.sigmoid, ()),
    "Mish": (F.mish, _INPLACE),
    "Softmax": (F.softmax, (("dim", None),)),
    "LogSoftmax": (F.log_softmax, (("dim", None),)),
    "Identity": (F.identity, ()),
}


class Activation(AbstractTorchLayer):
    """An activation used as a module (``torch.nn.ReLU()``, ``torch.nn.Softmax(dim)``...)."""

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {name: sig for name, (_, sig) in _ACTIVATION_MODULES.items()}
    array_names: ClassVar = ()

    @classmethod
    def build(cls, layer_type, args, where):
        return cls(layer_type=layer_type, args=args, where=where)

    def array_shapes(self):
        return {}

    def init_arrays(self, key):
        return {}

    def __call__(self, x, *, key=None):
        fn = _ACTIVATION_MODULES[self.layer_type][0]
        return fn(x, **dict(self.args))


# SELU's negative saturation value -scale*alpha (torch's alpha_dropout constant)
_ALPHA_DROPOUT = 1.7580993408473766
_P = (("p", 0.5), ("inplace", False))


class Dropout(AbstractTorchLayer):
    """PyTorch dropout layers: ``Dropout``, ``Dropout1d/2d/3d`` (whole channels),
    ``AlphaDropout`` and ``FeatureAlphaDropout`` (SELU-preserving).

    Identity when called without a key (PyTorch's eval mode); with a key, PyTorch's
    training-mode behaviour: elements (or channels) are kept with probability
    ``1 - p`` and scaled by ``1 / (1 - p)``; the alpha variants set dropped elements to
    SELU's saturation value and apply the affine correction of Klambauer et al. (2017).
    As in PyTorch, ``Dropout2d`` reads a 3-axis input as ``(N, C, L)``, while
    ``Dropout1d`` and ``Dropout3d`` read an input one axis short as unbatched.

    References:
        Srivastava, N. et al. (2014). Dropout: a simple way to prevent neural networks
        from overfitting. JMLR 15, 1929-1958.
        Klambauer, G. et al. (2017). Self-normalizing neural networks. NeurIPS 30.
    """

    layer_type: str = eqx.field(static=True)
    args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    where: str = eqx.field(static=True)

    signatures: ClassVar = {
        name: _P
        for name in (
            "Dropout",
            "Dropout1d",
            "Dropout2d",
            "Dropout3d",
            "AlphaDropout",
            "FeatureAlphaDropout",
        )
    }
    array_names: ClassVar = ()

    @classmethod
    def build(cls, layer_type, args, where):
        p = dict(args)["p"]
        if not 0.0 <= float(p) <= 1.0:
            raise NetworkFormatError(f"{where}: dropout probability p={p} is not in [0, 1]")
        return cls(layer_type=layer_type, args=args, where=where)

    def array_shapes(self):
        return {}

    def init_arrays(self, key):
        return {}

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        kind = self.layer_type
        if kind in ("Dropout", "AlphaDropout"):
            return shape
        unbatched = (kind == "Dropout1d" and len(shape) == 2) or (
            kind == "Dropout3d" and len(shape) == 4
        )
        n_lead = 1 if unbatched else 2
        return shape[:n_lead] + (1,) * (len(shape) - n_lead)

    def __call__(self, x, *, key=None):
        p = float(self.arg("p"))
        x = jnp.asarray(x)
        if key is None or p == 0.0:
            return x
        if p == 1.0:
            return jnp.zeros_like(x)
        keep = jax.random.bernoulli(key, 1.0 - p, self._mask_shape(x.shape))
        if self.layer_type in ("AlphaDropout", "FeatureAlphaDropout"):
            a = 1.0 / math.sqrt((_ALPHA_DROPOUT**2 * p + 1.0) * (1.0 - p))
            b = (keep - 1.0) * _ALPHA_DROPOUT * a + _ALPHA_DROPOUT * a * p
            return x * (keep * a) + b
        return jnp.where(keep, x / (1.0 - p), 0.0)
