"""Rate laws: how fast a reaction runs.

Rate laws are small immutable descriptions. Parameters are referred to by name (a
parameter of the network) or given as numbers (they then become parameters named
``"<reaction>.<role>"``). Species are referred to by name (a species of the network, or
an input alias that reads another part of the state).

Each concrete law class is a *kind* that owns its behaviour: ``compile`` turns all the
reactions of the kind into static index arrays, and ``evaluate`` computes all their
rates at once, as array operations (:class:`Custom` laws, any function or equinox
module, e.g. a neural network, are called one by one).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._errors import ModelError
from ._kinds import CompileContext, Compiled, EvalContext, index_array, pos_pow

if TYPE_CHECKING:
    from ._reaction import Reaction

ParamRef = str | float | int


class AbstractRateLaw(eqx.Module):
    """Base class of rate laws. Each concrete subclass is a rate-law *kind*.

    A kind owns how its reactions are compiled and evaluated, so that adding a kind
    means writing one class:

    - ``compile(reactions, ctx)`` (a class method) receives every reaction of the
      network whose law is of this kind and returns a
      ``Compiled`` (``jaxcell/molecular/_kinds.py``): static index arrays (parameters and
      species resolved through ``ctx``, a ``CompileContext``), the columns (reaction,
      sign) and any per-column dynamic data;
    - ``evaluate(arrays, laws, xe, p, ctx)`` (a class method) returns the rates of
      those columns, shape ``(n_columns,)``, from the extended species vector
      ``xe = [species..., inputs..., 1.0]`` and the parameter vector ``p``, as array
      operations over the index arrays (no loop over reactions in the trace).

    ``rank`` orders the kinds' columns (mass action, Michaelis–Menten, Hill activation,
    Hill repression, :class:`Custom`; other kinds after them, in order of appearance).
    """

    rank: ClassVar[int] = 100

    @classmethod
    @abc.abstractmethod
    def compile(cls, reactions: Sequence[Reaction], ctx: CompileContext) -> Compiled:
        """Static index arrays for all ``reactions`` (whose laws are of this kind)."""

    @classmethod
    @abc.abstractmethod
    def evaluate(cls, arrays: Mapping[str, np.ndarray], laws: tuple[Any, ...], xe: Array,
                 p: Array, ctx: EvalContext) -> Array:
        """Rates of this kind's columns, shape ``(n_columns,)``."""


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

    rank: ClassVar[int] = 0

    @classmethod
    def compile(cls, reactions, ctx):
        ks, orders, columns = [], [], []
        for i, r in enumerate(reactions):
            ks.append(ctx.parameter(r, "k", r.rate.k))
            orders.append(ctx.orders(r, r.reactants))
            columns.append((i, 1.0))
            if r.rate.k_reverse is not None:
                ks.append(ctx.parameter(r, "k_reverse", r.rate.k_reverse))
                orders.append(ctx.orders(r, r.products))
                columns.append((i, -1.0))
        # reactant lists of different lengths are padded with the trailing 1.0
        width = max((len(o) for o in orders), default=0)
        padded = [o + [ctx.one] * (width - len(o)) for o in orders]
        return Compiled({"k": index_array(ks),
                         "orders": index_array(padded).reshape(len(padded), width)},
                        columns)

    @classmethod
    def evaluate(cls, arrays, laws, xe, p, ctx):
        return p[arrays["k"]] * jnp.prod(xe[arrays["orders"]], axis=1)


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

    rank: ClassVar[int] = 1

    @classmethod
    def compile(cls, reactions, ctx):
        arr: dict[str, list[int]] = {"vmax": [], "km": [], "s": [], "e": []}
        for r in reactions:
            law = r.rate
            sub = law.substrate
            if sub is None:
                if len(r.reactants) != 1 or next(iter(r.reactants.values())) != 1.0:
                    raise ModelError(
                        f"{ctx.where}, reaction {r.name!r}: MichaelisMenten needs "
                        f"'substrate=' unless the reaction has exactly one reactant with "
                        f"coefficient 1."
                    )
                sub = next(iter(r.reactants))
            arr["vmax"].append(ctx.parameter(r, "vmax", law.vmax))
            arr["km"].append(ctx.parameter(r, "km", law.km))
            arr["s"].append(ctx.species(r, "substrate", sub))
            arr["e"].append(ctx.one if law.enzyme is None
                            else ctx.species(r, "enzyme", law.enzyme))
        return Compiled({k: index_array(v) for k, v in arr.items()},
                        [(i, 1.0) for i in range(len(reactions))])

    @classmethod
    def evaluate(cls, arrays, laws, xe, p, ctx):
        s = xe[arrays["s"]]
        return p[arrays["vmax"]] * xe[arrays["e"]] * s / (p[arrays["km"]] + s)


class AbstractHill(AbstractRateLaw):
    """Hill laws: ``v = V_max f(K^n, S^n)`` for one modifier species ``S``; concrete
    kinds give the fraction ``f`` and name the modifier."""

    vmax: eqx.AbstractVar[ParamRef]
    k: eqx.AbstractVar[ParamRef]
    n: eqx.AbstractVar[ParamRef]

    @abc.abstractmethod
    def modifier(self) -> tuple[str, str]:
        """``(role, species)`` of the modifier, e.g. ``("activator", "A")``."""

    @staticmethod
    @abc.abstractmethod
    def fraction(kn: Array, sn: Array) -> Array:
        """The saturating fraction from ``K^n`` and ``S^n``."""

    @classmethod
    def compile(cls, reactions, ctx):
        arr: dict[str, list[int]] = {"vmax": [], "k": [], "n": [], "s": []}
        for r in reactions:
            law = r.rate
            arr["vmax"].append(ctx.parameter(r, "vmax", law.vmax))
            arr["k"].append(ctx.parameter(r, "k", law.k))
            arr["n"].append(ctx.parameter(r, "n", law.n, positive=True))
            arr["s"].append(ctx.species(r, *law.modifier()))
        return Compiled({k: index_array(v) for k, v in arr.items()},
                        [(i, 1.0) for i in range(len(reactions))])

    @classmethod
    def evaluate(cls, arrays, laws, xe, p, ctx):
        n = p[arrays["n"]]
        kn = pos_pow(p[arrays["k"]], n)
        sn = pos_pow(xe[arrays["s"]], n)
        return p[arrays["vmax"]] * cls.fraction(kn, sn)


class HillActivation(AbstractHill):
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

    rank: ClassVar[int] = 2

    def modifier(self) -> tuple[str, str]:
        return "activator", self.activator

    @staticmethod
    def fraction(kn, sn):
        return sn / (kn + sn)


class HillRepression(AbstractHill):
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

    rank: ClassVar[int] = 3

    def modifier(self) -> tuple[str, str]:
        return "repressor", self.repressor

    @staticmethod
    def fraction(kn, sn):
        return kn / (kn + sn)


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

    rank: ClassVar[int] = 4

    @classmethod
    def compile(cls, reactions, ctx):
        for r in reactions:
            for m in r.rate.modifiers:
                ctx.species(r, "modifier", m)
        # the laws themselves stay leaves of the network (their weights are trainable)
        return Compiled({}, [(i, 1.0) for i in range(len(reactions))],
                        tuple(r.rate for r in reactions))

    @classmethod
    def evaluate(cls, arrays, laws, xe, p, ctx):
        s_view, p_view = ctx.species_view(xe), ctx.parameter_view(p)
        vals = []
        for law, rname in zip(laws, ctx.reaction_names):
            v = jnp.asarray(law.fn(s_view, p_view), dtype=xe.dtype)
            if v.size != 1:
                raise ModelError(
                    f"{ctx.where}, reaction {rname!r}: the rate law returned shape "
                    f"{v.shape}; a reaction rate is a scalar."
                )
            vals.append(v.reshape(()))
        return jnp.stack(vals)

