"""SBML models in jaxcell: ``load_sbml`` reads a file into an :class:`SBMLModel` (an
ordinary process), ``simulate_sbml`` runs it with SBML's output conventions."""

from ._errors import SBMLError as SBMLError
from ._errors import SBMLUnsupportedError as SBMLUnsupportedError
from ._export import export_sbml as export_sbml
from ._jaxpr import ExportError as ExportError
from ._model import SBMLModel as SBMLModel
from ._model import load_sbml as load_sbml
from ._solve import SBMLSolution as SBMLSolution
from ._solve import simulate_sbml as simulate_sbml
from ._solve import solve_sbml as solve_sbml
