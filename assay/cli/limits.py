"""``assay limits CONFIG``: intervals of every configured method from a trained run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from assay.cli._common import (
    CONFIG,
    OUTPUT,
    QUIET,
    WORKERS,
    console,
    parallel_client,
    register_all,
    user_errors,
)


def _theta(values: list[str] | None) -> dict[str, float] | None:
    """``--theta cHW=0.1 --theta cHWtilde=0`` → {"cHW": 0.1, "cHWtilde": 0.0}."""
    if not values:
        return None
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise typer.BadParameter(f"--theta: expected NAME=VALUE, got {item!r}")
    return out


def limits(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    data: Path | None = typer.Option(
        None, "--data", help="Observed events: an EventStore (.h5) or LHE file; default: Asimov data."
    ),
    models: list[str] | None = typer.Option(
        None, "--models", "-m", help="Compare only these trained models (repeat the option)."
    ),
    toys: int = typer.Option(0, "--toys", min=0, help="Pseudo-experiments for the intervals' coverage."),
    theta: list[str] | None = typer.Option(
        None, "--theta", help="Where the toys are drawn: NAME=VALUE (repeat); default inference.theta_true."
    ),
    neyman: int = typer.Option(
        0, "--neyman", min=0, help="Neyman construction: this many toys at every point of each 1D scan."
    ),
    neyman_methods: list[str] | None = typer.Option(
        None, "--neyman-method", help="The methods of the Neyman construction (repeat); default all."
    ),
    workers: int | None = WORKERS,
    report: bool = typer.Option(True, "--report/--no-report", help="Write limits/report.html too."),
    quiet: bool = QUIET,
) -> None:
    """Scan every method of the config's `inference` section on the same events and write
    OUTPUT/limits/summary.json, results.json and the pyhf workspaces of the histogram methods."""
    from assay.analysis.limits import run_limits
    from assay.config import load_config
    from assay.rundir import RunDir

    theta_toys = _theta(theta)
    with user_errors():
        cfg = load_config(config)
        with parallel_client(cfg, workers) as client:
            results = run_limits(
                cfg, output, models=models, data=data, toys=toys, theta_toys=theta_toys, client=client,
                neyman=neyman, neyman_methods=neyman_methods, progress=not quiet,
            )  # fmt: skip
        run = RunDir(output or cfg.output)
        print_results(results)
        if report:
            from assay.report import write_report

            path = write_report(run.limits.root)
            console.print(f"report written to {path}", highlight=False, soft_wrap=True)
    console.print(f"limits written to {run.limits.root}", highlight=False, soft_wrap=True)


def _fmt(value: float | None) -> str:
    return "open" if value is None else f"{value:+.3g}"


def print_results(results) -> None:
    """Per level and parameter, one table of every method's intervals (fits 80 columns); then the
    warnings and the coverage of pseudo-experiments."""
    for name, level in results.levels.items():
        keys = list(dict.fromkeys(k for iv in level.intervals.values() for k in iv))
        for parameter in results.parameters:
            mine = [k for k in keys if k.rsplit("_", 1)[0] == parameter]
            if not mine:
                continue
            unit = dict(zip(results.parameters, results.parameter_units)).get(parameter) or ""
            unit = f" [{unit}]" if unit else ""
            title = f"{name}: {parameter}{unit}, {level.data}, L = {results.luminosity_ifb:g} fb⁻¹"
            table = Table(title=title, pad_edge=False)
            table.add_column("method", overflow="fold")  # a long name folds, never cut to a twin
            for key in mine:
                table.add_column(f"{key.rsplit('_', 1)[1]}% CL", justify="center", no_wrap=True)
            if level.coverage is not None:
                table.add_column("coverage", justify="right", no_wrap=True)
            for method, iv in level.intervals.items():
                cells = [f"[{_fmt(iv[k][0])},{_fmt(iv[k][1])}]" if k in iv else "-" for k in mine]
                if level.coverage is not None:
                    cov = level.coverage.coverage.get(method, {})
                    cells.append(" / ".join(f"{cov[k]:.2f}" for k in mine if k in cov) or "-")
                table.add_row(method, *cells)
            console.print(table)
        if level.coverage is not None:
            console.print(f"coverage: fraction of {level.coverage.n_toys} pseudo-experiments whose interval "
                          f"contains the θ they were drawn at", highlight=False, soft_wrap=True)  # fmt: skip
        for warning in level.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    register_all(app, limits)
