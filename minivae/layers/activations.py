"""Elementwise activations: each layer states its formula f and its derivative, written in
terms of the output y = f(x), so that a layer keeps only y for its backward pass.

    forward:   y = f(x)                    backward:   dx = dy * f'(y)

These NumPy formulas are also the specification of the fused numba kernels that ``Dense``
runs (``minivae.kernels.activations``, held equal to them by tests/test_kernels.py).
"""

import numpy as np

from minivae.errors import InputError
from minivae.layers.base import Layer


class Activation(Layer):
    """y = f(x) elementwise.   x (N, H) -> y (N, H)."""

    def f(self, x):
        raise NotImplementedError

    def df(self, y):
        """f'(x), written in terms of y = f(x)."""
        raise NotImplementedError

    def forward(self, x):
        self.check(x, ndim=2)
        y = self.f(x)                                                   # (N, H)
        self.cache = y
        return y

    def backward(self, dy):
        y = self.cached()
        self.check(dy, "dy", shape=y.shape, dtype=y.dtype)
        return dy * self.df(y)                                          # (N, H)


class Identity(Activation):
    """y = x.   dy/dx = 1."""

    def f(self, x):
        return x.copy()

    def df(self, y):
        return np.ones_like(y)


class ReLU(Activation):
    """y = max(x, 0).   dy/dx = [y > 0]  (0 at x = 0)."""

    def f(self, x):
        return np.maximum(x, 0)

    def df(self, y):
        return (y > 0).astype(y.dtype)


class LeakyReLU(Activation):
    """y = x if x > 0 else s x.   dy/dx = 1 if y > 0 else s   (s >= 0 keeps sign(y) = sign(x))."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if not negative_slope >= 0:
            raise InputError(f"LeakyReLU: negative_slope must be >= 0 (the backward reads the "
                             f"sign of y to know the sign of x), got {negative_slope}")
        self.slope = float(negative_slope)

    def f(self, x):
        return np.where(x > 0, x, self.slope * x).astype(x.dtype)

    def df(self, y):
        return np.where(y > 0, 1, self.slope).astype(y.dtype)

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.slope})"


class Tanh(Activation):
    """y = tanh(x).   dy/dx = 1 - y^2."""

    def f(self, x):
        return np.tanh(x)

    def df(self, y):
        return 1 - y * y


def sigmoid(x):
    """1 / (1 + exp(-x)), as exp(-|x|) / (1 + exp(-|x|)) for x < 0: no overflow for any x."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)).   dy/dx = y (1 - y)."""

    def f(self, x):
        return sigmoid(x)

    def df(self, y):
        return y * (1 - y)


class Softplus(Activation):
    """y = log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)).   dy/dx = sigmoid(x) = 1 - exp(-y)."""

    def f(self, x):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def df(self, y):
        return -np.expm1(-y)


ACTIVATIONS = {"identity": Identity, "relu": ReLU, "leaky_relu": LeakyReLU, "tanh": Tanh,
               "sigmoid": Sigmoid, "softplus": Softplus}


def activation(name, negative_slope=0.01):
    """The activation layer called ``name`` (a key of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise InputError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return LeakyReLU(negative_slope) if name == "leaky_relu" else ACTIVATIONS[name]()
