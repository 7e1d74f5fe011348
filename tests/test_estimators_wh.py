"""SALLY, ALICE and ALICES on WH at parton level against the exact score and likelihood ratio.

Seed 000's validation set-up ("Parton-level validation study"): u d̄ → W⁺h → μ⁺ν b b̄ only, 1D
in the CP-odd c_HW̃ with their optimised basis c_HW̃ ∈ {0, 1.150, −1.035} (c_HW = 0), observables
of assay.observables.wh_observables (43 columns). With every initial and final state flavour
fixed and every momentum observed, x determines the parton configuration z up to the b ↔ b̄
label (and h → b b̄ is isotropic), so the joint quantities from the event weights are exact:
r(x|θ0, θ1) = r(x,z|θ0, θ1) and t(x|θ) = t(x,z|θ) (tests/test_wh.py
test_joint_log_ratio_is_the_exact_likelihood_ratio checks them against |M|²).

MSEs are over test events x ~ p(x|SM) and, for log r, over 15 θ0 ~ N(0, 0.4²), the training
prior. The joint score has heavy tails where the SM amplitude nearly vanishes: the 1% of test
events with the largest exact |t| carry ~60% of E[t²] (one event with t = 33 alone 10%), so
the tables also give the MSE over the other 99% ("trimmed"). Seed 000's table (1M samples,
5-member ensembles, MadGraph, definition not given): SALLY 0.0041, ALICE 0.0068, ALICES 0.0125;
printed for orientation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.estimators import ALICE, ALICES, SALLY
from assay.joint import JointQuantities
from assay.morphing import Morpher, morphing_components
from assay.observables import WH_OBSERVABLES, wh_observables
from assay.parameters import GaussianPrior, Parameter, ParameterSpace
from assay.sampling import EventSource, local_score_training_set, ratio_training_set, unweight
from assay.simulators.wh import WHSimulator
from assay.store import EventStore
from assay.unweighting import split_events

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

BASIS = np.array([[0.0], [1.150], [-1.035]])  # seed 000 validation basis in c_HW̃
SM = np.zeros(1)
PRIOR = GaussianPrior(mean=0.0, std=0.4, n_params=1)  # seed 000: Gaussian(0, 0.4), n_θ0 = 1000
SEED_000_MSE = {"SALLY": 0.0041, "ALICE": 0.0068, "ALICES": 0.0125}


class WHValidation:
    """Weighted parton-level events in an EventStore, training sets and exact test quantities."""

    def __init__(self, folder, n_events: int, n_samples: int, n_test: int, seed: int):
        sim = WHSimulator(np.column_stack([np.zeros(3), BASIS[:, 0]]), charges=(1,), lepton_flavours=(13,),
                          ud_only=True, vegas_seed=seed)  # fmt: skip
        ev = sim.simulate(n_events, np.random.default_rng(seed))
        x = wh_observables(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge)
        morpher = Morpher(morphing_components(1, 2), BASIS)
        names = ["sm", "plus", "minus"]
        space = ParameterSpace.from_dict(
            [Parameter("cHWtilde", (-1.2, 1.2))], {n: {"cHWtilde": t[0]} for n, t in zip(names, BASIS)}
        )
        with EventStore.create(folder / "wh.h5", observables=list(WH_OBSERVABLES), benchmarks=names,
                               morphing=morpher.to_dict(), parameters=space.to_dict()) as writer:  # fmt: skip
            writer.append(x, ev.weights)
        self.store = EventStore(folder / "wh.h5")
        split = split_events(n_events, (0.8, 0.0, 0.2), np.random.default_rng([seed, 1]))
        source = EventSource(self.store, events=split.train)
        rng = np.random.default_rng([seed, 2])
        self.local_set = local_score_training_set(source, SM, n_samples // 2, rng=rng)
        self.ratio_set = ratio_training_set(source, PRIOR, SM, n_samples, n_theta0=1000, rng=rng)
        test = unweight(EventSource(self.store, events=split.test), SM, n_test, rng)
        weights = self.store.take(test.event_index, fields=("weights",)).weights
        joint = JointQuantities(morpher, self.store.weights_sum())
        self.x = test.x
        self.theta0 = PRIOR.sample(15, np.random.default_rng([seed, 3]))
        self.t = joint.score(weights, SM)  # exact t(x|SM) (n_test, 1)
        self.log_r = np.stack([joint.log_ratio(weights, th, SM) for th in self.theta0])  # (15, n_test)

    def errors(self, sally: SALLY, ratio_estimators: dict) -> dict[str, tuple[float, float, float, float]]:
        """Per method (MSE, MSE of predicting 0, trimmed MSE, trimmed MSE of 0): t̂ for SALLY, log r̂ else."""
        keep = np.abs(self.t[:, 0]) < np.quantile(np.abs(self.t[:, 0]), 0.99)  # see the module docstring
        pairs = {"SALLY": (sally.evaluate_score(self.x).T, self.t.T)}
        for name, est in ratio_estimators.items():
            log_r = est.evaluate_log_ratio(self.x, self.theta0, SM, score=False).log_r
            assert log_r.shape == self.log_r.shape and np.all(np.isfinite(log_r))
            pairs[name] = (log_r, self.log_r)
        return {
            name: tuple(
                float(np.mean(v)) for v in ((a - b) ** 2, b**2, (a - b)[:, keep] ** 2, b[:, keep] ** 2)
            )
            for name, (a, b) in pairs.items()
        }


def print_table(errors: dict[str, tuple], title: str) -> None:
    print(f"\n{title}\n{'method':<7} {'MSE':>8} {'MSE(0)':>8} {'trimmed':>8} {'MSE(0)':>8} {'seed 000':>8}")
    for name, values in errors.items():
        print(f"{name:<7} " + " ".join(f"{v:>8.4f}" for v in (*values, SEED_000_MSE[name])))


def test_small_wh_estimators_learn_something(tmp_path):
    """Few thousand events, 3 epochs: shapes, finite outputs and better than predicting zero."""
    data = WHValidation(tmp_path, n_events=8_000, n_samples=4_000, n_test=1_000, seed=1)
    assert data.x.shape == (1_000, len(WH_OBSERVABLES)) and np.all(np.isfinite(data.log_r))
    quick = dict(
        hidden=(50,), activation="relu", epochs=3, batch_size=64, lr=(1e-2, 1e-3), seed=0, progress=False
    )
    sally = SALLY(**quick).fit(data.local_set)
    assert sally.evaluate_score(data.x).shape == (1_000, 1)
    alices = ALICES(alpha=5.0, clip_grad_norm=1.0, **quick).fit(data.ratio_set)
    prediction = alices.evaluate_log_ratio(data.x[:10], data.theta0, SM)
    assert prediction.log_r.shape == (15, 10) and prediction.score.shape == (15, 10, 1)
    errors = data.errors(sally, {"ALICES": alices})
    print_table(errors, "WH parton level, 8k events, 3 epochs")
    # measured MSE / MSE(0): SALLY 0.49-0.55, ALICES 0.78-0.81 (data seeds 1, 3 × torch seeds 0-3)
    for name, (value, zero, *_) in errors.items():
        assert value < zero, name


@pytest.mark.slow
def test_wh_estimators_match_the_exact_quantities(tmp_path):
    """Seed 000's validation architecture and training ([50], ReLU, AMSGrad, batch 128, lr 1e-3 → 1e-4,
    50 epochs, α = 5) on 200k events (seed 000: 1.2M) and single networks (seed 000: ensembles of 5)."""
    data = WHValidation(tmp_path, n_events=200_000, n_samples=100_000, n_test=10_000, seed=2)
    setting = dict(hidden=(50,), activation="relu", epochs=50, seed=0, progress=False)
    sally = SALLY(**setting).fit(data.local_set)
    ratio = {
        "ALICE": ALICE(**setting).fit(data.ratio_set),
        "ALICES": ALICES(alpha=5.0, clip_grad_norm=1.0, **setting).fit(data.ratio_set),
    }
    errors = data.errors(sally, ratio)
    print_table(errors, "WH parton level, 200k events, 50 epochs")
    # Measured (MSE, MSE(0), trimmed, trimmed MSE(0)): SALLY 0.175, 0.329, 0.024, 0.121;
    # ALICE 0.0094, 0.0243, 0.0057, 0.0164; ALICES 0.0098, 0.0243, 0.0049, 0.0164.
    # Bounds: about 1.5x the measured fractions of MSE(0) (the tail events make the full MSE noisy).
    mse, zero, trimmed, trimmed_zero = errors["SALLY"]
    assert mse < 0.8 * zero and trimmed < 0.3 * trimmed_zero
    for name in ("ALICE", "ALICES"):
        mse, zero, trimmed, trimmed_zero = errors[name]
        assert mse < 0.6 * zero and trimmed < 0.5 * trimmed_zero, name
        # same order as seed 000's numbers (whose exact definition is not given): within 3x
        assert mse < 3 * SEED_000_MSE[name], name
