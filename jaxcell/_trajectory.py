"""Trajectory: the result of :func:`jaxcell.simulate`, addressable by name."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._custom_types import State
from ._results import RESULTS
from ._state import StateSpec, as_path, path_str, suggest


class Trajectory(eqx.Module):
    """Saved times and values of every variable, with solver statistics.

    Index it by name:

    - ``traj["scale/entity/variable"]`` (or a path tuple): the variable over time,
      shape ``(times, *shape)``;
    - ``traj["scale/entity/variable/label"]`` or ``traj["scale/entity/variable", label]``:
      one named component (e.g. one species);
    - ``traj["label"]``: a component or variable whose name is unique in the model.

    Under :func:`jax.vmap` every field gains a leading batch axis and indexing works the
    same way (values then have shape ``(batch, times, ...)``).

    Attributes:
        ts: the saved times.
        values: the full state (owned and derived variables) at each saved time.
        stats: solver statistics (``num_steps``, ``num_accepted_steps``,
            ``num_rejected_steps``, ``max_steps``).
        result: the :class:`jaxcell.RESULTS` code (diffrax's codes and the event loop's;
            one per member in an ensemble).
        spec: the variables of the model (static).
    """

    ts: Float[Array, " times"]
    values: State
    stats: dict[str, Any]
    result: RESULTS
    spec: StateSpec = eqx.field(static=True)

    @property
    def success(self) -> Bool[Array, ...]:
        """True where the solve finished: it reached ``t1``, or a terminating event
        stopped it (see ``event_occurred``)."""
        return (self.result == RESULTS.successful) | self.event_occurred

    @property
    def event_occurred(self) -> Bool[Array, ...]:
        """True where a terminating :class:`diffrax.Event` ended the solve early."""
        return self.result == RESULTS.event_occurred

    def messages(self) -> list[str]:
        """The solver's message for each member ('' on success)."""
        codes = np.atleast_1d(np.asarray(self.result._value))  # noqa: SLF001
        return [RESULTS._index_to_message[int(c)] for c in codes]  # noqa: SLF001

    def _resolve(self, key: Any) -> tuple[tuple[str, str, str], int | None]:
        label = None
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str) and (
            isinstance(key[0], (str, tuple))
        ) and not (isinstance(key[0], str) and len(key) == 3):
            key, label = key
        if isinstance(key, str) and "/" not in key:
            hits = self.spec.find_label(key)
            var_hits = [p for p in self.spec.paths if p[2] == key]
            if len(hits) + len(var_hits) == 1:
                return (hits[0] if hits else (var_hits[0], None))  # pyright: ignore
            if not hits and not var_hits:
                names = self.names()
                raise KeyError(f"No variable or component named {key!r}.{suggest(key, names)}")
            where = [path_str(p) for p, _ in hits] + [path_str(p) for p in var_hits]
            raise KeyError(f"{key!r} is ambiguous; it names components of {where}.")
        if isinstance(key, str) and key.count("/") == 3:
            key, label = key.rsplit("/", 1)
        path = as_path(key)
        var = self.spec.var(path)
        return path, (None if label is None else var.index(label))

    def __getitem__(self, key: Any) -> Array:
        path, index = self._resolve(key)
        value = self.values[path[0]][path[1]][path[2]]
        return value if index is None else value[..., index]

    def names(self) -> list[str]:
        """Every addressable name: variables and their labelled components."""
        out = []
        for p, v in self.spec.owned + self.spec.derived:
            out.append(path_str(p))
            out.extend(f"{path_str(p)}/{lab}" for lab in v.labels or ())
        return out

    def final_state(self) -> State:
        """The owned state at the last saved time, usable as ``y0`` of a new run."""
        return {
            s: {
                e: {v: _last(self.values[s][e][v], self.ts) for v in ents}
                for e, ents in d.items()
            }
            for s, d in _owned_tree(self.spec).items()
        }

    def to_columns(self) -> dict[str, np.ndarray]:
        """Columns ``{name: values}`` with ``time`` first, for CSV or pandas.

        Scalar variables and labelled components each give one column; unlabelled
        vector variables give one column per entry (``name[i]``).
        """
        cols = {"time": np.asarray(self.ts)}
        for p, v in self.spec.owned + self.spec.derived:
            arr = np.asarray(self.values[p[0]][p[1]][p[2]])
            if arr.ndim == 1:
                cols[path_str(p)] = arr
            elif v.labels is not None and arr.ndim == 2:
                for i, lab in enumerate(v.labels):
                    cols[f"{path_str(p)}/{lab}"] = arr[:, i]
            else:
                flat = arr.reshape(arr.shape[0], -1)
                for i in range(flat.shape[1]):
                    cols[f"{path_str(p)}[{i}]"] = flat[:, i]
        return cols


def _owned_tree(spec: StateSpec) -> dict[str, dict[str, list[str]]]:
    tree: dict[str, dict[str, list[str]]] = {}
    for (s, e, v), _ in spec.owned:
        tree.setdefault(s, {}).setdefault(e, []).append(v)
    return tree


def _last(values: Array, ts: Array) -> Array:
    """Value at the last finite saved time (``SaveAt(steps=True)`` pads with inf)."""
    finite = jnp.isfinite(ts)
    idx = jnp.maximum(jnp.sum(finite, axis=-1) - 1, 0)
    return jnp.take_along_axis(
        values, idx.reshape(idx.shape + (1,) * (values.ndim - idx.ndim)), axis=idx.ndim
    ).squeeze(idx.ndim)
