"""``assay inspect FILE`` and ``assay basis CONFIG``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from assay.cli._common import console, register_all, user_errors


def inspect(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="An assay event file (.h5)."),
) -> None:
    """Summarise an event file: observables, benchmarks, cross sections, processes.

    Every value is checked on the way (NaN/inf, labels, negative weights where the file declares
    none): a damaged file is one error naming the dataset and row, never σ = nan.
    """
    from assay.store import EventStore

    with user_errors(), EventStore(path) as store:
        xsec = store.validate().weights_sum()
        table = Table(title=f"{path}: {store.n_events:,} events, schema v{store.schema_version}")
        table.add_column("benchmark")
        table.add_column("σ (pb)", justify="right")
        for name, value in zip(store.benchmarks, xsec):
            table.add_row(name, f"{value:.6g}")
        console.print(table)
        console.print(f"observables ({store.n_obs}): {', '.join(store.observables)}")
        console.print(
            f"processes: {', '.join(store.processes)}; extras: {', '.join(store.extras_names) or '-'}"
        )
        declared = {True: "allowed", False: "none (checked)", None: "not declared"}[store.negative_weights]
        console.print(f"negative weights: {declared}")
        for name, value in zip(store.benchmarks, xsec):
            if value <= 0:
                console.print(f"[bold yellow]warning:[/] σ({name}) = {value:.6g} pb is not positive: "
                              f"its weights cannot be sampled from", highlight=False)  # fmt: skip


def basis(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML run configuration."),
) -> None:
    """Print the (optimised) morphing basis of a config and its condition number."""
    from assay.config import load_config
    from assay.pipeline import build_basis

    with user_errors():
        cfg = load_config(config)
        space, morpher = build_basis(cfg, np.random.default_rng([cfg.seed, 0]))
    table = Table(
        title=f"morphing basis: {morpher.n_components} components, "
        f"condition number {morpher.condition_number:.3g}"
    )
    table.add_column("benchmark")
    for name in space.names:
        table.add_column(name, justify="right")
    for b in space.benchmarks:
        table.add_row(b.name, *(f"{v:+.4f}" for v in b.theta))
    console.print(table)


def import_lhe(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML config with the benchmarks."),
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="LHE files (.lhe/.lhe.gz)."),
    output: Path = typer.Option(..., "--output", "-o", help="EventStore file to write."),
    overwrite: bool = typer.Option(False, help="Replace OUTPUT if it exists."),
) -> None:
    """Read WH LHE files with MadGraph <rwgt> weights (one id per config benchmark) into an EventStore."""
    from assay.config import load_config
    from assay.io.wh_lhe import import_lhe_events

    with user_errors():
        store = import_lhe_events(load_config(config), files, output, overwrite=overwrite)
    console.print(f"{output}: {store.n_events:,} events from {len(files)} file(s), "
                  f"σ = {store.weights_sum()[0]:.6g} pb at {store.benchmarks[0]}")  # fmt: skip


def register(app: typer.Typer) -> None:
    register_all(app, inspect, basis, import_lhe)
