"""Network building blocks shared by every torch estimator: MLPs and input standardization.

Activations are chosen by name through the one lookup table :data:`ACTIVATIONS`; the
architectures of seed 000 ("Training settings") are ``MLP(n, m, (50,), "relu")`` and
``MLP(n, m, (100, 100), "tanh")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from assay.exceptions import ConfigError

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_DERIVATIVES",
    "ACTIVATION_SECOND_DERIVATIVES",
    "MLP",
    "Standardizer",
    "Tanh",
    "make_activation",
    "tanh_",
]


class Tanh(nn.Module):
    """tanh(z) computed as 2 σ(2z) − 1 (absolute error < 3·10⁻⁷ in float32).

    On the CPUs measured here torch's float32 ``tanh`` costs ~4× its ``sigmoid`` (138 vs 33 ns
    per 100 activations), and seed 000's [100, 100] tanh network spends most of its evaluation
    time in it: this form makes the 35 × 35 grid evaluation 2.6× faster (benchmarks/training.py).
    Saved networks carry no activation state, so networks trained with ``nn.Tanh`` load unchanged.

    Example:
        >>> z = torch.linspace(-5, 5, 11)
        >>> bool(torch.allclose(Tanh()(z), torch.tanh(z), atol=3e-7))
        True
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and z.requires_grad:
            return 2 * torch.sigmoid(2 * z) - 1  # sigmoid's backward needs its output: not in place
        return tanh_(z.clone())


def tanh_(z: torch.Tensor) -> torch.Tensor:
    """:class:`Tanh` in place: z ← 2 σ(2z) − 1 (evaluation without gradients)."""
    return z.mul_(2).sigmoid_().mul_(2).sub_(1)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": Tanh,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}


def _silu_first(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


def _silu_second(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


ACTIVATION_DERIVATIVES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z, h: torch.addcmul(torch.ones((), dtype=h.dtype, device=h.device), h, h, value=-1),
    "relu": lambda z, h: (z > 0).to(h.dtype),
    "sigmoid": lambda z, h: h * (1 - h),
    "softplus": lambda z, h: torch.sigmoid(z),
    "silu": lambda z, h: _silu_first(z),
    "swish": lambda z, h: _silu_first(z),
    "elu": lambda z, h: torch.where(z > 0, torch.ones_like(h), h + 1),
    "gelu": lambda z, h: torch.special.ndtr(z) + z * _normal_pdf(z),
    "leaky_relu": lambda z, h: torch.where(z > 0, 1.0, 0.01).to(h.dtype),
}
"""φ'(z) from the pre-activation z and the activation h = φ(z), for every name in
:data:`ACTIVATIONS` (tested against autograd, tests/test_batched_ensemble.py)."""

_Second = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ACTIVATION_SECOND_DERIVATIVES: dict[str, _Second] = {
    "tanh": lambda z, h, d: -2 * h * d,
    "relu": lambda z, h, d: torch.zeros_like(h),
    "sigmoid": lambda z, h, d: d * (1 - 2 * h),
    "softplus": lambda z, h, d: d * (1 - d),
    "silu": lambda z, h, d: _silu_second(z),
    "swish": lambda z, h, d: _silu_second(z),
    "elu": lambda z, h, d: torch.where(z > 0, torch.zeros_like(h), h + 1),
    "gelu": lambda z, h, d: _normal_pdf(z) * (2 - z * z),
    "leaky_relu": lambda z, h, d: torch.zeros_like(h),
}
"""φ''(z) from z, h = φ(z) and d = φ'(z) (:data:`ACTIVATION_DERIVATIVES`), for every name in
:data:`ACTIVATIONS`: the hand-written backward pass of the score (∂/∂W of ∇θ g) needs it
(tested against autograd, tests/test_batched_ensemble.py)."""


def make_activation(name: str) -> nn.Module:
    """A fresh activation layer by name.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).

    Example:
        >>> make_activation("tanh")
        Tanh()
    """
    try:
        return ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ConfigError(
            f"activation: unknown name {name!r}; valid names are {sorted(ACTIVATIONS)}"
        ) from None


class MLP(nn.Sequential):
    """Fully connected network ``n_inputs → hidden… → n_outputs`` (linear output layer).

    Args:
        n_inputs: input features.
        n_outputs: outputs.
        hidden: widths of the hidden layers (empty: a linear model).
        activation: name in :data:`ACTIVATIONS`, applied after every hidden layer.
        output_bias: give the output layer a bias (off where it would cancel, e.g. in g(x,θ0) − g(x,θ1)).

    Example:
        >>> net = MLP(3, 2, hidden=(8,), activation="relu")
        >>> net(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: Sequence[int] = (100, 100),
        activation: str = "tanh",
        *,
        output_bias: bool = True,
    ):
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, int(h)), make_activation(activation)]
            width = int(h)
        layers.append(nn.Linear(width, n_outputs, bias=output_bias))
        super().__init__(*layers)


class Standardizer(nn.Module):
    """Affine map to zero mean and unit variance, ``(x − mean) / std`` (seed 000 "Standardize inputs").

    The mean and std are buffers, so they travel with ``state_dict``. Columns with
    zero spread (std = 0, e.g. a parameter that never varies) get std = 1.

    Args:
        n_features: number of columns.

    Example:
        >>> s = Standardizer(2).fit(np.array([[0.0, 1.0], [2.0, 1.0]]))
        >>> s(torch.tensor([[1.0, 1.0]])).tolist()
        [[0.0, 0.0]]
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def fit(self, data: np.ndarray, weights: np.ndarray | None = None) -> Standardizer:
        """Set mean and std from ``data (n_samples, n_features)``, optionally weighted ``(n_samples,)``."""
        data = np.asarray(data, dtype=float)
        if data.ndim != 2 or data.shape[1] != len(self.mean):
            raise ValueError(f"data: expected shape (n_samples, {len(self.mean)}), got {data.shape}")
        mean = np.average(data, axis=0, weights=weights)
        std = np.sqrt(np.average((data - mean) ** 2, axis=0, weights=weights))
        std = np.where(std > 0, std, 1.0)
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able mean and std (for humans; the weights file holds the same numbers)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
