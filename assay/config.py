"""Run configuration: pydantic models loaded from YAML, validated once.

A config file describes one analysis: parameters and benchmarks, morphing, the
simulator, sampling of training sets, training and inference. Every model forbids
unknown keys; :func:`load_config` turns any problem into one :class:`ConfigError`
naming the file, the key path (``benchmarks[2].theta``) and its line.

Example:
    >>> cfg = RunConfig.model_validate({
    ...     "parameters": [{"name": "a", "range": [-1, 1]}],
    ...     "simulator": {"kind": "gaussian_toy", "n_events": 1000},
    ... })
    >>> cfg.parameter_space().names
    ['a']
"""

from __future__ import annotations

import itertools
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from assay.exceptions import ConfigError
from assay.parameters import (
    FixedPrior,
    GaussianPrior,
    GridPrior,
    Parameter,
    ParameterSpace,
    Prior,
    UniformPrior,
)

__all__ = [
    "BITModelConfig",
    "ConfigWarning",
    "EventsFileConfig",
    "InferenceConfig",
    "MixtureModelConfig",
    "ModelConfig",
    "NeuralModelConfig",
    "NuisanceConfig",
    "ParallelConfig",
    "RunConfig",
    "SystematicsConfig",
    "check_benchmarks",
    "config_from_dict",
    "load_config",
    "root_parameters",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- parameters ---------------------------------------------------------------------
class ParameterConfig(_Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    range: tuple[float, float]
    unit: str = ""
    sm: float = 0.0
    latex: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ParameterConfig:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range must have low < high, got {list(self.range)}")
        return self


class BenchmarkConfig(_Model):
    name: str
    theta: dict[str, float] = Field(description="parameter -> value; missing parameters take their SM value")


# ---- priors and θ specifications ----------------------------------------------------
class GaussianPriorConfig(_Model):
    kind: Literal["gaussian"]
    mean: float | list[float] = 0.0
    std: float | list[float]


class UniformPriorConfig(_Model):
    kind: Literal["uniform"]
    low: float | list[float]
    high: float | list[float]


class GridPriorConfig(_Model):
    kind: Literal["grid"]
    low: float | list[float]
    high: float | list[float]
    n_points: int | list[int]


class FixedPriorConfig(_Model):
    kind: Literal["fixed"]
    thetas: list[list[float]]


PriorConfig = Annotated[
    GaussianPriorConfig | UniformPriorConfig | GridPriorConfig | FixedPriorConfig, Field(discriminator="kind")
]
ThetaConfig = str | dict[str, float] | PriorConfig
"""A benchmark name, an explicit point ``{parameter: value}``, or a prior."""


def _prior(cfg: PriorConfig, n_params: int) -> Prior:
    if isinstance(cfg, GaussianPriorConfig):
        return GaussianPrior(cfg.mean, cfg.std, n_params)
    if isinstance(cfg, UniformPriorConfig):
        return UniformPrior(cfg.low, cfg.high, n_params)
    if isinstance(cfg, GridPriorConfig):
        return GridPrior(cfg.low, cfg.high, cfg.n_points, n_params)
    return FixedPrior(tuple(tuple(t) for t in cfg.thetas))


# ---- morphing and simulator --------------------------------------------------------
class MorphingConfig(_Model):
    max_power: int | float | list[int | float] = 2
    max_overall_power: int | float | None = None
    power_step: Literal[1, 0.5] | list[Literal[1, 0.5]] = Field(
        1,
        description="exponent step per parameter: 1 (polynomial) or 0.5 (polynomial in √θ, a signal "
        "strength with interference: w(μ) = μ w_S + √μ w_I + w_B; the parameter must be >= 0)",
    )
    optimize_basis: bool = Field(True, description="choose the benchmarks missing from `benchmarks`")
    basis_prior: PriorConfig | None = Field(
        None, description="prior for the basis optimisation; default: uniform over the parameter ranges"
    )
    n_basis_trials: int = Field(200, ge=1)


class GaussianToyConfig(_Model):
    kind: Literal["gaussian_toy"]
    n_events: int = Field(gt=0)
    n_obs: int = Field(2, ge=1)
    theta_gen: str | dict[str, float] = Field("sm", description="benchmark name or point")
    smearing: float = Field(0.5, ge=0)
    batch_size: int = Field(100_000, gt=0)


class DetectorConfig(_Model):
    """Parametrised detector and seed 000's selection (:class:`assay.simulators.detector.DetectorModel`)."""

    ideal: bool = Field(False, description="no smearing, all objects identified (selection still applied)")
    b_tag_efficiency: float = Field(0.77, ge=0, le=1)
    c_mistag: float = Field(0.125, ge=0, le=1, description="c-jet tag rate (backgrounds; MV2c10, Delphes)")
    light_mistag: float = Field(1 / 380, ge=0, le=1, description="light-jet tag rate (backgrounds)")
    lepton_efficiency: float = Field(0.95, ge=0, le=1)
    met_soft_resolution: float = Field(10.0, ge=0, description="GeV per MET component")


class ShowerConfig(_Model):
    """Pythia 8 parton shower + hadronisation, anti-kT R = 0.4 jets (needs ``assay[jets]``)."""

    mpi: bool = Field(True, description="multiparton interactions (~8× slower)")
    hadronize: bool = True


class BackgroundConfig(_Model):
    """A seed-000 background generated by Pythia 8 and put through the selection.

    ``level: hard`` (default): Pythia's hard process (W + jets: plus its parton shower) mapped onto the
    signal's parametrised detector with b-, c- and light-jet tag rates
    (:mod:`assay.simulators.wh_backgrounds`; needs ``simulator.detector``); ``shower``: shower,
    hadronisation, anti-kT jets and truth b-tagging (:mod:`assay.simulators.pythia`, ~10× slower).
    """

    process: Literal["ttbar", "single_top_s", "single_top_t", "wjets"]
    n_events: int = Field(gt=0)
    level: Literal["hard", "shower"] = "hard"
    mpi: bool = Field(False, description="multiparton interactions (level: shower only)")
    batch_size: int = Field(20_000, gt=0)


class WHConfig(_Model):
    """Embedded p p → W h → ℓ ν b b̄ simulator (seed 000), exact LO matrix element."""

    kind: Literal["wh"]
    n_events: int = Field(gt=0)
    theta_gen: str | dict[str, float] = Field("sm", description="benchmark name or point for VEGAS")
    sqrt_s: float = Field(13000.0, gt=0, description="GeV")
    charges: list[Literal[1, -1]] = [1, -1]
    lepton_flavours: list[Literal[11, 13]] = [11, 13]
    ud_only: bool = Field(False, description="only u d̄ / d ū initial states (seed 000 validation)")
    scale: Literal["shat", "mt_min", "ht_half"] = "shat"
    br_h_bb: float = Field(0.5824, gt=0, le=1)
    lambda_np: float = Field(1000.0, gt=0, description="Λ in GeV")
    detector: DetectorConfig | None = Field(None, description="None: parton level, all momenta observed")
    shower: ShowerConfig | None = Field(
        None, description="shower + jets instead of the parametrised detector"
    )
    backgrounds: list[BackgroundConfig] = []
    batch_size: int = Field(100_000, gt=0)


class OffshellConfig(_Model):
    """Embedded p p → 4ℓ off-shell Higgs simulator (seeds 001, 003, 004): gg → H* → ZZ → 4ℓ signal,
    gg → ZZ continuum, their interference and q q̄ → ZZ, with the exact per-event weights.

    The config has one parameter, the signal strength (any name, e.g. ``mu``), with
    ``morphing: {max_power: 1, power_step: 0.5}`` and at least three benchmarks.
    """

    kind: Literal["offshell"]
    n_events: int = Field(gt=0)
    theta_gen: str | dict[str, float] = Field("sm", description="unused (phase space is sampled directly)")
    sqrt_s: float = Field(13000.0, gt=0, description="GeV")
    m4l_range: tuple[float, float] = Field((220.0, 1000.0), description="m4ℓ window, GeV")
    channels: list[Literal["2e2mu", "4e", "4mu"]] = Field(["2e2mu", "4e", "4mu"], min_length=1)
    lepton_cuts: bool = Field(True, description="fiducial cuts p_T(ℓ) > 7 GeV, |η(ℓ)| < 2.5")
    processes: list[Literal["gg", "qq"]] = Field(["gg", "qq"], min_length=1)
    batch_size: int = Field(100_000, gt=0)

    @model_validator(mode="after")
    def _window(self) -> OffshellConfig:
        if not 0 < self.m4l_range[0] < self.m4l_range[1]:
            raise ValueError(f"m4l_range must have 0 < low < high, got {list(self.m4l_range)}")
        return self


class EventsFileConfig(_Model):
    """Events already in an EventStore: ``assay import-lhe``, ``assay import-madminer`` or another run's
    ``events.h5``. ``assay run`` takes them instead of generating; the store's parameters must be the
    config's (same names, in order) and every benchmark of the config one of the store's, at the same θ.
    A relative ``path`` is relative to the config file's folder."""

    kind: Literal["events"]
    path: str = Field(min_length=1, description="the EventStore file (.h5)")


SimulatorConfig = Annotated[
    GaussianToyConfig | WHConfig | OffshellConfig | EventsFileConfig, Field(discriminator="kind")
]


# ---- sampling ----------------------------------------------------------------------
class SplitConfig(_Model):
    train: float = Field(0.6, ge=0, le=1)
    validation: float = Field(0.2, ge=0, le=1)
    test: float = Field(0.2, ge=0, le=1)

    @model_validator(mode="after")
    def _sum(self) -> SplitConfig:
        if not np.isclose(self.train + self.validation + self.test, 1.0):
            raise ValueError("train + validation + test must sum to 1")
        return self


class _SetConfig(_Model):
    name: str
    n_samples: int = Field(gt=0)
    partitions: list[Literal["train", "validation", "test"]] = ["train", "validation"]


class LocalScoreSetConfig(_SetConfig):
    kind: Literal["local_score"]
    theta_ref: str | dict[str, float] = "sm"


class RatioSetConfig(_SetConfig):
    kind: Literal["ratio"]
    theta0: ThetaConfig
    theta1: ThetaConfig = "sm"
    n_theta0: int = Field(1000, gt=0)


class PlainSetConfig(_SetConfig):
    kind: Literal["plain"]
    theta: ThetaConfig
    n_theta: int = Field(1000, gt=0)


TrainingSetConfig = Annotated[
    LocalScoreSetConfig | RatioSetConfig | PlainSetConfig, Field(discriminator="kind")
]


class SamplingConfig(_Model):
    split: SplitConfig = SplitConfig()
    allow_negative_weights: bool = False
    sets: list[TrainingSetConfig] = []


# ---- training: named models ---------------------------------------------------------
NEURAL_METHODS = ("sally", "carl", "rolr", "alice", "alices", "rascal", "cascal", "nde", "scandal")
"""``method`` names of the neural estimators (:data:`assay.estimators.METHODS` adds ``bit``)."""


class NeuralModelConfig(_Model):
    """A neural estimator or ensemble (``assay train``; :mod:`assay.training`).

    Settings a method does not use are ignored (``alpha`` outside the score-augmented methods,
    the flow settings outside ``nde`` / ``scandal``, ``morphing_aware`` is refused outside the
    likelihood-ratio methods). ``nde`` and ``scandal`` train on a ``kind: plain`` set.
    """

    method: Literal[NEURAL_METHODS]  # type: ignore[valid-type]  # Literal of the tuple's names
    training_set: str | list[str] | None = Field(
        None,
        description="sampling set name; a list of n_ensemble names trains one member per set; "
        "None: the set named like the model, else like the method, else the only set",
    )
    hidden: list[int] | None = Field(
        None,
        description="hidden widths; None: the method's default ([100, 100]; nde/scandal: [64, 64] per "
        "flow transformation's conditioner)",
    )
    activation: Literal["relu", "tanh", "silu", "swish", "softplus"] | None = Field(
        None, description="None: the method's default (tanh; nde/scandal: relu)"
    )
    morphing_aware: bool = Field(
        False,
        description="likelihood-ratio methods: the morphing-aware network (arXiv:2410.07315), θ "
        "entering only through the morphing weights of the run's basis.json",
    )
    alpha: float | None = Field(
        None,
        ge=0,
        description="weight of the score term (alices, rascal, cascal, scandal); None: the method's "
        "default (5; scandal: 1)",
    )
    flow: Literal["nsf", "maf"] = Field(
        "nsf", description="nde/scandal: neural spline flow or masked autoregressive flow (zuko)"
    )
    transforms: int = Field(3, ge=1, description="nde/scandal: autoregressive transformations of the flow")
    bins: int = Field(8, ge=2, description="nde/scandal with flow nsf: spline bins per transformation")
    observables: list[str] | None = Field(
        None,
        description="nde/scandal: the observables the flow models (they must not be functions of each "
        "other: a density needs independent coordinates); None: every non-constant one",
    )
    bounds: dict[str, tuple[float, float]] = Field(
        {},
        description="nde/scandal: observable -> [lo, hi] of bounded observables (logit-transformed), "
        "besides those detected from the training set (cosines in [-1, 1], angles in [0, π] or [-π, π])",
    )
    detect_bounds: bool = Field(True, description="nde/scandal: detect bounded observables")
    log_positive: bool = Field(
        True, description="nde/scandal: positive observables spanning over a decade (max/min > 10) in log x"
    )
    epochs: int = Field(50, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: tuple[float, float] = (1e-3, 1e-4)
    optimizer: Literal["amsgrad", "adam", "nadam"] = "amsgrad"
    validation_split: float = Field(0.25, ge=0, lt=1)
    early_stopping: bool = True
    patience: int = Field(10, ge=1)
    clip_grad_norm: Annotated[float, Field(gt=0)] | Literal["auto"] | None = Field(
        "auto",
        description="auto: 1.0 for methods with a score term (ALICES, RASCAL, CASCAL, SCANDAL), else none",
    )
    n_ensemble: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(
        None, ge=1, description="torch threads; None: torch's default, 1 per Dask worker for ensembles"
    )

    @model_validator(mode="after")
    def _one_set_per_member(self) -> NeuralModelConfig:
        if isinstance(self.training_set, list) and len(self.training_set) != self.n_ensemble:
            raise ValueError(
                f"training_set lists {len(self.training_set)} sets; a list needs one per member "
                f"(n_ensemble = {self.n_ensemble})"
            )
        return self


class BITModelConfig(_Model):
    """Boosted Information Trees (``method: bit``; :class:`assay.bit.BoostedInformationTree`).

    BIT fits the weighted events of the train partition of ``events.h5`` (no training set).
    """

    method: Literal["bit"]
    n_trees: int = Field(100, ge=1, description="boosting iterations")
    max_depth: int = Field(4, ge=1, le=14, description="depth of each tree (seed 002: 4)")
    learning_rate: float = Field(0.2, gt=0, le=1, description="η, the weight of each tree")
    min_size: int = Field(50, ge=1, description="minimal number of events in a leaf")
    min_weight: float = Field(0.0, ge=0, description="minimal Σ w in a leaf, pb")
    positive: bool = Field(False, description="seed 002's positivity option: R(x|θ) > 0 for every θ")
    theta_ref: str | dict[str, float] = Field(
        "sm", description="expansion point θ_ref of R(x|θ): benchmark name or point"
    )
    max_events: int | None = Field(
        None, gt=0, description="fit at most this many train events (a seeded random subset); None: all"
    )


class MixtureModelConfig(_Model):
    """Seed 003's search-oriented mixture model (``method: mixture``;
    :class:`assay.estimators.mixture.MixtureModel`): one weighted classifier per process against a
    reference, p(x|θ)/p_ref(x) = Σ_j f_j(θ) ν_j r_j(x) / ν(θ) with f_j(θ) analytic from the morphing.

    It trains on the weighted events of the train partition of ``events.h5`` (no training set).
    """

    method: Literal["mixture"]
    processes: dict[str, str | dict[str, float]] | None = Field(
        None,
        description="process name -> a benchmark name or {benchmark: coefficient} (one process per "
        "benchmark, linearly independent); None: the benchmarks themselves",
    )
    reference: str | None = Field(None, description="the process that is p_ref; None: the sum of all")
    n_ensemble: int = Field(5, ge=1, description="Poisson(1)-bootstrap members per classifier (seed 003)")
    hidden: list[int] = [64, 64]
    activation: Literal["relu", "tanh", "silu", "swish", "softplus"] = "relu"
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(512, gt=0)
    lr: tuple[float, float] = (1e-3, 1e-4)
    optimizer: Literal["amsgrad", "adam", "nadam"] = "amsgrad"
    validation_split: float = Field(0.25, ge=0, lt=1)
    early_stopping: bool = True
    patience: int = Field(5, ge=1)
    max_events: int | None = Field(
        None, gt=0, description="train on at most this many train events (a seeded random subset); None: all"
    )
    threads: int | None = Field(None, ge=1, description="torch threads; None: torch's default")
    nuisances: bool = Field(
        False,
        description="also learn each process's shape ratios g_jk(x, ±1) of config.systematics (one "
        "network per process, GOLLUM's form); the profiled method then uses them instead of the exact ones",
    )


ModelConfig = Annotated[
    NeuralModelConfig | BITModelConfig | MixtureModelConfig, Field(discriminator="method")
]
"""One named model of the ``training`` mapping, tagged by ``method``."""


ONE_SIGMA = 0.6826894921370859  # χ²₁ CDF at 1 (assay.inference.asymptotic.ONE_SIGMA): q_crit = 1


def _lower_methods(data: Any) -> Any:
    """``method`` names are case-insensitive (``ALICES`` → ``alices``); the single-model form of
    earlier versions gets a hint."""
    if isinstance(data, dict) and isinstance(data.get("method"), str):
        raise ValueError(
            "training is a mapping of named models: write "
            f"`training: {{{data['method'].lower()}: {{method: {data['method'].lower()}, ...}}}}`"
        )
    if isinstance(data, dict):
        return {
            name: {**m, "method": m["method"].lower()}
            if isinstance(m, dict) and isinstance(m.get("method"), str)
            else m
            for name, m in data.items()
        }
    return data


# ---- inference ------------------------------------------------------------------------
class ScanConfig(_Model):
    """A 1D scan of one parameter, the others at ``inference.theta_true``."""

    parameter: str
    range: tuple[float, float]
    n_points: int = Field(121, ge=4)

    @model_validator(mode="after")
    def _ordered(self) -> ScanConfig:
        if not self.range[0] < self.range[1]:
            raise ValueError(f"range must have low < high, got {list(self.range)}")
        return self


class GridConfig(_Model):
    """A 2D grid of two parameters, the others at ``inference.theta_true``."""

    parameters: tuple[str, str]
    ranges: tuple[tuple[float, float], tuple[float, float]]
    n_points: int = Field(35, ge=4, description="points per axis")

    @model_validator(mode="after")
    def _ordered(self) -> GridConfig:
        if self.parameters[0] == self.parameters[1]:
            raise ValueError(f"parameters must differ, got {list(self.parameters)}")
        if not all(lo < hi for lo, hi in self.ranges):
            raise ValueError(f"ranges must have low < high, got {[list(r) for r in self.ranges]}")
        return self


class HistogramConfig(_Model):
    """A histogram baseline: the binned Poisson likelihood of one or two observables."""

    observables: list[str] = Field(min_length=1, max_length=2)
    edges: list[list[float]] = Field(description="bin edges per observable (.inf allowed)")
    name: str | None = Field(None, description="default: the observables joined by ' x '")
    axis_label: str | None = Field(None, description="x-axis label of its plot (LaTeX); default: the name")

    @model_validator(mode="after")
    def _one_edge_list_each(self) -> HistogramConfig:
        if len(self.edges) != len(self.observables):
            n_obs, n_edges = len(self.observables), len(self.edges)
            raise ValueError(f"edges: one list per observable ({n_obs}), got {n_edges}")
        for e in self.edges:
            if len(e) < 2 or any(b <= a for a, b in itertools.pairwise(e)):
                raise ValueError(f"edges must be increasing with at least 2 entries, got {e}")
        return self

    @property
    def label(self) -> str:
        return self.name or " x ".join(self.observables)


class InferenceEventsConfig(_Model):
    """Which events form the Asimov data (and the pool of pseudo-experiments)."""

    partition: Literal["train", "validation", "test"] = Field("test", description="no estimator saw 'test'")
    max_events: int | None = Field(25_000, gt=0, description="a seeded random subset of at most this many")


class InferenceConfig(_Model):
    """Limits (``assay limits``; :mod:`assay.analysis`)."""

    luminosity_ifb: float = Field(300.0, gt=0, description="integrated luminosity L in fb^-1")
    theta_true: str | dict[str, float] = Field(
        "sm", description="Asimov point and reference θ of the likelihood ratios: benchmark name or point"
    )
    events: InferenceEventsConfig = InferenceEventsConfig()
    scans: list[ScanConfig] = Field(
        [], description="1D scans; none: one per parameter over its range, 121 points"
    )
    grids: list[GridConfig] = []
    confidence_levels: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [ONE_SIGMA, 0.95], description="CLs of the intervals; default one σ (q = 1 in 1D) and 95%"
    )
    models: list[str] | None = Field(None, description="trained models to compare; None: every model")
    truth: bool = Field(True, description="the exact likelihood, where the simulator provides it")
    rate: bool = Field(True, description="the event count alone")
    histograms: list[HistogramConfig] = []
    score_bins: tuple[int, int] = Field(
        (25, 8), description="score models (SALLY): bins of each t̂ component in 1D, per axis in 2D (seed 000)"
    )
    max_extensions: int = Field(
        3, ge=0, description="an interval reaching a scan edge doubles the scan up to this many times"
    )


# ---- systematic uncertainties -------------------------------------------------------------
class NuisanceConfig(_Model):
    """One nuisance parameter α_k with a unit Gaussian constraint (seed 003).

    Either a shape (and rate) variation the simulator provides (``variation``, default the name:
    exact per-event weight factors at α = ±1), or a normalisation uncertainty (``normalisation``:
    the relative ±1σ change, log-normal: weights × (1 + u)^α, or with ``constraint: gaussian``
    weights × (1 + u α)) on some or all ``components``.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    variation: str | None = Field(None, description="the simulator's variation; None: the name")
    normalisation: float | None = Field(None, gt=0, lt=1, description="relative ±1σ rate change")
    constraint: Literal["lognormal", "gaussian"] = Field(
        "lognormal",
        description="a normalisation's form: lognormal, weights × (1 + u)^α; gaussian, weights × (1 + u α) "
        "(linear, pyhf's lumi; not with interpolation gollum)",
    )
    components: list[str] | None = Field(
        None, description="normalisation: the simulator components it scales (None: all)"
    )

    @property
    def is_normalisation(self) -> bool:
        return self.normalisation is not None

    @property
    def simulator_variation(self) -> str:
        return self.variation or self.name

    @model_validator(mode="after")
    def _one_kind(self) -> NuisanceConfig:
        if self.normalisation is not None and self.variation is not None:
            raise ValueError("give either `variation` (a shape variation) or `normalisation`, not both")
        if self.components is not None and self.normalisation is None:
            raise ValueError("`components` only applies to a `normalisation` uncertainty")
        if self.constraint == "gaussian" and self.normalisation is None:
            raise ValueError("`constraint: gaussian` only applies to a `normalisation` uncertainty")
        return self


class SystematicsConfig(_Model):
    """Nuisance parameters profiled in ``assay limits`` (the ``*_profiled`` methods)."""

    nuisances: list[NuisanceConfig] = Field(min_length=1)
    interpolation: Literal["vertical", "exponential", "gollum"] = Field(
        "vertical",
        description="per-event and rate interpolation in α: seed 003's vertical (6th-order polynomial "
        "for |α| ≤ 1, exponential outside, C² at |α| = 1), exponential (g(±1)^|α|), or gollum (GOLLUM, "
        "arXiv:2505.05544: log g = Σ_A Δ_A α^A over α_k, α_k², α_k α_l, fitted to the single and pairwise "
        "variations, built as products of the per-component factors)",
    )
    training_statistics: Literal["none", "spurious_signal", "ensemble"] = Field(
        "none",
        description="finite-training-statistics nuisances of a mixture model's profiled method: seed 003's "
        "spurious signal f_j(μ + α Δμ̂(μ)) (`training_statistics`), or the ensemble's principal modes "
        "as shape nuisances (`training_statistics_1`, ...); needs n_ensemble >= 2",
    )

    @model_validator(mode="after")
    def _unique(self) -> SystematicsConfig:
        names = [n.name for n in self.nuisances]
        reserved = [n for n in names if n.startswith("training_statistics")]
        if reserved:
            raise ValueError(f"nuisance names starting with training_statistics are reserved, got {reserved}")
        if len(set(names)) != len(names):
            raise ValueError(f"nuisance names must be unique, got {names}")
        return self

    def shape_variations(self) -> list[str]:
        """The simulator variations the nuisances need, in order."""
        return [n.simulator_variation for n in self.nuisances if not n.is_normalisation]


# ---- scale-out ----------------------------------------------------------------------
class ParallelConfig(_Model):
    """Where the parallel work runs (generation, ensemble members, grid evaluation, pseudo-experiments).

    ``scheduler: local`` starts a ``LocalCluster`` of ``workers`` single-threaded processes; an
    address (``tcp://host:8786``) connects to a running scheduler; ``slurm`` / ``htcondor`` submit
    ``workers`` jobs through dask-jobqueue (the ``cluster`` extra) with ``cores``, ``memory`` and
    ``walltime`` per job.
    """

    scheduler: str = Field(
        "local", description="local | slurm | htcondor | a scheduler address (tcp://host:port)"
    )
    workers: int | None = Field(None, ge=1, description="worker processes or jobs (local default: the cores)")
    cores: int = Field(1, ge=1, description="cores per job (slurm/htcondor)")
    memory: str = Field("4GB", description="memory per job (slurm/htcondor), e.g. 4GB")
    walltime: str | None = Field(None, description="per job, e.g. 02:00:00 (slurm) or 2h (htcondor)")
    queue: str | None = Field(None, description="SLURM partition (slurm); ignored by htcondor")
    account: str | None = Field(None, description="SLURM account / project to charge")
    job_extra: list[str] = Field([], description="extra scheduler directives, one per line of the job script")
    local_directory: str | None = Field(None, description="workers' scratch folder (default: the system's)")

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        if value in ("local", "slurm", "htcondor") or "://" in value:
            return value
        raise ValueError("expected local, slurm, htcondor or an address like tcp://host:8786")


# ---- the run ---------------------------------------------------------------------
class RunConfig(_Model):
    """One analysis, from parameters to limits."""

    seed: int = 0
    output: str = "assay-run"
    parameters: list[ParameterConfig] = Field(min_length=1)
    benchmarks: list[BenchmarkConfig] = []
    morphing: MorphingConfig = MorphingConfig()
    simulator: SimulatorConfig
    sampling: SamplingConfig = SamplingConfig()
    training: Annotated[dict[str, ModelConfig], BeforeValidator(_lower_methods)] = Field(
        {}, description="named models: name -> {method: sally | alices | ... | bit, settings}"
    )
    inference: InferenceConfig = InferenceConfig()
    systematics: SystematicsConfig | None = Field(
        None, description="nuisance parameters (shape variations of the simulator, normalisations)"
    )
    parallel: ParallelConfig = ParallelConfig()
    memory_gb: float | None = Field(
        None, gt=0, description="memory budget of one process for events in memory (out-of-core above it)"
    )

    def parameter_space(self) -> ParameterSpace:
        """Parameters plus the listed benchmarks (``sm`` added if absent)."""
        params = [Parameter(p.name, p.range, p.unit, p.sm, p.latex) for p in self.parameters]
        points = {b.name: b.theta for b in self.benchmarks}
        if "sm" not in points:
            points = {"sm": {}, **points}
        return ParameterSpace.from_dict(params, points)

    def theta(self, spec: str | Mapping[str, float], where: str) -> np.ndarray:
        """θ ``(n_params,)`` from a benchmark name or ``{parameter: value}``."""
        space = self.parameter_space()
        if isinstance(spec, str):
            if spec not in space.benchmark_names:
                raise ConfigError(f"{where}: unknown benchmark {spec!r}; known: {space.benchmark_names}")
            return space.theta(spec)
        return np.array([spec.get(p.name, p.sm) for p in space.parameters], dtype=float)

    def theta_or_prior(self, spec: ThetaConfig, where: str) -> np.ndarray | Prior:
        """Resolve a θ specification to a point or a :class:`Prior`."""
        if isinstance(spec, str | dict):
            return self.theta(spec, where)
        return _prior(spec, len(self.parameters))

    def basis_prior(self) -> Prior:
        if self.morphing.basis_prior is not None:
            return _prior(self.morphing.basis_prior, len(self.parameters))
        ranges = np.array([p.range for p in self.parameters])
        return UniformPrior(ranges[:, 0].tolist(), ranges[:, 1].tolist(), len(self.parameters))


# ---- loading --------------------------------------------------------------------
def _semantic_errors(cfg: RunConfig) -> list[tuple[tuple, str]]:
    """Cross-field checks: unknown parameter names, benchmark names, set names."""
    names = [p.name for p in cfg.parameters]
    errors: list[tuple[tuple, str]] = []
    if len(set(names)) != len(names):
        errors.append((("parameters",), f"parameter names must be unique, got {names}"))
    for i, b in enumerate(cfg.benchmarks):
        for key in b.theta:
            if key not in names:
                errors.append(
                    (("benchmarks", i, "theta", key), f"unknown parameter {key!r}; expected one of {names}")
                )
    seen: dict[str, int] = {}
    for i, b in enumerate(cfg.benchmarks):
        if b.name in seen:
            message = (
                f"benchmark name {b.name!r} is used twice, by benchmarks[{seen[b.name]}] and benchmarks[{i}]"
            )
            errors.append((("benchmarks", i, "name"), f"{message}; names must be unique"))
        seen.setdefault(b.name, i)
    bnames = {"sm"} | {b.name for b in cfg.benchmarks}

    def check_theta(spec: Any, loc: tuple) -> None:
        if isinstance(spec, str) and spec not in bnames:
            errors.append((loc, f"unknown benchmark {spec!r}; expected one of {sorted(bnames)}"))
        if isinstance(spec, dict):
            errors.extend(
                ((*loc, k), f"unknown parameter {k!r}; expected one of {names}")
                for k in spec
                if k not in names
            )

    if not isinstance(cfg.simulator, EventsFileConfig):
        check_theta(cfg.simulator.theta_gen, ("simulator", "theta_gen"))
    set_names = [s.name for s in cfg.sampling.sets]
    for name, model in cfg.training.items():
        loc = ("training", name)
        if not _NAME.fullmatch(name):
            errors.append((loc, f"model name {name!r}: use letters, digits, '_', '-' (it names a folder)"))
        if isinstance(model, BITModelConfig):
            check_theta(model.theta_ref, (*loc, "theta_ref"))
        elif isinstance(model, MixtureModelConfig):
            errors.extend(_mixture_errors(model, loc, bnames))
        elif model.training_set is not None:
            listed = [model.training_set] if isinstance(model.training_set, str) else model.training_set
            errors.extend(
                ((*loc, "training_set"), f"unknown set {n!r}; sampling.sets has {set_names}")
                for n in listed
                if n not in set_names
            )
    for i, s in enumerate(cfg.sampling.sets):
        for attr in ("theta_ref", "theta0", "theta1", "theta"):
            if hasattr(s, attr):
                check_theta(getattr(s, attr), ("sampling", "sets", i, attr))
    if len(set(set_names)) != len(set_names):
        errors.append((("sampling", "sets"), f"training set names must be unique, got {set_names}"))
    errors.extend(_inference_errors(cfg, names, check_theta))
    errors.extend(_root_parameter_errors(cfg, names))
    errors.extend(_systematics_errors(cfg))
    errors.extend(_background_errors(cfg))
    return errors


def _background_errors(cfg: RunConfig) -> list[tuple[tuple, str]]:
    """Hard-level backgrounds go through the signal's parametrised detector: they need one."""
    sim = cfg.simulator
    if not isinstance(sim, WHConfig) or sim.detector is not None:
        return []
    return [(("simulator", "backgrounds", i, "level"),
             f"background {b.process!r} at level 'hard' goes through the parametrised detector: set "
             "simulator.detector (e.g. `detector: {}`) or use `level: shower`")
            for i, b in enumerate(sim.backgrounds) if b.level == "hard"]  # fmt: skip


WH_VARIATIONS = ("jes", "btag")
"""The WH detector's shape variations (:data:`assay.simulators.wh_systematics.VARIATIONS`; the config
sits above the simulators, tests/test_wh_systematics.py checks that the two agree)."""


def _systematics_errors(cfg: RunConfig) -> list[tuple[tuple, str]]:
    """Shape variations only where the simulator has them (off-shell; WH's smearing detector), by known
    names for WH (the off-shell simulator checks its own when the run starts)."""
    if cfg.systematics is None:
        return []
    errors, sim = [], cfg.simulator
    for i, n in enumerate(cfg.systematics.nuisances):
        loc = ("systematics", "nuisances", i)
        name = n.simulator_variation
        if n.is_normalisation or isinstance(sim, OffshellConfig | EventsFileConfig):
            continue  # the off-shell simulator and imported events check their names when the run starts
        if not isinstance(sim, WHConfig):
            errors.append((loc, f"{name!r}: simulator kind {sim.kind} provides no shape variations; use "
                                "`normalisation: u`, the offshell or wh simulator, or imported events with "
                                "variations"))  # fmt: skip
        elif name not in WH_VARIATIONS:
            errors.append((loc, f"unknown WH variation {name!r}; valid names: {list(WH_VARIATIONS)}"))
        elif sim.detector is None or sim.detector.ideal or sim.shower is not None or sim.backgrounds:
            errors.append((loc, f"{name!r} varies the parametrised detector: it needs simulator.detector "
                                "(not ideal), no shower and no backgrounds"))  # fmt: skip
    return errors


def check_benchmarks(
    cfg: RunConfig, thetas: Mapping[str, np.ndarray], *, file: object, missing: str, where: str = ""
) -> None:
    """Every benchmark the config lists must be one of a file's (``thetas``: name → θ) at the same θ
    (to 1e-9); the config's implicit ``sm`` is not required of the file.

    Args:
        file: the file, for the messages.
        missing: what a missing name is not, e.g. ``"among the events' benchmarks [...]"``.
        where: a prefix naming the config file, e.g. ``"run.yaml: "``.

    Raises:
        ConfigError: naming the benchmark and, for another θ, both values.
    """
    listed = {b.name for b in cfg.benchmarks}
    for b in cfg.parameter_space().benchmarks:
        if b.name not in thetas and b.name not in listed:
            continue  # the config's implicit sm
        if b.name not in thetas:
            raise ConfigError(f"{where}benchmarks: {b.name!r} is not {missing}")
        if not np.allclose(thetas[b.name], b.theta, rtol=0, atol=1e-9):
            raise ConfigError(
                f"{where}benchmarks: {b.name!r} is θ = {list(b.theta)} in the config but "
                f"{np.asarray(thetas[b.name]).tolist()} in {file}"
            )


def root_parameters(cfg: RunConfig) -> list[str]:
    """Parameters whose morphing exponents step by ½ (they enter through √θ and must be >= 0)."""
    steps = np.broadcast_to(np.asarray(cfg.morphing.power_step, dtype=float), (len(cfg.parameters),))
    return [p.name for p, step in zip(cfg.parameters, steps) if step < 1]


def _root_parameter_errors(cfg: RunConfig, names: list[str]) -> list[tuple[tuple, str]]:
    """``power_step: 0.5`` parameters: one per parameter, ranges, benchmarks, scans and θ_true >= 0."""
    step = cfg.morphing.power_step
    if isinstance(step, list) and len(step) != len(names):
        return [(("morphing", "power_step"), f"one step per parameter ({len(names)}), got {len(step)}")]
    roots, errors = set(root_parameters(cfg)), []

    def negative(value: float, loc: tuple, name: str) -> None:
        if name in roots and value < 0:
            message = f"{value} < 0, but {name!r} enters through its square root (morphing.power_step 0.5)"
            errors.append((loc, message))

    for i, p in enumerate(cfg.parameters):
        negative(p.range[0], ("parameters", i, "range"), p.name)
    for i, b in enumerate(cfg.benchmarks):
        for name, value in b.theta.items():
            negative(value, ("benchmarks", i, "theta", name), name)
    for i, scan in enumerate(cfg.inference.scans):
        negative(scan.range[0], ("inference", "scans", i, "range"), scan.parameter)
    for i, grid in enumerate(cfg.inference.grids):
        for name, rng in zip(grid.parameters, grid.ranges):
            negative(rng[0], ("inference", "grids", i, "ranges"), name)
    if isinstance(cfg.inference.theta_true, dict):
        for name, value in cfg.inference.theta_true.items():
            negative(value, ("inference", "theta_true", name), name)
    return errors


def _mixture_errors(model: MixtureModelConfig, loc: tuple, benchmarks: set[str]) -> list[tuple[tuple, str]]:
    """Processes made of known benchmarks; the reference one of them."""
    errors = []
    for name, spec in (model.processes or {}).items():
        used = [spec] if isinstance(spec, str) else list(spec)
        errors.extend(
            ((*loc, "processes", name), f"unknown benchmark {b!r}; expected one of {sorted(benchmarks)}")
            for b in used
            if b not in benchmarks
        )
    if model.reference is not None and model.processes is not None and model.reference not in model.processes:
        message = f"unknown process {model.reference!r}; the processes are {list(model.processes)}"
        errors.append(((*loc, "reference"), message))
    return errors


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def _inference_errors(cfg: RunConfig, names: list[str], check_theta: Any) -> list[tuple[tuple, str]]:
    """Parameters of scans and grids, model names, θ_true."""
    inference, errors = cfg.inference, []
    check_theta(inference.theta_true, ("inference", "theta_true"))
    for i, scan in enumerate(inference.scans):
        if scan.parameter not in names:
            message = f"unknown parameter {scan.parameter!r}; expected one of {names}"
            errors.append((("inference", "scans", i, "parameter"), message))
    for i, grid in enumerate(inference.grids):
        errors.extend(
            (("inference", "grids", i, "parameters"), f"unknown parameter {p!r}; expected one of {names}")
            for p in grid.parameters
            if p not in names
        )
    for i, model in enumerate(inference.models or []):
        if model not in cfg.training:
            message = f"unknown model {model!r}; the training section names {sorted(cfg.training)}"
            errors.append((("inference", "models", i), message))
    labels = [h.label for h in inference.histograms]
    if len(set(labels)) != len(labels):
        errors.append((("inference", "histograms"), f"histogram names must be unique, got {labels}"))
    return errors


def _is_union_member(part: Any) -> bool:
    """pydantic names union branches by type (``str``, ``dict[str,float]``, ``GaussianPriorConfig``)."""
    return isinstance(part, str) and (
        "[" in part or "-" in part or part in {"str", "int", "float", "bool"} or part[:1].isupper()
    )


def _data_loc(data: Any, loc: tuple) -> tuple[tuple, bool]:
    """Map a pydantic error location to key path of the data; flag errors of untagged unions."""
    out: list = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        elif isinstance(data, dict) and part in (data.get("kind"), str(data.get("method")).lower()):
            continue  # tagged union: the discriminator (kind, a model's method) picked this branch
        elif _is_union_member(part) or not isinstance(data, dict | list | type(None)):
            return tuple(out), True
        else:
            data = None  # a missing key
        out.append(part)
    return tuple(out), False


def _problems(data: Any, exc: ValidationError) -> list[tuple[tuple, str]]:
    """One message per key path; the branches of an untagged union are merged into one."""
    problems: dict[tuple, list[str]] = {}
    unions: set[tuple] = set()
    for e in exc.errors():
        loc, union = _data_loc(data, e["loc"])
        if union:
            unions.add(loc)
        got = f" (got {e['input']!r})" if e["type"] != "missing" else ""
        problems.setdefault(loc, []).append(e["msg"] + ("" if union else got))
    out = []
    for loc, msgs in problems.items():
        if loc in unions:
            got = _resolve(data, loc)
            out.append(
                (
                    loc,
                    "matches none of the allowed forms: "
                    + "; ".join(dict.fromkeys(msgs))
                    + f" (got {got!r})",
                )
            )
        else:
            out.extend((loc, m) for m in msgs)
    return out


def _resolve(data: Any, loc: tuple) -> Any:
    for part in loc:
        data = data[part]
    return data


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc`` (deepest node found)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


def config_from_dict(data: Any, *, source: str = "<config>", node: yaml.Node | None = None) -> RunConfig:
    """Validate a parsed config; raise one :class:`ConfigError` listing every problem."""
    try:
        cfg = RunConfig.model_validate(data)
        problems = _semantic_errors(cfg)
    except ValidationError as exc:
        problems = _problems(data, exc)
        cause: Exception | None = exc
    else:
        cause = None
    if problems:
        lines = []
        for loc, msg in problems:
            line = _line_of(node, loc)
            where = f"{source}:{line}" if line else source
            lines.append(f"{where}: {_format_loc(loc)}: {msg}")
        raise ConfigError("invalid config\n  " + "\n  ".join(lines)) from cause
    for loc, msg in _outside_ranges(cfg):
        line = _line_of(node, loc)
        where = f"{source}:{line}" if line else source
        warnings.warn(f"{where}: {_format_loc(loc)}: {msg}", ConfigWarning, stacklevel=2)
    return cfg


class ConfigWarning(UserWarning):
    """A config that is valid but probably not what was meant."""


def _outside_ranges(cfg: RunConfig) -> list[tuple[tuple, str]]:
    """Benchmarks outside their parameter's declared range: allowed (a morphing basis may want
    points outside the physics range), but the morphing then extrapolates there."""
    ranges = {p.name: p.range for p in cfg.parameters}
    out = []
    for i, b in enumerate(cfg.benchmarks):
        for name, value in b.theta.items():
            lo, hi = ranges.get(name, (-np.inf, np.inf))
            if not lo <= value <= hi:
                message = (
                    f"{value} lies outside the declared range [{lo}, {hi}] of {name!r}; allowed, but check it"
                )
                out.append((("benchmarks", i, "theta", name), message))
    return out


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate a YAML config (``yaml.safe_load``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}"
        )
    sim = data.get("simulator")
    if isinstance(sim, dict) and sim.get("kind") == "events" and isinstance(sim.get("path"), str):
        events = Path(sim["path"]).expanduser()  # relative to the config's folder, not the cwd
        events = events if events.is_absolute() else path.parent / events
        data = {**data, "simulator": {**sim, "path": str(events)}}
    return config_from_dict(data, source=str(path), node=node)
