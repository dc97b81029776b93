# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Appendix A: Making it fast
#
# Every lesson of the course trains its models in seconds or minutes, on two cores, without a
# GPU. This appendix takes that apart. One dense layer, $y = \mathrm{relu}(xW + b)$, forward
# and backward, written four ways: pure Python loops, array-at-a-time NumPy, numba kernels,
# and BLAS through NumPy's `@`; plus minivae's own `Dense`, which mixes the last two. Each way
# is checked equal to the others before a single timer starts. The measurements explain how
# minivae is built: its layers write their products with `@` and leave them to BLAS, and its
# numba kernels fuse the elementwise work *inside* the pieces whose formulas they implement
# (the bias and activation of `Dense`, the Bernoulli loss, Adam's update), never as a path
# around them.
#
# You will see:
#
# 1. how to time code honestly on a shared machine: thread settings, CPU against wall-clock
#    time, interleaved repeats and medians;
# 2. the layer four ways, checked equal;
# 3. the four timed at the VAE's shapes, in milliseconds and GFLOP/s;
# 4. why matrix products belong to BLAS: a hand-blocked numba matmul against BLAS, product by
#    product (the experiment in `benchmarks/numba_matmul.py`, kept beside minivae, not in it);
# 5. why elementwise work belongs to fused numba kernels: one pass over memory instead of
#    several temporaries; and what else a fused loop needs before the compiler runs it 8 floats
#    at a time: numba's `error_model="numpy"` for divisions, arithmetic instead of calls to the
#    C maths library (minivae's `fastexp` polynomials for exp and log1p), no early exits;
# 6. where the time of a whole VAE training step goes, how many FLOPs it does (11 products: the
#    first layer skips the gradient with respect to the images), what fraction of the
#    machine's matmul rate it reaches, and what a fused path around a layer would save;
# 7. how `benchmarks/vae_speed.py` compares minivae with PyTorch, and how to read its figures;
# 8. threads on a machine that is doing something else: a spinning thread pool,
#    oversubscription, why one thread can beat two, and how minivae chooses its count.

# %%
import ctypes
import glob
import json
import os
import sys
import time
import tracemalloc
from functools import partial

import matplotlib.pyplot as plt
import numba
import numpy as np
from numba import njit

from minivae import data, losses
from minivae.gradcheck import rel_error
from minivae.kernels import activations as A
from minivae.kernels import fastexp as FE
from minivae.kernels import losses as LK
from minivae.kernels.checks import all_finite
from minivae.layers import Dense
from minivae.models.vae import VAE
from minivae.optim import Adam
from minivae.train import fit

# benchmarks/ holds experiments kept beside minivae, not part of it. A lesson runs in lessons/:
sys.path.insert(0, os.path.abspath(".."))    # the repository's root, where benchmarks/ is
from benchmarks import fused_reparam as KR   # the sampler fused with the KL (section 6)
from benchmarks import numba_matmul as mm    # a blocked numba matmul (section 4)

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
REPEATS = 5 if FAST else 31                    # timed calls of each function; we keep the median
PY_SIZES = [(4, 16, 8)] + ([] if FAST else [(8, 32, 16)]) + [(16, 64, 32)]  # (N, D, H), Python
STEPS = 6 if FAST else 40                      # VAE training steps profiled
BIG = 512 if FAST else 1024                    # a square matmul, for the machine's top matmul rate
THREADS = 1                                    # BLAS and numba threads while timing (section 1)
N = 128                                        # the batch size of the VAE
LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]   # (D, H) of its four dense layers
rng = np.random.default_rng(10)

# %% [markdown]
# ## 1. Timing on a shared machine
#
# **Threads.** NumPy's `@` calls a BLAS library (here OpenBLAS) that runs a product on several
# threads; numba's parallel kernels have their own pool. Both are set by environment variables
# read at start-up, and can be changed later: numba by `numba.set_num_threads`, OpenBLAS by a
# function in its C library, which we call through `ctypes` (the package `threadpoolctl` does
# the same for every BLAS). The first thing to print, before any timing, is what they are.

# %%
def openblas_threads():
    """(get, set) for the threads of NumPy's OpenBLAS, through ctypes; None if not found."""
    try:
        with open("/proc/self/maps") as f:                             # Linux: libraries loaded
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower()})
    except OSError:                                                    # elsewhere: look for it
        here = os.path.dirname(np.__file__)
        paths = glob.glob(os.path.join(here, "..", "numpy.libs", "*openblas*")) + glob.glob(
            os.path.join(here, ".dylibs", "*openblas*"))
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "")):
            try:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}")
                set_ = getattr(lib, f"{prefix}set_num_threads{suffix}")
            except AttributeError:
                continue
            return get, set_
    return None


def set_threads(n):
    """Use n threads in BLAS (if we can reach it) and in numba's parallel kernels."""
    if BLAS_THREADS is not None:
        BLAS_THREADS[1](n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


BLAS_THREADS = openblas_threads()
blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (processes wanting a cpu)")
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    print(f"  {var:21s} {os.environ.get(var, '(not set)')}")
print(f"numpy {np.__version__}, BLAS {blas['name']} {blas.get('version', '')}: "
      + (f"{BLAS_THREADS[0]()} threads" if BLAS_THREADS else "threads unknown to this lesson "
         "(set OPENBLAS_NUM_THREADS or MKL_NUM_THREADS before starting Python)"))
print(f"numba {numba.__version__}: {numba.get_num_threads()} threads")

# %% [markdown]
# **CPU time and wall-clock time.** `time.perf_counter()` is wall-clock time: what you wait.
# `time.thread_time()` counts only the time a core spent running *this* thread. On an idle
# machine, for single-threaded work, they agree. On a shared machine they do not: when more
# processes want to run than there are cores, the operating system takes turns, and every
# turn someone else has shows up in your wall-clock time but not in your CPU time.
#
# So **absolute times drift** on a shared machine, from minute to minute, with whatever else is
# running. **Ratios measured side by side are meaningful**: we time the competitors in
# interleaved rounds (A B C, then C A B, ...), so a busy moment hits all of them alike, and we
# keep the **median** of the repeats, which a few unlucky calls cannot move. We report CPU
# time of single-threaded runs, which measures the code rather than its neighbours, and print
# how much longer the wall clock was. (CPU time only counts this thread: it is the right clock
# when all the work runs here, as it does below with one thread for BLAS and numba. It drifts
# too, less: the neighbours also evict our data from the caches.)
#
# **More threads can be slower.** A product split over 2 threads finishes when the *slower*
# thread finishes. If the machine is busy, one of the two is often waiting for its turn on a
# core, and the whole product waits with it. Here is one product, `x @ W` at the VAE's first
# layer, on 1 thread and on every core, in alternation:

# %%
def bench(fns, repeats=REPEATS, clock="cpu"):
    """Median seconds per call of each function (name -> no-argument function).

    Rounds are interleaved, each in a fresh random order. clock: "cpu" (this thread's CPU
    time; meaningful for single-threaded code) or "wall". Also returns the median ratio of
    wall-clock to CPU time over all calls, a measure of how busy the machine was.
    """
    for fn in fns.values():
        fn()                                            # warm up: compile, fill caches
    cpu, wall = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for name in rng.permutation(list(fns)):
            c0, w0 = time.thread_time(), time.perf_counter()
            fns[name]()
            cpu[name].append(time.thread_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    times = cpu if clock == "cpu" else wall
    ratio = np.median([w / max(c, 1e-9) for k in fns for w, c in zip(wall[k], cpu[k])])
    return {k: float(np.median(v)) for k, v in times.items()}, float(ratio)


x1 = rng.standard_normal((N, 784), dtype=np.float32)
W1 = rng.standard_normal((784, 400), dtype=np.float32)
out1 = np.empty((N, 400), np.float32)


def with_threads(n):
    def run():
        set_threads(n)
        np.matmul(x1, W1, out=out1)
    return run


all_cores = os.cpu_count()
if BLAS_THREADS is None:
    print("BLAS's threads cannot be set from here: comparison skipped")
else:
    t_threads, _ = bench({"1 thread": with_threads(1),
                          f"{all_cores} threads": with_threads(all_cores)}, clock="wall")
    for name, t in t_threads.items():
        print(f"x @ W  (128, 784) @ (784, 400), BLAS on {name:10s}: {t * 1e3:7.2f} ms wall-clock")
set_threads(THREADS)

# %% [markdown]
# On an idle machine with two cores, two threads should be nearly twice as fast. On a busy one
# they can be many times *slower*. The rest of the lesson runs everything on `THREADS = 1` thread,
# which also makes every competitor comparable core for core (pure Python and the elementwise
# kernels use one thread anyway). On your own idle machine, try `THREADS = 2`.
#
# ## 2. One dense layer, four ways
#
# Forward and backward of $y = \mathrm{relu}(xW + b)$, for $x$ $(N, D)$, $W$ $(D, H)$, given
# the upstream gradient $dy = \partial L/\partial y$ $(N, H)$:
#
# $$a = xW + b, \quad y = \max(a, 0); \qquad da = dy \odot [y > 0], \quad dW = x^\top da,
#   \quad db = \textstyle\sum_n da_n, \quad dx = da\, W^\top.$$
#
# Three matrix products, each of $N D H$ multiply-adds, i.e. $2NDH$ floating-point operations
# (FLOPs): **$6NDH$ FLOPs per layer per step**, and $O(NH)$ elementwise work besides.
#
# 1. **Pure Python**: lists of floats and three nested loops, one multiply-add per step of the
#    innermost loop.
# 2. **NumPy, array at a time, no BLAS**: each product as a sum of outer products, a Python
#    loop over one index with a whole-array NumPy operation inside.
# 3. **numba**: a blocked numba matmul (`benchmarks/numba_matmul.py`, section 4), and
#    minivae's fused bias + ReLU kernels.
# 4. **BLAS via `@`**: the textbook NumPy code, `np.maximum(x @ W + b, 0)`.
# 5. and **`minivae.layers.Dense`**: `@` for the products, the fused kernels for the rest.

# %%
def dense_python(x, W, b, dy):
    """Lists of lists. x (N, D), W (D, H), b (H,), dy (N, H) -> y, dx, dW, db."""
    n_, d_, h_ = len(x), len(W), len(b)
    y = [[0.0] * h_ for _ in range(n_)]
    for n in range(n_):
        for h in range(h_):
            a = b[h]
            for d in range(d_):
                a += x[n][d] * W[d][h]
            y[n][h] = a if a > 0 else 0.0
    da = [[dy[n][h] if y[n][h] > 0 else 0.0 for h in range(h_)] for n in range(n_)]
    db = [sum(da[n][h] for n in range(n_)) for h in range(h_)]
    dW = [[sum(x[n][d] * da[n][h] for n in range(n_)) for h in range(h_)] for d in range(d_)]
    dx = [[sum(da[n][h] * W[d][h] for h in range(h_)) for d in range(d_)] for n in range(n_)]
    return y, dx, dW, db


def dense_numpy(x, W, b, dy):
    """Whole-array NumPy without BLAS: every product is a loop of outer products."""
    a = np.zeros((x.shape[0], W.shape[1]), x.dtype)
    for d in range(x.shape[1]):
        a += np.multiply.outer(x[:, d], W[d])            # (N, H) column d of x, row d of W
    y = np.maximum(a + b, 0)                             # (N, H)
    da = dy * (y > 0)                                    # (N, H)
    dW = np.zeros_like(W)
    for n in range(x.shape[0]):
        dW += np.multiply.outer(x[n], da[n])             # (D, H)
    dx = np.zeros_like(x)
    for h in range(W.shape[1]):
        dx += np.multiply.outer(da[:, h], W[:, h])       # (N, D)
    return y, dx, dW, da.sum(axis=0)


def dense_numba(x, W, b, dy):
    """numba only: the experiment's blocked matmuls, minivae's fused bias + ReLU and backward."""
    y = mm.matmul_nn(x, W, np.empty((x.shape[0], W.shape[1]), x.dtype))   # (N, H) x @ W
    A.bias_act_forward(y, b, A.RELU, 0.0, y)             # relu(. + b), in place, one pass
    db = np.zeros_like(b)
    da = A.act_backward_bias(dy, y, A.RELU, 0.0, np.empty_like(dy), db)   # da and db, one pass
    dW = mm.matmul_tn(x, da, np.empty_like(W))           # (D, H) x.T @ da
    dx = mm.matmul_nt(da, W, np.empty_like(x))           # (N, D) da @ W.T
    return y, dx, dW, db


def dense_blas(x, W, b, dy):
    """The textbook NumPy layer: BLAS products, NumPy elementwise operations."""
    y = np.maximum(x @ W + b, 0)                         # (N, H)
    da = dy * (y > 0)                                    # (N, H)
    return y, da @ W.T, x.T @ da, da.sum(axis=0)


def dense_minivae(layer):
    """The library's Dense layer, as a function of the same four arguments."""
    def run(x, W, b, dy):
        layer.zero_grad()
        y = layer.forward(x)
        return y, layer.backward(dy), layer.grads["W"], layer.grads["b"]
    return run


def layer_problem(n, d, h, seed):
    """float32 inputs for one layer and the float64 reference (y, dx, dW, db)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, d), dtype=np.float32)
    W = r.uniform(-1, 1, (d, h)).astype(np.float32) / np.float32(np.sqrt(d))
    b = r.uniform(-1, 1, h).astype(np.float32) / np.float32(np.sqrt(d))
    a = x.astype(np.float64) @ W + b                     # (N, H) float64
    dy = r.standard_normal((n, h), dtype=np.float32)
    dy[np.abs(a) < 1e-4 * np.abs(a).max()] = 0           # ReLU's kink: float32 and float64
    da = dy * (a > 0)                                    # may disagree on the sign of a ~ 0
    ref = (np.maximum(a, 0), da @ W.T.astype(np.float64), x.T.astype(np.float64) @ da,
           da.sum(axis=0))
    return (x, W, b, dy), ref


def ways_for(x, W, b, dy):
    """name -> layer function for each fast way; the Dense layer gets W and b copied in."""
    layer = Dense(*W.shape, "relu", rng=0)
    layer.params["W"][...], layer.params["b"][...] = W, b
    return {"NumPy, no BLAS": dense_numpy, "numba": dense_numba, "BLAS @": dense_blas,
            "minivae Dense": dense_minivae(layer)}


def max_error(result, ref):
    """The largest rel_error over (y, dx, dW, db); float32 rounding is about 1e-7 to 1e-6."""
    return max(rel_error(np.asarray(r, dtype=np.float64), f) for r, f in zip(result, ref))


# %% [markdown]
# **Check:** on a tiny layer, all five give the same $y$, $dx$, $dW$, $db$ as a float64
# reference, to float32 rounding; then every fast way again at each of the VAE's shapes.

# %%
args, ref = layer_problem(*PY_SIZES[0], seed=0)
ways = ways_for(*args)
errors = {"pure Python": max_error(dense_python(*(a.tolist() for a in args)), ref)}
errors.update({name: max_error(fn(*args), ref) for name, fn in ways.items()})
print("tiny layer", PY_SIZES[0], {k: f"{e:.1e}" for k, e in errors.items()})
assert max(errors.values()) < 1e-5

problems = {}
for i, (d, h) in enumerate(LAYERS):
    args, ref = layer_problem(N, d, h, seed=1 + i)
    ways = ways_for(*args)
    errs = {name: max_error(fn(*args), ref) for name, fn in ways.items()}
    print(f"{d:3d} -> {h:3d}", {k: f"{e:.1e}" for k, e in errs.items()})
    assert max(errs.values()) < 1e-5
    problems[d, h] = args, ways

# %% [markdown]
# **Pure Python, timed where it can be.** At the VAE's first layer, pure Python would do
# $3 \cdot 128 \cdot 784 \cdot 400 \approx 1.2 \times 10^8$ multiply-adds, one interpreted
# bytecode loop at a time. We time it on tiny layers instead, next to the BLAS version at the
# same size, and extrapolate with its cost per multiply-add, which hardly depends on the size.

# %%
def time_python(n, d, h):
    """Median CPU seconds of the pure-Python layer and of the BLAS one, side by side."""
    args, _ = layer_problem(n, d, h, seed=0)
    lists = [a.tolist() for a in args]
    t, _ = bench({"python": partial(dense_python, *lists), "BLAS @": partial(dense_blas, *args)})
    return t


py_rows = []
for n, d, h in PY_SIZES:
    t = time_python(n, d, h)
    py_rows.append((n, d, h, t["python"], t["BLAS @"]))
    print(f"N, D, H = {n:2d}, {d:3d}, {h:3d}: pure Python {t['python'] * 1e3:7.2f} ms = "
          f"{t['python'] / (3 * n * d * h) * 1e9:5.0f} ns per multiply-add;  "
          f"BLAS @ {t['BLAS @'] * 1e6:6.1f} us;  ratio {t['python'] / t['BLAS @']:5.0f}")
NS_PER_MAC = py_rows[-1][3] / (3 * np.prod(py_rows[-1][:3]))   # seconds per multiply-add

# %%
n, d, h, t_py, t_blas = py_rows[-1]
assert t_py > 10 * t_blas          # even at a toy size, with BLAS's call overhead, far slower

# %% [markdown]
# ## 3. The table at the VAE's shapes
#
# Each fast way is timed in interleaved rounds at each layer of the VAE (batch 128). Times are
# the median CPU time of forward + backward; GFLOP/s $= 6NDH / \text{time}$ (products only;
# the elementwise work is a few per cent of the operations). Pure Python is extrapolated.

# %%
names = ["pure Python*"] + list(ways)
table = {}                                              # (d, h) -> name -> seconds
loads = []
for (d, h), (args, ways) in problems.items():
    t, load = bench({name: partial(fn, *args) for name, fn in ways.items()})
    table[d, h] = {"pure Python*": 3 * N * d * h * NS_PER_MAC, **t}
    loads.append(load)

print(f"{'layer':>10s} {'MFLOP':>6s}" + "".join(f"{name:>22s}" for name in names))
for (d, h), row in table.items():
    flops = 6 * N * d * h
    print(f"{d:4d} ->{h:4d} {flops / 1e6:6.1f}" + "".join(
        f"{row[k] * 1e3:10.2f} ms {flops / row[k] / 1e9:6.1f} GF" for k in names))
total = {k: sum(row[k] for row in table.values()) for k in names}
layers_flops = sum(6 * N * d * h for d, h in LAYERS)
print(f"{'all four':>10s} {layers_flops / 1e6:6.1f}" + "".join(
    f"{total[k] * 1e3:10.2f} ms {layers_flops / total[k] / 1e9:6.1f} GF" for k in names))
print("* extrapolated from the tiny layers above.  ms: median CPU time per forward + backward;"
      f"  GF: GFLOP/s.\nWall-clock time was {np.median(loads):.1f}x the CPU time "
      "(1.0 on an idle machine).")

# %%
fig, ax = plt.subplots(figsize=(10, 4))
width = 0.8 / len(names)
for i, name in enumerate(names):
    rates = [6 * N * d * h / table[d, h][name] / 1e9 for d, h in LAYERS]
    ax.bar(np.arange(len(LAYERS)) + (i - len(names) / 2 + 0.5) * width, rates, width,
           label=name)
ax.set_xticks(range(len(LAYERS)), [f"{d} -> {h}" for d, h in LAYERS])
ax.set(yscale="log", ylabel="GFLOP/s (log scale)", xlabel="layer (batch 128)",
       title="one dense layer, forward + backward, single thread")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
plt.tight_layout()
plt.show()

# %% [markdown]
# Three to four orders of magnitude separate pure Python from BLAS at the big layers.
# Pure Python pays the interpreter for every multiply-add: fetch a bytecode, look up two list
# items, box a new float. Array-at-a-time NumPy pays the interpreter once per outer product,
# but streams a whole $(N, H)$ array through memory for each of the $D$ of them. The compiled
# kernels and BLAS do the same arithmetic as the loops, but arranged for the hardware, which is
# the subject of the next two sections.
#
# ## 4. Matrix products belong to BLAS
#
# A recent x86 core with AVX2 can start two 8-wide fused multiply-adds (FMA) per clock cycle:
# 32 float32 FLOPs per cycle, some 80 GFLOP/s at 2.5 GHz. Only if the numbers are already in
# registers. A product of $(N, D)$ by $(D, H)$ reads $ND + DH$ numbers and does $2NDH$ FLOPs,
# so each number can be reused many times, but only if it stays close to the core while it is
# reused. A good matmul therefore does four things:
#
# * **register blocking**: a small block of the output (say 6 x 16) stays in registers while
#   it accumulates, so each loaded number feeds several FMAs;
# * **cache blocking**: $W$ is cut into panels that fit the L1 and L2 caches and each panel is
#   used for many rows of $x$ before the next one is loaded; BLAS also *packs* the panels into
#   contiguous buffers in the order the inner kernel reads them;
# * **SIMD**: the innermost loop works on 8 float32 at once, with FMA instructions;
# * **tuning**: OpenBLAS and its ancestor GotoBLAS carry hand-written assembly kernels, block
#   sizes and prefetch distances for each processor family, refined since the 1990s.
#
# The numba kernel of `benchmarks/numba_matmul.py` does a plain version of the first three:
# 4 rows x 2 values of $k$ in registers, $W$ in blocks of 128 x 512, SIMD along the rows that
# LLVM generates on its own. Without `fastmath` (minivae's gradients are checked, so its kernels
# keep exact IEEE rounding, and so does this one), LLVM may not fuse a multiply and an add into
# one FMA, which by itself halves the peak. It is an experiment, kept in `benchmarks/` beside
# minivae with a test that holds it equal to BLAS's answer (`tests/test_matmul.py`), so that
# the question it answers can be asked again on another machine. Here are the two, product by
# product, for every product of a VAE training step, measured side by side, with a large
# square product for the machine's top rate.
# A step has 11 products, not 12: the VAE's first layer is built with `input_grad=False`, since
# its input is the data, and skips $dx = da\,W^\top$, the gradient with respect to the images
# (a $(128, 400) \times (400, 784)$ product, 16 % of the step's FLOPs, that was computed and
# thrown away).

# %%
def products(n):
    """(label, trans_a, trans_b, a shape, b shape) for the 11 products of one training step."""
    out = []
    for i, (d, h) in enumerate(LAYERS):
        out += [(f"x @ W {d}->{h}", False, False, (n, d), (d, h)),
                (f"x.T @ da {d}->{h}", True, False, (n, d), (n, h))]
        if i > 0:                                        # the first layer's input is the data
            out.append((f"da @ W.T {d}->{h}", False, True, (n, h), (d, h)))
    return out


def time_product(label, ta, tb, sa, sb):
    """(label, flops, BLAS seconds, numba seconds) for out = op(a) @ op(b), checked first."""
    a = rng.standard_normal(sa, dtype=np.float32)
    b = rng.standard_normal(sb, dtype=np.float32)
    op_a, op_b = (a.T if ta else a), (b.T if tb else b)
    out_blas = np.empty((op_a.shape[0], op_b.shape[1]), np.float32)
    out_numba = np.empty_like(out_blas)
    kernel, _ = mm.OPS[mm.op_name(ta, tb)]              # a, b as stored: (K, M) for x.T @ da
    fns = {"BLAS": lambda: np.matmul(op_a, op_b, out=out_blas),
           "numba": lambda: kernel(a, b, out_numba)}
    for fn in fns.values():                             # check first, then time
        fn()
    ref = op_a.astype(np.float64) @ op_b
    assert rel_error(out_blas, ref) < 1e-5, label
    assert rel_error(out_numba, ref) < 1e-5, label
    t, load = bench(fns)
    loads.append(load)
    flops = 2 * op_a.shape[0] * op_a.shape[1] * op_b.shape[1]
    return label, flops, t["BLAS"], t["numba"]


square = (f"square {BIG}", False, False, (BIG, BIG), (BIG, BIG))
mm_rows = [time_product(*p) for p in [*products(N), square]]

print(f"{'product':22s} {'MFLOP':>7s} {'BLAS GFLOP/s':>13s} {'numba GFLOP/s':>14s} "
      f"{'numba/BLAS time':>16s}")
for label, flops, tb_, tn in mm_rows:
    print(f"{label:22s} {flops / 1e6:7.1f} {flops / tb_ / 1e9:13.1f} {flops / tn / 1e9:14.1f} "
          f"{tn / tb_:16.2f}")
step_mm = mm_rows[:-1]
step_flops = sum(r[1] for r in step_mm)                                   # FLOPs of a step
BLAS_RATE = step_flops / sum(r[2] for r in step_mm)                       # FLOP/s at our shapes
TOP_RATE = mm_rows[-1][1] / mm_rows[-1][2]                                # a big square product
NUMBA_RATE = step_flops / sum(r[3] for r in step_mm)
print(f"all 11 products of a step: BLAS {BLAS_RATE / 1e9:.1f} GFLOP/s, numba "
      f"{NUMBA_RATE / 1e9:.1f} GFLOP/s;  square {BIG}: BLAS {TOP_RATE / 1e9:.1f} GFLOP/s "
      "(one thread)")
print("products of a step where numba beat BLAS here:",
      [label for label, _, t_b, t_n in step_mm if t_n < t_b] or "none")
assert NUMBA_RATE < BLAS_RATE         # over a whole step, BLAS wins: why the layers write @

# %%
fig, ax = plt.subplots(figsize=(11, 4))
xs = np.arange(len(mm_rows))
ax.bar(xs - 0.2, [r[1] / r[2] / 1e9 for r in mm_rows], 0.4, label="BLAS (NumPy @)")
ax.bar(xs + 0.2, [r[1] / r[3] / 1e9 for r in mm_rows], 0.4, label="numba blocked kernel")
ax.set_xticks(xs, [r[0] for r in mm_rows], rotation=60, ha="right", fontsize=8)
ax.set(ylabel="GFLOP/s", title="every matrix product of a VAE step (batch 128), single thread")
ax.set_ylim(0, 1.3 * max(r[1] / r[2] / 1e9 for r in mm_rows))
ax.legend(ncol=2, loc="upper center")
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the numbers rather than the slogans: the last column is the whole story, shape by
# shape. A hundred lines of blocked numba get within a small factor of BLAS; that factor is
# what packing, FMA kernels written in assembly and decades of tuning buy. Products with a
# side of 20 or 40 give each number loaded less work, and a call's fixed cost counts for
# more, so both backends tend to run below their rate on the big ones.
#
# This is why minivae's layers write their products as the formulas do, `x @ W`, `x.T @ da`
# and `da @ W.T`, and let NumPy hand them to BLAS. minivae once sent every product through a
# dispatch table that could pick this numba kernel shape by shape, wherever a side-by-side
# benchmark measured it faster; at every product of a VAE step the table stayed empty, so it
# cost a reader an indirection and bought nothing. `benchmarks/matmul_shapes.py` reruns the
# comparison with 2 threads and PyTorch beside them; if it ever finds numba ahead on your
# machine, it says so.
#
# ## 5. Elementwise work belongs to fused kernels
#
# The bias and the ReLU do one or two FLOPs per number: no cache blocking can help, the cost is
# moving memory. `np.maximum(a + b, 0)` makes a temporary for `a + b`, reads it back, and
# writes the result to a new array. A fused kernel reads `a` and writes the result in one
# pass. The backward, `da = dy * (y > 0)` then `da.sum(axis=0)`, makes a boolean mask and `da`,
# and reads `da` again for the sum; the fused `act_backward_bias` reads `dy` and `y` once,
# writes `da` and adds into `db` on the way. Bytes moved per element of the $(N, H)$ array:
#
# | | NumPy | fused |
# |---|---|---|
# | forward | read a 4, write t 4, read t 4, write y 4: **16** | read a 4, write y 4: **8** |
# | backward | read y 4, write mask 1, read dy 4 + mask 1, write da 4, read da 4: **18** | read dy 4, y 4, write da 4: **12** |
#
# plus, for NumPy, the allocation of two new arrays each time. We count the allocations with
# `tracemalloc` (NumPy reports its arrays to it).
#
# Fusion saves passes; whether it saves *time* depends on the loop. minivae's kernels are
# generic: the activation is an integer argument `kind`, tested inside the loop, so that one
# compiled kernel serves all six activations. Next to them we time the same two loops written
# for ReLU alone, whose body is an add, a compare and a select. All three are timed at the
# layers' output shapes and at one large batch, 4096 x 784, whose arrays no longer fit in the
# caches.

# %%
@njit
def relu_bias_forward(a, b, out):
    """out = max(a + b, 0), one pass: the ReLU case of bias_act_forward on its own."""
    for n in range(a.shape[0]):
        for h in range(a.shape[1]):
            v = a[n, h] + b[h]
            out[n, h] = v if v > 0 else 0.0
    return out


@njit
def relu_backward_bias(dy, y, out, db):
    """out = dy * [y > 0];  db[h] += sum_n out[n, h]: the ReLU case of act_backward_bias."""
    for n in range(dy.shape[0]):
        for h in range(dy.shape[1]):
            g = dy[n, h] if y[n, h] > 0 else 0.0
            out[n, h] = g
            db[h] += g
    return out


def peak_bytes(fn):
    """Bytes allocated at the peak of fn(), above what was allocated before."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - before


WAYS = ("NumPy", "minivae", "ReLU only")


def time_fusion(n, h):
    """Check the fused kernels against NumPy, count allocations, then time all three."""
    a = rng.standard_normal((n, h), dtype=np.float32)
    b, dy = rng.standard_normal(h, dtype=np.float32), rng.standard_normal((n, h), dtype=np.float32)
    y = np.maximum(a + b, 0)                                        # (n, h)
    da, db = dy * (y > 0), (dy * (y > 0)).sum(axis=0)
    out, dout, dbo = np.empty_like(a), np.empty_like(a), np.zeros(h, np.float32)
    fns = {"fwd NumPy": lambda: np.maximum(a + b, 0),
           "fwd minivae": lambda: A.bias_act_forward(a, b, A.RELU, 0.0, out),
           "fwd ReLU only": lambda: relu_bias_forward(a, b, out),
           "bwd NumPy": lambda: (dy * (y > 0)).sum(axis=0),
           "bwd minivae": lambda: A.act_backward_bias(dy, y, A.RELU, 0.0, dout, dbo),
           "bwd ReLU only": lambda: relu_backward_bias(dy, y, dout, dbo)}
    for way in WAYS[1:]:                                 # check before believing the timings
        dbo[:] = 0
        fns[f"fwd {way}"](), fns[f"bwd {way}"]()
        assert rel_error(out, y) < 1e-7 and rel_error(dout, da) < 1e-7, way
        assert rel_error(dbo, db) < 1e-5, way            # a sum in another order
    mem = {k: peak_bytes(fn) for k, fn in fns.items()}
    assert mem["fwd NumPy"] >= 2 * a.nbytes and mem["bwd NumPy"] >= a.nbytes + a.size
    assert max(mem[f"{p} {w}"] for p in ("fwd", "bwd") for w in WAYS[1:]) < 4096   # no arrays
    t, _ = bench(fns)
    return n, h, t, mem


fused_rows = [time_fusion(n, h) for n, h in [(N, 400), (N, 40), (N, 784), (4096, 784)]]

print(f"{'(N, H)':>12s} {'':4s} {'NumPy us':>9s} {'GB/s':>5s} {'alloc KB':>8s} |"
      f" {'minivae us':>10s} {'GB/s':>5s} | {'ReLU only us':>12s} {'GB/s':>5s} | {'alloc KB':>8s}")
for n, h, t, mem in fused_rows:
    for p, b_np, b_fu in (("fwd", 16, 8), ("bwd", 18, 12)):
        tn, tm, tr = (t[f"{p} {w}"] for w in WAYS)
        print(f"{(n, h)!s:>12s} {p:4s} {tn * 1e6:9.1f} {b_np * n * h / tn / 1e9:5.1f} "
              f"{mem[f'{p} NumPy'] / 1e3:8.0f} | {tm * 1e6:10.1f} {b_fu * n * h / tm / 1e9:5.1f} | "
              f"{tr * 1e6:12.1f} {b_fu * n * h / tr / 1e9:5.1f} | {mem[f'{p} minivae'] / 1e3:8.1f}")
print("us: median CPU microseconds per call;  GB/s: the traffic of the table above / time")

# %% [markdown]
# The fused kernels allocate no arrays where NumPy allocates two per call, and they make
# fewer passes. At batch 128 the arrays are a few hundred KB and stay in the L2 cache, so the
# saved traffic is cache traffic and the fixed cost of a call counts as much as the bytes; at
# 4096 x 784 every pass goes to main memory, and the number of passes is the time.
#
# **Read the two fused columns against each other.** They make the same passes and give the
# same results (checked above); only the loop body differs. The ReLU-only body is simple
# enough for LLVM to turn into SIMD instructions, 8 floats at a time. The generic body also
# holds the branches for tanh, sigmoid and softplus, with their calls to `exp` and `log1p`,
# chosen by `kind` element by element. Unless the compiler hoists that choice out of the loop,
# which it does only for small bodies, the loop stays scalar, one element at a time. Where the
# minivae column is several times slower than the ReLU-only one, that is the reason, and a
# generic kernel that tests `kind` *once*, then runs a loop written for that activation, keeps
# both the generality and the speed. Fusion saves passes over memory; it saves time only if
# the loop that does the one pass is itself fast. Measure the kernel against the NumPy it
# replaces, as here.
#
# ### What else a fused kernel needs to be fast
#
# LLVM runs a loop 8 float32 at a time (one AVX2 instruction) only if every iteration can go
# in lock-step with its neighbours: no way out of the loop halfway, no call to a function it
# cannot see into. Three such obstacles sat in minivae's kernels, each invisible in the
# source.
#
# **(a) Division and numba's error model.** By default (`error_model="python"`) numba makes
# a float division behave as Python's: before each `a / b` it tests `b == 0`, to raise
# `ZeroDivisionError`. That test is a possible exit from every iteration, and a loop that may
# stop halfway is not vectorized. With `error_model="numpy"` a division is just a division
# (`1 / 0` is `inf`, as in NumPy). Every minivae kernel is compiled with
# `@njit(cache=True, error_model="numpy")`. Adam's update is one loop over the parameters that
# divides by $\sqrt{\hat v} + \epsilon$: the error model alone decides whether it runs one
# parameter or eight at a time. A loop that only divides, compiled both ways, on as many numbers
# as the first layer has weights:

# %%
def divide(a, b, out):
    """out[i] = a[i] / b[i], one element at a time."""
    for i in range(a.shape[0]):
        out[i] = a[i] / b[i]
    return out


divide_python = njit(divide)                         # numba's default error model
divide_numpy = njit(error_model="numpy")(divide)     # minivae's

one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
try:
    divide_python(one, zero, np.empty(1, np.float32))
    raise AssertionError("expected ZeroDivisionError")
except ZeroDivisionError as exc:
    print(f"error_model='python': 1 / 0 raises ZeroDivisionError({exc});  error_model='numpy': "
          f"1 / 0 = {divide_numpy(one, zero, np.empty(1, np.float32))[0]}")

a_div = rng.standard_normal(313_600, dtype=np.float32)            # Adam's 313,600 weights of W1
b_div = rng.uniform(0.5, 2.0, a_div.size).astype(np.float32)
q_py, q_np = np.empty_like(a_div), np.empty_like(a_div)
divide_python(a_div, b_div, q_py), divide_numpy(a_div, b_div, q_np)
assert np.array_equal(q_py, q_np) and np.array_equal(q_np, a_div / b_div)   # the same bits
t, _ = bench({"error_model='python'": lambda: divide_python(a_div, b_div, q_py),
              "error_model='numpy'": lambda: divide_numpy(a_div, b_div, q_np),
              "NumPy a / b": lambda: np.divide(a_div, b_div, out=q_np)})
print(f"a / b on {a_div.size:,} float32, median CPU time:  "
      + ",  ".join(f"{k} {v * 1e6:.0f} us" for k, v in t.items()))

# %% [markdown]
# The numbers are identical bit for bit (an IEEE division is exactly rounded, 8 at a time or
# one at a time); only the loop's shape changed.
#
# **(b) Calls into the C maths library.** Inside a numba loop, `np.exp` and `np.log1p` on a
# float32 compile to calls of the C library's `expf` and `log1pf`, one number per call, some
# 10 ns each, and LLVM cannot vectorize around a call it cannot see into. (With Intel's SVML
# library installed, numba has vector versions of these calls; here
# `numba.config.USING_SVML` is printed below.) The Bernoulli loss needs both for every pixel:
# $\mathrm{softplus}(l) = \max(l, 0) + \log(1 + e^{-|l|})$. So minivae writes them as
# arithmetic, in `minivae/kernels/fastexp.py`:
#
# * $e^{t}$ for $-87 \le t \le 0$: $t = k \ln 2 + r$ with $k$ an integer and
#   $|r| \le \ln 2 / 2$, so $e^t = 2^k e^r$; $e^r$ is its Taylor series to $r^7$ (the next term
#   is a tenth of float32's spacing), and $2^k$ is *built from its bits*, $(k + 127) \ll 23$,
#   written to an int32 scratch array and read back as float32;
# * $\log(1 + e)$ for $0 \le e \le 1$: $s = e / (2 + e) \in [0, 1/3]$ and
#   $\log(1 + e) = 2\,\mathrm{atanh}(s) = 2(s + s^3/3 + \dots + s^{15}/15)$;
# * $\tanh(x)$, for a tanh layer: $(1 - e)/(1 + e)$ with $e = e^{-2|x|}$ from the same
#   exponential when $|x| \ge 0.4$ (there $1 - e \ge 0.55$: no cancellation), its Taylor
#   series $x - x^3/3 + 2x^5/15 - \dots$ to $x^{15}$ below, and the sign of $x$ put back.
#
# Only float32 takes the polynomials; float64, the dtype of gradient checks, still calls
# `np.exp` and `np.log1p` and gives NumPy's values to the last bit. First, how accurate are they? In
# float32 ulps (units of $2^{-23}$, the spacing of float32 numbers just above 1), against
# float64, with NumPy's own float32 `exp` beside them:

# %%
ULP = 2.0 ** -23
t_exp = np.linspace(-87.0, 87.0, 100_001 if FAST else 1_000_001, dtype=np.float32)
e32, l32 = np.empty_like(t_exp), np.empty_like(t_exp)
FE.exp_neg_abs(t_exp, e32, l32, np.empty(t_exp.shape, np.int32))          # minivae's float32
e64 = np.exp(-np.abs(t_exp.astype(np.float64)))                          # float64 reference
l64 = np.log1p(e64)
ulps = {"fastexp exp(-|a|)": np.max(np.abs(e32 / e64 - 1)) / ULP,
        "fastexp log1p(exp(-|a|))": np.max(np.abs(l32 / l64 - 1)) / ULP,
        "NumPy float32 exp(-|a|)": np.max(np.abs(np.exp(-np.abs(t_exp)) / e64 - 1)) / ULP}
print(f"max relative error over {t_exp.size:,} points in [-87, 87]:  "
      + ",  ".join(f"{k} {v:.2f} ulp" for k, v in ulps.items()))
assert ulps["fastexp exp(-|a|)"] < 3 and ulps["fastexp log1p(exp(-|a|))"] < 4

t_tanh = np.linspace(-12.0, 12.0, t_exp.size, dtype=np.float32)
th32 = np.empty_like(t_tanh)
FE.tanh_row(t_tanh, th32, np.empty(t_tanh.shape, np.float32), np.empty(t_tanh.shape, np.int32))
th64 = np.tanh(t_tanh.astype(np.float64))
spacing = np.spacing(np.abs(th64).astype(np.float32)).astype(np.float64)   # float32's, there
tanh_ulps = {"fastexp tanh": np.max(np.abs(th32 - th64) / spacing),
             "NumPy float32 tanh": np.max(np.abs(np.tanh(t_tanh) - th64) / spacing)}
print(f"tanh, max error over {t_tanh.size:,} points in [-12, 12], in float32 spacings there:  "
      + ",  ".join(f"{k} {v:.2f}" for k, v in tanh_ulps.items()))
assert tanh_ulps["fastexp tanh"] < 3

# %% [markdown]
# A few roundings, where a float32 loss summed over 784 pixels loses more than that to its
# own additions anyway. Now the speed. The Bernoulli kernel `minivae.kernels.losses
# .bernoulli_nll(logits, x, out, dlogits)` at the decoder's output shape, (128, 784), four ways:
# its NumPy twin (the specification, in float64); the kernel on float64 (`np.exp`, `np.log1p`);
# the same loop as minivae's kernel was before `fastexp`, with `np.exp` and `np.log1p`, on
# float32 (written here, same compiler flags); and minivae's kernel on float32 (`fastexp`). All
# four are checked against a float64 reference first.

# %%
@njit(error_model="numpy", fastmath={"reassoc", "contract"})   # minivae's kernel's flags
def bernoulli_nll_libm(logits, x, out, dlogits):
    """minivae's Bernoulli kernel before fastexp: np.exp and np.log1p in the loop."""
    zero, one = logits.dtype.type(0.0), logits.dtype.type(1.0)
    for n in range(logits.shape[0]):
        acc = 0.0
        for d in range(logits.shape[1]):
            lg, xd = logits[n, d], x[n, d]
            e = np.exp(-abs(lg))
            acc += np.float64(max(lg, zero) - xd * lg) + np.log1p(e)
            dlogits[n, d] = (one if lg >= zero else e) / (one + e) - xd
        out[n] = acc
    return out


print(f"numba.config.USING_SVML = {numba.config.USING_SVML}")
lg32 = (4 * rng.standard_normal((N, 784))).astype(np.float32)              # (128, 784) logits
x32 = (rng.random((N, 784)) < 0.2).astype(np.float32)                      # binary pixels
lg64, x64 = lg32.astype(np.float64), x32.astype(np.float64)
nll_ref, dl_ref = np.empty(N), np.empty((N, 784))
LK.bernoulli_nll_np(lg64, x64, nll_ref, dl_ref)                            # float64 reference
nll_ways, tolerance = {}, {}
for name, fn, lg, xx in [("NumPy twin, float64", LK.bernoulli_nll_np, lg64, x64),
                         ("kernel, float64 (libm)", LK.bernoulli_nll, lg64, x64),
                         ("loop, float32 (libm)", bernoulli_nll_libm, lg32, x32),
                         ("kernel, float32 (fastexp)", LK.bernoulli_nll, lg32, x32)]:
    out, dl = np.empty(N, lg.dtype), np.empty_like(lg)                   # (N,), (N, 784)
    fn(lg, xx, out, dl)                                  # check before believing the timings
    errs = rel_error(out, nll_ref), rel_error(dl, dl_ref)
    print(f"{name:26s} rel. errors: nll {errs[0]:.1e}, dlogits {errs[1]:.1e}")
    assert max(errs) < (1e-12 if lg.dtype == np.float64 else 1e-6), name
    nll_ways[name] = partial(fn, lg, xx, out, dl)
t, _ = bench(nll_ways)
print("median CPU time, (128, 784):  "
      + ",  ".join(f"{k} {v * 1e6:.0f} us" for k, v in t.items()))

# %% [markdown]
# Compare the last two: the same loop, the same dtype, the same flags; only `exp` and `log1p`
# differ. (The float64 kernel is slower for two reasons at once, scalar calls *and* half as
# many numbers per SIMD register, which is why it is not the fair comparison.) The
# polynomials cost more arithmetic than a call, but they run 8 lanes wide; the ratio of the
# last two columns says what that buys on this machine.
#
# **(c) Early exits.** A finiteness check that returns `False` at the first NaN stops halfway
# by design, so it runs one number at a time. minivae's `all_finite` (`minivae/kernels
# /checks.py`) uses an identity instead: $x \cdot 0$ is $0$ for every finite $x$ and NaN for
# NaN and $\pm\infty$, so the sum of $x \cdot 0$ is $0$ exactly when every entry is finite. Its
# only fast-math flag is `reassoc`, which lets the sum be added in 8 lanes (in any order, a sum
# of zeros is zero and a NaN stays a NaN). The model runs it on each batch it is handed, the
# losses on their per-example values and Adam on every gradient, so it is part of the "checks"
# bar of section 6 (the layers inside a model do not re-scan what the layer before them made):

# %%
@njit(error_model="numpy")
def all_finite_early_exit(x):
    """True if every entry is finite, stopping at the first that is not."""
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    return True


x_fin = rng.standard_normal(N * 784, dtype=np.float32)                    # a batch of images
finite_ways = {"early exit": all_finite_early_exit, "minivae all_finite": all_finite,
               "NumPy isfinite().all()": lambda v: bool(np.isfinite(v).all())}
for bad in (np.nan, np.inf, -np.inf, None):
    v = x_fin.copy()
    if bad is not None:
        v[rng.integers(v.size)] = bad
    assert {fn(v) for fn in finite_ways.values()} == {bad is None}, bad   # all three agree
t, _ = bench({k: partial(fn, x_fin) for k, fn in finite_ways.items()})
print(f"all finite? {x_fin.size:,} float32, median CPU time:  "
      + ",  ".join(f"{k} {v * 1e6:.1f} us" for k, v in t.items()))

# %% [markdown]
# None of the three changes touches a result: the division gives the same bits, the
# polynomials stay within a few roundings and only in float32, the check gives the same
# answer. What changed is whether the compiler could run the loop 8 numbers at a time. When a
# numba loop is slower than its arithmetic suggests, look for a division under the default
# error model, a maths-library call, or a branch that leaves the loop.
#
# ## 6. Where the time of a VAE training step goes
#
# minivae's VAE (`minivae.models.VAE`) at its classic sizes, 784 - 400 - 20 - 400 - 784
# (Bernoulli likelihood, Adam), on a batch of 128 MNIST images. `VAE.loss` runs the ELBO in the
# order it is written: encoder, the `Reparameterize` layer, decoder, `losses.bernoulli_nll`,
# `losses.gaussian_kl`; `VAE.backward` runs the same graph in reverse. The products are inside
# the layers, so to split a step's time we write the step out flat: the layers' parameters,
# the same operations in the library's order, with a stopwatch around each and without the
# library's checks. It mirrors the library in the details that matter for speed: the products
# are `x @ W`, `x.T @ da` and `da @ W.T`, as the layers write them; the first layer, built with
# `input_grad=False`, skips its $dx$; the sampler and the KL are the NumPy lines of
# `Reparameterize` and `gaussian_kl`; and the loss's gradient is scaled by $1/N$ as
# `VAE.backward` does, `dout / N`. First we check that it computes the library's loss and
# gradients (to float32 rounding; in fact exactly, since it runs the same operations).

# %%
class Stopwatch:
    """with sw("name"): ... adds the CPU seconds of the block to sw.t["name"]."""

    def __init__(self):
        self.t = {"matmul": 0.0, "elementwise": 0.0, "optimizer": 0.0}

    def __call__(self, name):
        self.name = name
        return self

    def __enter__(self):
        self.t0 = time.thread_time()

    def __exit__(self, *exc):
        self.t[self.name] += time.thread_time() - self.t0


def layer_forward(layer, x, sw):
    """Dense or Linear forward, as the library does it.   x (N, D) -> y (N, H)."""
    with sw("matmul"):
        a = x @ layer.params["W"]                            # (N, H), as the layer writes it
    with sw("elementwise"):
        if isinstance(layer, Dense):
            return A.bias_act_forward(a, layer.params["b"], layer.kind, layer.slope, a)
        a += layer.params["b"]                                         # Linear: no activation
        return a


def layer_backward(layer, x, y, dy, sw):
    """Dense or Linear backward: add into the layer's grads; dx (N, D), None for a data layer."""
    with sw("elementwise"):
        if isinstance(layer, Dense):
            dy = np.ascontiguousarray(dy)
            da = A.act_backward_bias(dy, y, layer.kind, layer.slope, np.empty_like(dy),
                                     layer.grads["b"])                 # (N, H)
        else:
            da = dy
            layer.grads["b"] += dy.sum(axis=0)                         # (H,)
    with sw("matmul"):
        dW = x.T @ da                                                  # (D, H)
    with sw("elementwise"):
        layer.grads["W"] += dW
    if not layer.input_grad:                                           # x is the data:
        return None                                                    # no dx (section 4)
    with sw("matmul"):
        return da @ layer.params["W"].T                                # (N, D)


def loss_and_grads_timed(vae, x, eps, sw):
    """vae.loss(x, eps) then vae.backward(), written out flat, each operation timed.

    The same operations in the same order as the library, without its checks.
    """
    n, Z = x.shape[0], vae.z_dim
    inputs, outputs, h = [], [], x
    for layer in vae.encoder.layers:
        inputs.append(h)
        h = layer_forward(layer, h, sw)
        outputs.append(h)
    with sw("elementwise"):                     # Reparameterize.forward, losses.gaussian_kl
        mu, logvar = h[:, :Z], h[:, Z:]                                # (N, Z) views of h
        if eps is None:
            eps = vae.reparam.rng.standard_normal(mu.shape, dtype=mu.dtype)         # (N, Z)
        std = np.exp(0.5 * logvar)                                     # (N, Z)
        h = mu + std * eps                                             # z (N, Z)
        var = np.exp(logvar)                                           # (N, Z)
        kl = 0.5 * (mu * mu + var - 1 - logvar).sum(axis=1, dtype=np.float64)   # (N,)
        kl, dmu_kl, dlogvar_kl = kl.astype(mu.dtype), mu.copy(), 0.5 * (var - 1)
    for layer in vae.decoder.layers:
        inputs.append(h)
        h = layer_forward(layer, h, sw)
        outputs.append(h)
    with sw("elementwise"):                                            # the likelihood's kernel
        recon, dout = np.empty(n, h.dtype), np.empty_like(h)           # (N,), (N, 784)
        LK.bernoulli_nll(h, x, recon, dout)
        w = vae.beta * vae.kl_weight
        loss = float((recon + w * kl).mean())
        dy = dout / n                                                  # the batch mean's 1/N
    layers, k = vae.encoder.layers + vae.decoder.layers, len(vae.encoder.layers)
    for i in reversed(range(k, len(layers))):                          # decoder, backwards
        dy = layer_backward(layers[i], inputs[i], outputs[i], dy, sw)
    with sw("elementwise"):                     # Reparameterize.backward, + straight from the KL
        dmu = dy.copy()                                                # dz/dmu = 1
        dlogvar = dy * 0.5 * std * eps                                 # dz/dlogvar = std eps / 2
        dmu += w / n * dmu_kl
        dlogvar += w / n * dlogvar_kl
        dy = np.concatenate([dmu, dlogvar], axis=1)                    # (N, 2Z)
    for i in reversed(range(k)):                                       # encoder, backwards
        dy = layer_backward(layers[i], inputs[i], outputs[i], dy, sw)
    assert dy is None                                                  # the data layer's dx
    return loss


x_batch = data.load("mnist", "test").x[:N]                             # (128, 784) in [0, 1]
vae = VAE(784, hidden=(400,), z_dim=20, rng=0)
eps = np.random.default_rng(1).standard_normal((N, 20), dtype=np.float32)
vae.zero_grad()
loss_lib = vae.loss(x_batch, eps)
vae.backward()
grads_lib = {k: g.copy() for k, g in vae.grads.items()}
vae.zero_grad()
loss_flat = loss_and_grads_timed(vae, x_batch, eps, Stopwatch())
err = max(rel_error(grads_lib[k], g) for k, g in vae.grads.items())
print(f"loss: library {loss_lib:.6f}, written out {loss_flat:.6f};  gradients: max rel. error "
      f"{err:.1e}")
print(f"bit for bit the same: loss {loss_lib == loss_flat}, gradients "
      f"{all(np.array_equal(grads_lib[k], g) for k, g in vae.grads.items())}")
assert abs(loss_lib - loss_flat) < 1e-6 * abs(loss_lib) and err < 1e-6   # same operations

# %% [markdown]
# Now time training steps, alternating the library's own step and the written-out one, and
# split the time five ways. The library's step is one batch of `minivae.train.fit`, the
# training loop every lesson and `minivae train` use; its loop body is the four lines
#
#     model.zero_grad()
#     loss = model.loss(xb)          # forward: the batch mean of the negative ELBO
#     model.backward()               # d loss / d params
#     optimizer.step(model.grads)    # params -= ...
#
# * **matmul**, **elementwise**: the stopwatches of the written-out step;
# * **optimizer**: zeroing the gradients and Adam's update of the 8 parameter arrays;
# * **Python**: the rest of the written-out step, the interpreter running the code between
#   the operations (slicing, dicts, calls, and the stopwatches themselves);
# * **checks**: what the library's step costs beyond the written-out one: the model's check of
#   the batch it is handed (shape, dtype, one vectorized `all_finite` pass, section 5 (c), and
#   the range $[0, 1]$), the losses' checks of their per-example values, the calls through the
#   model, `Sequential` and the layers, and `fit`'s own bookkeeping (the batch's gather and the
#   running sums of the loss terms).

# %%
opt = Adam(vae.params, lr=1e-3)


def library_step():
    """One step of minivae's training loop: fit on one batch of N examples."""
    fit(vae, x_batch, opt, epochs=1, batch_size=N, rng=0)


def written_out_step():
    sw = Stopwatch()
    t0 = time.thread_time()
    with sw("optimizer"):
        vae.zero_grad()
    loss_and_grads_timed(vae, x_batch, None, sw)
    grads = vae.grads
    with sw("optimizer"):
        opt.step(grads)
    return time.thread_time() - t0, sw.t


splits = []
library_step(), written_out_step()                     # warm up
for _ in range(STEPS):
    t0 = time.thread_time()
    library_step()
    t_lib = time.thread_time() - t0
    t_flat, parts = written_out_step()
    splits.append({**parts, "checks": t_lib - t_flat, "Python": t_flat - sum(parts.values()),
                   "library step": t_lib})
split = {k: float(np.median([s[k] for s in splits])) for k in splits[0]}
t_step = split.pop("library step")
for k, v in split.items():
    print(f"{k:12s} {v * 1e3:7.2f} ms  {v / t_step:6.1%}")
print(f"library step {t_step * 1e3:.2f} ms (median CPU time, one thread); the parts are medians "
      "too, so they need not add up exactly")
floor = step_flops / BLAS_RATE
print(f"the step's products alone, at BLAS's rate from section 4: {floor * 1e3:.2f} ms")

fig, ax = plt.subplots(figsize=(8, 3.8))
ax.bar(list(split), [max(v, 0) * 1e3 for v in split.values()], color=["C0", "C1", "C2", "C3", "C7"])
for i, v in enumerate(split.values()):
    ax.text(i, max(v, 0) * 1e3, f"{v / t_step:.0%}", ha="center", va="bottom")
ax.axhline(floor * 1e3, color="C0", ls="--", lw=1, label="the products at BLAS's rate (section 4)")
ax.set(ylabel="ms per step (median CPU time)",
       title=f"one VAE training step ({t_step * 1e3:.1f} ms): 784-400-20-400-784, batch 128, "
             "one thread")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **FLOPs of a step.** Each of the four layers does $2NDH$ FLOPs forward and twice that
# backward (for $dW$ and $dx$): $6NDH$. Put differently, each weight takes part in three
# products, once per example in each, a multiply and an add: 6 FLOPs per weight per example.
# Except in the first layer: its $dx$ would be the gradient with respect to the images, which
# nothing needs, so minivae builds that layer with `input_grad=False` (`mlp(...,
# input_grad=False)` in `minivae/models/vae.py`), its backward returns `None`, and the step
# does $6NDH$ per layer less $2 \cdot 128 \cdot 784 \cdot 400$: 11 products. The elementwise
# work, the loss and Adam add $O(N(D + H))$ and $O(\#\text{params})$ operations, a few per
# cent.

# %%
n_params = sum(p.size for p in vae.params.values())
skipped = 2 * N * LAYERS[0][0] * LAYERS[0][1]                         # the first layer's dx
print(f"FLOPs per step: the 11 products = {step_flops / 1e6:.0f} MFLOP;  6 N x parameters "
      f"- 2 N D H of the first layer = 6 x {N} x {n_params:,} - {skipped / 1e6:.0f}M = "
      f"{(6 * N * n_params - skipped) / 1e6:.0f} MFLOP")
step_rate = step_flops / t_step
print(f"the library's step: {t_step * 1e3:.2f} ms -> {step_rate / 1e9:.1f} GFLOP/s, that is "
      f"{step_rate / BLAS_RATE:.0%} of BLAS's rate on these 11 products "
      f"({BLAS_RATE / 1e9:.1f} GFLOP/s) and {step_rate / TOP_RATE:.0%} of its rate on a square "
      f"{BIG} product ({TOP_RATE / 1e9:.1f} GFLOP/s)")
assert abs(6 * N * n_params - skipped - step_flops) < 0.01 * step_flops   # the biases: 0.3 %

# %% [markdown]
# Read the bars against the dashed line. The matmul bar should sit near it: the same products,
# timed inside the step instead of alone. The fraction printed above is the step's
# efficiency: 100 % would mean the step costs no more than its products. Everything above the
# line is the rest of the step: elementwise kernels, Adam's pass over 650,000 parameters and
# its two state arrays, the checks, the interpreter. That is where a faster step comes
# from, biggest bar first; on one thread, no change to the rest can make the step faster than
# the dashed line, and the line itself belongs to BLAS. Python overhead, the usual suspect, is
# the bar to look at last at batch 128: a few hundred operations per step at a microsecond each.
# With a batch of 16 the picture changes: the products shrink 8-fold and fixed costs do not.
#
# **A fused path around a layer?** The elementwise bar holds one piece that has no kernel in
# minivae: the sampler and the KL, a handful of NumPy passes over $(128, 20)$ arrays in
# `Reparameterize` and `losses.gaussian_kl`. `benchmarks/fused_reparam.py` does both in one
# numba kernel each way, reading $[\mu \mid \log\sigma^2]$ straight from the encoder's output
# and writing $\partial L / \partial [\mu \mid \log\sigma^2]$ into one array. minivae's
# `VAE.loss` once took that path, around its own layer and loss. Here is what it saves: the
# layer and the loss as `VAE.loss` and `VAE.backward` run them, against the fused pair, checked
# equal first, then timed side by side.

# %%
h_enc = vae.encoder.forward(x_batch)                                   # (N, 2Z) = [mu | logvar]
mu_e, logvar_e = h_enc[:, :20], h_enc[:, 20:]                          # (N, Z) views
dz_e = rng.standard_normal((N, 20), dtype=np.float32)                  # an upstream gradient
w_e = vae.beta / N                                                     # the KL's weight / N


def sampler_and_kl_library():
    """z, the KL and d/d[mu | logvar], through the model's own layer and loss."""
    z = vae.reparam.forward(mu_e, logvar_e, eps)                       # (N, Z)
    kl, (dmu_kl, dlogvar_kl) = losses.gaussian_kl(mu_e, logvar_e)     # (N,), (N, Z) x2
    dmu, dlogvar = vae.reparam.backward(dz_e)                          # through z
    dmu += w_e * dmu_kl                                                # + straight from the KL
    dlogvar += w_e * dlogvar_kl
    return z, kl, np.concatenate([dmu, dlogvar], axis=1)              # (N, Z), (N,), (N, 2Z)


z_f, std_f, kl_f, dh_f = (np.empty_like(eps), np.empty_like(eps), np.empty(N, np.float32),
                          np.empty_like(h_enc))


def sampler_and_kl_fused():
    """The same three, from the two fused kernels, into preallocated arrays."""
    KR.reparam_kl_forward(h_enc, eps, z_f, std_f, kl_f)
    KR.reparam_kl_backward(dz_e, eps, std_f, h_enc, w_e, dh_f)
    return z_f, kl_f, dh_f


errs = [rel_error(a, b) for a, b in zip(sampler_and_kl_library(), sampler_and_kl_fused())]
print("z, KL, d/d[mu | logvar]: rel. errors " + ", ".join(f"{e:.1e}" for e in errs))
assert max(errs) < 1e-5                                                 # float32 rounding
t_rk, _ = bench({"layer + loss": sampler_and_kl_library, "fused": sampler_and_kl_fused})
saved = t_rk["layer + loss"] - t_rk["fused"]
print(f"layer + loss {t_rk['layer + loss'] * 1e6:.0f} us, fused {t_rk['fused'] * 1e6:.0f} us: "
      f"the fused path saves {saved * 1e6:.0f} us, {saved / t_step:.1%} of a library step")
assert saved < 0.05 * t_step                   # small change against a step of milliseconds

# %% [markdown]
# A few tens of microseconds of a step of milliseconds, for a second implementation of the
# sampler and the KL that a reader would have to check against the first, and a `VAE.loss`
# that no longer reads as the ELBO. So minivae keeps the layer and the loss, and the fused
# pair lives in `benchmarks/`, where the flat step of section 7 uses it, with a test
# (`tests/test_benchmark_kernels.py`) that holds it equal to them. The kernels minivae does
# keep are the ones that pay, each inside the piece whose formula it implements: the bias and
# activation inside `Dense`, the loss and its gradient inside `losses.bernoulli_nll`, the
# update inside `Adam.step`, each beside a NumPy twin that is its specification.
#
# ## 7. Against PyTorch
#
# A lesson on one shared machine can split a step into parts; it cannot say how minivae
# compares with a framework. That is the job of `benchmarks/vae_speed.py`, which trains the
# same VAE (784-400-20-400-784, ReLU, Bernoulli, Adam 1e-3, batch 128, float32, real MNIST)
# in minivae and, if it is installed, in PyTorch written the usual way
# (`benchmarks/torch_vae.py`; PyTorch is never a minivae dependency). How it measures:
#
# * **a fresh process per turn.** Every measurement is a child process that prints one line of
#   JSON. Each library keeps its own pool of threads, and a pool that has just worked keeps
#   spinning for a while and takes the cores from the next library: interleaved in one
#   process, they would slow each other down. Each library runs at its own default (minivae:
#   its thread policy, section 8; PyTorch: one thread a core), or at a fixed count: a
#   contender `minivae@1` or `torch@2`, or `--threads K` for all, sets the threads of
#   OpenBLAS, OpenMP, MKL, numba and `torch.set_num_threads` before anything loads.
# * **alternation.** The contenders take turns, A B C then a fresh random order each round, so
#   that a busy minute on a shared machine hits all of them alike (section 1).
# * **medians.** Each contender's time is the median over rounds (min and max printed beside
#   it), and the verdict is a **ratio**, minivae's epoch over PyTorch's, measured side by side.
# * **what else it reports**: minivae with `NUMBA_DISABLE_JIT=1` (pure-Python loops, a few
#   steps extrapolated to an epoch); NumPy's sgemm at exactly the 11 products of a step, whose
#   rate gives each contender's GFLOP/s as a percentage of it, as in section 6; peak memory;
#   the first steps' numba compile (or cache load) time; and with `--iwae`, the IWAE bound
#   with k = 5000 on the 10,000 test images, both libraries decoding the same number of rows
#   per pass (`VAE.iwae_bound`'s default `max_floats=2**21`, 8 MB of float32, a pass that
#   stays in the cache).
# * **minivae's loop.** The contender `minivae` is `minivae.train.fit` itself, one epoch, with
#   a callback that times each batch: what a user's training run pays, bookkeeping included.
# * **a ceiling.** The contender `flat` (`benchmarks/flat_step.py`) is section 6's step written
#   out once more, for speed this time: every buffer allocated once, each product written
#   straight into its buffer, the sampler fused with the KL (the kernels measured above), no
#   checks, no `zero_grad`. Its share of the sgemm rate is the most any step of this model
#   reaches on the machine; minivae's distance from it is what the checks, the temporaries and
#   the readable layers cost. Both also measure their share in turn with the
#   products inside their own process, the steadiest figure on a shared machine.
#
# From the repository's root, with the data where `minivae` finds it:
#
#     python benchmarks/vae_speed.py                        # training, 3 rounds (~3 min)
#     python benchmarks/vae_speed.py --iwae                 # and IWAE k=5000 (~4 min each)
#     python benchmarks/vae_speed.py --iwae --json speed.json   # also keep every sample
#
# The README's Speed section gives the figures of a full run and the command that made them,
# with the machine and its load. They are that machine's figures, not this lesson's: this
# lesson runs no PyTorch. If you saved a run with `--json`, point `MINIVAE_SPEED_JSON` at the
# file and the next cell prints its summary.

# %%
speed_json = os.environ.get("MINIVAE_SPEED_JSON")
if speed_json and os.path.exists(speed_json):
    with open(speed_json) as f:
        speed = json.load(f)
    meta = speed["meta"]
    print(f"{speed_json}: measured by benchmarks/vae_speed.py, not by this lesson\n"
          f"  cpu {meta['cpu']}, {meta['threads']} threads; numpy {meta['numpy']}, numba "
          f"{meta['numba']}, torch {meta['torch'] or 'not installed'}; load average "
          f"{meta['load_start'][0]:.2f} at start, {meta['load_end'][0]:.2f} at end")
    for name, row in speed["summary"].items():
        if name == "targets":
            continue
        print(f"  {name:14s} " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                             if isinstance(v, (int, float))))
    for target, verdict in speed["summary"].get("targets", {}).items():
        print(f"  {target:18s} {verdict}")
else:
    print("no speed file: run `python benchmarks/vae_speed.py --iwae --json speed.json` from the "
          "repository's root, then set MINIVAE_SPEED_JSON=speed.json (or see the README's "
          "Speed section)")

# %% [markdown]
# ## 8. Threads on a machine that is doing something else
#
# Section 1 timed one product on 1 thread and on 2 and warned that 2 can be slower. On a
# student's laptop, which is never idle, that warning decides everything: on this project's
# 2-core machine, beside one other busy process, a training epoch of the classic MNIST VAE took
# 5.8 s on 2 BLAS threads and 2.6 s on 1, and PyTorch's took 22 s on its default 2 threads
# (the tables below). Three ideas explain it.
#
# **A spinning thread pool.** OpenBLAS starts its worker threads once. For a product large
# enough to share, the calling thread hands each worker a block of the result, computes its own
# block, and waits until every block is done. Between products a worker does not go to sleep
# at once: it *spins*, testing in a loop whether new work has come, for a while (about a tenth
# of a second) before it sleeps, because waking a sleeping thread goes through the operating
# system and takes longer than many of the products it would wait for. On an idle machine that
# is a good bet: a step's 11 products come a fraction of a millisecond apart, and the worker is
# ready for each one.
#
# **Oversubscription.** When more threads want to run than there are cores, the operating
# system's scheduler gives each a turn of a few milliseconds. A product of 0.4 ms shared
# between two threads finishes when the slower share does; if the worker's core is taken by
# another process, the whole product waits for the worker's next turn: milliseconds, for a
# product of a fraction of one. Spinning makes it worse: a thread that spins while it waits
# looks busy to the scheduler, and takes turns from the neighbour and from our own main thread.
#
# **Why one thread can beat two.** With one thread there is nothing to wait for: the product
# takes its 0.7 ms whatever the other core does. With two, it takes 0.4 ms when the other core
# is free and up to a scheduler turn when it is not. The cell below times the 11 products of a
# step one after another, as a step makes them, on 1 and 2 threads, on the machine as it is and
# beside one busy process that the lesson starts and stops itself (`benchmarks/load.py`: a loop
# on one core, with a time limit of its own, so that nothing outlives the cell). It sets the
# threads with `minivae.run.threads.Threads(k)`, which sets BLAS's threads inside its block
# only and puts them back after.

# %%
from benchmarks.load import busy                 # N busy processes, stopped when the block ends
from minivae.run.threads import Threads

ROWS = 10 if FAST else 200                       # times the 11 products are run in a row
step_calls = []                                  # (op(a), op(b), out) of each product of a step
for label, ta, tb, sa, sb in products(N):
    a, b = rng.standard_normal(sa, dtype=np.float32), rng.standard_normal(sb, dtype=np.float32)
    op_a, op_b = (a.T if ta else a), (b.T if tb else b)
    step_calls.append((op_a, op_b, np.empty((op_a.shape[0], op_b.shape[1]), np.float32)))


def products_in_a_row(k, rows=ROWS):
    """Mean wall-clock seconds of the 11 products one after another, on k BLAS threads."""
    with Threads(k):
        t0 = time.perf_counter()
        for _ in range(rows):
            for op_a, op_b, out in step_calls:
                np.matmul(op_a, op_b, out=out)
        return (time.perf_counter() - t0) / rows


row_ms = {}
for n_busy in (0, 1):
    with busy(n_busy, seconds=300):
        for k in (1, 2, 2, 1):                   # interleaved, so a busy moment hits both
            row_ms.setdefault((n_busy, k), []).append(products_in_a_row(k) * 1e3)
print(f"load average {os.getloadavg()[0]:.1f}; the 11 products of a step, ms (mean of {ROWS}):")
for (n_busy, k), ms in row_ms.items():
    print(f"  {n_busy} busy process(es), {k} BLAS thread(s): {np.mean(ms):7.2f} ms")

# %% [markdown]
# On this project's machine (an Intel Xeon with 2 cores, OpenBLAS 0.3.31) the same products,
# measured by `python benchmarks/vae_speed.py --load 1` as `sgemm@1` and `sgemm@2`, gave:
#
# | the 11 products of a step, ms | idle | beside 1 busy process |
# |---|---|---|
# | 1 BLAS thread | 3.77 | 3.82 |
# | 2 BLAS threads | 2.46 | 7.78 (4.80–11.26) |
#
# (medians of 3 rounds, min–max where they spread; 2026-12-03, load average 0.4 at the start).
# Idle, two threads do the products in 0.65 of one's time; beside one busy process, in twice
# one's time, and no two rounds alike.
#
# **What minivae does.** It does not leave the count to chance. `minivae train` and anything
# run inside `with Threads("auto")` choose before each epoch: a probe times a product of the
# VAE's first layer, $(128, 784) \times (784, 400)$, and its gradient partner, in short blocks
# on 1 thread and on all of them, alternately, a few milliseconds in all; the epoch runs on
# all threads only if they took at most 0.8 of one thread's time, else on one. One thread is
# the safe side: when two threads lose, they lose by far more than they ever win. A model whose
# products are all too small for OpenBLAS to split (at most $2^{18}$ multiply-adds) gets one
# thread without a probe. `--threads N` (or `Threads(N)`) fixes the count instead. "All" is
# the count BLAS has when the block begins: the cores, or less if `OPENBLAS_NUM_THREADS` (or an
# outer `threadpoolctl` limit) says so. Section 1 set it to `THREADS` for this lesson, so the
# cell gives BLAS back every core first. The probe's choice, on the machine as it is and
# beside one busy process:

# %%
from threadpoolctl import threadpool_limits

with threadpool_limits(all_cores, user_api="blas"):      # every core, for this cell only
    for n_busy in (0, 1):
        with busy(n_busy, seconds=60), Threads("auto") as policy:
            print(f"{n_busy} busy process(es): {policy.count} of {policy.n} thread(s), "
                  f"{policy.why}")

# %% [markdown]
# And whole epochs, `python benchmarks/vae_speed.py --load 1 --rounds 3` on the same machine
# (each library at its own default and at a fixed count; PyTorch's default is one thread a
# core):
#
# | seconds per MNIST epoch (469 steps) | idle | beside 1 busy process | busy / idle |
# |---|---|---|---|
# | minivae, its default (auto) | 1.99 (2 threads) | 2.56 (1 thread) | 1.28 |
# | minivae, 1 thread | 2.62 | 2.56 | 0.98 |
# | minivae, 2 threads | 1.97 | 5.83 (5.13–6.11) | 2.96 |
# | PyTorch, its default (2 threads) | 2.21 | 22.1 (7.4–54.4) | 10.0 |
# | PyTorch, 1 thread | 3.43 | 3.45 | 1.00 |
#
# The probe costs nothing measurable idle (1.99 s against 1.97 s for a fixed 2), and beside a
# busy process it gives up the 2-thread speed-up but keeps the epoch within 1.3 times its idle
# time, where a fixed 2 threads took 3 times and PyTorch's default 10 times (one of its epochs
# took 54 s). Idle, PyTorch's BLAS does a step's products faster than NumPy's OpenBLAS on this
# Intel machine, so minivae's epoch is 0.90 of PyTorch's, not less.
#
# **The thread count can change the result, in the last bits.** With two threads OpenBLAS may
# split the work into other blocks and add the 784 terms of an output of the first layer's
# product in another order; on this project's machine the float32 results differ (the cell
# prints whether they do on yours):

# %%
x_bits = rng.random((N, 784), dtype=np.float32)
W_bits = rng.standard_normal((784, 400), dtype=np.float32)
with Threads(1):
    y_one = x_bits @ W_bits
with Threads(2):
    y_two = x_bits @ W_bits
print(f"(128, 784) @ (784, 400) on 1 and on 2 threads: bit-identical "
      f"{np.array_equal(y_one, y_two)}, largest difference {np.abs(y_one - y_two).max():.1e}")

# %% [markdown]
# A run that stops and resumes must end with the same bits as one that never stopped, so
# minivae records each epoch's count (`threads` in `metrics.jsonl`, and in a mid-epoch
# checkpoint the count its epoch began with), and a resumed epoch runs with its recorded count
# instead of probing again. What is guaranteed: a resumed run is bit-identical to an
# uninterrupted one whose epochs ran with the same counts; with `--threads N` always.
#
# numba has a thread pool of its own, for kernels compiled with `parallel=True`. None of
# minivae's kernels is (a test holds it so): on two cores numba's pool and BLAS's would fight
# for the same cores, and a parallel Adam made a whole step slower here, not faster.

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. Write the fused backward of the sigmoid.** For $y = \mathrm{sigmoid}(a)$,
# $\mathrm{sigmoid}'(a) = y(1 - y)$, so the backward of a `Dense` layer with sigmoid activation
# needs $da = dy \odot y \odot (1 - y)$ and $db = \sum_n da_n$. Write it as one `@njit` kernel,
# `sigmoid_backward_bias(dy, y, out, db)`, that reads each element once and adds into `db`
# (like `act_backward_bias`), and check it against the NumPy twin
# `minivae.kernels.activations.act_backward_bias_np` with `kind = A.SIGMOID`, in float64, to
# 1e-12. Then time it against the twin and against minivae's generic kernel (no assert: read
# the ratios, and recall section 5).

# %% tags=["exercise"]
@njit
def sigmoid_backward_bias(dy, y, out, db):
    """out = dy * y * (1 - y);  db[h] += sum_n out[n, h].   dy, y, out (N, H); db (H,)."""
    out[:] = 0.0                                 # your code: one pass over the elements
    return out

# %% tags=["solution"]
# Solution.
@njit
def sigmoid_backward_bias(dy, y, out, db):
    """out = dy * y * (1 - y);  db[h] += sum_n out[n, h].   dy, y, out (N, H); db (H,)."""
    for n in range(dy.shape[0]):
        for h in range(dy.shape[1]):
            g = dy[n, h] * y[n, h] * (1.0 - y[n, h])
            out[n, h] = g
            db[h] += g
    return out


# %%
r = np.random.default_rng(7)
dy_e = r.standard_normal((N, 400))                                    # float64
y_e = 1 / (1 + np.exp(-r.standard_normal((N, 400))))                  # sigmoid outputs
db_mine, db_twin = np.zeros(400), np.zeros(400)
da_mine = sigmoid_backward_bias(dy_e, y_e, np.empty_like(dy_e), db_mine)
da_twin = A.act_backward_bias_np(dy_e, y_e, A.SIGMOID, 0.0, np.empty_like(dy_e), db_twin)
errors = (rel_error(da_mine, da_twin), rel_error(db_mine, db_twin))
print(f"rel. errors da {errors[0]:.1e}, db {errors[1]:.1e}")
assert max(errors) < 1e-12
buf, db_buf = np.empty_like(dy_e), np.zeros(400)
t, _ = bench({"yours": lambda: sigmoid_backward_bias(dy_e, y_e, buf, db_buf),
              "minivae": lambda: A.act_backward_bias(dy_e, y_e, A.SIGMOID, 0.0, buf, db_buf),
              "NumPy twin": lambda: A.act_backward_bias_np(dy_e, y_e, A.SIGMOID, 0.0, buf, db_buf)})
print("median CPU time, float64 (128, 400):  "
      + ",  ".join(f"{k} {v * 1e6:.1f} us" for k, v in t.items()))

# %% [markdown]
# **Exercise 2. Count a step's FLOPs from the shapes.** Section 6 counted the FLOPs of a
# training step by adding up the 11 timed products. Count them from the shapes instead:
# write `step_flop_count(n, layers)` for a batch of `n` and dense layers `layers` (a list of
# `(D, H)`), at $2NDH$ FLOPs per product, three products per layer, less the first layer's
# $dx$. Then check section 6's claim that the skipped product is 16 % of a full step's FLOPs.

# %% tags=["exercise"]
def step_flop_count(n, layers):
    """FLOPs of the matrix products of one training step.   layers: [(D, H), ...]."""
    return None                                  # your code


skipped_share = None                             # your code: the first layer's dx / 12 products

# %% tags=["solution"]
# Solution. Forward x W, backward x^T da and da W^T: three products of 2 N D H FLOPs each per
# layer, 6 N D H, less 2 N D H for the first layer's dx.
def step_flop_count(n, layers):
    """FLOPs of the matrix products of one training step.   layers: [(D, H), ...]."""
    d0, h0 = layers[0]
    return sum(6 * n * d * h for d, h in layers) - 2 * n * d0 * h0


skipped_share = 2 * N * LAYERS[0][0] * LAYERS[0][1] / sum(6 * N * d * h for d, h in LAYERS)

# %%
print(f"from the shapes: {step_flop_count(N, LAYERS) / 1e6:.1f} MFLOP; from the timed products "
      f"{step_flops / 1e6:.1f} MFLOP; the skipped dx is {skipped_share:.1%} of a full step")
assert step_flop_count(N, LAYERS) == step_flops
assert step_flop_count(64, [(10, 5)]) == 4 * 64 * 10 * 5
assert 0.155 < skipped_share < 0.165                                 # "16 %" in section 6

# %% [markdown]
# ## Summary
#
# * Time honestly: print the thread settings; check results before timing; interleave the
#   competitors and keep medians. On a shared machine trust ratios measured side by side and
#   the CPU time of single-threaded runs, not absolute wall-clock times, and don't assume
#   that more threads help.
# * Pure Python costs of the order of a hundred nanoseconds per multiply-add, thousands of
#   times BLAS's rate. Array-at-a-time NumPy takes the interpreter out of the inner loop but
#   still makes a pass over memory per step of the outer one.
# * Matrix products reuse each number many times; BLAS's blocking, packing, SIMD and
#   per-processor tuning turn that reuse into FLOPs. A plain blocked numba kernel gets within
#   a small factor, and the table says how small at each shape; so minivae's layers write
#   `x @ W`, as the formula does, and the numba kernel stays in `benchmarks/` as the
#   experiment.
# * Elementwise work is memory traffic: fuse it into one pass without temporaries, and keep
#   the fused loop simple enough for the compiler to run 8 floats at a time: compile with
#   `error_model="numpy"` (else every division tests for zero), keep calls to the C maths
#   library out of the loop (minivae's `fastexp` writes exp and log1p as float32 polynomials,
#   within a few roundings; float64 keeps `np.exp` exactly), and avoid early exits
#   (`all_finite` sums $x \cdot 0$ instead).
# * A VAE step is 6 FLOPs per weight per example, less the first layer's $dx$, which the
#   data does not need (`input_grad=False`), almost all of them in BLAS; their time at BLAS's
#   rate is the step's floor. Everything above the floor (elementwise kernels, the optimizer,
#   checks, Python) is where a faster step comes from: measure it, bar by bar. A fused kernel
#   belongs inside the layer or loss whose formula it implements; a fused path *around* them
#   (the sampler with the KL) saved well under a per cent of a step here.
# * Against another library, measure whole runs side by side: a fresh process per turn,
#   alternating turns, medians and a ratio; `python benchmarks/vae_speed.py [--iwae]`, whose
#   figures are in the README's Speed section.
# * Threads are not free. A BLAS pool's workers spin between products; when another process
#   holds a core, a product split in two waits a scheduler turn for its second half, and one
#   thread beats two many times over. minivae chooses its BLAS threads before each epoch by a
#   short probe (`minivae.run.threads`, `--threads`), for its own work only, and records the
#   choice so that a resumed run ends bit-identical; `benchmarks/vae_speed.py --load 1`
#   measures it idle and loaded side by side.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Goto & van de Geijn 2008 (how BLAS reaches its
# rate); Lam, Pitrou & Seibert 2015 (numba); Williams, Waterman & Patterson 2009 (the roofline
# model).
