"""Speed of the convolutional MNIST VAE: minivae against PyTorch's CPU build.

The model: ``VAE(784, hidden=(), z_dim=20, arch="conv")``: Conv2d 1->32 and 32->64 (k 4,
s 2, p 1, ReLU), Linear 3136 -> 40; Dense 20 -> 3136 (ReLU), ConvTranspose2d 64->32 (ReLU)
and 32->1; Bernoulli likelihood, Adam lr 1e-3, batches of 128 in a seeded random order,
float32, the real MNIST training set (an epoch is 469 steps). Contenders:

    minivae   minivae.train.fit, each batch timed by a callback (the gather, the step and
              fit's bookkeeping): the first 5 steps apart (numba cache load), then an epoch
              (or --steps steps, extrapolated); then, on a fresh model, where a step goes
    torch     benchmarks/torch_conv_vae.py, the same model the usual PyTorch way, timed alike
    sgemm     the 17 matrix products of one minivae step at their shapes,
              ``np.matmul(a, b, out=out)``, median of --sgemm-reps calls each

Every measurement is a fresh child process (--child JOB) with the threads of every library
(OMP, OpenBLAS, MKL, numba, torch.set_num_threads) set to --threads before they load; the
contenders take turns, each round in a new random order, and the report gives medians over
rounds (min and max beside them), the load average before and after, and the ratio. Beside
the clock, each contender's CPU seconds a step (every thread's, a process that spins waiting
included): on a busy machine the clock measures the others as much as the contenders, and
at 1 thread the CPU time is the fairer ratio. PyTorch is optional: without it its column is
left out.

    export MINIVAE_DATA_MIRROR=/work/shared/data           # MNIST without the network
    python benchmarks/conv_speed.py                        # 3 rounds of whole epochs
    python benchmarks/conv_speed.py --steps 60 --rounds 1  # a smoke run (extrapolated)
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections import defaultdict
from statistics import median

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
B, N_TRAIN, STEPS, FIRST = 128, 60000, 469, 5
SPLIT_STEPS = 100                            # steps of the "where a step goes" pass
CONTENDERS = ("minivae", "torch", "sgemm")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every library")
    p.add_argument("--rounds", type=int, default=3, help="turns of each contender")
    p.add_argument("--steps", type=int, help="time only this many steps, not a whole epoch")
    p.add_argument("--sgemm-reps", type=int, default=30, help="timed calls per product")
    p.add_argument("--only", help="comma-separated contenders, e.g. minivae,torch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write every sample and the summary here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = parse_args()
if ARGS.child:
    for var in THREAD_VARS:
        os.environ[var] = str(ARGS.threads)                      # before numpy, numba, torch
    sys.path.insert(0, ROOT)


def products(n):
    """(M, K, N) of the 17 matrix products of one step at batch n: per layer, forward,
    then dW, then dx (none for the first layer: its input is data)."""
    out = []
    for L, ckk, o, dx in [(196, 16, 32, False), (49, 512, 64, True)]:   # Conv2d 1->32, 32->64
        out += [(n * L, ckk, o), (o, n * L, ckk)] + ([(n * L, o, ckk)] if dx else [])
    for d, h in [(3136, 40), (20, 3136)]:                        # Linear, Dense
        out += [(n, d, h), (d, n, h), (n, h, d)]
    for hw, c, okk in [(49, 64, 512), (196, 32, 16)]:            # ConvT 64->32, 32->1
        out += [(n * hw, c, okk), (c, n * hw, okk), (n * hw, okk, c)]
    return out


def step_flops(n):
    return sum(2.0 * m * k * c for m, k, c in products(n))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- children ----

class StepTimer:
    """A fit callback: the seconds of each batch, end to end, as fit runs them."""

    def __init__(self):
        self.times = []

    def epoch_begin(self, p):
        self.t0 = time.perf_counter()

    def batch_end(self, p):
        self.times.append(time.perf_counter() - self.t0)
        self.t0 = time.perf_counter()


def child_train(job):
    import numpy as np

    from minivae.data import load
    x = load("mnist").x                                          # (60000, 784) float32
    order = np.random.default_rng(ARGS.seed).permutation(len(x))
    if job == "torch":
        from benchmarks import torch_conv_vae, torch_vae
        torch = torch_vae._torch(ARGS.threads)
        model = torch_conv_vae.make_model(ARGS.seed, ARGS.threads)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt = torch.from_numpy(x)

        def run(rows):
            return torch_conv_vae.train_steps(model, opt, xt, rows, B, ARGS.threads)
    else:
        from minivae.models import VAE
        from minivae.optim import Adam
        from minivae.train import fit
        model = VAE(784, (), 20, arch="conv", rng=ARGS.seed)
        opt = Adam(model.params, lr=1e-3)

        def run(rows):
            timer = StepTimer()
            fit(model, x if len(rows) == len(x) else x[rows], opt, epochs=1, batch_size=B,
                rng=ARGS.seed, callbacks=[timer])
            return timer.times
    first = run(order[:FIRST * B])
    steps = min(ARGS.steps or STEPS, STEPS)
    cpu0 = time.process_time()
    times = run(order[:steps * B])
    cpu = (time.process_time() - cpu0) / steps                   # every thread's CPU seconds
    result = {"epoch_s": sum(times) if steps == STEPS else sum(times) / steps * STEPS,
              "step_s": median(times), "cpu_step_s": cpu, "timed_steps": steps,
              "first_steps_s": sum(first),
              "peak_rss_mib": peak_rss_mib()}
    if job == "minivae":
        result["split"] = split_step(x[order[:SPLIT_STEPS * B]])
    return result


def split_step(x):
    """Mean ms per step of fit on a fresh model, by part: each layer's forward + backward
    (conv layers also split into their numba kernels and the rest: products, transposes,
    allocation), Adam, and what is left (loss, sampling, KL, fit, Python). At 1 thread the
    clock is the process's CPU time (all of its work is on this thread, and other programs
    cannot inflate it as they inflate the wall clock); at more, the wall clock."""
    from minivae.kernels import activations as KA
    from minivae.kernels import conv as K
    from minivae.models import VAE
    from minivae.optim import Adam
    from minivae.train import fit
    model = VAE(784, (), 20, arch="conv", rng=ARGS.seed + 1)
    opt = Adam(model.params, lr=1e-3)
    spent = defaultdict(float)
    clock = time.process_time if ARGS.threads == 1 else time.perf_counter

    def timed(fn, label):
        def wrapper(*a, **k):
            t0 = clock()
            out = fn(*a, **k)
            spent[label] += clock() - t0
            return out
        return wrapper
    for part in ("encoder", "decoder"):
        for i, layer in enumerate(getattr(model, part).layers):
            label = f"{part}.{i} {type(layer).__name__}"
            layer.forward, layer.backward = (timed(layer.forward, label),
                                             timed(layer.backward, label))
    kernels = [(K, "im2col"), (K, "col2im"),                    # the conv layers'
               (KA, "bias_act_forward"), (KA, "act_backward_bias")]     # every layer's
    saved = {(m, k): getattr(m, k) for m, k in kernels}
    for m, k in kernels:
        setattr(m, k, timed(saved[m, k], f"kernel {k}"))
    opt.step = timed(opt.step, "adam")
    fit(model, x[:FIRST * B], opt, 1, B, rng=0)                  # warm
    spent.clear()
    t0 = clock()
    fit(model, x, opt, 1, B, rng=0)
    total = clock() - t0
    for m, k in kernels:
        setattr(m, k, saved[m, k])
    n = len(x) // B
    out = {k: v / n * 1e3 for k, v in spent.items()}
    out["step"] = total / n * 1e3
    out["rest"] = out["step"] - sum(v for k, v in out.items()
                                    if k != "step" and not k.startswith("kernel"))
    return out


def child_sgemm():
    import numpy as np
    rng = np.random.default_rng(0)
    total = 0.0
    for m, k, c in products(B):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, c), dtype=np.float32)
        out = np.empty((m, c), np.float32)
        for _ in range(3):
            np.matmul(a, b, out=out)
        times = []
        for _ in range(ARGS.sgemm_reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        total += median(times)
    return {"step_s": total, "gflops": step_flops(B) / total / 1e9}


def child_info():
    import numba
    import numpy as np
    info = {"numpy": np.__version__, "numba": numba.__version__, "torch": None}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


# ---- the parent ----

def run_child(job):
    env = {**os.environ, **{var: str(ARGS.threads) for var in THREAD_VARS}}
    env.pop("NUMBA_DISABLE_JIT", None)
    argv = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--child", job]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.exit(f"the {job} child failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.splitlines()[-1])


def spread(values):
    return f"{median(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def main():
    if ARGS.child:
        job = ARGS.child
        out = child_info() if job == "info" else child_sgemm() if job == "sgemm" \
            else child_train(job)
        print(json.dumps(out))
        return
    info = run_child("info")
    names = [n for n in (ARGS.only.split(",") if ARGS.only else CONTENDERS) if n in CONTENDERS]
    if info["torch"] is None and "torch" in names:
        print("PyTorch is not installed: its column is left out (pip install torch)")
        names.remove("torch")
    load0 = os.getloadavg()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model"
                                                                                        " name"))
    except (OSError, StopIteration):
        cpu = "unknown"
    print(f"{cpu}, {os.cpu_count()} cores; {ARGS.threads} threads each; numpy {info['numpy']}, "
          f"numba {info['numba']}, torch {info['torch']}; load average {load0[0]:.2f}")
    rng = random.Random(ARGS.seed)
    samples = {n: [] for n in names}
    for r in range(ARGS.rounds):
        for name in rng.sample(names, len(names)):
            res = run_child(name)
            samples[name].append(res)
            key = "epoch_s" if "epoch_s" in res else "step_s"
            print(f"  round {r + 1}/{ARGS.rounds}  {name:8s} {key} {res[key]:.4g}", flush=True)
    load1 = os.getloadavg()
    summary = {"cpu": cpu, "threads": ARGS.threads, "load_before": load0[0],
               "load_after": load1[0], **info}
    print(f"\nconv VAE training, median of {ARGS.rounds} round(s) (min-max); an epoch is "
          f"{STEPS} steps of batch {B}, {step_flops(B) / 1e9:.2f} GFLOP of products a step")
    for name in (n for n in ("minivae", "torch") if n in samples):
        rs = samples[name]
        s = summary[name] = {"epoch_s": median(r["epoch_s"] for r in rs),
                             "step_ms": median(r["step_s"] for r in rs) * 1e3,
                             "cpu_step_ms": median(r["cpu_step_s"] for r in rs) * 1e3,
                             "peak_rss_mib": max(r["peak_rss_mib"] for r in rs)}
        ext = "" if rs[0]["timed_steps"] == STEPS else \
            f"  (extrapolated from {rs[0]['timed_steps']} steps)"
        print(f"  {name:8s} epoch {spread([r['epoch_s'] for r in rs])} s, {s['step_ms']:.2f} "
              f"ms/step, {step_flops(B) / s['step_ms'] / 1e6:.1f} GFLOP/s, CPU "
              f"{spread([r['cpu_step_s'] * 1e3 for r in rs])} ms/step, peak "
              f"{s['peak_rss_mib']:.0f} MiB{ext}")
    if "sgemm" in samples:
        sg = summary["sgemm"] = {"step_ms": median(r["step_s"] for r in samples["sgemm"]) * 1e3}
        print(f"  sgemm    the 17 products of a step alone: {sg['step_ms']:.2f} ms, "
              f"{step_flops(B) / sg['step_ms'] / 1e6:.1f} GFLOP/s")
    if {"minivae", "torch"} <= set(summary):
        ratio = summary["ratio"] = summary["minivae"]["epoch_s"] / summary["torch"]["epoch_s"]
        print(f"  minivae / torch, epoch: {ratio:.3f}  (target <= 1.0: "
              f"{'met' if ratio <= 1.0 else 'not met'})")
        cpu_ratio = summary["cpu_ratio"] = (summary["minivae"]["cpu_step_ms"]
                                            / summary["torch"]["cpu_step_ms"])
        print(f"  minivae / torch, CPU time a step (every thread's, spinning included; what a "
              f"busy machine cannot inflate as much): {cpu_ratio:.3f}")
    if "minivae" in samples:
        keys = samples["minivae"][0]["split"].keys()
        split = summary["minivae"]["split"] = {k: median(r["split"][k] for r in
                                                         samples["minivae"]) for k in keys}
        what = "CPU ms" if ARGS.threads == 1 else "ms"
        print(f"  where minivae's step goes ({SPLIT_STEPS} steps, fresh model, {what} per step; "
              f"kernels are inside the layers' times):")
        for k in sorted(split, key=lambda k: (k == "step", k == "rest", k)):
            print(f"    {k:44s} {split[k]:7.2f}")
    print(f"load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump({"summary": summary, "samples": samples}, f, indent=1)


if __name__ == "__main__":
    main()
