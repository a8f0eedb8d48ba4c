"""Neural terms for universal differential equations (hybrid mechanistic-neural models)."""

from ._neural import (
    NeuralField as NeuralField,
    neural_coupling as neural_coupling,
    neural_rate as neural_rate,
    neural_weights as neural_weights,
    rbf as rbf,
)
