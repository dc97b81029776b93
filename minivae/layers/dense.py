"""A Linear layer and its activation fused: the bias add, the activation and, on the
way back, the activation's derivative and the bias gradient each touch the arrays once."""

import numpy as np

from minivae.checks import check_array
from minivae.kernels import activations as K
from minivae.kernels.matmul import layer_product
from minivae.layers.linear import Linear


class Dense(Linear):
    """y = act(x @ W + b).   x (N, D) -> y (N, H).

    The same parameters, initialisation and result as ``Linear`` followed by
    the activation layer, computed by fused kernels. ``activation`` is one of
    identity, relu, leaky_relu, tanh, sigmoid, softplus.

    backward:  da = dy * act'(y);  dW += x.T @ da;  db += sum_n da;  dx = da @ W.T
               (dx only if ``input_grad``: see Linear)
    """

    def __init__(self, in_features, out_features, activation="relu", *, negative_slope=0.01,
                 rng=None, dtype=np.float32, input_grad=True):
        if activation not in K.CODES:
            raise ValueError(f"Dense: activation must be one of {sorted(K.CODES)}, "
                             f"got {activation!r}")
        if not negative_slope >= 0:
            raise ValueError(f"Dense: negative_slope must be >= 0, got {negative_slope}")
        super().__init__(in_features, out_features, rng=rng, dtype=dtype, input_grad=input_grad)
        self.activation = activation
        self.kind = K.CODES[activation]
        self.slope = float(negative_slope)

    def forward(self, x):
        check_array(x, self, shape=(None, self.in_features), dtype=self.dtype)
        a = layer_product(x, self.params["W"])                          # (N, H) = x @ W
        y = K.bias_act_forward(a, self.params["b"], self.kind, self.slope, a)   # in place
        self.cache = (x, y)
        return y

    def backward(self, dy):
        x, y = self._cached()
        check_array(dy, self, shape=y.shape, dtype=self.dtype, name="dy")
        dy = np.ascontiguousarray(dy)
        da = K.act_backward_bias(dy, y, self.kind, self.slope, np.empty_like(dy),
                                 self.grads["b"])                       # (N, H)
        self.grads["W"] += layer_product(x, da, trans_a=True)           # (D, H) = x.T @ da
        if not self.input_grad:
            return None
        return layer_product(da, self.params["W"], trans_b=True)       # (N, D) = da @ W.T

    def __repr__(self):
        return (f"Dense({self.in_features} -> {self.out_features}, {self.activation}, "
                f"{self.dtype.name})")
