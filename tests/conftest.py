"""Test configuration: float64, strict promotion, shared helpers."""

import gc
import os

os.environ.setdefault("MPLBACKEND", "Agg")

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
