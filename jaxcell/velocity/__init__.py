"""RNA velocity: the transcription-splicing model fitted to single-cell data.

From an AnnData with ``spliced``/``unspliced`` layers to fitted kinetics, velocities,
a latent time and a forward simulation:

- :func:`read`, :func:`filter_and_normalize`, :func:`pca`, :func:`neighbors`,
  :func:`moments`, :func:`second_moments`: reading and the usual preparation;
- :func:`steady_state`: the steady-state (deterministic) model;
- :func:`recover_dynamics`: the dynamical model (transcription on/off, splicing,
  degradation, a switch time) fitted to every gene at once;
- :func:`latent_time`: one latent time per cell shared by all genes;
- :func:`velocity`, :func:`predict`, :func:`forward_process`, :func:`simulate_forward`:
  velocities, the state a small time step later, and forward simulation on the one
  engine (:class:`jaxcell.cellular.Splicing`);
- :func:`bayesian_kinetics`: posterior intervals on rates and velocities (NUTS);
- :func:`velocity_embedding`, :func:`plot_phase`, :func:`plot_velocity_embedding`;
- :func:`simulate_data`: snapshots simulated from the model with known kinetics.

Results go into the AnnData under scVelo's names (``var["fit_alpha"]``,
``layers["velocity"]``, ``obs["latent_time"]``, ...), so scVelo and CellRank can carry on.
"""

from ._bayes import VelocityPosterior as VelocityPosterior
from ._bayes import bayesian_kinetics as bayesian_kinetics
from ._data import VelocityError as VelocityError
from ._data import check_layers as check_layers
from ._data import read as read
from ._dynamical import GeneFits as GeneFits
from ._dynamical import fit_genes as fit_genes
from ._embedding import velocity_embedding as velocity_embedding
from ._plot import plot_phase as plot_phase
from ._plot import plot_velocity_embedding as plot_velocity_embedding
from ._preprocess import filter_and_normalize as filter_and_normalize
from ._preprocess import moments as moments
from ._preprocess import neighbors as neighbors
from ._preprocess import pca as pca
from ._preprocess import second_moments as second_moments
from ._recover import SharedTimeFit as SharedTimeFit
from ._recover import latent_time as latent_time
from ._recover import recover_dynamics as recover_dynamics
from ._simulate_data import simulate_data as simulate_data
from ._steady import steady_state as steady_state
from ._velocity import forward_process as forward_process
from ._velocity import kinetics as kinetics
from ._velocity import predict as predict
from ._velocity import simulate_forward as simulate_forward
from ._velocity import velocity as velocity
