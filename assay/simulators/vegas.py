"""A VEGAS importance map on the unit hypercube (Lepage, J. Comput. Phys. 27 (1978) 192).

Each dimension gets piecewise-uniform bins whose edges adapt so that every bin carries
the same share of Σ (w·J)²; sampling then concentrates where the integrand is large.
Vectorised over points; adaptation is a handful of pilot iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["VegasMap"]


@dataclass
class VegasMap:
    """Adaptive map x = M(u) of [0, 1]^d with Jacobian J(u) = Π_d N Δx_d.

    Args:
        n_dim: dimensions.
        n_bins: bins per dimension.
        edges: optional initial edges ``(n_dim, n_bins + 1)``.
    """

    n_dim: int
    n_bins: int = 64
    edges: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.edges is None:
            self.edges = np.tile(np.linspace(0.0, 1.0, self.n_bins + 1), (self.n_dim, 1))

    def map(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points ``u (n, n_dim)`` → (x ``(n, n_dim)``, Jacobian ``(n,)``, bin indices ``(n, n_dim)``)."""
        scaled = u * self.n_bins
        idx = np.minimum(scaled.astype(np.int64), self.n_bins - 1)
        dims = np.arange(self.n_dim)
        low = self.edges[dims, idx]
        width = self.edges[dims, idx + 1] - low
        x = low + (scaled - idx) * width
        return x, np.prod(self.n_bins * width, axis=1), idx

    def adapt(self, idx: np.ndarray, f_times_j: np.ndarray, alpha: float = 1.5) -> None:
        """Move edges so each bin gets the same share of Σ (f·J)² (smoothed, damped by ``alpha``)."""
        new = np.empty_like(self.edges)
        for d in range(self.n_dim):  # loop over dimensions, not events
            acc = np.bincount(idx[:, d], weights=f_times_j**2, minlength=self.n_bins)
            if acc.sum() <= 0:
                new[d] = self.edges[d]
                continue
            smooth = np.convolve(np.pad(acc, 1, mode="edge"), [1, 6, 1], mode="valid") / 8
            smooth /= smooth.sum()
            weight = ((smooth - 1) / np.log(np.maximum(smooth, 1e-300))) ** alpha
            weight = np.where(smooth > 0, np.nan_to_num(weight, nan=0.0), 0.0) + 1e-12
            cumulative = np.concatenate([[0.0], np.cumsum(weight)])
            targets = np.linspace(0.0, cumulative[-1], self.n_bins + 1)
            new[d] = np.interp(targets, cumulative, self.edges[d])
        new[:, 0], new[:, -1] = 0.0, 1.0
        self.edges = new

    def train(
        self,
        integrand: Callable[[np.ndarray], np.ndarray],
        rng: np.random.Generator,
        *,
        n_points: int = 20_000,
        n_iterations: int = 6,
    ) -> None:
        """Adapt on ``integrand(x) -> (n,)`` (non-negative) with a few pilot iterations."""
        for _ in range(n_iterations):
            x, jac, idx = self.map(rng.random((n_points, self.n_dim)))
            self.adapt(idx, integrand(x) * jac)
