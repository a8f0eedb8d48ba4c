"""The models the benchmarks run, and plain-numpy right-hand sides for the peers.

``repressilator()`` and ``kholodenko_mapk()`` are jaxcell's own library models.

The numpy right-hand sides are written independently of jaxcell's rate-law code: the
stoichiometry comes from ``net.stoichiometry`` and the reaction rates are hand-written
from the published equations.
"""

from __future__ import annotations

import numpy as np

import jaxcell as jc


def repressilator() -> jc.ReactionNetwork:
    return jc.models.repressilator()


def kholodenko_mapk() -> jc.ReactionNetwork:
    return jc.models.kholodenko_mapk()


# -- independent numpy right-hand sides ---------------------------------------------------
def _repressilator_rates(names):
    """Rates of jc.models.repressilator(), hand-written from Elowitz & Leibler (2000)."""
    genes = ("lacI", "tetR", "cI")
    repressor_of = {"lacI": "cI", "tetR": "lacI", "cI": "tetR"}

    def make(sp, p):
        ix = {s: i for i, s in enumerate(sp)}
        im = np.array([ix[f"m_{g}"] for g in genes])
        ip = np.array([ix[f"p_{g}"] for g in genes])
        ir = np.array([ix[f"p_{repressor_of[g]}"] for g in genes])
        alpha, alpha0, beta, n, K, dm = (p["alpha"], p["alpha0"], p["beta"], p["n"],
                                         p["K"], p["delta_m"])
        Kn = K**n
        order = {}
        for k, g in enumerate(genes):
            for j, kind in enumerate(("transcription", "leak", "mrna_decay", "translation",
                                      "protein_decay")):
                order[f"{kind}_{g}"] = (j, k)
        perm = np.array([order[r][0] * 3 + order[r][1] for r in names])

        def rates(x):
            r = np.maximum(x[ir], 0.0) ** n
            v = np.concatenate([
                alpha * Kn / (Kn + r),           # transcription, repressed by p_{j}
                np.full(3, alpha0),              # leaky transcription
                dm * x[im],                      # mRNA decay
                beta * x[im],                    # translation
                beta * x[ip],                    # protein decay
            ])
            return v[perm]

        return rates

    return make


def _kholodenko_rates(names):
    """Rates of the Kholodenko (2000) MAPK cascade, hand-written from Table 1."""

    def make(sp, p):
        ix = {s: i for i, s in enumerate(sp)}
        a = [ix[s] for s in ("MKKK", "MKKK_P", "MKK", "MKK_P", "MKK_PP", "MAPK", "MAPK_P",
                             "MAPK_PP")]
        g = [p[k] for k in ("V1", "KI", "n", "K1", "V2", "K2", "k3", "K3", "k4", "K4",
                            "V5", "K5", "V6", "K6", "k7", "K7", "k8", "K8", "V9", "K9",
                            "V10", "K10")]
        V1, KI, n, K1, V2, K2, k3, K3, k4, K4, V5, K5, V6, K6, k7, K7, k8, K8, V9, K9, \
            V10, K10 = g
        pos = {f"v{i}": i - 1 for i in range(1, 11)}
        perm = np.array([pos[r] for r in names])

        def rates(x):
            x1, x2, x3, x4, x5, x6, x7, x8 = (x[i] for i in a)
            v = np.array([
                V1 * x1 / ((1.0 + (x8 / KI) ** n) * (K1 + x1)),
                V2 * x2 / (K2 + x2),
                k3 * x2 * x3 / (K3 + x3),
                k4 * x2 * x4 / (K4 + x4),
                V5 * x5 / (K5 + x5),
                V6 * x4 / (K6 + x4),
                k7 * x5 * x6 / (K7 + x6),
                k8 * x5 * x7 / (K8 + x7),
                V9 * x8 / (K9 + x8),
                V10 * x7 / (K10 + x7),
            ])
            return v[perm]

        return rates

    return make


_RATES = {"repressilator": _repressilator_rates, "mapk": _kholodenko_rates}


def numpy_rhs(net, params: dict[str, float]):
    """``f(t, x) = N v(x)`` in numpy, with N = ``net.stoichiometry`` and hand-written v."""
    N = np.asarray(net.stoichiometry, dtype=float)
    rates = _RATES[net.name](net.reaction_names)(net.species, params)

    def f(t, x):
        return N @ rates(x)

    return f


def param_dict(net, p) -> dict[str, float]:
    return {k: float(v) for k, v in zip(net.parameter_names, np.asarray(p), strict=True)}
