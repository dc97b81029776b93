"""Convolution and transposed convolution on images (N, C, H, W): a gather and one matrix product.

A convolution (a cross-correlation, as in every deep learning library) with a k x k kernel,
stride s and zero padding p:

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x[n, c, s oh - p + i, s ow - p + j]

Gather every patch the kernel meets into a row (im2col) and the sum is one matrix product:

    X = im2col(x)                       (N OH OW, C k k)     one row per output pixel
    y = X @ W.reshape(O, C k k).T + b   (N OH OW, O)         -> (N, O, OH, OW)

so its backward is a Linear layer's on X, then the adjoint of the gather (col2im, a
scatter-add) to carry dX back onto the pixels each patch came from:

    dW += dY.T @ X;   db += sum dY;   dX = dY @ W.reshape(O, C k k);   dx = col2im(dX)

The transposed convolution is the same two maps the other way round: its forward is the
convolution's input backward (a product, then col2im) and its backward the convolution's
forward (im2col, then a product). With the same W, <Conv(x), y> = <x, ConvT(y)> (no bias).

The gather and scatter, and the bias + activation per channel, are numba kernels
(``minivae.kernels.conv``); the products go to BLAS. ``minivae.layers.conv_direct`` is the
definition as loops, the specification these layers are held to.
"""

import numpy as np

from minivae.checks import check_count
from minivae.errors import InputError
from minivae.kernels import activations as KA
from minivae.kernels import conv as K
from minivae.layers.activations import ACTIVATIONS
from minivae.layers.base import Layer, init_uniform, layer_dtype


class _Conv(Layer):
    """What both layers share: their settings, checked, and the check of an input image."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, activation,
                 negative_slope, rng, dtype, input_grad, check_inputs):
        super().__init__()
        who = type(self).__name__
        self.dtype = layer_dtype(dtype, who)
        self.in_channels = check_count(in_channels, who, "in_channels")
        self.out_channels = check_count(out_channels, who, "out_channels")
        self.k = check_count(kernel_size, who, "kernel_size")
        self.stride = check_count(stride, who, "stride")
        self.padding = check_count(padding, who, "padding", lo=0)
        if activation not in ACTIVATIONS:
            raise InputError(f"{who}: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if not negative_slope >= 0:
            raise InputError(f"{who}: negative_slope must be >= 0, got {negative_slope}")
        self.activation, self.kind, self.slope = activation, KA.CODES[activation], \
            float(negative_slope)
        self.rng = np.random.default_rng(rng)
        self.input_grad, self.check_inputs = bool(input_grad), bool(check_inputs)

    def _init_params(self, w_shape, fan_in):
        self.params = {"W": init_uniform(self.rng, w_shape, fan_in, self.dtype),
                       "b": init_uniform(self.rng, (self.out_channels,), fan_in, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        del self.rng

    def _check_image(self, x):
        """x as a C-contiguous (N, C, H, W) array; InputError naming what was expected."""
        if self.check_inputs:
            if isinstance(x, np.ndarray) and (x.ndim != 4 or x.shape[1] != self.in_channels):
                raise InputError(f"{self!r}: expected x of shape (N, C, H, W) with C = "
                                 f"{self.in_channels}, got shape {x.shape}")
            self.check(x, ndim=4, dtype=self.dtype)
        return np.ascontiguousarray(x)

    def __repr__(self):
        extra = "" if self.activation == "identity" else f", {self.activation}"
        return (f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, "
                f"k={self.k}, s={self.stride}, p={self.padding}{extra}, {self.dtype.name})")


class Conv2d(_Conv):
    """y = act(conv(x, W) + b).   x (N, C, H, W) -> y (N, O, OH, OW);  W (O, C, k, k), b (O,).

    OH = (H + 2p - k) // s + 1 (OW alike): the last rows and columns a stride does not reach
    are not read. ``activation`` (default identity) is fused with the bias add, as in
    ``Dense``; ``input_grad=False`` skips dx (and its col2im) for a first layer.

        forward:   X = im2col(x);   y = act(X @ W.T + b)        X (N OH OW, C k k)
        backward:  da = dy * act'(y);   db += sum da;   dW += da.T @ X;   dx = col2im(da @ W)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 activation="identity", *, negative_slope=0.01, rng=None, dtype=np.float32,
                 input_grad=True, check_inputs=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, activation,
                         negative_slope, rng, dtype, input_grad, check_inputs)
        C, O, k = self.in_channels, self.out_channels, self.k
        self._init_params((O, C, k, k), C * k * k)

    def output_size(self, H, W):
        """(OH, OW) for an H x W input; InputError if the kernel is larger than the padded image."""
        k, s, p = self.k, self.stride, self.padding
        if H + 2 * p < k or W + 2 * p < k:
            raise InputError(f"{self!r}: the kernel ({k} x {k}) is larger than the padded image "
                             f"({H + 2 * p} x {W + 2 * p} with padding {p}); expected images of "
                             f"at least {max(k - 2 * p, 1)} x {max(k - 2 * p, 1)}")
        return K.out_size(H, k, s, p), K.out_size(W, k, s, p)

    def forward(self, x):
        x = self._check_image(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size(H, W)
        O, k, L = self.out_channels, self.k, OH * OW
        X = K.im2col(x, k, self.stride, self.padding,
                     np.empty((N * L, C * k * k), self.dtype))          # (N L, C k k)
        a = X @ self.params["W"].reshape(O, C * k * k).T                # (N L, O)
        y = K.bias_act_channels(a.reshape(N, L, O).transpose(0, 2, 1), self.params["b"],
                                self.kind, self.slope, np.empty((N, O, L), self.dtype))
        self.cache = (x.shape, X, y)                                    # y (N, O, L)
        return y.reshape(N, O, OH, OW)

    def backward(self, dy):
        (N, C, H, W), X, y = self.cached()
        O, L, k = self.out_channels, y.shape[2], self.k
        self.check(dy, "dy", shape=(N, O, *self.output_size(H, W)), dtype=self.dtype)
        da = K.act_backward_bias_channels(dy.reshape(N, O, L), y, self.kind, self.slope,
                                          np.empty_like(y), self.grads["b"])    # dy * act'(y)
        da = np.ascontiguousarray(da.transpose(0, 2, 1)).reshape(N * L, O)     # (N L, O)
        Wm = self.params["W"].reshape(O, C * k * k)
        self.grads["W"] += (da.T @ X).reshape(O, C, k, k)               # (O, C, k, k)
        if not self.input_grad:
            return None
        dX = da @ Wm                                                    # (N L, C k k)
        return K.col2im(dX, k, self.stride, self.padding,
                        np.empty((N, C, H, W), self.dtype))             # (N, C, H, W)


class ConvTranspose2d(_Conv):
    """y = act(conv_transpose(x, W) + b).   x (N, C, H, W) -> y (N, O, OH, OW);
    W (C, O, k, k), b (O,).

    OH = (H - 1) s - 2p + k + output_padding (OW alike): the input size of the Conv2d(O -> C,
    k, s, p) that this layer reverses. ``output_padding`` (0 <= op < s) picks among the
    sizes such a Conv2d maps to H: a decoder mirroring an encoder passes
    op = (H_enc + 2p - k) % s, a pair (rows, columns) if they differ. Each input pixel
    stamps a copy of its kernel, scaled, onto the output, s pixels apart from its neighbour's.

        forward:   cols = x @ W;   y = act(col2im(cols) + b)        cols (N H W, O k k)
        backward:  da = dy * act'(y);   db += sum da;   dcols = im2col(da)
                   dW += x.T @ dcols;   dx = dcols @ W.T
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, activation="identity", *, negative_slope=0.01, rng=None,
                 dtype=np.float32, input_grad=True, check_inputs=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, activation,
                         negative_slope, rng, dtype, input_grad, check_inputs)
        op = output_padding if isinstance(output_padding, (tuple, list)) else (output_padding,) * 2
        if len(op) != 2:
            raise InputError(f"ConvTranspose2d: expected output_padding to be an integer or a "
                             f"pair (rows, columns), got {output_padding!r}")
        self.output_padding = tuple(check_count(v, "ConvTranspose2d", "output_padding", lo=0)
                                    for v in op)
        if max(self.output_padding) >= self.stride:
            raise InputError(f"ConvTranspose2d: expected output_padding < stride "
                             f"({self.stride}), got {output_padding}")
        C, O, k = self.in_channels, self.out_channels, self.k
        self._init_params((C, O, k, k), O * k * k)                      # as PyTorch does

    def output_size(self, H, W):
        """(OH, OW) for an H x W input; InputError if that is less than 1 x 1."""
        k, s, p, (oph, opw) = self.k, self.stride, self.padding, self.output_padding
        OH, OW = (H - 1) * s - 2 * p + k + oph, (W - 1) * s - 2 * p + k + opw
        if OH < 1 or OW < 1:
            least = -(-(2 * p - k - min(oph, opw) + 1) // s) + 1
            raise InputError(f"{self!r}: a {H} x {W} input gives a {OH} x {OW} output; expected "
                             f"an input of at least {least} pixels a side, or less padding")
        return OH, OW

    def forward(self, x):
        x = self._check_image(x)
        N, C, H, W = x.shape
        OH, OW = self.output_size(H, W)
        O, k = self.out_channels, self.k
        xm = np.ascontiguousarray(x.reshape(N, C, H * W).transpose(0, 2, 1)).reshape(-1, C)
        cols = xm @ self.params["W"].reshape(C, O * k * k)              # (N H W, O k k)
        y = K.col2im(cols, k, self.stride, self.padding,
                     np.empty((N, O, OH, OW), self.dtype))              # (N, O, OH, OW)
        y3 = y.reshape(N, O, OH * OW)
        K.bias_act_channels(y3, self.params["b"], self.kind, self.slope, y3)   # in place
        self.cache = (x.shape, xm, y)
        return y

    def backward(self, dy):
        (N, C, H, W), xm, y = self.cached()
        O, k = self.out_channels, self.k
        self.check(dy, "dy", shape=y.shape, dtype=self.dtype)
        L = y.shape[2] * y.shape[3]
        da = K.act_backward_bias_channels(dy.reshape(N, O, L), y.reshape(N, O, L), self.kind,
                                          self.slope, np.empty((N, O, L), self.dtype),
                                          self.grads["b"])                # dy * act'(y)
        dcols = K.im2col(da.reshape(y.shape), k, self.stride, self.padding,
                         np.empty((N * H * W, O * k * k), self.dtype))   # (N H W, O k k)
        Wm = self.params["W"].reshape(C, O * k * k)
        self.grads["W"] += (xm.T @ dcols).reshape(C, O, k, k)           # (C, O, k, k)
        if not self.input_grad:
            return None
        dxm = dcols @ Wm.T                                              # (N H W, C)
        return np.ascontiguousarray(dxm.reshape(N, H * W, C).transpose(0, 2, 1)).reshape(
            N, C, H, W)

    def __repr__(self):
        r = super().__repr__()
        op = self.output_padding
        return r if not any(op) else r[:-1] + f", op={op[0] if op[0] == op[1] else op})"
