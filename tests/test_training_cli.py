"""``assay train`` through typer's CLI runner: a tiny toy run (4,000 events, 2 epochs) → models/."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from assay.bit import BoostedInformationTree
from assay.cli import app
from assay.config import config_from_dict, load_config
from assay.estimators import ALICES, SALLY, Ensemble, load_estimator
from assay.exceptions import ConfigError
from assay.training import bit_training_events, build_estimator, estimator_class, train
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

CONFIG = {
    "seed": 5,
    "parameters": [{"name": "c", "range": [-1.0, 1.0]}],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": 4_000, "n_obs": 2, "batch_size": 2_000},
    "sampling": {
        "sets": [
            {"name": "sally", "kind": "local_score", "n_samples": 1_000},
            {
                "name": "alices",
                "kind": "ratio",
                "theta0": {"kind": "gaussian", "std": 0.4},
                "n_samples": 2_000,
            },
        ]
    },
    "training": {"method": "alices", "hidden": [16], "epochs": 2, "batch_size": 128, "threads": 1},
}


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def write_config(folder, **training) -> str:
    cfg = json.loads(json.dumps(CONFIG))
    cfg["training"].update(training)
    path = folder / f"config_{len(list(folder.glob('config_*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def invoke(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """``assay run`` once: events and the sally / alices training and validation sets."""
    folder = tmp_path_factory.mktemp("train-cli")
    result = invoke("run", write_config(folder), "-o", folder / "out", "-q")
    assert result.exit_code == 0, result.output
    return folder


@pytest.mark.parametrize("method", ["alices", "SALLY"])
def test_train_writes_a_model_that_evaluates(run_folder, method):
    out = run_folder / "out"
    result = invoke("train", write_config(run_folder, method=method), "-o", out, "-q")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert method.upper() in text and "saved to" in text and "train loss" in text and "val loss" in text
    est = load_estimator(out / "models" / method.lower())
    x = TrainingSet.load(out / "sets" / f"{method.lower()}_validation.h5").x[:50]
    if isinstance(est, ALICES):
        assert est.trainer.clip_grad_norm == 1.0 and est.alpha == 5.0  # "auto" clipping for score terms
        assert len(est.history_.val_loss) == 2  # validated on sets/alices_validation.h5
        log_r = est.evaluate_log_ratio(x, np.array([[0.2], [-0.3]]), np.zeros(1)).log_r
        assert log_r.shape == (2, 50) and np.all(np.isfinite(log_r))
    else:
        assert isinstance(est, SALLY) and est.trainer.clip_grad_norm is None
        assert np.all(np.isfinite(est.evaluate_score(x)))


def test_train_an_ensemble_and_replace_it(run_folder):
    out = run_folder / "out"
    result = invoke("train", write_config(run_folder, n_ensemble=2), "-o", out, "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert "2 members" in flat(result.output)
    ens = load_estimator(out / "models" / "alices")
    assert isinstance(ens, Ensemble) and ens.n_members == 2 and ens.resampling_ == "bootstrap"
    x = TrainingSet.load(out / "sets" / "alices_validation.h5").x[:20]
    prediction = ens.evaluate_log_ratio(x, np.array([0.3]), np.zeros(1))
    assert prediction.members.shape == (2, 1, 20) and np.all(prediction.variance > 0)
    # a single estimator trained afterwards replaces the ensemble directory
    assert invoke("train", write_config(run_folder), "-o", out, "-q").exit_code == 0
    assert isinstance(load_estimator(out / "models" / "alices"), ALICES)


def test_unknown_method_lists_the_valid_names(run_folder):
    result = invoke("train", write_config(run_folder, method="nope"), "-o", run_folder / "out", "-q")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "training.method: unknown method 'nope'" in text
    for name in ("alices", "sally", "carl", "rascal", "bit"):
        assert f"'{name}'" in text
    assert "Traceback" not in result.output


def test_alices_on_a_local_score_set_names_the_missing_field(run_folder):
    result = invoke("train", write_config(run_folder, training_set="sally"), "-o", run_folder / "out", "-q")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "training set 'sally'" in text and "'local_score'" in text
    assert "lacks the field(s) ['theta1', 'y', 'log_r'] that ALICES needs" in text


def test_missing_training_set_file(run_folder, tmp_path):
    result = invoke("train", write_config(run_folder), "-o", tmp_path / "empty", "-q")
    assert result.exit_code == 2
    text = flat(result.output).replace(" ", "")
    assert "alices_train.h5" in text and "assayrunCONFIG" in text


def test_config_glue():
    """Names map through the one registry, case-insensitively; clipping and alpha follow the method."""
    assert estimator_class("Alices") is ALICES and estimator_class("sally") is SALLY
    with pytest.raises(ConfigError, match="valid names are"):
        estimator_class("madminer")
    cfg = config_from_dict({**CONFIG, "training": {"method": "carl", "clip_grad_norm": 0.5, "patience": 3}})
    carl = build_estimator(cfg.training, seed=1)
    assert carl.trainer.clip_grad_norm == 0.5 and carl.trainer.patience == 3 and not hasattr(carl, "alpha")
    with pytest.raises(ConfigError, match="one per member"):
        config_from_dict({**CONFIG, "training": {"training_set": ["alices", "sally"], "n_ensemble": 3}})


# ---- method: bit (Boosted Information Trees on the weighted train events) ------------------
BIT = {"n_trees": 15, "max_depth": 3, "min_size": 20}


def test_train_bit_writes_a_model_that_loads(run_folder):
    """`assay train` with method bit fits the train partition of events.h5 and saves JSON that
    loads to the same predictions as the in-memory model of ``assay.training.train``."""
    out = run_folder / "out"
    path = write_config(run_folder, method="bit", bit=BIT)
    result = invoke("train", path, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "BIT on the train partition: 2400 events" in text and "saved to" in text
    cfg = load_config(path)
    trained = train(cfg, out, progress=False)
    assert trained.method == "BoostedInformationTree" and trained.training_sets == ("train",)
    assert trained.n_events == 2400 and trained.histories == () and 0 < trained.fit_s <= trained.wall_s
    bit = trained.estimator
    assert (bit.n_trees, bit.max_depth, bit.min_size, bit.learning_rate) == (15, 3, 20, 0.2)
    loaded = BoostedInformationTree.load(out / "models" / "bit")
    assert trained.path == out / "models" / "bit"
    events = bit_training_events(cfg, out)
    with h5py.File(out / "split.h5", "r") as f:
        np.testing.assert_array_equal(events.indices, f["train"][()])
    np.testing.assert_array_equal(events.theta_ref, np.zeros(1))
    x = events.x[:100]
    np.testing.assert_array_equal(loaded.predict_coefficients(x), bit.predict_coefficients(x))
    theta = np.array([[0.3], [-0.5]])
    np.testing.assert_array_equal(
        loaded.evaluate_log_ratio(x, theta, np.zeros(1)).log_r,
        bit.evaluate_log_ratio(x, theta, np.zeros(1)).log_r,
    )
    again = BoostedInformationTree(**bit.get_params()).fit(events.x, events.weights, morpher=events.morpher)
    np.testing.assert_array_equal(again.predict_coefficients(x), bit.predict_coefficients(x))


def test_bit_max_events_takes_a_seeded_subset(run_folder):
    out = run_folder / "out"
    cfg = load_config(write_config(run_folder, method="bit", bit={**BIT, "max_events": 500}))
    first, second = bit_training_events(cfg, out), bit_training_events(cfg, out)
    assert len(first.x) == 500 and np.all(np.diff(first.indices) > 0)
    np.testing.assert_array_equal(first.indices, second.indices)
    with h5py.File(out / "split.h5", "r") as f:
        assert np.isin(first.indices, f["train"][()]).all()


@pytest.mark.parametrize(
    ("training", "where"),
    [
        ({"bit": {"max_depth": 20}}, "training.bit.max_depth: Input should be less than or equal to 14"),
        ({"bit": {"learning_rate": 0}}, "training.bit.learning_rate: Input should be greater than 0"),
        ({"bit": {"n_tree": 5}}, "training.bit.n_tree: Extra inputs are not permitted"),
        ({"bit": {"max_events": -1}}, "training.bit.max_events: Input should be greater than 0"),
        ({"bit": {"theta_ref": "bsm"}}, "training.bit.theta_ref: unknown benchmark 'bsm'"),
        ({"n_ensemble": 2}, "training.n_ensemble: method 'bit' trains one model, not an ensemble"),
        ({"training_set": "sally"}, "training.training_set: method 'bit' fits the weighted events"),
    ],
)
def test_bad_bit_settings_name_the_field(run_folder, training, where):
    result = invoke(
        "train", write_config(run_folder, method="bit", **training), "-o", run_folder / "out", "-q"
    )
    assert result.exit_code == 2
    text = flat(result.output)
    assert where in text and text.count("training.") == 1 and "Traceback" not in result.output


def test_train_bit_without_events_or_basis_says_run_first(run_folder, tmp_path):
    result = invoke("train", write_config(run_folder, method="bit"), "-o", tmp_path / "empty", "-q")
    assert result.exit_code == 2
    text = flat(result.output).replace(" ", "")
    assert "events.h5:eventfilenotfound" in text and "assayrunCONFIG" in text
    (tmp_path / "partial").mkdir()
    shutil.copy(run_folder / "out" / "events.h5", tmp_path / "partial" / "events.h5")
    result = invoke("train", write_config(run_folder, method="bit"), "-o", tmp_path / "partial", "-q")
    assert result.exit_code == 2
    assert "basis.json:morphingbasisnotfound" in flat(result.output).replace(" ", "")


def test_bit_theta_ref_as_a_point(run_folder):
    cfg = load_config(write_config(run_folder, method="bit", bit={**BIT, "theta_ref": {"c": 0.25}}))
    events = bit_training_events(cfg, run_folder / "out")
    np.testing.assert_array_equal(events.theta_ref, [0.25])


def test_morphing_aware_alices_uses_the_run_basis(run_folder):
    """``training.morphing_aware``: the network of arXiv:2410.07315 with the morpher of basis.json;
    log r̂ is then exactly a ratio of morphing polynomials in θ, so r̂(x|θ, θ) = 1 and the
    saved model keeps the basis."""
    out = run_folder / "out"
    result = invoke("train", write_config(run_folder, morphing_aware=True), "-o", out, "-q")
    assert result.exit_code == 0, result.output
    est = load_estimator(out / "models" / "alices")
    basis = json.loads((out / "basis.json").read_text())["morphing"]
    assert isinstance(est, ALICES) and est.morphing is not None
    assert est.morphing.to_dict() == basis
    x = TrainingSet.load(out / "sets" / "alices_validation.h5").x[:30]
    log_r = est.evaluate_log_ratio(x, np.array([[0.4], [-0.2]]), np.zeros(1), score=False).log_r
    assert np.all(np.isfinite(log_r)) and np.any(log_r != 0)
    same = est.evaluate_log_ratio(x, np.array([[0.4]]), np.array([0.4]), score=False).log_r
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_morphing_aware_needs_a_ratio_method(run_folder):
    result = invoke(
        "train", write_config(run_folder, method="sally", morphing_aware=True), "-o", run_folder / "out", "-q"
    )
    assert result.exit_code == 2
    text = flat(result.output)
    assert "training.morphing_aware: SALLY does not estimate a likelihood ratio" in text and "alices" in text


def test_interrupted_training_resumes_from_its_checkpoint(run_folder, monkeypatch):
    """`assay train` run again after an interruption continues the unfinished fit from
    models/.checkpoints/ and ends as an uninterrupted run; the checkpoints go once the model is saved."""
    from assay.estimators import train as train_module

    out = run_folder / "out"
    cfg = load_config(write_config(run_folder, epochs=4))
    reference = train(cfg, out, progress=False).estimator
    checkpoint = out / "models" / ".checkpoints" / "alices" / "estimator.pt"
    original, calls = train_module.Trainer._epoch, []

    def interrupted(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(train_module.Trainer, "_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, progress=False)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    resumed = train(cfg, out, progress=False).estimator
    assert resumed.history_.train_loss == reference.history_.train_loss
    assert not (out / "models" / ".checkpoints").exists()
