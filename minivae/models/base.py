"""What the encoder-decoder models share: the MLP they are built of, their parameters and
gradients (those of ``encoder`` and ``decoder``, named "encoder.<name>" and "decoder.<name>"),
and the checks of what a user hands their constructors."""

from itertools import pairwise

import numpy as np

from minivae.errors import InputError
from minivae.layers import Dense, Linear, Sequential
from minivae.layers.base import layer_dtype


def mlp(sizes, activation, rng, dtype, input_grad=True):
    """Dense layers with ``activation`` between ``sizes``; the last layer is linear.

    The model checks its input where the user hands it over, so the layers do not
    (``check_inputs=False``). ``input_grad=False`` when the input is data: the first layer
    skips its dx.
    """
    layers = [Dense(a, b, activation, rng=rng, dtype=dtype, check_inputs=False)
              for a, b in pairwise(sizes[:-1])]
    layers.append(Linear(sizes[-2], sizes[-1], rng=rng, dtype=dtype, check_inputs=False))
    layers[0].input_grad = bool(input_grad)
    return Sequential(*layers)


INITS = ("uniform", "glorot")


def glorot(network, rng):
    """Glorot & Bengio's (2010) initialisation, in place, for every dense layer of ``network``:
    W (D, H) ~ U(-a, a) with a = sqrt(6 / (D + H)), b = 0 (the IWAE paper's choice). The
    layers' own default is U(-1/sqrt(D), 1/sqrt(D)) for W and b."""
    for layer in network.layers:
        W, b = layer.params["W"], layer.params["b"]
        a = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
        W[...] = rng.uniform(-a, a, size=W.shape)                       # (D, H)
        b[...] = 0                                                      # (H,)


class EncoderDecoder:
    """Mixin for a model with ``self.encoder`` and ``self.decoder`` layers."""

    @property
    def params(self):
        return {**{f"encoder.{k}": v for k, v in self.encoder.params.items()},
                **{f"decoder.{k}": v for k, v in self.decoder.params.items()}}

    @property
    def grads(self):
        return {**{f"encoder.{k}": v for k, v in self.encoder.grads.items()},
                **{f"decoder.{k}": v for k, v in self.decoder.grads.items()}}

    def zero_grad(self):
        self.encoder.zero_grad()
        self.decoder.zero_grad()

    def cached(self):
        """What loss(x) kept for backward; InputError if loss has not run."""
        if self.cache is None:
            raise InputError(f"{type(self).__name__}.backward called before loss(x); "
                             "call loss(x) first")
        return self.cache


# ---- constructor arguments, checked where the user hands them over ----

def size(value, who, name):
    """``value`` if it is an integer >= 1 (not a bool, a float or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def sizes(values, who, name="hidden", allow_empty=False):
    """A tuple of layer sizes from a list or tuple of positive integers."""
    if not isinstance(values, (list, tuple)):
        raise InputError(f"{who}: {name} must be a list or tuple of layer sizes, e.g. (400,), "
                         f"got {values!r}")
    if not values and not allow_empty:
        raise InputError(f"{who}: {name} must name at least one layer size, got {values!r}")
    return tuple(size(v, who, f"each {name} size") for v in values)


def number(value, who, name, lo=0.0, lo_open=False, hi=None):
    """``value`` as a float if it is a finite real number >= lo (> lo if lo_open), <= hi."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        try:
            value = float(value)
        except OverflowError:                             # an int beyond any float
            ok = False
        ok = ok and np.isfinite(value) and (value > lo if lo_open else value >= lo) and (
            hi is None or value <= hi)
    if not ok:
        bound = f" and <= {hi:g}" if hi is not None else ""
        raise InputError(f"{who}: {name} must be a finite number {'>' if lo_open else '>='} "
                         f"{lo:g}{bound}, got {value!r}")
    return value


def generator(rng, who):
    """np.random.default_rng(rng): a Generator, a seed (an int >= 0), a SeedSequence or None."""
    try:
        return np.random.default_rng(rng)
    except (TypeError, ValueError) as e:
        raise InputError(f"{who}: rng must be a numpy Generator, a seed (an integer >= 0) or "
                         f"None, got {rng!r} ({e})") from None


def choice(value, options, who, name):
    """``value`` if it is one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{who}: {name} must be one of {tuple(options)}, got {value!r}")
    return value


def float_dtype(dtype, who):
    return layer_dtype(dtype, who)
