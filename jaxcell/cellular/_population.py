"""Population: cells in fixed-capacity arrays with an alive mask, growing in volume."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._custom_types import Path
from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    Ports,
    as_parameter_array,
    check_finite,
    check_parameters,
    checked_parameters,
    replace_in_dict,
)
from .._state import StateView, Var


class Population(AbstractContinuousProcess):
    r"""A population of cells stored in ``capacity`` slots with an ``alive`` mask.

    JAX needs static shapes, so a population is a set of fixed-size arrays: slot ``i``
    holds a cell when ``alive[i] == 1`` and is free when it is 0. Division
    (:class:`Division`) fills free slots with daughters and death (:class:`Death`)
    frees them; every other per-cell variable (e.g. a :class:`PerCell` network) has the
    same leading axis. A division that finds no free slot raises an error (capacity
    overflow is never a silent drop), so choose ``capacity`` for the largest population
    you expect.

    It owns, under ``("cellular", name, ...)``, each of shape ``(capacity,)``:

    - ``volume``: grows exponentially, $dV/dt = \mu V$ for alive cells (``growth_rate``
      $\mu$, a scalar or one value per slot; other processes may add to it);
    - ``alive``: 1.0 for a cell, 0.0 for a free slot (constant between discrete steps);
    - ``birth_volume``: the volume each cell had when it was born (for adder rules).

    Arguments:
        name: the population's name.
        capacity: the number of slots.
        n_initial: how many cells are alive at the start (the first slots; default all).
        volume: initial volume, a scalar or one per slot (default 1).
        growth_rate: exponential growth rate $\mu$ (per time; default 0; negative
            for shrinking cells). It must be finite: NaN or infinite values raise
            :class:`~jaxcell.ModelError` here and the same message from inside
            ``jit``/``vmap``.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.cellular import Population
        >>> pop = Population("cells", capacity=4, n_initial=2, growth_rate=0.5)
        >>> traj = jc.simulate(pop, 0.0, 2.0, saveat=[2.0])
        >>> traj["cellular/cells/volume"][-1].round(4).tolist()
        [2.7183, 2.7183, 1.0, 1.0]
    """

    name: str
    capacity: int = eqx.field(static=True)
    volume0: Array
    alive0: Array
    params: dict[str, Array]

    def __init__(self, name: str, capacity: int, *, n_initial: int | None = None,
                 volume: ArrayLike = 1.0, growth_rate: ArrayLike = 0.0):
        owner = f"Population {name!r}"
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ModelError(f"{owner}: capacity must be a positive integer; got "
                             f"{capacity!r}.")
        if n_initial is None:
            n_initial = capacity
        if (isinstance(n_initial, bool) or not isinstance(n_initial, int)
                or not 0 <= n_initial <= capacity):
            raise ModelError(f"{owner}: n_initial must be an integer in [0, capacity="
                             f"{capacity}]; got {n_initial!r}.")
        self.name = name
        self.capacity = capacity
        v = as_parameter_array(owner, "volume", volume)
        if v.shape not in ((), (capacity,)):
            raise ModelError(f"{owner}: volume must be a scalar or have shape "
                             f"({capacity},); got shape {v.shape}.")
        check_finite(owner, "volume", v, nonnegative=True)
        self.volume0 = jnp.broadcast_to(v, (capacity,))
        self.alive0 = (jnp.arange(capacity) < n_initial).astype(self.volume0.dtype)
        mu = as_parameter_array(owner, "growth_rate", growth_rate)
        if mu.shape not in ((), (capacity,)):
            raise ModelError(f"{owner}: growth_rate must be a scalar or have shape "
                             f"({capacity},); got shape {mu.shape}.")
        check_parameters(owner, {"growth_rate": mu})
        self.params = {"growth_rate": mu}

    def _path(self, var: str) -> Path:
        return ("cellular", self.name, var)

    @property
    def volume_path(self) -> Path:
        """``("cellular", name, "volume")``."""
        return self._path("volume")

    @property
    def alive_path(self) -> Path:
        """``("cellular", name, "alive")``: 1.0 for a cell, 0.0 for a free slot."""
        return self._path("alive")

    @property
    def birth_volume_path(self) -> Path:
        """``("cellular", name, "birth_volume")``."""
        return self._path("birth_volume")

    def ports(self) -> Ports:
        var = Var((self.capacity,))
        return Ports(owns={self.volume_path: var, self.alive_path: var,
                           self.birth_volume_path: var})

    def initial_values(self) -> dict[Path, Array]:
        return {self.volume_path: self.volume0, self.alive_path: self.alive0,
                self.birth_volume_path: self.volume0}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Population:
        owner = f"Population {self.name!r}"
        new = replace_in_dict(owner, self.params, values)
        check_parameters(owner, new)
        return eqx.tree_at(lambda s: s.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        v = state[self.volume_path]
        alive = state[self.alive_path]
        p = checked_parameters(f"Population {self.name!r}", self.params)
        return {self.volume_path: p["growth_rate"] * v * alive}
