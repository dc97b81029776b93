"""Shared hypothesis strategies and settings for the core tests.

Values are drawn with a magnitude in [lo, hi] and a random sign: well away from 0
(so ReLU kinks and vanishing gradients stay out of the way of a 1e-7 check) and
small enough that nothing saturates. Bounds are exact in float32, as hypothesis
requires for width=32.

``layer_ok`` and ``grad_ok`` wrap the shipped checker (minivae.gradcheck) with one
allowance: where its relative error fails because the true gradient is ~0, they accept
agreement to within the roundoff of the checked scalar, and nothing looser.
"""

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.gradcheck import check_grad, check_layer, numerical_gradient

TOL = 1e-7          # a correct smooth backward, float64, h = 1e-6
TOL_CHAIN = 1e-6    # a chain of layers: gradients shrink through it, roundoff in f does not
WRONG = 1e-3        # a wrong backward is at least this far off

# few examples, no deadline (the first call may compile a numba kernel)
CHECK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2 ** 32 - 1)
sizes = st.integers(1, 5)


def signed(lo=0.125, hi=2.0, width=64):
    """Floats with lo <= |v| <= hi."""
    mag = st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)
    return st.builds(lambda m, s: s * m, mag, st.sampled_from([-1.0, 1.0]))


def floats(lo, hi, width=64):
    """Any float in [lo, hi], subnormals excluded."""
    return st.floats(lo, hi, width=width, allow_subnormal=False)


def arrays(shape, elements=None, dtype=np.float64):
    """A hypothesis array of ``shape``; float64 with signed() entries by default."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=signed(width=width) if elements is None else elements)


def roundoff(f, h):
    """What a central difference cannot resolve: ~45 ulps of f() over 2h (absolute)."""
    return 1e-14 * max(1.0, abs(float(f()))) / h


def grad_ok(f, x, analytic, tol, h=1e-6):
    """check_grad(f, x, analytic) < tol; or, when that fails, agreement with the numerical
    gradient to within the roundoff of f. The second case is where the true gradient is so
    small (or exactly 0) that a relative error measures roundoff in f, not the backward pass;
    a wrong backward is off by far more than roundoff(f, h) and still fails."""
    if check_grad(f, x, analytic, h) < tol:
        return True
    return float(np.abs(numerical_gradient(f, x, h) - analytic).max()) <= roundoff(f, h)


def layer_ok(layer, x, tol, h=1e-6, **forward_kwargs):
    """check_layer with the roundoff allowance of grad_ok.   -> (ok, {name: rel_error}).

    The upstream gradient is fixed here (normal, seed 0) so a failing entry can be
    replayed: the analytic and numerical gradients of exactly the checked scalar."""
    xs = x if isinstance(x, tuple) else (x,)

    def outputs():
        y = layer.forward(*xs, **forward_kwargs)
        return y if isinstance(y, tuple) else (y,)

    rng = np.random.default_rng(0)
    dys = tuple(rng.standard_normal(y.shape) for y in outputs())
    errors = check_layer(layer, x, dys if len(dys) > 1 else dys[0], h=h, **forward_kwargs)
    failing = [k for k, e in errors.items() if e >= tol]
    if not failing:
        return True, errors

    def loss():
        return sum(float(np.sum(y * d)) for y, d in zip(outputs(), dys))

    layer.zero_grad()
    outputs()
    dxs = layer.backward(*dys)
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    names = ["x"] if len(xs) == 1 else [f"x{i}" for i in range(len(xs))]
    analytic = {**dict(zip(names, dxs)), **{k: g.copy() for k, g in layer.grads.items()}}
    wrt = {**dict(zip(names, xs)), **layer.params}
    ok = all(np.abs(numerical_gradient(loss, wrt[k], h) - analytic[k]).max() <= roundoff(loss, h)
             for k in failing)
    return ok, errors


def log_normal(z, mu, logvar):
    """log N(z | mu, diag exp(logvar)), summed over the last axis, in float64."""
    z, mu, logvar = (np.asarray(a, dtype=np.float64) for a in (z, mu, logvar))
    return -0.5 * (np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar)).sum(axis=-1)


def mean_and_se(samples, axis=0):
    """Sample mean and its standard error (sample std / sqrt(n)) along ``axis``."""
    samples = np.asarray(samples, dtype=np.float64)
    n = samples.shape[axis]
    return samples.mean(axis=axis), samples.std(axis=axis, ddof=1) / np.sqrt(n)


# ---- command lines and run folders ----

def one_error_line(capsys, code, expected=1):
    """The exit status is ``expected`` and stderr holds exactly one line, `minivae: error: ...`;
    that line."""
    err = capsys.readouterr().err
    assert code == expected, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minivae: error: "), err
    assert "Traceback" not in err
    return lines[0]


def refused_train(capsys, argv, out):
    """`minivae train ARGV --out OUT` refused in one line, before OUT was created; the line."""
    from minivae.cli import main
    line = one_error_line(capsys, main(["train", *argv, "--out", str(out)]))
    assert not out.exists()
    return line


def same_runs(a, b):
    """Both run folders hold the same parameters, optimizer state (every optimizer's), RNG,
    progress and metrics, bit for bit (only the epochs' wall-clock times may differ)."""
    from minivae.run import checkpoint as ckpt
    from minivae.run import folder as rf
    (pa, oa, ma), (pb, ob, mb) = ckpt.load(a / rf.CHECKPOINT), ckpt.load(b / rf.CHECKPOINT)
    assert pa.keys() == pb.keys() and oa.keys() == ob.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
    for k in oa:
        assert np.array_equal(oa[k], ob[k]), k
    assert ma["rng"] == mb["rng"] and ma["progress"] == mb["progress"]
    rows = [[{k: v for k, v in r.items() if k != "epoch_seconds"} for r in m["history"]]
            for m in (ma, mb)]
    assert rows[0] == rows[1]


def rewrite_npz(path, change):
    """Load the .npz at ``path``, let change(arrays) edit the dict, write it back."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(path, **arrays)


class Replay:
    """A 'model' whose samples are the given images (N, D), repeated in order as needed."""

    def __init__(self, images):
        self.images = images

    def sample(self, n, rng=None):
        return np.resize(self.images, (n, self.images.shape[1]))


def resumed_equals_straight(new_run, datasets):
    """new_run(name, **train_config) makes a run folder of 3 epochs. Trained for 1, then
    resumed to 3, it ends bit for bit where one trained straight does. -> the straight run's
    history."""
    from minivae.run import trainer as T
    straight = new_run("straight")
    history = T.train(straight, datasets=datasets, verbose=False)
    resumed = new_run("resumed", epochs=1)
    T.train(resumed, datasets=datasets, verbose=False)
    T.train(resumed, datasets=datasets, verbose=False, epochs=3)
    same_runs(straight, resumed)
    return history


def ctrl_c_then_resume(new_run, datasets, monkeypatch, cls, method, stopped=None):
    """SIGINT raised in cls.method's 11th call: epoch 2 after 3 batches (the toy data: 7
    batches an epoch, then one test pass). Training saves and stops; stopped(run), if given,
    checks that checkpoint; resumed, the run ends bit for bit where an uninterrupted one does."""
    import signal

    import pytest

    from minivae.run import trainer as T
    straight = new_run("straight")
    T.train(straight, datasets=datasets, verbose=False)
    run, original, calls = new_run("stopped"), getattr(cls, method), [0]

    def stopping(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 7 + 1 + 3:
            signal.raise_signal(signal.SIGINT)
        return original(self, *args, **kwargs)
    with monkeypatch.context() as mp:
        mp.setattr(cls, method, stopping)
        with pytest.raises(T.TrainingInterrupted,
                           match=r"saved a checkpoint \(epoch 2, after batch 3"):
            T.train(run, datasets=datasets, verbose=False)
    if stopped is not None:
        stopped(run)
    T.train(run, datasets=datasets, verbose=False)
    same_runs(straight, run)
