"""Analysis of trajectories: oscillation period and peaks."""

from ._oscillation import (
    find_peaks as find_peaks,
)
from ._oscillation import (
    is_sustained as is_sustained,
)
from ._oscillation import (
    period as period,
)
