"""The coefficients of a discovered model as free parameters of a fit."""

from __future__ import annotations

from .._composite import as_composite
from .._errors import DiscoveryError
from ..inference import Linear, Parameter
from ._model import SparseModel


def coefficient_parameters(model, process: str | None = None, *, prior_scale: float | None
                           = None) -> list[Parameter]:
    """One :class:`jaxcell.inference.Parameter` per kept coefficient of the
    :class:`SparseModel` ``process`` in ``model`` (linear scale: coefficients may be
    negative), starting at the discovered values.

    Arguments:
        model: a :class:`SparseModel` or a model containing one.
        process: the SparseModel's name when ``model`` holds several.
        prior_scale: for Bayesian use, a Normal prior centred on the discovered value
            with this standard deviation relative to its magnitude (e.g. ``1.0``).

    Returns:
        Parameters named as the model names them (``"process.x:x*y"`` inside a
        composite), ready for :class:`jaxcell.inference.Parameters`.
    """
    composite = as_composite(model)
    sparse = [p for p in composite.leaves if isinstance(p, SparseModel)
              and (process is None or p.name == process)]
    if len(sparse) != 1:
        raise DiscoveryError(
            f"coefficient_parameters: expected one SparseModel"
            f"{'' if process is None else f' named {process!r}'}; found "
            f"{[p.name for p in sparse]}."
        )
    sp = sparse[0]
    prefix = "" if isinstance(model, SparseModel) else f"{sp.name}."
    out = []
    for key, value in sp.coeffs.items():
        v = float(value)
        prior = None
        if prior_scale is not None:
            import numpyro.distributions as dist

            prior = dist.Normal(v, prior_scale * max(abs(v), 1e-12))
        w = 10.0 * abs(v) if v != 0 else 1.0
        out.append(Parameter(prefix + key, scale=Linear(), init=v, bounds=(v - w, v + w),
                             prior=prior))
    return out
