"""Training sets from weighted events (seed 000 "ALICES sampling", seed 001 Table I).

Every builder draws events by exact unweighting (:class:`assay.unweighting.Unweighter`)
from one partition of an :class:`~assay.store.EventStore` and attaches the augmented
data of :class:`~assay.joint.JointQuantities`:

- :func:`plain_training_set`: x ~ p(x|θ), θ from a prior, with t(x,z|θ) (NDE, SCANDAL).
- :func:`local_score_training_set`: x ~ p(x|θ_ref) with t(x,z|θ_ref) (SALLY, SALLINO).
- :func:`ratio_training_set`: pairs for CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL:
  θ0 from a prior (``n_theta0`` values), θ1 a fixed point or, for doubly parameterized
  estimators, drawn from a prior too; half the samples come from θ0 (y = 0), half from
  θ1 (y = 1), each with joint log r(x,z|θ0,θ1), t(x,z|θ0) and t(x,z|θ1).

Out of core (issue 17): an :class:`EventSource` whose weights would take more than half of
``memory_gb`` (the unweighter holds them three times: W, |W| and its cumulative sums) reads them
in chunks (:class:`StoreWeights`) and the :class:`~assay.unweighting.Unweighter` streams them;
the drawn samples' weights are read back from the store. The sets are the same as in memory at
the same seed. A set is drawn in blocks of :data:`BLOCK_SAMPLES` (:class:`SetSampler`), each with
its own generator, and a set whose arrays exceed half of ``memory_gb`` is written to its file in
parts of a few blocks (:meth:`SetSampler.save`): the file is the one the in-memory set gives.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from assay.joint import IndexedThetas, JointQuantities
from assay.morphing import Morpher, as_thetas
from assay.parameters import Prior
from assay.provenance import Provenance
from assay.store import EventStore
from assay.training_set import TrainingSet, TrainingSetWriter
from assay.unweighting import MAX_CANDIDATES, Unweighter

__all__ = [
    "BLOCK_SAMPLES",
    "EventSource",
    "SetSampler",
    "StoreWeights",
    "UnweightedSample",
    "local_score_sampler",
    "local_score_training_set",
    "plain_sampler",
    "plain_training_set",
    "ratio_sampler",
    "ratio_training_set",
    "unweight",
]

logger = logging.getLogger(__name__)

ThetaSpec = np.ndarray | Prior
STREAM_FRACTION = 0.5  # stream the weights above this fraction of memory_gb (as assay.streaming)
_WEIGHT_COPIES = 3  # the in-memory unweighter holds W, |W| and the cumulative sums
_CHUNK_FRACTION = 0.05  # one chunk of weights: this fraction of the budget
_ROUND_FRACTION = 0.1  # one round of candidate events: this fraction of the budget
BLOCK_SAMPLES = 1 << 18
"""Samples per block of a training set's draws (:class:`SetSampler`): each block has its own generator."""
_BUILD_COPIES = 3  # a part's arrays are held about three times while written (fields, reordered, read)


class StoreWeights:
    """The benchmark weights of some events of a store, read ``chunk_size`` events at a time
    (:class:`~assay.unweighting.WeightChunks`).

    Args:
        store: an open :class:`EventStore`.
        events: sorted event indices ``(n_events,)``.
        chunk_size: events per chunk.
    """

    def __init__(self, store: EventStore, events: np.ndarray, chunk_size: int):
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected >= 1, got {chunk_size}")
        self.store, self.events, self.chunk_size = store, events, int(chunk_size)
        self.n_events, self.n_benchmarks = len(events), store.n_benchmarks

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, weights ``(n_chunk, n_benchmarks)`` in pb) of consecutive chunks."""
        for start in range(0, self.n_events, self.chunk_size):
            rows = self.events[start : start + self.chunk_size]
            yield start, self.store.take(rows, fields=("weights",)).weights

    def __repr__(self) -> str:
        return f"StoreWeights({self.store.path}, {self.n_events} events in chunks of {self.chunk_size})"


class EventSource:
    """The weighted events of one partition of a store, ready for sampling.

    Args:
        store: an open :class:`EventStore` with morphing metadata (or pass ``morpher``).
        events: indices of the events to sample from (e.g. ``split.train``); all by default.
        morpher: morphing basis; defaults to the one stored in the file.
        allow_negative_weights: see :class:`~assay.unweighting.Unweighter`.
        memory_gb: the run's memory budget (``RunConfig.memory_gb``); None: the weights are loaded.
            Above half of it for the unweighter's three copies of the weights, they stream
            (:attr:`streamed`; chunks of 5% of the budget, rounds of candidates of at most 10% of it:
            the same draws as in memory for a budget of 14 GB or more with 6 benchmarks, equal in
            distribution below, where the rounds are smaller).

    Cross sections σ(θ) always use the *whole* file (the best estimate of the rate);
    events are drawn only from ``events``.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        events: np.ndarray | None = None,
        morpher: Morpher | None = None,
        allow_negative_weights: bool = False,
        memory_gb: float | None = None,
    ):
        if morpher is None:
            if not store.morphing:
                raise ValueError(f"{store.path}: the file has no morphing metadata; pass morpher=")
            morpher = Morpher.from_dict(store.morphing)
        self.store = store
        self.morpher = morpher
        self.memory_gb = memory_gb
        self.events = np.arange(store.n_events) if events is None else np.asarray(events, dtype=np.int64)
        self.joint = JointQuantities(morpher, store.weights_sum())
        row_bytes = 8 * store.n_benchmarks
        budget = None if memory_gb is None else memory_gb * 1e9
        held = _WEIGHT_COPIES * row_bytes * len(self.events)
        self.streamed = budget is not None and held > STREAM_FRACTION * budget
        options: dict = {"allow_negative_weights": allow_negative_weights}
        if self.streamed:
            assert budget is not None
            chunk = max(1024, int(_CHUNK_FRACTION * budget / row_bytes))
            self.weights = None  # read back per draw (weights_at)
            weights = StoreWeights(store, self.events, chunk)
            per_candidate = 64 + 6 * row_bytes  # a round's indices and draws, and 6 arrays of weights
            cap = int(_ROUND_FRACTION * budget / per_candidate)
            options["max_candidates"] = int(np.clip(cap, 10_000, MAX_CANDIDATES))
            logger.info(
                "%s: the weights of %d events exceed half of memory_gb %g; streamed in chunks of %d",
                store.path, len(self.events), memory_gb, chunk,
            )  # fmt: skip
            self.unweighter = Unweighter(weights, morpher, **options)
        else:
            self.weights = store.take(self.events, fields=("weights",)).weights
            self.unweighter = Unweighter(self.weights, morpher, **options)

    def weights_at(self, local: np.ndarray) -> np.ndarray:
        """Benchmark weights of events ``self.events[local]``, ``(n, n_benchmarks)`` in pb."""
        if self.weights is not None:
            return self.weights[local]
        return self.store.take(self.events[local], fields=("weights",)).weights

    @property
    def parameters(self) -> tuple[str, ...]:
        params = (self.store.parameters or {}).get("parameters", [])
        names = tuple(p["name"] for p in params)
        return names or tuple(f"theta_{a}" for a in range(self.morpher.n_params))

    def observables_at(self, local: np.ndarray) -> np.ndarray:
        """x of events ``self.events[local]``, ``(n, n_obs)``, streamed from the file."""
        return self.store.take(self.events[local], fields=("x",)).x


@dataclass(frozen=True)
class UnweightedSample:
    """Events drawn ∝ w(z|θ): observables ``x (n, n_obs)``, their store indices, and n_eff."""

    x: np.ndarray
    event_index: np.ndarray
    sign: np.ndarray
    effective_sample_size: float


def _thetas(spec: ThetaSpec, n: int, n_params: int, rng: np.random.Generator, name: str) -> np.ndarray:
    """Points from a prior (``n`` draws) or an explicit array ``(n_params,)``/``(m, n_params)``."""
    if isinstance(spec, Prior):
        if spec.n_params != n_params:
            raise ValueError(f"{name}: prior has n_params={spec.n_params}, the morphing has {n_params}")
        return spec.sample(n, rng)
    return as_thetas(spec, n_params, name)


def unweight(
    source: EventSource, theta: np.ndarray, n_samples: int, rng: np.random.Generator
) -> UnweightedSample:
    """Draw ``n_samples`` events from p(x|θ) at one θ ``(n_params,)``, reporting n_eff."""
    theta = as_thetas(theta, source.morpher.n_params)
    draw = source.unweighter.draw(theta, n_samples, rng)
    n_eff = float(source.unweighter.effective_sample_size(theta)[0])
    logger.info("unweighted %d events at theta=%s (n_eff = %.0f)", n_samples, theta[0].tolist(), n_eff)
    local = draw.indices[0]
    return UnweightedSample(source.observables_at(local), source.events[local], draw.sign[0], n_eff)


class _Draws(Protocol):
    """How one kind of set draws a block of samples and computes their fields from the weights."""

    kind: str
    row_values: int  # float64 values per sample in the set's arrays, x and event_index included

    def draw(self, rng: np.random.Generator, n: int) -> _Drawn: ...

    def fields(self, drawn: _Drawn, w: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class _Drawn:
    """The draws of one block: events ``local`` (positions in the source's events) in the order in
    which :meth:`_Draws.fields` computes their fields, the block's final row ``order`` (None: as
    drawn), and what else the fields need (``info``: θ indices, signs, labels)."""

    local: np.ndarray
    order: np.ndarray | None
    info: dict[str, np.ndarray]


class SetSampler:
    """A training set drawn block by block, to collect in memory or write to a file in parts.

    The set's θ points are drawn first from ``rng``; then its ``n_samples`` rows are drawn in blocks
    of ``block_size``, the first with ``rng`` itself, the others each with a generator spawned from it
    (``rng.spawn``), so that no draw depends on how many blocks are held at a time. :meth:`collect`
    holds them all (a set of one block is the set the builders made before blocks); :meth:`save`
    writes them in parts of several blocks when the set exceeds half of the source's ``memory_gb``
    (:class:`~assay.training_set.TrainingSetWriter`): the file holds the same arrays, bit for bit.
    A sampler draws its set once.

    Made by :func:`plain_sampler`, :func:`local_score_sampler` and :func:`ratio_sampler`.
    """

    def __init__(self, source: EventSource, draws: _Draws, n_samples: int, rng: np.random.Generator,
                 block_size: int):  # fmt: skip
        if block_size < 2:
            raise ValueError(f"block_size: expected >= 2 samples, got {block_size}")
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
        self.source, self.draws, self.n_samples = source, draws, int(n_samples)
        n_blocks = -(-self.n_samples // block_size)
        self.block_sizes = [block_size] * (n_blocks - 1) + [self.n_samples - block_size * (n_blocks - 1)]
        self._rngs = [rng, *rng.spawn(n_blocks - 1)]
        self._drawn = False

    @property
    def kind(self) -> str:
        return self.draws.kind

    @property
    def nbytes(self) -> int:
        """Bytes of the set's arrays at float64."""
        return 8 * self.draws.row_values * self.n_samples

    @property
    def streamed(self) -> bool:
        """Whether :meth:`save` writes in parts: the arrays exceed half of the source's ``memory_gb``."""
        budget = self.source.memory_gb
        return budget is not None and self.nbytes > STREAM_FRACTION * budget * 1e9

    def part_blocks(self) -> int:
        """Blocks per part written by :meth:`save`: as many as fit, with their weights and copies made
        while the fields are computed, in half of ``memory_gb`` (at least one); all without a budget."""
        if self.source.memory_gb is None:
            return len(self.block_sizes)
        row = 8 * (self.draws.row_values + self.source.store.n_benchmarks)
        fits = STREAM_FRACTION * self.source.memory_gb * 1e9 / (_BUILD_COPIES * row * self.block_sizes[0])
        return max(1, int(fits))

    def parts(self, n_blocks: int) -> Iterator[TrainingSet]:
        """The set block by block, the events of ``n_blocks`` blocks read from the store at a time.

        Raises:
            RuntimeError: the set was drawn already (its generators are spent; make another sampler).
        """
        if self._drawn:
            raise RuntimeError("SetSampler: the set was drawn already; make another sampler to draw again")
        self._drawn = True
        for first in range(0, len(self.block_sizes), n_blocks):
            blocks = range(first, min(first + n_blocks, len(self.block_sizes)))
            drawn = [self.draws.draw(self._rngs[b], self.block_sizes[b]) for b in blocks]
            local = np.concatenate([d.local for d in drawn])
            x, w = self.source.observables_at(local), self.source.weights_at(local)
            stop = np.cumsum([len(d.local) for d in drawn])
            for d, end in zip(drawn, stop, strict=True):
                rows = slice(end - len(d.local), end)
                yield self._block(d, x[rows], w[rows])

    def _block(self, drawn: _Drawn, x: np.ndarray, w: np.ndarray) -> TrainingSet:
        fields = self.draws.fields(drawn, w)
        if drawn.order is not None:
            x, fields = x[drawn.order], {k: v[drawn.order] for k, v in fields.items()}
        return TrainingSet(
            x=x, observables=tuple(self.source.store.observables), parameters=self.source.parameters,
            kind=self.kind, **fields,
        )  # fmt: skip

    def collect(self) -> TrainingSet:
        """The whole set in memory."""
        return TrainingSet.concatenate(list(self.parts(len(self.block_sizes))))

    def save(self, path: str | os.PathLike, *, provenance: Provenance | None = None) -> Path:
        """Write the set to ``path`` (HDF5, atomically), in parts when :attr:`streamed`.

        Args:
            path: the file (missing parent folders are made).
            provenance: stored as the root attribute ``provenance``.

        Returns:
            ``path``.
        """
        if not self.streamed:
            return self.collect().save(path, provenance=provenance)
        n_blocks = self.part_blocks()
        logger.info(
            "%s: the %d-sample %s set (%.2f GB) exceeds half of memory_gb %g; written in parts of %d samples",
            path, self.n_samples, self.kind, self.nbytes / 1e9, self.source.memory_gb,
            n_blocks * self.block_sizes[0],
        )  # fmt: skip
        with TrainingSetWriter(
            path, observables=self.source.store.observables, parameters=self.source.parameters,
            kind=self.kind, provenance=provenance, n_bytes=self.nbytes,
        ) as writer:  # fmt: skip
            for part in self.parts(n_blocks):
                writer.append(part)
        return Path(path)


class _PlainDraws:
    """x ~ p(x|θ) at ``thetas`` drawn evenly, shuffled, with t(x,z|θ)."""

    kind = "plain"

    def __init__(self, source: EventSource, thetas: np.ndarray):
        self.source, self.thetas = source, thetas
        self.row_values = len(source.store.observables) + 2 * source.morpher.n_params + 2

    def draw(self, rng: np.random.Generator, n: int) -> _Drawn:
        per = -(-n // len(self.thetas))
        draw = self.source.unweighter.draw(self.thetas, per, rng)
        order = rng.permutation(draw.indices.size)[:n]
        point = np.repeat(np.arange(len(self.thetas)), per)[order]  # θ index of each kept sample
        return _Drawn(draw.indices.ravel()[order], None, {"point": point, "sign": draw.sign.ravel()[order]})

    def fields(self, drawn: _Drawn, w: np.ndarray) -> dict[str, np.ndarray]:
        point = drawn.info["point"]
        return {
            "theta0": self.thetas[point],
            "t0": self.source.joint.score(w, IndexedThetas(self.thetas, point)),
            "sample_weight": drawn.info["sign"].astype(float),
            "event_index": self.source.events[drawn.local],
        }


class _LocalScoreDraws:
    """x ~ p(x|θ_ref) with t(x,z|θ_ref)."""

    kind = "local_score"

    def __init__(self, source: EventSource, theta_ref: np.ndarray):
        self.source, self.theta_ref = source, theta_ref
        self.row_values = len(source.store.observables) + 2 * source.morpher.n_params + 2

    def draw(self, rng: np.random.Generator, n: int) -> _Drawn:
        draw = self.source.unweighter.draw(self.theta_ref, n, rng)
        return _Drawn(draw.indices[0], None, {"sign": draw.sign[0]})

    def fields(self, drawn: _Drawn, w: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "theta0": np.repeat(self.theta_ref, len(drawn.local), axis=0),
            "t0": self.source.joint.score(w, self.theta_ref[0]),
            "sample_weight": drawn.info["sign"].astype(float),
            "event_index": self.source.events[drawn.local],
        }


class _RatioDraws:
    """Half the samples x ~ θ0 (y = 0), half x ~ θ1 (y = 1), with the joint log r, t0 and t1."""

    def __init__(self, source: EventSource, t0: np.ndarray, t1: np.ndarray, single: bool):
        self.source, self.t0, self.t1, self.single = source, t0, t1, single
        self.kind = "ratio" if single else "doubly_parameterized"
        self.row_values = len(source.store.observables) + 4 * source.morpher.n_params + 4

    def draw(self, rng: np.random.Generator, n: int) -> _Drawn:
        t0, t1, unweighter = self.t0, self.t1, self.source.unweighter
        n_half = n // 2
        per = -(-max(n_half, n - n_half) // len(t0))
        draw0 = unweighter.draw(t0, per, rng)
        draw1 = unweighter.draw(t1, per * len(t0), rng) if self.single else unweighter.draw(t1, per, rng)
        pair = np.repeat(np.arange(len(t0)), per)  # θ0 index of each drawn sample
        order0 = rng.permutation(pair.size)[:n_half]
        order1 = rng.permutation(pair.size)[: n - n_half]
        local = np.concatenate([draw0.indices.ravel()[order0], draw1.indices.ravel()[order1]])
        info = {
            "pair": np.concatenate([pair[order0], pair[order1]]),
            "sign": np.concatenate([draw0.sign.ravel()[order0], draw1.sign.ravel()[order1]]),
            "y": np.concatenate([np.zeros(n_half), np.ones(n - n_half)]),
        }
        return _Drawn(local, rng.permutation(len(local)), info)

    def fields(self, drawn: _Drawn, w: np.ndarray) -> dict[str, np.ndarray]:
        t0, t1, pair, n_params = self.t0, self.t1, drawn.info["pair"], self.source.morpher.n_params
        th0, th1 = IndexedThetas(t0, pair), (t1[0] if self.single else IndexedThetas(t1, pair))
        joint = self.source.joint
        return {
            "theta0": t0[pair],
            "theta1": np.broadcast_to(t1[0], (len(pair), n_params)) if self.single else t1[pair],
            "y": drawn.info["y"],
            "log_r": joint.log_ratio(w, th0, th1),
            "t0": joint.score(w, th0),
            "t1": joint.score(w, th1),
            "sample_weight": drawn.info["sign"].astype(float),
            "event_index": self.source.events[drawn.local],
        }


def plain_sampler(
    source: EventSource, theta: ThetaSpec, n_samples: int, *, n_theta: int = 1000, rng: np.random.Generator,
    block_size: int = BLOCK_SAMPLES,
) -> SetSampler:  # fmt: skip
    """The NDE / SCANDAL set of :func:`plain_training_set`, drawn block by block (:class:`SetSampler`)."""
    thetas = _thetas(theta, n_theta, source.morpher.n_params, rng, "theta")
    return SetSampler(source, _PlainDraws(source, thetas), n_samples, rng, block_size)


def plain_training_set(
    source: EventSource, theta: ThetaSpec, n_samples: int, *, n_theta: int = 1000, rng: np.random.Generator,
    block_size: int = BLOCK_SAMPLES,
) -> TrainingSet:  # fmt: skip
    """NDE / SCANDAL set: x ~ p(x|θ) with θ from ``theta`` (a prior with ``n_theta`` draws, or explicit
    points), and the joint score t(x,z|θ) at each sample's θ as ``t0 (n_samples, n_params)``.
    ``block_size``: samples per block of draws (:class:`SetSampler`; another value gives other draws)."""
    return plain_sampler(source, theta, n_samples, n_theta=n_theta, rng=rng, block_size=block_size).collect()


def local_score_sampler(
    source: EventSource, theta_ref: np.ndarray, n_samples: int, *, rng: np.random.Generator,
    block_size: int = BLOCK_SAMPLES,
) -> SetSampler:  # fmt: skip
    """The SALLY / SALLINO set of :func:`local_score_training_set`, drawn block by block."""
    theta_ref = as_thetas(theta_ref, source.morpher.n_params, "theta_ref")
    return SetSampler(source, _LocalScoreDraws(source, theta_ref), n_samples, rng, block_size)


def local_score_training_set(
    source: EventSource, theta_ref: np.ndarray, n_samples: int, *, rng: np.random.Generator,
    block_size: int = BLOCK_SAMPLES,
) -> TrainingSet:  # fmt: skip
    """SALLY / SALLINO set: x ~ p(x|θ_ref) and the joint score t(x,z|θ_ref) ``(n, n_params)``."""
    return local_score_sampler(source, theta_ref, n_samples, rng=rng, block_size=block_size).collect()


def ratio_sampler(
    source: EventSource, theta0: ThetaSpec, theta1: ThetaSpec, n_samples: int, *, n_theta0: int = 1000,
    rng: np.random.Generator, block_size: int = BLOCK_SAMPLES,
) -> SetSampler:  # fmt: skip
    """The likelihood-ratio set of :func:`ratio_training_set`, drawn block by block."""
    n_params = source.morpher.n_params
    t0 = _thetas(theta0, n_theta0, n_params, rng, "theta0")
    single = not isinstance(theta1, Prior) and np.ndim(theta1) == 1
    t1 = _thetas(theta1, len(t0), n_params, rng, "theta1")
    if not single and len(t1) != len(t0):
        raise ValueError(f"theta1: expected one point or {len(t0)} points paired with theta0, got {len(t1)}")
    return SetSampler(source, _RatioDraws(source, t0, t1, single), n_samples, rng, block_size)


def ratio_training_set(
    source: EventSource, theta0: ThetaSpec, theta1: ThetaSpec, n_samples: int, *, n_theta0: int = 1000,
    rng: np.random.Generator, block_size: int = BLOCK_SAMPLES,
) -> TrainingSet:  # fmt: skip
    """Pairs for likelihood-ratio estimators (seed 000 "ALICES sampling").

    Args:
        source: events to draw from.
        theta0: prior for θ0 (``n_theta0`` draws) or explicit points ``(n_theta0, n_params)``.
        theta1: a fixed reference point ``(n_params,)`` (singly parameterized), or a prior /
            ``(n_theta0, n_params)`` array paired with θ0 (doubly parameterized).
        n_samples: total samples; ``n_samples // 2`` with y = 0 (x ~ θ0), the rest y = 1 (x ~ θ1)
            (in each block: half of it, the larger half with y = 1).
        n_theta0: number of θ0 values drawn from a prior.
        rng: random generator.
        block_size: samples per block of draws (:class:`SetSampler`; another value gives other draws).

    Returns:
        :class:`TrainingSet` with x, θ0, θ1, y, joint log r, t0, t1, shuffled within each block.
    """
    return ratio_sampler(
        source, theta0, theta1, n_samples, n_theta0=n_theta0, rng=rng, block_size=block_size
    ).collect()
