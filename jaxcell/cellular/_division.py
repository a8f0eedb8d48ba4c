"""Division and death: discrete steps that fill and free slots of a Population.

Division follows vivarium's idea of *dividers* (how each per-cell variable is shared
between the two daughters) and of division rules from the cell-size literature
(Amir 2014; Taheri-Araghi et al. 2015): a cell divides when its volume reaches a
*target* drawn at its birth (adder, sizer), when its age reaches a drawn duration
(timer), or at a constant rate (memoryless, as death at a constant hazard).
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


# -- division rules --------------------------------------------------------------------


def hazard_probability(rate: Array, interval: float) -> Array:
    """``1 - exp(-rate · interval)``: the probability that an event of constant hazard
    ``rate`` happens within one ``interval`` (shared by :class:`ConstantRate` and
    :class:`Death`, so that division and death at constant rates are the same law)."""
    return -jnp.expm1(-rate * interval)


class AbstractDivisionRule(eqx.Module):
    """Decides which cells divide.

    Each newborn cell draws a ``target`` (its memory of birth: a division volume, a
    division age); at every update :meth:`divides` says, from each cell's volume, age
    and target, which cells divide now.
    """

    @abc.abstractmethod
    def target(self, birth_volume: Array, key: Array | None) -> Array:
        """What cells born with ``birth_volume`` will divide at (no noise if ``key``
        is ``None``)."""

    @abc.abstractmethod
    def divides(self, volume: Array, age: Array, target: Array, interval: float,
                key: Array) -> Array:
        """Boolean per slot: the cells (alive or not; the caller masks) that divide
        at this update, ``interval`` after the previous one."""


class AbstractSizeRule(AbstractDivisionRule):
    """A size-control rule: a cell divides when its volume reaches its target."""

    def divides(self, volume, age, target, interval, key):
        return volume >= target


def _noise(cv, key, shape, dtype):
    if key is None:
        return jnp.zeros(shape, dtype)
    # Truncated so that a rare large draw cannot give a zero or negative target.
    return jnp.clip(cv * jax.random.normal(key, shape, dtype), -0.9, 0.9)


class Adder(AbstractSizeRule):
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


class Sizer(AbstractSizeRule):
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


# Ages grow by repeated addition of the interval: a target that is a whole number of
# intervals is reached up to rounding, which this slack (far below one interval) absorbs.
_AGE_SLACK = 1e-6


class Timer(AbstractDivisionRule):
    r"""Divide at the age (time since birth) $T(1 + \varepsilon)$,
    $\varepsilon \sim N(0, \mathrm{cv}^2)$, whatever the size: with exponential
    growth $dV/dt = \lambda V$ the division volume is $V_d = V_b\,e^{\lambda T(1 +
    \varepsilon)}$, a slope of $E[e^{\lambda T(1+\varepsilon)}] \approx 2$ of division
    on birth volume when $\lambda T = \ln 2$ (Amir 2014). A timer has no size
    homeostasis: $\ln V_b$ performs a random walk.

    The :class:`Division` process keeps each cell's age (``("cellular", name,
    "age")``, zero for founders unless given in ``y0``); a cell divides at the first
    update at which its age has reached its target.

    Arguments:
        duration: the mean growth time $T$ (a scalar or one per slot).
        cv: coefficient of variation of the growth time (default 0).

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import Division, Population, Timer
        >>> pop = Population("cells", capacity=8, n_initial=1, growth_rate=0.1)
        >>> div = Division("division", pop, Timer(1.0), interval=0.25)
        >>> traj = jc.simulate([pop, div], 0.0, 2.0, saveat=[0.75, 1.0, 2.0])
        >>> traj["cellular/cells/alive"].sum(axis=1).tolist()  # divides at ages 1, 2
        [1.0, 2.0, 4.0]

    References:
        Amir, A. (2014). Cell size regulation in bacteria. Phys. Rev. Lett.
        112:208102.
    """

    duration: Array
    cv: Array

    def __init__(self, duration: ArrayLike, cv: ArrayLike = 0.0):
        self.duration = as_parameter_array("Timer", "duration", duration)
        self.cv = as_parameter_array("Timer", "cv", cv)
        check_parameters("Timer", {"duration": self.duration, "cv": self.cv},
                         nonnegative=("duration", "cv"))

    def target(self, birth_volume, key):
        eps = _noise(self.cv, key, birth_volume.shape, birth_volume.dtype)
        return jnp.broadcast_to(self.duration * (1 + eps), birth_volume.shape)

    def divides(self, volume, age, target, interval, key):
        return age + _AGE_SLACK * interval >= target


class ConstantRate(AbstractDivisionRule):
    r"""Divide at a constant rate $\lambda$ (memoryless): at every update each cell
    divides with probability $1 - e^{-\lambda \Delta t}$, $\Delta t$ the interval,
    whatever its size or age; the same law as :class:`Death`'s ``rate``. With death at
    rate $\mu < \lambda$ the population goes extinct with probability
    $(\mu/\lambda)^{N_0}$ in continuous time; the discrete process of step
    $\Delta t$ is a Galton–Watson process whose extinction probability is the smallest
    fixed point of its offspring generating function, and tends to that value as
    $\Delta t \to 0$. The ``target`` a cell draws is unused (0).

    Arguments:
        rate: the division rate $\lambda$ (per time; a scalar or one per slot).

    Examples:
        >>> import jax
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import ConstantRate, Division, Population
        >>> pop = Population("cells", capacity=4096, n_initial=1000)
        >>> div = Division("division", pop, ConstantRate(0.5), interval=0.1)
        >>> traj = jc.simulate([pop, div], 0.0, 1.0, saveat=[1.0], key=jax.random.key(0))
        >>> 1490 < int(traj["cellular/cells/alive"][-1].sum()) < 1730  # 1000·(2 - e^-0.05)^10
        True

    References:
        Kendall, D. G. (1948). On the generalized "birth-and-death" process. Ann. Math.
        Statist. 19:1–15.
    """

    rate: Array

    def __init__(self, rate: ArrayLike):
        self.rate = as_parameter_array("ConstantRate", "rate", rate)
        check_parameters("ConstantRate", {"rate": self.rate}, nonnegative=("rate",))

    def target(self, birth_volume, key):
        return jnp.zeros_like(birth_volume)

    def divides(self, volume, age, target, interval, key):
        u = jax.random.uniform(key, volume.shape, volume.dtype)
        return u < hazard_probability(self.rate, interval)


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
    scalars or one value per slot.

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
