"""What every estimator predicts, in one type: :class:`Prediction` (torch-free).

Every model — the neural estimators (SALLY and the likelihood-ratio family), an
:class:`~assay.estimators.ensemble.Ensemble` and a :class:`~assay.bit.BoostedInformationTree` —
answers the same two calls (the :class:`Predictor` protocol):

- ``log_ratio(x, theta, theta_ref)``: log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref),
  ``mean (n_theta, n_events)``;
- ``score(x, theta=None)``: t̂(x|θ) = ∇θ log p̂(x|θ), ``mean (n_events, n_params)``; None is the
  model's own reference point (SALLY's and BIT's θ_ref; a likelihood-ratio model has none).

``predicts`` says which of the two a model can make; asking for the other raises one
:class:`~assay.exceptions.PredictionError` that names the model, the request and what to use
instead (:func:`cannot_predict`). An ensemble fills ``std`` with the spread over its members.

Over the events of a store (issue 17, "out of core"), :func:`partition_chunks` reads a partition
``chunk_size`` events at a time and :func:`weighted_log_ratio_sums` accumulates
Σ_i w_i log r̂(x_i|θ, θ_ref) chunk by chunk and θ block by θ block, so its memory is bounded by
``chunk_size × (n_obs + n_benchmarks + theta_chunk)`` floats, not by the partition.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

from assay.exceptions import PredictionError
from assay.morphing import as_thetas

if TYPE_CHECKING:
    from assay.store import EventChunk, EventSelection

__all__ = [
    "PREDICTIONS",
    "RATIO_FLOOR",
    "Prediction",
    "Predictor",
    "PredictorBase",
    "StreamedSums",
    "as_point",
    "cannot_predict",
    "check_predicts",
    "chunked_log_ratio_sums",
    "partition_chunks",
    "weighted_log_ratio_sums",
]

RATIO_FLOOR = 1e-12
"""The one floor of a ratio, density fraction or probability built from parts that can cancel,
applied before the log (docs/reliability.md, "Clipping policy"): morphed sums of the morphing-aware
networks, a mixture's Σ_j f_j ν_j r̂_j, the profiled likelihood's per-event rates, SALLINO's empty
bins, BIT's R(x|θ). A neural network's own log r̂ is never clipped."""

PREDICTIONS = ("log_ratio", "score")
"""The names a model's ``predicts`` may hold."""

_ESTIMATES = {"log_ratio": "the likelihood ratio log r(x|θ, θ_ref)", "score": "the score t(x|θ)"}
_INSTEAD = {
    "log_ratio": "use a likelihood-ratio method (alices, alice, rascal, cascal, carl, rolr) or bit, "
    "or histogram its score (assay.inference.histograms.score_binning)",
    "score": "use sally, a likelihood-ratio method (its score at any θ) or bit",
}


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Prediction:
    """An estimate and, for an ensemble, its spread.

    Attributes:
        mean: the estimate: log r̂ ``(n_theta, n_events)`` or t̂ ``(n_events, n_params)``, float64,
            read-only.
        std: standard deviation over an ensemble's members (``np.std``, ddof = 0), shaped like
            ``mean``, read-only; None for a single model.

    Raises:
        ValueError: ``mean`` is not 2-d, or ``std`` is shaped differently.

    Example:
        >>> p = Prediction(np.zeros((2, 3)), std=np.ones((2, 3)))
        >>> p, p.mean.flags.writeable
        (Prediction(mean (2, 3), std (2, 3)), False)
    """

    mean: np.ndarray
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        mean = _read_only(self.mean)
        if mean.ndim != 2:
            raise ValueError(
                f"mean: expected a 2-d array, log r (n_theta, n_events) or t (n_events, n_params), "
                f"got shape {mean.shape}"
            )
        object.__setattr__(self, "mean", mean)
        if self.std is not None:
            std = _read_only(self.std)
            if std.shape != mean.shape:
                raise ValueError(f"std: expected the shape of mean {mean.shape}, got {std.shape}")
            object.__setattr__(self, "std", std)

    @classmethod
    def from_members(cls, members: Sequence[np.ndarray]) -> Prediction:
        """Mean and standard deviation (ddof = 0) over the members' estimates, each shaped like ``mean``.

        Example:
            >>> Prediction.from_members([np.zeros((1, 2)), np.full((1, 2), 2.0)]).std.tolist()
            [[1.0, 1.0]]
        """
        stacked = np.stack([np.asarray(m, dtype=float) for m in members])
        return cls(stacked.mean(axis=0), stacked.std(axis=0))

    def __repr__(self) -> str:
        std = None if self.std is None else self.std.shape
        return f"Prediction(mean {self.mean.shape}, std {std})"


def _read_only(array: np.ndarray) -> np.ndarray:
    """A float64 read-only view (the caller's array stays writeable; no copy for float64 input)."""
    view = np.asarray(array, dtype=float).view()
    view.flags.writeable = False
    return view


@runtime_checkable
class Predictor(Protocol):
    """What :func:`assay.inference.likelihood.log_ratio_function` and the Fisher functions accept."""

    predicts: frozenset[str]

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref): x ``(n_events, n_obs)``, θ ``(n_theta, n_params)``, θ_ref ``(n_params,)``."""
        ...

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """t̂(x|θ) ``(n_events, n_params)`` at one θ ``(n_params,)``; None: the model's reference point."""
        ...


class PredictorBase:
    """Base of the models: both calls refuse with :func:`cannot_predict`; subclasses override
    the ones listed in their ``predicts``."""

    predicts: ClassVar[frozenset[str]] = frozenset()

    def log_ratio(self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray) -> Prediction:
        """log r̂(x|θ, θ_ref) ``(n_theta, n_events)``; here: PredictionError (not in ``predicts``)."""
        raise cannot_predict(self, "log_ratio")

    def score(self, x: np.ndarray, theta: np.ndarray | None = None) -> Prediction:
        """t̂(x|θ) ``(n_events, n_params)``; here: PredictionError (not in ``predicts``)."""
        raise cannot_predict(self, "score")


def cannot_predict(model: Predictor, what: str, *, name: str | None = None) -> PredictionError:
    """The error for asking ``model`` for ``what`` ("log_ratio" or "score") outside its ``predicts``.

    Args:
        model: the model asked.
        what: the request.
        name: how to call the model in the message; default its class name.

    Example:
        >>> from types import SimpleNamespace
        >>> print(cannot_predict(SimpleNamespace(predicts=frozenset({"score"})), "log_ratio", name="SALLY"))
        SALLY estimates the score t(x|θ) only; it has no log_ratio; use a likelihood-ratio method \
(alices, alice, rascal, cascal, carl, rolr) or bit, or histogram its score \
(assay.inference.histograms.score_binning)
    """
    if what not in PREDICTIONS:
        raise ValueError(f"what: unknown prediction {what!r}; valid names are {list(PREDICTIONS)}")
    name = type(model).__name__ if name is None else name
    have = " and ".join(_ESTIMATES[p] for p in PREDICTIONS if p in model.predicts) or "nothing"
    return PredictionError(f"{name} estimates {have} only; it has no {what}; {_INSTEAD[what]}")


def check_predicts(model: object, what: str) -> None:
    """Raise unless ``model`` implements :class:`Predictor` and lists ``what`` in ``predicts``.

    Raises:
        PredictionError: ``model`` has not the prediction methods, or cannot predict ``what``.
    """
    if not isinstance(model, Predictor):
        raise PredictionError(
            f"{type(model).__name__} does not implement the prediction methods (predicts, log_ratio, "
            f"score); pass a fitted estimator, an Ensemble or a BoostedInformationTree"
        )
    if what not in model.predicts:
        raise cannot_predict(model, what)


def as_point(theta: np.ndarray, n_params: int, name: str = "theta") -> np.ndarray:
    """One parameter point ``(n_params,)`` from ``(n_params,)`` or ``(1, n_params)``.

    Raises:
        ValueError: another shape, or several points (the message names ``name``).
    """
    points = as_thetas(theta, n_params, name)
    if len(points) != 1:
        raise ValueError(
            f"{name}: expected one point (n_params,) with n_params={n_params}, got {len(points)} points"
        )
    return points[0]


# ---- predictions over a store, chunk by chunk ----------------------------------------------------


def partition_chunks(
    path: str | os.PathLike,
    rows: np.ndarray | None = None,
    *,
    chunk_size: int = 100_000,
    fields: Sequence[str] = ("x", "weights"),
) -> Iterator[EventChunk | EventSelection]:
    """The events ``rows`` of the store at ``path``, ``chunk_size`` at a time, in file order.

    Args:
        path: an :class:`~assay.store.EventStore` file.
        rows: event indices (e.g. ``split.test``), sorted here; None: every event, read in
            contiguous ranges (``fields`` are then x, weights, process and benchmark).
        chunk_size: events per chunk (the memory of one chunk: ``chunk_size × (n_obs + n_benchmarks)``
            float64 for the default fields).
        fields: what :meth:`EventStore.take <assay.store.EventStore.take>` reads for ``rows``.

    Yields:
        :class:`~assay.store.EventSelection` (or :class:`~assay.store.EventChunk` for all events)
        with ``x (n_chunk, n_obs)`` and ``weights (n_chunk, n_benchmarks)`` in pb.

    Raises:
        ValueError: ``chunk_size`` below 1.
        StoreError: an unreadable store.
    """
    from assay.store import EventStore

    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
    with EventStore(path) as store:
        if rows is None:
            yield from store.iter_chunks(chunk_size)
            return
        ordered = np.sort(np.asarray(rows, dtype=np.int64))
        for lo, hi in _window_runs(ordered, chunk_size):
            yield store.take(ordered[lo:hi], fields=fields)


STORE_WINDOW = 65536
"""Events per HDF5 chunk of an EventStore written with the default ``chunk_events``: a chunk of a
partition takes whole windows of this many events of the file, so that each is decompressed once."""


def _window_runs(rows: np.ndarray, chunk_size: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges of the sorted ``rows``: whole windows of :data:`STORE_WINDOW` file rows, as many
    as fit in ``chunk_size`` rows (at least one window, which is split where it alone holds more)."""
    window = rows // STORE_WINDOW
    ends = np.r_[np.flatnonzero(np.diff(window)) + 1, len(rows)]  # end of each window's rows
    lo = 0
    while lo < len(rows):
        last = int(np.searchsorted(ends, lo + chunk_size, side="right")) - 1  # the last window end that fits
        fit = int(ends[last]) if last >= 0 else lo
        hi = fit if fit > lo else min(lo + chunk_size, int(ends[np.searchsorted(ends, lo, side="right")]))
        yield lo, hi
        lo = hi


@dataclass(frozen=True, eq=False)  # holds arrays
class StreamedSums:
    """Sums over a partition accumulated chunk by chunk (:func:`weighted_log_ratio_sums`).

    Attributes:
        log_r: Σ_i w_i log r̂(x_i|θ, θ_ref) per θ, ``(n_theta,)``.
        weight: Σ_i w_i (pb for event weights; the event count without weights).
        n_events: events summed over.
        ratio: Σ_i w_i r̂(x_i|θ, θ_ref) per θ, ``(n_theta,)``: ``ratio / weight`` is R̂(θ), the
            normalisation check of :meth:`assay.inference.asimov.AsimovSample.expectation_check`.
    """

    log_r: np.ndarray
    weight: float
    n_events: int
    ratio: np.ndarray


def weighted_log_ratio_sums(
    model: Predictor,
    path: str | os.PathLike,
    theta: np.ndarray,
    theta_ref: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
    chunk_size: int = 100_000,
    theta_chunk: int = 32,
) -> StreamedSums:
    """Σ_i w_i log r̂(x_i|θ, θ_ref) over the events of a store, read and predicted chunk by chunk.

    The kinematic term of the expected (Asimov) likelihood (seed 000 "Asymptotic limits") for
    partitions too large to hold: only one chunk of events and a ``(theta_chunk, chunk_size)``
    block of predictions exist at a time.

    Args:
        model: a fitted model that predicts ``log_ratio`` (:class:`Predictor`).
        path: the event store.
        theta: ``(n_theta, n_params)`` or ``(n_params,)``.
        theta_ref: the reference point ``(n_params,)``.
        rows: the partition's event indices; None: every event.
        weights: a chunk's benchmark weights ``(n_chunk, n_benchmarks)`` → its event weights
            ``(n_chunk,)``, e.g. ``lambda w: joint.weights(w, theta_true)``; None: every event counts 1.
        chunk_size: events per chunk.
        theta_chunk: θ points predicted at once.

    Returns:
        :class:`StreamedSums`.

    Raises:
        PredictionError: ``model`` cannot predict ``log_ratio``.
        ValueError: bad ``chunk_size`` / ``theta_chunk`` or shapes the model refuses.
    """
    check_predicts(model, "log_ratio")

    def log_ratio(x: np.ndarray, _: np.ndarray, block: np.ndarray) -> np.ndarray:
        return model.log_ratio(x, block, theta_ref).mean

    chunks = ((c.x, c.weights) for c in partition_chunks(path, rows, chunk_size=chunk_size))
    return chunked_log_ratio_sums(log_ratio, chunks, theta, weights=weights, theta_chunk=theta_chunk)


def chunked_log_ratio_sums(
    log_ratio: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    theta: np.ndarray,
    *,
    weights: Callable[[np.ndarray], np.ndarray] | None = None,
    theta_chunk: int = 32,
) -> StreamedSums:
    """:func:`weighted_log_ratio_sums` of any per-event log-ratio over any chunks of events.

    Args:
        log_ratio: ``(x (n, n_obs), benchmark weights (n, n_benchmarks), θ block (m, n_params))`` →
            log r̂ ``(m, n)``: an estimator's prediction, or the exact ratio from the weights.
        chunks: (x, benchmark weights in pb) of consecutive chunks (:func:`partition_chunks`).
        theta: ``(n_theta, n_params)`` or ``(n_params,)``.
        weights: a chunk's benchmark weights → its event weights ``(n,)``; None: every event counts 1.
        theta_chunk: θ points per call of ``log_ratio``.

    Returns:
        :class:`StreamedSums` (a zero-weight event adds 0, also where its log r̂ is −inf).

    Raises:
        ValueError: bad ``theta_chunk``, a result of another shape, or NaN in it.
    """
    if theta_chunk < 1:
        raise ValueError(f"theta_chunk: expected >= 1, got {theta_chunk}")
    thetas = np.atleast_2d(np.asarray(theta, dtype=float))
    total, ratio, weight, n_events = np.zeros(len(thetas)), np.zeros(len(thetas)), 0.0, 0
    for x, bench in chunks:
        w = np.ones(len(x)) if weights is None else np.asarray(weights(bench), dtype=float)
        if w.shape != (len(x),):
            raise ValueError(f"weights: expected one weight per event ({len(x)},), got {w.shape}")
        for start in range(0, len(thetas), theta_chunk):
            block = thetas[start : start + theta_chunk]
            values = np.asarray(log_ratio(x, bench, block), dtype=float)
            if values.shape != (len(block), len(x)):
                raise ValueError(
                    f"log_ratio: expected shape ({len(block)}, {len(x)}) (one row per θ), got {values.shape}"
                )
            if np.isnan(values).any():
                raise ValueError(f"log_ratio: contains {np.isnan(values).sum()} NaN values")
            with np.errstate(invalid="ignore", over="ignore"):  # 0 · (−inf) of a zero-weight event: 0
                total[start : start + len(block)] += np.where(w == 0, 0.0, values * w).sum(axis=1)
                ratio[start : start + len(block)] += np.exp(values) @ w
        weight += float(w.sum())
        n_events += len(x)
    return StreamedSums(total, weight, n_events, ratio)
