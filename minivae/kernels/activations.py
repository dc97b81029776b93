"""Elementwise activations, fused with the bias add, and their backward passes.

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

IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS = 0, 1, 2, 3, 4, 5
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
         "tanh": TANH, "sigmoid": SIGMOID, "softplus": SOFTPLUS}


@njit(cache=True, inline="always")
def _act(a, kind, slope):
    if kind == RELU:
        return a if a > 0 else 0.0 * a
    if kind == LEAKY_RELU:
        return a if a > 0 else slope * a
    if kind == TANH:
        return np.tanh(a)
    if kind == SIGMOID:
        if a >= 0:
            return 1.0 / (1.0 + np.exp(-a))
        e = np.exp(a)
        return e / (1.0 + e)
    if kind == SOFTPLUS:
        return max(a, 0.0 * a) + np.log1p(np.exp(-abs(a)))
    return a


@njit(cache=True, inline="always")
def _dact(y, kind, slope):
    if kind == RELU:
        return 1.0 if y > 0 else 0.0
    if kind == LEAKY_RELU:
        return 1.0 if y > 0 else slope
    if kind == TANH:
        return 1.0 - y * y
    if kind == SIGMOID:
        return y * (1.0 - y)
    if kind == SOFTPLUS:
        return -np.expm1(-y)
    return 1.0


@njit(cache=True)
def bias_act_forward(a, b, kind, slope, out):
    """out[n, h] = act(a[n, h] + b[h]).   a, out (N, H); b (H,). ``out`` may be ``a``."""
    for n in range(a.shape[0]):
        for h in range(a.shape[1]):
            out[n, h] = _act(a[n, h] + b[h], kind, slope)
    return out


@njit(cache=True)
def act_backward(dy, y, kind, slope, out):
    """out = dy * act'(y).   dy, y, out (N, H). ``out`` may be ``dy``."""
    for n in range(dy.shape[0]):
        for h in range(dy.shape[1]):
            out[n, h] = dy[n, h] * _dact(y[n, h], kind, slope)
    return out


@njit(cache=True)
def act_backward_bias(dy, y, kind, slope, out, db):
    """out = dy * act'(y) and db[h] += sum_n out[n, h].   dy, y, out (N, H); db (H,)."""
    for n in range(dy.shape[0]):
        for h in range(dy.shape[1]):
            g = dy[n, h] * _dact(y[n, h], kind, slope)
            out[n, h] = g
            db[h] += g
    return out


# ---- NumPy twins: the specification of the kernels above ----

def act_np(a, kind, slope=0.01):
    """NumPy twin of ``_act`` on a whole array."""
    if kind == RELU:
        return np.maximum(a, 0)
    if kind == LEAKY_RELU:
        return np.where(a > 0, a, slope * a)
    if kind == TANH:
        return np.tanh(a)
    if kind == SIGMOID:
        e = np.exp(-np.abs(a))
        return np.where(a >= 0, 1 / (1 + e), e / (1 + e))
    if kind == SOFTPLUS:
        return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))
    return a.copy()


def dact_np(y, kind, slope=0.01):
    """NumPy twin of ``_dact`` on a whole array."""
    if kind == RELU:
        return (y > 0).astype(y.dtype)
    if kind == LEAKY_RELU:
        return np.where(y > 0, 1, slope).astype(y.dtype)
    if kind == TANH:
        return 1 - y * y
    if kind == SIGMOID:
        return y * (1 - y)
    if kind == SOFTPLUS:
        return -np.expm1(-y)
    return np.ones_like(y)


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
