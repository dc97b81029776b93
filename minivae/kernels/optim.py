"""In-place optimizer updates over flat parameter arrays.

    sgd:   v = momentum v + (g + wd p);       p -= lr v
    adam:  g' = g + wd p
           m = b1 m + (1 - b1) g';            v = b2 v + (1 - b2) g'^2
           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

A moment below the smallest normal float (float32: 1.2e-38) is set to 0. Where a gradient
stays exactly 0 (a ReLU unit that died), m shrinks by b1 each step and reaches that range
after about 700 steps; arithmetic on such subnormal numbers runs many times slower on common
CPUs (Adam's pass over a VAE took 6 times longer from the second epoch on), and they move no
parameter: lr m / (sqrt(v) + eps) is below 1e-30.
"""

import numpy as np
from numba import njit

TINY32, TINY64 = 1.1754943508222875e-38, 2.2250738585072014e-308   # the smallest normal floats


@njit(cache=True, error_model="numpy", inline="always")
def _flush(a, tiny, zero):
    """a, or 0 if |a| is below the smallest normal number (a select: the loop stays SIMD)."""
    return a if abs(a) >= tiny else zero


@njit(cache=True, error_model="numpy")
def sgd_update(p, g, v, lr, momentum, wd):
    """One SGD step with momentum, in place on p and v (all 1-D, same length)."""
    tiny = np.full(1, TINY32 if p.itemsize == 4 else TINY64, p.dtype)[0]
    zero = np.zeros(1, p.dtype)[0]
    for i in range(p.shape[0]):
        gi = g[i] + wd * p[i]
        v[i] = _flush(momentum * v[i] + gi, tiny, zero)
        p[i] -= lr * v[i]


@njit(cache=True, error_model="numpy")
def adam_update(p, g, m, v, lr, b1, b2, eps, t, wd):
    """One bias-corrected Adam step number t (t >= 1), in place on p, m and v (1-D).

    Constants are cast to p's dtype once, so a float32 model updates in float32; 1 - b is
    taken before the cast (in float32, 1 - 0.9999 would keep only about 4 digits).
    """
    zero = np.zeros(1, p.dtype)[0]
    tiny = np.full(1, TINY32 if p.itemsize == 4 else TINY64, p.dtype)[0]
    b1_, b2_ = np.full(1, b1, p.dtype)[0], np.full(1, b2, p.dtype)[0]
    c1_, c2_ = np.full(1, 1.0 - b1, p.dtype)[0], np.full(1, 1.0 - b2, p.dtype)[0]
    eps_, wd_ = np.full(1, eps, p.dtype)[0], np.full(1, wd, p.dtype)[0]
    step = np.full(1, lr / (1.0 - b1 ** t), p.dtype)[0]      # lr / (1 - b1^t)
    inv_c2 = np.full(1, 1.0 / (1.0 - b2 ** t), p.dtype)[0]   # 1 / (1 - b2^t)
    for i in range(p.shape[0]):
        gi = g[i] + wd_ * p[i]
        m[i] = _flush(b1_ * m[i] + c1_ * gi, tiny, zero)
        v[i] = _flush(b2_ * v[i] + c2_ * gi * gi, tiny, zero)
        p[i] -= step * m[i] / (np.sqrt(v[i] * inv_c2) + eps_)


def _flush_np(a):
    a[np.abs(a) < (TINY32 if a.itemsize == 4 else TINY64)] = 0
    return a


def sgd_update_np(p, g, v, lr, momentum, wd):
    gi = g + wd * p
    v[...] = _flush_np(momentum * v + gi)
    p -= lr * v


def adam_update_np(p, g, m, v, lr, b1, b2, eps, t, wd):
    gi = g + wd * p
    m[...] = _flush_np(b1 * m + (1 - b1) * gi)
    v[...] = _flush_np(b2 * v + (1 - b2) * gi * gi)
    p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
