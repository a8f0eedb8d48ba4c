"""Equation discovery: sparse identification of dynamics (SINDy and its relatives) in
JAX, and from a trained neural term back to equations.

- **Libraries** of candidate terms: :class:`PolynomialLibrary`, :class:`FourierLibrary`,
  :class:`HillLibrary` (Michaelis-Menten, Hill), :class:`MassActionLibrary`,
  :class:`CustomLibrary`; combine with ``+`` and ``*``.
- **Derivatives**: :class:`FiniteDifference`, :class:`SavitzkyGolay`,
  :class:`TotalVariation`, or none at all with the :class:`WeakForm`.
- **Sparse regression**: :class:`STLSQ`, :class:`SR3` (with linear constraints),
  :class:`Ensemble` (bagging, inclusion probabilities), :class:`ModelSelection`
  (thresholds scanned with ``vmap``, information criteria, Pareto front) and
  :class:`SINDyPI` (implicit, for rational right-hand sides).
- **Back into the simulator**: :func:`discover` returns a :class:`SparseModel`, an
  ordinary process whose coefficients are named parameters
  (:func:`coefficient_parameters` for :func:`jaxcell.inference.fit` and NUTS); it prints
  as equations and writes SBML (:func:`to_sbml`). :func:`distill` turns the neural
  term of a trained hybrid model into equations, and :func:`refit_select` chooses
  their structure by refitting each candidate to the original data.
"""

from .._errors import DiscoveryError as DiscoveryError
from ._derivatives import AbstractDerivative as AbstractDerivative
from ._derivatives import FiniteDifference as FiniteDifference
from ._derivatives import SavitzkyGolay as SavitzkyGolay
from ._derivatives import TotalVariation as TotalVariation
from ._derivatives import WeakForm as WeakForm
from ._discover import Discovery as Discovery
from ._discover import discover as discover
from ._distill import Candidate as Candidate
from ._distill import Distillation as Distillation
from ._distill import RefitSelection as RefitSelection
from ._distill import distill as distill
from ._distill import refit_select as refit_select
from ._implicit import SINDyPI as SINDyPI
from ._library import AbstractLibrary as AbstractLibrary
from ._library import ConcatLibrary as ConcatLibrary
from ._library import CustomLibrary as CustomLibrary
from ._library import FourierLibrary as FourierLibrary
from ._library import HillLibrary as HillLibrary
from ._library import MassActionLibrary as MassActionLibrary
from ._library import PolynomialLibrary as PolynomialLibrary
from ._library import TensorLibrary as TensorLibrary
from ._model import SparseModel as SparseModel
from ._parameters import coefficient_parameters as coefficient_parameters
from ._regression import SR3 as SR3
from ._regression import STLSQ as STLSQ
from ._regression import AbstractOptimizer as AbstractOptimizer
from ._regression import Ensemble as Ensemble
from ._regression import ModelSelection as ModelSelection
from ._regression import SelectionPath as SelectionPath
from ._regression import information_criterion as information_criterion
from ._sbml import to_sbml as to_sbml
