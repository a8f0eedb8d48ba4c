"""General-purpose processes written with plain Python functions.

- :class:`ODE` owns variables and gives their full right-hand side.
- :class:`Coupling` adds derivative contributions to variables that other processes own.
- :class:`Assignment` computes one derived variable (an assignment rule or observable).

The user function may be any JAX-traceable callable, including an equinox module such as
a neural network: its arrays are then parameters of the model like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._custom_types import Path, PathLike
from ._errors import ModelError, WiringError
from ._process import (
    AbstractContinuousProcess,
    AbstractDerivedProcess,
    Ports,
    as_parameter_array,
    check_finite,
    replace_in_dict,
)
from ._state import Ref, StateView, Var, as_path, as_ref, path_str


def _params(owner: str, parameters: Mapping[str, ArrayLike] | None) -> dict[str, Array]:
    out = {}
    for k, v in (parameters or {}).items():
        if not isinstance(k, str):
            raise ModelError(f"{owner}: parameter names must be strings; got {k!r}.")
        out[k] = as_parameter_array(owner, k, v)
        check_finite(owner, k, out[k])
    return out


def _aliases(owner: str, mapping: Mapping[str, PathLike] | None) -> dict[str, Path]:
    return {str(k): as_path(v) for k, v in (mapping or {}).items()}


def _refs(owner: str, mapping: Mapping[str, PathLike] | None) -> dict[str, Ref]:
    """Aliases to paths or to labelled components (``"scale/entity/variable/label"``)."""
    return {str(k): as_ref(v) for k, v in (mapping or {}).items()}


def _read_ports(refs: Mapping[str, Ref]) -> tuple[dict[Path, None], tuple[tuple[Path, str], ...]]:
    reads = {r[:3]: None for r in refs.values()}
    comps = tuple((r[:3], r[3]) for r in refs.values() if len(r) == 4)
    return reads, comps  # pyright: ignore[reportReturnType]


def _check_outputs(owner: str, out: Any, expected: Mapping[str, Any], what: str):
    if not isinstance(out, Mapping):
        raise WiringError(
            f"{owner}: the function must return a dict of {what}; got {type(out).__name__}."
        )
    unknown = set(out) - set(expected)
    if unknown:
        raise WiringError(
            f"{owner}: the function returned {sorted(unknown)}, which are not among the "
            f"declared {what} {sorted(expected)}."
        )


class ODE(AbstractContinuousProcess):
    """A process that owns variables and computes their derivatives with a function.

    ``rhs(t, y, p)`` receives ``y``, a dict of this process's variables and of its
    ``inputs`` (read from elsewhere in the state, by alias), and ``p``, the dict of
    parameters; it returns a dict ``{variable: dy/dt}`` for (some of) its variables.

    Examples:
        >>> import jaxcell as jc
        >>> decay = jc.ODE(
        ...     "decay", {"x": 1.0}, lambda t, y, p: {"x": -p["k"] * y["x"]},
        ...     parameters={"k": 0.5},
        ... )
        >>> traj = jc.simulate(decay, 0.0, 2.0, saveat=[2.0])
        >>> round(float(traj["molecular/decay/x"][-1]), 5)
        0.36788
    """

    name: str
    y0: dict[str, Array]
    rhs: Callable
    params: dict[str, Array]
    scale: str = eqx.field(static=True)
    inputs: dict[str, Ref] = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        variables: Mapping[str, ArrayLike],
        rhs: Callable,
        *,
        parameters: Mapping[str, ArrayLike] | None = None,
        inputs: Mapping[str, PathLike] | None = None,
        scale: str = "molecular",
    ):
        self.name = name
        if not variables:
            raise ModelError(f"ODE {name!r}: give at least one variable.")
        self.y0 = {k: as_parameter_array(name, k, v) for k, v in variables.items()}
        self.rhs = rhs
        self.params = _params(f"ODE {name!r}", parameters)
        self.scale = scale
        self.inputs = _refs(name, inputs)
        clash = set(self.inputs) & set(self.y0)
        if clash:
            raise ModelError(
                f"ODE {name!r}: input aliases {sorted(clash)} clash with its variables."
            )

    def _path(self, var: str) -> Path:
        return (self.scale, self.name, var)

    def ports(self) -> Ports:
        reads, comps = _read_ports(self.inputs)
        return Ports(
            owns={self._path(k): Var(v.shape) for k, v in self.y0.items()},
            reads=reads,
            components=comps,
        )

    def initial_values(self) -> dict[Path, Array]:
        return {self._path(k): v for k, v in self.y0.items()}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> ODE:
        new = replace_in_dict(f"ODE {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        y = {k: state[self._path(k)] for k in self.y0}
        y.update({a: state[p] for a, p in self.inputs.items()})
        out = self.rhs(t, y, self.params)
        _check_outputs(f"ODE {self.name!r}", out, self.y0, "variables")
        return {self._path(k): jnp.asarray(v) for k, v in out.items()}


class Coupling(AbstractContinuousProcess):
    """Adds derivative contributions to variables owned by other processes.

    ``fn(t, x, p)`` receives ``x``, a dict of every path in ``reads`` and ``changes``
    by alias, and the parameters ``p``; it returns ``{alias: contribution}`` for aliases
    in ``changes``. ``fn`` may be an equinox module (e.g. a neural network), whose
    weights then train with the rest of the model.
    """

    name: str
    fn: Callable
    params: dict[str, Array]
    reads_: dict[str, Ref] = eqx.field(static=True)
    changes_: dict[str, Path] = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        fn: Callable,
        *,
        changes: Mapping[str, PathLike],
        reads: Mapping[str, PathLike] | None = None,
        parameters: Mapping[str, ArrayLike] | None = None,
    ):
        self.name = name
        self.fn = fn
        self.params = _params(f"Coupling {name!r}", parameters)
        self.reads_ = _refs(name, reads)
        self.changes_ = _aliases(name, changes)
        if not self.changes_:
            raise ModelError(f"Coupling {name!r}: 'changes' must name at least one path.")
        clash = {a for a in set(self.reads_) & set(self.changes_)
                 if self.reads_[a] != self.changes_[a]}
        if clash:
            raise ModelError(
                f"Coupling {name!r}: aliases {sorted(clash)} name different paths in "
                f"reads and changes."
            )

    def ports(self) -> Ports:
        reads, comps = _read_ports(self.reads_)
        reads.update({p: None for p in self.changes_.values()})
        return Ports(reads=reads, changes=tuple(self.changes_.values()), components=comps)

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Coupling:
        new = replace_in_dict(f"Coupling {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        x = {a: state[p] for a, p in {**self.changes_, **self.reads_}.items()}
        out = self.fn(t, x, self.params)
        _check_outputs(f"Coupling {self.name!r}", out, self.changes_, "changes")
        return {self.changes_[a]: jnp.asarray(v) for a, v in out.items()}


class Assignment(AbstractDerivedProcess):
    """Computes one derived variable from other variables (an assignment rule or an
    observable): ``target = fn(t, x, p)`` with ``x`` the dict of ``reads`` by alias.

    The output's shape is declared, not inferred: give ``shape=`` (default ``()``, a
    scalar) and, for a vector, optionally ``labels=``. It cannot be inferred reliably
    (e.g. with :func:`jax.eval_shape`) when the assignment is built, because the
    shapes of what it reads belong to other processes and are known only when the
    model is wired, and wiring needs every process's declared shapes first. A function
    that returns another shape raises :class:`~jaxcell.WiringError` naming the shape
    to pass.

    Arguments:
        name: the process's name.
        target: the path it sets, ``"scale/entity/variable"`` (a whole variable).
        fn: ``(t, x, p) -> value``, JAX-traceable.
        reads: ``{alias: path}``; a path may name a labelled component
            (``"scale/entity/variable/label"``).
        parameters: ``{name: value}``, passed as ``p``.
        shape: the shape of the value (default ``()``).
        labels: names of the entries along the last axis (for vector outputs).

    Examples:
        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> x = jc.ODE("x", {"v": jnp.ones(3)}, lambda t, y, p: {"v": -y["v"]})
        >>> total = jc.Assignment("total", "molecular/total/sum",
        ...                       lambda t, x, p: jnp.sum(x["v"]),
        ...                       reads={"v": "molecular/x/v"})
        >>> double = jc.Assignment("double", "molecular/double/v",
        ...                        lambda t, x, p: 2 * x["v"],
        ...                        reads={"v": "molecular/x/v"}, shape=(3,))
        >>> traj = jc.simulate([x, total, double], 0.0, 1.0, saveat=[0.0])
        >>> float(traj["molecular/total/sum"][0]), traj["molecular/double/v"].shape
        (3.0, (1, 3))
    """

    name: str
    fn: Callable
    params: dict[str, Array]
    target: Path = eqx.field(static=True)
    var: Var = eqx.field(static=True)
    reads_: dict[str, Ref] = eqx.field(static=True)

    def __init__(
        self,
        name: str,
        target: PathLike,
        fn: Callable,
        *,
        reads: Mapping[str, PathLike] | None = None,
        parameters: Mapping[str, ArrayLike] | None = None,
        shape: tuple[int, ...] = (),
        labels: tuple[str, ...] | None = None,
    ):
        self.name = name
        self.fn = fn
        self.params = _params(f"Assignment {name!r}", parameters)
        self.target = as_path(target)
        self.var = Var(tuple(shape), labels)
        self.reads_ = _refs(name, reads)

    def ports(self) -> Ports:
        reads, comps = _read_ports(self.reads_)
        return Ports(reads=reads, sets={self.target: self.var}, components=comps)

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Assignment:
        new = replace_in_dict(f"Assignment {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    def compute(self, t, state: StateView, args) -> dict[Path, Array]:
        x = {a: state[p] for a, p in self.reads_.items()}
        value = jnp.asarray(self.fn(t, x, self.params))
        if value.shape != self.var.shape:
            raise WiringError(
                f"Assignment {self.name!r} computed {path_str(self.target)!r} with shape "
                f"{value.shape}; it declared shape {self.var.shape}. Pass "
                f"shape={tuple(value.shape)} to Assignment (the shape is declared, since "
                f"the model is wired before any function runs)."
            )
        return {self.target: value}
