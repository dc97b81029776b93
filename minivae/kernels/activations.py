"""Elementwise activations, fused with the bias add, and their backward passes: the kernels
behind ``Dense``. Their specification is the activation layers' formulas
(``minivae.layers.activations``); the NumPy twins below call them.

Each derivative is written in terms of the activation's *output* y, so a
layer only keeps y for its backward pass:

    relu       y = max(a, 0)                 dy/da = [y > 0]
    leaky_relu y = a if a > 0 else s*a       dy/da = 1 if y > 0 else s
    tanh       y = tanh(a)                   dy/da = 1 - y^2
    sigmoid    y = 1 / (1 + exp(-a))         dy/da = y (1 - y)
    softplus   y = log(1 + exp(a))           dy/da = sigmoid(a) = 1 - exp(-y)
    identity   y = a                         dy/da = 1

Kernels take the activation as an integer code (the constants below) and
the leaky slope ``s``; arrays are (N, H) and C-contiguous.
"""

import numpy as np
from numba import njit

from minivae.kernels.fastexp import tanh_row

IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS = 0, 1, 2, 3, 4, 5
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
         "tanh": TANH, "sigmoid": SIGMOID, "softplus": SOFTPLUS}


@njit(cache=True, error_model="numpy", inline="always")
def _typed(x, like):
    """``x`` as a scalar of ``like``'s dtype (keeps float32 loops in float32)."""
    return np.full(1, x, like.dtype)[0]


@njit(cache=True, error_model="numpy")
def bias_act_forward(a, b, kind, slope, out):
    """out[n, h] = act(a[n, h] + b[h]).   a, out (N, H); b (H,). ``out`` may be ``a``.

    One loop per activation, so that each loop is branch-free and vectorizes.
    """
    N, H = a.shape
    zero, one, s = _typed(0, out), _typed(1, out), _typed(slope, out)
    m = H if kind == TANH and out.itemsize == 4 else 0  # float32 tanh's scratch, a row long
    t_e, t_bits = np.empty(m, np.float32), np.empty(m, np.int32)
    for n in range(N):
        if kind == RELU:
            for h in range(H):
                v = a[n, h] + b[h]
                out[n, h] = max(v, zero)
        elif kind == LEAKY_RELU:
            for h in range(H):
                v = a[n, h] + b[h]
                out[n, h] = v if v > zero else s * v
        elif kind == TANH:                               # tanh as arithmetic (fastexp)
            for h in range(H):
                out[n, h] = a[n, h] + b[h]
            tanh_row(out[n], out[n], t_e, t_bits)
        elif kind == SIGMOID:
            for h in range(H):
                v = a[n, h] + b[h]
                e = np.exp(-abs(v))                      # never overflows
                out[n, h] = one / (one + e) if v >= zero else e / (one + e)
        elif kind == SOFTPLUS:
            for h in range(H):
                v = a[n, h] + b[h]
                out[n, h] = max(v, zero) + np.log1p(np.exp(-abs(v)))
        else:
            for h in range(H):
                out[n, h] = a[n, h] + b[h]
    return out


@njit(cache=True, error_model="numpy")
def act_backward(dy, y, kind, slope, out):
    """out = dy * act'(y).   dy, y, out (N, H). ``out`` may be ``dy``."""
    N, H = dy.shape
    zero, one, s = _typed(0, out), _typed(1, out), _typed(slope, out)
    for n in range(N):
        if kind == RELU:
            for h in range(H):
                out[n, h] = dy[n, h] if y[n, h] > zero else zero
        elif kind == LEAKY_RELU:
            for h in range(H):
                out[n, h] = dy[n, h] if y[n, h] > zero else s * dy[n, h]
        elif kind == TANH:
            for h in range(H):
                out[n, h] = dy[n, h] * (one - y[n, h] * y[n, h])
        elif kind == SIGMOID:
            for h in range(H):
                out[n, h] = dy[n, h] * y[n, h] * (one - y[n, h])
        elif kind == SOFTPLUS:
            for h in range(H):
                out[n, h] = -dy[n, h] * np.expm1(-y[n, h])
        else:
            for h in range(H):
                out[n, h] = dy[n, h]
    return out


@njit(cache=True, error_model="numpy")
def act_backward_bias(dy, y, kind, slope, out, db):
    """out = dy * act'(y) and db[h] += sum_n out[n, h].   dy, y, out (N, H); db (H,)."""
    act_backward(dy, y, kind, slope, out)
    for n in range(out.shape[0]):
        for h in range(out.shape[1]):
            db[h] += out[n, h]
    return out


# ---- NumPy twins: the specification of the kernels above ----
# They are the activation layers' own formulas (minivae.layers.activations), so the kernel
# computes exactly what the reader sees there.

NAMES = {code: name for name, code in CODES.items()}


def _layer(kind, slope):
    # imported here, not at the top: minivae.layers imports this module
    from minivae.layers.activations import activation
    return activation(NAMES[kind], slope)


def act_np(a, kind, slope=0.01):
    """act(a): the activation layer's f."""
    return _layer(kind, slope).f(a)


def dact_np(y, kind, slope=0.01):
    """act'(a) in terms of y = act(a): the activation layer's df."""
    return _layer(kind, slope).df(y)


def bias_act_forward_np(a, b, kind, slope, out):
    out[...] = act_np(a + b, kind, slope)
    return out


def act_backward_np(dy, y, kind, slope, out):
    out[...] = dy * dact_np(y, kind, slope)
    return out


def act_backward_bias_np(dy, y, kind, slope, out, db):
    out[...] = dy * dact_np(y, kind, slope)
    db += out.sum(axis=0)
    return out
