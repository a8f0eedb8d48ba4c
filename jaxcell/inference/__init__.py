"""Parameter estimation: free parameters and their scales (scalars, and network weights
or other arrays as :class:`Weights`), experiments and noise models, objectives (anything
implementing :class:`AbstractObjective`; :class:`Objective` is the negative
log-likelihood of experiments, :class:`MultipleShooting` its segmented form), local fits
from many starts, training strategies (minibatches, growing horizon, per-group
optimisers, early stopping), profile likelihoods; Bayesian inference with numpyro (NUTS,
SVI)."""

from .._errors import InferenceError as InferenceError
from ._bayes import BayesResult as BayesResult
from ._bayes import SVIResult as SVIResult
from ._bayes import fit_svi as fit_svi
from ._bayes import log_density as log_density
from ._bayes import numpyro_model as numpyro_model
from ._bayes import objective_model as objective_model
from ._bayes import sample_nuts as sample_nuts
from ._experiment import Experiment as Experiment
from ._fit import FitResult as FitResult
from ._fit import StartResult as StartResult
from ._fit import default_method as default_method
from ._fit import draw_starts as draw_starts
from ._fit import fit as fit
from ._fit import natural_values as natural_values
from ._fit_checkpoint import fit_checkpointed as fit_checkpointed
from ._groups import group_optimizer as group_optimizer
from ._levenberg_marquardt import LevenbergMarquardt as LevenbergMarquardt
from ._minibatch import Minibatch as Minibatch
from ._noise import AbstractGaussianNoise as AbstractGaussianNoise
from ._noise import AbstractNoise as AbstractNoise
from ._noise import Laplace as Laplace
from ._noise import Log10Normal as Log10Normal
from ._noise import LogNormal as LogNormal
from ._noise import Normal as Normal
from ._objective import AbstractBoundedObjective as AbstractBoundedObjective
from ._objective import AbstractObjective as AbstractObjective
from ._objective import AbstractSeparableObjective as AbstractSeparableObjective
from ._objective import AbstractStochasticObjective as AbstractStochasticObjective
from ._objective import Objective as Objective
from ._parameters import AbstractParameters as AbstractParameters
from ._parameters import Parameter as Parameter
from ._parameters import Parameters as Parameters
from ._profile import Profile as Profile
from ._profile import profile as profile
from ._shooting import MultipleShooting as MultipleShooting
from ._shooting import growing_horizon as growing_horizon
from ._transforms import AbstractTransform as AbstractTransform
from ._transforms import Bounded as Bounded
from ._transforms import Linear as Linear
from ._transforms import Log as Log
from ._transforms import Log10 as Log10
from ._weights import L1 as L1
from ._weights import L2 as L2
from ._weights import AbstractPenalty as AbstractPenalty
from ._weights import AbstractSquaredPenalty as AbstractSquaredPenalty
from ._weights import OutputL1 as OutputL1
from ._weights import Weights as Weights
