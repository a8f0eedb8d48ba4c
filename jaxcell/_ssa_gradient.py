"""Gradients of expectations over exact stochastic paths (SSA)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._errors import SimulationError
from ._stochastic import SSA


class SSAGradient(eqx.Module):
    """What :func:`ssa_gradient` returns: the Monte Carlo estimate of ``E[f]``, of its
    gradient, and the standard errors of both (over the paths)."""

    value: Array
    gradient: Array
    value_se: Array
    gradient_se: Array


def ssa_gradient(
    build: Callable[[Array], Any],
    statistic: Callable[[Any], Array],
    theta: ArrayLike,
    keys: Array,
    t0: float,
    t1: float,
    *,
    saveat: ArrayLike,
    estimator: str = "score",
    step: float = 1e-2,
    args: Any = None,
) -> SSAGradient:
    r"""The gradient of ``E[statistic(path)]`` with respect to ``theta``, estimated from
    exact SSA paths (one per key).

    ``build(theta)`` returns the model for parameter vector ``theta`` (for example
    ``lambda th: net.replace_parameters({"lam": th[0], "mu": th[1]})``);
    ``statistic(traj)`` maps a :class:`Trajectory` to a scalar.

    Estimators:

    - ``"score"`` (likelihood ratio): the SSA path has an exact log-likelihood
      :math:`\log p(\omega; \theta) = \sum_k \log a_{j_k}(x_k) - \int a_0(x(t))\,dt`,
      accumulated in the jump loop; forward-mode differentiation of it with the path held
      fixed gives the score, and :math:`\nabla E[f] = E[(f - b)\,\nabla \log p]` with the
      leave-one-out mean ``b`` of the other paths as a baseline. **Unbiased** for any
      statistic and any parameter the propensities depend on smoothly (not initial
      counts, which are discrete); its variance grows with the number of firings.
    - ``"crn"``: central finite differences, ``(E[f(θ + h e_i)] - E[f(θ - h e_i)]) / 2h``,
      with the same keys on both sides (common random numbers), ``h = step·max(1, |θ_i|)``.
      **Biased** by ``O(h²)`` (and by the discontinuity of a path in ``θ``: a firing
      can switch channel), low variance for small ``h`` only while few firings switch.

    Returns:
        :class:`SSAGradient` with the mean of the statistic, the gradient (shape of
        ``theta``) and their standard errors.

    Examples:
        >>> import jax, numpy as np
        >>> import jaxcell as jc
        >>> net = jc.ReactionNetwork("id", {"X": 0.0},
        ...     [jc.Reaction("in", "", "X", jc.MassAction("lam")),
        ...      jc.Reaction("out", "X", "", jc.MassAction("mu"))], {"lam": 10.0, "mu": 1.0})
        >>> g = jc.ssa_gradient(lambda th: net.replace_parameters({"lam": th[0]}),
        ...                     lambda tr: tr["X"][-1], np.array([10.0]),
        ...                     jax.random.split(jax.random.key(0), 4000), 0.0, 2.0,
        ...                     saveat=[0.0, 2.0])
        >>> bool(abs(g.gradient[0] - (1 - np.exp(-2.0))) < 4 * g.gradient_se[0])
        True
    """
    from ._simulate import simulate

    theta = jnp.asarray(theta, dtype=jnp.result_type(float))
    if theta.ndim != 1:
        raise SimulationError(f"ssa_gradient: theta must be a 1-D array; got shape "
                              f"{theta.shape}.")
    if estimator not in ("score", "crn"):
        raise SimulationError(f"ssa_gradient: estimator must be 'score' or 'crn'; got "
                              f"{estimator!r}.")
    n = int(np.shape(keys)[0])
    if n < 2:
        raise SimulationError("ssa_gradient needs at least 2 keys (paths).")
    saveat = np.asarray(saveat, dtype=float)

    def run(th, key):
        traj = simulate(build(th), t0, t1, saveat=saveat, stochastic=SSA(), key=key,
                        args=args, throw=False)
        return traj

    if estimator == "score":
        def one(key):
            def logp_and_f(th):
                traj = run(th, key)
                return traj.stats["log_likelihood"], jnp.asarray(statistic(traj))

            score, f = jax.jacfwd(logp_and_f, has_aux=True)(theta)
            return f, score

        f, score = jax.jit(jax.vmap(one))(keys)
        baseline = (jnp.sum(f) - f) / (n - 1)
        per = (f - baseline)[:, None] * score
    else:
        h = step * jnp.maximum(1.0, jnp.abs(theta))
        shifts = jnp.concatenate([jnp.diag(h), -jnp.diag(h)])

        def one(key):
            fs = jax.vmap(lambda d: jnp.asarray(statistic(run(theta + d, key))))(shifts)
            f0 = jnp.asarray(statistic(run(theta, key)))
            m = theta.shape[0]
            return f0, (fs[:m] - fs[m:]) / (2 * h)

        f, per = jax.jit(jax.vmap(one))(keys)
    return SSAGradient(value=jnp.mean(f), gradient=jnp.mean(per, axis=0),
                       value_se=jnp.std(f, ddof=1) / np.sqrt(n),
                       gradient_se=jnp.std(per, axis=0, ddof=1) / np.sqrt(n))
