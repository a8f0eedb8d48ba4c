"""Model import (SBML: ``load_sbml``, ``simulate_sbml``) and checkpointed long runs
(``simulate_checkpointed``)."""

from .._errors import CheckpointError as CheckpointError
from ._checkpoint import simulate_checkpointed as simulate_checkpointed
from ._errors import SBMLError as SBMLError
from ._errors import SBMLUnsupportedError as SBMLUnsupportedError
from ._model import SBMLModel as SBMLModel
from ._model import load_sbml as load_sbml
from ._petab import PetabProblem as PetabProblem
from ._petab import load_petab as load_petab
from ._petab_math import PetabError as PetabError
from ._petab_math import PetabUnsupportedError as PetabUnsupportedError
from ._solve import SBMLSolution as SBMLSolution
from ._solve import simulate_sbml as simulate_sbml
from ._solve import solve_sbml as solve_sbml
