"""Phase-space maps of p p → 4ℓ and their densities, each computable from the momenta.

An event is (ŝ, y, p_T², φ_T) of the 4ℓ system Q and the four lepton momenta in its rest frame R
(reached from the lab by the pure boost −Q⃗/Q⁰). The generator draws

- ŝ from a power law ∝ ŝ^−a on the m4ℓ window (:class:`PowerMap`);
- y given ŝ from a piecewise-constant table of the parton luminosities (:class:`RapidityTable`);
- p_T² of the recoil from a mixture of the two initial states' densities (:class:`Recoil`);
- k₁², k₂² from Breit–Wigner maps (k₂ ≤ √ŝ − k₁) and uniform Z and lepton angles in R.

Densities are per dŝ, dy, dp_T², and per dΦ₄ for the decay: dΦ₄ = dk₁²/2π dk₂²/2π dΦ₂(Q; k₁, k₂)
dΦ₂(k₁; ℓℓ) dΦ₂(k₂; ℓℓ), dΦ₂(Q; k₁, k₂) = |p*|/(16π²√ŝ) dΩ, dΦ₂(k; ℓℓ) = dΩ/(32π²), so uniform
angles and Breit–Wigner masses have ĝ = ρ(k₁²) ρ(k₂²) · 1024 π⁵ √ŝ / |p*| (:func:`decay_density`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assay.simulators.phase_space import boost, breit_wigner_map, mass2, two_body_decay, two_body_momentum

__all__ = [
    "PowerMap",
    "RapidityTable",
    "Recoil",
    "breit_wigner_density",
    "decay_density",
    "sample_decay",
    "to_lab",
    "to_rest_frame",
]


@dataclass(frozen=True)
class PowerMap:
    """ŝ ∈ [low², high²] with density ∝ ŝ^−power (GeV); ``power = 1`` is uniform in ln ŝ."""

    low: float
    high: float
    power: float = 1.0

    def _edges(self) -> tuple[float, float]:
        e = 1.0 - self.power
        lo, hi = self.low**2, self.high**2
        return (np.log(lo), np.log(hi)) if e == 0 else (lo**e, hi**e)

    def sample(self, u: np.ndarray) -> np.ndarray:
        """ŝ in GeV², ``(n,)``."""
        a, b = self._edges()
        t = a + u * (b - a)
        return np.exp(t) if self.power == 1.0 else t ** (1.0 / (1.0 - self.power))

    def density(self, shat: np.ndarray) -> np.ndarray:
        """g(ŝ) per dŝ, GeV⁻²; zero outside the window."""
        a, b = self._edges()
        e = 1.0 - self.power
        g = 1.0 / (shat * (b - a)) if e == 0 else e * shat ** (-self.power) / (b - a)
        return np.where((shat >= self.low**2) & (shat <= self.high**2), g, 0.0)


@dataclass(frozen=True)
class RapidityTable:
    """Piecewise-constant density of z = y / y_max(ŝ) ∈ [−1, 1] per bin of ln ŝ.

    Attributes:
        log_shat_edges: ``(n_s + 1,)`` bin edges in ln(ŝ/GeV²); probs: ``(n_s, n_z)`` rows sum to 1.
        sqrt_s: collider energy in GeV (y_max = ln(√s/√ŝ)).
    """

    log_shat_edges: np.ndarray
    probs: np.ndarray
    sqrt_s: float

    @classmethod
    def from_luminosity(cls, luminosity, shat_range: tuple[float, float], sqrt_s: float, *,
                        n_s: int = 24, n_z: int = 40, floor: float = 0.02) -> RapidityTable:  # fmt: skip
        """Rows ∝ ``luminosity(shat, y) -> (n, k)`` (k initial states, each normalised per row,
        averaged) at bin centres, plus a uniform ``floor`` share so every y is reachable."""
        edges = np.linspace(np.log(shat_range[0]), np.log(shat_range[1]), n_s + 1)
        z = np.linspace(-1.0, 1.0, n_z + 1)
        zc = 0.5 * (z[1:] + z[:-1])
        shat = np.exp(np.repeat(0.5 * (edges[1:] + edges[:-1]), n_z))
        ymax = np.log(sqrt_s / np.sqrt(shat))
        lum = luminosity(shat, np.tile(zc, n_s) * ymax).reshape(n_s, n_z, -1)
        lum = lum / np.maximum(lum.sum(axis=1, keepdims=True), 1e-300)
        rows = (1.0 - floor) * lum.mean(axis=2) + floor / n_z
        return cls(edges, rows / rows.sum(axis=1, keepdims=True), sqrt_s)

    def _row(self, shat: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.log_shat_edges, np.log(shat)) - 1
        return np.clip(idx, 0, len(self.probs) - 1)

    def sample(self, shat: np.ndarray, u: np.ndarray) -> np.ndarray:
        """y ``(n,)`` given ŝ ``(n,)`` and uniforms ``u (n, 2)``."""
        n_s, n_z = self.probs.shape
        cdf = np.cumsum(self.probs, axis=1)
        cdf[:, -1] = 1.0
        row = self._row(shat)
        # rows shifted by their index form one increasing sequence: one searchsorted for all events
        flat = (cdf + np.arange(n_s)[:, None]).ravel()
        j = np.searchsorted(flat, row + u[:, 0], side="right") - row * n_z
        z = -1.0 + (np.clip(j, 0, n_z - 1) + u[:, 1]) * (2.0 / n_z)
        return z * np.log(self.sqrt_s / np.sqrt(shat))

    def density(self, shat: np.ndarray, y: np.ndarray) -> np.ndarray:
        """g(y | ŝ) per dy, ``(n,)``."""
        ymax = np.log(self.sqrt_s / np.sqrt(shat))
        n_z = self.probs.shape[1]
        z = y / ymax
        j = np.clip(((z + 1.0) * (n_z / 2.0)).astype(np.int64), 0, n_z - 1)
        inside = np.abs(z) <= 1.0
        return np.where(inside, self.probs[self._row(shat), j] * n_z / (2.0 * ymax), 0.0)


@dataclass(frozen=True)
class Recoil:
    """Analytic recoil densities dP/dp_T² = (n−1)/q² (1 + p_T²/q²)^−n per initial state.

    Attributes:
        q_gg, q_qq: scales in GeV of the gg (harder) and q q̄ initial states; power: n > 2
            (⟨p_T²⟩ = q²/(n − 2)). Sampling draws from the equal mixture of the two.
    """

    q_gg: float = 30.0
    q_qq: float = 18.0
    power: float = 3.0

    def pdf(self, pt2: np.ndarray, q: float) -> np.ndarray:
        """dP/dp_T² in GeV⁻²."""
        return (self.power - 1.0) / q**2 * (1.0 + pt2 / q**2) ** (-self.power)

    def sample(self, u: np.ndarray) -> np.ndarray:
        """p_T² ``(n,)`` from uniforms ``u (n, 2)`` (column 0 picks the mixture component)."""
        q = np.where(u[:, 0] < 0.5, self.q_gg, self.q_qq)
        return q**2 * ((1.0 - u[:, 1]) ** (-1.0 / (self.power - 1.0)) - 1.0)

    def density(self, pt2: np.ndarray) -> np.ndarray:
        """Sampling density per dp_T²: the mixture ½(pdf_gg + pdf_qq)."""
        return 0.5 * (self.pdf(pt2, self.q_gg) + self.pdf(pt2, self.q_qq))


def breit_wigner_density(k2: np.ndarray, mass: float, width: float, low, high) -> np.ndarray:
    """Density per dk² of :func:`breit_wigner_map` on [low, high] (GeV²); zero outside."""
    mg = mass * width
    span = np.arctan((high - mass**2) / mg) - np.arctan((low - mass**2) / mg)
    inside = (k2 >= low) & (k2 <= high) & (span > 0)
    return np.where(inside, mg / (((k2 - mass**2) ** 2 + mg**2) * np.where(span > 0, span, 1.0)), 0.0)


def _upper(m: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.maximum(m - k, 0.0) ** 2


def sample_decay(shat: np.ndarray, u: np.ndarray, mll_min: float, m_z: float, width_z: float) -> np.ndarray:
    """Leptons ``(n, 4, 4)`` (ℓ₁⁻, ℓ₁⁺, ℓ₂⁻, ℓ₂⁺) in R from uniforms ``u (n, 9)``; GeV.

    One mass k² ∈ [m_min², (√ŝ − m_min)²], the other k'² ∈ [m_min², (√ŝ − k)²], both Breit–Wigner;
    which of the two is Z₁ is chosen with probability ½ (``u[:, 8]``), so the density is symmetric
    under Z₁ ↔ Z₂; angles uniform.
    """
    m = np.sqrt(shat)
    lo = np.full_like(m, mll_min**2)
    ka, _ = breit_wigner_map(u[:, 0], m_z, width_z, lo, _upper(m, mll_min))
    kb, _ = breit_wigner_map(u[:, 1], m_z, width_z, lo, _upper(m, np.sqrt(ka)))
    first = u[:, 8] < 0.5
    k1, k2 = np.where(first, ka, kb), np.where(first, kb, ka)
    zeros = np.zeros_like(m)
    q = np.column_stack([m, zeros, zeros, zeros])
    z1, z2 = two_body_decay(q, k1, k2, 2 * u[:, 2] - 1, 2 * np.pi * u[:, 3])
    l1m, l1p = two_body_decay(z1, 0.0, 0.0, 2 * u[:, 4] - 1, 2 * np.pi * u[:, 5])
    l2m, l2p = two_body_decay(z2, 0.0, 0.0, 2 * u[:, 6] - 1, 2 * np.pi * u[:, 7])
    return np.stack([l1m, l1p, l2m, l2p], axis=1)


def _mass_density(ka: np.ndarray, kb: np.ndarray, m: np.ndarray, mll_min: float, m_z: float, width_z: float):
    """Density of drawing ka first, then kb ≤ (m − √ka)², per dka dkb."""
    rho_a = breit_wigner_density(ka, m_z, width_z, mll_min**2, _upper(m, mll_min))
    return rho_a * breit_wigner_density(kb, m_z, width_z, mll_min**2, _upper(m, np.sqrt(np.maximum(ka, 0.0))))


def decay_density(
    leptons: np.ndarray,
    order: tuple[int, int, int, int],
    shat: np.ndarray,
    mll_min: float,
    m_z: float,
    width_z: float,
) -> np.ndarray:
    """ĝ per dΦ₄ of :func:`sample_decay` for the lepton labelling ``order``, ``(n,)``.

    ĝ = ½[ρ(k₁²)ρ(k₂²|k₁) + ρ(k₂²)ρ(k₁²|k₂)] · 1024 π⁵ √ŝ / |p*| (symmetric under Z₁ ↔ Z₂).

    Args:
        leptons: ``(n, 4, 4)`` momenta in R.
        order: the lepton indices playing (ℓ₁⁻, ℓ₁⁺, ℓ₂⁻, ℓ₂⁺).
        shat: ŝ ``(n,)`` GeV²; mll_min: lower bound of both pair masses, GeV.
    """
    m = np.sqrt(shat)
    k1 = mass2(leptons[:, order[0]] + leptons[:, order[1]])
    k2 = mass2(leptons[:, order[2]] + leptons[:, order[3]])
    rho = 0.5 * (
        _mass_density(k1, k2, m, mll_min, m_z, width_z) + _mass_density(k2, k1, m, mll_min, m_z, width_z)
    )
    pstar = two_body_momentum(shat, np.maximum(k1, 0.0), np.maximum(k2, 0.0))
    ok = pstar > 0
    return np.where(ok, rho * 1024 * np.pi**5 * m / np.where(ok, pstar, 1.0), 0.0)


def to_lab(
    leptons: np.ndarray, shat: np.ndarray, y: np.ndarray, pt2: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """Boost leptons ``(n, 4, 4)`` from R to the lab where Q has rapidity y and p_T² at azimuth φ."""
    pt = np.sqrt(pt2)
    mt = np.sqrt(shat + pt2)
    q = np.column_stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)])
    beta = q[:, 1:] / q[:, :1]
    return np.stack([boost(leptons[:, i], beta) for i in range(4)], axis=1)


def to_rest_frame(leptons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(leptons in R ``(n, 4, 4)``, ŝ, y, p_T²) from lab leptons ``(n, 4, 4)``."""
    q = leptons.sum(axis=1)
    beta = -q[:, 1:] / q[:, :1]
    rest = np.stack([boost(leptons[:, i], beta) for i in range(4)], axis=1)
    y = 0.5 * np.log((q[:, 0] + q[:, 3]) / (q[:, 0] - q[:, 3]))
    return rest, mass2(q), y, q[:, 1] ** 2 + q[:, 2] ** 2
