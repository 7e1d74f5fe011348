"""MadMiner HDF5 files into an assay EventStore (``assay import-madminer``), with h5py only.

The layout read is MadMiner's own (``madminer/utils/interfaces/hdf5.py`` of
github.com/madminer-tool/madminer; see :mod:`assay.io.madminer_layout`). The mapping:

- ``parameters/`` → the store's ``parameters`` (:meth:`ParameterSpace.to_dict`: names, ranges
  ``val_ranges``, the physics benchmarks); LHA blocks/ids, transforms and ``max_power`` go to the
  provenance (``config["import_madminer"]``).
- physics benchmarks (``is_nuisance`` = 0) → weight columns, in file order, in pb with Σ_events = σ:
  MadMiner normalises each sample to σ, so every event's weights are multiplied by MadMiner's own
  sampling factor (``DataAnalyzer._calculate_sampling_factors``: N_b / Σ_b N_b for an event generated
  at benchmark b, 1 for background), exactly what MadMiner's ``event_loader`` returns.
- ``morphing/`` → the store's ``morphing`` (:meth:`Morpher.to_dict`, MadMiner's components and the
  physics benchmarks' θ). The file's ``morphing_matrix`` must be a morphing of those components at
  those benchmarks: for a square basis equal to assay's c_k(θ) (to 1e-6), for MadMiner's multi-basis
  averaging (more benchmarks than components) M Φ = 1; otherwise the import stops
  (:class:`~assay.exceptions.MorphingError`). The per-event polynomial coefficients A_c(x) (pb) go to
  the extra ``components`` (as the WH simulator's), W_k = Σ_c Φ_kc A_c.
- nuisance benchmarks → the extra ``variations`` ``(n_nuisances, 2, n_components)``: for each
  ``nuisance_parameters/`` entry the factors F^± = dσ(x|θ, ν = ±1)/dσ(x|θ, 0) of MadMiner's
  ``NuisanceMorpher`` (exp(±a + b), a and b sanitised as MadMiner does), the same on every component;
  their names are ``config["run"]["variations"]``, so ``systematics.nuisances: [{name: <nuisance>}]``
  finds them as it finds a simulator's shape variations. Nuisance benchmarks no nuisance parameter names
  are listed in the provenance only.
- ``observables/`` → x columns with MadMiner's names (definitions in the provenance);
  ``samples/sampling_benchmarks`` → ``labels/benchmark`` (−1 for background); signal/background →
  ``labels/process`` (processes ``signal`` and, where there is background, ``background``).
- negative weights declare ``negative_weights`` on the store only where present; NaN/inf are the
  store's errors, naming the MadMiner file and the rows.

Example:
    >>> store = import_madminer("mm.h5", "events.h5")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assay.exceptions import ConfigError, MorphingError, StoreError
from assay.io.madminer_layout import MadMinerFormatError, MadMinerSetup, iter_samples, read_setup
from assay.morphing import Morpher, morphing_components
from assay.parameters import Parameter, ParameterSpace
from assay.provenance import file_sha256, make_provenance
from assay.store import EventStore

if TYPE_CHECKING:
    from assay.config import RunConfig

__all__ = [
    "MadMinerFormatError",
    "check_morphing",
    "config_parameters",
    "import_madminer",
    "madminer_space",
    "nuisance_factors",
]

logger = logging.getLogger(__name__)

MORPHING_RTOL = 1e-6  # agreement of MadMiner's and assay's morphing weights, relative to max(1, |c|)
CONFIG_SECTIONS = ("seed", "parameters", "benchmarks", "morphing", "sampling")  # as import-lhe's provenance
NUISANCE_CLIP = 10.0  # MadMiner's NuisanceMorpher clips a and b to [-10, 10] (sanitize_array)


def madminer_space(setup: MadMinerSetup, parameters: Sequence[Parameter] | None = None) -> ParameterSpace:
    """The file's parameters (or ``parameters``, same names) with its physics benchmarks."""
    params = (
        list(parameters) if parameters is not None else [Parameter(p.name, p.range) for p in setup.parameters]
    )
    return ParameterSpace(tuple(params)).with_benchmarks(setup.physics_thetas, setup.physics_names)


def check_morphing(setup: MadMinerSetup) -> Morpher | None:
    """assay's :class:`Morpher` of the file's components at its physics benchmarks, checked against the
    file's ``morphing_matrix``; None where the file has no morphing.

    Raises:
        MorphingError: naming the file: a singular basis, or a matrix that is not a morphing of these
            components at these benchmarks (the largest difference and where).
    """
    if setup.components is None or setup.morphing_matrix is None:
        return None
    where = f"{setup.path}: morphing/morphing_matrix"
    try:
        morpher = Morpher(setup.components, setup.physics_thetas)
    except MorphingError as err:
        raise MorphingError(f"{setup.path}: morphing/components at the physics benchmarks: {err}") from err
    ranges = np.array([p.range for p in setup.parameters])
    rng = np.random.default_rng(0)
    thetas = np.vstack(
        [setup.physics_thetas, ranges[:, 0] + np.diff(ranges).T * rng.random((200, len(ranges)))]
    )
    phi = np.prod(thetas[:, None, :] ** setup.components[None], axis=-1)  # φ_c(θ) (n_theta, n_components)
    ours, theirs = morpher.morphing_weights(thetas), phi @ setup.morphing_matrix
    scale = max(1.0, float(np.abs(ours).max()))
    diff = np.abs(ours - theirs)
    if diff.max() <= MORPHING_RTOL * scale:
        return morpher
    identity = setup.morphing_matrix @ morpher.matrix  # M Φ: 1 for any valid morphing of these components
    residual = float(np.abs(identity - np.eye(len(identity))).max())
    if len(setup.physics) > len(setup.components) and residual <= MORPHING_RTOL * scale:
        logger.warning(
            "%s: MadMiner averages %d bases; assay morphs the same polynomial by least squares "
            "(weights differ by up to %.3g)",
            where,
            len(setup.physics) // len(setup.components),
            diff.max(),
        )
        return morpher
    row, col = np.unravel_index(np.argmax(diff), diff.shape)
    raise MorphingError(
        f"{where}: does not morph components {setup.components.tolist()} at the physics benchmarks "
        f"{dict(zip(setup.physics_names, setup.physics_thetas.tolist()))}: at θ = {thetas[row].tolist()} the "
        f"weight of {setup.physics_names[col]!r} is {theirs[row, col]:.6g} from the file, "
        f"{ours[row, col]:.6g} from the components (max |M Φ - 1| = {residual:.3g}); expected the matrix "
        f"MadMiner's PhysicsMorpher computes for these benchmarks (were benchmarks or components edited "
        f"after set_morphing?)"
    )


def nuisance_factors(setup: MadMinerSetup, weights: np.ndarray) -> np.ndarray:
    """F^± = dσ(x|θ, ν_i = ±1)/dσ(x|θ, 0) per event and nuisance parameter, ``(n, n_nuisances, 2)``.

    MadMiner's ``NuisanceMorpher``: with one benchmark (ν = +1), a = log(w₊/w_ref), b = 0; with two,
    a = ½ log(w₊/w₋), b = ½ log(w₊ w₋/w_ref²); NaN/inf → 0, then clipped to ±10; F^± = exp(±a + b).

    Args:
        setup: the file's settings (nuisance parameters, reference benchmark).
        weights: all benchmark weights ``(n, n_benchmarks)`` (any common per-event scale).
    """
    names = list(setup.benchmark_names)
    ref = weights[:, names.index(setup.reference)][:, None]
    pos = weights[:, [names.index(n.benchmark_pos) for n in setup.nuisances]]
    two = np.array([n.benchmark_neg is not None for n in setup.nuisances])
    neg = weights[:, [names.index(n.benchmark_neg or n.benchmark_pos) for n in setup.nuisances]]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(two, 0.5 * np.log(pos / neg), np.log(pos / ref))
        b = np.where(two, 0.5 * np.log(pos * neg / ref**2), 0.0)
    a, b = (
        np.clip(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), -NUISANCE_CLIP, NUISANCE_CLIP)
        for v in (a, b)
    )
    return np.exp(np.stack([a + b, -a + b], axis=-1))


def config_parameters(setup: MadMinerSetup, cfg: RunConfig, where: str = "the config") -> list[Parameter]:
    """Check an assay config against the file; its parameters (ranges, units, SM values) replace the file's.

    Args:
        setup: the file's settings.
        cfg: the config (its parameters, benchmarks and ``morphing`` components are checked).
        where: the config file, for messages.

    Raises:
        ConfigError: other parameter names or order, a configured benchmark the file lacks or has at
            another θ (an implicit ``sm`` is not required), or other morphing components than the file's.
    """
    names = [p.name for p in cfg.parameters]
    if names != setup.parameter_names:
        raise ConfigError(
            f"{where}: parameters are {names}; {setup.path} has {setup.parameter_names}: use the "
            f"MadMiner names in the same order"
        )
    from assay.config import check_benchmarks

    thetas = dict(zip(setup.physics_names, setup.physics_thetas))
    check_benchmarks(cfg, thetas, file=setup.path, where=f"{where}: ",
                     missing=f"a physics benchmark of {setup.path} ({setup.physics_names})")  # fmt: skip
    m = cfg.morphing
    ours = {
        tuple(c)
        for c in morphing_components(len(names), m.max_power, m.max_overall_power, m.power_step).tolist()
    }
    if setup.components is not None and ours != {tuple(c) for c in setup.components.tolist()}:
        raise ConfigError(
            f"{where}: morphing spans components {sorted(ours)}, {setup.path} has "
            f"{sorted(map(tuple, setup.components.tolist()))}; set morphing.max_power / max_overall_power "
            f"to match"
        )
    return list(cfg.parameter_space().parameters)


def import_madminer(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    config: RunConfig | None = None,
    where: str = "the config",
    chunk_events: int = 100_000,
) -> EventStore:
    """Read a MadMiner HDF5 file into an EventStore (the mapping is this module's docstring).

    Args:
        source: the MadMiner file (``LHEReader.save`` / ``DelphesReader.save`` / ``combine_and_shuffle``).
        output: the EventStore to write (atomically, through ``<output>.partial``).
        overwrite: replace ``output`` if it exists.
        config: an assay config the events are imported for: checked against the file
            (:func:`config_parameters`), its parameters (ranges, units, SM values) are stored instead of
            the file's, and its event-shaping sections join the store's provenance.
        where: the config's file, for messages.
        chunk_events: events read and written at a time (memory stays bounded).

    Returns:
        The finished, opened :class:`EventStore`.

    Raises:
        MadMinerFormatError: a missing or inconsistent group or dataset (file and dataset named).
        MorphingError: the file's morphing matrix does not morph its components at its benchmarks.
        ConfigError: ``config`` does not match the file.
        StoreError: NaN/inf in the observables or weights (the MadMiner rows named), ``output`` exists.
    """
    if Path(output).exists() and not overwrite:  # before two passes over a large file
        raise StoreError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    setup = read_setup(source)
    parameters = None if config is None else config_parameters(setup, config, where)
    space, morpher = madminer_space(setup, parameters), check_morphing(setup)
    negative = _has_negative(setup, chunk_events)
    n_comp = morpher.n_components if morpher is not None else 1
    extras = {"components": (n_comp,)} if morpher is not None else {}
    if setup.nuisances:
        extras["variations"] = (len(setup.nuisances), 2, n_comp)
    processes = ["signal", "background"] if setup.background_events else ["signal"]
    writer = EventStore.create(
        output,
        observables=setup.observables,
        benchmarks=setup.physics_names,
        processes=processes,
        parameters=space.to_dict(),
        morphing=None if morpher is None else morpher.to_dict(),
        config=_provenance(setup, negative),
        extras=extras,
        compression="lzf",
        overwrite=overwrite,
        negative_weights=True if negative else None,
        provenance=make_provenance(
            config=config, sections=CONFIG_SECTIONS if config else None, inputs=[source]
        ),
    )
    factors = setup.sampling_factors()
    with writer:
        for start, x, weights, ids in iter_samples(setup, chunk_events):
            scale = factors[ids] if ids is not None else np.ones(len(x))  # ids -1 → the background's 1.0
            physics = weights[:, setup.physics] * scale[:, None]
            chunk: dict[str, np.ndarray] = {}
            if morpher is not None:
                chunk["components"] = morpher.component_values(physics)
            if setup.nuisances:
                chunk["variations"] = np.repeat(nuisance_factors(setup, weights)[..., None], n_comp, axis=-1)
            labels = _labels(ids, len(x))
            try:
                writer.append(x, physics, extras=chunk, **labels)
            except StoreError as err:
                rows = f"samples/ rows {start}-{start + len(x) - 1}"
                raise StoreError(f"{setup.path}: {rows}, written to {writer.partial_path}: {err}") from err
        store = writer.finalize()
    logger.info(
        "%s → %s: %d events, %d benchmarks, %d nuisance parameters",
        setup.path,
        output,
        store.n_events,
        store.n_benchmarks,
        len(setup.nuisances),
    )
    return store


def _labels(ids: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """``labels/process`` (1 = background where the sampling id is −1) and ``labels/benchmark``."""
    if ids is None:
        return {"process": np.zeros(n, dtype=np.int32), "benchmark": np.full(n, -1, dtype=np.int32)}
    return {"process": (ids < 0).astype(np.int32), "benchmark": ids.astype(np.int32)}


def _has_negative(setup: MadMinerSetup, chunk_events: int) -> bool:
    """Whether any physics weight is < 0 (a pass over ``samples/weights``)."""
    return any(np.any(w[:, setup.physics] < 0) for _, _, w, _ in iter_samples(setup, chunk_events))


def _provenance(setup: MadMinerSetup, negative: bool) -> dict[str, Any]:
    """The store's ``config``: what the file held beyond the store's columns, and the variations' names."""
    used = {b for n in setup.nuisances for b in (n.benchmark_pos, n.benchmark_neg) if b}
    nuisance_benchmarks = [n for n, f in zip(setup.benchmark_names, setup.is_nuisance) if f]
    record = {
        "file": str(setup.path.resolve()),
        "sha256": file_sha256(setup.path),
        "parameters": [
            {
                "name": p.name,
                "lha_block": p.lha_block,
                "lha_id": p.lha_id,
                "max_power": p.max_power,
                "transform": p.transform,
            }
            for p in setup.parameters
        ],
        "reference_benchmark": setup.reference,
        "observables": dict(zip(setup.observables, setup.definitions)),
        "nuisance_parameters": [vars(n) for n in setup.nuisances],
        "unused_nuisance_benchmarks": [n for n in nuisance_benchmarks if n not in used],
        "signal_events": setup.signal_events.tolist(),
        "background_events": setup.background_events,
        "sampling_factors": setup.sampling_factors().tolist() if setup.has_sampling_ids else None,
        "negative_weights": negative,
        **setup.provenance,
    }
    config: dict[str, Any] = {"import_madminer": record}
    if setup.nuisances:
        config["run"] = {"variations": [n.name for n in setup.nuisances]}
    return config
