"""Benchmark: profiled fits with nuisance parameters and the coverage harness (issue 14).

1. ``profile_fit_100k_10np_s``: one profiled fit (MIGRAD with the autograd gradient, then the
   Hessian covariance) of μ and 10 nuisances on 100k Asimov events of a synthetic model with 3
   processes (log-normal per-event ratios, shape variations linear in a uniform observable,
   normalisation variations of a few per cent, an injected α_true; target < 5 s).
2. ``toys_per_s_1w``, ``toys_per_s_2w``: pseudo-experiments with one profiled fit each (μ and 10
   nuisances, Hessian included, randomised global observables) per second on ~10k-event toys drawn
   from a 10k-event pool of the same synthetic model (a toy's likelihood: counts on the pool;
   :func:`assay.analysis.coverage.toy_tasks`), on a local Dask
   cluster of 1 and 2 single-threaded workers (target ≥ 5 per second with 2 workers).
3. ``coverage_68``, ``challenge_score``: the harness (`assay coverage`) on the 5 % off-shell search
   with five nuisances at 3000 fb⁻¹: truth_profiled at μ = 1, ``coverage_toys`` toys, a 17-point
   profiled scan of μ over [0, 3] each, on 2 workers; also its mean width, the pulls of μ and the
   wall time per toy (Neyman belt included). With Wilks' threshold, and (``*_neyman``) with the
   Neyman critical values of ``neyman_belt_toys_per_point`` belt toys at each scan point.

Prints a table and writes ./benchmark-results/systematics.json
(``--record``: the tracked benchmarks/results/systematics.json, for the developers).

``load_average_1m`` records the machine's load when it started (other jobs share the cores).

Usage: python benchmarks/systematics.py [--toys 200] [--neyman 100] [--work DIR] [--fits-only]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _report import OUTPUT_HELP, add_output_arguments, output_path, previous_results, write_results

N_SYST = 10


def synthetic(n_events: int, nu_total: float, seed: int = 1):
    """A ProfiledMethod of a synthetic 3-process model with 10 nuisances on ``n_events`` events."""
    from assay.analysis.profiled import ProfiledMethod
    from assay.inference.profile_terms import ProcessCoefficients, ProfileTerms
    from assay.morphing import Morpher

    rng = np.random.default_rng(seed)
    ratios = np.exp(rng.normal(0, 0.5, (3, n_events)))
    ratios /= ratios.mean(axis=1, keepdims=True)  # E_ref[r_j] = 1 on the pool
    nu = np.array([0.025, 0.5, 0.5]) * nu_total
    x = rng.uniform(size=n_events)
    slopes = rng.normal(0, 0.1, (N_SYST, 3, 1))
    up, down = np.exp(slopes * (x - 0.5)), np.exp(-slopes * (x - 0.5) * 0.8)
    norm_up = np.exp(rng.normal(0.03, 0.02, (N_SYST, 3)))
    terms = ProfileTerms(ratios, nu, up, down, norm_up, 1 / norm_up, [f"np{k}" for k in range(N_SYST)])
    morpher = Morpher([[0.0], [0.5], [1.0]], [[0.0], [1.0], [4.0]])
    coefficients = ProcessCoefficients(
        morpher, np.array([[0.5, -1.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    )
    reference = np.full(n_events, 1.0 / n_events)
    return ProfiledMethod("synthetic", terms, reference * nu_total, reference, coefficients)


def profile_fit_time() -> dict:
    """One fit of μ and 10 nuisances on 100k Asimov events at an injected α_true."""
    from assay.inference.profile_likelihood import ProfileLikelihood, asimov_weights

    method = synthetic(100_000, 2050.0)
    alpha_true = np.random.default_rng(2).normal(0, 0.5, N_SYST)
    options = {"interpolation": "vertical", "normalization": method.reference}
    weights = asimov_weights(method.terms, method.coefficients, [1.0], alpha_true, **options)
    likelihood = ProfileLikelihood(
        method.terms, weights, method.coefficients, global_observables=alpha_true, **options
    )  # an Asimov data set of α_true: its global observables at α_true too
    likelihood.fit()  # first call: torch's and iminuit's set-up, not timed
    start = time.perf_counter()
    fit = likelihood.fit()
    seconds = time.perf_counter() - start
    return {
        "profile_fit_100k_10np_s": seconds,
        "profile_fit_100k_10np_calls": fit.n_calls,
        "profile_fit_100k_10np_max_abs_alpha_error": float(np.abs(fit.alpha_hat - alpha_true).max()),
    }


@dataclass(frozen=True, eq=False)
class FitOnly:
    """One profiled fit of a toy ``(events, counts, a)``: μ̂ (a Dask task)."""

    method: object

    def __call__(self, task) -> float:
        from assay.analysis.coverage import _likelihood

        events, counts, a = task
        weights = np.zeros(self.method.terms.n_events)
        np.add.at(weights, events, counts)
        return float(_likelihood(self.method, weights, a).fit().values[0])


def toys_per_second(n_toys: int = 60) -> dict:
    from assay.analysis.coverage import Point, toy_tasks
    from assay.cluster import local_client
    from assay.inference.pseudo_experiments import fit_pseudo_experiments

    method = synthetic(10_000, 20_000.0)  # ν(μ = 1) ≈ 10k events
    names = list(method.terms.names)
    tasks = toy_tasks(method, Point(1.0, (0.0,) * N_SYST), n_toys, 7, names)
    out = {"toy_events_mean": float(np.mean([c.sum() for _, c, _ in tasks])), "toy_pool_events": 10_000}
    fitter = FitOnly(method)
    for workers in (1, 2):
        with local_client(workers) as client:
            fit_pseudo_experiments(tasks[: workers * 2], fitter, client=client, progress=False)  # warm-up
            start = time.perf_counter()
            fit_pseudo_experiments(tasks, fitter, client=client, progress=False)
            out[f"toys_per_s_{workers}w"] = n_toys / (time.perf_counter() - start)
    return out


def harness(work: Path, n_toys: int, neyman: int) -> dict:
    from assay.analysis.coverage import run_coverage
    from assay.cluster import local_client
    from assay.config import config_from_dict
    from assay.pipeline import run_pipeline
    from assay.search_demo import search_config, search_size

    folder = work / "offshell"
    data = search_config(search_size(0.05), folder).model_dump(mode="json")
    data["systematics"] = {"nuisances": [
        {"name": "gg_nlo_qcd"}, {"name": "qq_nlo_ew"}, {"name": "gg_shower"}, {"name": "lepton_scale"},
        {"name": "lumi", "normalisation": 0.02},
    ]}  # fmt: skip
    data["training"], data["inference"]["models"] = {}, []
    cfg = config_from_dict(data)
    run_pipeline(cfg, folder, progress=False)
    start = time.perf_counter()
    with local_client(2) as client:
        found = run_coverage(cfg, folder, mu=[1.0], methods=["truth_profiled"], n_toys=n_toys, points=17,
                             neyman=neyman, client=client, progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    (r,) = found["results"]
    return {
        "coverage_68": r["coverage_68"], "coverage_68_error": r["coverage_68_error"],
        "challenge_score": r["challenge_score"], "coverage_toys": n_toys, "coverage_failed": r["n_failed"],
        "coverage_mean_width_68": r["mean_width_68"], "coverage_pull_mu_mean": r["pull_mu_mean"],
        "coverage_pull_mu_std": r["pull_mu_std"], "coverage_mu_true": 1.0,
        "coverage_s_per_toy_2w": seconds / n_toys, "neyman_belt_toys_per_point": neyman,
        "coverage_68_neyman": r["neyman"]["coverage_68"],
        "coverage_68_neyman_error": r["neyman"]["coverage_68_error"],
        "coverage_mean_width_68_neyman": r["neyman"]["mean_width_68"],
        "challenge_score_neyman": r["neyman"]["challenge_score"], "neyman_t_c_at_mu_true": r["neyman"]["t_c"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=OUTPUT_HELP)
    parser.add_argument("--toys", type=int, default=200, help="toys of the harness run")
    parser.add_argument("--neyman", type=int, default=100, help="belt toys per scan point of the harness run")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    add_output_arguments(parser, "systematics.json")
    keep = "measure 1 and 2 only; keep the harness numbers already in the output file"
    parser.add_argument("--fits-only", action="store_true", help=keep)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="assay-bench-systematics-"))
    results = {"load_average_1m": os.getloadavg()[0], **profile_fit_time(), **toys_per_second()}
    if args.fits_only:
        old = previous_results(args, "systematics.json")
        results |= {k: v for k, v in old.items() if k.startswith(("coverage", "challenge"))}
    else:
        results |= harness(work, args.toys, args.neyman)
    write_results(results, output_path(args, "systematics.json"), record=args.record)


if __name__ == "__main__":
    main()
