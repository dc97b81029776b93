"""GFLOP/s of NumPy's BLAS, a blocked numba matmul and (if installed) PyTorch at the VAE's shapes.

The experiment behind minivae's layers writing ``x @ W`` (BLAS): the numba kernel is
``benchmarks/numba_matmul.py``, timed here against BLAS at every product of a VAE step.
The classic MNIST VAE, 784-400-20-400-784, batch N=128, does these products each step:

    forward   y = x @ W         (N, D) @ (D, H)      for (D, H) = (784, 400), (400, 40),
                                                                  (20, 400), (400, 784)
    backward  dW = x.T @ dy     (D, N) @ (N, H)      the same four layers
              dx = dy @ W.T     (N, H) @ (H, D)      every layer but the first (x is the data)

How it times.  The backends take turns, A B C A B C ..., for --rounds rounds, each round in
a new order, and the median over all rounds is reported: slow moments of a shared machine
hit all of them alike. Each turn is a fresh process that times every shape back to back
(--reps calls after warm-up), because each backend has its own pool of threads, and a pool
that has just worked keeps its threads spinning, stealing both cores from the next one.
Measured on this 2-core machine, idle: one 128x784x400 sgemm alternating call by call with
a numba parallel loop took 4.6 ms instead of 0.58 ms, and the loop 3.4 ms instead of 5 us.
``--mode calls`` times that way, A B A B call by call in one process, to show it.

The threads are set to 2 (--threads) before NumPy is imported; the report starts with the
threading setup and the load: a 2-thread call waits for both cores, so on a busy machine
the numbers mean little.

    python benchmarks/matmul_shapes.py                  # the table, and the shapes (if any)
                                                        # where numba beat BLAS by --margin
"""

import argparse
import ctypes
import glob
import json
import os
import subprocess
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every backend")
    p.add_argument("--batch", type=int, nargs="+", default=[128], help="batch sizes N")
    p.add_argument("--dtype", choices=["float32", "float64"], nargs="+", default=["float32"])
    p.add_argument("--only", default="numpy,numba,torch", help="comma-separated backends")
    p.add_argument("--rounds", type=int, default=5, help="turns of each backend")
    p.add_argument("--reps", type=int, default=30, help="timed calls per shape and turn")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="min: the best call, an estimate of an unloaded machine's speed")
    p.add_argument("--mode", choices=["processes", "calls"], default="processes",
                   help="calls: alternate backends call by call in one process (pools fight)")
    p.add_argument("--margin", type=float, default=1.10,
                   help="list a shape as numba's when numba is this many times faster")
    p.add_argument("--worker", help=argparse.SUPPRESS)          # internal: one backend's turn
    return p.parse_args()


ARGS = parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, str(ARGS.threads))       # before numpy, numba, torch load

import numba
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchmarks import numba_matmul as mm

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


def operands(dtype, n):
    """[(label, key, flops, ta, tb, a, b, out)] for every product at batch n."""
    rng = np.random.default_rng(0)
    ops = []
    for label, ta, tb, a_shape, b_shape in vae_shapes(n):
        a = rng.standard_normal(a_shape).astype(dtype)
        b = rng.standard_normal(b_shape).astype(dtype)
        m, k = a_shape[::-1] if ta else a_shape
        cols = b_shape[0] if tb else b_shape[1]
        key = (dtype, ta, tb, m, k, cols)
        ops.append((label, key, 2.0 * m * k * cols, ta, tb, a, b, np.empty((m, cols), dtype)))
    return ops


def call(torch, name, ta, tb, a, b, out):
    """A no-argument function computing out = op(a) @ op(b) in place with one backend."""
    if name == "torch":
        at, bt, ot = (torch.from_numpy(v) for v in (a, b, out))   # share memory, no copy
        at, bt = (at.T if ta else at), (bt.T if tb else bt)
        return lambda: torch.mm(at, bt, out=ot)
    kernel, twin = mm.OPS[mm.op_name(ta, tb)]         # a, b in the layout the op takes
    fn = kernel if name == "numba" else twin
    return lambda: fn(a, b, out)


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(ARGS.threads)
    return torch


def time_calls(fns, reps, rng):
    """{name: [seconds per call]}: warm up each, then reps calls, back to back or in turns."""
    for fn in fns.values():
        for _ in range(3):                              # compile, spin up threads
            fn()
    names = list(fns)
    times = {name: [] for name in names}
    if ARGS.mode == "calls":
        order = [name for _ in range(reps) for name in rng.permutation(names)]
    else:
        order = [name for name in names for _ in range(reps)]
    for name in order:
        t0 = time.perf_counter()
        fns[name]()
        times[name].append(time.perf_counter() - t0)
    return times


def worker(name):
    """One backend's turn: print {key: [seconds, ...]} for every shape as JSON."""
    torch = load_torch() if name == "torch" else None
    rng = np.random.default_rng(0)
    result = {}
    for dtype in ARGS.dtype:
        for n in ARGS.batch:
            for label, key, flops, ta, tb, a, b, out in operands(dtype, n):
                fn = call(torch, name, ta, tb, a, b, out)
                result[repr(key)] = time_calls({name: fn}, ARGS.reps, rng)[name]
    print(json.dumps(result))


def measure(names, torch):
    """{name: {key: [seconds, ...]}} over all rounds."""
    rng = np.random.default_rng(1)
    samples = {name: {} for name in names}
    if ARGS.mode == "calls":                            # everything in this process
        for dtype in ARGS.dtype:
            for n in ARGS.batch:
                for label, key, flops, ta, tb, a, b, out in operands(dtype, n):
                    fns = {x: call(torch, x, ta, tb, a, b, out) for x in names}
                    for x, t in time_calls(fns, ARGS.reps * ARGS.rounds, rng).items():
                        samples[x][repr(key)] = t
        return samples
    argv = [sys.executable, os.path.abspath(__file__), "--threads", str(ARGS.threads),
            "--reps", str(ARGS.reps), "--batch", *map(str, ARGS.batch), "--dtype", *ARGS.dtype]
    for _ in range(ARGS.rounds):
        for name in rng.permutation(names):
            out = subprocess.run(argv + ["--worker", name], capture_output=True, text=True,
                                 check=True).stdout
            for key, t in json.loads(out.splitlines()[-1]).items():
                samples[name].setdefault(key, []).extend(t)
    return samples


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


def report_threads(torch):
    print("threads")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY"):
        print(f"  {var:22s} {os.environ.get(var, '(unset)')}")
    info = openblas_info()
    print(f"  numpy {np.__version__} BLAS: " +
          (f"{info[0]}, {info[1]} threads" if info else "not OpenBLAS (see np.show_config())"))
    print(f"  numba {numba.__version__}: {numba.get_num_threads()} threads, "
          f"layer {numba.config.THREADING_LAYER}")
    if torch is not None:
        mkl = torch.backends.mkl.is_available()
        print(f"  torch {torch.__version__}: {torch.get_num_threads()} threads, "
              f"BLAS {'MKL' if mkl else 'not MKL'}")
    elif "torch" in ARGS.only:
        print("  torch: not installed, left out (pip install torch==2.13.0, the CPU build, to compare against it; never a minivae dependency)")
    print(f"  cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} "
          "(above ~0.3 another process is using the cores: the numbers are noisy)")


def print_table(dtype, n, names, samples):
    stat = np.median if ARGS.stat == "median" else np.min
    both = {"numpy", "numba"} <= set(names)
    how = ("one process per turn" if ARGS.mode == "processes"
           else "call by call in one process")
    print(f"\n{dtype}, N={n}, {ARGS.rounds} rounds x {ARGS.reps} calls, {how}, "
          f"{ARGS.stat}: GFLOP/s (microseconds)")
    print(f"{'product':28s} {'M x K x N':>15s} " + " ".join(f"{x:>15s}" for x in names)
          + ("  numpy/numba time" if both else ""))
    total = {x: 0.0 for x in names}
    best = all_flops = 0.0
    faster = []
    for label, key, flops, *_ in operands(dtype, n):
        secs = {x: float(stat(samples[x][repr(key)])) for x in names}
        m, k, cols = key[3:]
        cells = " ".join(f"{flops / secs[x] / 1e9:7.1f} ({secs[x] * 1e6:5.0f})" for x in names)
        ratio = f"  {secs['numpy'] / secs['numba']:16.2f}" if both else ""
        print(f"{label:28s} {f'{m}x{k}x{cols}':>15s} {cells}{ratio}")
        for x in names:
            total[x] += secs[x]
        all_flops += flops
        if both:
            best += min(secs["numpy"], secs["numba"])
            if secs["numba"] * ARGS.margin < secs["numpy"]:
                faster.append(key)
    cells = " ".join(f"{all_flops / total[x] / 1e9:7.1f} ({total[x] * 1e6:5.0f})" for x in names)
    print(f"{'one training step':28s} {f'{all_flops / 1e6:.0f} MFLOP':>15s} {cells}")
    if both:
        print(f"{'  best of numpy/numba':28s} {'':>15s} {all_flops / best / 1e9:7.1f} "
              f"({best * 1e6:5.0f})")
    return faster


def main():
    if ARGS.worker:
        return worker(ARGS.worker)
    torch = load_torch() if "torch" in ARGS.only else None
    names = [x for x in ("numpy", "numba", "torch") if x in ARGS.only.split(",")
             and (x != "torch" or torch is not None)]
    report_threads(torch)
    samples = measure(names, torch)
    faster = []
    for dtype in ARGS.dtype:
        for n in ARGS.batch:
            faster += print_table(dtype, n, names, samples)
    if {"numpy", "numba"} <= set(names):
        print(f"\nshapes where numba beat BLAS by {ARGS.margin:.2f}x or more: "
              + (", ".join(map(repr, faster)) if faster else "none"))


if __name__ == "__main__":
    main()
