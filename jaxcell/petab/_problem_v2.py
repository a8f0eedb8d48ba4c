"""PEtab v2 problems, with or without the SciML extension (neural networks).

:class:`PetabV2Problem` reads the v2 tables (``_v2.py``) into the v1 shape and reuses
:class:`PetabProblem`'s compiled likelihood; with the ``sciml`` extension
(``_sciml.py``) its search vector is the mechanistic parameters followed by the
estimated network weights, and its simulation evaluates networks before the solve, in
the right-hand side and in observables.
"""

from __future__ import annotations

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._safe_io import load_yaml
from ._math import PetabError, PetabUnsupportedError, compile_formula, parse_formula
from ._problem import PetabProblem
from ._sciml import NetCall, SciML, _output_offsets, sympy_to_sbml
from ._tables import _columns, _getter, _load_model
from ._v2 import V2Tables


class PetabV2Problem(PetabProblem):
    """A PEtab v2 problem (``format_version: 2.x``) read by :func:`load_petab`;
    the same interface as :class:`PetabProblem`.

    With the PEtab SciML extension, ``x`` (of :meth:`nllh`) is the estimated
    mechanistic parameters (:attr:`mechanistic_ids`, on their scale) followed by the
    estimated network arrays raveled in PyTorch layout (:attr:`weight_names`);
    :meth:`networks` gives the networks at ``x`` and :meth:`split` the two parts.

    Attributes:
        sciml: the networks and their hybridization (``None`` without the extension).
        mechanistic_ids: the estimated parameters that are not network arrays.
    """

    def _read(self):
        path = self.yaml_path
        if not path.is_file():
            raise PetabError(f"PEtab problem file {str(path)!r} does not exist.")
        spec = load_yaml(path, PetabError, "PEtab problem file")
        if not isinstance(spec, dict):
            raise PetabError(f"{path}: not a PEtab YAML file (no mapping at the top).")
        self._v2 = tables = V2Tables(path, spec)
        exts = spec.get("extensions") or {}
        if not isinstance(exts, dict):
            raise PetabError(f"{path}: 'extensions' must be a mapping, got {exts!r}.")
        exts = dict(exts)
        sciml = exts.pop("sciml", None)
        required = [k for k, v in exts.items() if isinstance(v, dict) and v.get("required")]
        if required:
            raise PetabUnsupportedError(f"PEtab extensions {required}", str(path))
        self._files = tables.files
        cdf = tables.condition_df.copy()
        model = _load_model(tables.model_path, cdf, ", ".join(tables.files["condition"]))
        self.sciml = None
        if sciml is not None:
            self.sciml = SciML(path, spec, tables, model)
            for target in self.sciml.pre_targets:  # set per condition: a condition column
                if target not in cdf.columns:
                    cdf[target] = np.nan
        self._petab = types.SimpleNamespace(
            parameter_df=tables.parameter_df, measurement_df=tables.measurement_df,
            observable_df=tables.observable_df, condition_df=cdf)
        self._cols = {
            "measurement": _columns(tables.measurement_df, "measurement",
                                    tables.files["measurement"]),
            "observable": _columns(tables.observable_df, "observable",
                                   tables.files["observable"]),
            "parameter": _columns(tables.parameter_df, "parameter",
                                  tables.files["parameter"]),
            "condition": set(cdf.columns)}
        self.model = model
        if self.sciml is not None:
            self._attach_rhs_networks()

    # -- SciML: networks in the right-hand side ------------------------------------------
    def _attach_rhs_networks(self):
        sc = self.sciml
        self._rhs_nets = tuple(sorted({nid for nid, _, _ in sc.rhs_targets.values()}))
        if not self._rhs_nets:
            self._offsets = {nid: self._offsets_of(nid) for nid in sc.networks}
            return
        rules = {}
        for target, (nid, out, j) in sc.rhs_targets.items():
            k = self._rhs_nets.index(nid)
            sizes, slots, _ = sc.layouts[nid]
            inputs = []
            for a, i in slots:
                kind, expr = sc.input_sources[nid][(a, i)]
                inputs.append(sympy_to_sbml(expr, f"hybridization input of {nid!r}"))
            off = self._offsets_of(nid)[out] + j
            rules[target] = ("op", "extern", ("num", float(k)), ("num", float(off)),
                             *inputs)
        externals = tuple(self._netcall(nid, sc.networks[nid], None)
                          for nid in self._rhs_nets)
        self.model = self.model.with_external_rules(rules, externals)
        self._offsets = {nid: self._offsets_of(nid) for nid in sc.networks}

    def _netcall(self, nid, net, fixed):
        sizes, slots, array_args = self.sciml.layouts[nid]
        if fixed is None:
            fixed = tuple(None if a not in array_args else
                          jnp.asarray(self._first_array(nid, a)) for a in range(len(sizes)))
        return NetCall(net, fixed, sizes, slots)

    def _first_array(self, nid, a):
        _, _, array_args = self.sciml.layouts[nid]
        table = self.sciml.input_arrays.get(array_args[a]) or {}
        if not table:
            raise PetabError(f"{self.yaml_path}: network input {array_args[a]!r} is "
                             "'array' but no array file has inputs for it.")
        return np.asarray(next(iter(table.values())), float)

    def _offsets_of(self, nid):
        sizes, _, array_args = self.sciml.layouts[nid]
        fixed = [None if a not in array_args else self._first_array(nid, a)
                 for a in range(len(sizes))]
        return _output_offsets(self.sciml.networks[nid], sizes, fixed)

    # -- parameters -------------------------------------------------------------------------
    def _build_parameters(self):
        super()._build_parameters()
        self.mechanistic_ids = self.parameter_ids
        self._n_mech = len(self.parameter_ids)
        if self.sciml is None:
            self.weight_names = ()
            return
        sc = self.sciml
        self.weight_names = tuple(sc.coordinate_names())
        w0 = sc.nominal_weights()
        self.parameter_ids = self.mechanistic_ids + self.weight_names
        self.parameter_scales = self.parameter_scales + ("lin",) * len(w0)
        self.x_nominal = jnp.concatenate([self.x_nominal, jnp.asarray(w0, float)])
        # weights have no PEtab bounds (-inf, inf): random starts stay near the nominal
        # weights (±1), and the bounds a bounded optimiser sees are wide
        self.lower_bounds = np.concatenate([self.lower_bounds, w0 - 1.0])
        self.upper_bounds = np.concatenate([self.upper_bounds, w0 + 1.0])

    def split(self, x: ArrayLike) -> tuple[Array, Array]:
        """``(mechanistic x, network weights)`` of a search vector."""
        x = jnp.asarray(x, float)
        return x[:self._n_mech], x[self._n_mech:]

    def networks(self, x: ArrayLike) -> dict:
        """``{network id: jaxcell.neural.Network}`` with the weights of ``x``."""
        if self.sciml is None:
            return {}
        return self.sciml.networks_at(self.split(x)[1])

    def _p_all(self, x) -> Array:
        return super()._p_all(jnp.asarray(x, float)[:self._n_mech])

    # -- conditions: networks before the simulation ----------------------------------------
    def _build_conditions(self):
        super()._build_conditions()
        if self.sciml is None:
            return
        if self._pre_ids:
            raise PetabUnsupportedError("pre-equilibration in a problem with neural "
                                        "networks", str(self.yaml_path))
        sc = self.sciml
        exp_conds = self._v2.experiment_conditions
        # per simulated condition, the fixed array arguments of every network
        self._fixed = {}
        for nid in sc.networks:
            sizes, _, array_args = sc.layouts[nid]
            per_arg = []
            for a in range(len(sizes)):
                if a not in array_args:
                    per_arg.append(None)
                    continue
                per_arg.append(np.stack([
                    sc.input_array(array_args[a], exp_conds.get(sim, []),
                                   f"condition {sim!r}")
                    for _, sim in self.conditions]))
            self._fixed[nid] = tuple(per_arg)
        # networks before the simulation: inputs are formulas of PEtab parameters
        self._pre = []
        for target, (nid, out, j) in sc.pre_targets.items():
            _, slots, _ = sc.layouts[nid]
            fns = []
            for a, i in slots:
                _, expr = sc.input_sources[nid][(a, i)]
                resolve = {k: _getter("p", ix) for k, ix in self._pindex.items()}
                fns.append(compile_formula(expr, resolve,
                                           f"hybridization input {a}[{i}] of {nid!r}"))
            col = self._keys.index(target)
            self._pre.append((nid, tuple(fns), self._offsets[nid][out] + j, col))

    def _condition_nets(self, nets, ci):
        """NetCalls of every network with the array inputs of condition ``ci``."""
        out = {}
        for nid, net in nets.items():
            fixed = tuple(None if f is None else jnp.asarray(f)[ci]
                          for f in self._fixed[nid])
            out[nid] = self._netcall(nid, net, fixed)
        return out

    # -- simulation and likelihood ------------------------------------------------------------
    def _curve_context(self, x):
        if self.sciml is None:
            return super()._curve_context(x)
        nets = self.networks(x)
        return lambda ci: {"nets": self._condition_nets(nets, ci)}

    def _simulate_impl(self, x, ts=None):
        if self.sciml is None:
            return super()._simulate_impl(x, ts)
        ts = jnp.asarray(self._ts if ts is None else ts)
        p = self._p_all(x)
        nets = self.networks(x)
        n = len(self.conditions)
        sim_vals = self._values(self._sim_src, self._sim_const, p)

        def one(ci, values, ts, mask):
            calls = self._condition_nets(nets, ci)
            for nid, fns, off, col in self._pre:
                xin = jnp.stack([f({"p": p}) for f in fns]) if fns else jnp.zeros((0,))
                values = values.at[col].set(calls[nid](xin)[off])
            m = self._model_with(values)
            if self._rhs_nets:
                m = eqx.tree_at(lambda s: s.externals, m,
                                tuple(calls[nid] for nid in self._rhs_nets))
            return self._run(m, ts, jnp.zeros(len(m.state_ids)), mask)

        return jax.lax.map(lambda a: one(*a),
                           (jnp.arange(n), sim_vals, ts, jnp.asarray(self._mask)))

    def _formula(self, text, oid, kind, outputs, where):
        """v2 placeholders (named in the observable table) and network outputs in
        observable formulas."""
        expr = parse_formula(text, where)
        names = self._v2.placeholders.get((oid, kind), [])
        resolve = {}
        for k, name in enumerate(names):
            resolve[name] = _getter("ph", k)
        for s in expr.free_symbols:
            name = str(s)
            if name in resolve:
                continue
            if name in outputs:
                resolve[name] = _getter("out", outputs[name])
            elif name in self._pindex:
                resolve[name] = _getter("p", self._pindex[name])
            elif name in ("time", "t"):
                resolve[name] = lambda env: env["t"]
            elif name in self._v2.mapping and self._v2.mapping[name] in outputs:
                resolve[name] = _getter("out", outputs[self._v2.mapping[name]])
            elif self.sciml is not None and name in self.sciml.outputs:
                resolve[name] = self._observable_net(name, outputs, where)
        return compile_formula(expr, resolve, where), len(names)

    def _observable_net(self, name, outputs, where):
        sc = self.sciml
        nid, out, j = sc.outputs[name]
        _, slots, _ = sc.layouts[nid]
        fns = []
        for a, i in slots:
            _, expr = sc.input_sources[nid][(a, i)]
            resolve = {}
            for s in expr.free_symbols:
                nm = str(s)
                if nm in outputs:
                    resolve[nm] = _getter("out", outputs[nm])
                elif nm in self._pindex:
                    resolve[nm] = _getter("p", self._pindex[nm])
                elif nm in ("time", "t"):
                    resolve[nm] = lambda env: env["t"]
            fns.append(compile_formula(expr, resolve, f"{where}: input {a}[{i}] of {nid!r}"))
        fns = tuple(fns)

        def value(env):
            xin = jnp.stack([f(env) for f in fns]) if fns else jnp.zeros((0,))
            off = self._offsets[nid][out] + j
            return env["nets"][nid](xin)[off]

        return value

    def _predictions(self, x):
        if self.sciml is None:
            return super()._predictions(x)
        p = self._p_all(x)
        nets = self.networks(x)
        outs, status = self._simulate_impl(x)
        groups = []
        for o in self._observables:
            out = outs[o["cond"], o["tix"]]
            ph_o = self._values(o["osrc"], o["oconst"], p)
            ph_n = self._values(o["nsrc"], o["nconst"], p)

            def one(out, ph_o, ph_n, t, ci, o=o):
                calls = self._condition_nets(nets, ci)
                env = {"out": out, "p": p, "t": t, "nets": calls}
                h = o["obs"]({**env, "ph": ph_o})
                s = o["noise"]({**env, "ph": ph_n})
                return h, s

            h, sigma = jax.vmap(one)(out, ph_o, ph_n, jnp.asarray(o["t"]),
                                     jnp.asarray(o["cond"]))
            groups.append((o, jnp.asarray(o["y"]), h, sigma))
        return groups, status

    def neg_log_prior(self, x: ArrayLike) -> Array:
        """Negative log prior of the mechanistic parameters (as :class:`PetabProblem`)
        plus that of the network arrays with a ``priorDistribution``."""
        xm, w = self.split(x)
        total = super().neg_log_prior(xm)
        if self.sciml is not None:
            total = total + self.sciml.neg_log_prior(w)
        return total

    @property
    def has_priors(self) -> bool:
        net = self.sciml is not None and any(
            s[4][0] > 0 for specs in self.sciml.array_specs.values() for s in specs if s[3])
        return super().has_priors or net

    def simulate(self, x: ArrayLike):
        return super().simulate(x)

    def __repr__(self) -> str:
        n_meas = sum(len(o["y"]) for o in self._observables)
        nets = "" if self.sciml is None else (
            f", networks {list(self.sciml.networks)} ({len(self.weight_names)} weights)")
        return (f"PetabV2Problem({self.yaml_path.name!r}, {self._n_mech} estimated "
                f"parameters{nets}, {len(self.conditions)} conditions, {n_meas} "
                "measurements)")


