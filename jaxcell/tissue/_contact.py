"""ContactAverage: juxtacrine (contact) signalling through the shared state."""

from __future__ import annotations

from collections.abc import Mapping

from jaxtyping import Array, ArrayLike

from .._custom_types import Path, PathLike
from .._errors import ModelError
from .._process import AbstractDerivedProcess, Ports
from .._state import Ref, StateView, Var, as_ref
from ._lattice import Neighbours
from ._refs import read_ports, whole_variable


class ContactAverage(AbstractDerivedProcess):
    """Sets ``target`` to the mean of the per-cell variable ``source`` over each cell's
    neighbours: what a cell senses from the membrane ligands of the cells it touches.

    ``source`` is a variable of shape ``(N,)`` owned by another process (e.g. the
    Delta level of each cell's gene circuit); ``target`` (shape ``(N,)``) is read by the
    processes that need it (e.g. Notch activation). This is the coupling of the
    Collier et al. (1996) lateral-inhibition model. ``source`` may name one labelled
    component (``"molecular/net/species/D"``: one species of a per-cell network), as
    ``reads=`` does; ``target`` is set as a whole, so it names a whole variable.

    Examples:
        >>> import jax.numpy as jnp
        >>> import jaxcell as jc
        >>> from jaxcell.tissue import ContactAverage, hex_lattice
        >>> nb = hex_lattice(6, 6)
        >>> cells = jc.ODE("cells", {"d": jnp.linspace(0.0, 1.0, 36)},
        ...                lambda t, y, p: {"d": -y["d"]}, scale="cellular")
        >>> contact = ContactAverage("contact", nb, source="cellular/cells/d",
        ...                          target="tissue/contact/d_mean")
        >>> model = jc.Composite([cells, contact])
        >>> traj = jc.simulate(model, 0.0, 1.0, saveat=[0.0])
        >>> traj["tissue/contact/d_mean"].shape
        (1, 36)
    """

    name: str
    neighbours: Neighbours
    source: Ref
    target: Path

    def __init__(self, name: str, neighbours: Neighbours, *, source: PathLike,
                 target: PathLike):
        if not isinstance(neighbours, Neighbours):
            raise ModelError(f"ContactAverage {name!r}: neighbours must come from "
                             f"hex_lattice, square_lattice or from_positions; got "
                             f"{type(neighbours).__name__}.")
        self.name = name
        self.neighbours = neighbours
        owner = f"ContactAverage {name!r}"
        self.source = as_ref(source)
        self.target = whole_variable(owner, "target", target)

    def ports(self) -> Ports:
        reads, components = read_ports({self.source: None})
        return Ports(reads=reads, components=components,
                     sets={self.target: Var((self.neighbours.n_cells,))})

    def initial_values(self) -> dict[Path, Array]:
        return {}

    def parameters(self) -> dict[str, Array]:
        return {}

    def replace_parameters(self, values: Mapping[str, ArrayLike]) -> ContactAverage:
        if values:
            raise ModelError(f"ContactAverage {self.name!r} has no parameters; got "
                             f"{sorted(values)}.")
        return self

    def compute(self, t, state: StateView, args) -> dict[Path, Array]:
        return {self.target: self.neighbours.mean(state[self.source])}
