"""Reactions: stoichiometry plus a rate law."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from .._errors import ModelError
from ._ratelaws import AbstractRateLaw, MassAction

_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*\*?\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*$")


def parse_side(text: str, where: str) -> dict[str, float]:
    """Parse one side of a reaction, e.g. ``"2 A + B"`` -> ``{"A": 2.0, "B": 1.0}``.

    ``""``, ``"0"`` and ``"∅"`` denote nothing (a source or sink).
    """
    text = text.strip()
    if text in ("", "0", "∅", "nothing"):
        return {}
    out: dict[str, float] = {}
    for term in text.split("+"):
        m = _TERM.match(term)
        if not m:
            raise ModelError(
                f"{where}: cannot read {term.strip()!r} in {text!r}; write terms like "
                f"'2 A + B' (coefficient, then a species name)."
            )
        coef = float(m.group(1)) if m.group(1) else 1.0
        out[m.group(2)] = out.get(m.group(2), 0.0) + coef
    return out


def _side(value, where: str) -> dict[str, float]:
    if isinstance(value, str):
        return parse_side(value, where)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ModelError(f"{where}: species names must be strings; got {k!r}.")
            try:
                c = float(v)
            except (TypeError, ValueError) as e:
                raise ModelError(f"{where}: coefficient of {k!r} must be a number.") from e
            out[k] = c
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for k in value:
            out[k] = out.get(k, 0.0) + 1.0
        return out
    raise ModelError(
        f"{where}: reactants/products must be a string like '2 A + B', a dict "
        f"{{species: coefficient}} or a list of species; got {type(value).__name__}."
    )


@dataclasses.dataclass(frozen=True, init=False)
class Reaction:
    """One reaction: reactants -> products at a rate given by a rate law.

    Arguments:
        name: unique name within the network.
        reactants: ``"2 A + B"``, ``{"A": 2, "B": 1}`` or ``["A", "A", "B"]``; ``""`` for
            none (a source).
        products: the same form; ``""`` for none (a sink).
        rate: a rate law (:class:`MassAction`, :class:`MichaelisMenten`,
            :class:`HillActivation`, :class:`HillRepression`, :class:`Custom`, or a
            neural rate); a bare number or parameter name means ``MassAction(rate)``.
        modifiers: species that affect the rate without being consumed (checked to exist).

    A reaction is reversible when its mass-action law has a ``k_reverse``.

    Examples:
        >>> import jaxcell as jc
        >>> r = jc.Reaction("bind", "E + S", "C", jc.MassAction("k1", "km1"))
        >>> r.reversible, r.reactants
        (True, {'E': 1.0, 'S': 1.0})
    """

    name: str
    reactants: dict[str, float]
    products: dict[str, float]
    rate: AbstractRateLaw
    modifiers: tuple[str, ...]

    def __init__(self, name, reactants, products, rate, modifiers=()):
        if not isinstance(name, str) or not name:
            raise ModelError(f"A reaction needs a non-empty string name; got {name!r}.")
        where = f"reaction {name!r}"
        if isinstance(rate, (int, float, str)):
            rate = MassAction(rate)
        if not isinstance(rate, AbstractRateLaw):
            raise ModelError(
                f"{where}: rate must be a rate law (e.g. jc.MassAction(k)); got "
                f"{type(rate).__name__}."
            )
        re_ = _side(reactants, where)
        pr = _side(products, where)
        for side, d in (("reactant", re_), ("product", pr)):
            for sp, c in d.items():
                if not (c > 0):
                    raise ModelError(
                        f"{where}: {side} {sp!r} has coefficient {c}; coefficients must "
                        f"be positive."
                    )
        if not re_ and not pr:
            raise ModelError(f"{where}: has neither reactants nor products.")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "reactants", re_)
        object.__setattr__(self, "products", pr)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "modifiers", tuple(modifiers))

    @property
    def reversible(self) -> bool:
        """True when the rate law is a :class:`MassAction` with a ``k_reverse``."""
        return isinstance(self.rate, MassAction) and self.rate.k_reverse is not None

    @classmethod
    def from_string(cls, name: str, equation: str, rate, modifiers=()) -> Reaction:
        """Build from ``"A + B -> C"`` (irreversible) or ``"A + B <-> C"``.

        With ``<->`` the rate must be a :class:`MassAction` with ``k_reverse``.
        """
        for arrow in ("<->", "<=>", "->", "=>"):
            if arrow in equation:
                lhs, rhs = equation.split(arrow, 1)
                r = cls(name, lhs, rhs, rate, modifiers)
                if arrow in ("<->", "<=>") and not r.reversible:
                    raise ModelError(
                        f"reaction {name!r}: {equation!r} is reversible, so its rate "
                        f"must be MassAction(k, k_reverse)."
                    )
                return r
        raise ModelError(
            f"reaction {name!r}: no arrow in {equation!r}; use '->' or '<->'."
        )
