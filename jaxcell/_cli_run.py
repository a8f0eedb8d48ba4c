"""``jaxcell run ARCHIVE_OR_SEDML --out DIR``: run a COMBINE archive or a SED-ML file
and write its reports (CSV, ``reports.h5``) and plots (PNG)."""

from __future__ import annotations

import argparse
import sys


def run_command(args: argparse.Namespace) -> int:
    """Run the archive or SED-ML file; 0 on success, 2 with one line on stderr if it
    cannot be run."""
    from ._errors import JaxcellError
    from .sedml import run

    try:
        results = run(args.path, args.out)
    except (JaxcellError, OSError) as e:
        message = " ".join(str(e).split())
        print(f"jaxcell: error: {message}", file=sys.stderr)
        return 2
    print(f"{len(results.reports)} report(s); {len(results.files)} file(s) written to "
          f"{args.out}", file=sys.stderr)
    return 0


def add_run_parser(sub) -> None:
    """Add the ``run`` subcommand to the ``jaxcell`` parser's subparsers."""
    p = sub.add_parser(
        "run", help="run a COMBINE archive (.omex) or SED-ML file",
        description="Run the simulation experiments of a COMBINE archive (its master "
                    "SED-ML file, or all SED-ML files) or of a SED-ML file with jaxcell. "
                    "Writes DIR/<SED-ML location>/<report id>.csv, DIR/reports.h5 "
                    "(BioSimulators' layout) and DIR/<SED-ML location>/<plot id>.png.")
    p.add_argument("path", help="the .omex archive or .sedml file")
    p.add_argument("--out", metavar="DIR", default="sedml-output",
                   help="output folder (sedml-output)")
    p.set_defaults(func=run_command)
