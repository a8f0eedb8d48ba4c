"""A small adapter to pyPESTO (with AMICI and fides) for ``benchmarks/fit.py``.

pyPESTO and fides are optional and not in the ``benchmark`` extra; AMICI is (see
``pyproject.toml``). Importing this module always works; :func:`unavailable` says why
pyPESTO cannot be used (``None`` if it can), and the other functions import it lazily.

Written against pyPESTO 0.7, fides 0.8 and AMICI 1.0 (snake_case solver methods such as
``set_relative_tolerance``).

* :func:`petab_problem`: a PEtab problem as a ``pypesto.Problem`` with an AMICI
  objective, compiled into a folder once and loaded from it afterwards;
* :func:`multistart_fides`: ``pypesto.optimize.minimize`` with ``FidesOptimizer`` from
  given start points, values and times per start in start order;
* :func:`adaptive_metropolis`: one chain of ``pypesto.sample.AdaptiveMetropolisSampler``
  on a user-supplied negative log posterior, with the burn-in from
  ``pypesto.sample.geweke_test``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_QUIET = ("amici", "pypesto", "fides", "petab")


def unavailable() -> str | None:
    """``None`` if pyPESTO, fides and AMICI import, else why not (the error)."""
    try:
        import amici  # noqa: F401
        import fides  # noqa: F401
        import pypesto  # noqa: F401
        import pypesto.optimize  # noqa: F401
        import pypesto.petab  # noqa: F401
        import pypesto.sample  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "skip the peer"
        return f"{type(e).__name__}: {e}"
    return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("pypesto", "fides", "amici", "arviz"):
        try:
            out[name] = str(__import__(name).__version__)
        except Exception:  # noqa: BLE001 - optional
            out[name] = None
    return out


def quiet() -> None:
    """Only warnings from AMICI, pyPESTO, fides and petab (AMICI logs at DEBUG)."""
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def _build_env() -> None:
    """Let AMICI's model build find the ``swig`` / ``cmake`` that pip installed next to
    this interpreter (the venv's ``bin`` is not on ``PATH`` unless activated), and build
    with 2 jobs unless told otherwise."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path
    os.environ.setdefault("AMICI_PARALLEL_COMPILE", "2")


def petab_problem(yaml: str | Path, folder: str | Path, *, rtol: float,
                  atol: float) -> tuple[Any, float, bool]:
    """``(problem, seconds, reused)``: the PEtab problem as a ``pypesto.Problem``.

    ``PetabImporter.from_yaml(yaml, output_folder=folder).create_problem()``: pyPESTO
    compiles the AMICI model into ``folder`` unless a loadable build of this AMICI
    version is there already (``reused``). ``seconds``: import plus compilation (or
    loading). The AMICI solver gets ``rtol`` / ``atol``.
    """
    import pypesto.petab

    _build_env()
    quiet()
    folder = Path(folder)
    model_name = folder.name
    reused = (folder / model_name / "__init__.py").exists()
    t = time.perf_counter()
    importer = pypesto.petab.PetabImporter.from_yaml(str(yaml), output_folder=str(folder))
    problem = importer.create_problem()
    seconds = time.perf_counter() - t
    solver = problem.objective.amici_solver
    solver.set_relative_tolerance(rtol)
    solver.set_absolute_tolerance(atol)
    return problem, seconds, reused


def solver_tolerances(problem: Any) -> tuple[float, float]:
    s = problem.objective.amici_solver
    return float(s.get_relative_tolerance()), float(s.get_absolute_tolerance())


def free_names(problem: Any) -> list[str]:
    """Names of the estimated parameters, in the order of pyPESTO's reduced vectors."""
    return [problem.x_names[i] for i in problem.x_free_indices]


def multistart_fides(problem: Any, starts: np.ndarray, max_steps: int) -> dict[str, Any]:
    """fides from every row of ``starts`` (reduced vectors, in :func:`free_names` order),
    at most ``max_steps`` iterations each.

    Returns lists in start order (results are matched to starts by ``r.id``):
    ``values`` (final objective; ``inf`` for a failed start), ``seconds`` (pyPESTO's
    ``r.time``), ``evaluations`` (``r.n_fval``: one per fides iteration, plus the
    start), ``converged`` (fides stopped on its ftol, xtol or gtol test); and ``wall``,
    the whole ``minimize`` call.
    """
    import fides
    import pypesto.optimize

    quiet()
    n = len(starts)
    problem.set_x_guesses(np.array([problem.get_full_vector(s) for s in starts]))
    optimizer = pypesto.optimize.FidesOptimizer(
        options={fides.Options.MAXITER: max_steps}, verbose=logging.ERROR)
    ids = [str(i) for i in range(n)]
    t = time.perf_counter()
    result = pypesto.optimize.minimize(problem, optimizer, n_starts=n, ids=ids,
                                       progress_bar=False)
    wall = time.perf_counter() - t
    values, seconds = [np.inf] * n, [np.nan] * n
    evaluations, converged = [0] * n, [False] * n
    for r in result.optimize_result.list:
        i = ids.index(r.id)
        fval = r.fval
        values[i] = float(fval) if fval is not None and np.isfinite(fval) else np.inf
        seconds[i] = float(r.time) if r.time is not None else np.nan
        evaluations[i] = int(r.n_fval or 0)
        converged[i] = str(r.exitflag).rsplit(".", 1)[-1] in ("FTOL", "XTOL", "GTOL")
        x0 = np.asarray(r.x0, float)
        if x0.size == problem.dim_full:
            x0 = problem.get_reduced_vector(x0)
        if not np.allclose(x0, starts[i]):
            raise RuntimeError(f"pyPESTO start {r.id} is not the start point given")
    return {"values": values, "seconds": seconds, "evaluations": evaluations,
            "converged": converged, "wall": wall}


def adaptive_metropolis(neglogpost: Callable[[np.ndarray], float], lb: Sequence[float],
                        ub: Sequence[float], names: Sequence[str], x0: np.ndarray,
                        n_samples: int, seed: int) -> dict[str, Any]:
    """One chain of ``AdaptiveMetropolisSampler`` (default options, no progress bar).

    ``neglogpost(x)``: negative log posterior on the sampling scale (``inf`` where it
    cannot be evaluated); proposals outside ``[lb, ub]`` are rejected by pyPESTO. The
    global numpy RNG, which the sampler uses, is seeded with ``seed``.

    Returns ``trace`` (``n_samples + 1`` points, ``x0`` first), ``seconds`` (wall time of
    ``pypesto.sample.sample``), ``burn_in`` (``pypesto.sample.geweke_test``, z-score 2),
    ``evaluations`` (calls of ``neglogpost``).
    """
    import pypesto
    import pypesto.sample

    quiet()
    calls = [0]

    def counted(x):
        calls[0] += 1
        return neglogpost(x)

    problem = pypesto.Problem(objective=pypesto.Objective(fun=counted), lb=np.asarray(lb),
                              ub=np.asarray(ub), x_names=list(names))
    sampler = pypesto.sample.AdaptiveMetropolisSampler(options={"show_progress": False})
    np.random.seed(seed)
    t = time.perf_counter()
    result = pypesto.sample.sample(problem, n_samples=n_samples, sampler=sampler,
                                   x0=np.asarray(x0, float), filename=None)
    seconds = time.perf_counter() - t
    burn_in = int(pypesto.sample.geweke_test(result=result, zscore=2.0))
    trace = np.asarray(result.sample_result.trace_x)[0]
    return {"trace": trace, "seconds": seconds, "burn_in": burn_in,
            "evaluations": calls[0]}
