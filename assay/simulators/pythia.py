"""Pythia 8 shower and hadronization of WH events, and the backgrounds of seed 000, at hadron level.

Seed 000 ("Analysis Overview") showers its MadGraph events with Pythia 8 and simulates the detector with
Delphes; its backgrounds are semileptonic tt̄, s-channel single top and W + (b-)jets. Here:

- :func:`shower_lhe` showers and hadronizes the events of an LHE file (Pythia 8.3, arXiv:2203.11601) and
  yields their final-state particles batch by batch, each event labelled with its LHE event index;
- :func:`showered_wh_batch` writes parton-level :class:`~assay.simulators.wh.WHEvents` to a temporary LHE
  file, showers it and reconstructs lepton, b-jets and MET (:mod:`assay.simulators.jets`);
- :class:`PythiaWHBatchSimulator` and :class:`BackgroundBatchSimulator` are
  :class:`~assay.generation.BatchSimulator` s: reconstruction, b-tagging and lepton efficiencies, then the
  seed 000 :class:`~assay.simulators.detector.Selection`.

Backgrounds use Pythia's built-in LO processes (:data:`BACKGROUNDS`). Pythia cannot force exactly one
leptonic W in tt̄: both W decay to e/μ ν or quarks (τ switched off) and the reconstruction keeps events
with exactly one isolated lepton, which selects the semileptonic channel (plus dileptonic events with a
lost lepton). The W of single top and W + jets decays to e/μ ν only. Pythia's σ includes the open
branching fractions.

Example:
    >>> PROCESSES.index("ttbar"), BACKGROUNDS["single_top_s"][0]
    (1, 'Top:ffbar2tqbar(s:W) = on')
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from assay.io.lhe import write_lhe
from assay.io.wh_lhe import wh_to_lhe
from assay.simulators.base import EventBatch
from assay.simulators.detector import Selection
from assay.simulators.jets import JetReconstruction, Reconstructed, is_b_hadron
from assay.simulators.wh import WHEvents, WHSimulator
from assay.simulators.wh_batch import (
    WEIGHT_LIKE_EXTRAS,
    WH_EXTRAS,
    WHLayout,
    select_and_observe,
    truth_extras,
)

__all__ = [
    "BACKGROUNDS",
    "PROCESSES",
    "BackgroundBatchSimulator",
    "PythiaWHBatchSimulator",
    "ShowerBatch",
    "shower_lhe",
    "showered_wh_batch",
]

logger = logging.getLogger(__name__)

MB_TO_PB = 1e9
_MAX_SEED = 900_000_000  # Pythia's Random:seed range
_W_LEPTONIC = ("24:onMode = off", "24:onIfAny = 11 13")
BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13"),
    "single_top_s": ("Top:ffbar2tqbar(s:W) = on", *_W_LEPTONIC),
    "single_top_t": ("Top:qq2tq(t:W) = on", *_W_LEPTONIC),
    "wjets": ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
              "PhaseSpace:pTHatMin = 20.0", *_W_LEPTONIC),
}  # fmt: skip
"""Pythia settings of each background (LO; W + jets with p̂_T > 20 GeV)."""
PROCESSES: tuple[str, ...] = ("wh", *BACKGROUNDS)
"""Process labels shared by signal and background stores (``wh`` is label 0 in both)."""


def _pythia(settings: Sequence[str], seed: int):
    """An initialized, quiet ``pythia8mc.Pythia`` with ``settings`` and the random seed."""
    import pythia8mc

    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"seed: expected an integer in [0, {_MAX_SEED}] (Pythia's range), got {seed}")
    py = pythia8mc.Pythia("", False)
    for line in ("Print:quiet = on", *settings, "Random:setSeed = on", f"Random:seed = {seed}"):
        if not py.readString(line):
            raise ValueError(f"Pythia rejected the setting {line!r}; check its spelling in the Pythia manual")
    if not py.init():
        raise RuntimeError(f"Pythia initialization failed with settings {list(settings)}")
    return py


def _level_settings(mpi: bool, hadronize: bool) -> tuple[str, ...]:
    on = {True: "on", False: "off"}
    return f"PartonLevel:MPI = {on[mpi]}", f"HadronLevel:all = {on[hadronize]}"


def _final_particles(events: ak.Array) -> ak.Array:
    """Final-state particles plus the (non-final) b-hadrons of each event, the input of jets.reconstruct."""
    prt = events.prt
    keep = (prt.status > 0) | is_b_hadron(prt.id)
    p = prt.p
    momenta = {"px": p["px"], "py": p["py"], "pz": p["pz"], "E": p["e"]}
    return ak.zip({**momenta, "id": prt.id, "final": prt.status > 0})[keep]


@dataclass(frozen=True)
class ShowerBatch:
    """Showered events of one batch.

    Attributes:
        index: (n_events,) int, 0-based position of each event in the LHE file.
        particles: (n_events, var) records ``px, py, pz, E`` (GeV), ``id``, ``final``: final-state
            particles and, non-final, the b-hadrons of the event history.
        failed: LHE indices of the events of this batch Pythia failed on (not in ``index``).
    """

    index: np.ndarray
    particles: ak.Array
    failed: np.ndarray


def shower_lhe(
    path: str | os.PathLike,
    n_events: int,
    *,
    seed: int,
    mpi: bool = True,
    hadronize: bool = True,
    batch_size: int = 500,
    settings: Sequence[str] = (),
) -> Iterator[ShowerBatch]:
    """Shower (and hadronize) the first ``n_events`` events of an LHE file, in file order.

    Each Pythia ``next()`` reads exactly one LHE event (its parton-level retries reuse it); Pythia's
    process-level counter ``nTried`` counts the events read, so every batch is checked to hold one entry
    per LHE event and failed events are reported by index instead of shifting the others. A file with
    fewer events ends the iteration at its end (Pythia's "reached end of Les Houches Events File").

    Args:
        path: LHE file (plain or ``.gz``).
        n_events: number of events to shower at most.
        seed: Pythia random seed in [0, 900000000].
        mpi: multiple parton interactions (underlying event).
        hadronize: hadronization and hadron decays; off: the final state is partons.
        batch_size: events per yielded batch.
        settings: extra Pythia settings (e.g. ``"PartonLevel:ISR = off"``).

    Yields:
        :class:`ShowerBatch` es.

    Raises:
        RuntimeError: Pythia read more or fewer LHE events than it returned (correspondence lost).
    """
    frame = ("Beams:frameType = 4", f"Beams:LHEF = {os.fspath(path)}")
    py = _pythia((*frame, *_level_settings(mpi, hadronize), *settings), seed)
    done = 0
    while done < n_events:
        size = min(batch_size, n_events - done)
        raw = py.nextBatch(size, "none")
        info = py.infoPython()  # a snapshot: fetch it after the batch
        n_read = info.nTried() - done
        at_end = info.atEndOfFile()
        if n_read == 0 and at_end:
            break
        failed = ak.to_numpy(ak.is_none(raw, axis=0))
        if n_read != size and not (at_end and n_read < size and failed[n_read:].all()):
            raise RuntimeError(
                f"{path}: Pythia read {n_read} LHE events for the {size} events {done}..{done + size - 1}; "
                "the event ↔ LHE correspondence is lost (an event was rejected at process level?)"
            )
        ok = ~failed[:n_read]
        index = done + np.arange(n_read)
        if (~ok).any():
            logger.warning("%s: Pythia failed on LHE events %s; they are dropped", path, index[~ok].tolist())
        yield ShowerBatch(index[ok], _final_particles(ak.drop_none(raw[:n_read], axis=0)), index[~ok])
        done += n_read
        if at_end:
            break


def showered_wh_batch(
    events: WHEvents,
    *,
    seed: int,
    sqrt_s: float = 13000.0,
    mpi: bool = True,
    hadronize: bool = True,
    settings: Sequence[str] = (),
    reconstruction: JetReconstruction | None = None,
) -> tuple[Reconstructed, np.ndarray]:
    """Shower parton-level WH events through a temporary LHE file and reconstruct them.

    Args:
        events: parton-level events (lab frame, beams of ``sqrt_s``/2 GeV).
        seed, mpi, hadronize, settings: as in :func:`shower_lhe`.
        sqrt_s: collider energy in GeV.
        reconstruction: object definitions (default :class:`JetReconstruction`).

    Returns:
        ``(reco, index)``: the reconstructed events and, (n_kept,) int, the position in ``events`` of
        each (events Pythia fails on are dropped).
    """
    reconstruction = reconstruction or JetReconstruction()
    lhe, init = wh_to_lhe(events, sqrt_s)
    with tempfile.TemporaryDirectory(prefix="assay-wh-") as tmp:
        path = write_lhe(Path(tmp) / "wh.lhe", lhe, init)
        options = {"seed": seed, "mpi": mpi, "hadronize": hadronize, "settings": settings}
        done = [(reconstruction.reconstruct(b.particles), b.index)  # one batch of particles in memory
                for b in shower_lhe(path, len(events), **options) if len(b.index)]  # fmt: skip
    if not done:
        raise RuntimeError(f"showered_wh_batch: Pythia failed on all {len(events)} events")
    return Reconstructed.concatenate([r for r, _ in done]), np.concatenate([i for _, i in done])


def _identified(reco: Reconstructed, rng: np.random.Generator, b_tag: float, lepton: float) -> np.ndarray:
    """Exactly one isolated lepton (identified with probability ``lepton``), two b-jets, each tagged with
    probability ``b_tag`` (Delphes-like, arXiv:1907.05120), (n_events,) bool."""
    u = rng.random((len(reco), 3))
    return reco.complete & (reco.n_leptons == 1) & np.all(u < [lepton, b_tag, b_tag], axis=1)


@dataclass
class PythiaWHBatchSimulator(WHLayout):
    """WH events at hadron level: parton-level WH → Pythia shower → jets → efficiencies → selection.

    Weights are the parton-level weights at every benchmark (the shower is unitary), scaled by
    n_generated / n_showered to make up for the rare events Pythia fails on; extras are the parton truth.

    Args:
        simulator: the parton-level generator.
        selection: event selection (default seed 000's).
        reconstruction: object definitions.
        b_tag_efficiency, lepton_efficiency: per b-jet tagging and lepton identification probabilities.
        mpi, hadronize, settings: Pythia options (see :func:`shower_lhe`).
    """

    simulator: WHSimulator
    selection: Selection = field(default_factory=Selection)
    reconstruction: JetReconstruction = field(default_factory=JetReconstruction)
    b_tag_efficiency: float = 0.77
    lepton_efficiency: float = 1.0
    mpi: bool = True
    hadronize: bool = True
    settings: tuple[str, ...] = ()
    processes: list[str] = field(default_factory=lambda: ["wh"])

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        ev = self.simulator.simulate(n_events, rng)
        reco, index = showered_wh_batch(
            ev, seed=int(rng.integers(_MAX_SEED)), sqrt_s=self.simulator.sqrt_s, mpi=self.mpi,
            hadronize=self.hadronize, settings=self.settings, reconstruction=self.reconstruction,
        )  # fmt: skip
        weights = ev.weights[index] * (n_events / len(index))
        identified = _identified(reco, rng, self.b_tag_efficiency, self.lepton_efficiency)
        x, mask, flow = select_and_observe(reco.detector_events(identified), weights[:, 0], self.selection,
                                           light_jet_pt=reco.leading_light_jet_pt())  # fmt: skip
        extras = {k: v[index][mask] for k, v in truth_extras(ev).items()}
        return EventBatch(x, weights[mask], extras=extras, cut_flow=flow, weight_like=WEIGHT_LIKE_EXTRAS)


@dataclass
class BackgroundBatchSimulator(WHLayout):
    """A background of :data:`BACKGROUNDS` generated, showered and hadronized by Pythia, then selected.

    Every event weighs σ_Pythia / N in every benchmark column (backgrounds do not depend on θ; morphing
    keeps them constant because Σ_k c_k(θ) = 1); σ is Pythia's estimate from the batch itself (also the
    ``total_weight`` of the batch's cut flow). Extras are zeros except ``components`` = (σ/N, 0, …): a
    θ-independent dσ. Cut flows travel with the batches (``EventBatch.cut_flow``), sum them with
    :class:`~assay.simulators.wh_batch.CutFlowCounter`.

    Args:
        process: a key of :data:`BACKGROUNDS`.
        n_benchmarks: number of weight columns.
        sqrt_s: collider energy in GeV.
        selection, reconstruction, b_tag_efficiency, lepton_efficiency: as in
            :class:`PythiaWHBatchSimulator`.
        mpi, hadronize, settings: Pythia options; MPI off by default (~10× faster).
        chunk_size: events showered and reconstructed at a time (bounds memory).
        processes: process labels of the store; the batch label is ``processes.index(process)``.
    """

    process: str
    n_benchmarks: int
    sqrt_s: float = 13000.0
    selection: Selection = field(default_factory=Selection)
    reconstruction: JetReconstruction = field(default_factory=JetReconstruction)
    b_tag_efficiency: float = 0.77
    lepton_efficiency: float = 1.0
    mpi: bool = False
    hadronize: bool = True
    settings: tuple[str, ...] = ()
    chunk_size: int = 1000
    processes: list[str] = field(default_factory=lambda: list(PROCESSES))

    def __post_init__(self) -> None:
        if self.process not in BACKGROUNDS:
            raise ValueError(f"process: expected one of {sorted(BACKGROUNDS)}, got {self.process!r}")
        if self.process not in self.processes:
            raise ValueError(f"processes {self.processes} must contain the process {self.process!r}")

    def generate(self, n_events: int, seed: int) -> tuple[Reconstructed, float]:
        """Generate and reconstruct ``n_events``; returns ``(reco, σ in pb)``."""
        settings = (f"Beams:eCM = {self.sqrt_s}", *BACKGROUNDS[self.process],
                    *_level_settings(self.mpi, self.hadronize), *self.settings)  # fmt: skip
        py, parts = _pythia(settings, seed), []
        for start in range(0, n_events, self.chunk_size):
            raw = py.nextBatch(min(self.chunk_size, n_events - start), "skip")
            parts.append(self.reconstruction.reconstruct(_final_particles(raw)))
        return Reconstructed.concatenate(parts), py.infoPython().sigmaGen() * MB_TO_PB

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        reco, sigma = self.generate(n_events, int(rng.integers(_MAX_SEED)))
        n = len(reco)
        weight = np.full(n, sigma / n)
        identified = _identified(reco, rng, self.b_tag_efficiency, self.lepton_efficiency)
        x, _, flow = select_and_observe(reco.detector_events(identified), weight, self.selection,
                                        light_jet_pt=reco.leading_light_jet_pt())  # fmt: skip
        extras = {k: np.zeros((len(x), *shape)) for k, shape in WH_EXTRAS.items()}
        extras["components"][:, 0] = sigma / n
        weights = np.full((len(x), self.n_benchmarks), sigma / n)
        label = self.processes.index(self.process)
        return EventBatch(
            x, weights, process=label, extras=extras, cut_flow=flow, weight_like=WEIGHT_LIKE_EXTRAS
        )
