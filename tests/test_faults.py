"""Fault injection into ``assay train`` (neural, ensemble, BIT) and ``assay demo`` (issue 18).

Each fault ends in one clean message (exit 2, or 130 for Ctrl-C), never a traceback; what was
written before stays intact (the previous model, the last checkpoint); the same command run again
finishes with the result of an uninterrupted run. Faults: a full disk through ``ulimit -f`` in a
subprocess and through a write that fails after the free-space check passed (the race), SIGKILL
and SIGINT while a model trains or the demo runs, and a read-only run folder.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import small_toy_run
from typer.testing import CliRunner

from assay.cli import app
from assay.config import load_config
from assay.estimators import checkpoint as checkpoint_module
from assay.estimators.checkpoint import read_checkpoint, write_checkpoint
from assay.exceptions import StoreError
from assay.generation import ToyBatchSimulator, generate
from assay.simulators.toys import GaussianToy
from assay.store import EventStore
from assay.training import train

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")
torch.set_num_threads(1)

INTERRUPTED_LINE = "interrupted; rerun the same command to resume where it stopped"
CLI = "import sys; from assay.cli import main; sys.argv[0] = 'assay'; main()"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "250"}
MODELS = {
    # ~20-60 kB of weights: bigger than the 16 kB file-size limit below
    "quick": {"method": "alices", "hidden": [64, 64], "epochs": 2, "batch_size": 256, "threads": 1},
    "bit": {"method": "bit", "n_trees": 40, "max_depth": 3, "min_size": 20},
    # slow tests only: long enough to be killed after a few epochs (~0.1 s per epoch on 2 cores)
    "alices": {"method": "alices", "hidden": [64, 64], "epochs": 40, "batch_size": 64, "threads": 1},
    "ens": {"method": "alices", "hidden": [64, 64], "epochs": 3, "batch_size": 256, "threads": 1,
            "n_ensemble": 2},
}  # fmt: skip
DEFAULT_MODELS = ["quick", "bit"]  # trained by the module fixture; the others when a slow test asks


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """``assay run`` on the small toy, then the default models trained once (uninterrupted: the
    references); the slow tests' models are trained on first use (:func:`reference_model`)."""
    folder = tmp_path_factory.mktemp("faults")
    cfg = small_toy_run(seed=11, n_events=4_000)
    cfg["training"] = MODELS
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(json.loads(json.dumps(cfg)), sort_keys=False))
    run = CliRunner().invoke(app, ["run", str(config), "-o", str(folder / "out"), "-q"])
    assert run.exit_code == 0, run.output
    shutil.copytree(folder / "out", folder / "untrained")
    train(load_config(config), folder / "out", models=DEFAULT_MODELS, n_workers=1, progress=False)
    return folder


def reference_model(finished: Path, model: str) -> Path:
    """The uninterrupted run's ``models/<model>`` (trained on first use)."""
    path = finished / "out" / "models" / model
    if not path.is_dir():
        train(
            load_config(finished / "config.yaml"),
            finished / "out",
            models=[model],
            n_workers=1,
            progress=False,
        )
    return path


@contextmanager
def file_size_limit(n_bytes: int) -> Iterator[None]:
    """``ulimit -f`` for this process (soft limit; Python ignores SIGXFSZ, so writes fail with EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def copy_run(finished: Path, tmp_path: Path, *, trained: bool) -> tuple[Path, Path]:
    """A copy of the run folder (with or without the reference models) and the config."""
    out = tmp_path / "out"
    shutil.copytree(finished / ("out" if trained else "untrained"), out)
    return out, finished / "config.yaml"


def cli(*args, limit: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``assay ARGS`` in a subprocess, optionally under a file-size limit of ``limit`` bytes (ulimit -f)."""
    preexec = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))) if limit else None
    command = [sys.executable, "-c", CLI, *map(str, args)]
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=timeout, preexec_fn=preexec
    )


def model_state(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a saved neural model or ensemble (``weights.pt`` files, by relative path)."""
    return {
        f"{p.relative_to(path)}:{k}": v
        for p in sorted(path.rglob("weights.pt"))
        for k, v in torch.load(p, weights_only=True).items()
    }


def assert_same_model(a: Path, b: Path) -> None:
    if (a / "estimator.json").is_file() and not (a / "weights.pt").is_file():  # BIT: one JSON file
        assert (
            json.loads((a / "estimator.json").read_text())["state"]
            == json.loads((b / "estimator.json").read_text())["state"]
        )
        return
    left, right = model_state(a), model_state(b)
    assert left.keys() == right.keys() and left
    for key in left:
        assert torch.equal(left[key], right[key]), key


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (the lock excepted) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".lock"
    }


# ---- a full disk -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["quick", "bit"])
def test_train_under_a_file_size_limit_is_one_message_and_keeps_the_model(finished, tmp_path, model):
    """`assay train` retraining a model under a 16 kB file-size limit (ulimit -f): one "no space
    left" message naming the checkpoint (neural) or the model folder (BIT), exit 2, the earlier model
    byte for byte as it was, no temporary files; the rerun without the limit saves the uninterrupted
    run's model. (Before: torch's "unexpected pos" RuntimeError, or BIT's raw OSError, as a traceback
    with exit 1.)"""
    out, config = copy_run(finished, tmp_path, trained=True)
    before = snapshot(out / "models" / model)
    args = ["train", str(config), "-o", str(out), "-m", model, "-w", "1", "-q"]
    with file_size_limit(16 * 1024):
        full = CliRunner().invoke(app, args)
    text = flat(full.output)
    assert full.exit_code == 2, text
    if model == "bit":  # no checkpoints: the model folder's save is what fails
        assert f"models/{model}: no space left" in text and "was left as it was" in text, text
    else:  # the first checkpoint fails, and stops the fit (not hours later when the model is saved)
        assert f"/{model}/estimator.pt: no space left" in text, text  # models/.checkpoints/<model>/
        assert "previous checkpoint (if any) was kept" in text, text
    assert isinstance(full.exception, SystemExit)  # no traceback
    assert snapshot(out / "models" / model) == before
    assert not [p for p in (out / "models").iterdir() if p.name.startswith(f".{model}.")]  # no temp dirs
    shutil.rmtree(out / "models" / model)
    assert CliRunner().invoke(app, args).exit_code == 0
    assert_same_model(out / "models" / model, finished / "out" / "models" / model)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["quick", "ens", "bit"])
def test_train_under_ulimit_f_in_a_subprocess(finished, tmp_path, model):
    """The same with a real ``ulimit -f 16`` on a separate `assay train` process."""
    out, config = copy_run(finished, tmp_path, trained=True)
    reference = reference_model(finished, model)
    shutil.copytree(reference, out / "models" / model, dirs_exist_ok=True)
    before = snapshot(out / "models" / model)
    full = cli("train", config, "-o", out, "-m", model, "-w", 1, "-q", limit=16 * 1024)
    text = flat(full.stdout + full.stderr)
    assert full.returncode == 2, text
    named = {"bit": f"models/{model}: no space left", "ens": "member_0.pt: no space left"}.get(
        model, "estimator.pt: no space left"
    )  # neural models: the first checkpoint stops the fit
    assert named in text and "Traceback" not in text, text
    assert snapshot(out / "models" / model) == before
    shutil.rmtree(out / "models" / model)
    again = cli("train", config, "-o", out, "-m", model, "-w", 1, "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same_model(out / "models" / model, reference)


def test_full_disk_errors_are_recognised_as_such(tmp_path, monkeypatch):
    """disk_full() says yes to assay's own "no space left" errors (a caller that keeps going on
    other OSErrors, such as the trainer's checkpointing, can stop on these), no to a read-only folder."""
    from assay import saving

    monkeypatch.setattr(saving.resource, "getrlimit", lambda _: (2**19, resource.RLIM_INFINITY))
    with pytest.raises(StoreError) as info:
        saving.require_space(tmp_path / "a.pt", 10)
    assert saving.disk_full(info.value) and saving.disk_full(info.value.__cause__)
    unwritable = saving.unwritable_error(tmp_path / "a.pt", OSError(errno.EROFS, "Read-only file system"))
    assert not saving.disk_full(unwritable) and saving.unwritable(OSError(errno.EACCES, "Permission denied"))


def test_a_full_disk_inside_a_nested_model_folder_names_the_outer_one(tmp_path):
    """An ensemble saves its members through nested atomic directories: the message names
    models/<name>, never the temporary folder the member was being written to."""
    from assay.saving import atomic_directory

    with pytest.raises(StoreError) as info:
        with atomic_directory(tmp_path / "ens", markers=("ensemble.json",)) as tmp:
            with atomic_directory(tmp / "member_0", markers=("estimator.json",)):
                raise OSError(errno.EFBIG, "File too large")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'ens'}: no space left") and ".tmp" not in message, message
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_write_that_fails_after_the_space_check_keeps_the_last_one(tmp_path, monkeypatch):
    """The race: free space checked, then the disk fills during the write. One "no space left"
    error naming the checkpoint, the previous checkpoint intact and readable, no temporary file."""
    path = tmp_path / "estimator.pt"
    write_checkpoint(path, {"fingerprint": "f", "epoch": 1, "weights": torch.arange(4.0)})
    good = path.read_bytes()

    class FullFile:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            self.file.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    def full_open(file, mode="r", *args, **kwargs):
        handle = builtins.open(file, mode, *args, **kwargs)
        return FullFile(handle) if "w" in mode else handle

    monkeypatch.setattr(checkpoint_module, "open", full_open, raising=False)
    with pytest.raises(StoreError, match=r"estimator\.pt: no space left .*estimator\.pt was left as it was"):
        write_checkpoint(path, {"fingerprint": "f", "epoch": 2, "weights": torch.arange(8.0)})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert read_checkpoint(path, "f")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["estimator.pt"]


def test_checkpoint_space_check_refuses_before_writing(tmp_path, monkeypatch):
    """Less room under ``ulimit -f`` than the checkpoint needs: refused before a byte is written."""
    path = tmp_path / "estimator.pt"
    write_checkpoint(path, {"fingerprint": "f", "epoch": 1})
    good = path.read_bytes()
    monkeypatch.setattr("assay.saving.resource.getrlimit", lambda _: (2**19, resource.RLIM_INFINITY))
    with pytest.raises(StoreError, match=r"estimator\.pt: no space left .*previous checkpoint .* was kept"):
        write_checkpoint(path, {"fingerprint": "f", "epoch": 2})
    assert path.read_bytes() == good


@pytest.mark.parametrize("content", [b"garbage", b"pickled", b"truncated"])
def test_damaged_checkpoint_is_named_without_torch_advice(tmp_path, content):
    """A damaged checkpoint is one StoreError naming it; never torch's advice to retry with
    weights_only=False (which would run code from the file)."""
    path = tmp_path / "estimator.pt"
    if content == b"pickled":
        torch.save({"format": "assay.TrainingCheckpoint", "fingerprint": "f", "hook": Path("x")}, path)
    elif content == b"truncated":
        write_checkpoint(path, {"fingerprint": "f", "epoch": 1, "weights": torch.arange(100.0)})
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(
        StoreError, match=r"estimator\.pt: cannot read the training checkpoint \(damaged"
    ) as info:
        read_checkpoint(path, "f")
    assert "weights_only" not in str(info.value) and len(str(info.value)) < 300, str(info.value)


def test_event_append_that_fails_after_the_space_check_resumes(tmp_path, monkeypatch, caplog):
    """The race for the EventStore: h5py's write raises OSError(ENOSPC) after require_space passed.
    One message naming the partial file; the committed batches stay readable; the rerun resumes
    after them and ends with the events of an uninterrupted run."""

    def simulator():
        return ToyBatchSimulator(GaussianToy.default(1, 2), np.zeros(1), np.array([[0.0], [1.0]]))

    settings = dict(seed=3, benchmarks=["a", "b"], batch_size=1000, progress=False)
    reference = generate(simulator(), tmp_path / "ref.h5", 5000, **settings)
    path, calls = tmp_path / "events.h5", {"n": 0}
    original = h5py.Dataset.__setitem__

    def failing(self, key, value):
        calls["n"] += 1
        if calls["n"] > 9:  # a few datasets per batch: a later batch fails mid-way
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(StoreError, match=r"events\.h5\.partial: no space left .*rerun the same command"):
        generate(simulator(), path, 5000, **settings)
    monkeypatch.undo()
    with h5py.File(path.with_name("events.h5.partial"), "r") as f:
        kept = int(f.attrs["n_committed"])
    assert 0 < kept < 5000
    with caplog.at_level("INFO"):
        store = generate(simulator(), path, 5000, **settings)
    assert f"{kept} events kept" in caplog.text
    np.testing.assert_array_equal(store.read().x, reference.read().x)
    np.testing.assert_array_equal(store.read().weights, reference.read().weights)


# ---- SIGKILL and SIGINT while training ---------------------------------------------------------


def start_train(config: Path, out: Path, model: str) -> subprocess.Popen:
    command = [sys.executable, "-c", CLI, "train", str(config), "-o", str(out), "-m", model, "-w", "1", "-q"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_epoch(proc: subprocess.Popen, checkpoint: Path, epoch: int, timeout: float = 120) -> int:
    """Poll the (atomically replaced) checkpoint until it holds ``epoch`` or later; returns its epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.is_file():
            try:
                seen = int(torch.load(checkpoint, weights_only=True)["epoch"])
            except (OSError, RuntimeError, EOFError):
                seen = -1
            if seen >= epoch:
                return seen
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint of epoch {epoch} in time; the process ended with {proc.poll()}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_neural_training_killed_or_interrupted_resumes_bit_identical(finished, tmp_path, caplog, sig):
    """SIGKILL or Ctrl-C after a few epochs of `assay train`: Ctrl-C is one line and exit 130; the
    checkpoint is a readable state of a finished epoch; the same command again resumes there (a
    SIGKILL's lock is stale and taken over) and saves weights equal bit for bit to the
    uninterrupted run's."""
    reference = reference_model(finished, "alices")
    out, config = copy_run(finished, tmp_path, trained=False)
    checkpoint = out / "models" / ".checkpoints" / "alices" / "estimator.pt"
    proc = start_train(config, out, "alices")
    wait_for_epoch(proc, checkpoint, 3)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, stdout + stderr
        assert stdout.strip() == INTERRUPTED_LINE and "Traceback" not in stderr, stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    state = torch.load(checkpoint, weights_only=True)
    stopped_at = int(state["epoch"])
    assert 3 <= stopped_at < MODELS["alices"]["epochs"] - 1 and not (out / "models" / "alices").exists()
    with caplog.at_level("INFO"):
        result = train(load_config(config), out, models=["alices"], n_workers=1, progress=False)["alices"]
    assert f"resuming after epoch {stopped_at}" in caplog.text
    assert_same_model(out / "models" / "alices", reference)
    history = json.loads((reference / "estimator.json").read_text())["history"]
    assert list(result.histories[0].train_loss) == history["train_loss"]
    assert not (out / ".lock").exists() and not (out / "models" / ".checkpoints").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ens", "bit"])
def test_ensemble_and_bit_killed_then_rerun_equal_the_uninterrupted_run(finished, tmp_path, model):
    """SIGKILL during an ensemble's or BIT's training: the rerun ends with the uninterrupted model
    (the ensemble resumes its members' checkpoints; BIT, which has none, fits again, deterministically)."""
    reference = reference_model(finished, model)
    out, config = copy_run(finished, tmp_path, trained=False)
    proc = start_train(config, out, model)
    if model == "ens":
        wait_for_epoch(proc, out / "models" / ".checkpoints" / "ens" / "member_0.pt", 1)
    else:
        time.sleep(4.0)  # numba's first call and some trees
    proc.kill()
    proc.communicate(timeout=60)
    assert not (out / "models" / model).exists()
    again = cli("train", config, "-o", out, "-m", model, "-w", 1, "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_same_model(out / "models" / model, reference)


# ---- a read-only run folder --------------------------------------------------------------------


def read_only(monkeypatch, folder: Path) -> None:
    """Writes under ``folder`` fail as on a read-only file system (EROFS); root ignores chmod."""
    folder = folder.resolve()

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(folder)
        except (TypeError, ValueError):
            return False

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_mkdir, real_builtin_open = os.open, os.mkdir, builtins.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def fake_open(path, flags, *args, **kwargs):
        if flags & writing and inside(path):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path) and not Path(path).exists():
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def fake_builtin_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            refuse(file)
        return real_builtin_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(builtins, "open", fake_builtin_open)


@pytest.mark.parametrize("trained", [False, True], ids=["untrained", "retrain"])
def test_train_in_a_read_only_folder_is_one_error_naming_it(finished, tmp_path, monkeypatch, trained):
    """`assay train` in a read-only run folder: one error naming the folder, exit 2, nothing changed
    (before: a raw PermissionError/OSError traceback from the lock file)."""
    out, config = copy_run(finished, tmp_path, trained=trained)
    before = snapshot(out)
    read_only(monkeypatch, out)
    result = CliRunner().invoke(app, ["train", str(config), "-o", str(out), "-m", "quick", "-w", "1", "-q"])
    monkeypatch.undo()
    text = flat(result.output)
    assert result.exit_code == 2, text
    assert f"{out}: cannot write here" in text and "read-only" in text and "changed nothing" in text
    assert "Traceback" not in text and result.exception.__class__ is SystemExit
    assert snapshot(out) == before and not (out / ".lock").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_in_a_chmod_read_only_folder(finished, tmp_path):
    out, config = copy_run(finished, tmp_path, trained=False)
    os.chmod(out, 0o555)
    try:
        result = cli("train", config, "-o", out, "-m", "quick", "-q")
    finally:
        os.chmod(out, 0o755)
    assert result.returncode == 2 and "cannot write here" in flat(result.stdout + result.stderr)


def test_model_save_in_a_read_only_models_folder(finished, tmp_path, monkeypatch):
    """The folder becomes read-only during training: saving the model is one error naming it."""
    out, _ = copy_run(finished, tmp_path, trained=True)
    from assay.bit import BoostedInformationTree

    bit = BoostedInformationTree.load(out / "models" / "bit")
    before = snapshot(out / "models")
    read_only(monkeypatch, out / "models")
    with pytest.raises(StoreError, match=r"models: cannot write here .*models/bit was left as it was"):
        bit.save(out / "models" / "bit")
    monkeypatch.undo()
    assert snapshot(out / "models") == before


# ---- the demo ----------------------------------------------------------------------------------


def interrupt_after(args: list, seconds: float) -> subprocess.CompletedProcess:
    """Start ``assay ARGS`` in its own process group; SIGINT the group (as a terminal's Ctrl-C
    does) after ``seconds``."""
    command = [sys.executable, "-c", CLI, *map(str, args)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    time.sleep(seconds)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
def test_ctrl_c_during_the_toy_demo_then_rerun(tmp_path):
    """`assay demo --toy` interrupted while it generates: one line, exit 130; the rerun resumes and
    its summary equals an uninterrupted demo's checks."""
    out = tmp_path / "demo"
    result = interrupt_after(["demo", "--toy", "--n-events", 400_000, "-o", out, "-q"], 4.0)
    assert result.returncode == 130, result.stdout + result.stderr
    assert result.stdout.strip() == INTERRUPTED_LINE and result.stderr.strip() == "", result.stderr
    assert not (out / "summary.json").exists()
    again = cli("demo", "--toy", "--n-events", 400_000, "-o", out, "-q")
    assert again.returncode == 0, again.stdout + again.stderr
    reference = cli("demo", "--toy", "--n-events", 400_000, "-o", tmp_path / "reference", "-q")
    assert reference.returncode == 0
    with EventStore(out / "events.h5") as a, EventStore(tmp_path / "reference" / "events.h5") as b:
        np.testing.assert_array_equal(a.read().weights, b.read().weights)
    checks = [json.loads((d / "summary.json").read_text())["checks"] for d in (out, tmp_path / "reference")]
    assert checks[0] == checks[1]


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [15.0, 40.0])
def test_ctrl_c_during_the_wh_demo_then_rerun(tmp_path, seconds):
    """`assay demo --scale 0.01` interrupted while it generates (15 s) or trains (40 s), SIGINT to the
    whole process group (the Dask workers too): one line, exit 130; the rerun completes."""
    pytest.importorskip("pythia8mc")
    out = tmp_path / "demo"
    result = interrupt_after(["demo", "--scale", 0.01, "-o", out, "-q"], seconds)
    assert result.returncode == 130, result.stdout + result.stderr
    assert result.stdout.strip() == INTERRUPTED_LINE, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    again = cli("demo", "--scale", 0.01, "-o", out, "-q", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((out / "summary.json").read_text())["parton"]


# ---- float64 sums over many events -------------------------------------------------------------

N_BIG = 4_000_000  # 4·10⁶ weights of 10⁻³ beside one of 10⁴: a float32 column sum is 0.7% off (16% at 10⁷)


@pytest.fixture(scope="module")
def float32_weights():
    """``(N_BIG, 3)`` float32 benchmark weights in pb, their exact (float64) column sums, a morpher."""
    from assay.morphing import Morpher, morphing_components

    w = np.tile(np.array([1e-3, 1.5e-3, 0.7e-3], dtype=np.float32), (N_BIG, 1))  # σ(θ) depends on θ
    w[0] = 1e7 * w[0]
    exact = w.astype(np.float64).sum(axis=0)
    assert abs(w.sum(axis=0)[0] / exact[0] - 1) > 0.005  # what a float32 sum does
    return w, exact, Morpher(morphing_components(1, 2), np.array([[0.0], [1.0], [-1.0]]))


def test_asimov_sums_are_float64_for_float32_weights(float32_weights):
    """AsimovSample's σ(θ), ∇σ and weights come out as float64 sums for float32 inputs (∇σ summed
    the float32 column directly before: 16% off at 10⁷ events)."""
    from assay.inference.asimov import AsimovSample
    from assay.joint import JointQuantities

    w, exact, morpher = float32_weights
    sample = AsimovSample(
        np.zeros((N_BIG, 1), np.float32), ("x",), w, JointQuantities(morpher, exact), np.zeros(1), 1.0
    )
    theta = np.array([0.5])
    np.testing.assert_allclose(
        sample.cross_section_gradient(theta), morpher.morphing_weight_gradients(theta) @ exact, rtol=1e-12
    )  # scale = 1: the sample is the whole store
    np.testing.assert_allclose(
        sample.cross_section(theta[None]), morpher.morphing_weights(theta) @ exact, rtol=1e-12
    )
    assert sample.weights.dtype == np.float64


def test_likelihood_and_template_sums_are_float64_for_float32_inputs(float32_weights):
    """Σ_i w_i log r̂_i, the Asimov normalisation and histogram yields stay float64 sums for
    float32 arrays (they cast on entry; this pins it)."""
    from assay.inference.histograms import Binning, fill_templates
    from assay.inference.likelihood import weighted_log_ratio_sum

    w, exact, morpher = float32_weights
    log_r = np.ones((1, N_BIG), dtype=np.float32)
    np.testing.assert_allclose(
        weighted_log_ratio_sum(log_r, np.zeros((1, 1)), w[:, 0]), exact[:1], rtol=1e-12
    )
    binning = Binning(("x",), (np.array([-1.0, 1.0]),))
    filled = fill_templates(np.zeros((N_BIG, 1), np.float32), w, binning, morpher)
    np.testing.assert_allclose(filled.benchmark_sums[0], exact, rtol=1e-12)
