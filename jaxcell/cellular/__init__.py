"""Cellular scale: populations with a fixed capacity and an alive mask, per-cell
processes, growth, division and death, and splicing kinetics."""

from ._division import Death as Death
from ._division import Division as Division
from ._division_rules import AbstractDivider as AbstractDivider
from ._division_rules import AbstractDivisionRule as AbstractDivisionRule
from ._division_rules import AbstractSizeRule as AbstractSizeRule
from ._division_rules import Adder as Adder
from ._division_rules import Binomial as Binomial
from ._division_rules import ConstantRate as ConstantRate
from ._division_rules import Copy as Copy
from ._division_rules import Displace as Displace
from ._division_rules import Halve as Halve
from ._division_rules import Sizer as Sizer
from ._division_rules import Timer as Timer
from ._per_cell import PerCell as PerCell
from ._population import Population as Population
from ._splicing import Splicing as Splicing
from ._splicing import splicing_solution as splicing_solution
