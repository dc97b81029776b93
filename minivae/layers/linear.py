"""The affine layer y = x @ W + b."""

import numpy as np

from minivae.checks import check_count
from minivae.layers.base import Layer, init_uniform, layer_dtype


class Linear(Layer):
    """y = x @ W + b.   x (N, D) -> y (N, H);  W (D, H), b (H,).

    W and b start uniform in +-1/sqrt(D) from ``rng`` (a Generator, an int seed, or None for
    fresh entropy). ``dtype`` is float32 (fast) or float64 (for gradient checks); inputs must
    match it. ``input_grad=False`` is for a first layer, whose input is the data: backward
    then skips dx = dy @ W.T (a sixth of a VAE step's arithmetic) and returns None.
    """

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32,
                 input_grad=True, check_inputs=True):
        super().__init__()
        who = type(self).__name__
        self.dtype = layer_dtype(dtype, who)
        D = self.in_features = check_count(in_features, who, "in_features")
        H = self.out_features = check_count(out_features, who, "out_features")
        rng = np.random.default_rng(rng)
        self.params = {"W": init_uniform(rng, (D, H), D, self.dtype),
                       "b": init_uniform(rng, (H,), D, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_grad, self.check_inputs = bool(input_grad), bool(check_inputs)

    def forward(self, x):
        self.check(x, shape=(None, self.in_features), dtype=self.dtype)
        self.cache = x
        return x @ self.params["W"] + self.params["b"]                 # (N, H)

    def backward(self, dy):
        x = self.cached()
        self.check(dy, "dy", shape=(x.shape[0], self.out_features), dtype=self.dtype)
        self.grads["W"] += x.T @ dy                                     # (D, H)
        self.grads["b"] += dy.sum(axis=0)                               # (H,)
        if not self.input_grad:
            return None
        return dy @ self.params["W"].T                                  # (N, D)

    def __repr__(self):
        return f"Linear({self.in_features} -> {self.out_features}, {self.dtype.name})"
