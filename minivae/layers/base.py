"""What every layer shares: parameter and gradient dicts, zero_grad, the input check, and the
rule that backward needs a forward first."""

import numpy as np

from minivae.checks import check_array
from minivae.errors import InputError


class Layer:
    """A differentiable map with hand-written forward and backward passes.

    ``params`` and ``grads`` are dicts of arrays with the same keys and shapes.
    ``forward(x)`` keeps what ``backward`` needs in ``self.cache``;
    ``backward(dy)`` returns dx and *adds* parameter gradients into ``grads``.

    A layer you call checks what you hand it (shape, dtype, NaN: ``check``). A model builds
    its layers with ``check_inputs=False``: it checks x once, where you hand it over, and the
    arrays one layer makes for the next are not scanned again.
    """

    check_inputs = True

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.cache = None

    def zero_grad(self):
        """Set every gradient to zero, in place."""
        for g in self.grads.values():
            g.fill(0)

    def check(self, a, name="x", like=None, **want):
        """``a`` if ``check_inputs`` is off or it passes ``check_array`` (InputError naming
        this layer otherwise). ``want``: ndim, shape, dtype, as check_array takes them;
        ``like`` names the argument whose shape ``a`` must have."""
        if self.check_inputs:
            if like is not None and np.shape(a) != want["shape"]:
                raise InputError(f"{self!r}: expected {like} and {name} of the same shape, got "
                                 f"{want['shape']} and {np.shape(a)}")
            check_array(a, self, name=name, **want)
        return a

    def cached(self):
        """What forward kept for backward; InputError if forward has not run."""
        if self.cache is None:
            raise InputError(f"{self!r}: backward called before forward; call forward(x) first")
        return self.cache

    def __repr__(self):
        return f"{type(self).__name__}()"


def init_uniform(rng, shape, fan_in, dtype):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) samples of the given shape and dtype."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def layer_dtype(dtype, who):
    """np.dtype(dtype) if it is float32 or float64; InputError otherwise."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise InputError(f"{who}: dtype must be float32 or float64, got {dtype}")
    return dtype
