"""What every layer shares: parameter and gradient dicts, zero_grad, and the
rule that backward needs a forward first."""

import numpy as np

from minivae.errors import InputError


class Layer:
    """A differentiable map with hand-written forward and backward passes.

    ``params`` and ``grads`` are dicts of arrays with the same keys and shapes.
    ``forward(x)`` keeps what ``backward`` needs in ``self.cache``;
    ``backward(dy)`` returns dx and *adds* parameter gradients into ``grads``.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.cache = None

    def zero_grad(self):
        """Set every gradient to zero, in place."""
        for g in self.grads.values():
            g.fill(0)

    def _cached(self):
        if self.cache is None:
            raise InputError(f"{self!r}: backward called before forward; call forward(x) first")
        return self.cache

    def __repr__(self):
        return f"{type(self).__name__}()"


def init_uniform(rng, shape, fan_in, dtype):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) samples of the given shape and dtype."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def as_generator(rng):
    """An np.random.Generator from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise InputError(f"expected rng to be a numpy Generator, an int seed or None, got {rng!r}")
