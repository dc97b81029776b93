"""The loops of a convolution that are not a matrix product: im2col (the gather) and col2im (its
adjoint, the scatter-add), on images kept channels-last, (N, H, W, C). The product is BLAS's and
the bias + activation on its output the ``Dense`` kernels' (``minivae.layers.conv``).

A convolution with a k x k kernel, stride s and zero padding p reads, for output pixel
(oh, ow), the patch of the padded image whose top-left corner is (s oh - p, s ow - p):

    cols[(n, oh, ow), (i, j, c)] = x[n, s oh - p + i, s ow - p + j, c]     (0 outside x)

    x (N, H, W, C) -> cols (N OH OW, k k C),   OH = (H + 2p - k) // s + 1  (OW alike)

Channels-last, a patch row is k runs of k C contiguous floats, one per kernel row i: a
patch's row i is x[n, h, w0:w0 + k, :], one piece of memory.

col2im is the transpose of that linear map: every entry of cols is added back where it was
read from (an image pixel read by several patches receives the sum of their entries):

    out[n, h, w, c] = sum of cols[(n, oh, ow), (i, j, c)] over s oh - p + i = h, s ow - p + j = w

Each kernel has a NumPy twin ``<name>_np``, its specification, written as a loop over the
k x k kernel offsets with whole-array slices (``tests/test_conv.py`` holds them equal).
"""

import numpy as np
from numba import njit


def out_size(size, k, stride, padding):
    """Output length of a convolution along one axis: (size + 2 p - k) // s + 1."""
    return (size + 2 * padding - k) // stride + 1


@njit(cache=True, error_model="numpy")
def im2col(x, k, stride, padding, cols):
    """cols[(n, oh, ow), (i, j, c)] = x[n, s oh - p + i, s ow - p + j, c], 0 outside x.

    x (N, H, W, C) -> cols (N OH OW, k k C), both C-contiguous. Returns cols.
    One image row h = s oh - p + i at a time: each of the OW patches that read it takes one
    contiguous run of k C floats from it, x[n, h, w0:w0 + k, :], unless it crosses the padding.
    """
    N, H, W, C = x.shape
    OH = (H + 2 * padding - k) // stride + 1
    OW = (W + 2 * padding - k) // stride + 1
    xr = x.reshape(N, H, W * C)                                 # an image row: (W C,)
    kC = k * C
    zero = x.dtype.type(0)
    for n in range(N):
        for oh in range(OH):
            r0 = (n * OH + oh) * OW                             # the first row of this oh
            for i in range(k):
                h = oh * stride - padding + i
                if h < 0 or h >= H:                             # a row of padding
                    for ow in range(OW):
                        cols[r0 + ow, i * kC:(i + 1) * kC] = zero
                    continue
                src = xr[n, h]                                  # (W C,)
                for ow in range(OW):
                    w0 = ow * stride - padding
                    dst = cols[r0 + ow, i * kC:(i + 1) * kC]    # (k C,)
                    if w0 >= 0 and w0 + k <= W:                 # inside: one contiguous copy
                        run = src[w0 * C:(w0 + k) * C]
                        for m in range(kC):
                            dst[m] = run[m]
                    else:                                       # across the padding
                        for j in range(k):
                            w = w0 + j
                            for c in range(C):
                                dst[j * C + c] = src[w * C + c] if 0 <= w < W else zero
    return cols


@njit(cache=True, error_model="numpy")
def col2im(cols, k, stride, padding, out):
    """The adjoint of im2col: out = 0, then each cols[(n, oh, ow), (i, j, c)] is added into
    out[n, s oh - p + i, s ow - p + j, c] (entries that fall in the padding are dropped).

    cols (N OH OW, k k C) -> out (N, H, W, C), both C-contiguous; OH, OW from out's H, W.
    Returns out. One image row h = s oh - p + i at a time: each of the OW patches that read
    it adds one run of k C floats back onto out[n, h, w0:w0 + k, :].
    """
    N, H, W, C = out.shape
    OH = (H + 2 * padding - k) // stride + 1
    OW = (W + 2 * padding - k) // stride + 1
    orow = out.reshape(N, H, W * C)                             # an image row: (W C,)
    kC = k * C
    out[:] = 0
    for n in range(N):
        for oh in range(OH):
            r0 = (n * OH + oh) * OW
            for i in range(k):
                h = oh * stride - padding + i
                if h < 0 or h >= H:                             # a row of padding
                    continue
                dst = orow[n, h]                                # (W C,)
                for ow in range(OW):
                    w0 = ow * stride - padding
                    src = cols[r0 + ow, i * kC:(i + 1) * kC]    # (k C,)
                    if w0 >= 0 and w0 + k <= W:                 # inside: one contiguous run
                        d0 = w0 * C
                        for m in range(kC):
                            dst[d0 + m] += src[m]
                    else:                                       # across the padding
                        for j in range(k):
                            w = w0 + j
                            if 0 <= w < W:
                                for c in range(C):
                                    dst[w * C + c] += src[j * C + c]
    return out


# ---- NumPy twins: the specification of the kernels above ----

def _slices(i, j, OH, OW, stride):
    """The rows and columns of the padded image (N, H + 2p, W + 2p, C) that kernel offset
    (i, j) meets, one per output pixel."""
    return (slice(None), slice(i, i + stride * (OH - 1) + 1, stride),
            slice(j, j + stride * (OW - 1) + 1, stride), slice(None))


def im2col_np(x, k, stride, padding, cols):
    """For each kernel offset (i, j): the pixels it meets, one per output pixel."""
    N, H, W, C = x.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    p = padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))                   # (N, H+2p, W+2p, C)
    c6 = cols.reshape(N, OH, OW, k, k, C)
    for i in range(k):
        for j in range(k):
            c6[:, :, :, i, j] = xp[_slices(i, j, OH, OW, stride)]      # (N, OH, OW, C)
    return cols


def col2im_np(cols, k, stride, padding, out):
    """For each kernel offset (i, j): add its column back onto the pixels it met."""
    N, H, W, C = out.shape
    OH, OW = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    p = padding
    xp = np.zeros((N, H + 2 * p, W + 2 * p, C), dtype=out.dtype)
    c6 = cols.reshape(N, OH, OW, k, k, C)
    for i in range(k):
        for j in range(k):
            xp[_slices(i, j, OH, OW, stride)] += c6[:, :, :, i, j]
    out[...] = xp[:, p:p + H, p:p + W]
    return out
