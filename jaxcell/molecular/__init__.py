"""Molecular scale: reaction networks and rate laws."""

from ._conservation import ConservationLaw as ConservationLaw
from ._network import ReactionNetwork as ReactionNetwork
from ._ratelaws import (
    AbstractRateLaw as AbstractRateLaw,
)
from ._ratelaws import (
    Custom as Custom,
)
from ._ratelaws import (
    HillActivation as HillActivation,
)
from ._ratelaws import (
    HillRepression as HillRepression,
)
from ._ratelaws import (
    MassAction as MassAction,
)
from ._ratelaws import (
    MichaelisMenten as MichaelisMenten,
)
from ._reaction import Reaction as Reaction
