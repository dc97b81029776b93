"""An experiment: a blocked numba matmul against NumPy's BLAS at a dense layer's products.

A dense layer y = x @ W needs three products per step (N batch, D in, H out):

    forward    y  = x  @ W      (N, D) @ (D, H) -> (N, H)    matmul_nn(x, W, y)
    backward   dW = x.T @ dy    (D, N) @ (N, H) -> (D, H)    matmul_tn(x, dy, dW)
               dx = dy @ W.T    (N, H) @ (H, D) -> (N, D)    matmul_nt(dy, W, dx)

Each numba kernel sits beside its NumPy twin (``matmul_nn_np`` ...), one call to BLAS,
which is its specification; ``tests/test_matmul.py`` holds them equal. Not part of minivae:
minivae's layers write ``x @ W``, ``x.T @ dy`` and ``dy @ W.T`` and NumPy hands them to BLAS,
because this experiment, timed side by side at every product of a VAE step
(``benchmarks/matmul_shapes.py``, the lessons' appendix A, section 4), found BLAS faster at
each of them.

How the numba kernel works.  Row i of out is a weighted sum of the rows of B:

    out[i, :] = sum_k A[i, k] * B[k, :]

so the innermost loop runs along a row (j), contiguous in B and in out, and LLVM
turns it into SIMD instructions (8 float32 per AVX2 register) with no fastmath:
the sum over k is still added in order, one k after another. Three levels of
blocking feed that loop:
  - registers: 4 rows of out and 2 values of k per pass (``_rows4``), so each
    value of B loaded is used 4 times and each value of out loaded and stored
    covers 2 products;
  - cache: B is walked in blocks of KB rows x NB columns (256 KB in float32, in
    a core's L2) while a stripe of MB rows of out sweeps over the block, its sums
    kept in a scratch block aligned to 64-byte cache lines;
  - threads: out is cut into stripes of MB rows, shared out among numba's threads.
Because every out[i, j] is summed in plain k order, ((c + a0*b0) + a1*b1) + ...,
the result does not depend on the block sizes or the number of threads.

``A`` is only ever read one number at a time, so A.T @ B is the same kernel
given the view ``a.T``. Operands whose rows are not contiguous are copied first,
``out`` may have any strides, and A @ B.T first copies B.T into a C-contiguous
scratch array (O(K N), against the product's O(M K N)).

What BLAS does that this kernel does not: it packs the blocks of both operands into
contiguous buffers in the order its inner kernel reads them, and that inner kernel is
hand-written assembly with fused multiply-adds (this kernel keeps IEEE rounding: no
``fastmath``, so no FMA), tuned per processor family.

    OPS["tn"] -> (matmul_tn, matmul_tn_np): the kernel and its twin for out = a.T @ b
"""

import numpy as np
from numba import njit, prange

MB = 32    # rows of out per stripe; stripes are shared out among numba's threads
KB = 128   # rows of B (values of k) per cache block
NB = 512   # columns of B and out per cache block: KB * NB * 4 bytes = 256 KB in float32


# --- the NumPy twins: the specification -------------------------------------------------

def matmul_nn_np(a, b, out):
    """out = a @ b.   a (M, K), b (K, N) -> out (M, N)."""
    return np.matmul(a, b, out=out)


def matmul_tn_np(a, b, out):
    """out = a.T @ b.   a (K, M), b (K, N) -> out (M, N)."""
    return np.matmul(a.T, b, out=out)


def matmul_nt_np(a, b, out):
    """out = a @ b.T.   a (M, K), b (N, K) -> out (M, N)."""
    return np.matmul(a, b.T, out=out)


# --- the numba kernels ------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _rows4(a, b, acc, i, j0, n, k0, k1):
    """acc[i:i+4, :n] += a[i:i+4, k0:k1] @ b[k0:k1, j0:j0+n], two values of k per pass."""
    c0 = acc[i, :n]                                            # (n,) views of 4 rows of acc
    c1 = acc[i + 1, :n]
    c2 = acc[i + 2, :n]
    c3 = acc[i + 3, :n]
    k = k0
    while k + 2 <= k1:
        b0 = b[k, j0:j0 + n]                                   # (n,) two rows of B
        b1 = b[k + 1, j0:j0 + n]
        a00, a01 = a[i, k], a[i, k + 1]                        # a 4 x 2 block of A
        a10, a11 = a[i + 1, k], a[i + 1, k + 1]
        a20, a21 = a[i + 2, k], a[i + 2, k + 1]
        a30, a31 = a[i + 3, k], a[i + 3, k + 1]
        for j in range(n):                                     # SIMD: j counts from 0
            v0 = b0[j]                                         # load B once, use it 4 times
            v1 = b1[j]
            c0[j] = c0[j] + a00 * v0 + a01 * v1
            c1[j] = c1[j] + a10 * v0 + a11 * v1
            c2[j] = c2[j] + a20 * v0 + a21 * v1
            c3[j] = c3[j] + a30 * v0 + a31 * v1
        k += 2
    if k < k1:                                                 # an odd k left over
        b0 = b[k, j0:j0 + n]
        a00, a10, a20, a30 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
        for j in range(n):
            v0 = b0[j]
            c0[j] = c0[j] + a00 * v0
            c1[j] = c1[j] + a10 * v0
            c2[j] = c2[j] + a20 * v0
            c3[j] = c3[j] + a30 * v0


@njit(cache=True, error_model="numpy")
def _row1(a, b, acc, i, j0, n, k0, k1):
    """acc[i, :n] += a[i, k0:k1] @ b[k0:k1, j0:j0+n], for the rows left after the 4s."""
    c0 = acc[i, :n]
    for k in range(k0, k1):
        b0 = b[k, j0:j0 + n]
        a00 = a[i, k]
        for j in range(n):
            c0[j] = c0[j] + a00 * b0[j]


@njit(cache=True, error_model="numpy", parallel=True)
def _matmul_blocked(a, b, out, mb, kb, nb):
    """out = a @ b with explicit block sizes (tests use tiny ones to reach every edge).

    (The stripe loop is written out here, not in a helper: each layer of numba calls
    costs another LLVM pass over the code below it, doubling the compile time.)
    """
    M, K = a.shape
    N = b.shape[1]
    if b.shape[0] != K or out.shape[0] != M or out.shape[1] != N:
        raise ValueError("matmul: shapes do not match: need a (M, K), b (K, N), out (M, N)")
    for s in prange((M + mb - 1) // mb):                       # stripes of mb rows of out,
        i0, i1 = s * mb, min(s * mb + mb, M)                   # split among the threads
        rows, cols = i1 - i0, (min(nb, N) + 15) // 16 * 16
        # acc (rows, cols): the stripe's partial sums, each row on a 64-byte cache line
        # (stores into a misaligned out would cost a third of the speed)
        buf = np.empty(rows * cols + 16, out.dtype)
        start = (-buf.ctypes.data) % 64 // buf.itemsize
        acc = buf[start:start + rows * cols].reshape((rows, cols))
        a_s = a[i0:i1]                                         # (rows, K)
        for j0 in range(0, N, nb):
            n = min(nb, N - j0)
            acc[:, :n] = 0
            for k0 in range(0, K, kb):                         # k blocks in order: sums stay
                k1 = min(k0 + kb, K)                           # in plain k order
                i = 0
                while i + 4 <= rows:
                    _rows4(a_s, b, acc, i, j0, n, k0, k1)
                    i += 4
                while i < rows:
                    _row1(a_s, b, acc, i, j0, n, k0, k1)
                    i += 1
            out[i0:i1, j0:j0 + n] = acc[:, :n]
    return out


# The entry points copy an operand only when its rows are not contiguous; the blocked
# kernel then sees two layouts of A (C, and F for a.T) and one of B, so numba compiles it
# just four times (two layouts x float32/float64).

@njit(cache=True, error_model="numpy")
def matmul_nn(a, b, out):
    """out = a @ b.   a (M, K), b (K, N) -> out (M, N). Twin: ``matmul_nn_np``."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)   # no copy if they already are
    return _matmul_blocked(a, b, out, MB, KB, NB)


@njit(cache=True, error_model="numpy")
def matmul_tn(a, b, out):
    """out = a.T @ b.   a (K, M), b (K, N) -> out (M, N). Twin: ``matmul_tn_np``."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return _matmul_blocked(a.T, b, out, MB, KB, NB)            # a.T is a view: no copy


@njit(cache=True, error_model="numpy")
def matmul_nt(a, b, out):
    """out = a @ b.T.   a (M, K), b (N, K) -> out (M, N). Twin: ``matmul_nt_np``."""
    a, bt = np.ascontiguousarray(a), np.ascontiguousarray(b.T)   # bt (K, N): a scratch copy
    return _matmul_blocked(a, bt, out, MB, KB, NB)


# --- by name ----------------------------------------------------------------------------

# "nn": out = a @ b,  "tn": out = a.T @ b (a (K, M)),  "nt": out = a @ b.T (b (N, K))
OPS = {"nn": (matmul_nn, matmul_nn_np), "tn": (matmul_tn, matmul_tn_np),
       "nt": (matmul_nt, matmul_nt_np)}


def op_name(trans_a, trans_b):
    """"nn", "tn" or "nt" for out = op(a) @ op(b), op(x) = x.T if asked (not both)."""
    if trans_a and trans_b:
        raise ValueError("numba_matmul: a.T @ b.T is not one of the layer's products")
    return "tn" if trans_a else "nt" if trans_b else "nn"
