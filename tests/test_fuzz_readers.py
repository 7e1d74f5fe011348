"""Issue 18: every reader of user-facing files, fed generated malformed inputs (truncations, bit flips,
overwritten ranges, wrong dtypes and shapes, NaN/inf, missing fields), either returns a result or raises
assay's own exception naming the file: never a bare h5py/numpy/pydantic/torch/yaml traceback.

The default suite runs a few dozen inputs per reader (:data:`FAST`); ``-m slow`` runs
:data:`DEEP` each. ``benchmarks/reliability.py`` drives the same targets and counts crashes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assay.exceptions import AssayError

FAST, DEEP = 25, 1000
EXAMPLES = Path(__file__).resolve().parents[1] / "assay" / "examples"


# ---- mutations --------------------------------------------------------------------------------------


def byte_mutations(size: int) -> st.SearchStrategy:
    """A truncation, bit flips, or an overwritten byte range of a file of ``size`` bytes."""
    where = st.integers(0, max(0, size - 1))
    return st.one_of(
        st.tuples(st.just("truncate"), where),
        st.tuples(st.just("flip"), st.lists(st.tuples(where, st.integers(0, 7)), min_size=1, max_size=16)),
        st.tuples(st.just("overwrite"), where, st.binary(min_size=1, max_size=512)),
    )


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind = mutation[0]
    if kind == "truncate":
        return data[: mutation[1]]
    if kind == "flip":
        out = bytearray(data)
        for pos, bit in mutation[1]:
            out[pos] ^= 1 << bit
        return bytes(out)
    pos, chunk = mutation[1], mutation[2]
    return data[:pos] + chunk + data[pos + len(chunk) :]


def outcome(read: Callable[[Path], object], path: Path) -> str:
    """ "ok", or "clean" for an AssayError naming ``path`` (or its folder, for a saved model's files);
    anything else is a crash (re-raised)."""
    try:
        read(path)
    except AssayError as err:
        named = path.name in str(err) or str(path.parent) in str(err)
        assert named, f"the error names neither {path.name} nor its folder: {err}"
        return "clean"
    return "ok"


# ---- the readers and their valid inputs -------------------------------------------------------------


def make_store(folder: Path) -> Path:
    from assay.store import EventStore

    rng = np.random.default_rng(0)
    path = folder / "events.h5"
    with EventStore.create(
        path,
        observables=["a", "b"],
        benchmarks=["sm", "bsm"],
        extras={"z": (2,)},
        chunk_events=16,
        negative_weights=False,
    ) as writer:
        writer.append(
            rng.normal(size=(64, 2)), rng.uniform(0.5, 1, (64, 2)), extras={"z": rng.normal(size=(64, 2))}
        )
    return path


def read_store(path: Path) -> None:
    from assay.store import EventStore

    with EventStore(path) as store:
        store.validate()
        store.take(np.array([3, 60, 3]), fields=("x", "weights", "extras"))
        store.weights_sum()


def make_training_set(folder: Path) -> Path:
    from assay.training_set import TrainingSet

    rng = np.random.default_rng(1)
    n = 50
    data = TrainingSet(
        x=rng.normal(size=(n, 2)),
        observables=("a", "b"),
        parameters=("c",),
        kind="ratio",
        theta0=rng.normal(size=(n, 1)),
        theta1=np.zeros((n, 1)),
        y=rng.integers(0, 2, n),
        log_r=rng.normal(size=n),
        t0=rng.normal(size=(n, 1)),
    )
    return data.save(folder / "sally_train.h5")


def read_training_set(path: Path) -> None:
    from assay.training_set import TrainingSet

    TrainingSet.load(path)


def make_lhe(folder: Path) -> Path:
    from assay.io.lhe import LHEEvents, LHEInit, write_lhe

    rng = np.random.default_rng(2)
    n, k = 4, 3
    events = LHEEvents(
        pdgid=np.tile([21, 21, 25], (n, 1)),
        status=np.tile([-1, -1, 1], (n, 1)),
        mothers=np.zeros((n, k, 2), dtype=int),
        colors=np.zeros((n, k, 2), dtype=int),
        momenta=rng.normal(100, 10, (n, k, 4)),
        masses=np.zeros((n, k)),
        spins=np.full((n, k), 9.0),
        weight=np.full(n, 0.5),
        scale=np.full(n, 91.0),
        aqed=np.full(n, 1 / 128),
        aqcd=np.full(n, 0.118),
        process_id=np.ones(n),
        rwgt=rng.uniform(0.1, 1, (n, 2)),
        rwgt_ids=("sm", "bsm"),
    )
    init = LHEInit(beam_energies=[6500.0, 6500.0], weighting_strategy=3, processes=[(2.0, 0.0, 0.5, 1)])
    path = folder / "events.lhe"
    write_lhe(path, events, init, rwgt_info={"sm": "sm", "bsm": "set cHW 1"})
    return path


def read_lhe(path: Path) -> None:
    from assay.io.lhe import read_lhe as read

    read(path)


def make_lhe_gz(folder: Path) -> Path:
    import gzip

    plain = make_lhe(folder)
    path = folder / "events.lhe.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    return path


def make_config(folder: Path) -> Path:
    path = folder / "offshell.yaml"
    shutil.copy(EXAMPLES / "offshell.yaml", path)
    return path


def read_config(path: Path) -> None:
    from assay.config import load_config

    load_config(path)


SPLIT_CONFIG = None


def _toy_config():
    from assay.config import load_config

    global SPLIT_CONFIG
    if SPLIT_CONFIG is None:
        SPLIT_CONFIG = load_config(EXAMPLES / "toy.yaml")
    return SPLIT_CONFIG


def make_split(folder: Path) -> Path:
    from assay.pipeline import read_split

    path = folder / "split.h5"
    read_split(path, 500, _toy_config())
    return path


def read_split(path: Path) -> None:
    from assay.pipeline import read_split as read

    split = read(path, 500, _toy_config())
    assert sorted(np.concatenate([split.train, split.validation, split.test]).tolist()) == list(range(500))


def make_checkpoint(folder: Path) -> Path:
    import torch

    from assay.estimators.checkpoint import write_checkpoint

    path = folder / "epoch.pt"
    write_checkpoint(path, {"fingerprint": "abc", "epoch": 3, "weights": {"w": torch.ones(4, 3)}})
    return path


def read_checkpoint(path: Path) -> None:
    from assay.estimators.checkpoint import read_checkpoint as read

    read(path, "abc")


def make_manifest(folder: Path) -> Path:
    path = folder / "manifest.json"
    path.write_text('{"seed": 3, "sampling": {"sets": [{"name": "sally", "n_samples": 10}]}}')
    return path


def read_manifest(path: Path) -> None:
    from assay.saving import read_json

    read_json(path, missing="missing", unreadable="not valid JSON")


def _model(folder: Path) -> Path:
    from assay.estimators import SALLY
    from assay.training_set import TrainingSet

    model = folder / "sally"
    if not model.exists():
        rng = np.random.default_rng(3)
        data = TrainingSet(
            x=rng.normal(size=(64, 2)),
            observables=("a", "b"),
            parameters=("c",),
            kind="local_score",
            theta0=np.zeros((64, 1)),
            t0=rng.normal(size=(64, 1)),
        )
        SALLY(hidden=(4,), epochs=1, batch_size=32).fit(data).save(model)
    return model


def make_model_meta(folder: Path) -> Path:
    return _model(folder) / "estimator.json"


def make_model_weights(folder: Path) -> Path:
    return _model(folder) / "weights.pt"


def read_model(path: Path) -> None:
    from assay.estimators import load_estimator

    model = load_estimator(path.parent)
    model.score(np.zeros((3, 2)))


TARGETS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], None]]] = {
    "config": (make_config, read_config),
    "event_store": (make_store, read_store),
    "training_set": (make_training_set, read_training_set),
    "lhe": (make_lhe, read_lhe),
    "lhe_gz": (make_lhe_gz, read_lhe),
    "split": (make_split, read_split),
    "manifest": (make_manifest, read_manifest),
    "checkpoint": (make_checkpoint, read_checkpoint),
    "model_meta": (make_model_meta, read_model),
    "model_weights": (make_model_weights, read_model),
}


class Target:
    """One reader and its valid file, made once; each example writes a mutated copy of the file into a
    copy of its folder (a saved model is a folder of files)."""

    def __init__(self, name: str) -> None:
        make, self.read = TARGETS[name]
        self.folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        self.original = make(self.folder)
        self.data = self.original.read_bytes()
        self.case = self.folder / "case" / self.original.name
        shutil.copytree(self.original.parent, self.case.parent)

    def run(self, mutation: tuple) -> str:
        self.case.write_bytes(mutate(self.data, mutation))
        return outcome(self.read, self.case)


_targets: dict[str, Target] = {}


def target(name: str) -> Target:
    if name not in _targets:
        _targets[name] = Target(name)
    return _targets[name]


def fuzz_bytes(name: str, n_examples: int, seed: int | None = None) -> dict[str, int]:
    """Run ``n_examples`` byte-level mutations of target ``name``; return the outcome counts."""
    tgt, counts = target(name), {"ok": 0, "clean": 0}

    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(byte_mutations(len(tgt.data)))
    def check(mutation):
        counts[tgt.run(mutation)] += 1

    if seed is not None:
        check._hypothesis_internal_use_seed = seed
    check()
    return counts


# ---- structured mutations of the HDF5 files (dtypes, shapes, missing fields, NaN/inf) -------------

H5_EDITS = ("delete", "retype", "reshape", "nan", "inf", "negative", "drop_attr", "bad_attr")


def edit_h5(path: Path, edit: str, pick: int) -> None:
    """Apply one structured edit to the ``pick``-th dataset or attribute of an HDF5 file."""
    with h5py.File(path, "r+") as f:
        names: list[str] = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        attrs = sorted(f.attrs)
        name = names[pick % len(names)]
        data = f[name][()]
        if edit == "delete":
            del f[name]
        elif edit == "retype":
            del f[name]
            f[name] = data.astype("S8") if pick % 2 else data.astype(np.float32)
        elif edit == "reshape":
            del f[name]
            f[name] = data.reshape(-1)[: max(1, data.size - 3)] if data.ndim else np.zeros((2, 2))
        elif edit in ("nan", "inf", "negative") and data.dtype.kind == "f" and data.size:
            value = {"nan": np.nan, "inf": np.inf, "negative": -1.0}[edit]
            flat = data.reshape(-1).copy()
            flat[pick % flat.size] = value
            f[name][...] = flat.reshape(data.shape)
        elif edit == "drop_attr" and attrs:
            del f.attrs[attrs[pick % len(attrs)]]
        elif edit == "bad_attr" and attrs:
            f.attrs[attrs[pick % len(attrs)]] = [1.5, 2.5] if pick % 2 else "{not json"


def fuzz_h5_fields(name: str, n_examples: int) -> dict[str, int]:
    tgt, counts = target(name), {"ok": 0, "clean": 0}

    @settings(
        max_examples=n_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.tuples(st.sampled_from(H5_EDITS), st.integers(0, 50)), min_size=1, max_size=3))
    def check(edits):
        tgt.case.write_bytes(tgt.data)
        for edit, pick in edits:
            edit_h5(tgt.case, edit, pick)
        counts[outcome(tgt.read, tgt.case)] += 1

    check()
    return counts


H5_TARGETS = ("event_store", "training_set", "split")


# ---- tests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_valid_input_reads(name):
    assert target(name).run(("truncate", len(target(name).data))) == "ok"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_byte_mutations_give_a_result_or_a_named_error(name):
    counts = fuzz_bytes(name, FAST)
    assert sum(counts.values()) >= FAST // 2


@pytest.mark.parametrize("name", H5_TARGETS)
def test_field_edits_give_a_result_or_a_named_error(name):
    counts = fuzz_h5_fields(name, FAST)
    assert counts["clean"] > 0


def test_nan_in_a_store_is_never_a_result():
    tgt = target("event_store")
    tgt.case.write_bytes(tgt.data)
    edit_h5(tgt.case, "nan", 0)
    assert outcome(tgt.read, tgt.case) == "clean"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_deep_mutations(name):
    """DEEP seeded inputs (bytes; HDF5 field edits for every other one of the HDF5 files) in a worker
    process of benchmarks/reliability.py, so that a libhdf5 segfault fails this test, not the run."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reliability.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", name, "0", str(DEEP), "7"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = proc.stdout.splitlines()
    crashes = [line for line in lines if " crash " in f" {line} "]
    assert proc.returncode == 0, f"the worker died (exit {proc.returncode}) after {len(lines)} inputs"
    assert len(lines) == DEEP and not crashes, crashes[:3]
