"""Command-line scaffold for issue 17, filled in by the module named in the first commit that uses it."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
