"""Thin re-exports kept for code written against jaxcell 0.1: SBML lives in
:mod:`jaxcell.sbml`, PEtab in :mod:`jaxcell.petab`, checkpointed runs are
:func:`jaxcell.simulate_checkpointed`. New code should import from those."""

from .._checkpoint import simulate_checkpointed as simulate_checkpointed
from .._errors import CheckpointError as CheckpointError
from ..petab import PetabError as PetabError
from ..petab import PetabProblem as PetabProblem
from ..petab import PetabUnsupportedError as PetabUnsupportedError
from ..petab import load_petab as load_petab
from ..sbml import SBMLError as SBMLError
from ..sbml import SBMLModel as SBMLModel
from ..sbml import SBMLSolution as SBMLSolution
from ..sbml import SBMLUnsupportedError as SBMLUnsupportedError
from ..sbml import load_sbml as load_sbml
from ..sbml import simulate_sbml as simulate_sbml
from ..sbml import solve_sbml as solve_sbml
