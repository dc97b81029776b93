"""The numba matmul kernels of benchmarks/numba_matmul.py against their NumPy twins.

The kernels are an experiment, not part of minivae (its layers write ``x @ W``: BLAS); the
timings that compare them with BLAS are benchmarks/matmul_shapes.py and the lessons' appendix
A, and this file holds the kernels that those timings run equal to BLAS's answer.

Tolerance: a sum of K products carries a rounding error of at most about K * eps * sum|a||b|
whichever order it is added in, so two correct results differ by at most twice that.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import numba_matmul as mm

JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")
SETTINGS = settings(max_examples=30 if JIT else 10, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

dims = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33])   # 1, primes, 4k +- 1
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2 ** 32 - 1)

KERNELS = mm.OPS                                     # "nn", "tn", "nt" -> (kernel, twin)


def operands(op, m, k, n, dtype, seed):
    """a, b in the layout the op takes (a (K, M) for tn, b (N, K) for nt), standard normal."""
    rng = np.random.default_rng(seed)
    a_shape = (k, m) if op == "tn" else (m, k)
    b_shape = (n, k) if op == "nt" else (k, n)
    return (rng.standard_normal(a_shape).astype(dtype),
            rng.standard_normal(b_shape).astype(dtype))


def assert_close(got, want, a, b, op):
    """|got - want| <= 2 K eps (|op(a)| @ |op(b)|), entry by entry."""
    a = a.T if op == "tn" else a
    b = b.T if op == "nt" else b
    bound = 2 * a.shape[1] * np.finfo(got.dtype).eps * (np.abs(a).astype(np.float64)
                                                         @ np.abs(b).astype(np.float64))
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= bound).all(), f"max error {err.max():.3g}, bound there {bound.flat[err.argmax()]:.3g}"


def sequential(a, b):
    """a @ b summed one k after another in a's dtype, each product and sum rounded: the
    order the numba kernel promises."""
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    for k in range(a.shape[1]):
        acc = acc + a[:, k:k + 1] * b[k]
    return acc


@SETTINGS
@given(op=st.sampled_from(sorted(KERNELS)), m=dims, k=dims, n=dims, dtype=dtypes, seed=seeds)
def test_kernel_matches_numpy_twin(op, m, k, n, dtype, seed):
    kernel, twin = KERNELS[op]
    a, b = operands(op, m, k, n, dtype, seed)
    got = kernel(a, b, np.full((m, n), np.nan, dtype=dtype))            # out starts as garbage
    want = twin(a, b, np.empty((m, n), dtype=dtype))
    assert got.dtype == dtype and got.shape == (m, n)
    assert_close(got, want, a, b, op)


@SETTINGS
@given(m=dims, k=dims, n=dims, dtype=dtypes, seed=seeds,
       mb=st.integers(1, 9), kb=st.integers(1, 7), nb=st.integers(1, 17))
def test_any_block_sizes_give_the_sequential_sum_exactly(m, k, n, dtype, seed, mb, kb, nb):
    """Small blocks reach every edge (partial blocks, leftover rows and k); the sum over k
    stays in plain order, so the result is bit for bit the same whatever the blocks."""
    a, b = operands("nn", m, k, n, dtype, seed)
    got = mm._matmul_blocked(a, b, np.empty((m, n), dtype=dtype), mb, kb, nb)
    np.testing.assert_array_equal(got, sequential(a, b))


@pytest.mark.skipif(not JIT, reason="about 2.5M multiply-adds: minutes as plain Python")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", sorted(KERNELS))
def test_shapes_across_the_real_block_sizes(op, dtype):
    m, k, n = mm.MB + 5, mm.KB + 3, mm.NB + 3                    # a partial block on every axis
    a, b = operands(op, m, k, n, dtype, 0)
    kernel, twin = KERNELS[op]
    got = kernel(a, b, np.empty((m, n), dtype=dtype))
    assert_close(got, twin(a, b, np.empty((m, n), dtype=dtype)), a, b, op)


@SETTINGS
@given(op=st.sampled_from(sorted(KERNELS)), m=dims, k=dims, n=dims, dtype=dtypes, seed=seeds,
       fortran=st.booleans())
def test_non_contiguous_inputs(op, m, k, n, dtype, seed, fortran):
    """Strided views and Fortran-ordered arrays give the same answer as contiguous ones."""
    a, b = operands(op, m, k, n, dtype, seed)
    if fortran:
        a_in, b_in = np.asfortranarray(a), np.asfortranarray(b)
    else:                                                           # every other row and column
        a_in = np.zeros((2 * a.shape[0], 2 * a.shape[1]), dtype)[::2, ::2]
        b_in = np.zeros((2 * b.shape[0], 2 * b.shape[1]), dtype)[::2, ::2]
        a_in[...], b_in[...] = a, b
    kernel, twin = KERNELS[op]
    want = twin(a, b, np.empty((m, n), dtype=dtype))
    assert_close(kernel(a_in, b_in, np.empty((m, n), dtype=dtype)), want, a, b, op)


@SETTINGS
@given(op=st.sampled_from(sorted(KERNELS)), m=dims, k=dims, n=dims, dtype=dtypes, seed=seeds)
def test_kernel_writes_into_out_and_agrees_with_the_layers_product(op, m, k, n, dtype, seed):
    """What a layer writes (x @ W, x.T @ dy, dy @ W.T) is what the kernel computes, in out."""
    a, b = operands(op, m, k, n, dtype, seed)
    op_a, op_b = (a.T if op == "tn" else a), (b.T if op == "nt" else b)
    out = np.empty((m, n), dtype=dtype)
    kernel, _ = KERNELS[op]
    assert kernel(a, b, out) is out
    assert_close(out, op_a @ op_b, op_a, op_b, "nn")
    assert KERNELS[mm.op_name(op == "tn", op == "nt")] == KERNELS[op]


def test_kernel_refuses_mismatched_shapes():
    """Without this check a kernel would write past the end of out."""
    a, b = np.ones((3, 4)), np.ones((5, 6))
    with pytest.raises(ValueError, match="shapes do not match"):
        mm.matmul_nn(a, b, np.empty((3, 6)))
    with pytest.raises(ValueError, match="shapes do not match"):
        mm.matmul_nn(np.ones((3, 5)), b, np.empty((2, 6)))


def test_op_name_refuses_two_transposes():
    with pytest.raises(ValueError, match="a.T @ b.T"):
        mm.op_name(True, True)
