"""Events that already exist: ``simulator: {kind: events, path: FILE}``.

``assay run`` takes an EventStore written by ``assay import-lhe``, ``assay import-madminer`` or
another run instead of generating one. The store fixes the benchmarks (its weight columns); the
config fixes the parameters, the morphing components and everything downstream. They must agree:

- the store's parameters are the config's, by name and in order;
- every benchmark the config lists is one of the store's, at the same θ (to 1e-9);
- the store's benchmarks solve the config's morphing (:class:`~assay.morphing.Morpher` refuses a
  singular basis, naming the condition number).

The file enters the run folder as ``OUTPUT/events.h5`` through a hard link (no copy, no extra disk;
the source must then not be rewritten in place), or a copy where the two folders are on different
file systems. A rerun with the same source reuses it.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from assay.config import EventsFileConfig, RunConfig, check_benchmarks
from assay.exceptions import ConfigError, StoreError
from assay.parameters import ParameterSpace
from assay.rundir import RunDir
from assay.saving import atomic_path, read_json, write_json
from assay.store import EventStore

__all__ = ["existing_space", "link_events", "source_record"]

_RECORD = "events_source.json"  # in the run folder: the source file's path, size and mtime

logger = logging.getLogger(__name__)


def existing_space(cfg: RunConfig, store: EventStore) -> ParameterSpace:
    """The config's parameters with the store's benchmarks, in the order of its weight columns.

    Raises:
        ConfigError: other parameters, or a configured benchmark the store lacks or has at another θ.
    """
    source = f"simulator.path {store.path}"
    stored = ParameterSpace.from_json(store.parameters)
    names = [p.name for p in cfg.parameters]
    if stored.names != names:
        raise ConfigError(
            f"{source}: the events have parameters {stored.names}, the config {names}; use the same "
            "names in the same order (they name the weight columns' θ)"
        )
    thetas = {b.name: np.asarray(b.theta) for b in stored.benchmarks}
    missing = [b for b in store.benchmarks if b not in thetas]
    if missing:
        raise StoreError(f"{store.path}: weight columns {missing} have no θ in the file's parameters")
    check_benchmarks(cfg, thetas, file=store.path, missing=f"among the events' benchmarks {store.benchmarks} "
                     f"({source}); remove it from the config or import events with its weights")  # fmt: skip
    points = {n: dict(zip(names, thetas[n].tolist())) for n in store.benchmarks}
    return ParameterSpace.from_dict(cfg.parameter_space().parameters, points)


def link_events(cfg: RunConfig, run: RunDir) -> EventStore:
    """``OUTPUT/events.h5`` as the configured file (hard link, else copy); a rerun reuses it.

    Raises:
        StoreError: the file is missing or not a complete EventStore.
    """
    sim = cfg.simulator
    assert isinstance(sim, EventsFileConfig)
    source = Path(sim.path)
    if not source.is_file():
        raise StoreError(
            f"simulator.path {source}: no such file; write it with `assay import-lhe`, "
            "`assay import-madminer` or `assay generate` first"
        )
    EventStore(source).close()  # a complete, readable store before anything is linked
    stat = source.stat()
    record = {"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker = run.root / _RECORD
    if run.events.exists() and _same_source(run.events, source, marker, record):
        return EventStore(run.events)
    with atomic_path(run.events) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
            how = "linked"
        except OSError:  # another file system, or links not allowed there
            shutil.copyfile(source, tmp)
            how = "copied"
    write_json(marker, record)
    logger.info("%s %s to %s", how, source, run.events)
    return EventStore(run.events)


def source_record(run: RunDir) -> dict | None:
    """The record of the file ``events.h5`` was taken from (None for generated events): training sets
    made from another file are stale even where the config is unchanged."""
    marker = run.root / _RECORD
    if not marker.exists():
        return None
    return read_json(marker, missing="missing", unreadable="cannot read the events' source record")


def _same_source(events: Path, source: Path, marker: Path, record: dict) -> bool:
    if events.samefile(source):
        return True
    return marker.exists() and read_json(marker, missing="missing", unreadable="not valid JSON") == record
