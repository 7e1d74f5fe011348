"""Reconstruct the WH → ℓνbb̄ final state (lepton, two b-jets, MET) from hadron-level particles.

A perfect-detector reconstruction in the spirit of Delphes (``delphes_card_ATLAS.tcl``, arXiv:1307.6346):

- lepton: the leading isolated e or μ with p_T > 10 GeV and |η| < 2.5; isolated means that the scalar p_T
  sum of the other visible final-state particles within ΔR < 0.3 is below 0.1 p_T^ℓ;
- jets: anti-k_T (arXiv:0802.1189), R = 0.4, p_T > 20 GeV, from every visible final-state particle but
  the selected lepton (FastJet, arXiv:1111.6097);
- b-label: truth tagging, the jet has |η| < 2.5 and a b-hadron (or b quark) with p_T > 5 GeV within
  ΔR < 0.4 of its axis; the tagging *efficiency* is applied by the caller (see
  :mod:`assay.simulators.pythia`);
- MET: −Σ p⃗_T of the visible final-state particles (= Σ p⃗_T^ν for a perfect detector).

Particles are an awkward array ``(n_events, var)`` of records with fields ``px, py, pz, E`` (GeV), ``id``
(PDG) and optionally ``final`` (bool; default all True). Non-final entries are only used as b-tagging
references: :func:`assay.simulators.pythia.shower_lhe` keeps the b-hadrons of the event history that way.
Everything is computed on whole batches (no Python loop over events). FastJet is imported on first use.

Example:
    >>> is_b_hadron(np.array([511, -5122, 10513, 5, 5101, 211])).tolist()
    [True, True, True, False, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import awkward as ak
import numpy as np

from assay.simulators.detector import DetectorEvents

__all__ = [
    "JetReconstruction", "Reconstructed", "cluster_jets", "flavour_labels", "is_b_hadron", "kinematics",
    "reconstruct",
]  # fmt: skip

_NEUTRINOS = (12, 14, 16)
_LEPTONS = (11, 13)
_P4 = ("E", "px", "py", "pz")


def is_b_hadron(pdg_id):
    """True for hadrons containing a b quark (PDG numbering scheme: b-mesons 5xx, b-baryons 5xxx).

    ``pdg_id`` is an integer numpy or awkward array; the radial/orbital prefix (10000, 20000, 100000) is
    ignored; diquarks (5101, 5503, …) and b quarks are not hadrons.
    """
    a = abs(pdg_id) % 10000
    meson = (a >= 100) & (a < 1000) & (a // 100 % 10 == 5)
    baryon = (a // 1000 == 5) & (a // 10 % 10 != 0)
    return meson | baryon


def kinematics(particles: ak.Array) -> ak.Array:
    """The input records with ``final``, ``pt``, ``eta``, ``phi`` and the position ``index`` added."""
    names = particles.fields
    missing = [f for f in (*_P4, "id") if f not in names]
    if missing:
        raise ValueError(
            f"particles: missing fields {missing}; expected px, py, pz, E, id (and optionally final)"
        )
    pt = np.hypot(particles.px, particles.py)
    final = particles.final if "final" in names else ak.ones_like(particles.px, dtype=bool)
    return ak.zip(
        {
            **{f: particles[f] for f in _P4}, "id": particles.id, "final": final, "pt": pt,
            "eta": np.arcsinh(particles.pz / np.maximum(pt, 1e-9)),  # finite along the beam
            "phi": np.arctan2(particles.py, particles.px), "index": ak.local_index(particles.px),
        }
    )  # fmt: skip


def _is_any(pdg_id: ak.Array, values: tuple[int, ...]) -> ak.Array:
    """|pdg_id| ∈ values, elementwise on a jagged array."""
    flat = np.isin(np.abs(ak.to_numpy(ak.flatten(pdg_id))), values)
    return ak.unflatten(flat, ak.num(pdg_id))


def _delta_r(a, b):
    d_phi = (a.phi - b.phi + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(a.eta - b.eta, d_phi)


def _four_momenta(objects: ak.Array) -> np.ndarray:
    """(n_events, 4) (E, px, py, pz) of one optional object per event; zeros where there is none."""
    return np.column_stack([ak.to_numpy(ak.fill_none(objects[f], 0.0)).astype(float) for f in _P4])


@dataclass(frozen=True)
class Reconstructed:
    """Reconstructed objects of a batch; placeholders are zeros where an object is missing.

    Attributes:
        lepton: leading isolated lepton (n_events, 4) in GeV.
        b1, b2: leading and subleading b-labelled jets (n_events, 4) in GeV.
        met_xy: missing transverse momentum (n_events, 2) in GeV.
        charge: lepton charge (n_events,), ±1, 0 without a lepton.
        n_leptons: isolated leptons per event (n_events,) int.
        complete: (n_events,) bool, at least one lepton and two b-labelled jets.
        jets: all jets (n_events, var) records ``E, px, py, pz, pt, eta, phi``, by decreasing p_T.
        jet_is_b: truth b-label of each jet, (n_events, var) bool.
    """

    lepton: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    met_xy: np.ndarray
    charge: np.ndarray
    n_leptons: np.ndarray
    complete: np.ndarray
    jets: ak.Array
    jet_is_b: ak.Array

    def __len__(self) -> int:
        return len(self.lepton)

    def leading_light_jet_pt(self, eta_max: float = 2.5) -> np.ndarray:
        """p_T of the hardest jet without a b-label within |η| < ``eta_max``, 0 if none; (n_events,) GeV."""
        import awkward as ak

        light = self.jets[~self.jet_is_b & (abs(self.jets.eta) < eta_max)]
        return ak.to_numpy(ak.fill_none(ak.max(light.pt, axis=1), 0.0)).astype(float)

    def detector_events(self, identified: np.ndarray | None = None) -> DetectorEvents:
        """These objects as :class:`DetectorEvents`; ``identified`` (n_events,) bool, default ``complete``."""
        identified = self.complete if identified is None else np.asarray(identified, dtype=bool)
        return DetectorEvents(self.lepton, self.b1, self.b2, self.met_xy, self.charge, identified)

    @classmethod
    def concatenate(cls, parts: list[Reconstructed]) -> Reconstructed:
        """The events of ``parts`` (at least one), in order."""
        if not parts:
            raise ValueError("concatenate: expected at least one Reconstructed, got none")
        joined = {f.name: [getattr(p, f.name) for p in parts] for f in fields(cls)}
        join = {k: ak.concatenate if k.startswith("jet") else np.concatenate for k in joined}
        return cls(**{k: join[k](v) for k, v in joined.items()})


@dataclass(frozen=True, kw_only=True)
class JetReconstruction:
    """Object definitions (module docstring); momenta in GeV.

    Args:
        lepton_pt_min, lepton_eta_max: lepton acceptance.
        isolation_dr, isolation_max: isolation cone and upper bound on Σp_T(cone) / p_T^ℓ.
        jet_radius, jet_pt_min: anti-k_T radius and jet p_T threshold.
        b_match_dr, b_hadron_pt_min, b_tag_eta_max: truth b-labelling (ΔR to a b-hadron, its p_T, jet |η|).
    """

    lepton_pt_min: float = 10.0
    lepton_eta_max: float = 2.5
    isolation_dr: float = 0.3
    isolation_max: float = 0.1
    jet_radius: float = 0.4
    jet_pt_min: float = 20.0
    b_match_dr: float = 0.4
    b_hadron_pt_min: float = 5.0
    b_tag_eta_max: float = 2.5

    def reconstruct(self, particles: ak.Array) -> Reconstructed:
        """Lepton, jets, b-labels and MET of every event of ``particles`` (see the module docstring).

        Raises:
            ValueError: a required field is missing.
            ImportError: fastjet is not installed.
        """
        parts = kinematics(particles)
        visible = parts.final & ~_is_any(parts.id, _NEUTRINOS)
        leptons = self._isolated_leptons(parts, visible)
        lepton = ak.firsts(leptons)
        lepton_index = ak.fill_none(lepton.index, -1)
        jets = self._jets(parts[visible & (parts.index != lepton_index)])
        is_b = self._b_labels(jets, parts)
        b_jets = ak.pad_none(jets[is_b], 2, clip=True)
        met = ak.zip({"px": -ak.sum(parts.px[visible], axis=1), "py": -ak.sum(parts.py[visible], axis=1)})
        n_leptons = ak.to_numpy(ak.num(leptons)).astype(int)
        n_b = ak.to_numpy(ak.num(jets[is_b]))
        return Reconstructed(
            lepton=_four_momenta(lepton), b1=_four_momenta(b_jets[:, 0]), b2=_four_momenta(b_jets[:, 1]),
            met_xy=np.column_stack([ak.to_numpy(met.px), ak.to_numpy(met.py)]).astype(float),
            charge=np.sign(-ak.to_numpy(ak.fill_none(lepton.id, 0))).astype(float), n_leptons=n_leptons,
            complete=(n_leptons >= 1) & (n_b >= 2), jets=jets, jet_is_b=is_b,
        )  # fmt: skip

    def _isolated_leptons(self, parts: ak.Array, visible: ak.Array) -> ak.Array:
        """Isolated e/μ in the acceptance, (n_events, var) by decreasing p_T."""
        in_acceptance = (parts.pt > self.lepton_pt_min) & (abs(parts.eta) < self.lepton_eta_max)
        accepted = parts.final & _is_any(parts.id, _LEPTONS) & in_acceptance
        candidates = parts[accepted]
        lep, other = ak.unzip(ak.cartesian([candidates, parts[visible]], nested=True))
        near = (_delta_r(lep, other) < self.isolation_dr) & (lep.index != other.index)
        cone = ak.sum(ak.where(near, other.pt, 0.0), axis=-1)
        isolated = candidates[cone < self.isolation_max * candidates.pt]
        return isolated[ak.argsort(isolated.pt, ascending=False)]

    def _jets(self, inputs: ak.Array) -> ak.Array:
        return cluster_jets(inputs, self.jet_radius, self.jet_pt_min)

    def _b_labels(self, jets: ak.Array, parts: ak.Array) -> ak.Array:
        """(n_events, var) bool: a b-hadron or b quark above threshold within ``b_match_dr`` of the jet."""
        is_b = is_b_hadron(parts.id) | (abs(parts.id) == 5)
        references = parts[is_b & (parts.pt > self.b_hadron_pt_min)]
        jet, ref = ak.unzip(ak.cartesian([jets, references], nested=True))
        matched = ak.any(_delta_r(jet, ref) < self.b_match_dr, axis=-1)
        return matched & (abs(jets.eta) < self.b_tag_eta_max)


def cluster_jets(inputs: ak.Array, radius: float = 0.4, pt_min: float = 20.0) -> ak.Array:
    """Anti-k_T jets (FastJet, arXiv:0802.1189) of ``inputs`` (n_events, var) records ``px, py, pz, E`` (GeV):
    (n_events, var) records ``E, px, py, pz, pt, eta, phi`` by decreasing p_T, p_T > ``pt_min`` GeV.

    Raises:
        ImportError: fastjet is not installed.
    """
    try:
        import fastjet
    except ImportError as exc:
        raise ImportError("jet clustering needs fastjet: install assay[jets]") from exc
    p4 = ak.zip({f: inputs[f] for f in ("px", "py", "pz", "E")})
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    raw = fastjet.ClusterSequence(p4, definition).inclusive_jets(min_pt=pt_min)
    jets = kinematics(ak.zip({**{f: raw[f] for f in _P4}, "id": ak.zeros_like(raw.px, dtype=np.int64)}))
    jets = jets[ak.argsort(jets.pt, ascending=False)]
    return jets[[*_P4, "pt", "eta", "phi"]]


def flavour_labels(jets: ak.Array, parts: ak.Array, *, dr_max: float = 0.4, pt_min: float = 5.0) -> ak.Array:
    """Truth flavour of each jet, (n_events, var) int: 5 if a b quark or b-hadron with p_T > ``pt_min`` GeV
    lies within ΔR < ``dr_max`` of its axis, else 4 for a c quark, else 0 (light: u, d, s, g).

    ``jets`` and ``parts`` are records with ``pt, eta, phi`` (``parts`` also ``id``), as made by
    :func:`kinematics` and :func:`cluster_jets`.
    """
    label = ak.zeros_like(jets.pt, dtype=np.int64)
    for flavour, is_flavour in ((4, abs(parts.id) == 4), (5, is_b_hadron(parts.id) | (abs(parts.id) == 5))):
        references = parts[is_flavour & (parts.pt > pt_min)]
        jet, ref = ak.unzip(ak.cartesian([jets, references], nested=True))
        matched = ak.any(_delta_r(jet, ref) < dr_max, axis=-1)
        label = ak.where(matched, flavour, label)  # b last: a jet with b and c is a b-jet
    return label


def reconstruct(particles: ak.Array) -> Reconstructed:
    """:meth:`JetReconstruction.reconstruct` with the default object definitions."""
    return JetReconstruction().reconstruct(particles)
