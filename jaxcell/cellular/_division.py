"""Division and death: discrete steps that fill and free slots of a Population.

Division follows vivarium's idea of *dividers* (how each per-cell variable is shared
between the two daughters) and of size-control rules from the cell-size literature
(Amir 2014; Taheri-Araghi et al. 2015): a cell divides when its volume reaches a
*target* drawn at its birth.
"""

from __future__ import annotations

import abc
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
    check_finite,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import Ref, StateView, Var, as_ref
from ._population import Population

# -- dividers ------------------------------------------------------------------------


class AbstractDivider(eqx.Module):
    """How a per-cell variable is shared between the two daughters of a division."""

    @abc.abstractmethod
    def split(self, x: Array, key: Array) -> tuple[Array, Array]:
        """``(mother, daughter)`` values, computed for every row of ``x`` (only the rows
        of dividing cells are used)."""


class Halve(AbstractDivider):
    """Each daughter gets half: for amounts (molecule numbers, masses, volumes)."""

    def split(self, x, key):
        return x / 2, x / 2


class Copy(AbstractDivider):
    """Each daughter gets the mother's value: for concentrations and cell states."""

    def split(self, x, key):
        return x, x


class Binomial(AbstractDivider):
    """Molecules segregate independently with probability 1/2 each: the mother keeps
    ``Binomial(n, 1/2)`` of ``n = round(x)`` and the daughter the rest. Conserves
    the count exactly; for discrete copy numbers (partitioning noise, Huh & Paulsson
    2011 Nat Genet 43:95)."""

    def split(self, x, key):
        n = jnp.round(x)
        m = jax.random.binomial(key, n, 0.5).astype(x.dtype)
        return m, n - m


class Displace(AbstractDivider):
    """For positions, shape ``(capacity, dim)``: the daughters are placed ``distance``
    apart along a random direction, centred on the mother's position (so the centre of
    mass is kept). Use it with :class:`jaxcell.tissue.SoftSpheres`."""

    distance: Array

    def __init__(self, distance: ArrayLike):
        self.distance = as_parameter_array("Displace", "distance", distance)
        check_finite("Displace", "distance", self.distance, nonnegative=True)

    def split(self, x, key):
        if x.ndim != 2:
            raise ModelError(f"Displace divides positions of shape (capacity, dim); got "
                             f"shape {x.shape}.")
        u = jax.random.normal(key, x.shape, x.dtype)
        u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
        step = 0.5 * self.distance * u
        return x - step, x + step


# -- size-control rules --------------------------------------------------------------


class AbstractDivisionRule(eqx.Module):
    """Gives each newborn cell the volume at which it will divide."""

    @abc.abstractmethod
    def target(self, birth_volume: Array, key: Array | None) -> Array:
        """Division volume for cells born with ``birth_volume`` (no noise if ``key``
        is ``None``)."""


def _noise(cv, key, shape, dtype):
    if key is None:
        return jnp.zeros(shape, dtype)
    # Truncated so that a rare large draw cannot give a zero or negative target.
    return jnp.clip(cv * jax.random.normal(key, shape, dtype), -0.9, 0.9)


class Adder(AbstractDivisionRule):
    """Divide after adding a volume Δ(1 + ε) since birth, ε ~ N(0, cv²): division
    volume ``V_b + Δ(1 + ε)``. Gives a slope of 1 of division on birth volume and
    ``<V_b> = Δ`` (Amir 2014 PRL 112:208102; observed in *E. coli* and *B. subtilis*:
    Taheri-Araghi et al. 2015 Curr Biol 25:385)."""

    added: Array
    cv: Array

    def __init__(self, added: ArrayLike, cv: ArrayLike = 0.0):
        self.added = as_parameter_array("Adder", "added", added)
        self.cv = as_parameter_array("Adder", "cv", cv)
        check_parameters("Adder", {"added": self.added, "cv": self.cv},
                         nonnegative=("added", "cv"))

    def target(self, birth_volume, key):
        eps = _noise(self.cv, key, birth_volume.shape, birth_volume.dtype)
        return birth_volume + self.added * (1 + eps)


class Sizer(AbstractDivisionRule):
    """Divide at a volume V*(1 + ε), ε ~ N(0, cv²), whatever the birth volume: slope 0
    of division on birth volume (Amir 2014)."""

    size: Array
    cv: Array

    def __init__(self, size: ArrayLike, cv: ArrayLike = 0.0):
        self.size = as_parameter_array("Sizer", "size", size)
        self.cv = as_parameter_array("Sizer", "cv", cv)
        check_parameters("Sizer", {"size": self.size, "cv": self.cv},
                         nonnegative=("size", "cv"))

    def target(self, birth_volume, key):
        eps = _noise(self.cv, key, birth_volume.shape, birth_volume.dtype)
        return jnp.broadcast_to(self.size * (1 + eps), birth_volume.shape)


# -- the discrete processes ------------------------------------------------------------


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
    """Every ``interval``, each alive cell whose volume has reached its target divides.

    The mother keeps its slot and the daughter takes the first free slot. The volume
    is halved, both daughters record their birth volume and draw a new target from the
    ``rule`` (:class:`Adder` or :class:`Sizer`), and every path in ``dividers`` is
    split by its divider (:class:`Halve`, :class:`Copy`, :class:`Binomial`). Give a
    divider for every other per-cell variable of the model; a slot's previous content
    is otherwise left in the daughter.

    More dividing cells than free slots is a capacity overflow: an error is raised
    (through :func:`equinox.error_if`), never a silent drop.

    Division happens at the first update time after the target is reached, so the
    division volume overshoots by at most ``growth rate × interval`` relative: choose
    ``interval`` small against the cell cycle. The owned ``target`` variable
    (``("cellular", name, "target")``) holds each cell's division volume; founders get
    the noise-free target of their initial volume.

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
            raise ModelError(f"{owner}: rule must be a division rule (Adder, Sizer); got "
                             f"{type(rule).__name__}.")
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
        """``("cellular", name, "target")``: each cell's division volume."""
        return ("cellular", self.name, "target")

    def ports(self) -> Ports:
        cap = (self.capacity,)
        pop = {self._pop(v): Var(cap) for v in ("volume", "alive", "birth_volume")}
        reads: dict[Path, Var | None] = {**pop, **{p: None for p in self.divided}}
        return Ports(owns={self.target_path: Var(cap)}, reads=reads,
                     changes=(*pop, *self.divided))

    def initial_values(self) -> dict[Path, Array]:
        return {self.target_path: self.target0}

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
        dividing = (alive > 0.5) & (v >= target)
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
    slot), or when ``condition(t, x, p)`` is true for it. ``condition`` receives the
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
        p_die = -jnp.expm1(-p["rate"] * self.interval)
        die = jax.random.uniform(key, alive.shape, alive.dtype) < p_die
        if self.condition is not None:
            x = {a: state[p] for a, p in self.reads_.items()}
            die = die | jnp.asarray(self.condition(t, x, p), bool)
        return {self._alive(): jnp.where(die, jnp.zeros_like(alive), alive)}
