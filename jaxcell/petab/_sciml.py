"""The PEtab SciML extension: neural networks in a PEtab v2 problem.

A network (PEtab SciML YAML, :func:`jaxcell.neural.load_network`) enters a problem in
three ways, all read from the hybridization and mapping tables:

* **before the simulation** (``pre_initialization: true``): its outputs set model
  parameters or initial values, once per condition, from inputs that are PEtab
  parameters or array files;
* **in the right-hand side**: its outputs replace model parameters by functions of the
  state (an assignment rule whose expression calls the network: an ``extern`` node of
  the SBML interpreter), evaluated at every step of the one engine;
* **in an observable**: a formula names a network output, whose inputs are formulas of
  the model outputs and parameters.

Network parameters are arrays (``nominalValue = array`` rows, values from the HDF5
array files, PyTorch layout); rows that map to a layer or one array of a network refine
the whole-network row (frozen layers, layer priors, fixed values). The estimated arrays
are raveled into the search vector after the mechanistic parameters, so every
optimiser of :func:`jaxcell.inference.fit` sees one flat vector.
"""

from __future__ import annotations

import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from .._safe_io import check_size, inside, reraise_as
from ._math import PetabError, PetabUnsupportedError, parse_formula

_INPUT = re.compile(r"^(\w+)\.inputs\[(\d+)\](?:\[(\d+)\])?$")
_OUTPUT = re.compile(r"^(\w+)\.outputs\[(\d+)\](?:\[(\d+)\])?$")
_PARAMS = re.compile(r"^(\w+)\.parameters(?:\[(\w+)\](?:\.(\w+))?)?$")


class NetCall(eqx.Module):
    """A network as a function of a flat vector of scalar inputs: builds the
    network's input arguments (vectors of scalars, or fixed arrays from array files),
    calls it and returns its outputs raveled (output ``i`` after output ``i-1``)."""

    net: eqx.Module
    fixed: tuple  # one array (or None) per input argument
    sizes: tuple[int, ...] = eqx.field(static=True)  # scalar slots per argument
    slots: tuple[tuple[int, int], ...] = eqx.field(static=True)  # (arg, index) per input

    def __call__(self, x):
        args = []
        pos = {s: k for k, s in enumerate(self.slots)}
        for a, (size, fixed) in enumerate(zip(self.sizes, self.fixed)):
            if fixed is not None:
                args.append(fixed)
                continue
            vals = [x[pos[(a, i)]] if (a, i) in pos else jnp.zeros((), x.dtype)
                    for i in range(size)]
            args.append(jnp.stack(vals))
        out = self.net(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return jnp.concatenate([jnp.ravel(o) for o in outs])


def _output_offsets(net, sizes, fixed) -> list[int]:
    """Start of each output in the raveled outputs (by evaluating shapes)."""
    args = []
    for size, f in zip(sizes, fixed):
        args.append(jax.ShapeDtypeStruct(np.shape(f), jnp.float64) if f is not None
                    else jax.ShapeDtypeStruct((size,), jnp.float64))
    out = jax.eval_shape(lambda *a: net(*a), *args)
    outs = out if isinstance(out, tuple) else (out,)
    offsets, k = [], 0
    for o in outs:
        offsets.append(k)
        k += int(np.prod(o.shape))
    return offsets


def sympy_to_sbml(expr: sp.Expr, where: str) -> tuple:
    """A PEtab formula (sympy) as an SBML expression tree (``jaxcell.sbml._ast``)."""
    if expr.is_Symbol:
        return ("name", str(expr))
    if expr.is_Number or isinstance(expr, sp.NumberSymbol):
        return ("num", float(expr))
    ops = {sp.Add: "plus", sp.Mul: "times", sp.Pow: "power", sp.exp: "exp",
           sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.Abs: "abs", sp.tanh: "tanh"}
    if isinstance(expr, sp.log) and len(expr.args) == 1:
        return ("op", "ln", sympy_to_sbml(expr.args[0], where))
    op = ops.get(type(expr))
    if op is None:
        raise PetabUnsupportedError(f"function {type(expr).__name__} in a network input "
                                    "of the right-hand side", where)
    return ("op", op, *(sympy_to_sbml(a, where) for a in expr.args))


class SciML:
    """The networks of a problem and how they are hybridised (load-time analysis)."""

    def __init__(self, yaml_path: Path, spec: dict, tables, model):
        from ..neural import load_network, read_hdf5_arrays, read_network_arrays

        ext = (spec.get("extensions") or {}).get("sciml") or {}
        self.where = str(yaml_path)
        nets = ext.get("neural_networks") or {}
        if not nets:
            raise PetabError(f"{yaml_path}: the sciml extension lists no neural_networks.")
        self.net_ids = tuple(nets)
        self.networks = {}
        self.pre_init = {}
        if not isinstance(nets, dict):
            raise PetabError(f"{yaml_path}: neural_networks must be a mapping of network "
                             f"ids, got {nets!r}.")
        for nid, info in nets.items():
            if not isinstance(info or {}, dict):
                raise PetabError(f"{yaml_path}: network {nid!r} must be a mapping with "
                                 f"'location' and 'format', got {info!r}.")
            fmt = str((info or {}).get("format", "YAML")).upper()
            if fmt != "YAML":
                raise PetabUnsupportedError(f"neural network format {fmt!r}",
                                            f"network {nid!r}")
            path = inside(yaml_path, info.get("location", ""), PetabError,
                          f"file of network {nid!r}")
            if not path.is_file():
                raise PetabError(f"{yaml_path}: file {str(path)!r} of network {nid!r} does "
                                 "not exist.")
            self.networks[nid] = load_network(path, net_id=nid)
            self.pre_init[nid] = bool(info.get("pre_initialization", False))
        # array files: network parameters and input arrays
        self.file_arrays: dict[str, dict] = {}
        self.input_arrays: dict[str, dict[str, np.ndarray]] = {}
        for f in _file_list(ext, "array_files", yaml_path):
            path = inside(yaml_path, f, PetabError, "array file")
            if not path.is_file():
                raise PetabError(f"{yaml_path}: array file {str(path)!r} does not exist.")
            import h5py

            with reraise_as(PetabError, str(path), "array file"):
                with h5py.File(path, "r") as h:
                    groups = set(h.keys())
                    params = h.get("parameters", getlink=True)
                    params = h["parameters"] if isinstance(params, h5py.HardLink) else None
                    present = {nid for nid in self.net_ids
                               if isinstance(params, h5py.Group) and nid in params}
                for nid in self.net_ids:
                    if nid in present:
                        self.file_arrays[nid] = read_network_arrays(path, nid)
                if "inputs" in groups:
                    for key, val in _flatten_inputs(read_hdf5_arrays(path, "inputs")).items():
                        self.input_arrays.setdefault(key[0], {})[key[1]] = val
        self._mapping(tables)
        self._hybridization(tables, yaml_path, model)
        self._parameters(tables)

    # -- mapping ------------------------------------------------------------------------------
    def _mapping(self, tables):
        self.inputs, self.outputs, self.params = {}, {}, {}
        for pid, mid in tables.mapping.items():
            if m := _INPUT.match(mid):
                self._net(m.group(1), mid)
                self.inputs[pid] = (m.group(1), int(m.group(2)),
                                    None if m.group(3) is None else int(m.group(3)))
            elif m := _OUTPUT.match(mid):
                self._net(m.group(1), mid)
                self.outputs[pid] = (m.group(1), int(m.group(2)),
                                     0 if m.group(3) is None else int(m.group(3)))
            elif m := _PARAMS.match(mid):
                self._net(m.group(1), mid)
                self.params[pid] = (m.group(1), m.group(2), m.group(3))
            elif mid.split(".")[0] in self.networks:
                raise PetabUnsupportedError("mapping of a network entity",
                                            f"{pid!r} -> {mid!r}")

    def _net(self, nid, mid):
        if nid not in self.networks:
            raise PetabError(f"{self.where}: mapping entry {mid!r} names the network "
                             f"{nid!r}, which the problem does not list "
                             f"({list(self.networks)}).")

    # -- hybridization ------------------------------------------------------------------------
    def _hybridization(self, tables, yaml_path, model):
        import pandas as pd

        ext = (tables.spec.get("extensions") or {}).get("sciml") or {}
        rows = []
        for f in _file_list(ext, "hybridization_files", yaml_path):
            path = inside(yaml_path, f, PetabError, "hybridization file")
            check_size(path, PetabError, "hybridization table")
            with reraise_as(PetabError, str(path), "hybridization table"):
                df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            if "targetId" not in df.columns or "targetValue" not in df.columns:
                raise PetabError(f"{path}: a hybridization table needs the columns "
                                 "targetId and targetValue.")
            rows += [(str(r["targetId"]).strip(), str(r["targetValue"]).strip(), str(f))
                     for _, r in df.iterrows()]
        # input sources: net -> {(arg, index or None): ("expr", sympy) | ("array", pid)}
        self.input_sources: dict[str, dict] = {n: {} for n in self.networks}
        self.assigned: dict[str, tuple[str, int, int]] = {}  # model id -> net output
        params = model.parameters()
        for target, value, fname in rows:
            where = f"{fname}, targetId {target!r}"
            if target in self.inputs:
                nid, arg, idx = self.inputs[target]
                if value == "array":
                    self.input_sources[nid][(arg, idx)] = ("array", target)
                else:
                    self.input_sources[nid][(arg, idx)] = ("expr", parse_formula(value, where))
            elif value in self.outputs:
                if target not in params:
                    raise PetabError(f"{where}: a network output can set model parameters "
                                     f"and initial values; {target!r} is neither.")
                self.assigned[target] = self.outputs[value]
            else:
                raise PetabUnsupportedError(
                    "hybridization of a model entity with an expression (not a network "
                    "output)", f"{target!r} = {value!r} in {fname}")
        # inputs that are PEtab parameters themselves (mapped, not hybridized)
        pids = {r["parameterId"] for r in tables._all_parameter_rows}
        for pid, (nid, arg, idx) in self.inputs.items():
            if (arg, idx) not in self.input_sources[nid] and pid in pids:
                self.input_sources[nid][(arg, idx)] = ("expr", sp.Symbol(pid))
        for nid, srcs in self.input_sources.items():
            args = {a for a, _ in srcs}
            missing = [a for a in range(max(args, default=-1) + 1) if a not in args]
            if missing:
                raise PetabError(f"{self.where}: network {nid!r} has no value for its input "
                                 f"argument(s) {missing} in the hybridization table.")
        self.rhs_targets = {k: v for k, v in self.assigned.items() if not self.pre_init[v[0]]}
        self.pre_targets = {k: v for k, v in self.assigned.items() if self.pre_init[v[0]]}
        self.layouts = {nid: self._layout(nid) for nid in self.networks}

    def _layout(self, nid):
        """``(sizes, slots, array_args)`` of a network's inputs."""
        srcs = self.input_sources[nid]
        n_args = max((a for a, _ in srcs), default=-1) + 1
        sizes, array_args = [], {}
        for a in range(n_args):
            keys = [(aa, i) for aa, i in srcs if aa == a]
            if any(i is None for _, i in keys):
                kind, pid = srcs[(a, None)]
                if kind != "array":
                    raise PetabUnsupportedError(
                        "a whole network input argument set by a formula",
                        f"network {nid!r}, argument {a}")
                array_args[a] = pid
                sizes.append(0)
            else:
                sizes.append(max(i for _, i in keys) + 1)
        slots = tuple(sorted(k for k in srcs if k[1] is not None))
        for a, i in slots:
            if srcs[(a, i)][0] == "array":
                raise PetabUnsupportedError("one element of a network input from an array "
                                            "file", f"network {nid!r}, argument {a}[{i}]")
        return tuple(sizes), slots, array_args

    def input_array(self, pid, condition_ids, where) -> np.ndarray:
        """The value of an array input for a simulation condition (its v2 condition ids),
        or the one for all conditions (key ``0``)."""
        table = self.input_arrays.get(pid)
        if table is None:
            raise PetabError(f"{self.where}: network input {pid!r} is 'array' but no array "
                             "file has inputs for it.")
        for c in condition_ids:
            if c in table:
                return np.asarray(table[c], float)
        if "0" in table:
            return np.asarray(table["0"], float)
        raise PetabError(f"{self.where}: array input {pid!r} has no value for {where} "
                         f"(has {sorted(table)}).")

    # -- network parameters -------------------------------------------------------------------
    def _parameters(self, tables):
        from ..neural import network_arrays
        from ._priors import parse_prior

        rows = {r["parameterId"]: r for r in tables.array_parameters}
        # numeric rows that map to network parameters (fixed values, e.g. 0 for a layer)
        for r in tables._all_parameter_rows:
            if r["parameterId"] in self.params and r["parameterId"] not in rows:
                rows[r["parameterId"]] = r
        for pid in rows:
            if pid not in self.params:
                raise PetabError(f"{self.where}: parameter table {tables.files['parameter'][0]}"
                                 f": {pid!r} has an array nominal value but "
                                 "the mapping table does not map it to network parameters.")
        self.array_specs = {}  # nid -> [(name, shape, nominal array, estimate, prior)]
        for nid, net in self.networks.items():
            arrays = network_arrays(net)
            nominal_file = self.file_arrays.get(nid, {})
            specs = []
            for name, a in arrays.items():
                layer, _, leaf = name.partition(".")
                best, rank = None, -1
                for pid, (n2, lay, arr) in self.params.items():
                    if n2 != nid or pid not in rows:
                        continue
                    if lay is None:
                        r_ = 0
                    elif lay == layer and arr is None:
                        r_ = 1
                    elif lay == layer and arr == leaf:
                        r_ = 2
                    else:
                        continue
                    if r_ > rank:
                        best, rank = pid, r_
                shape = tuple(np.shape(a))
                if best is None:
                    raise PetabError(f"{self.where}: network {nid!r} array {name!r} has no "
                                     "row in the parameter table (map it, e.g. "
                                     f"'{nid}_ps' -> '{nid}.parameters').")
                row = rows[best]
                nominal = str(row["nominalValue"]).strip()
                if nominal == "array":
                    if name not in nominal_file:
                        raise PetabError(f"{self.where}: no array file holds "
                                         f"parameters/{nid}/{name.replace('.', '/')} "
                                         f"(nominal value of {best!r}).")
                    value = np.asarray(nominal_file[name], float)
                    if value.shape != shape:
                        raise PetabError(f"{self.where}: parameters/{nid}/{name} has shape "
                                         f"{value.shape}; network {nid!r} expects {shape}.")
                else:
                    value = np.full(shape, float(nominal))
                prior = parse_prior(row.get("objectivePriorType"),
                                    row.get("objectivePriorParameters"),
                                    f"parameter table: {best!r}")
                specs.append((name, shape, value, bool(int(row["estimate"])), prior, best))
            self.array_specs[nid] = specs
        self.n_weights = sum(int(np.prod(s[1])) for specs in self.array_specs.values()
                             for s in specs if s[3])

    def coordinate_names(self) -> list[str]:
        names = []
        for nid, specs in self.array_specs.items():
            for name, shape, _, est, _, _ in specs:
                if est:
                    names += [f"{nid}.{name}[{i}]" for i in range(int(np.prod(shape)))]
        return names

    def nominal_weights(self) -> np.ndarray:
        parts = [np.ravel(v) for specs in self.array_specs.values()
                 for _, _, v, est, _, _ in specs if est]
        return np.concatenate(parts) if parts else np.zeros(0)

    def networks_at(self, w) -> dict:
        """The networks with their estimated arrays from the flat vector ``w``."""
        from ..neural import with_network_arrays

        out, k = {}, 0
        for nid, specs in self.array_specs.items():
            arrays = {}
            for name, shape, value, est, _, _ in specs:
                if est:
                    n = int(np.prod(shape))
                    arrays[name] = jnp.reshape(w[k:k + n], shape)
                    k += n
                else:
                    arrays[name] = jnp.asarray(value)
            out[nid] = with_network_arrays(self.networks[nid], arrays)
        return out

    def neg_log_prior(self, w):
        """Negative log prior density of the estimated network arrays (linear scale)."""
        from ._priors import neg_log_prior

        total, k = jnp.zeros(()), 0
        for specs in self.array_specs.values():
            for _, shape, _, est, (code, a, b), _ in specs:
                if not est:
                    continue
                n = int(np.prod(shape))
                if code > 0:
                    seg = w[k:k + n]
                    total = total + neg_log_prior(
                        np.full(n, code), np.full(n, a), np.full(n, b), seg, seg)
                k += n
        return total


def _file_list(ext: dict, key: str, yaml_path) -> list:
    files = ext.get(key) or []
    if not isinstance(files, list):
        raise PetabError(f"{yaml_path}: {key} of the sciml extension must be a list of "
                         f"file names, got {files!r}.")
    return files


def _flatten_inputs(tree, prefix=()) -> dict[tuple[str, str], np.ndarray]:
    """``{(input id, condition key): array}`` from ``inputs/<id>/<key or data>``."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                if isinstance(vv, dict):
                    raise PetabError(f"array file: inputs/{k}/{kk} is a group; expected "
                                     "an array.")
                out[(k, "0" if kk == "data" else kk)] = np.asarray(vv)
        else:
            out[(k, "0")] = np.asarray(v)
    return out


