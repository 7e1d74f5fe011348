"""Systematic variations of the WH detector simulation as exact per-event weight factors.

The parametrised detector (:class:`~assay.simulators.detector.DetectorModel`) draws the reconstructed
event x from the parton-level truth z with a known density p(x|z): each b-jet energy is
E_reco = E_true (1 + r) with r ~ N(δ, σ_E/E(E_true)) (δ = 0 nominally), and each b-jet is tagged with
probability ε(p_T^true). Everything else (η, φ, the lepton, the MET soft term) does not depend on the
varied quantities, and the MET and the selection are functions of these draws. A variation replaces
the detector by a shifted one, p(x|z) → p'(x|z), so the importance weight of the drawn (z, x) pair,

    F(z, x) = p'(x|z) / p(x|z),

makes the nominal sample a sample of the varied detector, exactly in expectation:
E_p[F w g(x)] = E_p'[w g(x)] for every function g, the selection included (it acts on x). Truth is not
changed, so F is the same for every morphing component of the event.

Variations (numbers in :class:`WHSystematicsModel`; docs/systematics.md, "WH"):

- ``jes``: the b-jet energy scale, δ → ±3 %: r ~ N(±δ_JES, σ) with the resolution unchanged, so
  F^± = Π_jets N(r_j; ±δ_JES, σ_j) / N(r_j; 0, σ_j), σ_j = σ_E/E at the true jet energy. The ATLAS
  jet energy scale uncertainty is 1 % (250–2000 GeV) to 5 % (20 GeV) for central jets (arXiv:2007.02645);
  3 % covers the 35–200 GeV b-jets here with a b-jet response uncertainty on top.
- ``btag``: the b-tagging efficiency scaled by 1 ± u(p_T), u rising linearly from 2 % at
  p_T ≤ 100 GeV to 8 % at p_T ≥ 500 GeV (the 77 % working point's calibration uncertainty is 1–8 %
  depending on p_T, arXiv:1907.05120). The selection keeps only events with both b-jets tagged, so
  F^± = Π_jets ε'(p_T,j)/ε(p_T,j) = Π_jets (1 ± u(p_T,j)); untagged jets never reach the events.

Example:
    >>> det = DetectorModel()
    >>> b = np.array([[[100.0, 60.0, 0.0, 80.0], [80.0, -40.0, 20.0, 60.0]]])  # (1, 2, 4): b, b̄
    >>> f = variation_factors(det, b, np.array([[0.0, 0.0]]), ("btag",))
    >>> f.shape, bool(np.allclose(f[0, 0], [1.02**2, 0.98**2]))
    ((1, 1, 2), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from assay.observables import pt
from assay.simulators.detector import DetectorModel, EfficiencyScale

__all__ = ["VARIATIONS", "WHSystematicsModel", "check_variations", "shifted_detector", "variation_factors"]

VARIATIONS: tuple[str, ...] = ("jes", "btag")
"""The WH variations, in the order of this module's docstring (config.py lists the same names)."""


@dataclass(frozen=True)
class WHSystematicsModel:
    """The size of each variation at α = ±1.

    Attributes:
        jes: δ_JES, the relative shift of the mean b-jet energy response.
        btag: u(p_T), the relative change of the b-tagging efficiency with the true jet p_T.
    """

    jes: float = 0.03
    btag: EfficiencyScale = field(
        default_factory=lambda: EfficiencyScale(low=0.02, high=0.08, pt_low=100.0, pt_high=500.0)
    )


def check_variations(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ValueError naming the unknown ones and the valid :data:`VARIATIONS`."""
    unknown = [n for n in names if n not in VARIATIONS]
    if unknown:
        raise ValueError(f"unknown WH systematic variation(s) {unknown}; valid names: {list(VARIATIONS)}")
    return tuple(names)


def shifted_detector(
    detector: DetectorModel, name: str, sign: float, model: WHSystematicsModel | None = None
) -> DetectorModel:
    """The detector of variation ``name`` at α = ``sign`` (±1): what the factors reweight the nominal to.

    Raises:
        ValueError: an unknown name, or ``btag`` on a detector that already has a ``b_tag_scale``.
    """
    (name,), model = check_variations([name]), model or WHSystematicsModel()
    if name == "jes":
        return replace(detector, jet_scale_shift=detector.jet_scale_shift + sign * model.jes)
    if detector.b_tag_scale is not None:
        raise ValueError(f"btag varies a flat b-tagging efficiency; the detector has {detector.b_tag_scale}")
    return replace(detector, b_tag_scale=model.btag.scaled(sign))


def variation_factors(
    detector: DetectorModel,
    b_jets: np.ndarray,
    response: np.ndarray,
    names: Sequence[str],
    *,
    model: WHSystematicsModel | None = None,
) -> np.ndarray:
    """Per-event factors F^± = p'(x|z)/p(x|z) of the named variations, ``(n_events, n_syst, 2)``.

    Args:
        detector: the nominal detector that made the events.
        b_jets: true b and b̄ four-momenta ``(n_events, 2, 4)`` in GeV.
        response: the relative energy shifts r drawn for them ``(n_events, 2)``
            (:attr:`~assay.simulators.detector.DetectorEvents.jet_response`).
        names: variations, each one of :data:`VARIATIONS`.
        model: the variation sizes (default :class:`WHSystematicsModel`).

    Returns:
        Dimensionless factors; axis 2 is α = +1, −1. ``btag`` assumes both jets tagged (the
        selection's requirement).

    Raises:
        ValueError: an unknown name (the message lists the valid ones), shapes that do not match, or
            ``jes`` on a detector without jet energy smearing (the ideal one).
    """
    names = check_variations(names)
    b_jets, response = np.asarray(b_jets, dtype=float), np.asarray(response, dtype=float)
    n = len(b_jets)
    if b_jets.shape != (n, 2, 4) or response.shape != (n, 2):
        raise ValueError(f"expected b_jets (n, 2, 4), response (n, 2); got {b_jets.shape}, {response.shape}")
    energy, pt_true = b_jets[..., 0].ravel(), pt(b_jets.reshape(-1, 4))
    out = np.ones((n, len(names), 2))
    for j, name in enumerate(names):
        for k, sign in enumerate((1.0, -1.0)):
            varied = shifted_detector(detector, name, sign, model)
            if name == "jes":
                log_f = varied.jet_response_log_density(response.ravel(), energy)
                log_f = log_f - detector.jet_response_log_density(response.ravel(), energy)
                out[:, j, k] = np.exp(log_f.reshape(n, 2).sum(axis=1))
            else:
                ratio = varied.b_tag_probability(pt_true) / detector.b_tag_probability(pt_true)
                out[:, j, k] = ratio.reshape(n, 2).prod(axis=1)
    return out
