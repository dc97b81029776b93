"""Fused loss + gradient kernels: one pass over the arrays computes both.

All sums over a row use a float64 accumulator, whatever the input dtype.

    bernoulli:  nll_n = sum_d softplus(l) - x l            dl = sigmoid(l) - x
                (softplus(l) = max(l, 0) + log(1 + exp(-|l|)), stable for any l)
    gaussian:   nll_n = sum_d 0.5 (log 2pi + v + (x - m)^2 exp(-v))
                dm = (m - x) exp(-v),   dv = 0.5 (1 - (x - m)^2 exp(-v))

Arrays are (N, D) and C-contiguous; per-example values go to ``out`` (N,).
"""

import math

import numpy as np
from numba import njit

from minivae.kernels.fastexp import exp_neg_abs

LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def bernoulli_nll(logits, x, out, dlogits):
    """Negative log-likelihood of x under Bernoulli(sigmoid(logits)), per row, and its gradient.

    exp(-|l|) and log1p of it come from ``fastexp`` for a whole row first; then one loop
    adds up the row and writes the gradient. ``reassoc`` lets that float64 sum be added
    8 lanes at a time (the order changes nothing at float32 precision); ``contract``
    lets multiply-adds fuse.
    """
    N, D = logits.shape
    e, l1p = np.empty(D, logits.dtype), np.empty(D, logits.dtype)    # exp(-|l|), log1p(e)
    bits = np.empty(D, np.int32)
    zero, one = logits.dtype.type(0.0), logits.dtype.type(1.0)
    for n in range(N):
        exp_neg_abs(logits[n], e, l1p, bits)
        acc = 0.0
        for d in range(D):
            lg, xd = logits[n, d], x[n, d]
            acc += np.float64(max(lg, zero) - xd * lg) + l1p[d]
            dlogits[n, d] = (one if lg >= zero else e[d]) / (one + e[d]) - xd
        out[n] = acc
    return out


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def bernoulli_nll_repeated(logits, x, m, out):
    """The NLL alone, of row r of logits (N m, D) against row r // m of x (N, D).

    For importance sampling: m samples of z per example decoded side by side, with no
    gradient and no copy of x repeated m times.
    """
    R, D = logits.shape
    e, l1p = np.empty(D, logits.dtype), np.empty(D, logits.dtype)
    bits = np.empty(D, np.int32)
    zero = logits.dtype.type(0.0)
    for r in range(R):
        exp_neg_abs(logits[r], e, l1p, bits)
        n = r // m
        acc = 0.0
        for d in range(D):
            lg = logits[r, d]
            acc += np.float64(max(lg, zero) - x[n, d] * lg) + l1p[d]
        out[r] = acc
    return out


@njit(cache=True, error_model="numpy")
def gaussian_nll(mean, logvar, x, out, dmean, dlogvar):
    """Gaussian negative log-density per row with per-entry log-variance, and its gradients."""
    for n in range(mean.shape[0]):
        acc = 0.0
        for d in range(mean.shape[1]):
            r = x[n, d] - mean[n, d]
            iv = np.exp(-logvar[n, d])
            acc += 0.5 * (LOG_2PI + logvar[n, d] + r * r * iv)
            dmean[n, d] = -r * iv
            dlogvar[n, d] = 0.5 * (1.0 - r * r * iv)
        out[n] = acc
    return out


@njit(cache=True, error_model="numpy")
def gaussian_nll_shared(mean, logvar, x, out, dmean, dlogvar_rows):
    """Gaussian negative log-density per row with one scalar log-variance.

    dlogvar_rows[n] receives row n's share of d(sum nll)/d(logvar); their sum is the gradient.
    """
    iv = np.exp(-logvar)
    for n in range(mean.shape[0]):
        acc = 0.0
        dv = 0.0
        for d in range(mean.shape[1]):
            r = x[n, d] - mean[n, d]
            q = r * r * iv
            acc += 0.5 * (LOG_2PI + logvar + q)
            dmean[n, d] = -r * iv
            dv += 0.5 * (1.0 - q)
        out[n] = acc
        dlogvar_rows[n] = dv
    return out


# ---- NumPy twins: the specification of the kernels above ----

def bernoulli_nll_np(logits, x, out, dlogits):
    lg = logits.astype(np.float64)
    e = np.exp(-np.abs(lg))
    out[...] = (np.maximum(lg, 0) - x * lg + np.log1p(e)).sum(axis=1)
    dlogits[...] = np.where(lg >= 0, 1 / (1 + e), e / (1 + e)) - x
    return out


def bernoulli_nll_repeated_np(logits, x, m, out):
    lg = logits.astype(np.float64)
    xr = np.repeat(x, m, axis=0)
    out[...] = (np.maximum(lg, 0) - xr * lg + np.log1p(np.exp(-np.abs(lg)))).sum(axis=1)
    return out


def gaussian_nll_np(mean, logvar, x, out, dmean, dlogvar):
    r = x.astype(np.float64) - mean
    iv = np.exp(-logvar.astype(np.float64))
    out[...] = (0.5 * (LOG_2PI + logvar + r * r * iv)).sum(axis=1)
    dmean[...] = -r * iv
    dlogvar[...] = 0.5 * (1 - r * r * iv)
    return out


def gaussian_nll_shared_np(mean, logvar, x, out, dmean, dlogvar_rows):
    r = x.astype(np.float64) - mean
    iv = np.exp(-float(logvar))
    out[...] = (0.5 * (LOG_2PI + logvar + r * r * iv)).sum(axis=1)
    dmean[...] = -r * iv
    dlogvar_rows[...] = (0.5 * (1 - r * r * iv)).sum(axis=1)
    return out
