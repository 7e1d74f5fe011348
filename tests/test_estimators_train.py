"""Tests of the one trainer and the network building blocks (assay.estimators.train / nets).

Tiny hand-built problems whose answers are known: a scalar parameter pulled towards
different targets by the training and validation data (early stopping), a spy optimizer
(learning-rate schedule), and seeded fits (reproducibility).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from assay.estimators import ACTIVATIONS, MLP, OPTIMIZERS, SALLY, History, Standardizer, Trainer
from assay.estimators.nets import make_activation
from assay.exceptions import AssayError, ConfigError
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

QUIET = dict(progress=False, seed=0)


class Scalar(nn.Module):
    """One trainable number p, starting at 0."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))


def squared_distance(model: Scalar, batch: dict[str, torch.Tensor]):
    loss = ((model.p - batch["target"]) ** 2).mean()
    return loss, {"squared_distance": loss}


def targets(value: float, n: int = 8) -> dict[str, np.ndarray]:
    return {"target": np.full(n, value)}


@pytest.fixture(scope="module")
def local_set() -> TrainingSet:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    return TrainingSet(x=x, observables=("a", "b"), parameters=("c",), kind="local_score", t0=x[:, :1] ** 2)


def test_lr_decays_geometrically(monkeypatch):
    """The optimizer runs epoch e at lr0 (lr1/lr0)^(e/(epochs-1)) (seed 000: 1e-3 → 1e-4)."""
    seen: list[float] = []
    spy: list[torch.optim.Optimizer] = []

    def make_spy(params, lr):
        spy.append(torch.optim.SGD(params, lr=lr))
        return spy[-1]

    def loss_fn(model, batch):
        seen.append(spy[0].param_groups[0]["lr"])
        return squared_distance(model, batch)

    monkeypatch.setitem(OPTIMIZERS, "spy", make_spy)
    trainer = Trainer(epochs=5, batch_size=4, lr=(1e-2, 1e-4), optimizer="spy", validation_split=0, **QUIET)
    history = trainer.fit(Scalar(), loss_fn, targets(1.0))
    expected = 1e-2 * (1e-4 / 1e-2) ** (np.arange(5) / 4)
    np.testing.assert_allclose(seen, np.repeat(expected, 2), rtol=1e-12)  # two batches per epoch
    np.testing.assert_allclose(history.lr, expected, rtol=1e-12)
    assert history.lr[0] == 1e-2 and history.lr[-1] == pytest.approx(1e-4, rel=1e-12)


def test_early_stopping_restores_best_epoch():
    """p climbs from 0 towards the training target 1; the validation target 0.3 is passed on the way,
    so the validation loss falls, then rises: training stops after ``patience`` worse epochs and
    the weights of the best epoch come back."""
    trainer = Trainer(epochs=100, batch_size=8, lr=(0.05, 0.05), optimizer="adam", patience=3, **QUIET)
    model = Scalar()
    history = trainer.fit(model, squared_distance, targets(1.0), validation=targets(0.3))
    val = np.array(history.val_loss)
    assert history.best_epoch == int(np.argmin(val)) and 0 < history.best_epoch < history.n_epochs - 1
    assert history.n_epochs == history.best_epoch + 1 + 3  # stopped after 3 epochs without improvement
    assert np.all(np.diff(val[: history.best_epoch + 1]) < 0) and np.all(
        val[history.best_epoch + 1 :] > val.min()
    )
    restored = float((model.p.detach() - 0.3) ** 2)
    assert restored == pytest.approx(val[history.best_epoch], rel=1e-6)
    assert set(history.train_terms) == set(history.val_terms) == {"squared_distance"}
    # without early stopping the last weights stay
    model = Scalar()
    history = Trainer(epochs=20, batch_size=8, lr=(0.05, 0.05), early_stopping=False, **QUIET).fit(
        model, squared_distance, targets(1.0), validation=targets(0.3)
    )
    assert history.n_epochs == 20 and history.best_epoch == 19
    assert float((model.p.detach() - 0.3) ** 2) == pytest.approx(history.val_loss[-1], rel=1e-6)


def test_validation_split_holds_out_a_fraction():
    seen_sizes: list[int] = []

    def loss_fn(model, batch):
        seen_sizes.append(len(batch["target"]))
        return squared_distance(model, batch)

    Trainer(epochs=1, batch_size=1000, validation_split=0.25, **QUIET).fit(
        Scalar(), loss_fn, targets(1.0, 100)
    )
    assert seen_sizes == [75, 25]  # one training batch, then the validation pass


def test_seeded_fits_are_reproducible(local_set):
    def weights(seed: int) -> dict[str, torch.Tensor]:
        est = SALLY(hidden=(8,), epochs=2, batch_size=32, progress=False, seed=seed).fit(local_set)
        return est.net_.state_dict()

    first, second, other = weights(3), weights(3), weights(4)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_nan_loss_is_reported():
    def nan_loss(model, batch):
        loss = model.p * float("nan")
        return loss, {}

    with pytest.raises(AssayError, match=r"training loss is nan in epoch 0.*clip_grad_norm"):
        Trainer(epochs=2, validation_split=0, **QUIET).fit(Scalar(), nan_loss, targets(1.0))


def test_clip_grad_norm_limits_steps(monkeypatch):
    """SGD with lr 1 and the gradient norm clipped to 0.1 moves p by exactly 0.1 per step."""
    monkeypatch.setitem(OPTIMIZERS, "sgd", lambda params, lr: torch.optim.SGD(params, lr=lr))
    model = Scalar()
    trainer = Trainer(epochs=3, batch_size=8, lr=(1.0, 1.0), optimizer="sgd", clip_grad_norm=0.1, **QUIET)
    trainer.fit(model, squared_distance, targets(10.0), validation=targets(10.0))
    assert float(model.p.detach()) == pytest.approx(0.3, rel=1e-6)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"optimizer": "sgdx"},
            r"optimizer: unknown name 'sgdx'; valid names are \['adam', 'amsgrad', 'nadam'\]",
        ),
        (
            {"device": "tpu"},
            r"Trainer\.device: unknown name 'tpu'; valid names are \['auto', 'cpu', 'cuda'\]",
        ),
        ({"lr": (1e-3, 0.0)}, r"Trainer\.lr: expected two positive numbers"),
        ({"lr": (1e-3,)}, r"Trainer\.lr: expected two positive numbers"),
        ({"epochs": 0}, r"Trainer\.epochs: expected an integer >= 1, got 0"),
        ({"validation_split": 1.0}, r"Trainer\.validation_split: expected a fraction in \[0, 1\)"),
        ({"clip_grad_norm": -1.0}, r"Trainer\.clip_grad_norm: expected None or > 0"),
    ],
)
def test_bad_trainer_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(**settings)
    with pytest.raises(ConfigError, match=message):
        SALLY(**settings)  # the estimators pass their trainer fields through


def test_unknown_activation_lists_valid_names():
    with pytest.raises(
        ConfigError, match=r"activation: unknown name 'rleu'; valid names are \[.*'relu'.*'tanh'"
    ):
        SALLY(activation="rleu")
    with pytest.raises(ConfigError, match="valid names"):
        MLP(2, 1, activation="Tanh")
    for name in ACTIVATIONS:
        assert isinstance(make_activation(name), nn.Module)


def test_mlp_shapes():
    net = MLP(3, 2, hidden=(5, 4), activation="silu")
    assert net(torch.zeros(7, 3)).shape == (7, 2)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == [5, 4, 2]
    assert MLP(3, 1, hidden=(), output_bias=False)[0].bias is None  # linear model, no bias


def test_standardizer():
    data = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    scaler = Standardizer(2).fit(data)
    np.testing.assert_allclose(scaler.mean.numpy(), [3.0, 5.0])
    np.testing.assert_allclose(scaler.std.numpy(), [np.sqrt(8 / 3), 1.0])  # constant column: std 1
    out = scaler(torch.as_tensor(data, dtype=torch.float32))
    np.testing.assert_allclose(out[:, 0].numpy(), [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1].numpy(), 0.0)
    with pytest.raises(ValueError, match=r"expected shape \(n_samples, 2\)"):
        scaler.fit(np.zeros((3, 3)))
    assert set(scaler.state_dict()) == {"mean", "std"}


def test_history_json_round_trip():
    history = Trainer(epochs=3, batch_size=8, **QUIET).fit(Scalar(), squared_distance, targets(1.0, 16))
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history
    assert history.n_epochs == 3 and len(history.val_loss) == 3 and len(history.lr) == 3


def test_device_auto_resolves():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Trainer(device="auto").torch_device.type == expected
    assert Trainer(device="cpu").torch_device.type == "cpu"


def test_keep_freed_memory_sets_the_allocator_once(monkeypatch):
    """On glibc the trainer's malloc thresholds are applied (mallopt returns 1 for each) and only once
    per process; elsewhere it reports False instead of failing."""
    import ctypes
    import sys

    from assay.estimators import train as train_module

    applied = train_module.keep_freed_memory()
    assert train_module.keep_freed_memory() is applied  # cached: one call per process
    if sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallopt"):
        assert applied is True
    train_module.keep_freed_memory.cache_clear()
    monkeypatch.setattr(train_module.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError("no libc")))
    try:
        assert train_module.keep_freed_memory() is False
    finally:
        train_module.keep_freed_memory.cache_clear()
