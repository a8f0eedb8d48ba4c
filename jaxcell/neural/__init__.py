"""Neural terms for universal differential equations (hybrid mechanistic-neural models)."""

from ._neural import (
    NeuralField as NeuralField,
)
from ._neural import (
    neural_coupling as neural_coupling,
)
from ._neural import (
    neural_rate as neural_rate,
)
from ._neural import (
    neural_weights as neural_weights,
)
from ._neural import (
    rbf as rbf,
)
