"""PEtab SciML test suite, ``ml_model_import`` cases, run against ``jaxcell.neural``.

One case directory holds a network YAML (``net_file`` in ``solutions.yaml``), three
parameter sets (``net_ps_i.hdf5``; absent for networks without arrays), three inputs
(``net_input_i.hdf5``, or ``net_input_i_arg<j>.hdf5`` for networks with several inputs)
and three reference outputs (``net_output_i.hdf5``). ``dropout: N`` asks for the mean
over ``N`` random forward passes.

The pass rule: ``|out - ref| <= atol + rtol |ref|`` elementwise, with the tolerances of
``solutions.yaml`` if it gives any, else ``atol = rtol = 1e-5`` (the references are
float32 outputs of Lux.jl). Dropout cases compare a Monte Carlo mean with another
(50,000 passes in Lux.jl), which agree only to the sampling error; their tolerance is the
``atol`` the suite's own generator checks PyTorch with (``test_nn(..., atol=...)`` in
``create_testdata/net.py``; 1e-2 or 2e-2), with ``rtol = 0``.

``tests/test_petab_sciml_networks.py`` imports this module; a suite runner calls
:func:`run_ml_model_case` per case.

References:
    PEtab SciML test suite, https://github.com/PEtab-dev/petab_sciml_testsuite (MIT).
"""

from __future__ import annotations

import dataclasses
import re
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: tolerance of deterministic cases when ``solutions.yaml`` gives none
DEFAULT_TOL = 1e-5
#: PyTorch check of the generator (``test_nn``) without an explicit ``atol``
_GENERATOR_DEFAULT_ATOL = 1e-3
_ATOL = re.compile(r"test_nn\([^)]*atol\s*=\s*([0-9.eE+-]+)")


@dataclasses.dataclass(frozen=True)
class MLCase:
    """One ``ml_model_import`` case, read from its directory."""

    case_dir: Path
    net_file: Path
    #: per triple: (parameter file or None, input files, output file)
    triples: tuple[tuple[Path | None, tuple[Path, ...], Path], ...]
    dropout: int | None
    atol: float
    rtol: float


def read_case(case_dir: Path) -> MLCase:
    """Parse ``solutions.yaml`` and resolve every file of a case."""
    case_dir = Path(case_dir)
    sol = yaml.safe_load((case_dir / "solutions.yaml").read_text())
    ps = sol.get("net_ps")
    outputs = sol["net_output"]
    n_args = 0
    while f"net_input_arg{n_args}" in sol:
        n_args += 1
    triples = []
    for i, out in enumerate(outputs):
        if n_args:
            inputs = tuple(case_dir / sol[f"net_input_arg{j}"][i] for j in range(n_args))
        else:
            inputs = (case_dir / sol["net_input"][i],)
        triples.append((case_dir / ps[i] if ps else None, inputs, case_dir / out))
    dropout = sol.get("dropout")
    atol = float(sol.get("atol", sol.get("tol", DEFAULT_TOL)))
    rtol = float(sol.get("rtol", sol.get("tol", DEFAULT_TOL)))
    if dropout and not any(k in sol for k in ("atol", "tol")):
        script = case_dir / "create_testdata" / "net.py"
        match = _ATOL.search(script.read_text()) if script.exists() else None
        atol = float(match.group(1)) if match else _GENERATOR_DEFAULT_ATOL
        rtol = 0.0
    return MLCase(
        case_dir,
        case_dir / sol.get("net_file", "net.yaml"),
        tuple(triples),
        int(dropout) if dropout else None,
        atol,
        rtol,
    )


def _forward_fns():
    import equinox as eqx
    import jax

    @eqx.filter_jit
    def forward(net, *inputs):
        return net(*inputs)

    @eqx.filter_jit
    def dropout_mean(net, keys, *inputs):
        return jax.vmap(lambda k: net(*inputs, key=k))(keys).mean(axis=0)

    return forward, dropout_mean


_FNS: list = []


def case_outputs(case: MLCase, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(jaxcell output, reference output) for each triple of a case.

    Dropout cases average ``case.dropout`` passes with keys split from
    ``jax.random.key(seed + triple index)``. Raises what :func:`load_network` raises.
    """
    import jax

    from jaxcell.neural import (
        load_network,
        read_hdf5_arrays,
        read_network_arrays,
        with_network_arrays,
    )

    if not _FNS:
        _FNS.extend(_forward_fns())
    forward, dropout_mean = _FNS
    net = load_network(case.net_file)
    results = []
    for index, (ps, input_files, output_file) in enumerate(case.triples):
        net_i = with_network_arrays(net, read_network_arrays(ps, net.id)) if ps else net
        # each input file holds one array under inputs/<id>/data (the suite names it
        # input0 even for the second argument of a two-input network)
        inputs = []
        for path in input_files:
            (value,) = read_hdf5_arrays(path, "inputs").values()
            inputs.append(value)
        (ref,) = read_hdf5_arrays(output_file, "outputs").values()
        if case.dropout:
            keys = jax.random.split(jax.random.key(seed + index), case.dropout)
            out = dropout_mean(net_i, keys, *inputs)
        else:
            out = forward(net_i, *inputs)
        results.append((np.asarray(out), np.asarray(ref)))
    return results


def run_ml_model_case(case_dir: Path) -> dict[str, Any]:
    """Run one ``ml_model_import`` case.

    Returns:
        ``{"status": "pass" | "fail" | "unsupported" | "error", "out_error": max abs
        error over the three triples (NaN when nothing ran), "feature": the unsupported
        feature or None, "message": why it did not pass, or None}``.
    """
    from jaxcell.neural import NetworkFormatError

    try:
        case = read_case(case_dir)
        pairs = case_outputs(case)
    except NetworkFormatError as err:
        message = str(err)
        match = re.search(r"(layer type|op|target) '([^']+)'", message)
        feature = match.group(2) if match else message.split(": ")[-1][:80]
        return {
            "status": "unsupported",
            "out_error": float("nan"),
            "feature": feature,
            "message": message,
        }
    except Exception as err:  # a crash is a result of the suite, not of the runner
        return {
            "status": "error",
            "out_error": float("nan"),
            "feature": None,
            "message": f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}",
        }
    worst = 0.0
    problems = []
    for index, (out, ref) in enumerate(pairs):
        if out.shape != ref.shape:
            problems.append(f"triple {index + 1}: shape {out.shape} != reference {ref.shape}")
            worst = float("inf")
            continue
        err = np.abs(out - ref)
        worst = max(worst, float(np.max(err, initial=0.0)))
        if not np.all(err <= case.atol + case.rtol * np.abs(ref)):
            problems.append(
                f"triple {index + 1}: max abs error {np.max(err):.3g} "
                f"(atol {case.atol:g}, rtol {case.rtol:g})"
            )
    return {
        "status": "fail" if problems else "pass",
        "out_error": worst,
        "feature": None,
        "message": "; ".join(problems) or None,
    }
