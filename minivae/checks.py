"""Input checks shared by layers, losses and models: one clear error instead of a
broadcasting traceback from deep inside NumPy."""

import numpy as np

from minivae.errors import InputError, NonFiniteError
from minivae.kernels.checks import all_finite

FLOATS = (np.float32, np.float64)


def check_array(x, who, *, ndim=None, shape=None, dtype=None, finite=True, name="x"):
    """Return ``x`` if it is a float ndarray of the expected rank, shape and dtype.

    ``who`` names the caller in errors: a string, or an object (a layer) whose repr is
    formatted only when a check fails.

    A subclass of ndarray (np.matrix, a masked array) is refused, np.memmap accepted.
    ``shape`` may hold None for "any size" on that axis. ``dtype`` None accepts
    float32 or float64. Raises InputError naming ``who`` and what it expected
    (NonFiniteError, a subclass, for NaN or infinity when ``finite``).
    """
    if not isinstance(x, np.ndarray):
        raise InputError(f"{who}: expected {name} to be a numpy array, got {type(x).__name__}")
    if type(x) is not np.ndarray and not isinstance(x, np.memmap):
        raise InputError(f"{who}: expected {name} to be a plain numpy array, got a "
                         f"{type(x).__name__} (whose rules differ: a matrix's * multiplies "
                         f"matrices, a masked array's mask would be ignored); convert it with "
                         f"np.asarray({name})")
    if ndim is not None and x.ndim != ndim:
        raise InputError(f"{who}: expected {name} with {ndim} dimensions, got shape {x.shape}")
    if shape is not None and not _shape_matches(x.shape, shape):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{who}: expected {name} of shape {want}, got {x.shape}")
    if dtype is None:
        if x.dtype not in FLOATS:
            raise InputError(f"{who}: expected {name} of dtype float32 or float64, got {x.dtype}")
    elif x.dtype != dtype:
        raise InputError(
            f"{who}: expected {name} of dtype {np.dtype(dtype).name}, got {x.dtype}; "
            f"convert with {name}.astype(np.{np.dtype(dtype).name})"
        )
    if x.size == 0:
        raise InputError(f"{who}: {name} is empty (shape {x.shape}); expected at least one example")
    if finite and not all_finite(x.reshape(-1) if x.flags.c_contiguous else x.ravel()):
        raise NonFiniteError(f"{who}: {name} contains NaN or infinity; expected finite values")
    return x


def _shape_matches(got, want):
    """True if ``got`` has want's rank and equals it wherever want is not None."""
    if len(got) != len(want):
        return False
    for w, g in zip(want, got):
        if w is not None and w != g:
            return False
    return True


def check_same_shape(a, b, who, names=("a", "b")):
    """Raise InputError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"{who}: expected {names[0]} and {names[1]} of the same shape, got {a.shape} and {b.shape}"
        )


def check_count(n, who, name, lo=1, what=""):
    """Return ``n`` as an int if it is an integer >= lo (not a bool, float or string).

    The InputError reads "{who}: expected an integer {name} >= {lo}{what}, got ...".
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < lo:
        raise InputError(f"{who}: expected an integer {name} >= {lo}{what}, got {n!r}")
    return int(n)
