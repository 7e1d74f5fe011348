"""Seed 000's backgrounds at detector level from Pythia 8's hard process, through the signal's detector.

Seed 000 ("Analysis Overview", "Monte Carlo samples") has three backgrounds: semileptonic tt̄, s-channel
single top and W + (b-)jets. The shower-level path
(:class:`~assay.simulators.pythia.BackgroundBatchSimulator`, ~600 events/s) is too slow for the demo,
and its truth b-tagging never tags a W + light-jet event. Here:

- **tt̄** (``Top:gg2ttbar``, ``Top:qqbar2ttbar``), **single top** s-channel (``Top:ffbar2tqbar(s:W)``) and
  t-channel (``Top:qq2tq(t:W)``): Pythia's hard process with its resonance decays (t → W b, W → ℓν or
  q q̄'), no ISR, FSR, MPI, hadronisation or primordial k_T; τ decays of the W are off. tt̄ is made
  semileptonic by keeping the events with exactly one charged lepton among the decay products (a
  generator-level filter: σ is Pythia's σ times the kept fraction, as a semileptonic sample's would be).
- **W + jets**: ``WeakBosonAndParton:qqbar2Wg`` and ``qg2Wq`` (p̂_T > 20 GeV; q g → W q includes
  s g → W c) plus Pythia's ISR and FSR at parton level (no MPI, no hadronisation). Pythia has no
  W + 2-parton hard process, and W + 1 parton alone never gives two jets; the shower's g → b b̄ and
  g → c c̄ splittings give W + b b̄ / c c̄, and light jets pass through the mistag rates.

The final-state quarks and gluons are clustered into anti-k_T R = 0.4 jets (FastJet), each labelled b,
c or light by the quarks within ΔR < 0.4 (:func:`~assay.simulators.jets.flavour_labels`). Lepton and
jets go through the *same* :class:`~assay.simulators.detector.DetectorModel` as the signal (smearing,
lepton identification, MET = Σ p⃗_T^ν − the visible objects' mismeasurement + soft term), then seed 000's
:class:`~assay.simulators.detector.Selection` and its light-jet veto (p_T,j < 30 GeV).

Tagging is applied as a weight ("truth tagging"): every event carries the probability that exactly two
of its jets (p_T > 20 GeV, |η| < 2.5) are tagged, with b-jet efficiency and c / light mistag rates of
:meth:`~assay.simulators.detector.DetectorModel.tag_probability`, and the two b-jet candidates are drawn
among the pairs in proportion to their probability. Its expectation is that of drawing the tags at random
(what the signal does), but a W + light-jet event passes with weight ~(1/380)² instead of almost never.
Background weights do not depend on θ: the same weight in every benchmark column.

Example:
    >>> pair, p_two = tag_two_jets(np.array([[0.5, 0.5, 0.0]]), np.random.default_rng(0))
    >>> pair.tolist(), p_two.tolist()
    ([[0, 1]], [0.25])
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import awkward as ak
import numpy as np

from assay.observables import WH_OBSERVABLES, pt
from assay.simulators.base import EventBatch
from assay.simulators.detector import CutFlow, DetectorEvents, DetectorModel, Selection
from assay.simulators.jets import cluster_jets, flavour_labels, kinematics
from assay.simulators.wh_batch import WEIGHT_LIKE_EXTRAS, WH_EXTRAS, WHLayout, detector_model

__all__ = [
    "HARD_PROCESSES",
    "MAX_JETS",
    "HardBackgroundBatchSimulator",
    "PartonEvents",
    "background_simulator",
    "detector_level",
    "parton_events",
    "select",
    "tag_two_jets",
]

logger = logging.getLogger(__name__)

MB_TO_PB = 1e9
_MAX_SEED = 900_000_000
MAX_JETS = 6
"""Jets kept per event (the hardest), enough for tt̄'s four quarks plus radiation in W + jets."""
_HARD = ("PartonLevel:ISR = off", "PartonLevel:FSR = off", "PartonLevel:MPI = off", "HadronLevel:all = off",
         "BeamRemnants:primordialKT = off")  # fmt: skip
_PARTON_SHOWER = ("PartonLevel:MPI = off", "HadronLevel:all = off")
_W_LEPTONIC = ("24:onMode = off", "24:onIfAny = 11 13")
HARD_PROCESSES: dict[str, tuple[str, ...]] = {
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5 11 13",
              *_HARD),
    "single_top_s": ("Top:ffbar2tqbar(s:W) = on", *_W_LEPTONIC, *_HARD),
    "single_top_t": ("Top:qq2tq(t:W) = on", *_W_LEPTONIC, *_HARD),
    "wjets": ("WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
              "PhaseSpace:pTHatMin = 20.0", *_W_LEPTONIC, *_PARTON_SHOWER),
}  # fmt: skip
"""Pythia settings of each background at hard level (module docstring)."""
_SEMILEPTONIC = {"ttbar"}  # exactly one charged lepton kept (generator-level filter)
_NEUTRINOS, _LEPTONS, _PARTONS = (12, 14, 16), (11, 13), (1, 2, 3, 4, 5, 21)
_BEAM_REMNANT = 63


@dataclass(frozen=True)
class PartonEvents:
    """The hard (or parton-shower) final state of a batch, before the detector.

    Attributes:
        lepton: the leading charged lepton in the acceptance (n_events, 4) in GeV; zeros if none.
        charge: its charge (n_events,), ±1, 0 if none.
        n_leptons: charged leptons in the acceptance (n_events,) int.
        neutrino_xy: Σ p⃗_T of the neutrinos (n_events, 2) in GeV.
        jets: anti-k_T jets of the partons (n_events, MAX_JETS, 4) in GeV by decreasing p_T; zeros if none.
        flavour: (n_events, MAX_JETS) int: 5 b, 4 c, 0 light, −1 no jet.
    """

    lepton: np.ndarray
    charge: np.ndarray
    n_leptons: np.ndarray
    neutrino_xy: np.ndarray
    jets: np.ndarray
    flavour: np.ndarray

    def __len__(self) -> int:
        return len(self.lepton)

    def __getitem__(self, rows) -> PartonEvents:
        return PartonEvents(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))

    @classmethod
    def concatenate(cls, parts: list[PartonEvents]) -> PartonEvents:
        """The events of ``parts`` (at least one), in order."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def _padded(objects: ak.Array, fields: tuple[str, ...], n: int, fill: float = 0.0) -> np.ndarray:
    """(n_events, n, len(fields)) of the first ``n`` objects per event, ``fill`` where there are fewer."""
    padded = ak.pad_none(objects, n, clip=True)
    return np.stack([ak.to_numpy(ak.fill_none(padded[f], fill)).astype(float) for f in fields], axis=-1)


def parton_events(
    raw: ak.Array,
    *,
    lepton_pt_min: float = 10.0,
    lepton_eta_max: float = 2.5,
    jet_radius: float = 0.4,
    jet_pt_min: float = 15.0,
) -> PartonEvents:
    """Leptons, neutrinos and parton jets of a ``pythia.nextBatch`` result (records ``prt`` with ``id``,
    ``status`` and Momentum4D ``p``), all events at once.

    Jets are clustered from the final quarks and gluons (beam remnants excluded) above ``jet_pt_min`` GeV
    (below the detector-level threshold, so that smearing can move jets across it).

    Raises:
        ImportError: fastjet is not installed.
    """
    prt = raw.prt
    p = prt.p
    parts = kinematics(ak.zip({"px": p["px"], "py": p["py"], "pz": p["pz"], "E": p["e"], "id": prt.id}))
    final = prt.status > 0
    pid = abs(prt.id)
    leptons = parts[final & ((pid == 11) | (pid == 13)) & (parts.pt > lepton_pt_min)
                    & (abs(parts.eta) < lepton_eta_max)]  # fmt: skip
    leptons = leptons[ak.argsort(leptons.pt, ascending=False)]
    neutrinos = parts[final & ((pid == 12) | (pid == 14) | (pid == 16))]
    is_parton = final & (prt.status != _BEAM_REMNANT) & ((pid <= 5) | (pid == 21))
    partons = parts[is_parton]
    jets = cluster_jets(partons, jet_radius, jet_pt_min)
    flavour = flavour_labels(jets, partons, dr_max=jet_radius, pt_min=0.0)
    first = ak.firsts(leptons)
    return PartonEvents(
        lepton=_padded(leptons, ("E", "px", "py", "pz"), 1)[:, 0],
        charge=np.sign(-ak.to_numpy(ak.fill_none(first.id, 0))).astype(float),
        n_leptons=ak.to_numpy(ak.num(leptons)).astype(int),
        neutrino_xy=np.column_stack([ak.to_numpy(ak.sum(neutrinos.px, axis=1)),
                                     ak.to_numpy(ak.sum(neutrinos.py, axis=1))]).astype(float),
        jets=_padded(jets, ("E", "px", "py", "pz"), MAX_JETS),
        flavour=_padded(ak.zip({"f": flavour}), ("f",), MAX_JETS, fill=-1)[..., 0].astype(int),
    )  # fmt: skip


def _charged_leptons(raw: ak.Array) -> np.ndarray:
    """Final-state e and μ per event (any p_T), (n_events,) int: the semileptonic filter of tt̄."""
    pid = abs(raw.prt.id)
    return ak.to_numpy(ak.sum((raw.prt.status > 0) & ((pid == 11) | (pid == 13)), axis=1)).astype(int)


def tag_two_jets(probability: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Truth tagging: the chance that exactly two jets are tagged, and which two.

    Args:
        probability: (n_events, n_jets) tag probability of each jet (0 for no jet or out of acceptance).
        rng: random generator.

    Returns:
        ``(pair, p_two)``: pair (n_events, 2) int, the jets drawn as the two tagged ones with probability
        P(exactly these two) / p_two (``[0, 1]`` where p_two = 0); p_two (n_events,) = Σ over pairs
        ε_i ε_j Π_{k ≠ i, j} (1 − ε_k).
    """
    probability = np.asarray(probability, dtype=float)
    n_jets = probability.shape[1]
    if n_jets < 2:
        return np.tile([0, 1], (len(probability), 1)), np.zeros(len(probability))
    pairs = np.array(list(itertools.combinations(range(n_jets), 2)))  # (n_pairs, 2)
    in_pair = np.zeros((len(pairs), n_jets), bool)
    in_pair[np.arange(len(pairs))[:, None], pairs] = True
    each = np.where(in_pair[None], probability[:, None, :], 1.0 - probability[:, None, :]).prod(axis=-1)
    p_two = each.sum(axis=1)
    u = rng.random(len(probability)) * p_two
    chosen = np.minimum((np.cumsum(each, axis=1) < u[:, None]).sum(axis=1), len(pairs) - 1)
    return pairs[np.where(p_two > 0, chosen, 0)], p_two


def detector_level(
    events: PartonEvents,
    detector: DetectorModel,
    rng: np.random.Generator,
    *,
    jet_pt_min: float = 20.0,
    eta_max: float = 2.5,
    veto_eta_max: float = 4.5,
) -> tuple[DetectorEvents, np.ndarray, np.ndarray]:
    """Smear, identify and tag the events of ``events`` with the signal's ``detector``.

    Jets with smeared p_T > ``jet_pt_min`` GeV and |η| < ``eta_max`` can be tagged (b-jet candidates) or
    count as light jets; the two b-jets are drawn by :func:`tag_two_jets`, the others' leading p_T is the
    light-jet p_T of seed 000's veto. MET = Σ p⃗_T^ν − Σ (p⃗_T^smeared − p⃗_T^true) over the lepton and every
    jet + the soft term (:meth:`DetectorModel.simulate`'s definition).

    Returns:
        ``(det, light_jet_pt, weight)``: the :class:`DetectorEvents` (``identified``: exactly one lepton,
        identified b-jet pair drawn, no lost object); light_jet_pt (n_events,) GeV, 0 if none; weight
        (n_events,) = lepton efficiency × P(exactly two tags), the factor on each event's weight.
    """
    n = len(events)
    has_lepton = events.n_leptons >= 1
    lepton, lepton_lost = np.zeros((n, 4)), np.zeros(n, bool)
    lepton[has_lepton], lepton_lost[has_lepton] = detector.smear_leptons(events.lepton[has_lepton], rng)
    valid = events.flavour >= 0
    jets = np.zeros_like(events.jets)
    jet_lost = np.zeros(valid.shape, bool)
    jets[valid], jet_lost[valid] = detector.smear_jets(events.jets[valid], rng)
    jet_pt = np.hypot(jets[..., 1], jets[..., 2])
    abs_eta = np.abs(np.arcsinh(jets[..., 3] / np.maximum(jet_pt, 1e-9)))
    accepted = valid & ~jet_lost & (jet_pt > jet_pt_min) & (abs_eta < eta_max)
    true_pt = np.hypot(events.jets[..., 1], events.jets[..., 2])
    probability = np.where(accepted, detector.tag_probability(events.flavour, true_pt), 0.0)
    pair, p_two = tag_two_jets(probability, rng)
    rows = np.arange(n)[:, None]
    b = jets[rows, pair]  # (n, 2, 4)
    swap = pt(b[:, 1]) > pt(b[:, 0])
    b1, b2 = np.where(swap[:, None], b[:, 1], b[:, 0]), np.where(swap[:, None], b[:, 0], b[:, 1])
    light = valid & ~jet_lost & (jet_pt > jet_pt_min) & (abs_eta < veto_eta_max)
    light[rows, pair] = False
    light_jet_pt = np.where(light, jet_pt, 0.0).max(axis=1)
    mismeasured = (lepton - np.where(has_lepton[:, None], events.lepton, 0.0))[:, 1:3]
    mismeasured = mismeasured + np.where(valid[..., None], jets - events.jets, 0.0)[..., 1:3].sum(axis=1)
    met_xy = events.neutrino_xy - mismeasured + detector.met_soft_resolution * rng.normal(size=(n, 2))
    identified = (events.n_leptons == 1) & ~lepton_lost & (p_two > 0)
    charge = np.where(events.charge == 0, 1.0, events.charge)  # placeholder for lepton-less events
    det = DetectorEvents(lepton, b1, b2, met_xy, charge, identified)
    return det, light_jet_pt, detector.lepton_efficiency * p_two


def select(
    det: DetectorEvents,
    weights: np.ndarray,
    total_weight: float,
    selection: Selection,
    light_jet_pt: np.ndarray,
    light_jet_pt_max: float = 30.0,
) -> tuple[np.ndarray, np.ndarray, CutFlow]:
    """Seed 000's cuts with tag-weighted events: ``(x (n_pass, n_obs), mask (n_events,), cut flow)``.

    ``weights`` (n_events,) include the tagging probability; the cut flow's efficiencies are relative to
    ``total_weight`` (σ in pb before any cut) and use the same cut names as the signal's (with the
    light-jet veto and the finite-observables check of
    :func:`~assay.simulators.wh_batch.select_and_observe`).
    """
    masks = selection.cuts(det)
    masks[f"pT(light jets) < {light_jet_pt_max:g} GeV"] = light_jet_pt < light_jet_pt_max
    cumulative = np.logical_and.accumulate(np.array(list(masks.values())), axis=0)
    mask = cumulative[-1].copy()
    x = np.full((len(det), len(WH_OBSERVABLES)), np.nan)
    if mask.any():
        parts = ("lepton", "b1", "b2", "met_xy", "charge", "identified")
        x[mask] = DetectorEvents(*(getattr(det, name)[mask] for name in parts)).observables()
    mask &= np.all(np.isfinite(x), axis=1)
    cumulative = np.vstack([cumulative, mask])
    efficiency = cumulative @ weights / total_weight
    names = (*masks, "finite observables")
    flow = CutFlow(names, cumulative.sum(axis=1), efficiency, len(det), float(total_weight))
    return x[mask], mask, flow


@dataclass
class HardBackgroundBatchSimulator(WHLayout):
    """A background of :data:`HARD_PROCESSES` at hard level through the signal's detector and selection.

    Every event weighs σ/N × (lepton efficiency × P(two tags)) in every benchmark column (θ-independent);
    σ is Pythia's estimate from the batch (times the semileptonic fraction for tt̄) and the cut flow's
    ``total_weight``. Extras are zeros except ``components`` = (w, 0, …): a θ-independent dσ.

    Args:
        process: a key of :data:`HARD_PROCESSES`.
        n_benchmarks: number of weight columns.
        detector: the signal's detector model (smearing, efficiencies, tag and mistag rates).
        selection: seed 000's cuts.
        sqrt_s: collider energy in GeV.
        settings: extra Pythia settings.
        chunk_size: events generated and clustered at a time.
        processes: process labels of the store; the batch label is ``processes.index(process)``.
    """

    process: str
    n_benchmarks: int
    detector: DetectorModel = field(default_factory=DetectorModel)
    selection: Selection = field(default_factory=Selection)
    sqrt_s: float = 13000.0
    settings: tuple[str, ...] = ()
    chunk_size: int = 5000
    processes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.process not in HARD_PROCESSES:
            raise ValueError(f"process: expected one of {sorted(HARD_PROCESSES)}, got {self.process!r}")
        if not self.processes:
            from assay.simulators.pythia import PROCESSES

            self.processes = list(PROCESSES)
        if self.process not in self.processes:
            raise ValueError(f"processes {self.processes} must contain the process {self.process!r}")

    def generate(self, n_events: int, seed: int) -> tuple[PartonEvents, float]:
        """``n_events`` generated events (fewer after tt̄'s semileptonic filter) and their σ in pb."""
        from assay.simulators.pythia import _pythia

        py = _pythia((f"Beams:eCM = {self.sqrt_s}", *HARD_PROCESSES[self.process], *self.settings), seed)
        parts, n_generated = [], 0
        for start in range(0, n_events, self.chunk_size):
            raw = py.nextBatch(min(self.chunk_size, n_events - start), "skip")
            n_generated += len(raw)
            if self.process in _SEMILEPTONIC:
                raw = raw[_charged_leptons(raw) == 1]
            parts.append(parton_events(raw))
        events = PartonEvents.concatenate(parts)
        sigma = py.infoPython().sigmaGen() * MB_TO_PB * len(events) / max(n_generated, 1)
        return events, sigma

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        events, sigma = self.generate(n_events, int(rng.integers(_MAX_SEED)))
        n = len(events)
        det, light_jet_pt, factor = detector_level(events, self.detector, rng)
        weight = sigma / n * factor
        x, mask, flow = select(det, weight, sigma, self.selection, light_jet_pt)
        kept = weight[mask]
        extras = {k: np.zeros((len(x), *shape)) for k, shape in WH_EXTRAS.items()}
        extras["components"][:, 0] = kept
        weights = np.repeat(kept[:, None], self.n_benchmarks, axis=1)
        label = self.processes.index(self.process)
        return EventBatch(
            x, weights, process=label, extras=extras, cut_flow=flow, weight_like=WEIGHT_LIKE_EXTRAS
        )


def background_simulator(background, wh, n_benchmarks: int):
    """The batch simulator of one :class:`assay.config.BackgroundConfig` of the WH config ``wh``:
    :class:`HardBackgroundBatchSimulator` through ``wh.detector`` (``level: hard``) or the shower-level
    :class:`~assay.simulators.pythia.BackgroundBatchSimulator`."""
    if background.level == "shower":
        from assay.simulators.pythia import BackgroundBatchSimulator

        b_tag = wh.detector.b_tag_efficiency if wh.detector else 0.77
        return BackgroundBatchSimulator(background.process, n_benchmarks, sqrt_s=wh.sqrt_s,
                                        mpi=background.mpi, b_tag_efficiency=b_tag)  # fmt: skip
    if wh.detector is None:
        raise ValueError(f"background {background.process!r} at level 'hard' needs the WH config's detector")
    detector = detector_model(wh.detector)
    return HardBackgroundBatchSimulator(background.process, n_benchmarks, detector=detector, sqrt_s=wh.sqrt_s)
