"""Expected (Asimov) limits of any method on one weighted event sample.

An :class:`AsimovSample` is a partition of an :class:`~assay.store.EventStore` (usually the
test events, which no estimator saw) with its exact benchmark weights. Every method is scanned
on the same events at the same θ_true and luminosity:

- likelihood-ratio methods (truth, ALICES, BIT, …) through the extended likelihood of
  :func:`assay.inference.likelihood.expected_scan`, with Σ_i w_i log r̂(x_i|θ, θ_true);
- histogram methods (a kinematic observable or SALLY's t̂ binned) through the binned Poisson
  likelihood with Asimov counts ν(θ_true) (:func:`assay.inference.histograms.binned_scan`).

A partition with a fraction f of the events is rescaled to the whole store's σ(θ_true) by one
scalar, σ(θ_true)/Σ_partition w(θ_true) ≈ 1/f, in both kinds of scans (the morphing structure of
the templates is kept), and σ(θ) is the partition's own, rescaled (:meth:`AsimovSample.cross_section`).

Out of core (issue 17): :meth:`AsimovSample.from_store` with ``memory_gb`` keeps a partition whose
x and weights exceed half of the budget in the file (:attr:`AsimovSample.streamed`): σ(θ) comes from
the per-benchmark sums Σ_i W_ik, the kinematic term Σ_i w_i log r̂(x_i|θ) and R̂(θ) from
:func:`~assay.estimators.prediction.chunked_log_ratio_sums` (:meth:`AsimovSample.streamed_ratio_scan`),
histogram templates are filled chunk by chunk (:meth:`AsimovSample.streamed_templates`), and
:meth:`AsimovSample.chunks` serves any other per-event sum. ``x`` and ``benchmark_weights`` are read
in full only where code asks for them (logged).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.estimators.prediction import STORE_WINDOW, chunked_log_ratio_sums, partition_chunks
from assay.inference.asymptotic import DEFAULT_CLS, cl_tag, limits_1d
from assay.inference.histograms import BinnedTemplates, Binning, binned_scan, fill_templates
from assay.inference.likelihood import (
    Scan,
    check_luminosity,
    cross_sections,
    expected_events,
    expected_scan,
    poisson_log_likelihood,
)
from assay.joint import JointQuantities
from assay.morphing import Morpher, as_thetas
from assay.store import EventStore

__all__ = ["AsimovSample", "EventPartition", "interval_summary", "normalised"]

logger = logging.getLogger(__name__)

STREAM_FRACTION = 0.5  # stream a partition whose x and weights take more than this fraction of memory_gb
_CHUNK_FRACTION = 0.1  # one chunk's events and their predictions: this fraction of the budget
_PREDICTION_BYTES = 32 * 8 * 4  # per event: a block of 32 θ of log r̂ (float64) and its temporaries
_MIN_CHUNK, _MAX_CHUNK = 1024, 100_000

ChunkLogRatio = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(x (n, n_obs), benchmark weights (n, n_benchmarks) in pb, θ (m, n_params)) → log r̂ (m, n)``."""


@dataclass(frozen=True, eq=False)  # holds arrays
class EventPartition:
    """Events of a store read ``chunk_size`` at a time instead of held (the file is read a window of
    :data:`~assay.estimators.prediction.STORE_WINDOW` file rows at a time: at most that many events
    besides the chunk).

    Attributes:
        path: the :class:`~assay.store.EventStore` file.
        rows: sorted event indices ``(n_events,)``.
        chunk_size: events per chunk.
    """

    path: Path
    rows: np.ndarray
    chunk_size: int

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x ``(n, n_obs)``, benchmark weights ``(n, n_benchmarks)`` in pb) of consecutive chunks."""
        # whole windows of the file read at once (one decompression each), served in chunk_size pieces
        read = max(self.chunk_size, STORE_WINDOW)
        for chunk in partition_chunks(self.path, self.rows, chunk_size=read):
            x, weights = np.asarray(chunk.x, dtype=float), np.asarray(chunk.weights, dtype=float)
            for start in range(0, len(x), self.chunk_size):
                yield x[start : start + self.chunk_size], weights[start : start + self.chunk_size]

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All of x and the benchmark weights."""
        with EventStore(self.path) as store:
            events = store.take(self.rows, fields=("x", "weights"))
        return events.x, events.weights


class AsimovSample:
    """Weighted events for expected limits at ``theta_true``.

    Args and attributes:
        x: observables ``(n_events, n_obs)``.
        observables: their names.
        benchmark_weights: ``(n_events, n_benchmarks)`` in pb, as stored.
        joint: :class:`~assay.joint.JointQuantities` with the whole store's σ_k.
        theta_true: ``(n_params,)``, the point the Asimov data are generated at.
        luminosity: L in fb⁻¹.
        partition: for a streamed sample (:meth:`from_store` over ``memory_gb``; x and
            ``benchmark_weights`` None): where its events are, read chunk by chunk.
        benchmark_sums: Σ_i W_ik ``(n_benchmarks,)`` in pb; required with ``partition``.
    """

    def __init__(
        self, x: np.ndarray | None, observables: Sequence[str], benchmark_weights: np.ndarray | None,
        joint: JointQuantities, theta_true: np.ndarray, luminosity: float, *,
        partition: EventPartition | None = None, benchmark_sums: np.ndarray | None = None,
    ):  # fmt: skip
        # float64 (no copy when already so): every sum over events below is then float64; a float32
        # column sum (numpy adds rows one by one along axis 0) of 10⁷ weights of 10⁻³ beside one of
        # 10⁴ gives 23147 instead of 20000
        if partition is None and (x is None or benchmark_weights is None):
            raise ValueError("AsimovSample: x and benchmark_weights are needed without a partition")
        if partition is not None and benchmark_sums is None:
            raise ValueError("AsimovSample: a streamed sample needs its benchmark_sums")
        self._x = None if x is None else np.asarray(x, dtype=float)
        self._weights = None if benchmark_weights is None else np.asarray(benchmark_weights, dtype=float)
        self.observables = tuple(observables)
        self.joint, self.theta_true, self.luminosity = joint, theta_true, luminosity
        self.partition = partition
        self._sums = None if benchmark_sums is None else np.asarray(benchmark_sums, dtype=float)

    @property
    def streamed(self) -> bool:
        """Whether the events stay in the file, read chunk by chunk (:meth:`from_store`, ``memory_gb``)."""
        return self.partition is not None

    @property
    def n_events(self) -> int:
        return len(self.partition.rows) if self.partition is not None else len(self._x)

    def _load(self) -> None:
        assert self.partition is not None
        logger.info(
            "%s: reading all %d events of the streamed Asimov sample (something needs every x)",
            self.partition.path, self.n_events,
        )  # fmt: skip
        x, weights = self.partition.load()
        self._x, self._weights = np.asarray(x, dtype=float), np.asarray(weights, dtype=float)

    @property
    def x(self) -> np.ndarray:
        """Observables ``(n_events, n_obs)`` (read in full on first use for a streamed sample)."""
        if self._x is None:
            self._load()
        return self._x

    @property
    def benchmark_weights(self) -> np.ndarray:
        """``(n_events, n_benchmarks)`` in pb (read in full on first use for a streamed sample)."""
        if self._weights is None:
            self._load()
        return self._weights

    @property
    def benchmark_sums(self) -> np.ndarray:
        """Σ_i W_ik ``(n_benchmarks,)`` in pb."""
        if self._sums is None:
            self._sums = _column_sums(self.benchmark_weights)
        return self._sums

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, benchmark weights) chunk by chunk: the file's chunks when streamed, else one chunk of all."""
        if self.partition is not None:
            yield from self.partition.chunks()
        else:
            yield self.x, self.benchmark_weights

    @classmethod
    def from_store(
        cls,
        path: str | os.PathLike,
        events: np.ndarray,
        morpher: Morpher,
        *,
        theta_true: np.ndarray,
        luminosity: float,
        memory_gb: float | None = None,
    ) -> AsimovSample:
        """The events ``events`` (indices) of the store at ``path``, with the store's benchmark σ_k.

        Args:
            memory_gb: the run's budget; None: load the events. When their x and weights (float64)
                exceed half of it, they stay in the file (:attr:`streamed`), read in chunks whose
                events and predictions (a block of 32 θ) take about 10% of it.
        """
        rows = np.sort(np.asarray(events))
        theta = as_thetas(theta_true, morpher.n_params, "theta_true")[0]
        luminosity = check_luminosity(luminosity)
        with EventStore(path) as store:
            joint = JointQuantities(morpher, store.weights_sum())
            names = tuple(store.observables)
            row_bytes = 8 * (len(names) + store.n_benchmarks)
            budget = None if memory_gb is None else memory_gb * 1e9
            if budget is None or row_bytes * len(rows) <= STREAM_FRACTION * budget:
                chunk = store.take(rows, fields=("x", "weights"))
                return cls(chunk.x, names, chunk.weights, joint, theta, luminosity)
        size = _CHUNK_FRACTION * budget / (row_bytes + _PREDICTION_BYTES)
        size = int(np.clip(size, _MIN_CHUNK, _MAX_CHUNK))
        partition = EventPartition(Path(path), rows, size)
        # Σ_i W_ik: pairwise within a chunk, exactly rounded over the chunks (as accurate as loaded)
        partial = [_column_sums(weights) for _, weights in partition.chunks()]
        sums = np.array([math.fsum(column) for column in zip(*partial, strict=True)])
        logger.info(
            "%s: the %d Asimov events (%.2f GB) exceed half of memory_gb %g; streamed in chunks of %d",
            path, len(rows), row_bytes * len(rows) / 1e9, memory_gb, size,
        )  # fmt: skip
        return cls(None, names, None, joint, theta, luminosity, partition=partition, benchmark_sums=sums)

    # ---- weights and cross sections -------------------------------------------------------
    @property
    def weights(self) -> np.ndarray:
        """w_i(θ_true) in pb, ``(n_events,)``."""
        return self.joint.weights(self.benchmark_weights, self.theta_true)

    @property
    def scale(self) -> float:
        """σ(θ_true) / Σ_i w_i(θ_true): from this partition to the whole expected yield (≈ 1/f)."""
        total = self.joint.morpher.morphing_weights(self.theta_true) @ self.benchmark_sums  # Σ_i w_i(θ_true)
        return float(self.joint.cross_section(self.theta_true)) / float(total)

    def cross_section(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ) in pb of these events scaled to the whole yield, ``scale · Σ_i w_i(θ)``, ``(n_theta,)``,
        as ``scale · c(θ) · Σ_i W_i`` (:attr:`benchmark_sums`).

        Equal to the store's σ(θ_true) at θ_true. Using the partition's own θ-dependence keeps the
        Asimov data self-consistent: with the exact r the expected −2Δlog L is minimal at θ_true
        (its gradient there is scale · Σ_i ∂w_i − scale · Σ_i ∂w_i = 0), whereas the store's
        σ(θ) would add the partition's statistical fluctuation as a linear term ∝ N.
        """
        thetas = as_thetas(theta, self.joint.n_params)
        return self.scale * (self.joint.morpher.morphing_weights(thetas) @ self.benchmark_sums)

    def cross_section_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇θ of :meth:`cross_section` at one θ ``(n_params,)``, in pb."""
        theta = as_thetas(theta, self.joint.n_params)[0]
        return self.scale * self.joint.morpher.morphing_weight_gradients(theta) @ self.benchmark_sums

    def column(self, name: str) -> np.ndarray:
        """One observable by name, ``(n_events,)``."""
        if name not in self.observables:
            raise ValueError(f"observable {name!r}: not in the sample; it has {list(self.observables)}")
        return self.x[:, self.observables.index(name)]

    # ---- likelihood ratios ----------------------------------------------------------------
    def truth_log_ratio(self, theta: np.ndarray, benchmark_weights: np.ndarray | None = None) -> np.ndarray:
        """Exact log r(x_i|θ, θ_true) from the event weights, ``(n_theta, n_events)``.

        The joint log r (seed 000 backup); it is the true likelihood ratio only where x fixes the
        θ-dependent part of the parton configuration (parton level with every momentum observed).

        Args:
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            benchmark_weights: other events' weights ``(n, n_benchmarks)`` in pb (observed data,
                pseudo-experiments); default: this sample's. σ(θ) is this sample's either way.
        """
        thetas = as_thetas(theta, self.joint.n_params)
        weights = self.benchmark_weights if benchmark_weights is None else benchmark_weights
        density = self.joint.weights_on_grid(weights, thetas).T / self.cross_section(thetas)[:, None]
        sigma_true = float(self.joint.cross_section(self.theta_true))
        reference = self.joint.weights(weights, self.theta_true) / sigma_true
        with np.errstate(divide="ignore", invalid="ignore"):  # the ratio: a negative-weight event's too
            return np.log(density / reference[None, :])

    def truth_score(self) -> np.ndarray:
        """Exact t(x_i|θ_true) = ∇w_i/w_i − ∇σ/σ from the event weights, ``(n_events, n_params)``,
        with this sample's σ(θ) (:meth:`cross_section`), so that Σ_i w_i t_i = 0 exactly.

        The joint score (seed 000 backup); the true score where x fixes the parton configuration,
        as for :meth:`truth_log_ratio`.
        """
        gradients = self.joint.morpher.morphing_weight_gradients(self.theta_true)  # (n_params, n_benchmarks)
        sigma = self.cross_section(self.theta_true[None])[0]
        grad = self.cross_section_gradient(self.theta_true)
        return (self.benchmark_weights @ gradients.T) / self.weights[:, None] - grad / sigma

    def ratio_scan(
        self,
        theta: np.ndarray,
        log_r: Callable[[np.ndarray], np.ndarray] | np.ndarray,
        *,
        theta_chunk: int = 32,
    ) -> Scan:
        """Expected −2Δlog L of a likelihood-ratio method: log r̂(x_i|θ, θ_true) ``(n_theta, n_events)``
        or a callable of θ, called with ``theta_chunk`` points at a time (memory ∝ chunk × n_events)."""
        return expected_scan(
            theta, log_r, self.weights, self.cross_section, self.luminosity,
            xsec_true=float(self.joint.cross_section(self.theta_true)), theta_chunk=theta_chunk,
        )  # fmt: skip

    def streamed_ratio_scan(
        self, theta: np.ndarray, log_ratio: ChunkLogRatio, *, normalise: bool, theta_chunk: int = 32
    ) -> Scan:
        """:meth:`ratio_scan` chunk by chunk (:meth:`chunks`): only one chunk of events and its
        ``(theta_chunk, n_chunk)`` predictions are held. The same q(θ) as :meth:`ratio_scan` of the
        loaded sample, up to the order of the sums (10⁻¹² relative in tests/test_inference_asimov.py).

        Args:
            theta: ``(n_theta, n_params)``.
            log_ratio: log r̂(x_i|θ, θ_true) of a chunk (:data:`ChunkLogRatio`).
            normalise: subtract log R̂(θ) measured on this sample (:func:`normalised`): estimators.
            theta_chunk: θ points per call of ``log_ratio``.

        Raises:
            ValueError: NaN in log r̂, or shapes ``log_ratio`` gets wrong.
        """
        thetas = as_thetas(theta, self.joint.n_params)
        theta_true = self.theta_true

        def event_weights(bench: np.ndarray) -> np.ndarray:
            return self.joint.weights(bench, theta_true)

        sums = chunked_log_ratio_sums(log_ratio, self.chunks(), thetas, weights=event_weights,
                                      theta_chunk=theta_chunk)  # fmt: skip
        if not (np.isfinite(sums.weight) and sums.weight > 0):
            raise ValueError(f"weights: expected a finite sum > 0 at theta_true, got {sums.weight}")
        n_true = float(expected_events(float(self.joint.cross_section(theta_true)), self.luminosity))
        kinematic = sums.log_r
        if normalise:
            kinematic = kinematic - sums.weight * np.log(sums.ratio / sums.weight)
        kinematic = kinematic * (n_true / sums.weight)  # w_i = L w_i^pb, Σ w_i = N
        poisson = poisson_log_likelihood(n_true, cross_sections(self.cross_section, thetas), self.luminosity)
        return Scan.from_log_likelihood(thetas, poisson + kinematic)

    # ---- histograms -----------------------------------------------------------------------
    def templates(self, binning: Binning, values: np.ndarray | None = None) -> BinnedTemplates:
        """Benchmark templates of ``binning`` scaled to the whole yield.

        Args:
            binning: the :class:`~assay.inference.histograms.Binning`.
            values: the binned quantity per event ``(n_events, n_dims)`` (e.g. SALLY's t̂);
                default: the observables named by the binning.
        """
        if values is None:
            values = np.column_stack([self.column(name) for name in binning.observables])
        filled = fill_templates(values, self.benchmark_weights, binning, self.joint.morpher)
        return BinnedTemplates(binning, filled.benchmark_sums * self.scale, filled.morpher)

    def streamed_templates(
        self, binning: Binning, values: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    ) -> BinnedTemplates:
        """:meth:`templates` filled chunk by chunk (:meth:`chunks`): the same bin sums, only one chunk
        of events held.

        Args:
            binning: the :class:`~assay.inference.histograms.Binning`.
            values: ``(x, benchmark weights) → (n, n_dims)``, the binned quantity of a chunk's events;
                default: the observables named by the binning.
        """
        if values is None:
            missing = [name for name in binning.observables if name not in self.observables]
            if missing:
                raise ValueError(f"observables {missing}: not in the sample; it has {list(self.observables)}")
            columns = [self.observables.index(name) for name in binning.observables]

            def values(x: np.ndarray, _: np.ndarray) -> np.ndarray:
                return x[:, columns]

        sums = np.zeros((binning.n_bins, self.joint.morpher.n_benchmarks))
        for x, bench in self.chunks():
            sums += fill_templates(values(x, bench), bench, binning, self.joint.morpher).benchmark_sums
        return BinnedTemplates(binning, sums * self.scale, self.joint.morpher)

    def binned_scan(self, theta: np.ndarray, templates: BinnedTemplates) -> Scan:
        """Expected −2Δlog L of a histogram analysis, Asimov counts ν(θ_true)."""
        asimov = templates.expected(self.theta_true, self.luminosity)
        return binned_scan(templates, theta, self.luminosity, asimov)

    def expectation_check(self, log_r: np.ndarray) -> np.ndarray:
        """R̂(θ) = Σ_i w_i(θ_true) r̂(x_i|θ, θ_true) / Σ_i w_i(θ_true), 1 for a perfect estimator.

        Args:
            log_r: ``(n_theta, n_events)``.

        Returns:
            ``(n_theta,)``; with the exact r this is (Σ_i w_i(θ)/σ(θ)) / (Σ_i w_i(θ_true)/σ(θ_true)),
            i.e. 1 up to the partition's statistical fluctuation (seed 000 calibration).
        """
        w = self.weights
        return np.exp(np.asarray(log_r, dtype=float)) @ w / w.sum()


def _column_sums(weights: np.ndarray) -> np.ndarray:
    """Σ_i W_ik per column ``(n_benchmarks,)``, each a pairwise sum (relative error ~1e-16 log n).

    Along axis 0 numpy adds the rows one after another (error growing with n: 1e-12 at 60k events);
    σ(θ) = scale · c(θ) · Σ_i W_i enters the scan's −2Δlog L, a small difference of terms ∝ N log σ(θ),
    where a relative error ε of σ moves q by about 2 N ε.
    """
    return np.array([weights[:, k].sum() for k in range(weights.shape[1])])


def normalised(
    sample: AsimovSample, log_r: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """log r̂(x|θ, θ_true) − log R̂(θ), with R̂(θ) = :meth:`AsimovSample.expectation_check` on the sample itself.

    An estimated r̂ integrates to 1 over p(x|θ_true) only approximately; in the extended likelihood
    the error enters as N log R̂(θ), a term linear in θ near θ_true that is multiplied by the number
    of events (tens of thousands) and shifts the expected best fit by about
    R̂'/I. Dividing by R̂ measured on the Asimov events restores E[r̂] = 1 there, as the exact r
    has it by construction (seed 000 "Calibration and diagnostics"; the same normalisation the
    partition's σ(θ) gives the truth, :meth:`AsimovSample.cross_section`).
    """

    def calibrated(theta: np.ndarray) -> np.ndarray:
        values = np.asarray(log_r(theta), dtype=float)
        return values - np.log(sample.expectation_check(values))[:, None]

    return calibrated


def interval_summary(
    scans: Mapping[str, Scan], cls: Sequence[float] = DEFAULT_CLS
) -> dict[str, list[float | None]]:
    """``{"<param>_68": [lo, hi], "<param>_95": [lo, hi]}`` from 1D scans, one per parameter.

    The spans of the CL regions (lowest to highest edge) by :func:`~assay.inference.asymptotic.limits_1d`.
    An end where the region reaches the edge of the scan is ``None`` (JSON null): the limit lies
    outside the scanned range and the edge is not reported in its place; turn them into warnings
    (and rescan wider) with :func:`~assay.inference.asymptotic.open_ends`. "68" stands for one σ
    (q = 1) with the default ``cls`` (:func:`~assay.inference.asymptotic.cl_tag`).
    """
    out: dict[str, list[float | None]] = {}
    for name, scan in scans.items():
        result = limits_1d(scan, cls)
        for cl in cls:
            out[f"{name}_{cl_tag(cl)}"] = [None if b is None else float(b) for b in result.bounds(cl)]
    return out
