"""The processes of :class:`~assay.estimators.mixture.MixtureModel` (seed 003): what each is, its
coefficient f_j(θ), and the classifier that learns its density ratio to the reference.

- :func:`process_matrix`: processes as combinations of the benchmark weights, W_j = Σ_k P_jk W_k;
- :func:`process_coefficients`: f_j(θ) = Σ_k c_k(θ) (P⁻¹)_kj, so that w(z|θ) = Σ_j f_j(θ) W_j(z);
- :class:`ProcessClassifier`: r̂_j(x) = p̂_j(x)/p̂_ref(x) (seed 003, "Robust, parameterised
  classifier without parameterising": a separate classifier per physics process j).

Both classes of a classifier are the *same* weighted events (:func:`classification_set`): class 1
weighted by W_j / Σ W_j, class 0 by W_ref / Σ W_ref, each class summing to the number of events.
The loss is the weighted binary cross-entropy of the logit g(x),

    L[g] = Σ_i w_i1 softplus(−g(x_i)) + w_i0 softplus(g(x_i)),

whose minimiser at each x, with a_1(x), a_0(x) the expected net class weights there, is
g(x) = log a_1(x)/a_0(x) = log r_j(x) wherever both are positive: single weights may be negative
(NLO events); only the net densities must be positive. So log r̂_j is the logit itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assay.estimators.base import Estimator
from assay.estimators.nets import MLP, Standardizer
from assay.exceptions import ConfigError
from assay.morphing import Morpher, as_thetas
from assay.training_set import TrainingSet

__all__ = [
    "ClassifierNet",
    "ProcessClassifier",
    "ProcessSpec",
    "check_processes",
    "classification_set",
    "process_coefficients",
    "process_matrix",
]

_MAX_CONDITION = 1e12

ProcessSpec = Mapping[str, float] | str
"""A process: {benchmark name: coefficient} or one benchmark name (coefficient 1)."""


class ClassifierNet(nn.Module):
    """Standardised x → MLP → one logit g(x) = log r̂(x), shape ``(batch,)``.

    Example:
        >>> ClassifierNet(2, (8,), "relu")(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(self, n_obs: int, hidden: Sequence[int], activation: str):
        super().__init__()
        self.scaler = Standardizer(n_obs)
        self.mlp = MLP(n_obs, 1, hidden, activation)

    def fit_scalers(self, data: TrainingSet) -> None:
        """Standardise with the (unweighted) mean and std of ``data.x``."""
        self.scaler.fit(data.x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.scaler(x))[:, 0]


class ProcessClassifier(Estimator):
    """Weighted classifier of one process against the reference; its logit is log r̂_j(x) (seed 003).

    Trains on a set from :func:`classification_set` (``x``, ``y``, ``sample_weight``; no
    parameters). A building block of the mixture model, not a predictor of its own.

    Example:
        >>> ProcessClassifier(hidden=(16,), epochs=3, seed=0)
        ProcessClassifier(n_params=None, hidden=[16], activation='tanh', epochs=3, ...)
    """

    required_fields: ClassVar[tuple[str, ...]] = ("x", "y", "sample_weight")

    def _build(self, n_obs: int, n_params: int) -> nn.Module:
        return ClassifierNet(n_obs, self.hidden, self.activation)

    def _arrays(self, data: TrainingSet) -> dict[str, np.ndarray]:
        return {"x": data.x, "y": data.y, "w": data.sample_weight}

    def _loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        xe = F.binary_cross_entropy_with_logits(net(batch["x"]), batch["y"], reduction="none")
        total = (batch["w"] * xe).mean()
        return total, {"xe": total}

    def log_density_ratio(self, x: np.ndarray, *, chunk_size: int = 65_536) -> np.ndarray:
        """log r̂(x) = log p̂_process(x) / p̂_ref(x), the logit.

        Args:
            x: events ``(n_events, n_obs)``.
            chunk_size: events per forward pass.

        Returns:
            ``(n_events,)`` float64.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: x is not ``(n_events, n_obs)``.
        """
        net = self._fitted_net()
        x = self._check_x(x)
        out = np.empty(len(x))
        with torch.no_grad():
            for start in range(0, len(x), chunk_size):
                out[start : start + chunk_size] = net(self._tensor(x[start : start + chunk_size])).cpu()
        return out


def classification_set(
    x: np.ndarray,
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    observables: Sequence[str],
    counts: np.ndarray | None = None,
) -> TrainingSet:
    """The events twice: y = 1 weighted by ``numerator``, y = 0 by ``denominator``, each class
    normalised to sum to the number of events (before the bootstrap ``counts``).

    Args:
        x: events ``(n_events, n_obs)``.
        numerator: weights of the process ``(n_events,)`` (any unit, may be negative; positive sum).
        denominator: weights of the reference ``(n_events,)`` (positive sum).
        observables: names of the columns of x.
        counts: Poisson bootstrap counts ``(n_events,)`` multiplying both rows of each event;
            None: 1.

    Returns:
        A ``"plain"`` :class:`~assay.training_set.TrainingSet` of ``2 n_events`` rows with ``y``
        and ``sample_weight`` and no parameters.

    Raises:
        ValueError: a class whose weights do not sum to > 0.

    Example:
        >>> s = classification_set(np.zeros((2, 1)), np.array([1.0, 3.0]), np.ones(2), observables=("x",))
        >>> s.y.tolist(), s.sample_weight.tolist()
        ([1.0, 1.0, 0.0, 0.0], [0.5, 1.5, 1.0, 1.0])
    """
    n = len(x)
    for name, w in (("numerator", numerator), ("denominator", denominator)):
        if not w.sum() > 0:
            raise ValueError(f"{name}: the weights of a class must have a positive sum, got {w.sum():.4g}")
    weight = np.concatenate([numerator * (n / numerator.sum()), denominator * (n / denominator.sum())])
    if counts is not None:
        weight = weight * np.tile(counts, 2)
    return TrainingSet(
        x=np.concatenate([x, x]),
        observables=tuple(observables),
        parameters=(),
        kind="plain",
        y=np.repeat([1.0, 0.0], n),
        sample_weight=weight,
    )


def process_matrix(
    processes: Mapping[str, ProcessSpec] | None, benchmarks: Sequence[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Process names and the matrix P of W_j = Σ_k P_jk W_k.

    Args:
        processes: name → {benchmark: coefficient} or a benchmark name (coefficient 1); None: the
            benchmarks themselves (P = 1).
        benchmarks: names of the benchmark weight columns, ``(n_benchmarks,)``.

    Returns:
        (names ``(n_processes,)``, P ``(n_processes, n_benchmarks)``), n_processes = n_benchmarks.

    Raises:
        ConfigError: duplicate or unknown benchmark names, a non-finite coefficient, a number of
            processes other than of benchmarks, or a singular P.

    Example:
        >>> names, p = process_matrix({"S": {"mu4": 0.5, "mu1": -1, "mu0": 0.5}, "SBI": "mu1", "B": "mu0"},
        ...                           ["mu0", "mu1", "mu4"])
        >>> names, p.tolist()
        (('S', 'SBI', 'B'), [[0.5, -1.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    """
    benchmarks = tuple(benchmarks)
    if len(set(benchmarks)) != len(benchmarks):
        raise ConfigError(f"benchmarks: duplicate names in {list(benchmarks)}")
    if processes is None:
        return benchmarks, np.eye(len(benchmarks))
    index = {name: k for k, name in enumerate(benchmarks)}
    matrix = np.zeros((len(processes), len(benchmarks)))
    for j, (name, spec) in enumerate(processes.items()):
        for bench, coef in ({spec: 1.0} if isinstance(spec, str) else spec).items():
            if bench not in index:
                raise ConfigError(
                    f"processes[{name!r}]: unknown benchmark {bench!r}; valid names are {list(benchmarks)}"
                )
            matrix[j, index[bench]] = float(coef)
    if len(processes) != len(benchmarks):
        raise ConfigError(
            f"processes: expected one process per benchmark ({len(benchmarks)}: {list(benchmarks)}) so "
            f"that the benchmarks are combinations of the processes, got {len(processes)}: {list(processes)}"
        )
    cond = np.linalg.cond(matrix)
    if not np.isfinite(matrix).all() or not cond < _MAX_CONDITION:
        raise ConfigError(
            f"processes: the process matrix {matrix.tolist()} (rows {list(processes)}, columns "
            f"{list(benchmarks)}) is singular (condition number {cond:.3g}); choose independent processes"
        )
    return tuple(processes), matrix


def process_coefficients(morpher: Morpher, matrix: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """f_j(θ) = Σ_k c_k(θ) (P⁻¹)_kj, so that w(z|θ) = Σ_j f_j(θ) W_j(z) (seed 003 mixture model).

    Args:
        morpher: gives the morphing weights c_k(θ) of the benchmarks.
        matrix: P ``(n_processes, n_benchmarks)`` from :func:`process_matrix`.
        theta: ``(n_theta, n_params)`` or ``(n_params,)``.

    Returns:
        ``(n_theta, n_processes)``.
    """
    thetas = as_thetas(theta, morpher.n_params)
    return np.linalg.solve(matrix.T, morpher.morphing_weights(thetas).T).T  # c P⁻¹


def check_processes(processes: Mapping[str, ProcessSpec]) -> dict[str, Any]:
    """A JSON-able copy of ``processes``, checked: names → benchmark name or {benchmark: float}."""
    if not isinstance(processes, Mapping) or not processes:
        raise ConfigError(f"processes: expected a non-empty mapping name → benchmark(s), got {processes!r}")
    out: dict[str, Any] = {}
    for name, spec in processes.items():
        if isinstance(spec, str):
            out[str(name)] = spec
        elif isinstance(spec, Mapping) and all(isinstance(k, str) for k in spec):
            coefs = {k: float(v) for k, v in spec.items()}
            if not all(np.isfinite(v) for v in coefs.values()):
                raise ConfigError(f"processes[{name!r}]: coefficients must be finite, got {coefs}")
            out[str(name)] = coefs
        else:
            raise ConfigError(
                f"processes[{name!r}]: expected a benchmark name or {{benchmark: coefficient}}, got {spec!r}"
            )
    return out
