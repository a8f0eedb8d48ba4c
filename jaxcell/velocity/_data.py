"""Reading and checking single-cell data with spliced and unspliced counts (AnnData)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from .._errors import JaxcellError


class VelocityError(JaxcellError, ValueError):
    """RNA-velocity input that cannot be used: a missing layer, a shape that does not
    match, negative or non-finite counts, a model that was not fitted yet."""


def _anndata():
    try:
        import anndata
    except ImportError as e:  # pragma: no cover - anndata is a dependency
        raise VelocityError("jaxcell.velocity needs the 'anndata' package "
                            "(pip install anndata).") from e
    return anndata


def read(path: str | os.PathLike) -> Any:
    """Read an ``.h5ad`` file and check that it has ``spliced`` and ``unspliced``
    layers of the right shape (non-negative, finite counts).

    Raises:
        VelocityError: the file is missing, not an AnnData file, or its
            layers are missing or invalid (the message names the file and layer).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VelocityError(f"{path}: no such file.")
    ad = _anndata()
    old_format = getattr(ad, "OldFormatWarning", None)
    try:
        with warnings.catch_warnings():
            if old_format is not None:  # files from anndata < 0.7 (e.g. velocyto era)
                warnings.simplefilter("ignore", old_format)
            adata = ad.read_h5ad(path)
    except Exception as e:  # h5py/anndata raise many types for a damaged file
        raise VelocityError(f"{path}: not a readable AnnData (.h5ad) file: "
                            f"{type(e).__name__}: {e}") from e
    check_layers(adata, where=path)
    return adata


def dense(x: Any) -> np.ndarray:
    """A layer as a dense float64 array (sparse matrices are densified)."""
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def check_layers(adata: Any, layers: tuple[str, ...] = ("spliced", "unspliced"),
                 where: str = "AnnData") -> None:
    """Check that ``adata.layers`` has ``layers``, each ``(n_obs, n_vars)``, finite and
    non-negative."""
    if not hasattr(adata, "layers") or not hasattr(adata, "n_obs"):
        raise VelocityError(f"{where}: expected an AnnData object; got "
                            f"{type(adata).__name__}.")
    for name in layers:
        if name not in adata.layers:
            raise VelocityError(
                f"{where}: layer {name!r} is missing (layers: "
                f"{sorted(adata.layers.keys())}); RNA velocity needs spliced and "
                f"unspliced counts (e.g. from velocyto, STARsolo Velocyto or "
                f"kallisto|bustools).")
        x = adata.layers[name]
        if tuple(x.shape) != (adata.n_obs, adata.n_vars):
            raise VelocityError(f"{where}: layer {name!r} has shape {tuple(x.shape)}; "
                                f"expected (n_obs, n_vars) = {(adata.n_obs, adata.n_vars)}.")
        data = x.data if hasattr(x, "data") and hasattr(x, "toarray") else np.asarray(x)
        data = np.asarray(data)
        if data.size and not np.issubdtype(data.dtype, np.number):
            raise VelocityError(f"{where}: layer {name!r} holds {data.dtype}, not "
                                f"numbers.")
        if data.size and not np.all(np.isfinite(data)):
            bad = int(np.sum(~np.isfinite(data)))
            raise VelocityError(f"{where}: layer {name!r} has {bad} NaN or infinite "
                                f"value(s).")
        if data.size and np.min(data) < 0:
            raise VelocityError(f"{where}: layer {name!r} has negative values (min "
                                f"{float(np.min(data))}); counts must be >= 0.")
    if adata.n_obs < 3 or adata.n_vars < 1:
        raise VelocityError(f"{where}: {adata.n_obs} cells x {adata.n_vars} genes; at "
                            f"least 3 cells and 1 gene are needed.")
