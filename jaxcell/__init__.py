"""jaxcell: differentiable, multi-scale biological simulation in JAX.

Models are equinox modules (processes) that share one state pytree; ``simulate`` turns
them into one diffrax solve. float64 is enabled on import (set the environment variable
``JAXCELL_DISABLE_X64=1`` before importing to keep JAX's float32 default). On a CPU,
JAX is asked for one device per core (``JAXCELL_CPU_DEVICES=n`` to choose, ``1`` for
JAX's default) so that ensembles use every core; see ``docs/scale-out.md``.
"""

import os as _os
import sys as _sys

import jax as _jax

if _os.environ.get("JAXCELL_DISABLE_X64", "0") in ("", "0", "false", "False"):
    _jax.config.update("jax_enable_x64", True)

from ._devices import use_cpu_cores as _use_cpu_cores

_use_cpu_cores()

if "libsedml" not in _sys.modules and "libsbml" not in _sys.modules:
    # libsedml must be loaded before libsbml (a SWIG type clash): jaxcell/sedml/_libsedml.py
    import libsedml as _libsedml  # noqa: F401

from . import analysis as analysis
from . import cellular as cellular
from . import discovery as discovery
from . import inference as inference
from . import io as io
from . import models as models
from . import neural as neural
from . import petab as petab
from . import sbml as sbml
from . import solvers as solvers
from . import stochastic as stochastic
from . import tissue as tissue
from . import velocity as velocity
from ._cache import enable_compilation_cache as enable_compilation_cache
from ._checkpoint import simulate_checkpointed as simulate_checkpointed
from ._composite import Composite as Composite
from ._composite import as_composite as as_composite
from ._discrete import DiscreteRule as DiscreteRule
from ._ensemble import ensemble as ensemble
from ._errors import (
    CheckpointError as CheckpointError,
)
from ._errors import (
    DiscoveryError as DiscoveryError,
)
from ._errors import (
    InferenceError as InferenceError,
)
from ._errors import (
    JaxcellError as JaxcellError,
)
from ._errors import (
    ModelError as ModelError,
)
from ._errors import (
    SimulationError as SimulationError,
)
from ._errors import (
    WiringError as WiringError,
)
from ._event import Event as Event
from ._generic import ODE as ODE
from ._generic import Assignment as Assignment
from ._generic import Coupling as Coupling
from ._process import (
    AbstractContinuousProcess as AbstractContinuousProcess,
)
from ._process import (
    AbstractDerivedProcess as AbstractDerivedProcess,
)
from ._process import (
    AbstractDiscreteProcess as AbstractDiscreteProcess,
)
from ._process import (
    AbstractEventProcess as AbstractEventProcess,
)
from ._process import (
    AbstractJumpProcess as AbstractJumpProcess,
)
from ._process import (
    AbstractProcess as AbstractProcess,
)
from ._process import (
    EventTable as EventTable,
)
from ._process import (
    JumpTable as JumpTable,
)
from ._process import (
    Ports as Ports,
)
from ._process import (
    jump_table as jump_table,
)
from ._results import RESULTS as RESULTS
from ._simulate import (
    count_compilations as count_compilations,
)
from ._simulate import (
    default_controller as default_controller,
)
from ._simulate import (
    default_solver as default_solver,
)
from ._simulate import (
    simulate as simulate,
)
from ._ssa_gradient import SSAGradient as SSAGradient
from ._ssa_gradient import ssa_gradient as ssa_gradient
from ._state import (
    StateSpec as StateSpec,
)
from ._state import (
    StateView as StateView,
)
from ._state import (
    Var as Var,
)
from ._state import (
    as_path as as_path,
)
from ._state import (
    flatten_state as flatten_state,
)
from ._state import (
    nest_state as nest_state,
)
from ._stochastic import CLE as CLE
from ._stochastic import SSA as SSA
from ._stochastic import AbstractStochasticMethod as AbstractStochasticMethod
from ._stochastic import TauLeaping as TauLeaping
from ._trajectory import Trajectory as Trajectory
from .molecular import (
    AbstractRateLaw as AbstractRateLaw,
)
from .molecular import (
    ConservationLaw as ConservationLaw,
)
from .molecular import (
    Custom as Custom,
)
from .molecular import (
    HillActivation as HillActivation,
)
from .molecular import (
    HillRepression as HillRepression,
)
from .molecular import (
    MassAction as MassAction,
)
from .molecular import (
    MichaelisMenten as MichaelisMenten,
)
from .molecular import (
    Reaction as Reaction,
)
from .molecular import (
    ReactionNetwork as ReactionNetwork,
)

__version__ = "0.1.0"
