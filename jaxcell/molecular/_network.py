"""ReactionNetwork: a well-mixed chemical reaction network as a continuous process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._custom_types import Path, PathLike
from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    AbstractJumpProcess,
    JumpTable,
    ParameterRules,
    Ports,
    as_parameter_array,
    is_concrete,
    jump_table,
)
from .._state import Ref, StateView, Var, as_ref, suggest
from ._conservation import ConservationLaw, conservation_laws
from ._kinds import EvalContext
from ._ratelaws import MassAction
from ._reaction import Reaction
from ._structure import Structure, build_structure


class ReactionNetwork(AbstractContinuousProcess, AbstractJumpProcess):
    r"""A chemical reaction network: :math:`dx/dt = N\,v(x, p)`.

    ``N`` is the stoichiometry matrix (species x reactions) and ``v`` the vector of
    reaction rates. Mass-action, Michaelis–Menten and Hill laws are evaluated for all
    reactions of a kind at once (gathers over index arrays, then one product with ``N``,
    sparse for large networks), so the traced program does not grow with the number of
    such reactions. :class:`Custom` and neural laws are evaluated one by one. Each
    rate-law kind compiles and evaluates its own reactions (see
    :class:`AbstractRateLaw`), so a new kind is one new class.

    The network owns one state variable, ``(scale, name, "species")``, a vector whose
    components are labelled by species name: ``traj["molecular/net/species/A"]`` or
    simply ``traj["A"]``.

    It is also a jump process (:class:`jaxcell.AbstractJumpProcess`): with
    ``simulate(..., stochastic=jaxcell.SSA())`` species are molecule counts and every
    column (a reversible reaction has two) fires as a random event. The propensity of a
    mass-action column is ``k`` times the falling factorial of each reactant,
    ``k·A(A-1)`` for ``2A -> ...``, so its mean-field limit is the deterministic rate
    ``k·A²`` (counts in a unit volume); other laws give their deterministic rate at the
    counts.

    Arguments:
        name: the network's name (the entity part of its state path).
        species: initial values ``{name: value}`` (or a list of names, all starting at 0).
        reactions: the :class:`Reaction`\ s.
        parameters: ``{name: value}`` referred to by rate laws.
        inputs: ``{alias: path}``: scalar variables elsewhere in the state that rate laws
            may read by alias (e.g. an inducer set by another process), or labelled
            components such as ``"molecular/other_net/species/X"``.
        fixed: species held constant (boundary species): rates do not change them.
        scale: the scale part of the state path (default ``"molecular"``).

    Raises:
        ModelError: unknown species or parameters in a reaction, invalid coefficients,
            NaN parameters, negative rate constants or non-positive Hill coefficients.

    Examples:
        >>> import jaxcell as jc
        >>> net = jc.ReactionNetwork(
        ...     "mm",
        ...     species={"E": 1.0, "S": 10.0, "C": 0.0, "P": 0.0},
        ...     reactions=[
        ...         jc.Reaction("bind", "E + S", "C", jc.MassAction("kf", "kr")),
        ...         jc.Reaction("cat", "C", "E + P", jc.MassAction("kcat")),
        ...     ],
        ...     parameters={"kf": 1.0, "kr": 0.5, "kcat": 0.3},
        ... )
        >>> [str(law) for law in net.conservation_laws()]
        ['E + C = 1', 'S + C + P = 10']
    """

    name: str
    x0: Float[Array, " species"]
    p: Float[Array, " params"]
    laws: tuple[tuple[Any, ...], ...]
    species: tuple[str, ...] = eqx.field(static=True)
    parameter_names: tuple[str, ...] = eqx.field(static=True)
    reaction_names: tuple[str, ...] = eqx.field(static=True)
    inputs: tuple[tuple[str, Ref], ...] = eqx.field(static=True)
    scale: str = eqx.field(static=True)
    structure: Structure = eqx.field(static=True)
    nonnegative: tuple[int, ...] = eqx.field(static=True)
    positive: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        species: Mapping[str, ArrayLike] | Sequence[str],
        reactions: Sequence[Reaction],
        parameters: Mapping[str, ArrayLike] | None = None,
        *,
        inputs: Mapping[str, PathLike] | None = None,
        fixed: Sequence[str] = (),
        scale: str = "molecular",
    ):
        where = f"ReactionNetwork {name!r}"
        if isinstance(species, Mapping):
            names = list(species)
            values = [species[s] for s in names]
        else:
            names = list(species)
            values = [0.0] * len(names)
        if not names:
            raise ModelError(f"{where}: needs at least one species.")
        for s in names:
            if not isinstance(s, str) or not s:
                raise ModelError(f"{where}: species names must be non-empty strings; got {s!r}.")
        if len(set(names)) != len(names):
            raise ModelError(f"{where}: species names repeat: {names}.")
        x0 = []
        for s, v in zip(names, values):
            a = as_parameter_array(where, f"initial value of {s}", v)
            if a.shape != ():
                raise ModelError(
                    f"{where}: initial value of species {s!r} must be a scalar; got shape "
                    f"{a.shape}."
                )
            x0.append(a)
        reactions = list(reactions)
        for r in reactions:
            if not isinstance(r, Reaction):
                raise ModelError(
                    f"{where}: reactions must be jc.Reaction objects; got {type(r).__name__}."
                )
        params = dict(parameters or {})
        for k, v in params.items():
            if not isinstance(v, (int, float)) and not (
                hasattr(v, "shape") and np.shape(v) == ()
            ):
                raise ModelError(f"{where}: parameter {k!r} must be a scalar number.")
        input_paths = {str(a): as_ref(p) for a, p in (inputs or {}).items()}
        built = build_structure(
            name,
            names,
            list(input_paths),
            {k: (float(v) if is_concrete(v) else 0.0) for k, v in params.items()},
            reactions,
            fixed,
        )
        pvals = [params[k] if k in params else v
                 for k, v in zip(built.param_names, built.param_values)]
        self.name = name
        self.x0 = jnp.stack(x0)
        self.p = jnp.stack([jnp.asarray(v, dtype=self.x0.dtype) for v in pvals]) if pvals \
            else jnp.zeros((0,), self.x0.dtype)
        self.laws = built.laws
        self.species = tuple(names)
        self.parameter_names = built.param_names
        self.reaction_names = tuple(r.name for r in reactions)
        self.inputs = tuple(input_paths.items())
        self.scale = scale
        self.structure = built.structure
        self.nonnegative = built.nonnegative
        self.positive = built.positive
        self._check_values(self.p)

    # -- declarations --------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The state path of the species vector."""
        return (self.scale, self.name, "species")

    def ports(self) -> Ports:
        return Ports(
            owns={self.path: Var((len(self.species),), self.species)},
            reads={r[:3]: (Var(()) if len(r) == 3 else None) for _, r in self.inputs},
            components=tuple((r[:3], r[3]) for _, r in self.inputs if len(r) == 4),
        )

    def initial_values(self) -> dict[Path, Array]:
        return {self.path: self.x0}

    # -- parameters ----------------------------------------------------------------------
    def _rules(self) -> ParameterRules:
        """Every parameter finite; rate and saturation constants >= 0; Hill
        coefficients > 0 (the same messages eagerly and inside ``jit``)."""
        names = self.parameter_names
        return ParameterRules(f"ReactionNetwork {self.name!r}", names,
                              nonnegative=[names[i] for i in self.nonnegative],
                              positive=[names[i] for i in self.positive])

    def _check_values(self, p: Array) -> None:
        if not is_concrete(p):
            return
        self._rules().check(list(np.asarray(p)))
        if np.isnan(np.asarray(self.x0)).any():
            bad = [s for s, v in zip(self.species, np.asarray(self.x0)) if np.isnan(v)]
            raise ModelError(f"ReactionNetwork {self.name!r}: initial values of {bad} are NaN.")

    def parameters(self) -> dict[str, Array]:
        return {n: self.p[i] for i, n in enumerate(self.parameter_names)}

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> ReactionNetwork:
        p = self.p
        for k, v in values.items():
            if k not in self.parameter_names:
                raise ModelError(
                    f"ReactionNetwork {self.name!r}: no parameter {k!r}."
                    f"{suggest(k, self.parameter_names)}"
                )
            v = jnp.asarray(v, dtype=p.dtype)
            if v.shape != ():
                raise ModelError(
                    f"ReactionNetwork {self.name!r}: parameter {k!r} is a scalar; got "
                    f"shape {v.shape}."
                )
            p = p.at[self.parameter_names.index(k)].set(v)
        self._check_values(p)
        return eqx.tree_at(lambda n: n.p, self, p)

    def replace_initial(self, values: Mapping[str, ArrayLike]) -> ReactionNetwork:
        """A copy with some initial species values replaced by name."""
        x0 = self.x0
        for k, v in values.items():
            x0 = x0.at[self.species_index(k)].set(jnp.asarray(v, dtype=x0.dtype))
        return eqx.tree_at(lambda n: n.x0, self, x0)

    def species_index(self, name: str) -> int:
        """Position of a species in the state vector."""
        if name not in self.species:
            raise ModelError(
                f"ReactionNetwork {self.name!r}: no species {name!r}."
                f"{suggest(name, self.species)}"
            )
        return self.species.index(name)

    # -- structure -----------------------------------------------------------------------
    @property
    def stoichiometry(self) -> np.ndarray:
        """Net stoichiometry matrix, species x reactions (boundary rows zeroed)."""
        st = self.structure
        out = np.zeros((st.n_species, len(self.reaction_names)))
        for c, (r, s) in enumerate(zip(st["col_rxn"], st["col_sign"])):
            if s > 0:
                out[:, r] = st["N"][:, c]
        return out

    def conservation_laws(self) -> list[ConservationLaw]:
        """Linear combinations of species that no reaction changes.

        The rows of a basis of the left null space of the stoichiometry matrix
        (``c`` with ``c @ N = 0``), in reduced row-echelon form so that each law starts
        with its own species; totals are taken from the initial values.
        """
        return conservation_laws(self.stoichiometry, self.species, np.asarray(self.x0))

    # -- evaluation ----------------------------------------------------------------------
    def _columns(self, x: Array, inputs: Array, *, stochastic: bool = False) -> Array:
        """Rates of all columns: each rate-law kind evaluates its own block. With
        ``stochastic``, mass-action columns use falling factorials of the reactant
        counts (propensities)."""
        st = self.structure
        dt = x.dtype
        # one traced check of all parameters (NaN, Inf, sign rules) per evaluation
        p = self._rules().checked_vector(self.p, self.p).astype(dt)
        xe = jnp.concatenate([x, inputs.astype(dt), jnp.ones((1,), dt)])
        if not st.blocks:
            return jnp.zeros((0,), dt)
        ext = {s: i for i, s in enumerate(self.species)}
        ext.update({a: len(self.species) + j for j, (a, _) in enumerate(self.inputs)})
        pidx = {n: i for i, n in enumerate(self.parameter_names)}
        where = f"ReactionNetwork {self.name!r}"
        parts = []
        for block, laws in zip(st.blocks, self.laws):
            if stochastic and block.kind is MassAction:
                orders = np.asarray(block.arrays["orders"])
                dup = _repeats(orders, xe.shape[0] - 1)
                factors = jnp.maximum(xe[orders] - jnp.asarray(dup, dt), 0.0)
                parts.append(p[block.arrays["k"]] * jnp.prod(factors, axis=1))
                continue
            ctx = EvalContext(where, ext, pidx, block.reaction_names)
            parts.append(block.kind.evaluate(block.arrays, laws, xe, p, ctx))
        return jnp.concatenate(parts)

    def _inputs(self, state: StateView | None) -> Array:
        if not self.inputs:
            return jnp.zeros((0,), self.x0.dtype)
        if state is None:
            raise ModelError(f"ReactionNetwork {self.name!r} has inputs; pass their values.")
        return jnp.stack([jnp.asarray(state[p]).reshape(()) for _, p in self.inputs])

    def derivative(self, x: Float[Array, " species"], inputs: Array | None = None) -> Array:
        """``dx/dt`` for a species vector ``x`` (and input values, if any)."""
        st = self.structure
        if inputs is None:
            inputs = jnp.zeros((st.n_inputs,), x.dtype)
        v = self._columns(x, inputs)
        if st.sparse:
            contrib = v[st["nz_col"]] * jnp.asarray(st["nz_val"], dtype=x.dtype)
            return jax.ops.segment_sum(contrib, st["nz_row"], num_segments=st.n_species)
        return jnp.asarray(st["N"], dtype=x.dtype) @ v

    def reaction_rates(self, x: Float[Array, " species"], inputs: Array | None = None) -> Array:
        """Net rate of every reaction (forward minus reverse), in reaction order."""
        st = self.structure
        if inputs is None:
            inputs = jnp.zeros((st.n_inputs,), x.dtype)
        v = self._columns(x, inputs) * jnp.asarray(st["col_sign"], dtype=x.dtype)
        return jax.ops.segment_sum(v, st["col_rxn"], num_segments=len(self.reaction_names))

    def rates(self, t, state: StateView, args: Any) -> dict[Path, Array]:
        x = state[self.path]
        return {self.path: self.derivative(x, self._inputs(state))}

    # -- jumps ---------------------------------------------------------------------------
    @property
    def column_names(self) -> tuple[str, ...]:
        """The reaction of every column (a reversible reaction's reverse column is
        ``"<name>.reverse"``)."""
        st = self.structure
        return tuple(self.reaction_names[r] + ("" if s > 0 else ".reverse")
                     for r, s in zip(st["col_rxn"], st["col_sign"]))

    def jumps(self) -> JumpTable:
        st = self.structure
        n = np.asarray(st["N"], dtype=float)
        return jump_table(self.path, n, self.column_names)

    def propensity_columns(self, x: Float[Array, " species"],
                           inputs: Array | None = None) -> Array:
        """Propensity of every column at counts ``x`` (mass action with falling
        factorials; other laws at their deterministic rate)."""
        if inputs is None:
            inputs = jnp.zeros((self.structure.n_inputs,), x.dtype)
        return self._columns(x, inputs, stochastic=True)

    def propensities(self, t, state: StateView, args: Any) -> Array:
        return self.propensity_columns(state[self.path], self._inputs(state))


def _repeats(orders: np.ndarray, pad: int) -> np.ndarray:
    """For each entry of a row of reactant indices, how many earlier entries of the row
    name the same species (0 for the padding index): the falling-factorial offsets."""
    out = np.zeros(orders.shape)
    for r, row in enumerate(orders):
        seen: dict[int, int] = {}
        for c, i in enumerate(row):
            if i == pad:
                continue
            out[r, c] = seen.get(int(i), 0)
            seen[int(i)] = seen.get(int(i), 0) + 1
    return out
