"""PyTorch reference of the classic MNIST VAE, to time minivae against. Not part of minivae.

The same model and training loop minivae trains, written the usual PyTorch way:

    encoder   x (N, 784) -> Linear 400 -> ReLU -> Linear 40 -> mu (N, 20), logvar (N, 20)
    sample    z = mu + exp(0.5 * logvar) * eps,   eps ~ N(0, I)             (N, 20)
    decoder   z -> Linear 400 -> ReLU -> Linear 784 -> logits (N, 784)
    loss      mean over the batch of  -ELBO = sum_pixels BCE(logits, x)
                                            + sum_latents 0.5 (mu^2 + exp(logvar) - 1 - logvar)
    training  Adam(lr=1e-3), batches of 128 in a fresh random order each epoch, float32,
              torch.set_num_threads(2)

PyTorch is imported only when a function here runs, and is never a minivae dependency:

    from benchmarks.torch_vae import train_epoch, train_steps, iwae_eval
    seconds = train_epoch(x, seed=0)           # x: (n, 784) float array of 0s and 1s
    per_step = train_steps(model, opt, torch.from_numpy(x), order)   # seconds of each step
    seconds = iwae_eval(x[:1000], k=100, chunk=100)

    python benchmarks/torch_vae.py --epochs 3  # random binary data, 60000 x 784

The data is random binary for now; with the real MNIST it will be minivae.data.load("mnist").x
(``--data mnist``). Timing does not depend on the values.
"""

import argparse
import math
import time

import numpy as np

D, H, Z = 784, 400, 20


def _torch(threads=2):
    """Import PyTorch, set its threads (None: PyTorch's own default), or say clearly that it
    is missing."""
    try:
        import torch
    except ImportError:
        raise ImportError("benchmarks/torch_vae.py compares minivae against PyTorch, which is "
                          "not installed (and is not a minivae dependency): pip install torch"
                          ) from None
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def make_model(seed=0, threads=2):
    """A fresh VAE with PyTorch's default initialisation, seeded."""
    torch = _torch(threads)
    nn = torch.nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = nn.Linear(D, H)
            self.enc2 = nn.Linear(H, 2 * Z)             # mu and logvar side by side
            self.dec1 = nn.Linear(Z, H)
            self.dec2 = nn.Linear(H, D)

        def encode(self, x):
            mu, logvar = self.enc2(torch.relu(self.enc1(x))).chunk(2, dim=-1)
            return mu, logvar                            # (N, Z), (N, Z)

        def decode(self, z):
            return self.dec2(torch.relu(self.dec1(z)))  # logits (..., D)

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.decode(z), mu, logvar

    torch.manual_seed(seed)
    return VAE()


def neg_elbo(torch, logits, x, mu, logvar):
    """Per-example -ELBO (N,): Bernoulli NLL summed over pixels plus KL summed over latents."""
    F = torch.nn.functional
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(-1)
    return rec + kl


def _as_tensor(torch, x):
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"x must be (n, {D}), got {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x))


def train_epoch(x, seed=0, *, model=None, optimizer=None, batch=128, lr=1e-3, threads=2):
    """Seconds for one epoch of Adam on x (n, 784), batches of ``batch`` in a seeded order.

    A fresh model and optimizer unless given (pass both to time later epochs). The clock
    runs from the first batch to the end of the last one; converting x to a tensor is
    outside it.
    """
    torch = _torch(threads)
    xt = _as_tensor(torch, x)
    model = make_model(seed, threads) if model is None else model
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(seed)                              # eps
    order = np.random.default_rng(seed).permutation(len(xt))
    return sum(train_steps(model, optimizer, xt, order, batch, threads))


def train_steps(model, optimizer, xt, order, batch=128, threads=2):
    """Seconds of each Adam step (a list) over the rows xt[order], ``batch`` at a time.

    xt is a tensor (n, 784) (``_as_tensor``), order an integer array of row numbers; the
    clock of a step covers the gather of its batch, forward, backward and update.
    """
    torch = _torch(threads)
    order = torch.from_numpy(np.asarray(order))
    model.train()
    times = []
    for start in range(0, len(order), batch):
        t0 = time.perf_counter()
        xb = xt[order[start:start + batch]]             # (B, D) gather, as minivae does
        logits, mu, logvar = model(xb)
        loss = neg_elbo(torch, logits, xb, mu, logvar).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return times


def iwae_logpx(model, x, k, chunk, seed=0, threads=2):
    """Importance-weighted estimate of log p(x) per example (n,), with k samples each.

    log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log k,
    z_k ~ q(z|x). ``chunk`` examples go through at once: the decoder sees chunk * k rows.
    """
    torch = _torch(threads)
    xt = _as_tensor(torch, x)
    gen = torch.Generator().manual_seed(seed)
    log2pi = math.log(2 * math.pi)
    out = []
    with torch.no_grad():
        for start in range(0, len(xt), chunk):
            xb = xt[start:start + chunk]                                 # (C, D)
            mu, logvar = model.encode(xb)                                # (C, Z)
            eps = torch.randn((k,) + mu.shape, generator=gen)            # (k, C, Z)
            z = mu + torch.exp(0.5 * logvar) * eps                       # (k, C, Z)
            logits = model.decode(z)                                     # (k, C, D)
            log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, xb.expand_as(logits), reduction="none").sum(-1)  # (k, C)
            log_pz = -0.5 * (z * z + log2pi).sum(-1)                     # (k, C)
            log_qz = -0.5 * (eps * eps + logvar + log2pi).sum(-1)        # (k, C)
            w = log_px_z + log_pz - log_qz
            out.append(torch.logsumexp(w, dim=0) - math.log(k))         # (C,)
    return torch.cat(out).numpy()


def iwae_eval(x, k, chunk, seed=0, *, model=None, threads=2):
    """Seconds to compute the k-sample IWAE estimate of log p(x) for every row of x."""
    model = make_model(seed, threads) if model is None else model
    model.eval()
    t0 = time.perf_counter()
    iwae_logpx(model, x, k, chunk, seed, threads)
    return time.perf_counter() - t0


def random_binary(n=60000, d=D, seed=0):
    """Stand-in for MNIST: (n, d) float32 of 0s and 1s, each pixel on with probability 0.13."""
    return (np.random.default_rng(seed).random((n, d)) < 0.13).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description="Time PyTorch's VAE epoch and IWAE evaluation.")
    p.add_argument("--data", choices=["random", "mnist"], default="random")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iwae-n", type=int, default=1000, help="examples for the IWAE timing")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--chunk", type=int, default=100)
    args = p.parse_args()
    if args.data == "mnist":
        import minivae.data
        x = minivae.data.load("mnist").x.reshape(-1, D).astype(np.float32)
    else:
        x = random_binary()
    torch = _torch(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, data {x.shape}")
    model = make_model(0, args.threads)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        secs = train_epoch(x, seed=epoch, model=model, optimizer=opt, threads=args.threads)
        steps = math.ceil(len(x) / 128)
        print(f"epoch {epoch}: {secs:.2f} s  ({secs / steps * 1e3:.2f} ms/step)")
    secs = iwae_eval(x[:args.iwae_n], args.k, args.chunk, model=model, threads=args.threads)
    print(f"IWAE k={args.k}, chunk={args.chunk}, {args.iwae_n} examples: {secs:.2f} s")


if __name__ == "__main__":
    main()
