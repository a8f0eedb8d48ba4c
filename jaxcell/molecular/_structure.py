"""Turn reactions into index arrays, so that rates are evaluated as array operations.

The species vector is extended as ``xe = [species..., inputs..., 1.0]``; the trailing
one pads reactant lists of different lengths. Reactions are grouped by rate-law kind
and each kind compiles its own reactions (``AbstractRateLaw.compile``) into *columns*
(a reversible mass-action reaction gives a forward and a reverse column), so the traced
program has one gather/multiply per kind, not one block per reaction: compile time
stays nearly flat as networks grow.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ModelError
from .._state import suggest
from ._kinds import CompileContext
from ._ratelaws import AbstractRateLaw
from ._reaction import Reaction

SPARSE_MIN_SIZE = 4096


@dataclasses.dataclass(frozen=True, eq=False)
class Block:
    """The compiled reactions of one rate-law kind: columns ``start:stop``."""

    kind: type[AbstractRateLaw]
    arrays: Mapping[str, np.ndarray]
    start: int
    stop: int
    reaction_names: tuple[str, ...]
    """The reaction of each column (for messages)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Structure:
    """Static index arrays of a network (hashable by content)."""

    arrays: Mapping[str, np.ndarray]
    blocks: tuple[Block, ...]
    n_species: int
    n_inputs: int
    n_columns: int
    sparse: bool

    def __post_init__(self):
        h = hashlib.sha256()

        def add(prefix: str, arrays: Mapping[str, np.ndarray]):
            for k in sorted(arrays):
                a = np.ascontiguousarray(arrays[k])
                h.update(f"{prefix}{k}".encode())
                h.update(str(a.dtype).encode())
                h.update(str(a.shape).encode())
                h.update(a.tobytes())

        add("", self.arrays)
        for b in self.blocks:
            h.update(f"{b.kind.__module__}.{b.kind.__qualname__}".encode())
            h.update(repr((b.start, b.stop, b.reaction_names)).encode())
            add(f"{b.kind.__qualname__}/", b.arrays)
        h.update(repr((self.n_species, self.n_inputs, self.n_columns,
                       self.sparse)).encode())
        object.__setattr__(self, "_digest", h.hexdigest())

    def __hash__(self) -> int:
        return hash(self._digest)  # pyright: ignore[reportAttributeAccessIssue]

    def __eq__(self, other) -> bool:
        return isinstance(other, Structure) and other._digest == self._digest  # pyright: ignore

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


@dataclasses.dataclass
class Built:
    structure: Structure
    param_names: tuple[str, ...]
    param_values: list[float]
    nonnegative: tuple[int, ...]
    positive: tuple[int, ...]
    laws: tuple[tuple[Any, ...], ...]
    """Per block, the dynamic data its kind keeps (e.g. Custom laws)."""


def _kinds_in_order(reactions: Sequence[Reaction]) -> dict[type, list[int]]:
    """Reaction indices grouped by kind, kinds ordered by ``rank`` then appearance."""
    by_kind: dict[type, list[int]] = {}
    for i, r in enumerate(reactions):
        by_kind.setdefault(type(r.rate), []).append(i)
    first = {k: v[0] for k, v in by_kind.items()}
    order = sorted(by_kind, key=lambda k: (k.rank, first[k]))
    return {k: by_kind[k] for k in order}


def build_structure(
    network: str,
    species: Sequence[str],
    inputs: Sequence[str],
    parameters: Mapping[str, float],
    reactions: Sequence[Reaction],
    fixed: Sequence[str],
) -> Built:
    ctx = CompileContext(network, species, inputs, parameters)
    where = ctx.where
    sp_index = ctx.species_index
    n_s, n_in = len(species), len(inputs)

    names = [r.name for r in reactions]
    for n in names:
        if names.count(n) > 1:
            raise ModelError(f"{where}: two reactions are named {n!r}.")
    for r in reactions:
        for side, d in (("reactant", r.reactants), ("product", r.products)):
            for s in d:
                if s not in sp_index:
                    raise ModelError(
                        f"{where}, reaction {r.name!r}: unknown {side} species {s!r}."
                        f"{suggest(s, sp_index)}"
                    )
        for m in r.modifiers:
            ctx.species(r, "modifier", m)

    def stoich_col(r: Reaction, sign: float) -> np.ndarray:
        col = np.zeros(n_s)
        for s, c in r.reactants.items():
            col[sp_index[s]] -= c * sign
        for s, c in r.products.items():
            col[sp_index[s]] += c * sign
        return col

    cols: list[np.ndarray] = []
    col_rxn: list[int] = []
    col_sign: list[float] = []
    blocks: list[Block] = []
    laws: list[tuple[Any, ...]] = []
    for kind, idx in _kinds_in_order(reactions).items():
        compiled = kind.compile([reactions[i] for i in idx], ctx)
        start = len(cols)
        for j, sign in compiled.columns:
            r = reactions[idx[j]]
            cols.append(stoich_col(r, sign))
            col_rxn.append(idx[j])
            col_sign.append(sign)
        blocks.append(Block(kind, compiled.arrays, start, len(cols),
                            tuple(names[i] for i in col_rxn[start:])))
        laws.append(tuple(compiled.laws))

    arrays: dict[str, np.ndarray] = {}
    N = np.stack(cols, axis=1) if cols else np.zeros((n_s, 0))
    fixed_mask = np.zeros(n_s, dtype=bool)
    for f in fixed:
        if f not in sp_index:
            raise ModelError(f"{where}: fixed species {f!r} is not a species.")
        fixed_mask[sp_index[f]] = True
    N[fixed_mask, :] = 0.0
    arrays["N"] = N
    arrays["col_rxn"] = np.asarray(col_rxn, dtype=np.int32)
    arrays["col_sign"] = np.asarray(col_sign, dtype=float)
    rows, cidx = np.nonzero(N)
    arrays["nz_row"] = rows.astype(np.int32)
    arrays["nz_col"] = cidx.astype(np.int32)
    arrays["nz_val"] = N[rows, cidx]
    sparse = N.size >= SPARSE_MIN_SIZE
    structure = Structure(arrays=arrays, blocks=tuple(blocks), n_species=n_s,
                          n_inputs=n_in, n_columns=len(cols), sparse=sparse)
    return Built(
        structure=structure,
        param_names=tuple(ctx.param_names),
        param_values=ctx.param_values,
        nonnegative=tuple(sorted(ctx.nonnegative - ctx.positive)),
        positive=tuple(sorted(ctx.positive)),
        laws=tuple(laws),
    )
