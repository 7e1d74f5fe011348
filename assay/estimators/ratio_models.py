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

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assay.estimators.nets import (
    ACTIVATION_DERIVATIVES,
    MLP,
    Standardizer,
    tanh_,
)
from assay.estimators.prediction import RATIO_FLOOR
from assay.morphing import Morpher, power_steps
from assay.training_set import TrainingSet

__all__ = [
    "ACTIVATION_DERIVATIVES",
    "MORPHING_EPS",
    "MorphingRatioNet",
    "RatioNet",
    "log_ratio_and_scores",
]

MORPHING_EPS = RATIO_FLOOR  # lower bound of the morphed sums in MorphingRatioNet


class RatioNet(nn.Module):
    """g(x, θ): an MLP on the standardized ``[x, θ]``.

    The first layer is split, W [x, θ] = W_x x + W_θ θ, so the x part is computed once per
    event and shared by every θ it is paired with (θ0 and θ1 in training, a whole θ grid in
    evaluation). Scores ∇θ g come from forward-mode differentiation written out layer by
    layer (tangent propagation, :meth:`value_and_theta_grad`): one forward pass carries the
    n_params tangents along, and training needs a single backward pass instead of autograd's
    double backward (about 2× faster per step, benchmarks/training.py).
    """

    def __init__(self, n_obs: int, n_params: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.theta_scaler = Standardizer(n_params)
        self.mlp = MLP(n_obs + n_params, 1, hidden, activation, output_bias=False)  # a bias cancels in log r̂
        self.n_obs = n_obs
        self.activation = activation

    def fit_scalers(self, data: TrainingSet) -> None:
        self.x_scaler.fit(data.x)
        self.theta_scaler.fit(np.concatenate([data.theta0, data.theta1]))

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """g for x ``(m, n_obs)`` and θ ``(k, m, n_params)`` (row j of x with θ[:, j]; a θ of shape
        ``(k, 1, n_params)`` is paired with every event) → ``(k, m)``."""
        return self.value_and_theta_grad(x, theta, tangents=None)[0]

    def value_and_theta_grad(
        self, x: torch.Tensor, theta: torch.Tensor, tangents: slice | torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """g(x, θ) ``(k, m)`` and ∇θ g at the rows ``tangents`` of the ``(k, m)`` table.

        ``tangents``: a slice of θ rows (gradient ``(k', m, n_params)``), or indices into the
        flattened table (gradient ``(len(tangents), n_params)``: training asks only for the
        events its score loss uses), or None (no gradient).

        Forward-mode chain rule through the MLP: with z_l = W_l h_{l−1} + b_l and h_l = φ(z_l),
        the tangents D_l = ∂h_l/∂θ obey D_1 = φ'(z_1) ⊙ W_θ/σ_θ and D_l = φ'(z_l) ⊙ (D_{l−1} W_lᵀ);
        φ' is written in terms of z and h (:data:`ACTIVATION_DERIVATIVES`). Everything stays in
        autograd's graph, so a loss on the scores trains with one ordinary backward pass.
        """
        layers = list(self.mlp)
        first, rest = layers[0], layers[1:]
        w_x, w_theta = first.weight[:, : self.n_obs], first.weight[:, self.n_obs :]
        z = F.linear(self.x_scaler(x), w_x, first.bias) + self.theta_scaler(theta) @ w_theta.T  # (k, m, h)
        derivative = ACTIVATION_DERIVATIVES[self.activation]
        tangent = None
        if tangents is not None:
            tangent = (w_theta / self.theta_scaler.std).T  # (n_params, h): ∂z_1/∂θ
        h = z
        for layer in rest:
            if isinstance(layer, nn.Linear):
                z = layer(h)
                if tangent is not None:
                    tangent = tangent @ layer.weight.T
            else:
                h = layer(z)
                if tangent is not None:
                    rows_z, rows_h = _table_rows(z, tangents), _table_rows(h, tangents)
                    tangent = derivative(rows_z, rows_h).unsqueeze(-2) * tangent
                z = h
        value = z.squeeze(-1)
        if tangent is not None:  # (P,) for a linear model, else (..., P)
            shape = (*_table_rows(value, tangents).shape, theta.shape[-1])
            tangent = torch.broadcast_to(tangent.squeeze(-1), shape)
        return value, tangent

    @torch.no_grad()
    def log_ratio_table(
        self, x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor, workspace: dict | None = None
    ) -> torch.Tensor:
        """log r̂(x_j|θ0_i, θ1_i) ``(k, m)``; x ``(m, n_obs)``, θ0 ``(k, n_params)``, θ1 ``(k|1, n_params)``.

        The evaluation path of the scans (no gradients): every layer writes into buffers kept
        in ``workspace`` (a dict the caller passes to each chunk) and activations work in place.
        Fresh multi-MB tensors per chunk are served by ``mmap`` and page-faulted in on every
        call, which made the same evaluation 1.5-3× slower and its time erratic.
        """
        rows = torch.cat([theta0, theta1])
        k, n_rows, m = len(theta0), len(rows), len(x)
        ws = {} if workspace is None else workspace
        layers = list(self.mlp)
        first = layers[0]
        w_x, w_theta = first.weight[:, : self.n_obs], first.weight[:, self.n_obs :]
        x_part = F.linear(self.x_scaler(x), w_x, first.bias)  # (m, h)
        theta_part = self.theta_scaler(rows) @ w_theta.T  # (n_rows, h)
        h = torch.add(
            theta_part[:, None, :],
            x_part[None],
            out=_buffer(ws, "a", (n_rows, m, first.out_features), x_part),
        )
        h = h.view(n_rows * m, -1)
        inplace = _INPLACE_ACTIVATIONS.get(self.activation)
        spare = "b"
        for layer in layers[1:]:
            if isinstance(layer, nn.Linear):
                out = _buffer(ws, spare, (n_rows * m, layer.out_features), h)
                if layer.bias is None:
                    h = torch.mm(h, layer.weight.T, out=out)
                else:
                    h = torch.addmm(layer.bias, h, layer.weight.T, out=out)
                spare = "a" if spare == "b" else "b"
            elif inplace is not None:
                inplace(h)
            else:
                h.copy_(layer(h))
        g = h.view(n_rows, m)
        return g[:k] - g[k:]

    def log_ratio_and_scores(
        self,
        x: torch.Tensor,
        theta0: torch.Tensor,
        theta1: torch.Tensor,
        *,
        t0: bool | torch.Tensor,
        t1: bool | torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """See :func:`log_ratio_and_scores` (θ rows of shape ``(k, 1, n_params)`` broadcast over events)."""
        k = theta0.shape[0]
        if theta0.shape[1] != theta1.shape[1]:  # one of them is shared by all events
            m = max(theta0.shape[1], theta1.shape[1])
            theta0, theta1 = theta0.expand(-1, m, -1), theta1.expand(-1, m, -1)
        rows = torch.cat([theta0, theta1])
        if isinstance(t0, torch.Tensor) or isinstance(t1, torch.Tensor):
            return self._scores_at_events(x, rows, t0, t1)
        tangents = slice(None) if t0 and t1 else slice(0, k) if t0 else slice(k, None) if t1 else None
        g, grad = self.value_and_theta_grad(x, rows, tangents)
        s0 = s1 = None
        if grad is not None:
            s0 = grad[:k] if t0 else None
            s1 = (grad[k:] if t0 else grad) if t1 else None
        return g[:k] - g[k:], s0, s1

    def _scores_at_events(
        self, x: torch.Tensor, rows: torch.Tensor, t0: bool | torch.Tensor, t1: bool | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One θ0 and one θ1 row per event (k = 1); tangents only at the requested events."""
        m = x.shape[0]
        if rows.shape[:2] != (2, m):
            raise ValueError(
                f"scores at chosen events need one θ0 and one θ1 per event, got θ rows {tuple(rows.shape)}"
            )
        every = torch.arange(m, device=x.device)
        events = [every if e is True else e if isinstance(e, torch.Tensor) else None for e in (t0, t1)]
        wanted = [(block, e) for block, e in enumerate(events) if e is not None]
        if len(wanted) == 1 and wanted[0][0] == 0:  # singly parameterized: θ0 rows only
            flat = wanted[0][1]
        else:
            flat = torch.cat([block * m + e for block, e in wanted])
        g, grad = self.value_and_theta_grad(x, rows, flat)
        scores: list[torch.Tensor | None] = [None, None]
        start = 0
        for block, e in wanted:  # scatter back into (1, m, P); events not asked for get 0
            part = grad[start : start + len(e)]
            scores[block] = part.new_zeros(m, part.shape[-1]).index_copy(0, e, part)[None]
            start += len(e)
        return g[:1] - g[1:], scores[0], scores[1]


_INPLACE_ACTIVATIONS: dict[str, Callable[[torch.Tensor], object]] = {
    "tanh": tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "silu": lambda t: F.silu(t, inplace=True),
    "swish": lambda t: F.silu(t, inplace=True),
    "elu": lambda t: F.elu(t, inplace=True),
    "leaky_relu": lambda t: F.leaky_relu(t, inplace=True),
}
"""In-place activations for :meth:`RatioNet.log_ratio_table` (others are copied back)."""


def _buffer(workspace: dict, key: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A tensor of ``shape`` (dtype and device of ``like``) viewing ``workspace[key]``, grown as needed."""
    size = math.prod(shape)
    old = workspace.get(key)
    if old is None or old.numel() < size or old.dtype != like.dtype or old.device != like.device:
        workspace[key] = torch.empty(size, dtype=like.dtype, device=like.device)
    return workspace[key][:size].view(shape)


def _table_rows(t: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """Rows of a ``(k, m, ...)`` table: a slice of its θ rows or indices into its flattened (k·m)."""
    return t[rows] if isinstance(rows, slice) else t.flatten(0, 1)[rows]


class MorphingRatioNet(nn.Module):
    """Morphing-aware g(x, θ) = log Σ_k c_k(θ) f_k(x) − log Σ_k c_k(θ) ρ_k (arXiv:2410.07315)."""

    components: torch.Tensor
    inverse: torch.Tensor

    def __init__(self, n_obs: int, morpher: Morpher, hidden: Sequence[int], activation: str):
        super().__init__()
        self.x_scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, morpher.n_benchmarks, hidden, activation)
        self.rate_logits = nn.Parameter(torch.zeros(morpher.n_benchmarks))
        steps = power_steps(morpher.components)  # exponents p = n · step: φ = Π (θ^step)^n
        self.register_buffer("steps", torch.as_tensor(steps, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "components", torch.as_tensor(np.round(morpher.components / steps).astype(int), dtype=torch.long)
        )
        self.register_buffer("inverse", torch.as_tensor(np.linalg.pinv(morpher.matrix), dtype=torch.float32))

    def fit_scalers(self, data: TrainingSet) -> None:
        self.x_scaler.fit(data.x)

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """Morphing weights c_k(θ) ``(..., n_benchmarks)`` for θ ``(..., n_params)`` (differentiable)."""
        # φ_c(θ) = Π_a (θ_a^step_a)^n_ca by repeated products: ``theta ** p`` has a NaN second
        # derivative at θ_a = 0 (0 · 0⁻¹), which the score loss differentiates through.
        roots = self.steps < 1  # θ → √θ there; elsewhere √ of 1, so no 0·∞ = NaN in the backward pass
        safe = torch.where(roots, theta, torch.ones_like(theta)).clamp_min(0)
        base = torch.where(roots, safe.sqrt(), theta)
        max_power = int(self.components.max()) if self.components.numel() else 0
        powers = [torch.ones_like(base)]
        for _ in range(max_power):
            powers.append(powers[-1] * base)
        table = torch.stack(powers, dim=-2)  # (..., max_power + 1, n_params)
        monomials = table[..., self.components[:, 0], 0]  # (..., n_components)
        for a in range(1, theta.shape[-1]):
            monomials = monomials * table[..., self.components[:, a], a]
        return monomials @ self.inverse

    def benchmark_densities(self, x: torch.Tensor) -> torch.Tensor:
        """f_k(x) = softplus(a_k(x)) > 0, ``(m, n_benchmarks)``."""
        return F.softplus(self.mlp(self.x_scaler(x)))

    def log_ratio_table(self, x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor) -> torch.Tensor:
        """log r̂(x_j|θ0_i, θ1_i) ``(k, m)``; x ``(m, n_obs)``, θ0 ``(k, n_params)``, θ1 ``(k|1, n_params)``.

        One pass of the network over the events: the θ-dependence is two matrix products with
        c_k(θ), so a whole θ grid costs about as much as one point.
        """
        densities = self.benchmark_densities(x)  # (m, n_benchmarks)
        rates = F.softplus(self.rate_logits)

        def g(theta: torch.Tensor) -> torch.Tensor:
            c = self.coefficients(theta)  # (k, n_benchmarks)
            rate = (c @ rates).clamp_min(MORPHING_EPS)
            return torch.log((c @ densities.T).clamp_min(MORPHING_EPS)) - torch.log(rate)[:, None]

        return g(theta0) - g(theta1)

    def forward(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """g for x ``(m, n_obs)`` and θ ``(k, m, n_params)`` → ``(k, m)``."""
        c = self.coefficients(theta)
        numerator = (c * self.benchmark_densities(x)).sum(-1)
        rate = c @ F.softplus(self.rate_logits)
        return torch.log(numerator.clamp_min(MORPHING_EPS)) - torch.log(rate.clamp_min(MORPHING_EPS))


def log_ratio_and_scores(
    net: nn.Module,
    x: torch.Tensor,
    theta0: torch.Tensor,
    theta1: torch.Tensor,
    *,
    t0: bool | torch.Tensor,
    t1: bool | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """log r̂ = g(x, θ0) − g(x, θ1) and, on request, the scores t̂0 = ∇θ g|θ0, t̂1 = ∇θ g|θ1.

    Args:
        net: a :class:`RatioNet` (scores by tangent propagation) or :class:`MorphingRatioNet`
            (scores by autograd: θ enters only through the cheap c_k(θ)).
        x: ``(m, n_obs)``.
        theta0: ``(k, m, n_params)``, or ``(k, 1, n_params)`` for θ points shared by all events.
        theta1: ``(k, m, n_params)``, ``(1, m, n_params)`` or ``(1, 1, n_params)``.
        t0, t1: whether to compute the scores at θ0 / θ1; with k = 1 also the indices of the
            events whose score is needed (training: the rows a score loss uses). A
            :class:`RatioNet` then propagates tangents for those events only and returns 0
            at the others; a :class:`MorphingRatioNet` computes every score (cheap there).

    Returns:
        log r̂ ``(k, m)``, t̂0 ``(k, m, n_params)`` and t̂1 (θ1's shape) or None. Under ``torch.no_grad``
        the outputs are detached; otherwise the score graph is kept for training.
    """
    if isinstance(net, RatioNet):
        return net.log_ratio_and_scores(x, theta0, theta1, t0=t0, t1=t1)
    t0, t1 = t0 is not False, t1 is not False  # event indices: every score is as cheap here
    outer = torch.is_grad_enabled()
    k, m = theta0.shape[0], x.shape[0]
    theta0, theta1 = theta0.expand(-1, m, -1), theta1.expand(-1, m, -1)  # one score per event
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
