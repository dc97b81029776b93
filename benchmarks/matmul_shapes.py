"""GFLOP/s of NumPy's BLAS, minivae's numba kernel and (if installed) PyTorch at the VAE's shapes.

The classic MNIST VAE, 784-400-20-400-784, batch N=128, does these products each step:

    forward   y = x @ W         (N, D) @ (D, H)      for (D, H) = (784, 400), (400, 40),
                                                                  (20, 400), (400, 784)
    backward  dW = x.T @ dy     (D, N) @ (N, H)      the same four layers
              dx = dy @ W.T     (N, H) @ (H, D)      every layer but the first (x is the data)

For each shape the backends are timed in turn, A B C A B C ..., each repetition in a new
order, and the median time of each is reported: slow moments of a shared machine hit all
of them alike. The threads are set to 2 (override with --threads) before NumPy is imported.

    python benchmarks/matmul_shapes.py                  # the table
    python benchmarks/matmul_shapes.py --emit-table     # also the NUMBA_FASTER set for
                                                        # minivae/kernels/matmul.py
"""

import argparse
import ctypes
import glob
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every backend")
    p.add_argument("--batch", type=int, nargs="+", default=[128], help="batch sizes N")
    p.add_argument("--dtype", choices=["float32", "float64"], nargs="+", default=["float32"])
    p.add_argument("--reps", type=int, default=60, help="timed calls per backend and shape")
    p.add_argument("--blocked", action="store_true",
                   help="time A A A .. B B B .. instead of interleaving (isolates thread pools)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--only", default="numpy,numba,torch",
                   help="comma-separated backends to time (one per process: no pools compete)")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="min: the best call, an estimate of an unloaded machine's speed")
    p.add_argument("--margin", type=float, default=1.10,
                   help="--emit-table lists a shape when numba is this many times faster")
    p.add_argument("--emit-table", action="store_true")
    return p.parse_args()


ARGS = parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, str(ARGS.threads))       # before numpy, numba, torch load

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minivae.kernels import matmul as mm

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]   # (D, H) of each dense layer


def vae_shapes(n):
    """(label, trans_a, trans_b, a shape, b shape): the products of one training step."""
    shapes = []
    for d, h in LAYERS:
        shapes.append((f"fwd  x@W      {d:>3}->{h:<3}", False, False, (n, d), (d, h)))
    for d, h in LAYERS:
        shapes.append((f"bwd  x.T@dy   {d:>3}->{h:<3}", True, False, (n, d), (n, h)))
    for d, h in LAYERS[1:]:
        shapes.append((f"bwd  dy@W.T   {d:>3}->{h:<3}", False, True, (n, h), (d, h)))
    return shapes


def openblas_info():
    """OpenBLAS's own idea of its config and threads, read through ctypes (None if not found)."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "")):
            try:
                get_config = getattr(lib, f"{prefix}get_config{suffix}")
                get_threads = getattr(lib, f"{prefix}get_num_threads{suffix}")
            except AttributeError:
                continue
            get_config.restype = ctypes.c_char_p
            return get_config().decode(), get_threads()
    return None


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(ARGS.threads)
    return torch


def report_threads(torch):
    print("threads")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        print(f"  {var:22s} {os.environ.get(var)}")
    info = openblas_info()
    print(f"  numpy {np.__version__} BLAS: " +
          (f"{info[0]}, {info[1]} threads" if info else "not OpenBLAS (see np.show_config())"))
    print(f"  numba {numba.__version__}: {numba.get_num_threads()} threads, "
          f"layer {numba.threading_layer()}")
    if torch is not None:
        print(f"  torch {torch.__version__}: {torch.get_num_threads()} threads, "
              f"BLAS {'MKL' if torch.backends.mkl.is_available() else 'not MKL'}")
    else:
        print("  torch: not installed (pip install torch to compare against it)")
    print(f"  cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} "
          "(above ~0.5 another process shares the cores: numbers are noisy)")


def backends(torch, ta, tb, a, b, out):
    """name -> a no-argument function computing out = op(a) @ op(b) in place."""
    fns = {
        "numpy": lambda: mm.matmul(a, b, out, ta, tb, backend="numpy"),
        "numba": lambda: mm.matmul(a, b, out, ta, tb, backend="numba"),
    }
    fns = {name: fn for name, fn in fns.items() if name in ARGS.only.split(",")}
    if torch is not None and "torch" in ARGS.only.split(","):
        at, bt, ot = (torch.from_numpy(v) for v in (a, b, out))   # share memory, no copy
        at, bt = (at.T if ta else at), (bt.T if tb else bt)
        fns["torch"] = lambda: torch.mm(at, bt, out=ot)
    return fns


def time_backends(fns, reps, blocked, rng):
    """Median (or --stat min) seconds per call of each function."""
    names = list(fns)
    times = {name: [] for name in names}
    for name in names:                                  # warm up: compile, spin up threads
        for _ in range(3):
            fns[name]()
    if blocked:
        order = [name for name in names for _ in range(reps)]
    else:
        order = [name for _ in range(reps) for name in rng.permutation(names)]
    for name in order:
        t0 = time.perf_counter()
        fns[name]()
        times[name].append(time.perf_counter() - t0)
    stat = np.median if ARGS.stat == "median" else np.min
    return {name: float(stat(t)) for name, t in times.items()}


def main():
    torch = None if ARGS.no_torch or "torch" not in ARGS.only else load_torch()
    report_threads(torch)
    rng = np.random.default_rng(0)
    faster = []
    for dtype in ARGS.dtype:
        for n in ARGS.batch:
            rows = []
            for label, ta, tb, a_shape, b_shape in vae_shapes(n):
                a = rng.standard_normal(a_shape).astype(dtype)
                b = rng.standard_normal(b_shape).astype(dtype)
                m, k = a_shape[::-1] if ta else a_shape
                n_cols = b_shape[0] if tb else b_shape[1]
                out = np.empty((m, n_cols), dtype)
                secs = time_backends(backends(torch, ta, tb, a, b, out), ARGS.reps,
                                     ARGS.blocked, rng)
                flops = 2.0 * m * k * n_cols
                rows.append((label, (m, k, n_cols), flops, secs))
                if {"numpy", "numba"} <= set(secs) and secs["numba"] * ARGS.margin < secs["numpy"]:
                    faster.append((dtype, ta, tb, m, k, n_cols))
            print_table(dtype, n, rows)
    if ARGS.emit_table:
        print("\nNUMBA_FASTER = frozenset({")
        for key in faster:
            print(f"    {key!r},")
        print("})")


def print_table(dtype, n, rows):
    names = list(rows[0][3])
    print(f"\n{dtype}, N={n}, {'blocked' if ARGS.blocked else 'interleaved'}, "
          f"{ARGS.stat} of {ARGS.reps}: GFLOP/s (microseconds)")
    both = {"numpy", "numba"} <= set(names)
    print(f"{'product':28s} {'M x K x N':>15s} " + " ".join(f"{x:>15s}" for x in names)
          + ("  numpy/numba time" if both else ""))
    total = {name: 0.0 for name in names}
    best = 0.0
    for label, (m, k, n_cols), flops, secs in rows:
        cells = " ".join(f"{flops / secs[x] / 1e9:7.1f} ({secs[x] * 1e6:5.0f})" for x in names)
        ratio = f"  {secs['numpy'] / secs['numba']:16.2f}" if both else ""
        print(f"{label:28s} {f'{m}x{k}x{n_cols}':>15s} {cells}{ratio}")
        for x in names:
            total[x] += secs[x]
        if both:
            best += min(secs["numpy"], secs["numba"])
    flops = sum(r[2] for r in rows)
    cells = " ".join(f"{flops / total[x] / 1e9:7.1f} ({total[x] * 1e6:5.0f})" for x in names)
    print(f"{'one training step':28s} {f'{flops / 1e6:.0f} MFLOP':>15s} {cells}")
    if both:
        print(f"{'  best of numpy/numba':28s} {'':>15s} {flops / best / 1e9:7.1f} "
              f"({best * 1e6:5.0f})")


if __name__ == "__main__":
    main()
