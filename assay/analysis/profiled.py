"""Profiled methods of ``assay limits``: the nuisances of ``config.systematics`` profiled (seed 003).

For every signal-strength analysis with a ``systematics`` section, ``assay limits`` adds

- ``truth_profiled``: the exact likelihood with the nuisances profiled; r_j and the shapes g_jk
  from the event weights (processes: the benchmarks); only where the simulator gives the exact
  likelihood of the observables (``has_truth``: not at WH's detector level, where the weights are
  those of the parton truth and the reconstructed event together);
- ``<mixture model>_profiled``: seed 003's mixture model's r_j with the exact G_jk and the exact or
  (``nuisances: true``) learned g_jk, plus the finite-training-statistics nuisances if configured;
- ``hist_<name>_profiled``: a 1D/2D histogram with the same nuisances, bins as the "events".

With ``interpolation: gollum`` every method's terms are GOLLUM's log-polynomial coefficients
(:class:`~assay.inference.log_polynomial.LogPolynomialTerms`), fitted in closed form to the single and
pairwise variations (:func:`gollum_terms`); a mixture model's learned ones come from its
:class:`~assay.estimators.nuisance_ratios.NuisanceRatios` trained with cross terms.

Each is a :class:`ProfiledMethod`: the per-event terms are computed once on the Asimov events
(:mod:`assay.analysis.systematics`), and :class:`~assay.inference.profile_likelihood.ProfileLikelihood` fits
(μ, α) with seed 003's vertical interpolation, its yield kept exact by renormalising each
process's interpolated shape on the Asimov events (the reference sample). A pseudo-experiment
slices the same terms by its rows and keeps the Asimov events as the reference sample.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import interpolate

from assay.analysis.build import asimov_rows, has_truth
from assay.analysis.methods import BinnedMethod, Dataset, Method
from assay.analysis.profiled_terms import (
    CALIBRATION_POINTS,
    ObservedTerms,
    binned_gollum_terms,
    gollum_terms,
    learned_shapes,
    rate_calibration,
)
from assay.analysis.scans import one_d_scans
from assay.analysis.systematics import (
    component_factors,
    process_terms,
    varied_benchmark_weights,
)
from assay.analysis.training_statistics import GRID_POINTS, ensemble_modes, with_training_statistics
from assay.config import RunConfig
from assay.estimators.mixture import MixtureModel
from assay.estimators.mixture_processes import process_matrix
from assay.estimators.nuisance_ratios import NuisanceRatios
from assay.exceptions import ConfigError, StoreError
from assay.inference.asimov import AsimovSample
from assay.inference.asymptotic import ONE_SIGMA, limits_1d
from assay.inference.calibration import RateCalibration
from assay.inference.likelihood import PB_TO_FB, Scan
from assay.inference.log_polynomial import LogPolynomialTerms
from assay.inference.profile_likelihood import ProfileLikelihood
from assay.inference.profile_terms import FitResult, ProcessCoefficients, ProfileTerms
from assay.inference.spurious_signal import SpuriousSignal
from assay.rundir import RunDir
from assay.store import EventStore

__all__ = [
    "ProfiledMethod",
    "VariedWeights",
    "nuisance_summary",
    "profiled_methods",
    "varied_weights",
    "varied_weights_at",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class VariedWeights:
    """Benchmark weights of the Asimov events, nominal ``(n, K)`` and at α_k = ±1 ``(n, n_syst, 2, K)``;
    with what made them: the components w_c ``(n, C)``, their factors F_c^± ``(n, n_syst, 2, C)`` and
    the linear map W_k = Σ_c a_kc w_c, ``mixing`` = a ``(K, C)`` (for GOLLUM's joint variations)."""

    nominal: np.ndarray
    varied: np.ndarray
    names: tuple[str, ...]
    components: np.ndarray | None = None
    factors: np.ndarray | None = None
    mixing: np.ndarray | None = None


def varied_weights(cfg: RunConfig, run: RunDir, sample: AsimovSample) -> VariedWeights:
    """The Asimov events' benchmark weights under every nuisance at ±1 (:func:`varied_weights_at`)."""
    return varied_weights_at(cfg, run, asimov_rows(cfg, run), sample.benchmark_weights)


def varied_weights_at(
    cfg: RunConfig, run: RunDir, rows: np.ndarray, benchmark_weights: np.ndarray
) -> VariedWeights:
    """Benchmark weights of the events ``rows`` (sorted) under every nuisance at ±1.

    The per-component factors of the simulator's variations (extra ``variations``, in the order
    recorded in the events' metadata) and of the normalisation nuisances multiply the events'
    ``components``; the benchmark weights follow through the linear map W_k = Σ_c a_kc w_c, found
    from the events themselves (it must reproduce their weights ``benchmark_weights``).

    Raises:
        StoreError: the events lack ``components`` (and ``variations`` where a shape nuisance
            needs them), or the weights are not linear in the components.
    """
    nuisances = list(cfg.systematics.nuisances) if cfg.systematics else []
    with EventStore(run.events) as store:
        if "components" not in store.extras_shapes:
            raise StoreError(
                f"{run.events}: no 'components' extra; systematics need the simulator's components"
            )
        fields = ["components"] + (["variations"] if "variations" in store.extras_shapes else [])
        extras = store.take(rows, fields=fields).extras
        run_config = (store.config or {}).get("run") or {}  # pipeline metadata
    stored = list(run_config.get("variations", []))
    components = extras["components"]
    names = _component_names(run_config, components.shape[1])
    coefficients, *_ = np.linalg.lstsq(components, benchmark_weights, rcond=None)  # (C, K)
    scale = np.abs(benchmark_weights).max()
    if np.abs(components @ coefficients - benchmark_weights).max() > 1e-8 * scale:
        raise StoreError(f"{run.events}: the benchmark weights are not a linear map of the components")
    try:
        factors = component_factors(nuisances, extras.get("variations"), stored, names, len(rows))
    except ValueError as exc:
        raise StoreError(f"{run.events}: {exc}") from exc
    varied = varied_benchmark_weights(components, factors, coefficients.T)
    names = tuple(n.name for n in nuisances)
    return VariedWeights(benchmark_weights, varied, names, components, factors, coefficients.T)


@dataclass(eq=False)
class ProfiledMethod(Method):
    """A profiled likelihood on precomputed terms of the Asimov events (or of histogram bins).

    Args:
        name: method name.
        terms: the terms on the Asimov events ``(n_events)`` (or bins), ν_j in expected events.
        weights: Asimov weights per event (bin) in expected events ``(n,)``.
        reference: u_i, weights making the events a sample of p_ref ``(n,)`` (the renormalisation).
        coefficients: f_j(θ) of the terms' processes.
        interpolation: ``vertical``, ``exponential`` or ``gollum`` (then ``terms`` are
            :class:`~assay.inference.log_polynomial.LogPolynomialTerms`).
        bins: for a histogram: (data → bin index per event) and the bins kept; None for events.
        model_asimov: the Asimov data are the model's own prediction at θ_true, α = 0: the
            reference events weighted by u_i p̂(x_i|θ_true)/p_ref(x_i) (seed 003's Asimov for an
            estimated ratio, which a fit returns to θ_true by construction); False: the events'
            exact weights at θ_true.
        theta_true: θ_true ``(n_params,)`` (for ``model_asimov``).
        max_points: a scan of more points is profiled at this many evenly spread ones (the ends
            included) and the rest interpolated by a cubic spline of the profiled q (each point is
            a fit of every nuisance; q is smooth on this scale).
        spurious: seed 003's spurious-signal term of the finite training statistics, or None
            (:mod:`assay.analysis.training_statistics`).
        observed: the terms of observed events, computed from x alone (:class:`ObservedTerms`), for
            a method whose terms do not need the simulator's per-event components; None: the
            method fits the Asimov data and toys only (``accepts_observed``).
        calibration: for an estimated likelihood, its rate calibration R̂(θ) on the events' exact
            weights at θ_true (:func:`rate_calibration`), applied to data it did not generate
            (observed events, toys drawn from the exact weights); its own model Asimov data and the
            coverage harness's toys (drawn from the model) need none.
    """

    name: str
    terms: ProfileTerms | LogPolynomialTerms
    weights: np.ndarray
    reference: np.ndarray
    coefficients: ProcessCoefficients
    interpolation: str = "vertical"
    bins: tuple | None = None
    model_asimov: bool = False
    theta_true: np.ndarray | None = None
    max_points: int = 41
    spurious: SpuriousSignal | None = None
    observed: ObservedTerms | None = None
    calibration: RateCalibration | None = None
    kind: str = "profiled"
    fits: dict = field(default_factory=dict, repr=False)

    def likelihood(self, data: Dataset) -> ProfileLikelihood:
        """The profiled likelihood of ``data``: the Asimov events, or a pseudo-experiment's rows."""
        options = self.options
        if data.asimov:
            weights = self._model_weights() if self.model_asimov else self.weights
            return ProfileLikelihood(self.terms, weights, self.coefficients, **options)
        if self.bins is not None:
            index, kept = self.bins
            bins = index(data)
            counts = np.bincount(bins[bins >= 0], minlength=int(kept.max()) + 1)[kept].astype(float)
            return ProfileLikelihood(self.terms, counts, self.coefficients, **options)
        if data.rows is None:
            if self.observed is None:
                raise ValueError(
                    f"{self.name}: observed data lack the simulator's per-event components its g_jk come "
                    "from; use a mixture model with `nuisances: true` or a histogram's profiled method"
                )
            part = self.observed(data.x)
        else:
            part = self.terms.subset(data.rows)
        terms = type(self.terms).concatenate(part, self.terms)
        n = part.n_events
        weights = np.concatenate([np.ones(n), np.zeros(len(self.weights))])
        reference = np.concatenate([np.zeros(n), self.reference])
        return ProfileLikelihood(terms, weights, self.coefficients, interpolation=self.interpolation,
                                 normalization=reference, spurious=self.spurious,
                                 calibration=self.calibration)  # fmt: skip

    @property
    def accepts_observed(self) -> bool:
        """Whether observed events (x only) can be fitted: histogram bins, or terms from x."""
        return self.bins is not None or self.observed is not None

    @property
    def options(self) -> dict:
        """The keyword arguments of this method's :class:`ProfileLikelihood` on its own events."""
        return {
            "interpolation": self.interpolation, "normalization": self.reference, "spurious": self.spurious
        }  # fmt: skip

    def _model_weights(self) -> np.ndarray:
        return self.model_weights(self.theta_true)

    def model_weights(self, theta: np.ndarray) -> np.ndarray:
        """u_i S_i(θ, 0): the model's Asimov weights at θ ``(n_params,)``, summing to ν(θ, 0)."""
        nominal = ProfileLikelihood(self.terms, self.weights, self.coefficients, **self.options)
        theta = torch.as_tensor(np.asarray(theta, dtype=float), dtype=torch.float64)
        with torch.no_grad():
            rates, total = nominal.event_rates(theta, torch.zeros(self.terms.n_syst, dtype=torch.float64))
        w = self.reference * rates.numpy()
        return w * (float(total) / w.sum())

    def scan(self, data: Dataset, sample: AsimovSample, theta: np.ndarray, axes: Sequence[int]) -> Scan:
        if len(axes) != 1:
            raise ValueError(f"{self.name}: profiled scans are one-dimensional, got axes {list(axes)}")
        likelihood = self.likelihood(data)
        best = likelihood.fit()
        if data.asimov:
            self.fits["asimov"] = (likelihood, best)
        values = theta[:, axes[0]]
        if len(values) <= self.max_points:
            return likelihood.scan(values, fit=best)
        coarse = np.linspace(values[0], values[-1], self.max_points)
        scan = likelihood.scan(coarse, fit=best)
        q = interpolate.CubicSpline(coarse, scan.minus_2_delta_log_l)(values)
        return Scan(theta, q - q.min(), theta[int(np.argmin(q))])

    def asimov_fit(self, sample: AsimovSample) -> tuple[ProfileLikelihood, FitResult]:
        """The Asimov fit (cached after a scan)."""
        if "asimov" not in self.fits:
            likelihood = self.likelihood(Dataset.from_sample(sample))
            self.fits["asimov"] = (likelihood, likelihood.fit())
        return self.fits["asimov"]


def _in_events(sample: AsimovSample) -> float:
    """pb per Asimov event weight → expected events: the partition's scale × L × 1000."""
    return sample.scale * sample.luminosity * PB_TO_FB


def profiled_methods(
    cfg: RunConfig,
    run: RunDir,
    sample: AsimovSample,
    models: Mapping[str, object],
    binned: Mapping[str, Method],
) -> dict[str, ProfiledMethod]:
    """``truth_profiled``, ``<mixture>_profiled`` and ``hist_<name>_profiled`` (module docstring);
    {} without a systematics section.

    Raises:
        ConfigError: systematics with more than one parameter of interest.
    """
    if cfg.systematics is None:
        return {}
    if len(cfg.parameters) != 1:
        raise ConfigError("systematics: profiled limits need exactly one parameter of interest for now")
    weights = varied_weights(cfg, run, sample)
    to_events = _in_events(sample)
    asimov = sample.weights * to_events
    interpolation = cfg.systematics.interpolation
    identity = np.eye(weights.nominal.shape[1])
    out: dict[str, ProfiledMethod] = {}
    gollum = interpolation == "gollum"
    flags = tuple(n.is_normalisation and n.constraint == "gaussian" for n in cfg.systematics.nuisances)
    if gollum and any(flags):
        raise ConfigError(
            "systematics: interpolation gollum is log-polynomial in α; a normalisation with constraint: "
            "gaussian (linear in α) needs interpolation vertical or exponential"
        )

    def linear(terms: ProfileTerms) -> ProfileTerms:  # the Gaussian-constrained normalisations
        return replace(terms, linear_yields=flags)

    if has_truth(cfg):  # as `truth`: at detector level the weights are those of (parton truth, x)
        exact = linear(process_terms(weights.nominal, weights.varied, weights.names, to_events=to_events))
        if gollum:
            exact = gollum_terms(exact, weights, identity)
        out["truth_profiled"] = ProfiledMethod(
            "truth_profiled", exact, asimov, weights.nominal.sum(axis=1),
            ProcessCoefficients(sample.joint.morpher, identity), interpolation,
        )  # fmt: skip
    for name, model in models.items():
        if not isinstance(model, MixtureModel):
            continue
        kind = cfg.systematics.training_statistics
        if kind != "none" and model.n_ensemble < 2:
            raise ConfigError(
                f"systematics.training_statistics: {kind} needs an ensemble; model {name!r} has "
                f"n_ensemble = {model.n_ensemble} (set training.{name}.n_ensemble >= 2 and retrain)"
            )
        _, matrix = process_matrix(model.processes, model.benchmarks_)
        nominal, varied = weights.nominal @ matrix.T, _processes(weights.varied, matrix)
        reference = _reference(model, nominal)
        ratios = model.process_ratios(sample.x).mean
        terms = linear(process_terms(nominal, varied, weights.names, to_events=to_events, reference=reference,
                                     ratios=ratios))  # fmt: skip
        if gollum:
            terms = gollum_terms(terms, weights, matrix)
        coefficients = ProcessCoefficients(sample.joint.morpher, matrix)
        learned = run.model(name) / "nuisances"
        members = model.member_log_ratios(sample.x) if kind != "none" else None
        span = one_d_scans(cfg, sample.theta_true)[0].values[[0, -1]]
        grid, fine = np.linspace(*span, GRID_POINTS), np.linspace(*span, CALIBRATION_POINTS)
        variants = {}
        nuisance_ratios = NuisanceRatios.load(learned) if learned.is_dir() else None
        if nuisance_ratios is not None:  # the model's own g_jk(x, ±1); the exact ones stay as a cross-check
            variants[f"{name}_profiled_exact_g"] = terms
            terms = learned_shapes(terms, nuisance_ratios, sample.x, model)
        variants[f"{name}_profiled"] = terms
        for label, chosen in variants.items():
            plain = ProfiledMethod(label, chosen, asimov, reference, coefficients, interpolation,
                                   model_asimov=True, theta_true=sample.theta_true)  # fmt: skip
            with_stats = with_training_statistics(plain, kind, members, grid)
            calibration = rate_calibration(with_stats, sample.theta_true, fine)
            out[label] = replace(with_stats, calibration=calibration)
        if nuisance_ratios is not None and isinstance(terms, ProfileTerms):  # g_jk from x: observed data work
            scale = ratios @ reference / reference.sum()  # process_terms' E_ref[r̂_j]
            projection = ensemble_modes(members, projection=True)[1] if kind == "ensemble" else None
            observed = ObservedTerms(model, nuisance_ratios, out[f"{name}_profiled"].terms, scale,
                                     projection)  # fmt: skip
            out[f"{name}_profiled"] = replace(out[f"{name}_profiled"], observed=observed)
    for name, method in binned.items():
        if not (isinstance(method, BinnedMethod) and method.binning is not None):
            continue
        binning = method.binning
        data = Dataset.from_sample(sample)

        def index(d: Dataset, method: BinnedMethod = method) -> np.ndarray:
            return method.binning.bin_index(method.values(d))

        bins = index(data)
        n_bins = int(np.prod([len(e) - 1 for e in binning.edges]))
        nominal_b, varied_b, kept = _binned(weights.nominal, weights.varied, bins, n_bins)
        terms = linear(process_terms(nominal_b, varied_b, weights.names, to_events=to_events))
        if gollum:
            terms = binned_gollum_terms(terms, weights, bins, n_bins, kept)
        counts = np.bincount(bins[bins >= 0], weights=asimov[bins >= 0], minlength=n_bins)[kept]
        coefficients = ProcessCoefficients(sample.joint.morpher, identity)
        out[f"{name}_profiled"] = ProfiledMethod(
            f"{name}_profiled", terms, counts, nominal_b.sum(axis=1), coefficients, interpolation,
            bins=(index, kept),
        )  # fmt: skip
    return out


def _processes(varied: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Process weights at ±1 ``(n, n_syst, 2, n_proc)`` from benchmark weights at ±1."""
    return varied @ matrix.T


def _reference(model: MixtureModel, nominal: np.ndarray) -> np.ndarray:
    """W_ref per event: the model's reference process, or the sum of its processes."""
    if model.reference is None:
        return nominal.sum(axis=1)
    return nominal[:, list(model.processes_).index(model.reference)]


def _binned(nominal: np.ndarray, varied: np.ndarray, bins: np.ndarray, n_bins: int) -> tuple:
    inside = bins >= 0
    sums = np.zeros((n_bins, nominal.shape[1]))
    np.add.at(sums, bins[inside], nominal[inside])
    varied_sums = np.zeros((n_bins, *varied.shape[1:]))
    np.add.at(varied_sums, bins[inside], varied[inside])
    kept = np.flatnonzero(sums.sum(axis=1) > 0)
    return sums[kept], varied_sums[kept], kept


def nuisance_summary(
    method: ProfiledMethod, sample: AsimovSample, values: np.ndarray
) -> dict[str, dict[str, float]]:
    """Post-fit α̂, σ, pull and impacts of every nuisance on the Asimov data, and the 68% interval's
    width with that nuisance fixed at α̂ (seed 003's "Impact of nuisance parameters" table;
    ``all``: every nuisance fixed, the statistical width; ``none``: nothing fixed, on the same
    13 points), over the scan ``values``.

    Returns:
        nuisance → quantity → value (:attr:`assay.results.LevelResults.systematics`).
    """
    likelihood, fit = method.asimov_fit(sample)
    pulls, impacts = likelihood.pulls(fit), likelihood.impacts(fit)
    sigma = fit.errors[likelihood.n_poi :]
    coarse = np.linspace(values[0], values[-1], min(len(values), 13))  # enough for a 68% width

    def width(fixed: Mapping[str, float]) -> float:
        result = limits_1d(likelihood.scan(coarse, fixed_alpha=fixed), (ONE_SIGMA,))
        lo, hi = result.bounds(ONE_SIGMA)
        return float("nan") if lo is None or hi is None else hi - lo

    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(method.terms.names):
        out[name] = {
            "alpha_hat": float(fit.alpha_hat[k]), "sigma": float(sigma[k]), "pull": float(pulls[k]),
            "impact_hessian": float(impacts.hessian[k]), "impact_profiled": float(impacts.covariance[k]),
            "impact_up": float(impacts.up[k]), "impact_down": float(impacts.down[k]),
            "width_68_fixed": width(fit.nuisances([name])),
        }  # fmt: skip
    out["all"] = {"width_68_fixed": width(fit.nuisances())}
    out["none"] = {"width_68_fixed": width({})}  # the full result on the same points (seed 003's table)
    return out


def _component_names(run_config: dict, n: int) -> tuple[str, ...]:
    """Names a normalisation's ``components:`` can use: the off-shell simulator's S, I, B_gg, B_qq,
    else the indices 0, 1, ... (an imported store's morphing components, for instance)."""
    from assay.simulators.offshell import COMPONENTS

    if (run_config.get("simulator") or {}).get("kind") == "offshell" and n == len(COMPONENTS):
        return COMPONENTS
    return tuple(map(str, range(n)))
