"""``assay train CONFIG``: train the configured estimator (or ensemble) on the run's training sets."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from assay.cli._common import CONFIG, OUTPUT, QUIET, console, register_all, user_errors


def train(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=1, help="Dask workers for an ensemble (default: min(members, cores))."
    ),
    quiet: bool = QUIET,
) -> None:
    """Train the config's `training` method on OUTPUT/sets/<set>_train.h5; save to OUTPUT/models/<method>/."""
    from assay.config import load_config
    from assay.training import train as run_training

    with user_errors():
        cfg = load_config(config)
        result = run_training(cfg, output, n_workers=workers, progress=not quiet)
    n = len(result.histories)
    table = Table(title=f"{result.method} on {', '.join(result.training_sets)}: "
                        f"{n} member{'s' if n > 1 else ''}, {result.wall_s:.1f} s")  # fmt: skip
    for column in ("member", "epochs", "kept epoch", "train loss", "val loss", "time (s)"):
        table.add_column(column, justify="right")
    for i, (history, seconds) in enumerate(zip(result.histories, result.member_s)):
        best = history.best_epoch
        val = f"{history.val_loss[best]:.5g}" if history.val_loss else "-"
        losses = (f"{history.train_loss[best]:.5g}", val)
        time_s = f"{seconds:.1f}" if math.isfinite(seconds) else "-"
        table.add_row(str(i), str(history.n_epochs), str(best), *losses, time_s)
    console.print(table)
    console.print(f"saved to {result.path}")


def register(app: typer.Typer) -> None:
    register_all(app, train)
