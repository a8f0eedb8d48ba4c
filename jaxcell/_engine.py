"""Pieces shared by every path of the engine (plain solve, event loop, interval loop,
checkpointed runs): the diffrax term, casting, and the initial state with ``y0``
overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._composite import Composite
from ._custom_types import State
from ._errors import SimulationError
from ._state import as_path, flatten_state, nest_state, path_str


def _vector_field(t, y, args):
    model, user_args = args
    return model.vector_field(t, y, user_args)


TERM = diffrax.ODETerm(_vector_field)
"""The one module-level term: the model travels in ``args``, so the compiled program is
cached on the model's structure."""


def cast_floats(tree, dtype):
    """Every floating array leaf of ``tree`` as ``dtype``."""

    def f(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree_util.tree_map(f, tree)


def initial_state(model: Composite, y0: Any) -> State:
    """The model's initial state with the overrides of ``y0`` applied (checked)."""
    base = model.initial_values()
    if y0 is None:
        return nest_state(base)
    if not isinstance(y0, Mapping):
        raise SimulationError(
            f"y0 must be a state dict (nested, or {{'scale/entity/variable': value}}); "
            f"got {type(y0).__name__}."
        )
    nested = any(isinstance(v, Mapping) for v in y0.values())
    if nested:
        overrides = flatten_state(y0)
    else:
        overrides = {}
        for k, v in y0.items():
            if isinstance(k, str) and k.count("/") != 2:
                path, index = component(model, k)
                current = overrides.get(path, base.get(path))
                if current is None:
                    raise SimulationError(f"y0 gives {k!r}, which is not a state variable.")
                overrides[path] = jnp.asarray(current).at[index].set(v)
            else:
                overrides[as_path(k)] = v
    for path, value in overrides.items():
        if path not in base:
            derived = path in dict(model.spec.derived)
            why = " It is a derived variable, computed from the state." if derived else ""
            raise SimulationError(
                f"y0 gives {path_str(path)!r}, which is not a state variable of the model."
                f"{why} State variables: {sorted(map(path_str, base))}."
            )
        value = jnp.asarray(value, dtype=base[path].dtype)
        if value.shape != base[path].shape:
            raise SimulationError(
                f"y0[{path_str(path)!r}] has shape {value.shape}; expected "
                f"{base[path].shape}."
            )
        base[path] = value
    return nest_state(base)


def component(model: Composite, key: str):
    """Resolve ``"label"`` or ``"scale/entity/variable/label"`` to (path, index)."""
    if key.count("/") == 3:
        var_path, label = key.rsplit("/", 1)
        path = as_path(var_path)
        try:
            return path, model.spec.var(path).index(label)
        except KeyError as e:
            raise SimulationError(f"y0: {e.args[0]}") from None
    hits = [(p, i) for p, i in model.spec.find_label(key) if p in dict(model.spec.owned)]
    if len(hits) != 1:
        what = "is ambiguous" if hits else "names no labelled component of a state variable"
        raise SimulationError(
            f"y0 key {key!r} {what}; use 'scale/entity/variable' or "
            f"'scale/entity/variable/label'."
        )
    return hits[0]


def as_key(key, *, none_is_zero: bool = True):
    """A typed JAX key from ``key`` (a :func:`jax.random.key` or a legacy ``uint32[2]``
    PRNGKey); ``None`` gives ``jax.random.key(0)`` (reproducible runs by default), or
    ``None`` with ``none_is_zero=False``."""
    if key is None:
        return jax.random.key(0) if none_is_zero else None
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise SimulationError(f"key must be a single key; got shape {key.shape}.")
        return key
    arr = jnp.asarray(key)
    if arr.dtype != jnp.uint32 or arr.shape != (2,):
        raise SimulationError(
            f"key must be a jax.random.key (or a legacy uint32[2] PRNGKey); got dtype "
            f"{arr.dtype} and shape {arr.shape}."
        )
    return jax.random.wrap_key_data(arr)
