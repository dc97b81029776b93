"""The generative adversarial network: a generator G, an MLP from noise z ~ N(0, I) to data
space, and a discriminator D, an MLP from data space to one logit l, D(x) = sigmoid(l), the
probability it gives "real". They play the minimax game (Goodfellow et al. 2014)

    min_G max_D  V(D, G) = E_x log D(x) + E_z log(1 - D(G(z)))

by alternating steps (``minivae.train.fit_gan``), each the chain rule through its own graph:

    D step:  d_loss = mean_n bce(D(x_n), 1) + mean_n bce(D(G(z_n)), 0)        (= -V)
             logits = D.forward([x; G(z)])            one pass over the real and fake rows
             D.backward((sigmoid(l) - y) / N)         G(z) is a constant: nothing reaches G

    G step:  g_loss = mean_n J(D(G(z_n)))     J: log(1 - D) "minimax", -log D "non-saturating"
             dfake = D.backward(J'(l) / N)            through D, to G's output ...
             G.backward(dfake)                        ... and into G's parameters
             D.zero_grad()                            what D.backward added to D's gradients
                                                      is of G's objective: not D's to follow

Each step's optimizer holds only its own network's parameters (``gan.discriminator.params``,
``gan.generator.params``), so neither step moves the other's.
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.layers import ACTIVATIONS, Sigmoid
from minivae.layers.activations import sigmoid
from minivae.models.base import choice, float_dtype, size, sizes
from minivae.models.conv import architecture

OUTPUTS = ("sigmoid", "identity")      # G's last activation: pixels in (0, 1), or any real


class GAN:
    """G: z (N, z_dim) -> x (N, x_dim);  D: x (N, x_dim) -> logit (N, 1).

    G is z_dim -> hidden -> x_dim with ``activation`` and a ``output`` activation last
    ("sigmoid" for images in [0, 1], "identity" for real-valued data; ``hidden=()`` makes G
    affine). D is x_dim -> d_hidden (``hidden`` if None) -> 1 with ``d_activation``.
    ``generator_loss``: "non-saturating" (-log D(G(z))) or "minimax" (log(1 - D(G(z)))).
    ``rng`` draws the initial weights, and z when none is given. Parameters are named
    "generator.i.W", "discriminator.i.b", ... (i the layer's position).
    ``arch="conv"`` makes a small DCGAN (Radford et al. 2016) of minivae's convolutional
    encoder and decoder (``minivae.models.conv``): D is stride-2 convolutions with
    ``channels`` on images of ``image_shape``, then the ``d_hidden`` dense layers to the
    logit; G is the mirror image, dense layers from z to the smallest image, then transposed
    convolutions back to the image's size.
    """

    def __init__(self, x_dim, z_dim=2, hidden=(128,), d_hidden=None, output="sigmoid",
                 activation="relu", d_activation="leaky_relu", generator_loss="non-saturating",
                 rng=None, dtype=np.float32, arch="mlp", image_shape=None, channels=None):
        who = "GAN"
        self.x_dim, self.z_dim = size(x_dim, who, "x_dim"), size(z_dim, who, "z_dim")
        self.hidden = sizes(hidden, who, allow_empty=True)
        self.d_hidden = self.hidden if d_hidden is None else sizes(d_hidden, who, "d_hidden",
                                                                  allow_empty=True)
        self.output = choice(output, OUTPUTS, who, "output")
        self.activation = choice(activation, ACTIVATIONS, who, "activation")
        self.d_activation = choice(d_activation, ACTIVATIONS, who, "d_activation")
        self.generator_loss = choice(generator_loss, losses.GENERATOR_LOSSES, who,
                                     "generator_loss")
        self.dtype = float_dtype(dtype, who)
        self.net = architecture(arch, self.x_dim, image_shape, channels, who)
        self.rng = np.random.default_rng(rng)
        D, Z = self.x_dim, self.z_dim
        self.generator = self.net.decoder((Z, *self.hidden, D), activation, self.rng, dtype)
        self.generator.layers[0].input_grad = False                     # z is noise: no dz
        if output == "sigmoid":
            self.generator.layers.append(Sigmoid())
            self.generator.layers[-1].check_inputs = False
        self.discriminator = self.net.encoder((D, *self.d_hidden, 1), d_activation, self.rng,
                                              dtype)                    # its dx reaches G
        self.d_cache = self.g_cache = None
        self.last = {}

    def config(self):
        """The constructor arguments, as JSON-able values."""
        return {"model": "gan", "x_dim": self.x_dim, "z_dim": self.z_dim,
                "hidden": list(self.hidden), "d_hidden": list(self.d_hidden),
                "output": self.output, "activation": self.activation,
                "d_activation": self.d_activation, "generator_loss": self.generator_loss,
                "dtype": self.dtype.name, **self.net.config()}

    @property
    def params(self):
        return {**{f"generator.{k}": v for k, v in self.generator.params.items()},
                **{f"discriminator.{k}": v for k, v in self.discriminator.params.items()}}

    @property
    def grads(self):
        return {**{f"generator.{k}": v for k, v in self.generator.grads.items()},
                **{f"discriminator.{k}": v for k, v in self.discriminator.grads.items()}}

    def zero_grad(self):
        self.generator.zero_grad()
        self.discriminator.zero_grad()

    # ---- the discriminator's step ----

    def d_loss(self, x, z=None):
        """The discriminator's loss on real x (N, x_dim) and N fakes G(z): -V(D, G), batch means.

            mean_n -log D(x_n)  +  mean_n -log(1 - D(G(z_n)))

        ``z`` (N, z_dim) fixes the noise; otherwise it is drawn from ``self.rng``. Keeps what
        ``d_backward`` needs; per-example terms go to ``self.last``.
        """
        self._check_x(x, "GAN.d_loss")
        N = x.shape[0]
        z = self._noise(z, N, "GAN.d_loss")                                 # (N, Z)
        fake = self.generator.forward(z)                                    # (N, D)
        logits = self.discriminator.forward(np.concatenate([x, fake]))      # (2N, 1)
        y = np.concatenate([np.ones((N, 1)), np.zeros((N, 1))]).astype(self.dtype)
        bce, dlogits = losses.bce_with_logits(logits, y)                    # (2N,), (2N, 1)
        self.d_cache = dlogits / N                                          # two batch means
        self.last = {"d_loss": bce[:N] + bce[N:], "d_real": sigmoid(logits[:N, 0]),
                     "d_fake": sigmoid(logits[N:, 0])}
        return float(bce[:N].mean() + bce[N:].mean())

    def d_backward(self):
        """Add d d_loss / d D's parameters into D's ``grads``. G's gradients are untouched."""
        dlogits = self._cached(self.d_cache, "d_backward", "d_loss(x)")
        self.discriminator.backward(dlogits)                 # its dx (2N, D) is not needed

    # ---- the generator's step ----

    def g_loss(self, n=None, *, z=None):
        """The generator's loss on n fakes G(z), a batch mean of J(D(G(z))).

        J is ``generator_loss``: "minimax" log(1 - D), "non-saturating" -log D. Give n (z is
        drawn from ``self.rng``) or z (n, z_dim). Keeps what ``g_backward`` needs.
        """
        if (n is None) == (z is None):
            raise InputError("GAN.g_loss: give either n (draw z) or z (n, z_dim), not both "
                             f"or neither; got n={n!r} and z of type {type(z).__name__}")
        if z is None:
            n = check_count(n, "GAN.g_loss", "n")
        z = self._noise(z, n, "GAN.g_loss")                                 # (n, Z)
        logits = self.discriminator.forward(self.generator.forward(z))      # (n, 1)
        J, dlogits = losses.GENERATOR_LOSSES[self.generator_loss](logits)   # (n,), (n, 1)
        self.g_cache = dlogits / len(z)                                     # a batch mean
        self.last["g_loss"] = J
        return float(J.mean())

    def g_backward(self):
        """Add d g_loss / d G's parameters into G's ``grads``, through D; D's gradients are
        left at zero (what D.backward adds to them belongs to G's objective)."""
        dlogits = self._cached(self.g_cache, "g_backward", "g_loss(n)")
        dfake = self.discriminator.backward(dlogits)                        # (n, D)
        self.discriminator.zero_grad()
        self.generator.backward(dfake)                                      # (n, Z): unused

    # ---- using it ----

    def generate(self, z):
        """G(z).   z (N, z_dim) -> (N, x_dim)."""
        check_array(z, "GAN.generate", shape=(None, self.z_dim), dtype=self.dtype, name="z")
        return self.generator.forward(z)

    def sample(self, n, rng=None):
        """n draws G(z), z ~ N(0, I) from ``rng`` (``self.rng`` if None).   -> (n, x_dim)."""
        n = check_count(n, "GAN.sample", "n")
        rng = self.rng if rng is None else np.random.default_rng(rng)
        return self.generator.forward(rng.standard_normal((n, self.z_dim), dtype=self.dtype))

    def discriminate(self, x):
        """D(x), the probability of "real".   x (N, x_dim) -> (N,)."""
        check_array(x, "GAN.discriminate", shape=(None, self.x_dim), dtype=self.dtype)
        return sigmoid(self.discriminator.forward(x)[:, 0])

    # ---- checks, where the user hands arrays over ----

    def _check_x(self, x, who):
        check_array(x, who, shape=(None, self.x_dim), dtype=self.dtype)
        if self.output == "sigmoid" and (x.min() < 0 or x.max() > 1):
            raise InputError(f"{who}: expected x in [0, 1], where a generator with a sigmoid "
                             f"output can follow it; got values in [{x.min():.4g}, "
                             f"{x.max():.4g}] (use output='identity' for real-valued data)")

    def _noise(self, z, n, who):
        if z is None:
            return self.rng.standard_normal((n, self.z_dim), dtype=self.dtype)
        return check_array(z, who, shape=(n, self.z_dim), dtype=self.dtype, name="z")

    @staticmethod
    def _cached(cache, who, first):
        if cache is None:
            raise InputError(f"GAN.{who} called before {first}; call {first} first")
        return cache

    def __repr__(self):
        conv = f", conv {self.net.channels}" if self.net.conv else ""
        return (f"GAN(x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, "
                f"d_hidden={self.d_hidden}, output={self.output!r}{conv}, "
                f"generator_loss={self.generator_loss!r}, {self.dtype.name})")
