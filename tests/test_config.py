"""Tests of assay.config: the example loads, every kind of bad input is one ConfigError naming
the file, the key path and the line, and the typed config resolves θ specifications."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import yaml

from assay.config import (
    BITModelConfig,
    ConfigWarning,
    NeuralModelConfig,
    RunConfig,
    config_from_dict,
    load_config,
)
from assay.exceptions import ConfigError
from assay.parameters import GaussianPrior, Prior

EXAMPLE = Path(str(resources.files("assay").joinpath("examples", "toy.yaml")))  # package data

# A small valid config; the bad inputs below are one-line edits of it, so the line of each
# problem is known (lines are 1-based, as editors show them).
GOOD = """\
seed: 1
parameters:
  - {name: cHWW, range: [-1.0, 1.0]}
  - {name: cWWW, range: [-2.0, 2.0]}
benchmarks:
  - {name: sm, theta: {}}
  - name: bsm
    theta: {cHWW: 0.5, cWWW: -1.0}
simulator:
  kind: gaussian_toy
  n_events: 1000
  theta_gen: sm
sampling:
  split: {train: 0.6, validation: 0.2, test: 0.2}
  sets:
    - {name: sally, kind: local_score, theta_ref: sm, n_samples: 100}
    - name: alices
      kind: ratio
      theta0: {kind: gaussian, mean: 0.0, std: 0.4}
      theta1: bsm
      n_samples: 200
training:
  sally: {method: sally, hidden: [16]}
  alices:
    method: ALICES
    training_set: alices
    epochs: 2
  trees: {method: bit, n_trees: 10}
inference:
  models: [alices, trees]
  scans:
    - {parameter: cHWW, range: [-1.0, 1.0]}
  grids:
    - {parameters: [cHWW, cWWW], ranges: [[-1.0, 1.0], [-2.0, 2.0]], n_points: 9}
  histograms:
    - {observables: [x0], edges: [[-.inf, 0.0, .inf]]}
"""
N_LINES = GOOD.count("\n")


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_good_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.parameter_space().names == ["cHWW", "cWWW"]
    assert cfg.parameter_space().benchmark_names == ["sm", "bsm"]
    assert cfg.simulator.n_events == 1000


def test_named_models_are_a_tagged_union_by_method(tmp_path):
    """``training`` maps names to models; ``method`` (any case) picks neural or BIT settings."""
    cfg = load_config(write(tmp_path, GOOD))
    assert list(cfg.training) == ["sally", "alices", "trees"]
    sally, alices, trees = cfg.training.values()
    assert isinstance(sally, NeuralModelConfig) and sally.method == "sally" and sally.hidden == [16]
    assert isinstance(alices, NeuralModelConfig) and alices.method == "alices"  # from ALICES
    assert alices.training_set == "alices" and alices.epochs == 2 and sally.epochs == 50
    assert isinstance(trees, BITModelConfig) and trees.n_trees == 10 and trees.theta_ref == "sm"
    assert cfg.inference.models == ["alices", "trees"] and cfg.inference.histograms[0].label == "x0"


def test_two_models_of_one_method_under_their_own_names(tmp_path):
    text = edit("  trees: {method: bit, n_trees: 10}\n", "  wide: {method: sally, hidden: [64, 64]}\n")
    text = text.replace("models: [alices, trees]", "models: [sally, wide]")
    cfg = load_config(write(tmp_path, text))
    assert cfg.training["sally"].hidden == [16] and cfg.training["wide"].hidden == [64, 64]
    assert {m.method for m in cfg.training.values()} == {"sally", "alices"}


def test_no_training_section_means_no_models(tmp_path):
    text = GOOD[: GOOD.index("training:")]
    assert load_config(write(tmp_path, text)).training == {}


def test_example_toy_config_loads():
    cfg = load_config(EXAMPLE)
    space = cfg.parameter_space()
    assert space.names == ["theta_0", "theta_1"]
    assert space.benchmark_names[0] == "sm"
    assert cfg.seed == 7 and cfg.simulator.n_events == 200_000
    assert [s.name for s in cfg.sampling.sets] == ["sally", "alices"]
    assert cfg.inference.scans[0].parameter == "theta_0"


# (edit of GOOD, key path the message must name, line of the offending key)
BAD = {
    "unknown parameter in a benchmark": (
        ("theta: {cHWW: 0.5, cWWW: -1.0}", "theta: {cHWW: 0.5, cWWW: -1.0, cHB: 2.0}"),
        "benchmarks[1].theta.cHB",
        8,
    ),
    "unknown top-level key": (("seed: 1\n", "seed: 1\nluminosity: 300\n"), "luminosity", 2),
    "wrong type": (("n_events: 1000", 'n_events: "ten"'), "simulator.n_events", 11),
    # a missing key has no line of its own: the message points at the enclosing mapping
    "simulator without n_events": (("  n_events: 1000\n", ""), "simulator.n_events", 10),
    "parameters missing": (
        ("parameters:\n  - {name: cHWW, range: [-1.0, 1.0]}\n  - {name: cWWW, range: [-2.0, 2.0]}\n", ""),
        "parameters",
        1,
    ),
    "unknown benchmark as theta_ref": (
        ("theta_ref: sm", "theta_ref: bsm2"),
        "sampling.sets[0].theta_ref",
        16,
    ),
    "unknown benchmark as theta_gen": (("theta_gen: sm", "theta_gen: nope"), "simulator.theta_gen", 12),
    "prior with unknown kind": (
        ("seed: 1\n", "seed: 1\nmorphing:\n  basis_prior: {kind: cauchy, scale: 1.0}\n"),
        "morphing.basis_prior",
        3,
    ),
    "range with low >= high": (("range: [-2.0, 2.0]", "range: [2.0, 2.0]"), "parameters[1]", 4),
    "split fractions not summing to 1": (("validation: 0.2,", "validation: 0.3,"), "sampling.split", 14),
    "duplicate parameter names": (("name: cWWW, range", "name: cHWW, range"), "parameters", 3),
    "duplicate training-set names": (("name: alices", "name: sally"), "sampling.sets", 16),
    "negative n_samples": (("n_samples: 200", "n_samples: -5"), "sampling.sets[1].n_samples", 21),
    # training: named models; errors name training.<model>.<field>
    "bad setting of a named model": (("epochs: 2", "epochs: 0"), "training.alices.epochs", 27),
    "unknown key of a named model": (("hidden: [16]}", "hiden: [16]}"), "training.sally.hiden", 23),
    "neural setting on a BIT model": (
        ("n_trees: 10}", "n_trees: 10, n_ensemble: 2}"),
        "training.trees.n_ensemble",
        28,
    ),
    "model without a method": (("{method: sally, hidden", "{hidden"), "training.sally", 23),
    "training_set naming an unknown set": (
        ("training_set: alices", "training_set: alice"),
        "training.alices.training_set",
        26,
    ),
    "model name that is no folder name": (("  trees: {", "  my trees: {"), "training.my trees", 28),
    "old single-model training section": (
        ("training:\n  sally: {method: sally, hidden: [16]}\n", "training:\n  method: sally\n"),
        "training",
        23,
    ),
    # inference
    "unknown model in inference.models": (
        ("models: [alices, trees]", "models: [alices, bit]"),
        "inference.models[1]",
        30,
    ),
    "unknown parameter in a scan": (
        ("parameter: cHWW, range", "parameter: cHB, range"),
        "inference.scans[0].parameter",
        32,
    ),
    "unknown parameter in a grid": (
        ("parameters: [cHWW, cWWW]", "parameters: [cHWW, cHB]"),
        "inference.grids[0].parameters",
        34,
    ),
    "grid of one parameter twice": (
        ("parameters: [cHWW, cWWW]", "parameters: [cHWW, cHWW]"),
        "inference.grids[0]",
        34,
    ),
    "scan range with low >= high": (
        ("range: [-1.0, 1.0]}\n  grids", "range: [1.0, -1.0]}\n  grids"),
        "inference.scans[0]",
        32,
    ),
    "histogram edges mismatch": (
        ("observables: [x0]", "observables: [x0, x1]"),
        "inference.histograms[0]",
        36,
    ),
    "histogram edges not increasing": (
        ("[[-.inf, 0.0, .inf]]", "[[0.0, -1.0]]"),
        "inference.histograms[0]",
        36,
    ),
    "unknown benchmark as theta_true": (
        ("inference:\n", "inference:\n  theta_true: bsm2\n"),
        "inference.theta_true",
        30,
    ),
    "luminosity not positive": (
        ("inference:\n", "inference:\n  luminosity_ifb: 0\n"),
        "inference.luminosity_ifb",
        30,
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_file_key_path_and_line(tmp_path, case):
    (old, new), key_path, line = BAD[case]
    message = config_error(write(tmp_path, edit(old, new), "bad.yaml"))
    assert f"bad.yaml:{line}: {key_path}:" in message, message
    if case == "old single-model training section":  # a hint to the new form
        assert "training: {sally: {method: sally, ...}}" in message, message


def test_unknown_prior_kind_lists_the_valid_kinds(tmp_path):
    text = edit("theta0: {kind: gaussian, mean: 0.0, std: 0.4}", "theta0: {kind: cauchy, scale: 1.0}")
    message = config_error(write(tmp_path, text, "bad.yaml"))
    assert "bad.yaml:19: sampling.sets[1].theta0" in message
    assert "'cauchy'" in message
    for kind in ("gaussian", "uniform", "grid", "fixed"):
        assert kind in message


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        # an unknown method lists every valid one, neural and BIT
        (
            "method: ALICES",
            "method: madminer",
            ["training.alices:", "'madminer'", "'sally'", "'carl'", "'rolr'", "'alice'", "'alices'",
             "'rascal'", "'cascal'", "'bit'"],
        ),
        ("training_set: alices", "training_set: alice", ["unknown set 'alice'", "['sally', 'alices']"]),
        ("models: [alices, trees]", "models: [bit]", ["unknown model 'bit'", "['alices', 'sally', 'trees']"]),
        ("parameter: cHWW, range", "parameter: cHB, range", ["unknown parameter 'cHB'", "['cHWW', 'cWWW']"]),
        ("parameters: [cHWW, cWWW]", "parameters: [cHB, cWWW]", ["parameter 'cHB'", "['cHWW', 'cWWW']"]),
        ("observables: [x0]", "observables: [x0, x1]", ["edges: one list per observable (2), got 1"]),
    ],
    ids=["unknown-method", "unknown-set", "unknown-model", "scan-parameter", "grid-parameter", "edges"],
)  # fmt: skip
def test_bad_names_list_the_valid_ones(tmp_path, old, new, says):
    message = " ".join(config_error(write(tmp_path, edit(old, new), "bad.yaml")).split())
    for part in says:
        assert part in message, message
    assert message.count("bad.yaml:") == 1, message  # one problem, one line


def resolve(data, key_path: str):
    """The value at ``a.b[1].c`` in parsed YAML; KeyError/IndexError if the file has no such key."""
    for name, index in re.findall(r"\.?([^.\[\]]+)|\[(\d+)\]", key_path):
        data = data[int(index)] if index else data[name]
    return data


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("theta_ref: sm", "theta_ref: {kind: gaussian, std: 1.0}"),  # a prior where a point is expected
        ("theta1: bsm", "theta1: 3"),  # neither a name, a point nor a prior
    ],
    ids=["prior-for-point", "number-for-theta"],
)
def test_error_key_paths_are_keys_of_the_file(tmp_path, old, new):
    # pydantic reports union errors per member (loc ending in 'str', 'dict[str,float]', ...);
    # the message must show key paths that exist in the file, not those member tags.
    text = edit(old, new)
    message = config_error(write(tmp_path, text, "bad.yaml"))
    paths = re.findall(r"bad\.yaml:\d+: (\S+):", message)
    assert paths, message
    data = yaml.safe_load(text)
    for key_path in paths:
        try:
            resolve(data, key_path)
        except (KeyError, IndexError, TypeError):
            pytest.fail(f"{key_path!r} is not a key path of the file:\n{message}")


def test_several_problems_are_reported_together(tmp_path):
    text = edit("n_events: 1000", 'n_events: "ten"') + "extra_section: {}\n"
    message = config_error(write(tmp_path, text))
    assert "simulator.n_events" in message and "extra_section" in message


@pytest.mark.parametrize(
    "text", ["- seed: 1\n- parameters: []\n", "just a string\n", ""], ids=["list", "string", "empty"]
)
def test_not_a_mapping(tmp_path, text):
    message = config_error(write(tmp_path, text, "list.yaml"))
    assert "list.yaml" in message and "mapping" in message


def test_invalid_yaml_syntax_names_file_and_line(tmp_path):
    message = config_error(write(tmp_path, GOOD + "extra: {scans: [\n", "broken.yaml"))
    assert "broken.yaml" in message and "not valid YAML" in message
    assert re.search(rf"line ({N_LINES + 1}|{N_LINES + 2})", message), message


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read config") as info:
        load_config(path)
    assert isinstance(info.value.__cause__, OSError)


def test_config_error_is_a_value_error_and_chains_the_pydantic_cause(tmp_path):
    with pytest.raises(ValueError) as info:
        load_config(write(tmp_path, edit("n_events: 1000", "n_events: 0")))
    assert isinstance(info.value, ConfigError)
    assert info.value.__cause__ is not None


def test_config_from_dict_without_a_file_names_the_source():
    data = yaml.safe_load(edit("n_events: 1000", "n_events: ten"))
    with pytest.raises(ConfigError, match=r"<config>: simulator\.n_events"):
        config_from_dict(data)
    with pytest.raises(ConfigError, match=r"demo: simulator\.n_events"):
        config_from_dict(data, source="demo")


@pytest.mark.parametrize("source", ["good", "example"])
def test_json_round_trip(tmp_path, source):
    cfg = load_config(EXAMPLE if source == "example" else write(tmp_path, GOOD))
    again = config_from_dict(cfg.model_dump(mode="json"))
    assert again == cfg
    assert again.model_dump(mode="json") == cfg.model_dump(mode="json")


def test_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    with pytest.raises(ValueError):
        cfg.seed = 2


def test_sm_benchmark_is_added_when_absent(tmp_path):
    text = edit("  - {name: sm, theta: {}}\n", "")
    space = load_config(write(tmp_path, text)).parameter_space()
    assert space.benchmark_names == ["sm", "bsm"]
    np.testing.assert_array_equal(space.theta("sm"), [0.0, 0.0])


def test_theta_or_prior(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    alices = cfg.sampling.sets[1]
    prior = cfg.theta_or_prior(alices.theta0, "sampling.sets[1].theta0")
    assert isinstance(prior, Prior) and isinstance(prior, GaussianPrior)
    assert prior.sample(5, np.random.default_rng(0)).shape == (5, 2)
    by_name = cfg.theta_or_prior(alices.theta1, "sampling.sets[1].theta1")
    assert isinstance(by_name, np.ndarray)
    np.testing.assert_array_equal(by_name, [0.5, -1.0])
    # a point: missing parameters take their SM value (0)
    np.testing.assert_array_equal(cfg.theta_or_prior({"cWWW": 1.5}, "here"), [0.0, 1.5])
    with pytest.raises(ConfigError, match="here: unknown benchmark 'nope'"):
        cfg.theta_or_prior("nope", "here")


def test_basis_prior_defaults_to_uniform_over_the_ranges(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    samples = cfg.basis_prior().sample(2000, np.random.default_rng(0))
    assert samples.shape == (2000, 2)
    assert np.all(np.abs(samples[:, 0]) <= 1.0) and np.all(np.abs(samples[:, 1]) <= 2.0)
    assert samples[:, 1].max() > 1.5  # the second range really is [-2, 2]


def test_run_config_validates_without_a_file():
    cfg = RunConfig.model_validate(
        {
            "parameters": [{"name": "a", "range": [-1, 1]}],
            "simulator": {"kind": "gaussian_toy", "n_events": 10},
        }
    )
    assert cfg.simulator.batch_size == 100_000 and cfg.sampling.split.train == 0.6


def test_duplicate_benchmark_names_name_both_entries():
    """Two benchmarks named `sm`: one error naming both entries (it silently became (0.3, 0))."""
    data = {
        "parameters": [{"name": "a", "range": [-1, 1]}],
        "simulator": {"kind": "gaussian_toy", "n_events": 10},
        "benchmarks": [{"name": "sm", "theta": {"a": 0.0}}, {"name": "sm", "theta": {"a": 0.3}}],
    }
    with pytest.raises(ConfigError, match=r"benchmarks\[1\]\.name: .*'sm' is used twice, by benchmarks\[0\]"):
        config_from_dict(data)


def test_a_benchmark_outside_its_range_warns_with_its_key_path():
    data = {
        "parameters": [{"name": "a", "range": [-1, 1]}],
        "simulator": {"kind": "gaussian_toy", "n_events": 10},
        "benchmarks": [{"name": "far", "theta": {"a": 3.0}}],
    }
    with pytest.warns(ConfigWarning, match=r"benchmarks\[0\]\.theta\.a: 3.0 lies outside the declared range"):
        cfg = config_from_dict(data)
    assert cfg.parameter_space().theta("far").tolist() == [3.0]  # allowed: a basis may want it


def _mu_config(**inference) -> dict:
    return {
        "parameters": [{"name": "mu", "range": [0, 4]}],
        "benchmarks": [{"name": "b_only", "theta": {"mu": 0}}, {"name": "sm", "theta": {"mu": 1}},
                       {"name": "mu4", "theta": {"mu": 4}}],
        "morphing": {"max_power": 1, "power_step": 0.5},
        "simulator": {"kind": "offshell", "n_events": 10},
        "inference": inference,
    }  # fmt: skip


def test_a_signal_strength_through_its_square_root_is_valid():
    from assay.pipeline import basis_components

    cfg = config_from_dict(_mu_config(scans=[{"parameter": "mu", "range": [0, 3]}]))
    assert cfg.simulator.kind == "offshell" and cfg.simulator.m4l_range == (220.0, 1000.0)
    assert basis_components(cfg).tolist() == [[0.0], [0.5], [1.0]]


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"parameters": [{"name": "mu", "range": [-1, 4]}]}, r"parameters\[0\]\.range: -1"),
        ({"inference": {"scans": [{"parameter": "mu", "range": [-0.5, 3]}]}}, r"inference\.scans\[0\]\.range"),  # noqa: E501
        ({"inference": {"theta_true": {"mu": -1}}}, r"inference\.theta_true\.mu"),
    ],
)
def test_a_square_root_parameter_below_zero_is_refused_where_it_is(patch, where):
    data = {**_mu_config(), **patch}
    with pytest.raises(ConfigError, match=where + r".*square root"):
        config_from_dict(data)


def test_offshell_m4l_window_is_checked():
    data = _mu_config()
    data["simulator"] = {"kind": "offshell", "n_events": 10, "m4l_range": [500, 300]}
    with pytest.raises(ConfigError, match=r"simulator.*m4l_range must have 0 < low < high"):
        config_from_dict(data)


EXAMPLES = sorted(
    p.name for p in resources.files("assay").joinpath("examples").iterdir() if p.name.endswith(".yaml")
)


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_config_is_valid(name):
    cfg = load_config(Path(str(resources.files("assay").joinpath("examples", name))))
    if cfg.systematics is not None:  # shape nuisances name variations the simulator knows
        from assay.simulators.offshell_systematics import check_variations

        check_variations(tuple(cfg.systematics.shape_variations()))


def test_shape_nuisances_need_a_simulator_with_variations():
    data = {
        "parameters": [{"name": "a", "range": [-1, 1]}],
        "simulator": {"kind": "gaussian_toy", "n_events": 10},
        "systematics": {"nuisances": [{"name": "jes"}, {"name": "lumi", "normalisation": 0.02}]},
    }
    with pytest.raises(ConfigError, match=r"nuisances\[0\]: 'jes': .*provides no shape variations"):
        config_from_dict(data)


def test_unknown_offshell_variation_is_a_config_error(tmp_path):
    from assay.pipeline import run_pipeline

    data = {**_mu_config(), "systematics": {"nuisances": [{"name": "jet_energy_scale"}]}}
    with pytest.raises(ConfigError, match=r"systematics\.nuisances: .*jet_energy_scale"):
        run_pipeline(config_from_dict(data), tmp_path / "run", progress=False)
