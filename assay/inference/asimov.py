"""Expected (Asimov) limits of any method on one weighted event sample.

An :class:`AsimovSample` is a partition of an :class:`~assay.store.EventStore` (usually the
test events, which no estimator saw) with its exact benchmark weights. Every method is scanned
on the same events at the same θ_true and luminosity:

- likelihood-ratio methods (truth, ALICES, BIT, …) through the extended likelihood of
  :func:`assay.inference.likelihood.expected_scan`, with Σ_i w_i log r̂(x_i|θ, θ_true);
- histogram methods (a kinematic observable or SALLY's t̂ binned) through the binned Poisson
  likelihood with Asimov counts ν(θ_true) (:func:`assay.inference.histograms.binned_scan`).

A partition with a fraction f of the events is rescaled to the whole store's σ(θ_true) by one
scalar, σ(θ_true)/Σ_partition w(θ_true) ≈ 1/f, in both kinds of scans (the morphing structure of
the templates is kept), and σ(θ) is the partition's own, rescaled (:meth:`AsimovSample.cross_section`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from assay.inference.asymptotic import DEFAULT_CLS, cl_tag, limits_1d
from assay.inference.histograms import BinnedTemplates, Binning, binned_scan, fill_templates
from assay.inference.likelihood import Scan, check_luminosity, expected_scan
from assay.joint import JointQuantities
from assay.morphing import Morpher, as_thetas
from assay.store import EventStore

__all__ = ["AsimovSample", "interval_summary", "normalised"]


@dataclass(frozen=True, eq=False)  # holds arrays
class AsimovSample:
    """Weighted events for expected limits at ``theta_true``.

    Attributes:
        x: observables ``(n_events, n_obs)``.
        observables: their names.
        benchmark_weights: ``(n_events, n_benchmarks)`` in pb, as stored.
        joint: :class:`~assay.joint.JointQuantities` with the whole store's σ_k.
        theta_true: ``(n_params,)``, the point the Asimov data are generated at.
        luminosity: L in fb⁻¹.
    """

    x: np.ndarray
    observables: tuple[str, ...]
    benchmark_weights: np.ndarray
    joint: JointQuantities
    theta_true: np.ndarray
    luminosity: float

    def __post_init__(self) -> None:
        # float64 (no copy when already so): every sum over events below is then float64; a float32
        # column sum (numpy adds rows one by one along axis 0) of 10⁷ weights of 10⁻³ beside one of
        # 10⁴ gives 23147 instead of 20000
        object.__setattr__(self, "x", np.asarray(self.x, dtype=float))
        object.__setattr__(self, "benchmark_weights", np.asarray(self.benchmark_weights, dtype=float))

    @classmethod
    def from_store(
        cls,
        path: str | os.PathLike,
        events: np.ndarray,
        morpher: Morpher,
        *,
        theta_true: np.ndarray,
        luminosity: float,
    ) -> AsimovSample:
        """The events ``events`` (indices) of the store at ``path``, with the store's benchmark σ_k."""
        with EventStore(path) as store:
            chunk = store.take(np.sort(np.asarray(events)), fields=("x", "weights"))
            joint = JointQuantities(morpher, store.weights_sum())
            names = tuple(store.observables)
        theta = as_thetas(theta_true, morpher.n_params, "theta_true")[0]
        return cls(chunk.x, names, chunk.weights, joint, theta, check_luminosity(luminosity))

    # ---- weights and cross sections -------------------------------------------------------
    @property
    def weights(self) -> np.ndarray:
        """w_i(θ_true) in pb, ``(n_events,)``."""
        return self.joint.weights(self.benchmark_weights, self.theta_true)

    @property
    def scale(self) -> float:
        """σ(θ_true) / Σ_i w_i(θ_true): from this partition to the whole expected yield (≈ 1/f)."""
        return float(self.joint.cross_section(self.theta_true)) / float(self.weights.sum())

    def cross_section(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ) in pb of these events scaled to the whole yield, ``scale · Σ_i w_i(θ)``, ``(n_theta,)``.

        Equal to the store's σ(θ_true) at θ_true. Using the partition's own θ-dependence keeps the
        Asimov data self-consistent: with the exact r the expected −2Δlog L is minimal at θ_true
        (its gradient there is scale · Σ_i ∂w_i − scale · Σ_i ∂w_i = 0), whereas the store's
        σ(θ) would add the partition's statistical fluctuation as a linear term ∝ N.
        """
        thetas = as_thetas(theta, self.joint.n_params)
        return self.scale * self.joint.weights_on_grid(self.benchmark_weights, thetas).sum(axis=0)

    def cross_section_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇θ of :meth:`cross_section` at one θ ``(n_params,)``, in pb."""
        theta = as_thetas(theta, self.joint.n_params)[0]
        return (
            self.scale
            * self.joint.morpher.morphing_weight_gradients(theta)
            @ self.benchmark_weights.sum(axis=0)
        )

    def column(self, name: str) -> np.ndarray:
        """One observable by name, ``(n_events,)``."""
        if name not in self.observables:
            raise ValueError(f"observable {name!r}: not in the sample; it has {list(self.observables)}")
        return self.x[:, self.observables.index(name)]

    # ---- likelihood ratios ----------------------------------------------------------------
    def truth_log_ratio(self, theta: np.ndarray, benchmark_weights: np.ndarray | None = None) -> np.ndarray:
        """Exact log r(x_i|θ, θ_true) from the event weights, ``(n_theta, n_events)``.

        The joint log r (seed 000 backup); it is the true likelihood ratio only where x fixes the
        θ-dependent part of the parton configuration (parton level with every momentum observed).

        Args:
            theta: ``(n_theta, n_params)`` or ``(n_params,)``.
            benchmark_weights: other events' weights ``(n, n_benchmarks)`` in pb (observed data,
                pseudo-experiments); default: this sample's. σ(θ) is this sample's either way.
        """
        thetas = as_thetas(theta, self.joint.n_params)
        weights = self.benchmark_weights if benchmark_weights is None else benchmark_weights
        density = self.joint.weights_on_grid(weights, thetas).T / self.cross_section(thetas)[:, None]
        sigma_true = float(self.joint.cross_section(self.theta_true))
        reference = self.joint.weights(weights, self.theta_true) / sigma_true
        with np.errstate(divide="ignore", invalid="ignore"):  # the ratio: a negative-weight event's too
            return np.log(density / reference[None, :])

    def truth_score(self) -> np.ndarray:
        """Exact t(x_i|θ_true) = ∇w_i/w_i − ∇σ/σ from the event weights, ``(n_events, n_params)``,
        with this sample's σ(θ) (:meth:`cross_section`), so that Σ_i w_i t_i = 0 exactly.

        The joint score (seed 000 backup); the true score where x fixes the parton configuration,
        as for :meth:`truth_log_ratio`.
        """
        gradients = self.joint.morpher.morphing_weight_gradients(self.theta_true)  # (n_params, n_benchmarks)
        sigma = self.cross_section(self.theta_true[None])[0]
        grad = self.cross_section_gradient(self.theta_true)
        return (self.benchmark_weights @ gradients.T) / self.weights[:, None] - grad / sigma

    def ratio_scan(
        self,
        theta: np.ndarray,
        log_r: Callable[[np.ndarray], np.ndarray] | np.ndarray,
        *,
        theta_chunk: int = 32,
    ) -> Scan:
        """Expected −2Δlog L of a likelihood-ratio method: log r̂(x_i|θ, θ_true) ``(n_theta, n_events)``
        or a callable of θ, called with ``theta_chunk`` points at a time (memory ∝ chunk × n_events)."""
        return expected_scan(
            theta, log_r, self.weights, self.cross_section, self.luminosity,
            xsec_true=float(self.joint.cross_section(self.theta_true)), theta_chunk=theta_chunk,
        )  # fmt: skip

    # ---- histograms -----------------------------------------------------------------------
    def templates(self, binning: Binning, values: np.ndarray | None = None) -> BinnedTemplates:
        """Benchmark templates of ``binning`` scaled to the whole yield.

        Args:
            binning: the :class:`~assay.inference.histograms.Binning`.
            values: the binned quantity per event ``(n_events, n_dims)`` (e.g. SALLY's t̂);
                default: the observables named by the binning.
        """
        if values is None:
            values = np.column_stack([self.column(name) for name in binning.observables])
        filled = fill_templates(values, self.benchmark_weights, binning, self.joint.morpher)
        return BinnedTemplates(binning, filled.benchmark_sums * self.scale, filled.morpher)

    def binned_scan(self, theta: np.ndarray, templates: BinnedTemplates) -> Scan:
        """Expected −2Δlog L of a histogram analysis, Asimov counts ν(θ_true)."""
        asimov = templates.expected(self.theta_true, self.luminosity)
        return binned_scan(templates, theta, self.luminosity, asimov)

    def expectation_check(self, log_r: np.ndarray) -> np.ndarray:
        """R̂(θ) = Σ_i w_i(θ_true) r̂(x_i|θ, θ_true) / Σ_i w_i(θ_true), 1 for a perfect estimator.

        Args:
            log_r: ``(n_theta, n_events)``.

        Returns:
            ``(n_theta,)``; with the exact r this is (Σ_i w_i(θ)/σ(θ)) / (Σ_i w_i(θ_true)/σ(θ_true)),
            i.e. 1 up to the partition's statistical fluctuation (seed 000 calibration).
        """
        w = self.weights
        return np.exp(np.asarray(log_r, dtype=float)) @ w / w.sum()


def normalised(
    sample: AsimovSample, log_r: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """log r̂(x|θ, θ_true) − log R̂(θ), with R̂(θ) = :meth:`AsimovSample.expectation_check` on the sample itself.

    An estimated r̂ integrates to 1 over p(x|θ_true) only approximately; in the extended likelihood
    the error enters as N log R̂(θ), a term linear in θ near θ_true that is multiplied by the number
    of events (tens of thousands) and shifts the expected best fit by about
    R̂'/I. Dividing by R̂ measured on the Asimov events restores E[r̂] = 1 there, as the exact r
    has it by construction (seed 000 "Calibration and diagnostics"; the same normalisation the
    partition's σ(θ) gives the truth, :meth:`AsimovSample.cross_section`).
    """

    def calibrated(theta: np.ndarray) -> np.ndarray:
        values = np.asarray(log_r(theta), dtype=float)
        return values - np.log(sample.expectation_check(values))[:, None]

    return calibrated


def interval_summary(
    scans: Mapping[str, Scan], cls: Sequence[float] = DEFAULT_CLS
) -> dict[str, list[float | None]]:
    """``{"<param>_68": [lo, hi], "<param>_95": [lo, hi]}`` from 1D scans, one per parameter.

    The spans of the CL regions (lowest to highest edge) by :func:`~assay.inference.asymptotic.limits_1d`.
    An end where the region reaches the edge of the scan is ``None`` (JSON null): the limit lies
    outside the scanned range and the edge is not reported in its place; turn them into warnings
    (and rescan wider) with :func:`~assay.inference.asymptotic.open_ends`. "68" stands for one σ
    (q = 1) with the default ``cls`` (:func:`~assay.inference.asymptotic.cl_tag`).
    """
    out: dict[str, list[float | None]] = {}
    for name, scan in scans.items():
        result = limits_1d(scan, cls)
        for cl in cls:
            out[f"{name}_{cl_tag(cl)}"] = [None if b is None else float(b) for b in result.bounds(cl)]
    return out
