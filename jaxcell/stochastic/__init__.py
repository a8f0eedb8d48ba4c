"""Stochastic kinetics as probability distributions: the chemical master equation by
finite state projection (:class:`FSP`, integrated by :func:`jaxcell.simulate`), its
stationary distribution, the telegraph model's analytic distribution, and the
likelihood of molecule-count data (:class:`CountsObjective` for fitting and NUTS)."""

from ._counts import CountsObjective as CountsObjective
from ._counts import fsp_log_likelihood as fsp_log_likelihood
from ._fsp import FSP as FSP
from ._stationary import stationary_distribution as stationary_distribution
from ._telegraph import telegraph_distribution as telegraph_distribution
from ._telegraph import telegraph_network as telegraph_network
