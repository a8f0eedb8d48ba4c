"""DiscreteRule: a discrete-time update written as a plain function (cellular
automata, dosing, resets), applied at fixed intervals beside the continuous parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._custom_types import Path, PathLike
from ._errors import ModelError
from ._generic import _aliases, _check_outputs, _params
from ._process import AbstractDiscreteProcess, Ports, as_parameter_array, replace_in_dict
from ._state import StateView, Var


class DiscreteRule(AbstractDiscreteProcess):
    """Replaces state values every ``interval`` time units with ``fn(t, x, p, key)``.

    ``x`` is a dict of this rule's own ``variables`` and of the paths in ``reads`` and
    ``changes`` (by alias); ``p`` the parameters; ``key`` a :func:`jax.random.key`
    that differs at every update. ``fn`` returns ``{alias: new value}`` for some of its
    own variables and ``changes`` aliases. Between updates the rule's own variables are
    constant (unless a continuous process changes them); ``changes`` paths belong to
    other processes and keep evolving under them.

    A cellular automaton is a rule whose variable is the lattice state; a dosing
    schedule is a rule that adds to a species every ``interval``. See
    :func:`jaxcell.simulate` for how the updates interleave with integration.

    Examples:
        Conway's Game of Life on a periodic 5x5 board; a blinker flips every step:

        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> def life(t, x, p, key):
        ...     b = x["board"]
        ...     n = sum(jnp.roll(b, (i, j), (0, 1)) for i in (-1, 0, 1)
        ...             for j in (-1, 0, 1) if (i, j) != (0, 0))
        ...     return {"board": jnp.where((n == 3) | ((b == 1) & (n == 2)), 1.0, 0.0)}
        >>> board = jnp.zeros((5, 5)).at[2, 1:4].set(1.0)
        >>> rule = jc.DiscreteRule("life", 1.0, life, variables={"board": board})
        >>> traj = jc.simulate(rule, 0.0, 1.0, saveat=[1.0])
        >>> traj["tissue/life/board"][-1][1:4, 2].tolist()
        [1.0, 1.0, 1.0]
    """

    name: str
    interval: float = eqx.field(static=True)
    fn: Callable
    y0: dict[str, Array]
    params: dict[str, Array]
    scale: str = eqx.field(static=True)
    reads_: dict[str, Path] = eqx.field(static=True)
    changes_: dict[str, Path] = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        interval: float,
        fn: Callable,
        *,
        variables: Mapping[str, ArrayLike] | None = None,
        reads: Mapping[str, PathLike] | None = None,
        changes: Mapping[str, PathLike] | None = None,
        parameters: Mapping[str, ArrayLike] | None = None,
        scale: str = "tissue",
    ):
        owner = f"DiscreteRule {name!r}"
        if isinstance(interval, bool) or not isinstance(interval, (int, float, np.number)):
            raise ModelError(f"{owner}: interval must be a positive number; got "
                             f"{interval!r}.")
        if not (np.isfinite(interval) and interval > 0):
            raise ModelError(f"{owner}: interval must be a positive number; got "
                             f"{interval!r}.")
        if not callable(fn):
            raise ModelError(f"{owner}: fn must be callable; got {type(fn).__name__}.")
        self.name = name
        self.interval = float(interval)
        self.fn = fn
        self.y0 = {k: as_parameter_array(owner, k, v) for k, v in (variables or {}).items()}
        self.params = _params(owner, parameters)
        self.scale = scale
        self.reads_ = _aliases(owner, reads)
        self.changes_ = _aliases(owner, changes)
        if not self.y0 and not self.changes_:
            raise ModelError(f"{owner}: give its own 'variables' or paths it 'changes'.")
        for a in (set(self.y0) & set(self.reads_)) | (set(self.y0) & set(self.changes_)):
            raise ModelError(f"{owner}: alias {a!r} is both a variable and a read/change.")
        clash = {a for a in set(self.reads_) & set(self.changes_)
                 if self.reads_[a] != self.changes_[a]}
        if clash:
            raise ModelError(f"{owner}: aliases {sorted(clash)} name different paths in "
                             f"reads and changes.")

    def _path(self, var: str) -> Path:
        return (self.scale, self.name, var)

    def ports(self) -> Ports:
        reads = {p: None for p in self.reads_.values()}
        reads.update({p: None for p in self.changes_.values()})
        return Ports(owns={self._path(k): Var(v.shape) for k, v in self.y0.items()},
                     reads=reads, changes=tuple(self.changes_.values()))

    def initial_values(self) -> dict[Path, Array]:
        return {self._path(k): v for k, v in self.y0.items()}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> DiscreteRule:
        new = replace_in_dict(f"DiscreteRule {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    def update(self, t, state: StateView, key, args: Any) -> dict[Path, Array]:
        x = {k: state[self._path(k)] for k in self.y0}
        x.update({a: state[p] for a, p in self.reads_.items()})
        x.update({a: state[p] for a, p in self.changes_.items()})
        out = self.fn(t, x, self.params, key)
        writable = {**{k: self._path(k) for k in self.y0}, **self.changes_}
        _check_outputs(f"DiscreteRule {self.name!r}", out, writable, "variables or changes")
        return {writable[k]: jnp.asarray(v) for k, v in out.items()}
