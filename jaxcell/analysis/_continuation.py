"""One-parameter continuation of steady states (pseudo-arclength), with detection and
location of folds, branch points and Hopf bifurcations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._composite import Composite
from .._custom_types import State
from .._engine import initial_state
from .._errors import SimulationError
from .._process import AbstractProcess
from ._steady_state import (
    StateAt,
    _checked_model,
    flat_field,
    reduced_eigenvalues,
    reduced_system,
    state_names,
    steady_state,
)


class _SetParameter(eqx.Module):
    """Set one named parameter of a model (hashable, so compiled steps are reused)."""

    name: str = eqx.field(static=True)

    def __call__(self, model: Composite, p: Array) -> Composite:
        return model.replace_parameters({self.name: p})


@dataclasses.dataclass(frozen=True)
class BifurcationPoint:
    """A special point located on a branch of steady states.

    Attributes:
        kind: ``"fold"`` (a limit point: the branch turns back, two steady states meet),
            ``"branch point"`` (another branch crosses: a pitchfork or transcritical
            bifurcation; the Jacobian is singular but the branch goes on) or ``"hopf"``
            (a pair of complex eigenvalues crosses the imaginary axis: a limit cycle is
            born).
        p: the parameter value.
        y: the flat owned state.
        state: the full state, addressable by name.
        eigenvalues: of the reduced Jacobian there.
        frequency: for a Hopf point, the angular frequency ω (the imaginary part of the
            critical pair), so the period of the cycle born there is about 2π/ω;
            ``nan`` otherwise.
    """

    kind: str
    p: float
    y: np.ndarray
    state: StateAt
    eigenvalues: np.ndarray
    frequency: float

    def __repr__(self) -> str:
        extra = f", frequency={self.frequency:.6g}" if self.kind == "hopf" else ""
        return f"BifurcationPoint({self.kind!r}, p={self.p:.10g}{extra})"


@dataclasses.dataclass(frozen=True)
class Branch:
    """A branch of steady states traced by :func:`continuation`.

    Attributes:
        parameter: the continued parameter (its name, or the setter's name).
        p: parameter values along the branch, shape ``(k,)``.
        y: flat owned states, shape ``(k, n)`` (entries named by ``names``).
        states: the full states along the branch, addressable by name with a leading
            axis: ``branch.states["u"]`` has shape ``(k,)``; also ``branch["u"]``.
        eigenvalues: reduced-Jacobian eigenvalues at each point, ``(k, n)``, sorted by
            decreasing real part, ``nan`` for conserved directions.
        stable: ``(k,)`` booleans.
        points: the located :class:`BifurcationPoint` s, in order along the branch.
        names: names of the entries of ``y``.
        stopped: why the continuation stopped.
    """

    parameter: str
    p: np.ndarray
    y: np.ndarray
    states: StateAt
    eigenvalues: np.ndarray
    stable: np.ndarray
    points: list[BifurcationPoint]
    names: list[str]
    stopped: str

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.states[key])

    def of_kind(self, kind: str) -> list[BifurcationPoint]:
        """The located points of one kind (``"fold"``, ``"branch point"``, ``"hopf"``)."""
        return [pt for pt in self.points if pt.kind == kind]

    def plot(self, key: Any, ax: Any = None, *, color: str = "C0", label: str | None = None):
        """Bifurcation diagram of one variable: stable parts solid, unstable dashed,
        folds (``o``), branch points (``s``) and Hopf points (``*``) marked.

        Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        val = np.asarray(self.states[key])
        if val.ndim != 1:
            raise SimulationError(f"Branch.plot: {key!r} is not a scalar along the branch "
                                  f"(shape {val.shape[1:]} per point); name one component.")
        st = np.asarray(self.stable)
        for flag, style in ((True, "-"), (False, "--")):
            y = np.where(st == flag, val, np.nan)
            # join neighbouring segments so that the line is continuous
            edge = np.zeros_like(st)
            edge[1:] |= (st[1:] == flag) & (st[:-1] != flag)
            edge[:-1] |= (st[:-1] == flag) & (st[1:] != flag)
            y = np.where(edge, val, y)
            ax.plot(self.p, y, style, color=color,
                    label=(label if flag else None) if label else None)
        marks = {"fold": "o", "branch point": "s", "hopf": "*"}
        for pt in self.points:
            ax.plot(pt.p, float(np.asarray(pt.state[key])), marks[pt.kind], color="k",
                    markersize=8 if pt.kind == "hopf" else 6)
            ax.annotate(pt.kind, (pt.p, float(np.asarray(pt.state[key]))),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(self.parameter)
        ax.set_ylabel(str(key))
        return ax


# -- compiled pieces (cached on the model's structure and the setter) -------------------


def _g(model, setter, template, basis, conserved, x_ref, t, args, x, p):
    f, _, _ = flat_field(setter(model, p), template, t, args)
    return reduced_system(f, basis, conserved, x_ref)(x)


def _augmented(prob, X, v):
    """``[[G_x, G_p], [v^T]]`` in scaled coordinates, and ``G``."""
    model, setter, template, basis, conserved, x_ref, t, args, sx, sp = prob

    def gs(Xs):
        return _g(model, setter, template, basis, conserved, x_ref, t, args,
                  Xs[:-1] * sx, Xs[-1] * sp)

    val = gs(X)
    jac = jax.jacfwd(gs)(X)
    return jnp.concatenate([jac, v[None, :]], axis=0), val


@eqx.filter_jit
def _correct(prob, X_pred, v, max_iter: int, tol: float):
    """Newton on ``G(X) = 0, v·(X - X_pred) = 0`` from the predictor."""

    def body(carry):
        X, _, i, _ = carry
        a, val = _augmented(prob, X, v)
        rhs = jnp.concatenate([val, (v @ (X - X_pred))[None]])
        dX = jnp.linalg.solve(a, -rhs)
        X_new = X + dX
        err = jnp.max(jnp.abs(dX)) / (1.0 + jnp.max(jnp.abs(X_new)))
        return X_new, err, i + 1, jnp.all(jnp.isfinite(X_new))

    def cond(carry):
        _, err, i, finite = carry
        return (err > tol) & (i < max_iter) & finite

    X, err, iters, finite = jax.lax.while_loop(
        cond, body, (X_pred, jnp.asarray(jnp.inf, X_pred.dtype), 0, jnp.asarray(True)))
    _, val = _augmented(prob, X, v)
    # near a branch point the system is ill-conditioned and round-off bounds the step
    # size: a tiny residual with a small last step is also convergence
    small = (jnp.max(jnp.abs(val)) <= 1e-10 * (1.0 + jnp.max(jnp.abs(X)))) & (err <= 1e-6)
    return X, ((err <= tol) | small) & finite, iters


@eqx.filter_jit
def _tangent_and_tests(prob, X, v_prev):
    """Unit tangent (oriented along ``v_prev``) and the test functions at ``X``."""
    model, setter, template, basis, conserved, x_ref, t, args, sx, sp = prob
    a, _ = _augmented(prob, X, v_prev)
    rhs = jnp.zeros(X.shape[0], X.dtype).at[-1].set(1.0)
    v = jnp.linalg.solve(a, rhs)
    v = v / jnp.linalg.norm(v)
    v = jnp.where(v @ v_prev < 0, -v, v)
    a_new, _ = _augmented(prob, X, v)
    bp_sign, _ = jnp.linalg.slogdet(a_new)
    x, p = X[:-1] * sx, X[-1] * sp
    f, _, _ = flat_field(setter(model, p), template, t, args)
    eig = reduced_eigenvalues(jax.jacfwd(f)(x), basis, conserved)
    re, im = jnp.real(eig), jnp.imag(eig)
    scale = 1.0 + jnp.nanmax(jnp.abs(eig))
    complex_pair = jnp.abs(im) > 1e-7 * scale
    hopf = jnp.max(jnp.where(complex_pair & jnp.isfinite(re), re, -jnp.inf))
    return v, jnp.stack([v[-1], bp_sign, hopf]), eig


@eqx.filter_jit
def _full_states(model, setter, template, t, args, xs, ps):
    def one(x, p):
        m = setter(model, p)
        _, _, unravel = flat_field(m, template, t, args)
        return m.derived_at(t, unravel(x), args)

    return jax.vmap(one)(xs, ps)


_TESTS = ("fold", "branch point", "hopf")


def continuation(
    model: AbstractProcess | list[AbstractProcess],
    parameter: str | Callable[[Composite, Array], Composite],
    p0: float,
    p1: float,
    *,
    y0: Mapping[Any, ArrayLike] | State | None = None,
    args: Any = None,
    t: float = 0.0,
    ds: float = 0.01,
    ds_min: float = 1e-7,
    ds_max: float = 0.05,
    max_points: int = 2000,
    tol: float = 1e-10,
    conservation: bool = True,
    locate: bool = True,
) -> Branch:
    r"""Follow a branch of steady states as one parameter changes, from ``p0`` towards
    ``p1`` (pseudo-arclength continuation), and locate its bifurcations.

    The branch starts at the steady state found by :func:`steady_state` at ``p0`` (from
    the initial state or ``y0``), in its conservation class. Each step predicts along the
    unit tangent :math:`v` of the curve :math:`G(y, p) = 0` and corrects by Newton's
    method on :math:`G = 0,\ v\cdot(X - X_\mathrm{pred}) = 0`, in coordinates scaled by
    the starting state and by :math:`|p_1 - p_0|` (so ``ds`` is a fraction of the
    sweep). Because arclength, not ``p``, parameterises the curve, the branch goes
    around folds: hysteresis loops are traced through their unstable middle part.
    Steps grow after easy corrections and halve after failed ones. It stops when ``p``
    leaves the interval, after ``max_points`` points, or when the step falls below
    ``ds_min``.

    Between consecutive points, three test functions are watched for a change of sign
    and their zero is located by bisection along the arc (to about ``tol``):

    - **fold**: the ``p`` component of the tangent (the branch turns back);
    - **branch point**: the determinant of the augmented Jacobian
      :math:`\begin{psmallmatrix}G_y & G_p\\ v^\top\end{psmallmatrix}` (another branch
      crosses, as at a pitchfork); switching onto the other branch is left to the user
      (continue from a steady state on it);
    - **hopf**: the largest real part among complex eigenvalue pairs (a pair crosses the
      imaginary axis; its imaginary part is the frequency of the cycle born there).

    Limit cycles themselves are not continued here: near a Hopf point, simulate the
    model (:func:`jaxcell.simulate`) and measure the cycle with
    :func:`jaxcell.analysis.period`.

    Args:
        model: a process or list of processes (no events or discrete processes).
        parameter: a parameter name (``"toggle.alpha1"``, as in
            ``model.parameters()``) or a function ``(model, p) -> model`` that sets
            several (e.g. ``alpha1`` and ``alpha2`` together).
        p0: start of the sweep (the branch starts at the steady state there).
        p1: end of the sweep (either side of ``p0``).
        y0: initial-state overrides, as for :func:`steady_state`.
        args: passed to the processes.
        t: the time at which the vector field is evaluated.
        conservation: use the linear conservation laws (as for :func:`steady_state`).
        ds: the initial step, a fraction of ``|p1 - p0|`` in the scaled coordinates.
        ds_min: the smallest step before giving up.
        ds_max: the largest step.
        max_points: the most points stored.
        tol: Newton's tolerance (relative step size) and the bisection tolerance.
        locate: locate bifurcations (``False``: only detect nothing; trace the branch).

    Returns:
        A :class:`Branch`.

    Raises:
        SimulationError: bad arguments, or no steady state at ``p0``.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.analysis import continuation
        >>> def symmetric(model, a):
        ...     return model.replace_parameters({"toggle.alpha1": a, "toggle.alpha2": a})
        >>> toggle = jc.models.toggle_switch(1.0, 1.0, beta=2.0, gamma=2.0, eta=1.0,
        ...                                  u0=0.5, v0=0.5)
        >>> branch = continuation(toggle, symmetric, 1.0, 3.0)
        >>> [(pt.kind, round(pt.p, 8)) for pt in branch.points]   # the pitchfork
        [('branch point', 2.0)]
    """
    where = "continuation"
    comp = _checked_model(model, where)
    if isinstance(parameter, str):
        names = comp.parameters()
        if parameter not in names:
            from .._state import suggest

            raise SimulationError(f"{where}: the model has no parameter {parameter!r}."
                                  f"{suggest(parameter, list(names))}")
        if np.shape(names[parameter]) != ():
            raise SimulationError(f"{where}: parameter {parameter!r} has shape "
                                  f"{np.shape(names[parameter])}; continuation needs a "
                                  f"scalar (pass a function (model, p) -> model).")
        setter: Any = _SetParameter(parameter)
        pname = parameter
    elif callable(parameter):
        setter, pname = parameter, getattr(parameter, "__name__", "p")
    else:
        raise SimulationError(f"{where}: parameter must be a name or a function "
                              f"(model, p) -> model; got {type(parameter).__name__}.")
    p0, p1 = float(p0), float(p1)
    if not (np.isfinite(p0) and np.isfinite(p1)) or p0 == p1:
        raise SimulationError(f"{where}: p0 and p1 must be finite and different; got "
                              f"{p0} and {p1}.")
    for name, value in (("ds", ds), ("ds_min", ds_min), ("ds_max", ds_max)):
        if not value > 0:
            raise SimulationError(f"{where}: {name} must be positive; got {value}.")
    if not ds_min <= ds <= ds_max:
        raise SimulationError(f"{where}: need ds_min <= ds <= ds_max; got {ds_min}, {ds}, "
                              f"{ds_max}.")

    start_model = setter(comp, jnp.asarray(p0))
    template = initial_state(comp, y0)
    ss = steady_state(start_model, y0=template, args=args, t=t, conservation=conservation,
                      throw=False)
    if not bool(ss.converged):
        raise SimulationError(f"{where}: no steady state found at {pname} = {p0} from "
                              f"the initial state; pass a better y0.")
    x_start = np.asarray(ss.y)
    basis, conserved = (ss.conservation, ss.conserved)
    if not conservation:
        basis, conserved = jnp.eye(x_start.size), jnp.zeros(x_start.size, bool)
    x_ref = ss.y
    sx = jnp.asarray(np.maximum(np.abs(x_start), 1e-3 * max(np.abs(x_start).max(), 1e-12))
                     + 1e-300)
    sp = jnp.asarray(abs(p1 - p0))
    prob = (comp, setter, template, basis, conserved, x_ref, jnp.asarray(t, float), args,
            sx, sp)

    direction = 1.0 if p1 > p0 else -1.0
    n = x_start.size
    X = jnp.concatenate([ss.y / sx, jnp.asarray([p0]) / sp])
    e_p = jnp.zeros(n + 1).at[-1].set(direction)
    v, tests, eig = _tangent_and_tests(prob, X, e_p)
    Xs, eigs, points = [np.asarray(X)], [np.asarray(eig)], []
    lo, hi = min(p0, p1), max(p0, p1)
    stopped = f"reached max_points = {max_points}"
    step = float(ds)

    def corrected(Xa, va, s):
        Xc, ok, _ = _correct(prob, Xa + s * va, va, 25, tol)
        return Xc, bool(ok)

    while len(Xs) < max_points:
        Xn, ok, iters = _correct(prob, X + step * v, v, 12, tol)
        ok = bool(ok) and float(jnp.linalg.norm(Xn - X)) < 3.0 * step
        if not ok:
            step /= 2.0
            if step < ds_min:
                stopped = "the step fell below ds_min (no convergence)"
                break
            continue
        vn, tests_n, eig_n = _tangent_and_tests(prob, Xn, v)
        tests_np, tests_n_np = np.asarray(tests), np.asarray(tests_n)
        if locate:
            for k, kind in enumerate(_TESTS):
                a, b = tests_np[k], tests_n_np[k]
                if not (np.isfinite(a) and np.isfinite(b)) or np.sign(a) == np.sign(b):
                    continue
                if kind == "hopf" and (a == -np.inf or b == -np.inf):
                    continue
                pt = _locate(prob, X, v, step, k, a, corrected, tol)
                if pt is not None:
                    points.append(_point(kind, pt, prob, setter, comp, template, t, args))
        X, v, tests, eig = Xn, vn, tests_n, eig_n
        Xs.append(np.asarray(X))
        eigs.append(np.asarray(eig))
        p_now = float(X[-1] * sp)
        if p_now < lo - 1e-12 * sp or p_now > hi + 1e-12 * sp:
            stopped = f"{pname} left [{lo}, {hi}]"
            break
        if int(iters) <= 3:
            step = min(step * 1.5, ds_max)

    Xa = np.stack(Xs)
    ys = Xa[:, :-1] * np.asarray(sx)
    ps = Xa[:, -1] * float(sp)
    states = _full_states(comp, setter, template, jnp.asarray(t, float), args,
                          jnp.asarray(ys), jnp.asarray(ps))
    eig_arr = np.stack(eigs)
    stable = np.nanmax(eig_arr.real, axis=1) < 0
    return Branch(parameter=pname, p=ps, y=ys, states=StateAt(states, comp.spec),
                  eigenvalues=eig_arr, stable=stable, points=points,
                  names=state_names(comp), stopped=stopped)


def _locate(prob, X, v, step, k, a_sign_val, corrected, tol):
    """Bisection on the arclength ``s`` in ``(0, step)`` for a zero of test ``k``."""
    s_lo, s_hi = 0.0, step
    sign_lo = np.sign(a_sign_val)
    X_mid = None
    for _ in range(80):
        s_mid = 0.5 * (s_lo + s_hi)
        X_try, ok = corrected(X, v, s_mid)
        if not ok:
            return X_mid
        X_mid = X_try
        _, tests_mid, _ = _tangent_and_tests(prob, X_mid, v)
        val = float(np.asarray(tests_mid)[k])
        if np.sign(val) == sign_lo:
            s_lo = s_mid
        else:
            s_hi = s_mid
        if s_hi - s_lo <= tol * max(1.0, step):
            break
    return X_mid


def _point(kind, X, prob, setter, comp, template, t, args) -> BifurcationPoint:
    _, _, _, _, _, _, _, _, sx, sp = prob
    x = X[:-1] * sx
    p = X[-1] * sp
    m = setter(comp, p)
    f, _, unravel = flat_field(m, template, jnp.asarray(t, float), args)
    _, _, eig = _tangent_and_tests(prob, X, jnp.zeros_like(X).at[-1].set(1.0))
    eig = np.asarray(eig)
    freq = float("nan")
    if kind == "hopf":
        finite = eig[np.isfinite(eig.real)]
        crit = finite[np.abs(finite.imag) > 0]
        if crit.size:
            freq = float(np.abs(crit[np.argmin(np.abs(crit.real))].imag))
    full = m.derived_at(jnp.asarray(t, float), unravel(x), args)
    return BifurcationPoint(kind=kind, p=float(p), y=np.asarray(x),
                            state=StateAt(full, comp.spec), eigenvalues=eig,
                            frequency=freq)

