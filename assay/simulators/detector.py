"""Parametrized detector response for WH → ℓνbb̄ and the event selection of seed 000.

:class:`DetectorModel` smears parton-level objects with Gaussian resolutions, applies lepton
identification and b-tagging efficiencies and builds the missing transverse momentum; its defaults are
typical ATLAS/Delphes card values (Delphes ``delphes_card_ATLAS.tcl``, arXiv:1307.6346; b-tagging 77%
working point, arXiv:1907.05120; muon identification, arXiv:1603.05598). :class:`Selection` applies the
cuts of seed 000's "Event selection" table and returns a :class:`CutFlow`.

Example:
    >>> p = np.array([[100.0, 60.0, 0.0, 80.0]])
    >>> ev = DetectorModel.ideal().simulate(p, p, p, p * [1, -1, -1, 0], np.ones(1), rng=1)
    >>> bool(np.allclose(ev.lepton, p)), ev.met_xy.tolist()
    (True, [[-60.0, 0.0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.table import Table

from assay.observables import as_four_momenta, delta_r, eta, mass, phi, pt, wh_detector_observables

__all__ = ["CutFlow", "DetectorEvents", "DetectorModel", "EfficiencyScale", "EnergyResolution", "Selection"]


def _check_non_negative(obj, names: tuple[str, ...], upper: float = np.inf) -> None:
    for name in names:
        value = getattr(obj, name)
        if not 0 <= value <= upper:
            raise ValueError(f"{type(obj).__name__}.{name}: expected a value in [0, {upper}], got {value}")


@dataclass(frozen=True, kw_only=True)
class EnergyResolution:
    """Relative energy resolution σ_E/E = a/√E ⊕ b ⊕ c·E (terms added in quadrature, E in GeV).

    Args:
        stochastic: a in GeV^½ (calorimeter sampling term).
        constant: b, dimensionless.
        linear: c in GeV⁻¹ (tracker-like term, σ_p/p ∝ p).
    """

    stochastic: float = 0.0
    constant: float = 0.0
    linear: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative(self, ("stochastic", "constant", "linear"))

    def relative(self, energy: np.ndarray) -> np.ndarray:
        """σ_E/E at ``energy`` (n_events,) in GeV, E > 0."""
        energy = np.asarray(energy, dtype=float)
        return np.sqrt(self.stochastic**2 / energy + self.constant**2 + (self.linear * energy) ** 2)


@dataclass(frozen=True, kw_only=True)
class EfficiencyScale:
    """A relative change s(p_T) of an efficiency, ε(p_T) = ε (1 + s(p_T)) (a data/MC scale factor − 1).

    s is linear in the true p_T between (``pt_low``, ``low``) and (``pt_high``, ``high``) and constant
    outside.

    Args:
        low: s at and below ``pt_low``.
        high: s at and above ``pt_high``.
        pt_low, pt_high: the p_T nodes in GeV, ``pt_low < pt_high``.

    Example:
        >>> EfficiencyScale(low=0.02, high=0.08, pt_low=100.0, pt_high=500.0)(np.array([50.0, 300.0]))
        array([0.02, 0.05])
    """

    low: float = 0.0
    high: float = 0.0
    pt_low: float = 100.0
    pt_high: float = 500.0

    def __post_init__(self) -> None:
        if not 0 <= self.pt_low < self.pt_high:
            raise ValueError(
                f"EfficiencyScale: expected 0 <= pt_low < pt_high, got {self.pt_low}, {self.pt_high}"
            )

    def __call__(self, pt: np.ndarray) -> np.ndarray:
        """s at the true p_T ``pt`` (n,) in GeV."""
        return np.interp(pt, [self.pt_low, self.pt_high], [self.low, self.high])

    def scaled(self, factor: float) -> EfficiencyScale:
        """The same p_T dependence with ``factor`` × s (``-1``: the opposite shift)."""
        return EfficiencyScale(low=factor * self.low, high=factor * self.high, pt_low=self.pt_low,
                               pt_high=self.pt_high)  # fmt: skip


@dataclass(frozen=True)
class DetectorEvents:
    """Reconstructed events from :meth:`DetectorModel.simulate`.

    Attributes:
        lepton: smeared lepton four-momenta (n_events, 4) in GeV.
        b1: leading smeared b-jet (n_events, 4) in GeV.
        b2: subleading smeared b-jet (n_events, 4) in GeV.
        met_xy: missing transverse momentum (n_events, 2) in GeV.
        charge: lepton charge (n_events,), ±1.
        identified: (n_events,) bool, lepton identified and both b-jets tagged (and none of the three
            lost to a downward energy fluctuation below its mass).
        jet_response: (n_events, 2) relative energy shifts r = E_reco/E_true − 1 drawn for the true b and
            b̄ (truth order, not the p_T order of ``b1``, ``b2``); None where unknown. The systematic
            variations reweight by them (:mod:`assay.simulators.wh_systematics`).
    """

    lepton: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    met_xy: np.ndarray
    charge: np.ndarray
    identified: np.ndarray
    jet_response: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(as_four_momenta(self.lepton, "lepton"))
        shapes = {
            "lepton": (n, 4),
            "b1": (n, 4),
            "b2": (n, 4),
            "met_xy": (n, 2),
            "charge": (n,),
            "identified": (n,),
        }
        if self.jet_response is not None:
            shapes["jet_response"] = (n, 2)
        for name, shape in shapes.items():
            value = np.asarray(getattr(self, name), dtype=bool if name == "identified" else float)
            if value.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (like lepton), got {value.shape}")
            object.__setattr__(self, name, value)  # frozen: normalise the arrays once, here

    def __len__(self) -> int:
        return len(self.lepton)

    def observables(self) -> np.ndarray:
        """:func:`assay.observables.wh_detector_observables` of these events, (n_events, n_obs)."""
        return wh_detector_observables(self.lepton, self.b1, self.b2, self.met_xy, self.charge)


def _smear(p: np.ndarray, rel_shift: np.ndarray, d_eta=None, d_phi=None) -> tuple[np.ndarray, np.ndarray]:
    """Scale E by (1 + rel_shift) keeping the mass (|p⃗|² += E'² − E²); optionally shift η and φ.

    Returns the smeared (n, 4) and a (n,) bool mask of objects *lost* because E' ≤ m was drawn (Delphes
    drops them): those keep their direction with |p⃗'| = 10⁻⁶ |p⃗|, so every observable stays finite.
    """
    energy = p[:, 0] * (1.0 + rel_shift)
    p2 = np.einsum("ij,ij->i", p[:, 1:], p[:, 1:])
    p2_new = p2 + (energy - p[:, 0]) * (energy + p[:, 0])
    lost = (p2_new <= 0) | (energy <= 0)  # E' ≤ m (a negative E' can have E'² > m²)
    p2_new = np.where(lost, 1e-12 * p2, p2_new)
    energy = np.where(lost, np.sqrt(np.maximum(p[:, 0] ** 2 - p2, 0.0) + p2_new), energy)
    scale = np.sqrt(np.divide(p2_new, p2, out=np.zeros_like(p2), where=p2 > 0))
    if d_eta is None:
        return np.column_stack([energy, p[:, 1:] * scale[:, None]]), lost
    new_eta, new_phi, new_p = eta(p) + d_eta, phi(p) + d_phi, np.sqrt(p2) * scale
    p_t = new_p / np.cosh(new_eta)
    momentum = np.column_stack([p_t * np.cos(new_phi), p_t * np.sin(new_phi), new_p * np.tanh(new_eta)])
    return np.column_stack([energy, momentum]), lost


def _validate_truth(lepton, b1, b2, neutrino, charge) -> tuple[list[np.ndarray], np.ndarray]:
    """Four-momenta [lepton, b1, b2, neutrino] (n_events, 4) and charge (n_events,), or ValueError."""
    named = {"lepton": lepton, "b1": b1, "b2": b2, "neutrino": neutrino}
    momenta = [as_four_momenta(p, name) for name, p in named.items()]
    n = len(momenta[0])
    for name, p in zip(named, momenta):
        if len(p) != n:
            raise ValueError(f"{name}: expected {n} events like lepton, got {len(p)}")
    charge = np.asarray(charge, dtype=float)
    if charge.shape != (n,) or not np.all(np.abs(charge) == 1):
        raise ValueError(f"charge: expected shape ({n},) with values ±1, got shape {charge.shape}")
    return momenta, charge


@dataclass(frozen=True, kw_only=True)
class DetectorModel:
    """Gaussian detector response for one lepton, two b-jets and missing transverse momentum.

    Args:
        lepton_resolution: lepton σ_p/p as a function of the true p_T (its ``relative`` is evaluated at
            p_T, not E); default 1% ⊕ 0.01%·p_T/GeV, the central muon momentum resolution of Delphes'
            ATLAS card (``ResolutionFormula`` sqrt(0.01² + p_T² · (1.0e-4)²) for |η| ≤ 1.5), also used
            for electrons. Smearing |p⃗| keeps the direction and the (zero) mass.
        jet_resolution: b-jet σ_E/E; default 100%/√E ⊕ 5%.
        jet_eta_resolution: Gaussian σ of the b-jet η smearing.
        jet_phi_resolution: Gaussian σ of the b-jet φ smearing in radians.
        b_tag_efficiency: probability to tag each b-jet, independently (77% working point).
        c_mistag: probability to tag a c-jet (backgrounds; :meth:`tag_probability`); default 1/8, the
            c-jet rejection ≈ 8 of ATLAS' MV2c10 tagger (ATL-PHYS-PUB-2016-012) and the c-jet rate of
            Delphes' ATLAS card (0.20 tanh(0.02 p_T)/(1 + 0.0034 p_T) = 0.13 at p_T = 50 GeV).
        light_mistag: probability to tag a light (u, d, s, g) jet; default 1/380, MV2c10's light-jet
            rejection ≈ 380 (ATL-PHYS-PUB-2016-012) and Delphes' ATLAS card (0.002 + 7.3·10⁻⁶ p_T = 0.0024
            at 50 GeV).
        b_tag_scale: a p_T-dependent relative change of ``b_tag_efficiency`` (of the true jet p_T);
            None: flat. A systematic variation (:mod:`assay.simulators.wh_systematics`) sets it.
        jet_scale_shift: δ, the mean of the relative b-jet energy response: E_reco = E_true (1 + r),
            r ~ N(δ, σ_E/E); 0 for the nominal detector, ±the jet energy scale uncertainty in its
            variations.
        lepton_efficiency: lepton identification probability.
        met_soft_resolution: σ in GeV of the soft-term Gaussian added to each MET component.

    Example:
        >>> DetectorModel().jet_resolution.relative(np.array([100.0])).round(4)
        array([0.1118])
    """

    lepton_resolution: EnergyResolution = EnergyResolution(constant=0.01, linear=1e-4)
    jet_resolution: EnergyResolution = EnergyResolution(stochastic=1.0, constant=0.05)
    jet_eta_resolution: float = 0.02
    jet_phi_resolution: float = 0.02
    b_tag_efficiency: float = 0.77
    c_mistag: float = 0.125
    light_mistag: float = 1 / 380
    lepton_efficiency: float = 0.95
    met_soft_resolution: float = 10.0
    b_tag_scale: EfficiencyScale | None = None
    jet_scale_shift: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative(self, ("jet_eta_resolution", "jet_phi_resolution", "met_soft_resolution"))
        probabilities = ("b_tag_efficiency", "c_mistag", "light_mistag", "lepton_efficiency")
        _check_non_negative(self, probabilities, upper=1.0)
        if not abs(self.jet_scale_shift) < 1:
            raise ValueError(f"DetectorModel.jet_scale_shift: expected |δ| < 1, got {self.jet_scale_shift}")

    def b_tag_probability(self, pt_true: np.ndarray) -> np.ndarray:
        """Probability to tag a b-jet of true p_T ``pt_true`` (n,) GeV: ε (1 + s(p_T)), (n,).

        Raises:
            ValueError: ``b_tag_scale`` pushes a probability outside [0, 1].
        """
        pt_true = np.asarray(pt_true, dtype=float)
        if self.b_tag_scale is None:
            return np.full(pt_true.shape, self.b_tag_efficiency)
        p = self.b_tag_efficiency * (1.0 + self.b_tag_scale(pt_true))
        if np.any((p < 0) | (p > 1)):
            raise ValueError(
                f"b-tagging probability outside [0, 1] ({p.min():.3f} to {p.max():.3f}): b_tag_efficiency "
                f"{self.b_tag_efficiency} with b_tag_scale {self.b_tag_scale}"
            )
        return p

    def tag_probability(self, flavour: np.ndarray, pt_true: np.ndarray) -> np.ndarray:
        """Probability to tag jets of truth ``flavour`` (any shape, int: 5 b, 4 c, else light) and true p_T
        ``pt_true`` (same shape, GeV): :meth:`b_tag_probability` for b, ``c_mistag``, ``light_mistag``.

        Example:
            >>> DetectorModel().tag_probability(np.array([5, 4, 0]), np.full(3, 50.0)).round(4).tolist()
            [0.77, 0.125, 0.0026]
        """
        flavour = np.asarray(flavour)
        b = self.b_tag_probability(np.ravel(pt_true)).reshape(flavour.shape)
        return np.where(flavour == 5, b, np.where(flavour == 4, self.c_mistag, self.light_mistag))

    def smear_leptons(self, leptons: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Leptons (n, 4) GeV smeared in |p⃗| with ``lepton_resolution`` at their p_T (as in :meth:`simulate`).

        Returns:
            ``(smeared (n, 4), lost (n,) bool)`` (lost: E' ≤ m drawn).
        """
        leptons = as_four_momenta(leptons, "leptons")
        return _smear(leptons, self.lepton_resolution.relative(pt(leptons)) * rng.normal(size=len(leptons)))

    def smear_jets(self, jets: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Jets (n, 4) GeV (E > 0) smeared as :meth:`simulate` smears the b-jets: E by δ + σ_E/E z, η and φ
        by Gaussians.

        Returns:
            ``(smeared (n, 4), lost (n,) bool)``.
        """
        jets = as_four_momenta(jets, "jets")
        z = rng.normal(size=(len(jets), 3))
        shift = self.jet_scale_shift + self.jet_resolution.relative(jets[:, 0]) * z[:, 0]
        if not (self.jet_eta_resolution or self.jet_phi_resolution):
            return _smear(jets, shift)
        return _smear(jets, shift, z[:, 1] * self.jet_eta_resolution, z[:, 2] * self.jet_phi_resolution)

    def jet_response_log_density(self, response: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """log N(r; δ, σ_E/E(E_true)) of relative b-jet energy shifts ``response`` (n,), ``energy`` (n,) GeV.

        Raises:
            ValueError: a jet resolution of zero (no density: the response is a point mass).
        """
        sigma = self.jet_resolution.relative(energy)
        if np.any(sigma <= 0):
            raise ValueError("the jet energy response has no density: zero jet_resolution (ideal detector)")
        z = (np.asarray(response, dtype=float) - self.jet_scale_shift) / sigma
        return -0.5 * z**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)

    @classmethod
    def ideal(cls) -> DetectorModel:
        """A perfect detector: no smearing or soft term, all objects identified, no mistags (parton level)."""
        none = EnergyResolution()
        return cls(
            lepton_resolution=none,
            jet_resolution=none,
            jet_eta_resolution=0.0,
            jet_phi_resolution=0.0,
            b_tag_efficiency=1.0,
            c_mistag=0.0,
            light_mistag=0.0,
            lepton_efficiency=1.0,
            met_soft_resolution=0.0,
        )

    def simulate(self, lepton, b1, b2, neutrino, charge, rng) -> DetectorEvents:
        """Smear one event sample; the random numbers are drawn in a fixed order from ``rng``.

        MET = p⃗_T^ν − Σ_visible (p⃗_T^smeared − p⃗_T^true) + soft term: for p_T-balanced (LO) events this is
        −Σ p⃗_T^smeared + soft term, and it keeps unrecorded recoil (ISR) as genuine MET otherwise. An object
        drawn with E' ≤ m is lost (its event is not ``identified``; see ``_smear``). The relative b-jet
        energy shift is r = δ + (σ_E/E) z with z ~ N(0, 1) (``jet_scale_shift`` δ), and each b-jet is
        tagged with :meth:`b_tag_probability` of its true p_T.

        Args:
            lepton: true lepton four-momenta (n_events, 4) in GeV.
            b1: true b four-momenta (n_events, 4) in GeV.
            b2: true b̄ four-momenta (n_events, 4) in GeV.
            neutrino: true neutrino four-momenta (n_events, 4) in GeV.
            charge: lepton charge (n_events,), ±1; passed through (no charge mis-identification).
            rng: ``numpy.random.Generator`` or an integer seed.

        Returns:
            :class:`DetectorEvents`, b-jets re-ordered by smeared p_T, with the drawn ``jet_response``.

        Raises:
            ValueError: wrong shapes or charges other than ±1.
        """
        (*truth, neutrino), charge = _validate_truth(lepton, b1, b2, neutrino, charge)
        rng, n = np.random.default_rng(rng), len(charge)
        z_energy, z_angle = rng.normal(size=(n, 3)), rng.normal(size=(n, 2, 2))
        z_soft, uniform = rng.normal(size=(n, 2)), rng.random((n, 3))
        smeared = [_smear(truth[0], self.lepton_resolution.relative(pt(truth[0])) * z_energy[:, 0])]
        sigma_angles = np.array([self.jet_eta_resolution, self.jet_phi_resolution])
        jet_energy = np.column_stack([truth[1][:, 0], truth[2][:, 0]])
        response = self.jet_scale_shift + self.jet_resolution.relative(jet_energy) * z_energy[:, 1:]
        for i, (p, shift) in enumerate(zip(truth[1:], response.T)):
            d_eta, d_phi = (z_angle[:, i] * sigma_angles).T
            smeared.append(_smear(p, shift, d_eta, d_phi) if sigma_angles.any() else _smear(p, shift))
        reco, lost = [r for r, _ in smeared], np.any([lost for _, lost in smeared], axis=0)
        mismeasured = sum(r[:, 1:3] - t[:, 1:3] for r, t in zip(reco, truth))
        met_xy = neutrino[:, 1:3] - mismeasured + self.met_soft_resolution * z_soft
        efficiency = np.column_stack([np.full(n, self.lepton_efficiency),
                                      *(self.b_tag_probability(pt(p)) for p in truth[1:])])  # fmt: skip
        swap = (pt(reco[2]) > pt(reco[1]))[:, None]
        b_lead, b_sub = np.where(swap, reco[2], reco[1]), np.where(swap, reco[1], reco[2])
        identified = np.all(uniform < efficiency, axis=1) & ~lost
        return DetectorEvents(reco[0], b_lead, b_sub, met_xy, charge, identified, response)


@dataclass(frozen=True)
class CutFlow:
    """Cumulative cut flow of :meth:`Selection.apply`.

    Attributes:
        names: cut names, in the order applied.
        n_pass: (n_cuts,) int, events passing this cut and all previous ones (unweighted).
        efficiency: (n_cuts,) cumulative weighted efficiency Σ_pass w / Σ w, in [0, 1] for w ≥ 0.
        n_total: number of events before any cut.
        total_weight: Σ w before any cut (pb when weights are cross sections).
    """

    names: tuple[str, ...]
    n_pass: np.ndarray
    efficiency: np.ndarray
    n_total: int
    total_weight: float

    def _rows(self) -> list[tuple[str, str, str]]:
        rows = [("all events", str(self.n_total), "100.00")]
        rows += [(c, str(n), f"{100 * e:.2f}") for c, n, e in zip(self.names, self.n_pass, self.efficiency)]
        return rows

    def table(self) -> Table:
        """The cut flow as a ``rich`` table (cut | events | cumulative efficiency %)."""
        table = Table(title="Cut flow")
        table.add_column("cut")
        table.add_column("events", justify="right")
        table.add_column("cumulative efficiency %", justify="right")
        for row in self._rows():
            table.add_row(*row)
        return table

    def __str__(self) -> str:
        rows = [("cut", "events", "cumulative efficiency %"), *self._rows()]
        width = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"{c:<{width[0]}} | {n:>{width[1]}} | {e:>{width[2]}}" for c, n, e in rows]
        lines.insert(1, "-+-".join("-" * w for w in width))
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The event selection of seed 000 ("Event selection" table), all inequalities strict.

    Identification (lepton ID and two b-tags) comes first; the light-jet cuts of the seed (p_T,j > 10 GeV
    and < 30 GeV, ΔR with jets) do not apply: these events have no light jets.

    Args:
        lepton_pt_min: p_T^ℓ threshold in GeV.
        met_min: |MET| threshold in GeV.
        b_pt_min: p_T threshold in GeV for both b-jets.
        eta_max: |η| bound for the lepton and both b-jets.
        delta_r_min: lower bound on ΔR(b1, b2), ΔR(b1, ℓ) and ΔR(b2, ℓ).
        m_bb_min: lower bound on m_bb in GeV.
        m_bb_max: upper bound on m_bb in GeV.

    Example:
        >>> b1, b2 = np.array([[100.0, 60.0, 0.0, 80.0]]), np.array([[100.0, -60.0, 0.0, 80.0]])
        >>> lepton = np.array([[50.0, 0.0, 40.0, 30.0]])
        >>> ev = DetectorEvents(lepton, b1, b2, np.array([[0.0, -40.0]]), np.ones(1), np.ones(1, bool))
        >>> mask, flow = Selection().apply(ev)
        >>> mask.tolist(), flow.efficiency[-1]
        ([True], np.float64(1.0))
    """

    lepton_pt_min: float = 10.0
    met_min: float = 25.0
    b_pt_min: float = 35.0
    eta_max: float = 2.5
    delta_r_min: float = 0.4
    m_bb_min: float = 80.0
    m_bb_max: float = 160.0

    def cuts(self, events: DetectorEvents) -> dict[str, np.ndarray]:
        """Each cut on its own (not cumulative), in seed 000's order: name → (n_events,) bool."""
        lepton, b1, b2 = events.lepton, events.b1, events.b2
        abs_eta = np.abs(np.column_stack([eta(lepton), eta(b1), eta(b2)]))
        dr = np.column_stack([delta_r(b1, b2), delta_r(b1, lepton), delta_r(b2, lepton)])
        m_bb = mass(b1 + b2)
        return {
            "identified (lepton ID, 2 b-tags)": np.asarray(events.identified, dtype=bool),
            f"pT(l) > {self.lepton_pt_min:g} GeV": pt(lepton) > self.lepton_pt_min,
            f"MET > {self.met_min:g} GeV": np.hypot(events.met_xy[:, 0], events.met_xy[:, 1]) > self.met_min,
            f"pT(b1), pT(b2) > {self.b_pt_min:g} GeV": np.minimum(pt(b1), pt(b2)) > self.b_pt_min,
            f"|eta(l, b1, b2)| < {self.eta_max:g}": np.all(abs_eta < self.eta_max, axis=1),
            f"dR(bb), dR(bl) > {self.delta_r_min:g}": np.all(dr > self.delta_r_min, axis=1),
            f"{self.m_bb_min:g} < m_bb < {self.m_bb_max:g} GeV": (m_bb > self.m_bb_min)
            & (m_bb < self.m_bb_max),
        }

    def apply(self, events: DetectorEvents, weights=None) -> tuple[np.ndarray, CutFlow]:
        """Events passing every cut, and the cumulative cut flow.

        Args:
            events: reconstructed events.
            weights: (n_events,) event weights (e.g. pb) with a positive sum; ``None`` for unit weights.

        Returns:
            ``(mask, cut_flow)``: mask (n_events,) bool of events passing all cuts, and the :class:`CutFlow`.

        Raises:
            ValueError: ``weights`` of the wrong shape, not finite, or with a non-positive sum.
        """
        masks = self.cuts(events)
        cumulative = np.logical_and.accumulate(np.array(list(masks.values())), axis=0)
        w = np.ones(len(events)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(events),) or not np.all(np.isfinite(w)) or not w.sum() > 0:
            raise ValueError(
                f"weights: expected {len(events)} finite weights with a positive sum, got shape {w.shape}"
            )
        flow = CutFlow(
            tuple(masks), cumulative.sum(axis=1), cumulative @ w / w.sum(), len(events), float(w.sum())
        )
        return cumulative[-1], flow
