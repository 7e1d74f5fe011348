"""Atomic file writes: text, JSON and saved-model directories (estimators, ensembles, BIT); torch-free."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assay.exceptions import StoreError

__all__ = ["atomic_path", "read_json", "replace_directory", "write_json", "write_text"]


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` to write instead; it replaces ``path`` (``os.replace``)
    when the block ends without error and is removed when it raises.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "a.txt").read_text(), len(list(folder.iterdir()))
        ('done', 1)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any, *, indent: int = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically (:func:`write_text`)."""
    write_text(path, json.dumps(data, indent=indent))


def replace_directory(new: Path, path: Path, *, markers: Sequence[str], what: str = "estimator") -> None:
    """Move the finished directory ``new`` to ``path``.

    An existing ``path`` is replaced only if it is empty or holds a saved model (one of the
    ``markers`` files); the old copy is restored if the final rename fails.

    ``what`` names the kind of model in the error message.

    Raises:
        StoreError: ``path`` exists and is something else (never overwritten).
    """
    if not path.exists():
        os.replace(new, path)
        return
    if not path.is_dir() or (any(path.iterdir()) and not any((path / m).is_file() for m in markers)):
        raise StoreError(f"{path}: exists and is not a saved {what}; refusing to overwrite it")
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / "previous")
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old / "previous", path)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def read_json(source: Path, *, missing: str, unreadable: str = "cannot read the metadata") -> Any:
    """Parse the JSON file ``source``; a missing or unreadable file is a StoreError naming it.

    ``missing`` and ``unreadable`` complete the message (``"<source>: <missing>"``,
    ``"<source>: <unreadable> (<reason>)"``).
    """
    try:
        return json.loads(source.read_text())
    except FileNotFoundError as exc:
        raise StoreError(f"{source}: {missing}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{source}: {unreadable} ({exc})") from exc
