"""Steady states and bifurcations: where does the toggle switch flip, and where does the
Goodwin oscillator start to oscillate?

The genetic toggle switch of Gardner, Cantor & Collins (2000) is bistable without IPTG;
IPTG weakens the repression of v by u until, at a fold, the high-u state disappears and
the switch flips. ``continuation`` follows the high-u branch in IPTG around that fold
(through the unstable middle branch) and locates it. For the Goodwin oscillator the
continuation parameter is the Hill coefficient n: a Hopf point at loop gain 8 (the
secant condition) gives birth to a limit cycle, whose exact period ``limit_cycle``
finds by shooting, a little past the Hopf point and further on.

Run: ``python examples/bifurcations.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import jaxcell as jc
from jaxcell.analysis import continuation, limit_cycle, steady_state


def main(quick: bool = False, out_dir: str | None = None) -> dict:
    toggle = jc.models.toggle_switch(u0=150.0, v0=0.1)
    high = steady_state(toggle)
    low = steady_state(toggle, y0={"u": 0.0, "v": 10.0})
    print(f"IPTG = 0: two stable states, u = {float(high['u']):.2f} and "
          f"{float(low['u']):.3f}")
    switch = continuation(toggle, "toggle.iptg", 0.0, 1e-4)
    fold = switch.of_kind("fold")[0]
    low_branch = continuation(toggle, "toggle.iptg", 0.0, 1e-4, y0={"u": 0.0, "v": 10.0})
    print(f"the low state has no bifurcation up to 1e-4 M: {low_branch.points == []}")
    print(f"the high state disappears at IPTG = {fold.p:.4e} M (published: 3.93e-5 M)")

    goodwin = continuation(jc.models.goodwin(n=5.0), "goodwin.n", 5.0, 12.0)
    hopf = goodwin.of_kind("hopf")[0]
    print(f"Goodwin: Hopf at n = {hopf.p:.5f}, period at onset 2π/ω = "
          f"{2 * np.pi / hopf.frequency:.4f}")
    ns = [10.0] if quick else [9.0, 10.0, 12.0]
    periods = {}
    for n in ns:
        lc = limit_cycle(jc.models.goodwin(n=n), 4.0, transient=300.0)
        periods[n] = float(lc.period)
        print(f"  n = {n:4.1f}: period {periods[n]:.4f}, Floquet |μ| = "
              f"{np.round(np.abs(np.asarray(lc.multipliers)), 4)}")
    result = {"iptg_fold": fold.p, "hopf_n": hopf.p, "hopf_frequency": hopf.frequency,
              "periods": periods}
    if out_dir:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(out_dir, exist_ok=True)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        switch.plot("u", ax=axes[0])
        low_branch.plot("u", ax=axes[0])
        axes[0].set_xlabel("IPTG (M)")
        axes[0].set_yscale("log")
        axes[0].set_title("toggle switch: high-u branch and its fold")
        goodwin.plot("z", ax=axes[1])
        axes[1].set_title("Goodwin oscillator: Hopf point")
        fig.tight_layout()
        path = os.path.join(out_dir, "bifurcations.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        result["plot"] = path
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    a = parser.parse_args()
    main(quick=a.quick, out_dir=a.out)
