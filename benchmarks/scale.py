"""Benchmark: scale-out with Dask and out-of-core work (issue 17).

(a) ``ensemble_speedup_2w``: a 4-member ALICES ensemble ([50, 50] tanh, batch 256, 3 epochs, 200k
    pairs of the Gaussian toy) trained with 1 worker and with a 2-worker LocalCluster
    (:meth:`assay.estimators.Ensemble.fit` ``n_workers``), time(1) / time(2).
(b) ``toys_speedup_2w``: ``--toys`` pseudo-experiments of ``assay limits`` (truth, a histogram and the
    rate, on the toy) serially and on a 2-worker LocalCluster, time(serial) / time(2 workers); the
    toys' intervals must be identical.
(c) ``stream_20M_*``: the whole chain on ``--events`` toy events under ``memory_gb: 1`` as a user
    runs it, each command in a fresh process with its peak RSS sampled every 20 ms (psutil, the
    process and its children): ``assay run`` (generate, split, a ``--events``-sample ALICES set
    drawn with the weights streamed and written to its file in parts, assay.sampling.SetSampler)
    and ``assay train`` (one streamed epoch of ALICES [100, 100] tanh, batch 1024).
    ``stream_20M_peak_gb`` is the larger of the two peaks (target < 2 GB); the
    epoch's time per 1M samples and a linear extrapolation to 100M are separate keys (the streamed
    memory does not grow with the set: its chunks are a fixed share of the budget).

Prints a table; writes ./benchmark-results/scale.json (``--record``: benchmarks/results/scale.json).

Usage: python benchmarks/scale.py [--events 20000000] [--toys 200] [--skip-stream | --skip-dask] [--record]
(``--skip-dask``: only (c), keeping the recorded speed-ups).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import yaml
from _report import OUTPUT_HELP, add_output_arguments, output_path, previous_results, write_results

TOY = {
    "seed": 3,
    "parameters": [{"name": "theta_0", "range": [-1.0, 1.0]}],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": 200_000, "batch_size": 100_000},
    "sampling": {"sets": [
        {"name": "alices", "kind": "ratio", "theta0": {"kind": "gaussian", "std": 0.4}, "n_theta0": 1000,
         "n_samples": 200_000, "partitions": ["train", "validation"]},
    ]},
    "inference": {"luminosity_ifb": 1.0,
                  "scans": [{"parameter": "theta_0", "range": [-0.2, 0.2], "n_points": 21}],
                  "histograms": [{"observables": ["x0"], "edges": [[-np.inf, -1.0, 0.0, 1.0, np.inf]]}]},
}  # fmt: skip


def ensemble_speedup(folder: Path) -> dict:
    from assay.config import config_from_dict
    from assay.estimators import ALICES, Ensemble
    from assay.pipeline import run_pipeline
    from assay.training_set import TrainingSet

    cfg = config_from_dict({**TOY, "output": str(folder / "toy")})
    result = run_pipeline(cfg, progress=False)
    train = TrainingSet.load(result.training_sets["alices_train"])
    seconds = {}
    for workers in (1, 2):
        settings = dict(hidden=(50, 50), activation="tanh", epochs=3, batch_size=256)
        ensemble = Ensemble([ALICES(**settings, seed=k) for k in range(4)])
        start = time.perf_counter()
        ensemble.fit(train, n_workers=workers, seed=0)
        seconds[workers] = time.perf_counter() - start
    return {"ensemble_4x_1w_s": seconds[1], "ensemble_4x_2w_s": seconds[2],
            "ensemble_speedup_2w": seconds[1] / seconds[2]}  # fmt: skip


def toys_speedup(folder: Path, n_toys: int) -> dict:
    from assay.analysis.limits import run_limits
    from assay.cluster import local_client
    from assay.config import config_from_dict

    cfg = config_from_dict({**TOY, "output": str(folder / "toy")})  # the run of ensemble_speedup
    seconds, coverage = {}, {}
    for workers in (1, 2):
        if workers == 1:
            results = run_limits(cfg, progress=False, toys=n_toys)
        else:
            with local_client(2) as client:
                results = run_limits(cfg, progress=False, toys=n_toys, client=client)
        level = next(iter(results.levels.values()))
        toys_key = next(k for k in results.timings_s if k.endswith("toys"))
        seconds[workers], coverage[workers] = results.timings_s[toys_key], level.coverage.coverage
    if coverage[1] != coverage[2]:
        raise RuntimeError(f"toys differ between serial and 2 workers: {coverage[1]} vs {coverage[2]}")
    return {"toys": n_toys, "toys_1w_s": seconds[1], "toys_2w_s": seconds[2],
            "toys_speedup_2w": seconds[1] / seconds[2]}  # fmt: skip


def peak_rss(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """(peak RSS in GB of the command and its children, wall seconds, its output)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, watched = [0], psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
            except psutil.Error:
                continue
            peak[0] = max(peak[0], rss)
            time.sleep(0.02)

    thread = threading.Thread(target=sample)
    thread.start()
    output, _ = proc.communicate()
    thread.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return peak[0] / 1e9, time.perf_counter() - start, output


def stream(folder: Path, n_events: int) -> dict:
    config = {
        **TOY, "output": str(folder / "big"), "memory_gb": 1.0,
        "simulator": {"kind": "gaussian_toy", "n_events": n_events, "batch_size": 1_000_000},
        "sampling": {"split": {"train": 0.98, "validation": 0.01, "test": 0.01}, "sets": [
            {"name": "alices", "kind": "ratio", "theta0": {"kind": "gaussian", "std": 0.4}, "n_theta0": 1000,
             "n_samples": n_events, "partitions": ["train", "validation"]}]},
        "training": {"alices": {"method": "alices", "hidden": [100, 100], "activation": "tanh", "epochs": 1,
                                "batch_size": 1024, "early_stopping": False}},
    }  # fmt: skip
    path = folder / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    assay = [str(Path(sys.executable).with_name("assay"))]
    run_peak, run_s, _ = peak_rss([*assay, "run", str(path), "-q"], folder)
    train_peak, train_s, output = peak_rss([*assay, "-v", "train", str(path), "-q"], folder)
    streamed = bool(re.search(r"streamed in chunks", output))
    per_million = train_s / (n_events / 1e6)
    tag = f"{n_events // 1_000_000}M"
    return {
        f"stream_{tag}_run_peak_gb": run_peak, f"stream_{tag}_run_s": run_s,
        f"stream_{tag}_train_peak_gb": train_peak, f"stream_{tag}_train_epoch_s": train_s,
        f"stream_{tag}_peak_gb": max(run_peak, train_peak), f"stream_{tag}_train_streamed": streamed,
        f"stream_{tag}_epoch_s_per_1M": per_million,
        "stream_100M_epoch_s_extrapolated": per_million * 100,
        "stream_100M_peak_gb_extrapolated": train_peak,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=OUTPUT_HELP)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--toys", type=int, default=200)
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-stream", action="store_true", help="only the Dask speed-ups")
    skip.add_argument("--skip-dask", action="store_true", help="only the out-of-core run (c)")
    add_output_arguments(parser, "scale.json")
    args = parser.parse_args()
    results = previous_results(args, "scale.json")
    results["cores"] = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_dask:
            results |= ensemble_speedup(folder)
            results |= toys_speedup(folder, args.toys)
        if not args.skip_stream:
            results |= stream(folder, args.events)
    write_results(results, output_path(args, "scale.json"), record=args.record)


if __name__ == "__main__":
    main()
