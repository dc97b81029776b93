"""benchmarks/flat_step.py computes the library's training step, so that the ceiling the speed
benchmark reports is the ceiling of the same work."""

import numpy as np
import pytest

from benchmarks.flat_step import FlatStep
from minivae.models.vae import VAE
from minivae.optim import Adam


def _pair(seed=0):
    models = [VAE(30, (16,), 4, rng=seed) for _ in range(2)]
    return [(m, Adam(m.params, lr=1e-2)) for m in models]


def test_flat_step_takes_the_library_step():
    (lib, lib_opt), (flat, flat_opt) = _pair()
    step = FlatStep(flat, flat_opt, batch=8)
    rng = np.random.default_rng(1)
    for _ in range(3):                                   # Adam's state carries over too
        x = (rng.random((8, 30)) < 0.5).astype(np.float32)
        eps = rng.standard_normal((8, 4), dtype=np.float32)
        lib.zero_grad()
        want = lib.loss(x, eps)
        lib.backward()
        lib_opt.step(lib.grads)
        got = step(x, eps)
        assert got == pytest.approx(want, rel=1e-6)
        for k, g in lib.grads.items():
            np.testing.assert_allclose(flat.grads[k], g, rtol=1e-5, atol=1e-7, err_msg=k)
        for k, p in lib.params.items():
            np.testing.assert_allclose(flat.params[k], p, rtol=1e-5, atol=1e-6, err_msg=k)
    assert flat_opt.t == lib_opt.t == 3


def test_flat_step_refuses_another_model():
    model = VAE(30, (16, 8), 4, rng=0)
    with pytest.raises(ValueError, match="one ReLU hidden layer"):
        FlatStep(model, Adam(model.params), batch=8)
