"""A finiteness test that stops at the first NaN or infinity and allocates nothing."""

import numpy as np
from numba import njit


@njit(cache=True)
def all_finite(x):
    """True if every entry of the 1-D array ``x`` is finite."""
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    return True


def all_finite_np(x):
    """NumPy twin of ``all_finite``."""
    return bool(np.isfinite(x).all())
