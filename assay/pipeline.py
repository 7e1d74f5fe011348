"""From a :class:`~assay.config.RunConfig` to an event file and training sets.

``run_pipeline(cfg)`` performs, in ``cfg.output``:

1. the morphing basis: the configured benchmarks plus, if ``morphing.optimize_basis``,
   optimised ones (seed 000 backup) → ``basis.json``;
2. generation into ``events.h5`` (chunked, resumable, seeded);
3. the train / validation / test split by event → ``split.h5``;
4. every training set of ``sampling.sets`` for each requested partition →
   ``sets/<name>_<partition>.h5``.

Each step is skipped when its output exists and matches the config, so a rerun
continues where an interrupted one stopped. ``events.h5`` and every training set record their
provenance (:mod:`assay.provenance`): the config sections that shape them, the seed and, for the
sets, the SHA-256 of the events they were drawn from.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.config import (
    EventsFileConfig,
    GaussianToyConfig,
    LocalScoreSetConfig,
    OffshellConfig,
    PlainSetConfig,
    RatioSetConfig,
    RunConfig,
    root_parameters,
)
from assay.exceptions import ConfigError, StoreError
from assay.existing_events import existing_space, link_events, source_record
from assay.generation import BatchSimulator, ToyBatchSimulator, generate, merge_stores
from assay.morphing import Morpher, morphing_components, optimize_basis
from assay.parameters import ParameterSpace
from assay.provenance import make_provenance
from assay.rundir import RunDir
from assay.sampling import EventSource, SetSampler, local_score_sampler, plain_sampler, ratio_sampler
from assay.saving import atomic_path, read_json, require_space, write_json
from assay.simulators.detector import CutFlow
from assay.simulators.toys import GaussianToy
from assay.simulators.wh_batch import CutFlowCounter, wh_batch_simulator
from assay.store import EventStore
from assay.training_set import validate_file
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
    variations = tuple(cfg.systematics.shape_variations()) if cfg.systematics else ()
    if isinstance(sim, OffshellConfig):
        simulator = _offshell_simulator(sim, space, root_parameters(cfg), variations)
        return simulator, sim.n_events, sim.batch_size
    simulator = wh_batch_simulator(sim, space, theta_gen, seed=cfg.seed, variations=variations)
    return simulator, sim.n_events, sim.batch_size


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
        StoreError: ``path`` exists but is not a readable split file of a known format, or its rows
            do not cover each of the ``n_events`` events exactly once (naming the file and the part).
    """
    fractions = (cfg.sampling.split.train, cfg.sampling.split.validation, cfg.sampling.split.test)
    if path.exists():
        split = _read_split_file(path, n_events, cfg.seed, fractions)
        if split is not None:
            return split
    split = split_events(n_events, fractions, np.random.default_rng([cfg.seed, 1]))
    require_space(path, 8 * n_events)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"], f.attrs["schema_version"] = SPLIT_FORMAT, SPLIT_SCHEMA_VERSION
        f.attrs["seed"], f.attrs["n_events"], f.attrs["fractions"] = cfg.seed, n_events, fractions
        for name in _PARTITIONS:
            f.create_dataset(name, data=split[name])
    return split


_PARTITIONS = ("train", "validation", "test")


def _read_split_file(path: Path, n_events: int, seed: int, fractions: tuple) -> EventSplit | None:
    """The checked split in ``path``; None if it was made for other settings."""
    fix = "delete it to split anew"
    try:
        with h5py.File(path, "r") as f:
            fmt, version = f.attrs.get("format"), f.attrs.get("schema_version")
            newer = not isinstance(version, (int, np.integer)) or version > SPLIT_SCHEMA_VERSION
            if fmt is not None and (fmt != SPLIT_FORMAT or newer):
                raise StoreError(
                    f"{path}: attribute 'format' is {fmt!r} (schema {version}), expected "
                    f"{SPLIT_FORMAT!r} (schema <= {SPLIT_SCHEMA_VERSION}); {fix}"
                )
            fractions_made = tuple(np.ravel(f.attrs.get("fractions", ())))
            made = (f.attrs.get("seed"), f.attrs.get("n_events"), fractions_made)
            if made != (seed, n_events, fractions):
                return None
            parts = {}
            for name in _PARTITIONS:
                ds = f.get(name)
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "iu":
                    raise StoreError(f"{path}: {name!r} must be a 1D integer dataset, got {ds}; {fix}")
                parts[name] = ds[()]
    except StoreError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the event split (truncated or damaged: {exc}); {fix}") from exc
    rows = np.concatenate(list(parts.values()))
    if (
        len(rows) != n_events
        or (rows.size and (rows.min() < 0 or rows.max() >= n_events))
        or (np.bincount(rows, minlength=n_events) != 1).any()
    ):
        raise StoreError(
            f"{path}: the train/validation/test rows do not cover each of the {n_events} events exactly once "
            f"(the file is damaged); {fix}"
        )
    return EventSplit(*(parts[name] for name in _PARTITIONS))


def _sets_config(cfg: RunConfig) -> dict:
    """The sections of the config that shape the training sets (all but training, inference, output)."""
    return cfg.model_dump(mode="json", exclude={"training", "inference", "output"})


def _invalidate_stale_sets(run: RunDir, cfg: RunConfig) -> None:
    """Delete training sets made from another config (they would silently be reused), or whose
    manifest cannot be read (it is rewritten and the sets rebuilt, with a warning naming it)."""
    folder, manifest = run.sets, run.sets_manifest
    current = _sets_config(cfg)
    if isinstance(cfg.simulator, EventsFileConfig):  # the same path may hold other events now
        current["events_source"] = source_record(run)
    if manifest.exists():
        try:
            made = read_json(manifest, missing="missing", unreadable="not valid JSON")
        except StoreError as exc:
            logger.warning("%s; rebuilding the training sets in %s", exc, folder)
            made = None
        if made != current:
            for old in folder.glob("*.h5"):
                old.unlink()
    write_json(manifest, current)


def _usable_set(path: Path) -> bool:
    """Whether the training set ``path`` exists and reads back complete; a damaged one is deleted
    (with a warning naming it) so that it is made anew."""
    if not path.exists():
        return False
    try:
        validate_file(path)  # chunk by chunk: a set larger than memory_gb is never loaded
    except StoreError as exc:
        logger.warning("%s; making it anew", exc)
        path.unlink()
        return False
    return True


def _training_set(cfg: RunConfig, spec, source: EventSource, rng: np.random.Generator) -> SetSampler:
    where = f"sampling.sets[{spec.name}]"
    if isinstance(spec, LocalScoreSetConfig):
        return local_score_sampler(source, cfg.theta(spec.theta_ref, where), spec.n_samples, rng=rng)
    if isinstance(spec, RatioSetConfig):
        return ratio_sampler(
            source,
            cfg.theta_or_prior(spec.theta0, where),
            cfg.theta_or_prior(spec.theta1, where),
            spec.n_samples,
            n_theta0=spec.n_theta0,
            rng=rng,
        )
    if isinstance(spec, PlainSetConfig):
        return plain_sampler(
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
    if isinstance(cfg.simulator, EventsFileConfig):
        return _existing_events(cfg, run)
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
    provenance = make_provenance(config=metadata["config"], seed=cfg.seed)  # simulated: no input files
    store = generate(
        simulator, signal_path, n_events, seed=cfg.seed, benchmarks=space.benchmark_names,
        batch_size=batch, progress=progress, client=client, on_batch=counter.add_batch, metadata=metadata,
        negative_weights=cfg.sampling.allow_negative_weights, provenance=provenance,
    )  # fmt: skip
    counters = {"wh": counter}
    if backgrounds:
        store = _with_backgrounds(cfg, store, backgrounds, run, metadata, counters, progress=progress,
                                  client=client, provenance=provenance)  # fmt: skip
    timings["generation"] = time.perf_counter() - start
    if counter.n_total:
        document = counter.to_json()
        if len(counters) > 1:  # one cut flow per process; the top level stays the signal's
            document["processes"] = {name: c.to_json() for name, c in counters.items() if c.n_total}
        write_json(run.cut_flow, document)
    flow = _read_cut_flow(run.cut_flow)
    return GeneratedEvents(space, morpher, store, flow, timings)


def _existing_events(cfg: RunConfig, run: RunDir) -> GeneratedEvents:
    """``simulator: {kind: events}``: the configured EventStore as ``events.h5``, its benchmarks the basis."""
    start = time.perf_counter()
    store = link_events(cfg, run)
    space = existing_space(cfg, store)
    morpher = Morpher(basis_components(cfg), space.benchmark_thetas)
    write_json(run.basis, {"space": space.to_dict(), "morphing": morpher.to_dict(),
                           "condition_number": morpher.condition_number})  # fmt: skip
    return GeneratedEvents(space, morpher, store, None, {"generation": time.perf_counter() - start})


def _with_backgrounds(
    cfg, signal: EventStore, backgrounds, run: RunDir, metadata: dict, counters: dict, **kwargs
) -> EventStore:
    """Generate each background (Pythia) into its own file and merge everything into events.h5; each
    process's cut flow is counted into ``counters[process]``."""
    from assay.simulators.pythia import PROCESSES
    from assay.simulators.wh_backgrounds import background_simulator

    paths = [signal.path]
    signal.close()
    for k, bkg in enumerate(backgrounds, start=1):
        sim = background_simulator(bkg, cfg.simulator, len(signal.benchmarks))
        counters[bkg.process] = CutFlowCounter()
        store = generate(sim, run.process_events(bkg.process), bkg.n_events, seed=cfg.seed * 1000 + k,
                         benchmarks=signal.benchmarks, batch_size=bkg.batch_size, metadata=metadata,
                         negative_weights=cfg.sampling.allow_negative_weights,
                         on_batch=counters[bkg.process].add_batch, **kwargs)  # fmt: skip
        paths.append(store.path)
        store.close()
    return merge_stores(paths, run.events, processes=list(PROCESSES), config=metadata["config"])


def _read_cut_flow(path: Path) -> CutFlow | None:
    if not path.exists():
        return None
    d = read_json(path, missing="missing", unreadable="cannot read the cut flow")
    try:
        numbers = (np.array(d["n_pass"], dtype=float), np.array(d["efficiency"], dtype=float))
        return CutFlow(tuple(d["names"]), *numbers, int(d["n_total"]), float(d["total_weight_pb"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: not a cut flow ({exc!r}); delete it and rerun to remake it") from exc


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
    store.validate()  # every value once, before anything is made from it (NaN/inf, labels, negative weights)

    split = read_split(run.split, store.n_events, cfg)
    _invalidate_stale_sets(run, cfg)
    inputs = [store.path]
    if isinstance(cfg.simulator, EventsFileConfig):  # events.h5 is a link to (or copy of) this file
        inputs.append(Path(cfg.simulator.path))
    paths: dict[str, Path] = {}
    start = time.perf_counter()
    for partition in sorted({p for s in cfg.sampling.sets for p in s.partitions}):
        source = EventSource(
            store,
            events=split[partition],
            morpher=morpher,
            allow_negative_weights=cfg.sampling.allow_negative_weights,
            memory_gb=cfg.memory_gb,
        )
        for i, spec in enumerate(s for s in cfg.sampling.sets if partition in s.partitions):
            path = run.training_set(spec.name, partition)
            if not _usable_set(path):
                rng = np.random.default_rng([cfg.seed, 2, i, _PARTITIONS.index(partition)])
                provenance = make_provenance(config=_sets_config(cfg), seed=cfg.seed, inputs=inputs)
                # in parts when the set exceeds half of memory_gb (the source's budget)
                _training_set(cfg, spec, source, rng).save(path, provenance=provenance)
                validate_file(path)  # complete before the step counts as done
            paths[f"{spec.name}_{partition}"] = path
    timings["sampling"] = time.perf_counter() - start
    logger.info("pipeline done in %s", run.root)
    return PipelineResult(space, morpher, store.path, split, paths, timings, generated.cut_flow)
