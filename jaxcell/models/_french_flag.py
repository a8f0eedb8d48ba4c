"""The French flag (REFERENCE-MODELS T6): a morphogen gradient on a row of cells, read
by a gene circuit in every cell (Wolpert 1969)."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._composite import Composite
from .._custom_types import Path, RealScalarLike
from .._errors import ModelError
from .._process import (
    AbstractContinuousProcess,
    Ports,
    as_parameter_array,
    is_concrete,
    replace_in_dict,
)
from .._state import StateView, Var
from ..tissue import DiffusingField, Dirichlet, Grid, NoFlux

# The French flag: a morphogen gradient on a row of cells, read by a gene circuit in
# every cell (REFERENCE-MODELS T6).

_FLAG_LABELS = ("A1", "A2")
# The positive-feedback switch, scaled so that it switches on exactly when the input
# s = c^n / (c^n + T^n) passes 1/2 (see french_flag's docstring): with H = G / K,
# dH/dt = (beta/K) s + (alpha/K) H^2/(1 + H^2) - H has its lower saddle-node at H* = 1/4,
# where alpha/K = (1 + H*^2)^2 / (2 H*) = 289/128 and the input there is
# H*(1 - H*^2)/2 = 15/128 = (beta/K) / 2.
_SWITCH_K = 0.5
_SWITCH_ALPHA = 289.0 / 256.0
_SWITCH_BETA = 15.0 / 128.0


def _hill_input(c: Array, T: Array, n: Array) -> Array:
    """``c^n / (c^n + T^n)`` as ``sigmoid(n ln(c/T))``, with ``c/T`` floored at 1e-20:
    zero and negative ``c`` (and the vanishing tails of a spreading field) then have
    finite derivatives of every order, with respect to ``n`` too."""
    log_u = jnp.log(jnp.maximum(c / T, 1e-20))
    return jax.nn.sigmoid(n * log_u)


class _FlagReadouts(AbstractContinuousProcess):
    """The gene circuit of every cell of a French flag (see :func:`french_flag`)."""

    name: str
    initial: Array
    params: dict[str, Array]
    field: Path = eqx.field(static=True)
    bistable: bool = eqx.field(static=True)

    @property
    def path(self) -> Path:
        return ("cellular", self.name, "genes")

    def ports(self) -> Ports:
        n_cells = self.initial.shape[0]
        return Ports(owns={self.path: Var((n_cells, 2), _FLAG_LABELS)},
                     reads={self.field: Var((n_cells,))})

    def initial_values(self) -> dict[Path, Array]:
        return {self.path: self.initial}

    def parameters(self) -> dict[str, Array]:
        return dict(self.params)

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> _FlagReadouts:
        new = replace_in_dict(f"french_flag circuit {self.name!r}", self.params, values)
        return eqx.tree_at(lambda s: s.params, self, new)

    def rates(self, t, state: StateView, args) -> dict[Path, Array]:
        p = self.params
        genes = state[self.path]                                    # (cells, 2)
        c = state[self.field][:, None]                              # (cells, 1)
        thresholds = jnp.stack([p["T1"], p["T2"]])[None, :]         # (1, 2)
        s = _hill_input(c, thresholds, p["n"])                      # (cells, 2)
        if self.bistable:
            g2 = genes**2
            target = p["beta"] * s + p["alpha"] * g2 / (p["K"] ** 2 + g2)
        else:
            target = s
        return {self.path: (target - genes) / p["tau"]}


def _check_flag_value(name: str, value, what: str, *, zero_ok: bool = False) -> Array:
    arr = as_parameter_array("french_flag", name, value, dtype=jnp.result_type(float))
    if arr.shape != ():
        raise ModelError(f"french_flag: {name} ({what}) must be a scalar; got shape "
                         f"{arr.shape}.")
    if is_concrete(arr):
        v = float(arr)
        ok = v >= 0 if zero_ok else v > 0
        if not (ok and np.isfinite(v)):
            bound = "non-negative" if zero_ok else "positive"
            raise ModelError(f"french_flag: {name} ({what}) must be finite and {bound}; "
                             f"got {v}.")
    return arr


def french_flag(
    n_cells: int = 100,
    lam: RealScalarLike = 20.0,
    c0: RealScalarLike = 1.0,
    T1: RealScalarLike = 0.5,
    T2: RealScalarLike = 0.1,
    *,
    D: RealScalarLike = 400.0,
    n: RealScalarLike = 2.0,
    tau: RealScalarLike = 1.0,
    bistable: bool = False,
    name: str = "french_flag",
) -> Composite:
    r"""Wolpert's French flag: a morphogen gradient read by a gene circuit in every cell.

    A row of ``n_cells`` cells of width 1 lies on a 1-D :class:`~jaxcell.tissue.Grid`
    (cell $i$ has its centre at $x_i = i + \tfrac12$, so the tissue spans
    $0 \le x \le L = N$). A morphogen, a :class:`~jaxcell.tissue.DiffusingField` named
    ``"morphogen"``, is held at $c(0) = c_0$ by a
    :class:`~jaxcell.tissue.Dirichlet` condition on the source face and cannot leave
    through the far face (:class:`~jaxcell.tissue.NoFlux`); it diffuses and decays,

    $$ \partial_t c = D\,\partial_x^2 c - k\,c, \qquad k = D/\lambda^2, $$

    so that its steady profile is
    $c(x) = c_0 \cosh\!\big((L - x)/\lambda\big)/\cosh(L/\lambda) \approx c_0 e^{-x/\lambda}$
    (REFERENCE-MODELS T3). Every cell reads the morphogen concentration of its own grid
    cell through the shared state, ``("tissue", "morphogen", "concentration")``, and
    runs two readouts, one per threshold $T_1 > T_2$, through the Hill input
    $s_j = c^n/(c^n + T_j^n)$, which is $\tfrac12$ exactly where $c = T_j$:

    - **Hill readout** (default): $\tau\,\dot A_j = s_j - A_j$. At steady state
      $A_j = s_j$, so readout $j$ is above $\tfrac12$ exactly where $c > T_j$.
    - **Bistable switch** (``bistable=True``): a gene that activates itself
      (Lewis, Slack & Wolpert 1977),
      $\tau\,\dot A_j = \beta s_j + \alpha A_j^2/(K^2 + A_j^2) - A_j$, starting at 0.
      With the defaults $K = \tfrac12$, $\alpha = 289/256$, $\beta = 15/128$ the lower
      saddle-node of the switch lies at input $s_j = \tfrac12$: a cell turns on, and
      jumps to the upper branch ($A_j > 0.8$), exactly when $c$ exceeds $T_j$; below it
      stays on the lower branch ($A_j < 0.125$). The switch is bistable even at
      $s_j = 0$, so the pattern **persists when the morphogen is removed** (memory).
      The boundary is one cell wide. (Near the threshold switching is slow, the
      saddle-node bottleneck: a cell next to the boundary may take longer to turn on.)

    Readout 1 is on in the cells nearest the source (blue), readout 2 also in the next
    band (white), neither beyond (red). With the defaults the boundaries are at
    $x_j = \lambda \ln(c_0/T_j)$ = 13.86 and 46.05 cells, and doubling $c_0$ moves both
    by $\lambda\ln 2$ = 13.86 cells (the gradient does not scale with the tissue).
    :func:`flag_boundaries` reads them out of a simulated pattern.

    The state is ``("tissue", "morphogen", "concentration")``, shape ``(n_cells,)``,
    and ``("cellular", "flag", "genes")``, shape ``(n_cells, 2)`` with labels
    ``A1, A2``; the circuit is evaluated for all cells at once (no loop over cells).
    Every number is a pytree leaf: $D$, $k$ (``"morphogen.decay"``) and $c_0$ (the
    Dirichlet value) of the field, and ``"flag.T1"``, ``"flag.T2"``, ``"flag.n"``,
    ``"flag.tau"`` (plus ``"flag.alpha"``, ``"flag.beta"``, ``"flag.K"`` of the switch)
    of the circuit, so a loss on the tissue pattern differentiates back to the
    intracellular parameters. The arguments may be traced values (the checks below then
    apply only to concrete ones), so the builder can be called inside a jitted or
    differentiated function; the model's structure, and so the compiled simulation,
    depends only on ``n_cells`` and ``bistable``.

    **Solver.** The default Rodas5 handles the stiff diffusion ($4D/h^2 = 1600$ against
    rates of order 1) with a dense Jacobian of $3N$ states; it takes a few dozen steps
    to steady state at $N = 100$.

    Arguments:
        n_cells: number of cells $N \ge 2$ (the tissue length $L$, in cell widths).
        lam: decay length $\lambda > 0$ of the gradient, in cell widths.
        c0: morphogen concentration at the source face, $\ge 0$.
        T1: threshold of readout 1 (the high one), $T_1 > T_2 > 0$.
        T2: threshold of readout 2 (the low one).
        D: diffusion coefficient (cell widths² per time unit); the default 400 makes
            $k = 1$, so time is measured in morphogen lifetimes.
        n: Hill coefficient of the readouts' input, $> 0$.
        tau: time scale of the readouts, $> 0$.
        bistable: use the bistable switch instead of the Hill readout.
        name: name of the returned composite.

    Returns:
        A :class:`~jaxcell.Composite` of the field ``"morphogen"`` and the circuit
        ``"flag"``.

    Raises:
        ModelError: ``n_cells < 2``, $\lambda$, $D$, $n$, $\tau$ or a threshold not
            positive, $c_0 < 0$, or $T_1 \le T_2$ (concrete values).

    Examples:
        >>> import jaxcell as jc
        >>> flag = jc.models.french_flag()
        >>> traj = jc.simulate(flag, 0.0, 30.0, saveat=[30.0])
        >>> x = jc.models.flag_boundaries(traj["cellular/flag/genes"][-1])
        >>> [round(float(v), 1) for v in x]
        [13.9, 46.1]

    References:
        Wolpert, L. (1969). Positional information and the spatial pattern of cellular
        differentiation. J. Theor. Biol. 25:1–47.
        Lewis, J., Slack, J. M. W. & Wolpert, L. (1977). Thresholds in development.
        J. Theor. Biol. 65:579–590.
        Kicheva, A. et al. (2007). Kinetics of morphogen gradient formation. Science
        315:521–525 (Dpp: $\lambda \approx 20$ µm).
    """
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) \
            or n_cells < 2:
        raise ModelError(f"french_flag: n_cells must be an integer >= 2; got {n_cells!r}.")
    n_cells = int(n_cells)
    lam = _check_flag_value("lam", lam, "decay length")
    D = _check_flag_value("D", D, "diffusion coefficient")
    c0 = _check_flag_value("c0", c0, "source concentration", zero_ok=True)
    T1 = _check_flag_value("T1", T1, "threshold of readout 1")
    T2 = _check_flag_value("T2", T2, "threshold of readout 2")
    n = _check_flag_value("n", n, "Hill coefficient")
    tau = _check_flag_value("tau", tau, "readout time scale")
    if is_concrete(T1) and is_concrete(T2) and not float(T1) > float(T2):
        raise ModelError(f"french_flag: T1 (the high threshold) must be greater than T2; "
                         f"got T1 = {float(T1)}, T2 = {float(T2)}.")
    grid = Grid((n_cells,))
    field = DiffusingField("morphogen", grid, D=D, decay=D / lam**2, initial=0.0,
                           boundary=[(Dirichlet(c0), NoFlux())])
    params = {"T1": T1, "T2": T2, "n": n, "tau": tau}
    if bistable:
        params.update(alpha=jnp.asarray(_SWITCH_ALPHA), beta=jnp.asarray(_SWITCH_BETA),
                      K=jnp.asarray(_SWITCH_K))
    circuit = _FlagReadouts(name="flag", initial=jnp.zeros((n_cells, 2)), params=params,
                            field=field.path, bistable=bool(bistable))
    return Composite([field, circuit], name=name)


def flag_boundaries(
    genes: Float[ArrayLike, "*batch cells readouts"],
    *,
    level: RealScalarLike = 0.5,
    spacing: float = 1.0,
) -> Float[Array, "*batch readouts"]:
    r"""Where each readout of a row of cells falls below ``level``: the boundaries of a
    French flag.

    For each readout (last axis) the profile along the cells (second-to-last axis) is
    scanned from the source side; at the first pair of neighbouring cells $i-1, i$ with
    $A_{i-1} > \ell \ge A_i$ the boundary is placed by linear interpolation between
    their centres $x_i = (i + \tfrac12)\,h$:

    $$ x_b = x_{i-1} + h\,\frac{A_{i-1} - \ell}{A_{i-1} - A_i}. $$

    This is differentiable in the readouts (the cell index is piecewise constant), so
    a loss on boundary positions has gradients with respect to every parameter of the
    model. For the Hill readout of :func:`french_flag` at steady state the readout is a
    logistic function of $x$ with width $w = \lambda/n$, and the interpolation error of
    $\partial x_b/\partial\ln c_0$ is at most $\delta^2/12$ relative, with
    $\delta = h n/\lambda$ (8e-4 for the defaults).

    Arguments:
        genes: readouts, shape ``(..., cells, readouts)`` (e.g. the final
            ``("cellular", "flag", "genes")`` of a French flag).
        level: the level that marks the boundary (the half level, 0.5, for both
            readouts of :func:`french_flag`).
        spacing: the cell width $h$.

    Returns:
        Boundary positions from the source face, shape ``(..., readouts)``; NaN where a
        readout starts at or below ``level`` or never falls below it.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxcell.models import flag_boundaries
        >>> a = jnp.array([[1.0, 1.0], [0.875, 1.0], [0.375, 0.625], [0.0, 0.125]])
        >>> flag_boundaries(a).tolist()  # cell centres 0.5, 1.5, 2.5, 3.5
        [2.25, 2.75]
    """
    a = jnp.moveaxis(jnp.asarray(genes), -2, -1)                    # (..., readouts, cells)
    if a.shape[-1] < 2:
        raise ModelError(f"flag_boundaries: need at least 2 cells along axis -2; got "
                         f"shape {jnp.shape(genes)}.")
    below = a <= level
    i = jnp.argmax(below, axis=-1)                                  # first cell at/below
    found = jnp.any(below, axis=-1) & (i > 0)
    i = jnp.clip(i, 1, a.shape[-1] - 1)[..., None]
    before = jnp.take_along_axis(a, i - 1, axis=-1)[..., 0]
    after = jnp.take_along_axis(a, i, axis=-1)[..., 0]
    drop = jnp.where(found, before - after, 1.0)
    x = (i[..., 0] - 0.5 + (before - level) / drop) * spacing
    return jnp.where(found, x, jnp.nan)
