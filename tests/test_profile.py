"""Seed 003's profiled unbinned likelihood on a model with exact densities.

x ∈ [0, 1], p_ref uniform; a signal peak s, a destructive interference i = −2c√(s b) (c = 0.25, so
|i| ≤ 2√(s b)), a background b. Processes S = s, SBI = s + i + b, B = b with f = (μ − √μ, √μ, 1 − √μ)
(benchmarks μ = 0, 1, 4; S = (W4 − 2 W1 + W0)/2, SBI = W1, B = W0), so Σ_j f_j p_j ν_j = μ s + √μ i + b.
Nuisances, each exact at α = ±1: ``b_shape`` (b ∝ exp(±κ(x − 0.4)): slope and yield), ``b_norm``
(b × 1.05 / 0.95) and ``s_norm`` (s × 1.1 / 0.9, so i × √1.1 / √0.9); each varies every process
containing the part it changes (SBI included), by exact ratios of normalised densities (g) and yields (G).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from assay.estimators.mixture_processes import process_coefficients
from assay.inference.likelihood import expected_scan
from assay.inference.profile_likelihood import ProfileLikelihood, asimov_weights
from assay.inference.profile_terms import ProcessCoefficients, ProfileTerms
from assay.morphing import Morpher

torch.set_num_threads(1)

S0, B0, KAPPA, C_INT = 150.0, 1000.0, 0.5, 0.25  # yields in events, slope, interference strength
GRID = (np.arange(20_000) + 0.5) / 20_000  # midpoints: integrals over [0, 1] are grid means
NAMES = ("b_shape", "b_norm", "s_norm")
VARIATIONS = {  # nuisance → (+1, −1) variations as (signal scale, background slope, background scale)
    "b_shape": ((1.0, 1.0, 1.0), (1.0, -1.0, 1.0)),
    "b_norm": ((1.0, 0.0, 1.05), (1.0, 0.0, 0.95)),
    "s_norm": ((1.1, 0.0, 1.0), (0.9, 0.0, 1.0)),
}
MORPHER = Morpher([[0.0], [0.5], [1.0]], [[0.0], [1.0], [4.0]])
MATRIX = np.array([[0.5, -1.0, 0.5], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # S, SBI, B of (W0, W1, W4)
COEFFICIENTS = ProcessCoefficients(MORPHER, MATRIX)


def densities(x: np.ndarray, s_scale: float = 1.0, slope: float = 0.0, b_scale: float = 1.0) -> np.ndarray:
    """Unnormalised S, SBI, B in events per unit x ``(3, n)``."""
    s = S0 * stats.norm.pdf(x, 0.5, 0.05)
    b0 = B0 * np.ones_like(x)
    b = b_scale * b0 * np.exp(KAPPA * slope * (x - 0.4))
    i = -2 * C_INT * np.sqrt(s_scale * s * b0)
    return np.stack([s_scale * s, s_scale * s + i + b, b])


def truth(x: np.ndarray, mu: float, slope: float = 0.0) -> np.ndarray:
    """μ s + √μ i + b(slope), events per unit x ``(n,)``: the physics the model interpolates."""
    s, sbi, b = densities(x, slope=slope)
    return mu * s + np.sqrt(mu) * (sbi - s - b) + b


def make_terms(x: np.ndarray) -> ProfileTerms:
    nominal, nu = densities(x), densities(GRID).mean(axis=1)
    up, down, norm_up, norm_down = [], [], [], []
    for name in NAMES:
        for variation, shapes, norms in (
            (VARIATIONS[name][0], up, norm_up),
            (VARIATIONS[name][1], down, norm_down),
        ):
            nu_var = densities(GRID, *variation).mean(axis=1)
            shapes.append((densities(x, *variation) / nu_var[:, None]) / (nominal / nu[:, None]))
            norms.append(nu_var / nu)
    return ProfileTerms(
        nominal / nu[:, None], nu, up, down, norm_up, norm_down, NAMES, processes=("S", "SBI", "B")
    )


TERMS = make_terms(GRID)
FLAT = np.ones(len(GRID))  # the grid is a sample of p_ref: normalises the interpolated densities


def crossings(values: np.ndarray, q: np.ndarray, level: float = 1.0) -> tuple[float, float]:
    """Where q crosses ``level`` left and right of its minimum (linear interpolation)."""
    best = int(np.argmin(q))
    left = np.interp(level, q[: best + 1][::-1], values[: best + 1][::-1])
    right = np.interp(level, q[best:], values[best:])
    return float(left), float(right)


def test_coefficients_are_the_sqrt_mu_mixture():
    for mu in (0.0, 0.3, 1.0, 4.0, 6.25):
        f = COEFFICIENTS(torch.tensor([mu], dtype=torch.float64)).numpy()
        root = np.sqrt(mu)
        np.testing.assert_allclose(f, [mu - root, root, 1 - root], atol=1e-12)
        np.testing.assert_allclose(f, process_coefficients(MORPHER, MATRIX, [mu])[0], atol=1e-12)
    assert COEFFICIENTS.bounds == ((0.0, None),)


@pytest.mark.parametrize("interpolation", ["vertical", "exponential", "linear"])
@pytest.mark.parametrize("normalised", [False, True])
def test_analytic_gradient_equals_autograd(interpolation, normalised):
    """MIGRAD's numpy value and gradient equal torch autograd of the same −2 log L to 1e-9 (relative)
    at random (μ, α) inside and outside |α| ≤ 1, with a free nuisance, Poisson weights, partly
    touched processes, and events clipped at the floor; a wrong sign or a missing normalisation
    term would be off at order 1."""
    rng = np.random.default_rng(3)
    terms = make_terms(GRID[::40])
    n = terms.n_events
    with_free = ProfileTerms(terms.ratios, terms.nu, terms.shape_up, terms.shape_down, terms.norm_up,
                             terms.norm_down, terms.names, (True, False, True))  # fmt: skip
    likelihood = ProfileLikelihood(
        with_free, rng.poisson(1.0, n).astype(float), COEFFICIENTS, interpolation=interpolation,
        normalization=rng.uniform(0.2, 1.0, n) if normalised else None,
        global_observables=rng.normal(0, 1, 3), floor=0.9 if interpolation == "linear" else 0.0,
    )
    if interpolation == "linear":  # S_i < 0.9 ν on part of the flat background: clipped there
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        rates, total = likelihood.event_rates(one, zero)
        assert 0 < int((rates < 0.9 * total).sum()) < n
    for values in [[0.0, 0.3, -0.2, 0.1], [1.0, 0.0, 0.0, 0.0]] + [
        [rng.uniform(0.01, 5.0), *rng.normal(0, 1.5 if interpolation != "linear" else 0.3, 3)]
        for _ in range(12)
    ]:
        value, gradient = likelihood.value_and_gradient(np.array(values))
        point = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        expected = likelihood.nll(point[:1], point[1:])
        (expected_gradient,) = torch.autograd.grad(expected, point)
        assert value == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
        if values[0] > 0:  # √μ is not differentiable at μ = 0 (the scan's fixed end)
            np.testing.assert_allclose(gradient, expected_gradient.numpy(), rtol=1e-9, atol=1e-8)
        else:
            np.testing.assert_allclose(gradient[1:], expected_gradient.numpy()[1:], rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("interpolation", ["vertical", "gollum", "exponential"])
def test_hessian_equals_torch_autograd_and_falls_back_at_a_bound(interpolation, monkeypatch):
    """The covariance's Hessian (central differences of the exact gradient for the twice
    differentiable interpolations, no autograd) equals torch autograd's Hessian of the same −2 log L
    to 1e-6 (relative to its largest entry) inside and outside |α| ≤ 1, also at α = 0 where the
    exponential interpolation's slope jumps (there: autograd's); at μ = 0 (the POI's bound, where a
    step would leave the domain of √μ) it is torch's exactly."""
    rng = np.random.default_rng(8)
    terms = make_terms(GRID[::40])
    likelihood = ProfileLikelihood(terms, rng.poisson(1.0, terms.n_events).astype(float), COEFFICIENTS,
                                   interpolation=interpolation, global_observables=rng.normal(0, 1, 3))
    autograd = torch.autograd.functional.hessian
    points = ([1.0, 0.0, 0.0, 0.0], [2.3, 0.4, -1.6, 0.8], [0.4, 1.3, 0.2, -0.5])
    expected = [autograd(likelihood._nll_vector, torch.as_tensor(np.array(p))).numpy() for p in points]
    at_bound = np.array([0.0, 0.2, 0.1, -0.3])
    expected_at_bound = autograd(likelihood._nll_vector, torch.tensor(at_bound)).numpy()
    if interpolation != "exponential":  # the differences alone
        monkeypatch.setattr(torch.autograd.functional, "hessian", lambda *a, **k: pytest.fail("autograd"))
    for values, h_torch in zip(points, expected):
        h = likelihood.hessian(np.array(values))
        np.testing.assert_allclose(h, h_torch, rtol=0, atol=1e-6 * np.abs(h_torch).max())
    monkeypatch.setattr(torch.autograd.functional, "hessian", autograd)
    np.testing.assert_array_equal(likelihood.hessian(at_bound), expected_at_bound)


def test_spurious_signal_shifts_mu_and_its_gradient_equals_autograd():
    """Seed 003's f_j(μ + α_s Δμ̂(μ)): the rates at (μ, α_s) equal the rates at μ + α_s Δμ̂(μ) without
    the term; value and gradient equal autograd (also where μ + α_s Δ < 0, clamped to 0, and on a
    grid kink); the profiled interval widens by about Δμ̂ in quadrature."""
    from assay.inference.spurious_signal import SpuriousSignal

    names = (*NAMES, "training_statistics")
    ones = np.ones((1, *TERMS.shape_up.shape[1:]))
    terms = ProfileTerms(TERMS.ratios, TERMS.nu, np.concatenate([TERMS.shape_up, ones]),
                         np.concatenate([TERMS.shape_down, ones]), np.vstack([TERMS.norm_up, np.ones(3)]),
                         np.vstack([TERMS.norm_down, np.ones(3)]), names)  # fmt: skip
    shift = SpuriousSignal("training_statistics", np.array([0.0, 1.0, 4.0]), np.array([0.05, 0.2, 0.3]))
    plain = ProfileLikelihood(terms, None, COEFFICIENTS, normalization=FLAT)
    shifted = ProfileLikelihood(terms, None, COEFFICIENTS, normalization=FLAT, spurious=shift)
    alpha = torch.tensor([0.2, -0.3, 0.1, 1.5], dtype=torch.float64)
    mu = torch.tensor([2.0], dtype=torch.float64)
    moved = torch.tensor([2.0 + 1.5 * (0.2 + 0.1 / 3)], dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(shifted.event_rates(mu, alpha)[0], plain.event_rates(moved, alpha)[0])
    weights = asimov_weights(terms, COEFFICIENTS, [1.0], np.zeros(4), normalization=FLAT)
    model = ProfileLikelihood(terms, weights, COEFFICIENTS, normalization=FLAT, spurious=shift)
    for values in ([2.0, 0.2, -0.3, 0.1, 1.5], [0.02, 0.0, 0.1, 0.0, -2.0], [1.0, 0.0, 0.0, 0.0, 0.7],
                   [0.5, 0.4, 0.0, -0.2, -0.8]):  # fmt: skip
        value, gradient = model.value_and_gradient(np.array(values))
        point = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        expected = model.nll(point[:1], point[1:])
        (expected_gradient,) = torch.autograd.grad(expected, point)
        assert value == pytest.approx(expected.item(), rel=1e-10)
        np.testing.assert_allclose(gradient, expected_gradient.numpy(), rtol=1e-8, atol=1e-8)
    without = ProfileLikelihood(terms, weights, COEFFICIENTS, normalization=FLAT)
    fit, fit_without = model.fit(), without.fit()
    assert fit.values[0] == pytest.approx(1.0, abs=1e-3) and fit.alpha_hat[-1] == pytest.approx(0.0, abs=1e-3)
    sigma, sigma_without = fit.errors[0], fit_without.errors[0]
    assert sigma == pytest.approx(np.hypot(sigma_without, 0.2), rel=0.05), (sigma, sigma_without)
    with pytest.raises(ValueError, match="spurious: nuisance 'nope'"):
        ProfileLikelihood(terms, None, COEFFICIENTS, spurious=SpuriousSignal("nope", [0.0], [0.1]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", [0, 1])
def test_rates_are_exact_at_each_variation(name, side):
    """At α_k = ±1 (others 0) Σ_j f_j ν_j r_j G_jk g_jk is the varied physics, event by event."""
    x = np.linspace(0.01, 0.99, 97)
    model = ProfileLikelihood(make_terms(x), None, COEFFICIENTS)
    alpha = np.zeros(3)
    alpha[NAMES.index(name)] = 1.0 - 2 * side
    for mu in (0.5, 1.0, 3.0):
        rates, total = model.event_rates(torch.tensor([mu], dtype=torch.float64), torch.as_tensor(alpha))
        parts = densities(x, *VARIATIONS[name][side])
        nu = densities(GRID, *VARIATIONS[name][side]).mean(axis=1)
        f = np.array([mu - np.sqrt(mu), np.sqrt(mu), 1 - np.sqrt(mu)])
        np.testing.assert_allclose(rates.numpy(), f @ parts, rtol=1e-10)
        assert float(total) == pytest.approx(f @ nu, rel=1e-12)


def test_nominal_scan_equals_assays_extended_likelihood_scan():
    """Without nuisances the profile likelihood is seed 000's extended likelihood (expected_scan)."""
    terms = ProfileTerms.nominal(TERMS.ratios, TERMS.nu)
    weights = asimov_weights(terms, COEFFICIENTS, [1.0], [])
    model = ProfileLikelihood(terms, weights, COEFFICIENTS)
    mus = np.linspace(0.3, 2.0, 9)
    scan = model.scan(mus)
    rates = [model.event_rates(torch.tensor([m], dtype=torch.float64), torch.zeros(0)) for m in mus]
    log_r = np.array([np.log(r.numpy() / float(t)) for r, t in rates])
    nu = np.array([float(t) for _, t in rates])
    reference = expected_scan(mus[:, None], log_r, weights, nu, 1e-3)  # L σ · 1000 = ν for L = 1e-3 fb⁻¹
    q = scan.minus_2_delta_log_l
    np.testing.assert_allclose(q - q.min(), reference.minus_2_delta_log_l, atol=1e-6)


def test_asimov_recovers_an_injected_nuisance():
    """Asimov data (and its auxiliary measurement a = α_true) at μ = 1, α_shape = 0.7: α̂ = 0.7."""
    alpha_true = np.array([0.7, 0.0, 0.0])
    weights = asimov_weights(TERMS, COEFFICIENTS, [1.0], alpha_true, normalization=FLAT)
    model = ProfileLikelihood(TERMS, weights, COEFFICIENTS, global_observables=alpha_true, normalization=FLAT)
    fit = model.fit()
    assert fit.valid
    np.testing.assert_allclose(fit.values, [1.0, 0.7, 0.0, 0.0], atol=2e-3)
    # the Hessian error is the half width of the profiled scan in α at −2 log λ = 1
    sigma = fit.errors[1]
    values = 0.7 + sigma * np.linspace(-1.4, 1.4, 15)
    low, high = crossings(values, model.scan(values, parameter="b_shape", fit=fit).minus_2_delta_log_l)
    assert (high - low) / 2 == pytest.approx(sigma, rel=0.03)
    assert 0.1 < sigma < 0.5  # the data constrain α beyond its prior


def test_asimov_of_the_physics_recovers_the_nuisance_through_the_interpolation():
    """Data from b(x) ∝ exp(0.7 κ (x − 0.4)) itself (not the interpolated model): α̂ within 0.05 of 0.7."""
    weights = truth(GRID, 1.0, slope=0.7) / len(GRID)
    model = ProfileLikelihood(
        TERMS, weights, COEFFICIENTS, global_observables=[0.7, 0, 0], normalization=FLAT
    )
    fit = model.fit()
    assert fit.valid
    assert fit.alpha_hat[0] == pytest.approx(0.7, abs=0.05)
    assert fit.poi_hat[0] == pytest.approx(1.0, abs=0.05)


def test_pulls_of_poisson_pseudo_experiments_are_standard_normal():
    """200 toys: N ~ Pois(ν), events drawn from the true density, global observables a ~ N(0, 1).

    With randomised a, α̂ − α_true ~ N(0, C_kk) asymptotically (ν ≈ 1050 events here), so the pulls
    (α̂ − 0)/√C_kk are N(0, 1), as is (μ̂ − 1)/√C_μμ. Over 200 toys their mean has standard error
    1/√200 = 0.07 and their std 1/√400 = 0.05: the bounds |mean| < 0.2 and 0.8 < std < 1.2 are about 3
    and 4 standard errors. Events are drawn by acceptance-rejection, a fresh sample per toy: resampling
    one fixed pool of 50k weighted events gives every toy the pool's own fluctuations (a mean μ pull of
    −0.45 was measured that way, with Wilks's ⟨t(μ_true)⟩ ≈ 1 still holding). The densities are
    renormalised on a 4,000-point grid appended with zero weight.
    """
    rng = np.random.default_rng(7)
    reference = make_terms((np.arange(4000) + 0.5) / 4000)
    nu, top = truth(GRID, 1.0).mean(), truth(GRID, 1.0).max()
    pulls = []
    for _ in range(200):
        n = rng.poisson(nu)
        x = rng.uniform(size=3 * n)
        x = x[rng.uniform(size=3 * n) * top < truth(x, 1.0)][:n]  # acceptance ≈ 0.7
        terms = ProfileTerms.concatenate(make_terms(x), reference)
        weights, norm = np.r_[np.ones(n), np.zeros(4000)], np.r_[np.zeros(n), np.ones(4000)]
        aux = rng.normal(size=3)
        model = ProfileLikelihood(terms, weights, COEFFICIENTS, global_observables=aux, normalization=norm)
        fit = model.fit()
        assert fit.valid and len(x) == n
        pulls.append(np.r_[(fit.poi_hat[0] - 1) / fit.errors[0], model.pulls(fit, reference=np.zeros(3))])
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.2), pulls.mean(axis=0)
    assert np.all((pulls.std(axis=0) > 0.8) & (pulls.std(axis=0) < 1.2)), pulls.std(axis=0)


def test_seed_formula_without_normalization_is_biased_by_the_interpolated_shapes():
    """Seed 003's ν(μ, α) = Σ_j f_j ν_j Π_k G_jk ignores that ∫ p_j g_jk(x, α) dx ≠ 1 off α = 0, ±1 and
    in its α-derivative at ±1 (∫ p_j up ln up ≈ Var(ln up)/2): with Asimov data at α = +1 the score in α is
    −2 Σ_j ν_j(+1) ∫ p_j(x|+1) ln g_j(x, +1) ≈ −22 here, not 0; renormalising on a p_ref sample removes it."""
    alpha = np.array([1.0, 0.0, 0.0])
    weights = asimov_weights(TERMS, COEFFICIENTS, [1.0], alpha)
    varied = densities(GRID, *VARIATIONS["b_shape"][0])
    nu = varied.mean(axis=1)
    log_up = np.log(TERMS.shape_up[0])
    f = np.array([0.0, 1.0, 0.0])  # μ = 1
    expected = -2 * float(np.sum(f * (varied * log_up).mean(axis=1))) * 1.0
    for normalization, score in ((None, expected), (FLAT, 0.0)):
        model = ProfileLikelihood(
            TERMS, weights, COEFFICIENTS, global_observables=alpha, normalization=normalization
        )
        values = torch.tensor(np.r_[1.0, alpha], requires_grad=True)
        (grad,) = torch.autograd.grad(model.nll(values[:1], values[1:]), values)
        assert grad[1].item() == pytest.approx(score, abs=1e-6 + 1e-6 * abs(score))
    assert expected < -10 and nu[2] > 0


def _asimov_model(**kwargs) -> ProfileLikelihood:
    weights = asimov_weights(TERMS, COEFFICIENTS, [1.0], np.zeros(3), normalization=FLAT)
    return ProfileLikelihood(TERMS, weights, COEFFICIENTS, normalization=FLAT, **kwargs)


def test_profiling_widens_the_interval_and_each_fixed_nuisance_narrows_it():
    """Seed 003's "systematic fixed" table: stat-only ≤ one nuisance fixed ≤ all profiled."""
    model = _asimov_model()
    fit = model.fit()
    mus = np.linspace(0.5, 1.6, 23)
    full = model.scan(mus, fit=fit).minus_2_delta_log_l
    stat = model.scan(mus, fixed_alpha=fit.nuisances()).minus_2_delta_log_l
    assert np.all(full <= stat + 1e-6)
    width = {"all": np.diff(crossings(mus, full)), "stat": np.diff(crossings(mus, stat))}
    for name in NAMES:
        width[name] = np.diff(
            crossings(mus, model.scan(mus, fixed_alpha=fit.nuisances([name])).minus_2_delta_log_l)
        )
        assert width["stat"] - 1e-4 <= width[name] <= width["all"] + 1e-4, (name, width)
    assert width["all"] > 1.05 * width["stat"], width
    # the Hessian error on μ is the profiled scan's half width
    assert width["all"][0] / 2 == pytest.approx(fit.errors[0], rel=0.05)


def test_impacts_have_the_expected_signs_and_both_methods_agree():
    """More background (b_norm up) or more signal per unit μ (s_norm up) lowers μ̂."""
    model = _asimov_model()
    fit = model.fit()
    impacts = model.impacts(fit)
    assert impacts.names == NAMES and impacts.parameter == "mu"
    for name in ("b_norm", "s_norm"):
        k = NAMES.index(name)
        assert impacts.hessian[k] < 0 and impacts.up[k] < 0 < impacts.down[k], (name, impacts)
        assert impacts.covariance[k] < 0
    # with the others profiled, to first order C_μk/√C_kk = (up − down)/2 (the refits add curvature);
    # seed 003's Γ_k holds the others fixed: larger for b_shape, whose yield effect b_norm absorbs otherwise
    np.testing.assert_allclose(impacts.covariance, (impacts.up - impacts.down) / 2, rtol=0.1, atol=1e-3)
    assert abs(impacts.hessian[0]) > abs(impacts.covariance[0])
    h = model.hessian(fit.values)
    np.testing.assert_allclose(impacts.hessian, -h[0, 1:] / h[0, 0] * fit.errors[1:], rtol=1e-12)
    np.testing.assert_allclose(model.pulls(fit), 0.0, atol=1e-3)  # Asimov at the nominal α
    assert np.all(fit.errors[1:] < 1.0)  # constrained beyond the prior by the data


def test_profiled_scan_equals_a_brute_force_profile():
    """Minuit + autograd == scipy's Nelder-Mead on the same −2 log L (data away from the model)."""
    weights = asimov_weights(TERMS, COEFFICIENTS, [1.3], [0.4, -0.3, 0.2], normalization=FLAT)
    model = ProfileLikelihood(TERMS, weights, COEFFICIENTS, normalization=FLAT)
    mus = np.array([0.6, 1.0, 1.3, 1.7, 2.2])
    scan = model.scan(mus)

    def nll(mu: float, alpha: np.ndarray) -> float:
        return model.nll([mu], alpha).item()

    options = {"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000}
    profile = [
        optimize.minimize(lambda a, mu=mu: nll(mu, a), np.zeros(3), method="Nelder-Mead", options=options).fun
        for mu in mus
    ]
    best = optimize.minimize(lambda p: nll(p[0], p[1:]), np.r_[1.0, np.zeros(3)], method="Nelder-Mead",
                             bounds=[(0, None)] + [(None, None)] * 3, options=options).fun  # fmt: skip
    np.testing.assert_allclose(scan.minus_2_delta_log_l, np.array(profile) - best, atol=1e-4)


def test_free_and_fixed_nuisances():
    terms = ProfileTerms(TERMS.ratios, TERMS.nu, TERMS.shape_up, TERMS.shape_down, TERMS.norm_up,
                         TERMS.norm_down, NAMES, constrained=(False, True, True))  # fmt: skip
    weights = asimov_weights(terms, COEFFICIENTS, [1.0], [0.5, 0, 0], normalization=FLAT)
    model = ProfileLikelihood(terms, weights, COEFFICIENTS, normalization=FLAT)
    fit = model.fit()
    assert fit.alpha_hat[0] == pytest.approx(0.5, abs=2e-3)  # no constraint pulls it towards 0
    assert np.isnan(model.pulls(fit)[0])
    held = model.fit(fixed_alpha={"b_shape": 0.5, "s_norm": 0.0})
    assert held.fixed == ("b_shape", "s_norm") and held.errors[1] == 0 and held.errors[3] == 0
    stat = model.fit(fixed_poi=[1.0], fixed_alpha=fit.nuisances())  # nothing free
    assert stat.valid and stat.minus_2_log_l == pytest.approx(fit.minus_2_log_l, abs=1e-3)


def _replace(**changes) -> dict:
    names = ("ratios", "nu", "shape_up", "shape_down", "norm_up", "norm_down")
    fields = {name: getattr(TERMS, name) for name in names}
    fields["names"] = NAMES
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"shape_up": TERMS.shape_up[:, :2]}, r"shape_up: expected shape \(n_syst, n_proc, n_events\)"),
        ({"norm_down": TERMS.norm_down[:2]}, r"norm_down: expected shape \(n_syst, n_proc\) = \(3, 3\)"),
        ({"nu": TERMS.nu[:2]}, r"nu: expected shape \(n_proc,\)"),
        ({"ratios": TERMS.ratios[0]}, r"ratios: expected shape \(n_proc, n_events\)"),
        ({"ratios": np.where(GRID < 0.5, np.nan, TERMS.ratios)}, "ratios: .* NaN or infinite"),
        ({"shape_down": -TERMS.shape_down}, "shape_down: ratios at α = ±1 must be > 0"),
        ({"norm_up": np.zeros((3, 3))}, "norm_up: ratios at α = ±1 must be > 0"),
        ({"names": ("a", "a", "b")}, "names: nuisance names must be unique"),
        ({"names": ("a", "b")}, r"shape_up: expected shape .* = \(2, 3, 20000\)"),
    ],
)
def test_bad_terms_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        ProfileTerms(**_replace(**changes))


def test_bad_likelihood_arguments_are_named():
    with pytest.raises(ValueError, match=r"weights: expected .* \(n_events,\) = \(20000,\)"):
        ProfileLikelihood(TERMS, np.ones(5), COEFFICIENTS)
    with pytest.raises(ValueError, match=r"global_observables: expected .* \(3,\)"):
        ProfileLikelihood(TERMS, None, COEFFICIENTS, global_observables=[0.0])
    with pytest.raises(ValueError, match="normalization: expected"):
        ProfileLikelihood(TERMS, None, COEFFICIENTS, normalization=-FLAT)
    with pytest.raises(ValueError, match=r"interpolation: unknown name 'code4'; valid names are"):
        ProfileLikelihood(TERMS, None, COEFFICIENTS, interpolation="code4")
    model = ProfileLikelihood(TERMS, None, COEFFICIENTS)
    with pytest.raises(ValueError, match=r"fixed_alpha: unknown nuisance 'jes'; valid names are"):
        model.fit(fixed_alpha={"jes": 0.0})
    with pytest.raises(ValueError, match=r"fixed_poi: expected shape \(1,\)"):
        model.fit(fixed_poi=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"poi, alpha: expected shapes \(1,\) and \(3,\)"):
        model.nll([1.0], [0.0])
    with pytest.raises(ValueError, match="parameter: unknown name 'nope'"):
        model.scan([1.0], parameter="nope")


def test_a_gaussian_normalisation_is_linear_in_alpha_under_any_interpolation():
    """`constraint: gaussian`: G(α) = 1 + u α exactly (pyhf's lumi), where the log-normal/vertical
    form bends (its slope at ±1 is (1 ± u) ln(1 ± u)); the flag survives slicing, joining and appended
    nuisances; value and gradient equal autograd; GOLLUM's log-polynomial form refuses it; the
    weights' factors at ±1 are 1 ± u."""
    from dataclasses import replace

    from assay.analysis.systematics import component_factors
    from assay.config import NuisanceConfig
    from assay.inference.log_polynomial import LogPolynomialTerms

    u = 0.1
    n = TERMS.n_events
    one = np.ones((1, 3, n))
    terms = ProfileTerms(TERMS.ratios, TERMS.nu, one, one, np.full((1, 3), 1 + u), np.full((1, 3), 1 - u),
                         ("lumi",), linear_yields=(True,))  # fmt: skip
    bent = replace(terms, linear_yields=(False,))
    mu = torch.ones(1, dtype=torch.float64)
    for alpha in (0.5, -0.7, -2.0, 3.0):
        a = torch.tensor([alpha], dtype=torch.float64)
        with torch.no_grad():
            total = ProfileLikelihood(terms, None, COEFFICIENTS).event_rates(mu, a)[1]
            vertical = ProfileLikelihood(bent, None, COEFFICIENTS).event_rates(mu, a)[1]
        expected = TERMS.nu[1] * (1 + u * alpha)  # μ = 1: f = (0, 1, 0)
        assert float(total) == pytest.approx(expected, rel=1e-12)
        assert abs(float(vertical) - expected) > 1e-4 * expected
    likelihood = ProfileLikelihood(terms, np.ones(n), COEFFICIENTS, normalization=FLAT)
    for values in ([1.3, 0.4], [0.7, -1.6]):
        value, gradient = likelihood.value_and_gradient(np.array(values))
        point = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        expected_value = likelihood.nll(point[:1], point[1:])
        (expected_gradient,) = torch.autograd.grad(expected_value, point)
        assert value == pytest.approx(expected_value.item(), rel=1e-10)
        np.testing.assert_allclose(gradient, expected_gradient.numpy(), rtol=1e-8)
    assert terms.subset(np.arange(5)).linear_yields == (True,)
    assert ProfileTerms.concatenate(terms, terms).linear_yields == (True,)
    assert terms.with_nuisances(["x"], one, one).linear_yields == (True, False)
    with pytest.raises(ValueError, match="linear in α"):
        LogPolynomialTerms.from_profile_terms(terms)
    lumi = NuisanceConfig(name="lumi", normalisation=u, constraint="gaussian")
    factors = component_factors([lumi], None, [], ["S", "B"], 2)
    np.testing.assert_allclose(factors[:, 0, :, :], [[[1 + u] * 2, [1 - u] * 2]] * 2)
    with pytest.raises(ValueError, match="only applies to a `normalisation`"):
        NuisanceConfig(name="jes", constraint="gaussian")
