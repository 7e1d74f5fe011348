"""Observed events for ``assay limits --data FILE``: an EventStore or a WH LHE file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from assay.analysis.methods import Dataset
from assay.config import RunConfig, WHConfig
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.rundir import RunDir
from assay.store import EventStore

__all__ = ["observed_dataset"]


def observed_dataset(path: str | os.PathLike, cfg: RunConfig, run: RunDir, sample: AsimovSample) -> Dataset:
    """The events of ``path`` as observed data (unweighted, w_i = 1).

    An EventStore (``.h5``) is read as it is; from an LHE file (``.lhe``, ``.lhe.gz``) of the WH
    process the parton-level observables are computed. Benchmark weights, where a store has them
    for the run's benchmarks in the run's parameter space (the same parameters and benchmark points),
    are kept for the truth.

    Raises:
        StoreError: the file is missing or unreadable.
        ConfigError: its observables differ from the run's (names them both).
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: --data file not found")
    if path.name.endswith((".lhe", ".lhe.gz")):
        return _from_lhe(path, cfg, sample)
    with EventStore(path) as store:
        observables = list(store.observables)
        _check_observables(path, observables, sample)
        events = store.take(np.arange(store.n_events), fields=("x", "weights"))
        same_benchmarks = (list(store.benchmarks), store.parameters) == _benchmarks(run)
    bench = events.weights if same_benchmarks else None
    return Dataset(events.x, bench, False, f"observed: {path}")


def _benchmarks(run: RunDir) -> tuple[list[str], dict]:
    """The run's benchmark names and parameter space (names, ranges, benchmark points)."""
    with EventStore(run.events) as store:
        return list(store.benchmarks), store.parameters


def _check_observables(path: Path, observables: list[str], sample: AsimovSample) -> None:
    if observables != list(sample.observables):
        raise ConfigError(
            f"{path}: observables {observables} differ from the run's {list(sample.observables)} "
            f"(the models were trained on those, in that order); --data needs the same observables"
        )


def _from_lhe(path: Path, cfg: RunConfig, sample: AsimovSample) -> Dataset:
    """Observed WH events from LHE: seed 000's parton-level observables of the final state (the
    event weights, and any ``<rwgt>`` block, are not needed for observed data)."""
    if not isinstance(cfg.simulator, WHConfig) or cfg.simulator.detector is not None:
        raise ConfigError(
            f"{path}: LHE data can be read for the parton-level WH simulator only; convert it into an "
            f"EventStore with the run's observables and pass that"
        )
    from assay.io.lhe import read_lhe
    from assay.io.wh_lhe import wh_final_state
    from assay.observables import WH_OBSERVABLES, wh_observables

    _check_observables(path, list(WH_OBSERVABLES), sample)
    events, _ = read_lhe(path)
    fs = wh_final_state(events, path)
    x = wh_observables(fs["lepton"], fs["b"], fs["bbar"], fs["neutrino"], fs["charge"])
    return Dataset(np.asarray(x, dtype=float), None, False, f"observed: {path}")
