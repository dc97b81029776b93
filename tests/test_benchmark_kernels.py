"""The numba kernels of benchmarks/fused_reparam.py against their NumPy twins, in float32 and
float64, and the fused sampler + KL against what the library computes with its Reparameterize
layer and ``losses.gaussian_kl``. (benchmarks/numba_matmul.py: tests/test_matmul.py.)

These kernels left the package: the library's VAE samples and takes the KL in NumPy, where a
reader sees them. The flat step of the speed benchmark still runs them, and its figures mean
something only while they compute the same thing.
"""

import ast
import inspect

import numpy as np
import pytest
from helpers import FEW, arrays, floats
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import fused_reparam as KR
from minivae import losses
from minivae.layers import Reparameterize

DTYPES = [np.float32, np.float64]
TESTED = {"reparam_forward", "reparam_backward", "reparam_kl_forward", "reparam_kl_backward"}


def tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@st.composite
def matrix(draw, dtype, lo=-8.0, hi=8.0, shape=None):
    shape = shape or (draw(st.integers(1, 6)), draw(st.integers(1, 7)))
    width = 32 if dtype == np.float32 else 64
    return draw(arrays(shape, floats(lo, hi, width), dtype))


def assert_same(name, args, outs, dtype):
    """Kernel ``name`` and its twin ``name_np`` on copies of ``args``: the arrays at indices
    ``outs`` and the return values agree, dtype and all."""
    results = []
    for fn in (getattr(KR, name), getattr(KR, name + "_np")):
        a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
        results.append([a[i] for i in outs] + [fn(*a)])
    for got, want in zip(*results):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tol(dtype))


def test_every_kernel_has_a_numpy_twin():
    tree = ast.parse(inspect.getsource(KR))
    kernels = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
               and any("njit" in ast.unparse(d) for d in f.decorator_list)}
    for name in kernels:
        assert callable(getattr(KR, name + "_np", None)), f"{name} has no twin {name}_np"
    assert kernels == TESTED, f"untested kernels: {kernels - TESTED}"


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_reparam_kernels(dtype, data):
    mu = data.draw(matrix(dtype))
    logvar, eps, dz = (data.draw(matrix(dtype, -4.0, 4.0, shape=mu.shape)) for _ in range(3))
    E = np.empty_like
    assert_same("reparam_forward", (mu, logvar, eps, E(mu), E(mu)), [3, 4], dtype)
    std = np.exp(0.5 * logvar)
    assert_same("reparam_backward", (dz, eps, std, E(dz)), [3], dtype)
    h = np.ascontiguousarray(np.concatenate([mu, logvar], axis=1))      # (N, 2Z) = [mu | logvar]
    N = mu.shape[0]
    assert_same("reparam_kl_forward", (h, eps, E(mu), E(mu), np.empty(N, dtype)),
                [2, 3, 4], dtype)
    w = data.draw(floats(0.0, 2.0))
    assert_same("reparam_kl_backward", (dz, eps, std, h, w, E(h)), [5], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_fused_sampler_and_kl_equal_the_layer_and_the_loss(dtype, data):
    """reparam_kl_forward/backward compute what VAE.loss and VAE.backward compute with the
    Reparameterize layer and losses.gaussian_kl: z, the KL per example, and
    d/d[mu | logvar] of  sum(dz * z) + w * sum(kl)."""
    mu = data.draw(matrix(dtype))
    logvar, eps, dz = (data.draw(matrix(dtype, -4.0, 4.0, shape=mu.shape)) for _ in range(3))
    w = data.draw(floats(0.0, 2.0))
    N = mu.shape[0]
    layer = Reparameterize(rng=0)
    z_lib = layer.forward(mu, logvar, eps)                              # (N, Z)
    kl_lib, (dmu_kl, dlogvar_kl) = losses.gaussian_kl(mu, logvar)      # (N,), (N, Z) x2
    dmu, dlogvar = layer.backward(dz)                                   # through z
    dh_lib = np.concatenate([dmu + w * dmu_kl, dlogvar + w * dlogvar_kl], axis=1)   # (N, 2Z)

    h = np.ascontiguousarray(np.concatenate([mu, logvar], axis=1))     # (N, 2Z)
    z, std, kl = np.empty_like(mu), np.empty_like(mu), np.empty(N, dtype)
    KR.reparam_kl_forward(h, eps, z, std, kl)
    dh = KR.reparam_kl_backward(dz, eps, std, h, w, np.empty_like(h))
    np.testing.assert_allclose(z, z_lib, **tol(dtype))
    np.testing.assert_allclose(kl, kl_lib, **tol(dtype))
    np.testing.assert_allclose(dh, dh_lib, **tol(dtype))
