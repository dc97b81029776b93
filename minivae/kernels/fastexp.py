"""exp, log1p and tanh as short polynomials, so that a loop over them runs 8 floats at a time.

A call to the C library's ``expf``, ``log1pf`` or ``tanhf`` in a loop keeps it one number at
a time (about 10 ns each): it is the one thing in a loss kernel, or in a tanh layer, that LLVM
cannot turn into SIMD instructions. Written out as arithmetic, the same loop vectorizes.
Float32 only: for float64 (gradient checks) the kernels call ``np.exp``, ``np.log1p`` and
``np.tanh`` (the C library's, within a rounding of NumPy's).

    exp(t), -87 <= t <= 0:   t = k ln2 + r with k an integer and |r| <= ln2 / 2, so
                             exp(t) = 2^k exp(r);  exp(r) = 1 + r + r^2/2! + ... + r^7/7!
                             (the next term is below 6e-9, a tenth of float32's spacing),
                             and the float32 2^k is built from its bits: (k + 127) << 23.
    log1p(e), 0 <= e <= 1:   s = e / (2 + e) lies in [0, 1/3] and log1p(e) = 2 atanh(s)
                             = 2 (s + s^3/3 + s^5/5 + ... + s^15/15)   (next term < 2e-9).
    tanh(x), x >= 0.4:       e = exp(-2x) <= 0.45 and tanh(x) = (1 - e) / (1 + e): no
                             cancellation in 1 - e, so exp's few roundings stay few;
    tanh(x), x < 0.4:        its Taylor series x - x^3/3 + 2x^5/15 - ... to x^15 (each term
                             at most (2 x / pi)^2 = 0.065 times the last: the x^17 term left
                             out is below 3e-10 of tanh); tanh(-x) = -tanh(x), NaN stays NaN;
                             past 9.011 (13 ln 2), tanh rounds to 1 in float32; x is taken
                             as 10.

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
def _exp_split(t):
    """(exp(r), the bits of the float32 2^k) for t = k ln2 + r in [-87, 0]: exp(t) is their
    product once the bits are viewed as a float32."""
    f = np.float32
    k = np.floor(t * f(LOG2E) + f(0.5))
    r = (t - k * f(LN2_HI)) - k * f(LN2_LO)
    return _exp_r(r), (np.int32(k) + np.int32(127)) << 23


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
    lo = np.float32(-87.0)
    for i in range(a.shape[0]):                      # t = k ln2 + r
        t = max(-abs(np.float32(a[i])), lo)          # below -87, 2^k would not be normal
        e[i], bits[i] = _exp_split(t)
    two_k = bits.view(np.float32)
    for i in range(a.shape[0]):
        e[i] *= two_k[i]
        l1p[i] = log1p_unit(np.float32(e[i]))


# tanh's Taylor coefficients, x^1 to x^15: 2^2n (2^2n - 1) B_2n / (2n)! (Bernoulli numbers)
TANH_TAYLOR = (1.0, -1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075,
               -929569 / 638512875)


@njit(cache=True, error_model="numpy", inline="always")
def tanh_row(v, out, e, bits):
    """out[i] = tanh(v[i]) for a 1-D row ``v`` (``out`` may be ``v``).

    ``e`` (float32) and ``bits`` (int32) are scratch of v's length. Float32 rows take the
    formulas above, computing both and keeping one (a select, not a branch, so the loop
    vectorizes); float64 rows take np.tanh.
    """
    if v.itemsize == 8:
        for i in range(v.shape[0]):
            out[i] = np.tanh(v[i])
        return
    f = np.float32
    c1, c3, c5, c7 = f(TANH_TAYLOR[0]), f(TANH_TAYLOR[1]), f(TANH_TAYLOR[2]), f(TANH_TAYLOR[3])
    c9, c11, c13, c15 = f(TANH_TAYLOR[4]), f(TANH_TAYLOR[5]), f(TANH_TAYLOR[6]), f(TANH_TAYLOR[7])
    for i in range(v.shape[0]):                      # e = exp(-2x), in two parts
        x = abs(f(v[i]))
        x = x if x < f(10.0) else f(10.0)  # noqa: FURB136  tanh is 1 past 9.011; NaN: 10 too
        e[i], bits[i] = _exp_split(f(-2.0) * x)
    two_k = bits.view(np.float32)
    for i in range(v.shape[0]):
        x = abs(f(v[i]))
        x = x if x < f(10.0) else f(10.0)  # noqa: FURB136  (a select that takes NaN to 10)
        ex = e[i] * two_k[i]
        big = (f(1.0) - ex) / (f(1.0) + ex)
        u = x * x
        small = x * (c1 + u * (c3 + u * (c5 + u * (c7 + u * (c9 + u * (c11 + u * (
            c13 + u * c15)))))))
        y = np.copysign(small if x < f(0.4) else big, v[i])
        out[i] = y if v[i] == v[i] else v[i]          # NaN in, NaN out


def tanh_row_np(v, out, e=None, bits=None):
    """NumPy twin of ``tanh_row``."""
    out[...] = np.tanh(v)


def exp_neg_abs_np(a, e, l1p, bits=None):
    """NumPy twin of ``exp_neg_abs``, in float64."""
    e[...] = np.exp(-np.abs(a.astype(np.float64)))
    l1p[...] = np.log1p(e.astype(np.float64))


def log1p_unit_np(e):
    """NumPy twin of ``log1p_unit``."""
    return np.log1p(e)
