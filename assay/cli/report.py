"""``assay report RUN_DIR``: the HTML report and plots of a run from its results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli._common import console, register_all, user_errors

RUN_DIR = typer.Argument(..., exists=True, file_okay=False, help="Run folder holding results.json.")


def report(run_dir: Path = RUN_DIR) -> None:
    """Write RUN_DIR/report.html and RUN_DIR/plots/*.png from RUN_DIR/results.json (and summary.json)."""
    from assay.report import write_report

    with user_errors():
        path = write_report(run_dir)
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    register_all(app, report)
