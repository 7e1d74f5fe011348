"""Histogram baselines: binned templates at any θ by morphing, binned Poisson scans (seed 000
"Binning & likelihood scans", "Asymptotic limits in Madminer").

Bin expectations are exact at any θ because the weights are: with W_kb = Σ_{events in b} W_k
(pb) the benchmark weight sums per bin and c_k(θ) the morphing weights (:mod:`assay.morphing`),

    ν_b(θ) = L Σ_k c_k(θ) W_kb · 1000,     ∂ν_b/∂θ_a = L Σ_k ∂_a c_k(θ) W_kb · 1000

(L in fb⁻¹). The binned likelihood is Π_b Pois(n_b | ν_b(θ)); for expected limits n = ν(θ_true)
(Asimov data). Seed 000's binnings are in :data:`assay.simulators.wh_analysis.SEED_BINNINGS`;
a SALLY observable is binned with :func:`score_binning` (25 bins with quantile edges of t̂ at the
SM). The export to pyhf is in :mod:`assay.inference.pyhf_export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special

from assay.inference.likelihood import PB_TO_FB, Scan, check_luminosity
from assay.morphing import Morpher, as_thetas

if TYPE_CHECKING:
    from assay.store import EventStore

__all__ = [
    "BinnedTemplates",
    "Binning",
    "binned_log_likelihood",
    "binned_scan",
    "fill_templates",
    "score_binning",
    "templates_from_store",
]

@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Binning:
    """A 1D or multi-dimensional binning; bins are flattened in C order (last observable fastest).

    Args:
        observables: names of the binned columns, e.g. ``("pt_w",)`` (see ``WH_OBSERVABLES``).
        edges: increasing edges per observable; ±inf make open under/overflow bins. Values
            outside the edges are not counted.

    Example:
        >>> b = Binning(("pt_w",), ([0.0, 75.0, 150.0, 250.0, 400.0, 600.0, np.inf],))
        >>> b.n_bins, b.bin_index(np.array([[10.0], [700.0], [-1.0]])).tolist()
        (6, [0, 5, -1])
    """

    observables: tuple[str, ...]
    edges: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        edges = tuple(np.asarray(e, dtype=float) for e in self.edges)
        if len(edges) != len(self.observables) or not edges:
            raise ValueError(f"edges: expected one array per observable {self.observables}, got {len(edges)}")
        for name, e in zip(self.observables, edges):
            if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0) or np.isnan(e).any():
                raise ValueError(f"edges of {name!r}: expected >= 2 increasing values, got {e.tolist()}")
        object.__setattr__(self, "observables", tuple(self.observables))
        object.__setattr__(self, "edges", edges)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(e) - 1 for e in self.edges)

    @property
    def n_bins(self) -> int:
        return int(np.prod(self.shape))

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Flat bin index of each event, −1 outside the edges (or NaN).

        Args:
            values: ``(n_events, n_dims)`` in the observables' units.

        Returns:
            ``(n_events,)`` int64.
        """
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(self.edges):
            raise ValueError(f"values: expected shape (n_events, {len(self.edges)}), got {values.shape}")
        index = np.zeros(len(values), dtype=np.int64)
        inside = np.ones(len(values), dtype=bool)
        for column, e in zip(values.T, self.edges):
            i = np.searchsorted(e, column, side="right") - 1
            i[column == e[-1]] = len(e) - 2  # the last edge closes the last bin
            inside &= (i >= 0) & (i < len(e) - 1)
            index = index * (len(e) - 1) + np.clip(i, 0, len(e) - 2)
        return np.where(inside, index, -1)




def score_binning(
    t_hat: np.ndarray,
    weights: np.ndarray,
    *,
    n_bins: int = 25,
    name: str = "t_hat",
    balance: Literal["events", "information"] = "events",
) -> Binning:
    """Bins of a score observable with edges at weighted quantiles of t̂ at the SM (seed 000: 25 bins).

    Args:
        t_hat: one component of t̂(x|θ_SM) ``(n_events,)``.
        weights: event weights at the SM ``(n_events,)`` in pb (negative ones count as 0).
        n_bins: number of bins; the outer edges are ±inf so every event is counted.
        name: observable name stored in the binning.
        balance: ``"events"``: equally populated bins at the SM (seed 000); ``"information"``:
            quantiles of w (1 + t̂²/⟨t̂²⟩), so that about half of the edges follow the events and
            half the Fisher information w t̂². Scores with heavy tails (the CP-odd c_HW̃ in WH,
            where 1% of the events carry most of E[t²]) lose less information that way (WH parton
            level, 25 bins: σ(c_HW̃) from the binned t̂ 5% smaller).

    Returns:
        :class:`Binning` (fewer bins if t̂ has ties).
    """
    t = np.asarray(t_hat, dtype=float)
    w = np.clip(np.asarray(weights, dtype=float), 0, None)
    if t.ndim != 1 or w.shape != t.shape or not w.sum() > 0:
        raise ValueError(
            f"t_hat, weights: expected equal shapes (n_events,), Σw > 0; got {t.shape}, {w.shape}"
        )
    if balance == "information":
        w = w * (1.0 + t**2 / max(np.average(t**2, weights=w), np.finfo(float).tiny))
    elif balance != "events":
        raise ValueError(f"balance: expected 'events' or 'information', got {balance!r}")
    order = np.argsort(t)
    cdf = np.cumsum(w[order])
    inner = np.interp(np.linspace(0, 1, n_bins + 1)[1:-1] * cdf[-1], cdf, t[order])
    return Binning((name,), (np.concatenate([[-np.inf], np.unique(inner), [np.inf]]),))


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class BinnedTemplates:
    """Benchmark weight sums per bin: ν(θ) at any θ by morphing.

    Args:
        binning: the :class:`Binning`.
        benchmark_sums: W_kb, ``(n_bins, n_benchmarks)`` in pb.
        morpher: the morphing basis of the benchmarks.
    """

    binning: Binning
    benchmark_sums: np.ndarray
    morpher: Morpher

    def __post_init__(self) -> None:
        sums = np.asarray(self.benchmark_sums, dtype=float)
        expected = (self.binning.n_bins, self.morpher.n_benchmarks)
        if sums.shape != expected:
            raise ValueError(
                f"benchmark_sums: expected (n_bins, n_benchmarks) = {expected}, got {sums.shape}"
            )
        object.__setattr__(self, "benchmark_sums", sums)

    @property
    def n_bins(self) -> int:
        return self.binning.n_bins

    def expected(self, theta: np.ndarray, luminosity: float) -> np.ndarray:
        """ν_b(θ) = L Σ_k c_k(θ) W_kb · 1000: ``(n_bins,)`` for one θ, ``(n_theta, n_bins)`` for many."""
        lumi = check_luminosity(luminosity)
        return (self.morpher.morphing_weights(theta) @ self.benchmark_sums.T) * lumi * PB_TO_FB

    def expected_gradient(self, theta: np.ndarray, luminosity: float) -> np.ndarray:
        """∂ν_b/∂θ_a at one θ ``(n_params,)``, shape ``(n_params, n_bins)``."""
        lumi = check_luminosity(luminosity)
        theta = as_thetas(theta, self.morpher.n_params)[0]
        return (self.morpher.morphing_weight_gradients(theta) @ self.benchmark_sums.T) * lumi * PB_TO_FB


def fill_templates(
    values: np.ndarray, weights: np.ndarray, binning: Binning, morpher: Morpher
) -> BinnedTemplates:
    """Histogram benchmark weights into :class:`BinnedTemplates`.

    Args:
        values: binned observables ``(n_events, n_dims)`` (columns in ``binning.observables`` order).
        weights: benchmark weights ``(n_events, n_benchmarks)`` in pb.
        binning: the :class:`Binning`.
        morpher: morphing basis of the weight columns.

    Returns:
        :class:`BinnedTemplates`.
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != morpher.n_benchmarks or len(w) != len(values):
        raise ValueError(
            f"weights: expected (n_events, n_benchmarks) = ({len(values)}, {morpher.n_benchmarks}), "
            f"got {w.shape}"
        )
    return BinnedTemplates(binning, _bin_sums(binning.bin_index(values), w, binning.n_bins), morpher)


def _bin_sums(index: np.ndarray, weights: np.ndarray, n_bins: int) -> np.ndarray:
    inside = index >= 0
    return np.stack(
        [np.bincount(index[inside], weights=column[inside], minlength=n_bins) for column in weights.T], axis=1
    )


def templates_from_store(
    store: EventStore, binning: Binning, morpher: Morpher, *, chunk_size: int = 100_000
) -> BinnedTemplates:
    """Stream an :class:`assay.store.EventStore` into :class:`BinnedTemplates` (columns by name).

    Raises:
        ValueError: an observable of the binning is not in the store.
    """
    missing = [n for n in binning.observables if n not in store.observables]
    if missing:
        raise ValueError(f"binning observables {missing} not in the store; it has {store.observables}")
    columns = [store.observables.index(n) for n in binning.observables]
    sums = np.zeros((binning.n_bins, store.n_benchmarks))
    for chunk in store.iter_chunks(chunk_size):
        sums += _bin_sums(binning.bin_index(chunk.x[:, columns]), chunk.weights, binning.n_bins)
    return BinnedTemplates(binning, sums, morpher)


def binned_log_likelihood(data: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Σ_b log Pois(n_b | ν_b) = Σ_b [n_b log ν_b − ν_b − log Γ(n_b + 1)], −inf where ν_b ≤ 0 < n_b.

    Args:
        data: counts n_b ``(n_bins,)`` (non-integer allowed: Asimov).
        nu: expectations ``(n_theta, n_bins)``.

    Returns:
        ``(n_theta,)``.
    """
    n = np.asarray(data, dtype=float)
    nu = np.atleast_2d(np.asarray(nu, dtype=float))
    if n.shape != (nu.shape[1],) or np.any(n < 0):
        raise ValueError(f"data: expected {nu.shape[1]} counts >= 0 (one per bin), got shape {n.shape}")
    impossible = ((nu <= 0) & (n > 0)) | (nu < 0)
    terms = special.xlogy(n, np.where(impossible, 1.0, nu)) - nu - special.gammaln(n + 1.0)
    return np.where(impossible.any(axis=1), -np.inf, terms.sum(axis=1))


def binned_scan(templates: BinnedTemplates, theta: np.ndarray, luminosity: float, data: np.ndarray) -> Scan:
    """−2 Δlog L of the binned Poisson likelihood on a θ grid.

    Args:
        templates: :class:`BinnedTemplates`.
        theta: ``(n_theta, n_params)``.
        luminosity: L in fb⁻¹.
        data: counts per bin ``(n_bins,)``; for expected limits the Asimov data
            ``templates.expected(theta_true, luminosity)``.

    Returns:
        :class:`Scan`.
    """
    thetas = as_thetas(theta, templates.morpher.n_params)
    nu = templates.expected(thetas, luminosity)
    return Scan.from_log_likelihood(thetas, binned_log_likelihood(data, nu))
