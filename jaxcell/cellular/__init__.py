"""Cellular scale: per-cell processes (splicing kinetics and RNA velocity)."""

from ._splicing import Splicing as Splicing
from ._splicing import splicing_solution as splicing_solution
