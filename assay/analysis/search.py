"""Counting-level numbers of a search for a signal strength μ with interference (seed 001).

With w(μ) = μ w_S + √μ w_I + w_B per event (``morphing.power_step: 0.5``), the expected yields
are N(μ) = μ S + √μ I + B. Seed 001 ("What is the metric to optimise?") gives, for a counting
experiment with Asimov data at μ = 1,

    σ_μ = √(S + I + B) / (S + I/2),        iZ = 1 / σ_μ = (S + SBI − B_int) / (2 √(SBI + B_rest)),

(S + SBI − B_int = 2S + I and SBI + B_rest = N(1), so iZ needs no split of the background) and
the discovery significance of the counting experiment against μ = 0 (Cowan et al.'s Asimov
formula with interference),

    z0 = √(2 [N(1) ln(N(1)/N(0)) − (N(1) − N(0))]),     N(0) = B.

The effective number of events of a weighted sample is N_eff = (Σw)² / Σw².
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assay.config import RunConfig, root_parameters
from assay.inference.asimov import AsimovSample

__all__ = ["counting_significance", "effective_events", "search_numbers", "signal_components"]

PB_TO_EVENTS_PER_IFB = 1000.0  # 1 pb × 1 fb⁻¹ = 1000 events


def effective_events(weights: np.ndarray) -> float:
    """N_eff = (Σw)² / Σw² of weights ``(n_events,)`` (signed weights allowed; 0 for no weight).

    Example:
        >>> effective_events(np.array([1.0, 1.0, 2.0]))
        2.6666666666666665
    """
    w = np.asarray(weights, dtype=float)
    square = float(np.sum(w**2))
    return float(np.sum(w)) ** 2 / square if square > 0 else 0.0


def signal_components(sample: AsimovSample, axis: int) -> np.ndarray:
    """Per-event (w_S, w_I, w_B) ``(n_events, 3)`` in pb with parameter ``axis`` the signal strength,
    the other parameters at θ_true: w at μ = 0, 1, 4 solved for μ w_S + √μ w_I + w_B."""
    thetas = np.repeat(sample.theta_true[None], 3, axis=0)
    thetas[:, axis] = (0.0, 1.0, 4.0)
    w0, w1, w4 = sample.joint.weights_on_grid(sample.benchmark_weights, thetas).T
    s = 0.5 * (w4 - 2 * w1 + w0)
    return np.column_stack([s, w1 - w0 - s, w0])


def counting_significance(n1: float, n0: float) -> float:
    """z0 = √(2 [N1 ln(N1/N0) − (N1 − N0)]): Asimov counting significance of N1 expected against N0.

    Example:
        >>> round(counting_significance(110.0, 100.0), 4)  # ≈ s/√b = 1 for s ≪ b
        0.984
    """
    if n0 <= 0 or n1 <= 0:
        return float("nan")
    return float(np.sqrt(max(2.0 * (n1 * np.log(n1 / n0) - (n1 - n0)), 0.0)))


def search_numbers(
    cfg: RunConfig, sample: AsimovSample, benchmark_names: Sequence[str] | None = None
) -> dict[str, float]:
    """Expected S, I, B (events at ``inference.luminosity_ifb``), iZ, z0 and N_eff of the Asimov
    events (at θ_true and per benchmark, ``n_eff_<benchmark>``) for the first signal strength of
    ``cfg`` (a parameter with power_step 0.5); {} if there is none."""
    roots = root_parameters(cfg)
    if not roots:
        return {}
    axis = [p.name for p in cfg.parameters].index(roots[0])
    to_events = sample.scale * sample.luminosity * PB_TO_EVENTS_PER_IFB
    s, i, b = signal_components(sample, axis).sum(axis=0) * to_events
    n1, n0 = s + i + b, b
    out = {
        "expected_S": s, "expected_I": i, "expected_B": b, "expected_total_mu1": n1,
        "iZ": (s + 0.5 * i) / np.sqrt(n1) if n1 > 0 else float("nan"),
        "z0_counting": counting_significance(n1, n0),
        "n_eff_asimov": effective_events(sample.weights),
        "n_asimov_events": float(len(sample.weights)),
    }  # fmt: skip
    n_bench = sample.benchmark_weights.shape[1]
    names = list(benchmark_names) if benchmark_names is not None else [str(k) for k in range(n_bench)]
    for k, name in enumerate(names):
        out[f"n_eff_{name}"] = effective_events(sample.benchmark_weights[:, k])
    return {k: float(v) for k, v in out.items()}
