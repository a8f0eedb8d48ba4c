"""The stationary distribution of an FSP: the null vector of its generator on the states
reachable from the initial distribution."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._errors import ModelError
from ._fsp import FSP

#: the most reachable states the dense stationary solve accepts.
MAX_STATIONARY_STATES = 5000


def stationary_distribution(fsp: FSP) -> Float[Array, "*box"]:
    r"""The stationary distribution of the master equation on an FSP's box.

    Solves :math:`Q_B\,\pi = 0`, :math:`\sum_x \pi(x) = 1` with one dense linear solve,
    where :math:`Q_B` is the truncated generator (:meth:`FSP.generator`) restricted to
    the states reachable from the initial distribution :math:`p_0`, with the flow that
    would leave the box returned to the box as :math:`p_0` (so that mass is conserved
    and the null vector exists: the stationary FSP of Gupta, Mikelson & Khammash 2017).
    As the box grows, :math:`\pi` converges to the CME's stationary distribution; the
    box is large enough when :math:`\pi` is negligible where flow leaves it (check that
    the result does not change with a larger box). It is differentiable (one
    :func:`jax.numpy.linalg.solve`) with respect to the network's parameters, so a
    stationary likelihood can be fitted by gradients.

    Restricting to reachable states matters where the network conserves something
    (``G_off + G_on = 1`` for a gene): the box then holds several closed classes, and
    only the one of :math:`p_0` is solved (the others get probability 0). The solution
    is unique when the reachable states form one closed class.

    Arguments:
        fsp: an :class:`FSP`.

    Returns:
        The distribution, of the box's shape.

    Raises:
        ModelError: more than 5,000 reachable states (a dense solve); integrate
            ``jc.simulate(fsp, 0.0, t_long, solver=diffrax.Tsit5())`` instead.

    Examples:
        >>> import jaxcell as jc
        >>> from jaxcell.stochastic import FSP, stationary_distribution
        >>> birth_death = jc.ReactionNetwork(
        ...     "bd", {"X": 0.0},
        ...     [jc.Reaction("make", "", "X", jc.MassAction("lam")),
        ...      jc.Reaction("decay", "X", "", jc.MassAction("mu"))],
        ...     {"lam": 5.0, "mu": 1.0})
        >>> fsp = FSP(birth_death, {"X": 40})
        >>> round(float(fsp.mean(stationary_distribution(fsp), "X")), 10)
        5.0

    References:
        Gupta, A., Mikelson, J. & Khammash, M. (2017). A finite state projection
        algorithm for the stationary solution of the chemical master equation.
        J. Chem. Phys. 147:154101.
    """
    if not isinstance(fsp, FSP):
        raise ModelError(f"stationary_distribution: expected a jaxcell.stochastic.FSP; got "
                         f"{type(fsp).__name__}.")
    m = int(fsp.box.reachable().size)
    if m > MAX_STATIONARY_STATES:
        raise ModelError(
            f"stationary_distribution: FSP {fsp.name!r} has {m:,} states reachable from "
            f"its initial distribution, more than the {MAX_STATIONARY_STATES:,} of a dense "
            f"solve; integrate to a long time instead: jc.simulate(fsp, 0.0, t_long, "
            f"saveat=[t_long], solver=diffrax.Tsit5()).")
    return _solve(fsp)


@eqx.filter_jit
def _solve(fsp: FSP) -> Array:
    box = fsp.box
    reach = box.reachable()  # NumPy, while tracing
    m = int(reach.size)
    a = fsp.propensity_table()[reach]  # (m, channels)
    nch = a.shape[1]
    pos = np.full(box.n_states + 1, m)  # -1 (outside) and unreachable -> m (dropped)
    pos[reach] = np.arange(m)
    rows = pos[box.target[reach]]
    cols = np.broadcast_to(np.arange(m)[:, None], (m, nch))
    q = jnp.zeros((m, m), a.dtype).at[rows, cols].add(a, mode="drop")
    q = q - jnp.diag(jnp.sum(a, axis=1))
    leave = jnp.sum(jnp.where(jnp.asarray(box.exits[reach]), a, 0.0), axis=1)  # (m,)
    p0 = fsp.p0.reshape(-1)[reach]
    p0 = p0 / jnp.sum(p0)
    q = q + p0[:, None] * leave[None, :]
    # the columns of q sum to zero: one row is redundant; replace it by normalisation
    q = q.at[0].set(jnp.ones((m,), q.dtype))
    rhs = jnp.zeros((m,), q.dtype).at[0].set(1.0)
    pi = jnp.linalg.solve(q, rhs)
    out = jnp.zeros((box.n_states,), pi.dtype).at[reach].set(pi)
    return out.reshape(box.shape)
