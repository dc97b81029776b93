"""The affine layer y = x @ W + b."""

import numpy as np

from minivae.checks import check_array
from minivae.kernels.matmul import layer_product
from minivae.layers.base import Layer, as_generator, init_uniform


class Linear(Layer):
    """y = x @ W + b.   x (N, D) -> y (N, H);  W (D, H), b (H,).

    W and b start uniform in +-1/sqrt(D) from ``rng`` (a Generator, an int seed,
    or None for fresh entropy). ``dtype`` is float32 (fast) or float64 (for
    gradient checks); inputs must match it. ``input_grad=False`` is for a first layer,
    whose input is the data: backward then skips dx = dy @ W.T and returns None.
    """

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32,
                 input_grad=True):
        super().__init__()
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Linear: dtype must be float32 or float64, got {self.dtype}")
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(f"Linear: sizes must be positive, got {in_features}, {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = as_generator(rng)
        D, H = self.in_features, self.out_features
        self.params = {"W": init_uniform(rng, (D, H), D, self.dtype),
                       "b": init_uniform(rng, (H,), D, self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.input_grad = bool(input_grad)

    def forward(self, x):
        check_array(x, self, shape=(None, self.in_features), dtype=self.dtype)
        self.cache = x
        y = layer_product(x, self.params["W"])                          # (N, H) = x @ W
        y += self.params["b"]
        return y

    def backward(self, dy):
        x = self._cached()
        check_array(dy, self, shape=(x.shape[0], self.out_features), dtype=self.dtype,
                    name="dy")
        self.grads["W"] += layer_product(x, dy, trans_a=True)           # (D, H) = x.T @ dy
        self.grads["b"] += dy.sum(axis=0)                              # (H,)
        if not self.input_grad:
            return None
        return layer_product(dy, self.params["W"], trans_b=True)       # (N, D) = dy @ W.T

    def __repr__(self):
        return f"Linear({self.in_features} -> {self.out_features}, {self.dtype.name})"
