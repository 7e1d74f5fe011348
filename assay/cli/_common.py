"""Shared pieces of the CLI: error reporting and the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from assay.exceptions import AssayError

if TYPE_CHECKING:
    from assay.config import RunConfig

console = Console()

CONFIG = typer.Argument(..., exists=True, dir_okay=False, help="YAML run configuration.")
OUTPUT = typer.Option(None, "--output", "-o", help="Output folder (default: the config's output).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
WORKERS = typer.Option(
    None, "--workers", "-w", min=1,
    help="Dask workers (local) or jobs (slurm/htcondor); overrides the config's parallel.workers; 1: serial.",
)  # fmt: skip


INTERRUPTED = 130  # the shell's code for a command ended by SIGINT (128 + 2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn assay's named errors into one red message and exit code 2 (no traceback), and Ctrl-C
    into one line and exit code 130 (every step writes atomically and resumes on a rerun)."""
    try:
        yield
    except AssayError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(code=2) from exc
    except KeyboardInterrupt:
        console.print("interrupted; rerun the same command to resume where it stopped", highlight=False)
        raise typer.Exit(code=INTERRUPTED) from None


@contextmanager
def dask_client(workers: int | None) -> Iterator[object]:
    """A local Dask cluster with ``workers`` workers for the duration (``--workers``), or None."""
    if not workers:
        yield None
        return
    from assay.cluster import local_client

    with local_client(workers) as client:
        yield client


@contextmanager
def parallel_client(cfg: RunConfig, workers: int | None) -> Iterator[Any]:
    """The Dask client of the config's ``parallel:`` section (:func:`assay.cluster.client_for`), or
    None (serial) when the config has no such section and ``--workers`` is not given; ``workers``
    overrides ``parallel.workers``."""
    if workers is None and "parallel" not in cfg.model_fields_set:
        yield None
        return
    from assay.cluster import client_for

    with client_for(cfg.parallel, workers=workers) as client:
        yield client


def register_all(app: typer.Typer, *commands: Callable) -> None:
    for command in commands:
        app.command()(command)
