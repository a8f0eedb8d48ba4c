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
from .._state import nest_state, path_str
from .._trajectory import Trajectory
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
    if ports.owns or not ports.changes:
        raise DiscoveryError(
            f"distill: {process!r} owns variables ({[path_str(p) for p in ports.owns]}); "
            f"distill replaces a term added to variables that other processes own (such "
            f"as jaxcell.neural.neural_coupling). For a process that owns its variables, "
            f"run discover() on its trajectories."
        )
    changes = list(ports.changes)
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
        values = nest_state({(sc, e, v): traj.values[sc][e][v]
                             for (sc, e, v), _ in traj.spec.owned})

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
    ss = jnp.sum((y - jnp.mean(y, axis=0, keepdims=True)) ** 2, axis=0)
    r2 = 1.0 - jnp.sum((y - theta @ coef.T) ** 2, axis=0) / jnp.where(ss > 0, ss, 1.0)
    sparse = SparseModel(
        name or process, library, np.asarray(coef), variables=variables,
        reads={path_str(p): in_names[p] for p in reads},
        changes={path_str(p): out_names[p] for p in changes},
    )
    new = Composite([sparse if j == i else p for j, p in enumerate(leaves)],
                    name=model.name)
    return Distillation(new, sparse, x, y, r2)


class Candidate(eqx.Module):
    """One structure tried by :func:`refit_select`.

    Attributes:
        threshold: the first threshold of the scan that gave this set of terms.
        n_terms: the number of coefficients refitted.
        nll: the negative log-likelihood of the data after the refit.
        aicc: :math:`2\\,\\mathrm{nll} + 2k + 2k(k+1)/(n-k-1)`.
        model: the refitted model.
    """

    threshold: float
    n_terms: int
    nll: float
    aicc: float
    model: Composite

    def equations(self, process: str, digits: int = 6) -> list[str]:
        """The refitted equations of ``process``."""
        sparse = [p for p in self.model.leaves if p.name == process][0]
        return sparse.equations(digits)


class RefitSelection(eqx.Module):
    """What :func:`refit_select` chose, and every candidate it tried.

    Attributes:
        best: the chosen candidate (lowest AICc).
        candidates: every distinct structure, in threshold order.
    """

    best: Candidate
    candidates: tuple[Candidate, ...]

    @property
    def model(self) -> Composite:
        """The chosen, refitted model."""
        return self.best.model


def refit_select(
    model: Composite,
    process: str,
    trajectories: Trajectory | Sequence[Trajectory],
    library: AbstractLibrary,
    experiments,
    *,
    thresholds: Sequence[float] | np.ndarray | None = None,
    max_terms: int = 12,
    normalize_columns: bool = True,
    method=None,
    **simulate_kwargs,
) -> RefitSelection:
    """From a trained neural term to refitted equations, choosing the structure on the
    original data.

    The network's output is noisy where the data were, so the best fit *to the network*
    is not the best model. For every distinct set of terms along a scan of STLSQ
    thresholds (:func:`distill`, columns normalised), the recovered coefficients are
    refitted to ``experiments`` with :func:`jaxcell.inference.fit` and scored by the
    corrected Akaike information criterion of the data; the lowest wins (Mangan et al.
    2017). Structures with more than ``max_terms`` coefficients are skipped.

    Arguments:
        model: the trained hybrid model.
        process: the neural process to replace.
        trajectories: where to evaluate it (see :func:`distill`).
        library: the candidate terms.
        experiments: the data the hybrid was trained on
            (:class:`jaxcell.inference.Experiment`, or several).
        thresholds: the STLSQ thresholds scanned (default 31 from 0.01 to 10, log-spaced).
        max_terms: the largest structure refitted.
        normalize_columns: threshold unit-norm columns.
        method: the optimiser of the refits (``fit``'s default when ``None``).
        **simulate_kwargs: passed to :class:`jaxcell.inference.Objective` (``solver``,
            ``max_steps``, ...).

    Returns:
        A :class:`RefitSelection`; ``.model`` is the refitted equation model.

    References:
        Mangan, N. M., Kutz, J. N., Brunton, S. L. & Proctor, J. L. (2017). Model
        selection for dynamical systems via sparse regression and information criteria.
        Proc. R. Soc. A 473, 20170009.
    """
    from ..inference import Experiment, Objective, Parameters, fit
    from ._parameters import coefficient_parameters

    thresholds = np.logspace(-2, 1, 31) if thresholds is None else thresholds
    exps = [experiments] if isinstance(experiments, Experiment) else list(experiments)
    n_data = int(sum(np.size(np.asarray(e.data)) for e in exps))
    seen, out = set(), []
    for thr in np.asarray(thresholds, dtype=float):
        d = distill(model, process, trajectories, library,
                    optimizer=STLSQ(float(thr), normalize_columns=normalize_columns))
        key = tuple(k for k, *_ in d.sparse.index)
        if key in seen or not key or len(key) > max_terms:
            continue
        seen.add(key)
        params = Parameters(coefficient_parameters(d.model, d.sparse.name), model=d.model)
        obj = Objective(d.model, params, exps, **simulate_kwargs)
        res = fit(obj) if method is None else fit(obj, method=method)
        k = len(key)
        nll = float(res.value)
        aicc = 2 * nll + 2 * k + 2 * k * (k + 1) / max(n_data - k - 1, 1)
        if not np.isfinite(aicc):
            aicc = np.inf
        out.append(Candidate(float(thr), k, nll, float(aicc),
                             obj.parameters.to_model(d.model, res.x)))
    if not out:
        raise DiscoveryError(
            f"refit_select: no structure with 1 to {max_terms} terms along the thresholds "
            f"{float(np.min(thresholds)):g}..{float(np.max(thresholds)):g}; widen them."
        )
    best = min(out, key=lambda c: c.aicc)
    return RefitSelection(best, tuple(out))
