"""The Wasserstein autoencoder, WAE-MMD (Tolstikhin et al. 2018): a deterministic autoencoder
whose codes, taken together, are matched to the prior.

A VAE pulls each q(z|x) towards the prior, one example at a time; the WAE asks only that the
aggregate posterior q(z) = E_x q(z|x), the distribution of all the codes together, match
p(z) = N(0, I), and measures the mismatch with the MMD (``minivae.mmd``) between a batch of
codes and as many draws of the prior:

    z_n  = encoder(x_n)                                  (N, Z)   deterministic
    out  = decoder(z)                                    (N, D)   logits, or x^ for "mse"
    loss = mean_n recon(out_n, x_n) + lam * MMD^2_u({z_n}, {z~_n}),    z~_n ~ N(0, I)

Backward, the chain rule through that graph:

    dz  = decoder.backward(dout / N)          from the reconstruction ...
        + lam * d MMD^2_u / dz                ... and from the MMD, which couples the codes
    encoder.backward(dz)
"""

import numpy as np

from minivae import mmd
from minivae.checks import check_array, check_count
from minivae.models.autoencoder import Autoencoder
from minivae.models.base import choice, number


class WAE(Autoencoder):
    """An Autoencoder (same encoder, decoder, outputs and architectures) with lam * MMD^2
    between its batch of codes and prior draws added to its loss.

    ``lam`` weights the MMD: 100 suits a Bernoulli loss of ~100 nats an image (the paper's
    10 goes with a squared error). ``kernel`` is "imq" (inverse multiquadratic, the paper's
    choice) or "rbf"; ``scale`` is the kernel's C (2 z_dim if None). ``sample(n)`` decodes
    prior draws.
    """

    name = "wae"

    def __init__(self, x_dim, hidden=(400,), z_dim=8, output="bernoulli", activation="relu",
                 lam=100.0, kernel="imq", scale=None, rng=None, dtype=np.float32, arch="mlp",
                 image_shape=None, channels=None):
        who = "WAE"
        self.lam = number(lam, who, "lam")
        self.kernel = choice(kernel, mmd.KERNELS, who, "kernel")
        self.scale = None if scale is None else number(scale, who, "scale", lo_open=True)
        super().__init__(x_dim, hidden, z_dim, output, activation, rng, dtype, arch,
                         image_shape, channels)

    def config(self):
        return {**super().config(), "lam": self.lam, "kernel": self.kernel, "scale": self.scale}

    def loss(self, x, z_prior=None):
        """Batch mean of the reconstruction loss, plus lam * MMD^2 between the codes and prior
        draws ``z_prior`` (N, Z), drawn from ``self.rng`` if None. Keeps what ``backward``
        needs; per-example terms go to ``self.last`` (the MMD, a batch quantity, repeated)."""
        self._check_x(x, "loss")
        N = x.shape[0]
        if z_prior is None:
            z_prior = self.rng.standard_normal((N, self.z_dim), dtype=self.dtype)
        else:
            check_array(z_prior, "WAE.loss", shape=(None, self.z_dim), dtype=self.dtype,
                        name="z_prior")
        z = self.encoder.forward(x)                                          # (N, Z)
        out = self.decoder.forward(z)                                        # (N, D)
        recon, dout = self.recon_loss(out, x)                                # (N,), (N, D)
        value, dz_mmd = mmd.mmd(z, z_prior, self.kernel, self.scale)         # float, (N, Z)
        self.cache = (N, dout, dz_mmd)
        self.last = {"recon": recon, "mmd": np.full(N, value), "loss": recon + self.lam * value}
        return float(recon.mean()) + self.lam * value

    def backward(self):
        """Add d loss / d params into ``grads``."""
        N, dout, dz_mmd = self.cached()
        dz = self.decoder.backward(dout / N)                                 # (N, Z)
        self.encoder.backward(dz + self.lam * dz_mmd)                        # (N, Z)

    def sample(self, n, rng=None):
        """n decodings of prior draws z ~ N(0, I).   -> (n, x_dim): probabilities for
        bernoulli, x^ for mse."""
        n = check_count(n, "WAE.sample", "n")
        rng = self.rng if rng is None else np.random.default_rng(rng)
        return self._decode(rng.standard_normal((n, self.z_dim), dtype=self.dtype))

    def __repr__(self):
        return super().__repr__()[:-1] + f", lam={self.lam}, kernel={self.kernel!r})"
