"""Tissue scale: regular grids and diffusing fields (finite volumes)."""

from ._field import DiffusingField as DiffusingField
from ._grid import AbstractBoundary as AbstractBoundary
from ._grid import Dirichlet as Dirichlet
from ._grid import Grid as Grid
from ._grid import NoFlux as NoFlux
from ._grid import Periodic as Periodic
