"""From a :class:`~assay.config.RunConfig` to an event file and training sets.

``run_pipeline(cfg)`` performs, in ``cfg.output``:

1. the morphing basis: the configured benchmarks plus, if ``morphing.optimize_basis``,
   optimised ones (seed 000 backup) → ``basis.json``;
2. generation into ``events.h5`` (chunked, resumable, seeded);
3. the train / validation / test split by event → ``split.h5``;
4. every training set of ``sampling.sets`` for each requested partition →
   ``sets/<name>_<partition>.h5``.

Each step is skipped when its output exists and matches the config, so a rerun
continues where an interrupted one stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.config import (
    GaussianToyConfig,
    LocalScoreSetConfig,
    OffshellConfig,
    PlainSetConfig,
    RatioSetConfig,
    RunConfig,
    root_parameters,
)
from assay.exceptions import ConfigError, StoreError
from assay.generation import BatchSimulator, ToyBatchSimulator, generate, merge_stores
from assay.morphing import Morpher, morphing_components, optimize_basis
from assay.parameters import ParameterSpace
from assay.rundir import RunDir
from assay.sampling import EventSource, local_score_training_set, plain_training_set, ratio_training_set
from assay.saving import atomic_path, write_json
from assay.simulators.detector import CutFlow
from assay.simulators.toys import GaussianToy
from assay.simulators.wh_batch import CutFlowCounter, wh_batch_simulator
from assay.store import EventStore
from assay.training_set import TrainingSet
from assay.unweighting import EventSplit, split_events

__all__ = [
    "GeneratedEvents",
    "PipelineResult",
    "build_basis",
    "generate_events",
    "read_split",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

_EVENT_SECTIONS = {"seed", "parameters", "benchmarks", "morphing", "simulator"}


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_pipeline` made: the basis, the event file, the split and training-set files."""

    space: ParameterSpace
    morpher: Morpher
    events: Path
    split: EventSplit
    training_sets: dict[str, Path]
    timings_s: dict[str, float] = field(default_factory=dict)
    cut_flow: CutFlow | None = None


def basis_components(cfg: RunConfig) -> np.ndarray:
    """The morphing exponents of ``cfg.morphing`` ``(n_components, n_params)``."""
    m = cfg.morphing
    return morphing_components(len(cfg.parameters), m.max_power, m.max_overall_power, m.power_step)


def build_basis(cfg: RunConfig, rng: np.random.Generator) -> tuple[ParameterSpace, Morpher]:
    """Benchmarks (configured + optimised) and their :class:`Morpher`."""
    space = cfg.parameter_space()
    comps = basis_components(cfg)
    fixed = space.benchmark_thetas
    if cfg.morphing.optimize_basis and len(fixed) < len(comps):
        prior = cfg.basis_prior().sample(2000, rng)
        thetas = optimize_basis(
            comps, prior, space.ranges, fixed=fixed, n_trials=cfg.morphing.n_basis_trials, rng=rng
        )
        names = space.benchmark_names + [f"morph_{i}" for i in range(len(fixed), len(thetas))]
        space = space.with_benchmarks(thetas, names)
    return space, Morpher(comps, space.benchmark_thetas)


def _simulator(cfg: RunConfig, space: ParameterSpace) -> tuple[BatchSimulator, int, int]:
    sim = cfg.simulator
    theta_gen = cfg.theta(sim.theta_gen, "simulator.theta_gen")
    if isinstance(sim, GaussianToyConfig):
        toy = GaussianToy.default(space.n_params, sim.n_obs, smearing=sim.smearing)
        return ToyBatchSimulator(toy, theta_gen, space.benchmark_thetas), sim.n_events, sim.batch_size
    if isinstance(sim, OffshellConfig):
        variations = tuple(cfg.systematics.shape_variations()) if cfg.systematics else ()
        simulator = _offshell_simulator(sim, space, root_parameters(cfg), variations)
        return simulator, sim.n_events, sim.batch_size
    return wh_batch_simulator(sim, space, theta_gen, seed=cfg.seed), sim.n_events, sim.batch_size


def _offshell_simulator(
    sim: OffshellConfig, space: ParameterSpace, roots: list[str], variations: tuple[str, ...] = ()
) -> BatchSimulator:
    """The off-shell 4ℓ simulator at the benchmarks' signal strengths (one parameter, through √μ)."""
    from assay.simulators.offshell import OffshellBatchSimulator, OffshellSimulator

    if space.n_params != 1 or space.names != roots:
        raise ConfigError(
            f"simulator.kind offshell: one parameter, the signal strength, with morphing "
            f"{{max_power: 1, power_step: 0.5}} (w(mu) = mu w_S + sqrt(mu) w_I + w_B); the config has "
            f"parameters {space.names} with power_step 0.5 for {roots}"
        )
    options = {"systematics": variations} if variations else {}
    try:
        simulator = OffshellSimulator(
            space.benchmark_thetas[:, 0], sqrt_s=sim.sqrt_s, m4l_range=tuple(sim.m4l_range),
            channels=tuple(sim.channels), lepton_cuts=sim.lepton_cuts, processes=tuple(sim.processes),
            **options,
        )  # fmt: skip
    except ValueError as exc:  # an unknown variation name
        raise ConfigError(f"systematics.nuisances: {exc}") from exc
    return OffshellBatchSimulator(simulator)


SPLIT_FORMAT = "assay.EventSplit"
SPLIT_SCHEMA_VERSION = 1


def read_split(path: Path, n_events: int, cfg: RunConfig) -> EventSplit:
    """The train / validation / test rows of ``split.h5``; made (and written atomically) when the
    file is missing or was made for another seed, event count or fractions.

    Raises:
        StoreError: ``path`` exists but is not a readable split file of a known format.
    """
    fractions = (cfg.sampling.split.train, cfg.sampling.split.validation, cfg.sampling.split.test)
    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                fmt, version = f.attrs.get("format"), f.attrs.get("schema_version")
                if fmt is not None and (fmt != SPLIT_FORMAT or version > SPLIT_SCHEMA_VERSION):
                    raise StoreError(
                        f"{path}: attribute 'format' is {fmt!r} (schema {version}), expected "
                        f"{SPLIT_FORMAT!r} (schema <= {SPLIT_SCHEMA_VERSION}); delete it to split anew"
                    )
                same = f.attrs.get("seed") == cfg.seed and f.attrs.get("n_events") == n_events
                if same and tuple(f.attrs["fractions"]) == fractions:
                    return EventSplit(f["train"][()], f["validation"][()], f["test"][()])
        except (OSError, KeyError) as exc:
            raise StoreError(f"{path}: cannot read the event split ({exc}); delete it to split anew") from exc
    split = split_events(n_events, fractions, np.random.default_rng([cfg.seed, 1]))
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"], f.attrs["schema_version"] = SPLIT_FORMAT, SPLIT_SCHEMA_VERSION
        f.attrs["seed"], f.attrs["n_events"], f.attrs["fractions"] = cfg.seed, n_events, fractions
        for name in ("train", "validation", "test"):
            f.create_dataset(name, data=split[name])
    return split


def _invalidate_stale_sets(run: RunDir, cfg: RunConfig) -> None:
    """Delete training sets made from another config (they would silently be reused)."""
    folder, manifest = run.sets, run.sets_manifest
    current = cfg.model_dump(mode="json", exclude={"training", "inference", "output"})
    if manifest.exists() and json.loads(manifest.read_text()) != current:
        for old in folder.glob("*.h5"):
            old.unlink()
    write_json(manifest, current)


def _training_set(cfg: RunConfig, spec, source: EventSource, rng: np.random.Generator) -> TrainingSet:
    where = f"sampling.sets[{spec.name}]"
    if isinstance(spec, LocalScoreSetConfig):
        return local_score_training_set(source, cfg.theta(spec.theta_ref, where), spec.n_samples, rng=rng)
    if isinstance(spec, RatioSetConfig):
        return ratio_training_set(
            source,
            cfg.theta_or_prior(spec.theta0, where),
            cfg.theta_or_prior(spec.theta1, where),
            spec.n_samples,
            n_theta0=spec.n_theta0,
            rng=rng,
        )
    if isinstance(spec, PlainSetConfig):
        return plain_training_set(
            source, cfg.theta_or_prior(spec.theta, where), spec.n_samples, n_theta=spec.n_theta, rng=rng
        )
    raise NotImplementedError(type(spec).__name__)  # pragma: no cover


@dataclass(frozen=True)
class GeneratedEvents:
    """Output of :func:`generate_events`."""

    space: ParameterSpace
    morpher: Morpher
    store: EventStore
    cut_flow: CutFlow | None
    timings_s: dict[str, float]


def generate_events(
    cfg: RunConfig, output: str | os.PathLike | None = None, *, progress: bool = True, client: Any = None
) -> GeneratedEvents:
    """Basis → ``events.h5`` (+ ``cutflow.json`` for detector-level simulators) in ``output``.

    ``client``: optional ``dask.distributed.Client`` to generate batches in parallel.
    The cut flow counts the batches generated by this call (all of them unless resumed).
    """
    run = RunDir(output or cfg.output)
    run.root.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    space, morpher = build_basis(cfg, np.random.default_rng([cfg.seed, 0]))
    write_json(run.basis, {"space": space.to_dict(), "morphing": morpher.to_dict(),
                                     "condition_number": morpher.condition_number})  # fmt: skip
    timings["basis"] = time.perf_counter() - start

    start = time.perf_counter()
    simulator, n_events, batch = _simulator(cfg, space)
    counter = CutFlowCounter()
    metadata = {
        "parameters": space.to_dict(),
        "morphing": morpher.to_dict(),
        # only what shapes the events: editing sampling/training/inference keeps them
        "config": cfg.model_dump(mode="json", include=_EVENT_SECTIONS),
    }
    if cfg.systematics is not None and cfg.systematics.shape_variations():  # the events' variation factors
        metadata["config"]["variations"] = cfg.systematics.shape_variations()
    backgrounds = getattr(cfg.simulator, "backgrounds", [])
    signal_path = run.process_events("wh") if backgrounds else run.events
    store = generate(
        simulator, signal_path, n_events, seed=cfg.seed, benchmarks=space.benchmark_names,
        batch_size=batch, progress=progress, client=client, on_batch=counter.add_batch, metadata=metadata,
    )  # fmt: skip
    if backgrounds:
        store = _with_backgrounds(cfg, store, backgrounds, run, metadata, progress=progress, client=client)
    timings["generation"] = time.perf_counter() - start
    if counter.n_total:
        flow = counter.cut_flow()
        write_json(run.cut_flow, {"names": list(flow.names), "n_pass": flow.n_pass.tolist(),
                                           "efficiency": flow.efficiency.tolist(), "n_total": flow.n_total,
                                           "total_weight_pb": flow.total_weight})  # fmt: skip
    flow = _read_cut_flow(run.cut_flow)
    return GeneratedEvents(space, morpher, store, flow, timings)


def _with_backgrounds(
    cfg, signal: EventStore, backgrounds, run: RunDir, metadata: dict, **kwargs
) -> EventStore:
    """Generate each background (Pythia) into its own file and merge everything into events.h5."""
    from assay.simulators.pythia import PROCESSES, BackgroundBatchSimulator

    paths = [signal.path]
    signal.close()
    for k, bkg in enumerate(backgrounds, start=1):
        sim = BackgroundBatchSimulator(bkg.process, len(signal.benchmarks), mpi=bkg.mpi)
        store = generate(sim, run.process_events(bkg.process), bkg.n_events, seed=cfg.seed * 1000 + k,
                         benchmarks=signal.benchmarks, batch_size=bkg.batch_size, metadata=metadata,
                         **kwargs)  # fmt: skip
        paths.append(store.path)
        store.close()
    return merge_stores(paths, run.events, processes=list(PROCESSES))


def _read_cut_flow(path: Path) -> CutFlow | None:
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    return CutFlow(tuple(d["names"]), np.array(d["n_pass"]), np.array(d["efficiency"]), d["n_total"],
                   d["total_weight_pb"])  # fmt: skip


def run_pipeline(
    cfg: RunConfig, output: str | os.PathLike | None = None, *, progress: bool = True, client: Any = None
) -> PipelineResult:
    """Run basis → generation → split → training sets for ``cfg`` in ``output`` (default ``cfg.output``).

    Raises:
        StoreError: another `assay run`/`assay train` is using the folder (:meth:`RunDir.locked`).
    """
    run = RunDir(output or cfg.output)
    with run.locked("run"):
        return _run_pipeline(cfg, run, progress=progress, client=client)


def _run_pipeline(cfg: RunConfig, run: RunDir, *, progress: bool, client: Any) -> PipelineResult:
    run.sets.mkdir(parents=True, exist_ok=True)
    generated = generate_events(cfg, run.root, progress=progress, client=client)
    space, morpher, store, timings = generated.space, generated.morpher, generated.store, generated.timings_s

    split = read_split(run.split, store.n_events, cfg)
    _invalidate_stale_sets(run, cfg)
    paths: dict[str, Path] = {}
    start = time.perf_counter()
    for partition in sorted({p for s in cfg.sampling.sets for p in s.partitions}):
        source = EventSource(
            store,
            events=split[partition],
            morpher=morpher,
            allow_negative_weights=cfg.sampling.allow_negative_weights,
        )
        for i, spec in enumerate(s for s in cfg.sampling.sets if partition in s.partitions):
            path = run.training_set(spec.name, partition)
            if not path.exists():
                rng = np.random.default_rng(
                    [cfg.seed, 2, i, ("train", "validation", "test").index(partition)]
                )
                _training_set(cfg, spec, source, rng).save(path)
            paths[f"{spec.name}_{partition}"] = path
    timings["sampling"] = time.perf_counter() - start
    logger.info("pipeline done in %s", run.root)
    return PipelineResult(space, morpher, store.path, split, paths, timings, generated.cut_flow)
