"""Optimizers that update a dict of parameter arrays in place.

Their state is a plain dict of NumPy arrays (``state_dict()``), so a checkpoint
can save it with ``np.savez`` and ``load_state_dict`` can restore it exactly.
The update rules are written out in ``minivae.kernels.optim``.
"""

import numpy as np

from minivae.errors import InputError, NonFiniteError
from minivae.kernels import optim as K
from minivae.kernels.checks import all_finite


class Optimizer:
    """Holds ``params`` (name -> array, updated in place) and per-parameter state."""

    slots = ()

    def __init__(self, params, lr):
        if not params:
            raise InputError(f"{type(self).__name__}: got no parameters to optimize")
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not (
                lr > 0 and np.isfinite(lr)):
            raise InputError(f"{type(self).__name__}: expected a positive learning rate, got {lr}")
        self.params = dict(params)
        for k, p in self.params.items():
            if not p.flags.c_contiguous:
                raise InputError(f"{type(self).__name__}: parameter {k!r} must be C-contiguous")
        self.lr = float(lr)
        self.t = 0
        self.state = {f"{s}.{k}": np.zeros_like(p) for s in self.slots for k, p in self.params.items()}
        # flat views of each parameter and its state, made once: (name, p, *slots)
        self._flat = [(k, p.reshape(-1), *(self.state[f"{s}.{k}"].reshape(-1) for s in self.slots))
                      for k, p in self.params.items()]

    def _check(self, grads):
        """Refuse, before any parameter changes, gradients that do not match or are not finite."""
        who = f"{type(self).__name__}.step"
        if not isinstance(grads, dict):
            raise InputError(f"{who}: expected a dict of gradients by parameter name (like "
                             f"model.grads), got {type(grads).__name__}")
        if set(grads) != set(self.params):
            missing, extra = set(self.params) - set(grads), set(grads) - set(self.params)
            raise InputError(f"{who}: gradient keys differ from the parameters (missing "
                             f"{sorted(missing)}, unexpected {sorted(map(str, extra))})")
        for k, p in self.params.items():
            g = grads[k]
            if not isinstance(g, np.ndarray):
                raise InputError(f"{who}: gradient {k!r} is a {type(g).__name__}, expected a "
                                 f"numpy array of shape {p.shape} {p.dtype}")
            if g.shape != p.shape or g.dtype != p.dtype:
                raise InputError(f"{who}: gradient {k!r} has shape "
                                 f"{g.shape} {g.dtype}, expected {p.shape} {p.dtype}")
            if not all_finite(g.reshape(-1)):
                raise NonFiniteError(f"{who}: gradient {k!r} contains NaN or infinity; no "
                                     "parameter was changed")

    def state_dict(self):
        """A dict of arrays holding everything needed to continue exactly (copies, not views
        of the live state, so later steps do not change a saved dict)."""
        out = {"t": np.array(self.t, dtype=np.int64)}
        out.update({k: v.copy() for k, v in self.state.items()})
        return out

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned. Keys and shapes must match."""
        want = set(self.state) | {"t"}
        if set(state) != want:
            raise InputError(f"{type(self).__name__}: optimizer state has keys "
                             f"{sorted(set(state) ^ want)} that do not match the parameters")
        for k, v in self.state.items():
            if state[k].shape != v.shape:
                raise InputError(f"{type(self).__name__}: state {k!r} has shape "
                                 f"{state[k].shape}, expected {v.shape}")
            v[...] = state[k]
        self.t = int(state["t"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay (added to the gradient)."""

    slots = ("v",)

    def __init__(self, params, lr=1e-2, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def step(self, grads):
        self._check(grads)
        self.t += 1
        for k, p, v in self._flat:
            K.sgd_update(p, grads[k].reshape(-1), v, self.lr, self.momentum, self.weight_decay)


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds wd * p to the gradient (L2)."""

    slots = ("m", "v")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.b1, self.b2 = (float(b) for b in betas)
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise InputError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def step(self, grads):
        self._check(grads)
        self.t += 1
        for k, p, m, v in self._flat:
            K.adam_update(p, grads[k].reshape(-1), m, v, self.lr, self.b1, self.b2,
                          self.eps, self.t, self.weight_decay)
