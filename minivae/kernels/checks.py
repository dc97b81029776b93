"""A finiteness test that allocates nothing and runs 8 floats at a time.

x * 0 is 0 for every finite x and NaN for NaN and for +-infinity, so the sum of x * 0
over the array is 0 exactly when every entry is finite. ``reassoc`` lets that sum be
added 8 lanes at a time (in any order, a sum of zeros is zero and a NaN stays NaN);
no other fast-math flag is set, so NaN and infinity keep their meaning.
"""

import numba
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sum_times_zero_is_zero(x):
    zero = x.dtype.type(0.0)
    acc = zero
    for i in range(x.shape[0]):
        acc += x[i] * zero
    return bool(acc == zero)


def all_finite(x):
    """True if every entry of the 1-D array ``x`` is finite."""
    if numba.config.DISABLE_JIT:          # plain Python: NumPy's own test, which does not
        return all_finite_np(x)           # warn of inf * 0 as a Python loop would
    return _sum_times_zero_is_zero(x)


def all_finite_np(x):
    """NumPy twin of ``all_finite``."""
    return bool(np.isfinite(x).all())
