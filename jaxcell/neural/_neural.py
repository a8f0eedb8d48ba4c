"""Neural networks as rate laws or as whole processes.

Any equinox module can stand where jaxcell expects a function: its weights become leaves
of the model, differentiated and trained together with the mechanistic parameters
(a universal differential equation, Rackauckas et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._custom_types import PathLike
from .._errors import ModelError
from .._generic import Coupling
from .._state import as_path
from ..molecular._ratelaws import Custom


def rbf(x: Array) -> Array:
    r"""Gaussian radial basis activation :math:`e^{-x^2}` (used in the UDE paper).

    References:
        Rackauckas, C. et al. (2020). Universal differential equations for scientific
        machine learning. arXiv:2001.04385.
    """
    return jnp.exp(-(x**2))


class _NeuralRateFn(eqx.Module):
    net: Callable
    inputs: tuple[str, ...] = eqx.field(static=True)
    positive: bool = eqx.field(static=True)

    def __call__(self, s, p):
        x = jnp.stack([jnp.asarray(s[i]) for i in self.inputs])
        out = jnp.reshape(self.net(x), ())
        return jax.nn.softplus(out) if self.positive else out


def neural_rate(net: Callable, inputs: Sequence[str], *, positive: bool = False) -> Custom:
    """A rate law computed by a neural network from named species.

    Arguments:
        net: an equinox module (or any function) mapping a vector of
            ``len(inputs)`` values to one value, e.g.
            ``eqx.nn.MLP(len(inputs), "scalar", 16, 2, key=key)``.
        inputs: species (or input aliases) fed to the network, in order.
        positive: pass the output through softplus, so the rate is never negative.

    Returns:
        A :class:`jaxcell.Custom` rate law whose weights are trainable leaves.
    """
    inputs = tuple(inputs)
    if not inputs:
        raise ModelError("neural_rate: give at least one input species.")
    return Custom(_NeuralRateFn(net, inputs, positive), modifiers=inputs)


class NeuralField(eqx.Module):
    """Wrap a network as the function of a :class:`jaxcell.Coupling`.

    The network sees ``(x - shift) / scale`` of the read variable and its output is
    multiplied by ``out_scale``; the scalings keep training well conditioned when
    variables are far from order one. All three are fixed (non-trainable) arrays unless
    you partition them in.
    """

    net: Callable
    shift: Array
    scale: Array
    out_scale: Array

    def __call__(self, t, x, p):
        z = (x["x"] - self.shift) / self.scale
        return {"x": self.out_scale * self.net(z)}


def neural_coupling(
    name: str,
    net: Callable,
    *,
    reads: PathLike,
    changes: PathLike | None = None,
    shift: float | Array = 0.0,
    scale: float | Array = 1.0,
    out_scale: float | Array = 1.0,
) -> Coupling:
    """A process adding ``out_scale * net((x - shift) / scale)`` to ``d(changes)/dt``.

    ``x`` is the variable at ``reads``; ``changes`` defaults to the same path, giving the
    UDE form ``dx/dt = f_known(x) + NN(x)`` when combined with a mechanistic process
    that owns ``x``.
    """
    reads_p = as_path(reads)
    changes_p = reads_p if changes is None else as_path(changes)
    fn = NeuralField(net, jnp.asarray(shift, float), jnp.asarray(scale, float),
                     jnp.asarray(out_scale, float))
    if changes_p == reads_p:
        return Coupling(name, fn, changes={"x": changes_p})
    return Coupling(name, _Renamed(fn), reads={"x": reads_p}, changes={"y": changes_p})


class _Renamed(eqx.Module):
    field: NeuralField

    def __call__(self, t, x, p):
        return {"y": self.field(t, {"x": x["x"]}, p)["x"]}


def neural_weights(model) -> object:
    """A filter spec selecting the weights of every neural term in ``model``.

    Use it with :func:`equinox.partition` to train the networks while keeping the
    mechanistic parameters, initial values and input scalings fixed:

        params, static = eqx.partition(model, jc.neural.neural_weights(model))

    It marks the inexact arrays inside the networks of :func:`neural_rate` laws and
    :func:`neural_coupling` processes, and nothing else.

    Examples:
        >>> import equinox as eqx, jax, jaxcell as jc
        >>> mlp = eqx.nn.MLP(1, "scalar", 4, 1, key=jax.random.PRNGKey(0))
        >>> net = jc.ReactionNetwork("n", {"A": 1.0}, [
        ...     jc.Reaction("r", "A", "", jc.neural.neural_rate(mlp, ["A"]))])
        >>> params, _ = eqx.partition(net, jc.neural.neural_weights(net))
        >>> len(jax.tree_util.tree_leaves(params))  # 2 weight matrices + 2 biases
        4
    """

    def is_neural(node) -> bool:
        return isinstance(node, (NeuralField, _NeuralRateFn))

    def mark(node):
        off = jax.tree_util.tree_map(lambda _: False, node)
        if not is_neural(node):
            return off
        return eqx.tree_at(lambda n: n.net, off,
                           replace=jax.tree_util.tree_map(eqx.is_inexact_array, node.net))

    return jax.tree_util.tree_map(mark, model, is_leaf=is_neural)
