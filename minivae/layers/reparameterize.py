"""The reparameterization trick: a sample of N(mu, diag exp(logvar)) as a
differentiable function of mu and logvar.

    std = exp(0.5 * logvar)
    z   = mu + std * eps,            eps ~ N(0, I)
    dz/dmu = 1,   dz/dlogvar = 0.5 * std * eps

``logvar`` is the log of the *variance*; ``minivae.losses.gaussian_kl`` reads it the same way.
"""

import numpy as np

from minivae.checks import check_array, check_same_shape
from minivae.kernels import reparam as K
from minivae.layers.base import Layer, as_generator


class Reparameterize(Layer):
    """(mu, logvar) (N, Z) -> z (N, Z).   The eps used is kept in ``self.eps``."""

    def __init__(self, rng=None):
        super().__init__()
        self.rng = as_generator(rng)
        self.eps = None

    def forward(self, mu, logvar, eps=None):
        who = self                       # formatted (repr) only if a check fails
        check_array(mu, who, ndim=2, name="mu")
        check_array(logvar, who, shape=mu.shape, dtype=mu.dtype, name="logvar")
        if eps is None:
            eps = self.rng.standard_normal(mu.shape, dtype=mu.dtype)  # (N, Z)
        else:
            check_array(eps, who, dtype=mu.dtype, name="eps")
            check_same_shape(mu, eps, who, ("mu", "eps"))
        mu, logvar, eps = (np.ascontiguousarray(a) for a in (mu, logvar, eps))
        std = np.empty_like(mu)
        z = K.reparam_forward(mu, logvar, eps, np.empty_like(mu), std)   # (N, Z)
        self.eps = eps
        self.cache = (eps, std)
        return z

    def backward(self, dz):
        eps, std = self._cached()
        check_array(dz, self, shape=eps.shape, dtype=eps.dtype, name="dz")
        dz = np.ascontiguousarray(dz)
        dlogvar = K.reparam_backward(dz, eps, std, np.empty_like(dz))     # (N, Z)
        return dz.copy(), dlogvar                                        # dmu = dz
