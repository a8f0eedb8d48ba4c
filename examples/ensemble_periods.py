"""Ensembles: how does the repressilator's period depend on its parameters?

One compiled program simulates a whole batch of parameter sets (``jc.ensemble``, a
packaged ``jax.vmap`` over ``jc.simulate``). Each member has its own result code, so a
member that fails does not stop the others. We sample the transcription strength alpha
and the protein/mRNA lifetime ratio beta log-uniformly around the published values and
measure each member's period; parameter sets that fall outside the oscillatory region
(Elowitz & Leibler 2000, Box 1) show up as non-oscillating members.

Run: ``python examples/ensemble_periods.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxcell as jc


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    n = 64 if quick else 1000
    key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
    alpha = 216.404 * jnp.exp(jax.random.uniform(key_a, (n,), minval=-4.0, maxval=1.0))
    beta = 0.2 * jnp.exp(jax.random.uniform(key_b, (n,), minval=-1.5, maxval=1.5))
    model = jc.models.repressilator()
    t1 = 1000.0
    ts = jnp.linspace(0.0, t1, 2001)
    start = time.perf_counter()
    batch = jc.ensemble(model, 0.0, t1, parameters={"alpha": alpha, "beta": beta},
                        saveat=ts)
    jax.block_until_ready(batch.values)
    elapsed = time.perf_counter() - start
    ok = np.asarray(batch.success)
    p = np.asarray(batch["p_lacI"])
    t = np.asarray(ts)
    late = t >= 600
    sustained = [jc.analysis.is_sustained(t[late], p[i, late]) for i in range(n)]
    periods = np.array([jc.analysis.period(t[late], p[i, late]) if s else np.nan
                        for i, s in enumerate(sustained)])
    oscillating = np.isfinite(periods)
    print(f"{n} members in {elapsed:.2f} s (incl. compilation); {ok.sum()} solved, "
          f"{oscillating.sum()} oscillate")
    if oscillating.any():
        print(f"period range {np.nanmin(periods):.2f} .. {np.nanmax(periods):.2f} "
              f"(nominal 43.45)")
    if out_dir:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(out_dir, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 4))
        sc = ax.scatter(np.asarray(alpha)[oscillating], np.asarray(beta)[oscillating],
                        c=periods[oscillating], s=12, cmap="viridis")
        ax.scatter(np.asarray(alpha)[~oscillating], np.asarray(beta)[~oscillating],
                   marker="x", c="grey", s=12, label="no oscillation")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_ylabel("beta")
        fig.colorbar(sc, label="period")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "ensemble_periods.png"), dpi=100)
        plt.close(fig)
    return {"n": n, "solved": int(ok.sum()), "oscillating": int(oscillating.sum()),
            "periods": periods, "alpha": np.asarray(alpha), "beta": np.asarray(beta),
            "png": os.path.join(out_dir, "ensemble_periods.png") if out_dir else None}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    a = parser.parse_args()
    main(quick=a.quick, out_dir=a.out)
