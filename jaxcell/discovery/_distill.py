"""From a trained neural term back to equations.

A universal differential equation learns what the mechanism is missing as a network.
:func:`distill` evaluates the network along trajectories, regresses its output on a
library (no derivative estimation: the network's output is the target itself), and
returns the model with the network replaced by the recovered terms, a
:class:`SparseModel` whose coefficients :func:`coefficient_parameters` hands to
:func:`jaxcell.inference.fit` for a refit against the original data.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._composite import Composite, as_composite
from .._errors import DiscoveryError
from .._process import AbstractContinuousProcess
from .._state import path_str
from .._trajectory import Trajectory, _owned_tree
from ._library import AbstractLibrary, library_names
from ._model import SparseModel
from ._regression import STLSQ, AbstractOptimizer


class Distillation(eqx.Module):
    """What :func:`distill` found.

    Attributes:
        model: the model with the neural process replaced by ``sparse``.
        sparse: the recovered terms, a :class:`SparseModel` with the neural process's
            name, reads and changes.
        inputs: ``(samples, d)`` the library inputs along the trajectories.
        outputs: ``(samples, k)`` the network's output there (the regression target).
        r2: ``(k,)`` how much of the network's output the recovered terms explain.
    """

    model: Composite
    sparse: SparseModel
    inputs: Array
    outputs: Array
    r2: Array

    def equations(self, digits: int = 6) -> list[str]:
        """The recovered terms as text (``d<target>/dt`` is their contribution)."""
        return self.sparse.equations(digits)


def _names(model: Composite, path, prefix: str) -> list[str]:
    var = model.spec.var(path)
    size = int(np.prod(var.shape)) if var.shape else 1
    if var.labels:
        return list(var.labels)
    if size == 1:
        return [prefix]
    return [f"{prefix}_{i}" for i in range(size)]


def distill(
    model: Composite,
    process: str,
    trajectories: Trajectory | Sequence[Trajectory],
    library: AbstractLibrary,
    *,
    optimizer: AbstractOptimizer | None = None,
    name: str | None = None,
) -> Distillation:
    """Replace the neural process ``process`` of ``model`` by sparse equations.

    Arguments:
        model: the trained hybrid model (a :class:`jaxcell.Composite`).
        process: the name of the process to replace (e.g. a
            :func:`jaxcell.neural.neural_coupling`); any continuous process works.
        trajectories: where to evaluate it: trajectories of ``model`` (e.g.
            ``jc.simulate(model, ...)`` on the fitted time span; several are stacked).
        library: candidate terms of the variables the process reads, named by their
            labels (a reaction network's species) or by the path's last part.
        optimizer: the sparse regression (``STLSQ(0.1)`` by default).
        name: the name of the new process (default: ``process``).

    Returns:
        A :class:`Distillation`.
    """
    model = as_composite(model)
    leaves = model.leaves
    found = [i for i, p in enumerate(leaves) if p.name == process]
    if not found:
        raise DiscoveryError(f"distill: no process named {process!r}; the model has "
                             f"{[p.name for p in leaves]}.")
    i = found[0]
    proc = leaves[i]
    if not isinstance(proc, AbstractContinuousProcess):
        raise DiscoveryError(f"distill: {process!r} is a {type(proc).__name__}; only "
                             f"continuous processes (rates) can be distilled.")
    ports = proc.ports()
    changes = list(ports.changes) + list(ports.owns)
    reads = [p for p in ports.reads if p not in changes] + changes
    reads = list(dict.fromkeys(reads))
    in_names = {p: _names(model, p, p[-1]) for p in reads}
    out_names = {p: [f"{n}" for n in _names(model, p, p[-1])] for p in changes}
    variables = [n for p in reads for n in in_names[p]]
    if len(set(variables)) != len(variables):
        raise DiscoveryError(f"distill: the inputs of {process!r} have repeated names "
                             f"{variables}; give the variables labels.")
    library_names(library, variables)
    trajs = [trajectories] if isinstance(trajectories, Trajectory) else list(trajectories)
    xs, ys = [], []
    for traj in trajs:
        owned = _owned_tree(traj.spec)
        values = {s: {e: {v: traj.values[s][e][v] for v in vs} for e, vs in d.items()}
                  for s, d in owned.items()}

        def at(t, y):
            view = model.view(i, t, y)
            rates = proc.rates(t, view, None)
            x = jnp.concatenate([jnp.reshape(view[p], (-1,)) for p in reads])
            out = jnp.concatenate([jnp.reshape(rates.get(p, jnp.zeros_like(view[p])), (-1,))
                                   for p in changes])
            return x, out

        x, y = jax.vmap(at)(jnp.asarray(traj.ts), values)
        xs.append(x)
        ys.append(y)
    x = jnp.concatenate(xs)
    y = jnp.concatenate(ys)
    if not bool(jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(y))):
        raise DiscoveryError(f"distill: {process!r} or its inputs are not finite along "
                             f"the trajectories (failed simulation?).")
    theta = library(x, variables)
    optimizer = STLSQ(0.1) if optimizer is None else optimizer
    coef = optimizer(theta, y)
    ss = jnp.sum((y - jnp.mean(y, axis=0)) ** 2, axis=0)
    r2 = 1.0 - jnp.sum((y - theta @ coef.T) ** 2, axis=0) / jnp.where(ss > 0, ss, 1.0)
    sparse = SparseModel(
        name or process, library, np.asarray(coef), variables=variables,
        reads={path_str(p): in_names[p] for p in reads},
        changes={path_str(p): out_names[p] for p in changes},
    )
    new = Composite([sparse if j == i else p for j, p in enumerate(leaves)],
                    name=model.name)
    return Distillation(new, sparse, x, y, r2)
