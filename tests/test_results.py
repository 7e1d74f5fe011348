"""results.json as typed objects: round trip, null for NaN and open ends, one StoreError per bad file."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from assay.exceptions import StoreError
from assay.results import (
    FORMAT,
    SCHEMA_VERSION,
    Calibration,
    Coverage,
    CutFlowResult,
    Distribution,
    FisherInformation,
    LevelResults,
    LossCurve,
    Results,
    Scan1D,
    Scan2D,
    interval_tag,
)

THETA = np.linspace(-1.0, 1.0, 5)
AXIS_Y = np.linspace(-2.0, 2.0, 3)


def level(label: str = "parton level", *, data: str = "asimov") -> LevelResults:
    """A level with every field filled (small arrays), a NaN and an open interval end."""
    sally = np.array([1.0, np.nan, 0.0, 0.25, np.inf])  # inf is written as null and read back as NaN
    q_2d = np.add.outer(THETA**2, AXIS_Y**2)
    return LevelResults(
        label=label,
        n_events={"generated": 1000, "stored": 800},
        data=data,
        scans_1d={
            "cHW": Scan1D("cHW", THETA, {"cHWtilde": 0.0}, {"truth": THETA**2, "sally": sally}),
            "cHWtilde": Scan1D("cHWtilde", THETA, {"cHW": 0.0}, {"truth": 2 * THETA**2}),
        },
        scans_2d=(
            Scan2D(("cHW", "cHWtilde"), (THETA, AXIS_Y), {}, {"truth": q_2d}),
            Scan2D(("cHWtilde", "cHW"), (AXIS_Y, THETA), {}, {"sally": q_2d.T}),
        ),
        intervals={
            "truth": {"cHW_68": (-1.0, 1.0), "cHW_95": (None, 1.5)},
            "sally": {"cHW_68": (-0.9, None), "cHWtilde_68": (-0.5, 0.5)},
        },
        best_fit={"truth": {"cHW": 0.0, "cHWtilde": 0.01}},
        fisher=FisherInformation(np.zeros(2), {"truth": np.array([[4.0, 1.0], [1.0, 2.0]])}),
        histories={"sally": (loss_curve(1.0), loss_curve(1.1))},
        calibration={
            "truth": Calibration(np.zeros((3, 2)), np.ones(3)),
            "alices": Calibration(np.ones((3, 2)), [1.0, 0.98, np.nan], [0.01, 0.02, 0.03]),
        },
        distributions={"pt_w": Distribution("$p_T^W$ [GeV]", [0.0, 100.0, 300.0], {"SM": [0.004, 0.003]})},
        cut_flow=CutFlowResult(("lepton", "b-tags"), [0.8, 0.3]),
        checks={"pyhf_vs_assay_max_abs_dq": 1e-6, "pyhf_scan": "hist_pt_w, cHW"},
        warnings=("the 95% region of cHW reaches the scan's lower end",),
        coverage=Coverage(np.zeros(2), 200, (0.6827, 0.95), {"truth": {"cHW_68": 0.69, "cHW_95": 0.95}}),
    )


def loss_curve(scale: float) -> LossCurve:
    loss = scale * (1 + np.exp(-np.arange(4.0)))
    extra = {"lr": [1e-3, 1e-3, 5e-4, 1e-4], "train_terms": {"mse": list(loss)}}
    return LossCurve(loss, 1.05 * loss, 2, extra)


def results(**changes) -> Results:
    fields = dict(
        title="toy run",
        parameters=("cHW", "cHWtilde"),
        parameter_labels=("$c_{HW}$", r"$c_{H\tilde{W}}$"),
        parameter_units=("TeV^-2", "TeV^-2"),
        luminosity_ifb=300.0,
        levels={"parton": level(), "detector": level("detector level", data="observed: data.h5")},
        timings_s={"scans": 1.5},
    )
    return Results(**(fields | changes))


def assert_same(a, b, path="") -> None:
    """Equal up to NaN == NaN and inf → NaN (arrays by value; dataclasses field by field)."""
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(np.where(np.isinf(a), np.nan, a), b, err_msg=path)
        assert not b.flags.writeable, path
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b), path
        for name in a.__dataclass_fields__:
            assert_same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


def nan_to_none(value):
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


@pytest.fixture
def written(tmp_path):
    original = results()
    return original, original.to_json(tmp_path / "results.json")


def test_round_trip_keeps_every_array_and_value(written):
    original, path = written
    loaded = Results.from_json(path)
    assert nan_to_none(original.to_dict()) == loaded.to_dict()
    assert_same(original, loaded)
    assert loaded.levels["detector"].data == "observed: data.h5"
    assert loaded.levels["parton"].scans_2d[1].parameters == ("cHWtilde", "cHW")
    assert loaded.levels["parton"].histories["sally"][1].extra["lr"] == [1e-3, 1e-3, 5e-4, 1e-4]


def test_open_ends_and_nan_are_null(written):
    _, path = written
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    data = json.loads(text)
    assert data["format"] == FORMAT and data["schema_version"] == SCHEMA_VERSION
    parton = data["levels"]["parton"]
    assert parton["intervals"]["truth"]["cHW_95"] == [None, 1.5]
    assert parton["intervals"]["sally"]["cHW_68"] == [-0.9, None]
    assert parton["scans_1d"]["cHW"]["q"]["sally"] == [1.0, None, 0.0, 0.25, None]
    assert parton["calibration"]["truth"]["r_hat_std"] is None
    loaded = Results.from_json(path).levels["parton"]
    assert loaded.intervals["truth"]["cHW_95"] == (None, 1.5)
    assert loaded.calibration["truth"].r_hat_std is None
    assert np.isnan(loaded.calibration["alices"].r_hat_mean[2])


def test_defaults_and_minimal_level(tmp_path):
    scan = Scan1D("c", THETA, {}, {"truth": THETA**2})
    only = LevelResults(label="x", scans_1d={"c": scan}, intervals={})
    minimal = Results(title="one", parameters=("c",), parameter_labels=("c",), luminosity_ifb=1.0,
                      levels={"only": only})  # fmt: skip
    assert minimal.parameter_units == ("",)
    data = minimal.to_dict()
    level_data = data["levels"]["only"]
    assert level_data["fisher"] is None and level_data["coverage"] is None and level_data["scans_2d"] == []
    for key in ("n_events", "data", "scans_2d", "best_fit", "fisher", "histories", "calibration",
                "distributions", "cut_flow", "checks", "warnings", "coverage"):  # fmt: skip
        del level_data[key]  # every optional key may be left out of the file
    del data["parameter_units"], data["timings_s"]
    loaded = Results.from_dict(data)
    assert loaded.levels["only"].data == "asimov" and loaded.parameter_units == ("",)
    np.testing.assert_array_equal(loaded.levels["only"].scans_1d["c"].q["truth"], THETA**2)


def test_arrays_are_read_only_copies():
    theta = THETA.copy()
    scan = Scan1D("c", theta, {}, {"truth": [0, 1, 2, 3, 4]})
    theta[0] = 99.0
    assert scan.theta[0] == -1.0 and scan.q["truth"].dtype == float
    with pytest.raises(ValueError, match="read-only"):
        scan.theta[1] = 0.0


def test_loss_curve_from_history():
    pytest.importorskip("torch")
    from assay.estimators.train import History

    history = History((1.0, 0.5), (1.1, 0.6), {"mse": (1.0, 0.5)}, {"mse": (1.1, 0.6)}, (1e-3, 1e-4), 1)
    curve = LossCurve.from_dict(history.to_dict())
    np.testing.assert_array_equal(curve.val_loss, [1.1, 0.6])
    assert curve.best_epoch == 1 and set(curve.extra) == {"train_terms", "val_terms", "lr"}
    assert History.from_dict(curve.to_dict()) == history


def test_interval_tag():
    assert [interval_tag(cl) for cl in (0.6827, 0.68, 0.682689, 0.95, 0.9, 0.99)] == ["68", "68", "68", "95",
                                                                                     "90", "99"]  # fmt: skip


def change(*keys, value=None, delete=False):
    """A change of the written file: set (or delete) data[k0][k1]...; a callable value maps the old one."""

    def apply(data):
        for key in keys[:-1]:
            data = data[key]
        if delete:
            del data[keys[-1]]
        else:
            data[keys[-1]] = value(data[keys[-1]]) if callable(value) else value

    return apply


P = ("levels", "parton")
BAD_FILES = {
    "format tag": (change("format", value="madminer"), "format: expected 'assay.results', got 'madminer'"),
    "newer schema": (change("schema_version", value=2), "schema_version: 2 is newer than this assay reads"),
    "q length": (
        change(*P, "scans_1d", "cHW", "q", "truth", value=lambda q: q[:-1]),
        "levels.parton.scans_1d.cHW.q.truth: expected 5 numbers, got 4",
    ),
    "2D q shape": (
        change(*P, "scans_2d", 1, "q", "sally", value=lambda q: q[:-1]),
        "levels.parton.scans_2d[1].q.sally: expected a 3 × 5 array (the axes' lengths), got 2 × 5",
    ),
    "non-square fisher": (
        change(*P, "fisher", "information", "truth", value=[[1, 2, 3], [4, 5, 6]]),
        "levels.parton.fisher.information.truth: expected a 2 × 2 array",
    ),
    "fisher for 3 parameters": (
        change(*P, "fisher", "theta", value=[0, 0, 0]),
        "levels.parton.fisher.information.truth: expected a 3 × 3 array",
    ),
    "calibration theta": (
        change(*P, "calibration", "alices", "theta", value=[[0.0]] * 3),
        "levels.parton.calibration.alices.theta: expected a 3 × 2 array, got 3 × 1",
    ),
    "missing level key": (change(*P, "label", delete=True), "levels.parton.label: missing (a required key)"),
    "missing top key": (change("parameters", delete=True), "parameters: missing (a required key)"),
    "unknown key": (change(*P, "scan_2d", value={}), "levels.parton.scan_2d: unknown key; expected one of"),
    "string in array": (
        change(*P, "scans_1d", "cHW", "theta", 1, value="0.5"),
        "levels.parton.scans_1d.cHW.theta[1]: expected a number or null, got a string '0.5'",
    ),
    "ragged grid": (
        change(*P, "scans_2d", 0, "q", "truth", 2, value=[1.0]),
        "levels.parton.scans_2d[0].q.truth: expected a rectangular array",
    ),
    "interval shape": (
        change(*P, "intervals", "truth", "cHW_68", value=[0.1]),
        "levels.parton.intervals.truth.cHW_68: expected [lo, hi] (null for an open end), got [0.1]",
    ),
    "interval order": (
        change(*P, "intervals", "truth", "cHW_68", value=[1, -1]),
        "levels.parton.intervals.truth.cHW_68: expected lo ≤ hi",
    ),
    "interval key": (
        change(*P, "intervals", "truth", "cHV_68", value=[-1, 1]),
        "levels.parton.intervals.truth.cHV_68: expected keys '<parameter>_<CL tag>'",
    ),
    "unknown scan parameter": (
        change(*P, "scans_2d", 0, "parameters", value=["cHW", "cW"]),
        "levels.parton.scans_2d[0].parameters.cW: unknown parameter; expected one of ['cHW', 'cHWtilde']",
    ),
    "labels": (change("parameter_labels", value=["c"]), "parameter_labels: expected 2 strings"),
    "data": (change(*P, "data", value="toys"), "levels.parton.data: expected 'asimov' or 'observed: <file>'"),
    "coverage fraction": (
        change(*P, "coverage", "coverage", "truth", "cHW_68", value=1.5),
        "levels.parton.coverage.coverage.truth.cHW_68: expected a fraction in [0, 1], got 1.5",
    ),
    "history": (
        change(*P, "histories", "sally", 1, "best_epoch", value=-1),
        "levels.parton.histories.sally[1].best_epoch: expected a whole number ≥ 0, got -1",
    ),
    "empty object": (lambda data: data.clear(), "format: missing (a required key)"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_each_malformed_file_is_one_store_error(written, case):
    _, path = written
    spoil, message = BAD_FILES[case]
    data = json.loads(path.read_text())
    spoil(data)
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=re.escape(f"{path}: {message}")):
        Results.from_json(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "results.json: not found; expected the results.json an inference run writes"),
        ("{not json", "results.json: cannot read it as JSON"),
        ("[1, 2]", "results.json: expected an object with keys ['format', "),
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StoreError, match=re.escape(message)):
        Results.from_json(path)


def test_constructors_check_shapes_and_names():
    with pytest.raises(ValueError, match=re.escape("q.sally: expected 5 numbers, got 3")):
        Scan1D("c", THETA, {}, {"sally": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=re.escape("scans_1d.cHW: holds a scan of 'cHWtilde'")):
        results(levels={"parton": LevelResults(label="x", scans_1d={"cHW": level().scans_1d["cHWtilde"]},
                                                intervals={})})  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("levels.parton.scans_1d.c: unknown parameter")):
        results(levels={"parton": LevelResults(label="x", scans_1d={"c": Scan1D("c", THETA, {}, {})},
                                                intervals={})})  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("edges: expected at least 2 increasing numbers")):
        Distribution("x", [0.0, 2.0, 1.0], {})
    with pytest.raises(ValueError, match=re.escape("efficiency: expected 2 numbers (one per cut), got 1")):
        CutFlowResult(("a", "b"), [0.5])


def test_interval_ends_from_arrays_and_non_finite_numbers_are_open():
    entry = {"c_68": np.array([-1.0, np.inf]), "c_95": (np.float64(-2.0), np.nan), "c_99": [None, 3]}
    level_results = LevelResults(label="x", scans_1d={}, intervals={"m": entry})
    assert level_results.intervals["m"] == {"c_68": (-1.0, None), "c_95": (-2.0, None), "c_99": (None, 3.0)}


def test_to_json_makes_its_folder_and_atomic_writes_name_a_missing_one(tmp_path):
    from assay.saving import write_json

    results = Results(title="t", parameters=("c",), parameter_labels=("c",), luminosity_ifb=1.0, levels={})
    path = results.to_json(tmp_path / "copy" / "results.json")
    assert Results.from_json(path).title == "t"
    with pytest.raises(StoreError, match=r"x\.json: its folder .*nowhere does not exist; create it first"):
        write_json(tmp_path / "nowhere" / "x.json", {})
