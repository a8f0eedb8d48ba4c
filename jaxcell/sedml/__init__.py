"""SED-ML simulation experiments and COMBINE archives on jaxcell's engine:
``run(path, out_dir)`` runs a ``.sedml`` file or an ``.omex`` archive and writes its
reports (CSV, BioSimulators' ``reports.h5``) and plots (PNG)."""

from ._errors import SEDMLError as SEDMLError
from ._errors import SEDMLUnsupportedError as SEDMLUnsupportedError
from ._outputs import SEDMLReport as SEDMLReport
from ._run import SEDMLResults as SEDMLResults
from ._run import run as run
from ._run import run_omex as run_omex
from ._run import run_sedml as run_sedml
