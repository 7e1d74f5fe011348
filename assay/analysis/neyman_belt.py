"""The Neyman construction of a method on a 1D scan: critical values t_c(θ) from pseudo-experiments.

At every point θ_k of the scan, ``n_toys`` pseudo-experiments are drawn at θ_k from the Asimov
sample's events (probability ∝ w_i(θ_k) ≥ 0, N ~ Pois(L σ(θ_k)); seed 003: a positive-weight
reference reweighted to the hypothesis) and each is scanned by the method over the whole scan:
t(θ_k) = q(θ_k) − min_θ q(θ) on that toy. The CL quantile over the toys is t_c(θ_k)
(:func:`assay.inference.neyman.critical_values`); the confidence set of the data (Asimov or observed)
is {θ : t_data(θ) ≤ t_c(θ)}, compared with Wilks' constant χ²₁ critical value. Toys run in this
process or on a ``dask.distributed.Client`` (one task per toy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from assay.analysis.methods import Dataset, Method
from assay.analysis.scans import OneDimensional, one_parameter
from assay.inference.asimov import AsimovSample
from assay.inference.asymptotic import critical_value, limits_1d
from assay.inference.likelihood import Scan, expected_events
from assay.inference.neyman import critical_values, neyman_regions
from assay.inference.pseudo_experiments import draw_pseudo_experiments, fit_pseudo_experiments

__all__ = ["BeltToy", "NeymanBelt", "neyman_belt"]


@dataclass(frozen=True, eq=False)
class BeltToy:
    """t(θ_k) of one toy drawn at point k of the scan: ``(k, indices) → float``. Picklable."""

    method: Method
    sample: AsimovSample
    scan: OneDimensional

    def __call__(self, task: tuple[int, np.ndarray]) -> float:
        k, indices = task
        data = Dataset.from_sample(self.sample).take(indices)
        scan = self.method.scan(data, self.sample, self.scan.theta, (self.scan.axis,))
        return float(_t_values(scan, self.scan.axis)[k])


def _t_values(scan: Scan, axis: int) -> np.ndarray:
    """t(θ_k) = q(θ_k) − min_θ q(θ), the minimum on the scan's cubic spline (between grid points)."""
    one = one_parameter(scan, axis)
    q = one.minus_2_delta_log_l
    return np.maximum(q - np.min(q) - limits_1d(one, ()).q_min, 0.0)


@dataclass(frozen=True, eq=False)
class NeymanBelt:
    """A method's Neyman construction on one parameter.

    Attributes:
        parameter: the scanned parameter.
        theta: the scan's values ``(n_points,)``.
        t_toys: t(θ_k) of the toys drawn at θ_k ``(n_points, n_toys)``.
        t_data: t(θ_k) of the data ``(n_points,)``.
        critical: CL → t_c(θ) ``(n_points,)``.
        regions: CL → the Neyman confidence set of the data, disjoint intervals.
        wilks_regions: CL → the set with Wilks' χ²₁ critical value, for comparison.
    """

    parameter: str
    theta: np.ndarray
    t_toys: np.ndarray
    t_data: np.ndarray
    critical: dict[float, np.ndarray]
    regions: dict[float, list[tuple[float, float]]]
    wilks_regions: dict[float, list[tuple[float, float]]]


def neyman_belt(
    method: Method,
    data: Dataset,
    sample: AsimovSample,
    scan: OneDimensional,
    n_toys: int,
    cls: Sequence[float],
    *,
    seed: int,
    client=None,
    progress: bool = True,
) -> NeymanBelt:
    """Critical values of ``method`` at every point of ``scan`` from ``n_toys`` toys each, and the
    confidence sets of ``data``.

    Raises:
        ValueError: ``n_toys`` < 1.
    """
    if n_toys < 1:
        raise ValueError(f"n_toys: expected >= 1, got {n_toys}")
    rng = np.random.default_rng([seed, 13])
    weights = sample.joint.weights_on_grid(sample.benchmark_weights, scan.theta)  # (n_events, n_points)
    n_expected = expected_events(sample.cross_section(scan.theta), sample.luminosity)
    tasks = [
        (k, indices)
        for k in range(len(scan.theta))
        for indices in draw_pseudo_experiments(
            np.clip(weights[:, k], 0, None), float(n_expected[k]), n_toys, rng
        )
    ]
    t = np.array(
        fit_pseudo_experiments(tasks, BeltToy(method, sample, scan), client=client, progress=progress)
    )
    t_toys = t.reshape(len(scan.theta), n_toys)
    t_data = _t_values(method.scan(data, sample, scan.theta, (scan.axis,)), scan.axis)
    critical = {cl: critical_values(t_toys, cl) for cl in cls}
    values = scan.values
    return NeymanBelt(
        parameter=scan.parameter, theta=values, t_toys=t_toys, t_data=t_data, critical=critical,
        regions={cl: neyman_regions(values, t_data, c) for cl, c in critical.items()},
        wilks_regions={cl: neyman_regions(values, t_data, np.full(len(values), critical_value(cl, 1)))
                       for cl in cls},
    )  # fmt: skip
