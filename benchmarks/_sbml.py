"""A small SBML Level 3 writer for the benchmark models (python-libsbml).

Kinetic laws are hand-written formula strings, one per reaction, taken from the
equations of the models (Elowitz & Leibler 2000, Box 1; Kholodenko 2000, Table 1 /
BIOMD0000000010), not generated from jaxcell's rate-law objects, so that roadrunner is
an independent check of jaxcell's rate evaluation. Species ids, parameter ids and
reaction ids are those of the jaxcell network; stoichiometry is the network's net
stoichiometry (``net.stoichiometry``). A species that a law reads but the reaction does
not change (an enzyme, a repressor, the mRNA in translation ``m -> m + p``) is written
as a modifier.

All species live in one compartment of size 1, so amounts equal concentrations; SBML
units are not declared (the benchmarks compare numbers only).
"""

from __future__ import annotations

import re

import numpy as np

try:
    import libsbml
except ImportError:  # pragma: no cover - optional dependency
    libsbml = None

_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def repressilator_laws() -> dict[str, str]:
    """Kinetic laws of ``jc.models.repressilator()``, keyed by reaction name.

    dm_i/dt = alpha K^n/(K^n + p_j^n) + alpha0 - delta_m m_i,  dp_i/dt = beta (m_i - p_i)
    with lacI repressed by cI, tetR by lacI, cI by tetR.
    """
    repressor_of = {"lacI": "cI", "tetR": "lacI", "cI": "tetR"}
    laws = {}
    for g, r in repressor_of.items():
        laws[f"transcription_{g}"] = f"alpha * K^n / (K^n + p_{r}^n)"
        laws[f"leak_{g}"] = "alpha0"
        laws[f"mrna_decay_{g}"] = f"delta_m * m_{g}"
        laws[f"translation_{g}"] = f"beta * m_{g}"
        laws[f"protein_decay_{g}"] = f"beta * p_{g}"
    return laws


def kholodenko_laws() -> dict[str, str]:
    """Kinetic laws of ``jc.models.kholodenko_mapk()`` (Kholodenko 2000, Table 1)."""
    return {
        "v1": "V1 * MKKK / ((1 + (MAPK_PP / KI)^n) * (K1 + MKKK))",
        "v2": "V2 * MKKK_P / (K2 + MKKK_P)",
        "v3": "k3 * MKKK_P * MKK / (K3 + MKK)",
        "v4": "k4 * MKKK_P * MKK_P / (K4 + MKK_P)",
        "v5": "V5 * MKK_PP / (K5 + MKK_PP)",
        "v6": "V6 * MKK_P / (K6 + MKK_P)",
        "v7": "k7 * MKK_PP * MAPK / (K7 + MAPK)",
        "v8": "k8 * MKK_PP * MAPK_P / (K8 + MAPK_P)",
        "v9": "V9 * MAPK_PP / (K9 + MAPK_PP)",
        "v10": "V10 * MAPK_P / (K10 + MAPK_P)",
    }


LAWS = {"repressilator": repressilator_laws, "mapk": kholodenko_laws}


def _check(code: int, what: str) -> None:
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        why = libsbml.OperationReturnValue_toString(code)
        raise RuntimeError(f"libsbml: {what} failed: {why}")



def _new_model(model_id, species, x0):
    """An SBML L3v2 document with one unit compartment ``cell`` and the species at
    initial concentrations ``x0``."""
    doc = libsbml.SBMLDocument(3, 2)
    model = doc.createModel()
    _check(model.setId(model_id), "model id")
    comp = model.createCompartment()
    _check(comp.setId("cell"), "compartment id")
    comp.setConstant(True)
    comp.setSize(1.0)
    comp.setSpatialDimensions(3)
    for s, v in zip(species, x0, strict=True):
        sp = model.createSpecies()
        _check(sp.setId(s), f"species id {s}")
        sp.setCompartment("cell")
        sp.setInitialConcentration(float(v))
        sp.setHasOnlySubstanceUnits(False)
        sp.setBoundaryCondition(False)
        sp.setConstant(False)
    return doc, model

def _identifiers(formula: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", formula))


def network_to_sbml(net, laws: dict[str, str], parameters=None) -> str:
    """SBML L3V2 text for a jaxcell ReactionNetwork with hand-written kinetic laws.

    Reactions without a law in ``laws`` must have zero net stoichiometry (no-op
    reactions); they are left out. Parameters: the network's parameters that the laws
    use, with the network's values unless ``parameters`` ({name: value}) overrides them.
    """
    if libsbml is None:
        raise ImportError("python-libsbml is not installed")
    values = {n: float(v)
              for n, v in zip(net.parameter_names, np.asarray(net.p), strict=True)}
    if parameters:
        values.update({k: float(v) for k, v in parameters.items()})
    N = np.asarray(net.stoichiometry)
    species = list(net.species)
    x0 = np.asarray(net.x0, dtype=float)

    doc, model = _new_model(net.name, species, x0)

    used: set[str] = set()
    for r in laws.values():
        used |= _identifiers(r)
    for name in net.parameter_names:
        if name not in used:
            continue
        if not _ID.match(name):
            raise ValueError(f"parameter {name!r} is not a valid SBML id")
        p = model.createParameter()
        _check(p.setId(name), f"parameter id {name}")
        p.setValue(values[name])
        p.setConstant(True)

    for j, rname in enumerate(net.reaction_names):
        col = N[:, j]
        if rname not in laws:
            if np.any(col != 0):
                raise ValueError(f"no kinetic law written for reaction {rname!r}")
            continue
        formula = laws[rname]
        rx = model.createReaction()
        _check(rx.setId(rname), f"reaction id {rname}")
        rx.setReversible(False)
        for i, s in enumerate(species):
            c = col[i]
            if c < 0:
                ref = rx.createReactant()
            elif c > 0:
                ref = rx.createProduct()
            else:
                continue
            ref.setSpecies(s)
            ref.setStoichiometry(float(abs(c)))
            ref.setConstant(True)
        for s in sorted(_identifiers(formula) & set(species)):
            if col[species.index(s)] == 0:  # read by the law, not changed by it
                m = rx.createModifier()
                m.setSpecies(s)
        ast = libsbml.parseL3Formula(formula)
        if ast is None:
            why = libsbml.getLastParseL3Error()
            raise ValueError(f"libsbml cannot parse {formula!r}: {why}")
        kl = rx.createKineticLaw()
        _check(kl.setMath(ast), f"kinetic law of {rname}")

    doc.checkInternalConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        raise ValueError("invalid SBML: " + "; ".join(e.getMessage() for e in errors))
    return libsbml.writeSBMLToString(doc)


def random_mass_action_sbml(n_reactions: int, seed: int = 0) -> str:
    """SBML L3V2 text of a random, bounded mass-action network with ``n_reactions``
    reactions (for scaling studies of SBML import).

    About ``n_reactions / 2`` species in one compartment of size 1 (amounts equal
    concentrations): a degradation reaction per species, constant sources into a tenth of
    the species, and random ``A -> B``, ``A <-> B``, ``A + B -> C``, ``A + B <-> C`` and
    ``A + B -> C + D`` reactions with rate constants log-uniform in [0.1, 10]. Each species
    degrades at 0.5 plus the dissociation constants of the reversible associations that
    produce it, so ``d(sum x)/dt <= sources - 0.5 sum x`` and the solution stays bounded
    (the same construction as ``compile_time.random_network``). Kinetic laws are written
    as formulas (``k3 * S1 * S4 - kr3 * S7``).
    """
    if libsbml is None:
        raise ImportError("python-libsbml is not installed")
    rng = np.random.default_rng(seed + n_reactions)
    n_s = max(3, n_reactions // 2)
    n_src = max(1, n_s // 10)
    n_rand = n_reactions - n_s - n_src
    if n_rand < 1:
        raise ValueError("too few reactions for the number of species")
    names = [f"S{i}" for i in range(n_s)]
    x0 = rng.uniform(0.0, 1.0, n_s)

    doc, model = _new_model(f"random{n_reactions}", names, x0)

    def parameter(pid: str, value: float) -> str:
        p = model.createParameter()
        _check(p.setId(pid), f"parameter id {pid}")
        p.setValue(float(value))
        p.setConstant(True)
        return pid

    def k(pid: str) -> str:
        return parameter(pid, float(np.exp(rng.uniform(np.log(0.1), np.log(10.0)))))

    def reaction(rid: str, reactants: list[str], products: list[str], law: str,
                 reversible: bool = False) -> None:
        rx = model.createReaction()
        _check(rx.setId(rid), f"reaction id {rid}")
        rx.setReversible(reversible)
        for group, create in ((reactants, rx.createReactant), (products, rx.createProduct)):
            for s in group:
                ref = create()
                ref.setSpecies(s)
                ref.setStoichiometry(1.0)
                ref.setConstant(True)
        ast = libsbml.parseL3Formula(law)
        if ast is None:
            raise ValueError(f"libsbml cannot parse {law!r}: {libsbml.getLastParseL3Error()}")
        _check(rx.createKineticLaw().setMath(ast), f"kinetic law of {rid}")

    dissociation = np.zeros(n_s)
    kinds = rng.choice(["uni", "uni_rev", "bi", "bi_rev", "exchange"], size=n_rand,
                       p=[0.25, 0.2, 0.2, 0.2, 0.15])
    for j, kind in enumerate(kinds):
        if kind in ("uni", "uni_rev"):
            a, b = (names[i] for i in rng.choice(n_s, 2, replace=False))
            law = f"{k(f'k{j}')} * {a}"
            if kind == "uni_rev":
                law += f" - {k(f'kr{j}')} * {b}"
            reaction(f"r{j}", [a], [b], law, reversible=kind == "uni_rev")
        elif kind in ("bi", "bi_rev"):
            ia, ib, ic = rng.choice(n_s, 3, replace=False)
            a, b, c = names[ia], names[ib], names[ic]
            law = f"{k(f'k{j}')} * {a} * {b}"
            if kind == "bi_rev":
                kr = k(f"kr{j}")
                dissociation[ic] += model.getParameter(kr).getValue()
                law += f" - {kr} * {c}"
            reaction(f"r{j}", [a, b], [c], law, reversible=kind == "bi_rev")
        else:
            a, b, c, d = (names[i] for i in rng.choice(n_s, 4, replace=False))
            reaction(f"r{j}", [a, b], [c, d], f"{k(f'k{j}')} * {a} * {b}")
    for i in rng.choice(n_s, n_src, replace=False):
        reaction(f"source_{i}", [], [names[i]], parameter(f"src{i}", 1.0))
    for i, s in enumerate(names):
        deg = parameter(f"deg{i}", 0.5 + float(dissociation[i]))
        reaction(f"degradation_{i}", [s], [], f"{deg} * {s}")
    if model.getNumReactions() != n_reactions:
        raise AssertionError("wrong number of reactions")

    doc.checkInternalConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errors:
        raise ValueError("invalid SBML: " + "; ".join(e.getMessage() for e in errors))
    return libsbml.writeSBMLToString(doc)
