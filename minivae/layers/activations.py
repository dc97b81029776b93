"""Elementwise activation layers. Each keeps its output y; its backward is dy * act'(y).

The formulas of each activation and its derivative are in ``minivae.kernels.activations``.
"""

import numpy as np

from minivae.checks import check_array
from minivae.kernels import activations as K
from minivae.layers.base import Layer


class Activation(Layer):
    """y = act(x) elementwise.   x (N, H) -> y (N, H)."""

    kind = K.IDENTITY
    slope = 0.0

    def forward(self, x):
        check_array(x, self, ndim=2)
        x = np.ascontiguousarray(x)
        zero = np.zeros(x.shape[1], x.dtype)
        y = K.bias_act_forward(x, zero, self.kind, self.slope, np.empty_like(x))   # (N, H)
        self.cache = y
        return y

    def backward(self, dy):
        y = self._cached()
        check_array(dy, self, shape=y.shape, dtype=y.dtype, name="dy")
        dy = np.ascontiguousarray(dy)
        return K.act_backward(dy, y, self.kind, self.slope, np.empty_like(dy))    # (N, H)


class ReLU(Activation):
    """y = max(x, 0).   dy/dx = [y > 0] (0 at x = 0)."""
    kind = K.RELU


class LeakyReLU(Activation):
    """y = x if x > 0 else negative_slope * x."""
    kind = K.LEAKY_RELU

    def __init__(self, negative_slope=0.01):
        super().__init__()
        if not negative_slope >= 0:
            raise ValueError(f"LeakyReLU: negative_slope must be >= 0 (the backward reads the sign "
                             f"of y to know the sign of x), got {negative_slope}")
        self.slope = float(negative_slope)

    def __repr__(self):
        return f"LeakyReLU(negative_slope={self.slope})"


class Tanh(Activation):
    """y = tanh(x).   dy/dx = 1 - y^2."""
    kind = K.TANH


class Sigmoid(Activation):
    """y = 1 / (1 + exp(-x)).   dy/dx = y (1 - y)."""
    kind = K.SIGMOID


class Softplus(Activation):
    """y = log(1 + exp(x)), computed stably.   dy/dx = sigmoid(x) = 1 - exp(-y)."""
    kind = K.SOFTPLUS
