"""The plain autoencoder and the denoising autoencoder: a deterministic encoder to a code z,
a decoder back to data space, and a reconstruction loss. Encoder and decoder are MLPs, or
convolutions then dense layers (``arch="conv"``, minivae.models.conv).

    z    = encoder(x)                                   (N, Z)
    out  = decoder(z)                                   (N, D)   logits, or the mean for "mse"
    per example:  bernoulli:  sum_d softplus(out) - x out      = -log Bernoulli(x | sigmoid(out))
                  mse:        sum_d (out - x)^2
    batch loss:   mean over the N examples

Backward:   dout = d per-example loss / d out, / N;   dz = decoder.backward(dout);
            encoder.backward(dz).

The denoising autoencoder feeds the encoder a corrupted x~ and asks for the clean x:

    gaussian:  x~ = x + noise_level * eps,  eps ~ N(0, I)
    masking:   x~ = x * m,                  m_d ~ Bernoulli(1 - noise_level)   (pixels set to 0)
    loss       = mean_n  l(decoder(encoder(x~)), x)
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array
from minivae.errors import InputError
from minivae.layers import ACTIVATIONS
from minivae.layers.activations import sigmoid
from minivae.models.base import EncoderDecoder, choice, float_dtype, generator, number, size, sizes
from minivae.models.conv import architecture

OUTPUTS = ("bernoulli", "mse")
NOISES = ("gaussian", "masking")


class Autoencoder(EncoderDecoder):
    """MLP encoder x_dim -> hidden -> z_dim and decoder z_dim -> hidden reversed -> x_dim.

    output: "bernoulli" (decoder gives logits; x in [0, 1]) or "mse" (decoder gives x^ itself).
    Parameters are named "encoder.i.W", "decoder.i.b", ... (i the layer's position).
    ``hidden=()`` gives a linear encoder and decoder. arch: "mlp", or "conv": stride-2
    convolutions with ``channels`` on images of ``image_shape`` ((C, H, W); a square if
    None), then the ``hidden`` dense layers.
    """

    name = "ae"

    def __init__(self, x_dim, hidden=(400,), z_dim=20, output="bernoulli", activation="relu",
                 rng=None, dtype=np.float32, arch="mlp", image_shape=None, channels=None):
        who = type(self).__name__
        self.x_dim, self.z_dim = size(x_dim, who, "x_dim"), size(z_dim, who, "z_dim")
        self.net = architecture(arch, self.x_dim, image_shape, channels, who)
        self.hidden = sizes(hidden, who, allow_empty=True)
        self.output = choice(output, OUTPUTS, who, "output")
        self.activation = choice(activation, ACTIVATIONS, who, "activation")
        self.dtype = float_dtype(dtype, who)
        self.rng = generator(rng, who)
        D, Z, H = self.x_dim, self.z_dim, self.hidden
        self.encoder = self.net.encoder((D, *H, Z), activation, self.rng, dtype,
                                        input_grad=False)                   # x is data: no dx
        self.decoder = self.net.decoder((Z, *H[::-1], D), activation, self.rng, dtype)
        self.cache = None
        self.last = {}

    def config(self):
        """The constructor arguments, as JSON-able values."""
        return {"model": self.name, "x_dim": self.x_dim, "hidden": list(self.hidden),
                "z_dim": self.z_dim, "output": self.output, "activation": self.activation,
                "dtype": self.dtype.name, **self.net.config()}

    def _check_x(self, x, who):
        who = f"{type(self).__name__}.{who}"
        check_array(x, who, shape=(None, self.x_dim), dtype=self.dtype)
        if self.output == "bernoulli" and (x.min() < 0 or x.max() > 1):
            raise InputError(f"{who}: expected x in [0, 1] for a Bernoulli output, got values "
                             f"in [{x.min():.4g}, {x.max():.4g}]; scale pixels to [0, 1] or "
                             "use output='mse'")

    # ---- the pieces ----

    def encode(self, x):
        """The code.   x (N, x_dim) -> z (N, z_dim)."""
        self._check_x(x, "encode")
        return self.encoder.forward(x)

    def decode(self, z):
        """The reconstruction from a code.   z (N, z_dim) -> (N, x_dim): probabilities for
        bernoulli, x^ for mse."""
        check_array(z, f"{type(self).__name__}.decode", shape=(None, self.z_dim),
                    dtype=self.dtype, name="z")
        return self._decode(z)

    def _decode(self, z):
        out = self.decoder.forward(z)                                        # (N, D)
        return sigmoid(out) if self.output == "bernoulli" else out

    def reconstruct(self, x):
        """decode(encode(x)), without any corruption.   (N, x_dim) -> (N, x_dim)."""
        return self._decode(self.encode(x))

    def recon_loss(self, out, x):
        """Per-example loss and its gradient w.r.t. the decoder output.   -> (N,), (N, D)."""
        if self.output == "bernoulli":
            return losses.bernoulli_nll(out, x)
        return losses.mse(out, x)

    # ---- the objective ----

    def _loss(self, x_in, x):
        """Batch mean loss of reconstructing x from the encoder input x_in."""
        out = self.decoder.forward(self.encoder.forward(x_in))               # (N, D)
        per_example, dout = self.recon_loss(out, x)                          # (N,), (N, D)
        self.cache = (x.shape[0], dout)
        self.last = {"loss": per_example}
        return float(per_example.mean())

    def loss(self, x):
        """Batch mean of the per-example reconstruction loss, in nats (bernoulli) or squared
        units (mse). Keeps what ``backward`` needs; per-example values go to ``self.last``."""
        self._check_x(x, "loss")
        return self._loss(x, x)

    def backward(self):
        """Add d loss / d params into ``grads``."""
        N, dout = self.cached()
        dz = self.decoder.backward(dout / N)                                 # (N, Z)
        self.encoder.backward(dz)                                            # dz (N, Z)

    def __repr__(self):
        conv = f", conv {self.net.channels}" if self.net.conv else ""
        return (f"{type(self).__name__}(x_dim={self.x_dim}, hidden={self.hidden}, "
                f"z_dim={self.z_dim}, output={self.output!r}{conv}, {self.dtype.name})")


class DenoisingAutoencoder(Autoencoder):
    """An Autoencoder trained to reconstruct the clean x from a corrupted x~.

    noise: "gaussian" (x~ = x + noise_level * eps) or "masking" (each pixel set to 0 with
    probability noise_level). ``loss(x)`` draws a fresh corruption from ``self.rng`` at each
    call; ``loss(x, x_tilde)`` uses the given one (for gradient checks). ``reconstruct`` and
    ``encode`` see the clean input; ``denoise(x_tilde)`` reconstructs a corrupted one.
    """

    name = "dae"

    def __init__(self, x_dim, hidden=(400,), z_dim=20, output="bernoulli", activation="relu",
                 noise="gaussian", noise_level=0.3, rng=None, dtype=np.float32, arch="mlp",
                 image_shape=None, channels=None):
        choice(noise, NOISES, "DenoisingAutoencoder", "noise")
        level = number(noise_level, "DenoisingAutoencoder", "noise_level")
        if not (noise == "gaussian" or level < 1):
            want = "a finite std >= 0" if noise == "gaussian" else "a probability in [0, 1)"
            raise InputError(f"DenoisingAutoencoder: noise_level must be {want} for {noise} "
                             f"noise, got {noise_level}")
        super().__init__(x_dim, hidden, z_dim, output, activation, rng, dtype, arch,
                         image_shape, channels)
        self.noise, self.noise_level = noise, level

    def config(self):
        return {**super().config(), "noise": self.noise, "noise_level": self.noise_level}

    def corrupt(self, x, rng=None):
        """x~: x with fresh noise from ``rng`` (``self.rng`` if None).   (N, D) -> (N, D)."""
        self._check_x(x, "corrupt")
        return self._corrupt(x, self.rng if rng is None else np.random.default_rng(rng))

    def _corrupt(self, x, rng):
        if self.noise == "gaussian":
            return x + self.noise_level * rng.standard_normal(x.shape, dtype=self.dtype)
        keep = rng.random(x.shape, dtype=self.dtype) >= self.noise_level     # (N, D) bool
        return x * keep

    def denoise(self, x_tilde):
        """The reconstruction of a corrupted input.   x~ (N, x_dim) -> (N, x_dim).

        Unlike ``reconstruct``, x~ need not lie in [0, 1]: Gaussian noise takes pixels
        outside it. Only its shape, dtype and finiteness are checked.
        """
        check_array(x_tilde, "DenoisingAutoencoder.denoise", shape=(None, self.x_dim),
                    dtype=self.dtype, name="x_tilde")
        return self._decode(self.encoder.forward(x_tilde))

    def loss(self, x, x_tilde=None):
        """Batch mean loss of reconstructing the clean x from x~ (drawn from ``self.rng``
        unless given)."""
        self._check_x(x, "loss")
        if x_tilde is None:
            x_tilde = self._corrupt(x, self.rng)
        else:
            check_array(x_tilde, "DenoisingAutoencoder.loss", shape=x.shape, dtype=self.dtype,
                        name="x_tilde")
        return self._loss(x_tilde, x)

    def __repr__(self):
        return (super().__repr__()[:-1]
                + f", noise={self.noise!r}, noise_level={self.noise_level})")
