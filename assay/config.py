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

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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

__all__ = ["RunConfig", "config_from_dict", "load_config"]


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
    max_power: int | list[int] = 2
    max_overall_power: int | None = None
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
    lepton_efficiency: float = Field(0.95, ge=0, le=1)
    met_soft_resolution: float = Field(10.0, ge=0, description="GeV per MET component")


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
    batch_size: int = Field(100_000, gt=0)


SimulatorConfig = Annotated[GaussianToyConfig | WHConfig, Field(discriminator="kind")]


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


# ---- training and inference -------------------------------------------------------
class TrainingConfig(_Model):
    method: str = "alices"
    training_set: str | None = None
    hidden: list[int] = [100, 100]
    activation: Literal["relu", "tanh", "silu", "swish", "softplus"] = "tanh"
    alpha: float = Field(5.0, ge=0)
    epochs: int = Field(50, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: tuple[float, float] = (1e-3, 1e-4)
    optimizer: Literal["amsgrad", "adam", "nadam"] = "amsgrad"
    validation_split: float = Field(0.25, ge=0, lt=1)
    early_stopping: bool = True
    n_ensemble: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)


class ScanConfig(_Model):
    parameter: str
    range: tuple[float, float]
    n_points: int = Field(303, ge=3)


class InferenceConfig(_Model):
    luminosity_ifb: float = Field(300.0, gt=0)
    scans: list[ScanConfig] = []
    grid_points: int = Field(35, ge=3)
    confidence_levels: list[float] = [0.68, 0.95]


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
    training: TrainingConfig = TrainingConfig()
    inference: InferenceConfig = InferenceConfig()

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

    check_theta(cfg.simulator.theta_gen, ("simulator", "theta_gen"))
    for i, s in enumerate(cfg.sampling.sets):
        for attr in ("theta_ref", "theta0", "theta1", "theta"):
            if hasattr(s, attr):
                check_theta(getattr(s, attr), ("sampling", "sets", i, attr))
    set_names = [s.name for s in cfg.sampling.sets]
    if len(set(set_names)) != len(set_names):
        errors.append((("sampling", "sets"), f"training set names must be unique, got {set_names}"))
    for i, scan in enumerate(cfg.inference.scans):
        if scan.parameter not in names:
            errors.append((("inference", "scans", i, "parameter"), f"unknown parameter {scan.parameter!r}"))
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
        elif isinstance(data, dict) and part == data.get("kind"):
            continue  # tagged union: the discriminator picked this branch
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
    return cfg


def load_config(path: str | os.PathLike) -> RunConfig:
    """Read and validate a YAML config (``yaml.safe_load``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}"
        )
    return config_from_dict(data, source=str(path), node=node)
