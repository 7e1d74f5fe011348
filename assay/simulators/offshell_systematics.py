"""Systematic variations of the off-shell 4ℓ simulator as exact per-event, per-component factors.

Seed 003 (ATLAS off-shell H → 4ℓ NSBI, "Impact of nuisance parameters") lists the parton-shower
uncertainty of g g → ZZ (normalisation and shape), the NLO EW uncertainty of q q̄ → ZZ, the NLO QCD
uncertainty of g g → ZZ, the parton shower of q q̄ → ZZ (shape) and the energy scales. Each
variation here is a model of one of them, defined at α = ±1 by a factor on each component c of
every event x,

    w_c(x | α = ±1) = F_c^±(x) w_c(x),

so that F_c^±(x) is exactly the ratio of the varied to the nominal differential cross section
dσ_c(x | ±1)/dσ_c(x) (normalisation included: Σ F w ≠ Σ w in general). The factors are functions
of the lab lepton momenta only. Where a nominal component is exactly zero (a process that was not
simulated) the factor is 1.

Variations (numbers in :class:`SystematicsModel`, documented in docs/offshell.md):

- ``gg_nlo_qcd``: F = 1 ± δ(m4ℓ) on S, I, B_gg; δ rises linearly from 10 % at 220 GeV to 20 % at
  1 TeV (capped at 50 %).
- ``qq_nlo_ew``: F = 1 ± κ (m4ℓ / 1 TeV)² on B_qq, κ = 0.1 (capped at 50 %), a Sudakov-like growth.
- ``gg_shower`` / ``qq_shower``: the recoil scale q → q (1 ± 0.25) of the gg (S, I, B_gg) or q q̄
  (B_qq) initial state, F = ρ_{q(1±0.25)}(p_T4ℓ²) / ρ_q(p_T4ℓ²) with the simulator's analytic
  recoil density: exact, and shape-only up to the p_T dependence of the lepton acceptance.
- ``lepton_scale``: every lepton momentum scaled by s = 1 ± ε, ε = 0.5 %. The observed momenta are
  x = s X with X drawn from dσ; dσ is a density per dμ = dŝ dy dp_T² dφ/2π dΦ₄ ∝ Π_i d³p_i / E_i
  (massless leptons), which scales as s⁸, so the density of x per dμ is

      dσ_s(x)/dμ = s⁻⁸ dσ(x/s)/dμ,    F^± = s⁻⁸ dσ_c(x/s) / dσ_c(x),

  with dσ_c(x/s) from :meth:`OffshellSimulator.dsigma` (zero where x/s violates the model's
  m_ℓℓ > mll_min). The selection (m4ℓ window, lepton cuts) then acts on the observed x, so truth
  events from outside the generated region that migrate in are included (dσ is evaluated there);
  a sample made by scaling the nominal events lacks them, and keeps events that migrate out.
  For I, which changes sign on a few per mille of the events, F_I can be large or negative where
  I(x) ≈ 0; F_I w_I is still the exact varied weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # offshell.py imports this module
    from assay.simulators.offshell import OffshellSimulator

__all__ = ["VARIATIONS", "SystematicsModel", "check_variations", "variation_factors"]

_Nominal = np.ndarray | None  # dσ (n, 4) pb per unit measure at the momenta (None: not needed)
_GG, _QQ = [0, 1, 2], [3]  # component columns (S, I, B_gg, B_qq) of each initial state


@dataclass(frozen=True)
class SystematicsModel:
    """The numbers of the variation models (each the size of the α = ±1 shift).

    Attributes:
        gg_qcd_low, gg_qcd_high: δ of ``gg_nlo_qcd`` at m4ℓ = ``gg_qcd_masses`` (GeV), linear in m4ℓ
            between and beyond them, floored at ``gg_qcd_low`` and capped at ``cap``.
        qq_ew_kappa: κ of ``qq_nlo_ew``, δ = κ (m4ℓ / 1 TeV)² capped at ``cap``.
        shower_shift: relative shift of the recoil scales q_gg and q_qq.
        lepton_scale: ε, the relative lepton energy scale shift.
    """

    gg_qcd_low: float = 0.10
    gg_qcd_high: float = 0.20
    gg_qcd_masses: tuple[float, float] = (220.0, 1000.0)
    qq_ew_kappa: float = 0.10
    shower_shift: float = 0.25
    lepton_scale: float = 0.005
    cap: float = 0.5


def _m4l(leptons: np.ndarray) -> np.ndarray:
    q = leptons.sum(axis=1)
    return np.sqrt(np.maximum(q[:, 0] ** 2 - np.sum(q[:, 1:] ** 2, axis=1), 0.0))


def _pt2(leptons: np.ndarray) -> np.ndarray:
    q = leptons.sum(axis=1)
    return q[:, 1] ** 2 + q[:, 2] ** 2


def _up_down(delta: np.ndarray, columns: list[int]) -> np.ndarray:
    """Factors ``(n, 2, 4)``: 1 ± δ on ``columns``, 1 elsewhere."""
    out = np.ones((len(delta), 2, 4))
    out[:, 0, columns] = (1.0 + delta)[:, None]
    out[:, 1, columns] = (1.0 - delta)[:, None]
    return out


def _gg_nlo_qcd(
    sim: OffshellSimulator, leptons: np.ndarray, ids: np.ndarray, nominal: _Nominal, model: SystematicsModel
) -> np.ndarray:
    (m_lo, m_hi), lo, hi = model.gg_qcd_masses, model.gg_qcd_low, model.gg_qcd_high
    delta = lo + (hi - lo) * (_m4l(leptons) - m_lo) / (m_hi - m_lo)
    return _up_down(np.clip(delta, lo, model.cap), _GG)


def _qq_nlo_ew(
    sim: OffshellSimulator, leptons: np.ndarray, ids: np.ndarray, nominal: _Nominal, model: SystematicsModel
) -> np.ndarray:
    delta = model.qq_ew_kappa * (_m4l(leptons) / 1000.0) ** 2
    return _up_down(np.minimum(delta, model.cap), _QQ)


def _shower(initial: str) -> Callable[..., np.ndarray]:
    columns = _GG if initial == "gg" else _QQ

    def factors(
        sim: OffshellSimulator,
        leptons: np.ndarray,
        ids: np.ndarray,
        nominal: _Nominal,
        model: SystematicsModel,
    ) -> np.ndarray:
        if sim.recoil is None:
            raise ValueError(f"{initial}_shower varies the recoil density: the simulator has recoil=None")
        q = sim.recoil.q_gg if initial == "gg" else sim.recoil.q_qq
        pt2 = _pt2(leptons)
        out = np.ones((len(leptons), 2, 4))
        for k, sign in enumerate((1.0, -1.0)):
            ratio = sim.recoil.pdf(pt2, q * (1.0 + sign * model.shower_shift)) / sim.recoil.pdf(pt2, q)
            out[:, k, columns] = ratio[:, None]
        return out

    return factors


def _lepton_scale(
    sim: OffshellSimulator, leptons: np.ndarray, ids: np.ndarray, nominal: _Nominal, model: SystematicsModel
) -> np.ndarray:
    out = np.ones((len(leptons), 2, 4))
    safe = np.where(nominal != 0.0, nominal, 1.0)
    for k, sign in enumerate((1.0, -1.0)):
        s = 1.0 + sign * model.lepton_scale
        truth = leptons / s
        varied = sim.dsigma(truth, ids) * sim.passes_mll(truth, ids)[:, None] * s**-8
        out[:, k] = np.where(nominal != 0.0, varied / safe, 1.0)
    return out


_FACTORS: dict[str, Callable[..., np.ndarray]] = {
    "gg_nlo_qcd": _gg_nlo_qcd,
    "qq_nlo_ew": _qq_nlo_ew,
    "gg_shower": _shower("gg"),
    "qq_shower": _shower("qq"),
    "lepton_scale": _lepton_scale,
}
VARIATIONS: tuple[str, ...] = tuple(_FACTORS)


def check_variations(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ValueError naming the unknown ones and the valid :data:`VARIATIONS`."""
    unknown = [n for n in names if n not in _FACTORS]
    if unknown:
        raise ValueError(f"unknown systematic variation(s) {unknown}; valid names: {list(VARIATIONS)}")
    return tuple(names)


def variation_factors(
    sim: OffshellSimulator,
    leptons: np.ndarray,
    ids: np.ndarray,
    names: tuple[str, ...] | list[str],
    *,
    nominal: np.ndarray | None = None,
    model: SystematicsModel | None = None,
) -> np.ndarray:
    """Per-event factors F_c^±(x) of the named variations, ``(n_events, n_syst, 2, 4)``.

    Args:
        sim: the simulator whose model is varied (recoil densities, ``dsigma``, mll_min).
        leptons: ``(n, 4, 4)`` lab momenta (ℓ_a⁻, ℓ_a⁺, ℓ_b⁻, ℓ_b⁺) in GeV; ids: ``(n, 4)`` PDG ids.
        names: variations, each one of :data:`VARIATIONS`.
        nominal: ``sim.dsigma(leptons, ids)`` ``(n, 4)`` if already known (computed otherwise).
        model: the variation sizes (default :class:`SystematicsModel`).

    Returns:
        Dimensionless factors; axis 2 is α = +1, −1; axis 3 the components S, I, B_gg, B_qq.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).

    Example:
        >>> sim = OffshellSimulator(np.array([1.0]))  # doctest: +SKIP
        >>> ev = sim.simulate(1000, np.random.default_rng(0))  # doctest: +SKIP
        >>> variation_factors(sim, ev.leptons, ev.ids, ("gg_shower",)).shape  # doctest: +SKIP
        (n_events, 1, 2, 4)
    """
    names = check_variations(names)
    model = model or SystematicsModel()
    if nominal is None and "lepton_scale" in names:
        nominal = sim.dsigma(leptons, ids)
    out = np.ones((len(leptons), len(names), 2, 4))
    for j, name in enumerate(names):
        out[:, j] = _FACTORS[name](sim, leptons, ids, nominal, model)
    return out
