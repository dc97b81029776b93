"""A Linear layer and its activation, fused: y = act(x @ W + b)."""

import numpy as np

from minivae.errors import InputError
from minivae.kernels import activations as K
from minivae.layers.activations import ACTIVATIONS
from minivae.layers.linear import Linear


class Dense(Linear):
    """y = act(x @ W + b).   x (N, D) -> y (N, H);  W (D, H), b (H,).

    The same parameters, initialisation and result as ``Linear`` followed by the activation
    layer (``minivae.layers.activations``: identity, relu, leaky_relu, tanh, sigmoid,
    softplus). The bias add and the activation run as one pass over a (a numba kernel,
    ``kernels.activations``, whose NumPy twin is the activation layer's formula), and so do
    the activation's derivative and the bias gradient on the way back.

        forward:   a = x @ W;   y = act(a + b)
        backward:  da = dy * act'(y);   db += sum_n da;   dW += x.T @ da;   dx = da @ W.T
    """

    def __init__(self, in_features, out_features, activation="relu", *, negative_slope=0.01,
                 rng=None, dtype=np.float32, input_grad=True, check_inputs=True):
        if activation not in ACTIVATIONS:
            raise InputError(f"Dense: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if not negative_slope >= 0:
            raise InputError(f"Dense: negative_slope must be >= 0, got {negative_slope}")
        super().__init__(in_features, out_features, rng=rng, dtype=dtype,
                         input_grad=input_grad, check_inputs=check_inputs)
        self.activation = activation
        self.kind, self.slope = K.CODES[activation], float(negative_slope)

    def forward(self, x):
        self.check(x, shape=(None, self.in_features), dtype=self.dtype)
        a = x @ self.params["W"]                                        # (N, H)
        y = K.bias_act_forward(a, self.params["b"], self.kind, self.slope, a)   # act(a + b)
        self.cache = (x, y)
        return y

    def backward(self, dy):
        x, y = self.cached()
        self.check(dy, "dy", shape=y.shape, dtype=self.dtype)
        da = K.act_backward_bias(dy, y, self.kind, self.slope, np.empty_like(dy),
                                 self.grads["b"])                       # dy * act'(y)
        self.grads["W"] += x.T @ da                                     # (D, H)
        if not self.input_grad:
            return None
        return da @ self.params["W"].T                                  # (N, D)

    def __repr__(self):
        return (f"Dense({self.in_features} -> {self.out_features}, {self.activation}, "
                f"{self.dtype.name})")
