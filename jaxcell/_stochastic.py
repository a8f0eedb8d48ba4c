"""How ``simulate`` runs a model's jump processes: exactly (SSA), by leaps
(TauLeaping) or as a diffusion (CLE)."""

from __future__ import annotations

import diffrax
import equinox as eqx

from ._errors import SimulationError


class AbstractStochasticMethod(eqx.Module):
    """How :func:`jaxcell.simulate` runs the model's jump processes
    (:class:`jaxcell.AbstractJumpProcess`: reaction networks, SBML models) when given
    as ``stochastic=``."""


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SimulationError(f"{owner}: {name} must be a positive integer; got {value!r}.")
    return value


def _positive(owner: str, name: str, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value != value or value == float("inf"):
        raise SimulationError(f"{owner}: {name} must be a positive finite number; got "
                              f"{value!r}.")
    return float(value)


class SSA(AbstractStochasticMethod):
    """Gillespie's direct method: exact sample paths of the chemical master equation.

    Each step draws the waiting time to the next firing, ``Exp(a0)`` with
    ``a0 = sum(a)``, and which channel fires (with probability ``a_j / a0``). The state
    is recorded at the save times (the memorylessness of the exponential makes stopping
    at a save time and drawing afresh exact). Events are executed exactly: a
    time-dependent trigger is located between firings by bisection, a state-dependent
    one fires at the firing that makes it true. Propensities are held constant between
    firings, so laws that depend on time explicitly are approximated piecewise.

    Arguments:
        max_jumps: budget of steps per trajectory (firings, save points and events);
            running out is ``RESULTS.max_jumps_reached``.
        interval: for models that also have deterministic or discrete processes (a
            growing, dividing population): the jump processes are advanced exactly over
            intervals of this length with the other variables held at their values at
            the start of each interval (a splitting; exact when the propensities do not
            read variables that change continuously). Default: the discrete processes'
            interval.

    References:
        Gillespie, D. T. (1977). Exact stochastic simulation of coupled chemical
        reactions. J. Phys. Chem. 81:2340-2361.
    """

    max_jumps: int = eqx.field(static=True, default=10_000_000)
    interval: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _positive_int("SSA", "max_jumps", self.max_jumps)
        _positive("SSA", "interval", self.interval, allow_none=True)


class TauLeaping(AbstractStochasticMethod):
    """Adaptive explicit tau-leaping (Cao, Gillespie & Petzold 2006), without negative
    populations.

    Channels that could exhaust a reactant within ``n_critical`` firings are *critical*
    and fire one at a time, as in the SSA; the others fire ``Poisson(a_j·tau)`` times in
    a leap of length ``tau`` chosen so that no propensity is expected to change by more
    than a fraction ``epsilon`` (the mean and variance bounds of the paper, with the
    species' highest reaction orders). When that leap would be shorter than
    ``ssa_factor / a0``, an exact SSA step is taken instead; a leap that would make a
    population negative is rejected and retried with half the step.

    Arguments:
        epsilon: the error-control parameter (default 0.03).
        n_critical: the critical-reaction threshold (default 10).
        ssa_factor: take SSA steps when the leap is shorter than this many mean
            waiting times (default 10).
        max_jumps: budget of steps (leaps, SSA steps, save points, events).
        interval: as for :class:`SSA`.

    References:
        Cao, Y., Gillespie, D. T. & Petzold, L. R. (2006). Efficient step size selection
        for the tau-leaping simulation method. J. Chem. Phys. 124:044109.
    """

    epsilon: float = eqx.field(static=True, default=0.03)
    n_critical: int = eqx.field(static=True, default=10)
    ssa_factor: float = eqx.field(static=True, default=10.0)
    max_jumps: int = eqx.field(static=True, default=10_000_000)
    interval: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _positive("TauLeaping", "epsilon", self.epsilon)
        _positive_int("TauLeaping", "n_critical", self.n_critical)
        _positive("TauLeaping", "ssa_factor", self.ssa_factor)
        _positive_int("TauLeaping", "max_jumps", self.max_jumps)
        _positive("TauLeaping", "interval", self.interval, allow_none=True)


class CLE(AbstractStochasticMethod):
    r"""The chemical Langevin equation (Gillespie 2000), an Itô SDE on diffrax:

    .. math:: dX = \sum_j \nu_j a_j(X)\,dt + \sum_j \nu_j \sqrt{a_j(X)}\,dW_j

    with one Wiener process per channel, from a ``diffrax.VirtualBrownianTree`` (so a
    path is a differentiable function of the parameters for a fixed key: pathwise
    gradients). Deterministic processes of the model add to the drift.

    **Negative states.** The CLE's state is real and can cross zero. Propensities are
    evaluated at the state as it is, with a mass-action factor ``max(x - m, 0)`` (so a
    negative count contributes no propensity) and ``sqrt(max(a, 0))`` in the noise; the
    state itself is not reflected or clipped, so its mean stays unbiased where the CLE
    is valid (many molecules).

    Arguments:
        dt: the step size (fixed steps).
        solver: a diffrax SDE solver (default ``diffrax.Euler()``: Euler-Maruyama,
            strong order 0.5, weak order 1, Itô).
        tol: the Brownian tree's tolerance (default ``dt / 2``).

    References:
        Gillespie, D. T. (2000). The chemical Langevin equation. J. Chem. Phys.
        113:297-306.
    """

    dt: float = eqx.field(static=True)
    solver: diffrax.AbstractSolver = eqx.field(static=True, default_factory=diffrax.Euler)
    tol: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _positive("CLE", "dt", self.dt)
        _positive("CLE", "tol", self.tol, allow_none=True)
