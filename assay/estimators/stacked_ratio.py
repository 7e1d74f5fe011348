"""One training step of M stacked :class:`~assay.estimators.ratio_models.RatioNet` members with the
forward and backward pass written out (issue 21): :class:`StackedRatioPass`, used by
:meth:`assay.estimators.ratio.RatioEstimator._stacked_loss` for :mod:`assay.estimators.batched`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from assay.estimators.nets import ACTIVATION_DERIVATIVES, ACTIVATION_SECOND_DERIVATIVES, make_activation

if TYPE_CHECKING:
    from assay.estimators.ratio_models import RatioNet

__all__ = ["StackedRatioPass"]

_STACKED_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,  # one pass: 3x faster than Tanh's 2σ(2z) − 1 on a fresh copy at these sizes
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}
"""Out-of-place activations for :class:`StackedRatioPass` (others through their module)."""


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
