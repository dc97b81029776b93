"""Distributions whose density is known, for a generator to learn: mixtures of isotropic
Gaussians, such as two bumps on a line or the ring of 8 Gaussians in the plane, with their
samplers, their log-densities, and the count of modes that a sample covers.

    p(x) = sum_k w_k N(x | m_k, s_k^2 I)           means (K, D), stds (K,), weights (K,)

A GAN's theory is stated in terms of p_data (the optimal discriminator is
p_data / (p_data + p_g)); here p_data is known, so the statements can be checked (lesson 11).
"""

import numpy as np

from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.models.density import logsumexp


class IsotropicMixture:
    """sum_k w_k N(m_k, s_k^2 I).   means (K, D); stds: a number or (K,); weights (K,) or None
    for equal weights."""

    def __init__(self, means, stds, weights=None):
        who = "IsotropicMixture"
        self.means = check_array(np.asarray(means, dtype=np.float64), who, ndim=2, name="means")
        K = len(self.means)
        self.stds = np.broadcast_to(np.asarray(stds, dtype=np.float64), (K,)).copy()
        w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
        if not (np.all(self.stds > 0) and np.all(np.isfinite(self.stds))):
            raise InputError(f"{who}: stds must be finite and > 0, got {stds!r}")
        if w.shape != (K,) or not (np.all(w >= 0) and abs(w.sum() - 1) < 1e-12):
            raise InputError(f"{who}: weights must be {K} numbers >= 0 that sum to 1, got "
                             f"{weights!r}")
        self.weights = w

    @property
    def dim(self):
        return self.means.shape[1]

    def sample(self, n, rng, dtype=np.float32):
        """n draws.   -> x (n, D) and the component of each, k (n,)."""
        n = check_count(n, "IsotropicMixture.sample", "n")
        rng = np.random.default_rng(rng)
        k = rng.choice(len(self.weights), size=n, p=self.weights)             # (n,)
        eps = rng.standard_normal((n, self.dim))                              # (n, D)
        return (self.means[k] + self.stds[k, None] * eps).astype(dtype), k

    def log_prob(self, x):
        """log p(x) per row, float64.   x (N, D) -> (N,)."""
        check_array(x, "IsotropicMixture.log_prob", shape=(None, self.dim))
        x = x.astype(np.float64)
        d2 = ((x[:, None, :] - self.means[None]) ** 2).sum(axis=2)           # (N, K)
        D = self.dim
        log_N = -0.5 * d2 / self.stds ** 2 - D * np.log(self.stds) - 0.5 * D * np.log(2 * np.pi)
        return logsumexp(np.log(self.weights) + log_N, axis=1)               # (N,)

    def pdf(self, x):
        """p(x) per row.   x (N, D) -> (N,)."""
        return np.exp(self.log_prob(x))


def ring(n_modes=8, radius=2.0, std=0.02):
    """The ring of ``n_modes`` equal Gaussians, centres radius (cos 2 pi k/K, sin 2 pi k/K)."""
    n_modes = check_count(n_modes, "ring", "n_modes")
    angle = 2 * np.pi * np.arange(n_modes) / n_modes
    return IsotropicMixture(radius * np.stack([np.cos(angle), np.sin(angle)], axis=1), std)


def modes_covered(x, mixture, n_std=3.0, min_share=0.25):
    """How many modes of ``mixture`` a sample x (N, D) covers, and its share of good samples.

    A sample is *good* if it lies within n_std standard deviations of some mode's mean; a
    mode is *covered* if at least min_share of its fair share (min_share * N / K) of the
    samples are good ones near it. -> (modes covered (int), share of good samples (float),
    samples near each mode (K,)).
    """
    check_array(x, "modes_covered", shape=(None, mixture.dim))
    d = np.sqrt(((x.astype(np.float64)[:, None, :] - mixture.means[None]) ** 2).sum(axis=2))
    near = d <= n_std * mixture.stds                                           # (N, K)
    nearest = np.where(near.any(axis=1), d.argmin(axis=1), -1)                 # (N,)
    K = len(mixture.means)
    counts = np.bincount(nearest[nearest >= 0], minlength=K)                   # (K,)
    covered = int((counts >= min_share * len(x) / K).sum())
    return covered, float((nearest >= 0).mean()), counts
