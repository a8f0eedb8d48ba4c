"""Test configuration: float64, strict promotion, shared helpers."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import jaxcell  # noqa: E402,F401  (import enables x64 as well)
