"""The importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2015): the VAE's networks,
trained on the k-sample bound instead of the ELBO.

    per example:  L_k(x) = -log (1/k) sum_i w_i,     w_i = p(x|z_i) p(z_i) / q(z_i|x),
                  z_i = mu + exp(0.5 logvar) * eps_i,  eps_i ~ N(0, I),  i = 1..k
                  log w_i = -nll(x|z_i) - 0.5 |z_i|^2 + 0.5 |eps_i|^2 + 0.5 sum(logvar)
                  (the log 2 pi of p(z) and of q(z|x) cancel)
    batch loss:   mean over the N examples of L_k(x)              (nats per example)

k = 1 is the VAE's single-sample ELBO with the KL estimated from the sample; as k grows the
bound tightens towards log p(x) (lesson 9). The gradient is each sample's gradient of
log w_i, weighted by its normalised weight w~_i = w_i / sum_j w_j (a softmax of the
log-weights): with g_i = w~_i / N, the share of sample i in d L / d log w_i = -g_i,

    dout_i       = g_i * d nll / d out_i              the likelihood, sample i's decoder rows
    dz_i         = decoder.backward(dout) + g_i z_i   + the prior's -0.5 |z|^2
    dmu, dlogvar = reparam.backward(dz)               through z_i = mu + std eps_i ...
    dlogvar     -= 0.5 g_i                            ... and straight from q's 0.5 sum(logvar)
    summed over i, then encoder.backward([dmu | dlogvar])

eps_i enters log q(z_i|x) only as a constant here (the standard estimator of the paper).
"""

import numpy as np

from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.models.vae import VAE


class IWAE(VAE):
    """A VAE trained on the k-sample importance-weighted bound.   x (N, x_dim) -> loss (float).

    Every argument as for ``VAE``, plus ``k``, the importance samples per example of the
    training objective. There is no beta: the bound is a bound on log p(x) only with the
    prior's and the posterior's terms as they are.
    """

    def __init__(self, x_dim, hidden=(400,), z_dim=20, likelihood="bernoulli", k=5, beta=1.0,
                 rng=None, dtype=np.float32, activation="relu", sigma=0.1, arch="mlp",
                 image_shape=None, channels=None, init="uniform"):
        if beta != 1.0:
            raise InputError(f"IWAE: expected beta = 1 (the k-sample bound has no beta), got "
                             f"{beta!r}")
        super().__init__(x_dim, hidden, z_dim, likelihood, 1.0, rng, dtype, activation, sigma,
                         arch, image_shape, channels, init)
        self.k = check_count(k, "IWAE", "k", what=" (importance samples)")
        del self.kl_weight                  # no KL term to weight: a warm-up does not apply

    def config(self):
        return {**super().config(), "model": "iwae", "k": self.k}

    def loss(self, x, eps=None):
        """Batch mean of L_k(x), in nats. ``eps`` (N, k, Z) fixes the noise; otherwise it is
        drawn from ``self.rng``. Per-example terms go to ``self.last``: ``loss`` (L_k) and
        ``ess``, the effective sample size 1 / sum_i w~_i^2 (1 when one sample takes all)."""
        self._check_x(x, "IWAE.loss")
        N, k, Z = x.shape[0], self.k, self.z_dim
        if eps is None:
            eps = self.rng.standard_normal((N, k, Z), dtype=self.dtype)
        check_array(eps, "IWAE.loss", shape=(N, k, Z), dtype=self.dtype, name="eps")
        h = self.encoder.forward(x)                                     # (N, 2Z)
        mu, logvar = h[:, :Z], h[:, Z:]                                 # (N, Z) each
        z = self.reparam.forward(np.repeat(mu, k, axis=0),              # (N k, Z): k rows
                                 np.repeat(logvar, k, axis=0),          #   per example
                                 eps.reshape(N * k, Z))
        out = self.decoder.forward(z)                                   # (N k, D) or (N k, 2D)
        nll, dout = self.recon_nll(out, np.repeat(x, k, axis=0))        # (N k,), like out
        log_w = (-nll - 0.5 * (z.astype(np.float64) ** 2).sum(axis=1)   # (N k,) float64
                 + 0.5 * (eps.reshape(N * k, Z).astype(np.float64) ** 2).sum(axis=1)
                 + 0.5 * np.repeat(logvar.astype(np.float64).sum(axis=1), k)).reshape(N, k)
        top = log_w.max(axis=1, keepdims=True)                          # (N, 1) log-sum-exp
        w = np.exp(log_w - top)                                         # (N, k)
        w_tilde = w / w.sum(axis=1, keepdims=True)                      # (N, k) normalised
        per_example = -(top[:, 0] + np.log(w.sum(axis=1)) - np.log(k))  # (N,) L_k(x)
        g = (w_tilde / N).reshape(N * k, 1).astype(self.dtype)          # (N k, 1)
        self.cache = (N, g, dout, z)
        self.last = {"loss": per_example, "ess": 1.0 / (w_tilde ** 2).sum(axis=1)}
        return self._finite_mean(per_example)

    def backward(self):
        """Add d loss / d params into ``grads``: each sample's chain rule, weighted by g_i."""
        N, g, dout, z = self.cached()
        Z = self.z_dim
        dz = self.decoder.backward(g * dout) + g * z                    # (N k, Z)
        dmu, dlogvar = self.reparam.backward(dz)                        # (N k, Z) x2
        dlogvar -= 0.5 * g                                              # from log q's logvar
        dmu = dmu.reshape(N, -1, Z).sum(axis=1)                         # (N, Z): sum over i
        dlogvar = dlogvar.reshape(N, -1, Z).sum(axis=1)
        self.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))   # (N, 2Z)

    def __repr__(self):
        return "IWAE" + super().__repr__()[len("VAE"):-1] + f", k={self.k})"
