"""Models and peers for ``stochastic.py``: the three reaction networks as plain data,
built for jaxcell, GillesPy2 and a hand-written NumPy direct method, and the worker
functions that run a peer in one process per core.

Every tool uses the same propensity convention: a mass-action channel fires at ``k``
times the falling factorial of each reactant count (``k·X(X-1)`` for ``2X -> ...``), as
``jc.ReactionNetwork`` does under ``stochastic=``. GillesPy2's own mass action divides
by the symmetry factor (``k·X(X-1)/2``) and does not take third order, so channels with a
repeated reactant are given to it as custom propensities (``k*X*(X-1)``).

This module does not import jax (the peer workers are spawned without it).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

CASES = ("birth_death", "schlogl", "ring25")


@dataclass(frozen=True)
class Spec:
    """A network: species (initial counts), channels ``(name, reactants, products, k)``
    with ``{species: coefficient}`` sides, output times, the species whose final count is
    compared, and a description."""

    name: str
    x0: dict[str, int]
    channels: list[tuple[str, dict[str, int], dict[str, int], float]]
    t1: float
    n_out: int
    observe: str
    about: str
    exact: tuple[float, float] | None = None  # (mean, SD) of the final count, if known
    ts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "ts", np.linspace(0.0, self.t1, self.n_out))


def _birth_death_moments(x0: float, lam: float, mu: float, t: float):
    """Exact mean and SD of the linear birth-death process at ``t``."""
    g = math.exp((lam - mu) * t)
    var = x0 * (lam + mu) / (lam - mu) * g * (g - 1.0)
    return x0 * g, math.sqrt(var)


def spec(name: str) -> Spec:
    if name == "birth_death":
        # DSMTS 001-01 (Evans, Gillespie & Wilkinson 2008): X -> 2X (0.1 X), X -> 0 (0.11 X)
        return Spec("birth_death", {"X": 100},
                    [("birth", {"X": 1}, {"X": 2}, 0.1), ("death", {"X": 1}, {}, 0.11)],
                    50.0, 51, "X", "DSMTS 001-01 birth-death, X0 = 100, t in [0, 50]",
                    _birth_death_moments(100, 0.1, 0.11, 50.0))
    if name == "schlogl":
        # Schlögl (1972) with the parameters of Cao, Gillespie & Petzold (2006) /
        # StochKit: c1 = 3e-7, c2 = 1e-4, c3 = 1e-3, c4 = 3.5, N_A = 1e5, N_B = 2e5;
        # a1 = c1/2 N_A X(X-1), a2 = c2/6 X(X-1)(X-2), a3 = c3 N_B, a4 = c4 X
        c1, c2, c3, c4, na, nb = 3e-7, 1e-4, 1e-3, 3.5, 1e5, 2e5
        return Spec("schlogl", {"X": 250},
                    [("r1", {"X": 2}, {"X": 3}, c1 * na / 2),
                     ("r2", {"X": 3}, {"X": 2}, c2 / 6),
                     ("r3", {}, {"X": 1}, c3 * nb),
                     ("r4", {"X": 1}, {}, c4)],
                    10.0, 101, "X",
                    "Schlögl, bistable (about 85 and 560), X0 = 250, t in [0, 10]")
    if name == "ring25":
        # a ring of 25 species: X_i <-> X_{i+1} (0.1 each way), 0 -> X_i (5),
        # X_i -> 0 (0.05): 100 channels, steady state 100 of each, start at 50
        n = 25
        ch: list = []
        for i in range(n):
            a, b = f"X{i}", f"X{(i + 1) % n}"
            ch.append((f"f{i}", {a: 1}, {b: 1}, 0.1))
            ch.append((f"b{i}", {b: 1}, {a: 1}, 0.1))
        for i in range(n):
            ch.append((f"make{i}", {}, {f"X{i}": 1}, 5.0))
            ch.append((f"deg{i}", {f"X{i}": 1}, {}, 0.05))
        return Spec("ring25", {f"X{i}": 50 for i in range(n)}, ch, 20.0, 21, "X0",
                    "ring of 25 species, 100 channels (reversible conversion, "
                    "production, degradation), X_i(0) = 50, t in [0, 20]")
    raise ValueError(f"unknown case {name!r}; expected one of {CASES}")


def matrices(s: Spec):
    """(species names, x0, rate constants, reactant coefficient matrix, net change)."""
    names = list(s.x0)
    ix = {n: i for i, n in enumerate(names)}
    R = np.zeros((len(s.channels), len(names)))
    N = np.zeros_like(R)
    for j, (_, re, pr, _) in enumerate(s.channels):
        for sp, c in re.items():
            R[j, ix[sp]] += c
            N[j, ix[sp]] -= c
        for sp, c in pr.items():
            N[j, ix[sp]] += c
    k = np.array([c[3] for c in s.channels])
    x0 = np.array([s.x0[n] for n in names], float)
    return names, x0, k, R, N


# -- GillesPy2 --------------------------------------------------------------------------


def _gillespy2_path() -> None:
    """GillesPy2 builds its C++ solvers with ``scons`` from PATH, else with
    ``<resolved sys.executable> -m SCons``; in a virtual environment the resolved
    interpreter is the base one (without SCons), so put the environment's bin first."""
    b = os.path.dirname(sys.executable)
    if b not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = b + os.pathsep + os.environ.get("PATH", "")


def gillespy2_model(s: Spec):
    import gillespy2

    m = gillespy2.Model(name=s.name)
    m.add_species([gillespy2.Species(name=n, initial_value=int(v), mode="discrete")
                   for n, v in s.x0.items()])
    params, reactions = [], []
    for name, re, pr, k in s.channels:
        params.append(gillespy2.Parameter(name=f"k_{name}", expression=repr(float(k))))
        if all(c == 1 for c in re.values()):  # GillesPy2's mass action agrees
            reactions.append(gillespy2.Reaction(name=name, reactants=dict(re),
                                                products=dict(pr), rate=f"k_{name}"))
        else:
            f = [f"k_{name}"]
            for sp, c in re.items():
                f += [sp] + [f"({sp}-{m_})" for m_ in range(1, c)]
            reactions.append(gillespy2.Reaction(name=name, reactants=dict(re),
                                                products=dict(pr),
                                                propensity_function="*".join(f)))
    m.add_parameter(params)
    m.add_reaction(reactions)
    m.timespan(s.ts)
    return m


GILLESPY2_SOLVERS = {"gillespy2_ssa_c": "SSACSolver",
                     "gillespy2_tau_c": "TauLeapingCSolver",
                     "gillespy2_numpy": "NumPySSASolver"}


# -- NumPy direct method ----------------------------------------------------------------


def numpy_direct(s: Spec, n: int, seed: int) -> np.ndarray:
    """``n`` SSA paths (Gillespie's direct method), vectorised over the trajectories
    still running (the finished ones are dropped): counts ``(n, times, species)``."""
    names, x0, k, R, N = matrices(s)
    rng = np.random.default_rng(seed)
    ts = s.ts
    # propensity: k * prod over factor slots of max(x_i - m, 0) (falling factorials);
    # unused slots read a constant 1 (the extra last column)
    slots = [[(i, m) for i in range(len(names)) for m in range(int(R[j, i]))]
             for j in range(len(k))]
    width = max(1, max(len(f) for f in slots))
    idx = np.full((len(k), width), len(names))
    off = np.zeros((len(k), width))
    for j, f in enumerate(slots):
        for q, (i, m) in enumerate(f):
            idx[j, q], off[j, q] = i, m
    out = np.empty((n, len(ts), len(names)))
    x = np.tile(x0, (n, 1))
    t = np.zeros(n)
    nxt = np.zeros(n, int)  # next output index
    rows = np.arange(n)
    while True:
        xe = np.concatenate([x, np.ones((len(rows), 1))], axis=1)
        a = k * np.prod(np.maximum(xe[:, idx] - off, 0.0), axis=2)
        c = np.cumsum(a, axis=1)
        a0 = c[:, -1]
        with np.errstate(divide="ignore"):
            tn = t + rng.exponential(size=len(rows)) / a0
        # outputs at every save time before the next firing
        while True:
            due = (nxt < len(ts)) & (ts[np.minimum(nxt, len(ts) - 1)] <= tn)
            if not due.any():
                break
            d = np.nonzero(due)[0]
            out[rows[d], nxt[d]] = x[d]
            nxt[d] += 1
        alive = nxt < len(ts)
        if not alive.all():
            rows, x, tn, a, c, a0, nxt = (v[alive] for v in (rows, x, tn, a, c, a0, nxt))
            if len(rows) == 0:
                return out
        r = rng.random(len(rows)) * a0
        j = (c < r[:, None]).sum(axis=1)
        x = x + N[np.minimum(j, len(k) - 1)]
        t = tn


# -- peer workers (one process per core) ------------------------------------------------

_PEER: dict = {}


def peer_init(tool: str, case: str) -> None:
    """In a worker process: build the model and the solver (GillesPy2's C++ solvers
    compile here)."""
    import warnings

    warnings.filterwarnings("ignore")
    s = spec(case)
    _PEER.update(tool=tool, spec=s)
    t = time.perf_counter()
    if tool in GILLESPY2_SOLVERS:
        _gillespy2_path()
        import gillespy2

        m = gillespy2_model(s)
        _PEER["solver"] = getattr(gillespy2, GILLESPY2_SOLVERS[tool])(model=m)
    _PEER["build_s"] = time.perf_counter() - t


def peer_ready(_) -> float:
    return _PEER["build_s"]


def peer_run(job: tuple[int, int]) -> tuple[float, np.ndarray]:
    """``(n, seed)``: (seconds in this worker, final counts ``(n, species)``)."""
    n, seed = job
    s: Spec = _PEER["spec"]
    t = time.perf_counter()
    if _PEER["tool"] == "numpy_direct":
        final = numpy_direct(s, n, seed)[:, -1]
    else:
        res = _PEER["solver"].run(number_of_trajectories=n, seed=seed)
        if n == 1:
            res = [res[0]] if hasattr(res, "__getitem__") else [res]
        final = np.array([[tr[sp][-1] for sp in s.x0] for tr in res], float)
    return time.perf_counter() - t, final


class PeerPool:
    """One worker per core (spawned), each with its own solver; a call splits the
    trajectories evenly, with a different seed per worker."""

    def __init__(self, tool: str, case: str, n_procs: int):
        import multiprocessing as mp

        self.n = n_procs
        t = time.perf_counter()
        self.pool = mp.get_context("spawn").Pool(n_procs, initializer=peer_init,
                                                 initargs=(tool, case))
        self.build_s = max(self.pool.map(peer_ready, range(n_procs), chunksize=1))
        self.setup_s = time.perf_counter() - t

    def __call__(self, n: int, seed: int) -> tuple[float, np.ndarray]:
        parts = [len(p) for p in np.array_split(np.arange(n), self.n)]
        jobs = [(p, seed * 1000 + i + 1) for i, p in enumerate(parts) if p]
        t = time.perf_counter()
        outs = self.pool.map(peer_run, jobs, chunksize=1)
        return time.perf_counter() - t, np.concatenate([o[1] for o in outs])

    def close(self) -> None:
        self.pool.close()
        self.pool.join()
