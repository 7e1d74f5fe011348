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
the same seed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from assay.joint import IndexedThetas, JointQuantities
from assay.morphing import Morpher, as_thetas
from assay.parameters import Prior
from assay.store import EventStore
from assay.training_set import TrainingSet
from assay.unweighting import MAX_CANDIDATES, Unweighter

__all__ = [
    "EventSource",
    "StoreWeights",
    "UnweightedSample",
    "local_score_training_set",
    "plain_training_set",
    "ratio_training_set",
    "unweight",
]

logger = logging.getLogger(__name__)

ThetaSpec = np.ndarray | Prior
STREAM_FRACTION = 0.5  # stream the weights above this fraction of memory_gb (as assay.streaming)
_WEIGHT_COPIES = 3  # the in-memory unweighter holds W, |W| and the cumulative sums
_CHUNK_FRACTION = 0.05  # one chunk of weights: this fraction of the budget
_ROUND_FRACTION = 0.1  # one round of candidate events: this fraction of the budget


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


def plain_training_set(
    source: EventSource, theta: ThetaSpec, n_samples: int, *, n_theta: int = 1000, rng: np.random.Generator
) -> TrainingSet:
    """NDE / SCANDAL set: x ~ p(x|θ) with θ from ``theta`` (a prior with ``n_theta`` draws, or explicit
    points), and the joint score t(x,z|θ) at each sample's θ as ``t0 (n_samples, n_params)``."""
    thetas = _thetas(theta, n_theta, source.morpher.n_params, rng, "theta")
    per = -(-n_samples // len(thetas))
    draw = source.unweighter.draw(thetas, per, rng)
    order = rng.permutation(draw.indices.size)[:n_samples]
    local = draw.indices.ravel()[order]
    point = np.repeat(np.arange(len(thetas)), per)[order]  # θ index of each kept sample
    return TrainingSet(
        x=source.observables_at(local),
        observables=tuple(source.store.observables),
        parameters=source.parameters,
        kind="plain",
        theta0=thetas[point],
        t0=source.joint.score(source.weights_at(local), IndexedThetas(thetas, point)),
        sample_weight=draw.sign.ravel()[order].astype(float),
        event_index=source.events[local],
    )


def local_score_training_set(
    source: EventSource, theta_ref: np.ndarray, n_samples: int, *, rng: np.random.Generator
) -> TrainingSet:
    """SALLY / SALLINO set: x ~ p(x|θ_ref) and the joint score t(x,z|θ_ref) ``(n, n_params)``."""
    theta_ref = as_thetas(theta_ref, source.morpher.n_params, "theta_ref")
    draw = source.unweighter.draw(theta_ref, n_samples, rng)
    local = draw.indices[0]
    return TrainingSet(
        x=source.observables_at(local),
        observables=tuple(source.store.observables),
        parameters=source.parameters,
        kind="local_score",
        theta0=np.repeat(theta_ref, n_samples, axis=0),
        t0=source.joint.score(source.weights_at(local), theta_ref[0]),
        sample_weight=draw.sign[0].astype(float),
        event_index=source.events[local],
    )


def ratio_training_set(
    source: EventSource,
    theta0: ThetaSpec,
    theta1: ThetaSpec,
    n_samples: int,
    *,
    n_theta0: int = 1000,
    rng: np.random.Generator,
) -> TrainingSet:
    """Pairs for likelihood-ratio estimators (seed 000 "ALICES sampling").

    Args:
        source: events to draw from.
        theta0: prior for θ0 (``n_theta0`` draws) or explicit points ``(n_theta0, n_params)``.
        theta1: a fixed reference point ``(n_params,)`` (singly parameterized), or a prior /
            ``(n_theta0, n_params)`` array paired with θ0 (doubly parameterized).
        n_samples: total samples; ``n_samples // 2`` with y = 0 (x ~ θ0), the rest y = 1 (x ~ θ1).
        n_theta0: number of θ0 values drawn from a prior.
        rng: random generator.

    Returns:
        :class:`TrainingSet` with x, θ0, θ1, y, joint log r, t0, t1, shuffled.
    """
    n_params = source.morpher.n_params
    t0 = _thetas(theta0, n_theta0, n_params, rng, "theta0")
    single = not isinstance(theta1, Prior) and np.ndim(theta1) == 1
    t1 = _thetas(theta1, len(t0), n_params, rng, "theta1")
    if not single and len(t1) != len(t0):
        raise ValueError(f"theta1: expected one point or {len(t0)} points paired with theta0, got {len(t1)}")
    n_half = n_samples // 2
    per = -(-max(n_half, n_samples - n_half) // len(t0))
    draw0 = source.unweighter.draw(t0, per, rng)
    draw1 = source.unweighter.draw(t1, per * len(t0), rng) if single else source.unweighter.draw(t1, per, rng)
    pair = np.repeat(np.arange(len(t0)), per)  # θ0 index of each drawn sample
    order0 = rng.permutation(pair.size)[:n_half]
    order1 = rng.permutation(pair.size)[: n_samples - n_half]
    local = np.concatenate([draw0.indices.ravel()[order0], draw1.indices.ravel()[order1]])
    pair = np.concatenate([pair[order0], pair[order1]])
    th0, th1 = IndexedThetas(t0, pair), (t1[0] if single else IndexedThetas(t1, pair))
    w = source.weights_at(local)
    shuffle = rng.permutation(len(local))
    fields = {
        "theta0": t0[pair],
        "theta1": np.broadcast_to(t1[0], (len(pair), n_params)) if single else t1[pair],
        "y": np.concatenate([np.zeros(n_half), np.ones(n_samples - n_half)]),
        "log_r": source.joint.log_ratio(w, th0, th1),
        "t0": source.joint.score(w, th0),
        "t1": source.joint.score(w, th1),
        "sample_weight": np.concatenate([draw0.sign.ravel()[order0], draw1.sign.ravel()[order1]]).astype(
            float
        ),
        "event_index": source.events[local],
    }
    return TrainingSet(
        x=source.observables_at(local[shuffle]),
        observables=tuple(source.store.observables),
        parameters=source.parameters,
        kind="ratio" if single else "doubly_parameterized",
        **{k: v[shuffle] for k, v in fields.items()},
    )
