"""The variational autoencoder: an MLP encoder to (mu, logvar), the reparameterization,
an MLP decoder to the parameters of p(x|z), and the negative ELBO as its loss.

    per example:  L(x) = -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I))
                  estimated with one z = mu + exp(0.5 logvar) * eps
    batch loss:   mean over the N examples of L(x)      (nats per example)

Backward, by the chain rule through the same graph:
    dout            = d recon / d decoder output, / N
    dz              = decoder.backward(dout)
    dmu, dlogvar    = reparam.backward(dz)  +  beta * dKL / N
    encoder.backward([dmu, dlogvar])

With the stock ``Reparameterize`` the sample and the KL (forward) and their two gradients
(backward) are each one fused kernel (``minivae.kernels.reparam``); a sampler of your own,
put in ``self.reparam``, is called through its forward and backward instead.
"""

from itertools import pairwise

import numpy as np

from minivae import losses
from minivae.checks import check_array, check_count
from minivae.errors import InputError, NonFiniteError
from minivae.kernels import losses as K
from minivae.kernels import reparam as KR
from minivae.kernels.checks import all_finite
from minivae.layers import Dense, Linear, Reparameterize, Sequential
from minivae.layers.base import as_generator
from minivae.models.base import EncoderDecoder

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")


def mlp(sizes, activation, rng, dtype, input_grad=True):
    """Dense layers with ``activation`` between ``sizes``; the last layer is linear.

    ``input_grad=False`` when the input is data: the first layer skips its dx.
    """
    layers = [Dense(a, b, activation, rng=rng, dtype=dtype) for a, b in pairwise(sizes[:-1])]
    layers.append(Linear(sizes[-2], sizes[-1], rng=rng, dtype=dtype))
    layers[0].input_grad = bool(input_grad)
    return Sequential(*layers)


class VAE(EncoderDecoder):
    """A VAE with diagonal Gaussian q(z|x) and prior N(0, I).   x (N, x_dim) -> loss (float).

    likelihood: "bernoulli" (decoder gives logits; x in [0, 1]),
                "gaussian" (decoder gives the mean; fixed standard deviation ``sigma``),
                "gaussian-learned" (decoder gives mean and log-variance per pixel).
    ``beta`` weights the KL term (beta-VAE); ``kl_weight`` (1.0 unless a trainer
    ramps it during a warm-up) multiplies beta. ``rng`` draws eps when none is given.
    """

    def __init__(self, x_dim, hidden=(400,), z_dim=20, likelihood="bernoulli", beta=1.0, rng=None,
                 dtype=np.float32, activation="relu", sigma=0.1):
        if likelihood not in LIKELIHOODS:
            raise InputError(f"VAE: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        hidden = tuple(int(h) for h in hidden)
        if int(x_dim) < 1 or int(z_dim) < 1 or not hidden or min(hidden) < 1:
            raise InputError(f"VAE: sizes must be positive, got x_dim={x_dim}, hidden={hidden}, "
                             f"z_dim={z_dim}")
        if not (beta >= 0 and np.isfinite(beta)):
            raise InputError(f"VAE: beta must be a finite number >= 0, got {beta}")
        if not sigma > 0:
            raise InputError(f"VAE: sigma must be positive, got {sigma}")
        self.x_dim, self.hidden, self.z_dim = int(x_dim), hidden, int(z_dim)
        self.likelihood, self.beta, self.kl_weight = likelihood, float(beta), 1.0
        self.activation, self.sigma, self.dtype = activation, float(sigma), np.dtype(dtype)
        self.rng = as_generator(rng)
        out_dim = 2 * self.x_dim if likelihood == "gaussian-learned" else self.x_dim
        self.encoder = mlp((self.x_dim, *hidden, 2 * self.z_dim), activation, self.rng, dtype,
                           input_grad=False)                          # x is data
        self.decoder = mlp((self.z_dim, *hidden[::-1], out_dim), activation, self.rng, dtype)
        self.reparam = Reparameterize(self.rng)
        self.cache = None
        self.last = {}

    def config(self):
        """The constructor arguments, as JSON-able values."""
        return {"model": "vae", "x_dim": self.x_dim, "hidden": list(self.hidden),
                "z_dim": self.z_dim, "likelihood": self.likelihood, "beta": self.beta,
                "dtype": self.dtype.name, "activation": self.activation, "sigma": self.sigma}

    def _check_x(self, x):
        check_array(x, "VAE", shape=(None, self.x_dim), dtype=self.dtype)
        if self.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise InputError(f"VAE: expected x in [0, 1] for a Bernoulli likelihood, got values in "
                             f"[{x.min():.4g}, {x.max():.4g}]")

    # ---- the pieces ----

    def encode(self, x):
        """q(z|x) parameters.   x (N, x_dim) -> mu (N, Z), logvar (N, Z)."""
        self._check_x(x)
        return self._encode(x)

    def _encode(self, x):
        h = self.encoder.forward(x)                                   # (N, 2Z)
        return h[:, :self.z_dim], h[:, self.z_dim:]

    def _decoder_out(self, z):
        out = self.decoder.forward(z)                                 # (N, x_dim) or (N, 2 x_dim)
        if self.likelihood == "gaussian-learned":
            return out[:, :self.x_dim], out[:, self.x_dim:]
        return out, None

    def decode(self, z):
        """The mean of p(x|z).   z (N, Z) -> (N, x_dim): probabilities for Bernoulli."""
        check_array(z, "VAE.decode", shape=(None, self.z_dim), dtype=self.dtype, name="z")
        mean, _ = self._decoder_out(z)
        if self.likelihood == "bernoulli":
            return 0.5 * (1.0 + np.tanh(0.5 * mean))                  # sigmoid, no overflow
        return mean

    def sample(self, n, rng=None):
        """n draws of the mean of p(x|z) with z ~ N(0, I).   -> (n, x_dim)."""
        n = check_count(n, "VAE.sample", "n")
        rng = self.rng if rng is None else as_generator(rng)
        return self.decode(rng.standard_normal((n, self.z_dim), dtype=self.dtype))

    def reconstruct(self, x):
        """decode(mu(x)): the mean reconstruction.   (N, x_dim) -> (N, x_dim)."""
        mu, _ = self.encode(x)
        return self.decode(np.ascontiguousarray(mu))

    def recon_nll(self, out, x):
        """Per-example -log p(x|z) and its gradient w.r.t. the decoder output (N, out)."""
        mean, logvar = out
        if self.likelihood == "bernoulli":
            nll, dmean = losses.bernoulli_nll(mean, x)
            return nll, dmean
        if self.likelihood == "gaussian":
            nll, (dmean, _) = losses.gaussian_nll(mean, 2.0 * np.log(self.sigma), x)
            return nll, dmean
        nll, (dmean, dlogvar) = losses.gaussian_nll(mean, logvar, x)
        return nll, np.concatenate([dmean, dlogvar], axis=1)

    def _nll_repeated(self, out, x, m):
        """-log p(x_n | z) for rows n m ... n m + m - 1 of the decoder output.  -> (B m,)."""
        if self.likelihood != "bernoulli":
            return self.recon_nll(out, np.repeat(x, m, axis=0))[0]
        logits = out[0]                                               # (B m, D)
        nll = K.bernoulli_nll_repeated(logits, x, m, np.empty(logits.shape[0]))
        if not all_finite(nll):
            raise NonFiniteError("VAE: the decoder's logits overflowed while estimating "
                                 "log p(x); expected finite values")
        return nll

    # ---- the objective ----

    def loss(self, x, eps=None):
        """Batch mean of the per-example negative ELBO (recon + beta * KL), in nats.

        Keeps what ``backward`` needs. ``eps`` (N, Z) fixes the noise; otherwise it is
        drawn from ``self.rng``. Per-example terms are left in ``self.last``.
        """
        self._check_x(x)
        N = x.shape[0]
        h = self.encoder.forward(x)                                   # (N, 2Z) = [mu | logvar]
        fused = type(self.reparam) is Reparameterize    # the stock sampler: fused with the KL
        if fused:
            z, kl, sampled = self._sample_with_kl(h, eps)
        else:                                           # a sampler of your own (lesson 5)
            mu, logvar = h[:, :self.z_dim], h[:, self.z_dim:]
            z = self.reparam.forward(mu, logvar, eps)                 # (N, Z)
            kl, sampled = losses.gaussian_kl(mu, logvar)              # (N,), (dmu, dlogvar)
        recon, dout = self.recon_nll(self._decoder_out(z), x)         # (N,), (N, out)
        w = self.beta * self.kl_weight
        per_example = recon + w * kl
        dout *= 1.0 / N                              # d(batch mean)/d out, in place: dout is ours
        self.cache = (N, dout, h, sampled, w, fused)
        self.last = {"recon": recon, "kl": kl, "loss": per_example}
        return float(per_example.mean())

    def _sample_with_kl(self, h, eps):
        """z (N, Z) and KL per example (N,) in one pass (kernels.reparam.reparam_kl_forward);
        the eps and std the backward needs go in the third value."""
        N, Z = h.shape[0], self.z_dim
        check_array(h, "VAE.loss", name="the encoder's output (mu | logvar)")
        if eps is None:
            eps = self.reparam.rng.standard_normal((N, Z), dtype=h.dtype)   # (N, Z)
        else:
            check_array(eps, self.reparam, shape=(N, Z), dtype=h.dtype, name="eps")
            eps = np.ascontiguousarray(eps)
        z, std = np.empty((N, Z), h.dtype), np.empty((N, Z), h.dtype)
        kl = np.empty(N, h.dtype)
        KR.reparam_kl_forward(h, eps, z, std, kl)
        if not all_finite(kl):
            raise NonFiniteError("VAE: the KL term overflowed (logvar too large for "
                                 f"{h.dtype}); expected finite values")
        self.reparam.eps = eps
        return z, kl, (eps, std)

    def backward(self):
        """Fill ``grads`` with d loss / d params (adding to what is there)."""
        if self.cache is None:
            raise InputError("VAE.backward called before loss(x); call loss(x) first")
        N, dout, h, sampled, w, fused = self.cache
        dz = self.decoder.backward(dout)                              # (N, Z)
        if fused:                                     # dh = reparam backward + w/N dKL, fused
            eps, std = sampled
            dh = KR.reparam_kl_backward(dz, eps, std, h, w / N, np.empty_like(h))  # (N, 2Z)
        else:
            dmu_kl, dlogvar_kl = sampled
            dmu, dlogvar = self.reparam.backward(dz)                  # (N, Z) x2
            dmu += (w / N) * dmu_kl
            dlogvar += (w / N) * dlogvar_kl
            dh = np.concatenate([dmu, dlogvar], axis=1)               # (N, 2Z)
        self.encoder.backward(dh)

    # ---- likelihood estimates ----

    def log_weights(self, x, eps):
        """Importance log-weights of z_i = mu(x) + std(x) * eps_i.   x (N, D), eps (N, k, Z)
        -> (N, k) float64.

            log w_i = log p(x|z_i) + log N(z_i | 0, I) - log q(z_i|x)

        Their mean over i is an ELBO estimate (with a sampled KL); their log-mean-exp is the
        IWAE bound, never below that mean for the same samples (Jensen).
        """
        self._check_x(x)
        check_array(eps, "VAE.log_weights", shape=(x.shape[0], None, self.z_dim),
                    dtype=self.dtype, name="eps")
        mu, logvar = (np.ascontiguousarray(a) for a in self.encode(x))
        return self._log_weights(x, mu, logvar, eps)

    def _log_weights(self, x, mu, logvar, eps):
        B, m, Z = eps.shape
        log2pi = np.log(2 * np.pi)
        z = mu[:, None, :] + np.exp(0.5 * logvar)[:, None, :] * eps             # (B, m, Z)
        nll = self._nll_repeated(self._decoder_out(z.reshape(B * m, Z)), x, m)   # (B m,)
        return (-nll.reshape(B, m).astype(np.float64)
                - 0.5 * (z.astype(np.float64) ** 2 + log2pi).sum(axis=2)
                + 0.5 * (eps.astype(np.float64) ** 2 + log2pi
                         + logvar[:, None, :]).sum(axis=2))                     # (B, m)

    def iwae_bound(self, x, k, rng=None, max_floats=2 ** 21):
        """Per-example IWAE lower bound on log p(x) with k importance samples.   -> (N,).

            log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x)

        k = 1 is the ELBO estimate; the bound tightens as k grows. Computed with a
        running log-sum-exp over chunks of samples (``log_weights`` of each chunk), so that
        at most about ``max_floats`` decoder outputs exist at once, whatever N and k. The
        default, 2**21 floats (8 MB in float32), keeps a pass in the CPU's cache, which is
        faster than larger passes (``benchmarks/vae_speed.py --iwae`` times the default).
        """
        self._check_x(x)
        k = check_count(k, "VAE.iwae_bound", "k", what=" (importance samples)")
        max_floats = check_count(max_floats, "VAE.iwae_bound", "max_floats")
        rng = self.rng if rng is None else as_generator(rng)
        out_dim = self.decoder.layers[-1].out_features
        per_chunk = max(1, max_floats // out_dim)                   # samples decoded at once
        N, Z = x.shape[0], self.z_dim
        result = np.empty(N)
        ex_per_chunk = max(1, per_chunk // k)                       # examples when k is small
        for start in range(0, N, ex_per_chunk):
            xb = x[start:start + ex_per_chunk]                        # (B, D)
            mu, logvar = (np.ascontiguousarray(a) for a in self._encode(xb))
            B = xb.shape[0]
            s = min(k, max(1, per_chunk // B))                        # samples per pass
            run_max = np.full(B, -np.inf)
            run_sum = np.zeros(B)
            for done in range(0, k, s):
                eps = rng.standard_normal((B, min(s, k - done), Z), dtype=self.dtype)
                log_w = self._log_weights(xb, mu, logvar, eps)                  # (B, m)
                new_max = np.maximum(run_max, log_w.max(axis=1))
                run_sum = run_sum * np.exp(run_max - new_max) + np.exp(
                    log_w - new_max[:, None]).sum(axis=1)
                run_max = new_max
            result[start:start + B] = run_max + np.log(run_sum) - np.log(k)
        return result

    def __repr__(self):
        return (f"VAE(x_dim={self.x_dim}, hidden={self.hidden}, z_dim={self.z_dim}, "
                f"likelihood={self.likelihood!r}, beta={self.beta}, {self.dtype.name})")
