"""Domain exceptions raised outside traced code.

Every error names the culprit (process, path, species, parameter, ...) and says what
was expected, so that a user can fix the model without reading jaxcell's source.
"""


class JaxcellError(Exception):
    """Base class of every error jaxcell raises on purpose."""


class WiringError(JaxcellError, ValueError):
    """The processes of a model do not fit together.

    Raised before tracing when a process reads a path that nothing provides, when two
    processes own or set the same variable, when shapes disagree, or when derived
    quantities depend on each other in a cycle.
    """


class ModelError(JaxcellError, ValueError):
    """A model definition is invalid: unknown species, bad stoichiometry, invalid
    parameter values (negative or NaN where they must be non-negative), wrong shapes."""


class InferenceError(JaxcellError, ValueError):
    """An inference call was given something it cannot use: an objective that is not an
    :class:`jaxcell.inference.AbstractObjective`, start points of the wrong shape, an
    unknown parameter name, a method that does not fit the objective, a noise model or
    prior of the wrong kind. Raised by ``jaxcell.inference`` before any fitting
    starts."""


class SimulationError(JaxcellError, RuntimeError):
    """A simulation could not be carried out as asked (e.g. a bad time span)."""


class CheckpointError(SimulationError):
    """A checkpoint directory cannot be used as asked: it is a file, it holds
    checkpoints of a different run, none of its checkpoints is readable, or a new
    checkpoint could not be verified. Raised by
    :func:`jaxcell.simulate_checkpointed`."""


class DiscoveryError(JaxcellError, ValueError):
    """Equation discovery was given something it cannot use: data of the wrong shape or
    with non-finite values, times that are not increasing (or not uniform where a method
    needs a uniform grid), a library with repeated terms, a threshold or window that
    cannot work. Raised by :mod:`jaxcell.discovery` before any regression runs."""
