"""``assay train`` through typer's CLI runner: a tiny toy run (4,000 events, 2 epochs) → models/<name>/.

The ``training`` section names the models (``{name: {method: ..., settings}}``); each test writes a
config whose training section holds the model(s) it needs.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import small_toy_run
from typer.testing import CliRunner

from assay.bit import BoostedInformationTree
from assay.cli import app
from assay.config import config_from_dict, load_config
from assay.estimators import ALICES, SALLY, Ensemble, load_estimator
from assay.exceptions import ConfigError
from assay.training import bit_training_events, build_estimator, estimator_class, train
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

CONFIG = small_toy_run(seed=5, n_events=4_000)
NEURAL = {"method": "alices", "hidden": [16], "epochs": 2, "batch_size": 128, "threads": 1}
BIT = {"method": "bit", "n_trees": 15, "max_depth": 3, "min_size": 20}


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def write_config(folder, name: str = "alices", *, models: dict | None = None, **settings) -> str:
    """A config whose training section is ``models``, or one model ``name``: the small neural
    defaults (:data:`BIT`'s for ``method: bit``) updated with ``settings``."""
    cfg = json.loads(json.dumps(CONFIG))
    if models is None:
        base = BIT if settings.get("method") == "bit" else NEURAL
        models = {name: {**base, **settings}}
    cfg["training"] = models
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
    result = invoke("train", write_config(run_folder, method.lower(), method=method), "-o", out, "-q")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert f"{method.lower()}: {method.upper()} on {method.lower()}" in text and "saved to" in text
    assert "train loss" in text and "val loss" in text
    est = load_estimator(out / "models" / method.lower())
    x = TrainingSet.load(out / "sets" / f"{method.lower()}_validation.h5").x[:50]
    if isinstance(est, ALICES):
        assert est.trainer.clip_grad_norm == 1.0 and est.alpha == 5.0  # "auto" clipping for score terms
        assert len(est.history_.val_loss) == 2  # validated on sets/alices_validation.h5
        log_r = est.log_ratio(x, np.array([[0.2], [-0.3]]), np.zeros(1)).mean
        assert log_r.shape == (2, 50) and np.all(np.isfinite(log_r))
    else:
        assert isinstance(est, SALLY) and est.trainer.clip_grad_norm is None
        t_hat = est.score(x).mean
        assert t_hat.shape == (50, 1) and np.all(np.isfinite(t_hat))


def test_train_an_ensemble_and_replace_it(run_folder):
    out = run_folder / "out"
    result = invoke("train", write_config(run_folder, n_ensemble=2), "-o", out, "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert "2 members" in flat(result.output)
    ens = load_estimator(out / "models" / "alices")
    assert isinstance(ens, Ensemble) and ens.n_members == 2 and ens.resampling_ == "bootstrap"
    x = TrainingSet.load(out / "sets" / "alices_validation.h5").x[:20]
    prediction = ens.log_ratio(x, np.array([0.3]), np.zeros(1))
    assert prediction.mean.shape == prediction.std.shape == (1, 20) and np.all(prediction.std > 0)
    # a single estimator trained afterwards replaces the ensemble directory
    assert invoke("train", write_config(run_folder), "-o", out, "-q").exit_code == 0
    assert isinstance(load_estimator(out / "models" / "alices"), ALICES)


def test_two_named_models_of_one_method_train_side_by_side(run_folder):
    """Two models of the same method under their own names, each on its own set (``training_set``),
    saved to models/<name>/; ``--models`` trains only those named."""
    out = run_folder / "out"
    models = {
        "small": {**NEURAL, "training_set": "alices"},
        "wide": {**NEURAL, "hidden": [8, 8], "training_set": "alices"},
        "trees": {**BIT, "n_trees": 3},
    }
    path = write_config(run_folder, models=models)
    result = invoke("train", path, "-o", out, "-m", "small", "--models", "wide", "-q")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "small: ALICES on alices" in text and "wide: ALICES on alices" in text and "trees" not in text
    small, wide = load_estimator(out / "models" / "small"), load_estimator(out / "models" / "wide")
    assert small.hidden == (16,) and wide.hidden == (8, 8)
    assert not (out / "models" / "trees").exists()


def test_unknown_model_on_the_command_line(run_folder):
    result = invoke("train", write_config(run_folder), "-o", run_folder / "out", "--models", "nope", "-q")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "--models: unknown model(s) ['nope']" in text and "['alices']" in text


def test_empty_training_section_says_what_to_add(run_folder):
    result = invoke("train", write_config(run_folder, models={}), "-o", run_folder / "out", "-q")
    assert result.exit_code == 2
    assert "training: no models configured" in flat(result.output)


def test_unknown_method_lists_the_valid_names(run_folder):
    result = invoke("train", write_config(run_folder, method="nope"), "-o", run_folder / "out", "-q")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "training.alices: Input tag 'nope' found using 'method'" in text
    for name in ("alices", "sally", "carl", "rolr", "alice", "rascal", "cascal", "bit"):
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
    model = {"method": "carl", "clip_grad_norm": 0.5, "patience": 3}
    cfg = config_from_dict({**CONFIG, "training": {"my-carl": model}})
    carl = build_estimator(cfg.training["my-carl"], seed=1)
    assert carl.trainer.clip_grad_norm == 0.5 and carl.trainer.patience == 3 and not hasattr(carl, "alpha")
    sets = {"method": "alices", "training_set": ["alices", "sally"], "n_ensemble": 3}
    with pytest.raises(ConfigError, match=r"training\.ens: .*one per member"):
        config_from_dict({**CONFIG, "training": {"ens": sets}})


# ---- method: bit (Boosted Information Trees on the weighted train events) ------------------
def test_train_bit_writes_a_model_that_loads(run_folder):
    """`assay train` with method bit fits the train partition of events.h5 and saves JSON that
    loads to the same predictions as the in-memory model of ``assay.training.train``."""
    out = run_folder / "out"
    path = write_config(run_folder, "bit", method="bit")
    result = invoke("train", path, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "bit: BIT on the train partition: 2400 events" in text and "saved to" in text
    cfg = load_config(path)
    kept = train(cfg, out, progress=False)["bit"]  # the CLI's model: same seed, settings and events
    assert kept.kept and kept.wall_s == 0.0 and kept.estimator.n_trees == 15
    trained = train(cfg, out, progress=False, retrain=True)["bit"]
    assert trained.name == "bit" and trained.method == "BoostedInformationTree" and not trained.kept
    assert trained.training_sets == ("train",)
    assert trained.n_events == 2400 and trained.histories == () and 0 < trained.fit_s <= trained.wall_s
    bit = trained.estimator
    assert (bit.n_trees, bit.max_depth, bit.min_size, bit.learning_rate) == (15, 3, 20, 0.2)
    loaded = BoostedInformationTree.load(out / "models" / "bit")
    assert trained.path == out / "models" / "bit"
    events = bit_training_events(cfg, cfg.training["bit"], out)
    with h5py.File(out / "split.h5", "r") as f:
        np.testing.assert_array_equal(events.indices, f["train"][()])
    np.testing.assert_array_equal(events.theta_ref, np.zeros(1))
    x = events.x[:100]
    np.testing.assert_array_equal(loaded.predict_coefficients(x), bit.predict_coefficients(x))
    theta = np.array([[0.3], [-0.5]])
    np.testing.assert_array_equal(
        loaded.log_ratio(x, theta, np.zeros(1)).mean, bit.log_ratio(x, theta, np.zeros(1)).mean
    )
    again = BoostedInformationTree(**bit.get_params()).fit(events.x, events.weights, morpher=events.morpher)
    np.testing.assert_array_equal(again.predict_coefficients(x), bit.predict_coefficients(x))


def test_bit_max_events_takes_a_seeded_subset(run_folder):
    out = run_folder / "out"
    cfg = load_config(write_config(run_folder, "bit", method="bit", max_events=500))
    model = cfg.training["bit"]
    first, second = bit_training_events(cfg, model, out), bit_training_events(cfg, model, out)
    assert len(first.x) == 500 and np.all(np.diff(first.indices) > 0)
    np.testing.assert_array_equal(first.indices, second.indices)
    with h5py.File(out / "split.h5", "r") as f:
        assert np.isin(first.indices, f["train"][()]).all()


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"max_depth": 20}, "training.trees.max_depth: Input should be less than or equal to 14"),
        ({"learning_rate": 0}, "training.trees.learning_rate: Input should be greater than 0"),
        ({"n_tree": 5}, "training.trees.n_tree: Extra inputs are not permitted"),
        ({"max_events": -1}, "training.trees.max_events: Input should be greater than 0"),
        ({"theta_ref": "bsm"}, "training.trees.theta_ref: unknown benchmark 'bsm'"),
        # neural settings are not BIT's: one model, fitted on the weighted events (no training set)
        ({"n_ensemble": 2}, "training.trees.n_ensemble: Extra inputs are not permitted"),
        ({"training_set": "sally"}, "training.trees.training_set: Extra inputs are not permitted"),
    ],
)
def test_bad_bit_settings_name_the_field(run_folder, settings, where):
    result = invoke(
        "train", write_config(run_folder, "trees", method="bit", **settings), "-o", run_folder / "out", "-q"
    )
    assert result.exit_code == 2
    text = flat(result.output)
    assert where in text and text.count("training.") == 1 and "Traceback" not in result.output


def test_train_bit_without_events_or_basis_says_run_first(run_folder, tmp_path):
    result = invoke("train", write_config(run_folder, "bit", method="bit"), "-o", tmp_path / "empty", "-q")
    assert result.exit_code == 2
    text = flat(result.output).replace(" ", "")
    assert "events.h5:eventfilenotfound" in text and "assayrunCONFIG" in text
    (tmp_path / "partial").mkdir()
    shutil.copy(run_folder / "out" / "events.h5", tmp_path / "partial" / "events.h5")
    result = invoke("train", write_config(run_folder, "bit", method="bit"), "-o", tmp_path / "partial", "-q")
    assert result.exit_code == 2
    assert "basis.json:morphingbasisnotfound" in flat(result.output).replace(" ", "")


def test_bit_theta_ref_as_a_point(run_folder):
    cfg = load_config(write_config(run_folder, "bit", method="bit", theta_ref={"c": 0.25}))
    events = bit_training_events(cfg, cfg.training["bit"], run_folder / "out")
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
    log_r = est.log_ratio(x, np.array([[0.4], [-0.2]]), np.zeros(1)).mean
    assert np.all(np.isfinite(log_r)) and np.any(log_r != 0)
    same = est.log_ratio(x, np.array([[0.4]]), np.array([0.4])).mean
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_morphing_aware_needs_a_ratio_method(run_folder):
    result = invoke(
        "train", write_config(run_folder, "sally", method="sally", morphing_aware=True),
        "-o", run_folder / "out", "-q",
    )  # fmt: skip
    assert result.exit_code == 2
    text = flat(result.output)
    assert "training.sally.morphing_aware: SALLY does not estimate a likelihood ratio" in text
    assert "alices" in text


def test_interrupted_training_resumes_from_its_checkpoint(run_folder, monkeypatch):
    """`assay train` run again after an interruption continues the unfinished fit from
    models/.checkpoints/ and ends as an uninterrupted run; the checkpoints go once the model is saved."""
    from assay.estimators import train as train_module

    out = run_folder / "out"
    cfg = load_config(write_config(run_folder, epochs=4))
    reference = train(cfg, out, progress=False)["alices"].estimator
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
            train(cfg, out, progress=False, retrain=True)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    resumed = train(cfg, out, progress=False, retrain=True)["alices"].estimator
    assert resumed.history_.train_loss == reference.history_.train_loss
    assert not (out / "models" / ".checkpoints").exists()


def test_rerun_keeps_an_unchanged_model_and_retrains_a_changed_one(run_folder):
    """A rerun of `assay train` keeps a model saved with the same seed, settings and training sets
    (its provenance says so) and prints that; other settings, other sets or --retrain train again."""
    out = run_folder / "out"
    path = write_config(run_folder, epochs=2)
    assert invoke("train", path, "-o", out, "-q").exit_code == 0
    model = out / "models" / "alices"
    before = {p.name: p.stat().st_mtime_ns for p in model.iterdir()}
    kept = "trained before with these settings and inputs; kept"
    again = invoke("train", path, "-o", out, "-q")
    assert again.exit_code == 0 and kept in flat(again.output)
    assert {p.name: p.stat().st_mtime_ns for p in model.iterdir()} == before  # nothing rewritten
    changed = invoke("train", write_config(run_folder, epochs=3), "-o", out, "-q")
    assert changed.exit_code == 0 and kept not in flat(changed.output)
    forced = invoke("train", write_config(run_folder, epochs=3), "-o", out, "-q", "--retrain")
    assert forced.exit_code == 0 and kept not in flat(forced.output)
    sets = out / "sets" / "alices_train.h5"
    sets.touch()  # same bytes: the checksum, not the time, decides
    assert kept in flat(invoke("train", write_config(run_folder, epochs=3), "-o", out, "-q").output)
