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
    ACTIVATION_SECOND_DERIVATIVES,
    MLP,
    Standardizer,
    make_activation,
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
    "StackedRatioPass",
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


_STACKED_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,  # one pass: 3x faster than Tanh's 2σ(2z) − 1 on a fresh copy at these sizes
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}
"""Out-of-place activations for :class:`StackedRatioPass` (others through their module)."""


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


class StackedRatioPass:
    """One training step of M stacked :class:`RatioNet` members, forward and backward written out.

    The members share ``net``'s architecture; their weights carry a leading member axis and every
    matrix product is one ``bmm``. The forward pass computes g(x, θ) at θ0 and θ1 and the scores
    t̂ = ∇θ g by reverse mode, for the θ rows asked for: with δ_K = 1 at the output and
    δ_{l−1} = φ'(z_{l−1}) ⊙ (δ_l W_l), t̂ = δ_1 W_θ / σ_θ (one ``(rows, h) × (h, h)`` product per
    hidden layer, half the work of forward mode's ``(rows · n_params, h)`` at 2 parameters).
    :meth:`backward` then takes the loss's gradients with respect to log r̂ and the scores and
    writes every member's weight gradient, through the value path and through the score path
    (which needs φ'', :data:`~assay.estimators.nets.ACTIVATION_SECOND_DERIVATIVES`), without an
    autograd graph: a step is ~25 large operations instead of ~150 small ones with autograd's
    per-node bookkeeping. Equal to autograd's gradients up to float rounding
    (tests/test_batched_ensemble.py).

    Args:
        net: one member's module (its layer names, widths and activation).
        params: ``net``'s parameters by name, each ``(M, *shape)`` (views of the flat weights).
        buffers: ``net``'s scaler buffers by name, each ``(M, *shape)``.
        x: ``(M, m, n_obs)``; theta0, theta1: ``(M, m, n_params)``.
        t0, t1: whether to compute t̂0 = ∇θ g|θ0 and t̂1 = ∇θ g|θ1.
        t0_events: with t0 alone, compute t̂0 only for the first ``t0_events`` events of every
            member (the caller sorts the events a score term uses first) and return 0 for the
            others; None: every event.

    Attributes:
        log_r: log r̂ ``(M, m)``; t0, t1: t̂0 and t̂1 ``(M, m, n_params)`` or None.
    """

    def __init__(
        self, net: RatioNet, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
        x: torch.Tensor, theta0: torch.Tensor, theta1: torch.Tensor, *, t0: bool, t1: bool,
        t0_events: int | None = None,
    ) -> None:  # fmt: skip
        n_members, m, n_obs = x.shape
        names = [f"mlp.{i}" for i, layer in enumerate(net.mlp) if isinstance(layer, nn.Linear)]
        self.names, self.m, self.n_obs = names, m, n_obs
        self.weights = [params[f"{name}.weight"] for name in names]  # (M, out, in) each
        self.biases = [params.get(f"{name}.bias") for name in names]  # (M, out) or None
        self.derivative = ACTIVATION_DERIVATIVES[net.activation]
        self.second = ACTIVATION_SECOND_DERIVATIVES[net.activation]
        activation = _STACKED_ACTIVATIONS.get(net.activation) or make_activation(net.activation)
        self.theta_std = buffers["theta_scaler.std"][:, None]  # (M, 1, P)
        self.x = (x - buffers["x_scaler.mean"][:, None]) / buffers["x_scaler.std"][:, None]
        self.rows = (torch.cat([theta0, theta1], 1) - buffers["theta_scaler.mean"][:, None]) / self.theta_std
        first, w_theta = self.weights[0], self.weights[0][:, :, n_obs:]  # (M, h, P)
        x_part = torch.bmm(self.x, first[:, :, :n_obs].transpose(1, 2))  # (M, m, h)
        if self.biases[0] is not None:
            x_part += self.biases[0][:, None]
        z = torch.bmm(self.rows, w_theta.transpose(1, 2))  # (M, 2m, h)
        z.view(n_members, 2, m, -1).add_(x_part[:, None])
        self.z, self.h, self.slopes = [], [], []  # per hidden layer, (M, 2m, h) each
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            h = activation(z)
            self.z.append(z)
            self.h.append(h)
            self.slopes.append(self.derivative(z, h))
            z = torch.bmm(h, weight.transpose(1, 2)) if bias is None else torch.baddbmm(
                bias[:, None], h, weight.transpose(1, 2))  # fmt: skip
        g = z.squeeze(-1)  # (M, 2m)
        self.log_r = g[:, :m] - g[:, m:]
        first = m if t0_events is None else t0_events
        rows = slice(None) if t0 and t1 else slice(0, first) if t0 else slice(m, None) if t1 else None
        self.score_rows = rows
        self.t0 = self.t1 = None
        if self.score_rows is None:
            return
        n_rows = 2 * m if t0 and t1 else first if t0 else m
        self.deltas, self.inner = self._input_gradient(n_rows)  # δ_l, a_l = δ_{l+1} W_{l+1}
        if self.deltas:
            scores = torch.bmm(self.deltas[0], w_theta) / self.theta_std  # (M, rows, P)
        else:  # a linear model: one gradient for every row
            scores = (w_theta / self.theta_std).expand(-1, n_rows, -1)
        if t0 and not t1 and first < m:  # the events after the first ones get 0
            scores = torch.cat([scores, scores.new_zeros(n_members, m - first, scores.shape[-1])], 1)
        self.t0 = scores[:, :m] if t0 else None
        self.t1 = (scores[:, m:] if t0 else scores) if t1 else None
        self.n_score_rows = n_rows

    def _input_gradient(self, n_rows: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """δ_l = ∂g/∂z_l ``(M, rows, h_l)`` at the score rows for every hidden layer (first to last), and
        a_l = δ_{l+1} W_{l+1} (so δ_l = φ'(z_l) ⊙ a_l)."""
        rows = self.score_rows
        deltas: list[torch.Tensor] = []
        inner: list[torch.Tensor] = []
        last = self.weights[-1]  # (M, 1, h)
        a = last.expand(-1, n_rows, -1) if self.slopes else None
        for layer in range(len(self.slopes) - 1, -1, -1):
            if deltas:
                a = torch.bmm(deltas[0], self.weights[layer + 1])
            inner.insert(0, a)
            deltas.insert(0, self.slopes[layer][:, rows] * a)
        return deltas, inner

    def backward(
        self, d_log_r: torch.Tensor, d_t0: torch.Tensor | None, d_t1: torch.Tensor | None,
        grads: dict[str, torch.Tensor],
    ) -> None:  # fmt: skip
        """Write ∂L/∂W of every member into ``grads`` (by parameter name, ``(M, *shape)`` views).

        Args:
            d_log_r: ∂L/∂log r̂ ``(M, m)``.
            d_t0, d_t1: ∂L/∂t̂0 and ∂L/∂t̂1 ``(M, m, n_params)``, or None where not computed.
            grads: the gradient buffers to overwrite, keyed like ``params``.
        """
        n_obs, names = self.n_obs, self.names
        weight_grads = [torch.zeros_like(w) for w in self.weights]
        score_dz = self._score_backward(d_t0, d_t1, weight_grads)
        dz = torch.cat([d_log_r, -d_log_r], 1)[..., None]  # ∂L/∂g (M, 2m, 1)
        for layer in range(len(self.weights) - 1, 0, -1):
            h = self.h[layer - 1]
            weight_grads[layer] += torch.bmm(dz.transpose(1, 2), h)
            if self.biases[layer] is not None:
                grads[f"{names[layer]}.bias"].copy_(dz.sum(1))
            if layer == len(self.weights) - 1:  # W_out (M, 1, h): an outer product, as broadcasts
                dz = torch.mul(self.slopes[layer - 1], self.weights[layer]).mul_(dz)
            else:
                dz = torch.bmm(dz, self.weights[layer]).mul_(self.slopes[layer - 1])
            if score_dz[layer - 1] is not None:  # + ∂L/∂δ ⊙ a ⊙ φ'' at the score rows
                dz[:, self.score_rows].addcmul_(*score_dz[layer - 1])
        m = self.m
        weight_grads[0][:, :, :n_obs] = torch.bmm((dz[:, :m] + dz[:, m:]).transpose(1, 2), self.x)
        weight_grads[0][:, :, n_obs:] += torch.bmm(dz.transpose(1, 2), self.rows)
        if self.biases[0] is not None:
            grads[f"{names[0]}.bias"].copy_(dz.sum(1))
        for name, grad in zip(names, weight_grads):
            grads[f"{name}.weight"].copy_(grad)

    def _score_backward(
        self, d_t0: torch.Tensor | None, d_t1: torch.Tensor | None, weight_grads: list[torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """The score path's share of the weight gradients (added to ``weight_grads``) and of
        ∂L/∂z_l at the score rows, per hidden layer, as the factors (∂L/∂δ_l, a_l ⊙ φ''(z_l)) of
        their product (None without scores)."""
        if self.score_rows is None:
            return [None] * len(self.slopes)
        parts = [d for d in (d_t0, d_t1) if d is not None]
        d_scores = torch.cat(parts, 1) if len(parts) > 1 else parts[0][:, : self.n_score_rows]
        d_scores = d_scores / self.theta_std  # (M, rows, P)
        n_obs, rows = self.n_obs, self.score_rows
        if not self.deltas:  # a linear model: t̂ = W_θ / σ_θ
            weight_grads[0][:, :, n_obs:] += d_scores.sum(1, keepdim=True)
            return []
        weight_grads[0][:, :, n_obs:] += torch.bmm(self.deltas[0].transpose(1, 2), d_scores)
        d_delta = torch.bmm(d_scores, self.weights[0][:, :, n_obs:].transpose(1, 2))  # (M, rows, h_1)
        out = []
        for layer, a in enumerate(self.inner):
            z, h, slope = self.z[layer][:, rows], self.h[layer][:, rows], self.slopes[layer][:, rows]
            out.append((d_delta, self.second(z, h, slope).mul_(a)))
            d_inner = d_delta * slope  # ∂L/∂a_l
            if layer + 1 == len(self.deltas):  # a_l = W_out (M, 1, h): summed over the rows
                weight_grads[-1] += d_inner.sum(1, keepdim=True)
            else:
                weight_grads[layer + 1] += torch.bmm(self.deltas[layer + 1].transpose(1, 2), d_inner)
                d_delta = torch.bmm(d_inner, self.weights[layer + 1].transpose(1, 2))
        return out
