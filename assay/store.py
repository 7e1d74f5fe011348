"""The EventStore: the one class that owns the HDF5 layout of assay event files.

Layout (schema version 1); dataset names are the constants below and nowhere else:

- ``observables``        (n_events, n_obs) float64, the observables x
- ``weights``            (n_events, n_benchmarks) float64, weights in pb; Σ_events = σ in pb
- ``labels/process``     (n_events,) int32, index into the ``processes`` names
- ``labels/benchmark``   (n_events,) int32, index of the generating benchmark, -1 if none
- ``extras/<name>``      (n_events, ...) float64, optional per-event arrays (truth, latents)

Root attributes: ``format`` = "assay.EventStore", ``schema_version``, ``assay_version``,
``complete`` (True only after :meth:`EventWriter.finalize`), ``n_committed`` (events of the
last complete append) and the JSON strings ``observables``, ``benchmarks``, ``processes``,
``parameters``, ``morphing`` and ``config``; ``provenance`` (JSON, :mod:`assay.provenance`) where given.

Writing goes to ``<path>.partial`` (always this deterministic name, so that any interrupted
run can be continued with ``resume=True``); only ``finalize`` makes ``path`` appear, by an
atomic ``os.replace``.

Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/events.h5"
    >>> with EventStore.create(path, observables=["pt"], benchmarks=["sm", "bsm"]) as w:
    ...     w.append(np.ones((3, 1)), np.full((3, 2), 0.5))
    >>> with EventStore(path) as store:
    ...     store.n_events, store.weights_sum().tolist()
    (3, [1.5, 1.5])
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.exceptions import StoreError
from assay.provenance import Provenance, write_h5_provenance
from assay.saving import disk_full, full_error, require_space
from assay.store_layout import (
    _COMPRESSIONS,
    BENCHMARK,
    EXTRAS,
    FIELDS,
    FORMAT,
    NEGATIVE_WEIGHTS,
    PROCESS,
    SCHEMA_VERSION,
    WEIGHTS,
    ResumeMismatch,
    UnreadablePartial,
    X,
    _append_bytes,
    _block_rows,
    _check_datasets,
    _check_extras,
    _check_header,
    _check_label_values,
    _check_values,
    _floats,
    _labels,
    _make_extras,
    _make_meta,
    _new_partial,
    _open,
    _partial_path,
    _read_meta,
    _reading,
    _reopen_partial,
    _short,
)

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "EventChunk",
    "EventSelection",
    "EventStore",
    "EventWriter",
    "ResumeMismatch",
    "UnreadablePartial",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventChunk:
    """A contiguous range of events read from an :class:`EventStore`.

    Attributes:
        x: (n, n_obs) observables, float64, in the units of the observable definitions.
        weights: (n, n_benchmarks) weights in pb, float64; may be negative.
        process: (n,) int32 index into ``EventStore.processes``.
        benchmark: (n,) int32 index of the generating benchmark, -1 if none.
        extras: name -> (n, ...) float64 per-event arrays (empty unless requested).
        start: index in the file of the first event of the chunk.
    """

    x: np.ndarray
    weights: np.ndarray
    process: np.ndarray
    benchmark: np.ndarray
    extras: dict[str, np.ndarray]
    start: int

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class EventSelection:
    """Events gathered at arbitrary indices by :meth:`EventStore.take`.

    Attributes:
        indices: (n,) int64 event indices, in the order requested (may repeat).
        x, weights, process, benchmark: as in :class:`EventChunk`, row i belonging to event
            ``indices[i]``; ``None`` where the field was not requested.
        extras: name -> (n, ...) float64, only the requested extras.
    """

    indices: np.ndarray
    x: np.ndarray | None = None
    weights: np.ndarray | None = None
    process: np.ndarray | None = None
    benchmark: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


class EventWriter:
    """Appends events to ``<path>.partial``; returned by :meth:`EventStore.create`.

    A context manager: leaving the ``with`` block normally finalizes, an ``Exception``
    aborts (deletes the partial file), and ``KeyboardInterrupt``/``SystemExit`` only close
    it, so the run can be continued with ``EventStore.create(..., resume=True)``.
    """

    def __init__(
        self, file: h5py.File, path: Path, meta: dict[str, Any], extras: dict[str, tuple[int, ...]]
    ) -> None:
        self._file: h5py.File | None = file
        self.path = path
        self.partial_path = _partial_path(path)
        self._meta = meta
        self._extras = extras
        self._n = int(file.attrs["n_committed"])
        self._negative = bool(file.attrs.get(NEGATIVE_WEIGHTS, True))
        self.restarted: str | None = None  # why a damaged partial file was started over
        self.provenance: Provenance | None = None  # written by finalize (root attribute 'provenance')

    @property
    def n_events(self) -> int:
        """Number of events committed so far (including those of a resumed run)."""
        return self._n

    @property
    def checkpoint(self) -> int:
        """The caller's progress counter stored with the last append (0 if never set)."""
        return int(self._require_open().attrs.get("checkpoint", 0))

    def append(
        self,
        x: np.ndarray,
        weights: np.ndarray,
        *,
        process: int | np.ndarray = 0,
        benchmark: int | np.ndarray = -1,
        extras: Mapping[str, np.ndarray] | None = None,
        checkpoint: int | None = None,
    ) -> None:
        """Validate a batch of events, write it and flush it to disk.

        Args:
            x: (n, n_obs) observables, finite.
            weights: (n, n_benchmarks) weights in pb, finite (negative allowed).
            process: scalar or (n,) integer index into the processes, default 0.
            benchmark: scalar or (n,) integer index of the generating benchmark, -1 if none.
            extras: name -> (n, *shape) float arrays, one for every extra declared at create.
            checkpoint: progress counter committed together with the events (e.g. batches
                done, which may differ from events when a selection drops some); read it
                back from :attr:`checkpoint` when resuming.

        Raises:
            StoreError: naming the file, on any shape, dtype, range or finiteness problem or a
                negative weight in a file created with ``negative_weights=False`` (nothing is
                written), or if the writer is no longer open.
        """
        file, where = self._require_open(), self.partial_path
        batch = {X: _floats("x", x, self._meta["observables"], "observable", self._n, where)}
        batch[WEIGHTS] = _floats("weights", weights, self._meta["benchmarks"], "benchmark", self._n, where,
                                 negative=self._negative)  # fmt: skip
        n = len(batch[X])
        if len(batch[WEIGHTS]) != n:
            raise StoreError(
                f"{where}: x and weights: expected the same number of rows (events), got {n} and "
                f"{len(batch[WEIGHTS])}"
            )
        batch[PROCESS] = _labels("process", process, n, self._meta["processes"], 0, where)
        batch[BENCHMARK] = _labels("benchmark", benchmark, n, self._meta["benchmarks"], -1, where)
        batch.update(_check_extras(extras, self._extras, n, where, self._n))
        kept = f"The {self._n} events written before are kept in it; the rerun resumes from there."
        require_space(where, _append_bytes(file, batch), kept=kept)
        try:
            for name, values in batch.items():
                file[name].resize(self._n + n, axis=0)
                file[name][self._n :] = values
            file.attrs["n_committed"] = self._n + n
            if checkpoint is not None:
                file.attrs["checkpoint"] = int(checkpoint)
            file.flush()
        except (OSError, RuntimeError) as err:  # h5py reports a failed write as either
            self._discard()
            if disk_full(err):
                raise full_error(where, err, "HDF5 may have left it unreadable; the rerun then starts it "
                                             "over (and says so), else resumes it.") from err  # fmt: skip
            raise StoreError(f"{where}: cannot write events {self._n}-{self._n + n}: {err}") from err
        self._n += n

    def finalize(self) -> EventStore:
        """Mark the file complete, move it atomically to ``path`` and open it for reading."""
        file = self._require_open()
        try:
            if self.provenance is not None:
                write_h5_provenance(file, self.provenance)
            file.attrs["complete"] = True
            file.close()
        except (OSError, RuntimeError) as err:
            self._discard()
            if disk_full(err):
                kept = "The rerun starts it over if it is unreadable."
                raise full_error(self.partial_path, err, kept) from err
            raise StoreError(f"{self.partial_path}: cannot finish the file: {err}") from err
        self._file = None
        os.replace(self.partial_path, self.path)
        log.info("wrote %d events to %s", self._n, self.path)
        return EventStore(self.path)

    def abort(self) -> None:
        """Close and delete the partial file; ``path`` is left untouched."""
        self.close()
        self.partial_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close without finalizing: the partial file stays for ``resume=True``."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            if self._file is not None:
                self.finalize()
        elif issubclass(exc_type, Exception):
            self.abort()
        else:
            self.close()
            log.warning(
                "interrupted: kept %d events in %s; continue with resume=True", self._n, self.partial_path
            )

    def __repr__(self) -> str:
        state = "open" if self._file is not None else "closed"
        return f"EventWriter({str(self.path)!r}, n_events={self._n}, {state})"

    def _discard(self) -> None:
        """Drop a file whose write failed (closing it fails again; HDF5's noise is not the user's)."""
        file, self._file = self._file, None
        hook, sys.unraisablehook = sys.unraisablehook, lambda _: None
        try:
            file.close()
        except Exception:  # the write already failed; this is the cleanup
            pass
        finally:
            del file
            gc.collect()
            sys.unraisablehook = hook

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"writer for {self.path} is closed (finalized, aborted or closed)")
        return self._file


class EventStore:
    """Read-only access to an event file, validated on open; data stay on disk.

    Args:
        path: file written by :meth:`EventStore.create`.

    Attributes:
        n_events: number of events.
        observables, benchmarks, processes: names of x columns, weight columns, processes.
        parameters, morphing, config: the JSON metadata given at creation.
        extras_shapes: name -> trailing shape of each extra.
        schema_version, assay_version: of the file and of the assay that wrote it.

    Raises:
        StoreError: naming the file and the field, if the file is missing, not HDF5,
            truncated, foreign, of a newer schema, unfinished or inconsistent.
    """

    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = _open(self.path, "r")
        try:
            with _reading(self.path, "open it"):
                self.schema_version = _check_header(self._file, self.path, resuming=False)
                meta = _read_meta(self._file, self.path)
                self.n_events, self.extras_shapes = _check_datasets(self._file, self.path, meta)
                declared = self._file.attrs.get(NEGATIVE_WEIGHTS)
                if declared is not None and not isinstance(declared, (bool, np.bool_)):
                    raise StoreError(
                        f"{self.path}: attribute {NEGATIVE_WEIGHTS!r} is {declared!r}, expected true or false"
                    )
                self.assay_version = str(self._file.attrs.get("assay_version", "unknown"))
        except BaseException:
            self.close()
            raise
        self.observables: list[str] = meta["observables"]
        self.benchmarks: list[str] = meta["benchmarks"]
        self.processes: list[str] = meta["processes"]
        self.parameters: dict[str, Any] = meta["parameters"]
        self.morphing: dict[str, Any] | None = meta["morphing"]
        self.config: dict[str, Any] | None = meta["config"]
        self.negative_weights: bool | None = None if declared is None else bool(declared)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        observables: Sequence[str],
        benchmarks: Sequence[str],
        processes: Sequence[str] = ("signal",),
        parameters: dict[str, Any] | None = None,
        morphing: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        extras: Mapping[str, tuple[int, ...]] | None = None,
        chunk_events: int = 65536,
        compression: str | None = "gzip",
        overwrite: bool = False,
        resume: bool = False,
        negative_weights: bool | None = None,
        provenance: Provenance | None = None,
    ) -> EventWriter:
        """Start writing a new event file (to ``<path>.partial`` until finalized).

        Args:
            path: final file path.
            observables, benchmarks, processes: names (columns of x, of weights, labels).
            parameters: JSON-able description of the parameter space.
            morphing, config: JSON-able dicts (or None) stored for provenance.
            extras: name -> trailing shape of each optional per-event array.
            chunk_events: rows per HDF5 chunk (capped so one chunk stays below 16 MiB).
            compression: "gzip", "lzf" or None.
            overwrite: replace an existing ``path`` and discard a stale partial file.
            resume: continue ``<path>.partial`` of an interrupted run if it exists; its
                metadata must equal this call's. ``EventWriter.n_events`` says how many
                events it already holds. A damaged partial file (e.g. left by a full disk) is
                started over when ``overwrite`` is set too; ``EventWriter.restarted`` says why.
            negative_weights: whether the sample may have negative weights (interference, NLO):
                False refuses them on write and on read; None (default) declares nothing.
            provenance: what made the file (:func:`assay.provenance.make_provenance`), written as the
                root attribute ``provenance`` when the file is finalized; not compared on resume.

        Raises:
            StoreError: bad metadata, ``path`` exists, a partial file exists and neither
                ``resume`` nor ``overwrite`` is set, or the partial file does not match.
        """
        path = Path(path)
        meta = _make_meta(observables, benchmarks, processes, parameters, morphing, config)
        shapes = _make_extras(extras)
        if int(chunk_events) < 1 or compression not in _COMPRESSIONS:
            raise StoreError(
                f"chunk_events must be >= 1 and compression one of "
                f"{_COMPRESSIONS}; got {chunk_events}, {compression!r}"
            )
        if path.exists() and not overwrite:
            raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
        if not path.parent.is_dir():
            raise StoreError(f"{path}: directory {path.parent} does not exist; create it first")
        partial, restarted = _partial_path(path), None
        file = None
        if resume and partial.exists():
            try:
                file = _reopen_partial(partial, meta, shapes, negative_weights)
                log.info("resuming %s with %d events", partial, file.attrs["n_committed"])
            except UnreadablePartial as err:
                if not overwrite:
                    raise
                restarted = str(err)
                log.warning("%s cannot be continued (%s); starting it over", partial, err)
        elif partial.exists() and not overwrite:
            raise StoreError(
                f"{partial} exists from an interrupted write; pass resume=True to "
                f"continue it or overwrite=True to discard it"
            )
        if file is None:
            require_space(partial, 0)
            file = _new_partial(partial, meta, shapes, int(chunk_events), compression, negative_weights)
        writer = EventWriter(file, path, meta, shapes)
        writer.restarted = restarted
        writer.provenance = provenance
        return writer

    @property
    def n_obs(self) -> int:
        return len(self.observables)

    @property
    def n_benchmarks(self) -> int:
        return len(self.benchmarks)

    @property
    def extras_names(self) -> list[str]:
        return list(self.extras_shapes)

    def read(self, start: int = 0, stop: int | None = None, *, extras: bool = True) -> EventChunk:
        """Read events ``start:stop`` (0 <= start <= stop <= n_events) into memory."""
        stop = self.n_events if stop is None else stop
        if not 0 <= start <= stop <= self.n_events:
            raise IndexError(
                f"read({start}, {stop}): expected 0 <= start <= stop <= "
                f"n_events = {self.n_events} of {self.path}"
            )
        f = self._require_file()
        names = self.extras_shapes if extras else {}
        with _reading(self.path, f"read events {start}-{stop}"):
            got = {name: self._checked(name, f[name][start:stop], start) for name in FIELDS.values()}
            extra = {n: self._checked(f"{EXTRAS}/{n}", f[f"{EXTRAS}/{n}"][start:stop], start) for n in names}
        core = {key: got[name] for key, name in FIELDS.items()}
        return EventChunk(**core, extras=extra, start=start)

    def iter_chunks(self, chunk_size: int = 100_000, *, extras: bool = False) -> Iterator[EventChunk]:
        """Stream all events in order, ``chunk_size`` at a time (the last chunk may be short)."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        for start in range(0, self.n_events, chunk_size):
            yield self.read(start, min(start + chunk_size, self.n_events), extras=extras)

    def take(self, indices: np.ndarray, *, fields: Sequence[str] = ("x",)) -> EventSelection:
        """Gather events at arbitrary (unsorted, repeated) indices, streaming the file in order.

        Args:
            indices: (n,) integer event indices in [0, n_events).
            fields: any of "x", "weights", "process", "benchmark", "extras" (all extras) or
                the name of one extra.

        Returns:
            EventSelection whose row i is event ``indices[i]``.
        """
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise IndexError(f"take: expected a 1D integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_events):
            raise IndexError(
                f"take: indices must lie in [0, {self.n_events}) for {self.path}, "
                f"got range [{idx.min()}, {idx.max()}]"
            )
        rows, inverse = np.unique(idx.astype(np.int64), return_inverse=True)
        with _reading(self.path, "read events"):
            got = {name: self._gather(name, rows)[inverse] for name in self._fields(fields)}
        core = {key: got.get(name) for key, name in FIELDS.items()}
        extras = {n: got[f"{EXTRAS}/{n}"] for n in self.extras_shapes if f"{EXTRAS}/{n}" in got}
        return EventSelection(indices=idx.astype(np.int64), extras=extras, **core)

    def weights_sum(self) -> np.ndarray:
        """(n_benchmarks,) Σ_events weights, i.e. the cross section at each benchmark in pb."""
        ds = self._require_file()[WEIGHTS]
        total = np.zeros(self.n_benchmarks)
        step = _block_rows(ds)
        with _reading(self.path, "read the weights"):
            for start in range(0, self.n_events, step):
                total += self._checked(WEIGHTS, ds[start : start + step], start).sum(axis=0)
        return total

    def validate(self) -> EventStore:
        """Read every dataset once, block by block, checking values: finite observables, weights and
        extras, labels in range, and no negative weight unless the file declares them
        (:attr:`negative_weights`). Every read checks what it reads the same way; this checks all.

        Returns:
            ``self``.

        Raises:
            StoreError: naming the file, the dataset and the first bad row.
        """
        f = self._require_file()
        for name in (X, WEIGHTS, PROCESS, BENCHMARK, *(f"{EXTRAS}/{n}" for n in self.extras_shapes)):
            ds = f[name]
            step = _block_rows(ds)
            with _reading(self.path, f"read dataset {name!r}"):
                for start in range(0, self.n_events, step):
                    self._checked(name, ds[start : start + step], start)
        return self

    def close(self) -> None:
        """Close the file; further reads raise StoreError."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, str]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return (
            f"EventStore({str(self.path)!r}, n_events={self.n_events}, "
            f"observables={_short(self.observables)}, "
            f"benchmarks={_short(self.benchmarks)}, "
            f"processes={_short(self.processes)}, extras={self.extras_names})"
        )

    def _require_file(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"{self.path} is closed")
        return self._file

    def _fields(self, fields: Sequence[str]) -> list[str]:
        valid = [*FIELDS, "extras", *self.extras_shapes]
        names: list[str] = []
        for key in [fields] if isinstance(fields, str) else fields:
            if key not in valid:
                raise StoreError(f"take: unknown field {key!r}; valid fields of {self.path} are {valid}")
            more = (
                [f"{EXTRAS}/{n}" for n in self.extras_shapes]
                if key == "extras"
                else ([FIELDS[key]] if key in FIELDS else [f"{EXTRAS}/{key}"])
            )
            names += [n for n in more if n not in names]
        return names

    def _gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted, unique) of dataset ``name``, reading only blocks that hold any."""
        ds = self._require_file()[name]
        out = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
        step = _block_rows(ds)
        blocks = rows // step
        bounds = np.flatnonzero(np.diff(blocks)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(rows)], strict=True):
            if hi > lo:
                start = int(blocks[lo]) * step
                values = ds[start : start + step][rows[lo:hi] - start]
                out[lo:hi] = self._checked(name, values, 0, rows[lo:hi])
        return out

    def _checked(
        self, name: str, values: np.ndarray, start: int, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """``values`` read from dataset ``name`` (events ``start, start + 1, …``, or the event indices
        ``rows``), checked: finite floats, labels in range, weights >= 0 unless the file declares
        negative ones (:func:`~assay.store_layout._check_values`)."""
        index = (lambda row: start + row) if rows is None else (lambda row: int(rows[row]))
        if name in (PROCESS, BENCHMARK):
            n_names = len(self.processes if name == PROCESS else self.benchmarks)
            return _check_label_values(self.path, name, values, index, n_names)
        columns = {X: self.observables, WEIGHTS: self.benchmarks}.get(name)
        negative = name != WEIGHTS or self.negative_weights is not False
        return _check_values(self.path, name, values, index, columns, negative=negative)
