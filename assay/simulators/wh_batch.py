"""WH events in batches for :func:`assay.generation.generate`: parton or detector level.

Each stored event keeps its parton-level truth as extras (momenta, flavours, x1/x2/Q
and the dσ polynomial coefficients ``components``), so the exact likelihood and the
joint quantities stay available after smearing and selection. At detector level the
extra ``variations`` can hold the detector systematics' exact weight factors
(:mod:`assay.simulators.wh_systematics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assay.observables import WH_OBSERVABLES, wh_observables
from assay.simulators.base import EventBatch
from assay.simulators.detector import CutFlow, DetectorEvents, DetectorModel, Selection
from assay.simulators.wh import WHEvents, WHSimulator
from assay.simulators.wh_matrix_element import EWInputs
from assay.simulators.wh_systematics import WHSystematicsModel, check_variations, variation_factors

__all__ = [
    "WEIGHT_LIKE_EXTRAS",
    "WH_EXTRAS",
    "CutFlowCounter",
    "WHBatchSimulator",
    "detector_model",
    "truth_extras",
    "wh_batch_simulator",
]

WH_EXTRAS: dict[str, tuple[int, ...]] = {
    "p1": (4,), "p2": (4,), "lepton": (4,), "neutrino": (4,), "b": (4,), "bbar": (4,),
    "ids": (3,),  # id1, id2, lepton PDG id
    "x1_x2_q": (3,),  # momentum fractions and factorisation scale Q in GeV
    "components": (6,),  # dσ coefficients (pb) in the monomial basis of (cHW, cHWtilde)
}  # fmt: skip
WEIGHT_LIKE_EXTRAS = ("components",)  # pb per event, normalised like the weights


def truth_extras(ev: WHEvents) -> dict[str, np.ndarray]:
    """The parton-level truth of ``ev`` as EventStore extras (see :data:`WH_EXTRAS`)."""
    return {
        "p1": ev.p1, "p2": ev.p2, "lepton": ev.lepton, "neutrino": ev.neutrino, "b": ev.b, "bbar": ev.bbar,
        "ids": np.column_stack([ev.id1, ev.id2, ev.lepton_id]).astype(float),
        "x1_x2_q": np.column_stack([ev.x1, ev.x2, ev.scale]),
        "components": ev.components,
    }  # fmt: skip


def select_and_observe(
    det: DetectorEvents,
    weights: np.ndarray,
    selection: Selection,
    *,
    light_jet_pt: np.ndarray | None = None,
    light_jet_pt_max: float = 30.0,
) -> tuple[np.ndarray, np.ndarray, CutFlow]:
    """Seed 000's selection and the observables of the survivors.

    Args:
        det: reconstructed events.
        weights: (n_events,) weights for the cut flow (pb).
        selection: the cuts.
        light_jet_pt: (n_events,) p_T of the hardest light jet (GeV) where jets exist (shower level):
            seed 000's "p_T,j < 30 GeV" light-jet veto is then applied.
        light_jet_pt_max: the veto threshold in GeV.

    Returns:
        ``(x (n_pass, n_obs), mask (n_events,), cut flow)``; events whose neutrino reconstruction is
        degenerate (light-like W candidate, NaN observables) fail a last "finite observables" cut.
    """
    mask, flow = selection.apply(det, weights)
    if light_jet_pt is not None:
        mask = mask & (light_jet_pt < light_jet_pt_max)
        flow = _with_cut(flow, f"pT(light jets) < {light_jet_pt_max:g} GeV", mask, weights)
    x = np.full((len(det), len(WH_OBSERVABLES)), np.nan)
    parts = ("lepton", "b1", "b2", "met_xy", "charge", "identified")
    x[mask] = DetectorEvents(*(getattr(det, name)[mask] for name in parts)).observables()
    mask &= np.all(np.isfinite(x), axis=1)
    return x[mask], mask, _with_cut(flow, "finite observables", mask, weights)


def _with_cut(flow: CutFlow, name: str, mask: np.ndarray, weights: np.ndarray) -> CutFlow:
    """``flow`` with one more cumulative cut whose survivors are ``mask``."""
    return CutFlow(
        (*flow.names, name), np.append(flow.n_pass, mask.sum()),
        np.append(flow.efficiency, weights[mask].sum() / flow.total_weight), flow.n_total, flow.total_weight,
    )  # fmt: skip


@dataclass
class CutFlowCounter:
    """Cut flow summed over batches (weighted by the first benchmark's weights), ``generate(on_batch=)``.

    Each batch's total weight is an estimate of σ; the counter's σ weighs them by their share
    n_batch / n_events of the events, as :func:`~assay.generation.generate` weighs the batches' events
    (``w_total``, their plain sum, only normalises the weighted efficiencies).
    """

    names: tuple[str, ...] = ()
    n_total: int = 0
    n_pass: np.ndarray | None = None
    w_total: float = 0.0
    w_pass: np.ndarray | None = None
    n_sigma: float = 0.0  # Σ_batches n_batch σ_batch

    def add_batch(self, batch: EventBatch) -> None:
        """Add the cut flow of a generated batch (no-op for batches without a selection)."""
        if batch.cut_flow is not None:
            self.add(batch.cut_flow)

    def add(self, flow: CutFlow) -> None:
        if self.n_pass is None:
            self.names, self.n_pass, self.w_pass = (
                flow.names,
                np.zeros(len(flow.names), int),
                np.zeros(len(flow.names)),
            )
        self.n_total += flow.n_total
        self.n_pass = self.n_pass + flow.n_pass
        self.w_total += flow.total_weight
        self.w_pass = self.w_pass + flow.efficiency * flow.total_weight
        self.n_sigma += flow.n_total * flow.total_weight

    def cut_flow(self) -> CutFlow:
        """The accumulated :class:`CutFlow`; its ``total_weight`` is σ before cuts in pb."""
        if self.n_pass is None:
            raise ValueError("no batch has been counted yet")
        sigma = self.n_sigma / self.n_total
        return CutFlow(self.names, self.n_pass, self.w_pass / self.w_total, self.n_total, sigma)

    def to_json(self) -> dict:
        """``cutflow.json``'s record: names, n_pass, efficiency, n_total and σ before cuts in pb."""
        flow = self.cut_flow()
        return {"names": list(flow.names), "n_pass": flow.n_pass.tolist(),
                "efficiency": flow.efficiency.tolist(), "n_total": flow.n_total,
                "total_weight_pb": flow.total_weight}  # fmt: skip


class WHLayout:
    """Columns of every WH event file: the seed-000 observables and the parton truth extras."""

    @property
    def observables(self) -> list[str]:
        return list(WH_OBSERVABLES)

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(WH_EXTRAS)


N_COMPONENTS = WH_EXTRAS["components"][0]


@dataclass
class WHBatchSimulator(WHLayout):
    """Batches of WH events; with a ``detector`` they are smeared and ``selection`` is applied.

    Args:
        simulator: the parton-level generator.
        detector: detector model (None: parton level, all momenta observed).
        selection: event selection applied after the detector (default: seed 000's).
        variations: detector systematics (:data:`~assay.simulators.wh_systematics.VARIATIONS`) whose
            factors F^± each event carries in the extra ``variations`` ``(n_syst, 2, 6)``: the same
            factor for every component (the truth is not varied); not weight-like. Needs a detector.
        systematics: their sizes.
    """

    simulator: WHSimulator
    detector: DetectorModel | None = None
    selection: Selection | None = None
    processes: list[str] = field(default_factory=lambda: ["wh"])
    variations: tuple[str, ...] = ()
    systematics: WHSystematicsModel = field(default_factory=WHSystematicsModel)

    def __post_init__(self) -> None:
        self.variations = check_variations(self.variations)
        if self.variations and self.detector is None:
            raise ValueError(f"WH variations {list(self.variations)} vary the detector: give a detector")

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        extra = {"variations": (len(self.variations), 2, N_COMPONENTS)} if self.variations else {}
        return dict(WH_EXTRAS) | extra

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        ev = self.simulator.simulate(n_events, rng)
        extras = truth_extras(ev)
        if self.detector is None:
            x = wh_observables(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge)
            return EventBatch(x, ev.weights, extras=extras, weight_like=WEIGHT_LIKE_EXTRAS)
        reco = self.detector.simulate(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge, rng)
        x, mask, flow = select_and_observe(reco, ev.weights[:, 0], self.selection or Selection())
        kept = {k: v[mask] for k, v in extras.items()}
        if self.variations:
            b_jets = np.stack([ev.b[mask], ev.bbar[mask]], axis=1)
            factors = variation_factors(self.detector, b_jets, reco.jet_response[mask], self.variations,
                                        model=self.systematics)  # fmt: skip
            kept["variations"] = np.repeat(factors[..., None], N_COMPONENTS, axis=-1)
        return EventBatch(x, ev.weights[mask], extras=kept, cut_flow=flow, weight_like=WEIGHT_LIKE_EXTRAS)


def wh_batch_simulator(
    cfg, space, theta_gen: np.ndarray, *, seed: int, variations: tuple[str, ...] = ()
) -> WHBatchSimulator:
    """Build from a :class:`assay.config.WHConfig` and the parameter space.

    The space has both couplings (cHW, cHWtilde) or one of them, the other fixed at 0; ``components``
    stay the six of (cHW, cHWtilde) either way. ``variations``: detector systematics to store.
    """
    thetas = _both_couplings(space.names, space.benchmark_thetas)
    theta_gen = _both_couplings(space.names, np.atleast_2d(theta_gen))[0]
    simulator = WHSimulator(
        thetas, theta_gen=theta_gen, sqrt_s=cfg.sqrt_s, charges=tuple(cfg.charges),
        lepton_flavours=tuple(cfg.lepton_flavours), ud_only=cfg.ud_only, ew=EWInputs(lambda_np=cfg.lambda_np),
        br_h_bb=cfg.br_h_bb, scale=cfg.scale, vegas_seed=seed,
    )  # fmt: skip
    if variations and (cfg.shower is not None or cfg.detector is None or cfg.detector.ideal):
        raise ValueError(f"WH variations {list(variations)} need a smearing detector, no shower")
    if cfg.shower is not None:
        from assay.simulators.pythia import PROCESSES, PythiaWHBatchSimulator

        b_tag = cfg.detector.b_tag_efficiency if cfg.detector else 0.77
        return PythiaWHBatchSimulator(simulator, b_tag_efficiency=b_tag, mpi=cfg.shower.mpi,
                                      hadronize=cfg.shower.hadronize, processes=list(PROCESSES))  # fmt: skip
    if cfg.detector is None:
        return WHBatchSimulator(simulator)
    detector = detector_model(cfg.detector)
    return WHBatchSimulator(simulator, detector=detector, selection=Selection(), variations=tuple(variations))


def detector_model(detector) -> DetectorModel:
    """The :class:`DetectorModel` of an :class:`assay.config.DetectorConfig` (ideal: no smearing, mistags):
    the signal's and the hard-level backgrounds' (:mod:`assay.simulators.wh_backgrounds`)."""
    if detector.ideal:
        return DetectorModel.ideal()
    return DetectorModel(
        b_tag_efficiency=detector.b_tag_efficiency, c_mistag=detector.c_mistag,
        light_mistag=detector.light_mistag, lepton_efficiency=detector.lepton_efficiency,
        met_soft_resolution=detector.met_soft_resolution,
    )  # fmt: skip


def _both_couplings(names: list[str], thetas: np.ndarray) -> np.ndarray:
    """(cHW, cHWtilde) points ``(n, 2)`` from points of ``names`` (both, or one with the other at 0)."""
    both = ["cHW", "cHWtilde"]
    if not names or len(set(names)) != len(names) or not set(names) <= set(both):
        raise ValueError(f"the WH simulator has parameters {both} (or one of them), the config has {names}")
    out = np.zeros((len(thetas), 2))
    out[:, [both.index(n) for n in names]] = thetas
    return out
