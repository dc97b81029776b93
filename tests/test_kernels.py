"""Each numba kernel equals its NumPy twin ``<name>_np`` on hypothesis inputs, in float32
and float64. The twin is the specification; a kernel may differ from it only by
rounding (float64 accumulators, float64 constants in float32 arithmetic)."""

import ast
import inspect
import math

import numba
import numpy as np
import pytest
from helpers import FEW, arrays, floats
from hypothesis import given
from hypothesis import strategies as st

from minivae.kernels import activations as KA
from minivae.kernels import checks as KC
from minivae.kernels import fastexp as FE
from minivae.kernels import losses as KL
from minivae.kernels import optim as KO

DTYPES = [np.float32, np.float64]
KINDS = sorted(KA.CODES.items())                       # every activation code
TESTED = {"bias_act_forward", "act_backward", "act_backward_bias", "bernoulli_nll",
          "gaussian_nll", "gaussian_nll_shared", "sgd_update", "adam_update", "all_finite",
          "bernoulli_nll_repeated", "exp_neg_abs", "log1p_unit", "tanh_row"}


def tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def width(dtype):
    return 32 if dtype == np.float32 else 64


@st.composite
def matrix(draw, dtype, lo=-8.0, hi=8.0, shape=None):
    shape = shape or (draw(st.integers(1, 6)), draw(st.integers(1, 7)))
    return draw(arrays(shape, floats(lo, hi, width(dtype)), dtype))


def run_both(name, module, args, outs):
    """Call kernel and twin on copies of ``args``; ``outs`` are the indices written to.
    Returns (kernel results, twin results): the written arrays and the return value."""
    results = []
    for fn in (getattr(module, name), getattr(module, name + "_np")):
        a = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
        ret = fn(*a)
        results.append([a[i] for i in outs] + ([] if ret is None else [ret]))
    return results


def assert_same(name, module, args, outs, dtype):
    got, want = run_both(name, module, args, outs)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, **tol(dtype))


# ---- every kernel has a twin, and is tested here ----

@pytest.mark.parametrize("module", [KA, KC, FE, KL, KO], ids=lambda m: m.__name__)
def test_every_kernel_has_a_numpy_twin(module):
    tree = ast.parse(inspect.getsource(module))
    kernels = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
               and not f.name.startswith("_")
               and any("njit" in ast.unparse(d) for d in f.decorator_list)}
    for name in kernels:
        assert callable(getattr(module, name + "_np", None)), f"{name} has no twin {name}_np"
    assert kernels <= TESTED, f"untested kernels: {kernels - TESTED}"


# ---- activations ----

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", [k for _, k in KINDS], ids=[n for n, _ in KINDS])
@FEW
@given(data=st.data())
def test_bias_act_forward(kind, dtype, data):
    a = data.draw(matrix(dtype))
    b = data.draw(arrays((a.shape[1],), floats(-2.0, 2.0, width(dtype)), dtype))
    slope = data.draw(floats(0.0, 0.5))
    assert_same("bias_act_forward", KA, (a, b, kind, slope, np.empty_like(a)), [4], dtype)
    # in place (out is a), as Dense uses it
    want = KA.bias_act_forward_np(a, b, kind, slope, np.empty_like(a))
    KA.bias_act_forward(a, b, kind, slope, a)
    np.testing.assert_allclose(a, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", [k for _, k in KINDS], ids=[n for n, _ in KINDS])
@FEW
@given(data=st.data())
def test_act_backward_and_bias(kind, dtype, data):
    a = data.draw(matrix(dtype))
    slope = data.draw(floats(0.0, 0.5))
    y = KA.act_np(a, kind, slope).astype(dtype)                  # a real activation output
    dy = data.draw(matrix(dtype, -4.0, 4.0, shape=a.shape))
    assert_same("act_backward", KA, (dy, y, kind, slope, np.empty_like(dy)), [4], dtype)
    db = data.draw(arrays((a.shape[1],), floats(-2.0, 2.0, width(dtype)), dtype))
    assert_same("act_backward_bias", KA, (dy, y, kind, slope, np.empty_like(dy), db), [4, 5],
                dtype)


# ---- losses ----

@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_loss_kernels(dtype, data):
    a = data.draw(matrix(dtype, -20.0, 20.0))
    N = a.shape[0]
    b = data.draw(matrix(dtype, -3.0, 3.0, shape=a.shape))
    p = data.draw(matrix(dtype, 0.0, 1.0, shape=a.shape))
    v = data.draw(matrix(dtype, -4.0, 4.0, shape=a.shape))
    vs = data.draw(floats(-4.0, 4.0))
    out = np.empty(N, dtype)
    E = np.empty_like
    assert_same("bernoulli_nll", KL, (a, p, out, E(a)), [2, 3], dtype)
    m = data.draw(st.integers(1, 3))
    am = data.draw(matrix(dtype, -20.0, 20.0, shape=(N * m, a.shape[1])))
    assert_same("bernoulli_nll_repeated", KL, (am, p, m, np.empty(N * m, dtype)), [3], dtype)
    assert_same("gaussian_nll", KL, (b, v, p, out, E(a), E(a)), [3, 4, 5], dtype)
    assert_same("gaussian_nll_shared", KL, (b, vs, p, out, E(a), np.empty(N)), [3, 4, 5], dtype)


# ---- exp and log1p as polynomials (float32) ----

ULP32 = 2.0 ** -23                                     # float32 spacing at 1, relative


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_exp_neg_abs(dtype, data):
    a = data.draw(arrays((data.draw(st.integers(1, 40)),), floats(-90.0, 90.0, width(dtype)),
                         dtype))
    E = np.empty_like
    assert_same("exp_neg_abs", FE, (a, E(a), E(a), np.empty(a.shape, np.int32)), [1, 2], dtype)
    e = np.float32(data.draw(floats(0.0, 1.0, 32)))                 # log1p_unit is float32 only
    np.testing.assert_allclose(FE.log1p_unit(e), FE.log1p_unit_np(np.float64(e)),
                               rtol=4 * ULP32, atol=3e-45)          # atol: subnormal e


def test_fastexp_float32_within_a_few_roundings_over_the_whole_range():
    """exp(-|a|) and log1p of it, against float64, at a million points and the edges."""
    a = np.concatenate([np.linspace(-87.0, 87.0, 1_000_001),
                        [0.0, -0.0, 1e-30, 1e-8, 0.34657359, 0.34657360, 86.9, 87.0,
                         87.5, 88.0, 100.0, 1e4, 3.4e38]]).astype(np.float32)
    e, l1p = np.empty_like(a), np.empty_like(a)
    FE.exp_neg_abs(a, e, l1p, np.empty(a.shape, np.int32))
    true_e = np.exp(-np.abs(a.astype(np.float64)))
    normal = np.abs(a) <= 87.0
    assert np.max(np.abs(e[normal] / true_e[normal] - 1)) < 3 * ULP32
    assert np.all(np.abs(e[~normal] - true_e[~normal]) < 2e-38)    # tails: exp(-87) or less
    true_l1p = np.log1p(true_e)
    assert np.max(np.abs(l1p[normal] / true_l1p[normal] - 1)) < 4 * ULP32
    e64, l64 = np.empty(a.shape), np.empty(a.shape)                # float64: the C library's
    FE.exp_neg_abs(a.astype(np.float64), e64, l64, np.empty(a.shape, np.int32))
    if numba.config.DISABLE_JIT:                                   # plain Python: np.exp
        np.testing.assert_array_equal(e64, true_e)                 # and np.log1p themselves
        np.testing.assert_array_equal(l64, true_l1p)
    else:                                                          # compiled: the C library's,
        c_exp = np.array([math.exp(-abs(float(v))) for v in a])    # called one by one here:
        np.testing.assert_array_equal(e64, c_exp)                  # bit for bit
        np.testing.assert_array_equal(l64, [math.log1p(v) for v in c_exp])
    np.testing.assert_array_max_ulp(e64, true_e, maxulp=1)         # NumPy's own exp may
    np.testing.assert_array_max_ulp(l64, true_l1p, maxulp=2)       # differ in the last bit


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_tanh_row(dtype, data):
    v = data.draw(arrays((data.draw(st.integers(1, 40)),), floats(-30.0, 30.0, width(dtype)),
                         dtype))
    E = np.empty_like
    assert_same("tanh_row", FE, (v, E(v), np.empty(v.shape, np.float32),
                                 np.empty(v.shape, np.int32)), [1], dtype)
    want = E(v)
    FE.tanh_row_np(v, want)
    FE.tanh_row(v, v, np.empty(v.shape, np.float32), np.empty(v.shape, np.int32))  # in place
    np.testing.assert_allclose(v, want, **tol(dtype))


def test_tanh_float32_within_a_few_roundings_over_the_whole_line():
    """tanh as arithmetic, against float64, at two million points, at tiny and huge values
    on both sides of 0.4 (where the two formulas meet), and at the edges."""
    tiny = np.logspace(-40, 1.5, 100_000)
    a = np.concatenate([np.linspace(-20.0, 20.0, 2_000_001), tiny, -tiny,
                        [0.0, 1e-45, 0.39999998, 0.4, 0.40000001, 87.0, 3.4e38, -3.4e38]]
                       ).astype(np.float32)
    out = np.empty_like(a)
    FE.tanh_row(a, out, np.empty(a.shape, np.float32), np.empty(a.shape, np.int32))
    true = np.tanh(a.astype(np.float64))
    ulp = np.spacing(np.abs(true).astype(np.float32)).astype(np.float64)  # float32 spacing
    err = np.abs(out - true) / ulp
    small = np.abs(a) < 0.4                                          # the Taylor series
    assert err[small].max() <= 1.5 and err[~small].max() <= 2.5     # (measured: 1.04, 2.24)
    assert np.all(np.sign(out) == np.sign(a))                        # odd, and 0 at 0
    edges = np.array([np.inf, -np.inf, np.nan, -0.0], np.float32)
    FE.tanh_row(edges, edges, np.empty(4, np.float32), np.empty(4, np.int32))
    assert edges[0] == 1.0 and edges[1] == -1.0 and np.isnan(edges[2])
    assert edges[3] == 0.0 and np.signbit(edges[3])                  # tanh(-0) = -0


# ---- optimizers ----

@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_sgd_update(dtype, data):
    n = data.draw(st.integers(1, 20))
    p, g, v = (data.draw(arrays((n,), floats(-3.0, 3.0, width(dtype)), dtype)) for _ in range(3))
    lr, momentum, wd = data.draw(floats(1e-4, 1.0)), data.draw(floats(0.0, 0.99)), \
        data.draw(st.sampled_from([0.0, 1e-2]))
    assert_same("sgd_update", KO, (p, g, v, lr, momentum, wd), [0, 2], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_adam_update(dtype, data):
    n = data.draw(st.integers(1, 20))
    p, g, m = (data.draw(arrays((n,), floats(-3.0, 3.0, width(dtype)), dtype)) for _ in range(3))
    v = data.draw(arrays((n,), floats(0.0, 3.0, width(dtype)), dtype))     # a second moment
    lr, b1, b2 = data.draw(floats(1e-4, 0.1)), data.draw(floats(0.0, 0.95)), \
        data.draw(floats(0.5, 0.9999))
    t, wd = data.draw(st.integers(1, 1000)), data.draw(st.sampled_from([0.0, 1e-2]))
    assert_same("adam_update", KO, (p, g, m, v, lr, b1, b2, 1e-8, t, wd), [0, 2, 3], dtype)


def test_adam_takes_one_minus_beta_before_float32():
    """In float32, 1 - 0.9999 keeps about 4 digits: the kernel takes 1 - beta in float64, so
    its float32 step agrees with the formula in float64 to float32's own rounding."""
    args = [np.zeros(1, np.float32), np.ones(1, np.float32), np.zeros(1, np.float32),
            np.zeros(1, np.float32)]
    KO.adam_update(*args, 0.09375, 0.0, 0.9999, 1e-8, 3, 0.0)
    want = [a.astype(np.float64) for a in (np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1))]
    KO.adam_update_np(*want, 0.09375, 0.0, 0.9999, 1e-8, 3, 0.0)
    np.testing.assert_allclose(args[0], want[0], rtol=4 * ULP32)



# ---- checks ----

@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(data=st.data())
def test_all_finite(dtype, data):
    n = data.draw(st.integers(1, 30))
    x = data.draw(arrays((n,), floats(-2.0 ** 100, 2.0 ** 100, width(dtype)), dtype))
    assert KC.all_finite(x) is KC.all_finite_np(x) is True
    bad = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    x[data.draw(st.integers(0, n - 1))] = bad
    assert KC.all_finite(x) is KC.all_finite_np(x) is False
