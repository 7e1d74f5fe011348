"""``assay report RUN_DIR``: the HTML report and plots of a run from its results.json."""

from __future__ import annotations

from pathlib import Path

import typer

from assay.cli._common import console, register_all, user_errors

RUN_DIR = typer.Argument(
    ..., exists=True, file_okay=False, help="Folder holding results.json, or a run folder with limits/."
)


def report(
    run_dir: Path = RUN_DIR,
    pdf: bool = typer.Option(False, "--pdf", help="Also write every figure as PDF beside its PNG."),
) -> None:
    """Write report.html and plots/*.png from results.json (and summary.json).

    RUN_DIR is the folder holding results.json (the demo's output, a run's limits/), or a run
    folder of `assay limits`, whose limits/ is used.
    """
    from assay.report import write_report

    with user_errors():
        path = write_report(run_dir, pdf=pdf)
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    register_all(app, report)
