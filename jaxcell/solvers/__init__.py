"""Extra diffrax-compatible solvers for jaxcell models.

- :class:`Rodas5`: Di Marzo's 5(4) Rosenbrock (linearly implicit) stiff solver.
"""

from ._rosenbrock import Rodas5 as Rodas5

__all__ = ["Rodas5"]
