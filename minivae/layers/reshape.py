"""Reshape layers, so that convolutions (N, C, H, W) compose with dense layers (N, D).

    Flatten:    x (N, C, H, W) -> y (N, C H W)          backward: dy reshaped back
    Unflatten:  x (N, C H W)   -> y (N, C, H, W)        backward: dy reshaped back

Nothing is computed, so nothing is differentiated: dx is dy with x's shape. A reshape of a
C-contiguous array is a view, not a copy. If the layer after skipped its input gradient
(``input_grad=False`` returns None), there is nothing to pass back, and backward returns None.
"""

import numpy as np

from minivae.checks import check_count
from minivae.errors import InputError
from minivae.layers.base import Layer


class Flatten(Layer):
    """(N, *shape) -> (N, prod(shape)), row-major: channel, then row, then column."""

    def __init__(self, *, check_inputs=True):
        super().__init__()
        self.check_inputs = bool(check_inputs)

    def forward(self, x):
        self.check(x)
        if x.ndim < 2:
            raise InputError(f"{self!r}: expected x of shape (N, ...) with at least 2 "
                             f"dimensions, got shape {x.shape}")
        self.cache = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)         # (N, C H W)

    def backward(self, dy):
        shape = self.cached()
        if dy is None:
            return None
        self.check(dy, "dy", shape=(shape[0], int(np.prod(shape[1:]))))
        return np.ascontiguousarray(dy).reshape(shape)                   # (N, C, H, W)


class Unflatten(Layer):
    """(N, prod(shape)) -> (N, *shape), e.g. shape = (C, H, W)."""

    def __init__(self, shape, *, check_inputs=True):
        super().__init__()
        if not isinstance(shape, (tuple, list)) or not shape:
            raise InputError(f"Unflatten: expected shape to be a tuple of sizes such as "
                             f"(1, 28, 28), got {shape!r}")
        self.shape = tuple(check_count(s, "Unflatten", "size in shape") for s in shape)
        self.size = int(np.prod(self.shape))
        self.check_inputs = bool(check_inputs)

    def forward(self, x):
        self.check(x, shape=(None, self.size))
        self.cache = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], *self.shape)  # (N, *shape)

    def backward(self, dy):
        shape = self.cached()
        if dy is None:
            return None
        self.check(dy, "dy", shape=(shape[0], *self.shape))
        return np.ascontiguousarray(dy).reshape(shape)                   # (N, prod(shape))

    def __repr__(self):
        return f"Unflatten({self.shape})"
