"""A growing 2-D colony: every scale in one model.

- Cellular: a `Population` whose cells grow exponentially and divide by an adder rule
  (`Division`), placing daughters a small distance apart (`Displace`).
- Mechanics: the cells push each other apart as soft spheres (`SoftSpheres`), so the
  colony spreads.
- Tissue: every cell secretes a signal into a diffusing, decaying field
  (`FieldExchange`, positions read from the mechanics) and senses the field where it is
  (`FieldSensor`).
- Molecular: each cell runs a gene that the local signal switches on (`PerCell`, a Hill
  activation), halved between daughters at division.

Crowded cells in the middle of the colony see more signal and switch the gene on
(quorum sensing); the edge stays off. The script checks the one conservation law of the
composition: the signal in the field equals what was secreted minus what decayed.

Run: ``python examples/growing_colony.py`` (writes ``growing_colony.png``).
"""

from __future__ import annotations

import os
import sys

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import jaxcell as jc
from jaxcell.cellular import Adder, Displace, Division, Halve, PerCell, Population
from jaxcell.tissue import DiffusingField, FieldExchange, FieldSensor, Grid, SoftSpheres


def build(capacity: int, box: float = 20.0, spacing: float = 0.5):
    """The colony model: one founder cell in the middle of a ``box`` x ``box`` field."""
    pop = Population("cells", capacity=capacity, n_initial=1, growth_rate=np.log(2.0))
    start = jnp.full((capacity, 2), box / 2)
    mechanics = SoftSpheres("body", start, radius=0.5, stiffness=20.0, drag=1.0,
                            population=pop)
    n = int(round(box / spacing))
    field = DiffusingField("signal", Grid((n, n), spacing=spacing), D=1.0, decay=0.5)
    alive = pop.alive_path
    secrete = FieldExchange("secrete", field, positions="cellular/body/position",
                            n_cells=capacity, alive=alive, secretion=1.0)
    sense = FieldSensor("sense", field, positions="cellular/body/position",
                        n_cells=capacity, alive=alive, target="cellular/sense/signal")
    gene = jc.ODE(
        "gene", {"p": 0.0},
        lambda t, y, p: {"p": p["vmax"] * y["s"] ** 4 / (p["K"] ** 4 + y["s"] ** 4)
                         - p["d"] * y["p"]},
        parameters={"vmax": 1.0, "K": 0.6, "d": 1.0},
        inputs={"s": "cellular/sense/signal"})
    genes = PerCell(gene, population=pop)
    division = Division("division", pop, Adder(1.0, cv=0.1), interval=0.02,
                        dividers={"cellular/body/position": Displace(0.5),
                                  "molecular/gene/p": Halve()})
    return jc.Composite([pop, mechanics, field, secrete, sense, genes, division])


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    capacity, t1 = (64, 4.0) if quick else (512, 7.0)
    model = build(capacity)
    ts = np.round(np.arange(0.0, t1 + 1e-9, 0.5), 10)
    traj = jc.simulate(model, 0.0, t1, saveat=ts, solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-7),
                       key=jax.random.key(0))
    alive = np.asarray(traj["cellular/cells/alive"]) > 0.5
    n_cells = alive.sum(axis=1)
    x = np.asarray(traj["cellular/body/position"][-1])[alive[-1]]
    p = np.asarray(traj["molecular/gene/p"][-1])[alive[-1]]
    c = np.asarray(traj["tissue/signal/concentration"])
    centre = np.linalg.norm(x - x.mean(axis=0), axis=1)
    inner = p[centre <= np.median(centre)].mean()
    outer = p[centre > np.median(centre)].mean()

    # Conservation: the field holds what was secreted minus what decayed,
    # d(total)/dt = (number of alive cells) - 0.5 · total. Divisions happen only at the
    # update times t_k = 0.02 k, so the count is constant on each interval and the
    # total has an exact solution there; rerun saving every interval to get the counts.
    total = c.sum(axis=(1, 2)) * 0.5**2
    fine = jc.simulate(model, 0.0, t1, saveat=np.round(np.arange(0.0, t1 + 1e-9, 0.02), 10),
                       solver=diffrax.Tsit5(),
                       stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-7),
                       key=jax.random.key(0))
    counts = np.asarray(fine["cellular/cells/alive"]).sum(axis=1)
    expected = [0.0]
    for k in range(len(counts) - 1):   # exact over each interval of constant count
        expected.append(expected[-1] * np.exp(-0.5 * 0.02)
                        + counts[k] / 0.5 * (1 - np.exp(-0.5 * 0.02)))
    expected = np.asarray(expected)[:: int(round(0.5 / 0.02))]
    mass_error = float(np.max(np.abs(total - expected)) / max(expected.max(), 1e-12))

    if not mass_error < 1e-8:
        raise RuntimeError(f"signal mass balance violated: relative error {mass_error:.2e}")
    if not n_cells[-1] > n_cells[0]:
        raise RuntimeError("the colony did not grow")
    print(f"cells: {n_cells[0]} -> {n_cells[-1]} (capacity {capacity})")
    print(f"gene on in the crowded centre: {inner:.3f}; at the edge: {outer:.3f}")
    print(f"signal mass balance, max relative error: {mass_error:.1e}")

    out = {"n_cells": n_cells.tolist(), "inner": float(inner), "outer": float(outer),
           "mass_error": mass_error}
    if out_dir is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
        axes[0].imshow(c[-1].T, origin="lower", extent=(0, 20, 0, 20), cmap="Greys")
        sc = axes[0].scatter(x[:, 0], x[:, 1], c=p, s=40, cmap="viridis",
                             edgecolors="k", linewidths=0.3)
        fig.colorbar(sc, ax=axes[0], label="gene product p")
        axes[0].set_title(f"colony at t = {t1:g}: signal field and gene state")
        axes[1].plot(ts, n_cells, "o-")
        axes[1].set_xlabel("time (doublings)")
        axes[1].set_ylabel("number of cells")
        axes[1].set_yscale("log", base=2)
        fig.tight_layout()
        path = os.path.join(out_dir, "growing_colony.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out["figure"] = path
    return out


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, out_dir=".")
