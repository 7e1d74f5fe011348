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

import os
from dataclasses import dataclass
from pathlib import Path

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
