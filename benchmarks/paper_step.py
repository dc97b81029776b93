"""Speed of the importance-weighted autoencoder paper's model: minivae against PyTorch's CPU build,
at the paper's small batches, where a step's Python overhead matters most.

The model (Burda, Grosse & Salakhutdinov 2015, one stochastic layer): 784-200-200-50, tanh,
Bernoulli likelihood; the encoder 784 -> 200 -> 200 -> (mu, logvar) 2 x 50, the decoder
50 -> 200 -> 200 -> 784 logits; Adam with beta2 = 0.999 and eps = 1e-4, float32. The objective
is the VAE's negative ELBO (k = 1, analytic KL) or the k-sample IWAE bound (minivae.models.IWAE;
in PyTorch the same bound by log-sum-exp and autograd). Each measurement is a fresh child
process (one JSON line) that trains --steps steps on random binary 784-pixel rows after 20
warm-up steps; the contenders take turns in a new random order each round; the report gives
medians over rounds (min-max) and the ratio minivae / PyTorch. The random rows change no
timing: every product and kernel does the same work whatever the pixel values.

    python benchmarks/paper_step.py                      # batch 20 and 100, VAE and IWAE k=5
    python benchmarks/paper_step.py --batch 20 --rounds 5 --steps 2000

minivae trains with its own thread policy (at these sizes: 1 BLAS thread, no probe), PyTorch
at its default (one thread a core) and as torch@1 at one thread. minivae's step is also split
into its forward pass (``loss``), ``backward``, and the optimizer's step, by timing each
--steps times in the child; beside them, the step's matrix products alone, each timed on its
own at its shape and summed: with Adam, the floor a step cannot go under.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from statistics import median

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
D, H, Z = 784, 200, 50
WARMUP = 20


def data(n=6000, seed=0):
    import numpy as np
    return (np.random.default_rng(seed).random((n, D)) < 0.13).astype(np.float32)


def minivae_child(batch, k, steps):
    import numpy as np

    from minivae.models import IWAE, VAE
    from minivae.optim import Adam
    from minivae.run.threads import Threads, largest_product

    x = data()
    kw = {"hidden": (H, H), "z_dim": Z, "activation": "tanh", "rng": 0}
    model = VAE(D, **kw) if k == 1 else IWAE(D, k=k, **kw)
    opt = Adam(model.params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    rng = np.random.default_rng(1)
    parts = {"loss": 0.0, "backward": 0.0, "adam": 0.0}
    with Threads("auto", work=largest_product(model, batch * k)) as threads:
        floor = products_ms(model, batch, k, rng)
        for i in range(WARMUP + steps):
            if i == WARMUP:
                t0 = time.perf_counter()
                parts = dict.fromkeys(parts, 0.0)
            xb = x[rng.integers(0, len(x), batch)]
            a = time.perf_counter()
            model.zero_grad()
            model.loss(xb)
            b = time.perf_counter()
            model.backward()
            c = time.perf_counter()
            opt.step(model.grads)
            d = time.perf_counter()
            parts["loss"] += b - a
            parts["backward"] += c - b
            parts["adam"] += d - c
        total = time.perf_counter() - t0
    return {"step_ms": 1e3 * total / steps, "threads": threads.count, "products_ms": floor,
            **{f"{p}_ms": 1e3 * s / steps for p, s in parts.items()}}


def products_ms(model, batch, k, rng, reps=200):
    """The step's matrix products alone, at the thread count in force: for every weight W
    (D_in, D_out) of the encoder (batch rows) and the decoder (batch k rows), the forward
    x @ W, the weight gradient x.T @ dy and, past the first layer, the input gradient
    dy @ W.T; median of ``reps`` calls each, summed, in ms."""
    import numpy as np
    total = 0.0
    for net, rows in ((model.encoder, batch), (model.decoder, batch * k)):
        for i, W in enumerate(l.params["W"] for l in net.layers if "W" in getattr(l, "params", {})):
            x = rng.standard_normal((rows, W.shape[0]), dtype=np.float32)
            dy = rng.standard_normal((rows, W.shape[1]), dtype=np.float32)
            pairs = [(x, W), (x.T, dy)] + ([(dy, W.T)] if i or net is model.decoder else [])
            for a, b in pairs:
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    a @ b
                    times.append(time.perf_counter() - t0)
                total += median(times)
    return 1e3 * total


def torch_child(batch, k, steps, threads):
    import numpy as np
    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, 2 * Z))
    dec = nn.Sequential(nn.Linear(Z, H), nn.Tanh(), nn.Linear(H, H), nn.Tanh(), nn.Linear(H, D))
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-4)
    x = torch.from_numpy(data())
    rng = np.random.default_rng(1)

    def loss_of(xb):
        mu, logvar = enc(xb).chunk(2, dim=-1)                             # (B, Z) x2
        if k == 1:
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            nll = F.binary_cross_entropy_with_logits(dec(z), xb, reduction="none").sum(-1)
            kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
            return (nll + kl).mean()
        eps = torch.randn(xb.shape[0], k, Z)
        z = mu[:, None] + torch.exp(0.5 * logvar[:, None]) * eps           # (B, k, Z)
        logits = dec(z)                                                    # (B, k, D)
        nll = F.binary_cross_entropy_with_logits(logits, xb[:, None].expand_as(logits),
                                                 reduction="none").sum(-1)
        log_w = -nll - 0.5 * (z ** 2).sum(-1) + 0.5 * (eps ** 2 + logvar[:, None]).sum(-1)
        return -(torch.logsumexp(log_w, dim=1) - np.log(k)).mean()

    for i in range(WARMUP + steps):
        if i == WARMUP:
            t0 = time.perf_counter()
        xb = x[torch.from_numpy(rng.integers(0, len(x), batch))]
        opt.zero_grad()
        loss_of(xb).backward()
        opt.step()
    return {"step_ms": 1e3 * (time.perf_counter() - t0) / steps, "threads": torch.get_num_threads()}


def child(job):
    name, batch, k, steps = job.split(":")
    batch, k, steps = int(batch), int(k), int(steps)
    if name == "minivae":
        return minivae_child(batch, k, steps)
    _, _, threads = name.partition("@")
    return torch_child(batch, k, steps, int(threads) if threads else None)


def run_child(job):
    out = subprocess.run([sys.executable, __file__, "--child", job], cwd=ROOT, text=True,
                         capture_output=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{job} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def has_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[20, 100])
    p.add_argument("--k", type=int, nargs="+", default=[1, 5], help="1: the VAE; k > 1: IWAE")
    p.add_argument("--steps", type=int, default=1000, help="timed steps per turn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return print(json.dumps(child(args.child)))
    names = ["minivae"] + (["torch", "torch@1"] if has_torch() else [])
    if len(names) == 1:
        print("PyTorch is not installed: only minivae is timed (pip install torch; it is never "
              "a minivae dependency)")
    print(f"IWAE paper model {D}-{H}-{H}-{Z} tanh, Bernoulli, Adam(beta2 0.999, eps 1e-4), float32; "
          f"{args.steps} steps a turn, {args.rounds} rounds; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    rng = random.Random(args.seed)
    jobs = [(b, k) for b in args.batch for k in args.k]
    samples = {(b, k, n): [] for b, k in jobs for n in names}
    for r in range(args.rounds):
        for b, k in jobs:
            for n in rng.sample(names, len(names)):
                samples[(b, k, n)].append(run_child(f"{n}:{b}:{k}:{args.steps}"))
        print(f"  round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}",
              flush=True)
    print(f"\nms per step, median of {args.rounds} (min-max); minivae's step split into "
          "loss / backward / Adam, and the step's products alone (each timed alone, summed)")
    print(f"{'batch':>5} {'k':>3} " + " ".join(f"{n:>20}" for n in names)
          + ("   minivae/torch  minivae/torch@1" if len(names) > 1 else "")
          + "   loss / backward / Adam   products")
    for b, k in jobs:
        med = {n: median(s["step_ms"] for s in samples[(b, k, n)]) for n in names}
        cells = [f"{med[n]:7.3f} ({min(s['step_ms'] for s in samples[(b, k, n)]):.3f}-"
                 f"{max(s['step_ms'] for s in samples[(b, k, n)]):.3f})" for n in names]
        ratios = (f"   {med['minivae'] / med['torch']:13.2f}  {med['minivae'] / med['torch@1']:15.2f}"
                  if len(names) > 1 else "")
        m = samples[(b, k, "minivae")]
        split = " / ".join(f"{median(s[f'{p}_ms'] for s in m):.3f}" for p in ("loss", "backward",
                                                                             "adam"))
        floor = median(s["products_ms"] for s in m)
        print(f"{b:5d} {k:3d} " + " ".join(f"{c:>20}" for c in cells) + ratios + "   " + split
              + f"   {floor:8.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
