"""Coverage of the stated intervals in pseudo-experiments (``assay limits --toys N``).

Toys are drawn from the Asimov sample's events (the test partition) with probability ∝ w_i(θ)
and N ~ Pois(L σ(θ)) (:func:`assay.inference.pseudo_experiments.draw_pseudo_experiments`); each is
fitted like observed data by every method on the configured 1D scans; the coverage is the fraction
of toys whose interval contains the θ they were drawn at (an open end counts as containing it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from assay.analysis.methods import Dataset, Method
from assay.analysis.scans import OneDimensional, fit_intervals, one_parameter
from assay.inference.asimov import AsimovSample
from assay.inference.likelihood import expected_events
from assay.inference.pseudo_experiments import (
    ObservedFit,
    coverage,
    draw_pseudo_experiments,
    fit_pseudo_experiments,
)
from assay.results import Coverage

__all__ = ["ToyFitter", "toy_coverage"]


@dataclass(frozen=True, eq=False)
class ToyFitter:
    """Fits one pseudo-experiment (event indices of the sample) with every method: method →
    :class:`~assay.inference.pseudo_experiments.ObservedFit`. Picklable, so that Dask workers can run it."""

    methods: Mapping[str, Method]
    sample: AsimovSample
    scans: Sequence[OneDimensional]
    cls: tuple[float, ...]

    def __call__(self, indices: np.ndarray) -> dict[str, ObservedFit]:
        data = Dataset.from_sample(self.sample).take(indices)
        return {name: self._fit(method, data) for name, method in self.methods.items()}

    def _fit(self, method: Method, data: Dataset) -> ObservedFit:
        best, bounds, scans = {}, {}, {}
        for s in self.scans:
            scan = method.scan(data, self.sample, s.theta, (s.axis,))
            found = fit_intervals(method, data, self.sample, s, scan, self.cls, 0)
            best[s.parameter], scans[s.parameter] = found.best_fit, one_parameter(scan, s.axis)
            bounds |= found.bounds
        return ObservedFit(best, bounds, scans)


def toy_coverage(
    methods: Mapping[str, Method],
    sample: AsimovSample,
    scans: Sequence[OneDimensional],
    cls: Sequence[float],
    theta: np.ndarray,
    n_toys: int,
    *,
    seed: int,
    client=None,
    progress: bool = True,
) -> Coverage:
    """The coverage of every method's intervals in ``n_toys`` pseudo-experiments drawn at ``theta``
    (:func:`~assay.inference.pseudo_experiments.coverage`: an open end covers its side).

    The scans are centred as configured; they should contain ``theta``.
    """
    theta = np.asarray(theta, dtype=float)
    weights = sample.joint.weights_on_grid(sample.benchmark_weights, theta[None])[:, 0]
    n_expected = float(expected_events(sample.cross_section(theta[None])[0], sample.luminosity))
    rng = np.random.default_rng([seed, 11])
    experiments = draw_pseudo_experiments(np.clip(weights, 0, None), n_expected, n_toys, rng)
    # the scans' other parameters sit at θ_true; toys drawn elsewhere move the fixed ones too
    moved = [OneDimensional(s.parameter, s.axis, _at(s.theta, theta, s.axis), s.lower) for s in scans]
    fitter = ToyFitter(dict(methods), sample, tuple(moved), tuple(cls))
    fits = fit_pseudo_experiments(experiments, fitter, client=client, progress=progress)
    parameters, values = [s.parameter for s in moved], [theta[s.axis] for s in moved]
    fractions = {name: coverage([fit[name] for fit in fits], values, parameters) for name in methods}
    return Coverage(theta_true=theta, n_toys=n_toys, confidence_levels=tuple(cls), coverage=fractions)


def _at(points: np.ndarray, theta: np.ndarray, axis: int) -> np.ndarray:
    out = np.repeat(theta[None], len(points), axis=0)
    out[:, axis] = points[:, axis]
    return out
