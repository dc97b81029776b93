"""The convolution and the transposed convolution written as their definitions, with loops over
pixels: the specification that ``minivae.layers.conv`` (im2col, one product, col2im) is held
to by tests/test_conv.py. Slow; for checking, and for reading.

    conv:       y[n, o, oh, ow] = b[o] + sum_{c,i,j} W[o, c, i, j] xp[n, c, s oh + i, s ow + j]
    transposed: each input pixel x[n, c, h, w] adds x[n, c, h, w] W[c, o, :, :] to the k x k
                block of the padded output whose corner is (s h, s w); then the padding p is
                cut off each side, and output_padding extra rows and columns kept at the end.

xp is x with p zeros around each image. Activations are not part of these: a layer's
act(y + b) is checked with identity, and its activations by their own tests.
"""

import numpy as np


def conv2d_direct(x, W, b, stride=1, padding=0):
    """Each output pixel: the kernel times the patch under it, summed.
    x (N, C, H, W), W (O, C, k, k), b (O,) -> (N, O, OH, OW)."""
    N, _, H, Wd = x.shape
    O, _, k, _ = W.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))                   # (N, C, H+2p, W+2p)
    OH, OW = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    y = np.empty((N, O, OH, OW), dtype=x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            patch = xp[:, :, s * oh:s * oh + k, s * ow:s * ow + k]      # (N, C, k, k)
            y[:, :, oh, ow] = np.einsum("ncij,ocij->no", patch, W) + b
    return y


def conv_transpose2d_direct(x, W, b, stride=1, padding=0, output_padding=0):
    """Each input pixel stamps its kernel, scaled, onto the output.
    x (N, C, H, W), W (C, O, k, k), b (O,) -> (N, O, OH, OW),
    OH = (H - 1) s - 2p + k + output_padding (an int, or a pair (rows, columns))."""
    N, _, H, Wd = x.shape
    _, O, k, _ = W.shape
    s, p = stride, padding
    oph, opw = output_padding if isinstance(output_padding, tuple) else (output_padding,) * 2
    OH, OW = (H - 1) * s - 2 * p + k + oph, (Wd - 1) * s - 2 * p + k + opw
    yp = np.zeros((N, O, OH + 2 * p, OW + 2 * p), dtype=x.dtype)        # the padded output
    for h in range(H):
        for w in range(Wd):
            stamp = np.einsum("nc,coij->noij", x[:, :, h, w], W)        # (N, O, k, k)
            yp[:, :, s * h:s * h + k, s * w:s * w + k] += stamp
    return yp[:, :, p:p + OH, p:p + OW] + b[:, None, None]
