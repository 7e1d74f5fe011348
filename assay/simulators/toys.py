"""Gaussian-amplitude toy: a simulator whose likelihood is known in closed form.

A real "amplitude" over the latent (parton-level) configuration z ∈ R^d,

    A(z|θ) = Σ_i θ̃_i a_i exp(-|z - m_i|² / (4 s²)),     θ̃ = (1, θ_1, …, θ_n),

gives the differential cross section dσ(z|θ)/dz = A(z|θ)² (pb per unit volume of z),
which is exactly quadratic in θ like |M|² of a dimension-6 EFT (so morphing with
all monomials up to total degree 2 is exact). The observation is a smeared copy,
x = z + N(0, δ² I). Products of the Gaussians are Gaussians, so everything is analytic:

    dσ(z|θ)/dz = Σ_ij θ̃_i θ̃_j K_ij N(z; μ_ij, s² I)
    σ(θ)       = θ̃ᵀ K θ̃,   K_ij = a_i a_j exp(-|m_i - m_j|² / (8 s²)) (2π s²)^{d/2}
    p(x|θ)     = Σ_ij θ̃_i θ̃_j K_ij N(x; μ_ij, (s² + δ²) I) / σ(θ),   μ_ij = (m_i + m_j) / 2

Events are drawn from p(z|θ_gen) by exact rejection sampling: by Cauchy–Schwarz
A² ≤ n Σ_i θ̃_i² a_i² exp(-|z - m_i|²/(2s²)), a positive Gaussian mixture. Their
weights at any θ are the reweighting w(z|θ) = dσ(z|θ) / Σ_j N_j p(z|θ_gen,j), so
Σ w = σ(θ) in expectation (seed 000 "LO reweighting").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assay.morphing import as_thetas

__all__ = ["GaussianToy", "ToyEvents"]


@dataclass(frozen=True)
class ToyEvents:
    """Events from :meth:`GaussianToy.simulate`.

    Attributes:
        x: observed values ``(n_events, n_obs)``.
        z: latent values ``(n_events, n_obs)``.
        weights: weights in pb at each requested benchmark ``(n_events, n_benchmarks)``.
        generator: index of the θ_gen each event was drawn at ``(n_events,)``.
    """

    x: np.ndarray
    z: np.ndarray
    weights: np.ndarray
    generator: np.ndarray


@dataclass(frozen=True)
class GaussianToy:
    """Toy simulator with exact likelihood, quadratic in θ.

    Args:
        means: centres m_i of the amplitude terms, ``(n_params + 1, n_obs)``; row 0 is the SM.
        amplitudes: a_i, ``(n_params + 1,)`` in pb^½.
        width: s, the width of the latent structures.
        smearing: δ, the Gaussian resolution from z to x.

    Example:
        >>> toy = GaussianToy.default(n_params=2)
        >>> round(float(toy.cross_section(np.zeros(2))), 6) == round(float(toy.K[0, 0]), 6)
        True
    """

    means: np.ndarray
    amplitudes: np.ndarray
    width: float = 1.0
    smearing: float = 0.5
    K: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        means = np.atleast_2d(np.asarray(self.means, dtype=float))
        amps = np.asarray(self.amplitudes, dtype=float)
        if amps.shape != (len(means),):
            raise ValueError(f"amplitudes: expected shape ({len(means)},), got {amps.shape}")
        if self.width <= 0 or self.smearing < 0:
            raise ValueError(f"width must be > 0 and smearing >= 0, got {self.width}, {self.smearing}")
        d = means.shape[1]
        dist2 = np.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=-1)
        volume = (2 * np.pi * self.width**2) ** (d / 2)
        K = np.outer(amps, amps) * np.exp(-dist2 / (8 * self.width**2)) * volume
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "amplitudes", amps)
        object.__setattr__(self, "K", K)

    @classmethod
    def default(cls, n_params: int = 2, n_obs: int = 2, *, smearing: float = 0.5) -> GaussianToy:
        """A fixed, well-separated configuration used by the demo and tests."""
        angles = 2 * np.pi * np.arange(n_params) / max(n_params, 1)
        means = np.zeros((n_params + 1, n_obs))
        means[1:, 0] = 1.2 * np.cos(angles)
        if n_obs > 1:
            means[1:, 1] = 1.2 * np.sin(angles)
        amps = np.concatenate([[1.0], 0.8 / np.sqrt(1 + np.arange(n_params))])
        return cls(means, amps, width=1.0, smearing=smearing)

    @property
    def n_params(self) -> int:
        return len(self.amplitudes) - 1

    @property
    def n_obs(self) -> int:
        return self.means.shape[1]

    def _theta_tilde(self, theta: np.ndarray) -> np.ndarray:
        thetas = as_thetas(theta, self.n_params)
        return np.concatenate([np.ones((len(thetas), 1)), thetas], axis=1)

    def _one_theta_tilde(self, theta: np.ndarray) -> np.ndarray:
        """θ̃ = (1, θ) for exactly one θ ``(n_params,)``."""
        if np.ndim(theta) != 1:
            raise ValueError(f"theta: expected one point of shape ({self.n_params},), got {np.shape(theta)}")
        return self._theta_tilde(theta)[0]

    # ---- cross sections -------------------------------------------------------------
    def cross_section(self, theta: np.ndarray) -> np.ndarray:
        """σ(θ) in pb: scalar array for ``(n_params,)``, ``(n_theta,)`` for many θ."""
        tt = self._theta_tilde(theta)
        out = np.einsum("ti,ij,tj->t", tt, self.K, tt)
        return out[0] if np.ndim(theta) == 1 else out

    def cross_section_gradient(self, theta: np.ndarray) -> np.ndarray:
        """∇θ σ(θ) in pb at one θ ``(n_params,)``, shape ``(n_params,)``."""
        tt = self._one_theta_tilde(theta)
        return 2 * (self.K @ tt)[1:]

    def mean(self, theta: np.ndarray) -> np.ndarray:
        """Exact E[x|θ] = E[z|θ] = Σ_ij θ̃_i θ̃_j K_ij μ_ij / σ(θ) at one θ, shape ``(n_obs,)``."""
        tt = self._one_theta_tilde(theta)
        mu = 0.5 * (self.means[:, None, :] + self.means[None, :, :])
        return np.einsum("i,ij,ijd,j->d", tt, self.K, mu, tt) / (tt @ self.K @ tt)

    def _terms(self, z: np.ndarray) -> np.ndarray:
        """a_i exp(-|z - m_i|²/(4s²)), shape (n_events, n_params + 1)."""
        d2 = np.sum((np.asarray(z, float)[:, None, :] - self.means[None]) ** 2, axis=-1)
        return self.amplitudes * np.exp(-d2 / (4 * self.width**2))

    def amplitude(self, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """A(z|θ), shape ``(n_events, n_theta)``."""
        return self._terms(z) @ self._theta_tilde(theta).T

    def dsigma(self, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """dσ(z|θ)/dz in pb, shape ``(n_events, n_theta)``."""
        return self.amplitude(z, theta) ** 2

    # ---- event generation -----------------------------------------------------------
    def _draw_latent(self, theta: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        tt = self._one_theta_tilde(theta)
        mix = tt**2 * self.amplitudes**2
        active = mix > 0
        probs = mix / mix.sum()
        out, n_done = np.empty((n, self.n_obs)), 0
        while n_done < n:
            m = int(1.3 * active.sum() * (n - n_done)) + 16
            comp = rng.choice(len(probs), size=m, p=probs)
            z = self.means[comp] + self.width * rng.standard_normal((m, self.n_obs))
            g = (self._terms(z) / self.amplitudes) ** 2  # exp(-|z - m_i|²/(2s²))
            envelope = active.sum() * (g @ mix)
            target = self.dsigma(z, tt[1:])[:, 0]
            keep = z[rng.random(m) * envelope < target][: n - n_done]
            out[n_done : n_done + len(keep)] = keep
            n_done += len(keep)
        return out

    def simulate(
        self,
        n_events: Sequence[int] | int,
        theta_gen: np.ndarray,
        benchmarks: np.ndarray,
        rng: np.random.Generator,
    ) -> ToyEvents:
        """Draw events at one or several θ_gen and weight them at every benchmark.

        Args:
            n_events: events per generation point (one int per row of ``theta_gen``).
            theta_gen: generation points ``(n_params,)`` or ``(n_gen, n_params)``.
            benchmarks: points where weights are stored, ``(n_benchmarks, n_params)``.
            rng: random generator.

        Returns:
            :class:`ToyEvents` with Σ_events weights[:, k] ≈ σ(θ_k) in pb.
        """
        gens = as_thetas(theta_gen, self.n_params, "theta_gen")
        counts = np.broadcast_to(np.asarray(n_events, dtype=int), (len(gens),))
        z = np.concatenate([self._draw_latent(g, int(c), rng) for g, c in zip(gens, counts)])
        generator = np.repeat(np.arange(len(gens)), counts).astype(np.int32)
        # multi-channel weight: w = dσ(z|θ) / Σ_j N_j p(z|θ_j)
        density = self.dsigma(z, gens) / self.cross_section(gens)[None, :]
        weights = self.dsigma(z, as_thetas(benchmarks, self.n_params)) / (density @ counts)[:, None]
        x = z + self.smearing * rng.standard_normal(z.shape)
        return ToyEvents(x=x, z=z, weights=weights, generator=generator)

    # ---- exact likelihood -----------------------------------------------------------
    def _mixture_density(self, x: np.ndarray) -> np.ndarray:
        """G_ij(x) = K_ij N(x; μ_ij, (s²+δ²) I), shape (n_events, P, P)."""
        var = self.width**2 + self.smearing**2
        mu = 0.5 * (self.means[:, None, :] + self.means[None, :, :])
        d2 = np.sum((x[:, None, None, :] - mu[None]) ** 2, axis=-1)
        norm = (2 * np.pi * var) ** (-self.n_obs / 2)
        return self.K[None] * norm * np.exp(-d2 / (2 * var))

    def log_likelihood(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Exact log p(x|θ), shape ``(n_events, n_theta)`` (or ``(n_events,)`` for one θ)."""
        tt = self._theta_tilde(theta)
        num = np.einsum("ti,nij,tj->nt", tt, self._mixture_density(np.asarray(x, float)), tt)
        out = np.log(num) - np.log(np.einsum("ti,ij,tj->t", tt, self.K, tt))[None, :]
        return out[:, 0] if np.ndim(theta) == 1 else out

    def log_ratio(self, x: np.ndarray, theta0: np.ndarray, theta1: np.ndarray) -> np.ndarray:
        """Exact log r(x|θ0, θ1) = log p(x|θ0) − log p(x|θ1), shape ``(n_events,)``."""
        return self.log_likelihood(x, theta0) - self.log_likelihood(x, theta1)

    def score(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Exact t(x|θ) = ∇θ log p(x|θ) at one θ ``(n_params,)``, shape ``(n_events, n_params)``."""
        tt = self._one_theta_tilde(theta)
        G = self._mixture_density(np.asarray(x, float))
        num = np.einsum("i,nij,j->n", tt, G, tt)
        grad_num = 2 * np.einsum("nij,j->ni", G, tt)[:, 1:]
        return grad_num / num[:, None] - self.cross_section_gradient(theta) / (tt @ self.K @ tt)

    def joint_log_ratio(self, z: np.ndarray, theta0: np.ndarray, theta1: np.ndarray) -> np.ndarray:
        """Exact log r(x,z|θ0,θ1) = log p(z|θ0) − log p(z|θ1), shape ``(n_events,)``."""
        t0, t1 = np.asarray(theta0, float), np.asarray(theta1, float)
        return (
            np.log(self.dsigma(z, t0)[:, 0])
            - np.log(self.dsigma(z, t1)[:, 0])
            - np.log(self.cross_section(t0))
            + np.log(self.cross_section(t1))
        )

    def joint_score(self, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Exact t(x,z|θ) = ∇θ log p(z|θ), shape ``(n_events, n_params)``."""
        tt = self._one_theta_tilde(theta)
        terms = self._terms(z)
        amp = terms @ tt
        return 2 * terms[:, 1:] / amp[:, None] - self.cross_section_gradient(theta) / (tt @ self.K @ tt)
