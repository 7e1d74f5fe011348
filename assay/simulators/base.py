"""The simulator contract: what every event source hands to :func:`assay.generation.generate`.

A simulator (the WH generator, the Gaussian toy, Pythia backgrounds, later the off-shell 4ℓ one)
implements :class:`BatchSimulator`: its observable names, the shapes of its per-event extras, its
process labels, and ``batch(n_events, rng)`` returning one :class:`EventBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["BatchSimulator", "EventBatch"]


@dataclass(frozen=True)
class EventBatch:
    """Events of one batch: x ``(n, n_obs)``, weights ``(n, n_benchmarks)`` pb, labels and extras."""

    x: np.ndarray
    weights: np.ndarray
    process: np.ndarray | int = 0
    benchmark: np.ndarray | int = -1
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    cut_flow: Any = None  # optional CutFlow of the selection that made this batch
    weight_like: tuple[str, ...] = ()  # extras in pb per event: normalised together with the weights


class BatchSimulator(Protocol):
    observables: list[str]
    extras_shapes: dict[str, tuple[int, ...]]
    processes: list[str]

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch: ...
