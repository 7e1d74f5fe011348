"""The documentation runs: every ```bash and ```python block of README.md and docs/*.md (issue 19).

How the blocks run
    One test per Markdown file. Its blocks run in the order they appear, in one fresh temporary
    folder that holds ``examples/`` (a copy of the example configs, shrunk as below); ```python
    blocks of a file share one namespace (``exec``), ```bash blocks run with ``bash -euo pipefail``
    and the test's ``python``/``assay`` first on PATH. A bash block made only of ``assay ...``
    commands (one per line or joined by ``&&``, comments allowed) runs those commands in this
    process through the CLI's app (typer's CliRunner): the same commands, without a Python start-up
    of ~2 s each. A block fails the test with its file, line and output.

What is not run
    ```console, ```text, ```yaml (and any other language) blocks, and a block whose fence is preceded
    immediately by the line ``<!-- docs-test: skip -->`` (cluster submission, hours-long runs,
    sample output). Put the reason in the text or a comment above the marker.

What runs only with ``-m slow``
    A block preceded immediately by ``<!-- docs-test: slow -->`` runs in the file's slow test alone
    (``test_doc_blocks_run_slow``, every runnable block of the file in order), not in the default
    suite: for blocks that cost more than ~20 s even at the small scale below (the off-shell search
    with nuisances and its coverage toys).

At a small scale, without changing what the reader runs
    1. ``examples/*.yaml`` in the temporary folder are the shipped configs with every size capped
       (``SIZE_CAPS``: events, training-set samples, epochs, trees, ensemble members, scan and grid
       points, test events), so ``assay run examples/toy.yaml`` is the reader's command on a
       smaller run. A config a doc writes itself is not shrunk: write it small.
    2. Commands are rewritten by ``REWRITES`` (regular expressions, applied to bash blocks only):
       ``pip install ...`` is dropped (the package is installed), ``assay demo`` gains
       ``--scale 0.01 --quiet`` and toy counts (``--toys``, ``--neyman``) are set to 4.
    docs/index.md ("Docs as tests") says the same for writers of documentation.

Measured: the whole file (default suite) took 65 s on the shared 2-core machine at load 2.7 (74 s of
CPU): README.md 18 s, docs/tutorial.md 15 s, docs/index.md 13 s, docs/results.md 8 s, the other pages
11 s together. The slow test (README's off-shell search with nuisances) takes minutes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assay" / "examples"
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SKIP_MARKER = "<!-- docs-test: skip -->"
SLOW_MARKER = "<!-- docs-test: slow -->"
RUN_LANGUAGES = ("bash", "python")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")

# key → largest value kept in the copied example configs; ``grids`` and ``scans`` are the inference
# section's lists (their n_points mean a 2D side and a 1D count)
SIZE_CAPS: dict[str, int] = {
    "n_events": 10_000,
    "n_samples": 2_000,
    "n_theta0": 100,
    "epochs": 2,
    "n_trees": 10,
    "n_ensemble": 2,
    "max_events": 2_000,
}
POINT_CAPS = {"scans": 11, "grids": 5}

# (pattern, replacement) applied in order to each bash block
REWRITES: list[tuple[str, str]] = [
    (r"pip install [^&;\n]*(&&\s*)?", ""),  # the package under test is installed
    (r"\bassay demo\b", "assay demo --scale 0.01 --quiet"),  # 0.01: the smallest scale (~35 s)
    (r"(--toys|--neyman)(\s+|=)\d+", r"\1\g<2>4"),
]


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, first line (1-based, of the fence) and code."""

    lang: str
    line: int
    code: str
    skipped: bool
    slow: bool = False


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order (``skipped`` when after the skip marker)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        ticks, start = match["ticks"], i
        marker = lines[i - 1].strip() if i > 0 else ""
        body, i = [], i + 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(match["indent"]):] if lines[i].startswith(match["indent"]) else lines[i])
            i += 1
        code = "\n".join(body) + "\n"
        lang = match["lang"].lower()
        blocks.append(Block(lang, start + 1, code, marker == SKIP_MARKER, marker == SLOW_MARKER))
        i += 1
    return blocks


def runnable(blocks: list[Block], *, slow: bool = False) -> list[Block]:
    """The blocks a test runs: bash and python, not skipped; the slow-marked ones only if ``slow``."""
    return [b for b in blocks if b.lang in RUN_LANGUAGES and not b.skipped and (slow or not b.slow)]


def rewrite(command: str) -> str:
    """A bash block as the test runs it (``REWRITES``)."""
    for pattern, replacement in REWRITES:
        command = re.sub(pattern, replacement, command)
    return command


def shrink(node: object, section: str = "") -> object:
    """A config's YAML tree with every size capped (``SIZE_CAPS``, ``POINT_CAPS``)."""
    if isinstance(node, list):
        return [shrink(item, section) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        cap = POINT_CAPS.get(section) if key == "n_points" else SIZE_CAPS.get(key)
        if cap is not None and isinstance(value, int) and not isinstance(value, bool):
            out[key] = min(value, cap)
        else:
            out[key] = shrink(value, key if key in POINT_CAPS else section)
    return out


def copy_examples(folder: Path) -> None:
    """``folder/examples``: the example configs, shrunk; other files copied as they are."""
    target = folder / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in target.glob("*.yaml"):
        path.write_text(yaml.safe_dump(shrink(yaml.safe_load(path.read_text())), sort_keys=False))


def assay_commands(command: str) -> list[list[str]] | None:
    """A bash block as the argument lists of its ``assay`` commands; None if it holds anything else."""
    commands: list[list[str]] = []
    for line in command.splitlines():
        words = shlex.split(line, comments=True)
        if any(set(w) & set("|;<>$`*?&") and w != "&&" for w in words):
            return None  # pipes, redirections, variables, globs: a job for bash
        starts = [0] + [i + 1 for i, w in enumerate(words) if w == "&&"]
        ends = [i for i, w in enumerate(words) if w == "&&"] + [len(words)]
        for part in (words[a:b] for a, b in zip(starts, ends)) if words else ():
            if not part or part[0] != "assay":
                return None
            commands.append(part[1:])
    return commands


def run_assay_in_process(commands: list[list[str]], where: str) -> None:
    from typer.testing import CliRunner

    from assay.cli import app

    for args in commands:
        result = CliRunner().invoke(app, args)
        if result.exit_code != 0:
            detail = "".join(traceback.format_exception(result.exception)) if result.exception else ""
            pytest.fail(f"{where}: `assay {shlex.join(args)}` failed (exit {result.exit_code}):\n"
                        f"{result.output[-4000:]}\n{detail[-3000:]}")  # fmt: skip


def run_bash(block: Block, where: str, cwd: Path) -> None:
    command = rewrite(block.code)
    commands = assay_commands(command)
    if commands is not None:
        run_assay_in_process(commands, where)
        return
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-4000:]
        pytest.fail(f"{where}: bash block failed (exit {proc.returncode}):\n{command}\n--- output ---\n"
                    f"{output}")  # fmt: skip


def run_python(block: Block, where: str, namespace: dict) -> None:
    code = compile(block.code, where, "exec")
    try:
        exec(code, namespace)
    except Exception as exc:  # the doc's error, with the block's location in the traceback
        pytest.fail(f"{where}: python block raised {type(exc).__name__}: {exc}\n{block.code}")


def run_doc(doc: Path, blocks: list[Block], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``blocks`` of ``doc`` in order in ``tmp_path`` (with the shrunk ``examples/``)."""
    if not blocks:
        pytest.skip(f"{doc.name}: no runnable blocks")
    copy_examples(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:
        where = f"{doc.relative_to(ROOT)}:{block.line}"
        if block.lang == "bash":
            run_bash(block, where, tmp_path)
        else:
            run_python(block, where, namespace)
    check = OUTCOMES.get(str(doc.relative_to(ROOT)))
    if check is not None:
        check(tmp_path)


def tutorial_outcome(folder: Path) -> None:
    """docs/tutorial.md went LHE → import → run → train → limits → report: both models' intervals closed."""
    from assay.results import Results

    limits = folder / "runs" / "tutorial" / "limits"
    assert (limits / "report.html").is_file()
    level = Results.from_json(limits / "results.json").levels["tutorial"]
    assert level.data == "asimov" and "truth" not in level.intervals  # LHE events carry no dσ polynomial
    for method in ("sally", "alices", "hist_ql_cos_delta_plus", "rate"):
        for key in ("cHW_68", "cHWtilde_68"):
            lo, hi = level.intervals[method][key]
            assert lo is not None and hi is not None and lo < 0 < hi, (method, key, lo, hi)


def readme_outcome(folder: Path) -> None:
    """The README quickstart: every toy model scanned, the report written."""
    summary = json.loads((folder / "runs" / "toy" / "limits" / "summary.json").read_text())
    assert (folder / "runs" / "toy" / "limits" / "report.html").is_file()
    assert {"truth", "alices", "hist_x0", "rate"} <= set(summary["toy"])  # the last run: models=["alices"]
    assert summary["toy"]["alices"]["theta_0_68"][0] < 0 < summary["toy"]["alices"]["theta_0_68"][1]


# what a page's run must leave behind, beyond every block succeeding
OUTCOMES = {"docs/tutorial.md": tutorial_outcome, "README.md": readme_outcome}


DOC_IDS = {"ids": lambda p: str(p.relative_to(ROOT))}


@pytest.mark.parametrize("doc", DOC_FILES, **DOC_IDS)
def test_doc_blocks_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_doc(doc, runnable(parse_blocks(doc.read_text())), tmp_path, monkeypatch)


SLOW_DOCS = [doc for doc in DOC_FILES if any(b.slow for b in parse_blocks(doc.read_text()))]


@pytest.mark.slow
@pytest.mark.parametrize("doc", SLOW_DOCS, **DOC_IDS)
def test_doc_blocks_run_slow(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every runnable block, the slow-marked ones included, in order."""
    run_doc(doc, runnable(parse_blocks(doc.read_text()), slow=True), tmp_path, monkeypatch)


# The harness itself: the parser, the skip marker, the rewrites and the shrinking.


def test_parser_finds_languages_lines_and_the_skip_marker() -> None:
    text = ("# t\n```bash\necho a\n```\n\n<!-- docs-test: skip -->\n```python\nx = 1\n```\n"
            "```console\n$ ls\n```\n<!-- docs-test: slow -->\n```python\ny = 2\n```\n")
    blocks = parse_blocks(text)
    assert [(b.lang, b.line, b.skipped, b.slow) for b in blocks] == [
        ("bash", 2, False, False), ("python", 7, True, False), ("console", 10, False, False),
        ("python", 14, False, True)]  # fmt: skip
    assert blocks[0].code == "echo a\n"
    assert [b.lang for b in runnable(blocks)] == ["bash"]
    assert [b.line for b in runnable(blocks, slow=True)] == [2, 14]


def test_rewrites_drop_installs_and_shrink_heavy_commands() -> None:
    assert rewrite("pip install torch==2.13.0 && pip install -e . && assay demo\n") == (
        "assay demo --scale 0.01 --quiet\n"
    )
    command = "assay coverage c.yaml --mu 1 --toys 200 --neyman 100"
    assert rewrite(command) == "assay coverage c.yaml --mu 1 --toys 4 --neyman 4"


def test_blocks_of_assay_commands_run_in_process_and_others_in_bash() -> None:
    block = "assay run examples/toy.yaml -q && assay train examples/toy.yaml  # c\nassay report runs/toy"
    assert assay_commands(block) == [["run", "examples/toy.yaml", "-q"], ["train", "examples/toy.yaml"],
                                     ["report", "runs/toy"]]  # fmt: skip
    assert assay_commands("assay limits c.yaml --theta 'a=1'\n") == [["limits", "c.yaml", "--theta", "a=1"]]
    for other in ("cp a b\n", "assay run c.yaml | tee log\n", "assay inspect runs/*/events.h5\n",
                  "assay run c.yaml; ls\n", "X=1 assay run c.yaml\n"):  # fmt: skip
        assert assay_commands(other) is None, other


def test_shrink_caps_sizes_and_keeps_everything_else() -> None:
    config = {"simulator": {"kind": "wh", "n_events": 400_000, "batch_size": 50_000},
              "training": {"a": {"epochs": 50, "hidden": [100, 100], "n_ensemble": 5}},
              "inference": {"scans": [{"n_points": 121}], "grids": [{"n_points": 35}], "lumi": 3}}
    small = shrink(config)
    assert small["simulator"] == {"kind": "wh", "n_events": 10_000, "batch_size": 50_000}
    assert small["training"]["a"] == {"epochs": 2, "hidden": [100, 100], "n_ensemble": 2}
    assert small["inference"] == {"scans": [{"n_points": 11}], "grids": [{"n_points": 5}], "lumi": 3}


def test_benchmarks_write_tracked_results_only_with_record(tmp_path: Path, monkeypatch) -> None:
    """docs/index.md#benchmarks: a benchmark run writes ./benchmark-results/, --record the tracked file."""
    import argparse

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.chdir(tmp_path)
    import _report

    parser = argparse.ArgumentParser()
    _report.add_output_arguments(parser, "x.json")
    assert _report.output_path(parser.parse_args([]), "x.json") == Path("benchmark-results/x.json")
    assert _report.output_path(parser.parse_args(["--record"]), "x.json") == _report.RESULTS / "x.json"
    assert _report.output_path(parser.parse_args(["--output", "o.json"]), "x.json") == Path("o.json")
    # a script passing the tracked path without --record (the old API) is redirected
    written = _report.write_results({"t_s": 1.5}, _report.RESULTS / "never_written.json")
    assert written == Path("benchmark-results/never_written.json")
    assert json.loads((tmp_path / written).read_text()) == {"t_s": 1.5}
    assert not (_report.RESULTS / "never_written.json").exists()
