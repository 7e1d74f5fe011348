"""Unweighting: draw events with probability ∝ w(z|θ) for many θ at once.

Seed 000 draws events by inverse-transform sampling over the cumulative sum of
the morphed weights, one θ at a time, which costs O(n_events) per θ and was its
slowest step (7–16 h for ALICES). Here morphing is used twice more:

    w_i(θ) = Σ_k c_k(θ) W_ik  ≤  Σ_k |c_k(θ)| |W_ik| =: e_i(θ)

The envelope e(θ) is a mixture of the fixed per-benchmark distributions |W_·k|,
with mixture masses |c_k(θ)| Σ_i |W_ik|. So for every θ: pick a benchmark k ∝ mass,
an event i ∝ |W_ik| (binary search in a cumulative sum built once), and accept it
with probability w_i(θ)/e_i(θ). Accepted events follow w(θ) exactly (sampling with
replacement, as MadMiner), and the cost per θ is O(n_draws / acceptance) instead of
O(n_events).

Out of core (issue 17): a weight matrix too large to hold is passed as a :class:`WeightChunks`
(e.g. :class:`assay.sampling.StoreWeights`, the store's weights read in chunks). The sampler then
makes one pass for the per-benchmark totals and one pass per round of candidates, in which the
running cumulative sums locate each candidate's event and its weights are gathered; the running
sums are added in the order of the in-memory ``np.cumsum``, so the draws are the same as in
memory at the same seed (tests/test_streaming.py).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from assay.exceptions import SamplingError
from assay.morphing import Morpher, as_thetas

__all__ = ["EventSplit", "Unweighter", "WeightChunks", "split_events"]

logger = logging.getLogger(__name__)

MAX_CANDIDATES = 4_000_000  # candidate events per round by default (about 1.4 GB with 6 benchmarks)


@dataclass(frozen=True)
class EventSplit:
    """Disjoint event indices of the train, validation and test partitions (sorted)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "validation", "test"):
            raise KeyError(f"unknown partition {name!r}; expected 'train', 'validation' or 'test'")
        return getattr(self, name)


def split_events(
    n_events: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> EventSplit:
    """Assign each event to exactly one of train / validation / test.

    Args:
        n_events: number of events in the sample.
        fractions: (train, validation, test), non-negative, summing to 1.
        rng: random generator.

    Returns:
        :class:`EventSplit` of sorted, disjoint index arrays covering all events.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise SamplingError(f"fractions: expected three non-negative numbers summing to 1, got {fractions}")
    perm = rng.permutation(n_events)
    cuts = np.round(np.cumsum(f)[:2] * n_events).astype(int)
    parts = np.split(perm, cuts)
    return EventSplit(*(np.sort(p) for p in parts))


@runtime_checkable
class WeightChunks(Protocol):
    """Benchmark weights read in chunks: what :class:`Unweighter` streams instead of an array."""

    n_events: int
    n_benchmarks: int

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, weights ``(n_chunk, n_benchmarks)`` in pb) of consecutive chunks, in order."""
        ...


@dataclass(frozen=True)
class Draw:
    """Indices of drawn events ``(n_theta, n_per_theta)`` and their signs (±1)."""

    indices: np.ndarray
    sign: np.ndarray


class Unweighter:
    """Exact rejection sampler of events ∝ w(z|θ), batched over θ.

    Args:
        weights: benchmark weights ``(n_events, n_benchmarks)`` in pb, or :class:`WeightChunks`
            for a matrix too large to hold (streamed: the same draws, one pass per round).
        morpher: morphing basis of the weights.
        allow_negative_weights: if False (default) negative weights raise
            :class:`SamplingError`; if True events are drawn ∝ |w| and carry sign −1
            (a warning states the negative fraction).
        max_candidates: candidate events per round (bounds the memory of a round: about 100 bytes
            each); another value gives other draws.

    Example:
        >>> from assay.morphing import morphing_components
        >>> m = Morpher(morphing_components(1, 1), np.array([[0.0], [1.0]]))
        >>> u = Unweighter(np.array([[1.0, 1.0], [0.0, 3.0]]), m)
        >>> u.draw(np.array([[0.0]]), 4, np.random.default_rng(0)).indices.tolist()
        [[0, 0, 0, 0]]
    """

    def __init__(
        self, weights: np.ndarray | WeightChunks, morpher: Morpher, *, allow_negative_weights: bool = False,
        max_candidates: int = MAX_CANDIDATES,
    ):  # fmt: skip
        self.morpher = morpher
        self.allow_negative_weights = allow_negative_weights
        self.max_candidates = int(max_candidates)
        self._chunked = weights if isinstance(weights, WeightChunks) else None
        if self._chunked is not None:
            self.weights = None
            self._streamed_sums()
            return
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or w.shape[1] != morpher.n_benchmarks or len(w) == 0:
            raise SamplingError(
                f"weights: expected shape (n_events > 0, {morpher.n_benchmarks}), got {w.shape}"
            )
        _check_weights(w, 0)
        if (w < 0).any():
            self._negative(float(np.mean((w < 0).any(axis=1))))
        self.weights = w
        self._n_events = len(w)
        self._abs = np.abs(w)
        self._cumsum = np.cumsum(self._abs, axis=0).T.copy()  # (n_benchmarks, n_events)
        self._totals = self._cumsum[:, -1].copy()
        self._sums = w.sum(axis=0)

    def _negative(self, fraction: float) -> None:
        """Refuse, or warn about, a ``fraction`` of events with a negative benchmark weight."""
        if not self.allow_negative_weights:
            raise SamplingError(
                f"weights: {fraction:.2%} of events have negative benchmark weights; pass "
                f"allow_negative_weights=True to sample ∝ |w| and carry the sign"
            )
        warnings.warn(
            f"{fraction:.2%} of events have negative weights; sampling ∝ |w| with signs", stacklevel=3
        )

    def _streamed_sums(self) -> None:
        """The first pass over chunked weights: checks, Σ_i |W_ik| and Σ_i W_ik in the running order."""
        chunked, n_benchmarks = self._chunked, self.morpher.n_benchmarks
        if chunked.n_benchmarks != n_benchmarks or chunked.n_events == 0:
            raise SamplingError(
                f"weights: expected (n_events > 0, {n_benchmarks}) chunked weights, got "
                f"({chunked.n_events}, {chunked.n_benchmarks})"
            )
        totals, sums, n_negative = np.zeros(n_benchmarks), np.zeros(n_benchmarks), 0
        for start, w in chunked.chunks():
            _check_weights(w, start)
            # row after row, as numpy's cumsum and sum along axis 0 add them in memory: the same floats
            totals = np.cumsum(np.vstack([totals, np.abs(w)]), axis=0)[-1]
            sums = np.vstack([sums, w]).sum(axis=0)
            n_negative += int((w < 0).any(axis=1).sum())
        if n_negative:
            self._negative(n_negative / chunked.n_events)
        self._n_events, self._totals, self._sums = chunked.n_events, totals, sums

    @property
    def n_events(self) -> int:
        return self._n_events

    def _weight_chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, weights) of consecutive chunks: slices of the array, or the streamed chunks."""
        if self._chunked is not None:
            yield from self._chunked.chunks()
            return
        for start in range(0, self.n_events, chunk_size):
            yield start, self.weights[start : start + chunk_size]

    def effective_sample_size(self, thetas: np.ndarray, chunk_size: int = 50_000) -> np.ndarray:
        """n_eff(θ) = Σ_i w_i(θ) / max_i w_i(θ) = 1 / max normalised weight, ``(n_theta,)``."""
        coeffs = self.morpher.morphing_weights(as_thetas(thetas, self.morpher.n_params))
        wmax = np.full(len(coeffs), -np.inf)
        for _, w in self._weight_chunks(chunk_size):
            wmax = np.maximum(wmax, (w @ coeffs.T).max(axis=0))
        return (coeffs @ self._sums) / wmax

    def draw(self, thetas: np.ndarray, n_per_theta: int, rng: np.random.Generator) -> Draw:
        """Draw ``n_per_theta`` events for each θ (with replacement).

        Args:
            thetas: ``(n_theta, n_params)``.
            n_per_theta: events per θ.
            rng: random generator.

        Returns:
            :class:`Draw` with indices into ``weights`` of shape ``(n_theta, n_per_theta)``.

        Raises:
            SamplingError: σ(θ) ≤ 0, or a negative morphed weight without
                ``allow_negative_weights``.
        """
        thetas = as_thetas(thetas, self.morpher.n_params)
        coeffs = self.morpher.morphing_weights(thetas)
        mass = np.abs(coeffs) * self._totals
        sigma = coeffs @ self._sums
        if np.any(sigma <= 0):
            t = thetas[np.argmax(sigma <= 0)]
            raise SamplingError(
                f"morphed cross section is not positive at theta={t.tolist()}: "
                f"the morphing basis cannot describe this point"
            )
        accept_rate = np.clip(sigma / mass.sum(axis=1), 1e-6, 1.0)
        out = np.full((len(thetas), n_per_theta), -1, dtype=np.int64)
        sign = np.ones(out.shape, dtype=np.int8)
        filled = np.zeros(len(thetas), dtype=np.int64)
        while (todo := np.nonzero(filled < n_per_theta)[0]).size:
            need = n_per_theta - filled[todo]
            n_cand = np.ceil(need / accept_rate[todo] * 1.15).astype(np.int64) + 16
            todo, n_cand = _limit_round(todo, n_cand, self.max_candidates)
            self._round(todo, n_cand, thetas, coeffs, mass, out, sign, filled, rng)
        return Draw(out, sign)

    def _round(self, todo, n_cand, thetas, coeffs, mass, out, sign, filled, rng) -> None:
        """One batch of candidates for the θ in ``todo``; fills ``out`` in place."""
        theta_id = np.repeat(todo, n_cand)
        cdf = np.cumsum(mass[todo], axis=1)
        cdf /= cdf[:, -1:]
        local = np.repeat(np.arange(len(todo)), n_cand)
        comp = (rng.random(len(theta_id))[:, None] >= cdf[local]).sum(axis=1)
        comp = np.minimum(comp, cdf.shape[1] - 1)
        target = rng.random(len(theta_id)) * self._totals[comp]
        if self._chunked is None:
            idx = np.empty(len(theta_id), dtype=np.int64)
            for k in range(cdf.shape[1]):  # loop over benchmarks, not events
                sel = comp == k
                idx[sel] = np.searchsorted(self._cumsum[k], target[sel], side="right")
            np.minimum(idx, self.n_events - 1, out=idx)
            rows, abs_rows = self.weights[idx], self._abs[idx]
        else:
            idx, rows = self._locate(comp, target)
            abs_rows = np.abs(rows)
        c = coeffs[theta_id]
        w = np.einsum("nk,nk->n", rows, c)
        env = np.einsum("nk,nk->n", abs_rows, np.abs(c))
        negative = w < -1e-12 * env
        if negative.any() and not self.allow_negative_weights:
            t = theta_id[np.argmax(negative)]
            raise SamplingError(
                f"negative morphed weight {w[np.argmax(negative)]:.3g} pb at theta={thetas[t].tolist()}; "
                f"pass allow_negative_weights=True to sample ∝ |w| and carry the sign"
            )
        accepted = rng.random(len(theta_id)) * env < np.abs(w)
        acc_theta, acc_idx, acc_neg = theta_id[accepted], idx[accepted], negative[accepted]
        counts = np.bincount(acc_theta, minlength=len(out))
        starts = np.cumsum(counts) - counts
        rank = np.arange(len(acc_theta)) - starts[acc_theta]
        keep = rank < (out.shape[1] - filled[acc_theta])
        rows, cols = acc_theta[keep], filled[acc_theta[keep]] + rank[keep]
        out[rows, cols] = acc_idx[keep]
        sign[rows, cols] = np.where(acc_neg[keep], -1, 1)
        filled += np.minimum(counts, out.shape[1] - filled)

    def _locate(self, comp: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Streamed ``searchsorted(cumsum[comp], target, side="right")`` and the weights of the events
        found: one pass over the chunks with running cumulative sums. Returns the event indices
        ``(n,)`` (clipped to the last event, as in memory) and their weights ``(n, n_benchmarks)``."""
        n, last = self.n_events, None
        idx = np.full(len(comp), n, dtype=np.int64)
        rows = np.empty((len(comp), len(self._totals)))
        by_k = [np.flatnonzero(comp == k) for k in range(len(self._totals))]
        by_k = [sel[np.argsort(target[sel], kind="stable")] for sel in by_k]  # targets sorted per benchmark
        offset = np.zeros(len(self._totals))
        for start, w in self._chunked.chunks():
            cum = np.cumsum(np.vstack([offset, np.abs(w)]), axis=0)[1:]  # the in-memory cumsum's values
            for k, sel in enumerate(by_k):
                t = target[sel]
                lo, hi = np.searchsorted(t, [offset[k], cum[-1, k]], side="left")  # offset <= t < end
                found = sel[lo:hi]
                idx[found] = start + np.searchsorted(cum[:, k], target[found], side="right")
            inside = np.flatnonzero((idx >= start) & (idx < start + len(w)))
            rows[inside] = w[idx[inside] - start]
            offset, last = cum[-1], w[-1]
        beyond = idx >= n  # a target at the very total (rounding): the last event, as np.minimum in memory
        idx[beyond], rows[beyond] = n - 1, last
        return idx, rows


def _check_weights(w: np.ndarray, start: int) -> None:
    """Raise :class:`SamplingError` at the first non-finite weight (event numbers from ``start``)."""
    bad = ~np.isfinite(w)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise SamplingError(
            f"weights: non-finite value {w[row, col]} at event {start + row}, benchmark {col}"
        )


def _limit_round(
    todo: np.ndarray, n_cand: np.ndarray, cap: int = MAX_CANDIDATES
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first θ whose candidates fit in one round (at least one θ)."""
    n_fit = max(1, int(np.searchsorted(np.cumsum(n_cand), cap, side="right")))
    return todo[:n_fit], np.minimum(n_cand[:n_fit], cap)
