"""Boosted Information Trees on WH at parton level against the exact likelihood ratio and Fisher
information (seed 002's method on seed 000's validation process).

Set-up as in tests/test_estimators_wh.py (seed 000 "Parton-level validation study"): u d̄ → W⁺h →
μ⁺ν b b̄ only, every momentum observed (the 43 columns of assay.observables.wh_observables), so
the weights give the exact x-level quantities (the simulator sums both beam orientations of the
quarks; tests/test_wh.py checks the joint ratio against |M|²). Here in both Wilson coefficients
(c_HW, c_HW̃) with a 6-point quadratic basis, which morphs the weights exactly.

BIT (:class:`assay.bit.BoostedInformationTree`) regresses R_a, R_ab of R(x|θ) = dσ(x|θ)/dσ(x|SM)
on the train events (80%); on the test events (20%) its normalised log r̂(x|θ, SM)
(``log_ratio``) is compared with the exact log r(x|θ, SM) = log w(θ)/w(SM) − log σ(θ)/σ(SM)
at c_HW̃ = ±0.5 and c_HW = ±0.5. MSEs are expectations over x ~ p(x|SM), as in
test_estimators_wh.py, but estimated with the SM weights of all test events rather than an
unweighted subsample (same expectation, lower variance). The exact log r has heavy tails where the
SM amplitude nearly vanishes, so "trimmed" drops the 1% of SM cross section with the largest exact
|t(x|SM)| (the criterion of test_estimators_wh.py). "zero" is the MSE of predicting log r̂ = 0.

The Fisher information at the SM, L Σ_e w_e R̂_a R̂_b (``BoostedInformationTree.fisher_information``;
kinematic + rate, since R_a = t_a + ∂_a log σ), is compared on the test events with
:func:`assay.inference.fisher.truth_fisher_information` (test weights scaled to the total σ).

Axis-aligned splits cannot combine momentum components: with m(ℓνbb̄) = √ŝ as a 44th column,
100 trees reach 0.32 and 0.58 of MSE(0) at c_HW = ±0.5 instead of 0.48 and 0.78 (c_HW̃: 0.28
instead of 0.32; measured once, not tested). BIT's accuracy depends on the features it is given.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from assay.bit import BoostedInformationTree, weight_derivatives
from assay.inference.fisher import truth_fisher_information
from assay.joint import JointQuantities
from assay.morphing import Morpher, morphing_components
from assay.observables import WH_OBSERVABLES, wh_observables
from assay.simulators.wh import WHSimulator
from assay.unweighting import split_events

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

BASIS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 1.0]])  # (cHW, cHW̃)
SM = np.zeros(2)
THETAS = {
    "cHWtilde=+0.5": [0.0, 0.5],
    "cHWtilde=-0.5": [0.0, -0.5],
    "cHW=+0.5": [0.5, 0.0],
    "cHW=-0.5": [-0.5, 0.0],
}
LUMI = 300.0  # fb⁻¹, for the Fisher information only


class WHBitValidation:
    """Weighted parton-level WH events: train events for BIT, exact log r and scores on test events."""

    def __init__(self, n_events: int, seed: int):
        sim = WHSimulator(BASIS, charges=(1,), lepton_flavours=(13,), ud_only=True, vegas_seed=seed)
        ev = sim.simulate(n_events, np.random.default_rng(seed))
        x = wh_observables(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge)
        self.morpher = Morpher(morphing_components(2, 2), BASIS)
        self.joint = JointQuantities(self.morpher, ev.weights.sum(axis=0))  # σ from the whole sample
        split = split_events(n_events, (0.8, 0.0, 0.2), np.random.default_rng([seed, 1]))
        self.x_train, self.w_train = x[split.train], ev.weights[split.train]
        self.x, test = x[split.test], ev.weights[split.test]
        self.benchmark_weights = test * (ev.weights[:, 0].sum() / test[:, 0].sum())  # Σ = σ(SM)
        self.w_sm = self.benchmark_weights[:, 0]  # BASIS[0] is the SM
        self.thetas = np.array(list(THETAS.values()))
        self.log_r = np.stack([self.joint.log_ratio(test, theta, SM) for theta in self.thetas])
        t_norm = np.linalg.norm(self.joint.score(test, SM), axis=1)
        self.keep = t_norm < _weighted_quantile(t_norm, self.w_sm, 0.99)

    def errors(self, bit: BoostedInformationTree) -> dict[str, tuple[float, float, float, float]]:
        """Per θ: (MSE, MSE of predicting 0, trimmed MSE, trimmed MSE of 0) of log r̂(x|θ, SM)."""
        log_r = bit.log_ratio(self.x, self.thetas, SM).mean
        assert log_r.shape == self.log_r.shape and np.all(np.isfinite(log_r))
        out = {}
        for name, predicted, exact in zip(THETAS, log_r, self.log_r):
            values = ((predicted - exact) ** 2, exact**2)
            full = [np.average(v, weights=self.w_sm) for v in values]
            trimmed = [np.average(v[self.keep], weights=self.w_sm[self.keep]) for v in values]
            out[name] = (*full, *trimmed)
        return out

    def fisher(self, bit: BoostedInformationTree) -> tuple[np.ndarray, np.ndarray]:
        """(BIT, truth) Fisher information at the SM on the test events, ``(2, 2)`` each."""
        truth = truth_fisher_information(self.joint, self.benchmark_weights, SM, LUMI)
        return LUMI * 1000 * bit.fisher_information(self.x, self.w_sm), truth

    def fisher_exact_coefficients(self) -> np.ndarray:
        """L Σ w R_a R_b with the exact R_a = ∂_a w / w on the same events: differs from the truth
        only by the test sample's Σ w t ≠ 0 (statistical), the floor of the comparison."""
        w, derivatives = weight_derivatives(self.benchmark_weights, self.morpher)
        linear = derivatives[:, :2] / w[:, None]
        return LUMI * 1000 * np.einsum("e,ea,eb->ab", w, linear, linear)


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])


def fisher_deviation(estimate: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|ΔI_ab| / √(I_aa I_bb), ``(2, 2)``."""
    return np.abs(estimate - exact) / np.sqrt(np.outer(np.diag(exact), np.diag(exact)))


def print_table(errors: dict[str, tuple], title: str) -> None:
    print(f"\n{title}\n{'theta':<14} {'MSE':>9} {'zero':>9} {'trimmed':>9} {'zero':>9}")
    for name, values in errors.items():
        print(f"{name:<14} " + " ".join(f"{v:>9.5f}" for v in values))


# Measured (seed 2, 150 trees): MSE / MSE(0) and trimmed MSE / trimmed MSE(0) of log r̂(x|θ, SM).
MEASURED = {
    "cHWtilde=+0.5": (0.300, 0.282),
    "cHWtilde=-0.5": (0.314, 0.281),
    "cHW=+0.5": (0.431, 0.469),
    "cHW=-0.5": (0.740, 0.737),
}


@pytest.mark.slow
def test_bit_matches_the_exact_wh_likelihood_ratio_and_fisher_information():
    """200k events (160k train), depth 5, 150 trees, η = 0.2, ≥ 50 events per leaf, positive=True.

    Measured (MSE, MSE(0), trimmed, trimmed MSE(0)): c_HW̃ = +0.5: 0.0133, 0.0442, 0.0095, 0.0338;
    c_HW̃ = −0.5: 0.0140, 0.0445, 0.0094, 0.0333; c_HW = +0.5: 0.0157, 0.0365, 0.0122, 0.0260;
    c_HW = −0.5: 0.0732, 0.0989, 0.0545, 0.0740 (fit 209 s, test 220 s on 2 shared cores). Still falling
    slowly with more trees (200 trees: 0.285, 0.300, 0.404, 0.713 of MSE(0)). Bounds: 1.5x the
    measured fraction of MSE(0), at most 0.9 (BIT must beat predicting zero at every θ).
    Without positive=True the unconstrained sum of trees gives R̂(x|θ) < 0 for ~1e-5 of the SM
    cross section at these θ; the clipped log R̂ = log 1e-12 then dominates the MSE (0.039
    instead of 0.014 at c_HW̃ = +0.5 after 100 trees), hence seed 002's positivity option here.

    Fisher information at the SM (L = 300 fb⁻¹): BIT / truth = 0.833 (c_HW), 0.535 (c_HW̃) on the
    diagonal, off-diagonal deviation 0.8% of √(I_aa I_bb); the exact R_a on the same events give
    the truth to 0.06%. BIT regresses R_a, so its information approaches the truth from below as
    trees are added (25 trees: 0.78, 0.28; 200: 0.84, 0.57); the CP-odd c_HW̃ information sits in
    angular correlations that axis-aligned splits resolve slowly. Bounds: 1.5x the measured
    deficit below the truth, 10% above it, 2% off the diagonal.
    """
    data = WHBitValidation(n_events=200_000, seed=2)
    assert data.x.shape[1] == len(WH_OBSERVABLES)
    start = time.perf_counter()
    bit = BoostedInformationTree(n_trees=150, max_depth=5, learning_rate=0.2, min_size=50, positive=True)
    bit.fit(data.x_train, data.w_train, morpher=data.morpher)
    fit_s = time.perf_counter() - start
    errors = data.errors(bit)
    print_table(errors, f"BIT on WH parton level, 160k train events, fit {fit_s:.0f} s")
    info, truth = data.fisher(bit)
    floor = data.fisher_exact_coefficients()
    print(f"Fisher information at SM, L = {LUMI:.0f} fb^-1 (cHW, cHWtilde):")
    print(f"  BIT   {info.round(1).tolist()}\n  truth {truth.round(1).tolist()}")
    print(f"  exact R_a on the same events {floor.round(1).tolist()}")
    print(f"  BIT / truth on the diagonal {(np.diag(info) / np.diag(truth)).round(3).tolist()}")
    print(f"  relative deviation BIT {fisher_deviation(info, truth).round(4).tolist()}")

    for name, (mse, zero, trimmed, trimmed_zero) in errors.items():
        full_fraction, trimmed_fraction = MEASURED[name]
        assert mse < min(1.5 * full_fraction, 0.9) * zero, name
        assert trimmed < min(1.5 * trimmed_fraction, 0.9) * trimmed_zero, name
    # the training partition's σ(θ)/σ(SM) against the whole sample's (80% of the same events):
    # measured <= 0.025%; bound 0.5% (about 4 standard errors of the 20% that differ)
    sigma = data.joint.cross_section(data.thetas) / data.joint.cross_section(SM)
    np.testing.assert_allclose(bit.cross_section_ratio(data.thetas), sigma, rtol=5e-3)
    ratio = np.diag(info) / np.diag(truth)
    deficit = 1 - np.array([0.833, 0.535])
    assert np.all(ratio > 1 - 1.5 * deficit) and np.all(ratio < 1.1), ratio
    assert fisher_deviation(info, truth)[0, 1] < 0.02
    assert fisher_deviation(floor, truth).max() < 0.01  # the comparison itself is sound
