"""The models the benchmarks run, and plain-numpy right-hand sides for the peers.

``repressilator()`` and ``kholodenko_mapk()`` are jaxcell's own library models.
``boehm()`` and ``fujita()`` are PEtab benchmark problems shipped in ``tests/data/petab``
(Boehm_JProteomeRes2014, Fujita_SciSignal2010), imported with ``jaxcell.sbml.load_sbml`` at
the PEtab nominal parameters. ``spec(name)`` describes each of the four for jaxcell,
scipy and libRoadRunner (model, times, initial state, kinetic parameters, numpy
right-hand side, SBML text).

The numpy right-hand sides are written independently of jaxcell's rate-law code: for the
library models the stoichiometry comes from ``net.stoichiometry`` and the reaction rates
are hand-written from the published equations; the PEtab models' ODEs are hand-written
whole from the published equations and the SBML reactions.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _sbml  # benchmarks/ is on sys.path, as for the scripts
import equinox as eqx
import jax.numpy as jnp
import numpy as np

import jaxcell as jc
import jaxcell.io as jio


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


# -- the PEtab benchmark models (shipped in tests/data/petab) -----------------------------
PETAB = Path(__file__).resolve().parents[1] / "tests" / "data" / "petab"
BOEHM_DIR = PETAB / "Boehm_JProteomeRes2014"
FUJITA_DIR = PETAB / "Fujita_SciSignal2010"
BOEHM_XML = BOEHM_DIR / "model_Boehm_JProteomeRes2014.xml"
FUJITA_XML = FUJITA_DIR / "model_Fujita_SciSignal2010.xml"
FUJITA_CONDITION = "condition_step_10_0"

BOEHM_SPECIES = ("STAT5A", "STAT5B", "pApB", "pApA", "pBpB", "nucpApA", "nucpApB",
                 "nucpBpB")
BOEHM_KINETIC = ("Epo_degradation_BaF3", "k_exp_hetero", "k_exp_homo", "k_imp_hetero",
                 "k_imp_homo", "k_phos")
FUJITA_SPECIES = ("EGFR", "pEGFR", "pEGFR_Akt", "Akt", "pAkt", "S6", "pAkt_S6", "pS6",
                  "EGF_EGFR")
FUJITA_KINETIC = ("EGFR_turnover", "reaction_1_k1", "reaction_1_k2", "reaction_2_k1",
                  "reaction_2_k2", "reaction_3_k1", "reaction_4_k1", "reaction_5_k1",
                  "reaction_5_k2", "reaction_6_k1", "reaction_7_k1", "reaction_8_k1",
                  "reaction_9_k1")
FUJITA_INPUT = ("EGF_0", "EGF_rate", "EGF_end")


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def petab_nominal(folder: Path) -> dict[str, float]:
    """parameterId -> nominalValue of a PEtab problem's parameters table (PEtab v1 gives
    nominal values on the linear scale whatever ``parameterScale`` says)."""
    (path,) = folder.glob("parameters_*.tsv")
    return {r["parameterId"]: float(r["nominalValue"]) for r in _read_tsv(path)}


def fujita_condition(condition: str = FUJITA_CONDITION) -> dict[str, float]:
    """EGF_0, EGF_rate and EGF_end of a condition of the Fujita conditions table."""
    (path,) = FUJITA_DIR.glob("experimentalCondition_*.tsv")
    for row in _read_tsv(path):
        if row["conditionId"] == condition:
            return {k: float(row[k]) for k in FUJITA_INPUT}
    raise ValueError(f"no condition {condition!r} in {path.name}")


def _petab_values(model, folder: Path, extra=None) -> dict[str, float]:
    """The PEtab nominal values (and ``extra``) of the model's SBML parameters; the
    others (noise and scaling parameters) belong to the observables."""
    values = {k: v for k, v in petab_nominal(folder).items() if k in model.parameters()}
    values.update(extra or {})
    return values


def boehm():
    """Boehm et al. (2014) STAT5 dimerisation, ``jaxcell.sbml.SBMLModel`` at the PEtab
    nominal parameters (the XML's values are an older fit)."""
    model = jio.load_sbml(BOEHM_XML)
    return model.replace_parameters(_petab_values(model, BOEHM_DIR))


def fujita(condition: str = FUJITA_CONDITION):
    """Fujita et al. (2010) EGF-Akt-S6 pathway, ``jaxcell.sbml.SBMLModel`` at the PEtab
    nominal parameters and the EGF input (EGF_0, EGF_rate, EGF_end) of ``condition``."""
    model = jio.load_sbml(FUJITA_XML)
    return model.replace_parameters(
        _petab_values(model, FUJITA_DIR, fujita_condition(condition)))


def _sbml_with_values(path: Path, values: dict[str, float]) -> str:
    """SBML text of ``path`` with the global parameters in ``values`` set (for
    roadrunner, which then needs no initial-value juggling)."""
    if _sbml.libsbml is None:
        raise ImportError("python-libsbml is not installed")
    doc = _sbml.libsbml.readSBMLFromFile(str(path))
    model = doc.getModel()
    for k, v in values.items():
        p = model.getParameter(k)
        if p is None:
            raise ValueError(f"{path.name} has no parameter {k!r}")
        _sbml._check(p.setValue(float(v)), f"value of {k}")
    return _sbml.libsbml.writeSBMLToString(doc)


def boehm_numpy_rhs(params: dict[str, float]):
    """``f(t, x)`` of Boehm et al. (2014), hand-written from the published equations.

    ``x``: concentrations in ``BOEHM_SPECIES`` order (cytoplasm 1.4, nucleus 0.45);
    Epo input ``1.25e-7 exp(-Epo_degradation_BaF3 t)``; ``params``: ``BOEHM_KINETIC``.

    References:
        Boehm, Adlung, Schilling, Roth, Klingmüller, Lehmann (2014). Identification of
        isoform-specific dynamics in phosphorylation-dependent STAT5 dimerization by
        quantitative mass spectrometry and mathematical modeling. J Proteome Res 13:5685.
    """
    cyt, nuc = 1.4, 0.45
    kdeg, k_exp_het, k_exp_hom, k_imp_het, k_imp_hom, k_phos = (
        params[k] for k in BOEHM_KINETIC)

    def f(t, x):
        A, B, pApB, pApA, pBpB, npApA, npApB, npBpB = x
        epo = 1.25e-7 * np.exp(-kdeg * t)
        v1 = epo * A * A * k_phos
        v2 = epo * A * B * k_phos
        v3 = epo * B * B * k_phos
        v4, v5, v6 = k_imp_hom * pApA, k_imp_het * pApB, k_imp_hom * pBpB
        v7, v8, v9 = k_exp_hom * npApA, k_exp_het * npApB, k_exp_hom * npBpB
        return np.array([
            -2 * v1 - v2 + (2 * v7 + v8) * nuc / cyt,
            -v2 - 2 * v3 + (v8 + 2 * v9) * nuc / cyt,
            v2 - v5,
            v1 - v4,
            v3 - v6,
            v4 * cyt / nuc - v7,
            v5 * cyt / nuc - v8,
            v6 * cyt / nuc - v9,
        ])

    return f


def fujita_numpy_rhs(params: dict[str, float], condition: str = FUJITA_CONDITION):
    """``f(t, x)`` of Fujita et al. (2010), hand-written from the model's 11 mass-action
    reactions (compartment ``Cell`` = 1, so amounts equal concentrations).

    ``x`` in ``FUJITA_SPECIES`` order; ``params``: ``FUJITA_KINETIC``, optionally
    ``EGF_0``, ``EGF_rate``, ``EGF_end`` (else those of ``condition``). Input
    ``EGF(t) = EGF_0 + EGF_rate t`` for ``t <= EGF_end``, else 0: discontinuous at
    ``EGF_end``, so integrate in pieces split there (:func:`solve_scipy`).

    References:
        Fujita, Toyoshima, Uda, Ozaki, Kubota, Kuroda (2010). Decoupling of receptor and
        downstream signals in the Akt pathway by its low-pass filter characteristics.
        Sci Signal 3:ra56.
    """
    p = {**fujita_condition(condition), **params}
    (turnover, k1f, k1r, k2f, k2r, k3, k4, k5f, k5r, k6, k7, k8, k9) = (
        p[k] for k in FUJITA_KINETIC)
    egf0, rate, end = (p[k] for k in FUJITA_INPUT)

    def f(t, x):
        EGFR, pEGFR, pEGFR_Akt, Akt, pAkt, S6, pAkt_S6, pS6, EGF_EGFR = x
        egf = egf0 + rate * t if t <= end else 0.0
        v1 = k1f * egf * EGFR - k1r * EGF_EGFR   # EGF + EGFR <-> EGF_EGFR
        v2 = k2f * pEGFR * Akt - k2r * pEGFR_Akt  # pEGFR + Akt <-> pEGFR_Akt
        v3 = k3 * pEGFR_Akt                       # pEGFR_Akt -> pEGFR + pAkt
        v4 = k4 * pEGFR                           # pEGFR ->
        v5 = k5f * pAkt * S6 - k5r * pAkt_S6      # pAkt + S6 <-> pAkt_S6
        v6 = k6 * pAkt_S6                         # pAkt_S6 -> pAkt + pS6
        v7 = k7 * pAkt                            # pAkt -> Akt
        v8 = k8 * pS6                             # pS6 -> S6
        v9 = k9 * EGF_EGFR                        # EGF_EGFR -> pEGFR
        v10 = turnover * EGFR                     # EGFR ->
        v11 = 68190.0 * turnover                  # -> EGFR
        return np.array([
            -v1 - v10 + v11,
            -v2 + v3 - v4 + v9,
            v2 - v3,
            -v2 + v7,
            v3 - v5 + v6 - v7,
            -v5 + v8,
            v5 - v6,
            v6 - v8,
            v1 - v9,
        ])

    return f


# -- one description per benchmark model ---------------------------------------------------
N_TIMES = 101


@dataclass(frozen=True)
class Spec:
    """Everything the three tools need to run one benchmark model.

    ``x0`` and every trajectory are concentrations (SBML values) in ``species`` order:
    what roadrunner's ``[S]`` selections and ``simulate_sbml(...).value(S)`` report.
    (An ``SBMLModel`` integrates amounts internally; Boehm's compartments are not 1.)
    ``params`` are the kinetic parameters to perturb (name -> nominal value); the
    numpy right-hand side takes such a dict; ``sbml`` loads the nominal model into
    roadrunner, where ``rr[name] = value`` then ``rr.reset()`` sets others.
    ``breakpoints``: times in ``(0, t1)`` where the right-hand side jumps.
    """

    name: str
    model: Any                      # jaxcell ReactionNetwork or io.SBMLModel
    species: tuple[str, ...]
    t1: float
    ts: np.ndarray
    x0: np.ndarray
    params: dict[str, float]
    numpy_rhs: Callable[[dict[str, float]], Callable]
    sbml: str
    breakpoints: tuple[float, ...] = ()

    @property
    def is_sbml(self) -> bool:
        """Whether ``model`` is an ``SBMLModel`` (simulate with ``simulate_sbml``)."""
        return isinstance(self.model, jio.SBMLModel)

    def with_params(self, values: dict[str, float]):
        """``model`` with new values of (some of) ``params``."""
        if self.is_sbml:
            return self.model.replace_parameters(values)
        p = dict(zip(self.model.parameter_names, np.asarray(self.model.p), strict=True))
        p.update(values)
        return eqx.tree_at(lambda m: m.p, self.model,
                           jnp.asarray([p[k] for k in self.model.parameter_names]))


def _network_spec(name, net, t1, laws) -> Spec:
    params = param_dict(net, net.p)
    return Spec(name, net, tuple(net.species), t1, np.linspace(0.0, t1, N_TIMES),
                np.asarray(net.x0, float), params, lambda q: numpy_rhs(net, q),
                _sbml.network_to_sbml(net, laws))


def spec(name: str, condition: str = FUJITA_CONDITION) -> Spec:
    """The benchmark model ``name``: ``"boehm"`` (0-240 min), ``"fujita"`` (0-3600 s,
    EGF input of ``condition``), ``"mapk"`` (0-3600 s) or ``"repressilator"``
    (0-1000), with 101 output times."""
    if name == "repressilator":
        return _network_spec(name, repressilator(), 1000.0, _sbml.repressilator_laws())
    if name == "mapk":
        return _network_spec(name, kholodenko_mapk(), 3600.0, _sbml.kholodenko_laws())
    if name == "boehm":
        model = boehm()
        nominal = petab_nominal(BOEHM_DIR)
        ratio = nominal["ratio"]
        x0 = np.array([207.6 * ratio, 207.6 * (1.0 - ratio), 0, 0, 0, 0, 0, 0], float)
        return Spec(name, model, BOEHM_SPECIES, 240.0, np.linspace(0.0, 240.0, N_TIMES),
                    x0, {k: nominal[k] for k in BOEHM_KINETIC}, boehm_numpy_rhs,
                    _sbml_with_values(BOEHM_XML, _petab_values(model, BOEHM_DIR)))
    if name == "fujita":
        model = fujita(condition)
        nominal = petab_nominal(FUJITA_DIR)
        inputs = fujita_condition(condition)
        x0 = np.zeros(len(FUJITA_SPECIES))
        for s, k in (("EGFR", "init_EGFR"), ("Akt", "init_AKT"), ("S6", "init_S6")):
            x0[FUJITA_SPECIES.index(s)] = nominal[k]
        (meas,) = FUJITA_DIR.glob("measurementData_*.tsv")
        t1 = max(float(r["time"]) for r in _read_tsv(meas))
        breaks = tuple(t for t in (inputs["EGF_end"],) if 0.0 < t < t1)
        return Spec(name, model, FUJITA_SPECIES, t1, np.linspace(0.0, t1, N_TIMES), x0,
                    {k: nominal[k] for k in FUJITA_KINETIC},
                    lambda q: fujita_numpy_rhs(q, condition),
                    _sbml_with_values(FUJITA_XML, _petab_values(model, FUJITA_DIR, inputs)),
                    breaks)
    raise ValueError(f"unknown benchmark model {name!r}; expected one of {SPEC_NAMES}")


SPEC_NAMES = ("boehm", "fujita", "mapk", "repressilator")


def solve_scipy(s: Spec, params: dict[str, float] | None = None, method: str = "LSODA",
                rtol: float = 1e-6, atol: float = 1e-8) -> np.ndarray:
    """Trajectory ``(len(ts), len(species))`` with ``scipy.integrate.solve_ivp``, restarted
    at each breakpoint of the right-hand side (NaN if the solver fails)."""
    from scipy.integrate import solve_ivp

    f = s.numpy_rhs({**s.params, **(params or {})})
    edges = [0.0, *s.breakpoints, s.t1]
    x, out = s.x0.copy(), []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        last = k == len(edges) - 2
        ts = s.ts[(s.ts >= a) & ((s.ts <= b) if last else (s.ts < b))]
        t_eval = ts if ts.size and ts[-1] == b else np.append(ts, b)
        sol = solve_ivp(f, (a, b), x, method=method, t_eval=t_eval, rtol=rtol, atol=atol)
        if not sol.success:
            return np.full((len(s.ts), len(s.species)), np.nan)
        out.append(sol.y.T[:len(ts)])
        x = sol.y[:, -1]
    return np.concatenate(out)
