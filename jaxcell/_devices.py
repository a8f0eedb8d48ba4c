"""Spreading a batch over devices and hosts.

A batch (ensemble members, fit starts) is split over the local devices by one SPMD
program (``shard_map``: compiled once, each device running its own solver loops, so a
device waits for no other until the results are gathered). With ``chunk_size`` the
batch is cut into chunks dispatched asynchronously one after another, so a slow
(stiff) member holds up only the members of its own chunk on its own device. With several
processes (``jax.distributed``) each process takes an equal slice of the batch and the
results are gathered, so every process returns the whole batch.

On a CPU, JAX shows one device unless told otherwise; :func:`use_cpu_cores` (called by
``import jaxcell``) asks for one CPU device per core, so that these layouts use every
core by default.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ._errors import SimulationError

_ENV = "JAXCELL_CPU_DEVICES"
logger = logging.getLogger("jaxcell")


def cpu_cores() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def use_cpu_cores(n: int | None = None) -> int | None:
    """Ask JAX for ``n`` CPU devices (default: ``$JAXCELL_CPU_DEVICES``, else one per core).

    Does nothing (and returns ``None``) once JAX has started its backends, or when the
    user chose already (``jax_num_cpu_devices`` set, or
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``). Set
    ``JAXCELL_CPU_DEVICES=1`` to keep JAX's single CPU device.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return None
    if jax.config.jax_num_cpu_devices != -1:
        return None
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    if n is None:
        env = os.environ.get(_ENV, "").strip()
        if env:
            try:
                n = int(env)
            except ValueError:
                raise SimulationError(
                    f"{_ENV} must be a positive integer (CPU devices); got {env!r}."
                ) from None
        else:
            n = cpu_cores()
    if n < 1:
        raise SimulationError(f"{_ENV} must be a positive integer (CPU devices); got {n}.")
    jax.config.update("jax_num_cpu_devices", int(n))
    return int(n)


def resolve_devices(devices: int | Sequence[Any] | None, where: str) -> list[Any]:
    """``None``: every local device of the default backend; an int ``k``: the first
    ``k`` of them; or a sequence of :class:`jax.Device`."""
    local = jax.local_devices()
    if devices is None:
        return list(local)
    if isinstance(devices, bool):
        raise SimulationError(f"{where}: devices must be None, a count or a list of "
                              f"jax devices; got {devices!r}.")
    if isinstance(devices, int):
        if not 1 <= devices <= len(local):
            raise SimulationError(
                f"{where}: devices={devices}, but this process has {len(local)} local "
                f"device(s) ({local[0].platform}); pass 1..{len(local)} or a list.")
        return list(local[:devices])
    out = list(devices)
    if not out or not all(isinstance(d, jax.Device) for d in out):
        raise SimulationError(f"{where}: devices must be None, a count or a non-empty "
                              f"list of jax devices; got {devices!r}.")
    return out


def _take(tree, index: np.ndarray):
    return jax.tree.map(lambda a: jnp.take(jnp.asarray(a), index, axis=0), tree)


def _is_traced(tree) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(tree))


def batch_size(tree) -> int:
    return int(jax.tree.leaves(tree)[0].shape[0])


@functools.lru_cache(maxsize=64)
def _sharded(fn: Callable[[Any, Any], Any], devices: tuple[Any, ...]):
    """``fn(args, batch)`` as one SPMD program over ``devices``: ``args`` replicated,
    the batch split along its leading axis, each device running its own share (its own
    solver loops: no device waits for another until the results are collected)."""
    mesh = Mesh(np.array(devices), ("batch",))

    def call(args, batch):
        dynamic, static = eqx.partition(args, eqx.is_array)

        def body(dynamic, batch):
            return fn(eqx.combine(dynamic, static), batch)

        return jax.shard_map(body, mesh=mesh, in_specs=(P(), P("batch")),
                             out_specs=P("batch"), check_vma=False)(dynamic, batch)

    return eqx.filter_jit(call), NamedSharding(mesh, P("batch"))


def map_batch(fn: Callable[[Any, Any], Any], args: Any, inputs: Any, *,
              devices: int | Sequence[Any] | None = None, chunk_size: int | None = None,
              where: str = "ensemble") -> Any:
    """``fn(args, inputs)`` with the batch (the leading axis shared by the leaves of
    ``inputs``) spread over devices and processes; the result has the batch axis in
    input order.

    ``fn`` must be one long-lived function (compiled programs are cached on it and on
    the devices) mapping ``args`` (replicated: the model, solver settings) and a chunk
    of the batch to a pytree of arrays with the chunk's leading axis. Every call sees
    the same chunk size: the batch is padded by repeating its last member, and the
    padding is dropped from the result.
    """
    if _is_traced((args, inputs)):  # inside a user's jit or vmap: one vmap, no dispatch
        return fn(args, inputs)
    n = batch_size(inputs)
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise SimulationError(f"{where}: chunk_size must be a positive integer; got "
                              f"{chunk_size!r}.")
    devs = resolve_devices(devices, where)
    n_proc, proc = jax.process_count(), jax.process_index()
    if n_proc > 1 and devices is None:
        per = math.ceil(n / n_proc)
        lo = min(proc * per, n - 1)
        index = np.minimum(np.arange(lo, lo + per), n - 1)
        local = _local(fn, args, _take(inputs, index), per, devs, chunk_size, where)
        return _gather(local, n)
    return _local(fn, args, inputs, n, devs, chunk_size, where)


def _local(fn, args, inputs, n: int, devs: list[Any], chunk_size: int | None,
           where: str = "ensemble"):
    k = len(devs)
    per_device = math.ceil(n / k) if chunk_size is None else min(int(chunk_size),
                                                                  math.ceil(n / k))
    if k == 1 and per_device >= n:
        return fn(args, inputs)
    step = per_device * k
    n_chunks = math.ceil(n / step)
    call, sharding = (fn, None) if k == 1 else _sharded(fn, tuple(devs))
    if sharding is not None:
        why = _why_not_spread(call, sharding, fn, devs, args, inputs, step, n)
        if why is not None:
            logger.info("%s: running on one device: %s.", where, why)
            return _local(fn, args, inputs, n, devs[:1], chunk_size, where)
    outs = []
    for i in range(n_chunks):  # dispatched asynchronously: devices run ahead
        part = _take(inputs, np.minimum(np.arange(i * step, (i + 1) * step), n - 1))
        if sharding is not None:
            part = jax.device_put(part, sharding)
        outs.append(call(args, part))
    if len(outs) == 1:
        return jax.tree.map(lambda a: a[:n], outs[0])
    return jax.tree.map(lambda *parts: jnp.concatenate(parts)[:n], *outs)


_DECISIONS: dict[Any, str | None] = {}


def _why_not_spread(call, sharding, fn, devs, args, inputs, step: int, n: int):
    """Why ``fn`` must run on one device (``None``: it may be spread). Decided once per
    function, devices, static arguments and shapes (a loop of fit steps asks each
    iteration)."""
    leaves, treedef = jax.tree.flatten((args, inputs))
    try:
        key = (fn, tuple(devs), treedef,
               tuple((a.shape, str(a.dtype)) if eqx.is_array(a) else a for a in leaves))
        hash(key)
    except TypeError:  # an unhashable static leaf: decide every time
        key = None
    if key is not None and key in _DECISIONS:
        return _DECISIONS[key]
    first = jax.device_put(_take(inputs, np.minimum(np.arange(step), n - 1)), sharding)
    why = None
    try:
        text = call.lower(args, first).as_text()
    except Exception as e:  # noqa: BLE001 - any failure: the one-device path decides
        why = f"it does not trace under shard_map ({type(e).__name__}: {e})"[:300]
    else:
        if devs[0].platform == "cpu" and "lapack_" in text:
            # LAPACK kernels (batched LU and triangular solves: implicit diffrax
            # solvers, Rodas5 above 16 states under vmap) wait on the thread pool that
            # also runs the CPU devices, and deadlock when every device is busy (seen
            # with 81,920 members on 2 devices).
            why = "it calls LAPACK, which can deadlock across CPU devices"
    if key is not None:
        _DECISIONS[key] = why
    return why


def _gather(local, n: int):
    """Every process's slice, concatenated in process order and trimmed to ``n``."""
    from jax.experimental import multihost_utils

    full = multihost_utils.process_allgather(local, tiled=True)
    return jax.tree.map(lambda a: jnp.asarray(a)[:n], full)
