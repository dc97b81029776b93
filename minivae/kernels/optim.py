"""In-place optimizer updates over flat parameter arrays.

    sgd:   v = momentum v + (g + wd p);       p -= lr v
    adam:  g' = g + wd p
           m = b1 m + (1 - b1) g';            v = b2 v + (1 - b2) g'^2
           p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
"""

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sgd_update(p, g, v, lr, momentum, wd):
    """One SGD step with momentum, in place on p and v (all 1-D, same length)."""
    for i in range(p.shape[0]):
        gi = g[i] + wd * p[i]
        v[i] = momentum * v[i] + gi
        p[i] -= lr * v[i]


@njit(cache=True, error_model="numpy")
def adam_update(p, g, m, v, lr, b1, b2, eps, t, wd):
    """One bias-corrected Adam step number t (t >= 1), in place on p, m and v (1-D).

    Constants are cast to p's dtype once, so a float32 model updates in float32.
    """
    one = np.ones(1, p.dtype)[0]
    b1_, b2_ = np.full(1, b1, p.dtype)[0], np.full(1, b2, p.dtype)[0]
    eps_, wd_ = np.full(1, eps, p.dtype)[0], np.full(1, wd, p.dtype)[0]
    step = np.full(1, lr / (1.0 - b1 ** t), p.dtype)[0]      # lr / (1 - b1^t)
    inv_c2 = np.full(1, 1.0 / (1.0 - b2 ** t), p.dtype)[0]   # 1 / (1 - b2^t)
    for i in range(p.shape[0]):
        gi = g[i] + wd_ * p[i]
        m[i] = b1_ * m[i] + (one - b1_) * gi
        v[i] = b2_ * v[i] + (one - b2_) * gi * gi
        p[i] -= step * m[i] / (np.sqrt(v[i] * inv_c2) + eps_)


def sgd_update_np(p, g, v, lr, momentum, wd):
    gi = g + wd * p
    v[...] = momentum * v + gi
    p -= lr * v


def adam_update_np(p, g, m, v, lr, b1, b2, eps, t, wd):
    gi = g + wd * p
    m[...] = b1 * m + (1 - b1) * gi
    v[...] = b2 * v + (1 - b2) * gi * gi
    p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
