"""Benchmark: reliability (issue 18) — malformed inputs, injected faults, resume overhead.

Measures, on this machine,
- ``fuzz_inputs``, ``fuzz_crashes``: malformed inputs fed to every reader of
  tests/test_fuzz_readers.py (config, EventStore, training set, LHE, LHE.gz, split, manifest,
  checkpoint, saved model), ``--per-reader`` each: truncations, bit flips and overwritten ranges
  (seeded), plus HDF5 field edits of the HDF5 files. A crash is anything but a result or assay's own
  exception naming the file: a bare traceback, or the process dying (a libhdf5 segfault); each reader
  runs in a worker process that is restarted after such a death. ``fuzz_crashes_by_reader`` and
  ``fuzz_segfaults`` break them down;
- ``faults_injected``, ``faults_bad``: faults during ``assay generate`` / ``assay run`` in a
  subprocess (SIGKILL and SIGINT at random moments, a file-size limit as ``ulimit -f``, random bytes
  in split.h5 / manifest.json / a training set of a finished run) and during ``assay train``
  (SIGKILL and SIGINT of a neural fit after a random epoch, SIGKILL of BIT at a random moment,
  ``ulimit -f`` while a neural or BIT model is saved over an earlier one); bad = lost or corrupt
  output, a raw traceback, a Ctrl-C without its one line and exit 130, or a rerun whose events or
  model weights differ from an uninterrupted run's; ``faults_by_kind`` counts them per kind;
- ``attribute_flips``: event files with 1-3 random bit flips in their attribute headers, each
  opened and its attributes read in a forked child, plainly (h5py) and after checking each
  attribute's type class, size and storage with ``h5py.h5a`` (:func:`checked_attributes`: the
  EventStore's own check, assay.store_layout.check_attributes): how many children died each way;
- ``resume_overhead_pct``: (time of a run killed at about half way + its rerun) / (time of an
  uninterrupted run) − 1, in %, for ``assay generate`` of ``--resume-events`` toy events (process
  start-up of the second command included).
Prints a table and writes ./benchmark-results/reliability.json
(``--record``: the tracked benchmarks/results/reliability.json, for the developers).

Usage: python benchmarks/reliability.py [--per-reader 1000] [--faults 30] [--attribute-flips 1000] [--record]
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _report import OUTPUT_HELP, add_output_arguments, output_path, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CLI = [sys.executable, "-c", "from assay.cli import app; app()"]
TOY = {
    "seed": 11,
    "parameters": [{"name": "theta_0", "range": [-1.0, 1.0]}],
    "benchmarks": [
        {"name": "sm", "theta": {}},
        {"name": "plus", "theta": {"theta_0": 1.0}},
        {"name": "minus", "theta": {"theta_0": -1.0}},
    ],
    "morphing": {"max_power": 2, "optimize_basis": False},
    "simulator": {"kind": "gaussian_toy", "n_events": 200_000, "batch_size": 20_000},
    "sampling": {"sets": [{"name": "sally", "kind": "local_score", "theta_ref": "sm", "n_samples": 500}]},
}


# ---- fuzzing ----------------------------------------------------------------------------------------


def random_mutation(rng: np.random.Generator, size: int) -> tuple:
    kind = rng.integers(3)
    if kind == 0:
        return ("truncate", int(rng.integers(size)))
    if kind == 1:
        flips = [(int(rng.integers(size)), int(rng.integers(8))) for _ in range(rng.integers(1, 17))]
        return ("flip", flips)
    return ("overwrite", int(rng.integers(size)), rng.bytes(int(rng.integers(1, 513))))


def worker(name: str, start: int, stop: int, seed: int) -> None:
    """Print one line per input ``i`` in [start, stop): "i ok|clean|crash <error>" (flushed)."""
    import test_fuzz_readers as fz

    tgt = fz.target(name)
    edits = name in fz.H5_TARGETS
    for i in range(start, stop):
        rng = np.random.default_rng([seed, i])
        try:
            if edits and i % 2:  # every other input of an HDF5 reader: field edits
                tgt.case.write_bytes(tgt.data)
                for _ in range(rng.integers(1, 4)):
                    fz.edit_h5(tgt.case, str(rng.choice(fz.H5_EDITS)), int(rng.integers(50)))
                result = fz.outcome(tgt.read, tgt.case)
            else:
                result = tgt.run(random_mutation(rng, len(tgt.data)))
        except BaseException as err:  # counting every way a reader can fail
            result = f"crash {type(err).__name__}: {str(err)[:160]!r}"
        print(i, result, flush=True)


def fuzz(name: str, n: int, seed: int) -> dict:
    """Run ``n`` inputs of reader ``name`` in worker processes, restarting after a death."""
    done: dict[int, str] = {}
    while len(done) < n:
        start = max(done, default=-1) + 1
        proc = subprocess.run([sys.executable, __file__, "--worker", name, str(start), str(n), str(seed)],
                              capture_output=True, text=True, timeout=1800)  # fmt: skip
        for line in proc.stdout.splitlines():
            i, _, result = line.partition(" ")
            if i.isdigit():
                done[int(i)] = result
        if proc.returncode != 0:  # died at the input after the last reported one
            dead = max(done, default=-1) + 1
            if dead < n:
                done[dead] = f"segfault (exit {proc.returncode})"
    crashes = [r for r in done.values() if r.startswith(("crash", "segfault"))]
    return {
        "inputs": n,
        "crashes": len(crashes),
        "segfaults": sum(r.startswith("segfault") for r in crashes),
        "clean": sum(r == "clean" for r in done.values()),
        "examples": sorted(set(crashes))[:3],
    }


# ---- faults -----------------------------------------------------------------------------------------


def write_config(folder: Path, n_events: int, batch: int) -> Path:
    cfg = copy.deepcopy(TOY)
    cfg["simulator"].update(n_events=n_events, batch_size=batch)
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "250"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600, **kwargs)


def same_events(a: Path, b: Path) -> bool:
    from assay.store import EventStore

    with EventStore(a) as x, EventStore(b) as y:
        one, two = x.read(), y.read()
        return bool(np.array_equal(one.x, two.x) and np.array_equal(one.weights, two.weights))


def signal_fault(config: Path, out: Path, reference: Path, sig: int, delay: float) -> tuple[bool, str]:
    """Send ``sig`` to `assay generate` after ``delay`` s; rerun; compare with the reference events."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([*CLI, "generate", str(config), "-o", str(out), "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=600)
    text = stdout + stderr
    if proc.returncode not in (0, 130, -signal.SIGKILL) or "Traceback" in text:
        return False, f"exit {proc.returncode}: {text[-300:]}"
    rerun = cli(["generate", str(config), "-o", str(out), "-q"])
    ok = rerun.returncode == 0 and same_events(out / "events.h5", reference)
    return ok, "" if ok else f"rerun exit {rerun.returncode}: {(rerun.stdout + rerun.stderr)[-300:]}"


def disk_fault(config: Path, out: Path, reference: Path, limit: int) -> tuple[bool, str]:
    import resource

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = cli(["generate", str(config), "-o", str(out), "-q"], preexec_fn=limited)
    text = " ".join((full.stdout + full.stderr).split())
    if full.returncode == 0:
        ok = same_events(out / "events.h5", reference)
        return ok, "" if ok else "finished under the limit with other events"
    if full.returncode != 2 or "no space left" not in text or "Traceback" in text:
        return False, f"exit {full.returncode}: {text[-300:]}"
    rerun = cli(["generate", str(config), "-o", str(out), "-q"])
    ok = rerun.returncode == 0 and same_events(out / "events.h5", reference)
    return ok, "" if ok else f"rerun exit {rerun.returncode}"


def corrupt_fault(
    config: Path, finished: Path, out: Path, which: str, rng: np.random.Generator
) -> tuple[bool, str]:
    """Damage one file of a finished run; the rerun must name it or make it anew (no traceback)."""
    import shutil

    from assay.training_set import TrainingSet

    shutil.copytree(finished, out)
    target = {"split": out / "split.h5", "manifest": out / "sets" / "manifest.json",
              "set": out / "sets" / "sally_train.h5"}[which]  # fmt: skip
    data = target.read_bytes()
    cut = int(rng.integers(len(data)))
    target.write_bytes(data[:cut] + rng.bytes(int(rng.integers(0, 64))))
    rerun = cli(["run", str(config), "-o", str(out), "-q"])
    text = " ".join((rerun.stdout + rerun.stderr).split())
    if "Traceback" in text:
        return False, text[-300:]
    if rerun.returncode == 2:
        return target.name in text, text[-200:]
    if rerun.returncode != 0:
        return False, f"exit {rerun.returncode}"
    made = TrainingSet.load(out / "sets" / "sally_train.h5")
    good = TrainingSet.load(finished / "sets" / "sally_train.h5")
    ok = np.array_equal(made.x, good.x)
    return ok, "" if ok else "the rerun's training set differs"


KINDS = ["kill", "interrupt", "disk", "split", "manifest", "set",
         "train_kill", "train_interrupt", "train_disk", "bit_kill"]  # fmt: skip


def faults(n: int, seed: int, folder: Path) -> tuple[int, list[str], dict[str, list[int]]]:
    """``n`` faults, the kinds in turn; returns n, the bad ones' reasons, and kind → [injected, bad]."""
    rng = np.random.default_rng(seed)
    config = write_config(folder, 200_000, 20_000)
    reference = folder / "ref"
    assert cli(["run", str(config), "-o", str(reference), "-q"]).returncode == 0
    setup = train_setup(folder)
    bad, by_kind = [], {kind: [0, 0] for kind in KINDS}
    for i in range(n):
        kind, out = KINDS[i % len(KINDS)], folder / f"fault{i}"
        if kind.startswith(("train", "bit")):
            ok, why = train_fault(kind, setup, out, rng)
        elif kind in ("kill", "interrupt"):
            sig = signal.SIGKILL if kind == "kill" else signal.SIGINT
            ok, why = signal_fault(config, out, reference / "events.h5", sig, float(rng.uniform(1.0, 4.0)))
        elif kind == "disk":
            ok, why = disk_fault(config, out, reference / "events.h5", int(rng.integers(4, 16)) * 2**20)
        else:
            ok, why = corrupt_fault(config, reference, out, kind, rng)
        by_kind[kind][0] += 1
        if not ok:
            bad.append(f"{kind}: {why}")
            by_kind[kind][1] += 1
        print(f"fault {i} {kind}: {'ok' if ok else 'BAD ' + why}", flush=True)
    return n, bad, by_kind


MODELS = {
    "alices": {"method": "alices", "hidden": [64, 64], "epochs": 12, "batch_size": 64, "threads": 1},
    "bit": {"method": "bit", "n_trees": 60, "max_depth": 3, "min_size": 20},
}


def train_setup(folder: Path) -> tuple[Path, Path, Path]:
    """A small toy run with MODELS: (config, untrained run folder, trained reference folder)."""
    import shutil

    from conftest import small_toy_run

    cfg = small_toy_run(seed=11, n_events=4_000)
    cfg["training"] = MODELS
    config = folder / "train.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    untrained, trained = folder / "untrained", folder / "trained"
    assert cli(["run", str(config), "-o", str(untrained), "-q"]).returncode == 0
    shutil.copytree(untrained, trained)
    assert cli(["train", str(config), "-o", str(trained), "-q"]).returncode == 0
    return config, untrained, trained


def same_model(a: Path, b: Path) -> bool:
    """Equal BIT states, or equal tensors in every weights.pt."""
    import json

    import torch

    if not a.is_dir():
        return False
    if not (a / "weights.pt").is_file():
        load = lambda p: json.loads((p / "estimator.json").read_text())["state"]  # noqa: E731
        return load(a) == load(b)
    x, y = (torch.load(p / "weights.pt", weights_only=True) for p in (a, b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def checkpoint_epoch(path: Path) -> int:
    import torch

    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return -1


def train_fault(
    kind: str, setup: tuple[Path, Path, Path], out: Path, rng: np.random.Generator
) -> tuple[bool, str]:
    """One fault during `assay train`; the rerun must save the reference model."""
    import shutil

    config, untrained, trained = setup
    model = "bit" if kind == "bit_kill" or (kind == "train_disk" and rng.integers(2)) else "alices"
    shutil.copytree(trained if kind == "train_disk" else untrained, out)
    args = ["train", str(config), "-o", str(out), "-m", model, "-q"]
    if kind == "train_disk":
        import resource

        before = {p: p.read_bytes() for p in (out / "models" / model).iterdir()}
        limit = int(rng.integers(4, 32)) * 1024
        full = cli(args, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
        text = " ".join((full.stdout + full.stderr).split())
        if full.returncode == 0:  # the model fitted under the limit: it must be the reference
            ok = same_model(out / "models" / model, trained / "models" / model)
            return ok, "" if ok else f"{model} saved under ulimit -f {limit} differs"
        if full.returncode != 2 or "no space left" not in text or "Traceback" in text:
            return False, f"{model} under ulimit -f {limit}: exit {full.returncode}: {text[-300:]}"
        if {p: p.read_bytes() for p in (out / "models" / model).iterdir()} != before:
            return False, f"{model}: the earlier model changed"
        shutil.rmtree(out / "models" / model)
    else:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.Popen(
            [*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if model == "bit":
            time.sleep(float(rng.uniform(1.0, 4.0)))
        else:
            epoch, checkpoint = (
                int(rng.integers(1, 8)),
                out / "models" / ".checkpoints" / model / "estimator.pt",
            )
            deadline = time.monotonic() + 300
            while (
                proc.poll() is None and checkpoint_epoch(checkpoint) < epoch and time.monotonic() < deadline
            ):
                time.sleep(0.02)
        proc.send_signal(signal.SIGINT if kind == "train_interrupt" else signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
        if (
            kind == "train_interrupt"
            and proc.returncode != 0
            and (
                proc.returncode != 130
                or stdout.strip() != "interrupted; rerun the same command to resume where it stopped"
                or "Traceback" in stderr
            )
        ):
            return False, f"Ctrl-C: exit {proc.returncode}: {(stdout + stderr)[-300:]}"
    rerun = cli(args)
    ok = rerun.returncode == 0 and same_model(out / "models" / model, trained / "models" / model)
    return ok, "" if ok else f"{model} rerun exit {rerun.returncode}: {(rerun.stdout + rerun.stderr)[-200:]}"


def checked_attributes(file) -> dict:
    """Every attribute of an open h5py ``file``, after the EventStore's own type/size check through
    ``h5py.h5a`` (:func:`assay.store_layout.check_attributes`, StoreError before h5py reads one)."""
    from assay.store_layout import check_attributes

    check_attributes(file, Path(file.filename))
    return {name: file.attrs[name] for name in file.attrs}


def attribute_flips(n: int, seed: int, folder: Path) -> dict:
    """Bit flips in the attribute headers of a small event file; children that die, unchecked and checked."""
    import h5py

    from assay.store import EventStore

    base = folder / "base.h5"
    with EventStore.create(base, observables=["a", "b"], benchmarks=["sm", "bsm"]) as writer:
        writer.append(np.zeros((10, 2)), np.ones((10, 2)))
    data = base.read_bytes()
    names = [data.find(k) for k in (b"observables", b"benchmarks", b"n_committed", b"complete")]
    low, high = max(0, min(names) - 200), max(names) + 200  # the attribute messages
    deaths = {"plain": 0, "checked": 0}
    case = folder / "case.h5"
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        flipped = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            flipped[int(rng.integers(low, high))] ^= 1 << int(rng.integers(8))
        case.write_bytes(flipped)
        for how in deaths:
            pid = os.fork()
            if pid == 0:  # the child reads and exits; only a crash kills it
                try:
                    with h5py.File(case, "r") as f:
                        checked_attributes(f) if how == "checked" else {k: f.attrs[k] for k in f.attrs}
                except BaseException:
                    pass
                os._exit(0)
            deaths[how] += os.WIFSIGNALED(os.waitpid(pid, 0)[1])
    return {"attribute_flips": n, "attribute_flip_deaths_plain": deaths["plain"],
            "attribute_flip_deaths_checked": deaths["checked"]}  # fmt: skip


def resume_overhead(n_events: int, folder: Path) -> dict:
    config = write_config(folder, n_events, n_events // 20)
    start = time.perf_counter()
    assert cli(["generate", str(config), "-o", str(folder / "whole"), "-q"]).returncode == 0
    whole = time.perf_counter() - start
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen([*CLI, "generate", str(config), "-o", str(folder / "cut"), "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(whole / 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert cli(["generate", str(config), "-o", str(folder / "cut"), "-q"]).returncode == 0
    both = time.perf_counter() - start
    assert same_events(folder / "cut" / "events.h5", folder / "whole" / "events.h5")
    return {"resume_events": n_events, "uninterrupted_s": whole, "killed_and_resumed_s": both,
            "resume_overhead_pct": 100 * (both / whole - 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=OUTPUT_HELP
    )
    add_output_arguments(parser, "reliability.json")
    parser.add_argument("--per-reader", type=int, default=1000)
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--attribute-flips", type=int, default=1000)
    parser.add_argument("--resume-events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    import test_fuzz_readers as fz

    by_reader = {name: fuzz(name, args.per_reader, args.seed) for name in sorted(fz.TARGETS)}
    for name, r in by_reader.items():
        print(f"{name}: {r}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        flips = attribute_flips(args.attribute_flips, args.seed, Path(tmp))
    print(flips, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        n_faults, bad, by_kind = faults(args.faults, args.seed, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        resume = resume_overhead(args.resume_events, Path(tmp))
    results = {
        "fuzz_inputs": sum(r["inputs"] for r in by_reader.values()),
        "fuzz_crashes": sum(r["crashes"] for r in by_reader.values()),
        "fuzz_segfaults": sum(r["segfaults"] for r in by_reader.values()),
        "fuzz_clean_errors": sum(r["clean"] for r in by_reader.values()),
        "fuzz_crashes_by_reader": {k: r["crashes"] for k, r in by_reader.items()},
        "fuzz_crash_examples": [e for r in by_reader.values() for e in r["examples"]],
        "faults_injected": n_faults,
        "faults_bad": len(bad),
        "faults_bad_examples": bad[:5],
        "faults_by_kind": {kind: {"injected": a, "bad": b} for kind, (a, b) in by_kind.items() if a},
        **flips,
        **resume,
    }
    write_results(results, output_path(args, "reliability.json"), record=args.record)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
