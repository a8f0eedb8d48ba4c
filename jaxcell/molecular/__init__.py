"""Molecular scale: reaction networks and rate laws."""

from ._conservation import ConservationLaw as ConservationLaw
from ._network import ReactionNetwork as ReactionNetwork
from ._ratelaws import (
    AbstractRateLaw as AbstractRateLaw,
    Custom as Custom,
    HillActivation as HillActivation,
    HillRepression as HillRepression,
    MassAction as MassAction,
    MichaelisMenten as MichaelisMenten,
)
from ._reaction import Reaction as Reaction
