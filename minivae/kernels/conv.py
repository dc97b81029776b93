"""The loops of a convolution that are not a matrix product: im2col (the gather), col2im (its
adjoint, the scatter-add), and the per-channel bias and activation (the twins of ``Dense``'s,
with one bias per channel instead of one per column). The product itself is BLAS's
(``minivae.layers.conv``).

A convolution with a k x k kernel, stride s and zero padding p reads, for output pixel
(oh, ow), the patch of the padded image whose top-left corner is (s oh - p, s ow - p):

    cols[(n, oh, ow), (c, i, j)] = x[n, c, s oh - p + i, s ow - p + j]     (0 outside x)

    x (N, C, H, W) -> cols (N OH OW, C k k),   OH = (H + 2p - k) // s + 1  (OW alike)

col2im is the transpose of that linear map: every entry of cols is added back where it was
read from (an image pixel read by several patches receives the sum of their entries):

    out[n, c, h, w] = sum of cols[(n, oh, ow), (c, i, j)] over s oh - p + i = h, s ow - p + j = w

Each kernel has a NumPy twin ``<name>_np``, its specification, written as a loop over the
k x k kernel offsets with whole-array slices (``tests/test_conv.py`` holds them equal).
"""

import numpy as np
from numba import njit

from minivae.kernels.activations import LEAKY_RELU, RELU, SIGMOID, SOFTPLUS, TANH, act_np, dact_np


def out_size(size, k, stride, padding):
    """Output length of a convolution along one axis: (size + 2 p - k) // s + 1."""
    return (size + 2 * padding - k) // stride + 1


@njit(cache=True, error_model="numpy")
def im2col(x, k, stride, padding, cols):
    """cols[(n, oh, ow), (c, i, j)] = x[n, c, s oh - p + i, s ow - p + j], 0 outside x.

    x (N, C, H, W) -> cols (N OH OW, C k k), both C-contiguous. Returns cols.
    The loops run over one image row h = s oh - p + i at a time, copying its k-pixel
    pieces into the OW rows of cols that read it.
    """
    N, C, H, W = x.shape
    OH = (H + 2 * padding - k) // stride + 1
    OW = (W + 2 * padding - k) // stride + 1
    zero = x.dtype.type(0)
    for n in range(N):
        for oh in range(OH):
            r0 = (n * OH + oh) * OW                             # the first row of this oh
            for c in range(C):
                for i in range(k):
                    h = oh * stride - padding + i
                    col = (c * k + i) * k
                    if h < 0 or h >= H:                         # a row of padding
                        for ow in range(OW):
                            for j in range(k):
                                cols[r0 + ow, col + j] = zero
                        continue
                    src = x[n, c, h]                            # (W,)
                    for ow in range(OW):
                        w0 = ow * stride - padding
                        dst = cols[r0 + ow, col:col + k]        # (k,)
                        if w0 >= 0 and w0 + k <= W:             # inside: a plain copy
                            for j in range(k):
                                dst[j] = src[w0 + j]
                        else:                                   # across the padding
                            for j in range(k):
                                w = w0 + j
                                dst[j] = src[w] if 0 <= w < W else zero
    return cols


@njit(cache=True, error_model="numpy")
def col2im(cols, k, stride, padding, out):
    """The adjoint of im2col: out = 0, then each cols[(n, oh, ow), (c, i, j)] is added into
    out[n, c, s oh - p + i, s ow - p + j] (entries that fall in the padding are dropped).

    cols (N OH OW, C k k) -> out (N, C, H, W), both C-contiguous; OH, OW from out's H, W.
    Returns out. One row of cols at a time: its patches all land in out[n, :, h0:h0 + k, :].
    """
    N, C, H, W = out.shape
    OH = (H + 2 * padding - k) // stride + 1
    OW = (W + 2 * padding - k) // stride + 1
    out[:] = 0
    for n in range(N):
        for oh in range(OH):
            h0 = oh * stride - padding
            for ow in range(OW):
                w0 = ow * stride - padding
                inside = w0 >= 0 and w0 + k <= W                # no column in the padding
                row = cols[(n * OH + oh) * OW + ow]             # (C k k,)
                for c in range(C):
                    for i in range(k):
                        h = h0 + i
                        if h < 0 or h >= H:                     # a row of padding
                            continue
                        col = (c * k + i) * k
                        dst = out[n, c, h]                      # (W,)
                        if inside:
                            for j in range(k):
                                dst[w0 + j] += row[col + j]
                        else:
                            for j in range(k):
                                if 0 <= w0 + j < W:
                                    dst[w0 + j] += row[col + j]
    return out


@njit(cache=True, error_model="numpy")
def bias_act_channels(a, b, kind, slope, out):
    """out[n, c, l] = act(a[n, c, l] + b[c]).   a, out (N, C, L); b (C,).

    ``a`` may be any strided view (a transposed product: the transpose is fused in here);
    ``out`` may be ``a``. One loop per activation, as in ``kernels.activations``.
    """
    N, C, L = a.shape
    zero, one = out.dtype.type(0), out.dtype.type(1)
    s = out.dtype.type(slope)
    for n in range(N):
        for c in range(C):
            bc = b[c]
            if kind == RELU:
                for m in range(L):
                    out[n, c, m] = max(a[n, c, m] + bc, zero)
            elif kind == LEAKY_RELU:
                for m in range(L):
                    v = a[n, c, m] + bc
                    out[n, c, m] = v if v > zero else s * v
            elif kind == TANH:
                for m in range(L):
                    out[n, c, m] = np.tanh(a[n, c, m] + bc)
            elif kind == SIGMOID:
                for m in range(L):
                    v = a[n, c, m] + bc
                    e = np.exp(-abs(v))
                    out[n, c, m] = one / (one + e) if v >= zero else e / (one + e)
            elif kind == SOFTPLUS:
                for m in range(L):
                    v = a[n, c, m] + bc
                    out[n, c, m] = max(v, zero) + np.log1p(np.exp(-abs(v)))
            else:
                for m in range(L):
                    out[n, c, m] = a[n, c, m] + bc
    return out


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def act_backward_bias_channels(dy, y, kind, slope, out, db):
    """out = dy * act'(y) and db[c] += sum_{n, l} out[n, c, l].   dy, y, out (N, C, L); db (C,).

    The sums go through float64 accumulators, added in any order (``reassoc``: 8 at a time).
    """
    N, C, L = dy.shape
    zero, one = out.dtype.type(0), out.dtype.type(1)
    s = out.dtype.type(slope)
    sums = np.zeros(C)
    for n in range(N):
        for c in range(C):
            if kind == RELU:
                for m in range(L):
                    out[n, c, m] = dy[n, c, m] if y[n, c, m] > zero else zero
            elif kind == LEAKY_RELU:
                for m in range(L):
                    out[n, c, m] = dy[n, c, m] if y[n, c, m] > zero else s * dy[n, c, m]
            elif kind == TANH:
                for m in range(L):
                    out[n, c, m] = dy[n, c, m] * (one - y[n, c, m] * y[n, c, m])
            elif kind == SIGMOID:
                for m in range(L):
                    out[n, c, m] = dy[n, c, m] * y[n, c, m] * (one - y[n, c, m])
            elif kind == SOFTPLUS:
                for m in range(L):
                    out[n, c, m] = -dy[n, c, m] * np.expm1(-y[n, c, m])
            else:
                for m in range(L):
                    out[n, c, m] = dy[n, c, m]
            acc = 0.0
            for m in range(L):
                acc += np.float64(out[n, c, m])
            sums[c] += acc
    for c in range(C):
        db[c] += sums[c]
    return out


# ---- NumPy twins: the specification of the kernels above ----

def _slices(i, j, OH, OW, stride):
    """The rows and columns of the padded image that kernel offset (i, j) meets."""
    return (slice(None), slice(None), slice(i, i + stride * (OH - 1) + 1, stride),
            slice(j, j + stride * (OW - 1) + 1, stride))


def im2col_np(x, k, stride, padding, cols):
    """For each kernel offset (i, j): the pixels it meets, one per output pixel."""
    N, C, H, W = x.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))                   # (N, C, H+2p, W+2p)
    c6 = cols.reshape(N, OH, OW, C, k, k)
    for i in range(k):
        for j in range(k):
            c6[..., i, j] = xp[_slices(i, j, OH, OW, stride)].transpose(0, 2, 3, 1)
    return cols


def col2im_np(cols, k, stride, padding, out):
    """For each kernel offset (i, j): add its column back onto the pixels it met."""
    N, C, H, W = out.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    p = padding
    xp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=out.dtype)
    c6 = cols.reshape(N, OH, OW, C, k, k)
    for i in range(k):
        for j in range(k):
            xp[_slices(i, j, OH, OW, stride)] += c6[..., i, j].transpose(0, 3, 1, 2)
    out[...] = xp[:, :, p:p + H, p:p + W]
    return out


def bias_act_channels_np(a, b, kind, slope, out):
    out[...] = act_np(a + b[None, :, None], kind, slope)
    return out


def act_backward_bias_channels_np(dy, y, kind, slope, out, db):
    out[...] = dy * dact_np(y, kind, slope)
    db += out.sum(axis=(0, 2), dtype=np.float64).astype(db.dtype)
    return out
