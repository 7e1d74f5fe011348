"""Observed events for ``assay limits --data FILE``: an EventStore or a WH LHE file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from assay.analysis.methods import Dataset
from assay.config import RunConfig, WHConfig
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.rundir import RunDir
from assay.store import EventStore

__all__ = ["observed_dataset"]


def observed_dataset(path: str | os.PathLike, cfg: RunConfig, run: RunDir, sample: AsimovSample) -> Dataset:
    """The events of ``path`` as observed data (unweighted, w_i = 1).

    An EventStore (``.h5``) is read as it is; an LHE file (``.lhe``, ``.lhe.gz``) of the WH process
    is imported with the run's parameters and basis first. Benchmark weights, where the file has
    them, are kept for the truth.

    Raises:
        StoreError: the file is missing or unreadable.
        ConfigError: its observables differ from the run's (names them both).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: --data file not found")
    if path.name.endswith((".lhe", ".lhe.gz")):
        return _from_lhe(path, cfg, run, sample)
    with EventStore(path) as store:
        observables = list(store.observables)
        _check_observables(path, observables, sample)
        events = store.take(slice_all(store.n_events), fields=("x", "weights"))
        same_benchmarks = list(store.benchmarks) == _benchmarks(run)
    bench = events.weights if same_benchmarks else None
    return Dataset(events.x, bench, False, f"observed: {path}")


def slice_all(n: int):
    import numpy as np

    return np.arange(n)


def _benchmarks(run: RunDir) -> list[str]:
    with EventStore(run.events) as store:
        return list(store.benchmarks)


def _check_observables(path: Path, observables: list[str], sample: AsimovSample) -> None:
    if observables != list(sample.observables):
        raise ConfigError(
            f"{path}: observables {observables} differ from the run's {list(sample.observables)} "
            f"(the models were trained on those, in that order); --data needs the same observables"
        )


def _from_lhe(path: Path, cfg: RunConfig, run: RunDir, sample: AsimovSample) -> Dataset:
    if not isinstance(cfg.simulator, WHConfig) or cfg.simulator.detector is not None:
        raise ConfigError(
            f"{path}: LHE data can be read for the parton-level WH simulator only; convert it into an "
            f"EventStore with the run's observables (assay import-lhe) and pass that"
        )
    from assay.io.wh_lhe import import_lhe
    from assay.training import read_basis

    morpher = read_basis(run.basis)
    with tempfile.TemporaryDirectory(dir=run.root) as folder:
        store = import_lhe([path], Path(folder) / "data.h5", cfg.parameter_space(), morpher)
        with store:
            _check_observables(path, list(store.observables), sample)
            events = store.take(slice_all(store.n_events), fields=("x",))
    return Dataset(events.x, None, False, f"observed: {path}")
