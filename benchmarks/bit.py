"""Benchmark: Boosted Information Trees on 500k events, 3 Wilson coefficients (9 coefficients).

Events of the 3-parameter Gaussian toy (:meth:`GaussianToy.default` with n_params=3,
n_obs=3: two informative observables and one pure-noise one), drawn at the SM and weighted
at 10 benchmarks of ``morphing_components(3, 2)`` (exact quadratic morphing). Times
- BIT training: targets from morphing, sorting and 100 boosting iterations of depth-4 trees
  on 3 linear + 6 quadratic coefficients (seed 002 quotes 9 minutes for this size),
- prediction throughput of all 9 coefficients,
and checks the result against the toy's exact R(x|θ) on held-out events: the relative MSE of
the coefficients and the Fisher information Σ w R_a R_b of BIT versus the exact one.
The numba JIT compilation is done (and timed) before the measurements.
Prints a table and writes ./benchmark-results/bit.json
(``--record``: the tracked benchmarks/results/bit.json, for the developers).

Usage: python benchmarks/bit.py [--n-events 500000] [--n-trees 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

from assay.bit import BoostedInformationTree, weight_derivatives
from assay.morphing import Morpher, morphing_components
from assay.simulators.toys import GaussianToy

# SM, ±1 on every axis and the three mixed points: fixes all 10 monomials of degree <= 2.
BENCHMARKS = np.vstack([np.zeros(3), np.eye(3), -np.eye(3), [[1, 1, 0], [1, 0, 1], [0, 1, 1]]])


def exact_coefficients(toy: GaussianToy, morpher: Morpher, x: np.ndarray) -> np.ndarray:
    """The toy's exact R_a(x), R_ab(x): R(x|θ_k) at the benchmarks, morphed back to derivatives."""
    sm = np.zeros(toy.n_params)
    log_r = np.column_stack([toy.log_ratio(x, theta, sm) for theta in morpher.benchmarks])
    ratios = np.exp(log_r) * toy.cross_section(morpher.benchmarks) / toy.cross_section(sm)
    return weight_derivatives(ratios, morpher)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--n-events", type=int, default=500_000)
    parser.add_argument("--n-test", type=int, default=100_000)
    parser.add_argument("--n-trees", type=int, default=100)
    add_output_arguments(parser, "bit.json")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    toy = GaussianToy.default(n_params=3, n_obs=3)
    morpher = Morpher(morphing_components(3, 2), BENCHMARKS)
    start = time.perf_counter()
    train = toy.simulate(args.n_events, np.zeros(3), BENCHMARKS, rng)
    test = toy.simulate(args.n_test, np.zeros(3), BENCHMARKS, rng)
    simulate_s = time.perf_counter() - start

    start = time.perf_counter()  # compile (or load from the numba cache) on a small sample
    BoostedInformationTree(n_trees=2, min_size=5).fit(train.x[:2000], train.weights[:2000], morpher=morpher)
    jit_s = time.perf_counter() - start

    bit = BoostedInformationTree(n_trees=args.n_trees, max_depth=4, learning_rate=0.2, min_size=50)
    start = time.perf_counter()
    bit.fit(train.x, train.weights, morpher=morpher)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = bit.predict_coefficients(train.x)
    predict_s = time.perf_counter() - start

    exact = exact_coefficients(toy, morpher, test.x)
    learned = bit.predict_coefficients(test.x)
    w_test = weight_derivatives(test.weights, morpher)[0]
    mean_w = np.average(exact**2, weights=w_test, axis=0)
    rel_mse = np.average((learned - exact) ** 2, weights=w_test, axis=0) / mean_w
    fisher_bit = bit.fisher_information(test.x, w_test)
    fisher_exact = np.einsum("i,ia,ib->ab", w_test, exact[:, :3], exact[:, :3])

    results = {
        "n_events": args.n_events,
        "n_obs": toy.n_obs,
        "n_coefficients": int(predicted.shape[1]),
        "n_trees": args.n_trees,
        "max_depth": 4,
        "toy_simulation_s": simulate_s,
        "bit_jit_warmup_s": jit_s,
        "bit_500k_9coef_s": fit_s,
        "bit_per_tree_ms": 1e3 * fit_s / args.n_trees,
        "bit_predict_events_per_s": len(train.x) / predict_s,
        "bit_rel_mse_linear_max": float(rel_mse[:3].max()),
        "bit_rel_mse_quadratic_max": float(rel_mse[3:].max()),
        "bit_fisher_trace_ratio": float(np.trace(fisher_bit) / np.trace(fisher_exact)),
        "seed002_reference_s": 540.0,
    }
    write_results(results, output_path(args, "bit.json"), record=args.record)


if __name__ == "__main__":
    main()
