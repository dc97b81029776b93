"""exp and log1p as short polynomials, so that a loop over them runs 8 floats at a time.

A call to the C library's ``expf`` or ``log1pf`` in a loop keeps it one number at a time
(about 10 ns each): it is the one thing in a loss kernel that LLVM cannot turn into SIMD
instructions. Written out as arithmetic, the same loop vectorizes. Float32 only: for float64
(gradient checks) the kernels call ``np.exp`` and ``np.log1p`` (the C library's, within a
rounding of NumPy's).

    exp(t), -87 <= t <= 0:   t = k ln2 + r with k an integer and |r| <= ln2 / 2, so
                             exp(t) = 2^k exp(r);  exp(r) = 1 + r + r^2/2! + ... + r^7/7!
                             (the next term is below 6e-9, a tenth of float32's spacing),
                             and the float32 2^k is built from its bits: (k + 127) << 23.
    log1p(e), 0 <= e <= 1:   s = e / (2 + e) lies in [0, 1/3] and log1p(e) = 2 atanh(s)
                             = 2 (s + s^3/3 + s^5/5 + ... + s^15/15)   (next term < 2e-9).

Both stay within a few float32 roundings of the exact values (``tests/test_kernels.py``
measures it over the whole range). ln 2 is split in two (``LN2_HI`` has few bits, so
``k * LN2_HI`` is exact) to keep r accurate for large k.
"""

import numpy as np
from numba import njit

LOG2E = 1.4426950408889634
LN2_HI = 0.693359375               # ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits
LN2_LO = -2.1219444005469057e-4


@njit(cache=True, error_model="numpy", inline="always")
def _exp_r(r):
    """exp(r) for |r| <= ln2/2 (float32): Taylor to r^7, in Horner form."""
    f = np.float32
    return f(1.0) + r * (f(1.0) + r * (f(1 / 2) + r * (f(1 / 6) + r * (f(1 / 24) + r * (
        f(1 / 120) + r * (f(1 / 720) + r * f(1 / 5040)))))))


@njit(cache=True, error_model="numpy", inline="always")
def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (float32): 2 atanh(e / (2 + e)) by its series."""
    f = np.float32
    s = e / (f(2.0) + e)
    u = s * s
    return f(2.0) * s * (f(1.0) + u * (f(1 / 3) + u * (f(1 / 5) + u * (f(1 / 7) + u * (
        f(1 / 9) + u * (f(1 / 11) + u * (f(1 / 13) + u * f(1 / 15))))))))


@njit(cache=True, error_model="numpy", inline="always")
def exp_neg_abs(a, e, l1p, bits):
    """e[i] = exp(-|a[i]|) and l1p[i] = log(1 + e[i]) for a 1-D row ``a``.

    ``bits`` is int32 scratch of a's length. Float32 rows take the polynomials above;
    float64 rows take np.exp and np.log1p.
    """
    if a.itemsize == 8:
        for i in range(a.shape[0]):
            e[i] = np.exp(-abs(a[i]))
            l1p[i] = np.log1p(e[i])
        return
    lo, half = np.float32(-87.0), np.float32(0.5)
    log2e, hi, low = np.float32(LOG2E), np.float32(LN2_HI), np.float32(LN2_LO)
    for i in range(a.shape[0]):                      # t = k ln2 + r
        t = max(-abs(np.float32(a[i])), lo)          # below -87, 2^k would not be normal
        k = np.floor(t * log2e + half)
        r = (t - k * hi) - k * low
        e[i] = _exp_r(r)
        bits[i] = (np.int32(k) + np.int32(127)) << 23       # the bits of the float32 2^k
    two_k = bits.view(np.float32)
    for i in range(a.shape[0]):
        e[i] *= two_k[i]
        l1p[i] = log1p_unit(np.float32(e[i]))


def exp_neg_abs_np(a, e, l1p, bits=None):
    """NumPy twin of ``exp_neg_abs``, in float64."""
    e[...] = np.exp(-np.abs(a.astype(np.float64)))
    l1p[...] = np.log1p(e.astype(np.float64))


def log1p_unit_np(e):
    """NumPy twin of ``log1p_unit``."""
    return np.log1p(e)
