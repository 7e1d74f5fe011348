"""The rate calibration of an estimated likelihood in a parameter of interest (seed 000's E[r̂] = 1).

An estimated density p̂(x|θ) integrates to one, but the ratio r̂(x|θ, θ_true) = p̂(x|θ)/p̂(x|θ_true)
has E[r̂] = 1 under the model, not under the true p(x|θ_true) that simulated (or real) data follow.
For N events the difference enters the extended likelihood as N log R̂(θ), with

    R̂(θ) = E_{p(x|θ_true)}[p̂(x|θ)/p̂(x|θ_true)],

measured on the simulated events at θ_true (their exact weights). A per-event mismatch of 10⁻⁴ in
R̂ times 4·10⁴ events moves −2 log L by several units: it pulled a mixture model's profiled fit of
data drawn at μ = 1 to μ̂ ≈ 0.4 (docs/systematics.md, "Observed data"). Dividing p̂ by R̂(θ), as
:func:`assay.inference.asimov.normalised` does for the unprofiled methods, removes that first-order
bias: :class:`RateCalibration` holds log R̂ on a grid of θ_p as a cubic spline (constant outside),
in numpy (with its derivative, for the analytic gradient) and torch (for autograd); the likelihood
adds 2 W log R̂(θ_p), W = Σ_i w_i the data's events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import CubicSpline

__all__ = ["RateCalibration"]


@dataclass(frozen=True, eq=False)  # holds arrays
class RateCalibration:
    """log R̂(θ_p) on a grid (module docstring).

    Attributes:
        grid: θ_p values ``(n,)``, increasing, n ≥ 2.
        log_r: log R̂ at the grid points ``(n,)``, finite.
        parameter: index of the parameter of interest.

    Example:
        >>> c = RateCalibration(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1e-4, 4e-4]))
        >>> value, slope = c.numpy(1.0)
        >>> round(value, 8), round(float(c.torch(torch.tensor(1.0, dtype=torch.float64))), 8)
        (0.0001, 0.0001)
    """

    grid: np.ndarray
    log_r: np.ndarray
    parameter: int = 0

    def __post_init__(self) -> None:
        grid, log_r = np.asarray(self.grid, dtype=float), np.asarray(self.log_r, dtype=float)
        if grid.ndim != 1 or log_r.shape != grid.shape or len(grid) < 2:
            raise ValueError(
                f"grid, log_r: expected equal 1D shapes (n >= 2), got {grid.shape} and {log_r.shape}"
            )
        if not (np.isfinite(grid).all() and np.isfinite(log_r).all()) or np.any(np.diff(grid) <= 0):
            raise ValueError("grid, log_r: expected finite values on an increasing grid")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "log_r", log_r)
        object.__setattr__(self, "_spline", CubicSpline(grid, log_r))

    def _inside(self, theta: float) -> tuple[int, float] | None:
        """(segment, offset from its start) inside the grid; None outside (constant there)."""
        if theta <= self.grid[0] or theta >= self.grid[-1]:
            return None
        k = int(np.searchsorted(self.grid, theta, side="right")) - 1
        return k, theta - float(self.grid[k])

    def numpy(self, theta: float) -> tuple[float, float]:
        """(log R̂(θ_p), d log R̂/dθ_p)."""
        theta = float(theta)
        if self._inside(theta) is None:
            return float(self.log_r[0] if theta <= self.grid[0] else self.log_r[-1]), 0.0
        return float(self._spline(theta)), float(self._spline(theta, 1))

    def torch(self, theta: torch.Tensor) -> torch.Tensor:
        """log R̂(θ_p) of a scalar tensor, differentiable (the spline's cubic on θ's segment)."""
        found = self._inside(float(theta.detach()))
        if found is None:
            value = self.log_r[0] if float(theta.detach()) <= self.grid[0] else self.log_r[-1]
            return torch.zeros_like(theta) + float(value)
        k = found[0]
        c = self._spline.c[:, k]  # highest power first
        t = theta - float(self.grid[k])
        return ((float(c[0]) * t + float(c[1])) * t + float(c[2])) * t + float(c[3])
