"""PyTorch functions and tensor methods that a PEtab SciML forward graph may call.

Each function keeps the PyTorch signature (argument names and defaults, ``inplace``
accepted and ignored) so that the ``args``/``kwargs`` of a ``call_function`` or
``call_method`` node bind to it exactly as they would to ``torch.nn.functional.<name>``,
``torch.<name>`` or ``Tensor.<name>``. Everything is written with ``jax.numpy`` and is
traceable, differentiable and float64-clean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array

# SELU constants (Klambauer et al. 2017), as in PyTorch.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# ---------------------------------------------------------------- activations


def relu(input: Array, inplace: bool = False) -> Array:
    return jnp.maximum(input, 0.0)


def relu6(input: Array, inplace: bool = False) -> Array:
    return jnp.clip(input, 0.0, 6.0)


def hardtanh(
    input: Array, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Array:
    return jnp.clip(input, min_val, max_val)


def hardswish(input: Array, inplace: bool = False) -> Array:
    return input * jnp.clip(input + 3.0, 0.0, 6.0) / 6.0


def hardsigmoid(input: Array, inplace: bool = False) -> Array:
    return jnp.clip(input + 3.0, 0.0, 6.0) / 6.0


def selu(input: Array, inplace: bool = False) -> Array:
    return _SELU_SCALE * elu(input, _SELU_ALPHA)


def elu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    neg = alpha * jnp.expm1(jnp.minimum(input, 0.0))
    return jnp.where(input > 0, input, neg)


def celu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    return jnp.maximum(input, 0.0) + jnp.minimum(
        0.0, alpha * jnp.expm1(jnp.minimum(input, 0.0) / alpha)
    )


def silu(input: Array, inplace: bool = False) -> Array:
    return input * jax.nn.sigmoid(input)


def leaky_relu(input: Array, negative_slope: float = 0.01, inplace: bool = False) -> Array:
    return jnp.where(input >= 0, input, negative_slope * input)


def gelu(input: Array, approximate: str = "none") -> Array:
    if approximate == "tanh":
        return jax.nn.gelu(input, approximate=True)
    return 0.5 * input * (1.0 + jax.scipy.special.erf(input / math.sqrt(2.0)))


def logsigmoid(input: Array) -> Array:
    return jax.nn.log_sigmoid(input)


def tanhshrink(input: Array) -> Array:
    return input - jnp.tanh(input)


def softsign(input: Array) -> Array:
    return input / (1.0 + jnp.abs(input))


def softplus(input: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    bx = beta * input
    safe = jnp.where(bx > threshold, 0.0, bx)
    return jnp.where(bx > threshold, input, jnp.log1p(jnp.exp(safe)) / beta)


def tanh(input: Array) -> Array:
    return jnp.tanh(input)


def sigmoid(input: Array) -> Array:
    return jax.nn.sigmoid(input)


def mish(input: Array, inplace: bool = False) -> Array:
    return input * jnp.tanh(softplus(input))


def _softmax_dim(ndim: int) -> int:
    # torch.nn.functional._get_softmax_dim (the legacy implicit-dim rule)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Array:
    dim = _softmax_dim(jnp.ndim(input)) if dim is None else dim
    return jax.nn.softmax(input, axis=dim)


def log_softmax(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Array:
    dim = _softmax_dim(jnp.ndim(input)) if dim is None else dim
    return jax.nn.log_softmax(input, axis=dim)


def identity(input: Array) -> Array:
    return input


#: activation name -> function (``torch.nn.functional`` names; ``log_sigmoid`` is the
#: ``__name__`` torch.fx records for ``F.logsigmoid``)
ACTIVATIONS: dict[str, Callable[..., Array]] = {
    "relu": relu,
    "relu6": relu6,
    "hardtanh": hardtanh,
    "hardswish": hardswish,
    "hardsigmoid": hardsigmoid,
    "selu": selu,
    "elu": elu,
    "celu": celu,
    "silu": silu,
    "leaky_relu": leaky_relu,
    "gelu": gelu,
    "logsigmoid": logsigmoid,
    "log_sigmoid": logsigmoid,
    "tanhshrink": tanhshrink,
    "softsign": softsign,
    "softplus": softplus,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "mish": mish,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


# ---------------------------------------------------------------- tensor functions


def _dims(dims: Sequence[int] | int) -> tuple[int, ...]:
    if isinstance(dims, int):
        return (dims,)
    return tuple(int(d) for d in dims)


def cat(tensors: Sequence[Array], dim: int = 0) -> Array:
    return jnp.concatenate(list(tensors), axis=dim)


def stack(tensors: Sequence[Array], dim: int = 0) -> Array:
    return jnp.stack(list(tensors), axis=dim)


def flatten(input: Array, start_dim: int = 0, end_dim: int = -1) -> Array:
    x = jnp.asarray(input)
    if x.ndim == 0:
        return jnp.reshape(x, (1,))
    start = start_dim % x.ndim
    end = end_dim % x.ndim
    shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
    return jnp.reshape(x, shape)


def reshape(input: Array, shape: Sequence[int]) -> Array:
    return jnp.reshape(input, _dims(shape))


def _broadcast(a, b) -> tuple[Array, Array]:
    # PyTorch broadcasts implicitly; do it explicitly (works under strict rank promotion)
    shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
    return jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)


def add(input: Array, other: Array, alpha: float = 1.0) -> Array:
    a, b = _broadcast(input, other)
    return a + alpha * b


def sub(input: Array, other: Array, alpha: float = 1.0) -> Array:
    a, b = _broadcast(input, other)
    return a - alpha * b


def mul(input: Array, other: Array) -> Array:
    a, b = _broadcast(input, other)
    return a * b


def div(input: Array, other: Array, rounding_mode: str | None = None) -> Array:
    a, b = _broadcast(input, other)
    if rounding_mode == "floor":
        return jnp.floor_divide(a, b)
    if rounding_mode == "trunc":
        return jnp.trunc(a / b)
    return a / b


def truediv(input: Array, other: Array) -> Array:
    a, b = _broadcast(input, other)
    return a / b


def neg(input: Array) -> Array:
    return -input


def pow(input: Array, exponent: Array | float) -> Array:  # noqa: A001
    a, b = _broadcast(input, exponent)
    return a**b


def matmul(input: Array, other: Array) -> Array:
    return jnp.matmul(input, other)


def transpose(input: Array, dim0: int, dim1: int) -> Array:
    return jnp.swapaxes(input, dim0, dim1)


def permute(input: Array, dims: Sequence[int]) -> Array:
    return jnp.transpose(input, _dims(dims))


def squeeze(input: Array, dim: int | Sequence[int] | None = None) -> Array:
    x = jnp.asarray(input)
    if dim is None:
        return jnp.squeeze(x)
    axes = tuple(d % x.ndim for d in _dims(dim) if x.shape[d] == 1)
    return jnp.squeeze(x, axis=axes) if axes else x


def unsqueeze(input: Array, dim: int) -> Array:
    return jnp.expand_dims(input, dim)


def sum(input: Array, dim=None, keepdim: bool = False, dtype=None) -> Array:  # noqa: A001
    axis = None if dim is None else _dims(dim)
    return jnp.sum(input, axis=axis, keepdims=keepdim)


def mean(input: Array, dim=None, keepdim: bool = False, dtype=None) -> Array:
    axis = None if dim is None else _dims(dim)
    return jnp.mean(input, axis=axis, keepdims=keepdim)


def clamp(input: Array, min=None, max=None) -> Array:  # noqa: A002
    return jnp.clip(input, min, max)


def exp(input: Array) -> Array:
    return jnp.exp(input)


def log(input: Array) -> Array:
    return jnp.log(input)


def sqrt(input: Array) -> Array:
    return jnp.sqrt(input)


def abs(input: Array) -> Array:  # noqa: A001
    return jnp.abs(input)


def sin(input: Array) -> Array:
    return jnp.sin(input)


def cos(input: Array) -> Array:
    return jnp.cos(input)


def getitem(input: Array, index: int | Sequence[int | None]) -> Array:
    if isinstance(index, (tuple, list)):
        return input[tuple(index)]
    return input[index]


#: ``call_function`` targets: activations, ``torch.<name>`` and ``operator.<name>``
FUNCTIONS: dict[str, Callable[..., Array]] = {
    **ACTIVATIONS,
    "cat": cat,
    "concat": cat,
    "concatenate": cat,
    "stack": stack,
    "flatten": flatten,
    "reshape": reshape,
    "add": add,
    "sub": sub,
    "subtract": sub,
    "mul": mul,
    "multiply": mul,
    "div": div,
    "divide": div,
    "truediv": truediv,
    "neg": neg,
    "pow": pow,
    "matmul": matmul,
    "transpose": transpose,
    "permute": permute,
    "squeeze": squeeze,
    "unsqueeze": unsqueeze,
    "sum": sum,
    "mean": mean,
    "clamp": clamp,
    "clip": clamp,
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "abs": abs,
    "sin": sin,
    "cos": cos,
    "getitem": getitem,
}


# ---------------------------------------------------------------- tensor methods


def _shape_args(shape: tuple) -> tuple[int, ...]:
    # x.view(2, 3) and x.view((2, 3)) are both valid
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return _dims(shape[0])
    return _dims(shape)


def view(input: Array, *shape: int) -> Array:
    return jnp.reshape(input, _shape_args(shape))


def reshape_method(input: Array, *shape: int) -> Array:
    return jnp.reshape(input, _shape_args(shape))


def permute_method(input: Array, *dims: int) -> Array:
    return jnp.transpose(input, _shape_args(dims))


def contiguous(input: Array, memory_format=None) -> Array:
    return input


def size(input: Array, dim: int | None = None) -> int | tuple[int, ...]:
    shape = tuple(jnp.shape(input))
    return shape if dim is None else shape[dim]


def t(input: Array) -> Array:
    return jnp.transpose(input) if jnp.ndim(input) == 2 else input


#: ``call_method`` targets (``Tensor.<name>``; the tensor is the first argument)
METHODS: dict[str, Callable[..., Array]] = {
    **ACTIVATIONS,
    "flatten": flatten,
    "view": view,
    "reshape": reshape_method,
    "permute": permute_method,
    "transpose": transpose,
    "squeeze": squeeze,
    "unsqueeze": unsqueeze,
    "sum": sum,
    "mean": mean,
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "pow": pow,
    "matmul": matmul,
    "clamp": clamp,
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "abs": abs,
    "neg": neg,
    "sin": sin,
    "cos": cos,
    "contiguous": contiguous,
    "size": size,
    "t": t,
}
