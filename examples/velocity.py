"""RNA velocity from an ``.h5ad`` file: kinetics, velocities, latent time and a step
forward in time.

Real data: the mouse pancreas endocrinogenesis subset of scVelo's test data (50 cells,
spliced and unspliced counts; ``../shared/data/velocity`` when present, else the
3,000-gene copy shipped in ``tests/data/velocity``). The usual preparation (filter and
normalise, variable genes, PCA, neighbours, moments), the steady-state and the
dynamical model for every gene at once, a shared latent time, velocities, the velocity
arrows on the PCA embedding, phase portraits, and every cell simulated forward with its
fitted kinetics on jaxcell's engine. Then the same on data simulated with known
kinetics, to show what the fit recovers.

Run: ``python examples/velocity.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import jaxcell.velocity as jv

HERE = Path(__file__).resolve().parent
CANDIDATES = [HERE.parent.parent / "shared" / "data" / "velocity" / "pancreas_50obs.h5ad",
              HERE.parent / "tests" / "data" / "velocity" / "pancreas_50obs_3000genes.h5ad"]


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    out_dir = out_dir or tempfile.mkdtemp(prefix="jaxcell-velocity-")
    os.makedirs(out_dir, exist_ok=True)
    path = next(p for p in CANDIDATES if p.is_file())

    # 1. real data: read, prepare, fit
    adata = jv.read(path)
    jv.filter_and_normalize(adata, min_shared_counts=10,
                            n_top_genes=100 if quick else 300)
    jv.pca(adata, n_comps=10)
    jv.neighbors(adata, n_neighbors=10, n_pcs=10)
    jv.moments(adata, n_neighbors=10)
    jv.steady_state(adata)
    fits = jv.recover_dynamics(adata)
    jv.latent_time(adata)
    jv.velocity(adata)
    print(f"{path.name}: {adata.n_obs} cells x {adata.n_vars} genes, "
          f"{int(np.sum(fits.fitted))} genes fitted; median per-gene log-likelihood "
          f"{float(np.median(np.asarray(fits.loglik)[np.asarray(fits.fitted)])):.3f}")

    # 2. a step forward in time, and a forward simulation on the engine
    u1, s1 = jv.predict(adata, dt=0.5)
    sim = jv.simulate_forward(adata, [0.0, 0.25, 0.5])
    step_error = float(np.max(np.abs(sim["spliced"][-1] - s1)) / np.max(np.abs(s1)))
    print(f"forward simulation vs exact step: max relative difference {step_error:.1e}")

    # 3. pictures: velocity arrows on the PCA embedding, phase portraits
    emb_png = os.path.join(out_dir, "velocity_pca.png")
    jv.plot_velocity_embedding(adata, "pca").savefig(emb_png, dpi=100)
    best = np.argsort(-np.nan_to_num(adata.var["fit_loglik"].to_numpy(), nan=-np.inf))[:4]
    phase_png = os.path.join(out_dir, "phase_portraits.png")
    jv.plot_phase(adata, list(adata.var_names[best])).savefig(phase_png, dpi=100)

    # 4. known kinetics: simulated snapshots, the fit, the truth
    # (quick: the real data's shape, so the compiled fit is reused)
    shape = (adata.n_obs, adata.n_vars) if quick else (1000, 50)
    sim_data = jv.simulate_data(*shape, seed=0)
    jv.recover_dynamics(sim_data)
    jv.latent_time(sim_data)
    var = sim_data.var
    errors = {k: float(np.median(np.abs(var[f"shared_{k}"] / var[f"true_{k}"] - 1)))
              for k in ("alpha", "beta", "gamma", "t_")}
    rho = float(spearmanr(sim_data.obs["latent_time"], sim_data.obs["true_t"]).statistic)
    print("simulated: median relative errors " +
          ", ".join(f"{k} {v:.3f}" for k, v in errors.items()) +
          f"; latent time Spearman {rho:.3f}")
    return {"embedding": emb_png, "phase": phase_png, "step_error": step_error,
            "rate_errors": errors, "latent_time_spearman": rho}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    main(args.quick, args.out)
