"""WH → ℓνbb̄ events from LHE files (e.g. MadGraph + SMEFTsim with reweighting) into an EventStore.

MadGraph's reweighting module stores, per event, the weight at every benchmark in a
``<rwgt>`` block; these become the EventStore's weight columns, exactly as for events
from the embedded simulator, so the whole chain (morphing, sampling, estimators) is the
same. Weights are normalised per file so that Σ_events XWGTUP equals the file's
``<init>`` cross section (MadGraph writes either σ per event or σ/N per event).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assay.config import RunConfig
from assay.io.lhe import LHEError, LHEEvents, LHEInit, read_lhe
from assay.morphing import Morpher
from assay.observables import WH_OBSERVABLES, wh_observables
from assay.parameters import ParameterSpace
from assay.provenance import make_provenance
from assay.simulators.wh import WHEvents
from assay.store import EventStore

__all__ = ["LHE_EXTRAS", "import_lhe", "import_lhe_events", "wh_final_state", "wh_to_lhe"]

LHE_EXTRAS = {"lepton": (4,), "neutrino": (4,), "b": (4,), "bbar": (4,), "p1": (4,), "p2": (4,)}
LHE_SECTIONS = ("seed", "parameters", "benchmarks", "morphing", "sampling")  # the config in the provenance


def _pick(events: LHEEvents, path: Path, name: str, ids: Sequence[int], status: int = 1) -> np.ndarray:
    """Index (n_events,) of the one particle per event with |id| in ``ids`` (signed ids if negative given)."""
    match = np.isin(events.pdgid, ids) & (events.status == status)
    counts = match.sum(axis=1)
    if np.any(counts != 1):
        bad = int(np.argmax(counts != 1))
        raise LHEError(
            f"{path}: event {bad}: expected exactly one {name} (PDG {list(ids)}, status {status}), "
            f"found {counts[bad]}"
        )
    return np.argmax(match, axis=1)


def wh_final_state(events: LHEEvents, path: Path | str = "<events>") -> dict[str, np.ndarray]:
    """Lepton, neutrino, b, b̄ and incoming momenta ``(n, 4)`` and the lepton charge ``(n,)``."""
    path = Path(path)
    rows = np.arange(events.n_events)
    take = {
        "lepton": _pick(events, path, "charged lepton", [11, -11, 13, -13]),
        "neutrino": _pick(events, path, "neutrino", [12, -12, 14, -14]),
        "b": _pick(events, path, "b quark", [5]),
        "bbar": _pick(events, path, "b antiquark", [-5]),
    }
    out = {name: events.momenta[rows, idx] for name, idx in take.items()}
    incoming = np.argsort(events.status != -1, axis=1, kind="stable")[:, :2]
    out["p1"], out["p2"] = events.momenta[rows, incoming[:, 0]], events.momenta[rows, incoming[:, 1]]
    out["charge"] = -np.sign(events.pdgid[rows, take["lepton"]]).astype(float)  # ℓ⁺ has a negative id
    return out


def _benchmark_weights(events: LHEEvents, path: Path, rwgt_ids: Sequence[str], xsec_pb: float) -> np.ndarray:
    missing = [r for r in rwgt_ids if r not in events.rwgt_ids]
    if missing:
        raise LHEError(f"{path}: reweighting ids {missing} not in the file; it has {list(events.rwgt_ids)}")
    columns = [events.rwgt_ids.index(r) for r in rwgt_ids]
    scale = xsec_pb / events.weight.sum()
    return events.rwgt[:, columns] * scale


def import_lhe_events(
    cfg: RunConfig, files: Sequence[str | os.PathLike], output: str | os.PathLike, *, overwrite: bool = False
) -> EventStore:
    """``assay import-lhe CONFIG FILES -o OUTPUT``: :func:`import_lhe` with the config's benchmarks
    (their names are the files' ``<weight id>``s), its morphing components and negative-weight setting.

    Example (docs/tutorial.md): ``assay.import_lhe_events(cfg, ["wh.lhe.gz"], "events.h5")``, then
    ``simulator: {kind: events, path: events.h5}`` in the config feeds it to :func:`assay.run_pipeline`.
    """
    from assay.pipeline import basis_components

    space = cfg.parameter_space()
    morpher = Morpher(basis_components(cfg), space.benchmark_thetas)
    return import_lhe(files, output, space, morpher, overwrite=overwrite,
                      negative_weights=cfg.sampling.allow_negative_weights, config=cfg)  # fmt: skip


def import_lhe(
    files: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    space: ParameterSpace,
    morpher: Morpher,
    *,
    rwgt_ids: Mapping[str, str] | None = None,
    overwrite: bool = False,
    negative_weights: bool = False,
    config: Any = None,
) -> EventStore:
    """Read WH LHE files into an EventStore with the seed-000 parton-level observables.

    Args:
        files: LHE files, one per channel (W⁺/W⁻, e/μ): their cross sections add up.
        output: the EventStore file to write.
        space: parameters and benchmarks (the weight columns, in this order).
        morpher: morphing basis of those benchmarks (stored in the file).
        rwgt_ids: benchmark name → ``<weight id>`` in the files; default: the names themselves.
        overwrite: replace ``output`` if it exists.
        negative_weights: the files may hold negative weights (NLO, interference; the config's
            ``sampling.allow_negative_weights``); otherwise one is an error naming the row.
        config: the run configuration (:class:`~assay.config.RunConfig`) the import is made for; its
            event-shaping sections (seed, parameters, benchmarks, morphing) go into the file's provenance,
            with the SHA-256 of every LHE file (:mod:`assay.provenance`).

    Returns:
        The opened store; extras hold the parton momenta (``LHE_EXTRAS``).
    """
    names = space.benchmark_names
    ids = [(rwgt_ids or {}).get(n, n) for n in names]
    writer = EventStore.create(
        output, observables=list(WH_OBSERVABLES), benchmarks=names, processes=["wh"],
        parameters=space.to_dict(), morphing=morpher.to_dict(),
        config={"import_lhe": [str(f) for f in files], "rwgt_ids": ids}, extras=LHE_EXTRAS,
        overwrite=overwrite, negative_weights=negative_weights,
        provenance=make_provenance(config=config, sections=LHE_SECTIONS if config is not None else None,
                                   inputs=files),
    )  # fmt: skip
    with writer:
        for file in files:
            events, init = read_lhe(file, rwgt_ids=ids)
            xsec = sum(p[0] for p in init.processes)
            weights = _benchmark_weights(events, Path(file), ids, xsec)
            fs = wh_final_state(events, file)
            x = wh_observables(fs["lepton"], fs["b"], fs["bbar"], fs["neutrino"], fs["charge"])
            writer.append(x, weights, extras={k: fs[k] for k in LHE_EXTRAS})
    return EventStore(output)


def wh_to_lhe(
    ev: WHEvents, sqrt_s: float = 13000.0, benchmark_names: Sequence[str] | None = None
) -> tuple[LHEEvents, LHEInit]:
    """WH events as LHE events for :func:`assay.io.lhe.write_lhe`, optionally with ``<rwgt>`` weights.

    Particles: q q̄' (status −1, colour singlet: colour 501 in, anticolour 501 in) → W± (2) h (2);
    W → ℓ ν and h → b b̄ (colour 502, status 1). Masses: W and h from their momenta, b from its momentum
    (4.7 GeV), partons and leptons massless. XWGTUP is the first benchmark's weight (pb); IDWTUP = 3.
    With ``benchmark_names`` every event carries its weights at all benchmarks in MadGraph's
    ``<rwgt>`` format, ids = the names, so :func:`import_lhe` reads them back like MadGraph output.

    Args:
        ev: parton-level events, lab frame.
        sqrt_s: collider energy in GeV (beam energies √s/2).
        benchmark_names: one id per column of ``ev.weights``; None writes no ``<rwgt>`` block.

    Returns:
        ``(events, init)``.
    """
    n = len(ev)
    neutrino_id = -np.sign(ev.lepton_id) * (np.abs(ev.lepton_id) + 1)  # ℓ⁺ (−11) ↔ ν_e (12)
    pdgid = np.column_stack([ev.id1, ev.id2, 24 * ev.charge, np.full(n, 25), ev.lepton_id, neutrino_id,
                             np.full(n, 5), np.full(n, -5)])  # fmt: skip
    mothers = np.tile([[0, 0], [0, 0], [1, 2], [1, 2], [3, 3], [3, 3], [4, 4], [4, 4]], (n, 1, 1))
    colors = np.zeros((n, 8, 2), dtype=np.int64)
    quark_first = (ev.id1 > 0)[:, None]
    # q q̄' colour singlet: quark colour 501 ↔ antiquark anticolour 501
    colors[:, 0] = np.where(quark_first, [501, 0], [0, 501])
    colors[:, 1] = np.where(quark_first, [0, 501], [501, 0])
    colors[:, 6], colors[:, 7] = [502, 0], [0, 502]  # h → b b̄
    momenta = np.stack([ev.p1, ev.p2, ev.w_boson, ev.higgs, ev.lepton, ev.neutrino, ev.b, ev.bbar], axis=1)
    m2 = momenta[..., 0] ** 2 - np.sum(momenta[..., 1:] ** 2, axis=-1)
    masses = np.sqrt(np.maximum(m2, 0.0)) * [0, 0, 1, 1, 0, 0, 1, 1]  # massless partons and leptons
    events = LHEEvents(
        pdgid=pdgid, status=np.tile([-1, -1, 2, 2, 1, 1, 1, 1], (n, 1)), mothers=mothers, colors=colors,
        momenta=momenta, masses=masses, spins=np.full((n, 8), 9.0), weight=np.abs(ev.weights[:, 0]),
        scale=ev.scale, aqed=np.full(n, 1 / 128.0), aqcd=np.full(n, 0.118), process_id=np.ones(n),
        rwgt=None if benchmark_names is None else ev.weights, rwgt_ids=tuple(benchmark_names or ()),
    )  # fmt: skip
    sigma, w_max = max(events.weight.sum(), 1e-300), max(events.weight.max(initial=0.0), 1e-300)
    init = LHEInit(
        beam_energies=[sqrt_s / 2, sqrt_s / 2], weighting_strategy=3, processes=[(sigma, 0.0, w_max, 1)]
    )
    return events, init
