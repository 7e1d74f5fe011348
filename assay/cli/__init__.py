"""The ``assay`` command line: a thin layer over the public API.

One module per command group: :mod:`assay.cli.run` (demo, generate, run), :mod:`assay.cli.data`
(inspect, basis, import-lhe), :mod:`assay.cli.train` (train), :mod:`assay.cli.limits` (limits),
:mod:`assay.cli.coverage` (coverage), :mod:`assay.cli.diagnostics` (diagnostics),
:mod:`assay.cli.report` (report).
Every command has ``--help``.
"""

from __future__ import annotations

import logging

import typer

from assay import __version__
from assay.cli import coverage, data, diagnostics, export, info, limits, madminer, report, run, train

app = typer.Typer(
    name="assay",
    help="Simulation-based inference for particle physics: EFT couplings from the full event likelihood.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every phase (INFO level)."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def version() -> None:
    """Print the assay version."""
    typer.echo(f"assay {__version__}")


run.register(app)
data.register(app)
train.register(app)
limits.register(app)
coverage.register(app)
diagnostics.register(app)
report.register(app)
madminer.register(app)
export.register(app)
info.register(app)


def main() -> None:
    """Entry point of the ``assay`` script."""
    app()
