"""Speed of the classic MNIST VAE: minivae against PyTorch and against NumPy's own sgemm.

The model: 784-400-20-400-784 ReLU, Bernoulli likelihood, Adam lr 1e-3, batches of 128 in a
seeded random order, float32, the real MNIST training set (60000 = 468 x 128 + 96 rows, so an
epoch is 469 steps). Contenders:

    minivae        minivae's training loop, minivae.train.fit, each batch timed by a callback
                   (the gather, the step and fit's bookkeeping): the first 5 steps timed apart
                   (numba compile or cache load; compile_s is their time less 5 median
                   steps), then a whole epoch (or --steps steps, extrapolated)
    torch          benchmarks/torch_vae.py, the same model the usual PyTorch way, timed alike
    flat           benchmarks/flat_step.py: the same step with no layers, checks or temporaries
                   (preallocated buffers, products straight into them, the fused kernels and
                   Adam), timed alike: the most of the sgemm rate this step reaches here
    minivae-cold   once, after the rounds: minivae's first 5 steps with an empty numba cache
                   (NUMBA_CACHE_DIR), so every kernel compiles: the one-time compile cost
    minivae-nojit  minivae with NUMBA_DISABLE_JIT=1: 1 warm-up step, then --nojit-steps steps,
                   extrapolated to an epoch (pure-Python loops: an epoch would take hours)
    sgemm          np.matmul(a, b, out=out) at exactly the 11 products of one training step,
                   median of --sgemm-reps calls each: the matmul rate this machine can reach;
                   and the 11 one after another as a step makes them, --sgemm-reps times
    minivae-iwae   with --iwae: model.iwae_bound(x_test, k) on a fresh model, which decodes
    torch-iwae     about 2**21 // 784 rows per pass; torch_vae.iwae_logpx with the chunk of
                   examples that gives its decoder as many rows per pass. Both are warmed up
                   on 2 images first; full size (k=5000, 10000 images) is ~4 min each

How it times.  Every measurement is a fresh child process of this script (--child JOB) that
prints one JSON line: each library keeps its own pool of threads, and a pool that has just
worked keeps spinning and steals the cores from the next one, so libraries interleaved inside
one process slow each other down (benchmarks/matmul_shapes.py --mode calls shows by how much).
Threads: by default every library runs at its own default, as a user gets it: minivae with its
policy (minivae/run/threads.py: auto, 1 or all BLAS threads chosen before each epoch),
PyTorch with its own (one thread a core). A contender named NAME@K (minivae@1, torch@2,
sgemm@2), or --threads K for all, runs at K: OMP, OPENBLAS, MKL and NUMBA_NUM_THREADS are set
to K in the child before NumPy, numba or PyTorch load, minivae trains with threads=K and
PyTorch with torch.set_num_threads(K). minivae's epoch is the wall time of its whole
``with Threads(...): fit(...)``, the probe included. The contenders take turns,
A B C A B C ..., each round in a new random order, so that a slow moment of a shared machine
hits all of them alike, and the report gives the median over rounds (min and max beside it).
The FLOP counts are those of the matrix products only (2 M K N each); a contender's GFLOP/s
is that count divided by its time, so its percentage of the sgemm rate says how close the
whole step, elementwise work and Python included, comes to spending its time in sgemm.
minivae and flat also measure that share in turn with the sgemm products inside their own
process (8 blocks of 25 steps, then 25 calls of the 11 products one after another, as a step
makes them): neither starts a second pool of threads, so nothing fights, and a slow moment of
the machine hits the step and its reference alike.

A loaded machine (--load N): each round runs the contenders twice, once on the idle machine and
once beside N busy processes (benchmarks/load.py: a Python loop on a core, or with
--load-kind blas NumPy products on their own BLAS threads; started before the block and
stopped after it, each with a time limit of its own), the two blocks in a random order;
the report puts idle and loaded side by side, for minivae and PyTorch at their defaults and at
each fixed thread count, and the epoch time of the 11 products in a row (sgemm@K).

PyTorch is optional, never a minivae dependency: without it its columns are left out.

    export MINIVAE_DATA_MIRROR=/work/shared/data            # MNIST without the network
    python benchmarks/vae_speed.py                          # training, 3 rounds (~3 min)
    python benchmarks/vae_speed.py --iwae                   # and IWAE k=5000 on 10000 images
    python benchmarks/vae_speed.py --steps 50 --rounds 1 --iwae --iwae-n 50 --iwae-k 100
                                                            # a smoke run (extrapolated)
    python benchmarks/vae_speed.py --only minivae,torch --json speed.json
    python benchmarks/vae_speed.py --load 1 --rounds 3    # idle and beside 1 busy process
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from statistics import mean, median

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
B, N_TRAIN, STEPS = 128, 60000, 469          # batch, MNIST training rows, steps per epoch
FIRST = 5                                    # steps timed apart at the start of a run
BREAKDOWN = 200                              # steps split into products / Adam / rest
IN_TURN_BLOCKS, IN_TURN_STEPS = 8, 25        # steps and sgemm in turn, in one process
LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]   # (D, H): encoder 2, decoder 2
DECODE_ROWS = 2 ** 21 // 784                 # rows iwae_bound decodes per pass (max_floats)
TRAIN = ("minivae", "flat", "torch", "minivae-nojit", "sgemm")
IWAE = ("minivae-iwae", "torch-iwae")
CORES = os.cpu_count() or 1


def split_job(job):
    """'minivae@2' -> ('minivae', 2); 'torch' -> ('torch', None): the library's own default
    (or --threads)."""
    name, _, k = job.partition("@")
    return name, int(k) if k else ARGS.threads


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, help="threads for every library (default: each "
                   "library's own: minivae's auto, PyTorch's one a core)")
    p.add_argument("--rounds", type=int, default=3, help="turns of each training contender")
    p.add_argument("--steps", type=int, help="time only this many steps, not a whole epoch")
    p.add_argument("--cap", type=float, help="stop a contender's timed epoch after this many "
                   "seconds of steps and extrapolate to 469 steps (a loaded machine)")
    p.add_argument("--nojit-steps", type=int, default=10, help="steps timed with JIT off")
    p.add_argument("--sgemm-reps", type=int, default=50, help="timed calls per product")
    p.add_argument("--iwae", action="store_true", help="also time the IWAE evaluation")
    p.add_argument("--iwae-k", type=int, default=5000, help="importance samples")
    p.add_argument("--iwae-n", type=int, default=10000, help="MNIST test images (10000: all)")
    p.add_argument("--iwae-rounds", type=int, default=1, help="turns of each IWAE contender")
    p.add_argument("--only", help="comma-separated contenders, e.g. minivae,torch@1,sgemm@2")
    p.add_argument("--load", type=int, help="also time each contender beside this many busy "
                   "processes, idle and loaded side by side")
    p.add_argument("--load-kind", choices=("spin", "blas"), default="spin",
                   help="spin: a Python loop; blas: NumPy products on their own BLAS threads")
    p.add_argument("--load-nice", type=int, default=0, help="niceness of the busy processes")
    p.add_argument("--load-seconds", type=float, default=1800.0,
                   help="time limit of each busy process (a loaded block must end before)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write every sample and the summary here")
    p.add_argument("--child", help=argparse.SUPPRESS)            # internal: one measurement
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, ROOT)                                         # minivae, benchmarks.load


def products(n):
    """(M, K, N, trans_a, trans_b) of the 11 matrix products of one training step at batch n."""
    out = [(n, d, h, False, False) for d, h in LAYERS]          # forward   x @ W
    out += [(d, n, h, True, False) for d, h in LAYERS]          # backward  dW = x.T @ dy
    out += [(n, h, d, False, True) for d, h in LAYERS[1:]]      # backward  dx = dy @ W.T
    return out


def step_flops(n):
    return sum(2.0 * m * k * c for m, k, c, _, _ in products(n))


EPOCH_FLOPS = (N_TRAIN // B) * step_flops(B) + step_flops(N_TRAIN % B)   # 468 x 128 + 96 rows


def iwae_flops(n, k):
    """Encoder once per image, decoder once per sample: n x 784 -> 40, n k x 20 -> 784."""
    enc = sum(2.0 * d * h for d, h in LAYERS[:2])
    dec = sum(2.0 * d * h for d, h in LAYERS[2:])
    return n * enc + n * k * dec


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # KiB on Linux


# ---- children: one measurement each, one JSON line out ----

def child_info():
    import numba
    import numpy as np
    from threadpoolctl import threadpool_info
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    info = {"numpy": np.__version__, "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(), "torch": None,
            "blas": ", ".join(f"{lib['internal_api']} {lib['version']}" for lib in blas),
            "blas_threads": max([lib["num_threads"] for lib in blas] or [1])}
    try:
        import torch
    except ImportError:
        return info
    if ARGS.threads:
        torch.set_num_threads(ARGS.threads)
    return {**info, "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def child_train(job):
    import numpy as np

    from minivae.data import load
    job, threads = split_job(job)
    x = load("mnist").x                                          # (60000, 784) float32
    order = np.random.default_rng(ARGS.seed).permutation(len(x))
    walls, chosen = [], []                                       # minivae: with Threads, fit
    if job == "torch":
        from benchmarks import torch_vae
        torch = torch_vae._torch(threads)
        model = torch_vae.make_model(ARGS.seed, threads)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt = torch.from_numpy(x)

        def run(rows):
            chosen.append(torch.get_num_threads())
            times = []
            for start in range(0, len(rows), 10 * B):            # 10 steps at a time (--cap)
                times += torch_vae.train_steps(model, opt, xt, rows[start:start + 10 * B], B,
                                               threads)
                if ARGS.cap and sum(times) > ARGS.cap:
                    break
            return times
    elif job == "flat":
        from benchmarks.flat_step import FlatStep
        from minivae.models.vae import VAE
        from minivae.optim import Adam
        model = VAE(784, (400,), 20, rng=ARGS.seed)              # float32, bernoulli, relu
        opt = Adam(model.params, lr=1e-3)
        flat = FlatStep(model, opt, B)

        def run(rows):
            times = []
            for start in range(0, len(rows), B):
                t0 = time.perf_counter()
                xb = x[rows[start:start + B]]                    # (B, 784) gather, one step
                (flat if len(xb) == B else FlatStep(model, opt, len(xb)))(xb)   # last 96 rows
                times.append(time.perf_counter() - t0)
            return times
    else:                                                        # minivae, -nojit, -cold
        from minivae.models.vae import VAE
        from minivae.optim import Adam
        from minivae.run.threads import Threads
        from minivae.train import fit

        def fresh():
            model = VAE(784, (400,), 20, rng=ARGS.seed)          # float32, bernoulli, relu
            return model, Adam(model.params, lr=1e-3)
        model, opt = fresh()

        def run(rows, between=None, model=model, optimizer=opt):
            """minivae.train.fit, one epoch over x[rows] (x itself for a whole epoch: fit
            shuffles it), with minivae's thread policy, each batch timed by a callback."""
            timer, policy = StepTimer(between, ARGS.cap), Threads(threads or "auto")
            t0 = time.perf_counter()
            with policy:
                fit(model, x if len(rows) == len(x) else x[rows], optimizer, epochs=1,
                    batch_size=B, rng=ARGS.seed, callbacks=[timer, policy])
            walls.append(time.perf_counter() - t0)
            chosen.append(policy.chosen[0])
            return timer.times
    nojit = job == "minivae-nojit"
    first = run(order[:(1 if nojit else FIRST) * B])             # compile / cache load / warm-up
    if job == "minivae-cold":                                    # an empty numba cache: compile
        return {"first_steps_s": sum(first), "peak_rss_mib": peak_rss_mib()}
    steps = min(ARGS.nojit_steps if nojit else ARGS.steps or STEPS, STEPS)
    times = run(order[:steps * B])                               # a whole epoch when steps = 469
    steps, step_s = len(times), median(times)                    # fewer after --cap; a steady step
    spent = walls[-1] if walls else sum(times)                   # minivae: its probe included
    result = {"epoch_s": spent if steps == STEPS else spent / steps * STEPS,
              "timed_steps": steps, "step_s": step_s, "first_steps_s": sum(first),
              "compile_s": None if nojit else sum(first) - len(first) * step_s,
              "peak_rss_mib": peak_rss_mib(), "threads": chosen[-1] if chosen else threads}
    if ARGS.load is not None:                                    # idle against loaded only
        return result
    if job in ("minivae", "flat"):                               # after the clock
        result["in_turn"] = in_turn(run, order, chosen[-1] if chosen else None)
    if job == "minivae":                                         # where a step goes
        result["split"] = split_step(*fresh(), run, order[:BREAKDOWN * B])
    return result


class StepTimer:
    """A fit callback: the seconds of each batch, from the end of the one before (the first
    from the start of the epoch): the gather, the step and fit's bookkeeping, as fit runs them.
    ``between()``, if given, runs after a batch's clock stops and before the next one starts;
    after ``cap`` seconds of batches, fit stops."""

    def __init__(self, between=None, cap=None):
        self.times, self.between, self.cap = [], between, cap

    def epoch_begin(self, p):
        self.t0 = time.perf_counter()

    def batch_end(self, p):
        self.times.append(time.perf_counter() - self.t0)
        if self.cap and sum(self.times) > self.cap:             # --cap: extrapolate the rest
            p.stop = True
        if self.between is not None:
            self.between()
        self.t0 = time.perf_counter()


def in_turn(run, order, threads=None):
    """Steps and the sgemm reference taken in turn inside this process, in blocks of
    IN_TURN_STEPS, so that both see the same moment of the machine: median seconds of a step
    and of the 11 products called one after another as a step calls them (with ``threads``
    BLAS threads, the count minivae's steps used; None: BLAS's own)."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    calls = product_operands(np.random.default_rng(0))
    steps, sgemm = [], []
    for block in range(IN_TURN_BLOCKS):
        steps += run(order[block * IN_TURN_STEPS * B:(block + 1) * IN_TURN_STEPS * B])
        with threadpool_limits(threads, user_api="blas"):
            for _ in range(IN_TURN_STEPS):
                t0 = time.perf_counter()
                for a, b, out in calls:
                    np.matmul(a, b, out=out)
                sgemm.append(time.perf_counter() - t0)
    return {"step_s": median(steps), "sgemm_s": median(sgemm)}


def split_step(model, opt, run, rows):
    """Mean seconds per step of fit over ``rows``, in Adam, in the matrix products, and in the
    rest, for a fresh ``model`` and ``opt``. Adam is timed inside the step (fit gets a wrapper
    around opt.step). The products cannot be: the layers write ``x @ W``, which no stopwatch
    can wrap without editing them, so after each step (off its clock) the same 11 products
    are timed as the layers write them (``a @ b``, a new array each, on operands of the
    step's shapes and layouts).

    Fresh, so that its steps are like the timed epoch's. Later in training, Adam's first
    moments for the weights of ReLU units that have died (whose gradient is exactly 0 from
    then on) shrink by b1 = 0.9 a step into float32 subnormals, some 700 steps in here, and on
    CPUs that take a slow path for subnormals Adam's pass then takes several times longer."""
    import numpy as np
    calls = product_operands(np.random.default_rng(0))
    spent = {"products": 0.0, "optimizer": 0.0}

    class TimedAdam:
        def step(self, grads):
            t0 = time.perf_counter()
            opt.step(grads)
            spent["optimizer"] += time.perf_counter() - t0

    def products():
        t0 = time.perf_counter()
        for a, b, _ in calls:
            a @ b                                               # (M, N), a new array
        spent["products"] += time.perf_counter() - t0
    times = run(rows, between=products, model=model, optimizer=TimedAdam())
    n = len(times)
    out = {"step": sum(times) / n, **{k: v / n for k, v in spent.items()}}
    out["rest"] = out["step"] - out["products"] - out["optimizer"]
    return out


def product_operands(rng):
    """(a, b, out) of each product of a step at batch B: random float32, with the transposed
    views backward passes to np.matmul."""
    import numpy as np
    calls = []
    for m, k, c, ta, tb in products(B):
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((c, k) if tb else (k, c), dtype=np.float32)
        calls.append((a.T if ta else a, b.T if tb else b, np.empty((m, c), np.float32)))
    return calls


def child_sgemm():
    import numpy as np
    step_s, calls = 0.0, product_operands(np.random.default_rng(0))
    rows = []                                                    # the 11 in a row, as a step
    for _ in range(ARGS.sgemm_reps):
        t0 = time.perf_counter()
        for a, b, out in calls:
            np.matmul(a, b, out=out)
        rows.append(time.perf_counter() - t0)
    for a, b, out in calls:
        for _ in range(5):                                       # warm up the BLAS threads
            np.matmul(a, b, out=out)
        times = []
        for _ in range(ARGS.sgemm_reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        step_s += median(times)
    return {"step_s": step_s, "step_flops": step_flops(B),
            "gflops": step_flops(B) / step_s / 1e9, "peak_rss_mib": peak_rss_mib(),
            "row_s": median(rows), "row_mean_s": mean(rows), "threads": split_job(ARGS.child)[1],
            "epoch_s": mean(rows) * (EPOCH_FLOPS / step_flops(B))}


def child_iwae(job):
    from minivae.data import load
    job, threads = split_job(job)
    x = load("mnist", "test").x[:ARGS.iwae_n]                   # (n, 784) float32
    if job == "torch-iwae":
        from benchmarks import torch_vae
        model = torch_vae.make_model(ARGS.seed, threads).eval()

        def run(xs, k):
            chunk = max(1, DECODE_ROWS // k)                     # examples per decoder pass
            return torch_vae.iwae_logpx(model, xs, k, chunk, seed=0, threads=threads)
    else:
        from minivae.models.vae import VAE
        from minivae.run.threads import Threads
        model = VAE(784, (400,), 20, rng=ARGS.seed)

        def run(xs, k):
            with Threads(threads or "auto"):
                return model.iwae_bound(xs, k, rng=0)
    t0 = time.perf_counter()
    run(x[:2], 2)                                                # compile / cache load
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    logpx = run(x, ARGS.iwae_k)                                  # (n,)
    return {"seconds": time.perf_counter() - t0, "warmup_s": warm, "n": len(x),
            "mean_logpx": float(logpx.mean()), "peak_rss_mib": peak_rss_mib()}


def child(job):
    name = job.partition("@")[0]
    if name == "info":
        return child_info()
    if name == "sgemm":
        return child_sgemm()
    return child_iwae(job) if name in IWAE else child_train(job)


# ---- the parent: take turns, then report ----

def run_child(job):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}   # libraries' defaults
    threads = split_job(job)[1]
    if threads:
        env.update({var: str(threads) for var in THREAD_VARS})  # before numpy, numba, torch
    env.pop("NUMBA_DISABLE_JIT", None)
    if job == "minivae-nojit":
        env["NUMBA_DISABLE_JIT"] = "1"
    argv = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--child", job]
    with tempfile.TemporaryDirectory() as cache:
        if job == "minivae-cold":
            env["NUMBA_CACHE_DIR"] = cache                       # nothing cached: all compiles
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit(f"the {job} child failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.splitlines()[-1])


def alternate(names, rounds, rng):
    """{name: [result of each turn]}: rounds of turns, each round in a fresh random order."""
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in rng.sample(names, len(names)):
            res = run_child(name)
            samples[name].append(res)
            key = next(k for k in ("epoch_s", "seconds", "step_s") if k in res)
            print(f"  round {r + 1}/{rounds}  {name:14s} {key} {res[key]:.4g}", flush=True)
    return samples


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def spread(values):
    """'median (min-max)' of a contender's seconds over its rounds."""
    return f"{median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def train_table(samples):
    """Print the training table; {contender: medians} with the sgemm rate under "sgemm"."""
    s = {}
    if "sgemm" in samples:
        step_s = median(r["step_s"] for r in samples["sgemm"])
        s["sgemm"] = {"step_s": step_s, "gflops": step_flops(B) / step_s / 1e9}
    rate = s.get("sgemm", {}).get("gflops")
    print(f"\ntraining, median of {ARGS.rounds} round(s) (min-max); an epoch is {STEPS} steps, "
          f"{EPOCH_FLOPS / 1e9:.1f} GFLOP of matmuls (468 x {step_flops(B) / 1e6:.1f} "
          f"+ {step_flops(N_TRAIN % B) / 1e6:.1f} MFLOP)")
    print(f"{'contender':14s} {'epoch s (min-max)':>24s} {'ms/step':>8s} {'first 5 s':>9s} "
          f"{'compile s':>9s} {'GFLOP/s':>8s} {'% sgemm':>8s} {'peak MiB':>9s}")
    for name in (x for x in TRAIN if x in samples and x != "sgemm"):
        rs = samples[name]
        epoch = median(r["epoch_s"] for r in rs)
        comp = [r["compile_s"] for r in rs if r["compile_s"] is not None]
        gf = EPOCH_FLOPS / epoch / 1e9
        s[name] = {"epoch_s": epoch, "gflops": gf, "pct_sgemm": rate and 100 * gf / rate,
                   "step_s": median(r["step_s"] for r in rs),
                   "first_steps_s": median(r["first_steps_s"] for r in rs),
                   "compile_s": median(comp) if comp else None,
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                   "timed_steps": rs[0]["timed_steps"]}
        x = s[name]
        print(f"{name:14s} {spread([r['epoch_s'] for r in rs]):>24s} {x['step_s'] * 1e3:8.2f} "
              + (f"{x['first_steps_s']:9.3f} {x['compile_s']:9.3f} " if comp else 20 * " ")
              + f"{gf:8.2f} " + (f"{x['pct_sgemm']:7.1f}%" if rate else 8 * " ")
              + f" {x['peak_rss_mib']:9.0f}" + ("" if x["timed_steps"] == STEPS else
                                                 f"  extrapolated from {x['timed_steps']} steps"))
    if rate:
        print(f"{'sgemm':14s} the 11 products of one step, {step_flops(B) / 1e6:.1f} MFLOP in "
              f"{s['sgemm']['step_s'] * 1e3:.2f} ms (medians of {ARGS.sgemm_reps} calls): "
              f"{rate:.2f} GFLOP/s")
    if any((x.get("pct_sgemm") or 0) > 100 for x in s.values()):
        print("  (above 100% of sgemm: the sgemm turn was slowed down; see the load average)")
    turns = [x for x in ("minivae", "flat") if x in s and "in_turn" in samples[x][0]]
    if turns:
        print(f"in turn inside one process ({IN_TURN_BLOCKS} blocks of {IN_TURN_STEPS} steps, "
              f"each followed by {IN_TURN_STEPS} calls of the 11 products; medians over rounds):")
    for name in turns:
        step_s, sg_s = (median(r["in_turn"][k] for r in samples[name]) for k in
                        ("step_s", "sgemm_s"))
        s[name]["in_turn"] = {"step_s": step_s, "sgemm_s": sg_s, "pct_sgemm": 100 * sg_s / step_s}
        print(f"  {name:12s} step {step_s * 1e3:.2f} ms, the products {sg_s * 1e3:.2f} ms: "
              f"{100 * sg_s / step_s:.1f}% of sgemm")
    if "minivae" in samples and "split" in samples["minivae"][0]:
        sp = {k: median(r["split"][k] for r in samples["minivae"]) for k in
              ("step", "products", "optimizer", "rest")}
        s["minivae"]["split"] = sp
        alone = f" (the same products timed alone: {s['sgemm']['step_s'] * 1e3:.2f} ms)" \
            if rate else ""
        print(f"minivae's step split ({BREAKDOWN} steps of fit on a fresh model, medians over "
              "rounds): "
              f"{sp['step'] * 1e3:.2f} ms = matrix products {sp['products'] * 1e3:.2f} (timed "
              f"between steps, as the layers write them){alone} + Adam "
              f"{sp['optimizer'] * 1e3:.2f} + the rest {sp['rest'] * 1e3:.2f}")
    if {"minivae", "torch"} <= set(s):
        print(f"epoch minivae/torch {s['minivae']['epoch_s'] / s['torch']['epoch_s']:.3f}")
    if {"minivae", "minivae-nojit"} <= set(s):
        print(f"epoch minivae-nojit/minivae "
              f"{s['minivae-nojit']['epoch_s'] / s['minivae']['epoch_s']:.1f}")
    return s


def iwae_table(samples):
    """Print the IWAE table; {contender: medians}."""
    n, k = next(iter(samples.values()))[0]["n"], ARGS.iwae_k
    flops = iwae_flops(n, k)
    print(f"\nIWAE k={k} on {n} test images, {flops / 1e9:.1f} GFLOP of matmuls, median of "
          f"{ARGS.iwae_rounds} round(s); decoder passes of up to {DECODE_ROWS} rows (torch: "
          f"chunks of {max(1, DECODE_ROWS // k)} examples)")
    print(f"{'contender':14s} {'seconds (min-max)':>24s} {'GFLOP/s':>8s} {'peak MiB':>9s} "
          f"{'warm-up s':>9s} {'mean log p(x)':>14s}")
    s = {}
    for name, rs in samples.items():
        secs = median(r["seconds"] for r in rs)
        s[name] = {"seconds": secs, "gflops": flops / secs / 1e9,
                   "peak_rss_mib": max(r["peak_rss_mib"] for r in rs)}
        print(f"{name:14s} {spread([r['seconds'] for r in rs]):>24s} {s[name]['gflops']:8.2f} "
              f"{s[name]['peak_rss_mib']:9.0f} {median(r['warmup_s'] for r in rs):9.3f} "
              f"{rs[0]['mean_logpx']:14.2f}")
    if set(IWAE) <= set(s):
        print(f"IWAE minivae/torch {s['minivae-iwae']['seconds'] / s['torch-iwae']['seconds']:.3f}")
    return s


def targets(s):
    """Print PASS/FAIL for each target that was measured, honestly; return them."""
    def verdict(ok, detail):
        return f"{'PASS' if ok else 'FAIL'} ({detail})"
    t = {}
    if {"minivae", "torch"} <= set(s):
        r = s["minivae"]["epoch_s"] / s["torch"]["epoch_s"]
        t["epoch ratio ≤ 0.7"] = verdict(r <= 0.7, f"minivae/torch {r:.3f}")
    if {"minivae", "sgemm"} <= set(s):
        pct = s["minivae"]["pct_sgemm"]
        more = [f"{x} in turn in one process {s[x]['in_turn']['pct_sgemm']:.1f}%"
                for x in ("minivae", "flat") if "in_turn" in s.get(x, {})]
        if "flat" in s:
            more.insert(0, f"the flat step {s['flat']['pct_sgemm']:.1f}%")
        t["throughput ≥ 75%"] = verdict(pct >= 75, "; ".join([f"{pct:.1f}% of sgemm", *more]))
    if set(IWAE) <= set(s):
        r = s["minivae-iwae"]["seconds"] / s["torch-iwae"]["seconds"]
        t["IWAE ratio ≤ 1.0"] = verdict(r <= 1.0, f"minivae/torch {r:.3f}")
    mine = [x for x in ("minivae", "minivae-iwae") if x in s]
    if mine:
        rss = max(s[x]["peak_rss_mib"] for x in mine)
        t["peak RSS ≤ 1 GiB"] = verdict(rss <= 1024, f"{rss:.0f} MiB, max of {', '.join(mine)}")
    print("\ntargets")
    for key in ("epoch ratio ≤ 0.7", "throughput ≥ 75%", "IWAE ratio ≤ 1.0", "peak RSS ≤ 1 GiB"):
        print(f"  {key:18s} {t.get(key, 'not measured (its contenders did not all run)')}")
    full_iwae = "minivae-iwae" not in s or (ARGS.iwae_n >= 10000 and ARGS.iwae_k == 5000)
    if ARGS.steps or not full_iwae:
        print("  (smaller than full size: " + ", ".join(
            (["epochs extrapolated from --steps"] if ARGS.steps else [])
            + ([] if full_iwae else ["IWAE not k=5000 on 10000 images"])) + "; not a verdict)")
    return t


# ---- --load N: idle and loaded side by side ----

def load_names(only, torch):
    """The contenders of --load: minivae and PyTorch at their defaults and at 1 and CORES
    threads, and the 11 products of a step at 1 and CORES."""
    counts = sorted({1, CORES})
    names = only or (["minivae", *(f"minivae@{k}" for k in counts)]
                     + (["torch", *(f"torch@{k}" for k in counts if k != CORES)] if torch else [])
                     + [f"sgemm@{k}" for k in counts])
    return [x for x in names if torch or not x.startswith("torch")]


def load_rounds(names, rng):
    """{(busy processes, name): [result of each turn]}: each round an idle block and a block
    beside ARGS.load busy processes, in a random order, each running every contender once."""
    from benchmarks.load import busy
    samples = {(n, name): [] for n in (0, ARGS.load) for name in names}
    for r in range(ARGS.rounds):
        for n in rng.sample([0, ARGS.load], 2):
            with busy(n, ARGS.load_seconds, ARGS.load_nice, ARGS.load_kind) as procs:
                for name in rng.sample(names, len(names)):
                    before = os.getloadavg()[0]
                    res = {**run_child(name), "loadavg_before": before}
                    samples[(n, name)].append(res)
                    print(f"  round {r + 1}/{ARGS.rounds}  {n} busy  {name:12s} epoch_s "
                          f"{res['epoch_s']:7.3f}" + (f"  ({res['threads']} threads)"
                                                     if name.startswith("minivae") else "")
                          + f"  load average before {before:.2f}", flush=True)
                if any(q.poll() is not None for q in procs):
                    sys.exit("a busy process ended before its block did: raise --load-seconds")
    return samples


def load_table(samples, names):
    """Print idle and loaded side by side; {name: {"idle", "loaded", "threads"}} in seconds."""
    L = ARGS.load
    print(f"\nMNIST epoch (469 steps), seconds: median of {ARGS.rounds} round(s) (min-max); "
          f"idle, and beside {L} busy process(es) ({ARGS.load_kind}, nice {ARGS.load_nice}) on "
          f"{CORES} cores (sgemm@K: the 11 products of a step in a row, mean x 469)")
    print(f"{'contender':14s} {'idle':>22s} {f'{L} busy':>22s} {'busy/idle':>9s}  threads used")
    s = {}
    for name in names:
        idle, busy = ([r["epoch_s"] for r in samples[(n, name)]] for n in (0, L))
        used = {n: sorted({r.get("threads") for r in samples[(n, name)]}, key=str)
                for n in (0, L)}
        s[name] = {"idle": median(idle), "loaded": median(busy), "threads": used}
        fewest = min(r.get("timed_steps", STEPS) for n in (0, L) for r in samples[(n, name)])
        print(f"{name:14s} {spread(idle):>22s} {spread(busy):>22s} "
              f"{median(busy) / median(idle):9.2f}  idle {used[0]}, busy {used[L]}"
              + ("" if fewest == STEPS else f"  (extrapolated, from {fewest} steps at fewest)"))
    return s


def load_targets(s):
    """The targets of a loaded machine, PASS or FAIL with the figures."""
    def verdict(ok, detail):
        return f"{'PASS' if ok else 'FAIL'} ({detail})"
    t, fixed = {}, [x for x in s if x.startswith("minivae@")]
    if "minivae" in s:
        r = s["minivae"]["loaded"] / s["minivae"]["idle"]
        t["loaded default ≤ 1.5 x idle"] = verdict(r <= 1.5, f"minivae {r:.2f}")
    if "minivae" in s and fixed:
        best = min(fixed, key=lambda x: s[x]["idle"])
        r = s["minivae"]["idle"] / s[best]["idle"]
        t["idle default ≤ 1.1 x best"] = verdict(r <= 1.1, f"{r:.3f} against {best}")
    for cond in ("idle", "loaded"):
        torches = [x for x in s if x.startswith("torch")]
        if "minivae" in s and "torch" in s:
            mine = [x for x in s if x.startswith("minivae")]
            best_m = min(mine, key=lambda x: s[x][cond])
            best_t = min(torches, key=lambda x: s[x][cond])
            r = s["minivae"][cond] / s["torch"][cond]
            rb = s[best_m][cond] / s[best_t][cond]
            detail = f"defaults {r:.3f}, best {rb:.3f} ({best_m} / {best_t})"
            t[f"minivae/torch {cond}"] = (verdict(r <= 0.7, detail) if cond == "idle"
                                          else f"reported: {detail}")
    print("\ntargets")
    for key, v in t.items():
        print(f"  {key:28s} {v}")
    return t


def main():
    if ARGS.child:
        from minivae.data.errors import DatasetError
        from minivae.errors import MinivaeError
        try:
            return print(json.dumps(child(ARGS.child)))
        except (DatasetError, MinivaeError) as err:       # no data, say: its message, no trace
            sys.exit(str(err))
    only = ARGS.only.split(",") if ARGS.only else None
    unknown = {x for x in only or () if x.partition("@")[0] not in TRAIN + IWAE
               or (not ARGS.load and "@" in x)}
    if unknown:
        sys.exit(f"--only: unknown {sorted(unknown)}, choose from {', '.join(TRAIN + IWAE)} "
                 "(NAME@K for K threads with --load)")
    load_start = os.getloadavg()
    info = run_child("info")
    names = [x for x in TRAIN + IWAE if (x in only if only else x in TRAIN or ARGS.iwae)]
    if info["torch"] is None and any(x.startswith("torch") for x in names):
        print("PyTorch is not installed: its column is skipped (pip install torch==2.13.0 for "
              "the CPU build; it is never a minivae dependency)")
        names = [x for x in names if not x.startswith("torch")]
    print(f"classic MNIST VAE 784-400-20-400-784, batch {B}, float32, Adam 1e-3\n"
          f"  cpu {cpu_model()}, {CORES} cores; threads: "
          + (f"{ARGS.threads} ({', '.join(THREAD_VARS)}, torch.set_num_threads)"
             if ARGS.threads else "each library's default (minivae: auto), NAME@K: K")
          + f"\n  numpy {info['numpy']} ({info['blas']}, {info['blas_threads']} threads), numba "
          f"{info['numba']} ({info['numba_threads']} threads), "
          + (f"torch {info['torch']} ({info['torch_threads']} threads)" if info["torch"]
             else "torch not installed")
          + f"\n  load average at start {load_start[0]:.2f} (above ~0.3 the cores are shared: "
          "noisy numbers)")
    rng = random.Random(ARGS.seed)
    if ARGS.load is not None:
        names = load_names(only, info["torch"] is not None)
        samples = load_rounds(names, rng)
        print(f"  load average at end {os.getloadavg()[0]:.2f}")
        summary = load_table(samples, names)
        summary["targets"] = load_targets(summary)
        if ARGS.json:
            with open(ARGS.json, "w") as f:
                json.dump({"meta": {**info, "cpu": cpu_model(), "load_start": load_start,
                                    "args": vars(ARGS)},
                           "samples": {f"{n} busy {name}": v for (n, name), v in samples.items()},
                           "summary": summary}, f, indent=1)
        return
    samples = alternate([x for x in names if x in TRAIN], ARGS.rounds, rng)
    cold = run_child("minivae-cold") if "minivae" in names else None
    samples.update(alternate([x for x in names if x in IWAE], ARGS.iwae_rounds, rng))
    load_end = os.getloadavg()
    print(f"  load average at end {load_end[0]:.2f}")
    meta = {**info, "threads": ARGS.threads or "default", "cpu": cpu_model(), "load_start": load_start,
            "load_end": load_end, "args": vars(ARGS), "epoch_flops": EPOCH_FLOPS}
    summary = {}
    if any(samples.get(x) for x in TRAIN):
        summary.update(train_table({x: samples[x] for x in TRAIN if samples.get(x)}))
    if cold:
        summary["minivae-cold"] = cold
        print(f"minivae's numba kernels compiled from nothing (an empty NUMBA_CACHE_DIR): the "
              f"first {FIRST} steps took {cold['first_steps_s']:.2f} s, once; later runs load "
              f"them from the cache (the 'first 5 s' column)")
    if any(samples.get(x) for x in IWAE):
        summary.update(iwae_table({x: samples[x] for x in IWAE if samples.get(x)}))
    summary["targets"] = targets(summary)
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump({"meta": meta, "samples": samples, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    main()
