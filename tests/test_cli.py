"""Tests of the ``assay`` command line through typer's CLI runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from assay import __version__
from assay.cli import app
from assay.store import EventStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "toy.yaml"
COMMANDS = {
    "version", "demo", "generate", "run", "inspect", "basis", "import-lhe", "train", "limits", "coverage",
    "diagnostics", "report", "import-madminer", "export", "info", "cluster-script",
}  # fmt: skip

SMALL = {
    "seed": 11,
    "parameters": [{"name": "cHWW", "range": [-1.0, 1.0]}, {"name": "cWWW", "range": [-1.0, 1.0]}],
    "morphing": {"max_power": 2, "n_basis_trials": 5},
    "simulator": {"kind": "gaussian_toy", "n_events": 3_000, "batch_size": 1_000},
    "sampling": {"sets": [{"name": "sally", "kind": "local_score", "n_samples": 200}]},
}


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """The output with rich's line wrapping undone: runs of whitespace become one space, and a
    path wrapped inside an error box ("…/nowh │ │ ere.yaml") is joined again."""
    return " ".join(text.replace(" │\n│ ", "").split())


@pytest.fixture(scope="module")
def small_run(runner, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-run")
    config = folder / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    result = invoke(runner, "run", config, "-o", folder / "out", "-q")
    return folder, result


def test_every_command_is_registered():
    assert set(typer.main.get_command(app).commands) == COMMANDS


def test_app_help(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "Usage: assay" in result.output
    for command in COMMANDS:
        assert command in result.output


def test_no_arguments_shows_help(runner):
    result = invoke(runner)
    assert "Usage: assay" in result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(runner, command):
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: assay {command}" in result.output


def test_version(runner):
    result = invoke(runner, "version")
    assert result.exit_code == 0
    assert result.output.strip() == f"assay {__version__}"


def test_toy_demo(runner, tmp_path):
    out = tmp_path / "demo"
    result = invoke(runner, "demo", "--toy", "-o", out, "--n-events", "20000", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_events"] == 20_000
    assert summary["checks"]["morphing_closure_max_rel"] < 1e-9
    text = flat(result.output)
    assert "morphing_closure_max_rel" in text and "summary written to" in text


@pytest.mark.parametrize(("flag", "levels"), [((), ("parton", "detector")),
                                             (("--backgrounds",), ("parton", "detector", "detector_sb"))])
def test_demo_levels(runner, tmp_path, monkeypatch, flag, levels):
    """`assay demo` runs parton and detector level; `--backgrounds` adds detector_sb (S+B)."""
    import assay.demo

    asked = []

    def stand_in(output, *, size, progress, levels):
        asked.append(levels)
        raise typer.Exit(0)

    monkeypatch.setattr(assay.demo, "run_demo", stand_in)
    result = invoke(runner, "demo", "-o", tmp_path / "demo", "-q", *flag)
    assert result.exit_code == 0, result.output
    assert asked == [levels]


def test_run_writes_the_outputs(small_run):
    folder, result = small_run
    assert result.exit_code == 0, result.output
    out = folder / "out"
    for name in ("events.h5", "basis.json", "split.h5", "sets/sally_train.h5", "sets/sally_validation.h5"):
        assert (out / name).is_file(), name
    with EventStore(out / "events.h5") as store:
        assert store.n_events == 3_000
    assert "training set sally_train" in result.output  # the summary table (paths may be cut)
    last = flat(result.output.strip().splitlines()[-1])
    assert last.startswith(f"run written to {out}: events.h5, split.h5 and 2 training set(s)"), last


def test_every_writing_command_ends_naming_what_it_wrote(runner, small_run):
    """generate, train, limits, report: the last line names the file or folder written."""
    folder, _ = small_run
    config = folder / "small.yaml"
    scans = [{"parameter": "cHWW", "range": [-1, 1], "n_points": 5}]
    data = {**SMALL, "training": {"s": {"method": "sally", "hidden": [4], "epochs": 1}},
            "inference": {"luminosity_ifb": 1, "scans": scans}}  # fmt: skip
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    out = folder / "out"
    expected = {
        ("generate", config, "-o", folder / "gen", "-q"): f"{folder / 'gen' / 'events.h5'}: 3,000 events",
        ("train", config, "-o", out, "-q"): f"saved to {out / 'models' / 's'}",
        ("limits", config, "-o", out, "-q", "--no-report"): f"limits written to {out / 'limits'}",
        ("report", out): f"report written to {out / 'limits' / 'report.html'}",
    }  # fmt: skip
    for args, last in expected.items():
        result = invoke(runner, *args)
        assert result.exit_code == 0, result.output
        assert flat(result.output.strip().splitlines()[-1]).startswith(last), (args[0], result.output[-300:])


def test_run_with_bad_config_names_the_key_path(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path keeps the message on few lines
    bad = json.loads(json.dumps(SMALL))
    bad["simulator"]["n_events"] = "ten"
    Path("bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    result = invoke(runner, "run", "bad.yaml", "-q")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "error:" in text
    assert re.search(r"bad\.yaml:\d+: simulator\.n_events:", text), text
    assert "Traceback" not in result.output
    assert not Path("assay-run").exists()  # nothing was written


def test_run_missing_config_file(runner, tmp_path):
    result = invoke(runner, "run", tmp_path / "nowhere.yaml")
    assert result.exit_code == 2
    assert "nowhere.yaml" in flat(result.output).replace(" ", "")


def test_inspect_lists_the_benchmarks(runner, small_run):
    folder, _ = small_run
    events = folder / "out" / "events.h5"
    with EventStore(events) as store:
        names, n_obs = store.benchmarks, store.n_obs
    result = invoke(runner, "inspect", events)
    assert result.exit_code == 0, result.output
    assert len(names) == 6
    for name in names:
        assert re.search(rf"\b{name}\b", result.output), name
    text = flat(result.output)
    assert "3,000 events" in text and f"observables ({n_obs})" in text


def test_inspect_rejects_a_text_file(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("not an event file\n")
    result = invoke(runner, "inspect", "notes.txt")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "error:" in text and "notes.txt" in text and "HDF5" in text
    assert "Traceback" not in result.output


def test_basis_of_the_example(runner):
    result = invoke(runner, "basis", EXAMPLE)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if re.match(r"^│ (sm|morph_\d+) ", line)]
    assert [row.split()[1] for row in rows] == ["sm", *(f"morph_{i}" for i in range(1, 6))]
    assert "6 components" in flat(result.output)


def test_basis_with_bad_config(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = json.loads(json.dumps(SMALL))
    bad["parameters"][1]["name"] = "cHWW"
    Path("dup.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    result = invoke(runner, "basis", "dup.yaml")
    assert result.exit_code == 2
    text = flat(result.output)
    assert "error:" in text and "dup.yaml" in text and "parameters: parameter names must be unique" in text


def test_ctrl_c_is_one_line_and_exit_code_130(runner, tmp_path, monkeypatch):
    """Ctrl-C during a command: one line saying how to resume, exit code 130, no traceback."""
    import assay.pipeline

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(assay.pipeline, "run_pipeline", interrupted)
    result = invoke(runner, "run", str(EXAMPLE), "-o", str(tmp_path), "-q")
    assert result.exit_code == 130, result.output
    assert "interrupted; rerun the same command to resume" in result.output
    assert "Traceback" not in result.output
