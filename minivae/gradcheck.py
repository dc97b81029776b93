"""Numerical gradients by central differences, to check hand-written backward passes.

    df/dx_i  ~  (f(x + h e_i) - f(x - h e_i)) / (2 h)

Each entry is perturbed in place and restored. Float64 only: in float32 the
difference of two nearly equal losses keeps about three digits, too few to
tell a right gradient from a slightly wrong one.

The error reported is   max_i |a_i - b_i| / max(1e-8, max_i (|a_i| + |b_i|)),
a relative error that stays meaningful when single entries are near zero.
A correct smooth backward gives about 1e-7 or less; a wrong one, 1e-2 or more.
"""

import numpy as np

from minivae.errors import InputError


def _need_float64(a, what):
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"gradcheck: {what} must be a float64 array, got {got}; gradient checks "
                         "need float64 (build layers with dtype=np.float64 and cast inputs with "
                         ".astype(np.float64))")


def rel_error(a, b):
    """max|a - b| / max(1e-8, max(|a| + |b|)) over all entries."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"rel_error: shapes differ, {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1e-8, float(np.max(np.abs(a) + np.abs(b)))))


def numerical_gradient(f, x, h=1e-6):
    """d f() / d x by central differences; ``f`` takes no argument and reads ``x``.

    x (any shape, float64) is perturbed in place one entry at a time and restored.
    """
    _need_float64(x, "x")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = float(f())
        x[i] = old - h
        fm = float(f())
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def check_grad(f, x, analytic, h=1e-6):
    """Relative error between ``analytic`` and the numerical gradient of f() w.r.t. x."""
    return rel_error(analytic, numerical_gradient(f, x, h))


def check_layer(layer, x, dy=None, *, rng=None, h=1e-6, **forward_kwargs):
    """Check a layer's backward against central differences. Returns {name: rel_error}.

    ``x`` is one input array or a tuple of them (e.g. ``(mu, logvar)``);
    ``forward_kwargs`` are passed to every forward call (e.g. a fixed ``eps``).
    The scalar checked is L = sum(forward(x) * dy) for a random upstream ``dy``
    (or a tuple of them for several outputs), so backward(dy) must return dL/dx.
    Keys of the result: "x" (or "x0", "x1", ... for several inputs) and every
    parameter name. Everything must be float64.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    xs = x if isinstance(x, tuple) else (x,)
    for i, xi in enumerate(xs):
        _need_float64(xi, f"input {i}")
    for k, p in layer.params.items():
        _need_float64(p, f"parameter {k!r} of {layer!r}")

    def outputs():
        y = layer.forward(*xs, **forward_kwargs)
        return y if isinstance(y, tuple) else (y,)

    ys = outputs()
    if dy is None:
        dys = tuple(rng.standard_normal(y.shape) for y in ys)
    else:
        dys = dy if isinstance(dy, tuple) else (dy,)

    def loss():
        return sum(float(np.sum(y * d)) for y, d in zip(outputs(), dys))

    layer.zero_grad()
    outputs()
    dxs = layer.backward(*dys)
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    names = ["x"] if len(xs) == 1 else [f"x{i}" for i in range(len(xs))]
    errors = {n: check_grad(loss, xi, dxi, h) for n, xi, dxi in zip(names, xs, dxs)}
    params = layer.params
    for k in params:
        errors[k] = check_grad(loss, params[k], analytic[k], h)
    return errors


def check_model(model, x, *, h=1e-6, **loss_kwargs):
    """Check a whole model's backward against central differences. Returns {param: rel_error}.

    The scalar checked is ``model.loss(x, **loss_kwargs)``; pass whatever fixes its
    randomness (``eps=`` for a VAE, ``x_tilde=`` for a denoising autoencoder), or
    every evaluation draws new noise and no gradient can match. Float64 only.
    """
    params = model.params
    for k, p in params.items():
        _need_float64(p, f"parameter {k!r} of {model!r}")
    model.zero_grad()
    model.loss(x, **loss_kwargs)
    model.backward()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    return {k: check_grad(lambda: model.loss(x, **loss_kwargs), p, analytic[k], h)
            for k, p in params.items()}
