"""The variational autoencoder: an encoder to (mu, logvar), the reparameterization, a decoder
to the parameters of p(x|z), and the negative ELBO as its loss. Encoder and decoder are MLPs,
or convolutions then dense layers (``arch="conv"``, minivae.models.conv).

    per example:  L(x) = -log p(x|z) + beta * KL(q(z|x) || N(0, I)),
                  z = mu + exp(0.5 logvar) * eps,  eps ~ N(0, I)    (one sample of the ELBO)
    batch loss:   mean over the N examples of L(x)                  (nats per example)

``loss`` runs the forward pass in the order the ELBO is written, and ``backward`` runs the
same graph in reverse, one step of the chain rule a line (lesson 6 derives each):

    dout         = d recon / d out                      the likelihood's gradient, per example
    dz           = decoder.backward(dout / N)           the loss is a batch mean
    dmu, dlogvar = reparam.backward(dz)                 through z ...
                 + w/N (mu, 0.5 (exp(logvar) - 1))      ... and straight from the KL,
                                                        w = beta * kl_weight
    encoder.backward([dmu | dlogvar])
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array, check_count
from minivae.errors import InputError, NonFiniteError
from minivae.layers import ACTIVATIONS, Reparameterize
from minivae.layers.activations import sigmoid
from minivae.layers.reparameterize import sample
from minivae.models.base import (
    INITS,
    EncoderDecoder,
    choice,
    float_dtype,
    generator,
    glorot,
    number,
    size,
    sizes,
)
from minivae.models.conv import architecture

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")


class VAE(EncoderDecoder):
    """A VAE with diagonal Gaussian q(z|x) and prior N(0, I).   x (N, x_dim) -> loss (float).

    likelihood: "bernoulli" (decoder gives logits; x in [0, 1]),
                "gaussian" (decoder gives the mean; fixed standard deviation ``sigma``),
                "gaussian-learned" (decoder gives mean and log-variance per pixel).
    ``beta`` weights the KL term (beta-VAE); ``kl_weight`` (1.0 unless a warm-up ramps it)
    multiplies beta. ``rng`` draws the initial weights, and eps when none is given.
    arch: "mlp", or "conv": stride-2 convolutions with ``channels`` on images of
    ``image_shape`` ((C, H, W); a square if None), then ``hidden`` dense layers (may be ()).
    init: "uniform" (each layer's own, U(+-1/sqrt(fan in))) or "glorot" (an MLP only; see
    ``minivae.models.base.glorot``).
    """

    def __init__(self, x_dim, hidden=(400,), z_dim=20, likelihood="bernoulli", beta=1.0, rng=None,
                 dtype=np.float32, activation="relu", sigma=0.1, arch="mlp", image_shape=None,
                 channels=None, init="uniform"):
        who = type(self).__name__
        self.x_dim, self.z_dim = size(x_dim, who, "x_dim"), size(z_dim, who, "z_dim")
        self.net = architecture(arch, self.x_dim, image_shape, channels, who)
        self.hidden = sizes(hidden, who, allow_empty=self.net.conv)
        self.likelihood = choice(likelihood, LIKELIHOODS, who, "likelihood")
        self.activation = choice(activation, ACTIVATIONS, who, "activation")
        self.init = choice(init, INITS, who, "init")
        if self.init == "glorot" and self.net.conv:
            raise InputError(f"{who}: init='glorot' is for dense layers; expected arch='mlp' "
                             f"with it, got arch={arch!r}")
        self.dtype = float_dtype(dtype, who)
        self.beta = number(beta, who, "beta", hi=float(np.finfo(self.dtype).max))  # in dtype
        self.kl_weight = 1.0
        self.sigma = number(sigma, who, "sigma", lo_open=True)
        self.rng = generator(rng, who)
        D, Z, H = self.x_dim, self.z_dim, self.hidden
        out = 2 * D if likelihood == "gaussian-learned" else D          # mean (and logvar)
        self.encoder = self.net.encoder((D, *H, 2 * Z), activation, self.rng, dtype,
                                        input_grad=False)               # x is data: no dx
        self.reparam = Reparameterize(self.rng, check_inputs=False)
        self.decoder = self.net.decoder((Z, *H[::-1], out), activation, self.rng, dtype)
        self.row_floats = self.net.row_floats((Z, *H[::-1], out))       # per decoded row
        if self.init == "glorot":                                       # the IWAE paper's
            glorot(self.encoder, self.rng)
            glorot(self.decoder, self.rng)
        self.cache, self.last = None, {}

    def config(self):
        """The constructor arguments, as JSON-able values."""
        return {"model": "vae", "x_dim": self.x_dim, "hidden": list(self.hidden),
                "z_dim": self.z_dim, "likelihood": self.likelihood, "beta": self.beta,
                "dtype": self.dtype.name, "activation": self.activation, "sigma": self.sigma,
                "init": self.init, **self.net.config()}

    def start_at_mean(self, x_mean):
        """Set the decoder's output bias so that, while its weights are small, p(x|z) is about
        each pixel's mean over the training set. x_mean (x_dim,), an array.

            bernoulli:  b = logit(m) = log(m / (1 - m)),  m clipped to [0.001, 0.999]
                        (as the IWAE paper's code starts its decoder: the first steps need
                        not learn the average digit)
            gaussian:   b = m  (gaussian-learned: the mean's half; the log-variance half
                        stays as the initialisation drew it)
        """
        who = f"{type(self).__name__}.start_at_mean"
        if self.net.conv:
            raise InputError(f"{who}: the output bias per pixel is for dense decoders; "
                             "expected arch='mlp'")
        m = check_array(x_mean, who, shape=(self.x_dim,), name="x_mean").astype(np.float64)
        if self.likelihood == "bernoulli":
            if m.min() < 0 or m.max() > 1:
                raise InputError(f"{who}: expected means in [0, 1] for a Bernoulli "
                                 f"likelihood, got values in [{m.min():.4g}, {m.max():.4g}]")
            m = np.clip(m, 0.001, 0.999)
            m = np.log(m) - np.log1p(-m)                                # logit, (D,)
        self.decoder.layers[-1].params["b"][:self.x_dim] = m            # the mean's part

    # ---- the objective ----

    def loss(self, x, eps=None):
        """Batch mean of the per-example negative ELBO (recon + beta * KL), in nats.

        Keeps what ``backward`` needs. ``eps`` (N, Z) fixes the noise; otherwise the
        reparameterization draws it from ``self.rng``. Per-example terms go to ``self.last``.
        """
        self._check_x(x, "VAE.loss")
        eps = self._check_eps(eps, x.shape[0])
        N, Z = x.shape[0], self.z_dim
        h = self.encoder.forward(x)                                     # (N, 2Z)
        mu, logvar = h[:, :Z], h[:, Z:]                                 # (N, Z) each
        z = self.reparam.forward(mu, logvar, eps)                       # (N, Z)
        out = self.decoder.forward(z)                                   # (N, D) or (N, 2D)
        recon, dout = self.recon_nll(out, x)                            # (N,), like out
        kl, (dmu_kl, dlogvar_kl) = losses.gaussian_kl(mu, logvar)       # (N,), (N, Z) x2
        w = self.beta * self.kl_weight
        per_example = recon + w * kl                                    # (N,)
        self.cache = (N, w, dout, dmu_kl, dlogvar_kl)
        self.last = {"recon": recon, "kl": kl, "loss": per_example}
        return self._finite_mean(per_example)

    def backward(self):
        """Add d loss / d params into ``grads``: the chain rule through loss's graph, reversed."""
        N, w, dout, dmu_kl, dlogvar_kl = self.cached()
        dz = self.decoder.backward(dout / N)                            # (N, Z)
        dmu, dlogvar = self.reparam.backward(dz)                        # (N, Z) x2, through z
        dmu += w / N * dmu_kl                                           # + straight from the KL
        dlogvar += w / N * dlogvar_kl
        self.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))   # (N, 2Z)

    def recon_nll(self, out, x):
        """-log p(x|z) per example, and its gradient w.r.t. the decoder's output.
        out (N, D), or (N, 2D) = [mean | logvar] for gaussian-learned -> (N,), like out."""
        if self.likelihood == "bernoulli":                              # out: logits
            return losses.bernoulli_nll(out, x)
        if self.likelihood == "gaussian":                               # out: the mean
            nll, (dmean, _) = losses.gaussian_nll(out, 2 * np.log(self.sigma), x)
            return nll, dmean
        D = self.x_dim
        nll, (dmean, dlogvar) = losses.gaussian_nll(out[:, :D], out[:, D:], x)
        return nll, np.concatenate([dmean, dlogvar], axis=1)

    # ---- the pieces ----

    def encode(self, x):
        """q(z|x) parameters.   x (N, x_dim) -> mu (N, Z), logvar (N, Z)."""
        self._check_x(x, "VAE.encode")
        h = self.encoder.forward(x)                                     # (N, 2Z)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def decode(self, z):
        """The mean of p(x|z).   z (N, Z) -> (N, x_dim): probabilities for Bernoulli."""
        check_array(z, "VAE.decode", shape=(None, self.z_dim), dtype=self.dtype, name="z")
        return self._decode(z)

    def _decode(self, z):
        mean = self.decoder.forward(z)[:, :self.x_dim]                  # (N, D)
        if self.likelihood == "bernoulli":
            return sigmoid(mean)
        return mean

    def sample(self, n, rng=None):
        """n draws of the mean of p(x|z) with z ~ N(0, I).   -> (n, x_dim)."""
        n = check_count(n, "VAE.sample", "n")
        rng = self.rng if rng is None else np.random.default_rng(rng)
        return self.decode(rng.standard_normal((n, self.z_dim), dtype=self.dtype))

    def reconstruct(self, x):
        """decode(mu(x)): the mean reconstruction.   (N, x_dim) -> (N, x_dim)."""
        mu, _ = self.encode(x)
        return self._decode(mu)

    # ---- likelihood estimates ----

    def log_weights(self, x, eps):
        """Importance log-weights of z_i = mu(x) + std(x) * eps_i.   x (N, D), eps (N, k, Z)
        -> (N, k) float64.

            log w_i = log p(x|z_i) + log N(z_i | 0, I) - log q(z_i|x)

        Their mean over i is an ELBO estimate (with a sampled KL); their log-mean-exp is the
        IWAE bound, never below that mean for the same samples (Jensen).
        """
        mu, logvar = self.encode(x)
        check_array(eps, "VAE.log_weights", shape=(x.shape[0], None, self.z_dim),
                    dtype=self.dtype, name="eps")
        return self._log_weights(x, mu, logvar, eps)

    def _log_weights(self, x, mu, logvar, eps):
        B, m, Z = eps.shape
        log2pi = np.log(2 * np.pi)
        z, _ = sample(mu[:, None, :], logvar[:, None, :], eps)                  # (B, m, Z)
        out = self.decoder.forward(z.reshape(B * m, Z))                         # (B m, D)
        nll = self._nll_repeated(out, x, m).reshape(B, m)                       # (B, m)
        log_p_z = -0.5 * (z.astype(np.float64) ** 2 + log2pi).sum(axis=2)       # (B, m)
        log_q_z = -0.5 * (eps.astype(np.float64) ** 2 + log2pi
                          + logvar[:, None, :]).sum(axis=2)                     # (B, m)
        return -nll.astype(np.float64) + log_p_z - log_q_z

    def _nll_repeated(self, out, x, m):
        """-log p(x_n | z) for rows n m ... n m + m - 1 of the decoder output.  -> (B m,).

        Bernoulli reads x_n for its m rows (no copy of x repeated m times)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll_repeated(out, x, m)
        return self.recon_nll(out, np.repeat(x, m, axis=0))[0]

    def iwae_bound(self, x, k, rng=None, max_floats=2 ** 21):
        """Per-example IWAE lower bound on log p(x) with k importance samples.   -> (N,).

            log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

        k = 1 is the ELBO estimate; the bound tightens as k grows. Computed with a running
        log-sum-exp over chunks of samples, so that at most about ``max_floats`` decoder
        outputs exist at once (for a convolutional decoder: floats of its widest layer),
        whatever N and k. The default, 2**21 floats (8 MB in float32), keeps a pass in the
        CPU's cache, which is faster than larger passes.
        """
        self._check_x(x, "VAE.iwae_bound")
        k = check_count(k, "VAE.iwae_bound", "k", what=" (importance samples)")
        max_floats = check_count(max_floats, "VAE.iwae_bound", "max_floats")
        rng = self.rng if rng is None else np.random.default_rng(rng)
        per_chunk = max(1, max_floats // self.row_floats)
        N, Z = x.shape[0], self.z_dim
        examples = max(1, per_chunk // k)                               # per chunk, if k small
        result = np.empty(N)
        for start in range(0, N, examples):
            xb = x[start:start + examples]                              # (B, D)
            h = self.encoder.forward(xb)                                # (B, 2Z)
            mu, logvar = h[:, :Z], h[:, Z:]                             # (B, Z) each
            B = xb.shape[0]
            s = min(k, max(1, per_chunk // B))                          # samples per pass
            run_max, run_sum = np.full(B, -np.inf), np.zeros(B)
            for done in range(0, k, s):
                eps = rng.standard_normal((B, min(s, k - done), Z), dtype=self.dtype)
                log_w = self._log_weights(xb, mu, logvar, eps)          # (B, m)
                new_max = np.maximum(run_max, log_w.max(axis=1))
                run_sum = (run_sum * np.exp(run_max - new_max)
                           + np.exp(log_w - new_max[:, None]).sum(axis=1))
                run_max = new_max
            result[start:start + B] = run_max + np.log(run_sum) - np.log(k)
        return result

    # ---- checks, where the user hands arrays over ----

    def _check_x(self, x, who):
        check_array(x, who, shape=(None, self.x_dim), dtype=self.dtype)
        if self.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise InputError(f"{who}: expected x in [0, 1] for a Bernoulli likelihood, got "
                             f"values in [{x.min():.4g}, {x.max():.4g}]")

    def _check_eps(self, eps, N):
        if eps is not None:
            check_array(eps, "VAE.loss", shape=(N, self.z_dim), dtype=self.dtype, name="eps")
        return eps

    @staticmethod
    def _finite_mean(per_example):
        loss = float(per_example.mean())
        if not np.isfinite(loss):
            raise NonFiniteError(f"VAE.loss: the loss overflowed to {loss} (beta or the KL too "
                                 "large for the dtype); expected a finite value")
        return loss

    def __repr__(self):
        conv = f", conv {self.net.channels}" if self.net.conv else ""
        return (f"VAE(x_dim={self.x_dim}, hidden={self.hidden}, z_dim={self.z_dim}, "
                f"likelihood={self.likelihood!r}, beta={self.beta}{conv}, {self.dtype.name})")
