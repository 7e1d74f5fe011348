"""``assay import-madminer``: MadMiner HDF5 files (written here with h5py in MadMiner's layout) into an
EventStore: the same weights, morphing and observables as the native store of the same events, the same
SALLY score, MadMiner's nuisance factors as the events' variations, and one named error per bad input."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from assay.cli import app
from assay.estimators.score import SALLY
from assay.exceptions import ConfigError, MorphingError, StoreError
from assay.io.madminer import import_madminer
from assay.io.madminer_layout import MadMinerFormatError
from assay.morphing import Morpher, morphing_components
from assay.parameters import Parameter, ParameterSpace
from assay.provenance import read_provenance
from assay.sampling import EventSource, local_score_training_set
from assay.simulators.toys import GaussianToy
from assay.store import EventStore

NAMES = ["theta_0", "theta_1"]
RANGES = [[-1.0, 1.0], [-0.8, 0.8]]
BENCHMARKS = {
    "sm": (0.0, 0.0),
    "b1": (0.7, 0.0),
    "b2": (0.0, 0.6),
    "b3": (-0.6, -0.5),
    "b4": (0.5, 0.5),
    "b5": (-0.7, 0.4),
}
COMPONENTS = morphing_components(2, 2)  # 6 monomials up to total power 2
N_SIGNAL, N_BACKGROUND = 512, 256  # two samples of 512 (sampling factor 1/2, exact in binary) + background


@pytest.fixture(scope="module")
def events() -> dict[str, np.ndarray]:
    return make_events()


def make_events() -> dict[str, np.ndarray]:
    """Toy events: 512 generated at sm, 512 at b2 (weights Σ = σ over both), 256 background; shuffled."""
    rng = np.random.default_rng(3)
    thetas = np.array(list(BENCHMARKS.values()))
    toy = GaussianToy.default(n_params=2)
    ev = toy.simulate([N_SIGNAL, N_SIGNAL], np.array([thetas[0], thetas[2]]), thetas, rng)
    x_bkg = rng.normal(0.0, 2.0, (N_BACKGROUND, 2))
    w_bkg = np.full((N_BACKGROUND, len(thetas)), 0.2 / N_BACKGROUND)
    order = rng.permutation(2 * N_SIGNAL + N_BACKGROUND)
    ids = np.concatenate([np.where(ev.generator == 0, 0, 2), np.full(N_BACKGROUND, -1)])[order]
    return {
        "x": np.vstack([ev.x, x_bkg])[order],
        "weights": np.vstack([ev.weights, w_bkg])[order],
        "ids": ids,
    }


def _strings(values: list[str]) -> list[bytes]:
    return [v.encode("ascii") for v in values]  # MadMiner's _encode_strings


def write_madminer(path: Path, events: dict[str, np.ndarray], *, legacy: bool = False) -> Path:
    """A MadMiner file as madminer/utils/interfaces/hdf5.py writes it (LHEReader.save: settings, nuisance
    setup, events; each sample's weights normalised to σ, i.e. the native weights / (N_b / N_signal)).

    Nuisance parameters: ``scale`` (benchmarks scale_up at ν = +1 and scale_down at ν = −1) and ``pdf``
    (pdf_up only); weights at the reference ``sm``'s θ. ``legacy``: the names of MadMiner < 0.9
    (``parameters/ranges``, ``sample_summary/signal_events_per_benchmark``, "" for no benchmark).
    """
    x, w, ids = events["x"], events["weights"], events["ids"]
    physics = w / np.where(ids >= 0, N_SIGNAL / (2 * N_SIGNAL), 1.0)[:, None]
    ref = physics[:, 0]
    up, down, pdf = (ref * np.exp(s * np.tanh(x[:, 0])) for s in (0.1, -0.08, 0.05))
    thetas = np.array(list(BENCHMARKS.values()))
    phi = np.prod(thetas[:, None, :] ** COMPONENTS[None], axis=-1)
    empty = "" if legacy else "None"
    with h5py.File(path, "w") as f:
        f.create_dataset("parameters/names", data=_strings(NAMES), dtype="S256")
        f.create_dataset("parameters/lha_blocks", data=_strings(["dim6", "dim6"]), dtype="S256")
        f.create_dataset("parameters/lha_ids", data=[1, 2])
        f.create_dataset("parameters/max_power", data=[2, 2])
        f.create_dataset("parameters/ranges" if legacy else "parameters/val_ranges", data=RANGES)
        f.create_dataset("parameters/transforms", data=_strings(["None", "None"]), dtype="S256")
        names = [*BENCHMARKS, "pdf_up", "scale_down", "scale_up", "unused"]
        f.create_dataset("benchmarks/names", data=_strings(names), dtype="S256")
        f.create_dataset("benchmarks/values", data=np.vstack([thetas, np.zeros((4, 2))]))
        f.create_dataset("benchmarks/is_nuisance", data=[0] * 6 + [1] * 4)
        f.create_dataset("benchmarks/is_reference", data=[1] + [0] * 9)
        f.create_dataset("morphing/components", data=COMPONENTS.astype(int))
        f.create_dataset("morphing/morphing_matrix", data=np.linalg.inv(phi))  # (n_components, n_benchmarks)
        f.create_dataset("observables/names", data=_strings(["x0", "x1"]), dtype="S256")
        f.create_dataset("observables/definitions", data=_strings(["x[0]", "x[1]"]), dtype="S256")
        f.create_dataset("nuisance_parameters/names", data=_strings(["scale", "pdf"]), dtype="S256")
        f.create_dataset("nuisance_parameters/systematics", data=_strings(["scale", "pdf"]), dtype="S256")
        f.create_dataset(
            "nuisance_parameters/benchmark_positive", data=_strings(["scale_up", "pdf_up"]), dtype="S256"
        )
        f.create_dataset(
            "nuisance_parameters/benchmark_negative", data=_strings(["scale_down", empty]), dtype="S256"
        )
        f.create_dataset("systematics/names", data=_strings(["scale", "pdf"]), dtype="S256")
        f.create_dataset("systematics/types", data=_strings(["scale", "pdf"]), dtype="S256")
        f.create_dataset("systematics/values", data=_strings(["mu", "CT10"]), dtype="S256")
        f.create_dataset("systematics/scales", data=_strings(["None", "None"]), dtype="S256")
        f.create_dataset("samples/observations", data=x)
        f.create_dataset("samples/weights", data=np.column_stack([physics, pdf, down, up, 2 * ref]))
        f.create_dataset("samples/sampling_benchmarks", data=ids)
        counts = [int(np.sum(ids == b)) for b in range(len(thetas))]
        key = "signal_events_per_benchmark" if legacy else "signal_events"
        f.create_dataset(f"sample_summary/{key}", data=counts)
        f.create_dataset("sample_summary/background_events", data=int(np.sum(ids < 0)))
    return path


def native_store(path: Path, events: dict[str, np.ndarray]) -> EventStore:
    """The same events written directly as an assay EventStore (the reference of every comparison)."""
    space = ParameterSpace.from_dict(
        [Parameter(n, tuple(r)) for n, r in zip(NAMES, RANGES)],
        {b: dict(zip(NAMES, t)) for b, t in BENCHMARKS.items()},
    )
    morpher = Morpher(COMPONENTS, space.benchmark_thetas)
    ids = events["ids"]
    with EventStore.create(path, observables=["x0", "x1"], benchmarks=list(BENCHMARKS),
                           processes=["signal", "background"], parameters=space.to_dict(),
                           morphing=morpher.to_dict()) as writer:  # fmt: skip
        writer.append(events["x"], events["weights"], process=(ids < 0).astype(int), benchmark=ids)
    return EventStore(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, events: dict) -> tuple[EventStore, EventStore, Path]:
    folder = tmp_path_factory.mktemp("madminer")
    source = write_madminer(folder / "mm.h5", events)
    return native_store(folder / "native.h5", events), import_madminer(source, folder / "events.h5"), source


def test_import_gives_the_native_weights_morphing_and_observables(stores: tuple) -> None:
    native, imported, source = stores
    assert imported.observables == native.observables == ["x0", "x1"]
    assert imported.benchmarks == native.benchmarks == list(BENCHMARKS)  # nuisance benchmarks are not columns
    assert imported.processes == native.processes
    assert imported.parameters == native.parameters
    assert imported.morphing == native.morphing
    a, b = imported.read(), native.read()
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.weights, b.weights)  # × sampling factor 1/2: exact
    np.testing.assert_array_equal(a.process, b.process)
    np.testing.assert_array_equal(a.benchmark, b.benchmark)
    np.testing.assert_allclose(imported.weights_sum(), native.weights_sum(), rtol=1e-15)
    assert imported.negative_weights is None  # declared only where present
    # components: W_k = Σ_c Φ_kc A_c reproduces every weight
    morpher = Morpher.from_dict(imported.morphing)
    np.testing.assert_allclose(a.extras["components"] @ morpher.matrix.T, a.weights, rtol=1e-10, atol=1e-15)
    record = imported.config["import_madminer"]
    assert record["unused_nuisance_benchmarks"] == ["unused"]
    assert record["sampling_factors"] == [0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0]
    assert record["systematics"][1] == {"name": "pdf", "types": "pdf", "values": "CT10", "scales": "None"}
    assert record["file"] == str(source.resolve())
    assert read_provenance(imported.path).inputs == {str(source.resolve()): record["sha256"]}


def test_nuisance_benchmarks_become_the_events_variations(stores: tuple) -> None:
    """F^± = MadMiner's dσ(x|θ, ν = ±1)/dσ(x|θ, 0): scale has both benchmarks, pdf only ν = +1 (then
    exp(−a) at ν = −1); the same factor on every morphing component; named in config.run.variations."""
    _, imported, _ = stores
    assert imported.config["run"] == {"variations": ["scale", "pdf"]}
    chunk = imported.read()
    t = np.tanh(chunk.x[:, 0])
    factors = chunk.extras["variations"]
    assert factors.shape == (imported.n_events, 2, 2, len(COMPONENTS))
    np.testing.assert_allclose(factors, factors[..., :1].repeat(len(COMPONENTS), -1), rtol=0)
    np.testing.assert_allclose(factors[:, 0, 0, 0], np.exp(0.1 * t), rtol=1e-12)
    np.testing.assert_allclose(factors[:, 0, 1, 0], np.exp(-0.08 * t), rtol=1e-12)
    np.testing.assert_allclose(factors[:, 1, 0, 0], np.exp(0.05 * t), rtol=1e-12)
    np.testing.assert_allclose(factors[:, 1, 1, 0], np.exp(-0.05 * t), rtol=1e-12)


def test_profiled_systematics_read_the_variations_as_madminer_benchmarks(stores: tuple, events: dict) -> None:
    """What ``systematics.nuisances: [{name: scale}, {name: pdf}]`` computes from the imported events (the
    profiled methods' varied benchmark weights, assay.analysis.systematics) is, at the reference benchmark,
    MadMiner's nuisance benchmark weights (scale_up, scale_down, pdf_up), normalised like the weights."""
    from assay.analysis.systematics import component_factors, varied_benchmark_weights
    from assay.config import NuisanceConfig

    _, imported, source = stores
    chunk = imported.read()
    nuisances = [NuisanceConfig(name="scale"), NuisanceConfig(name="pdf")]
    names = imported.config["run"]["variations"]
    components = [str(c) for c in range(len(COMPONENTS))]
    factors = component_factors(nuisances, chunk.extras["variations"], names, components, imported.n_events)
    matrix = Morpher.from_dict(imported.morphing).matrix  # W_k = Σ_c Φ_kc A_c
    varied = varied_benchmark_weights(chunk.extras["components"], factors, matrix)
    with h5py.File(source) as f:
        raw, ids = f["samples/weights"][()], f["samples/sampling_benchmarks"][()]
    scale = np.where(ids >= 0, 0.5, 1.0)[:, None]
    pdf_up, scale_down, scale_up = (raw[:, [6, 7, 8]] * scale).T
    np.testing.assert_allclose(varied[:, 0, 0, 0], scale_up, rtol=1e-10)
    np.testing.assert_allclose(varied[:, 0, 1, 0], scale_down, rtol=1e-10)
    np.testing.assert_allclose(varied[:, 1, 0, 0], pdf_up, rtol=1e-10)
    np.testing.assert_allclose(varied[:, 1, 1, 0], chunk.weights[:, 0] ** 2 / pdf_up, rtol=1e-10)


def test_sally_on_the_import_gives_the_native_score(stores: tuple) -> None:
    native, imported, _ = stores
    x = np.random.default_rng(0).normal(size=(50, 2))
    scores = []
    for store in (native, imported):
        sample = local_score_training_set(EventSource(store), np.zeros(2), 1000, rng=np.random.default_rng(5))
        model = SALLY(hidden=(16,), epochs=2, batch_size=256, seed=0, progress=False, device="cpu")
        scores.append(model.fit(sample).score(x).mean)
    assert np.abs(scores[0]).max() > 1e-3  # a trained, non-trivial score
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-6, atol=1e-9)


def test_legacy_layout_and_negative_weights(tmp_path: Path, events: dict) -> None:
    changed = {
        **events,
        "weights": events["weights"] * np.where(np.arange(len(events["ids"])) == 3, -1, 1)[:, None],
    }
    store = import_madminer(write_madminer(tmp_path / "old.h5", changed, legacy=True), tmp_path / "e.h5")
    assert store.negative_weights is True
    assert store.read().weights[3, 0] < 0
    assert store.config["run"] == {"variations": ["scale", "pdf"]}


def _edit(name: str, data: object = None, delete: bool = True):
    def edit(f: h5py.File) -> None:
        if delete:
            del f[name]
        if data is not None:
            f.create_dataset(name, data=data)

    return edit


def _nan_weight(f: h5py.File) -> None:
    f["samples/weights"][7, 1] = np.nan


def _shift_matrix(f: h5py.File) -> None:
    f["morphing/morphing_matrix"][2, 3] += 0.01


BAD_INPUTS = {
    "missing parameters group": (_edit("parameters"), MadMinerFormatError, "parameters: missing group"),
    "missing benchmarks group": (_edit("benchmarks"), MadMinerFormatError, "benchmarks: missing group"),
    "missing samples group": (_edit("samples"), MadMinerFormatError, "samples: missing group"),
    "missing observables group": (_edit("observables"), MadMinerFormatError, "observables: missing group"),
    "missing weights": (_edit("samples/weights"), MadMinerFormatError, "samples/weights: missing dataset"),
    "weights without nuisance columns": (
        lambda f: _edit("samples/weights", f["samples/weights"][:, :6])(f),
        MadMinerFormatError,
        "samples/weights: expected numbers of shape (1280, 10)",
    ),
    "observations of another width": (
        lambda f: _edit("samples/observations", np.zeros((1280, 3)))(f),
        MadMinerFormatError,
        "samples/observations: expected numbers of shape (n_events, 2)",
    ),
    "ranges of the wrong shape": (
        _edit("parameters/val_ranges", [1.0, 2.0]),
        MadMinerFormatError,
        "parameters/val_ranges: expected numbers",
    ),
    "benchmark values of the wrong shape": (
        _edit("benchmarks/values", np.zeros((10, 3))),
        MadMinerFormatError,
        "benchmarks/values: expected numbers",
    ),
    "matrix of the wrong shape": (
        _edit("morphing/morphing_matrix", np.eye(6)[:, :5]),
        MadMinerFormatError,
        "morphing_matrix: expected",
    ),
    "inconsistent morphing": (_shift_matrix, MorphingError, "morphing/morphing_matrix: does not morph"),
    "NaN weight": (_nan_weight, StoreError, "non-finite value nan in row 7"),
    "sampling id out of range": (
        lambda f: f["samples/sampling_benchmarks"].__setitem__(4, 6),
        MadMinerFormatError,
        "samples/sampling_benchmarks: value 6 in row 4",
    ),
    "summary disagrees with ids": (
        _edit("sample_summary/signal_events", [500, 0, 524, 0, 0, 0]),
        MadMinerFormatError,
        "sample_summary: signal_events [500, 0, 524, 0, 0, 0]",
    ),
    "unknown nuisance benchmark": (
        _edit("nuisance_parameters/benchmark_positive", [b"scale_up", b"nope"]),
        MadMinerFormatError,
        "nuisance_parameters/benchmark_positive: nuisance parameter 'pdf' names benchmark 'nope'",
    ),
    "no reference benchmark": (
        _edit("benchmarks/is_reference", [0] * 10),
        MadMinerFormatError,
        "benchmarks/is_reference: no reference",
    ),
    "numbers for names": (
        _edit("observables/names", [1, 2]),
        MadMinerFormatError,
        "observables/names: expected",
    ),
    "empty range": (
        _edit("parameters/val_ranges", [[1.0, -1.0], [0.0, 1.0]]),
        MadMinerFormatError,
        "expected low < high",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_named_error(tmp_path: Path, events: dict, case: str) -> None:
    edit, error, message = BAD_INPUTS[case]
    source = write_madminer(tmp_path / "mm.h5", events)
    with h5py.File(source, "r+") as f:
        edit(f)
    with pytest.raises(error) as info:
        import_madminer(source, tmp_path / "events.h5")
    assert str(source) in str(info.value) and message in str(info.value)
    assert not (tmp_path / "events.h5").exists() and not (tmp_path / "events.h5.partial").exists()


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "mm.h5"
    path.write_text("not hdf5")
    with pytest.raises(MadMinerFormatError, match="not a readable HDF5 file"):
        import_madminer(path, tmp_path / "events.h5")


def test_cli_imports_and_writes_a_starting_config(tmp_path: Path, events: dict) -> None:
    source = write_madminer(tmp_path / "mm.h5", events)
    out, config = tmp_path / "events.h5", tmp_path / "cfg" / "run.yaml"
    config.parent.mkdir()
    result = CliRunner().invoke(
        app, ["import-madminer", str(source), str(out), "--write-config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "1,280 events, 6 benchmarks" in " ".join(result.output.split())  # rich wraps lines
    data = yaml.safe_load(config.read_text())
    assert data["simulator"] == {"kind": "events", "path": "../events.h5"}
    assert [p["name"] for p in data["parameters"]] == NAMES
    assert [b["name"] for b in data["benchmarks"]] == list(BENCHMARKS)
    assert data["morphing"] == {"max_power": [2, 2], "max_overall_power": 2, "optimize_basis": False}
    assert data["training"]["sally"]["method"] == "sally" and data["sampling"]["sets"][0]["theta_ref"] == "sm"
    assert "scale" in config.read_text()  # the nuisance parameters, as a section or a comment
    again = CliRunner().invoke(app, ["import-madminer", str(source), str(out)])
    assert again.exit_code == 2 and "already exists" in " ".join(again.output.split())


def test_cli_bad_file_is_one_line(tmp_path: Path, events: dict) -> None:
    source = write_madminer(tmp_path / "mm.h5", events)
    with h5py.File(source, "r+") as f:
        del f["benchmarks"]
    result = CliRunner().invoke(app, ["import-madminer", str(source), str(tmp_path / "e.h5")])
    assert result.exit_code == 2 and "benchmarks: missing group" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_cli_checks_a_config(tmp_path: Path, events: dict) -> None:
    source = write_madminer(tmp_path / "mm.h5", events)
    config = tmp_path / "toy.yaml"
    base = {
        "parameters": [
            {"name": "theta_0", "range": [-1, 1], "unit": "TeV^-2"},
            {"name": "c", "range": [-1, 1]},
        ],
        "benchmarks": [{"name": "b1", "theta": {"theta_0": 0.7}}],
        "simulator": {"kind": "gaussian_toy", "n_events": 10},
    }
    config.write_text(yaml.safe_dump(base))
    result = CliRunner().invoke(
        app, ["import-madminer", str(source), str(tmp_path / "e.h5"), "--config", str(config)]
    )
    assert result.exit_code == 2 and "parameters are ['theta_0', 'c']" in " ".join(result.output.split())
    base["parameters"][1]["name"] = "theta_1"
    config.write_text(yaml.safe_dump(base))
    result = CliRunner().invoke(
        app, ["import-madminer", str(source), str(tmp_path / "e.h5"), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert EventStore(tmp_path / "e.h5").parameters["parameters"][0]["unit"] == "TeV^-2"


def test_config_with_other_components_or_benchmarks_is_refused(tmp_path: Path, events: dict) -> None:
    from assay.config import config_from_dict

    source = write_madminer(tmp_path / "mm.h5", events)
    base = {"parameters": [{"name": n, "range": r} for n, r in zip(NAMES, RANGES)],
            "simulator": {"kind": "gaussian_toy", "n_events": 10}}  # fmt: skip
    cases = {
        "morphing spans components": {"morphing": {"max_power": 1}},
        "'b1' is θ = [0.5, 0.0] in the config": {"benchmarks": [{"name": "b1", "theta": {"theta_0": 0.5}}]},
        "'b9' is not a physics benchmark": {"benchmarks": [{"name": "b9", "theta": {"theta_0": 0.5}}]},
    }
    for message, change in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            import_madminer(
                source, tmp_path / "e.h5", config=config_from_dict({**base, **change}), where="c.yaml"
            )
    store = import_madminer(source, tmp_path / "e.h5", config=config_from_dict(base))
    assert store.parameters["parameters"][1]["range"] == RANGES[1]


def test_file_without_morphing_or_sampling_ids(tmp_path: Path, events: dict) -> None:
    """Optional groups: no morphing (no components extra, variations on one component) and no sampling ids
    (MadMiner's load_events then applies no sampling factors: the weights as stored, labels -1)."""
    source = write_madminer(tmp_path / "mm.h5", events)
    with h5py.File(source, "r+") as f:
        stored = f["samples/weights"][:, :6]
        for name in ("morphing", "samples/sampling_benchmarks", "sample_summary"):
            del f[name]
    store = import_madminer(source, tmp_path / "e.h5")
    chunk = store.read()
    assert store.morphing is None and store.extras_shapes == {"variations": (2, 2, 1)}
    np.testing.assert_array_equal(chunk.weights, stored)
    assert np.all(chunk.benchmark == -1) and np.all(chunk.process == 0) and store.processes == ["signal"]


def test_madminer_multi_basis_morphing_is_accepted(
    tmp_path: Path, events: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """12 physics benchmarks = two bases of the 6 components: MadMiner's matrix averages the two inverses
    (PhysicsMorpher.calculate_morphing_matrix), a valid morphing (M Φ = 1) that differs from assay's least
    squares; the import keeps the file's benchmarks, and a matrix that is not a morphing is refused."""
    source = write_madminer(tmp_path / "mm.h5", events)
    second = np.array([[0.3, -0.3], [-0.4, 0.0], [0.0, -0.6], [0.8, 0.4], [-0.2, 0.7], [0.6, -0.7]])
    thetas = np.vstack([np.array(list(BENCHMARKS.values())), second])
    phi = np.prod(thetas[:, None, :] ** COMPONENTS[None], axis=-1)  # (12, 6)
    matrix = np.hstack([np.linalg.inv(phi[:6]), np.linalg.inv(phi[6:])]) / 2  # (n_components, 12)
    names = [*BENCHMARKS, *(f"c{i}" for i in range(6)), "pdf_up", "scale_down", "scale_up", "unused"]
    with h5py.File(source, "r+") as f:
        weights = f["samples/weights"][()]
        coefficients = weights[:, :6] @ np.linalg.inv(phi[:6]).T  # A_c: the toy is exactly quadratic in θ
        columns = np.column_stack([coefficients @ phi.T, weights[:, 6:]])
        values = np.vstack([thetas, np.zeros((4, 2))])
        flags = {"is_nuisance": [0] * 12 + [1] * 4, "is_reference": [1] + [0] * 15}
        for name, data in {"names": [n.encode() for n in names], "values": values, **flags}.items():
            del f[f"benchmarks/{name}"]
            f.create_dataset(f"benchmarks/{name}", data=data)
        del f["samples/weights"], f["morphing/morphing_matrix"], f["sample_summary/signal_events"]
        f.create_dataset("samples/weights", data=columns)
        f.create_dataset("morphing/morphing_matrix", data=matrix)
        f.create_dataset("sample_summary/signal_events", data=[512, 0, 512] + [0] * 9)
    store = import_madminer(source, tmp_path / "e.h5")
    assert "MadMiner averages 2 bases" in caplog.text  # the weights differ from assay's: the M Φ = 1 branch
    assert store.benchmarks == names[:12] and len(store.morphing["benchmarks"]) == 12
    with h5py.File(source, "r+") as f:
        f["morphing/morphing_matrix"][0, 0] += 0.01
    with pytest.raises(MorphingError, match="does not morph"):
        import_madminer(source, tmp_path / "e2.h5")
