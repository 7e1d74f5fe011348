"""Chunked, resumable, deterministic event generation into an EventStore.

A simulator is anything with ``observables``, ``extras_shapes`` and
``batch(n_events, rng) -> EventBatch`` whose weights sum to the cross section (pb); a
batch may return fewer events than generated (a selection), its weights then sum to
σ × efficiency.
:func:`generate` calls it batch by batch, each batch with its own generator
``default_rng([seed, batch_index])``, so the output is the same whatever the batch at
which a run was interrupted and resumed. Each batch is an independent estimate of σ,
so its weights are scaled by ``n_batch / n_events``: the whole file then sums to σ.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from assay.exceptions import StoreError
from assay.interrupts import deferred_interrupt
from assay.provenance import Provenance, make_provenance
from assay.simulators.base import BatchSimulator, EventBatch
from assay.simulators.toys import GaussianToy
from assay.store import EventStore, ResumeMismatch

__all__ = ["BatchSimulator", "EventBatch", "ToyBatchSimulator", "generate", "merge_stores"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToyBatchSimulator:
    """:class:`GaussianToy` events at ``theta_gen``, weighted at ``benchmarks (n_benchmarks, n_params)``."""

    toy: GaussianToy
    theta_gen: np.ndarray
    benchmarks: np.ndarray
    processes: list[str] = field(default_factory=lambda: ["toy"])

    @property
    def observables(self) -> list[str]:
        return [f"x{i}" for i in range(self.toy.n_obs)]

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"z": (self.toy.n_obs,)}

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        ev = self.toy.simulate(n_events, self.theta_gen, self.benchmarks, rng)
        return EventBatch(ev.x, ev.weights, extras={"z": ev.z})


def generate(
    simulator: BatchSimulator,
    path: str | os.PathLike,
    n_events: int,
    *,
    seed: int,
    benchmarks: list[str],
    batch_size: int = 100_000,
    metadata: dict | None = None,
    progress: bool = True,
    client: Any = None,
    on_batch: Callable[[EventBatch], None] | None = None,
    compression: str | None = "lzf",
    negative_weights: bool = False,
    provenance: Provenance | None = None,
) -> EventStore:
    """Generate ``n_events`` into ``path``, resuming an interrupted run.

    Args:
        simulator: the event source.
        path: final HDF5 file; work goes to ``<path>.partial`` until complete.
        n_events: total number of events.
        seed: base seed; batch ``i`` uses ``numpy.random.default_rng([seed, i])``.
        benchmarks: names of the weight columns.
        batch_size: events per batch (and per resume step).
        metadata: keyword arguments for :meth:`EventStore.create` (parameters, morphing, config).
            The file's ``config`` is ``{"generation": {seed, n_events, batch_size}, "run": config}``.
        progress: show a progress bar.
        client: a ``dask.distributed.Client`` (LocalCluster, or a SLURM/HTCondor cluster from
            dask-jobqueue): batches run on its workers, results are appended in order.
            ``None`` runs in this process.
        on_batch: called with every batch in order (e.g. to sum cut flows).
        compression: HDF5 filter of the file; LZF (default) writes ~2× faster than gzip.
        negative_weights: the sample may have negative benchmark weights (interference, NLO;
            the config's ``sampling.allow_negative_weights``); otherwise a negative weight is an
            error naming the file, row and benchmark (:meth:`EventStore.create`).
        provenance: what makes the file (:func:`assay.provenance.make_provenance`; no inputs for
            simulated events), written into it when it is finished; a complete file returned unchanged
            keeps the provenance of the run that wrote it.

    Returns:
        The finished, opened :class:`EventStore`. If ``path`` already holds a complete
        file made with the same settings it is returned unchanged.

    Raises:
        StoreError: an interrupted run with other settings left ``<path>.partial``; the disk is
            full (the message names the file and says "no space left"; the batches written
            before are kept and a rerun resumes after them, or starts a partial file that HDF5
            left unreadable over, logging which); a batch has NaN/inf or unexpected negative weights.
    """
    path = Path(path)
    meta = dict(metadata or {})
    generation = {"seed": seed, "n_events": n_events, "batch_size": batch_size}
    meta["config"] = {"generation": generation, "run": meta.get("config")}
    if path.exists():
        store = EventStore(path)
        if store.config == meta["config"]:
            logger.info("%s is complete (%d events); nothing to do", path, n_events)
            return store
        store.close()
    try:
        writer = EventStore.create(
            path,
            observables=simulator.observables,
            benchmarks=benchmarks,
            processes=simulator.processes,
            extras=simulator.extras_shapes,
            resume=True,
            overwrite=True,
            compression=compression,
            negative_weights=negative_weights,
            provenance=provenance,
            **meta,
        )
    except ResumeMismatch as exc:
        raise StoreError(
            f"{exc}\n(an interrupted run with other settings (seed, n_events, batch_size, config) "
            f"left {path}.partial; rerun with those settings, or delete it to start over)"
        ) from exc
    done = writer.checkpoint  # batches completed by an interrupted run
    if writer.restarted:
        logger.warning("%s.partial was damaged (%s): starting it over", path, writer.restarted)
    elif done:
        logger.warning("resuming %s.partial after batch %d of %d (%d events kept)",
                       path, done, -(-n_events // batch_size), writer.n_events)  # fmt: skip
    try:
        with tqdm(
            total=n_events, initial=min(done * batch_size, n_events), unit="ev", desc=f"generate {path.name}",
            disable=not progress,
        ) as bar, deferred_interrupt() as check:  # Ctrl-C between batches, never lost in a finalizer
            sizes = [min(batch_size, n_events - i * batch_size) for i in range(-(-n_events // batch_size))]
            for index, b in _batches(simulator, seed, sizes, done, client):
                norm = sizes[index] / n_events
                extras = {k: v * norm if k in b.weight_like else v for k, v in b.extras.items()}
                labels = {"process": b.process, "benchmark": b.benchmark}
                writer.append(b.x, b.weights * norm, **labels, extras=extras, checkpoint=index + 1)
                if on_batch is not None:
                    on_batch(b)
                bar.update(sizes[index])
                check()  # after the batch is written: a rerun resumes after it
    except BaseException:
        writer.close()  # keep the partial file: a rerun resumes after the last full batch
        raise
    return writer.finalize()


def _one_batch(simulator: BatchSimulator, n: int, seed: int, index: int) -> EventBatch:
    return simulator.batch(n, np.random.default_rng([seed, index]))


def _batches(
    simulator: BatchSimulator, seed: int, sizes: list[int], start: int, client: Any
) -> Iterator[tuple[int, EventBatch]]:
    """Batches ``start, start + 1, …`` in order, computed here or on Dask workers (a window at a time)."""
    if client is None:
        for index in range(start, len(sizes)):
            yield index, _one_batch(simulator, sizes[index], seed, index)
        return
    remote = client.scatter(simulator, broadcast=True)
    pending = {}
    for index in range(start, len(sizes)):
        pending[index] = client.submit(_one_batch, remote, sizes[index], seed, index, pure=False)
        # two batches per worker in flight, counted again each time: SLURM/HTCondor jobs join late
        window = 2 * max(1, len(client.scheduler_info()["workers"]))
        if len(pending) >= window:
            first = min(pending)
            yield first, pending.pop(first).result()
    for index in sorted(pending):
        yield index, pending.pop(index).result()


def _negative_weights(stores: list[EventStore]) -> bool | None:
    """What a merge of ``stores`` declares: allowed if any input allows them, refused if all refuse."""
    declared = [s.negative_weights for s in stores]
    return True if True in declared else (False if all(d is False for d in declared) else None)


def merge_stores(
    paths: list[str | os.PathLike],
    output: str | os.PathLike,
    *,
    processes: list[str],
    chunk_size: int = 200_000,
    config: Any = None,
) -> EventStore:
    """Concatenate event files of different processes (same observables, benchmarks, extras) into one.

    Each input's weights already sum to its own σ × efficiency, so the merged weights sum to the
    total. Process labels are mapped by name onto ``processes``. The merged file is rebuilt only
    when an input changed (their ``config`` is recorded). Its provenance lists the inputs' SHA-256
    and ``config`` (a :class:`~assay.config.RunConfig` or its JSON; None: no config recorded).
    """
    stores = [EventStore(p) for p in paths]
    first = stores[0]
    config = {"merged": {str(s.path): s.config for s in stores}}
    if Path(output).exists():
        with EventStore(output) as old:
            if old.config == config:
                return EventStore(output)
    for s in stores[1:]:
        if (s.observables, s.benchmarks, s.extras_names) != (
            first.observables,
            first.benchmarks,
            first.extras_names,
        ):
            raise StoreError(
                f"{s.path}: observables/benchmarks/extras differ from {first.path}; cannot merge"
            )
    writer = EventStore.create(
        output, observables=first.observables, benchmarks=first.benchmarks, processes=processes,
        parameters=first.parameters, morphing=first.morphing, config=config, extras=first.extras_shapes,
        overwrite=True, compression="lzf", negative_weights=_negative_weights(stores),
        provenance=make_provenance(config=config, inputs=[s.path for s in stores]),
    )  # fmt: skip
    with writer:
        for s in stores:
            mapping = np.array([processes.index(name) for name in s.processes])
            for chunk in s.iter_chunks(chunk_size, extras=True):
                labels = {"process": mapping[chunk.process], "benchmark": chunk.benchmark}
                writer.append(chunk.x, chunk.weights, **labels, extras=chunk.extras)
    for s in stores:
        s.close()
    return EventStore(output)
