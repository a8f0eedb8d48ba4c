"""Analysis of trajectories: oscillation period and peaks."""

from ._oscillation import (
    find_peaks as find_peaks,
    is_sustained as is_sustained,
    period as period,
)
