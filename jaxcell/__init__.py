"""jaxcell: differentiable, multi-scale biological simulation in JAX.

Models are equinox modules (processes) that share one state pytree; ``simulate`` turns
them into one diffrax solve. float64 is enabled on import (set the environment variable
``JAXCELL_DISABLE_X64=1`` before importing to keep JAX's float32 default).
"""

import os as _os

import jax as _jax

if _os.environ.get("JAXCELL_DISABLE_X64", "0") in ("", "0", "false", "False"):
    _jax.config.update("jax_enable_x64", True)

from . import analysis as analysis, models as models, neural as neural
from ._composite import Composite as Composite, as_composite as as_composite
from ._ensemble import ensemble as ensemble
from ._errors import (
    JaxcellError as JaxcellError,
    ModelError as ModelError,
    SimulationError as SimulationError,
    WiringError as WiringError,
)
from ._generic import ODE as ODE, Assignment as Assignment, Coupling as Coupling
from ._process import (
    AbstractContinuousProcess as AbstractContinuousProcess,
    AbstractDerivedProcess as AbstractDerivedProcess,
    AbstractProcess as AbstractProcess,
    Ports as Ports,
)
from ._simulate import (
    count_compilations as count_compilations,
    default_controller as default_controller,
    default_solver as default_solver,
    simulate as simulate,
)
from ._state import (
    StateSpec as StateSpec,
    StateView as StateView,
    Var as Var,
    as_path as as_path,
    flatten_state as flatten_state,
    nest_state as nest_state,
)
from ._trajectory import Trajectory as Trajectory
from .molecular import (
    AbstractRateLaw as AbstractRateLaw,
    ConservationLaw as ConservationLaw,
    Custom as Custom,
    HillActivation as HillActivation,
    HillRepression as HillRepression,
    MassAction as MassAction,
    MichaelisMenten as MichaelisMenten,
    Reaction as Reaction,
    ReactionNetwork as ReactionNetwork,
)

__version__ = "0.1.0"
