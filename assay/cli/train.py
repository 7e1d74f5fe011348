"""``assay train CONFIG``: train the config's named models (estimators, ensembles, BIT)."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.table import Table

from assay.cli._common import CONFIG, OUTPUT, QUIET, console, parallel_client, register_all, user_errors

MODELS = typer.Option(
    None, "--models", "-m", help="Train only these models (repeat the option); default: every model."
)


def train(
    config: Path = CONFIG,
    output: Path | None = OUTPUT,
    models: list[str] | None = MODELS,
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Dask workers for an ensemble (default: parallel.workers, else min(members, cores)); "
        "with a slurm/htcondor/address scheduler: its workers or jobs.",
    ),
    retrain: bool = typer.Option(
        False, "--retrain", help="Train models again even where the saved one has these settings and inputs."
    ),
    quiet: bool = QUIET,
) -> None:
    """Train the config's named models; each is saved to OUTPUT/models/<name>/ (a rerun resumes an
    interrupted fit and keeps a model trained before with the same seed, settings and inputs).

    Neural methods train on OUTPUT/sets/<set>_train.h5; `method: bit` fits Boosted Information
    Trees on the weighted train events of OUTPUT/events.h5. Ensemble members train on a local
    Dask cluster (batched in groups), or on the cluster of the config's `parallel` section when its
    scheduler is slurm, htcondor or an address (one member per task: the same members as --workers 1).
    """
    from assay.bit import BoostedInformationTree
    from assay.config import load_config
    from assay.estimators.mixture import MixtureModel
    from assay.training import model_names, train_model

    with user_errors():
        cfg = load_config(config)
        local = cfg.parallel.scheduler == "local"
        n_workers = (workers or cfg.parallel.workers) if local else None
        with nullcontext() if local else parallel_client(cfg, workers) as client:
            for name in model_names(cfg, models):
                progress = not quiet
                result = train_model(cfg, name, output, n_workers=n_workers, client=client, progress=progress,
                                     retrain=retrain)  # fmt: skip
                if result.kept:
                    console.print(f"{result.path}: trained before with these settings and inputs; kept "
                                  "(--retrain trains it again)", highlight=False, soft_wrap=True)  # fmt: skip
                elif isinstance(result.estimator, BoostedInformationTree):
                    _print_bit(result)
                elif isinstance(result.estimator, MixtureModel):
                    _print_mixture(result)
                else:
                    _print_neural(result)


def _print_neural(result) -> None:
    """One row per member: epochs, the kept epoch, its losses and the time."""
    n = len(result.histories)
    table = Table(title=f"{result.name}: {result.method} on {', '.join(result.training_sets)}, "
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
    console.print(f"saved to {result.path}", highlight=False, soft_wrap=True)


def _print_bit(result) -> None:
    """One row for a Boosted Information Tree: size, seed 002's loss after the last tree, fit time."""
    bit = result.estimator
    title = f"{result.name}: BIT on the train partition: {result.n_events} events, {result.wall_s:.1f} s"
    table = Table(title=title)
    for column in ("trees", "depth", "coefficients", "loss (pb)", "fit (s)"):
        table.add_column(column, justify="right")
    n_coef = bit.trees_[0].n_coef
    loss = f"{bit.history_[-1]:.5g}"
    table.add_row(str(len(bit.trees_)), str(bit.max_depth), str(n_coef), loss, f"{result.fit_s:.1f}")
    console.print(table)
    console.print(f"saved to {result.path}", highlight=False, soft_wrap=True)


def _print_mixture(result) -> None:
    """One row per process of a mixture model: its classifiers (ensemble members) and N_eff."""
    model = result.estimator
    table = Table(title=f"{result.name}: mixture model on the train partition: {result.n_events} events, "
                        f"{result.wall_s:.1f} s")  # fmt: skip
    for column in ("process", "classifiers", "N_eff"):
        table.add_column(column, justify="right")
    n_eff = dict(zip(model.processes_, map(float, model.n_eff_)))
    for process in model.processes_:
        members = len(model.classifiers_.get(process, ()))
        table.add_row(process, str(members) if members else "reference", f"{n_eff[process]:,.0f}")
    console.print(table)
    console.print(f"saved to {result.path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    register_all(app, train)
