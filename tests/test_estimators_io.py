"""The contract every torch estimator keeps, and saving / loading them safely.

Parametrized over every estimator class (and the morphing-aware ratio model): output
shapes, gradients reach every weight, NotFittedError before ``fit``, bit-identical outputs
after save → load, and refusal of weights files that carry pickled objects, unknown
classes, missing or corrupt files. Data: small 2-parameter training sets drawn from the
shared toy sample of conftest.py.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import BASIS_2D, N_EVENTS

from assay.bit import BoostedInformationTree
from assay.estimators import (
    ALICE,
    ALICES,
    CARL,
    CASCAL,
    ESTIMATORS,
    METHODS,
    RASCAL,
    ROLR,
    SALLY,
    MixtureModel,
    RatioEstimator,
    load_estimator,
    method_class,
)
from assay.estimators.train import seeded
from assay.exceptions import ConfigError, NotFittedError, StoreError
from assay.parameters import GaussianPrior
from assay.sampling import EventSource, local_score_training_set, ratio_training_set
from assay.saving import atomic_directory, json_field, read_tagged_json
from assay.store import EventStore
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores: torch's default thread pool collapses under contention

FAST = dict(hidden=(16, 16), epochs=1, batch_size=64, seed=0, progress=False)
CASES = {
    "SALLY": (SALLY, {}),
    "CARL": (CARL, {}),
    "ROLR": (ROLR, {}),
    "ALICE": (ALICE, {}),
    "ALICES": (ALICES, {}),
    "RASCAL": (RASCAL, {}),
    "CASCAL": (CASCAL, {}),
    "ALICES-morphing": (ALICES, {"morphing": "fixture"}),
    "CARL-morphing": (CARL, {"morphing": "fixture"}),
}


class Payload:
    """Unpickling this object would create a directory: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def source(tmp_path_factory, events, morpher):
    path = tmp_path_factory.mktemp("estimators_io") / "toy.h5"
    names = [f"b{k}" for k in range(len(BASIS_2D))]
    with EventStore.create(path, observables=["x0", "x1"], benchmarks=names, morphing=morpher.to_dict()) as w:
        w.append(events.x, events.weights)
    with EventStore(path) as store:
        yield EventSource(store, events=np.arange(N_EVENTS // 2))


@pytest.fixture(scope="module")
def sets(source):
    prior = GaussianPrior(mean=0.0, std=0.4, n_params=2)
    return {
        "local": local_score_training_set(source, np.zeros(2), 600, rng=np.random.default_rng(1)),
        "ratio": ratio_training_set(
            source, prior, np.zeros(2), 600, n_theta0=20, rng=np.random.default_rng(2)
        ),
        "doubly": ratio_training_set(source, prior, prior, 600, n_theta0=20, rng=np.random.default_rng(3)),
    }


def make(case: str, morpher, **overrides):
    cls, extra = CASES[case]
    extra = {k: (morpher if v == "fixture" else v) for k, v in extra.items()}
    return cls(**{**FAST, **extra, **overrides})


def evaluate(est, x: np.ndarray) -> tuple[np.ndarray, ...]:
    if isinstance(est, SALLY):
        return (est.evaluate_score(x),)
    theta0 = np.array([[0.1, -0.2], [0.3, 0.0], [-0.5, 0.4]])
    return tuple(est.evaluate_log_ratio(x, theta0, np.zeros(2)))


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, sets, morpher):
    est = make(request.param, morpher)
    data = sets["local"] if isinstance(est, SALLY) else sets["ratio"]
    return request.param, est.fit(data), data


# ---- contract ---------------------------------------------------------------------------------------
FLOWS = {"NDE", "SCANDAL"}  # density estimators: their save/load and contract are in tests/test_flows.py


def test_every_registered_class_is_covered():
    assert {cls.__name__ for cls, _ in CASES.values()} == set(ESTIMATORS) - FLOWS


def test_one_registry_of_method_names():
    """Config names map to classes through METHODS (BIT included); ESTIMATORS are its neural classes."""
    assert sorted(METHODS) == [
        "alice", "alices", "bit", "carl", "cascal", "mixture", "nde", "rascal", "rolr", "sally", "scandal"
    ]  # fmt: skip
    assert all(name == cls.__name__.lower() for name, cls in METHODS.items() if cls in ESTIMATORS.values())
    assert set(ESTIMATORS.values()) == set(METHODS.values()) - {BoostedInformationTree, MixtureModel}
    assert method_class("ALICES") is ALICES and method_class("Bit") is BoostedInformationTree
    with pytest.raises(ConfigError, match=r"'alicez'; valid names are \['alice', 'alices', 'bit'"):
        method_class("alicez")


def test_output_shapes(fitted, sets):
    _, est, data = fitted
    x = data.x[:7]
    outputs = evaluate(est, x)
    if isinstance(est, SALLY):
        assert outputs[0].shape == (7, 2) and outputs[0].dtype == np.float64
        return
    log_r, score = outputs
    assert log_r.shape == (3, 7) and score.shape == (3, 7, 2)
    single = est.evaluate_log_ratio(x, np.array([0.1, 0.2]), np.zeros(2), score=False)
    assert single.log_r.shape == (1, 7) and single.score is None
    paired = est.evaluate_log_ratio(x, np.ones((4, 2)), np.zeros((4, 2)))
    assert paired.log_r.shape == (4, 7) and paired.score.shape == (4, 7, 2)
    with pytest.raises(ValueError, match=r"theta1: expected one point or 4 points"):
        est.evaluate_log_ratio(x, np.ones((4, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"x: expected shape \(n_events, 2\)"):
        est.evaluate_log_ratio(x[:, :1], np.ones(2), np.zeros(2))


def test_one_epoch_changes_every_weight(fitted, sets):
    _, est, data = fitted
    with seeded(est.trainer.seed):  # the initial weights fit() started from
        initial = est._build(data.x.shape[1], len(data.parameters))
    trained = dict(est.net_.named_parameters())
    for name, weight in initial.named_parameters():
        assert not torch.equal(weight, trained[name]), f"{name} did not move: no gradient reaches it"
    assert est.history_.n_epochs == 1 and np.isfinite(est.history_.train_loss[0])


@pytest.mark.parametrize("case", list(CASES))
def test_not_fitted(case, morpher, tmp_path):
    est = make(case, morpher)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        evaluate(est, np.zeros((3, 2)))
    with pytest.raises(NotFittedError):
        est.save(tmp_path / "est")


def test_save_load_round_trip(fitted, tmp_path):
    case, est, data = fitted
    path = est.save(tmp_path / case)
    assert sorted(p.name for p in path.iterdir()) == ["estimator.json", "weights.pt"]
    loaded = load_estimator(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    assert loaded.history_ == est.history_
    assert loaded.observables_ == est.observables_ and loaded.parameters_ == est.parameters_
    for before, after in zip(evaluate(est, data.x[:50]), evaluate(loaded, data.x[:50])):
        assert np.array_equal(before, after)
    meta = json.loads((path / "estimator.json").read_text())
    assert meta["class"] == type(est).__name__ and "assay_version" in meta
    assert set(meta["state"]["standardization"]) >= {"x_scaler"}
    est.save(path)  # replacing a saved estimator is allowed ...
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not a saved estimator; refusing to overwrite"):
        est.save(tmp_path / "other")  # ... but not an unrelated directory
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me"


def test_doubly_parameterized_round_trip(sets, tmp_path):
    est = ALICES(**FAST).fit(sets["doubly"])
    assert est.doubly_ and set(est.history_.train_terms) == {"xe_augmented", "score_mse_0", "score_mse_1"}
    loaded = load_estimator(est.save(tmp_path / "doubly"))
    assert loaded.doubly_
    x = sets["doubly"].x[:20]
    theta = np.array([[0.2, 0.1], [-0.3, 0.3]])
    assert np.array_equal(est.evaluate_log_ratio(x, theta, theta[::-1]).log_r,
                          loaded.evaluate_log_ratio(x, theta, theta[::-1]).log_r)  # fmt: skip


def test_training_set_must_have_the_fields(sets, morpher):
    with pytest.raises(ValueError, match=r"lacks \['theta1', 'y'\]"):
        CARL(**FAST).fit(sets["local"])
    with pytest.raises(ValueError, match=r"lacks \['t0'\]"):
        SALLY(**FAST).fit(sets["ratio"].__class__(**{**_fields(sets["ratio"]), "t0": None}))
    with pytest.raises(ValueError, match="n_params=3"):
        CARL(n_params=3, **FAST).fit(sets["ratio"])


def _fields(data) -> dict:
    return {k: getattr(data, k) for k in data.__dataclass_fields__}


# ---- refusing bad files -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory, sets):
    est = CARL(**FAST).fit(sets["ratio"])
    return est.save(tmp_path_factory.mktemp("saved") / "carl")


def copy_of(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "copy")


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_refuses_pickled_objects(saved, tmp_path, how):
    path = copy_of(saved, tmp_path)
    marker = tmp_path / "code-ran"
    with open(path / "weights.pt", "wb") as f:
        if how == "torch.save":
            torch.save({"mlp.0.weight": torch.zeros(2), "x": Payload(str(marker))}, f)
        else:
            pickle.dump(Payload(str(marker)), f)
    with pytest.raises(StoreError, match=r"weights\.pt: refused to load") as info:
        load_estimator(path)
    assert not marker.exists()
    assert "posix.mkdir" in str(info.value) or how == "pickle"


def test_refuses_non_tensor_state(saved, tmp_path):
    path = copy_of(saved, tmp_path)
    torch.save({"mlp.0.weight": [1.0, 2.0]}, path / "weights.pt")  # allowed types, but no tensor
    with pytest.raises(StoreError, match="expected a dict of named tensors"):
        load_estimator(path)
    torch.save({"mlp.0.weight": torch.zeros(3)}, path / "weights.pt")
    with pytest.raises(StoreError, match="weights do not match the CARL"):
        load_estimator(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update({"class": "Oracle"}), r"'Oracle', not a known estimator; known: \['ALICE'"),
        (lambda m: m.pop("params"), r"estimator\.json: missing field 'params'"),
        (lambda m: m["state"].pop("n_obs"), r"estimator\.json: missing field 'state\.n_obs'"),
        (lambda m: m["state"].update({"n_obs": "two"}), r"field 'state\.n_obs' should be int"),
        (lambda m: m["params"].update({"activation": "swishy"}), r"field 'params' does not fit CARL.*swishy"),
        (lambda m: m.update({"format": "other"}), r"field 'format' is 'other'"),
        (lambda m: m.update({"schema_version": 99}), r"schema_version' is 99, newer"),
        (lambda m: m.pop("history"), r"missing field 'history'"),
    ],
)
def test_refuses_bad_metadata(saved, tmp_path, edit, message):
    path = copy_of(saved, tmp_path)
    meta = json.loads((path / "estimator.json").read_text())
    edit(meta)
    (path / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=message):
        load_estimator(path)


def test_refuses_missing_and_corrupt_files(saved, tmp_path):
    with pytest.raises(StoreError, match="no saved estimator here"):
        load_estimator(tmp_path / "nowhere")
    path = copy_of(saved, tmp_path)
    (path / "weights.pt").unlink()
    with pytest.raises(StoreError, match=r"weights\.pt: missing weights file"):
        load_estimator(path)
    (path / "estimator.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"estimator\.json: not valid JSON"):
        load_estimator(path)
    (path / "estimator.json").unlink()
    with pytest.raises(StoreError, match=r"estimator\.json: missing file; is .* a saved estimator"):
        load_estimator(path)


# ---- the one directory writer and tagged-JSON reader (assay.saving) --------------------------------
def test_atomic_directory_replaces_or_leaves_nothing(tmp_path):
    target = tmp_path / "deep" / "model"  # missing parents are created
    with atomic_directory(target, markers=("meta.json",)) as tmp:
        assert tmp.parent == target.parent and not target.exists()
        (tmp / "meta.json").write_text("1")
    assert [p.name for p in target.iterdir()] == ["meta.json"]
    for interruption in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(interruption)), atomic_directory(target, markers=("meta.json",)) as tmp:
            (tmp / "meta.json").write_text("2")
            raise interruption
        assert sorted(p.name for p in target.parent.iterdir()) == ["model"]  # no temporary left
        assert (target / "meta.json").read_text() == "1"  # the old copy is untouched
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a saved model; refusing"):
        with atomic_directory(tmp_path / "mine", markers=("meta.json",), what="model"):
            pytest.fail("refused before the block runs")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "missing file; is .* a saved estimator"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"schema_version": 1}', "missing field 'format'"),
        ('{"format": "assay.X", "schema_version": 1}', "field 'format' is 'assay.X', expected 'assay.T'"),
        ('{"format": "assay.T"}', "missing field 'schema_version'"),
        ('{"format": "assay.T", "schema_version": "1"}', "field 'schema_version' should be int, got str"),
        ('{"format": "assay.T", "schema_version": 3}', "'schema_version' is 3, newer than 2; upgrade assay"),
    ],
)
def test_read_tagged_json_names_the_file_and_field(tmp_path, text, message):
    file = tmp_path / "meta.json"
    if text is not None:
        file.write_text(text)
    with pytest.raises(StoreError, match=message) as info:
        read_tagged_json(file, format="assay.T", schema_version=2)
    assert str(file) in str(info.value)


def test_read_tagged_json_and_json_field(tmp_path):
    with pytest.raises(StoreError, match="no saved ensemble here"):
        read_tagged_json(tmp_path / "nowhere" / "e.json", format="assay.T", schema_version=1, what="ensemble")
    file = tmp_path / "meta.json"
    file.write_text('{"format": "assay.T", "schema_version": 1, "n": 2, "flag": true, "x": 1}')
    data = read_tagged_json(file, format="assay.T", schema_version=1)
    assert json_field(data, "n", file, int) == 2 and json_field(data, "x", file, float) == 1
    with pytest.raises(StoreError, match=r"field 'state\.flag' should be int, got bool"):
        json_field(data, "flag", file, int, "state.")


def test_training_set_save_creates_missing_folders(tmp_path):
    x = np.arange(6.0).reshape(3, 2)
    data = TrainingSet(x=x, observables=("a", "b"), parameters=("c",), kind="plain")
    path = data.save(tmp_path / "new" / "folder" / "train.h5")
    np.testing.assert_array_equal(TrainingSet.load(path).x, data.x)


# ---- hyper-parameters ------------------------------------------------------------------------------
def test_hyper_parameters_are_keyword_only_and_listed():
    est = ALICES(
        n_params=2,
        hidden=(100, 100),
        activation="tanh",
        alpha=5.0,
        epochs=50,
        batch_size=128,
        lr=(1e-3, 1e-4),
    )
    params = est.get_params()
    assert params["alpha"] == 5.0 and params["epochs"] == 50 and params["lr"] == [1e-3, 1e-4]
    assert type(est)(**params).get_params() == params
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['epoch'\]; valid names are .*'epochs'"):
        CARL(epoch=3)
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['alpha'\]"):
        ALICE(alpha=1.0)
    with pytest.raises(TypeError):
        CARL((32, 32))  # positional arguments are refused
    assert issubclass(ALICES, RatioEstimator) and issubclass(CASCAL, CARL) and issubclass(RASCAL, ROLR)
