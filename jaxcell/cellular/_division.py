"""Division and death: discrete steps that fill and free slots of a Population.

Division follows vivarium's idea of *dividers* (how each per-cell variable is shared
between the two daughters) and of division rules from the cell-size literature
(Amir 2014; Taheri-Araghi et al. 2015): a cell divides when its volume reaches a
*target* drawn at its birth (adder, sizer), when its age reaches a drawn duration
(timer), or at a constant rate (memoryless, as death at a constant hazard).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._custom_types import Path, PathLike
from .._errors import ModelError
from .._process import (
    AbstractDiscreteProcess,
    Ports,
    as_parameter_array,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import Ref, StateView, Var, as_ref
from ._division_rules import (
    AbstractDivider,
    AbstractDivisionRule,
    hazard_probability,
)
from ._population import Population


def _population(owner: str, population: Any) -> Population:
    if not isinstance(population, Population):
        raise ModelError(f"{owner}: population must be a jaxcell.cellular.Population; "
                         f"got {type(population).__name__}.")
    return population


def _interval(owner: str, interval: Any) -> float:
    if (isinstance(interval, bool) or not isinstance(interval, (int, float, np.number))
            or not np.isfinite(interval) or interval <= 0):
        raise ModelError(f"{owner}: interval must be a positive number; got {interval!r}.")
    return float(interval)


class Division(AbstractDiscreteProcess):
    """Every ``interval``, each alive cell that its ``rule`` says divides, divides.

    The rule is a size rule (:class:`Adder`, :class:`Sizer`: the volume has reached
    the target drawn at birth), a :class:`Timer` (the age has reached a drawn growth
    time) or a :class:`ConstantRate` (a memoryless draw). The mother keeps its slot and
    the daughter takes the first free slot. The volume is halved, both daughters record
    their birth volume, restart their age at 0 and draw a new target from the rule, and
    every path in ``dividers`` is split by its divider (:class:`Halve`, :class:`Copy`,
    :class:`Binomial`). Give a divider for every other per-cell variable of the model;
    a slot's previous content is otherwise left in the daughter.

    More dividing cells than free slots is a capacity overflow: an error is raised
    (through :func:`equinox.error_if`), never a silent drop.

    Division happens at the first update time after the target is reached, so the
    division volume overshoots by at most ``growth rate × interval`` relative: choose
    ``interval`` small against the cell cycle. The process owns two per-cell
    variables: ``("cellular", name, "target")``, what each cell drew at birth (its
    division volume for a size rule, its division age for a :class:`Timer`, 0 for a
    :class:`ConstantRate`; founders get the noise-free target of their initial volume),
    and ``("cellular", name, "age")``, the time since birth at the last update (0 for
    founders; give ``y0`` for asynchronous founders). Parameters of the rule are
    scalars or one value per slot; a newborn draws its target with the value of its
    mother's slot (lineages inherit it), while a :class:`ConstantRate` applies the
    value of the slot a cell is in.

    Examples:
        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import Adder, Division, Population
        >>> pop = Population("cells", capacity=8, n_initial=1, growth_rate=jnp.log(2.0))
        >>> div = Division("division", pop, Adder(1.0), interval=0.01)  # divide at 2
        >>> traj = jc.simulate([pop, div], 0.0, 2.5, saveat=[2.5])
        >>> int(traj["cellular/cells/alive"][-1].sum())
        4
    """

    name: str
    interval: float = eqx.field(static=True)
    rule: AbstractDivisionRule
    dividers: tuple[AbstractDivider, ...]
    divided: tuple[Path, ...] = eqx.field(static=True)
    pop_name: str = eqx.field(static=True)
    capacity: int = eqx.field(static=True)
    target0: Array

    def __init__(self, name: str, population: Population, rule: AbstractDivisionRule,
                 *, interval: float, dividers: Mapping[PathLike, AbstractDivider] | None = None):
        owner = f"Division {name!r}"
        pop = _population(owner, population)
        if not isinstance(rule, AbstractDivisionRule):
            raise ModelError(f"{owner}: rule must be a division rule (Adder, Sizer, "
                             f"Timer, ConstantRate); got {type(rule).__name__}.")
        for k, v in vars(rule).items():
            if eqx.is_array(v) and v.shape not in ((), (pop.capacity,)):
                raise ModelError(f"{owner}: the rule's parameter {k!r} must be a scalar "
                                 f"or have shape ({pop.capacity},) (one per slot); got "
                                 f"shape {v.shape}.")
        self.name = name
        self.interval = _interval(owner, interval)
        self.rule = rule
        paths, divs = [], []
        for p, d in (dividers or {}).items():
            if not isinstance(d, AbstractDivider):
                raise ModelError(f"{owner}: the divider of {p!r} must be Halve(), Copy() "
                                 f"or Binomial(); got {d!r}.")
            ref = as_ref(p)
            if len(ref) == 4:
                raise ModelError(f"{owner}: {p!r} names a component; a divider splits a "
                                 f"whole per-cell variable, so give "
                                 f"'scale/entity/variable'.")
            p = ref
            if p in (pop.volume_path, pop.alive_path, pop.birth_volume_path):
                raise ModelError(f"{owner}: {p} is divided by the population itself.")
            paths.append(p)
            divs.append(d)
        self.divided = tuple(paths)
        self.dividers = tuple(divs)
        self.pop_name = pop.name
        self.capacity = pop.capacity
        self.target0 = rule.target(pop.volume0, None)

    def _pop(self, var: str) -> Path:
        return ("cellular", self.pop_name, var)

    @property
    def target_path(self) -> Path:
        """``("cellular", name, "target")``: what each cell drew at birth (division
        volume of a size rule, division age of a :class:`Timer`)."""
        return ("cellular", self.name, "target")

    @property
    def age_path(self) -> Path:
        """``("cellular", name, "age")``: each cell's time since birth."""
        return ("cellular", self.name, "age")

    def ports(self) -> Ports:
        cap = (self.capacity,)
        pop = {self._pop(v): Var(cap) for v in ("volume", "alive", "birth_volume")}
        reads: dict[Path, Var | None] = {**pop, **{p: None for p in self.divided}}
        return Ports(owns={self.target_path: Var(cap), self.age_path: Var(cap)},
                     reads=reads, changes=(*pop, *self.divided))

    def initial_values(self) -> dict[Path, Array]:
        return {self.target_path: self.target0,
                self.age_path: jnp.zeros_like(self.target0)}

    def parameters(self) -> dict[str, Array]:
        return {k: v for k, v in vars(self.rule).items() if eqx.is_array(v)}

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Division:
        owner = f"Division {self.name!r}"
        new = replace_in_dict(owner, self.parameters(), values)
        check_parameters(owner, new, nonnegative=tuple(new))
        rule = self.rule
        for k, v in new.items():
            rule = eqx.tree_at(lambda r, k=k: getattr(r, k), rule, v)
        return eqx.tree_at(lambda s: s.rule, self, rule)

    def update(self, t, state: StateView, key, args) -> dict[Path, Array]:
        cap = self.capacity
        params = self.parameters()
        # the rule's parameters (sizes, noise levels) are all non-negative
        checked = checked_parameters(f"Division {self.name!r}", params,
                                     nonnegative=tuple(params))
        rule = eqx.tree_at(lambda r: [getattr(r, k) for k in params], self.rule,
                           [checked[k] for k in params])
        v = state[self._pop("volume")]
        alive = state[self._pop("alive")]
        target = state[self.target_path]
        # ages advance by one interval for living cells (the slots of the dead freeze)
        age = state[self.age_path] + self.interval * alive
        # a key of its own, so that adding it left the other draws as they were
        k_rule = jax.random.fold_in(key, 2**31 - 1)
        dividing = (alive > 0.5) & rule.divides(v, age, target, self.interval, k_rule)
        free = alive <= 0.5
        n_div = jnp.sum(dividing)
        rank = jnp.cumsum(dividing) - 1
        free_slots = jnp.nonzero(free, size=cap, fill_value=cap)[0]
        dst = jnp.where(dividing, free_slots[jnp.clip(rank, 0, cap - 1)], cap)
        dst = eqx.error_if(
            dst, n_div > jnp.sum(free),
            f"Population {self.pop_name!r}: capacity {cap} exceeded: more cells divide "
            f"than there are free slots (Division {self.name!r}). Increase the "
            f"population's capacity.")

        def place(x, mother, daughter):
            d = dividing.reshape(dividing.shape + (1,) * (x.ndim - 1))
            return jnp.where(d, mother, x).at[dst].set(daughter, mode="drop")

        keys = jax.random.split(key, 2 + len(self.dividers))
        half = v / 2
        new_v = place(v, half, half)
        born_m = rule.target(half, keys[0])
        born_d = rule.target(half, keys[1])
        out = {
            self._pop("volume"): new_v,
            self._pop("birth_volume"): place(state[self._pop("birth_volume")], half, half),
            self._pop("alive"): place(alive, alive, jnp.ones_like(alive)),
            self.target_path: place(target, born_m, born_d),
            self.age_path: place(age, jnp.zeros_like(age), jnp.zeros_like(age)),
        }
        for p, divider, k in zip(self.divided, self.dividers, keys[2:]):
            x = state[p]
            if x.shape[:1] != (cap,):
                raise ModelError(f"Division {self.name!r}: {p} has shape {x.shape}; a "
                                 f"per-cell variable needs leading axis {cap}.")
            m, d = divider.split(x, k)
            out[p] = place(x, m, d)
        return out


class Death(AbstractDiscreteProcess):
    """Every ``interval``, each alive cell dies with probability
    ``1 - exp(-rate · interval)`` (a constant hazard ``rate``, a scalar or one per
    slot; the law of division at a :class:`ConstantRate`), or when
    ``condition(t, x, p)`` is true for it. ``condition`` receives the
    paths in ``reads`` by alias and the parameters, and returns a boolean per slot.
    A dead cell's slot is freed (``alive = 0``) and its variables are frozen until a
    division reuses it.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import Death, Population
        >>> pop = Population("cells", capacity=1000)
        >>> death = Death("death", pop, rate=0.5, interval=0.1)
        >>> traj = jc.simulate([pop, death], 0.0, 2.0, saveat=[2.0])
        >>> 300 < int(traj["cellular/cells/alive"][-1].sum()) < 440  # ~1000·e^-1
        True
    """

    name: str
    interval: float = eqx.field(static=True)
    params: dict[str, Array]
    condition: Callable | None
    reads_: dict[str, Ref] = eqx.field(static=True)
    pop_name: str = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    def __init__(self, name: str, population: Population, *, interval: float,
                 rate: ArrayLike = 0.0, condition: Callable | None = None,
                 reads: Mapping[str, PathLike] | None = None,
                 parameters: Mapping[str, ArrayLike] | None = None):
        owner = f"Death {name!r}"
        pop = _population(owner, population)
        self.name = name
        self.interval = _interval(owner, interval)
        r = as_parameter_array(owner, "rate", rate)
        if r.shape not in ((), (pop.capacity,)):
            raise ModelError(f"{owner}: rate must be a scalar or have shape "
                             f"({pop.capacity},); got shape {r.shape}.")
        self.params = {"rate": r}
        for k, val in (parameters or {}).items():
            if k == "rate":
                raise ModelError(f"{owner}: 'rate' is given by the rate argument.")
            self.params[k] = as_parameter_array(owner, k, val)
        check_parameters(owner, {"rate": r}, nonnegative=("rate",))
        if condition is not None and not callable(condition):
            raise ModelError(f"{owner}: condition must be callable; got {condition!r}.")
        self.condition = condition
        # paths or labelled components, as for every reads=
        self.reads_ = {str(k): as_ref(p) for k, p in (reads or {}).items()}
        self.pop_name = pop.name
        self.capacity = pop.capacity

    def _alive(self) -> Path:
        return ("cellular", self.pop_name, "alive")

    def ports(self) -> Ports:
        reads: dict[Path, Var | None] = {r[:3]: None  # pyright: ignore[reportAssignmentType]
                                         for r in self.reads_.values()}
        reads[self._alive()] = Var((self.capacity,))
        components = tuple((r[:3], r[3]) for r in self.reads_.values() if len(r) == 4)
        return Ports(reads=reads, changes=(self._alive(),),
                     components=components)  # pyright: ignore[reportArgumentType]

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Death:
        owner = f"Death {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, {"rate": new["rate"]}, nonnegative=("rate",))
        return eqx.tree_at(lambda s: s.params, self, new)

    def update(self, t, state: StateView, key, args) -> dict[Path, Array]:
        alive = state[self._alive()]
        # the hazard rate is checked; the condition's own parameters are the user's
        rate = checked_parameters(f"Death {self.name!r}", {"rate": self.params["rate"]},
                                  nonnegative=("rate",))["rate"]
        p = {**self.params, "rate": rate}
        p_die = hazard_probability(p["rate"], self.interval)
        die = jax.random.uniform(key, alive.shape, alive.dtype) < p_die
        if self.condition is not None:
            x = {a: state[p] for a, p in self.reads_.items()}
            die = die | jnp.asarray(self.condition(t, x, p), bool)
        return {self._alive(): jnp.where(die, jnp.zeros_like(alive), alive)}
