"""Import models from standard formats: SBML (``load_sbml``, ``simulate_sbml``)."""

from ._errors import SBMLError as SBMLError
from ._errors import SBMLUnsupportedError as SBMLUnsupportedError
from ._model import SBMLModel as SBMLModel
from ._model import load_sbml as load_sbml
from ._solve import SBMLSolution as SBMLSolution
from ._solve import simulate_sbml as simulate_sbml
from ._solve import solve_sbml as solve_sbml
