"""Test configuration: float64, strict promotion, shared helpers."""

import gc
import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The suite is dominated by XLA compiles of small programs, most run once: LLVM at
# optimisation level 0 compiles them about a quarter faster, and IEEE semantics are the
# same (no fast math at any level). Set here, before jax is imported, so the worker
# processes and the subprocesses that tests start inherit it. Benchmarks, examples run
# by hand and users keep XLA's defaults; an XLA_FLAGS that names the option wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import jaxcell  # noqa: E402,F401  (import enables x64 as well)


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drop JAX's compiled programs after each test module: a worker runs hundreds of
    modules, and keeping every executable alive lets its memory grow for nothing (tests
    share compiled functions within a module, not across modules)."""
    yield
    jax.clear_caches()
    gc.collect()
