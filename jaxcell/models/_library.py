"""Canonical models, built from jaxcell's own parts.

The molecular-scale functions return a :class:`jaxcell.ReactionNetwork` with the
published parameters as defaults; every parameter and initial value can be overridden by
keyword. The multi-scale French flag is in ``_french_flag.py``.
"""

from __future__ import annotations

from ..molecular import (
    Custom,
    HillRepression,
    MassAction,
    MichaelisMenten,
    Reaction,
    ReactionNetwork,
)


# Custom rate laws are module-level functions, not closures: a function is part of the
# model's static structure, so the same function object lets rebuilt models reuse the
# compiled program instead of recompiling.
def _toggle_v_synthesis(s, p):
    w = s["u"] / (1.0 + p["iptg"] / p["K"]) ** p["eta"]
    return p["alpha2"] / (1.0 + w ** p["gamma"])


def _mapk_v1(s, p):
    return (p["V1"] * s["MKKK"]
            / ((1.0 + (s["MAPK_PP"] / p["KI"]) ** p["n"]) * (p["K1"] + s["MKKK"])))


def repressilator(
    alpha: float = 216.404,
    alpha0: float = 0.2164,
    beta: float = 0.2,
    n: float = 2.0,
    *,
    m0: tuple[float, float, float] = (0.0, 0.0, 0.0),
    p0: tuple[float, float, float] = (5.0, 0.0, 15.0),
    name: str = "repressilator",
) -> ReactionNetwork:
    r"""The repressilator of Elowitz & Leibler (2000), dimensionless form (Box 1).

    .. math::
        \dot m_i = -m_i + \alpha/(1 + p_j^n) + \alpha_0,\qquad
        \dot p_i = -\beta (p_i - m_i)

    with lacI ⊣ tetR ⊣ cI ⊣ lacI. Defaults are BioModels BIOMD0000000012's parameters
    (β = 0.2, α = 216.404, α0 = 0.2164, n = 2); the limit cycle has period 43.451
    (125.4 min). Species: ``m_lacI, m_tetR, m_cI, p_lacI, p_tetR, p_cI``.

    References:
        Elowitz, M. B. & Leibler, S. (2000). A synthetic oscillatory network of
        transcriptional regulators. Nature 403:335–338.
    """
    genes = ("lacI", "tetR", "cI")
    repressor_of = {"lacI": "cI", "tetR": "lacI", "cI": "tetR"}
    species = {f"m_{g}": m for g, m in zip(genes, m0)}
    species.update({f"p_{g}": p for g, p in zip(genes, p0)})
    reactions = []
    for g in genes:
        m, p = f"m_{g}", f"p_{g}"
        reactions += [
            Reaction(f"transcription_{g}", "", m,
                     HillRepression("alpha", "K", "n", repressor=f"p_{repressor_of[g]}")),
            Reaction(f"leak_{g}", "", m, MassAction("alpha0")),
            Reaction(f"mrna_decay_{g}", m, "", MassAction("delta_m")),
            Reaction(f"translation_{g}", m, f"{m} + {p}", MassAction("beta")),
            Reaction(f"protein_decay_{g}", p, "", MassAction("beta")),
        ]
    params = {"alpha": alpha, "alpha0": alpha0, "beta": beta, "n": n, "K": 1.0,
              "delta_m": 1.0}
    return ReactionNetwork(name, species, reactions, params)


def goodwin(n: float = 10.0, a: float = 100.0, *, x0=(0.1, 0.2, 2.5),
            name: str = "goodwin") -> ReactionNetwork:
    r"""The Goodwin oscillator with three stages and unit rates.

    .. math:: \dot x = a/(1+z^n) - x,\quad \dot y = x - y,\quad \dot z = y - z

    Oscillates when the loop gain :math:`n z^{*n}/(1+z^{*n})` exceeds 8 (secant
    condition): with a = 100, n = 7 decays and n = 10 has period 3.9215.

    References:
        Goodwin, B. C. (1965). Adv. Enzyme Regul. 3:425–438. Tyson, J. J. & Othmer,
        H. G. (1978). Prog. Theor. Biol. 5:1–62.
    """
    reactions = [
        Reaction("x_synthesis", "", "x", HillRepression("a", "K", "n", repressor="z")),
        Reaction("x_decay", "x", "", MassAction("one")),
        Reaction("y_synthesis", "x", "x + y", MassAction("one")),
        Reaction("y_decay", "y", "", MassAction("one")),
        Reaction("z_synthesis", "y", "y + z", MassAction("one")),
        Reaction("z_decay", "z", "", MassAction("one")),
    ]
    return ReactionNetwork(name, dict(zip("xyz", x0)), reactions,
                           {"a": a, "n": n, "K": 1.0, "one": 1.0})


def toggle_switch(
    alpha1: float = 156.25,
    alpha2: float = 15.6,
    beta: float = 2.5,
    gamma: float = 1.0,
    eta: float = 2.0015,
    K: float = 2.9618e-5,
    iptg: float = 0.0,
    *,
    u0: float = 0.0,
    v0: float = 10.0,
    name: str = "toggle",
) -> ReactionNetwork:
    r"""The genetic toggle switch of Gardner, Cantor & Collins (2000).

    .. math::
        \dot u = \alpha_1/(1+v^\beta) - u,\quad \dot v = \alpha_2/(1+w^\gamma) - v,
        \quad w = u/(1 + [IPTG]/K)^\eta

    Defaults are the pTAK117 fit (Fig. 5); IPTG is in M and is a parameter, so it can be
    changed between runs without recompiling. Bistable for IPTG < 3.93e-5 M.

    References:
        Gardner, T. S., Cantor, C. R. & Collins, J. J. (2000). Construction of a genetic
        toggle switch in Escherichia coli. Nature 403:339–342.
    """

    reactions = [
        Reaction("u_synthesis", "", "u", HillRepression("alpha1", "one", "beta",
                                                        repressor="v")),
        Reaction("u_decay", "u", "", MassAction("one")),
        Reaction("v_synthesis", "", "v", Custom(_toggle_v_synthesis), modifiers=("u",)),
        Reaction("v_decay", "v", "", MassAction("one")),
    ]
    params = {"alpha1": alpha1, "alpha2": alpha2, "beta": beta, "gamma": gamma,
              "eta": eta, "K": K, "iptg": iptg, "one": 1.0}
    return ReactionNetwork(name, {"u": u0, "v": v0}, reactions, params)


def lotka_volterra(
    alpha: float = 1.3,
    beta: float = 0.9,
    gamma: float = 0.8,
    delta: float = 1.8,
    *,
    x0: float = 0.44249296,
    y0: float = 4.6280594,
    name: str = "lotka_volterra",
) -> ReactionNetwork:
    r"""Lotka–Volterra predator–prey as a reaction network.

    .. math:: \dot x = \alpha x - \beta x y,\quad \dot y = \gamma x y - \delta y

    Defaults are those of the UDE paper; :math:`H = \gamma x - \delta\ln x + \beta y -
    \alpha \ln y` is conserved.

    References:
        Lotka, A. J. (1925); Volterra, V. (1926). Rackauckas, C. et al. (2020),
        arXiv:2001.04385 (parameters).
    """
    reactions = [
        Reaction("prey_birth", "x", "2 x", MassAction("alpha")),
        Reaction("predation", "x + y", "y", MassAction("beta")),
        Reaction("predator_birth", "x + y", "x + 2 y", MassAction("gamma")),
        Reaction("predator_death", "y", "", MassAction("delta")),
    ]
    return ReactionNetwork(name, {"x": x0, "y": y0}, reactions,
                           {"alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta})


def michaelis_menten(vmax: float = 1.0, km: float = 0.5, s0: float = 2.0,
                     *, name: str = "mm") -> ReactionNetwork:
    r"""Substrate depletion with a Michaelis–Menten rate: :math:`\dot S = -V S/(K_m+S)`.

    Its exact solution is :math:`S(t) = K_m W\!\left(\tfrac{S_0}{K_m}
    e^{(S_0 - V t)/K_m}\right)` (Lambert W), e.g. S(1) = 1.239300170 for the defaults.

    References:
        Schnell, S. & Mendoza, C. (1997). J. Theor. Biol. 187:207–212.
    """
    return ReactionNetwork(name, {"S": s0, "P": 0.0},
                           [Reaction("conversion", "S", "P", MichaelisMenten("vmax", "km"))],
                           {"vmax": vmax, "km": km})


def michaelis_menten_mass_action(
    k1: float = 10.0, km1: float = 1.0, k2: float = 4.0, e0: float = 0.01, s0: float = 2.0,
    *, name: str = "mm_mass_action",
) -> ReactionNetwork:
    """The full mechanism E + S <-> C -> E + P in mass action.

    Conserves E + C (= E0) and S + C + P (= S0).
    """
    return ReactionNetwork(
        name,
        {"E": e0, "S": s0, "C": 0.0, "P": 0.0},
        [Reaction("binding", "E + S", "C", MassAction("k1", "km1")),
         Reaction("catalysis", "C", "E + P", MassAction("k2"))],
        {"k1": k1, "km1": km1, "k2": k2},
    )


def kholodenko_mapk(ki: float = 9.0, *, name: str = "mapk") -> ReactionNetwork:
    """MAPK cascade with negative feedback (Kholodenko 2000; BIOMD0000000010).

    Eight species in nM, time in seconds; sustained oscillations with period about
    1300 s. ``ki`` is the feedback inhibition constant (large values remove feedback).

    References:
        Kholodenko, B. N. (2000). Negative feedback and ultrasensitivity can bring about
        oscillations in the mitogen-activated protein kinase cascades. Eur. J. Biochem.
        267:1583–1588.
    """

    R, MM = Reaction, MichaelisMenten
    reactions = [
        R("v1", "MKKK", "MKKK_P", Custom(_mapk_v1, modifiers=("MAPK_PP",))),
        R("v2", "MKKK_P", "MKKK", MM("V2", "K2")),
        R("v3", "MKK", "MKK_P", MM("k3", "K3", enzyme="MKKK_P")),
        R("v4", "MKK_P", "MKK_PP", MM("k4", "K4", enzyme="MKKK_P")),
        R("v5", "MKK_PP", "MKK_P", MM("V5", "K5")),
        R("v6", "MKK_P", "MKK", MM("V6", "K6")),
        R("v7", "MAPK", "MAPK_P", MM("k7", "K7", enzyme="MKK_PP")),
        R("v8", "MAPK_P", "MAPK_PP", MM("k8", "K8", enzyme="MKK_PP")),
        R("v9", "MAPK_PP", "MAPK_P", MM("V9", "K9")),
        R("v10", "MAPK_P", "MAPK", MM("V10", "K10")),
    ]
    params = {"V1": 2.5, "KI": ki, "n": 1.0, "K1": 10.0, "V2": 0.25, "K2": 8.0,
              "k3": 0.025, "K3": 15.0, "k4": 0.025, "K4": 15.0, "V5": 0.75, "K5": 15.0,
              "V6": 0.75, "K6": 15.0, "k7": 0.025, "K7": 15.0, "k8": 0.025, "K8": 15.0,
              "V9": 0.5, "K9": 15.0, "V10": 0.5, "K10": 15.0}
    species = {"MKKK": 90.0, "MKKK_P": 10.0, "MKK": 280.0, "MKK_P": 10.0, "MKK_PP": 10.0,
               "MAPK": 280.0, "MAPK_P": 10.0, "MAPK_PP": 10.0}
    return ReactionNetwork(name, species, reactions, params)


def huang_ferrell_mapk(
    e1: float = 3e-5,
    *,
    a: float = 1000.0,
    d: float = 150.0,
    k: float = 150.0,
    totals: dict[str, float] | None = None,
    name: str = "huang_ferrell",
) -> ReactionNetwork:
    r"""The MAPK cascade of Huang & Ferrell (1996) in full mass action (22 species).

    Ten enzymatic steps, each :math:`E + S \rightleftharpoons ES \to E + P` with
    association ``a`` (µM⁻¹ s⁻¹), dissociation ``d`` and catalysis ``k`` (s⁻¹), the
    same for every step (Km = (d + k)/a = 0.3 µM): MAPKKK is activated by E1 and
    inactivated by E2; MAPKK and MAPK are each phosphorylated twice by the active kinase
    above them and dephosphorylated twice by their phosphatase. Species (µM): ``KKK``,
    ``KKKs`` (MAPKKK*), ``KK``, ``KKP``, ``KKPP``, ``K``, ``KP``, ``KPP``, the enzymes
    ``E1``, ``E2``, ``KKPase``, ``KPase`` and ten complexes ``X_Y``. Totals (defaults,
    µM): MAPKKK 3e-3, E2 3e-4, MAPKK 1.2, MAPKK-Pase 3e-4, MAPK 1.2, MAPK-Pase 0.12;
    ``e1`` is the input. Seven conservation laws (the enzyme and kinase totals).

    The steady-state response of MAPK-PP to E1 is as steep as a Hill function of
    coefficient 4.9 (free species; 1.7 for MAPKK-PP and 1.0 for MAPKKK*).

    References:
        Huang, C.-Y. F. & Ferrell, J. E. (1996). Ultrasensitivity in the
        mitogen-activated protein kinase cascade. PNAS 93:10078–10083
        (BIOMD0000000009).
    """
    tot = {"KKK": 3e-3, "E2": 3e-4, "KK": 1.2, "KKPase": 3e-4, "K": 1.2, "KPase": 0.12}
    tot.update(totals or {})
    steps = [  # (enzyme, substrate, product)
        ("E1", "KKK", "KKKs"), ("E2", "KKKs", "KKK"),
        ("KKKs", "KK", "KKP"), ("KKKs", "KKP", "KKPP"),
        ("KKPase", "KKP", "KK"), ("KKPase", "KKPP", "KKP"),
        ("KKPP", "K", "KP"), ("KKPP", "KP", "KPP"),
        ("KPase", "KP", "K"), ("KPase", "KPP", "KP"),
    ]
    species = {"KKK": tot["KKK"], "KKKs": 0.0, "E1": e1, "E2": tot["E2"],
               "KK": tot["KK"], "KKP": 0.0, "KKPP": 0.0, "KKPase": tot["KKPase"],
               "K": tot["K"], "KP": 0.0, "KPP": 0.0, "KPase": tot["KPase"]}
    reactions = []
    for i, (enz, sub, prod) in enumerate(steps, start=1):
        cplx = f"{sub}_{enz}"
        species[cplx] = 0.0
        reactions += [
            Reaction(f"bind{i}", f"{enz} + {sub}", cplx, MassAction("a", "d")),
            Reaction(f"cat{i}", cplx, f"{enz} + {prod}", MassAction("k")),
        ]
    return ReactionNetwork(name, species, reactions, {"a": a, "d": d, "k": k})
