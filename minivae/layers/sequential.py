"""A chain of layers: forward left to right, backward right to left."""

from minivae.errors import InputError
from minivae.layers.base import Layer


class Sequential(Layer):
    """y = layer_k(... layer_1(x)).   Parameters are exposed as "i.name" (i the position).

    ``params`` and ``grads`` are built on each access from the children's dicts;
    the arrays are the children's own, so updating them in place updates the layers.
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "forward") and hasattr(layer, "backward")):
                raise InputError(f"Sequential: item {i} ({layer!r}) is not a layer with "
                                 "forward and backward")
        self.layers = list(layers)

    def _collect(self, attr):
        out = {}
        for i, layer in enumerate(self.layers):
            for k, v in getattr(layer, attr).items():
                out[f"{i}.{k}"] = v
        return out

    @property
    def params(self):
        return self._collect("params")

    @params.setter
    def params(self, value):
        if value:
            raise InputError("Sequential: params come from its layers and cannot be set")

    @property
    def grads(self):
        return self._collect("grads")

    @grads.setter
    def grads(self, value):
        if value:
            raise InputError("Sequential: grads come from its layers and cannot be set")

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        self.cache = True
        return x

    def backward(self, dy):
        self.cached()
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"
