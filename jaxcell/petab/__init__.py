"""PEtab parameter-estimation problems (v1, v2, and PEtab SciML with neural networks):
``load_petab`` reads a problem into a :class:`PetabProblem` (one compiled,
differentiable likelihood); ``petab_objective`` makes it an objective for
:func:`jaxcell.inference.fit`; ``write_petab`` writes a fitted v2 problem back."""

from ._export import write_petab as write_petab
from ._math import PetabError as PetabError
from ._math import PetabUnsupportedError as PetabUnsupportedError
from ._objective import PetabObjective as PetabObjective
from ._objective import petab_objective as petab_objective
from ._problem import PetabProblem as PetabProblem
from ._problem import load_petab as load_petab
from ._problem_v2 import PetabV2Problem as PetabV2Problem
