"""The convolutional GAN (a small DCGAN): its parameters counted before it is built, and each
player's step gradient-checked through the whole model in float64."""

import numpy as np
import pytest
from helpers import TOL_CHAIN, grad_ok

from minivae.errors import InputError
from minivae.layers import Conv2d, ConvTranspose2d
from minivae.models import GAN, build, parameter_count

f64 = np.float64


def conv_gan(seed, loss="non-saturating", d_hidden=()):
    """8 x 8 images, convolutions of 2 and 3 channels (8 -> 4 -> 2), smooth activations (no
    kink for a central difference to straddle)."""
    return GAN(64, 3, hidden=(4,), d_hidden=d_hidden, activation="tanh", d_activation="tanh",
               generator_loss=loss, rng=seed, dtype=f64, arch="conv", image_shape=(8, 8),
               channels=(2, 3))


def test_a_conv_gan_is_convolutions_both_ways_and_counted_before_it_is_built():
    gan = conv_gan(0, d_hidden=(5,))
    kinds = [type(layer) for layer in gan.discriminator.layers]
    assert kinds.count(Conv2d) == 2 and kinds[1] is Conv2d            # D: x -> convolutions
    assert [type(layer) for layer in gan.generator.layers].count(ConvTranspose2d) == 2
    assert gan.generator.layers[0].input_grad is False               # z is noise: no dz
    assert gan.discriminator.layers[1].input_grad is True            # G's gradient goes on
    config = gan.config()
    assert config["arch"] == "conv" and config["channels"] == [2, 3]
    assert parameter_count(config) == sum(p.size for p in gan.params.values())
    back = build(config, rng=0)
    assert all(np.array_equal(back.params[k], p) for k, p in conv_gan(0, d_hidden=(5,))
               .params.items())
    assert gan.generate(np.zeros((2, 3))).shape == (2, 64)
    with pytest.raises(InputError, match="image_shape"):
        GAN(60, 3, arch="conv")                                       # not a square image


@pytest.mark.parametrize("seed, d_hidden", [(0, ()), (1, (4,))])
def test_discriminator_step_gradient(seed, d_hidden):
    gan = conv_gan(seed, d_hidden=d_hidden)
    rng = np.random.default_rng(seed)
    x, z = rng.random((3, 64)), rng.standard_normal((3, 3))
    gan.zero_grad()
    gan.d_loss(x, z)
    gan.d_backward()
    grads = {k: g.copy() for k, g in gan.discriminator.grads.items()}
    assert all(not g.any() for g in gan.generator.grads.values())    # G(z) is a constant
    for k, p in gan.discriminator.params.items():
        assert grad_ok(lambda: gan.d_loss(x, z), p, grads[k], TOL_CHAIN), k


@pytest.mark.parametrize("seed, loss", [(0, "non-saturating"), (1, "minimax")])
def test_generator_step_gradient_through_the_discriminator(seed, loss):
    gan = conv_gan(seed, loss)
    z = np.random.default_rng(seed).standard_normal((3, 3))
    gan.zero_grad()
    gan.g_loss(z=z)
    gan.g_backward()
    grads = {k: g.copy() for k, g in gan.generator.grads.items()}
    assert all(not g.any() for g in gan.discriminator.grads.values())
    for k, p in gan.generator.params.items():
        assert grad_ok(lambda: gan.g_loss(z=z), p, grads[k], TOL_CHAIN), k


def test_a_wrong_backward_fails_the_check():
    """The check can fail: D's first convolution's gradient, halved, is refused."""
    gan = conv_gan(2)
    rng = np.random.default_rng(2)
    x, z = rng.random((3, 64)), rng.standard_normal((3, 3))
    gan.zero_grad()
    gan.d_loss(x, z)
    gan.d_backward()
    k = next(k for k in gan.discriminator.params if k.endswith("W"))
    wrong = gan.discriminator.grads[k] * 0.5
    assert not grad_ok(lambda: gan.d_loss(x, z), gan.discriminator.params[k], wrong, TOL_CHAIN)
