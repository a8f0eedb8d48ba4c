"""ensemble(): many simulations of one model with different parameters or initial values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from ._composite import Composite
from ._custom_types import RealScalarLike
from ._devices import map_batch
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
    devices: int | Sequence[Any] | None = None,
    chunk_size: int | None = None,
    **simulate_kwargs: Any,
) -> Trajectory:
    """Simulate a batch of parameter sets and/or initial states with one compiled vmap.

    Equivalent to ``jax.vmap`` over :func:`simulate`, packaged: every entry of
    ``parameters`` (by name, as in ``model.parameters()``) and of ``y0`` (by path) has
    a leading batch axis of the same size. Failures do not raise by default
    (``throw=False``): each member gets its own code in ``Trajectory.result``.

    **Hardware.** The members are spread over every local device (on a CPU, one device
    per core: ``import jaxcell`` asks JAX for them) by one SPMD program (compiled
    once; each device runs its own share with its own solver loops). With
    ``chunk_size``, chunks are dispatched one after another, so a slow (stiff) member
    holds up only its own chunk. Under ``jax.distributed`` with several processes,
    each process simulates an equal slice and every process returns the whole
    ensemble. Results do not depend on the layout: each member is the same compiled
    program on the same inputs. Called inside ``jit`` or ``vmap``, the ensemble is one
    ``vmap`` on the caller's device.

    Arguments:
        model: a process or composite.
        t0: start time (shared by all members).
        t1: end time (shared by all members).
        parameters: ``{name: values of shape (batch,)}``.
        y0: ``{"scale/entity/variable": values of shape (batch, *shape)}``.
        throw: raise if any member fails (default ``False``).
        devices: ``None`` (every local device, and every process), a count of local
            devices, or a list of :class:`jax.Device` (this process only).
        chunk_size: members per compiled call (default: the batch divided evenly over
            the devices). Smaller chunks balance members of very different cost
            (e.g. a stiff corner of parameter space) at a small cost per dispatch.
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
    t0, t1 = jnp.asarray(t0, float), jnp.asarray(t1, float)
    if devices is None and isinstance(kwargs.get("solver"), diffrax.AbstractImplicitSolver):
        # diffrax's implicit solvers (lineax) do not trace under shard_map (jax 0.10),
        # and they call LAPACK: one device, without the cost of trying
        devices = 1
    return map_batch(_run_chunk, (model, names, t0, t1, kwargs), (values, y0b),
                     devices=devices, chunk_size=chunk_size, where="ensemble")


def _run_chunk(args, batch):
    model, names, t0, t1, kwargs = args
    return _run(model, names, batch[0], batch[1], t0, t1, kwargs)
