"""Intrinsic and extrinsic noise in gene expression: the two-reporter experiment.

The science
-----------
Elowitz, Levine, Siggia & Swain (2002, Science 297:1183) put two identical reporters
(CFP and YFP, same promoter) in one cell. Whatever the cell shares (polymerases,
ribosomes, a fluctuating regulator: *extrinsic* noise) moves both together; the
randomness of each reporter's own births and deaths (*intrinsic* noise) does not. From
the counts ``c1, c2`` over many cells:

    eta_int^2 = <(c1 - c2)^2> / (2 <c1><c2>)
    eta_ext^2 = (<c1 c2> - <c1><c2>) / (<c1><c2>)
    eta_tot^2 = eta_int^2 + eta_ext^2

Here the shared factor is a species E (made at kE, lost at gE), each reporter is made at
k·E and lost at g. For this linear network the stationary answer is exact (Swain,
Elowitz & Siggia 2002, PNAS 99:12795): with <E> = kE/gE and <c> = k<E>/g,

    eta_int^2 = 1 / <c>,    eta_ext^2 = (1 / <E>) · g / (g + gE).

In jaxcell
----------
- one :class:`jaxcell.ReactionNetwork` holds E and both reporters; with
  ``simulate(..., stochastic=jaxcell.SSA())`` it runs as exact jumps, and ``jax.vmap``
  over keys gives independent cells; the estimates are checked against the formulas;
- in dividing cells the same network runs per cell (``PerCell`` in a ``Population``
  growing exponentially, ``Division`` with ``Binomial`` partitioning of all three
  species): the jump processes are advanced exactly over each interval beside the
  deterministic growth (``SSA(interval=...)``). Partitioning at division adds noise that
  is mostly *intrinsic* for the reporters (each molecule segregates independently) and
  the decomposition still holds: eta_tot^2 = eta_int^2 + eta_ext^2.

Run ``python examples/noise_decomposition.py`` (``--quick`` for fewer cells).
"""

from __future__ import annotations

import sys

import jax
import numpy as np

import jaxcell as jc
from jaxcell.cellular import Binomial, Division, PerCell, Population, Sizer

RATES = {"kE": 2.0, "gE": 0.2, "k": 1.0, "g": 1.0}


def two_reporters(rates=RATES) -> jc.ReactionNetwork:
    """E -> shared; E drives the production of reporters c1 and c2."""
    return jc.ReactionNetwork(
        "cell",
        {"E": rates["kE"] / rates["gE"], "c1": 0.0, "c2": 0.0},
        [jc.Reaction("make_E", "", "E", jc.MassAction("kE")),
         jc.Reaction("lose_E", "E", "", jc.MassAction("gE")),
         jc.Reaction("make_c1", "E", "E + c1", jc.MassAction("k")),
         jc.Reaction("make_c2", "E", "E + c2", jc.MassAction("k")),
         jc.Reaction("lose_c1", "c1", "", jc.MassAction("g")),
         jc.Reaction("lose_c2", "c2", "", jc.MassAction("g"))],
        dict(rates))


def decompose(c1, c2) -> dict[str, float]:
    """Elowitz et al.'s estimators from reporter counts over cells."""
    c1, c2 = np.asarray(c1, float), np.asarray(c2, float)
    m1, m2 = c1.mean(), c2.mean()
    eta_int = np.mean((c1 - c2) ** 2) / (2 * m1 * m2)
    eta_ext = (np.mean(c1 * c2) - m1 * m2) / (m1 * m2)
    eta_tot = (np.mean(c1**2 + c2**2) / 2 - m1 * m2) / (m1 * m2)
    return {"int": float(eta_int), "ext": float(eta_ext), "tot": float(eta_tot),
            "mean": float((m1 + m2) / 2)}


def theory(rates=RATES) -> dict[str, float]:
    e = rates["kE"] / rates["gE"]
    c = rates["k"] * e / rates["g"]
    return {"int": 1.0 / c, "ext": (1.0 / e) * rates["g"] / (rates["g"] + rates["gE"]),
            "mean": c}


def steady_cells(n_cells: int, t_end: float = 60.0, seed: int = 0):
    """Reporter counts of ``n_cells`` independent, non-dividing cells at ``t_end``."""
    net = two_reporters()
    run = jax.jit(jax.vmap(lambda k: jc.simulate(
        net, 0.0, t_end, saveat=[t_end], stochastic=jc.SSA(), key=k)))
    traj = run(jax.random.split(jax.random.key(seed), n_cells))
    return np.asarray(traj["c1"][:, -1]), np.asarray(traj["c2"][:, -1])


def dividing_colonies(n_colonies: int, capacity: int = 32, t_end: float = 12.0,
                      seed: int = 1):
    """Counts in every living cell of ``n_colonies`` colonies grown from one cell."""
    pop = Population("colony", capacity=capacity, n_initial=1,
                     growth_rate=float(np.log(2.0) / 2.5))
    cells = PerCell(two_reporters(), population=pop)
    path = "molecular/cell/species"
    div = Division("division", pop, Sizer(2.0), interval=0.05,
                   dividers={path: Binomial()})
    model = [pop, cells, div]

    def one(key):
        tr = jc.simulate(model, 0.0, t_end, saveat=[t_end], stochastic=jc.SSA(), key=key)
        return tr[path][-1], tr["cellular/colony/alive"][-1]

    x, alive = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), n_colonies))
    x, alive = np.asarray(x), np.asarray(alive) > 0.5
    return x[..., 1][alive], x[..., 2][alive], int(alive.sum())


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    n = 4000 if quick else 20000
    c1, c2 = steady_cells(n)
    est, th = decompose(c1, c2), theory()
    print(f"non-dividing cells (n = {n}), estimate vs formula:")
    for k in ("int", "ext", "mean"):
        print(f"  eta_{k:4s} {est[k]:.4f}  {th[k]:.4f}" if k != "mean"
              else f"  <c>      {est[k]:.3f}  {th[k]:.3f}")
    d1, d2, n_cells = dividing_colonies(8 if quick else 64)
    div = decompose(d1, d2)
    print(f"dividing cells ({n_cells} cells): eta_int^2 {div['int']:.4f}, eta_ext^2 "
          f"{div['ext']:.4f}, sum {div['int'] + div['ext']:.4f} = eta_tot^2 "
          f"{div['tot']:.4f}; <c> {div['mean']:.2f}")
    return {"steady": est, "theory": th, "dividing": div, "n_dividing": n_cells}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
