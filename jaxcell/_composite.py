"""Composition: many processes, one shared state, one vector field.

:class:`Composite` checks the wiring of its processes when it is built (before any
tracing), orders derived quantities by their dependencies, and turns the whole model
into a single function ``f(t, y, args)`` for :func:`diffrax.diffeqsolve`. A composite is
itself a process, so composites nest: the processes of inner composites are flattened
into the outer one and wired together there.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._custom_types import Path, State
from ._errors import ModelError, WiringError
from ._process import (
    AbstractContinuousProcess,
    AbstractDerivedProcess,
    AbstractDiscreteProcess,
    AbstractEventProcess,
    AbstractJumpProcess,
    AbstractProcess,
    Ports,
    describe_paths,
)
from ._state import (
    StateSpec,
    StateView,
    Var,
    as_ref,
    flatten_state,
    nest_state,
    path_str,
    suggest,
)


def _label(p: AbstractProcess) -> str:
    return f"{type(p).__name__} {p.name!r}"


def _leaves(processes: Sequence[AbstractProcess]) -> list[AbstractProcess]:
    out: list[AbstractProcess] = []
    for p in processes:
        if isinstance(p, Composite):
            out.extend(_leaves(p.children))
        elif isinstance(p, AbstractProcess):
            out.append(p)
        else:
            raise WiringError(
                f"A composite takes jaxcell processes; got {type(p).__name__} ({p!r:.80})."
            )
    return out


def _checked(
    proc: AbstractProcess, values: Mapping[Path, Any], declared: Mapping[Path, Var], what: str,
    *, partial: bool = False,
) -> dict[Path, Array]:
    """``values`` as arrays, checked to cover exactly ``declared`` (some of it, if
    ``partial``) with the right shapes."""
    out: dict[Path, Array] = {}
    for path, value in values.items():
        if path not in declared:
            raise WiringError(
                f"{_label(proc)} gave a {what} for {path_str(path)!r}, which it does not "
                f"declare (declared: {describe_paths(sorted(declared))})."
            )
        value = jnp.asarray(value)
        if value.shape != declared[path].shape:
            raise WiringError(
                f"{_label(proc)}: {what} of {path_str(path)!r} has shape {value.shape}; "
                f"declared {declared[path].shape}."
            )
        out[path] = value
    missing = set(declared) - set(out)
    if missing and not partial:
        raise WiringError(
            f"{_label(proc)} gave no {what} for {describe_paths(sorted(missing))}."
        )
    return out


def _wire(leaves: Sequence[AbstractProcess]):
    """Check the declarations of ``leaves`` against each other.

    Returns the spec, the external reads/changes, and the order of derived processes.
    """
    names: dict[str, AbstractProcess] = {}
    for p in leaves:
        if not isinstance(p.name, str) or not p.name:
            raise WiringError(f"{type(p).__name__}: a process needs a non-empty name.")
        if p.name in names:
            raise WiringError(
                f"Two processes are named {p.name!r} ({_label(names[p.name])} and "
                f"{_label(p)}); names must be unique within a model."
            )
        names[p.name] = p

    ports: list[Ports] = [p.ports() for p in leaves]
    owner: dict[Path, int] = {}
    setter: dict[Path, int] = {}
    var_of: dict[Path, Var] = {}
    for i, (p, pt) in enumerate(zip(leaves, ports)):
        for path, var in pt.owns.items():
            if path in owner:
                raise WiringError(
                    f"{_label(p)} and {_label(leaves[owner[path]])} both own "
                    f"{path_str(path)!r}; a state variable has exactly one owner (use "
                    f"'changes' to add to another process's variable)."
                )
            owner[path] = i
            var_of[path] = var
        for path, var in pt.sets.items():
            if path in setter:
                raise WiringError(
                    f"{_label(p)} and {_label(leaves[setter[path]])} both set "
                    f"{path_str(path)!r}; a derived variable has exactly one setter."
                )
            setter[path] = i
            var_of.setdefault(path, var)
    for path in set(owner) & set(setter):
        raise WiringError(
            f"{path_str(path)!r} is owned (integrated) by {_label(leaves[owner[path]])} "
            f"and also set (derived) by {_label(leaves[setter[path]])}."
        )

    provided = set(owner) | set(setter)
    external_reads: dict[Path, Var | None] = {}
    external_changes: list[Path] = []
    deps: dict[int, set[int]] = {}
    for i, (p, pt) in enumerate(zip(leaves, ports)):
        for path, want in pt.reads.items():
            if path not in provided:
                external_reads.setdefault(path, want)
                continue
            have = var_of[path]
            if want is not None and want.shape != have.shape:
                prov = leaves[owner.get(path, setter.get(path, 0))]
                raise WiringError(
                    f"{_label(p)} reads {path_str(path)!r} with shape {want.shape}, but "
                    f"{_label(prov)} provides it with shape {have.shape}."
                )
            if path in setter and isinstance(p, AbstractDerivedProcess):
                deps.setdefault(i, set()).add(setter[path])
        for path, label in pt.components:
            if path not in provided:
                continue
            labels = var_of[path].labels or ()
            if label not in labels:
                prov = leaves[owner.get(path, setter.get(path, 0))]
                raise WiringError(
                    f"{_label(p)} reads component {label!r} of {path_str(path)!r}, but "
                    f"{_label(prov)} provides no such label; labels: {list(labels)}."
                    f"{suggest(label, labels)}"
                )
        for path in pt.changes:
            if path in setter:
                raise WiringError(
                    f"{_label(p)} changes {path_str(path)!r}, which is a derived variable "
                    f"set by {_label(leaves[setter[path]])}; only owned (integrated) "
                    f"variables have derivatives."
                )
            if path not in owner and path not in external_changes:
                external_changes.append(path)

    # Topological order of derived processes (Kahn), with a clear message on cycles.
    derived = [i for i, p in enumerate(leaves) if isinstance(p, AbstractDerivedProcess)]
    order: list[int] = []
    remaining = set(derived)
    while remaining:
        ready = sorted(i for i in remaining if not (deps.get(i, set()) & remaining) - {i})
        if not ready:
            cyc = ", ".join(_label(leaves[i]) for i in sorted(remaining))
            raise WiringError(f"Derived quantities depend on each other in a cycle: {cyc}.")
        for i in ready:
            if i in deps.get(i, set()):
                raise WiringError(f"{_label(leaves[i])} reads a variable it sets itself.")
        order.extend(ready)
        remaining -= set(ready)

    owned = tuple(sorted(((p, var_of[p]) for p in owner), key=lambda x: x[0]))
    derived_vars = tuple(sorted(((p, var_of[p]) for p in setter), key=lambda x: x[0]))
    spec = StateSpec(owned=owned, derived=derived_vars)
    allowed = []
    for pt in ports:
        allowed.append(
            tuple(sorted(set(pt.reads) | set(pt.owns) | set(pt.changes) | set(pt.sets)))
        )
    writable = [tuple(sorted(set(pt.owns) | set(pt.changes))) for pt in ports]
    return spec, external_reads, tuple(external_changes), tuple(order), allowed, writable


class Composite(AbstractProcess):
    """A model made of processes that share one state.

    Building a composite checks that every path read is provided, that no variable has
    two owners or two setters, that shapes agree, and that derived quantities have no
    cycle; each error names the process and the path.

    Arguments:
        processes: the processes (or composites) to combine.
        name: a name for the composite (used when it is nested in another).

    Examples:
        >>> import jaxcell as jc
        >>> growth = jc.ODE("cells", {"n": 1.0}, lambda t, y, p: {"n": p["r"] * y["n"]},
        ...                 parameters={"r": 1.0})
        >>> harvest = jc.Coupling("harvest", lambda t, x, p: {"n": -p["h"] * x["n"]},
        ...                       changes={"n": "molecular/cells/n"},
        ...                       parameters={"h": 0.25})
        >>> model = jc.Composite([growth, harvest])
        >>> sorted(model.parameters())
        ['cells.r', 'harvest.h']
    """

    name: str
    children: tuple[AbstractProcess, ...]
    spec: StateSpec = eqx.field(static=True)
    external_reads: tuple[tuple[Path, Var | None], ...] = eqx.field(static=True)
    external_changes: tuple[Path, ...] = eqx.field(static=True)
    derived_order: tuple[int, ...] = eqx.field(static=True)
    allowed: tuple[tuple[Path, ...], ...] = eqx.field(static=True)
    writable: tuple[tuple[Path, ...], ...] = eqx.field(static=True)
    stochastic: bool = eqx.field(static=True)

    def __init__(self, processes: Sequence[AbstractProcess], name: str = "model",
                 _wiring: tuple | None = None, _stochastic: bool = False):
        if isinstance(processes, AbstractProcess):
            processes = [processes]
        self.name = name
        self.children = tuple(processes)
        leaves = _leaves(self.children)
        if not leaves:
            raise WiringError(f"Composite {name!r} has no processes.")
        if _wiring is None:
            _wiring = _wire(leaves)
        spec, ext_reads, ext_changes, order, allowed, writable = _wiring
        self.spec = spec
        self.external_reads = tuple(ext_reads.items())
        self.external_changes = ext_changes
        self.derived_order = order
        self.allowed = tuple(allowed)
        self.writable = tuple(writable)
        self.stochastic = bool(_stochastic)

    # -- process interface -------------------------------------------------------------
    @property
    def leaves(self) -> list[AbstractProcess]:
        """The non-composite processes, flattened in order."""
        return _leaves(self.children)

    def ports(self) -> Ports:
        return Ports(
            owns=dict(self.spec.owned),
            reads=dict(self.external_reads),
            changes=self.external_changes,
            sets=dict(self.spec.derived),
            history=any(p.ports().history for p in self.leaves),
        )

    def initial_values(self) -> dict[Path, Array]:
        out: dict[Path, Array] = {}
        for p in self.leaves:
            declared = p.ports().owns
            out.update(_checked(p, p.initial_values(), declared, "initial value"))
        return out

    def parameters(self) -> dict[str, Array]:
        """All parameters as ``{"process.parameter": value}``."""
        return {f"{p.name}.{k}": v for p in self.leaves for k, v in p.parameters().items()}

    def _resolve_parameter(self, key: str) -> tuple[str, str]:
        leaves = self.leaves
        proc, _, pname = key.partition(".")
        for p in leaves:
            if p.name == proc and pname in p.parameters():
                return proc, pname
        owners = [p.name for p in leaves if key in p.parameters()]
        if len(owners) == 1:
            return owners[0], key
        why = (f"it is a parameter of {owners}; write 'process.{key}'" if owners else
               "names are 'process.parameter' (or a parameter name that only one "
               "process has)")
        raise ModelError(
            f"No parameter {key!r} in composite {self.name!r}: {why}; processes are "
            f"{sorted(p.name for p in leaves)}.{suggest(key, self.parameters())}"
        )

    def parameter(self, key: str) -> Array:
        """One parameter's value, by ``"process.parameter"`` or a unique bare name."""
        proc, pname = self._resolve_parameter(key)
        return next(p for p in self.leaves if p.name == proc).parameters()[pname]

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> Composite:
        """A copy with parameters replaced by name: ``"process.parameter"``, or a bare
        parameter name that exactly one process has."""
        by_proc: dict[str, dict[str, ArrayLike]] = {}
        for key, v in values.items():
            proc, pname = self._resolve_parameter(key)
            by_proc.setdefault(proc, {})[pname] = v

        def rebuild(children):
            out = []
            for c in children:
                if isinstance(c, Composite):
                    out.append(Composite(rebuild(c.children), name=c.name))
                elif c.name in by_proc:
                    out.append(c.replace_parameters(by_proc[c.name]))
                else:
                    out.append(c)
            return out

        return Composite(rebuild(self.children), name=self.name)

    # -- simulation ----------------------------------------------------------------------
    def check_closed(self) -> None:
        """Raise :class:`WiringError` unless every read and change is provided inside."""
        known = [path_str(p) for p in self.spec.paths]
        for path, _ in self.external_reads:
            users = [
                _label(p) for p in self.leaves if path in p.ports().reads
            ]
            raise WiringError(
                f"{', '.join(users)} read {path_str(path)!r}, which no process owns or "
                f"sets.{suggest(path_str(path), known)}"
            )
        for path in self.external_changes:
            users = [_label(p) for p in self.leaves if path in p.ports().changes]
            raise WiringError(
                f"{', '.join(users)} change {path_str(path)!r}, which no process owns."
                f"{suggest(path_str(path), known)}"
            )

    def initial_state(self) -> State:
        """The initial state pytree of the owned variables."""
        return nest_state(self.initial_values())

    def _labels(self) -> dict[Path, tuple[str, ...] | None]:
        return {p: v.labels for p, v in self.spec.owned + self.spec.derived}

    def derive(self, t: Array, y: State, args: Any = None, context: Any = None
               ) -> dict[Path, Array]:
        """The full state (owned and derived variables) as a flat ``{path: value}``.
        ``context`` is the event loop's (frozen switches, history), if any."""
        flat = dict(flatten_state(y))
        leaves = self.leaves
        for i in self.derived_order:
            proc = leaves[i]
            view = StateView(flat, self.allowed[i], proc.name, self._labels(), context)
            out = proc.compute(t, view, args)  # pyright: ignore
            sets = proc.ports().sets
            flat.update(_checked(proc, out, sets, "computed value"))
        return flat

    def vector_field(self, t: Array, y: State, args: Any = None, context: Any = None
                     ) -> State:
        """``dy/dt``: the sum of every continuous process's contributions."""
        flat = self.derive(t, y, args, context)
        total: dict[Path, Array | None] = {p: None for p, _ in self.spec.owned}
        for i, proc in enumerate(self.leaves):
            if not isinstance(proc, AbstractContinuousProcess):
                continue
            if self.stochastic and isinstance(proc, AbstractJumpProcess) and proc.can_jump:
                continue  # it runs as jumps (see as_stochastic)
            view = StateView(flat, self.allowed[i], proc.name, self._labels(), context)
            out = proc.rates(t, view, args)
            for path, value in out.items():
                if path not in self.writable[i]:
                    raise WiringError(
                        f"{_label(proc)} returned a rate for {path_str(path)!r}, which "
                        f"it neither owns nor declares in 'changes'."
                    )
                value = jnp.asarray(value)
                want = flat[path].shape
                if value.shape != want:
                    raise WiringError(
                        f"{_label(proc)} returned a rate for {path_str(path)!r} with "
                        f"shape {value.shape}; the variable has shape {want}."
                    )
                prev = total[path]
                total[path] = value if prev is None else prev + value
        dtype_of = {p: flat[p].dtype for p, _ in self.spec.owned}
        out = {
            p: (jnp.zeros(flat[p].shape, dtype_of[p]) if v is None else v.astype(dtype_of[p]))
            for p, v in total.items()
        }
        return nest_state(out)

    @property
    def jump_processes(self) -> tuple[int, ...]:
        """Indices (into :attr:`leaves`) of the processes that can run as jumps."""
        return tuple(i for i, p in enumerate(self.leaves)
                     if isinstance(p, AbstractJumpProcess) and p.can_jump)

    def as_stochastic(self) -> Composite:
        """The same model with its jump processes run as jumps: their deterministic
        rates leave :meth:`vector_field` (the stochastic engine fires their channels)."""
        wiring = (self.spec, dict(self.external_reads), self.external_changes,
                  self.derived_order, list(self.allowed), list(self.writable))
        return Composite(self.children, self.name, _wiring=wiring, _stochastic=True)

    @property
    def discrete_processes(self) -> tuple[int, ...]:
        """Indices (into :attr:`leaves`) of the discrete processes, in model order."""
        return tuple(i for i, p in enumerate(self.leaves)
                     if isinstance(p, AbstractDiscreteProcess))

    def discrete_update(self, i: int, t: Array, y: State, key: Array,
                        args: Any = None) -> State:
        """Apply the update of the discrete process ``leaves[i]`` to the state ``y``."""
        proc = self.leaves[i]
        flat = self.derive(t, y, args)
        view = StateView(flat, self.allowed[i], proc.name, self._labels())
        out = proc.update(t, view, key, args)  # pyright: ignore
        new = dict(flatten_state(y))
        writable = {p: Var(new[p].shape) for p in self.writable[i]}
        for path, value in _checked(proc, out, writable, "new value", partial=True).items():
            new[path] = value.astype(new[path].dtype)
        return nest_state(new)

    def derived_at(self, t: Array, y: State, args: Any = None, context: Any = None
                   ) -> State:
        """The full nested state (owned and derived) at one time point."""
        return nest_state(self.derive(t, y, args, context))

    def prepared(self, t0: Array) -> Composite:
        """Every process prepared for a solve from ``t0`` (see
        :meth:`AbstractProcess.prepared`); the wiring is unchanged."""

        def prep(c):
            if isinstance(c, Composite):
                return eqx.tree_at(lambda m: m.children, c,
                                   tuple(prep(k) for k in c.children))
            return c.prepared(t0)

        return prep(self)

    @property
    def event_processes(self) -> tuple[int, ...]:
        """Indices (into :attr:`leaves`) of the event processes that have events,
        switches or read the past: a model with any runs through the event loop."""
        out = []
        for i, p in enumerate(self.leaves):
            if isinstance(p, AbstractEventProcess):
                table = p.events()
                if table.n_events or table.n_switches or p.ports().history:
                    out.append(i)
        return tuple(out)

    def view(self, i: int, t: Array, y: State, args: Any = None, context: Any = None
             ) -> StateView:
        """What process ``leaves[i]`` sees of the state ``y`` (derived variables
        included)."""
        flat = self.derive(t, y, args, context)
        return StateView(flat, self.allowed[i], self.leaves[i].name, self._labels(), context)

    def assign(self, i: int, y: State, values: Mapping[Any, Any]) -> State:
        """``y`` with the new values of process ``leaves[i]`` (an event's assignments or
        a discrete update: paths it owns or changes, or ``"path/label"`` components)."""
        proc = self.leaves[i]
        new = dict(flatten_state(y))
        labels = self._labels()
        for key, value in values.items():
            ref = as_ref(key)
            path = ref[:3]
            if path not in self.writable[i]:
                raise WiringError(
                    f"{_label(proc)} assigned {path_str(path)!r}, which it neither owns "
                    f"nor declares in 'changes'."
                )
            value = jnp.asarray(value)
            if len(ref) == 4:
                names = labels.get(path) or ()
                if ref[3] not in names:
                    raise WiringError(
                        f"{_label(proc)} assigned component {ref[3]!r} of "
                        f"{path_str(path)!r}, which has no such label; labels: "
                        f"{list(names)}.{suggest(ref[3], names)}"
                    )
                target = new[path][..., names.index(ref[3])]
                if value.shape != target.shape:
                    raise WiringError(
                        f"{_label(proc)}: new value of {key!r} has shape {value.shape}; "
                        f"expected {target.shape}."
                    )
                new[path] = new[path].at[..., names.index(ref[3])].set(
                    value.astype(new[path].dtype))
                continue
            if value.shape != new[path].shape:
                raise WiringError(
                    f"{_label(proc)}: new value of {path_str(path)!r} has shape "
                    f"{value.shape}; expected {new[path].shape}."
                )
            new[path] = value.astype(new[path].dtype)
        return nest_state(new)


# id(process) -> (weak reference to it, its wiring). Wiring is pure Python and costs
# about 0.1 ms, as much as simulating a small model, so a process simulated again and
# again is wired once. The weak reference makes sure a reused id is not a hit; the
# wiring is plain data, so the cache keeps no process alive.
_WRAPPED: dict[int, tuple[weakref.ref, tuple]] = {}


def as_composite(model: AbstractProcess | Sequence[AbstractProcess]) -> Composite:
    """Wrap a single process (or a list of them) as a :class:`Composite`."""
    if isinstance(model, Composite):
        return model
    if isinstance(model, AbstractProcess):
        hit = _WRAPPED.get(id(model))
        if hit is not None and hit[0]() is model:
            return Composite([model], name=model.name, _wiring=hit[1])
        composite = Composite([model], name=model.name)
        key = id(model)

        def forget(ref):
            if _WRAPPED.get(key, (None,))[0] is ref:
                del _WRAPPED[key]

        try:
            ref = weakref.ref(model, forget)
        except TypeError:  # not weak-referenceable: no caching
            return composite
        if len(_WRAPPED) > 256:
            _WRAPPED.clear()
        _WRAPPED[key] = (ref, (composite.spec, dict(composite.external_reads),
                               composite.external_changes, composite.derived_order,
                               list(composite.allowed), list(composite.writable)))
        return composite
    if isinstance(model, Sequence):
        return Composite(list(model))
    raise WiringError(
        f"Expected a jaxcell process or composite; got {type(model).__name__}."
    )

