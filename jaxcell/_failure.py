"""Failed solves as errors that say what to do.

``simulate(..., throw=True)`` solves with ``throw=False`` and then calls
:func:`raise_on_failure`: outside ``jit`` it raises a :class:`SimulationError` written
for a person (what happened, where, what to try), without equinox's debugging text;
inside ``jit``/``vmap`` (a traced result) it attaches the same advice to an
``eqx.branched_error_if``, the only way a compiled program can fail.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import SimulationError
from ._results import RESULTS
from ._state import flatten_state, path_str

_STIFF = (diffrax.AbstractImplicitSolver,)


def _is_stiff_solver(solver) -> bool:
    from .solvers import Rodas5

    return isinstance(solver, (*_STIFF, Rodas5))


def _item(code: int):
    """The RESULTS item of an integer code."""
    for item in RESULTS._name_to_item.values():  # noqa: SLF001
        if int(item._value) == code:  # noqa: SLF001
            return item
    raise KeyError(code)


def advice(result, solver, max_steps, max_segments) -> str:
    """The message for one failure code."""
    if result == RESULTS.max_steps_reached:
        if _is_stiff_solver(solver):
            return (f"the solver took max_steps={max_steps} steps without reaching the end; "
                    f"pass a larger max_steps, or check the model for a blow-up "
                    f"(a rate that grows without bound).")
        return (f"the solver ({type(solver).__name__}, explicit) took max_steps="
                f"{max_steps} steps (the maximum number of solver steps) without "
                f"reaching the end: the model is probably "
                f"stiff. Try solver=jaxcell.solvers.Rodas5() (the default for models up to "
                f"500 variables) or diffrax.Kvaerno5(); or pass a larger max_steps.")
    if result == RESULTS.max_segments_reached:
        return (f"the event loop used all max_segments={max_segments} segments (event "
                f"firings, switches, save points): pass a larger max_segments.")
    return RESULTS._index_to_message[int(result._value)]  # noqa: SLF001


def _first_non_finite(traj):
    flat = flatten_state(traj.values)
    ts = np.asarray(traj.ts)
    first = None
    saved = np.isfinite(ts)  # after a failure diffrax fills the rest with inf
    for path, v in flat.items():
        a = np.asarray(v).reshape(len(ts), -1)
        bad = ~np.isfinite(a) & saved[:, None]
        if bad.any():
            row = int(np.argmax(bad.any(axis=1)))
            col = int(np.argmax(bad[row]))
            if first is None or row < first[0]:
                first = (row, path, col)
    if first is None:
        return None
    row, path, col = first
    labels = dict(traj.spec.owned + traj.spec.derived)[path].labels
    what = path_str(path)
    if labels:
        what += f"/{labels[col % len(labels)]}"
    elif np.asarray(flat[path]).ndim > 1:
        what += f"[{col}]"
    return what, float(ts[row])


def raise_on_failure(traj, *, solver, max_steps, max_segments):
    """Raise (or, traced, attach an error to) a failed trajectory; return it otherwise."""
    codes = traj.result._value  # noqa: SLF001
    if isinstance(codes, jax.core.Tracer) or isinstance(traj.ts, jax.core.Tracer):
        ok = (traj.result == RESULTS.successful) | (traj.result == RESULTS.event_occurred)
        n = len(RESULTS._index_to_message)  # noqa: SLF001
        msgs = [f"simulate failed: {advice(_item(i), solver, max_steps, max_segments)}"
                if i else "" for i in range(n)]  # noqa: SLF001
        index = jnp.max(jnp.where(ok, 0, codes))
        return eqx.branched_error_if(traj, ~jnp.all(ok), index, msgs)
    ok = np.asarray(traj.success)
    if ok.all():
        return traj
    code = int(np.max(np.where(ok, 0, np.asarray(codes))))
    result = _item(code)  # noqa: SLF001
    msg = advice(result, solver, max_steps, max_segments)
    found = _first_non_finite(traj) if np.ndim(codes) == 0 else None
    where = ""
    if found is not None:
        what, t = found
        where = (f" The state stopped being finite before t = {t:g}: the first non-finite "
                 f"value is {what!r} (check parameters and initial values for NaN/Inf, and "
                 f"rates for division by zero).")
    raise SimulationError(f"simulate failed: {msg}{where} (simulate(throw=False) returns "
                          f"the trajectory with Trajectory.result instead.)")
