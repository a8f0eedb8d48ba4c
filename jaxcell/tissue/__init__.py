"""Tissue scale: grids and diffusing fields (finite volumes), chemotaxis, neighbour
graphs, contact signalling and cell mechanics."""

from ._chemotaxis import Chemotaxis as Chemotaxis
from ._contact import ContactAverage as ContactAverage
from ._exchange import AbstractCellsOnField as AbstractCellsOnField
from ._exchange import FieldExchange as FieldExchange
from ._exchange import FieldSensor as FieldSensor
from ._field import DiffusingField as DiffusingField
from ._gap_junction import GapJunction as GapJunction
from ._grid import AbstractBoundary as AbstractBoundary
from ._grid import Dirichlet as Dirichlet
from ._grid import Grid as Grid
from ._grid import NoFlux as NoFlux
from ._grid import Periodic as Periodic
from ._lattice import Neighbours as Neighbours
from ._lattice import from_positions as from_positions
from ._lattice import hex_lattice as hex_lattice
from ._lattice import square_lattice as square_lattice
from ._mechanics import AbstractPotential as AbstractPotential
from ._mechanics import PhysiCell as PhysiCell
from ._mechanics import SoftSpheres as SoftSpheres
from ._mechanics import Springs as Springs
