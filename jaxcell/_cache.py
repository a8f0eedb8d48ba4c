"""enable_compilation_cache(): JAX's persistent compilation cache, set up for jaxcell.

Compiling a simulation takes about a second; the compiled program can be kept on disk
and reused by the next process (JAX's persistent compilation cache), as long as the
program contains no host callbacks. Equinox implements runtime checks
(``eqx.error_if``, which diffrax uses, e.g. for "maximum number of steps reached") as
host callbacks unless the environment variable ``EQX_ON_ERROR=nan`` is set *before*
equinox is imported; then failed checks give NaN instead of an exception. Together with
``simulate(..., throw=False)`` (failures reported in ``Trajectory.result``) the whole
program is cacheable.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax
from equinox import _config as _eqx_config


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Keep compiled programs on disk so later processes skip XLA compilation.

    Sets ``jax_compilation_cache_dir`` to ``path`` (default ``$JAXCELL_CACHE_DIR`` or
    ``~/.cache/jaxcell/xla``) and caches every program, however quickly it compiled.
    Measured on the Kholodenko MAPK model (2-core CPU): the first ``simulate`` of a
    fresh process took 2.1 s without the cache entry and 0.6 s with it (what is left
    is tracing, which no cache can skip).

    Only programs without host callbacks are stored (a JAX rule). To make simulations
    cacheable, start Python with ``EQX_ON_ERROR=nan`` in the environment (it must be set
    before ``import jaxcell``) and call ``simulate(..., throw=False)``; a warning says so
    when ``EQX_ON_ERROR`` is not ``nan``.

    Returns:
        The cache directory.

    Examples:
        >>> import jaxcell as jc
        >>> path = jc.enable_compilation_cache("/tmp/jaxcell-doc-cache")  # doctest: +SKIP
    """
    if path is None:
        path = os.environ.get("JAXCELL_CACHE_DIR") or Path.home() / ".cache" / "jaxcell" / "xla"
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if _eqx_config.EQX_ON_ERROR != "nan":
        warnings.warn(
            "enable_compilation_cache: EQX_ON_ERROR is "
            f"{_eqx_config.EQX_ON_ERROR!r}, so simulations keep equinox's runtime checks "
            "as host callbacks and JAX will not store them on disk. Set EQX_ON_ERROR=nan "
            "in the environment before importing jaxcell, and pass throw=False to "
            "simulate(), to cache them.",
            stacklevel=2,
        )
    return path
