"""One object owns the run folder's file names (``assay run`` → ``assay train`` → ``assay limits``).

A run folder holds, from :func:`assay.pipeline.run_pipeline`: ``basis.json`` (morphing basis),
``events.h5`` (the event store), ``cutflow.json`` (detector-level selection), ``split.h5`` (train /
validation / test rows) and ``sets/<set>_<partition>.h5`` (training sets); from
:func:`assay.training.train`: ``models/<model>/`` (one folder per named model, an
``.checkpoints/`` folder while a fit is unfinished); from :func:`assay.analysis.limits.run_limits`:
``limits/summary.json``, ``limits/results.json`` and ``limits/pyhf/<histogram>.json``.

Example:
    >>> run = RunDir("runs/toy")
    >>> str(run.events), str(run.model("alices")), str(run.training_set("sally", "train"))
    ('runs/toy/events.h5', 'runs/toy/models/alices', 'runs/toy/sets/sally_train.h5')
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assay.exceptions import StoreError
from assay.saving import unwritable, unwritable_error

__all__ = ["ResultsDir", "RunDir"]


@dataclass(frozen=True)
class ResultsDir:
    """The file layout of a results folder: a run's ``limits/``, or the demo's output folder.

    Example:
        >>> str(ResultsDir("assay-demo").results), str(RunDir("runs/toy").limits.report)
        ('assay-demo/results.json', 'runs/toy/limits/report.html')
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def results(self) -> Path:
        """``results.json``: :class:`assay.results.Results`."""
        return self.root / "results.json"

    @property
    def summary(self) -> Path:
        """``summary.json``: the intervals per method, best fits, warnings, timings."""
        return self.root / "summary.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def coverage(self) -> Path:
        """``coverage.json``: ``assay coverage`` (profiled intervals in pseudo-experiments)."""
        return self.root / "coverage.json"

    @property
    def diagnostics(self) -> Path:
        """``diagnostics.json``: ``assay diagnostics`` (closure, two-sample test, calibration)."""
        return self.root / "diagnostics.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def pyhf(self) -> Path:
        return self.root / "pyhf"

    def pyhf_workspace(self, name: str) -> Path:
        return self.pyhf / f"{name}.json"


@dataclass(frozen=True)
class RunDir:
    """The file layout of one run folder.

    Attributes:
        root: the folder (the config's ``output`` unless given on the command line).
    """

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    # ---- one command at a time ------------------------------------------------------------
    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the folder for ``command``: a second `assay run`/`train` on the same folder stops
        with an error naming the holder (PID and host) instead of racing it.

        A lock left by a process that no longer runs on this host is taken over.

        Raises:
            StoreError: another live process holds the folder, or the folder cannot be written
                (read-only, not the user's): nothing in it is changed.
        """
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
        with _unwritable_named(self.lock_file, command):
            self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                with _unwritable_named(self.lock_file, command):
                    fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_lock(self.lock_file)
                if holder is not None and not _dead(holder):
                    raise StoreError(
                        f"{self.root}: `assay {holder.get('command', '?')}` (pid {holder.get('pid')} on "
                        f"{holder.get('host')}) is using this folder; wait for it to finish, or delete "
                        f"{self.lock_file} if that process is gone"
                    ) from None
                self.lock_file.unlink(missing_ok=True)  # stale: its process has ended
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            break
        try:
            yield
        finally:
            if _read_lock(self.lock_file) == me:
                self.lock_file.unlink(missing_ok=True)

    # ---- assay run -------------------------------------------------------------------------
    @property
    def basis(self) -> Path:
        return self.root / "basis.json"

    @property
    def events(self) -> Path:
        return self.root / "events.h5"

    def process_events(self, process: str) -> Path:
        """One process's events before they are merged into :attr:`events` (backgrounds)."""
        return self.root / f"events_{process}.h5"

    @property
    def cut_flow(self) -> Path:
        return self.root / "cutflow.json"

    @property
    def split(self) -> Path:
        return self.root / "split.h5"

    @property
    def sets(self) -> Path:
        return self.root / "sets"

    @property
    def sets_manifest(self) -> Path:
        return self.sets / "manifest.json"

    def training_set(self, name: str, partition: str) -> Path:
        return self.sets / f"{name}_{partition}.h5"

    # ---- assay train -----------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def checkpoints(self) -> Path:
        return self.models / ".checkpoints"

    def checkpoint(self, name: str) -> Path:
        """Per-epoch state of the unfinished fit of model ``name`` (absolute: Dask workers may run
        elsewhere than the working directory)."""
        return (self.checkpoints / name).absolute()

    # ---- assay limits -----------------------------------------------------------------------
    @property
    def limits(self) -> ResultsDir:
        """``limits/``: what ``assay limits`` writes (results, summary, pyhf workspaces, report)."""
        return ResultsDir(self.root / "limits")


@contextmanager
def _unwritable_named(lock_file: Path, command: str) -> Iterator[None]:
    """A read-only run folder (or one not the user's) as one StoreError naming it."""
    try:
        yield
    except OSError as err:
        if unwritable(err):
            raise unwritable_error(lock_file, err, f"`assay {command}` changed nothing.") from err
        raise


def _read_lock(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _dead(holder: dict) -> bool:
    """Whether the lock's process is gone: on this host, no such PID; on another, never assumed."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, TypeError, OverflowError):
        return False
    return False
