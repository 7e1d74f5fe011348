"""Parameterized models g(x, θ) behind the likelihood-ratio estimators.

log r̂(x|θ0, θ1) = g(x, θ0) − g(x, θ1) (:func:`log_ratio_and_scores`), with

- :class:`RatioNet`: an MLP on the standardized [x, θ];
- :class:`MorphingRatioNet`: the morphing-aware form below.

With a :class:`~assay.morphing.Morpher`, g can be made morphing-aware
(arXiv:2410.07315): the network outputs one positive function f_k(x) = softplus(a_k(x))
per benchmark and learnable rates ρ_k = softplus(b_k), and

    g(x, θ) = log Σ_k c_k(θ) f_k(x) − log Σ_k c_k(θ) ρ_k,

the form of log p(x|θ) + const(x) when p(x|θ) = Σ_k c_k(θ) σ_k p(x|θ_k) / σ(θ): the
θ-dependence of r̂ is exactly that of the morphing polynomial. The rate term is needed
because σ(θ) = Σ_k c_k(θ) σ_k varies with θ; without it r̂ would carry a spurious
σ(θ0)/σ(θ1). Since c_k(θ) can be negative, both sums are clamped to ≥ :data:`MORPHING_EPS`
(a guard only: where it acts, log r̂ saturates and its gradient vanishes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assay.estimators.nets import MLP, Standardizer
from assay.morphing import Morpher
from assay.training_set import TrainingSet

__all__ = ["MORPHING_EPS", "MorphingRatioNet", "RatioNet", "log_ratio_and_scores"]

MORPHING_EPS = 1e-12  # lower bound of the morphed sums in MorphingRatioNet


class RatioNet(nn.Module):
    """g(x, θ): an MLP on the standardized ``[x, θ]``."""

    def __init__(self, n_obs: int, n_params: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.theta_scaler = Standardizer(n_params)
        self.mlp = MLP(n_obs + n_params, 1, hidden, activation, output_bias=False)  # a bias cancels in log r̂

    def fit_scalers(self, data: TrainingSet) -> None:
        self.x_scaler.fit(data.x)
        self.theta_scaler.fit(np.concatenate([data.theta0, data.theta1]))

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """g for x ``(m, n_obs)`` and θ ``(k, m, n_params)`` (row j of x with θ[:, j]) → ``(k, m)``."""
        xs = self.x_scaler(x).expand(theta.shape[0], -1, -1)
        return self.mlp(torch.cat([xs, self.theta_scaler(theta)], dim=-1)).squeeze(-1)


class MorphingRatioNet(nn.Module):
    """Morphing-aware g(x, θ) = log Σ_k c_k(θ) f_k(x) − log Σ_k c_k(θ) ρ_k (arXiv:2410.07315)."""

    components: torch.Tensor
    inverse: torch.Tensor

    def __init__(self, n_obs: int, morpher: Morpher, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, morpher.n_benchmarks, hidden, activation)
        self.rate_logits = nn.Parameter(torch.zeros(morpher.n_benchmarks))
        self.register_buffer("components", torch.as_tensor(morpher.components, dtype=torch.long))
        self.register_buffer("inverse", torch.as_tensor(np.linalg.pinv(morpher.matrix), dtype=torch.float32))

    def fit_scalers(self, data: TrainingSet) -> None:
        self.x_scaler.fit(data.x)

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """Morphing weights c_k(θ) ``(..., n_benchmarks)`` for θ ``(..., n_params)`` (differentiable)."""
        # φ_c(θ) = Π_a θ_a^p_ca by repeated products: ``theta ** p`` has a NaN second
        # derivative at θ_a = 0 (0 · 0⁻¹), which the score loss differentiates through.
        max_power = int(self.components.max()) if self.components.numel() else 0
        powers = [torch.ones_like(theta)]
        for _ in range(max_power):
            powers.append(powers[-1] * theta)
        table = torch.stack(powers, dim=-2)  # (..., max_power + 1, n_params)
        monomials = table[..., self.components[:, 0], 0]  # (..., n_components)
        for a in range(1, theta.shape[-1]):
            monomials = monomials * table[..., self.components[:, a], a]
        return monomials @ self.inverse

    def benchmark_densities(self, x: torch.Tensor) -> torch.Tensor:
        """f_k(x) = softplus(a_k(x)) > 0, ``(m, n_benchmarks)``."""
        return F.softplus(self.mlp(self.x_scaler(x)))

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """g for x ``(m, n_obs)`` and θ ``(k, m, n_params)`` → ``(k, m)``."""
        c = self.coefficients(theta)
        numerator = (c * self.benchmark_densities(x)).sum(-1)
        rate = c @ F.softplus(self.rate_logits)
        return torch.log(numerator.clamp_min(MORPHING_EPS)) - torch.log(rate.clamp_min(MORPHING_EPS))


def log_ratio_and_scores(
    net: nn.Module, x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor, *, t0: bool, t1: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """log r̂ = g(x, θ0) − g(x, θ1) and, on request, the scores t̂0 = ∇θ g|θ0, t̂1 = ∇θ g|θ1.

    Args:
        net: a :class:`RatioNet` or :class:`MorphingRatioNet`.
        x: ``(m, n_obs)``.
        theta0: ``(k, m, n_params)``.
        theta1: ``(k, m, n_params)`` or ``(1, m, n_params)``.
        t0, t1: whether to compute the scores at θ0 / θ1.

    Returns:
        log r̂ ``(k, m)``, t̂0 ``(k, m, n_params)`` and t̂1 (θ1's shape) or None. Under ``torch.no_grad``
        the outputs are detached; otherwise the score graph is kept for training.
    """
    outer = torch.is_grad_enabled()
    k = theta0.shape[0]
    with torch.set_grad_enabled(outer or t0 or t1):
        thetas = torch.cat([theta0, theta1]).detach().requires_grad_(t0 or t1)  # one forward pass
        g = net(x, thetas)
        g0, g1 = g[:k], g[k:]
        log_r = g0 - g1
        grad = torch.autograd.grad(g.sum(), thetas, create_graph=outer)[0] if t0 or t1 else None
        s0 = grad[:k] if t0 else None
        s1 = grad[k:] if t1 else None
    if not outer:
        log_r, s0, s1 = (v.detach() if v is not None else None for v in (log_r, s0, s1))
    return log_r, s0, s1
