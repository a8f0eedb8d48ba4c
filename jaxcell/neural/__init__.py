"""Neural terms for universal differential equations (hybrid mechanistic-neural models)."""

from ._hdf5_arrays import (
    read_hdf5_arrays as read_hdf5_arrays,
)
from ._hdf5_arrays import (
    read_network_arrays as read_network_arrays,
)
from ._hdf5_arrays import (
    write_network_arrays as write_network_arrays,
)
from ._network import (
    Network as Network,
)
from ._network import (
    init_network as init_network,
)
from ._network import (
    network_arrays as network_arrays,
)
from ._network import (
    with_network_arrays as with_network_arrays,
)
from ._network_yaml import (
    load_network as load_network,
)
from ._network_yaml import (
    network_to_yaml as network_to_yaml,
)
from ._network_yaml import (
    write_network as write_network,
)
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
from ._torch_base import (
    NetworkFormatError as NetworkFormatError,
)
