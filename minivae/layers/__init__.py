"""Layers with hand-written forward and backward passes.

Every layer: ``forward(x) -> y`` keeps what backward needs; ``backward(dy) -> dx``
adds parameter gradients into ``grads``; ``params``/``grads`` are dicts of arrays
with the same keys; ``zero_grad()`` resets the gradients.
"""

from minivae.layers.activations import (
    ACTIVATIONS,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softplus,
    Tanh,
    activation,
)
from minivae.layers.base import Layer
from minivae.layers.conv import Conv2d, ConvTranspose2d
from minivae.layers.dense import Dense
from minivae.layers.linear import Linear
from minivae.layers.reparameterize import Reparameterize
from minivae.layers.reshape import Flatten, Unflatten
from minivae.layers.sequential import Sequential

__all__ = ["ACTIVATIONS", "Conv2d", "ConvTranspose2d", "Dense", "Flatten", "Identity", "Layer",
           "LeakyReLU", "Linear", "ReLU", "Reparameterize", "Sequential", "Sigmoid", "Softplus",
           "Tanh", "Unflatten", "activation"]
