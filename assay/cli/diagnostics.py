"""``assay diagnostics CONFIG``: seed 003's checks of a trained mixture model (closure, C2ST, calibration)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from assay.cli._common import CONFIG, OUTPUT, QUIET, console, register_all, user_errors


def diagnostics(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    model: str | None = typer.Option(
        None, "--model", "-m", help="The mixture model to check; default the config's only one."
    ),
    bins: int = typer.Option(20, "--bins", min=2, help="Bins per observable of the reweighting closure."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Epochs of each two-sample classifier."),
    quiet: bool = QUIET,
) -> None:
    """Reweighting closure per observable, a classifier two-sample test (AUC ≈ 0.5 when the
    reweighting closes), reliability curves with histogram and isotonic calibration, the ensemble
    spread and the per-event −2 log r̂ of the trained mixture model, on the held-out inference
    events. Needs `assay run CONFIG` and `assay train CONFIG`; writes OUTPUT/limits/diagnostics.json
    and plots/diagnostics_*.png, and refreshes limits/report.html if `assay limits` wrote one."""
    from assay.analysis.mixture_diagnostics import run_diagnostics
    from assay.config import load_config
    from assay.plots_diagnostics import diagnostics_tables, write_diagnostics_plots
    from assay.rundir import RunDir

    with user_errors():
        cfg = load_config(config)
        log = (lambda line: None) if quiet else (lambda line: console.print(line, highlight=False))
        data = run_diagnostics(cfg, output, model=model, bins=bins, epochs=epochs, log=log)
        limits = RunDir(output or cfg.output).limits
        if limits.results.is_file():  # the report draws the figures too
            from assay.report import write_report

            write_report(limits.root)
        else:
            write_diagnostics_plots(data, limits.root)
    for title, header, rows, note in diagnostics_tables(data):
        table = Table(title=title, pad_edge=False)
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i < 2 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if not quiet:
            console.print(note, highlight=False, soft_wrap=True)
    console.print(
        f"diagnostics written to {limits.root / 'diagnostics.json'}", highlight=False, soft_wrap=True
    )


def register(app: typer.Typer) -> None:
    register_all(app, diagnostics)
