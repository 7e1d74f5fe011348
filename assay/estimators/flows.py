"""Neural density estimators: NDE and SCANDAL (seed 001 Table I; arXiv:1805.12244).

Both learn the likelihood p̂(x|θ) itself with a conditional normalizing flow
(:class:`~assay.estimators.flows_models.ConditionalFlow`: a zuko neural spline flow or MAF on
standardized, logit-transformed-where-bounded, soft-clipped inputs) from a ``plain`` training set,
x ~ p(x|θ) with θ from a prior:

- NDE:     −log p̂(x|θ), the density of the raw x (the log-Jacobians of the preprocessing included);
- SCANDAL: NDE + α · |∇θ log p̂(x|θ) − t(x,z|θ)|² (mean over parameters), the gradient by
  autograd through the flow and t(x,z|θ) the joint score at the sample's θ (the ``t0`` of
  :func:`~assay.sampling.plain_training_set`).

Each per-sample loss is multiplied by the sample weight (±1) before averaging, as for every
estimator on the one :class:`~assay.estimators.train.Trainer`. Which columns the flow models
(``observables``; constant ones are left out, discrete ones dequantized, bounded ones
logit-transformed, positive ones spanning decades log-transformed) is decided at ``fit``
(:class:`~assay.estimators.flow_columns.FlowColumns`).
A density needs observables that are not functions of each other: all 43 WH columns lie on a
7–9 dimensional surface, where no density exists; choose a set of independent ones.

Predictions (:class:`~assay.estimators.prediction.Prediction`): ``log_likelihood`` log p̂(x|θ)
``(n_theta, n_events)``, ``log_ratio`` = log p̂(x|θ) − log p̂(x|θ_ref), ``score`` ∇θ log p̂ by
autograd, all batched over the (θ, event) product; ``sample`` draws x ~ p̂(x|θ) for closure plots.
No NaN: the soft clip keeps outliers inside the splines' range, zuko bounds the log-scales and
slopes of its transforms, and the trainer stops with the epoch named if a loss is ever not finite
(a checkpoint file then keeps the last good epoch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from assay.estimators.base import Estimator
from assay.estimators.flow_columns import FlowColumns
from assay.estimators.flows_models import ConditionalFlow, flow_class
from assay.estimators.prediction import Prediction, as_point
from assay.estimators.train import seeded
from assay.exceptions import ConfigError, PredictionError
from assay.morphing import as_thetas
from assay.training_set import TrainingSet

__all__ = ["NDE", "SCANDAL", "FlowEstimator"]


class FlowEstimator(Estimator):
    """Base of the density estimators; :class:`NDE` and :class:`SCANDAL` differ only in the loss.

    Args:
        flow: "nsf" (neural spline flow) or "maf" (:data:`~assay.estimators.flows_models.FLOWS`).
        transforms: autoregressive transformations in the flow.
        bins: spline bins per transformation (NSF only).
        observables: names of the columns to model; None: every non-constant column.
        bounds: column name → (lo, hi) of observables known to be bounded (logit-transformed).
        detect_bounds: also detect bounded columns from the training set
            (:mod:`assay.estimators.flow_columns`).
        log_positive: model positive columns spanning more than a decade (p_T, energies) in log x
            (:mod:`assay.estimators.flow_columns`).
        soft_clip: c of the tail compression w = c asinh(z/c) of the standardized inputs; None: none.
        hidden: hidden widths of each transformation's conditioner (zuko's default (64, 64)).
        activation: activation of the conditioners.
        **kwargs: trainer settings, see :class:`~assay.estimators.base.Estimator`.

    Attributes:
        columns_: the :class:`~assay.estimators.flow_columns.FlowColumns` found at ``fit``.

    Raises:
        ConfigError: an unknown flow name, or transforms / bins / soft_clip out of range.
    """

    required_fields: ClassVar[tuple[str, ...]] = ("x", "theta0")
    predicts: ClassVar[frozenset[str]] = frozenset({"log_ratio", "score", "log_likelihood"})
    uses_score: ClassVar[bool] = False

    def __init__(
        self,
        *,
        flow: str = "nsf",
        transforms: int = 3,
        bins: int = 8,
        observables: Sequence[str] | None = None,
        bounds: Mapping[str, Sequence[float]] | None = None,
        detect_bounds: bool = True,
        log_positive: bool = True,
        soft_clip: float | None = 2.0,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "relu",
        **kwargs: Any,
    ):
        super().__init__(hidden=hidden, activation=activation, **kwargs)
        flow_class(flow)
        checks = {
            "transforms": (transforms, int(transforms) >= 1, "an integer >= 1"),
            "bins": (bins, int(bins) >= 2, "an integer >= 2"),
            "soft_clip": (soft_clip, soft_clip is None or soft_clip > 0, "None or > 0"),
        }
        for name, (value, ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"{type(self).__name__}.{name}: expected {expected}, got {value!r}")
        self.flow, self.transforms, self.bins = flow, int(transforms), int(bins)
        self.observables = None if observables is None else tuple(str(o) for o in observables)
        self.bounds = {str(k): (float(v[0]), float(v[1])) for k, v in (bounds or {}).items()}
        self.detect_bounds = bool(detect_bounds)
        self.log_positive = bool(log_positive)
        self.soft_clip = None if soft_clip is None else float(soft_clip)

    def _own_params(self) -> dict[str, Any]:
        return {
            **super()._own_params(), "flow": self.flow, "transforms": self.transforms, "bins": self.bins,
            "observables": None if self.observables is None else list(self.observables),
            "bounds": {k: list(v) for k, v in self.bounds.items()}, "detect_bounds": self.detect_bounds,
            "log_positive": self.log_positive, "soft_clip": self.soft_clip,
        }  # fmt: skip

    # ---- fitting ----------------------------------------------------------------------
    def _check_set(self, data: TrainingSet, name: str) -> None:
        super()._check_set(data, name)
        if data.kind != "plain":  # a ratio set's x are drawn from θ0 and θ1 alike
            raise ConfigError(
                f"{name}: {type(self).__name__} learns p(x|θ) from x ~ p(x|θ0), a 'plain' training set; "
                f"got a {data.kind!r} set: point training_set to a set of kind plain"
            )

    def _prepare(self, train_set: TrainingSet) -> None:
        self.columns_ = FlowColumns.detect(
            train_set.x, train_set.observables, observables=self.observables, bounds=self.bounds,
            detect_bounds=self.detect_bounds, log_positive=self.log_positive,
        )  # fmt: skip

    def _fitted_state(self) -> dict[str, Any]:
        return {"columns": self.columns_.to_dict()}

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        self.columns_ = FlowColumns.from_dict(state["columns"])

    def _build(self, n_obs: int, n_params: int) -> nn.Module:
        return ConditionalFlow(
            self.columns_.modelled, self.columns_.bounds, n_params, flow=self.flow,
            transforms=self.transforms, bins=self.bins, hidden=self.hidden, activation=self.activation,
            soft_clip=self.soft_clip, logs=self.columns_.logs,
        )  # fmt: skip

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        seed = self.trainer.seed
        rng = np.random.default_rng(None if seed is None else [seed, len(data)])
        weight = data.sample_weight if data.sample_weight is not None else np.ones(len(data))
        return {"x": self.columns_.dequantize(data.x, rng), "theta": data.theta0, "w": weight}

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        nll = -(batch["w"] * net.log_prob(batch["x"], batch["theta"])).mean()
        return nll, {"nll": nll}

    # ---- predictions ------------------------------------------------------------------
    def log_likelihood(self, x: np.ndarray, theta: np.ndarray, *, chunk_size: int = 16_384) -> Prediction:
        """log p̂(x|θ), the density of the raw x (module docstring).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            chunk_size: rows of the (θ, event) product evaluated at once (bounds the memory).

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_theta, n_events)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: shapes do not match the fitted observables / parameters.
        """
        self._fitted_net()
        return Prediction(self._table(self._check_x(x), self._thetas(theta, "theta"), chunk_size))

    def log_ratio(
        self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray, *, chunk_size: int = 16_384
    ) -> Prediction:
        """log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.
            chunk_size: see :meth:`log_likelihood`.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_theta, n_events)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: shapes do not match the fitted observables / parameters.
        """
        self._fitted_net()
        ref = as_point(theta_ref, len(self.parameters_), "theta_ref")
        table = self._table(self._check_x(x), np.vstack([self._thetas(theta, "theta"), ref]), chunk_size)
        return Prediction(table[:-1] - table[-1])

    def score(
        self, x: np.ndarray, theta: np.ndarray | None = None, *, chunk_size: int = 16_384
    ) -> Prediction:
        """t̂(x|θ) = ∇θ log p̂(x|θ) by autograd.

        Args:
            x: events ``(n_events, n_obs)``.
            theta: one point ``(n_params,)``; required (a density estimator has no reference point).
            chunk_size: events per backward pass.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_events, n_params)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            PredictionError: ``theta`` is None.
        """
        net = self._fitted_net()
        if theta is None:
            raise PredictionError(
                f"{type(self).__name__} estimates the score at any θ but has no reference point: "
                f"call score(x, theta) with theta (n_params,)"
            )
        x = self._check_x(x)
        point = self._tensor(as_point(theta, len(self.parameters_), "theta"))
        out = np.empty((len(x), len(self.parameters_)))
        for b in range(0, len(x), chunk_size):
            rows = self._tensor(x[b : b + chunk_size])
            with torch.enable_grad():
                th = point.expand(len(rows), -1).clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(net.log_prob(rows, th).sum(), th)
            out[b : b + chunk_size] = grad.double().cpu().numpy()
        return Prediction(out)

    def sample(self, theta: np.ndarray, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw x ~ p̂(x|θ) (closure plots).

        Args:
            theta: one point ``(n_params,)``.
            n: number of events.
            rng: a generator or seed for torch's sampling; None: fresh randomness.

        Returns:
            ``(n, n_obs)``: modelled columns drawn (discrete ones snapped to their levels), constant
            columns at their value, columns not in ``observables`` NaN.

        Raises:
            NotFittedError: before ``fit``.
        """
        net = self._fitted_net()
        point = self._tensor(as_point(theta, len(self.parameters_), "theta"))
        seed = int(rng.integers(2**63)) if isinstance(rng, np.random.Generator) else rng
        with seeded(seed), torch.no_grad():
            drawn = net.sample(point, int(n)).double().cpu().numpy()
        return self.columns_.complete(drawn, len(self.observables_))

    def _thetas(self, theta: np.ndarray, name: str) -> np.ndarray:
        return as_thetas(theta, len(self.parameters_), name)

    def _table(self, x: np.ndarray, thetas: np.ndarray, chunk_size: int) -> np.ndarray:
        """log p̂ ``(n_theta, n_events)``: the inputs of each event chunk are encoded once and paired
        with a block of θ (at most ``chunk_size`` rows per flow call)."""
        net = self._fitted_net()
        n_step = max(1, min(len(x), chunk_size))
        k_step = max(1, chunk_size // n_step)
        out = np.empty((len(thetas), len(x)))
        with torch.no_grad():
            th_all = self._tensor(thetas)
            for b in range(0, len(x), n_step):
                w, log_jac = net.encode(self._tensor(x[b : b + n_step]))
                m = len(w)
                for a in range(0, len(thetas), k_step):
                    th = th_all[a : a + k_step]
                    k = len(th)
                    rows = net.log_prob_encoded(
                        w.repeat(k, 1), log_jac.repeat(k), th.repeat_interleave(m, dim=0)
                    )
                    out[a : a + k, b : b + m] = rows.reshape(k, m).double().cpu().numpy()
        return out


class NDE(FlowEstimator):
    """Neural density estimation: a conditional flow trained on −log p̂(x|θ) (seed 001 Table I).

    Example:
        >>> NDE(flow="maf", transforms=2, hidden=(32,), epochs=5, seed=0).flow
        'maf'
    """


class SCANDAL(FlowEstimator):
    """NDE + α · MSE between ∇θ log p̂(x|θ) and the joint score t(x,z|θ) (arXiv:1805.12244).

    Args:
        alpha: weight of the score term. 1 by default: on the Gaussian toy α = 5 (the ALICES default)
            trades a 3-10× larger KL(p‖p̂) for a slightly better score, α = 1 keeps NDE's KL
            (tests/test_flows.py).
        **kwargs: see :class:`FlowEstimator`.

    Example:
        >>> SCANDAL(alpha=10.0, epochs=5).alpha
        10.0
    """

    required_fields: ClassVar[tuple[str, ...]] = ("x", "theta0", "t0")
    uses_score: ClassVar[bool] = True

    def __init__(self, *, alpha: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def _own_params(self) -> dict[str, Any]:
        return {**super()._own_params(), "alpha": self.alpha}

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        return {**super()._arrays(data), "t": data.t0}

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        training = torch.is_grad_enabled()  # False in the trainer's validation pass
        with torch.enable_grad():  # the score needs a graph even there
            theta = batch["theta"].detach().requires_grad_(True)
            log_p = net.log_prob(batch["x"], theta)
            (t_hat,) = torch.autograd.grad(log_p.sum(), theta, create_graph=training)
        w = batch["w"]
        nll = -(w * log_p).mean()
        mse = (w * ((t_hat - batch["t"]) ** 2).mean(-1)).mean()
        return nll + self.alpha * mse, {"nll": nll.detach(), "score_mse": mse.detach()}
