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
    """Summarise an event file: observables, benchmarks, cross sections, processes."""
    from assay.store import EventStore

    with user_errors(), EventStore(path) as store:
        xsec = store.weights_sum()
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


def register(app: typer.Typer) -> None:
    register_all(app, inspect, basis)
