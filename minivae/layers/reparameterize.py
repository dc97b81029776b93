"""The reparameterization trick: a sample of N(mu, diag exp(logvar)) as a differentiable
function of mu and logvar.

    std = exp(0.5 * logvar)
    z   = mu + std * eps,            eps ~ N(0, I)
    dz/dmu = 1,   dz/dlogvar = 0.5 * std * eps

``logvar`` is the log of the *variance*; ``minivae.losses.gaussian_kl`` reads it the same way.
"""

import numpy as np

from minivae.layers.base import Layer


def sample(mu, logvar, eps):
    """z = mu + exp(0.5 logvar) * eps, and std = exp(0.5 logvar): the formula, written once.
    Any shapes that broadcast, e.g. mu (N, 1, Z) against eps (N, k, Z) for k samples each."""
    std = np.exp(0.5 * logvar)
    return mu + std * eps, std


class Reparameterize(Layer):
    """(mu, logvar) (N, Z) -> z (N, Z).   The eps used is kept in ``self.eps``."""

    def __init__(self, rng=None, *, check_inputs=True):
        super().__init__()
        self.rng = np.random.default_rng(rng)
        self.eps = None
        self.check_inputs = bool(check_inputs)

    def forward(self, mu, logvar, eps=None):
        self.check(mu, "mu", ndim=2)
        self.check(logvar, "logvar", shape=mu.shape, dtype=mu.dtype)
        if eps is None:
            eps = self.rng.standard_normal(mu.shape, dtype=mu.dtype)   # (N, Z)
        self.check(eps, "eps", shape=mu.shape, dtype=mu.dtype, like="mu")
        z, std = sample(mu, logvar, eps)                                # (N, Z) x2
        self.eps, self.cache = eps, (eps, std)
        return z

    def backward(self, dz):
        eps, std = self.cached()
        self.check(dz, "dz", shape=eps.shape, dtype=eps.dtype)
        dmu = dz.copy()                                                 # dz/dmu = 1
        dlogvar = dz * 0.5 * std * eps                                  # dz/dlogvar = std eps / 2
        return dmu, dlogvar
