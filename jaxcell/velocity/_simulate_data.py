"""Single-cell snapshots simulated from the on/off splicing model on the one engine."""

from __future__ import annotations

from typing import Any

import diffrax
import numpy as np

from .._simulate import simulate
from ..cellular import Splicing
from ._data import VelocityError, _anndata


def simulate_data(n_cells: int = 500, n_genes: int = 20, *, t_max: float = 20.0,
                  alpha: Any = None, beta: Any = None, gamma: Any = None,
                  switch: Any = None, noise: float = 0.1, seed: int = 0) -> Any:
    """An AnnData of ``n_cells`` cells observed once each at a random time in
    ``[0, t_max]``, every gene following transcription on/off splicing kinetics from
    zero (:class:`jaxcell.cellular.Splicing` with a switch time, run by
    :func:`jaxcell.simulate`), with Gaussian noise.

    Rates default to log-normal draws around scVelo's simulation defaults (``alpha``
    5, ``beta`` 0.5, ``gamma`` 0.3; sd 0.4 in log space), switch times to uniform
    fractions 0.3-0.8 of ``t_max``. The noise has standard deviation ``noise`` times
    each gene's 99th percentile (as scVelo's simulation does), clipped at zero.

    Args:
        n_cells: number of cells.
        n_genes: number of genes.
        t_max: the span of the cells' times.
        alpha: transcription rates ``(n_genes,)`` (default: drawn).
        beta: splicing rates (default: drawn).
        gamma: degradation rates (default: drawn).
        switch: switch times (default: drawn).
        noise: noise level relative to each gene's 99th percentile.
        seed: seed of the random draws.

    Returns:
        AnnData with layers ``unspliced``/``spliced`` (and ``X`` = spliced),
        ``obs["true_t"]`` and ``var["true_alpha"], ["true_beta"], ["true_gamma"],
        ["true_t_"]``.
    """
    n_cells, n_genes = int(n_cells), int(n_genes)
    if n_cells < 3 or n_genes < 1:
        raise VelocityError(f"simulate_data: need n_cells >= 3 and n_genes >= 1; got "
                            f"{n_cells} and {n_genes}.")
    if not (np.isfinite(t_max) and t_max > 0 and np.isfinite(noise) and noise >= 0):
        raise VelocityError(f"simulate_data: t_max must be > 0 and noise >= 0; got "
                            f"{t_max!r}, {noise!r}.")
    rng = np.random.default_rng(seed)

    def draw(v, centre, name):
        if v is None:
            return np.exp(rng.normal(np.log(centre), 0.4, n_genes))
        a = np.broadcast_to(np.asarray(v, float), (n_genes,)).copy()
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise VelocityError(f"simulate_data: {name} must be positive and finite.")
        return a

    a, b, g = draw(alpha, 5.0, "alpha"), draw(beta, 0.5, "beta"), draw(gamma, 0.3, "gamma")
    sw = (rng.uniform(0.3, 0.8, n_genes) * t_max if switch is None
          else draw(switch, 1.0, "switch"))
    t = np.sort(rng.uniform(0.0, t_max, n_cells))
    gene = Splicing("sim", n_genes, alpha=a, beta=b, gamma=g, switch_time=sw)
    traj = simulate(gene, 0.0, float(t[-1]), saveat=t, solver=diffrax.Tsit5(),
                    stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12))
    u = np.asarray(traj["cellular/sim/unspliced"])
    s = np.asarray(traj["cellular/sim/spliced"])
    u = np.clip(u + rng.normal(size=u.shape) * noise * np.percentile(u, 99, 0), 0, None)
    s = np.clip(s + rng.normal(size=s.shape) * noise * np.percentile(s, 99, 0), 0, None)
    ad = _anndata()
    adata = ad.AnnData(X=s.copy(), layers={"unspliced": u, "spliced": s})
    adata.obs_names = [f"cell{i}" for i in range(n_cells)]
    adata.var_names = [f"gene{j}" for j in range(n_genes)]
    adata.obs["true_t"] = t
    for k, v in (("true_alpha", a), ("true_beta", b), ("true_gamma", g), ("true_t_", sw)):
        adata.var[k] = v
    return adata
