"""What a rate-law kind gets from the network when it compiles and evaluates itself.

A rate-law kind is a concrete subclass of :class:`~jaxcell.molecular.AbstractRateLaw`.
It owns two class methods: ``compile`` turns all reactions of the kind into static
index arrays (through a :class:`CompileContext`, which resolves parameter and species
names and records sign rules), and ``evaluate`` computes the rates of all those
reactions at once from the extended species vector and the parameter vector (with an
:class:`EvalContext` for name lookups). Adding a kind means writing one class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._errors import ModelError
from .._state import suggest

if TYPE_CHECKING:
    from ._reaction import Reaction


@dataclasses.dataclass
class Compiled:
    """What ``compile`` returns for the reactions of one kind.

    Attributes:
        arrays: static index arrays (integers into the extended species vector or the
            parameter vector), one row per column.
        columns: ``(i, sign)`` per column, in the order ``evaluate`` returns rates:
            ``i`` indexes the reactions given to ``compile``; ``sign`` is ``+1`` for a
            forward column, ``-1`` for a reverse one (its stoichiometry is negated).
        laws: per-column dynamic data kept as leaves of the network (e.g. the functions
            of :class:`~jaxcell.molecular.Custom` laws, whose weights may be trained);
            empty for kinds that need only index arrays.
    """

    arrays: dict[str, np.ndarray]
    columns: list[tuple[int, float]]
    laws: tuple[Any, ...] = ()


class CompileContext:
    """Name resolution for ``compile``: parameters, species, mass-action orders.

    Numbers given in place of parameter names become new parameters named
    ``"<reaction>.<role>"``; every parameter a law uses gets a sign rule (non-negative
    by default, positive for Hill coefficients) checked eagerly and inside ``jit``.
    """

    def __init__(self, network: str, species: Sequence[str], inputs: Sequence[str],
                 parameters: Mapping[str, float]):
        self.where = f"ReactionNetwork {network!r}"
        self.species_index = {s: i for i, s in enumerate(species)}
        self.ext_index = dict(self.species_index)
        n_s = len(species)
        for j, a in enumerate(inputs):
            if a in self.species_index:
                raise ModelError(f"{self.where}: input alias {a!r} is also a species name.")
            self.ext_index[a] = n_s + j
        self.one = n_s + len(inputs)
        """Index of the trailing 1.0 of the extended species vector (for padding)."""
        self.param_names = list(parameters)
        self.param_values = [float(v) for v in parameters.values()]
        self._p_index = {n: i for i, n in enumerate(self.param_names)}
        self.nonnegative: set[int] = set()
        self.positive: set[int] = set()

    def parameter(self, rxn: Reaction, role: str, ref: Any, *, positive: bool = False) -> int:
        """Index of the parameter ``ref`` (a name, or a number that becomes a new
        parameter) used as ``role`` by ``rxn``'s law; records its sign rule."""
        if isinstance(ref, str):
            if ref not in self._p_index:
                raise ModelError(
                    f"{self.where}, reaction {rxn.name!r}: {type(rxn.rate).__name__}."
                    f"{role} refers to parameter {ref!r}, which is not a parameter of the "
                    f"network.{suggest(ref, self._p_index)}"
                )
            i = self._p_index[ref]
        elif isinstance(ref, (int, float)) and not isinstance(ref, bool):
            name = f"{rxn.name}.{role}"
            i = len(self.param_names)
            self.param_names.append(name)
            self.param_values.append(float(ref))
            self._p_index[name] = i
        else:
            raise ModelError(
                f"{self.where}, reaction {rxn.name!r}: {role} must be a parameter name or "
                f"a number; got {ref!r}."
            )
        (self.positive if positive else self.nonnegative).add(i)
        return i

    def species(self, rxn: Reaction, role: str, name: Any) -> int:
        """Index of a species or input alias in the extended species vector."""
        if not isinstance(name, str) or name not in self.ext_index:
            raise ModelError(
                f"{self.where}, reaction {rxn.name!r}: {role} {name!r} is not a species or "
                f"input of the network.{suggest(str(name), self.ext_index)}"
            )
        return self.ext_index[name]

    def orders(self, rxn: Reaction, side: Mapping[str, float]) -> list[int]:
        """Species indices repeated by their (whole-number) coefficients."""
        out = []
        for s, c in side.items():
            if abs(c - round(c)) > 0:
                raise ModelError(
                    f"{self.where}, reaction {rxn.name!r}: mass action needs whole-number "
                    f"coefficients for its order; {s!r} has {c}. Use a Custom rate law."
                )
            out.extend([self.species_index[s]] * int(round(c)))
        return out


class Lookup(Mapping):
    """Lazy name -> value view of an array (only names that are used are gathered)."""

    def __init__(self, values: Array, index: Mapping[str, int], what: str):
        self._values, self._index, self._what = values, index, what

    def __getitem__(self, name: str) -> Array:
        if name not in self._index:
            raise ModelError(f"{self._what}: no {name!r}.{suggest(name, self._index)}")
        return self._values[self._index[name]]

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """Names for ``evaluate``: the network, its species and input aliases (positions in
    the extended species vector), its parameters, and the reactions of the kind's
    columns (for messages)."""

    where: str
    species_index: Mapping[str, int]
    parameter_index: Mapping[str, int]
    reaction_names: tuple[str, ...]

    def species_view(self, xe: Array) -> Lookup:
        return Lookup(xe, self.species_index, f"{self.where}: species or input")

    def parameter_view(self, p: Array) -> Lookup:
        return Lookup(p, self.parameter_index, f"{self.where}: parameter")


def pos_pow(x: Array, n: Array) -> Array:
    """``x**n`` for ``x > 0`` and 0 for ``x <= 0``, with finite gradients everywhere.

    Hill terms treat a (numerically) negative concentration as zero.
    """
    pos = x > 0
    safe = jnp.where(pos, x, 1.0)
    return jnp.where(pos, safe**n, 0.0)


def index_array(values: Sequence[Any]) -> np.ndarray:
    """A static int32 index array."""
    return np.asarray(values, dtype=np.int32)
