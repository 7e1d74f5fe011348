"""Seed 003's spurious-signal term for the finite training statistics of a density-ratio model.

Seed 003 ("Quantifying uncertainty on estimated density ratio") trains every classifier as an
ensemble, member m on the training events with weights w_i · Pois(1), uses the ensemble mean as
the prediction and propagates the uncertainty of that mean with a "spurious signal" nuisance α_s
(unit Gaussian constraint):

    f_j(μ) → f_j(μ + α_s Δμ̂(μ)),

where Δμ̂(μ) is the standard error of μ̂ due to the ensemble: the members' best fits μ̂_m to the
model's Asimov data at μ scatter with std s(μ), and the mean of M members has Δμ̂ = s/√M
(:func:`assay.analysis.training_statistics.spurious_signal`). :class:`SpuriousSignal` holds
Δμ̂ on a grid of μ, linear in between and constant outside, in numpy (with its derivative, for the
analytic gradient) and in torch (for autograd).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SpuriousSignal"]


@dataclass(frozen=True, eq=False)  # holds arrays
class SpuriousSignal:
    """Δθ̂(θ) of one parameter of interest on a grid, and the nuisance that scales it.

    Attributes:
        nuisance: the name of α_s among the likelihood's nuisances (its shapes and yields untouched).
        grid: θ values ``(n,)``, increasing, n ≥ 1.
        delta: Δθ̂ at the grid points ``(n,)``, ≥ 0, in units of θ.
        parameter: index of the parameter of interest that is shifted.

    Example:
        >>> s = SpuriousSignal("training_statistics", np.array([0.0, 2.0]), np.array([0.25, 0.75]))
        >>> s.numpy(1.0)
        (0.5, 0.25)
        >>> s.numpy(5.0)  # constant outside the grid
        (0.75, 0.0)
    """

    nuisance: str
    grid: np.ndarray
    delta: np.ndarray
    parameter: int = 0

    def __post_init__(self) -> None:
        grid, delta = np.asarray(self.grid, dtype=float), np.asarray(self.delta, dtype=float)
        if grid.ndim != 1 or delta.shape != grid.shape or len(grid) < 1:
            raise ValueError(
                f"grid, delta: expected equal 1D shapes (n >= 1), got {grid.shape} and {delta.shape}"
            )
        if not (np.isfinite(grid).all() and np.isfinite(delta).all()) or np.any(delta < 0):
            raise ValueError(f"delta: expected finite values >= 0 on a finite grid, got {delta.tolist()}")
        if np.any(np.diff(grid) <= 0):
            raise ValueError(f"grid: expected increasing values, got {grid.tolist()}")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "delta", delta)

    def _segment(self, theta: float) -> tuple[int, float]:
        """(segment index k, slope) with grid[k] ≤ θ < grid[k + 1]; slope 0 outside the grid."""
        if len(self.grid) == 1 or theta <= self.grid[0] or theta >= self.grid[-1]:
            return (0 if theta <= self.grid[0] else len(self.grid) - 1), 0.0
        k = int(np.searchsorted(self.grid, theta, side="right")) - 1
        slope = (self.delta[k + 1] - self.delta[k]) / (self.grid[k + 1] - self.grid[k])
        return k, float(slope)

    def numpy(self, theta: float) -> tuple[float, float]:
        """(Δθ̂(θ), dΔθ̂/dθ)."""
        k, slope = self._segment(float(theta))
        value = self.delta[k] + slope * (float(theta) - self.grid[k]) if slope else self.delta[k]
        return float(value), slope

    def torch(self, theta: torch.Tensor) -> torch.Tensor:
        """Δθ̂(θ) of a scalar tensor, differentiable."""
        k, slope = self._segment(float(theta.detach()))
        return self.delta[k] + slope * (theta - float(self.grid[k]))

    def shifted(self, poi: torch.Tensor, alpha_s: torch.Tensor) -> torch.Tensor:
        """θ with θ_p → θ_p + α_s Δθ̂(θ_p) (torch, differentiable in both)."""
        p = self.parameter
        return torch.cat([poi[:p], (poi[p] + alpha_s * self.torch(poi[p])).reshape(1), poi[p + 1 :]])
