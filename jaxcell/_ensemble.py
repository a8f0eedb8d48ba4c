"""ensemble(): many simulations of one model with different parameters or initial values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from ._composite import Composite
from ._custom_types import RealScalarLike
from ._errors import ModelError, SimulationError
from ._process import AbstractProcess
from ._simulate import simulate
from ._state import as_path, path_str
from ._trajectory import Trajectory


@eqx.filter_jit
def _run(model, names, values, y0, t0, t1, kwargs):
    def one(vals, y):
        m = model.replace_parameters(dict(zip(names, vals))) if names else model
        return simulate(m, t0, t1, y0=y if y else None, **kwargs)

    return jax.vmap(one)(values, y0)


def ensemble(
    model: AbstractProcess,
    t0: RealScalarLike,
    t1: RealScalarLike,
    *,
    parameters: Mapping[str, ArrayLike] | None = None,
    y0: Mapping[str, ArrayLike] | None = None,
    throw: bool = False,
    **simulate_kwargs: Any,
) -> Trajectory:
    """Simulate a batch of parameter sets and/or initial states with one compiled vmap.

    Equivalent to ``jax.vmap`` over :func:`simulate`, packaged: every entry of
    ``parameters`` (by name, as in ``model.parameters()``) and of ``y0`` (by path) has
    a leading batch axis of the same size. Failures do not raise by default
    (``throw=False``): each member gets its own code in ``Trajectory.result``.

    Arguments:
        model: a process or composite.
        t0: start time (shared by all members).
        t1: end time (shared by all members).
        parameters: ``{name: values of shape (batch,)}``.
        y0: ``{"scale/entity/variable": values of shape (batch, *shape)}``.
        throw: raise if any member fails (default ``False``).
        **simulate_kwargs: passed to :func:`simulate` (``saveat``, ``solver``, ...).

    Returns:
        A :class:`Trajectory` whose fields have a leading batch axis.

    Examples:
        >>> import jax.numpy as jnp, jaxcell as jc
        >>> batch = jc.ensemble(jc.models.goodwin(), 0.0, 10.0, saveat=[10.0],
        ...                     parameters={"a": jnp.array([50.0, 100.0, 150.0])})
        >>> batch["z"].shape, bool(batch.success.all())
        ((3, 1), True)
    """
    if not isinstance(model, AbstractProcess):
        raise SimulationError("ensemble: model must be a jaxcell process or composite.")
    names = tuple(parameters or {})
    known = model.parameters()
    for n in names:
        if isinstance(model, Composite):
            try:
                model.parameter(n)
            except ModelError as e:
                raise SimulationError(f"ensemble: {e}") from None
        elif n not in known:
            raise SimulationError(
                f"ensemble: {n!r} is not a parameter of {model.name!r}; parameters are "
                f"{sorted(known)}."
            )
    values = tuple(jnp.asarray(parameters[n]) for n in names) if parameters else ()
    y0b = {path_str(as_path(k)): jnp.asarray(v) for k, v in (y0 or {}).items()}
    sizes = {f"parameters[{n!r}]": v.shape[0] if v.ndim else None
             for n, v in zip(names, values)}
    sizes.update({f"y0[{k!r}]": v.shape[0] if v.ndim else None for k, v in y0b.items()})
    if not sizes:
        raise SimulationError("ensemble: give batched 'parameters' and/or 'y0'.")
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise SimulationError(
            f"ensemble: every batched input needs the same leading batch size; got "
            f"{ {k: v for k, v in sizes.items()} }."
        )
    kwargs = dict(simulate_kwargs, throw=throw)
    saveat = kwargs.get("saveat")
    if saveat is not None and not isinstance(saveat, diffrax.SaveAt):
        kwargs["saveat"] = jnp.asarray(saveat)  # traced, so new save times don't recompile
    return _run(model, names, values, y0b, jnp.asarray(t0, float), jnp.asarray(t1, float),
                kwargs)
