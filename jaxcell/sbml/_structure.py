"""What each SBML symbol is at simulation time, decided once when a model is imported.

Every symbol with an id gets one *role*:

- ``assigned``: it has an assignment rule, computed from the others whenever needed;
- ``state``: it can change over time (reactions, a rate rule, events, or simply
  ``constant="false"``) and is a component of the integrated state vector; so is a
  ``constant="true"`` species in concentration units in a compartment whose size can
  change (SBML keeps its amount constant, so its concentration changes);
- ``const``: it never changes; its value is fixed at the start (after initial
  assignments) and passed to the right-hand side.

State species are stored as amounts (what reactions change), except species with a rate
rule in concentration units, stored as concentrations. The ``Structure`` is plain data,
hashable, and is a static field of :class:`~jaxcell.sbml.SBMLModel`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._safe_io import MAX_NESTING
from ._ast import contains, names_in
from ._errors import SBMLError, SBMLUnsupportedError
from ._reader import ModelIR, Symbol


def substitute(tree: tuple, env: dict) -> tuple:
    """Replace argument names by expression trees (inlining a function body)."""
    if not env:
        return tree
    tag = tree[0]
    if tag == "name":
        return env.get(tree[1], tree)
    if tag in ("op", "call"):
        return (tag, tree[1], *(substitute(k, env) for k in tree[2:]))
    if tag in ("delay", "rateOf"):
        return (tag, *(substitute(k, env) for k in tree[1:]))
    return tree


def _constant_tree(tree: tuple) -> bool:
    tag = tree[0]
    if tag in ("num", "nan", "true", "false", "avogadro"):
        return True
    if tag == "op":
        return all(_constant_tree(k) for k in tree[2:])
    return False


class Structure:
    def __init__(self, ir: ModelIR):
        self.ir = ir
        self._hash = hash(ir)
        label = ir.source
        self.symbols: dict[str, Symbol] = {}
        for s in ir.symbols:
            if s.id in self.symbols:
                raise SBMLError(f"{label}: the id {s.id!r} is used twice.")
            self.symbols[s.id] = s
        self.reactions = {r.id: r for r in ir.reactions}
        self.functions = {f[0]: (f[1], f[2]) for f in ir.functions}
        self.assigned = dict(ir.assignment_rules)
        self.rate_rules = dict(ir.rate_rules)
        self.initial_assignments = dict(ir.initial_assignments)
        self.local_ids = {r.id: set(r.locals) for r in ir.reactions}

        for var, _ in ir.assignment_rules + ir.rate_rules:
            self._check_target(var, "rule")
            if var in self.symbols and self.symbols[var].constant:
                raise SBMLError(f"{label}: a rule changes {var!r}, which is constant.")
        for var in self.initial_assignments:
            self._check_target(var, "initial assignment")
        both = set(self.assigned) & set(self.rate_rules)
        if both:
            raise SBMLError(f"{label}: {sorted(both)} have both an assignment and a rate rule.")

        # reaction participation
        self.reacting: set[str] = set()
        for r in ir.reactions:
            for ref in r.refs:
                if ref.species not in self.symbols or \
                        self.symbols[ref.species].kind != "species":
                    raise SBMLError(f"{label}: reaction {r.id!r} refers to an unknown "
                                    f"species {ref.species!r}.")
                self.reacting.add(ref.species)
        for s in self.symbols.values():
            if s.kind == "species" and s.compartment not in self.symbols:
                raise SBMLError(f"{label}: species {s.id!r} is in an unknown compartment "
                                f"{s.compartment!r}.")

        event_targets = set()
        for ev in ir.events:
            for var, _ in ev.assignments:
                self._check_target(var, f"event {ev.id!r} assignment")
                sym = self.symbols.get(var)
                if sym is not None and sym.constant:
                    raise SBMLError(f"{label}: event {ev.id!r} assigns {var!r}, which is "
                                    "constant.")
                if var in self.assigned:
                    raise SBMLError(f"{label}: event {ev.id!r} assigns {var!r}, which has "
                                    "an assignment rule.")
                event_targets.add(var)

        # compartments without a size: 0-D ones with no size given (SBML L2 semantics:
        # a species there has an amount and no concentration)
        self.sizeless = frozenset(
            c.id for c in self.symbols.values()
            if c.kind == "compartment" and c.dims == 0
            and (c.value is None or math.isnan(c.value))
            and c.id not in self.assigned and c.id not in self.initial_assignments
            and c.id not in self.rate_rules
        )
        state, const = [], []
        for s in self.symbols.values():
            if s.id in self.assigned:
                continue
            if s.constant and not self._diluted(s):
                const.append(s.id)
            else:
                state.append(s.id)
        self.state_ids: tuple[str, ...] = tuple(state)
        self.const_ids: tuple[str, ...] = tuple(const)
        self.state_index = {k: i for i, k in enumerate(state)}
        self.const_index = {k: i for i, k in enumerate(const)}
        # how each state species is stored
        self.stored_as_concentration = frozenset(
            s for s in state
            if self.symbols[s].kind == "species" and s in self.rate_rules
            and not self.symbols[s].only_substance
            and self.has_size(self.symbols[s].compartment)
        )
        # parameters (fit-able leaves): attribute values and local parameters
        self.parameter_ids: tuple[str, ...] = tuple(
            [s.id for s in self.symbols.values() if s.value is not None]
            + [k for k, _ in ir.local_values]
        )
        self.default_parameters = {s.id: s.value for s in self.symbols.values()
                                   if s.value is not None}
        self.default_parameters.update(dict(ir.local_values))
        for s in self.symbols.values():
            if s.value is None and s.id not in self.assigned \
                    and s.id not in self.initial_assignments and s.kind != "speciesref":
                raise SBMLError(f"{label}: {s.kind} {s.id!r} has no initial value, no "
                                "initial assignment and no assignment rule.")
            if s.kind == "speciesref" and s.value is None and s.id not in self.assigned \
                    and s.id not in self.initial_assignments:
                raise SBMLError(f"{label}: species reference {s.id!r} has no stoichiometry.")

        # stoichiometry: numeric entries as a matrix, symbolic ones as a list
        reacting_state = [s for s in state if s in self.reacting
                          and not self.symbols[s].boundary and not self.symbols[s].constant
                          and s not in self.rate_rules]
        self.reacting_state = tuple(reacting_state)
        n = np.zeros((len(state), len(ir.reactions)))
        symbolic = []
        for j, r in enumerate(ir.reactions):
            for ref in r.refs:
                if ref.species not in self.state_index or ref.species not in reacting_state:
                    continue
                i = self.state_index[ref.species]
                if ref.stoichiometry[0] == "num":
                    n[i, j] += ref.sign * ref.stoichiometry[1]
                else:
                    symbolic.append((i, j, ref.sign, ref.stoichiometry))
        self.numeric_stoichiometry = n
        self.symbolic_stoichiometry = tuple(symbolic)
        self.has_delay = self._any_tree(lambda t: contains(t, "delay"))
        self._check_names()
        self.discontinuities = self._find_discontinuities()

    def _find_discontinuities(self) -> tuple[tuple, ...]:
        """Where the right-hand side (rules, kinetic laws, stoichiometry) jumps:
        ``("cond", tree)`` for conditions of ``piecewise`` and ``("floor"|"ceiling",
        argument)``. During integration their values are frozen (the right-hand side is
        smooth) and the integrator stops where they change, as CVODE-based tools do,
        rather than stepping across a jump (trees inside function definitions appear
        with the call's arguments substituted)."""
        found: dict[tuple, None] = {}

        def walk(tree, env):
            tag = tree[0]
            if tag == "name" and env and tree[1] in env:
                return
            if tag == "call":
                args, body = self.functions[tree[1]]
                sub = dict(zip(args, (substitute(k, env) for k in tree[2:])))
                for k in tree[2:]:
                    walk(k, env)
                walk(body, sub)
            elif tag == "op":
                if tree[1] == "piecewise":
                    kids = tree[2:]
                    for i in range(1, len(kids) - (len(kids) % 2 == 1), 2):
                        cond = substitute(kids[i], env)
                        if not _constant_tree(cond) and not contains(cond, "delay"):
                            found[("cond", cond)] = None
                elif tree[1] in ("floor", "ceiling") and not _constant_tree(tree[2]):
                    # the value jumps where the argument crosses an integer
                    if not contains(tree[2], "delay"):
                        found[(tree[1], substitute(tree[2], env))] = None
                for k in tree[2:]:
                    walk(k, env)
            elif tag in ("delay", "rateOf"):
                pass

        ir = self.ir
        for _, t in ir.assignment_rules + ir.rate_rules:
            walk(t, {})
        for r in ir.reactions:
            if r.law is not None:
                walk(r.law, {})
            for ref in r.refs:
                walk(ref.stoichiometry, {})
        return tuple(found)

    def _diluted(self, sym: Symbol) -> bool:
        """Whether a ``constant="true"`` species must still be a state component: its
        value is a concentration and its compartment's size can change.

        SBML keeps the *amount* of such a species, not its concentration: "Does a
        'constant' value of 'true' mean that the concentration is held constant if the
        compartment size changes? No; it is still the amount that is kept constant across
        a compartment size change" (SBML core specification, Species: "Additional
        considerations for interpreting the numerical value of a species", also in
        libSBML's Species documentation; libRoadRunner does the same). So it is stored
        as an amount with a zero derivative and read as amount / size, like a boundary
        species that nothing changes."""
        if sym.kind != "species" or sym.only_substance:
            return False
        comp = self.symbols.get(sym.compartment)
        return comp is not None and not comp.constant and self.has_size(comp.id)

    @functools.cache  # noqa: B019 (one Structure per imported model)
    def inline(self, call: tuple) -> tuple:
        """The body of a function call with its arguments substituted."""
        args, body = self.functions[call[1]]
        return substitute(body, dict(zip(args, call[2:])))

    def has_size(self, compartment: str) -> bool:
        """Whether species in this compartment have concentrations (amount / size)."""
        return compartment not in self.sizeless

    def _check_target(self, var: str, what: str):
        if var not in self.symbols:
            if var in self.reactions:
                raise SBMLError(f"{self.ir.source}: {what} targets the reaction {var!r}.")
            raise SBMLError(f"{self.ir.source}: {what} targets an unknown symbol {var!r}.")

    def trees(self):
        ir = self.ir
        for k, t in ir.assignment_rules + ir.rate_rules + ir.initial_assignments:
            yield f"rule or initial assignment for {k!r}", t, None
        for r in ir.reactions:
            if r.law is not None:
                yield f"kinetic law of reaction {r.id!r}", r.law, r.id
            for ref in r.refs:
                yield f"stoichiometry in reaction {r.id!r}", ref.stoichiometry, None
        for ev in ir.events:
            yield f"trigger of event {ev.id!r}", ev.trigger, None
            if ev.delay is not None:
                yield f"delay of event {ev.id!r}", ev.delay, None
            if ev.priority is not None:
                yield f"priority of event {ev.id!r}", ev.priority, None
            for var, t in ev.assignments:
                yield f"event {ev.id!r} assignment to {var!r}", t, None

    def _any_tree(self, pred) -> bool:
        return any(pred(t) for _, t, _ in self.trees()) or any(
            pred(body) for _, body in self.functions.values())

    def _check_names(self):
        known = set(self.symbols) | set(self.reactions)
        for what, tree, rid in self.trees():
            extra = self.local_ids.get(rid, set()) if rid else set()
            for name in names_in(tree):
                if name not in known and name not in extra:
                    raise SBMLError(f"{self.ir.source}: {what} uses the undefined symbol "
                                    f"{name!r}.")
            self._check_calls(tree, what)
        for fid, (args, body) in self.functions.items():
            for name in names_in(body):
                if name not in args:
                    raise SBMLError(f"{self.ir.source}: function definition {fid!r} uses "
                                    f"{name!r}, which is not one of its arguments {args}.")
            self._check_calls(body, f"function definition {fid!r}")
            if contains(body, "rateOf"):
                raise SBMLUnsupportedError("rateOf inside a function definition", fid)
        self._check_function_graph()

    def _check_function_graph(self):
        """Function definitions must not call themselves (directly or through others),
        and inlining them must not nest maths beyond ``4 * MAX_NESTING`` levels."""
        depth: dict[str, int] = {}
        active: list[str] = []
        limit = 4 * MAX_NESTING

        def tree_depth(tree) -> int:
            tag = tree[0]
            if tag == "call":
                # inlined: the arguments sit somewhere inside the body (an upper bound)
                inner = function_depth(tree[1])
                return 1 + inner + max([0, *(tree_depth(k) for k in tree[2:])])
            if tag == "op":
                return 1 + max([0, *(tree_depth(k) for k in tree[2:])])
            if tag in ("delay", "rateOf"):
                return 1 + max(tree_depth(k) for k in tree[1:])
            return 1

        def function_depth(fid) -> int:
            if fid in depth:
                return depth[fid]
            if fid in active:
                loop = " -> ".join([*active[active.index(fid):], fid])
                raise SBMLError(f"{self.ir.source}: function definition {fid!r} calls "
                                f"itself ({loop}); SBML forbids recursive functions.")
            active.append(fid)
            d = tree_depth(self.functions[fid][1])
            active.pop()
            if d > limit:
                raise SBMLError(f"{self.ir.source}: function definition {fid!r} nests "
                                f"maths {d} levels deep once the functions it calls are "
                                f"inlined; at most {limit} are accepted.")
            depth[fid] = d
            return d

        for fid in self.functions:
            function_depth(fid)
        for what, tree, _ in self.trees():
            d = tree_depth(tree)
            if d > limit:
                raise SBMLError(f"{self.ir.source}: the {what} nests maths {d} levels "
                                f"deep once function calls are inlined; at most {limit} "
                                "are accepted.")

    def _check_calls(self, tree, what):
        if tree[0] == "call":
            if tree[1] not in self.functions:
                raise SBMLError(f"{self.ir.source}: {what} calls the undefined function "
                                f"{tree[1]!r}.")
            nargs = len(self.functions[tree[1]][0])
            if len(tree) - 2 != nargs:
                raise SBMLError(f"{self.ir.source}: {what} calls {tree[1]!r} with "
                                f"{len(tree) - 2} arguments; it takes {nargs}.")
        if tree[0] in ("op", "call"):
            for k in tree[2:]:
                self._check_calls(k, what)
        elif tree[0] in ("delay", "rateOf"):
            for k in tree[1:]:
                self._check_calls(k, what)

    @functools.cached_property
    def output_ids(self) -> tuple[str, ...]:
        """Every symbol whose value a solution reports (species, compartments,
        parameters, species references), in document order."""
        return tuple(self.symbols)

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, Structure) and (self is other or self.ir == other.ir)
