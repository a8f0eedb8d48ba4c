"""Turn reactions into index arrays, so that rates are evaluated as array operations.

The species vector is extended as ``xe = [species..., inputs..., 1.0]``; the trailing
one pads reactant lists of different lengths. Reactions are expanded into *columns*
(a reversible mass-action reaction gives a forward and a reverse column) and grouped by
rate-law kind, so the traced program has one gather/multiply per kind, not one block per
reaction: compile time stays nearly flat as networks grow.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from .._errors import ModelError
from .._state import suggest
from ._ratelaws import (
    Custom,
    HillActivation,
    HillRepression,
    MassAction,
    MichaelisMenten,
)
from ._reaction import Reaction

SPARSE_MIN_SIZE = 4096


@dataclasses.dataclass(frozen=True, eq=False)
class Structure:
    """Static index arrays of a network (hashable by content)."""

    arrays: Mapping[str, np.ndarray]
    n_species: int
    n_inputs: int
    n_columns: int
    n_custom: int
    sparse: bool

    def __post_init__(self):
        h = hashlib.sha256()
        for k in sorted(self.arrays):
            a = np.ascontiguousarray(self.arrays[k])
            h.update(k.encode())
            h.update(str(a.dtype).encode())
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        h.update(repr((self.n_species, self.n_inputs, self.n_columns, self.n_custom,
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
    customs: tuple[Custom, ...]
    custom_reaction_names: tuple[str, ...]


def build_structure(
    network: str,
    species: Sequence[str],
    inputs: Sequence[str],
    parameters: Mapping[str, float],
    reactions: Sequence[Reaction],
    fixed: Sequence[str],
) -> Built:
    where = f"ReactionNetwork {network!r}"
    sp_index = {s: i for i, s in enumerate(species)}
    n_s, n_in = len(species), len(inputs)
    ext_index = dict(sp_index)
    for j, a in enumerate(inputs):
        if a in sp_index:
            raise ModelError(f"{where}: input alias {a!r} is also a species name.")
        ext_index[a] = n_s + j
    one = n_s + n_in

    param_names = list(parameters)
    param_values = [float(v) for v in parameters.values()]
    p_index = {n: i for i, n in enumerate(param_names)}
    nonneg: set[int] = set()
    positive: set[int] = set()

    def pref(rxn: Reaction, role: str, ref, *, constraint: str = "nonneg") -> int:
        if isinstance(ref, str):
            if ref not in p_index:
                raise ModelError(
                    f"{where}, reaction {rxn.name!r}: {type(rxn.rate).__name__}.{role} "
                    f"refers to parameter {ref!r}, which is not a parameter of the "
                    f"network.{suggest(ref, p_index)}"
                )
            i = p_index[ref]
        elif isinstance(ref, (int, float)) and not isinstance(ref, bool):
            name = f"{rxn.name}.{role}"
            i = len(param_names)
            param_names.append(name)
            param_values.append(float(ref))
            p_index[name] = i
        else:
            raise ModelError(
                f"{where}, reaction {rxn.name!r}: {role} must be a parameter name or a "
                f"number; got {ref!r}."
            )
        (positive if constraint == "positive" else nonneg).add(i)
        return i

    def sref(rxn: Reaction, role: str, name) -> int:
        if not isinstance(name, str) or name not in ext_index:
            raise ModelError(
                f"{where}, reaction {rxn.name!r}: {role} {name!r} is not a species or "
                f"input of the network.{suggest(str(name), ext_index)}"
            )
        return ext_index[name]

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
            sref(r, "modifier", m)

    def stoich_col(r: Reaction, sign: float = 1.0) -> np.ndarray:
        col = np.zeros(n_s)
        for s, c in r.reactants.items():
            col[sp_index[s]] -= c * sign
        for s, c in r.products.items():
            col[sp_index[s]] += c * sign
        return col

    def order_list(r: Reaction, side: Mapping[str, float]) -> list[int]:
        out = []
        for s, c in side.items():
            if abs(c - round(c)) > 0:
                raise ModelError(
                    f"{where}, reaction {r.name!r}: mass action needs whole-number "
                    f"coefficients for its order; {s!r} has {c}. Use a Custom rate law."
                )
            out.extend([sp_index[s]] * int(round(c)))
        return out

    cols: list[np.ndarray] = []
    col_rxn: list[int] = []
    col_sign: list[float] = []
    arr: dict[str, list] = {k: [] for k in (
        "ma_k", "ma_idx", "mm_vmax", "mm_km", "mm_s", "mm_e", "ha_vmax", "ha_k", "ha_n",
        "ha_a", "hr_vmax", "hr_k", "hr_n", "hr_r")}
    customs: list[Custom] = []
    custom_names: list[str] = []
    by_kind: dict[type, list[int]] = {}
    for i, r in enumerate(reactions):
        by_kind.setdefault(type(r.rate), []).append(i)

    for i in by_kind.get(MassAction, []):
        r = reactions[i]
        law = r.rate
        arr["ma_k"].append(pref(r, "k", law.k))  # pyright: ignore
        arr["ma_idx"].append(order_list(r, r.reactants))
        cols.append(stoich_col(r))
        col_rxn.append(i)
        col_sign.append(1.0)
        if law.k_reverse is not None:  # pyright: ignore
            arr["ma_k"].append(pref(r, "k_reverse", law.k_reverse))  # pyright: ignore
            arr["ma_idx"].append(order_list(r, r.products))
            cols.append(stoich_col(r, -1.0))
            col_rxn.append(i)
            col_sign.append(-1.0)
    for i in by_kind.get(MichaelisMenten, []):
        r = reactions[i]
        law = r.rate
        sub = law.substrate  # pyright: ignore
        if sub is None:
            if len(r.reactants) != 1 or next(iter(r.reactants.values())) != 1.0:
                raise ModelError(
                    f"{where}, reaction {r.name!r}: MichaelisMenten needs 'substrate=' "
                    f"unless the reaction has exactly one reactant with coefficient 1."
                )
            sub = next(iter(r.reactants))
        arr["mm_vmax"].append(pref(r, "vmax", law.vmax))  # pyright: ignore
        arr["mm_km"].append(pref(r, "km", law.km))  # pyright: ignore
        arr["mm_s"].append(sref(r, "substrate", sub))
        enz = law.enzyme  # pyright: ignore
        arr["mm_e"].append(one if enz is None else sref(r, "enzyme", enz))
        cols.append(stoich_col(r))
        col_rxn.append(i)
        col_sign.append(1.0)
    for kind, pre, mod in ((HillActivation, "ha", "activator"),
                           (HillRepression, "hr", "repressor")):
        for i in by_kind.get(kind, []):
            r = reactions[i]
            law = r.rate
            arr[f"{pre}_vmax"].append(pref(r, "vmax", law.vmax))  # pyright: ignore
            arr[f"{pre}_k"].append(pref(r, "k", law.k))  # pyright: ignore
            arr[f"{pre}_n"].append(pref(r, "n", law.n, constraint="positive"))  # pyright: ignore
            arr[f"{pre}_{mod[0]}"].append(sref(r, mod, getattr(law, mod)))
            cols.append(stoich_col(r))
            col_rxn.append(i)
            col_sign.append(1.0)
    known = (MassAction, MichaelisMenten, HillActivation, HillRepression)
    for i, r in enumerate(reactions):
        if isinstance(r.rate, known):
            continue
        if not isinstance(r.rate, Custom):
            raise ModelError(
                f"{where}, reaction {r.name!r}: rate law {type(r.rate).__name__} is not "
                f"supported; use one of MassAction, MichaelisMenten, HillActivation, "
                f"HillRepression or Custom."
            )
        for m in r.rate.modifiers:
            sref(r, "modifier", m)
        customs.append(r.rate)
        custom_names.append(r.name)
        cols.append(stoich_col(r))
        col_rxn.append(i)
        col_sign.append(1.0)

    width = max((len(x) for x in arr["ma_idx"]), default=0)
    padded = [x + [one] * (width - len(x)) for x in arr.pop("ma_idx")]
    arrays = {k: np.asarray(v, dtype=np.int32) for k, v in arr.items()}
    arrays["ma_idx"] = np.asarray(padded, dtype=np.int32).reshape(len(padded), width)
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
    structure = Structure(arrays=arrays, n_species=n_s, n_inputs=n_in,
                          n_columns=len(cols), n_custom=len(customs), sparse=sparse)
    return Built(
        structure=structure,
        param_names=tuple(param_names),
        param_values=param_values,
        nonnegative=tuple(sorted(nonneg - positive)),
        positive=tuple(sorted(positive)),
        customs=tuple(customs),
        custom_reaction_names=tuple(custom_names),
    )
