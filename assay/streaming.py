"""Out-of-core training: a training-set file streamed in chunks, shuffled by chunk (issue 17).

MadMiner needed more than 64 GB of RAM for 100M training samples (its issue #352): every array
was loaded, copied for the split and again for the shuffle. Here a training-set HDF5 file
(:class:`~assay.training_set.TrainingSet`'s layout) is read in contiguous chunks of
``chunk_size`` rows:

- :class:`TrainingSetFile` reads a chunk as a validated :class:`~assay.training_set.TrainingSet`
  and sums the column moments of x and θ in one pass (:meth:`TrainingSetFile.summary`);
- :class:`ChunkedDataset` is what :meth:`Trainer.fit <assay.estimators.train.Trainer.fit>` takes
  instead of in-memory arrays: each epoch the order of the chunks is drawn from the trainer's
  seeded generator and the rows are shuffled within a buffer of ``buffer_chunks`` chunks. The
  validation split takes whole chunks (drawn with the same generator); a set of one chunk is
  split by rows, exactly as in memory;
- :func:`fit_streamed` fits an estimator on a file this way; :func:`plan_streaming` is the rule
  :func:`assay.training.train_model` applies to the config's ``memory_gb``.

Peak memory is bounded by the chunks in flight, not by the set: about
``(2 buffer_chunks + 3) · chunk_size`` rows at float32 plus two chunks' worth at float64 while one
is read and checked (:meth:`ChunkedDataset.peak_bytes`); the process's resident memory grows by up
to about 1.7 times that (freed chunk-sized blocks kept by the allocator; benchmarks/memory.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch

from assay.exceptions import ConfigError, SamplingError, StoreError
from assay.training_set import ARRAYS, TrainingSet, read_header

if TYPE_CHECKING:
    from assay.estimators.base import Estimator

__all__ = [
    "DEFAULT_BUFFER_CHUNKS",
    "STREAM_FRACTION",
    "ChunkedDataset",
    "StreamPlan",
    "TrainingSetFile",
    "fit_streamed",
    "plan_streaming",
]

STREAM_FRACTION = 0.5
"""A set streams when its arrays take more than this fraction of ``memory_gb`` (in memory they are
held about twice: as read and as the trainer's float32 copy)."""
DEFAULT_BUFFER_CHUNKS = 4
_CHUNK_FRACTION = 0.05  # one chunk's float64 rows: this fraction of the budget
_MIN_CHUNK, _MAX_CHUNK = 4096, 1 << 20
_DIGEST_ROWS = 1024  # rows at either end of the set that enter the checkpoint fingerprint

Arrays = Mapping[str, np.ndarray]


class TrainingSetFile:
    """A training-set HDF5 file read in row ranges, without loading it.

    Args:
        path: a file written by :meth:`TrainingSet.save <assay.training_set.TrainingSet.save>`.

    Raises:
        StoreError: missing, not a training set, newer schema, or arrays of different lengths.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: cannot read training set (no such file; `assay run` makes it)")
        try:
            with h5py.File(self.path, "r") as f:
                meta = read_header(f, self.path)
                shapes = {k: f[k].shape for k in (*ARRAYS, "event_index") if k in f}
        except StoreError:
            raise
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read training set (truncated or damaged: {exc})") from exc
        if "x" not in shapes:
            raise StoreError(f"{self.path}: missing dataset 'x'")
        lengths = {k: s[0] if s else 0 for k, s in shapes.items()}
        if len(set(lengths.values())) != 1:
            raise StoreError(f"{self.path}: arrays of different lengths {lengths}")
        self.observables = tuple(meta["observables"])
        self.parameters = tuple(meta["parameters"])
        self.kind: str = meta["kind"]
        self.shapes = shapes
        self.n_samples = int(lengths["x"])

    def __len__(self) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return f"TrainingSetFile({str(self.path)!r}, {self.n_samples} samples, {self.kind})"

    @property
    def fields(self) -> list[str]:
        """The array fields in the file (like :meth:`TrainingSet.fields_present`)."""
        return [k for k in ARRAYS if k in self.shapes]

    @property
    def row_bytes(self) -> int:
        """Bytes of one sample's arrays at float64 (as :meth:`TrainingSet.load` holds them)."""
        return 8 * sum(math.prod(s[1:]) for k, s in self.shapes.items() if k in ARRAYS)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole set's arrays at float64."""
        return self.row_bytes * self.n_samples

    def read(self, start: int, stop: int) -> TrainingSet:
        """Rows ``start:stop`` as a validated :class:`TrainingSet` (without ``event_index``).

        Raises:
            StoreError: an unreadable range, or bad values (naming the file, the field and the row
                counted from the start of the file).
        """
        try:
            with h5py.File(self.path, "r") as f:
                arrays = {k: f[k][start:stop] for k in self.fields}
        except (OSError, KeyError, ValueError) as exc:
            raise StoreError(f"{self.path}: cannot read rows {start}-{stop} ({exc})") from exc
        try:
            return TrainingSet(
                observables=self.observables, parameters=self.parameters, kind=self.kind, **arrays
            )
        except SamplingError as exc:
            where = f"{self.path}: in rows {start}-{stop} (row numbers from {start})"
            raise StoreError(f"{where}: {exc}") from exc

    def summary(self, chunk_size: int) -> TrainingSet:
        """A two-row set with the file's column means and standard deviations, read in one pass.

        Rows ``mean − std`` and ``mean + std`` of x, θ0 and θ1 have exactly the mean and (ddof 0)
        standard deviation of the whole file, so an estimator's ``_prepare`` and ``fit_scalers``
        (means, stds, whether θ varies) see the statistics of all samples; a constant column is
        its value exactly. The other fields are the file's first two rows. A file of at most
        ``chunk_size`` rows is returned whole instead.
        """
        if self.n_samples <= max(chunk_size, 2):
            return self.read(0, self.n_samples)
        moments = {k: _Moments() for k in ("x", "theta0", "theta1") if k in self.shapes}
        for start in range(0, self.n_samples, chunk_size):
            part = self.read(start, min(start + chunk_size, self.n_samples))
            for key, m in moments.items():
                m.add(getattr(part, key))
        head = self.read(0, 2)
        arrays = {k: getattr(head, k) for k in self.fields}
        arrays |= {k: m.rows() for k, m in moments.items()}
        return TrainingSet(observables=self.observables, parameters=self.parameters, kind=self.kind, **arrays)


class _Moments:
    """Streamed column mean, variance (Chan et al.'s pairwise update), min and max of float64 rows."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2, self.low, self.high = 0, 0.0, 0.0, np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        k = len(values)
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        delta = mean - self.mean
        total = self.n + k
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * k / total)
        self.low, self.high = np.minimum(self.low, values.min(0)), np.maximum(self.high, values.max(0))
        self.n = total

    def rows(self) -> np.ndarray:
        """``(2, n_columns)``: mean ∓ std, a constant column exactly its value."""
        constant = self.low == self.high
        mean = np.where(constant, self.low, self.mean)
        std = np.where(constant, 0.0, np.sqrt(self.m2 / self.n))
        return np.stack([mean - std, mean + std])


@dataclass(frozen=True)
class _Source:
    """Rows of a file turned into an estimator's arrays (``transform``, e.g. ``Estimator._arrays``),
    with the sample weights of a Poisson-bootstrapped ensemble member if ``bootstrap`` is set."""

    file: TrainingSetFile
    transform: Callable[[TrainingSet], Arrays]
    bootstrap: np.random.SeedSequence | None = None

    def read(self, start: int, stop: int) -> Arrays:
        data = self.file.read(start, stop)
        if self.bootstrap is not None:
            from assay.estimators.ensemble import poisson_bootstrap

            # the counts of a chunk are seeded by its first row: the same in every epoch
            data = poisson_bootstrap(data, np.random.default_rng([*self.bootstrap.generate_state(4), start]))
        return self.transform(data)


class ChunkedDataset:
    """A training set streamed in contiguous chunks, shuffled by chunk (the module docstring).

    Args:
        file: the training-set file.
        transform: a chunk (:class:`TrainingSet`) → the arrays the loss reads, each ``(rows, ...)``
            (an estimator's ``_arrays``).
        chunk_size: rows per chunk (the last may be shorter).
        buffer_chunks: chunks whose rows are shuffled together in an epoch.
        chunks: the chunk numbers of this dataset (default all; :meth:`split` makes subsets).
        bootstrap: seeds Poisson(1) counts multiplying the sample weights (an ensemble member's
            bootstrap, :func:`~assay.estimators.ensemble.poisson_bootstrap`), drawn per chunk:
            equal in distribution to the in-memory bootstrap, not the same counts. None: none.

    Raises:
        ValueError: ``chunk_size`` or ``buffer_chunks`` below 1, or an empty file.
    """

    def __init__(
        self,
        file: TrainingSetFile,
        transform: Callable[[TrainingSet], Arrays],
        *,
        chunk_size: int = 65_536,
        buffer_chunks: int = DEFAULT_BUFFER_CHUNKS,
        chunks: np.ndarray | None = None,
        bootstrap: np.random.SeedSequence | None = None,
    ):
        if chunk_size < 1 or buffer_chunks < 1:
            raise ValueError(f"chunk_size, buffer_chunks: expected >= 1, got {chunk_size}, {buffer_chunks}")
        if file.n_samples == 0:
            raise ValueError(f"{file.path}: the training set holds no samples")
        self.file, self.transform = file, transform
        self.chunk_size, self.buffer_chunks = int(chunk_size), int(buffer_chunks)
        self.n_chunks_total = math.ceil(file.n_samples / self.chunk_size)
        self.chunks = np.arange(self.n_chunks_total) if chunks is None else np.asarray(chunks, dtype=np.int64)
        self.bootstrap = bootstrap
        self._source = _Source(file, transform, bootstrap)

    def _bounds(self, chunk: int) -> tuple[int, int]:
        start = int(chunk) * self.chunk_size
        return start, min(start + self.chunk_size, self.file.n_samples)

    def __len__(self) -> int:
        return sum(b - a for a, b in map(self._bounds, self.chunks))

    def __repr__(self) -> str:
        return (
            f"ChunkedDataset({str(self.file.path)!r}, {len(self)} rows in {len(self.chunks)} chunks of "
            f"{self.chunk_size}, buffer {self.buffer_chunks})"
        )

    def subset(self, chunks: np.ndarray) -> ChunkedDataset:
        """The same file and settings restricted to the chunk numbers ``chunks``."""
        return ChunkedDataset(
            self.file, self.transform, chunk_size=self.chunk_size, buffer_chunks=self.buffer_chunks,
            chunks=chunks, bootstrap=self.bootstrap,
        )  # fmt: skip

    def read_chunk(self, chunk: int) -> dict[str, torch.Tensor]:
        """One chunk's arrays as CPU tensors (floating ones float32, as the trainer casts them)."""
        return _tensors(self._source.read(*self._bounds(chunk)))

    def read_all(self) -> dict[str, torch.Tensor]:
        """Every row of this dataset in chunk order (for a set of one chunk)."""
        return self._read_chunks(self.chunks)

    def _read_chunks(self, chunks: np.ndarray) -> dict[str, torch.Tensor]:
        """The rows of ``chunks``, concatenated in that order."""
        parts = [self.read_chunk(c) for c in chunks]
        if len(parts) == 1:
            return parts[0]
        return {k: torch.cat([p.pop(k) for p in parts]) for k in list(parts[0])}  # each chunk freed in turn

    def split(self, fraction: float, generator: torch.Generator) -> tuple[ChunkedDataset, ChunkedDataset]:
        """(train, validation) holding out ``round(fraction · n_chunks)`` whole chunks (at least one
        each), drawn with ``generator``; needs at least two chunks."""
        n = len(self.chunks)
        if n < 2:
            raise ValueError(f"{self}: a split by chunks needs at least 2 chunks")
        n_val = min(max(1, round(fraction * n)), n - 1)
        perm = torch.randperm(n, generator=generator).numpy()
        val, train = np.sort(self.chunks[perm[:n_val]]), np.sort(self.chunks[perm[n_val:]])
        return self.subset(train), self.subset(val)

    def chunk_order(self, generator: torch.Generator) -> np.ndarray:
        """One epoch's order of the chunks, drawn from ``generator`` (no draw for one chunk)."""
        if len(self.chunks) < 2:
            return self.chunks.copy()
        return self.chunks[torch.randperm(len(self.chunks), generator=generator).numpy()]

    @property
    def n_buffers(self) -> int:
        """Buffers per epoch."""
        return math.ceil(len(self.chunks) / self.buffer_chunks)

    def buffers(self, order: np.ndarray, first: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """The chunks in ``order`` (:meth:`chunk_order`), ``buffer_chunks`` at a time, concatenated,
        from buffer number ``first`` on (the trainer shuffles the rows of each buffer)."""
        for i in range(first * self.buffer_chunks, len(order), self.buffer_chunks):
            yield self._read_chunks(order[i : i + self.buffer_chunks])  # not kept here while it trains

    def parts(self) -> Iterator[dict[str, torch.Tensor]]:
        """The chunks in file order (for the validation loss)."""
        for c in self.chunks:
            yield self.read_chunk(c)

    def digest(self) -> dict[str, torch.Tensor]:
        """What identifies the data in a checkpoint's fingerprint: the rows at either end of the
        file, the file's size in rows and this dataset's chunks."""
        n = self.file.n_samples
        head = _tensors(self._source.read(0, min(n, _DIGEST_ROWS)))
        tail = _tensors(self._source.read(max(0, n - _DIGEST_ROWS), n))
        layout = torch.tensor([n, self.chunk_size, *self.chunks.tolist()])
        return {**{f"head/{k}": v for k, v in head.items()}, **{f"tail/{k}": v for k, v in tail.items()},
                "layout": layout}  # fmt: skip

    def describe_non_finite(self, name: str) -> str | None:
        """:func:`~assay.estimators.train.describe_non_finite` of the first chunk holding NaN or ±inf
        (row numbers from the start of the file), or None if every chunk is finite."""
        from assay.estimators.train import describe_non_finite

        for c in self.chunks:
            start, stop = self._bounds(c)
            where = f"{name} (rows {start}-{stop} of {self.file.path})"
            found = describe_non_finite(self.read_chunk(c), where)
            if found:
                return found + f" (rows counted from {start}; later chunks not checked)"
        return None

    def peak_bytes(self, row_bytes32: int | None = None) -> int:
        """An upper bound on the bytes of samples the stream holds at once: the buffer and its
        shuffled copy, the chunks being concatenated, a batch tail (float32), and one chunk read
        at float64 with its validation temporaries."""
        rows32 = row_bytes32 if row_bytes32 is not None else self.file.row_bytes // 2
        float32 = (2 * self.buffer_chunks + 3) * self.chunk_size * rows32
        return float32 + 2 * self.chunk_size * self.file.row_bytes


def _tensors(arrays: Arrays) -> dict[str, torch.Tensor]:
    """CPU tensors, floating ones as float32 (what the trainer's ``_as_tensors`` makes)."""
    out = {}
    for key, value in arrays.items():
        t = torch.as_tensor(np.ascontiguousarray(value))
        out[key] = t.float() if t.is_floating_point() else t
    return out


@dataclass(frozen=True)
class StreamPlan:
    """Whether :func:`assay.training.train_model` streams a model's sets, and why.

    Attributes:
        stream: True: train from :class:`ChunkedDataset`; False: load the sets.
        set_bytes: the sets' arrays at float64 (train and validation).
        budget_bytes: ``memory_gb`` in bytes; None without a budget.
        chunk_size: rows per chunk when streaming.
        reason: one sentence for the log.
    """

    stream: bool
    set_bytes: int
    budget_bytes: int | None
    chunk_size: int
    reason: str


def plan_streaming(files: list[TrainingSetFile], memory_gb: float | None) -> StreamPlan:
    """Stream when the sets' arrays exceed :data:`STREAM_FRACTION` of ``memory_gb``.

    The chunk holds :data:`_CHUNK_FRACTION` of the budget at float64 (between 4,096 and 1,048,576
    rows), so the stream's samples take about a third of the budget (:meth:`ChunkedDataset.peak_bytes`
    with the default buffer of 4 chunks).

    Example:
        >>> plan_streaming([], None).stream
        False
    """
    total = sum(f.nbytes for f in files)
    if memory_gb is None or not files:
        return StreamPlan(False, total, None, _MAX_CHUNK, "no memory_gb budget: the sets are loaded")
    budget = int(memory_gb * 1e9)
    row = max(f.row_bytes for f in files)
    chunk = int(np.clip(_CHUNK_FRACTION * budget // row, _MIN_CHUNK, _MAX_CHUNK))
    shown = f"{total / 1e9:.3g} GB of arrays, memory_gb {memory_gb:g}"
    if total > STREAM_FRACTION * budget:
        return StreamPlan(True, total, budget, chunk, f"{shown} (> {STREAM_FRACTION:.0%}): streamed "
                          f"in chunks of {chunk} rows")  # fmt: skip
    return StreamPlan(False, total, budget, chunk, f"{shown} (<= {STREAM_FRACTION:.0%}): loaded")


def fit_streamed(
    estimator: Estimator,
    train_path: str | os.PathLike,
    *,
    validation_path: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    chunk_size: int = 65_536,
    buffer_chunks: int = DEFAULT_BUFFER_CHUNKS,
    bootstrap: np.random.SeedSequence | None = None,
) -> Estimator:
    """Fit ``estimator`` on a training-set file without loading it: what ``estimator.fit`` does,
    with the set streamed (:class:`ChunkedDataset`).

    The scalers and the estimator's settings learned from the set (``_prepare``) come from
    :meth:`TrainingSetFile.summary` (the exact column means and stds); a set of at most
    ``chunk_size`` rows is read whole and trains exactly as ``estimator.fit(TrainingSet.load(path))``.

    Args:
        estimator: an unfitted neural estimator other than a flow (NDE and SCANDAL detect the
            observables' bounds from all samples and train in memory).
        train_path: the training set.
        validation_path: a validation set for early stopping (streamed too); None: hold out the
            trainer's ``validation_split`` as whole chunks.
        checkpoint: :meth:`Trainer.fit <assay.estimators.train.Trainer.fit>`'s per-epoch state file.
        chunk_size: rows per chunk.
        buffer_chunks: chunks shuffled together.
        bootstrap: an ensemble member's Poisson bootstrap of the training set (:class:`ChunkedDataset`).

    Returns:
        ``estimator``, fitted.

    Raises:
        ConfigError: a flow estimator.
        StoreError: an unreadable file or bad values in it.
        ValueError: a set lacking a field the method needs (as ``estimator.fit``).
    """
    from assay.estimators.flows import FlowEstimator
    from assay.estimators.train import seeded

    if isinstance(estimator, FlowEstimator):
        raise ConfigError(
            f"{type(estimator).__name__}: the flows detect the observables' bounds from all samples and "
            f"cannot stream; raise memory_gb or train a method without a flow"
        )
    file = TrainingSetFile(train_path)
    val_file = None if validation_path is None else TrainingSetFile(validation_path)
    summary = file.summary(chunk_size)
    estimator._check_set(summary, "train_set")
    if val_file is not None:
        estimator._check_set(val_file.read(0, min(2, len(val_file))), "validation_set")
    n_params = len(file.parameters)
    if estimator.n_params is not None and estimator.n_params != n_params:
        raise ValueError(
            f"train_set has {n_params} parameters {list(file.parameters)}, but this "
            f"{type(estimator).__name__} was built with n_params={estimator.n_params}"
        )
    estimator._prepare(summary)
    with seeded(estimator.trainer.seed):
        net = estimator._build(len(file.observables), n_params)
    net.fit_scalers(summary)
    options = dict(chunk_size=chunk_size, buffer_chunks=buffer_chunks)
    train = ChunkedDataset(file, estimator._arrays, bootstrap=bootstrap, **options)
    validation = None if val_file is None else ChunkedDataset(val_file, estimator._arrays, **options)
    history = estimator.trainer.fit(net, estimator._loss, train, validation=validation, checkpoint=checkpoint)
    return estimator._set_trained(net, history, summary)
