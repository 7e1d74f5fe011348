"""Shared pieces of the CLI: error reporting and the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from assay.exceptions import AssayError

console = Console()

CONFIG = typer.Argument(..., exists=True, dir_okay=False, help="YAML run configuration.")
OUTPUT = typer.Option(None, "--output", "-o", help="Output folder (default: the config's output).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")


INTERRUPTED = 130  # the shell's code for a command ended by SIGINT (128 + 2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn assay's named errors into one red message and exit code 2 (no traceback), and Ctrl-C
    into one line and exit code 130 (every step writes atomically and resumes on a rerun)."""
    try:
        yield
    except AssayError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
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


def register_all(app: typer.Typer, *commands: Callable) -> None:
    for command in commands:
        app.command()(command)
