"""WH events in batches for :func:`assay.generation.generate`: parton or detector level.

Each stored event keeps its parton-level truth as extras (momenta, flavours, x1/x2/Q
and the dσ polynomial coefficients ``components``), so the exact likelihood and the
joint quantities stay available after smearing and selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assay.generation import EventBatch
from assay.observables import WH_OBSERVABLES, wh_observables
from assay.simulators.detector import CutFlow, DetectorEvents, DetectorModel, Selection
from assay.simulators.wh import WHEvents, WHSimulator
from assay.simulators.wh_matrix_element import EWInputs

__all__ = ["WH_EXTRAS", "CutFlowCounter", "WHBatchSimulator", "truth_extras", "wh_batch_simulator"]

WH_EXTRAS: dict[str, tuple[int, ...]] = {
    "p1": (4,), "p2": (4,), "lepton": (4,), "neutrino": (4,), "b": (4,), "bbar": (4,),
    "ids": (3,),  # id1, id2, lepton PDG id
    "x1_x2_q": (3,),  # momentum fractions and factorisation scale Q in GeV
    "components": (6,),  # dσ coefficients (pb) in the monomial basis of (cHW, cHWtilde)
}  # fmt: skip


def truth_extras(ev: WHEvents) -> dict[str, np.ndarray]:
    """The parton-level truth of ``ev`` as EventStore extras (see :data:`WH_EXTRAS`)."""
    return {
        "p1": ev.p1, "p2": ev.p2, "lepton": ev.lepton, "neutrino": ev.neutrino, "b": ev.b, "bbar": ev.bbar,
        "ids": np.column_stack([ev.id1, ev.id2, ev.lepton_id]).astype(float),
        "x1_x2_q": np.column_stack([ev.x1, ev.x2, ev.scale]),
        "components": ev.components,
    }  # fmt: skip


def _with_cut(flow: CutFlow, name: str, mask: np.ndarray, weights: np.ndarray) -> CutFlow:
    """``flow`` with one more cumulative cut whose survivors are ``mask``."""
    return CutFlow(
        (*flow.names, name), np.append(flow.n_pass, mask.sum()),
        np.append(flow.efficiency, weights[mask].sum() / flow.total_weight), flow.n_total, flow.total_weight,
    )  # fmt: skip


@dataclass
class CutFlowCounter:
    """Cut flow summed over batches (weighted by the first benchmark's weights), ``generate(on_batch=)``."""

    names: tuple[str, ...] = ()
    n_total: int = 0
    n_pass: np.ndarray | None = None
    w_total: float = 0.0
    w_pass: np.ndarray | None = None

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

    def cut_flow(self) -> CutFlow:
        """The accumulated :class:`CutFlow`."""
        if self.n_pass is None:
            raise ValueError("no batch has been counted yet")
        return CutFlow(self.names, self.n_pass, self.w_pass / self.w_total, self.n_total, self.w_total)


@dataclass
class WHBatchSimulator:
    """Batches of WH events; with a ``detector`` they are smeared and ``selection`` is applied.

    Args:
        simulator: the parton-level generator.
        detector: detector model (None: parton level, all momenta observed).
        selection: event selection applied after the detector (default: seed 000's).
    """

    simulator: WHSimulator
    detector: DetectorModel | None = None
    selection: Selection | None = None
    processes: list[str] = field(default_factory=lambda: ["wh"])

    @property
    def observables(self) -> list[str]:
        return list(WH_OBSERVABLES)

    @property
    def extras_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(WH_EXTRAS)

    def batch(self, n_events: int, rng: np.random.Generator) -> EventBatch:
        ev = self.simulator.simulate(n_events, rng)
        extras = truth_extras(ev)
        if self.detector is None:
            x = wh_observables(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge)
            return EventBatch(x, ev.weights, extras=extras)
        reco = self.detector.simulate(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge, rng)
        mask, flow = (self.selection or Selection()).apply(reco, ev.weights[:, 0])
        x = np.full((n_events, len(WH_OBSERVABLES)), np.nan)
        x[mask] = DetectorEvents(reco.lepton[mask], reco.b1[mask], reco.b2[mask], reco.met_xy[mask],
                                 reco.charge[mask], reco.identified[mask]).observables()  # fmt: skip
        finite = np.all(np.isfinite(x), axis=1)  # degenerate ν reconstruction (light-like W candidate)
        mask &= finite
        flow = _with_cut(flow, "finite observables", mask, ev.weights[:, 0])
        return EventBatch(
            x[mask], ev.weights[mask], extras={k: v[mask] for k, v in extras.items()}, cut_flow=flow
        )


def wh_batch_simulator(cfg, space, theta_gen: np.ndarray, *, seed: int) -> WHBatchSimulator:
    """Build from a :class:`assay.config.WHConfig` and the parameter space (cHW, cHWtilde)."""
    if space.names != ["cHW", "cHWtilde"]:
        raise ValueError(f"the WH simulator has parameters ['cHW', 'cHWtilde'], the config has {space.names}")
    simulator = WHSimulator(
        space.benchmark_thetas, theta_gen=theta_gen, sqrt_s=cfg.sqrt_s, charges=tuple(cfg.charges),
        lepton_flavours=tuple(cfg.lepton_flavours), ud_only=cfg.ud_only, ew=EWInputs(lambda_np=cfg.lambda_np),
        br_h_bb=cfg.br_h_bb, scale=cfg.scale, vegas_seed=seed,
    )  # fmt: skip
    if cfg.detector is None:
        return WHBatchSimulator(simulator)
    d = cfg.detector
    detector = DetectorModel.ideal() if d.ideal else DetectorModel(
        b_tag_efficiency=d.b_tag_efficiency, lepton_efficiency=d.lepton_efficiency,
        met_soft_resolution=d.met_soft_resolution,
    )  # fmt: skip
    return WHBatchSimulator(simulator, detector=detector, selection=Selection())
