"""The methods a limit can come from, each scanning −2Δlog L(θ) of one data set.

Every method sees the same :class:`Dataset` at the same θ points:

- :class:`RatioMethod`: the extended unbinned likelihood with log r̂(x|θ, θ_ref) (truth, ALICES,
  BIT, …; seed 000 "Setting Limits"), an estimated r̂ normalised by R̂(θ) measured on the
  Asimov sample (:func:`assay.inference.asimov.normalised`);
- :class:`BinnedMethod`: the binned Poisson likelihood of a histogram, of observables or of a
  score model's t̂ (SALLY; seed 000: 25 bins of each component in 1D, 8 × 8 in 2D);
- :class:`RateMethod`: the event count alone.

A data set is either the Asimov sample (events weighted at θ_true, N = L σ(θ_true)) or observed
events (unweighted, N = their number): pseudo-experiments and ``--data``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assay.exceptions import PredictionError
from assay.inference.asimov import AsimovSample
from assay.inference.histograms import BinnedTemplates, Binning, binned_scan, score_binning
from assay.inference.likelihood import Scan, observed_scan, rate_only_scan

__all__ = [
    "BinnedMethod",
    "Dataset",
    "Method",
    "ModelInputs",
    "RateMethod",
    "RatioMethod",
    "check_model_inputs",
    "model_inputs",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Events a likelihood is evaluated on.

    Attributes:
        x: observables ``(n_events, n_obs)``.
        benchmark_weights: ``(n_events, n_benchmarks)`` in pb where known (the truth of a
            parton-level simulator needs them), else None.
        asimov: True for the Asimov sample (weighted), False for observed events (w_i = 1).
        label: ``"asimov"``, ``"observed: FILE"`` or ``"toy"``.
        rows: for a pseudo-experiment, its events' rows in the Asimov sample ``(n_events,)`` (per-event
            terms computed once on the sample are sliced with them); None otherwise.
    """

    x: np.ndarray
    benchmark_weights: np.ndarray | None
    asimov: bool
    label: str = "observed"
    rows: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_sample(cls, sample: AsimovSample) -> Dataset:
        return cls(sample.x, sample.benchmark_weights, True, "asimov")

    def take(self, indices: np.ndarray, label: str = "toy") -> Dataset:
        """Unweighted events ``indices`` of this set (a pseudo-experiment drawn from it)."""
        bench = None if self.benchmark_weights is None else self.benchmark_weights[indices]
        rows = indices if self.rows is None else self.rows[indices]
        return Dataset(self.x[indices], bench, False, label, rows)

    def cached(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """A per-dataset value computed once (an estimator's t̂ on these events)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


class Method:
    """A way to compute −2Δlog L(θ) of a :class:`Dataset`.

    Attributes:
        name: the name results and plots use (a model's name, ``truth``, ``hist_<name>``, ``rate``).
        kind: ``"ratio"``, ``"binned"`` or ``"rate"``.
    """

    name: str
    kind: str

    def scan(self, data: Dataset, sample: AsimovSample, theta: np.ndarray, axes: Sequence[int]) -> Scan:
        """−2Δlog L at ``theta (n_theta, n_params)``; ``axes``: the indices of the scanned parameters."""
        raise NotImplementedError


@dataclass(eq=False)
class RatioMethod(Method):
    """The extended likelihood with a per-event log-ratio.

    Args:
        name: method name.
        log_ratio: ``(data, θ (n, n_params)) → log r̂(x_i|θ, θ_true) (n, n_events)``.
        normalise: divide r̂ by R̂(θ) = E_{θ_true}[r̂] measured on the Asimov sample (estimators;
            the exact ratio is normalised by construction).
        theta_chunk: θ points per evaluation (memory ∝ chunk × n_events).
        needs_weights: ``log_ratio`` reads the events' benchmark weights (the truth from weights),
            so data without them cannot use it.
    """

    name: str
    log_ratio: Callable[[Dataset, np.ndarray], np.ndarray]
    normalise: bool = True
    theta_chunk: int = 32
    needs_weights: bool = False
    kind: str = "ratio"
    _log_norm: dict = field(default_factory=dict, repr=False)

    def log_normalisation(self, sample: AsimovSample, theta: np.ndarray) -> np.ndarray:
        """log R̂(θ) on the Asimov sample ``(n_theta,)`` (cached per θ)."""
        if not self.normalise:
            return np.zeros(len(theta))
        key = theta.tobytes()
        if key not in self._log_norm:
            data = Dataset.from_sample(sample)
            values = [
                np.log(sample.expectation_check(self.log_ratio(data, theta[i : i + self.theta_chunk])))
                for i in range(0, len(theta), self.theta_chunk)
            ]
            self._log_norm[key] = np.concatenate(values)
        return self._log_norm[key]

    def scan(self, data: Dataset, sample: AsimovSample, theta: np.ndarray, axes: Sequence[int]) -> Scan:
        def log_r(block: np.ndarray) -> np.ndarray:
            values = np.asarray(self.log_ratio(data, block), dtype=float)
            if not self.normalise:
                return values
            if data.asimov:  # R̂ from the same values: no second evaluation
                return values - np.log(sample.expectation_check(values))[:, None]
            return values - self.log_normalisation(sample, block)[:, None]

        if data.asimov:
            return sample.ratio_scan(theta, log_r, theta_chunk=self.theta_chunk)
        return observed_scan(
            theta, log_r, sample.cross_section, sample.luminosity, theta_chunk=self.theta_chunk
        )


@dataclass(eq=False)
class BinnedMethod(Method):
    """A histogram analysis: observables, or a score model's t̂, binned.

    Args:
        name: method name.
        values: ``(data) → (n_events, n_dims)``: the binned quantity per event.
        binning: a fixed :class:`Binning` over all ``n_dims`` columns; or None for score
            histograms, whose bins are weighted quantiles of t̂ on the Asimov sample (seed 000),
            ``score_bins[0]`` per component when one parameter is scanned, ``score_bins[1]`` per
            axis for two, only the components of the scanned parameters.
        score_bins: see ``binning``.
    """

    name: str
    values: Callable[[Dataset], np.ndarray]
    binning: Binning | None = None
    score_bins: tuple[int, int] = (25, 8)
    kind: str = "binned"
    _templates: dict = field(default_factory=dict, repr=False)

    def _columns(self, axes: Sequence[int]) -> list[int] | None:
        return None if self.binning is not None else list(axes)

    def templates(self, sample: AsimovSample, axes: Sequence[int]) -> BinnedTemplates:
        """The benchmark templates on the Asimov sample for a scan of ``axes`` (cached)."""
        key = tuple(axes) if self.binning is None else ()
        if key not in self._templates:
            values = self.values(Dataset.from_sample(sample))
            if self.binning is not None:
                binning = self.binning
            else:
                values = values[:, list(axes)]
                binning = self._score_binning(values, sample.weights, len(axes))
            self._templates[key] = sample.templates(binning, values)
        return self._templates[key]

    def _score_binning(self, t_hat: np.ndarray, weights: np.ndarray, n_dims: int) -> Binning:
        """Edges balanced between events and Fisher information (heavy-tailed scores, docs/demo.md)."""
        n_bins = self.score_bins[0] if n_dims == 1 else self.score_bins[1]
        edges = [
            score_binning(t_hat[:, a], weights, n_bins=n_bins, balance="information").edges[0]
            for a in range(n_dims)
        ]
        return Binning(tuple(f"t_hat_{a}" for a in range(n_dims)), tuple(edges))

    def counts(self, data: Dataset, sample: AsimovSample, axes: Sequence[int]) -> np.ndarray:
        """Observed counts per bin of ``data`` (unweighted events)."""
        templates = self.templates(sample, axes)
        values = self.values(data)
        if self.binning is None:
            values = values[:, list(axes)]
        index = templates.binning.bin_index(values)
        return np.bincount(index[index >= 0], minlength=templates.n_bins).astype(float)

    def scan(self, data: Dataset, sample: AsimovSample, theta: np.ndarray, axes: Sequence[int]) -> Scan:
        templates = self.templates(sample, axes)
        if data.asimov:
            return sample.binned_scan(theta, templates)
        return binned_scan(templates, theta, sample.luminosity, self.counts(data, sample, axes))


@dataclass(eq=False)
class RateMethod(Method):
    """The Poisson term alone: N observed (or L σ(θ_true) for Asimov) against L σ(θ)."""

    name: str = "rate"
    kind: str = "rate"

    def scan(self, data: Dataset, sample: AsimovSample, theta: np.ndarray, axes: Sequence[int]) -> Scan:
        if data.asimov:
            n = float(sample.cross_section(sample.theta_true[None])[0]) * sample.luminosity * 1000.0
        else:
            n = float(len(data.x))
        return rate_only_scan(theta, sample.cross_section, sample.luminosity, n_observed=n)


@dataclass(frozen=True)
class ModelInputs:
    """What a trained model takes: its observables (columns of x) and parameters (columns of θ).

    Attributes:
        n_obs, n_params: how many.
        observables, parameters: their names in order; None where the model does not record them
            (BIT keeps only the counts).
    """

    n_obs: int
    n_params: int
    observables: tuple[str, ...] | None = None
    parameters: tuple[str, ...] | None = None


def model_inputs(model: Any) -> ModelInputs:
    """The :class:`ModelInputs` of a fitted estimator, ensemble, mixture model or BIT."""
    from assay.bit import BoostedInformationTree
    from assay.estimators import Ensemble

    if isinstance(model, BoostedInformationTree):
        return ModelInputs(int(model.n_obs_), int(model.n_params_))
    if isinstance(model, Ensemble):
        model = model.members_[0]
    observables, parameters = tuple(model.observables_), tuple(model.parameters_)
    return ModelInputs(len(observables), len(parameters), observables, parameters)


def check_model_inputs(
    name: str, model: Any, observables: Sequence[str], parameters: Sequence[str], *, where: str
) -> None:
    """Refuse to apply the model ``name`` to events whose observables or parameters are not the ones it
    was trained on (names and order; counts only where the model keeps no names).

    Args:
        name: the model's name (for the message).
        model: the fitted model (:func:`model_inputs`).
        observables: the columns of the events' x, in order.
        parameters: the parameters θ is given in, in order.
        where: the events, e.g. ``"runs/toy/events.h5"``.

    Raises:
        PredictionError: naming the model, both lists and how to fix it.

    Example:
        >>> check_model_inputs("m", ModelInputs(2, 1, ("a", "b"), ("c",)), ["b", "a"], ["c"], where="x.h5")
        Traceback (most recent call last):
        ...
        assay.exceptions.PredictionError: model 'm' was trained on observables ['a', 'b'] but x.h5 has \
['b', 'a'] (names and order must match); retrain it on these events (assay train) or use events with \
the model's observables
    """
    inputs = model if isinstance(model, ModelInputs) else model_inputs(model)
    for what, theirs, count, ours in (
        ("observables", inputs.observables, inputs.n_obs, list(observables)),
        ("parameters", inputs.parameters, inputs.n_params, list(parameters)),
    ):
        trained = f"{list(theirs)}" if theirs is not None else f"{count} {what} (names not recorded)"
        if (theirs is not None and list(theirs) != ours) or (theirs is None and count != len(ours)):
            raise PredictionError(
                f"model {name!r} was trained on {what} {trained} but {where} has {ours} (names and order "
                f"must match); retrain it on these events (assay train) or use events with the model's {what}"
            )
