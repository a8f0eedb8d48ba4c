"""Reading the tables of a PEtab v1 problem into fixed-shape index arrays (the
load-time half of :class:`jaxcell.petab.PetabProblem`; see ``_petab.py``)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._safe_io import check_size, inside, load_yaml
from ..sbml._model import SBMLModel
from ..sbml._reader import read_sbml
from ..sbml._structure import Structure
from ._math import PetabError, PetabUnsupportedError, compile_formula, parse_formula
from ._priors import parse_prior

_REQUIRED = {
    "measurement": ("observableId", "simulationConditionId", "measurement", "time"),
    "observable": ("observableId", "observableFormula", "noiseFormula"),
    "parameter": ("parameterId", "parameterScale", "lowerBound", "upperBound",
                  "nominalValue", "estimate"),
    "condition": ("conditionId",),
}
_SCALES = ("lin", "log", "log10")
_TRANSFORMS = ("lin", "log", "log10")
_NOISES = ("normal", "laplace")



def _is_nan(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _number(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _cell(v, where: str, *, finite: bool = False, empty_ok: bool = False) -> float:
    """A numeric table entry; ``where`` names the file, row and column."""
    if empty_ok and _is_nan(v):
        return math.nan
    num = _number(v)
    if num is None or (isinstance(v, str) and not v.strip()):
        raise PetabError(f"{where}: expected a number, got {v!r}.")
    if finite and not math.isfinite(num):
        raise PetabError(f"{where}: expected a finite number, got {v!r}.")
    return num


def _flag(v, where: str) -> bool:
    """A 0/1 table entry (``estimate``)."""
    num = _number(v)
    if num not in (0.0, 1.0):
        raise PetabError(f"{where}: expected 0 or 1, got {v!r}.")
    return bool(num)


def _columns(df, table: str, files) -> set[str]:
    cols = set(df.columns)
    if df.index.name:
        cols.add(df.index.name)
    for c in _REQUIRED[table]:
        if c not in cols:
            raise PetabError(f"PEtab {table} table {', '.join(map(str, files))}: required "
                             f"column {c!r} is missing (columns: {sorted(cols)}).")
    return cols


def _reset(df, key: str):
    return df.reset_index() if df.index.name == key else df.reset_index(drop=True)


def _load_model(path: Path, cdf, cfile: str) -> SBMLModel:
    """The SBML model, with the initial assignments of the entities that the condition
    table sets removed (PEtab: a condition-table value replaces the initial assignment)."""
    ir = read_sbml(path)
    cols = {c for c in cdf.columns if c != "conditionName"}
    assigned = {k for k, _ in ir.initial_assignments}
    drop = sorted(cols & assigned)
    if not drop:
        return SBMLModel(Structure(ir))
    for c in drop:
        if cdf[c].map(_is_nan).any():
            raise PetabUnsupportedError(
                "an empty condition-table entry for an entity with an initial assignment",
                f"column {c!r} of {cfile}")
    symbols = tuple(dataclasses.replace(s, value=0.0) if s.id in drop and s.value is None
                    else s for s in ir.symbols)
    ir = dataclasses.replace(
        ir, symbols=symbols,
        initial_assignments=tuple(a for a in ir.initial_assignments if a[0] not in drop))
    return SBMLModel(Structure(ir))


def _to_scale(v: float, scale: str) -> float:
    if scale == "lin":
        return float(v)
    if v <= 0:
        return float("nan") if v < 0 else float("-inf")
    return math.log(v) if scale == "log" else math.log10(v)



def _getter(key: str, index: int):
    return lambda env: env[key][index]


class PetabTables:
    """Load-time part of :class:`PetabProblem`: reads and checks the tables and
    builds the index arrays that :meth:`PetabProblem.nllh` uses."""

    # -- reading --------------------------------------------------------------------------
    def _read(self):
        import petab.v1 as pv1

        path = self.yaml_path
        if not path.is_file():
            raise PetabError(f"PEtab problem file {str(path)!r} does not exist.")
        spec = load_yaml(path, PetabError, "PEtab problem file")
        if not isinstance(spec, dict):
            raise PetabError(f"{path}: not a PEtab YAML file (no mapping at the top).")
        version = str(spec.get("format_version", ""))
        if version.split(".")[0] != "1":
            raise PetabUnsupportedError(f"PEtab format_version {version!r}",
                                        "only PEtab v1 is supported")
        probs = spec.get("problems") or []
        if not isinstance(probs, list) or len(probs) != 1 or not isinstance(probs[0], dict):
            raise PetabUnsupportedError("a 'problems' entry other than a list of one "
                                        "mapping", str(path))
        prob = probs[0]
        if prob.get("mapping_files"):
            raise PetabUnsupportedError("mapping tables", str(path))
        for key in ("extensions",):
            if spec.get(key):
                raise PetabUnsupportedError(f"PEtab extensions {list(spec[key])}", str(path))
        sbml = prob.get("sbml_files") or []
        for key in ("sbml_files", "measurement_files", "observable_files",
                    "condition_files", "visualization_files"):
            if not isinstance(prob.get(key) or [], list):
                raise PetabError(f"{path}: {key} must be a list of file names, got "
                                 f"{prob.get(key)!r}.")
        if len(sbml) != 1:
            raise PetabUnsupportedError("a number of SBML files other than one",
                                        f"{path} lists {sbml}")
        files = {"parameter": [spec.get("parameter_file")]}
        for table in ("measurement", "observable", "condition"):
            files[table] = prob.get(f"{table}_files") or []
            if not files[table]:
                raise PetabError(f"{path}: no {table}_files given.")
        for f in [sbml[0], *sum(files.values(), []), *(prob.get("visualization_files")
                                                       or [])]:
            if f is None or not inside(path, f, PetabError, "file").is_file():
                raise PetabError(f"{path}: file {f!r} named there does not exist in "
                                 f"{str(path.parent)!r}.")
            check_size(path.parent / f, PetabError, "PEtab file")
        self._files = files
        try:
            with warnings.catch_warnings():
                # petab 0.8 uses pandas arguments that pandas 3 deprecates
                # (float_precision, inplace): not the user's concern
                warnings.filterwarnings("ignore", category=DeprecationWarning,
                                        module=r"petab(\.|$)")
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        module=r"petab(\.|$)")
                self._petab = pv1.Problem.from_yaml(str(path))
        except Exception as e:  # noqa: BLE001 - petab raises many kinds
            raise PetabError(f"{path}: petab cannot read the problem: {e}") from e
        p = self._petab
        self._cols = {
            "measurement": _columns(p.measurement_df, "measurement", files["measurement"]),
            "observable": _columns(p.observable_df, "observable", files["observable"]),
            "parameter": _columns(p.parameter_df, "parameter", files["parameter"]),
            "condition": _columns(p.condition_df, "condition", files["condition"]),
        }
        self.model: SBMLModel = _load_model(path.parent / sbml[0], p.condition_df,
                                            ", ".join(files["condition"]))

    # -- parameters -----------------------------------------------------------------------
    def _build_parameters(self):
        df = _reset(self._petab.parameter_df, "parameterId")
        fname = self._files["parameter"][0]
        ids, scales, nominal, estimate, lb, ub, priors = [], [], [], [], [], [], []
        for i, row in df.iterrows():
            pid = str(row["parameterId"])
            at = f"{fname}, row {i + 2} (parameter {pid!r}), column"
            scale = str(row["parameterScale"]).strip()
            if scale not in _SCALES:
                raise PetabError(f"{fname}: parameter {pid!r} has parameterScale "
                                 f"{scale!r}; expected one of {_SCALES}.")
            priors.append(parse_prior(row.get("objectivePriorType"),
                                      row.get("objectivePriorParameters"),
                                      f"{fname}: parameter {pid!r}"))
            est = _flag(row["estimate"], f"{at} 'estimate'")
            nom = _number(row["nominalValue"])
            if nom is None or (not est and math.isnan(nom)):
                raise PetabError(f"{fname}: parameter {pid!r} has no numeric nominalValue "
                                 f"(got {row['nominalValue']!r}).")
            ids.append(pid)
            scales.append(scale)
            nominal.append(nom)
            estimate.append(bool(est))
            lo = _cell(row["lowerBound"], f"{at} 'lowerBound'", empty_ok=not est)
            hi = _cell(row["upperBound"], f"{at} 'upperBound'", empty_ok=not est)
            if est and not lo <= hi:
                raise PetabError(f"{at}s 'lowerBound', 'upperBound': lower bound {lo} is "
                                 f"not below the upper bound {hi}.")
            lb.append(lo)
            ub.append(hi)
        self.all_parameter_ids = tuple(ids)
        self._pindex = {k: i for i, k in enumerate(ids)}
        est_idx = [i for i, e in enumerate(estimate) if e]
        self._est_idx = np.asarray(est_idx, dtype=int)
        self.parameter_ids = tuple(ids[i] for i in est_idx)
        self.parameter_scales = tuple(scales[i] for i in est_idx)
        self._nominal_lin = np.asarray(nominal, dtype=float)
        self.x_nominal = jnp.asarray([_to_scale(nominal[i], scales[i]) for i in est_idx],
                                     dtype=float)
        self.lower_bounds = np.asarray([_to_scale(lb[i], scales[i]) for i in est_idx])
        self.upper_bounds = np.asarray([_to_scale(ub[i], scales[i]) for i in est_idx])
        self._scale_code = np.asarray([_SCALES.index(s) for s in self.parameter_scales],
                                      dtype=int)
        est_priors = [priors[i] for i in est_idx]
        self._prior_code = np.asarray([c for c, _, _ in est_priors], dtype=int)
        self._prior_a = np.asarray([a for _, a, _ in est_priors], dtype=float)
        self._prior_b = np.asarray([b for _, _, b in est_priors], dtype=float)

    def _source(self, v, where: str) -> tuple[int, float] | None:
        """``(index into p_all or -1, constant)`` of a table entry; None if empty."""
        if _is_nan(v):
            return None
        num = _number(v)
        if num is not None:
            return -1, num
        name = str(v).strip()
        if name in self._pindex:
            return self._pindex[name], 0.0
        raise PetabError(f"{where}: {name!r} is neither a number nor a parameter of the "
                         f"parameters table {self._files['parameter'][0]}.")

    # -- conditions -----------------------------------------------------------------------
    def _build_conditions(self):
        mdf = _reset(self._petab.measurement_df, "observableId")
        cdf = _reset(self._petab.condition_df, "conditionId")
        cfile = ", ".join(self._files["condition"])
        conds = {str(r["conditionId"]): r for _, r in cdf.iterrows()}
        has_pre = "preequilibrationConditionId" in mdf.columns
        pairs = []
        for _, r in mdf.iterrows():
            pre = r["preequilibrationConditionId"] if has_pre else None
            pre = None if _is_nan(pre) else str(pre)
            sim = str(r["simulationConditionId"])
            for c in (pre, sim):
                if c is not None and c not in conds:
                    raise PetabError(f"measurement table {', '.join(self._files['measurement'])}"
                                     f": condition {c!r} is not in the "
                                     f"condition table {cfile}.")
            if (pre, sim) not in pairs:
                pairs.append((pre, sim))
        self.conditions = tuple(pairs)
        model = self.model
        params = model.parameters()
        columns = [c for c in cdf.columns if c not in ("conditionId", "conditionName")]
        for c in columns:
            if c not in params:
                kind = "an assigned or unknown model entity"
                raise PetabUnsupportedError(
                    "condition-table column that is not a model parameter, compartment "
                    f"or species initial value ({kind})", f"{c!r} in {cfile}")
        # model parameters that PEtab sets: table ids that are model parameters, columns
        keys = [k for k in self.all_parameter_ids if k in params]
        keys += [c for c in columns if c not in keys]
        self._keys = tuple(keys)

        def row_sources(cid):
            src, const = [], []
            for k in keys:
                s = None
                if cid is not None and k in columns:
                    s = self._source(conds[cid][k], f"{cfile}, condition {cid!r}, column {k!r}")
                if s is None and k in self._pindex:
                    s = (self._pindex[k], 0.0)
                if s is None:
                    s = (-1, float(params[k]))
                src.append(s[0])
                const.append(s[1])
            return src, const

        pre_ids = sorted({p for p, _ in pairs if p is not None})
        self._pre_ids = tuple(pre_ids)
        if pre_ids and (model.has_events or model.has_delays):
            raise PetabUnsupportedError("pre-equilibration of a model with events or "
                                        "delays", str(self.yaml_path))
        sim_src, sim_const, pre_of, mask = [], [], [], []
        state_ids = model.state_ids
        for pre, sim in pairs:
            s, c = row_sources(sim)
            sim_src.append(s)
            sim_const.append(c)
            pre_of.append(pre_ids.index(pre) if pre is not None else 0)
            # state taken from the pre-equilibration unless the condition sets it
            mask.append([pre is not None and (k not in columns or _is_nan(conds[sim][k]))
                         for k in state_ids])
        self._sim_src = np.asarray(sim_src, dtype=int).reshape(len(pairs), len(keys))
        self._sim_const = np.asarray(sim_const, dtype=float).reshape(len(pairs), len(keys))
        self._pre_of = np.asarray(pre_of, dtype=int)
        self._mask = np.asarray(mask, dtype=bool).reshape(len(pairs), len(state_ids))
        pre_src, pre_const = [], []
        for pre in pre_ids:
            s, c = row_sources(pre)
            pre_src.append(s)
            pre_const.append(c)
        self._pre_src = np.asarray(pre_src, dtype=int).reshape(len(pre_ids), len(keys))
        self._pre_const = np.asarray(pre_const, dtype=float).reshape(len(pre_ids), len(keys))

    # -- measurements and observables -----------------------------------------------------
    def _build_measurements(self):
        mdf = _reset(self._petab.measurement_df, "observableId")
        odf = _reset(self._petab.observable_df, "observableId")
        mfile = ", ".join(self._files["measurement"])
        ofile = ", ".join(self._files["observable"])
        has_pre = "preequilibrationConditionId" in mdf.columns
        times: list[list[float]] = [[0.0] for _ in self.conditions]
        rows = []
        for i, r in mdf.iterrows():
            t = _cell(r["time"], f"{mfile}, row {i + 2}, column 'time'")
            if math.isnan(t):
                raise PetabError(f"{mfile}, row {i + 2}, column 'time': expected a "
                                 f"number, got {r['time']!r}.")
            if not math.isfinite(t):
                raise PetabUnsupportedError("steady-state measurements (time = inf)",
                                            f"row {i + 2} of {mfile}")
            if t < 0:
                raise PetabError(f"{mfile}, row {i + 2}: negative time {t}.")
            pre = r["preequilibrationConditionId"] if has_pre else None
            ci = self.conditions.index((None if _is_nan(pre) else str(pre),
                                        str(r["simulationConditionId"])))
            if t not in times[ci]:
                times[ci].append(t)
            rows.append((i, r, ci, t))
        n_t = max(len(ts) for ts in times)
        ts_pad = []
        for ts in times:
            ts.sort()
            ts_pad.append(ts + [ts[-1]] * (n_t - len(ts)))
        self._times = [tuple(ts) for ts in times]
        self._ts = np.asarray(ts_pad, dtype=float)

        outputs = {k: j for j, k in enumerate(self.model.output_ids)}
        self._observables = []
        for _, o in odf.iterrows():
            oid = str(o["observableId"])
            trans = str(o.get("observableTransformation", "lin"))
            trans = "lin" if _is_nan(o.get("observableTransformation")) else trans
            dist = "normal" if _is_nan(o.get("noiseDistribution")) \
                else str(o["noiseDistribution"])
            if trans not in _TRANSFORMS:
                raise PetabError(f"{ofile}: observable {oid!r} has observableTransformation "
                                 f"{trans!r}; expected one of {_TRANSFORMS}.")
            if dist not in _NOISES:
                raise PetabUnsupportedError(f"noiseDistribution {dist!r}",
                                            f"observable {oid!r} in {ofile}")
            mine = [x for x in rows if str(x[1]["observableId"]) == oid]
            if not mine:
                continue
            obs_f, n_obs = self._formula(o["observableFormula"], oid, "observable", outputs,
                                         f"{ofile}, observableFormula of {oid!r}")
            noise_f, n_noise = self._formula(o["noiseFormula"], oid, "noise", outputs,
                                             f"{ofile}, noiseFormula of {oid!r}")
            arrays = {"cond": [], "tix": [], "t": [], "y": [], "row": []}
            over = {"observable": ([], []), "noise": ([], [])}
            for i, r, ci, t in mine:
                arrays["cond"].append(ci)
                arrays["tix"].append(self._times[ci].index(t))
                arrays["t"].append(t)
                arrays["y"].append(_cell(r["measurement"],
                                         f"{mfile}, row {i + 2}, column 'measurement'",
                                         finite=True))
                arrays["row"].append(i)
                for kind, n in (("observable", n_obs), ("noise", n_noise)):
                    col = f"{kind}Parameters"
                    raw = r[col] if col in mdf.columns else None
                    vals = [] if _is_nan(raw) else (
                        [raw] if _number(raw) is not None else str(raw).split(";"))
                    if len(vals) != n:
                        raise PetabError(f"{mfile}, row {i + 2}: {col} gives {len(vals)} "
                                         f"values for observable {oid!r}, whose formula "
                                         f"has {n} {kind}Parameter placeholders.")
                    src = [self._source(v, f"{mfile}, row {i + 2}, {col}") for v in vals]
                    if any(s is None for s in src):
                        raise PetabError(f"{mfile}, row {i + 2}: empty entry in {col}.")
                    over[kind][0].append([s[0] for s in src])
                    over[kind][1].append([s[1] for s in src])
            m = len(mine)
            self._observables.append({
                "id": oid, "trans": trans, "dist": dist, "obs": obs_f, "noise": noise_f,
                "cond": np.asarray(arrays["cond"], int), "tix": np.asarray(arrays["tix"], int),
                "t": np.asarray(arrays["t"]), "y": np.asarray(arrays["y"]),
                "row": np.asarray(arrays["row"], int),
                "osrc": np.asarray(over["observable"][0], int).reshape(m, n_obs),
                "oconst": np.asarray(over["observable"][1], float).reshape(m, n_obs),
                "nsrc": np.asarray(over["noise"][0], int).reshape(m, n_noise),
                "nconst": np.asarray(over["noise"][1], float).reshape(m, n_noise),
            })
            if trans != "lin" and np.any(np.asarray(arrays["y"]) <= 0):
                raise PetabError(f"{mfile}: observable {oid!r} has {trans} transformation "
                                 "but non-positive measurements.")
        known = {o["id"] for o in self._observables}
        unknown = sorted({str(x[1]["observableId"]) for x in rows} - known)
        if unknown:
            raise PetabError(f"{mfile}: observables {unknown} are not in {ofile}.")

    def _formula(self, text, oid, kind, outputs, where):
        expr = parse_formula(text, where)
        prefix = f"{kind}Parameter"
        n = 0
        resolve = {}
        for s in expr.free_symbols:
            name = str(s)
            if name.startswith(prefix) and name.endswith(f"_{oid}"):
                k = int(name[len(prefix):-len(oid) - 1]) - 1
                n = max(n, k + 1)
                resolve[name] = _getter("ph", k)
            elif name in outputs:
                resolve[name] = _getter("out", outputs[name])
            elif name in self._pindex:
                resolve[name] = _getter("p", self._pindex[name])
            elif name in ("time", "t"):
                resolve[name] = lambda env: env["t"]
        return compile_formula(expr, resolve, where), n

