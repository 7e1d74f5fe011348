"""Likelihood-ratio estimators: CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL (seed 001, Table I).

All six train one parameterized function g(x, θ) and define

    log r̂(x|θ0, θ1) = g(x, θ0) − g(x, θ1),

which is exactly antisymmetric, gives r̂(x|θ, θ) = 1, and serves singly (θ1 fixed) and
doubly parameterized training sets (θ1 varying) alike. The estimated scores come from
autograd: t̂(x|θ0) = ∇θ g(x, θ)|θ0 = ∇θ0 log r̂ and t̂(x|θ1) = ∇θ g(x, θ)|θ1 = −∇θ1 log r̂
(arXiv:1805.00020, 1805.12244). Note the sign of the latter: the training sets' t1 is the joint
score at θ1, ∇θ log p(x,z|θ)|θ1, which is −∇θ1 log r(x,z|θ0,θ1).
With s = 1/(1 + r) (probability that x came from θ1; MadMiner's convention, y = 1 for θ1):

- CARL:   BCE(ŝ, y)                                                     (arXiv:1506.02169)
- ROLR:   MSE((1−y)/r̂, (1−y)/r) + MSE(y r̂, y r)                       (arXiv:1805.12244, 1805.00020)
- ALICE:  BCE(ŝ, s(x,z)), s(x,z) = 1/(1 + r(x,z|θ0,θ1))               (seed 001 ratio_augmented_xe)
- ALICES, RASCAL, CASCAL: ALICE, ROLR, CARL + α · MSE((1−y) t̂0, (1−y) t0) (seed 001
  ratio_score_mse_num; seed 000 "ALICES") + α · MSE(y t̂1, y t1) for doubly parameterized sets.

Each per-sample loss is multiplied by the sample weight (±1) before averaging.

The models g(x, θ) live in :mod:`assay.estimators.ratio_models`: an MLP on [x, θ] by
default, the morphing-aware model of arXiv:2410.07315 with ``morphing=``. With score terms
(ALICES, RASCAL, CASCAL), single events with huge joint scores (near zeros of the amplitude)
can stall AMSGrad; ``clip_grad_norm=1.0`` cures it (needed for the morphing-aware model on the
Gaussian toy, tests/test_estimators.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assay.estimators.base import Estimator
from assay.estimators.prediction import Prediction, as_point
from assay.estimators.ratio_models import MorphingRatioNet, RatioNet, log_ratio_and_scores
from assay.estimators.stacked_ratio import StackedRatioPass
from assay.exceptions import PredictionError
from assay.morphing import Morpher, as_thetas
from assay.training_set import TrainingSet

__all__ = [
    "ALICE",
    "ALICES",
    "CARL",
    "CASCAL",
    "LOG_R_CLIP",
    "RASCAL",
    "ROLR",
    "RatioEstimator",
    "RatioPrediction",
]

LOG_R_CLIP = 10.0  # |log r| clip in the ROLR-type MSE losses (MadMiner's log_r_clip): r ≤ e¹⁰
_RATIO_FIELDS = ("x", "theta0", "theta1", "y")


class RatioPrediction(NamedTuple):
    """Output of :meth:`RatioEstimator.evaluate_log_ratio`.

    Attributes:
        log_r: log r̂(x|θ0, θ1), ``(n_theta, n_events)``.
        score: t̂(x|θ0) = ∇θ0 log r̂, ``(n_theta, n_events, n_params)``; None if not requested.
    """

    log_r: np.ndarray
    score: np.ndarray | None


class RatioEstimator(Estimator):
    """Base of the likelihood-ratio estimators; subclasses define :meth:`_terms`.

    Args:
        morphing: a :class:`~assay.morphing.Morpher` (or its ``to_dict()``) for the
            morphing-aware model; None: a plain network g(x, θ).
        **kwargs: see :class:`~assay.estimators.base.Estimator` (``hidden``, ``activation``,
            trainer settings).
    """

    required_fields: ClassVar[tuple[str, ...]] = _RATIO_FIELDS
    uses_score: ClassVar[bool] = False
    predicts: ClassVar[frozenset[str]] = frozenset({"log_ratio", "score"})

    def __init__(self, *, morphing: Morpher | Mapping | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.morphing = Morpher.from_dict(morphing) if isinstance(morphing, Mapping) else morphing

    def _own_params(self) -> dict[str, Any]:
        morphing = self.morphing.to_dict() if self.morphing is not None else None
        return {**super()._own_params(), "morphing": morphing}

    def _prepare(self, train_set: TrainingSet) -> None:
        self.doubly_ = bool(np.any(train_set.theta1 != train_set.theta1[:1]))
        if self.uses_score and self.doubly_ and train_set.t1 is None:
            raise ValueError(f"train_set: θ1 varies, so {type(self).__name__} needs t1, which is missing")
        if self.morphing is not None and self.morphing.n_params != len(train_set.parameters):
            raise ValueError(
                f"morphing has n_params={self.morphing.n_params}, the training set "
                f"{len(train_set.parameters)} parameters {list(train_set.parameters)}"
            )

    def _fitted_state(self) -> dict[str, Any]:
        return {"doubly": self.doubly_}

    def _restore_state(self, state: Mapping[str, Any]) -> None:
        self.doubly_ = bool(state["doubly"])

    def _build(self, n_obs: int, n_params: int) -> nn.Module:
        if self.morphing is None:
            return RatioNet(n_obs, n_params, self.hidden, self.activation)
        return MorphingRatioNet(n_obs, self.morphing, self.hidden, self.activation)

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        names = [*self.required_fields, *(["t1"] if self.uses_score and self.doubly_ else [])]
        weight = data.sample_weight if data.sample_weight is not None else np.ones(len(data))
        return {**{name: getattr(data, name) for name in names}, "w": weight}

    def _terms(self, out: _Outputs, batch: dict[str, torch.Tensor]) -> dict[str, tuple[float, torch.Tensor]]:
        """Named (coefficient, per-sample loss ``(batch,)``) pairs."""
        raise NotImplementedError

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        # the score terms use t̂0 where y ≠ 1 and t̂1 where y ≠ 0: tangents only there (half the work)
        y = batch["y"]
        t0_rows = torch.nonzero(y != 1).squeeze(1) if self.uses_score else False
        t1_rows = torch.nonzero(y != 0).squeeze(1) if self.uses_score and self.doubly_ else False
        log_r, t0, t1 = log_ratio_and_scores(
            net, batch["x"], batch["theta0"][None], batch["theta1"][None], t0=t0_rows, t1=t1_rows
        )
        out = _Outputs(log_r[0], t0[0] if t0 is not None else None, t1[0] if t1 is not None else None)
        terms = self._terms(out, batch)
        means = {name: (batch["w"] * per_sample).mean() for name, (_, per_sample) in terms.items()}
        total = sum(coef * means[name] for name, (coef, _) in terms.items())
        return total, means

    def _stacked_loss_supported(self) -> bool:
        return self.morphing is None

    def _stacked_loss(self, net: nn.Module) -> Callable | None:
        """Members with a plain :class:`RatioNet` train stacked (:mod:`assay.estimators.batched`)."""
        return partial(self._member_losses, net) if type(net) is RatioNet else None

    def _member_losses(
        self, net: RatioNet, params: dict, grads: dict, buffers: dict, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`_loss` of M stacked members, batch tensors ``(M, batch, ...)`` → total and terms
        ``(M,)``; writes each member's weight gradient into ``grads`` (``(M, *shape)`` by name).

        The network's forward and backward pass are written out (:class:`StackedRatioPass`); autograd
        only differentiates the loss terms with respect to log r̂ and the scores (a few small
        operations). The scores are computed at every event, not only where a score term uses
        them: the terms weight the others by (1 − y)² = 0 or y² = 0, so each member's loss is the same.
        With scores at θ0 alone (a singly parameterized set), each member's events with y ≠ 1 are
        moved to the front and the scores computed for as many events as the member with the most
        of them has (about half the score work; the loss is a sum over events, so their order
        changes only its rounding).
        """
        first = None
        if self.uses_score and not self.doubly_:
            batch, first = _score_events_first(batch)
        step = StackedRatioPass(
            net, params, buffers, batch["x"], batch["theta0"], batch["theta1"],
            t0=self.uses_score, t1=self.uses_score and self.doubly_, t0_events=first,
        )  # fmt: skip
        heads = [v if v is None else v.detach().requires_grad_() for v in (step.log_r, step.t0, step.t1)]
        with torch.enable_grad():
            terms = self._terms(_Outputs(*heads), batch)
            means = {name: (batch["w"] * per_sample).mean(-1) for name, (_, per_sample) in terms.items()}
            total = sum(coef * means[name] for name, (coef, _) in terms.items())
        wanted = [v for v in heads if v is not None]
        found = iter(torch.autograd.grad(total.sum(), wanted, allow_unused=True))
        d_heads = [v if v is None else next(found) for v in heads]
        d_heads = [d if d is not None or v is None else torch.zeros_like(v) for d, v in zip(d_heads, heads)]
        step.backward(*d_heads, grads)
        return total.detach(), {name: value.detach() for name, value in means.items()}

    def log_ratio(
        self, x: np.ndarray, theta: np.ndarray, theta_ref: np.ndarray, *, chunk_size: int = 16_384
    ) -> Prediction:
        """log r̂(x|θ, θ_ref) = g(x, θ) − g(x, θ_ref).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            theta_ref: one point ``(n_params,)``.
            chunk_size: see :meth:`evaluate_log_ratio`.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_theta, n_events)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: shapes do not match the fitted observables / parameters.
        """
        self._fitted_net()
        ref = as_point(theta_ref, len(self.parameters_), "theta_ref")
        return Prediction(self.evaluate_log_ratio(x, theta, ref, score=False, chunk_size=chunk_size).log_r)

    def score(
        self, x: np.ndarray, theta: np.ndarray | None = None, *, chunk_size: int = 16_384
    ) -> Prediction:
        """t̂(x|θ) = ∇θ g(x, θ) by forward-mode differentiation (module docstring).

        Args:
            x: events ``(n_events, n_obs)``.
            theta: one point ``(n_params,)``; required (a likelihood-ratio model has no reference point).
            chunk_size: see :meth:`evaluate_log_ratio`.

        Returns:
            :class:`~assay.estimators.prediction.Prediction` with ``mean (n_events, n_params)``, ``std`` None.

        Raises:
            NotFittedError: before ``fit``.
            PredictionError: ``theta`` is None.
        """
        self._fitted_net()
        if theta is None:
            raise PredictionError(
                f"{type(self).__name__} estimates the score at any θ but has no reference point: "
                f"call score(x, theta) with theta (n_params,)"
            )
        point = as_point(theta, len(self.parameters_), "theta")
        scores = self.evaluate_log_ratio(x, point, point, score=True, chunk_size=chunk_size).score
        return Prediction(scores[0])

    def evaluate_log_ratio(
        self,
        x: np.ndarray,
        theta0: np.ndarray,
        theta1: np.ndarray,
        *,
        score: bool = True,
        chunk_size: int = 16_384,
    ) -> RatioPrediction:
        """log r̂(x|θ0, θ1) for every (θ0, event) pair, batched over the θ × events product.

        Args:
            x: events ``(n_events, n_obs)``.
            theta0: numerator points ``(n_theta, n_params)`` or ``(n_params,)`` (n_theta = 1).
            theta1: denominator point ``(n_params,)`` shared by all θ0, or ``(n_theta, n_params)``
                paired with θ0.
            score: also return t̂(x|θ0) by autograd (costs about one extra backward pass).
            chunk_size: rows of the (θ, event) product evaluated at once; 16k rows keep the
                activations in cache (about 2× faster than 1M on a 2-core CPU, benchmarks/training.py);
                the product is evaluated in one go when it fits.

        Returns:
            :class:`RatioPrediction` with ``log_r (n_theta, n_events)`` and
            ``score (n_theta, n_events, n_params)`` (None if ``score=False``), float64.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: shapes do not match the fitted observables / parameters.
        """
        net = self._fitted_net()
        x = self._check_x(x)
        n_params = len(self.parameters_)
        th0 = as_thetas(theta0, n_params, "theta0")
        th1 = as_thetas(theta1, n_params, "theta1")
        if len(th1) not in (1, len(th0)):
            raise ValueError(
                f"theta1: expected one point or {len(th0)} points paired with theta0, got {len(th1)}"
            )
        if isinstance(net, MorphingRatioNet) and not score:  # θ enters through c_k(θ): one pass over x
            with torch.no_grad():
                t0, t1 = self._tensor(th0), self._tensor(th1)
                chunks = range(0, len(x), chunk_size)
                table = [net.log_ratio_table(self._tensor(x[b : b + chunk_size]), t0, t1) for b in chunks]
            return RatioPrediction(torch.cat(table, dim=1).double().cpu().numpy(), None)
        k_step = max(1, min(len(th0), chunk_size))
        n_step = max(1, chunk_size // k_step)
        log_r = np.empty((len(th0), len(x)))
        scores = np.empty((len(th0), len(x), n_params)) if score else None
        workspace: dict = {}  # RatioNet.log_ratio_table's buffers, reused by every chunk
        for a in range(0, len(th0), k_step):
            t1_rows = th1 if len(th1) == 1 else th1[a : a + k_step]
            for b in range(0, len(x), n_step):
                lr, t0 = self._chunk(net, x[b : b + n_step], th0[a : a + k_step], t1_rows, score, workspace)
                log_r[a : a + k_step, b : b + n_step] = lr
                if scores is not None:
                    scores[a : a + k_step, b : b + n_step] = t0
        return RatioPrediction(log_r, scores)

    def _chunk(
        self,
        net: nn.Module,
        x: np.ndarray,
        theta0: np.ndarray,
        theta1: np.ndarray,
        score: bool,
        workspace: dict,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(net, RatioNet) and not score:
            table = net.log_ratio_table(
                self._tensor(x), self._tensor(theta0), self._tensor(theta1), workspace
            )
            return table.double().cpu().numpy(), None
        th0 = self._tensor(theta0)[:, None, :]  # shared by the m events
        th1 = self._tensor(theta1)[:, None, :]
        with torch.no_grad():
            log_r, t0, _ = log_ratio_and_scores(net, self._tensor(x), th0, th1, t0=score, t1=False)
        return log_r.double().cpu().numpy(), (t0.double().cpu().numpy() if t0 is not None else None)


def _score_events_first(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Each member's events of a stacked batch ``(M, m, ...)`` reordered so that those a t̂0 term uses
    (y ≠ 1) come first, and the largest number of them in a member."""
    need = batch["y"] != 1  # (M, m)
    order = torch.argsort(need.to(torch.uint8), dim=1, descending=True, stable=True)
    out = {}
    for key, value in batch.items():
        index = order.view(*order.shape, *[1] * (value.dim() - 2)).expand_as(value)
        out[key] = torch.gather(value, 1, index)
    return out, int(need.sum(1).max())


class _Outputs(NamedTuple):
    """Per-sample network outputs in a training batch: log r̂ ``(batch,)``, t̂0, t̂1 ``(batch, n_params)``."""

    log_r: torch.Tensor
    t0: torch.Tensor | None
    t1: torch.Tensor | None


def _cross_entropy(log_r_hat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE(ŝ, target) with ŝ = 1/(1 + r̂) = sigmoid(−log r̂), computed stably from the logit."""
    return F.binary_cross_entropy_with_logits(-log_r_hat, target, reduction="none")


class CARL(RatioEstimator):
    """Calibrated classifier: cross-entropy on the labels y (seed 001 Table I; arXiv:1506.02169).

    Example:
        >>> CARL(hidden=(32, 32), epochs=20, seed=1)
        CARL(n_params=None, hidden=[32, 32], activation='tanh', morphing=None, epochs=20, ...)
    """

    def _terms(self, out, batch):
        return {"xe": (1.0, _cross_entropy(out.log_r, batch["y"]))}


class ROLR(RatioEstimator):
    """Regression on the joint likelihood ratio (arXiv:1805.12244, 1805.00020; MadMiner ``ratio_mse``).

    ``(1−y)(1/r̂ − 1/r)² + y(r̂ − r)²`` with log r̂ and log r clipped to ±:data:`LOG_R_CLIP`
    before exponentiating, so single events with huge r neither overflow float32 nor dominate.
    """

    required_fields = (*_RATIO_FIELDS, "log_r")

    def _terms(self, out, batch):
        y = batch["y"]
        log_r_hat = out.log_r.clamp(-LOG_R_CLIP, LOG_R_CLIP)
        log_r = batch["log_r"].clamp(-LOG_R_CLIP, LOG_R_CLIP)
        return {
            "mse_num": (1.0, ((1 - y) * (torch.exp(-log_r_hat) - torch.exp(-log_r))) ** 2),
            "mse_den": (1.0, (y * (torch.exp(log_r_hat) - torch.exp(log_r))) ** 2),
        }


class ALICE(RatioEstimator):
    """Improved cross-entropy on s(x,z) = 1/(1 + r(x,z)) (seed 001 ``ratio_augmented_xe``).

    References: arXiv:1808.00973 (ALICE), 1805.00020.
    """

    required_fields = (*_RATIO_FIELDS, "log_r")

    def _terms(self, out, batch):
        return {"xe_augmented": (1.0, _cross_entropy(out.log_r, torch.sigmoid(-batch["log_r"])))}


class _ScoreAugmented(RatioEstimator):
    """Adds α · MSE between t̂ and the joint score: at θ0 on y = 0 samples (seed 001
    ``ratio_score_mse_num``) and, for doubly parameterized sets, at θ1 on y = 1 samples.

    Args:
        alpha: weight of the score terms (seed 000 "Training settings": α = 5; 10 in the 2D S+B study).
    """

    uses_score = True

    def __init__(self, *, alpha: float = 5.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def _own_params(self) -> dict[str, Any]:
        return {**super()._own_params(), "alpha": self.alpha}

    def _terms(self, out, batch):
        y = batch["y"]
        terms = super()._terms(out, batch)
        terms["score_mse_0"] = (self.alpha, (1 - y) ** 2 * ((out.t0 - batch["t0"]) ** 2).mean(-1))
        if out.t1 is not None:
            terms["score_mse_1"] = (self.alpha, y**2 * ((out.t1 - batch["t1"]) ** 2).mean(-1))
        return terms


class ALICES(_ScoreAugmented, ALICE):
    """ALICE + α · score MSE (seed 000 "ALICES"; arXiv:1808.00973).

    Example:
        >>> ALICES(n_params=2, hidden=(100, 100), alpha=5.0, epochs=50, lr=(1e-3, 1e-4)).alpha
        5.0
    """

    required_fields = (*ALICE.required_fields, "t0")


class RASCAL(_ScoreAugmented, ROLR):
    """ROLR + α · score MSE (arXiv:1805.12244, 1805.00020)."""

    required_fields = (*ROLR.required_fields, "t0")


class CASCAL(_ScoreAugmented, CARL):
    """CARL + α · score MSE (arXiv:1805.12244, 1805.00020)."""

    required_fields = (*CARL.required_fields, "t0")
