"""Conditional normalizing flows p̂(x|θ) behind NDE and SCANDAL (:mod:`assay.estimators.flows`).

:class:`ConditionalFlow` is a zuko flow (:data:`FLOWS`: a neural spline flow or a masked
autoregressive flow) on fixed, invertible preprocessed inputs, conditioned on the standardized θ.
The preprocessing (:class:`FlowInputs`) maps the modelled columns of x to the flow's space w:

1. a bounded column x ∈ [lo, hi] → y = logit((x − lo)/(hi − lo)), the fraction clamped to
   [:data:`LOGIT_EPS`, 1 − :data:`LOGIT_EPS`] (an angle's density then needs no mass outside its
   range); a positive column spanning decades (a p_T, an energy) → y = log x (its edge at 0 and its
   power-law tail become smooth tails: WH's p_T^W reached w = 8.7 without it, outside a spline's
   domain [−5, 5]; it does not cure an event outside the training range, e.g. one WH event below every
   training m_T^tot keeps |log r̂| ≈ 60 at the c_HW̃ scan ends on some fits), x clamped to at least
   :data:`LOG_FLOOR` × its smallest training value (a value ≤ 0, outside the support, gets the
   floor's finite density instead of log 0); other columns y = x;
2. z = (y − mean)/std (:class:`~assay.estimators.nets.Standardizer`, fitted on the training set);
3. w = c asinh(z/c) with c = ``soft_clip``: the identity near the core and logarithmic in the
   tails, so an outlier 10σ away lands at w ≈ 4.6 (c = 2) instead of far outside the splines'
   domain [−5, 5], and the loss of a single event stays moderate (no NaN, no huge gradients).

Every step is a bijection with a known Jacobian, and
log p̂(x|θ) = log q(w|θ) + Σ log|dw/dx| is the normalised density of the *raw* x (seed 001
Table I "NDE"; arXiv:1805.12244 for SCANDAL). The score ∇θ log p̂ comes from autograd through
the flow's conditioner.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import zuko
from torch import nn

from assay.estimators.nets import Standardizer, make_activation
from assay.exceptions import ConfigError
from assay.training_set import TrainingSet

__all__ = ["FLOWS", "LOGIT_EPS", "LOG_FLOOR", "ConditionalFlow", "FlowInputs", "flow_class"]

FLOWS: dict[str, type[zuko.flows.Flow]] = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF}
"""Flow names → zuko classes: neural spline flow (arXiv:1906.04032) or masked autoregressive flow
(arXiv:1705.07057); both autoregressive, conditioned on θ through the MADE conditioners."""

LOGIT_EPS = 1e-6  # the fraction (x − lo)/(hi − lo) of a bounded column is clamped to [ε, 1 − ε]
LOG_FLOOR = 1e-3  # a log-transformed column is clamped to at least this × its smallest training value


def flow_class(name: str) -> type[zuko.flows.Flow]:
    """The zuko class of a flow name.

    Raises:
        ConfigError: an unknown name (the message lists the valid ones).

    Example:
        >>> flow_class("nsf").__name__
        'NSF'
    """
    try:
        return FLOWS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"flow: unknown name {name!r}; valid names are {sorted(FLOWS)}") from None


class FlowInputs(nn.Module):
    """The fixed bijection x → w of the module docstring, with its log-Jacobian.

    Args:
        bounds: per modelled column (lo, hi) or None (unbounded), ``n_features`` entries.
        soft_clip: c of w = c asinh(z/c); None: w = z.
        logs: per modelled column, whether it is log-transformed (positive, unbounded columns);
            None: none.

    Example:
        >>> inputs = FlowInputs([(-1.0, 1.0), None, None], soft_clip=2.0, logs=[False, False, True])
        >>> w, log_jac = inputs(torch.tensor([[0.0, 0.0, 1.0]]))
        >>> w.tolist(), round(float(log_jac[0]), 4)  # logit(½) = 0, d logit/dx = 1/(2·¼) = 2; log 1 = 0
        ([[0.0, 0.0, 0.0]], 0.6931)
    """

    def __init__(
        self,
        bounds: Sequence[tuple[float, float] | None],
        soft_clip: float | None,
        logs: Sequence[bool] | None = None,
    ):
        super().__init__()
        logs = [False] * len(bounds) if logs is None else [bool(v) for v in logs]
        if len(logs) != len(bounds) or any(a and b is not None for a, b in zip(logs, bounds)):
            raise ValueError(f"logs: expected a flag per column, none on a bounded one; got {logs}, {bounds}")
        low = [b[0] if b is not None else 0.0 for b in bounds]
        high = [b[1] if b is not None else 1.0 for b in bounds]
        self.register_buffer("bounded", torch.tensor([b is not None for b in bounds], dtype=torch.bool))
        # not in the state dict: a model saved before the log transform existed loads unchanged
        self.register_buffer("logged", torch.tensor(logs, dtype=torch.bool), persistent=False)
        self.register_buffer("low", torch.tensor(low, dtype=torch.float32))
        self.register_buffer("width", torch.tensor(high, dtype=torch.float32) - self.low)
        self.scaler = Standardizer(len(bounds))
        self.soft_clip = soft_clip

    def fit(self, x: np.ndarray) -> FlowInputs:
        """Fit the standardization on the (logit-transformed) modelled columns ``(n_samples, n_features)``."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        with torch.no_grad():  # the floor of a log column, kept in `low` (unused by unbounded columns)
            self.low.copy_(torch.where(self.logged, LOG_FLOOR * x.min(0).values, self.low))
            y, _ = self._unbound(x)
        self.scaler.fit(y.double().numpy())
        return self

    def _unbound(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = ((x - self.low) / self.width).clamp(LOGIT_EPS, 1 - LOGIT_EPS)
        log_x = torch.log(torch.maximum(x, self.low.clamp_min(1e-30)))
        y = torch.where(self.bounded, torch.log(u) - torch.log1p(-u), torch.where(self.logged, log_x, x))
        log_jac = torch.where(self.bounded, -torch.log(u) - torch.log1p(-u) - torch.log(self.width), 0.0)
        log_jac = log_jac - torch.where(self.logged, log_x, 0.0)
        return y, log_jac.sum(-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w ``(n, n_features)`` and log|det dw/dx| ``(n,)`` for the modelled columns ``(n, n_features)``."""
        y, log_jac = self._unbound(x)
        z = self.scaler(y)
        log_jac = log_jac - torch.log(self.scaler.std).sum()
        if self.soft_clip is None:
            return z, log_jac
        c = self.soft_clip
        return c * torch.asinh(z / c), log_jac - 0.5 * torch.log1p((z / c) ** 2).sum(-1)

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """The modelled columns x ``(n, n_features)`` of w ``(n, n_features)``."""
        z = w if self.soft_clip is None else self.soft_clip * torch.sinh(w / self.soft_clip)
        y = z * self.scaler.std + self.scaler.mean
        unbounded = torch.where(self.logged, torch.exp(y), y)
        return torch.where(self.bounded, self.low + self.width * torch.sigmoid(y), unbounded)


class ConditionalFlow(nn.Module):
    """log p̂(x|θ) of a zuko flow on :class:`FlowInputs` of the columns ``columns`` of x.

    Args:
        columns: indices of the modelled columns of x.
        bounds: per modelled column (lo, hi) or None.
        n_params: number of theory parameters (the context).
        flow: a name in :data:`FLOWS`.
        transforms: number of autoregressive transformations.
        bins: spline bins (NSF only).
        hidden: hidden widths of each transformation's MADE conditioner.
        activation: activation name of the conditioners.
        soft_clip: see :class:`FlowInputs`.
        logs: per modelled column, whether it is log-transformed (:class:`FlowInputs`); None: none.

    Example:
        >>> net = ConditionalFlow([0, 1], [None, None], 1, flow="maf", transforms=2, bins=8,
        ...                       hidden=(16,), activation="relu", soft_clip=2.0)
        >>> net.log_prob(torch.zeros(5, 2), torch.zeros(5, 1)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        columns: Sequence[int],
        bounds: Sequence[tuple[float, float] | None],
        n_params: int,
        *,
        flow: str,
        transforms: int,
        bins: int,
        hidden: Sequence[int],
        activation: str,
        soft_clip: float | None,
        logs: Sequence[bool] | None = None,
    ):
        super().__init__()
        if len(columns) != len(bounds) or not columns:
            raise ValueError(f"columns and bounds: expected equal, non-zero lengths, got {columns}, {bounds}")
        cls = flow_class(flow)
        options = {"bins": int(bins)} if cls is zuko.flows.NSF else {}
        self.register_buffer("columns", torch.as_tensor(list(columns), dtype=torch.long))
        self.inputs = FlowInputs(bounds, soft_clip, logs)
        self.theta_scaler = Standardizer(n_params)
        self.flow = cls(
            len(columns), n_params, transforms=int(transforms), hidden_features=tuple(hidden),
            activation=type(make_activation(activation)), **options,
        )  # fmt: skip

    def fit_scalers(self, data: TrainingSet) -> None:
        self.inputs.fit(data.x[:, self.columns.cpu().numpy()])
        self.theta_scaler.fit(data.theta0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, log|det dw/dx|) of full events x ``(n, n_obs)``: ``(n, n_features)``, ``(n,)``."""
        return self.inputs(x[:, self.columns])

    def log_prob_encoded(self, w: torch.Tensor, log_jac: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """log p̂(x|θ) ``(n,)`` from :meth:`encode`'s output and θ ``(n, n_params)``, row by row."""
        return self.flow(self.theta_scaler(theta)).log_prob(w) + log_jac

    def log_prob(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """log p̂(x|θ) ``(n,)`` for events x ``(n, n_obs)`` and θ ``(n, n_params)``, row by row."""
        return self.log_prob_encoded(*self.encode(x), theta)

    def sample(self, theta: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` draws of the modelled columns ``(n, n_features)`` at one θ ``(n_params,)`` (torch's RNG)."""
        w = self.flow(self.theta_scaler(theta)).sample((n,))
        return self.inputs.inverse(w)
