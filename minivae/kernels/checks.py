"""A finiteness test that allocates nothing and runs 8 floats at a time.

A float is NaN or infinite exactly when its exponent bits are all ones, that is when
its bits with the sign cleared are at least those of +inf. So the test is one integer
maximum over the array's bits (which vectorizes, where a branch per element would not).
"""

import numpy as np
from numba import njit

_ABS32, _INF32 = np.uint32(0x7FFFFFFF), np.uint32(0x7F800000)
_ABS64, _INF64 = np.uint64(0x7FFFFFFFFFFFFFFF), np.uint64(0x7FF0000000000000)


@njit(cache=True, error_model="numpy")
def _max_abs_bits(bits, mask):
    """max_i (bits[i] & mask) of a 1-D unsigned integer array."""
    m = bits.dtype.type(0)
    for i in range(bits.shape[0]):
        m = max(m, bits[i] & mask)
    return m


def all_finite(x):
    """True if every entry of the 1-D float32 or float64 array ``x`` is finite."""
    if x.dtype == np.float32:
        return bool(_max_abs_bits(x.view(np.uint32), _ABS32) < _INF32)
    if x.dtype == np.float64:
        return bool(_max_abs_bits(x.view(np.uint64), _ABS64) < _INF64)
    return all_finite_np(x)


def all_finite_np(x):
    """NumPy twin of ``all_finite``."""
    return bool(np.isfinite(x).all())
