"""Convolution and transposed convolution on images: a gather and one matrix product.

A convolution (a cross-correlation, as in every deep learning library) with a k x k kernel,
stride s and zero padding p:

    y[n, o, oh, ow] = b[o] + sum_{c, i, j} W[o, c, i, j] x[n, c, s oh - p + i, s ow - p + j]

Gather every patch the kernel meets into a row (im2col) and the sum is one matrix product:

    X = im2col(x)                       (N OH OW, k k C)     one row per output pixel
    y = X @ Wm.T + b                    (N OH OW, O)         = (N, OH, OW, O)

where Wm is W laid out as X's columns, (O, k k C). Its backward is a Linear layer's on X,
then the adjoint of the gather (col2im, a scatter-add) to carry dX back onto the pixels
each patch came from:

    dWm += dY.T @ X;   db += sum dY;   dX = dY @ Wm;   dx = col2im(dX)

The transposed convolution is the same two maps the other way round: its forward is the
convolution's input backward (a product, then col2im) and its backward the convolution's
forward (im2col, then a product). With the same W, <Conv(x), y> = <x, ConvT(y)> (no bias).

Layout. Inside, images are channels-last, (N, H, W, C) (``minivae.layers.channels_last``):
a patch row is then k runs of k C contiguous floats, and the product's output (N OH OW, O)
already is the next image, (N, OH, OW, O). The layers take and give (N, C, H, W), as
PyTorch's do, turning it channels-last at the door and back on the way out;
``channels_last=True`` takes and gives (N, H, W, C) instead, as the models chain them.
W keeps PyTorch's layout either way: (O, C, k, k), and (C, O, k, k) for the transposed
convolution.

The gather and scatter are numba kernels (``minivae.kernels.conv``), the bias + activation
on the product's output ``Dense``'s (``minivae.kernels.activations``); the products go to
BLAS. ``minivae.layers.conv_direct`` is the definition as loops, the specification these
layers are held to.
"""

import numpy as np

from minivae.checks import check_count
from minivae.errors import InputError
from minivae.kernels import activations as KA
from minivae.kernels import conv as K
from minivae.layers.activations import ACTIVATIONS
from minivae.layers.base import Layer, init_uniform, layer_dtype
from minivae.layers.channels_last import channels_first, channels_last


class _Conv(Layer):
    """What both layers share: their settings, checked, the image layout at the door, and
    the scratch arrays a layer reuses from call to call."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, activation,
                 negative_slope, rng, dtype, input_grad, check_inputs, channels_last):
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
        self.channels_last = bool(channels_last)
        self.scratch = {}

    def _init_params(self, w_shape, fan_in):
        self.params = {"W": init_uniform(self.rng, w_shape, fan_in, self.dtype),
                       "b": init_uniform(self.rng, (self.out_channels,), fan_in, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        del self.rng

    def _layout(self):
        return "(N, H, W, C)" if self.channels_last else "(N, C, H, W)"

    def _image_in(self, x):
        """x as a C-contiguous channels-last (N, H, W, C) array; InputError naming what was
        expected."""
        if self.check_inputs:
            c = -1 if self.channels_last else 1
            if isinstance(x, np.ndarray) and (x.ndim != 4 or x.shape[c] != self.in_channels):
                raise InputError(f"{self!r}: expected x of shape {self._layout()} with C = "
                                 f"{self.in_channels}, got shape {x.shape}")
            self.check(x, ndim=4, dtype=self.dtype)
        return np.ascontiguousarray(x) if self.channels_last else channels_last(x)

    def _grad_in(self, dy, y):
        """dy, checked against y (N, OH, OW, O), channels-last."""
        N, OH, OW, O = y.shape
        self.check(dy, "dy", dtype=self.dtype,
                   shape=(N, OH, OW, O) if self.channels_last else (N, O, OH, OW))
        return np.ascontiguousarray(dy) if self.channels_last else channels_last(dy)

    def _image_out(self, y):
        """y (N, H, W, C) in the layout the layer gives."""
        return y if self.channels_last else channels_first(y)

    def _scratch(self, name, shape):
        """An array of ``shape`` the layer owns and reuses while the shape stays the same: for
        what stays inside the layer (a patch matrix, a gradient on its way to a product),
        never for what it returns."""
        a = self.scratch.get(name)
        if a is None or a.shape != shape:
            a = self.scratch[name] = np.empty(shape, self.dtype)
        return a

    def __repr__(self):
        extra = "" if self.activation == "identity" else f", {self.activation}"
        extra += ", channels last" if self.channels_last else ""
        return (f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, "
                f"k={self.k}, s={self.stride}, p={self.padding}{extra}, {self.dtype.name})")


class Conv2d(_Conv):
    """y = act(conv(x, W) + b).   x (N, C, H, W) -> y (N, O, OH, OW);  W (O, C, k, k), b (O,).

    OH = (H + 2p - k) // s + 1 (OW alike): the last rows and columns a stride does not reach
    are not read. ``activation`` (default identity) is fused with the bias add, as in
    ``Dense``; ``input_grad=False`` skips dx (and its col2im) for a first layer;
    ``channels_last=True``: x (N, H, W, C) -> y (N, OH, OW, O).

        forward:   X = im2col(x);   y = act(X @ Wm.T + b)       X (N OH OW, k k C)
        backward:  da = dy * act'(y);   db += sum da;   dWm += da.T @ X;   dx = col2im(da @ Wm)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 activation="identity", *, negative_slope=0.01, rng=None, dtype=np.float32,
                 input_grad=True, check_inputs=True, channels_last=False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, activation,
                         negative_slope, rng, dtype, input_grad, check_inputs, channels_last)
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
        x = self._image_in(x)                                           # (N, H, W, C)
        N, H, W, C = x.shape
        OH, OW = self.output_size(H, W)
        O, k = self.out_channels, self.k
        X = K.im2col(x, k, self.stride, self.padding,
                     self._scratch("X", (N * OH * OW, k * k * C)))      # (N OH OW, k k C)
        Wm = self.params["W"].transpose(0, 2, 3, 1).reshape(O, k * k * C)  # (O, k k C)
        y = X @ Wm.T                                                    # (N OH OW, O)
        KA.bias_act_forward(y, self.params["b"], self.kind, self.slope, y)   # in place
        y = y.reshape(N, OH, OW, O)
        self.cache = (x.shape, X, Wm, y)
        return self._image_out(y)

    def backward(self, dy):
        (N, H, W, C), X, Wm, y = self.cached()
        O, k = self.out_channels, self.k
        dy = self._grad_in(dy, y).reshape(-1, O)                        # (N OH OW, O)
        da = KA.act_backward_bias(dy, y.reshape(-1, O), self.kind, self.slope,
                                  self._scratch("da", dy.shape), self.grads["b"])
        self.grads["W"] += (da.T @ X).reshape(O, k, k, C).transpose(0, 3, 1, 2)  # (O, C, k, k)
        if not self.input_grad:
            return None
        dX = np.matmul(da, Wm, out=self._scratch("dX", X.shape))        # (N OH OW, k k C)
        dx = K.col2im(dX, k, self.stride, self.padding,
                      np.empty((N, H, W, C), self.dtype))               # (N, H, W, C)
        return self._image_out(dx)


class ConvTranspose2d(_Conv):
    """y = act(conv_transpose(x, W) + b).   x (N, C, H, W) -> y (N, O, OH, OW);
    W (C, O, k, k), b (O,).

    OH = (H - 1) s - 2p + k + output_padding (OW alike): the input size of the Conv2d(O -> C,
    k, s, p) that this layer reverses. ``output_padding`` (0 <= op < s) picks among the
    sizes such a Conv2d maps to H: a decoder mirroring an encoder passes
    op = (H_enc + 2p - k) % s, a pair (rows, columns) if they differ. Each input pixel
    stamps a copy of its kernel, scaled, onto the output, s pixels apart from its neighbour's.
    ``channels_last=True``: x (N, H, W, C) -> y (N, OH, OW, O).

        forward:   cols = x @ Wm;   y = act(col2im(cols) + b)       cols (N H W, k k O)
        backward:  da = dy * act'(y);   db += sum da;   dcols = im2col(da)
                   dWm += x.T @ dcols;   dx = dcols @ Wm.T
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, activation="identity", *, negative_slope=0.01, rng=None,
                 dtype=np.float32, input_grad=True, check_inputs=True, channels_last=False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, activation,
                         negative_slope, rng, dtype, input_grad, check_inputs, channels_last)
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
        x = self._image_in(x)                                           # (N, H, W, C)
        N, H, W, C = x.shape
        OH, OW = self.output_size(H, W)
        O, k = self.out_channels, self.k
        xm = x.reshape(N * H * W, C)                                    # one row per pixel
        Wm = self.params["W"].transpose(0, 2, 3, 1).reshape(C, k * k * O)  # (C, k k O)
        cols = np.matmul(xm, Wm, out=self._scratch("cols", (N * H * W, k * k * O)))
        y = K.col2im(cols, k, self.stride, self.padding,
                     np.empty((N, OH, OW, O), self.dtype))              # (N, OH, OW, O)
        y2 = y.reshape(-1, O)                                           # (N OH OW, O)
        KA.bias_act_forward(y2, self.params["b"], self.kind, self.slope, y2)   # in place
        self.cache = (x.shape, xm, Wm, y)
        return self._image_out(y)

    def backward(self, dy):
        (N, H, W, C), xm, Wm, y = self.cached()
        O, k = self.out_channels, self.k
        dy = self._grad_in(dy, y).reshape(-1, O)                        # (N OH OW, O)
        da = KA.act_backward_bias(dy, y.reshape(-1, O), self.kind, self.slope,
                                  self._scratch("da", dy.shape), self.grads["b"])
        dcols = K.im2col(da.reshape(y.shape), k, self.stride, self.padding,
                         self._scratch("dcols", (N * H * W, k * k * O)))  # (N H W, k k O)
        self.grads["W"] += (xm.T @ dcols).reshape(C, k, k, O).transpose(0, 3, 1, 2)
        if not self.input_grad:
            return None
        dx = dcols @ Wm.T                                               # (N H W, C)
        return self._image_out(dx.reshape(N, H, W, C))

    def __repr__(self):
        r = super().__repr__()
        op = self.output_padding
        return r if not any(op) else r[:-1] + f", op={op[0] if op[0] == op[1] else op})"
