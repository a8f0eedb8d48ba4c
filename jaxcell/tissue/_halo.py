"""Tissues larger than one device: domain decomposition with halo exchange.

A field's voxels (along the grid's first axis) or a tissue's cells (in their index
order) are split into one contiguous block per device. A stencil or a neighbour sum
needs a few rows of the adjacent blocks (the *halo*); each device sends its edge rows to
its two neighbours in a ring with ``jax.lax.ppermute`` inside ``jax.shard_map``, then
computes its block locally. The ring closes, so a periodic axis needs no special case:
the first block's left halo is the last block's last rows.

The result equals the single-device computation to rounding (the same arithmetic on the
same numbers); everything outside the stencil (the solver's vector arithmetic and error
norms) is partitioned by XLA from the sharded arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from .._errors import ModelError

AXIS = "cells"


def make_mesh(owner: str, devices: int | Sequence[Any] | None, n_rows: int) -> Mesh | None:
    """A one-axis mesh over ``devices`` (a count of local devices or a list), or
    ``None`` for one device; ``n_rows`` (the sharded axis) must divide evenly."""
    if devices is None:
        return None
    local = jax.local_devices()
    if isinstance(devices, bool):
        raise ModelError(f"{owner}: devices must be a count or a list of jax devices; "
                         f"got {devices!r}.")
    if isinstance(devices, int):
        if not 1 <= devices <= len(local):
            raise ModelError(f"{owner}: devices={devices}, but there are {len(local)} "
                             f"local device(s); pass 1..{len(local)}.")
        devs = list(local[:devices])
    else:
        devs = list(devices)
        if not devs or not all(isinstance(d, jax.Device) for d in devs):
            raise ModelError(f"{owner}: devices must be a count or a non-empty list of "
                             f"jax devices; got {devices!r}.")
    if len(devs) == 1:
        return None
    if n_rows % len(devs):
        raise ModelError(f"{owner}: {n_rows} rows cannot be split evenly over "
                         f"{len(devs)} devices; use a size divisible by {len(devs)}.")
    return Mesh(np.array(devs), (AXIS,))


def exchange(x: jax.Array, width: int, k: int) -> tuple[jax.Array, jax.Array]:
    """Inside ``shard_map``: the last ``width`` rows of the left block and the first
    ``width`` rows of the right block (ring order over ``k`` blocks)."""
    to_right = [(i, (i + 1) % k) for i in range(k)]
    to_left = [(i, (i - 1) % k) for i in range(k)]
    from_left = jax.lax.ppermute(x[x.shape[0] - width:], AXIS, to_right)
    from_right = jax.lax.ppermute(x[:width], AXIS, to_left)
    return from_left, from_right


def is_first_block() -> jax.Array:
    return jax.lax.axis_index(AXIS) == 0


def is_last_block(k: int) -> jax.Array:
    return jax.lax.axis_index(AXIS) == k - 1


def local_neighbours(index: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """For a graph's ``(N, K)`` neighbour index split into ``k`` blocks of ``m`` rows:
    each row's neighbours as positions in its block's extended array
    ``[h halo rows | m own rows | h halo rows]``, and the halo width ``h``."""
    n = index.shape[0]
    m = n // k
    rows = np.arange(n)[:, None]
    offset = (index - rows + n // 2) % n - n // 2           # ring distance, signed
    block_start = (rows // m) * m
    pos = rows - block_start + offset                       # position within own block
    h = int(max(0, -pos.min(), pos.max() - (m - 1)))
    if h > m:
        raise ModelError(
            f"neighbours reach {h} cells beyond a block of {m} cells ({n} cells over {k} "
            f"devices); a halo can only come from the adjacent blocks. Order the cells "
            f"spatially (lattices are) or use fewer devices.")
    return (pos + h).astype(np.int32), h


def pad_rows(a: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    return jnp.concatenate([lo, a, hi], axis=0)
