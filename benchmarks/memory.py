"""Benchmark: training and evaluation out of core (issue 17) against the same work in memory.

(a) Training: one ALICES epoch (hidden [100, 100], tanh, batch 1024, 25% of the chunks held out for
    validation, one torch thread) on a training-set file of ``--samples`` samples (10 observables,
    1 parameter: 15 float64 columns, 120 bytes per sample), in a fresh process each:
    streamed under ``memory_gb`` (:func:`assay.streaming.plan_streaming`'s chunks,
    :func:`~assay.streaming.fit_streamed`: one pass for the column moments, one epoch) and loaded
    (``TrainingSet.load`` then ``ALICES.fit``, the default path). Peak RSS is sampled every 20 ms
    (psutil) and reported whole (``*_peak_gb``) and above the process's RSS before the work, after
    imports and a warm-up fit (``*_growth_gb``). The epoch time is the fit's (the stream's includes
    its moments pass; the loaded run's load is reported apart).
(b) Evaluation: Σ_i w_i log r̂(x_i|θ, θ_ref) of the trained model at 2 θ over an event store of
    ``--samples`` events (10 observables, 3 benchmarks): streamed in chunks of 500k events
    (:func:`assay.estimators.prediction.weighted_log_ratio_sums`) and in memory (every event
    taken, then ``log_ratio`` of all events, as :class:`assay.inference.asimov.AsimovSample` does).
(c) Extrapolation to 100M: the streamed growth is bounded by the chunks (it does not grow with the
    set), so the 100M stream peak is the measured one; the in-memory growth and all times scale
    linearly with the samples.

The data are random numbers of those shapes (step and read costs do not depend on the values).
Prints a table and writes ./benchmark-results/memory.json (``--record``: benchmarks/results/memory.json).

Usage: python benchmarks/memory.py [--samples 10000000] [--memory-gb 1.0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

from assay.morphing import Morpher, morphing_components
from assay.store import EventStore
from assay.training_set import TrainingSet

N_OBS = 10
BASIS = np.array([[0.0], [1.0], [-1.0]])
WRITE_CHUNK = 1_000_000

WORKER = r"""
import json, sys, threading, time
import numpy as np, psutil, torch
torch.set_num_threads(1)
from assay.estimators import ALICES, load_estimator
from assay.estimators.prediction import weighted_log_ratio_sums
from assay.store import EventStore
from assay.streaming import ChunkedDataset, TrainingSetFile, fit_streamed, plan_streaming
from assay.training_set import TrainingSet

task, set_path, store_path, model_dir, memory_gb = sys.argv[1:6]
memory_gb = float(memory_gb)
process = psutil.Process()
settings = dict(hidden=(100, 100), epochs=1, batch_size=1024, seed=0, progress=False)


def measure(work):
    before, peak, done = process.memory_info().rss, [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)
    thread = threading.Thread(target=sample)
    thread.start()
    start = time.perf_counter()
    try:
        extra = work()
    finally:
        seconds = time.perf_counter() - start
        done.set()
        thread.join()
    peak = max(peak[0], process.memory_info().rss)
    return {"before_gb": before / 1e9, "peak_gb": peak / 1e9, "growth_gb": (peak - before) / 1e9,
            "seconds": seconds, **(extra or {})}


file = TrainingSetFile(set_path)
head = file.read(0, 2000)
ALICES(**settings).fit(head)  # imports and torch's lazy set-up before the baseline
theta, ref = np.array([[0.5], [-0.5]]), np.zeros(1)

if task == "train-stream":
    plan = plan_streaming([file], memory_gb)
    def work():
        est = fit_streamed(ALICES(**settings), set_path, chunk_size=plan.chunk_size)
        est.save(model_dir)
        bound = ChunkedDataset(file, dict, chunk_size=plan.chunk_size).peak_bytes()
        return {"chunk_rows": plan.chunk_size, "bound_gb": bound / 1e9, "loss": est.history_.train_loss[0]}
    out = measure(work)
elif task == "train-memory":
    loaded = {}
    def work():
        start = time.perf_counter()
        data = TrainingSet.load(set_path)
        loaded["load_s"] = time.perf_counter() - start
        start = time.perf_counter()
        est = ALICES(**settings).fit(data)
        return {"fit_s": time.perf_counter() - start, "loss": est.history_.train_loss[0]}
    out = measure(work)
    out |= loaded
else:
    model = load_estimator(model_dir)
    model.log_ratio(head.x[:100], theta, ref)
    if task == "eval-stream":
        def work():
            sums = weighted_log_ratio_sums(model, store_path, theta, ref, weights=lambda w: w[:, 0],
                                           chunk_size=500_000)
            return {"sums": sums.log_r.tolist()}
    else:
        def work():
            with EventStore(store_path) as store:
                events = store.take(np.arange(store.n_events), fields=("x", "weights"))
            return {"sums": (model.log_ratio(events.x, theta, ref).mean @ events.weights[:, 0]).tolist()}
    out = measure(work)
print(json.dumps(out))
"""


def write_set(path: Path, n: int, rng: np.random.Generator) -> None:
    """A random ALICES set of ``n`` samples (module docstring), saved with TrainingSet.save."""
    theta0 = rng.normal(0.0, 0.5, (n, 1))
    TrainingSet(
        x=rng.normal(size=(n, N_OBS)), observables=tuple(f"o{i}" for i in range(N_OBS)), parameters=("c",),
        kind="ratio", theta0=theta0, theta1=np.zeros((n, 1)), y=(rng.random(n) < 0.5).astype(float),
        log_r=rng.normal(0.0, 0.5, n), t0=rng.normal(0.0, 1.0, (n, 1)),
    ).save(path)  # fmt: skip


def write_store(path: Path, n: int, rng: np.random.Generator) -> None:
    """An event store of ``n`` random events with positive weights at 3 benchmarks, written in chunks."""
    morpher = Morpher(morphing_components(1, 2), BASIS)
    names = [f"o{i}" for i in range(N_OBS)]
    with EventStore.create(
        path, observables=names, benchmarks=["sm", "plus", "minus"], morphing=morpher.to_dict()
    ) as writer:
        for start in range(0, n, WRITE_CHUNK):
            m = min(WRITE_CHUNK, n - start)
            writer.append(rng.normal(size=(m, N_OBS)), rng.lognormal(0.0, 0.5, (m, 3)))


def run(task: str, paths: dict[str, Path], memory_gb: float) -> dict:
    args = [task, paths["set"], paths["store"], paths["model"], memory_gb]
    out = subprocess.run(
        [sys.executable, "-c", WORKER, *map(str, args)], capture_output=True, text=True, timeout=900
    )
    if out.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{task}: {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=OUTPUT_HELP
    )
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--memory-gb", type=float, default=1.0)
    add_output_arguments(parser, "memory.json")
    args = parser.parse_args()
    n, tag = args.samples, f"{args.samples / 1e6:g}M"
    scale = 100_000_000 / n  # in memory, extrapolated: the baseline plus the growth × 100M / n
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"set": Path(tmp) / "set.h5", "store": Path(tmp) / "events.h5", "model": Path(tmp) / "model"}
        start = time.perf_counter()
        write_set(paths["set"], n, rng)
        write_store(paths["store"], n, rng)
        print(f"wrote the set and the store of {n} in {time.perf_counter() - start:.0f} s", flush=True)
        stream = run("train-stream", paths, args.memory_gb)
        memory = run("train-memory", paths, args.memory_gb)
        eval_stream, eval_memory = run("eval-stream", paths, args.memory_gb), run("eval-memory", paths, 0)
    np.testing.assert_allclose(eval_stream["sums"], eval_memory["sums"], rtol=1e-5)
    results = {
        "samples": n,
        "memory_gb": args.memory_gb,
        "stream_chunk_rows": stream["chunk_rows"],
        "stream_bound_gb": stream["bound_gb"],
        f"train_{tag}_stream_peak_gb": stream["peak_gb"],
        f"train_{tag}_inmemory_peak_gb": memory["peak_gb"],
        f"train_{tag}_stream_growth_gb": stream["growth_gb"],
        f"train_{tag}_inmemory_growth_gb": memory["growth_gb"],
        f"train_{tag}_stream_epoch_s": stream["seconds"],
        f"train_{tag}_inmemory_epoch_s": memory["fit_s"],
        f"train_{tag}_inmemory_load_s": memory["load_s"],
        "stream_epoch_slowdown": stream["seconds"] / memory["fit_s"],
        "stream_vs_load_and_epoch": stream["seconds"] / (memory["fit_s"] + memory["load_s"]),
        f"eval_{tag}_stream_peak_gb": eval_stream["peak_gb"],
        f"eval_{tag}_inmemory_peak_gb": eval_memory["peak_gb"],
        f"eval_{tag}_stream_growth_gb": eval_stream["growth_gb"],
        f"eval_{tag}_inmemory_growth_gb": eval_memory["growth_gb"],
        f"eval_{tag}_stream_s": eval_stream["seconds"],
        f"eval_{tag}_inmemory_s": eval_memory["seconds"],
        "train_100M_stream_peak_gb_extrapolated": stream["peak_gb"],
        "train_100M_inmemory_peak_gb_extrapolated": memory["before_gb"] + scale * memory["growth_gb"],
        "train_100M_stream_epoch_s_extrapolated": scale * stream["seconds"],
        "eval_100M_stream_peak_gb_extrapolated": eval_stream["peak_gb"],
    }
    eval_100m = eval_memory["before_gb"] + scale * eval_memory["growth_gb"]
    results["eval_100M_inmemory_peak_gb_extrapolated"] = eval_100m
    write_results(results, output_path(args, "memory.json"), record=args.record)


if __name__ == "__main__":
    main()
