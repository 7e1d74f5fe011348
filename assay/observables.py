"""Kinematics and the WH → ℓνbb̄ observables of seed 000.

Four-momenta are float arrays ``(n_events, 4)``, ``(E, px, py, pz)`` in GeV, processed whole (no loops
over events). Degenerate configurations (a zero three-vector in an angle) give NaN, not an error.

The observable list follows seed 000 ("Input variables to the Neural Networks") and the reference
implementation of arXiv:2308.02882 (the polar angle θ is left out: it is a function of η).

Example:
    >>> lepton = np.array([[50.0, 30.0, 40.0, 0.0]])
    >>> print(pt(lepton), phi(lepton).round(4))
    [50.] [0.9273]
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "M_W",
    "WH_OBSERVABLES",
    "as_four_momenta",
    "boost",
    "boost_to_rest_frame",
    "cos_delta_minus",
    "cos_delta_plus",
    "delta_phi",
    "delta_r",
    "eta",
    "mass",
    "met_four_vector",
    "mt_of_sum",
    "neutrino_from_met",
    "neutrino_pz",
    "neutrino_pz_solutions",
    "phi",
    "pt",
    "transverse_mass",
    "wh_detector_observables",
    "wh_observables",
]

M_W = 80.379  # GeV, W mass used in the neutrino p_z constraint (PDG 2018, as in arXiv:2308.02882)

_OBJECT_COLUMNS = ("E", "px", "py", "pz", "pt", "eta", "phi")
WH_OBSERVABLES: tuple[str, ...] = (
    *(f"{obj}_{col}" for obj in ("l", "b1", "b2") for col in _OBJECT_COLUMNS),
    *("met_x", "met_y", "met", "pz_nu", "pt_w", "eta_w", "phi_w", "pt_h", "m_bb", "mt_w", "mt_tot"),
    *("dphi_lnu", "dphi_bb", "dphi_wh", "dphi_lb1", "dphi_lb2", "dr_bb", "dr_lb1", "dr_lb2"),
    *("q_l", "ql_cos_delta_plus", "ql_cos_delta_minus"),
)
"""Column names of :func:`wh_observables` and :func:`wh_detector_observables`, in order."""


def _as_array(x, name: str, width: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name}: expected {what} of shape (n_events, {width}), got shape {a.shape}")
    return a


def as_four_momenta(p, name: str = "p") -> np.ndarray:
    """``p`` as floats (n_events, 4), (E, px, py, pz) in GeV; ValueError naming ``name`` otherwise."""
    return _as_array(p, name, 4, "four-momenta (E, px, py, pz) in GeV")


def _as_met(met_xy) -> np.ndarray:
    return _as_array(met_xy, "met_xy", 2, "missing transverse momenta (MET_x, MET_y) in GeV")


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have the same number of events, got {lengths}")


def _momenta(**named) -> tuple[np.ndarray, ...]:
    """Validate several (n_events, 4) four-momenta arrays, named as the caller's arguments."""
    arrays = {name: as_four_momenta(p, name) for name, p in named.items()}
    _same_length(**arrays)
    return tuple(arrays.values())


def _as_charge(charge, n_events: int) -> np.ndarray:
    q = np.asarray(charge, dtype=float)
    if q.shape != (n_events,) or not np.all(np.abs(q) == 1):
        raise ValueError(f"charge: expected shape ({n_events},) with values ±1, got shape {q.shape}")
    return q


def _cos_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the angle between rows of ``a`` and ``b`` (n, 3); NaN where one of them is zero."""
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", a, b) / norm


def pt(p) -> np.ndarray:
    """Transverse momentum √(px² + py²), (n_events,) in GeV, of four-momenta ``p`` (n_events, 4)."""
    p = as_four_momenta(p, "p")
    return np.hypot(p[:, 1], p[:, 2])


def eta(p) -> np.ndarray:
    """Pseudorapidity asinh(pz / pT), (n_events,); ±inf along the beam. ``p``: (n_events, 4) GeV."""
    p = as_four_momenta(p, "p")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.arcsinh(p[:, 3] / np.hypot(p[:, 1], p[:, 2]))


def phi(p) -> np.ndarray:
    """Azimuth atan2(py, px) in (-π, π], (n_events,). ``p``: (n_events, 4) in GeV."""
    p = as_four_momenta(p, "p")
    return np.arctan2(p[:, 2], p[:, 1])


def mass(p) -> np.ndarray:
    """Invariant mass √max(E² − |p⃗|², 0), (n_events,) in GeV. ``p``: (n_events, 4) in GeV."""
    p = as_four_momenta(p, "p")
    m2 = p[:, 0] ** 2 - np.einsum("ij,ij->i", p[:, 1:], p[:, 1:])
    return np.sqrt(np.maximum(m2, 0.0))


def delta_phi(a, b) -> np.ndarray:
    """Azimuthal difference φ_a − φ_b wrapped to (-π, π], (n_events,). ``a``, ``b``: (n_events, 4)."""
    a, b = _momenta(a=a, b=b)
    return np.pi - np.mod(np.pi - (phi(a) - phi(b)), 2 * np.pi)


def delta_r(a, b) -> np.ndarray:
    """ΔR = √(Δη² + Δφ²), (n_events,). ``a``, ``b``: (n_events, 4) in GeV."""
    a, b = as_four_momenta(a, "a"), as_four_momenta(b, "b")
    return np.hypot(eta(a) - eta(b), delta_phi(a, b))


def boost(p, beta) -> np.ndarray:
    """Active Lorentz boost of ``p`` by velocity ``beta`` (like scikit-hep vector's ``boost_beta3``).

    A particle at rest ends up with velocity ``beta``. Pure boost, no rotation:
    E' = γ(E + β·p⃗), p⃗' = p⃗ + (γ²/(γ+1) β·p⃗ + γE) β (γ²/(γ+1) = (γ−1)/β² is finite at β = 0).

    Args:
        p: four-momenta (n_events, 4) in GeV.
        beta: velocities (n_events, 3) in units of c, each |β| < 1.

    Returns:
        Boosted four-momenta (n_events, 4) in GeV.

    Raises:
        ValueError: wrong shapes, or some |β| ≥ 1.
    """
    p = as_four_momenta(p, "p")
    beta = _as_array(beta, "beta", 3, "velocities (βx, βy, βz)")
    _same_length(p=p, beta=beta)
    b2 = np.einsum("ij,ij->i", beta, beta)
    if np.any(b2 >= 1):
        raise ValueError(f"beta: expected |beta| < 1 in every event, got max |beta| = {np.sqrt(b2.max())}")
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.einsum("ij,ij->i", beta, p[:, 1:])
    energy = gamma * (p[:, 0] + bp)
    space = p[:, 1:] + (gamma**2 / (gamma + 1) * bp + gamma * p[:, 0])[:, None] * beta
    return np.column_stack([energy, space])


def boost_to_rest_frame(p, frame) -> np.ndarray:
    """Four-momenta ``p`` seen in the rest frame of ``frame``, reached by a pure boost from the lab.

    ``frame`` itself becomes (M, 0, 0, 0); invariant masses and dot products are preserved.

    Args:
        p: four-momenta (n_events, 4) in GeV.
        frame: time-like four-momenta (n_events, 4) in GeV defining the frame, E > |p⃗|.

    Returns:
        (n_events, 4) four-momenta in GeV; NaN rows where ``frame`` is not time-like (no rest
        frame, e.g. a light-like W candidate from a degenerate neutrino reconstruction).

    Raises:
        ValueError: wrong shapes.
    """
    frame = as_four_momenta(frame, "frame")
    timelike = frame[:, 0] > np.linalg.norm(frame[:, 1:], axis=1)
    beta = np.where(timelike[:, None], -frame[:, 1:] / frame[:, :1], 0.0)
    return np.where(timelike[:, None], boost(p, beta), np.nan)


def transverse_mass(*momenta) -> np.ndarray:
    """Transverse mass √((Σ E_T)² − |Σ p⃗_T|²), E_T = √(m² + p_T²) per object (PDG kinematics review).

    For ℓ and ν this is the W transverse mass m_T^W, with its Jacobian edge at m_W. ``momenta``: one or
    more four-momenta arrays (n_events, 4) in GeV; returns (n_events,) in GeV.
    """
    ps = _momenta(**{f"momenta[{i}]": p for i, p in enumerate(momenta)})
    et = sum(np.sqrt(mass(p) ** 2 + pt(p) ** 2) for p in ps)
    total = sum(ps)
    return np.sqrt(np.maximum(et**2 - pt(total) ** 2, 0.0))


def mt_of_sum(*momenta) -> np.ndarray:
    """√(E² − p_z²) of the summed four-vector: scikit-hep vector's ``(a + b + ...).mt``.

    This is the convention of the reference implementation of arXiv:2308.02882 for m_T^{ℓνbb̄}
    (``(j[0] + j[1] + l[0] + met).mt`` with the MET four-vector (|MET|, MET_x, MET_y, 0), see
    :func:`met_four_vector`); it equals √(m² + p_T²) of the sum and is ≥ :func:`transverse_mass`.
    ``momenta``: one or more four-momenta arrays (n_events, 4) in GeV; returns (n_events,) in GeV.
    """
    ps = _momenta(**{f"momenta[{i}]": p for i, p in enumerate(momenta)})
    total = sum(ps)
    return np.sqrt(np.maximum(total[:, 0] ** 2 - total[:, 3] ** 2, 0.0))


def met_four_vector(met_xy) -> np.ndarray:
    """Massless four-vectors (|MET|, MET_x, MET_y, 0), (n_events, 4) in GeV, from ``met_xy`` (n_events, 2)."""
    met_xy = _as_met(met_xy)
    return np.column_stack([np.hypot(met_xy[:, 0], met_xy[:, 1]), met_xy, np.zeros(len(met_xy))])


def neutrino_pz_solutions(lepton, met_xy) -> np.ndarray:
    """Both neutrino p_z solutions of the W-mass constraint (ℓ + ν)² = m_W², massless ℓ and ν.

    μ = m_W²/2 + p⃗_T^ℓ·MET⃗, Δ = (μ p_z^ℓ / p_T^ℓ²)² − (E_ℓ² MET² − μ²) / p_T^ℓ²;
    p_z = μ p_z^ℓ / p_T^ℓ² ± √Δ, with Δ set to 0 where negative (the imaginary part is dropped,
    which happens exactly where m_T^W > m_W). As in the ATLAS VH(bb̄) analyses and the reference
    implementation of arXiv:2308.02882. Exact for a massless lepton.

    Args:
        lepton: charged-lepton four-momenta (n_events, 4) in GeV, p_T > 0.
        met_xy: missing transverse momentum (n_events, 2) in GeV, taken as the neutrino's.

    Returns:
        (n_events, 2) in GeV: the ``+√Δ`` solution in column 0, ``−√Δ`` in column 1.
    """
    lepton = as_four_momenta(lepton, "lepton")
    met_xy = _as_met(met_xy)
    _same_length(lepton=lepton, met_xy=met_xy)
    pt2 = lepton[:, 1] ** 2 + lepton[:, 2] ** 2
    mu = 0.5 * M_W**2 + np.einsum("ij,ij->i", lepton[:, 1:3], met_xy)
    centre = mu * lepton[:, 3] / pt2
    met2 = np.einsum("ij,ij->i", met_xy, met_xy)
    delta = centre**2 - (lepton[:, 0] ** 2 * met2 - mu**2) / pt2
    root = np.sqrt(np.maximum(delta, 0.0))
    return np.column_stack([centre + root, centre - root])


def _beta_z(p: np.ndarray) -> np.ndarray:
    """β_z = p_z / √(p_z² + M²), the ATLAS choice (not p_z/E) used to pick the neutrino solution."""
    m2 = p[:, 0] ** 2 - np.einsum("ij,ij->i", p[:, 1:], p[:, 1:])
    return p[:, 3] / np.sqrt(p[:, 3] ** 2 + np.maximum(m2, 0.0))


def neutrino_from_met(met_xy, pz) -> np.ndarray:
    """Massless neutrino four-momenta (n_events, 4) in GeV from MET (n_events, 2) and p_z (n_events,)."""
    met_xy = _as_met(met_xy)
    pz = np.asarray(pz, dtype=float)
    if pz.shape != (len(met_xy),):
        raise ValueError(f"pz: expected shape ({len(met_xy)},), got {pz.shape}")
    energy = np.sqrt(np.einsum("ij,ij->i", met_xy, met_xy) + pz**2)
    return np.column_stack([energy, met_xy, pz])


def neutrino_pz(lepton, met_xy, higgs) -> np.ndarray:
    """Neutrino p_z from the W-mass constraint, choosing the solution closest to the Higgs in β_z.

    Of the two :func:`neutrino_pz_solutions`, take the one whose W candidate ℓ + ν has β_z closest
    to that of the Higgs candidate, with β_z = p_z / √(p_z² + M²) for both (the ATLAS choice, as in
    the reference implementation of arXiv:2308.02882; ties go to the ``+√Δ`` solution).

    Args:
        lepton: charged-lepton four-momenta (n_events, 4) in GeV.
        met_xy: missing transverse momentum (n_events, 2) in GeV.
        higgs: Higgs-candidate (b1 + b2) four-momenta (n_events, 4) in GeV.

    Returns:
        (n_events,) neutrino p_z in GeV.

    Example:
        >>> lepton = np.array([[50.0, 50.0, 0.0, 0.0]])
        >>> higgs = np.array([[200.0, -50.0, 0.0, 100.0]])
        >>> print(neutrino_pz(lepton, np.array([[0.0, 40.0]]), higgs).round(3))
        [50.736]
    """
    lepton, higgs = _momenta(lepton=lepton, higgs=higgs)
    solutions = neutrino_pz_solutions(lepton, met_xy)
    beta_h = _beta_z(higgs)
    distance = [np.abs(_beta_z(lepton + neutrino_from_met(met_xy, s)) - beta_h) for s in solutions.T]
    return np.where(distance[0] <= distance[1], solutions[:, 0], solutions[:, 1])


def cos_delta_plus(lepton, neutrino, higgs) -> np.ndarray:
    """cos δ⁺ = p⃗_ℓ^W · (p⃗_H × p⃗_W) / (|p⃗_ℓ^W| |p⃗_H × p⃗_W|) (seed 000; arXiv:2308.02882).

    p⃗_ℓ^W is the lepton in the W = ℓ + ν rest frame (pure boost from the lab); p⃗_H, p⃗_W are lab
    three-momenta. CP-odd: a triple product, odd under parity, invariant under rotations.

    Args:
        lepton: charged-lepton four-momenta (n_events, 4) in GeV.
        neutrino: neutrino four-momenta (n_events, 4) in GeV (true or reconstructed).
        higgs: Higgs-candidate four-momenta (n_events, 4) in GeV.

    Returns:
        (n_events,) in [-1, 1]; NaN where p⃗_H ∥ p⃗_W (e.g. in the WH rest frame).
    """
    lepton, neutrino, higgs = _momenta(lepton=lepton, neutrino=neutrino, higgs=higgs)
    w = lepton + neutrino
    lepton_w = boost_to_rest_frame(lepton, w)[:, 1:]
    return _cos_angle(lepton_w, np.cross(higgs[:, 1:], w[:, 1:]))


def cos_delta_minus(lepton, neutrino, higgs) -> np.ndarray:
    """cos δ⁻ = (p⃗_ℓ' × p⃗_ν') · p⃗_W / (|p⃗_ℓ' × p⃗_ν'| |p⃗_W|), as coded for arXiv:2308.02882.

    p_ℓ', p_ν' are the lepton and neutrino boosted *by* the Higgs-candidate velocity +β_H, NOT into the
    Higgs rest frame (−β_H): this follows the reference code, which calls it "the CM of the H candidate
    with an inverted momentum". p⃗_W is the lab W = ℓ + ν momentum. CP-odd (a triple product).

    Args:
        lepton: charged-lepton four-momenta (n_events, 4) in GeV.
        neutrino: neutrino four-momenta (n_events, 4) in GeV (true or reconstructed).
        higgs: Higgs-candidate four-momenta (n_events, 4) in GeV, time-like.

    Returns:
        (n_events,) in [-1, 1].
    """
    lepton, neutrino, higgs = _momenta(lepton=lepton, neutrino=neutrino, higgs=higgs)
    beta_h = higgs[:, 1:] / higgs[:, :1]
    normal = np.cross(boost(lepton, beta_h)[:, 1:], boost(neutrino, beta_h)[:, 1:])
    return _cos_angle(normal, (lepton + neutrino)[:, 1:])


def _object_columns(prefix: str, p: np.ndarray) -> dict[str, np.ndarray]:
    values = (p[:, 0], p[:, 1], p[:, 2], p[:, 3], pt(p), eta(p), phi(p))
    return {f"{prefix}_{col}": v for col, v in zip(_OBJECT_COLUMNS, values)}


def wh_observables(lepton, b1, b2, neutrino, charge) -> np.ndarray:
    """Seed 000's observables ("Input variables") of WH → ℓνbb̄ events, columns :data:`WH_OBSERVABLES`.

    The b's are ordered by p_T here (b1 leading); the MET is the neutrino's transverse momentum.
    Conventions: ``mt_w`` is :func:`transverse_mass` of ℓ and ν (standard m_T^W); ``mt_tot`` is
    :func:`mt_of_sum` of ℓ, b1, b2 and the MET four-vector (|MET|, MET_x, MET_y, 0), i.e. the reference
    code's ``(j[0] + j[1] + l[0] + met).mt``, so that seed 000's m_T^{ℓνbb̄} binning applies;
    ``eta_w``, ``phi_w``, ``pz_nu`` use the full neutrino four-vector.

    Args:
        lepton: charged-lepton four-momenta (n_events, 4) in GeV.
        b1: first b four-momenta (n_events, 4) in GeV.
        b2: second b four-momenta (n_events, 4) in GeV.
        neutrino: neutrino four-momenta (n_events, 4) in GeV, true or reconstructed.
        charge: lepton charge Q_ℓ (n_events,), ±1.

    Returns:
        (n_events, n_obs) float array, n_obs = len(WH_OBSERVABLES); GeV and radians.

    Raises:
        ValueError: wrong shapes, mismatched event counts or charges other than ±1.
    """
    lepton, b1, b2, neutrino = _momenta(lepton=lepton, b1=b1, b2=b2, neutrino=neutrino)
    q = _as_charge(charge, len(lepton))
    swap = (pt(b2) > pt(b1))[:, None]
    b1, b2 = np.where(swap, b2, b1), np.where(swap, b1, b2)
    w, h = lepton + neutrino, b1 + b2
    met = met_four_vector(neutrino[:, 1:3])
    columns = {**_object_columns("l", lepton), **_object_columns("b1", b1), **_object_columns("b2", b2)}
    columns |= {"met_x": met[:, 1], "met_y": met[:, 2], "met": met[:, 0], "pz_nu": neutrino[:, 3]}
    columns |= {"pt_w": pt(w), "eta_w": eta(w), "phi_w": phi(w), "pt_h": pt(h), "m_bb": mass(h)}
    columns |= {"mt_w": transverse_mass(lepton, neutrino), "mt_tot": mt_of_sum(lepton, b1, b2, met)}
    columns |= {"dphi_lnu": delta_phi(lepton, neutrino), "dphi_bb": delta_phi(b1, b2)}
    columns |= {
        "dphi_wh": delta_phi(w, h),
        "dphi_lb1": delta_phi(lepton, b1),
        "dphi_lb2": delta_phi(lepton, b2),
    }
    columns |= {"dr_bb": delta_r(b1, b2), "dr_lb1": delta_r(lepton, b1), "dr_lb2": delta_r(lepton, b2)}
    columns |= {"q_l": q, "ql_cos_delta_plus": q * cos_delta_plus(lepton, neutrino, h)}
    columns["ql_cos_delta_minus"] = q * cos_delta_minus(lepton, neutrino, h)
    return np.column_stack([columns[name] for name in WH_OBSERVABLES])


def wh_detector_observables(lepton, b1, b2, met_xy, charge) -> np.ndarray:
    """:func:`wh_observables` with the neutrino reconstructed from MET and the W-mass constraint.

    The neutrino is massless with (p_x, p_y) = MET and p_z from :func:`neutrino_pz` (Higgs candidate
    b1 + b2), as in arXiv:2308.02882.

    Args:
        lepton: reconstructed lepton four-momenta (n_events, 4) in GeV.
        b1: first b-jet four-momenta (n_events, 4) in GeV.
        b2: second b-jet four-momenta (n_events, 4) in GeV.
        met_xy: missing transverse momentum (n_events, 2) in GeV.
        charge: lepton charge (n_events,), ±1.

    Returns:
        (n_events, len(WH_OBSERVABLES)) float array; GeV and radians.
    """
    b1, b2 = _momenta(b1=b1, b2=b2)
    pz = neutrino_pz(lepton, met_xy, b1 + b2)
    return wh_observables(lepton, b1, b2, neutrino_from_met(met_xy, pz), charge)
