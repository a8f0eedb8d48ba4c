"""Dividers (how a cell's variables are shared between its daughters) and division rules
(when a cell divides: adder, sizer, timer, constant rate), used by
:class:`jaxcell.cellular.Division`."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._errors import ModelError
from .._process import (
    as_parameter_array,
    check_finite,
    check_parameters,
)

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
