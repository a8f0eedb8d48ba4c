"""Analysis of trajectories and models: steady states and their stability, continuation
and bifurcations, oscillation period and peaks; global sensitivity analysis (Sobol'
indices, Morris screening)."""

from ._continuation import (
    BifurcationPoint as BifurcationPoint,
)
from ._continuation import (
    Branch as Branch,
)
from ._continuation import (
    continuation as continuation,
)
from ._limit_cycle import (
    LimitCycle as LimitCycle,
)
from ._limit_cycle import (
    limit_cycle as limit_cycle,
)
from ._morris import (
    MorrisIndices as MorrisIndices,
)
from ._morris import (
    morris_indices as morris_indices,
)
from ._morris import (
    morris_indices_from_outputs as morris_indices_from_outputs,
)
from ._morris import (
    morris_sample as morris_sample,
)
from ._oscillation import (
    find_peaks as find_peaks,
)
from ._oscillation import (
    is_sustained as is_sustained,
)
from ._oscillation import (
    period as period,
)
from ._sobol import (
    SobolIndices as SobolIndices,
)
from ._sobol import (
    saltelli_sample as saltelli_sample,
)
from ._sobol import (
    sobol_indices as sobol_indices,
)
from ._sobol import (
    sobol_indices_from_outputs as sobol_indices_from_outputs,
)
from ._steady_state import (
    StateAt as StateAt,
)
from ._steady_state import (
    SteadyState as SteadyState,
)
from ._steady_state import (
    steady_state as steady_state,
)
