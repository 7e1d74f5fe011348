"""WH detector systematics (assay.simulators.wh_systematics): exact per-event factors F^± = p'(x|z)/p(x|z).

Closure: nominal events (parton sample A, nominal detector) reweighted by F^± must reproduce events made
with the shifted detector itself (an independent parton sample B): weighted histograms of seven
observables (20 bins at the nominal quantiles) and the total rate agree within their √(Σ w²) errors.
A factor of the wrong sign must fail. Then the config, the batches and a small `assay run` + `assay
limits` on a one-parameter WH config with the variations profiled.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from assay.config import WH_VARIATIONS, config_from_dict
from assay.exceptions import ConfigError
from assay.observables import WH_OBSERVABLES, pt
from assay.simulators.detector import DetectorModel, Selection
from assay.simulators.wh_batch import WHBatchSimulator, select_and_observe
from assay.simulators.wh_systematics import (
    VARIATIONS,
    WHSystematicsModel,
    shifted_detector,
    variation_factors,
)

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

N_EVENTS = 300_000  # per parton sample; ~47k pass the selection (n_eff ~40k)
OBSERVABLES = ("m_bb", "b1_pt", "b2_pt", "met", "pt_w", "mt_tot", "ql_cos_delta_plus")
DETECTOR = DetectorModel()


@pytest.fixture(scope="module")
def sim():
    from assay.simulators.pdf import PDFGrid
    from assay.simulators.wh import WHSimulator

    return WHSimulator(np.zeros((1, 2)), pdf=PDFGrid())


@pytest.fixture(scope="module")
def parton(sim):
    """Two independent parton samples: A for the nominal detector, B for the shifted ones."""
    return sim.simulate(N_EVENTS, np.random.default_rng(1)), sim.simulate(N_EVENTS, np.random.default_rng(2))


def _detector_level(ev, detector: DetectorModel, seed: int) -> dict[str, np.ndarray]:
    reco = detector.simulate(ev.lepton, ev.b, ev.bbar, ev.neutrino, ev.charge, seed)
    x, mask, _ = select_and_observe(reco, ev.weights[:, 0], Selection())
    b_jets = np.stack([ev.b[mask], ev.bbar[mask]], axis=1)
    return {"x": x, "w": ev.weights[mask, 0], "b_jets": b_jets, "response": reco.jet_response[mask]}


@pytest.fixture(scope="module")
def nominal(parton):
    out = _detector_level(parton[0], DETECTOR, 11)
    out["factors"] = variation_factors(DETECTOR, out["b_jets"], out["response"], VARIATIONS)
    return out


def _comparison(x0, w0, x1, w1) -> tuple[float, dict[str, float]]:
    """Rate pull and per-observable χ² p-values of the weighted samples (x0, w0) against (x1, w1)."""
    rate = (w0.sum() - w1.sum()) / np.sqrt((w0**2).sum() + (w1**2).sum())
    p_values = {}
    for name in OBSERVABLES:
        i = WH_OBSERVABLES.index(name)
        edges = np.quantile(x0[:, i], np.linspace(0, 1, 21))
        edges[[0, -1]] = -np.inf, np.inf
        h0, v0 = (np.histogram(x0[:, i], edges, weights=w)[0] for w in (w0, w0**2))
        h1, v1 = (np.histogram(x1[:, i], edges, weights=w)[0] for w in (w1, w1**2))
        chi2 = np.sum((h0 - h1) ** 2 / (v0 + v1))
        p_values[name] = float(stats.chi2.sf(chi2, len(h0)))
    return float(rate), p_values


# ---- exactness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VARIATIONS)
@pytest.mark.parametrize("k, sign", [(0, 1.0), (1, -1.0)])
def test_reweighted_nominal_matches_the_shifted_detector(parton, nominal, name, k, sign):
    """Measured (seeds as here, 47k events pass): right factor, rate pulls within ±1.0 and χ² from 11.4
    to 37.1 for 20 bins (smallest p 0.011 of 28 histograms); wrong sign, rate pulls 9.4-10.9 σ (JES
    ±7 %, b-tag ±8 %) and χ² ≥ 104 (p < 10⁻²⁰) in every histogram."""
    j = VARIATIONS.index(name)
    shifted = _detector_level(parton[1], shifted_detector(DETECTOR, name, sign), 20 + 2 * j + k)
    rate, p_values = _comparison(nominal["x"], nominal["w"] * nominal["factors"][:, j, k],
                                 shifted["x"], shifted["w"])  # fmt: skip
    assert abs(rate) < 4.0, f"rate pull {rate:.2f}"
    assert min(p_values.values()) > 1e-3, p_values
    wrong_rate, wrong_p = _comparison(nominal["x"], nominal["w"] * nominal["factors"][:, j, 1 - k],
                                      shifted["x"], shifted["w"])  # fmt: skip
    assert abs(wrong_rate) > 5.0 and min(wrong_p.values()) < 1e-8, (wrong_rate, wrong_p)


def test_the_variations_move_the_rate_as_documented(nominal):
    """JES ±3 % moves the selected rate by about ±3.5 % (m_bb window, p_T cuts); b-tagging by the square
    of 1 ± u(p_T), u = 2 % for most jets (p_T < 100 GeV)."""
    w, f = nominal["w"], nominal["factors"]
    change = (w @ f.reshape(len(w), -1)).reshape(len(VARIATIONS), 2) / w.sum() - 1
    jes, btag = change[VARIATIONS.index("jes")], change[VARIATIONS.index("btag")]
    assert 0.02 < jes[0] < 0.05 and -0.05 < jes[1] < -0.02
    assert 0.0404 < btag[0] < 0.05 and -0.05 < btag[1] < -0.0396


# ---- the factors themselves --------------------------------------------------------------------
def test_factors_follow_the_formulas(nominal):
    b_jets, r = nominal["b_jets"][:2000], nominal["response"][:2000]
    f = variation_factors(DETECTOR, b_jets, r, VARIATIONS)
    sigma = DETECTOR.jet_resolution.relative(b_jets[..., 0])  # (n, 2)
    delta = WHSystematicsModel().jes
    for k, sign in enumerate((1.0, -1.0)):
        jes = np.exp(np.sum((sign * delta * r - delta**2 / 2) / sigma**2, axis=1))
        np.testing.assert_allclose(f[:, VARIATIONS.index("jes"), k], jes, rtol=1e-10)
        u = np.interp(pt(b_jets.reshape(-1, 4)), [100.0, 500.0], [0.02, 0.08]).reshape(-1, 2)
        btag = np.prod(1 + sign * u, axis=1)
        np.testing.assert_allclose(f[:, VARIATIONS.index("btag"), k], btag, rtol=1e-12)


def test_jet_response_is_the_energy_shift_drawn(parton):
    ev = parton[0]
    reco = DETECTOR.simulate(ev.lepton[:5000], ev.b[:5000], ev.bbar[:5000], ev.neutrino[:5000],
                             ev.charge[:5000], 3)  # fmt: skip
    energies = np.sort(np.column_stack([reco.b1[:, 0], reco.b2[:, 0]]), axis=1)
    expected = np.sort(np.column_stack([ev.b[:5000, 0], ev.bbar[:5000, 0]]) * (1 + reco.jet_response), axis=1)
    ok = reco.identified  # lost jets are reset (E' ≤ m)
    np.testing.assert_allclose(energies[ok], expected[ok], rtol=1e-12)


def test_errors_name_the_problem(nominal):
    with pytest.raises(ValueError, match=r"valid names: \['jes', 'btag'\]"):
        variation_factors(DETECTOR, nominal["b_jets"], nominal["response"], ["jer"])
    with pytest.raises(ValueError, match="ideal detector"):
        variation_factors(DetectorModel.ideal(), nominal["b_jets"], nominal["response"], ["jes"])
    with pytest.raises(ValueError, match="expected b_jets"):
        variation_factors(DETECTOR, nominal["b_jets"], nominal["response"][:, :1], ["jes"])
    assert WH_VARIATIONS == VARIATIONS  # the config's copy of the names


# ---- batches -------------------------------------------------------------------------------------
def test_batches_carry_the_same_factor_for_every_component(sim):
    batch_sim = WHBatchSimulator(sim, detector=DETECTOR, variations=("btag", "jes"))
    assert batch_sim.extras_shapes["variations"] == (2, 2, 6)
    batch = batch_sim.batch(5000, np.random.default_rng(4))
    v = batch.extras["variations"]
    assert v.shape == (len(batch.x), 2, 2, 6) and "variations" not in batch.weight_like
    np.testing.assert_array_equal(v, np.repeat(v[..., :1], 6, axis=-1))
    plain = WHBatchSimulator(sim, detector=DETECTOR).batch(5000, np.random.default_rng(4))
    np.testing.assert_array_equal(plain.x, batch.x)  # the variations change no event
    assert "variations" not in plain.extras
    with pytest.raises(ValueError, match="give a detector"):
        WHBatchSimulator(sim, variations=("jes",))


# ---- config ----------------------------------------------------------------------------------------
def _wh_config(simulator: dict, nuisances: list[dict], parameters=None) -> dict:
    return {
        "seed": 5,
        "parameters": parameters or [{"name": "cHW", "range": [-1, 1]}],
        "morphing": {"n_basis_trials": 5},
        "simulator": {"kind": "wh", "n_events": 40_000, "batch_size": 20_000, **simulator},
        "systematics": {"nuisances": nuisances},
    }


@pytest.mark.parametrize(
    "simulator, nuisances, message",
    [
        ({"detector": {}}, [{"name": "jer"}], r"nuisances\[0\]: unknown WH variation 'jer'; valid names: "
                                               r"\['jes', 'btag'\]"),
        ({"detector": {}}, [{"name": "jet_scale", "variation": "jes"}, {"name": "b", "variation": "bb"}],
         r"nuisances\[1\]: unknown WH variation 'bb'"),
        ({}, [{"name": "jes"}], r"nuisances\[0\]: 'jes' varies the parametrised detector"),
        ({"detector": {"ideal": True}}, [{"name": "btag"}], "not ideal"),
        ({"detector": {}, "shower": {}}, [{"name": "jes"}], "no shower"),
    ],
)  # fmt: skip
def test_config_refuses_what_wh_cannot_vary(simulator, nuisances, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_wh_config(simulator, nuisances))


def test_config_accepts_wh_variations_and_normalisations():
    nuisances = [{"name": "jes"}, {"name": "b_tagging", "variation": "btag"},
                 {"name": "lumi", "normalisation": 0.02}]  # fmt: skip
    cfg = config_from_dict(_wh_config({"detector": {}}, nuisances))
    assert cfg.systematics.shape_variations() == ["jes", "btag"]


def test_one_coupling_fixes_the_other_at_zero(sim):
    from assay.pipeline import build_basis
    from assay.simulators import wh_batch

    cfg = config_from_dict(_wh_config({"detector": {}}, [{"name": "jes"}],
                                      [{"name": "cHWtilde", "range": [-1.2, 1.2]}]))  # fmt: skip
    space, _ = build_basis(cfg, np.random.default_rng(0))
    both = wh_batch._both_couplings(space.names, space.benchmark_thetas)
    np.testing.assert_array_equal(both[:, 0], 0.0)
    np.testing.assert_array_equal(both[:, 1], space.benchmark_thetas[:, 0])
    with pytest.raises(ValueError, match=r"\['cHW', 'cHWtilde'\] \(or one of them\)"):
        wh_batch._both_couplings(["c"], space.benchmark_thetas)


# ---- end to end ------------------------------------------------------------------------------------
def test_profiled_limits_on_a_one_parameter_wh_run(tmp_path):
    """`assay run` stores the factors; `assay limits` profiles them. Measured (300 fb⁻¹, c_HW 68%
    widths from results.json `systematics`; lepton resolution evaluated at p_T):

    | events (seed) | stat only | jes fixed | btag fixed | profiled |
    |---|---|---|---|---|
    | 40k (5, this test) | 0.0250 | 0.0934 | 0.0271 | 0.0954 |
    | 40k (6) | 0.0245 | 0.0874 | 0.0264 | 0.0945 |
    | 40k (7) | 0.0256 | 0.0940 | 0.0290 | 0.0958 |
    | 160k (5) | 0.0260 | 0.0959 | 0.0479 | 0.1050 |

    The b-tagging rate (±4 %) is degenerate with c_HW's linear rate term and dominates; JES alone
    widens the p_T^W histogram by 6–13 % at 40k events but 84 % at 160k (with the lepton resolution
    evaluated at E it was 40 % at 40k): its estimate from 1.3k test events is not stable, so the test
    asserts only that it widens. No truth_profiled at detector level (as no `truth`): the event
    weights are those of the parton truth together with x, a likelihood no analysis of x has (with
    it, the data would calibrate the JES jet by jet: 0.5 % wider, measured).
    """
    from assay.analysis import run_limits
    from assay.pipeline import run_pipeline
    from assay.store import EventStore

    data = _wh_config({"detector": {}}, [{"name": "jes"}, {"name": "btag"}])
    data["inference"] = {
        "luminosity_ifb": 300, "events": {"partition": "test"},
        "scans": [{"parameter": "cHW", "range": [-0.1, 0.1], "n_points": 41}],
        "histograms": [{"observables": ["pt_w"], "edges": [[0, 75, 150, 250, 400, 600, 1e9]]}],
    }  # fmt: skip
    cfg = config_from_dict(data)
    run_pipeline(cfg, tmp_path, progress=False)
    with EventStore(tmp_path / "events.h5") as store:
        assert store.extras_shapes["variations"] == (2, 2, 6)
        assert store.config["run"]["variations"] == ["jes", "btag"]
    run_limits(cfg, tmp_path, progress=False)
    level = next(iter(json.loads((tmp_path / "limits" / "results.json").read_text())["levels"].values()))
    assert "truth_profiled" not in level["systematics"] and "truth_profiled" not in level["intervals"]
    hist = {k: v["width_68_fixed"] for k, v in level["systematics"]["hist_pt_w_profiled"].items()}
    assert hist["none"] > 2.5 * hist["all"] and hist["btag"] > 1.05 * hist["all"]  # btag fixed: JES alone
    lo, hi = level["intervals"]["hist_pt_w_profiled"]["cHW_68"]
    assert lo < 0 < hi and hi - lo > 1.4 * hist["all"]
    sigma = level["systematics"]["hist_pt_w_profiled"]["jes"]["sigma"]
    assert 0 < sigma < 1.5, sigma  # the Hessian at c_HW = 0 is finite (no √θ NaN for a coupling)
    lo, hi = level["intervals"]["hist_pt_w"]["cHW_68"]  # the unprofiled histogram: the stat-only width
    assert hi - lo == pytest.approx(hist["all"], rel=0.05)
