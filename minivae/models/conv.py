"""What an encoder and a decoder are made of: dense layers (``arch="mlp"``), or convolutions
then dense layers (``arch="conv"``). The models (VAE, Autoencoder, DenoisingAutoencoder) ask
their architecture for both networks and never look inside; x stays (N, D) at their door.

The convolutional encoder, for 28 x 28 images and channels (32, 64):

    x (N, 784) -> Unflatten, channels last (N, 28, 28, 1)
      -> Conv2d 1 -> 32,  k 4, s 2, p 1, act      (N, 14, 14, 32)
      -> Conv2d 32 -> 64, k 4, s 2, p 1, act      (N, 7, 7, 64)
      -> Flatten, channel first (N, 3136) -> Dense layers of ``hidden`` (none by default)
      -> Linear to the code

and the decoder mirrors it: Dense layers from z to (N, 3136), act; Unflatten, channels last
(N, 7, 7, 64); ConvTranspose2d 64 -> 32, act (N, 14, 14, 32); ConvTranspose2d 32 -> 1
(N, 28, 28, 1), no activation (logits, or the mean); Flatten, channel first (N, 784). Each
stride-2 convolution halves the image, rounding down; the transposed one that mirrors it
gives back exactly the size it came from (its output_padding is the rounding,
(H + 2p - k) % s).

Between the two ends the images are channels-last, (N, H, W, C), the layout in which the
convolutions gather their patches fastest (``minivae.layers.channels_last``); the rows the
dense layers see are flattened channel first, (C, H, W), as PyTorch's are, so a model's
parameters mean the same in either layout.

Sizes come as the models write them: the encoder (D, *hidden, code), the decoder
(Z, *hidden reversed, out). A decoder's ``out`` may be a multiple of the image (a
"gaussian-learned" VAE gives mean and log-variance: 2 channels per image channel), and
Flatten puts the first image's worth of channels first: [mean | logvar], as the dense
decoder does.
"""

from itertools import pairwise

import numpy as np

from minivae.errors import InputError
from minivae.layers import Conv2d, ConvTranspose2d, Dense, Sequential
from minivae.layers.channels_last import FlattenChannelsFirst, UnflattenChannelsLast
from minivae.models.base import mlp, size, sizes

ARCHS = ("mlp", "conv")
KERNEL, STRIDE, PADDING = 4, 2, 1           # each convolution halves the image: 28 -> 14 -> 7
CHANNELS = (32, 64)                         # channels after each convolution, by default


class MLPArch:
    """Dense layers between ``sizes``: minivae.models.base.mlp."""

    conv = False

    def config(self):
        return {}

    def encoder(self, sizes, activation, rng, dtype, input_grad=True):
        return mlp(sizes, activation, rng, dtype, input_grad=input_grad)

    def decoder(self, sizes, activation, rng, dtype):
        return mlp(sizes, activation, rng, dtype)

    def row_floats(self, decoder_sizes):
        """The floats a decoder makes per row that matter for memory: its output."""
        return decoder_sizes[-1]


class ConvArch:
    """Convolutions of stride 2 with ``channels``, then dense layers (module docstring).

    image_shape: (H, W) or (C, H, W), with C H W = x_dim. Kept as (C, H, W).
    """

    conv = True

    def __init__(self, x_dim, image_shape, channels, who):
        self.image_shape = image_dims(x_dim, image_shape, who)
        self.channels = sizes(CHANNELS if channels is None else channels, who, "channels")
        self.shapes = stage_shapes(self.image_shape, self.channels, who)

    def config(self):
        return {"arch": "conv", "image_shape": list(self.image_shape),
                "channels": list(self.channels)}

    def encoder(self, sizes, activation, rng, dtype, input_grad=True):
        """Unflatten, convolutions, Flatten, then dense layers (flat, *hidden, code)."""
        kw = {"rng": rng, "dtype": dtype, "check_inputs": False, "channels_last": True}
        layers = [UnflattenChannelsLast(self.image_shape, check_inputs=False)]
        for (c_in, _, _), (c_out, _, _) in pairwise(self.shapes):
            layers.append(Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING, activation, **kw))
        layers[1].input_grad = bool(input_grad)                     # x is data: no dx
        layers.append(FlattenChannelsFirst(check_inputs=False))
        layers += mlp((flat(self.shapes[-1]), *sizes[1:]), activation, rng, dtype).layers
        return Sequential(*layers)

    def decoder(self, sizes, activation, rng, dtype):
        """Dense layers (Z, *hidden, flat) with activation, Unflatten, transposed
        convolutions back to the image's size, Flatten. The last has no activation."""
        kw = {"rng": rng, "dtype": dtype, "check_inputs": False}
        out_channels = self.out_channels(sizes[-1])
        layers = [Dense(a, b, activation, **kw)
                  for a, b in pairwise((*sizes[:-1], flat(self.shapes[-1])))]
        layers.append(UnflattenChannelsLast(self.shapes[-1], check_inputs=False))
        kw["channels_last"] = True
        for i in reversed(range(len(self.channels))):               # shapes[i+1] -> shapes[i]
            (c_in, _, _), (c_out, H, W) = self.shapes[i + 1], self.shapes[i]
            last = i == 0
            layers.append(ConvTranspose2d(
                c_in, out_channels if last else c_out, KERNEL, STRIDE, PADDING,
                output_padding(H, W), "identity" if last else activation, **kw))
        layers.append(FlattenChannelsFirst(check_inputs=False))
        return Sequential(*layers)

    def out_channels(self, out):
        """Channels of the decoder's last layer for ``out`` floats per example."""
        _, H, W = self.image_shape
        if out % (H * W):
            raise InputError(f"a convolutional decoder gives whole images: expected an output "
                             f"size that is a multiple of {H} x {W}, got {out}")
        return out // (H * W)

    def row_floats(self, decoder_sizes):
        """The most floats the decoder holds at once per row: the largest of its layers'
        outputs and of its transposed convolutions' columns (H W x C_out k k each)."""
        most = max(decoder_sizes[1:-1] + (decoder_sizes[-1], flat(self.shapes[-1])))
        c_out = self.out_channels(decoder_sizes[-1])
        for i in range(len(self.channels)):
            (_, h, w), (c, H, W) = self.shapes[i + 1], self.shapes[i]
            c = c_out if i == 0 else c
            most = max(most, h * w * c * KERNEL * KERNEL, c * H * W)
        return most

    def parameter_count(self, encoder_sizes, decoder_sizes):
        """The parameters of both networks, by arithmetic (nothing allocated)."""
        k2, n = KERNEL * KERNEL, 0
        for (c_in, _, _), (c_out, _, _) in pairwise(self.shapes):
            n += 2 * (c_in * c_out * k2)                            # a conv and its mirror
            n += c_out + c_in                                       # their biases
        c0 = self.shapes[0][0]
        n += (self.out_channels(decoder_sizes[-1]) - c0) * (self.shapes[1][0] * k2 + 1)
        f = flat(self.shapes[-1])
        for s in [(f, *encoder_sizes[1:]), (*decoder_sizes[:-1], f)]:
            n += sum(a * b + b for a, b in pairwise(s))
        return n


def architecture(arch, x_dim, image_shape, channels, who):
    """The MLPArch or ConvArch ``arch`` names, its settings checked (InputError naming
    ``who`` otherwise)."""
    if arch not in ARCHS:
        raise InputError(f"{who}: arch must be one of {ARCHS}, got {arch!r}")
    if arch == "conv":
        return ConvArch(x_dim, image_shape, channels, who)
    if image_shape is not None or channels is not None:
        raise InputError(f"{who}: image_shape and channels are settings of arch='conv'; "
                         "an MLP takes neither")
    return MLPArch()


def image_dims(x_dim, image_shape, who):
    """(C, H, W) from (H, W) or (C, H, W), whose product must be x_dim; a square
    one-channel image if None and x_dim is a square."""
    if image_shape is None:
        side = round(np.sqrt(x_dim))
        if side * side != x_dim:
            raise InputError(f"{who}: x_dim = {x_dim} is not a square image; give "
                             "image_shape=(C, H, W) for arch='conv'")
        return (1, side, side)
    if not isinstance(image_shape, (list, tuple)) or len(image_shape) not in (2, 3):
        raise InputError(f"{who}: image_shape must be (H, W) or (C, H, W), got {image_shape!r}")
    shape = tuple(size(s, who, "each image_shape size") for s in image_shape)
    shape = (1, *shape) if len(shape) == 2 else shape
    if int(np.prod(shape)) != x_dim:
        raise InputError(f"{who}: image_shape {shape} holds {int(np.prod(shape))} pixels, but "
                         f"x_dim = {x_dim}; expected C H W = x_dim")
    return shape


def stage_shapes(image_shape, channels, who):
    """[(C, H, W) of the image, then after each convolution].   InputError if an image
    shrinks below 1 x 1 (each convolution needs at least 2 x 2 pixels)."""
    shapes = [tuple(image_shape)]
    for c in channels:
        _, H, W = shapes[-1]
        if min(H, W) + 2 * PADDING < KERNEL:
            raise InputError(f"{who}: a {image_shape[1]} x {image_shape[2]} image allows "
                             f"{len(shapes) - 1} stride-{STRIDE} convolutions, but channels "
                             f"asks for {len(channels)}: expected fewer channels")
        shapes.append((c, (H + 2 * PADDING - KERNEL) // STRIDE + 1,
                       (W + 2 * PADDING - KERNEL) // STRIDE + 1))
    return shapes


def output_padding(H, W):
    """The output_padding of the transposed convolution that gives back an H x W image."""
    return ((H + 2 * PADDING - KERNEL) % STRIDE, (W + 2 * PADDING - KERNEL) % STRIDE)


def flat(shape):
    """C H W of a (C, H, W) shape."""
    return int(np.prod(shape))
