"""Closure tests of the off-shell simulator's systematic variations (assay.simulators.offshell_systematics).

A variation is a per-event factor F_c^±(x) on each component; the tests check that reweighting the
nominal events by F reproduces events generated (or transformed) under the varied model:

- recoil (``gg_shower``): dP/dp_T² = 2/q² (1 + p_T²/q²)^−3, so P(p_T² < t) = 1 − (1 + t/q²)^−2
  (docs/offshell.md); without lepton cuts p_T4ℓ factorises from everything else exactly.
- lepton scale: the observed momenta are s·X with X from the nominal model; the reference events
  come from a wider generated region (m4ℓ 200–1100 GeV, lepton p_T > 6.5 GeV) so that migration
  across the selection edges is present in both, and the comparison is exact everywhere.

Monte Carlo statements use √(Σ w²) errors (of the per-event difference where both sides are made
from the same events) and fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.simulators.offshell import OFFSHELL_EXTRAS, OffshellBatchSimulator, OffshellSimulator
from assay.simulators.offshell_phase_space import Recoil
from assay.simulators.offshell_systematics import VARIATIONS, SystematicsModel, variation_factors
from assay.simulators.phase_space import mass2

pytest.importorskip("pythia8mc")  # the PDFs come from Pythia

MU = np.array([0.0, 1.0])
S, I, B_GG, B_QQ = range(4)
GG = [S, I, B_GG]
N_SIGMA = 4.0


@pytest.fixture(scope="module")
def pdf():
    from assay.simulators.pdf import PDFGrid

    return PDFGrid()


@pytest.fixture(scope="module")
def sim(pdf) -> OffshellSimulator:
    return OffshellSimulator(MU, pdf=pdf, systematics=VARIATIONS)


@pytest.fixture(scope="module")
def events(sim):
    return sim.simulate(60_000, np.random.default_rng(11))


def _m4l(leptons: np.ndarray) -> np.ndarray:
    return np.sqrt(mass2(leptons.sum(axis=1)))


def _pt4l2(leptons: np.ndarray) -> np.ndarray:
    q = leptons.sum(axis=1)
    return q[:, 1] ** 2 + q[:, 2] ** 2


def _assert_close(diff: np.ndarray, err: np.ndarray, what: str) -> None:
    pull = diff / np.maximum(err, 1e-300)
    assert np.all(np.abs(pull) < N_SIGMA), f"{what}: pulls {np.round(pull, 2)}"


# ---- contract --------------------------------------------------------------------------------
def test_shapes_finite_and_positive(events):
    f = events.variations
    assert f.shape == (len(events), len(VARIATIONS), 2, 4)
    assert np.all(np.isfinite(f))
    scale = VARIATIONS.index("lepton_scale")
    others = [j for j in range(len(VARIATIONS)) if j != scale]
    assert np.all(f[:, others] > 0)
    # lepton scale: S, B ≥ 0 (0 where the scaled-back momenta leave m_ℓℓ > 5 GeV); I may change sign
    assert np.all(f[:, scale][..., [S, B_GG, B_QQ]] >= 0)
    assert np.mean(f[:, scale][..., [S, B_GG, B_QQ]] > 0) > 0.999


def test_default_output_unchanged(pdf, sim):
    plain = OffshellSimulator(MU, pdf=pdf)
    a, b = plain.simulate(5000, np.random.default_rng(3)), sim.simulate(5000, np.random.default_rng(3))
    assert a.variations is None
    for name in ("leptons", "ids", "components", "weights"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert OffshellBatchSimulator(plain).extras_shapes == OFFSHELL_EXTRAS
    batch = OffshellBatchSimulator(plain).batch(2000, np.random.default_rng(4))
    assert "variations" not in batch.extras


def test_batch_carries_variations_not_weight_like(sim):
    batch_sim = OffshellBatchSimulator(sim)
    assert batch_sim.extras_shapes["variations"] == (len(VARIATIONS), 2, 4)
    batch = batch_sim.batch(2000, np.random.default_rng(5))
    assert batch.extras["variations"].shape == (len(batch.x), len(VARIATIONS), 2, 4)
    assert "variations" not in batch.weight_like


def test_unknown_name_refused(pdf, events, sim):
    with pytest.raises(ValueError, match=r"valid names.*gg_nlo_qcd.*lepton_scale"):
        OffshellSimulator(MU, pdf=pdf, systematics=("gg_shower", "jes"))
    with pytest.raises(ValueError, match="'jes'"):
        variation_factors(sim, events.leptons, events.ids, ["jes"])


def test_shower_needs_recoil(pdf, events):
    no_recoil = OffshellSimulator(MU, pdf=pdf, recoil=None)
    with pytest.raises(ValueError, match="recoil=None"):
        variation_factors(no_recoil, events.leptons, events.ids, ("qq_shower",))


# ---- the m4ℓ-dependent normalisation variations ------------------------------------------------
def test_nlo_factors_as_documented(events):
    m = _m4l(events.leptons)
    f = events.variations
    qcd, ew = f[:, VARIATIONS.index("gg_nlo_qcd")], f[:, VARIATIONS.index("qq_nlo_ew")]
    delta = 0.10 + 0.10 * (m - 220.0) / 780.0  # 10 % at 220 GeV → 20 % at 1 TeV
    for k, sign in enumerate((1.0, -1.0)):
        np.testing.assert_allclose(qcd[:, k, GG], np.repeat((1 + sign * delta)[:, None], 3, 1), rtol=1e-12)
        np.testing.assert_allclose(ew[:, k, B_QQ], 1 + sign * 0.1 * (m / 1000.0) ** 2, rtol=1e-12)
    np.testing.assert_array_equal(qcd[..., B_QQ], 1.0)
    np.testing.assert_array_equal(ew[..., GG], 1.0)
    lo = np.argmin(m)
    assert 0.10 <= qcd[lo, 0, S] - 1 < 0.105
    assert SystematicsModel().gg_qcd_high == 0.20


# ---- parton-shower (recoil) variations ---------------------------------------------------------
@pytest.mark.parametrize("k, sign", [(0, 1.0), (1, -1.0)])
def test_gg_shower_reproduces_varied_recoil_density(pdf, k, sign):
    """Uncut gg events: Σ F w per p_T bin = σ_c × ∫ρ_{q(1±0.25)} over the bin (p_T factorises)."""
    sim = OffshellSimulator(MU, pdf=pdf, lepton_cuts=False, processes=("gg",), systematics=("gg_shower",))
    ev = sim.simulate(60_000, np.random.default_rng(21))
    f = ev.variations[:, 0, k]
    np.testing.assert_array_equal(f[:, B_QQ], 1.0)
    q = 30.0 * (1 + sign * 0.25)
    edges = np.array([0.0, 10.0, 20.0, 35.0, 50.0, 75.0, 110.0, 170.0, np.inf])
    cdf = 1.0 - (1.0 + edges**2 / q**2) ** -2.0
    pt = np.sqrt(_pt4l2(ev.leptons))
    for c in (S, B_GG):
        w = ev.components[:, c]
        fw = f[:, c] * w
        hist = np.histogram(pt, edges, weights=fw)[0]
        err = np.sqrt(np.histogram(pt, edges, weights=fw**2)[0])
        # σ_c from the nominal weights: its error is folded in through the per-bin difference
        per_event = fw[:, None] * _onehot(pt, edges) - w[:, None] * np.diff(cdf)[None, :]
        _assert_close(hist - w.sum() * np.diff(cdf), np.sqrt((per_event**2).sum(0)), f"c={c} p_T bins")
        assert err.min() > 0
        # shape-only: Σ F w = Σ w
        _assert_close(np.array([(fw - w).sum()]), np.array([np.sqrt(((fw - w) ** 2).sum())]), "norm")


def _onehot(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="right") - 1
    return (idx[:, None] == np.arange(len(edges) - 1)[None, :]).astype(float)


def test_shower_with_cuts_matches_sample_with_varied_recoil(pdf, events):
    """With lepton cuts: Σ F^+ w_c (nominal) = σ_c of a sample generated with q_gg, q_qq × 1.25."""
    varied = OffshellSimulator(MU, pdf=pdf, recoil=Recoil(q_gg=37.5, q_qq=22.5))
    ref = varied.simulate(60_000, np.random.default_rng(12))
    f_gg = events.variations[:, VARIATIONS.index("gg_shower"), 0]
    f_qq = events.variations[:, VARIATIONS.index("qq_shower"), 0]
    fw = np.where(np.isin(np.arange(4), GG), f_gg, f_qq) * events.components
    diff = fw.sum(0) - ref.components.sum(0)
    err = np.sqrt((fw**2).sum(0) + (ref.components**2).sum(0))
    _assert_close(diff, err, "σ_c with q × 1.25")
    # the acceptance barely depends on p_T4ℓ: the shape-only variations keep σ (within MC error)
    d = fw - events.components
    _assert_close(d.sum(0), np.sqrt((d**2).sum(0)), "Σ F w − Σ w")


# ---- lepton energy scale -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide(pdf):
    """Truth events generated beyond the nominal selection (m4ℓ 200–1100 GeV, p_T > 6.5 GeV)."""
    sim = OffshellSimulator(MU, pdf=pdf, m4l_range=(200.0, 1100.0), lepton_pt_min=6.5)
    return sim.simulate(150_000, np.random.default_rng(13))


def _selected(sim: OffshellSimulator, leptons: np.ndarray, ids: np.ndarray) -> np.ndarray:
    m = _m4l(leptons)
    return sim.passes_cuts(leptons, ids) & (m > sim.m4l_range[0]) & (m < sim.m4l_range[1])


@pytest.mark.parametrize("k, scale", [(0, 1.005), (1, 0.995)])
def test_lepton_scale_is_the_density_of_scaled_events(sim, wide, k, scale):
    """Σ F w over selected x = Σ w over truth X whose scaled momenta s·X are selected, everywhere.

    Both sides are made from the same truth events (the per-event difference gives the error), so
    the check resolves the Jacobian: s⁻⁴ instead of s⁻⁸ fails by ≈ 8σ.
    """
    f = variation_factors(sim, wide.leptons, wide.ids, ("lepton_scale",))[:, 0, k]
    here, there = _selected(sim, wide.leptons, wide.ids), _selected(sim, wide.leptons * scale, wide.ids)
    w = wide.components
    m_edges = np.array([220.0, 240.0, 270.0, 320.0, 400.0, 550.0, 750.0, 1000.0])
    pt_edges = np.array([7.0, 20.0, 40.0, 70.0, 120.0, 250.0, 2000.0])
    observed = (_m4l(wide.leptons), np.hypot(wide.leptons[:, 0, 1], wide.leptons[:, 0, 2]))
    for c in (S, B_GG, B_QQ):
        for jacobian, expect_pass in ((1.0, True), (scale**4, False)):
            fw = f[:, c] * jacobian * w[:, c] * here
            diff = fw.sum() - (w[:, c] * there).sum()
            err = np.sqrt(((fw - w[:, c] * there) ** 2).sum())
            assert (abs(diff) < N_SIGMA * err) == expect_pass, (c, jacobian, diff / err)
        fw = f[:, c] * w[:, c] * here
        for values, edges in zip(observed, (m_edges, pt_edges), strict=True):
            d = fw[:, None] * _onehot(values, edges) - (w[:, c] * there)[:, None] * _onehot(
                values * scale, edges
            )
            _assert_close(d.sum(0), np.sqrt((d**2).sum(0)), f"c={c} s={scale} bins {edges}")


def test_lepton_scale_matches_scaled_nominal_events_away_from_edges(events):
    """The nominal events with momenta × 1.005 against the nominal events reweighted by F^+,
    in m4ℓ bins away from the window edges and with every lepton p_T > 8 GeV (away from the 7 GeV
    cut): at the edges the scaled sample lacks the migration into the selection."""
    f = events.variations[:, VARIATIONS.index("lepton_scale"), 0]
    m = _m4l(events.leptons)
    pt_ok = np.hypot(events.leptons[..., 1], events.leptons[..., 2]).min(axis=1) > 8.0
    pt_ok_scaled = 1.005 * np.hypot(events.leptons[..., 1], events.leptons[..., 2]).min(axis=1) > 8.0
    edges = np.array([260.0, 320.0, 400.0, 550.0, 900.0])
    for c in (S, B_GG, B_QQ):
        w = events.components[:, c]
        d = (f[:, c] * w * pt_ok)[:, None] * _onehot(m, edges)
        d -= (w * pt_ok_scaled)[:, None] * _onehot(m * 1.005, edges)
        _assert_close(d.sum(0), np.sqrt((d**2).sum(0)), f"c={c}")


def test_variations_round_trip_through_the_event_store(sim, tmp_path):
    from assay.generation import generate

    store = generate(OffshellBatchSimulator(sim), tmp_path / "ev.h5", 4000, seed=1, benchmarks=["mu0", "mu1"],
                     batch_size=2000, progress=False)  # fmt: skip
    assert store.extras_shapes["variations"] == (len(VARIATIONS), 2, 4)
    chunk = store.read()
    batch = OffshellBatchSimulator(sim).batch(2000, np.random.default_rng([1, 0]))
    np.testing.assert_array_equal(chunk.extras["variations"][: len(batch.x)], batch.extras["variations"])
    store.close()
