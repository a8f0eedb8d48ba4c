"""Rate laws: how fast a reaction runs.

Rate laws are small immutable descriptions. Parameters are referred to by name (a
parameter of the network) or given as numbers (they then become parameters named
``"<reaction>.<role>"``). Species are referred to by name (a species of the network, or
an input alias that reads another part of the state).

The four standard laws are evaluated for all reactions of a kind at once, as array
operations; :class:`Custom` laws (any function or equinox module, e.g. a neural network)
are evaluated one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx

ParamRef = str | float | int


class AbstractRateLaw(eqx.Module):
    """Base class of rate laws."""


class MassAction(AbstractRateLaw):
    r"""Mass-action kinetics: :math:`v = k \prod_i x_i^{\nu_i} - k_r \prod_j x_j^{\nu_j}`.

    The forward rate is the rate constant times the product of reactant concentrations
    raised to their stoichiometric coefficients (which must be whole numbers); with
    ``k_reverse`` the reaction is reversible and the reverse term uses the products.

    Arguments:
        k: forward rate constant (name or value), must be >= 0.
        k_reverse: reverse rate constant; ``None`` for an irreversible reaction.

    References:
        Guldberg, C. M. & Waage, P. (1864). Studies concerning affinity.
    """

    k: ParamRef
    k_reverse: ParamRef | None = None


class MichaelisMenten(AbstractRateLaw):
    r"""Michaelis–Menten kinetics: :math:`v = V_{max}\,[E]\,S / (K_m + S)`.

    Arguments:
        vmax: maximal rate (per unit enzyme when ``enzyme`` is given), >= 0.
        km: Michaelis constant, >= 0.
        substrate: the saturating species; default: the reaction's single reactant.
        enzyme: optional modifier species multiplying the rate (then ``vmax`` is kcat).

    References:
        Michaelis, L. & Menten, M. L. (1913). Die Kinetik der Invertinwirkung.
        Biochem. Z. 49:333–369.
    """

    vmax: ParamRef
    km: ParamRef
    substrate: str | None = None
    enzyme: str | None = None


class HillActivation(AbstractRateLaw):
    r"""Hill activation: :math:`v = V_{max}\, A^n / (K^n + A^n)`.

    Arguments:
        vmax: maximal rate, >= 0.
        k: activation threshold (half-maximal activator level), >= 0.
        n: Hill coefficient, > 0.
        activator: the activating species (a modifier).

    References:
        Hill, A. V. (1910). J. Physiol. 40:iv–vii.
    """

    vmax: ParamRef
    k: ParamRef
    n: ParamRef
    activator: str


class HillRepression(AbstractRateLaw):
    r"""Hill repression: :math:`v = V_{max}\, K^n / (K^n + R^n)`.

    With ``k = 1`` this is the classic :math:`V_{max}/(1 + R^n)` of the repressilator,
    the Goodwin oscillator and the toggle switch.

    Arguments:
        vmax: maximal (unrepressed) rate, >= 0.
        k: repression threshold, >= 0.
        n: Hill coefficient, > 0.
        repressor: the repressing species (a modifier).

    References:
        Hill, A. V. (1910). J. Physiol. 40:iv–vii.
    """

    vmax: ParamRef
    k: ParamRef
    n: ParamRef
    repressor: str


class Custom(AbstractRateLaw):
    """Any rate law given as a function: ``v = fn(s, p)``.

    ``s`` maps species (and input aliases) to their current values and ``p`` maps the
    network's parameter names to values; both look names up lazily, so only what ``fn``
    uses is read. ``fn`` may be an equinox module, e.g. a neural network, whose weights
    are then trainable leaves of the model. Reversible or not is up to ``fn`` (it may
    return negative values).

    Arguments:
        fn: ``(s, p) -> scalar`` rate, JAX-traceable.
        modifiers: species read by ``fn`` that are neither reactants nor products
            (checked to exist; informative).

    Examples:
        >>> import jaxcell as jc
        >>> law = jc.Custom(lambda s, p: p["k"] * s["A"] * s["B"] / (1 + s["I"]),
        ...                 modifiers=("I",))
    """

    fn: Callable[[Mapping[str, Any], Mapping[str, Any]], Any]
    modifiers: tuple[str, ...] = eqx.field(static=True, default=())


VECTORISED_KINDS: tuple[type[AbstractRateLaw], ...] = (
    MassAction,
    MichaelisMenten,
    HillActivation,
    HillRepression,
)
