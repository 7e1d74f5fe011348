"""Resumable training: a fit interrupted after some epochs and run again ends where an
uninterrupted fit ends (same weights, same loss curves), for a single estimator and an ensemble;
checkpoints of another fit are ignored; foreign files are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.estimators import ALICES, SALLY, Ensemble
from assay.estimators import train as train_module
from assay.exceptions import StoreError
from assay.training_set import TrainingSet

torch.set_num_threads(1)

SETTINGS = dict(hidden=(8,), epochs=6, batch_size=64, patience=2, progress=False, seed=3)


@pytest.fixture(scope="module")
def local_set() -> TrainingSet:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    return TrainingSet(
        x=x, observables=("a", "b"), parameters=("c",), kind="local_score", t0=np.sin(2 * x[:, :1])
    )


class Interrupt(Exception):
    pass


def interrupt_after(monkeypatch, epochs: int) -> None:
    """Make the trainer raise after ``epochs`` epochs have finished (and been checkpointed)."""
    original = train_module.Trainer._epoch
    calls = {"n": 0}

    def epoch(self, *args, **kwargs):
        if calls["n"] == epochs:
            raise Interrupt
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(train_module.Trainer, "_epoch", epoch)


def weights(est) -> list[torch.Tensor]:
    return [p.detach().clone() for p in est.net_.parameters()]


@pytest.mark.parametrize("validation_split", [0.25, 0.0])
def test_resumed_fit_equals_an_uninterrupted_one(local_set, tmp_path, monkeypatch, validation_split):
    reference = SALLY(**SETTINGS, validation_split=validation_split).fit(local_set)
    path = tmp_path / "sally.pt"
    with monkeypatch.context() as m:
        interrupt_after(m, 3)
        with pytest.raises(Interrupt):
            SALLY(**SETTINGS, validation_split=validation_split).fit(local_set, checkpoint=path)
    assert path.is_file()  # the state after epoch 3
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2 and len(state["curves"]["train"]) == 3
    resumed = SALLY(**SETTINGS, validation_split=validation_split).fit(local_set, checkpoint=path)
    assert resumed.history_.train_loss == reference.history_.train_loss
    assert resumed.history_.val_loss == reference.history_.val_loss
    assert resumed.history_.best_epoch == reference.history_.best_epoch
    for a, b in zip(weights(resumed), weights(reference)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not path.exists()  # removed once the fit ended


def test_checkpoint_of_another_fit_is_ignored(local_set, tmp_path, monkeypatch):
    path = tmp_path / "sally.pt"
    with monkeypatch.context() as m:
        interrupt_after(m, 2)
        with pytest.raises(Interrupt):
            SALLY(**{**SETTINGS, "batch_size": 32}).fit(local_set, checkpoint=path)
    fresh = SALLY(**SETTINGS).fit(local_set, checkpoint=path)  # other settings: starts afresh
    reference = SALLY(**SETTINGS).fit(local_set)
    assert fresh.history_.train_loss == reference.history_.train_loss


def test_foreign_checkpoint_is_refused(local_set, tmp_path):
    path = tmp_path / "sally.pt"
    torch.save({"something": torch.zeros(2)}, path)
    with pytest.raises(StoreError, match="not a training checkpoint"):
        SALLY(**SETTINGS).fit(local_set, checkpoint=path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(StoreError, match="cannot read the training checkpoint"):
        SALLY(**SETTINGS).fit(local_set, checkpoint=path)


def test_ensemble_resumes_every_member(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    n = 800
    data = TrainingSet(
        x=rng.normal(size=(n, 2)), observables=("a", "b"), parameters=("c",), kind="ratio",
        theta0=rng.normal(0, 0.5, (n, 1)), theta1=np.zeros((n, 1)), y=rng.integers(0, 2, n).astype(float),
        log_r=rng.normal(0, 0.3, n), t0=rng.normal(size=(n, 1)),
    )  # fmt: skip
    proto = ALICES(**SETTINGS)
    reference = Ensemble.from_estimator(proto, 2).fit(data, n_workers=1, seed=4)
    folder = tmp_path / "members"
    with monkeypatch.context() as m:
        interrupt_after(m, 8)  # member 0 finished (6 epochs, its checkpoint deleted), member 1 after 2
        with pytest.raises(Interrupt):
            Ensemble.from_estimator(proto, 2).fit(data, n_workers=1, seed=4, checkpoints=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["member_1.pt"]
    resumed = Ensemble.from_estimator(proto, 2).fit(data, n_workers=1, seed=4, checkpoints=folder)
    for a, b in zip(resumed.members_, reference.members_):
        assert a.history_.train_loss == b.history_.train_loss
        for wa, wb in zip(weights(a), weights(b)):
            torch.testing.assert_close(wa, wb, rtol=0, atol=0)


def test_unwritable_checkpoint_folder_only_warns(local_set, tmp_path, caplog):
    """A worker that cannot write its checkpoint (no shared filesystem) trains on without one."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    reference = SALLY(**SETTINGS).fit(local_set)
    with caplog.at_level("WARNING"):
        est = SALLY(**SETTINGS).fit(local_set, checkpoint=blocker / "sub" / "sally.pt")
    assert "cannot write the training checkpoint" in caplog.text
    assert est.history_.train_loss == reference.history_.train_loss


def test_full_disk_for_the_checkpoint_stops_training(local_set, tmp_path, monkeypatch):
    """Unlike an unwritable folder, a full disk stops the fit at once, naming the checkpoint: going
    on for hours without checkpoints would fail only when the model is saved."""
    import errno

    from assay.saving import full_error

    def full(path, state):
        raise full_error(path, OSError(errno.ENOSPC, "No space left on device"), "the last one was kept.")

    monkeypatch.setattr(train_module, "write_checkpoint", full)
    with pytest.raises(StoreError, match=r"sally\.pt: no space left"):
        SALLY(**SETTINGS).fit(local_set, checkpoint=tmp_path / "sally.pt")
