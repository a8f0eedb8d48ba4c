#!/usr/bin/env bash
# The GPU benchmarks in one go, on an NVIDIA machine:
#   1. tissue scaling (benchmarks/tissue_scaling.py, up to 10^6 cells);
#   2. strong scaling over the GPUs (benchmarks/scaling.py: a 10^4-member ensemble and a
#      10^5-cell sharded tissue on 1, 2, 4, ... GPUs, as many as there are);
#   3. ensembles against the CPU peers (benchmarks/ensemble.py --quick);
#   4. global sensitivity analysis (benchmarks/gsa.py --quick: 81,920 simulations).
#
#   bash benchmarks/gpu.sh            # full tissue run (more repeats), the others --quick
#   bash benchmarks/gpu.sh --quick    # fewer repeats; flags pass through to tissue_scaling.py
#
# Uses the project's virtual environment (VENV, default .venv; `make venv` makes it) and
# JAX's CUDA 12 wheels. If JAX already sees the GPU nothing is installed, so the script
# runs offline; otherwise it installs jax[cuda12] at the installed jax version (needs
# network) and stops with a message if that fails. Results:
# bench-results/*_gpu.json (OUT=... changes the tissue scaling one). scipy runs on the CPU up to
# 10^5 cells (SCIPY_MAX=... to change).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
OUT="${OUT:-bench-results/tissue_scaling_gpu.json}"
SIZES="${SIZES:-100,1000,10000,100000,1000000}"
SCIPY_MAX="${SCIPY_MAX:-100000}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu.sh: no NVIDIA GPU here (nvidia-smi is missing or finds no device)." >&2
    echo "        For the CPU benchmark run: python benchmarks/tissue_scaling.py" >&2
    exit 1
fi
if [ ! -x "$PY" ]; then
    echo "gpu.sh: no virtual environment at $VENV; run 'make venv' first (or set VENV)." >&2
    exit 1
fi

has_gpu() {
    "$PY" -c 'import jax, sys; sys.exit(0 if jax.default_backend() == "gpu" else 1)' \
        >/dev/null 2>&1
}

if ! has_gpu; then
    JAX_VERSION="$("$PY" -c 'import jax; print(jax.__version__)')"
    echo "gpu.sh: JAX in $VENV does not see the GPU; installing jax[cuda12]==$JAX_VERSION ..."
    if ! "$PY" -m pip install --quiet "jax[cuda12]==$JAX_VERSION"; then
        echo "gpu.sh: could not install jax[cuda12]==$JAX_VERSION (no network?)." >&2
        echo "        On a machine with network: $PY -m pip install 'jax[cuda12]==$JAX_VERSION'" >&2
        echo "        (or copy a venv that has it), then run this script again." >&2
        exit 1
    fi
    if ! has_gpu; then
        echo "gpu.sh: jax[cuda12] is installed but JAX still runs on the CPU; check the" >&2
        echo "        driver (nvidia-smi) and the output of: $PY -c 'import jax; jax.devices()'" >&2
        exit 1
    fi
fi

echo "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"
"$PY" -c 'import jax; print("jax", jax.__version__, "devices:", jax.devices())'

# Allocate GPU memory as needed, so that device_peak_bytes is what the solve used.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# --threads default: no XLA CPU flags (jaxcell computes on the GPU); scipy gets one BLAS
# thread, as in the CPU benchmark's default.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$(dirname "$OUT")" bench-results
"$PY" benchmarks/tissue_scaling.py --sizes "$SIZES" --scipy-max "$SCIPY_MAX" \
    --threads default --json "$OUT" "$@"
NGPU="$(nvidia-smi -L | wc -l)"
DEVICES=1
for k in 2 4 8 16; do [ "$k" -le "$NGPU" ] && DEVICES="$DEVICES,$k"; done
"$PY" benchmarks/scaling.py --quick --devices "$DEVICES" --json bench-results/scaling_gpu.json
"$PY" benchmarks/ensemble.py --quick --json bench-results/ensemble_gpu.json
"$PY" benchmarks/gsa.py --quick --json bench-results/gsa_gpu.json
