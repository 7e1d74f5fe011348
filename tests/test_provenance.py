"""Provenance of every output (assay.provenance), ``assay info``, and the refusal of a model applied
to events with other observables or parameters.

One tiny toy run (2,000 events, a 5-tree BIT, an 11-point scan) makes every kind of output once:
events.h5, the training sets, a model folder, limits/ and report.html. Checksums are compared with
hashlib's SHA-256 of the files' bytes, computed here independently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import small_toy_run
from typer.testing import CliRunner

import assay
from assay import provenance as prov
from assay.analysis.build import asimov_sample
from assay.analysis.data import observed_dataset
from assay.analysis.limits import run_limits
from assay.analysis.methods import ModelInputs, check_model_inputs, model_inputs
from assay.cli import app
from assay.cli.info import output_info
from assay.config import RunConfig
from assay.estimators import SALLY, load_estimator
from assay.exceptions import PredictionError, StoreError
from assay.generation import merge_stores
from assay.io.lhe import write_lhe
from assay.io.wh_lhe import import_lhe, wh_to_lhe
from assay.morphing import Morpher, morphing_components
from assay.parameters import Parameter, ParameterSpace
from assay.pipeline import run_pipeline
from assay.report import write_report
from assay.rundir import RunDir
from assay.simulators.wh import WHEvents
from assay.store import EventStore
from assay.training import train_model
from assay.training_set import TrainingSet

torch.set_num_threads(1)

EVENT_SECTIONS = {"seed", "parameters", "benchmarks", "morphing", "simulator"}


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def flat(text: str) -> str:
    """The output without rich's line wrapping and table borders."""
    return " ".join(re.sub("[│┃┌┐└┘├┤┬┴┼─━]", " ", text).split())


def info(*args):
    return CliRunner().invoke(app, ["info", *map(str, args)], env={"COLUMNS": "200"})


def config(folder: Path, seed: int = 5) -> RunConfig:
    data = {
        **small_toy_run(seed=seed, n_events=2_000, n_theta0=50),
        "training": {
            "trees": {"method": "bit", "n_trees": 5, "max_depth": 2},
            "net": {"method": "sally", "training_set": "sally", "hidden": [8], "epochs": 1},
            "swapped": {"method": "sally", "hidden": [8], "epochs": 1},
        },
        "inference": {
            "luminosity_ifb": 0.02,
            "scans": [{"parameter": "c", "range": [-0.6, 0.6], "n_points": 11}],
        },
        "output": str(folder),
    }
    return RunConfig.model_validate(data)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    """The checksum disk cache in the test's folder, never in the user's home."""
    monkeypatch.setenv("ASSAY_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """run → train (BIT) → limits → report."""
    folder = tmp_path_factory.mktemp("provenance") / "run"
    os.environ.setdefault("ASSAY_CACHE_DIR", str(folder.parent / "cache"))
    cfg = config(folder)
    run_pipeline(cfg, progress=False)
    rd = RunDir(folder)
    train_model(cfg, "trees", progress=False)  # writes models/trees/provenance.json
    run_limits(cfg, models=["trees"], progress=False)
    with pytest.MonkeyPatch.context() as patch:  # the figures are not what is tested here (and slow)
        patch.setattr("assay.report._write_plots", lambda *_: [])
        write_report(rd.limits.root)
    return cfg, rd


def test_event_store_records_config_version_seed_and_no_inputs(run):
    _, rd = run
    record = prov.read_provenance(rd.events)
    assert record.assay_version == assay.__version__ and record.seed == 5
    assert set(record.config) == EVENT_SECTIONS and record.config["simulator"]["n_events"] == 2_000
    canonical = json.dumps(record.config, sort_keys=True, separators=(",", ":")).encode()
    assert record.config_sha256 == hashlib.sha256(canonical).hexdigest()
    assert record.inputs == {}  # simulated: no input files
    created = datetime.fromisoformat(record.created)
    assert created.tzinfo is not None and abs((datetime.now(timezone.utc) - created).total_seconds()) < 600
    assert record.host and record.command


def test_training_sets_record_the_events_checksum(run):
    cfg, rd = run
    for name in ("sally", "alices"):
        record = prov.read_provenance(rd.training_set(name, "train"))
        assert record.inputs == {str(rd.events.resolve()): sha256(rd.events)}
        assert record.seed == cfg.seed and record.config["sampling"]["sets"][0]["name"] == "sally"
        assert "training" not in record.config and "inference" not in record.config


def test_limits_record_the_full_config_the_events_and_the_models(run):
    cfg, rd = run
    record = prov.read_provenance(rd.limits.root)
    assert (rd.limits.root / "provenance.json").is_file()
    assert record.config == json.loads(json.dumps(cfg.model_dump(mode="json")))
    assert record.inputs[str(rd.events.resolve())] == sha256(rd.events)
    model = rd.model("trees").resolve()
    files = sorted(p for p in model.rglob("*") if p.is_file() and p.name != "provenance.json")
    lines = "".join(f"{p.relative_to(model).as_posix()} {sha256(p)}\n" for p in files)
    assert record.inputs[str(model)] == hashlib.sha256(lines.encode()).hexdigest()


def test_report_records_its_inputs_and_a_rerun_rewrites_nothing(run, monkeypatch):
    _, rd = run
    monkeypatch.setattr("assay.report._write_plots", lambda *_: [])
    page = rd.limits.report
    record = prov.read_provenance(page)
    assert record.inputs == {str(p.resolve()): sha256(p) for p in (rd.limits.results, rd.limits.summary)}
    assert record.config_sha256 == prov.read_provenance(rd.limits.root).config_sha256  # from limits/
    text = page.read_text()
    assert "<h2>Provenance</h2>" in text and record.config_sha256 in text
    before = page.stat().st_mtime_ns
    write_report(rd.limits.root)
    assert page.stat().st_mtime_ns == before  # the same record, so the same page: not rewritten


def test_model_folder_records_its_inputs(run):
    cfg, rd = run
    record = prov.read_provenance(rd.model("trees"))
    assert record.inputs == {str(p.resolve()): sha256(p) for p in (rd.events, rd.split, rd.basis)}
    assert record.config_sha256 == prov.config_sha256(cfg.model_dump(mode="json"))
    load_estimator(rd.model("trees"))  # provenance.json does not disturb loading


def test_neural_model_records_its_training_sets(run):
    cfg, rd = run
    train_model(cfg, "net", progress=False)
    record = prov.read_provenance(rd.model("net"))
    sets = [rd.training_set("sally", p) for p in ("train", "validation")]
    assert record.inputs == {str(p.resolve()): sha256(p) for p in sets}
    load_estimator(rd.model("net"))


def test_checksums_follow_the_inputs(run, tmp_path):
    """Other events → other checksums in the training sets; a model file changed → another folder hash."""
    _, rd = run
    other = RunDir(tmp_path / "other")
    run_pipeline(config(other.root, seed=6), progress=False)
    record = prov.read_provenance(other.training_set("sally", "train"))
    assert record.inputs == {str(other.events.resolve()): sha256(other.events)} != {
        str(rd.events.resolve()): sha256(rd.events)
    }
    model = tmp_path / "model"
    shutil.copytree(rd.model("trees"), model)
    first = prov.folder_sha256(model)
    (model / "provenance.json").write_text("{}")  # not part of the model
    assert prov.folder_sha256(model) == first
    meta = json.loads((model / "estimator.json").read_text())
    meta["params"]["n_trees"] = 6
    (model / "estimator.json").write_text(json.dumps(meta))
    assert prov.folder_sha256(model) != first


def test_file_checksum_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    path.write_bytes(b"a" * 1000)
    first = prov.file_sha256(path)
    assert first == hashlib.sha256(b"a" * 1000).hexdigest()
    stat = path.stat()
    path.write_bytes(b"b" * 1000)  # same size; put the old mtime back: the cache cannot tell
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert prov.file_sha256(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime: hashed again
    assert prov.file_sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_large_files_keep_their_checksum_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(prov, "_DISK_CACHE_BYTES", 10)
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 100)
    digest = prov.file_sha256(path)
    cache = json.loads((tmp_path / "cache" / "checksums.json").read_text())
    assert list(cache.values()) == [digest]
    monkeypatch.setattr(prov, "_memory_cache", {})  # a new process: only the disk cache is left

    def unread(*_):
        raise AssertionError("hashed again")

    monkeypatch.setattr(prov.hashlib, "file_digest", unread)
    assert prov.file_sha256(path) == digest


def test_missing_input_is_one_error_naming_it(tmp_path):
    with pytest.raises(StoreError, match=r"nothing\.h5: cannot record its checksum"):
        prov.make_provenance(inputs=[tmp_path / "nothing.h5"])


def _wh_events(n: int, rng: np.random.Generator) -> WHEvents:
    """Random u d̄ → W⁺ h → e⁺ ν b b̄ momenta (not from the matrix element: the importer only reads them)."""

    def momenta(mass: float = 0.0) -> np.ndarray:
        p = rng.normal(0.0, 50.0, (n, 3))
        return np.column_stack([np.sqrt((p**2).sum(axis=1) + mass**2), p])

    lepton, neutrino, b, bbar = momenta(), momenta(), momenta(4.7), momenta(4.7)
    total = lepton + neutrino + b + bbar
    x1, x2 = (total[:, 0] + total[:, 3]) / 13000, (total[:, 0] - total[:, 3]) / 13000
    zero = np.zeros(n)
    return WHEvents(
        p1=np.column_stack([x1 * 6500, zero, zero, x1 * 6500]),
        p2=np.column_stack([x2 * 6500, zero, zero, -x2 * 6500]),
        id1=np.full(n, 2), id2=np.full(n, -1), lepton=lepton, neutrino=neutrino, b=b, bbar=bbar,
        charge=np.ones(n, dtype=int), lepton_id=np.full(n, -11), x1=x1, x2=x2, scale=np.full(n, 100.0),
        components=np.ones((n, 6)), weights=rng.uniform(0.5, 1.5, (n, 6)),
    )  # fmt: skip


def test_lhe_import_records_the_lhe_files_and_the_config(tmp_path):
    benchmarks = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [-0.5, 0.0], [0.0, -0.5], [0.5, 0.5]])
    names = ["sm", "b1", "b2", "b3", "b4", "b5"]
    rng = np.random.default_rng(4)
    paths = [write_lhe(tmp_path / f"wh{i}.lhe.gz", *wh_to_lhe(_wh_events(20, rng), benchmark_names=names))
             for i in range(2)]  # fmt: skip
    space = ParameterSpace.from_dict(
        [Parameter("cHW", (-1.0, 1.0)), Parameter("cHWtilde", (-1.0, 1.0))],
        {n: {"cHW": t[0], "cHWtilde": t[1]} for n, t in zip(names, benchmarks)},
    )
    morpher = Morpher(morphing_components(2, 2), benchmarks)
    cfg = {"seed": 9, "parameters": space.to_dict()["parameters"], "inference": {"luminosity_ifb": 1}}
    import_lhe(paths, tmp_path / "wh.h5", space, morpher, config=cfg).close()
    record = prov.read_provenance(tmp_path / "wh.h5")
    assert record.inputs == {str(Path(p).resolve()): sha256(p) for p in paths}
    assert set(record.config) == {"seed", "parameters"} and record.seed == 9  # event-shaping sections only


def test_merged_stores_record_their_inputs(run, tmp_path):
    _, rd = run
    copy = tmp_path / "copy.h5"
    shutil.copyfile(rd.events, copy)
    merge_stores([rd.events, copy], tmp_path / "merged.h5", processes=["toy"]).close()
    record = prov.read_provenance(tmp_path / "merged.h5")
    assert record.inputs == {str(rd.events.resolve()): sha256(rd.events), str(copy.resolve()): sha256(copy)}


# ---- assay info -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where, kind, contents",
    [
        (lambda rd: rd.events, "event store", ["events 2,000", "observables (2) x0, x1", "parameters (1) c"]),
        (lambda rd: rd.training_set("alices", "train"), "training set", ["set kind ratio", "samples 2,000"]),
        (lambda rd: rd.model("trees"), "model", ["method BoostedInformationTree", "observables 2 (names"]),
        (lambda rd: rd.limits.root, "limits", ["methods truth, trees, rate", "parameters (1) c"]),
        (lambda rd: rd.limits.results, "limits", ["levels run"]),
        (lambda rd: rd.limits.report, "report", ["title assay limits: run"]),
    ],
)
def test_info_prints_kind_provenance_and_contents(run, where, kind, contents):
    _, rd = run
    path = where(rd)
    result = info(path)
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    record = prov.read_provenance(path.parent if path.name == "results.json" else path)
    assert f": {kind}" in text and f"assay version {assay.__version__}" in text
    assert f"config SHA-256 {record.config_sha256}" in text and f"seed {record.seed}" in text
    for name, digest in record.inputs.items():
        assert f"input {name} {digest}" in text
    for line in contents:
        assert line in text


def test_info_json_is_the_record(run):
    _, rd = run
    result = info(rd.training_set("sally", "train"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == prov.read_provenance(rd.training_set("sally", "train")).to_dict()


def test_info_config_prints_the_recorded_sections(run):
    _, rd = run
    result = info(rd.events, "--config")
    assert result.exit_code == 0, result.output
    assert "n_events: 2000" in result.output and "kind: gaussian_toy" in result.output


def test_outputs_from_before_provenance_are_described_not_refused(run, tmp_path):
    _, rd = run
    old_store = tmp_path / "old.h5"
    with EventStore.create(old_store, observables=["a"], benchmarks=["sm"]) as writer:
        writer.append(np.ones((2, 1)), np.ones((2, 1)))
    old_set = TrainingSet(x=np.ones((3, 1)), observables=("a",), parameters=("c",), kind="plain")
    old_set.save(tmp_path / "old_set.h5")
    shutil.copytree(rd.model("trees"), tmp_path / "old_model")
    (tmp_path / "old_model" / "provenance.json").unlink()
    (tmp_path / "old_limits").mkdir()
    shutil.copyfile(rd.limits.results, tmp_path / "old_limits" / "results.json")
    expected = {
        "old.h5": f"written by assay {assay.__version__} before provenance",
        "old_set.h5": "written by an assay version that did not record itself before provenance",
        "old_model": f"written by assay {assay.__version__} before provenance",
        "old_limits": "before provenance",
    }
    for name, said in expected.items():
        result = info(tmp_path / name)
        assert result.exit_code == 0, result.output
        assert "no provenance recorded" in flat(result.output) and said in flat(result.output)
        assert info(tmp_path / name, "--json").output.strip() == "null"


def test_info_on_a_run_folder_lists_its_outputs(run):
    _, rd = run
    result = info(rd.root)
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for path in (rd.events, rd.training_set("sally", "train"), rd.model("trees"), rd.limits.root):
        record = prov.read_provenance(path)
        assert f"{path.relative_to(rd.root)} " in text
        assert f"{record.created} {record.config_sha256[:12]}" in text
    assert "limits/report.html report" in text
    records = json.loads(info(rd.root, "--json").output)
    assert records[str(rd.events)] == prov.read_provenance(rd.events).to_dict()
    listed = (rd.model("trees"), rd.limits.root, rd.training_set("alices", "validation"))
    assert {str(p) for p in listed} <= set(records)
    with pytest.raises(StoreError, match="a run folder; ask about one of its outputs"):
        output_info(rd.root)


def test_info_on_something_else_is_one_clear_error(run, tmp_path):
    _, rd = run
    (tmp_path / "notes.txt").write_text("hello")
    result = info(tmp_path / "notes.txt")
    assert result.exit_code == 2 and "not an assay output; expected an event store" in flat(result.output)
    result = info(rd.split)
    assert result.exit_code == 2 and "format 'assay.EventSplit'" in flat(result.output)


def test_a_malformed_record_names_the_file_and_field(tmp_path):
    path = tmp_path / "bad.h5"
    with EventStore.create(path, observables=["a"], benchmarks=["sm"]) as writer:
        writer.append(np.ones((2, 1)), np.ones((2, 1)))
    with h5py.File(path, "r+") as f:
        f.attrs["provenance"] = json.dumps({"assay_version": "1", "seed": "five"})
    with pytest.raises(StoreError, match=r"bad\.h5: provenance: missing field 'config_sha256'"):
        prov.read_provenance(path)
    result = info(path)
    assert result.exit_code == 2 and "missing field 'config_sha256'" in flat(result.output)


# ---- refusal ----------------------------------------------------------------------------------------


def test_limits_refuse_a_model_trained_on_other_observables(run):
    """A SALLY fitted on the run's own samples with the columns named in the other order."""
    cfg, rd = run
    data = TrainingSet.load(rd.training_set("sally", "train"))
    rows = slice(0, 200)
    swapped = TrainingSet(x=data.x[rows, ::-1].copy(), observables=("x1", "x0"), parameters=data.parameters,
                          kind=data.kind, theta0=data.theta0[rows], t0=data.t0[rows])  # fmt: skip
    SALLY(hidden=(8,), epochs=1, progress=False).fit(swapped).save(rd.model("swapped"))
    try:
        with pytest.raises(PredictionError) as err:
            run_limits(cfg, models=["swapped"], progress=False)
    finally:
        shutil.rmtree(rd.model("swapped"))
    message = str(err.value)
    assert "model 'swapped' was trained on observables ['x1', 'x0']" in message
    assert f"but {rd.events} has ['x0', 'x1']" in message and "names and order must match" in message


def test_other_parameters_are_refused_and_bit_is_checked_by_count(run):
    _, rd = run
    inputs = ModelInputs(2, 1, ("x0", "x1"), ("c",))
    check_model_inputs("m", inputs, ["x0", "x1"], ["c"], where="events.h5")  # the same: accepted
    with pytest.raises(PredictionError, match=r"parameters \['c'\] but events.h5 has \['cHW'\]"):
        check_model_inputs("m", inputs, ["x0", "x1"], ["cHW"], where="events.h5")
    bit = load_estimator(rd.model("trees"))
    assert model_inputs(bit) == ModelInputs(2, 1)
    check_model_inputs("trees", bit, ["a", "b"], ["d"], where="events.h5")  # names unknown: counts agree
    with pytest.raises(PredictionError, match=r"trained on observables 2 observables \(names not recorded\)"):
        check_model_inputs("trees", bit, ["a", "b", "c"], ["d"], where="events.h5")


def test_observed_weights_serve_the_truth_only_in_the_runs_parameter_space(run, tmp_path):
    """--data with the run's benchmark names: its weights are kept for the truth where its parameters
    are the run's, dropped where the same names mean other points."""
    cfg, rd = run
    sample = asimov_sample(cfg, rd)
    with EventStore(rd.events) as store:
        chunk, meta = store.read(0, 100), {"parameters": store.parameters, "morphing": store.morphing}
        names = {key: getattr(store, key) for key in ("observables", "benchmarks", "processes")}
    renamed = json.loads(json.dumps(meta["parameters"]).replace('"c"', '"d"'))
    for label, parameters, kept in (("same", meta["parameters"], True), ("renamed", renamed, False)):
        path = tmp_path / f"{label}.h5"
        with EventStore.create(path, **names, parameters=parameters, morphing=meta["morphing"]) as writer:
            writer.append(chunk.x, chunk.weights)
        data = observed_dataset(path, cfg, rd, sample)
        assert (data.benchmark_weights is not None) == kept, label


def test_a_record_survives_an_html_page_whatever_its_strings_hold(tmp_path):
    record = prov.make_provenance(config={"note": "a --> b <!-- c -- d", "seed": 1, "range": [-1, 1]})
    page = tmp_path / "report.html"
    page.write_text(f"<html><body><p>x</p>\n{prov.html_comment(record)}\n<p>after --></p></body></html>")
    assert "-->" not in prov.html_comment(record)[:-3] and prov.read_provenance(page) == record
    assert prov.read_provenance(tmp_path / "report.html").config["note"] == "a --> b <!-- c -- d"


def test_import_lhe_command_records_the_config(tmp_path):
    import yaml

    benchmarks = {"sm": [0.0, 0.0], "b1": [0.5, 0.0], "b2": [0.0, 0.5], "b3": [-0.5, 0.0], "b4": [0.0, -0.5],
                  "b5": [0.5, 0.5]}  # fmt: skip
    path = write_lhe(tmp_path / "wh.lhe.gz", *wh_to_lhe(_wh_events(20, np.random.default_rng(5)),
                                                         benchmark_names=list(benchmarks)))  # fmt: skip
    config = {
        "seed": 11,
        "parameters": [{"name": "cHW", "range": [-1, 1]}, {"name": "cHWtilde", "range": [-1, 1]}],
        "benchmarks": [{"name": n, "theta": {"cHW": t[0], "cHWtilde": t[1]}} for n, t in benchmarks.items()],
        "morphing": {"optimize_basis": False},
        "simulator": {"kind": "events", "path": "wh.h5"},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    command = ["import-lhe", str(tmp_path / "run.yaml"), str(path), "-o", str(tmp_path / "wh.h5")]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    record = prov.read_provenance(tmp_path / "wh.h5")
    assert record.seed == 11 and record.config["parameters"][0]["name"] == "cHW"
    assert record.inputs == {str(Path(path).resolve()): sha256(path)}
