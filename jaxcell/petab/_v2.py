"""PEtab v2 tables read into the shape the v1 machinery compiles.

PEtab v2 (format_version 2.x) replaces v1's wide condition table and per-measurement
condition ids by *experiments* (periods that apply conditions from a time on), a long
condition table (``conditionId, targetId, targetValue``), observables with named
placeholders and a ``noiseDistribution`` that carries the transformation
(``log-normal``), and a mapping table. The tables are read with the ``petab`` library's
v2 readers; this module turns them into v1-shaped data frames (one synthetic condition per
experiment period), so that the same load-time compilation and the same traced
likelihood serve both versions. What cannot be expressed that way (experiments with
several periods after the start, condition values that are formulas) raises
:class:`PetabUnsupportedError` naming the feature and the entry.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .._safe_io import check_size, inside
from ._math import PetabError, PetabUnsupportedError
from ._tables import _cell

#: v2 ``noiseDistribution`` -> (v1 observableTransformation, v1 noiseDistribution)
_NOISE_V2 = {
    "normal": ("lin", "normal"),
    "laplace": ("lin", "laplace"),
    "log-normal": ("log", "normal"),
    "log-laplace": ("log", "laplace"),
    "log10-normal": ("log10", "normal"),
    "log10-laplace": ("log10", "laplace"),
}
#: v2 ``priorDistribution`` -> v1 ``objectivePriorType``
_PRIOR_V2 = {
    "normal": "normal",
    "laplace": "laplace",
    "uniform": "uniform",
    "log-normal": "logNormal",
    "log-laplace": "logLaplace",
}
_DEFAULT = "__petab_default"  # the condition of measurements without an experiment
_PRE = "__preequilibration"


def _empty(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip() == ""


def _read_tsv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise PetabError(f"PEtab {what} file {str(path)!r} does not exist.")
    check_size(path, PetabError, f"{what} table")
    try:
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                           na_values=[""])
    except Exception as e:  # noqa: BLE001 - pandas raises many kinds
        raise PetabError(f"{path}: cannot read the {what} table: {e}") from e


def _concat(yaml_path: Path, files, what: str) -> tuple[pd.DataFrame | None, str]:
    if isinstance(files, (str, dict)) or not isinstance(files or [], list):
        raise PetabError(f"{yaml_path}: {what}_files must be a list of file names, got "
                         f"{files!r}.")
    files = list(files or [])
    if not files:
        return None, ""
    frames = [_read_tsv(inside(yaml_path, f, PetabError, f"{what} file"), what)
              for f in files]
    return pd.concat(frames, ignore_index=True), ", ".join(map(str, files))


def _require(df, cols, what, fname):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise PetabError(f"PEtab {what} table {fname}: required column(s) {missing} missing "
                         f"(columns: {list(df.columns)}).")


class V2Tables:
    """The tables of a PEtab v2 problem in v1 shape (see the module docstring).

    Attributes:
        spec: the problem YAML as a dict.
        model_path: the SBML file.
        parameter_df: the parameter table without array-valued rows (v1 columns;
            ``parameterScale`` ``lin`` where the v2 table has none).
        array_parameters: the array-valued (network) rows, as dicts.
        condition_df: one synthetic v1 condition per experiment period (wide).
        measurement_df: v1 columns (``simulationConditionId``,
            ``preequilibrationConditionId``).
        observable_df: v1 columns (``observableTransformation`` from the noise
            distribution).
        placeholders: ``{(observableId, "observable"|"noise"): [names]}``.
        mapping: ``{petabEntityId: modelEntityId}``.
        condition_of_experiment: ``{experimentId or "": (pre or None, sim)}``.
        files: ``{table: [file names]}`` for messages.
    """

    def __init__(self, yaml_path: Path, spec: dict):
        self.spec = spec
        if "problems" in spec:
            raise PetabError(f"{yaml_path}: format_version {spec.get('format_version')!r} "
                             "but the v1 layout (a 'problems' list); a PEtab v2 file lists "
                             "model_files, measurement_files, ... at the top level.")
        models = spec.get("model_files") or {}
        if not isinstance(models, dict) or len(models) != 1:
            raise PetabUnsupportedError("a number of model files other than one",
                                        f"{yaml_path} lists {list(models)}")
        (mid, minfo), = models.items()
        if not isinstance(minfo or {}, dict):
            raise PetabError(f"{yaml_path}: model {mid!r} must be a mapping with "
                             f"'location' and 'language', got {minfo!r}.")
        lang = str((minfo or {}).get("language", "sbml")).lower()
        if lang != "sbml":
            raise PetabUnsupportedError(f"model language {lang!r}", f"model {mid!r}")
        self.model_path = inside(yaml_path, minfo.get("location", ""), PetabError,
                                 f"model file of {mid!r}")
        if not self.model_path.is_file():
            raise PetabError(f"{yaml_path}: model file {str(self.model_path)!r} of model "
                             f"{mid!r} does not exist.")
        self.files = {}
        pdf, pfile = _concat(yaml_path, spec.get("parameter_files")
                             or [spec.get("parameter_file")], "parameter")
        mdf, mfile = _concat(yaml_path, spec.get("measurement_files"), "measurement")
        odf, ofile = _concat(yaml_path, spec.get("observable_files"), "observable")
        cdf, cfile = _concat(yaml_path, spec.get("condition_files"), "condition")
        edf, efile = _concat(yaml_path, spec.get("experiment_files"), "experiment")
        xdf, xfile = _concat(yaml_path, spec.get("mapping_files"), "mapping")
        for name, df in (("parameter", pdf), ("measurement", mdf), ("observable", odf)):
            if df is None:
                raise PetabError(f"{yaml_path}: no {name}_files given.")
        self.files = {"parameter": [pfile], "measurement": [mfile], "observable": [ofile],
                      "condition": [cfile or "(no condition table)"]}
        self._parameters(pdf, pfile)
        self._mapping(xdf, xfile)
        self._observables(odf, ofile)
        self._experiments(edf, efile, cdf, cfile, mdf, mfile)

    # -- tables ---------------------------------------------------------------------------
    def _parameters(self, df, fname):
        _require(df, ("parameterId", "nominalValue", "estimate"), "parameter", fname)
        rows, arrays = [], []
        for i, r in df.iterrows():
            pid = str(r["parameterId"]).strip()
            est = str(r["estimate"]).strip().lower()
            if est not in ("true", "false", "1", "0"):
                raise PetabError(f"{fname}, row {i + 2}: estimate of {pid!r} is "
                                 f"{r['estimate']!r}; expected true or false.")
            est = est in ("true", "1")
            scale = r.get("parameterScale")
            scale = "lin" if _empty(scale) else str(scale).strip()
            lb = r.get("lowerBound")
            ub = r.get("upperBound")
            for col, v in (("lowerBound", lb), ("upperBound", ub)):
                if not _empty(v):
                    _cell(v, f"{fname}, row {i + 2} (parameter {pid!r}), column {col!r}")
            prior = r.get("priorDistribution")
            prior_pars = r.get("priorParameters")
            if not _empty(prior):
                kind = str(prior).strip()
                if kind not in _PRIOR_V2:
                    raise PetabUnsupportedError(f"priorDistribution {kind!r}",
                                                f"parameter {pid!r} in {fname}")
                prior = _PRIOR_V2[kind]
            else:
                prior = r.get("objectivePriorType")
                prior_pars = r.get("objectivePriorParameters", prior_pars)
            entry = {
                "parameterId": pid, "parameterScale": scale,
                "lowerBound": "-inf" if _empty(lb) else lb,
                "upperBound": "inf" if _empty(ub) else ub,
                "nominalValue": r["nominalValue"], "estimate": int(est),
                "objectivePriorType": None if _empty(prior) else prior,
                "objectivePriorParameters": None if _empty(prior_pars) else prior_pars,
                "row": i + 2,
            }
            nominal = str(r["nominalValue"]).strip()
            try:
                float(nominal)
                numeric = True
            except ValueError:
                numeric = False
            (rows if numeric else arrays).append(entry)
        self.array_parameters = arrays
        self._all_parameter_rows = rows + arrays
        self.parameter_df = pd.DataFrame(
            [{k: v for k, v in e.items() if k != "row"} for e in rows],
            columns=["parameterId", "parameterScale", "lowerBound", "upperBound",
                     "nominalValue", "estimate", "objectivePriorType",
                     "objectivePriorParameters"])
        for c in ("lowerBound", "upperBound", "nominalValue"):
            self.parameter_df[c] = self.parameter_df[c].astype(float)
        self.parameter_df["estimate"] = self.parameter_df["estimate"].astype(int)

    def _mapping(self, df, fname):
        self.mapping = {}
        if df is None:
            return
        _require(df, ("petabEntityId", "modelEntityId"), "mapping", fname)
        for i, r in df.iterrows():
            pid = str(r["petabEntityId"]).strip()
            if pid in self.mapping:
                raise PetabError(f"{fname}, row {i + 2}: petabEntityId {pid!r} given twice.")
            self.mapping[pid] = str(r["modelEntityId"]).strip()

    def _observables(self, df, fname):
        _require(df, ("observableId", "observableFormula"), "observable", fname)
        rows = []
        self.placeholders = {}
        for i, r in df.iterrows():
            oid = str(r["observableId"]).strip()
            noise = r.get("noiseDistribution")
            noise = "normal" if _empty(noise) else str(noise).strip()
            trans_col = r.get("observableTransformation")
            if not _empty(trans_col):  # legacy column (PEtab SciML test problems)
                trans, dist = str(trans_col).strip(), noise
            elif noise in _NOISE_V2:
                trans, dist = _NOISE_V2[noise]
            else:
                raise PetabUnsupportedError(f"noiseDistribution {noise!r}",
                                            f"observable {oid!r} in {fname}")
            for kind in ("observable", "noise"):
                raw = r.get(f"{kind}Placeholders")
                self.placeholders[(oid, kind)] = [] if _empty(raw) else [
                    s.strip() for s in str(raw).split(";") if s.strip()]
            nf = r.get("noiseFormula")
            rows.append({"observableId": oid, "observableFormula": r["observableFormula"],
                         "noiseFormula": "1" if _empty(nf) else nf,
                         "observableTransformation": trans, "noiseDistribution": dist})
            if _empty(nf):
                raise PetabError(f"{fname}, row {i + 2}: observable {oid!r} has no "
                                 "noiseFormula.")
        self.observable_df = pd.DataFrame(rows)

    def _experiments(self, edf, efile, cdf, cfile, mdf, mfile):
        # conditions (long) -> {conditionId: {targetId: value}}
        changes: dict[str, dict[str, str]] = {}
        if cdf is not None:
            _require(cdf, ("conditionId", "targetId", "targetValue"), "condition", cfile)
            for i, r in cdf.iterrows():
                cid = str(r["conditionId"]).strip()
                tid = str(r["targetId"]).strip()
                changes.setdefault(cid, {})
                if tid in changes[cid]:
                    raise PetabError(f"{cfile}, row {i + 2}: condition {cid!r} sets "
                                     f"{tid!r} twice.")
                changes[cid][tid] = r["targetValue"]
        # experiments -> periods
        periods: dict[str, list[tuple[float, list[str]]]] = {}
        if edf is not None:
            _require(edf, ("experimentId", "time"), "experiment", efile)
            for i, r in edf.iterrows():
                eid = str(r["experimentId"]).strip()
                try:
                    t = float(str(r["time"]).strip())
                except ValueError:
                    raise PetabError(f"{efile}, row {i + 2}: time {r['time']!r} of "
                                     f"experiment {eid!r} is not a number.") from None
                cids = [] if _empty(r.get("conditionId")) else [
                    c.strip() for c in str(r["conditionId"]).split(";") if c.strip()]
                for c in cids:
                    if c not in changes and cdf is None:
                        # no condition table: a condition that changes nothing (it can
                        # still select condition-specific network input arrays)
                        changes[c] = {}
                    if c not in changes:
                        raise PetabError(f"{efile}, row {i + 2}: condition {c!r} of "
                                         f"experiment {eid!r} is not in the condition "
                                         f"table {cfile or '(none given)'}.")
                plist = periods.setdefault(eid, [])
                same = [p for p in plist if p[0] == t]
                if same:
                    same[0][1].extend(cids)
                else:
                    plist.append((t, cids))
        targets: list[str] = []
        for ch in changes.values():
            for k in ch:
                if k not in targets:
                    targets.append(k)
        cond_rows = []
        self.condition_of_experiment: dict[str, tuple[str | None, str]] = {}
        self.experiment_conditions: dict[str, list[str]] = {}  # sim condition -> v2 ids

        def row(new_id, cids, where):
            values = {}
            for c in cids:
                for k, v in changes[c].items():
                    if k in values:
                        raise PetabError(f"{where}: conditions {cids} both set {k!r}.")
                    values[k] = v
            for k, v in values.items():
                try:
                    float(str(v).strip())
                except ValueError:
                    # a parameter id is accepted by the v1 machinery; formulas are not
                    if not str(v).strip().isidentifier():
                        raise PetabUnsupportedError(
                            "condition targetValue formulas",
                            f"{k!r} = {v!r} in {cfile}") from None
            cond_rows.append({"conditionId": new_id, **values})
            self.experiment_conditions[new_id] = list(cids)

        for eid, plist in periods.items():
            plist.sort(key=lambda p: p[0])
            where = f"{efile}, experiment {eid!r}"
            if plist[0][0] == -math.inf:
                if len(plist) != 2:
                    raise PetabUnsupportedError(
                        "experiments with several periods after the start", where)
                (_, pre), (t0, sim) = plist
                pre_id = f"{eid}{_PRE}"
                row(pre_id, pre, where)
            else:
                if len(plist) != 1:
                    raise PetabUnsupportedError(
                        "experiments with several periods after the start", where)
                (t0, sim), = plist
                pre_id = None
            if t0 != 0.0:
                raise PetabUnsupportedError("experiments that start at a time other than 0",
                                            f"{where} starts at {t0}")
            row(eid, sim, where)
            self.condition_of_experiment[eid] = (pre_id, eid)
        _require(mdf, ("observableId", "measurement", "time"), "measurement", mfile)
        rows = []
        for i, r in mdf.iterrows():
            eid = r.get("experimentId")
            eid = "" if _empty(eid) else str(eid).strip()
            if eid and eid not in self.condition_of_experiment:
                raise PetabError(f"{mfile}, row {i + 2}: experiment {eid!r} is not in the "
                                 f"experiment table {efile or '(none given)'}.")
            if not eid and "" not in self.condition_of_experiment:
                row(_DEFAULT, [], mfile)
                self.condition_of_experiment[""] = (None, _DEFAULT)
            pre, sim = self.condition_of_experiment[eid]
            rows.append({
                "observableId": str(r["observableId"]).strip(),
                "preequilibrationConditionId": pre, "simulationConditionId": sim,
                "measurement": r["measurement"], "time": r["time"],
                "observableParameters": r.get("observableParameters"),
                "noiseParameters": r.get("noiseParameters"),
            })
        self.measurement_df = pd.DataFrame(rows)
        for c in ("measurement", "time"):
            try:
                self.measurement_df[c] = self.measurement_df[c].astype(float)
            except ValueError:
                bad = next(k for k, v in enumerate(self.measurement_df[c])
                           if not _is_float(v))
                raise PetabError(f"{mfile}, row {bad + 2}, column {c!r}: "
                                 f"{self.measurement_df[c][bad]!r} is not a number.") from None
        if self.measurement_df["preequilibrationConditionId"].isna().all():
            self.measurement_df = self.measurement_df.drop(
                columns=["preequilibrationConditionId"])
        self.condition_df = pd.DataFrame(cond_rows, columns=["conditionId", *targets])
        self.targets = tuple(targets)


def _is_float(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def is_v2(spec: dict) -> bool:
    """Whether a PEtab YAML dict declares format version 2."""
    return str(spec.get("format_version", "")).split(".")[0] == "2"


