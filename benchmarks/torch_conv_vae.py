"""PyTorch reference of minivae's convolutional MNIST VAE, to time minivae against. Not part of
minivae.

The same model and training loop as ``VAE(784, hidden=(), z_dim=20, arch="conv")``, written
the usual PyTorch way:

    encoder   x (N, 784) -> (N, 1, 28, 28) -> Conv2d 1->32, k4 s2 p1, ReLU  (N, 32, 14, 14)
              -> Conv2d 32->64, k4 s2 p1, ReLU  (N, 64, 7, 7) -> flatten -> Linear 3136 -> 40
              -> mu (N, 20), logvar (N, 20)
    sample    z = mu + exp(0.5 * logvar) * eps,   eps ~ N(0, I)
    decoder   z -> Linear 20 -> 3136, ReLU -> (N, 64, 7, 7) -> ConvTranspose2d 64->32, k4 s2
              p1, ReLU (N, 32, 14, 14) -> ConvTranspose2d 32->1, k4 s2 p1 -> logits (N, 784)
    loss      mean over the batch of sum_pixels BCE(logits, x) + sum_latents KL
    training  Adam(lr=1e-3), batches of 128, float32, torch.set_num_threads(threads)

PyTorch is imported only when a function here runs, and is never a minivae dependency.

    python benchmarks/torch_conv_vae.py --steps 50      # ms per step on MNIST
"""

import argparse
import time

import numpy as np

from benchmarks.torch_vae import _torch, neg_elbo

D, Z, SIDE = 784, 20, 28
CHANNELS = (32, 64)


def make_model(seed=0, threads=2):
    """A fresh convolutional VAE with PyTorch's default initialisation, seeded."""
    torch = _torch(threads)
    nn = torch.nn
    c1, c2 = CHANNELS
    flat = c2 * 7 * 7

    class ConvVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(
                nn.Unflatten(1, (1, SIDE, SIDE)),
                nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
                nn.Flatten(), nn.Linear(flat, 2 * Z))
            self.dec = nn.Sequential(
                nn.Linear(Z, flat), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
                nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(c1, 1, 4, 2, 1), nn.Flatten())

        def encode(self, x):
            return self.enc(x).chunk(2, dim=-1)                         # (N, Z) x2

        def decode(self, z):
            return self.dec(z)                                          # logits (N, D)

        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.decode(z), mu, logvar

    torch.manual_seed(seed)
    return ConvVAE()


def train_steps(model, optimizer, xt, order, batch=128, threads=2):
    """Seconds of each Adam step (a list) over the rows xt[order], ``batch`` at a time; the
    clock of a step covers the gather of its batch, forward, backward and update."""
    torch = _torch(threads)
    order = torch.from_numpy(np.asarray(order))
    model.train()
    times = []
    for start in range(0, len(order), batch):
        t0 = time.perf_counter()
        xb = xt[order[start:start + batch]]                             # (B, D)
        logits, mu, logvar = model(xb)
        loss = neg_elbo(torch, logits, xb, mu, logvar).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser(description="Time PyTorch's convolutional VAE on MNIST.")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import minivae.data
    x = minivae.data.load("mnist").x
    torch = _torch(args.threads)
    model = make_model(0, args.threads)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = np.random.default_rng(0).permutation(len(x))[:args.steps * 128]
    times = train_steps(model, opt, torch.from_numpy(x), order, 128, args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: median "
          f"{np.median(times[5:]) * 1e3:.2f} ms/step")


if __name__ == "__main__":
    main()
