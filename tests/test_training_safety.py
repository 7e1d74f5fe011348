"""Numerical safety of the trainer (issue 18, "NaN/inf in observables" and "Numerical safety").

When the loss or the weights stop being finite, :meth:`Trainer.fit` stops with one
:class:`TrainingError` that names the likely cause: non-finite inputs (which array, which row)
or, with finite inputs, a diverging optimisation (lower lr / clip gradients). The per-epoch
checkpoint keeps the last finite epoch. Tiny regression problems, a few hundred events.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.estimators import MLP, Trainer
from assay.estimators.train import describe_non_finite
from assay.exceptions import AssayError, TrainingError

torch.set_num_threads(1)

QUIET = dict(progress=False, seed=0, batch_size=64)


def regression(n: int = 300) -> dict[str, np.ndarray]:
    """y = x₀ − 2 x₁ with unit weights: finite, easy, learnable."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] - 2 * x[:, 1])[:, None], "weights": np.ones(n, dtype=np.float32)}


def weighted_mse(model, batch):
    loss = (batch["weights"][:, None] * (model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {"mse": loss}


def net() -> MLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MLP(2, 1, hidden=(8,))


def test_nan_observables_are_named_not_blamed_on_lr():
    data = regression()
    data["x"][[5, 17, 40], 1] = np.nan
    with pytest.raises(TrainingError) as info:
        Trainer(epochs=3, **QUIET).fit(net(), weighted_mse, data)
    message = str(info.value)
    assert "training loss is nan in epoch 0" in message
    assert "'x' of the training arrays: 3 NaN, 0 inf in 3 of 300 rows, first row 5 (column 1)" in message
    assert "a lower lr will not help" in message
    assert "lower lr (now" not in message
    assert message.count("\n") == 0


def test_infinite_weights_in_validation_data_are_named():
    train, val = regression(), regression(100)
    val["weights"][60] = np.inf
    with pytest.raises(TrainingError, match=r"validation loss is inf in epoch 0") as info:
        Trainer(epochs=3, **QUIET).fit(net(), weighted_mse, train, validation=val)
    expected = "'weights' of the validation arrays: 0 NaN, 1 inf in 1 of 100 rows, first row 60"
    assert expected in str(info.value)
    assert "training arrays" not in str(info.value)


def test_finite_inputs_that_diverge_suggest_lr_and_clipping():
    # Adam moves every weight by ~lr per step: at lr = 1e25 the outputs reach ~1e50 > float32's 3e38
    with pytest.raises(TrainingError) as info:
        Trainer(epochs=3, lr=(1e25, 1e25), **QUIET).fit(net(), weighted_mse, regression())
    message = str(info.value)
    assert "in epoch 0" in message
    assert "the inputs are finite, so the optimisation diverged" in message
    assert "lower lr (now 1e+25 -> 1e+25) or set clip_grad_norm" in message
    assert isinstance(info.value, AssayError)


def test_checkpoint_keeps_the_last_finite_epoch_and_resumes(tmp_path):
    data, path = regression(), tmp_path / "fit.ckpt"
    trainer = Trainer(epochs=6, validation_split=0, early_stopping=False, **QUIET)
    steps_per_epoch = 5  # 300 rows / batch 64
    calls = {"n": 0}

    def poisoned_in_epoch_3(model, batch):
        # a diverging step in the middle of epoch 3: the weights become NaN
        calls["n"] += 1
        if calls["n"] == 3 * steps_per_epoch + 2:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return weighted_mse(model, batch)

    with pytest.raises(TrainingError, match=r"in epoch 3.*keeps the last finite epoch \(2\)"):
        trainer.fit(net(), poisoned_in_epoch_3, data, checkpoint=path)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())

    # the rerun resumes from epoch 3 and ends as a fit never interrupted
    resumed = net()
    history = trainer.fit(resumed, weighted_mse, data, checkpoint=path)
    straight = net()
    trainer.fit(straight, weighted_mse, data)
    assert history.n_epochs == 6 and not path.exists()
    pairs = zip(resumed.state_dict().values(), straight.state_dict().values())
    assert all(torch.equal(a, b) for a, b in pairs)


def test_describe_non_finite_ignores_integers_and_finite_arrays():
    assert describe_non_finite({"x": np.zeros((4, 2)), "label": np.arange(4)}) is None
    text = describe_non_finite({"t": torch.tensor([[0.0, -np.inf], [np.nan, 1.0]])}, "batch")
    assert text == "'t' of the batch: 1 NaN, 1 inf in 2 of 2 rows, first row 0 (column 1)"
