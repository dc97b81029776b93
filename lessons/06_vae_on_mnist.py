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
# # Lesson 6: The VAE on MNIST
#
# Lessons 4 and 5 gave us the loss (the negative ELBO) and a way to differentiate it (the
# reparameterization). This lesson puts the pieces together into a variational autoencoder,
# trains it on MNIST and looks at what it learned.
#
# You will see:
#
# 1. a VAE assembled by hand from minivae layers, forward and backward, and shown to give
#    the same loss and gradients as `minivae.models.VAE` to $10^{-7}$: the library's model is
#    this code, line for line;
# 2. the loss conventions (sum over pixels, mean over the batch, where $\beta$ enters), the
#    same number printed the three ways popular examples print it, and the bug that comes from
#    mixing two of them;
# 3. training with the library's loop, `minivae.train.fit`, and the trained model's
#    reconstructions and samples;
# 4. a VAE with a 2-D latent space: the learned manifold of digits and the codes by digit;
# 5. what the loss means on grey-level images, and how it compares with the 87-90 nats that
#    papers report on binarized MNIST.

# %%
import inspect
import os
from statistics import NormalDist
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np

from minivae import data, figures, losses
from minivae.evaluate import evaluate
from minivae.gradcheck import check_grad, rel_error
from minivae.layers import Dense, Linear, Reparameterize, Sequential
from minivae.models import VAE
from minivae.optim import Adam
from minivae.train import fit

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 6_000 if FAST else 60_000            # training images used
N_TEST = 1_000 if FAST else 10_000             # test images used for evaluation
EPOCHS = 2 if FAST else 10                     # passes over the training images, Z = 20 model
EPOCHS_2D = 2 if FAST else 10                  # the same for the Z = 2 model
EPOCHS_SWEEP = 2 if FAST else 3               # the same for each Gaussian decoder of section 6
BATCH = 64 if FAST else 128                    # examples per gradient step
LR = 2e-3 if FAST else 1e-3                    # Adam's step size (fast mode: fewer, larger steps)
IWAE_K = 10 if FAST else 100                   # importance samples for the log-likelihood

train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x_train, y_train = train_set.x[:N_TRAIN], train_set.y[:N_TRAIN]   # (N, 784) float32 in [0, 1]
x_test, y_test = test_set.x[:N_TEST], test_set.y[:N_TEST]
SHAPE = train_set.image_shape                                      # (28, 28)
D = x_train.shape[1]                                               # 784 pixels
print(train_set)

# %% [markdown]
# ## 1. A VAE from the layers of the earlier lessons
#
# The model, for one image $x \in [0, 1]^{784}$:
#
# * **encoder** $x \mapsto (\mu, \text{logvar})$: a `Dense` layer with ReLU ($784 \to H$), then
#   a `Linear` layer ($H \to 2Z$) whose output is split in two halves. $q_\phi(z \mid x) =
#   \mathcal N\big(\mu, \mathrm{diag}\, e^{\text{logvar}}\big)$.
# * **reparameterization** $z = \mu + e^{\frac12 \text{logvar}} \odot \varepsilon$,
#   $\varepsilon \sim \mathcal N(0, I)$ (lesson 5).
# * **decoder** $z \mapsto \ell$: `Dense` with ReLU ($Z \to H$), `Linear` ($H \to 784$). The
#   outputs $\ell$ are **logits**: pixel $d$ is Bernoulli with probability
#   $\mathrm{sigmoid}(\ell_d) = 1/(1 + e^{-\ell_d})$. (We keep $\sigma$ for standard deviations.)
# * **loss** per example, the one-sample estimate of the negative ELBO
#
# $$L(x) = \underbrace{\sum_{d=1}^{784} \big(\mathrm{softplus}(\ell_d) - x_d \ell_d\big)}_{-\log p(x\mid z):\ \texttt{bernoulli\_nll}}
#   \;+\; \beta\, \underbrace{\sum_{j=1}^{Z} \tfrac12\big(\mu_j^2 + e^{v_j} - 1 - v_j\big)}_{\mathrm{KL}(q(z|x)\,\|\,\mathcal N(0, I)):\ \texttt{gaussian\_kl}},
#   \qquad \text{batch loss} = \frac1N \sum_{n=1}^N L(x_n).$$
#
# **Backward.** Every piece returns the gradient of its *per-example values summed over the
# batch*; the batch loss is a mean, so each gets a factor $1/N$. By the chain rule, from the
# loss back to the input:
#
# $$\frac{\partial\,\text{loss}}{\partial \ell} = \frac{\mathrm{sigmoid}(\ell) - x}{N}, \qquad
# \frac{\partial\,\text{loss}}{\partial z} = \text{decoder.backward}\Big(\frac{\partial\,\text{loss}}{\partial \ell}\Big),$$
#
# $$\frac{\partial\,\text{loss}}{\partial \mu} = \frac{\partial\,\text{loss}}{\partial z} + \frac{\beta}{N}\,\mu, \qquad
# \frac{\partial\,\text{loss}}{\partial v} = \frac{\partial\,\text{loss}}{\partial z} \odot \tfrac12 \sigma \odot \varepsilon
#   + \frac{\beta}{N}\cdot\tfrac12\big(e^{v} - 1\big),$$
#
# and the encoder's backward takes the two halves side by side, in the order its output was
# split. $\mu$ and $v = \text{logvar}$ get gradient from **two** paths: through $z$ (the
# reconstruction) and directly (the KL).
#
# We build it in float64 (for checking) with the real sizes, $H = 400$, $Z = 20$: the layers
# in `vae_hand`, and the forward pass, `hand_loss`, which keeps in `vae_hand.cache` what the
# backward needs. The backward is yours to write (exercise 1, next).

# %%
H, Z = 400, 20
f64 = np.float64


def build_parts(D, H, Z, rng):
    """The hand-built VAE's layers, float64: encoder D -> H -> 2Z, decoder Z -> H -> D."""
    return SimpleNamespace(
        encoder=Sequential(Dense(D, H, "relu", rng=rng, dtype=f64), Linear(H, 2 * Z, rng=rng, dtype=f64)),
        decoder=Sequential(Dense(Z, H, "relu", rng=rng, dtype=f64), Linear(H, D, rng=rng, dtype=f64)),
        reparam=Reparameterize(rng), Z=Z, cache=None)


vae_hand = build_parts(D, H, Z, np.random.default_rng(0))
encoder, decoder = vae_hand.encoder, vae_hand.decoder


def bernoulli_recon(logits, x):
    """-log p(x|z) per example and its gradient w.r.t. the decoder output."""
    return losses.bernoulli_nll(logits, x)          # (N,), (N, D)


def hand_loss(x, eps, beta=1.0, recon_fn=bernoulli_recon, parts=None):
    """Forward of the hand-built VAE: the batch mean of recon + beta * KL. Keeps a cache."""
    v = vae_hand if parts is None else parts
    N, Z = x.shape[0], v.Z
    h = v.encoder.forward(x)                                      # (N, 2Z)
    mu, logvar = h[:, :Z], h[:, Z:]                               # (N, Z) each
    z = v.reparam.forward(mu, logvar, eps)                        # (N, Z)
    out = v.decoder.forward(z)                                    # (N, D) logits
    recon, dout = recon_fn(out, x)                                # (N,), (N, D)
    kl, (dmu_kl, dlogvar_kl) = losses.gaussian_kl(mu, logvar)     # (N,), (N, Z) x 2
    v.cache = (N, beta, dout, dmu_kl, dlogvar_kl)
    return float(np.mean(recon + beta * kl))


# %% [markdown]
# **Exercise 1. The VAE's backward.** Write `hand_backward(parts)`: from what `hand_loss` kept
# in `parts.cache` (the batch size $N$, $\beta$, the likelihood's gradient `dout` w.r.t. the
# decoder output, and the KL's gradients `dmu_kl`, `dlogvar_kl`, each for the *sum* over the
# batch), add $\partial\,\text{loss}/\partial\theta$ into the grads of every layer of
# `parts.encoder` and `parts.decoder`, one line per step of the chain rule above. A layer's
# `backward(dy)` returns the gradient w.r.t. its input and adds its parameters' gradients;
# `parts.reparam.backward(dz)` returns $(d\mu, d\,\text{logvar})$. The check runs your backward
# on a small VAE with $\beta = 2.5$ and compares every parameter's gradient with central
# differences (`minivae.gradcheck.check_grad`). The rest of the lesson uses your backward.

# %% tags=["exercise"]
def hand_backward(parts=None):
    """Backward of the hand-built VAE: adds d loss / d params into every layer's grads."""
    v = vae_hand if parts is None else parts
    N, beta, dout, dmu_kl, dlogvar_kl = v.cache
    pass                                                          # your code

# %% tags=["solution"]
# Solution. The loss is a batch mean, so the likelihood's gradient (of the sum) gets 1/N; the
# KL enters mu and logvar directly, with weight beta / N, besides the path through z.
def hand_backward(parts=None):
    """Backward of the hand-built VAE: adds d loss / d params into every layer's grads."""
    v = vae_hand if parts is None else parts
    N, beta, dout, dmu_kl, dlogvar_kl = v.cache
    dz = v.decoder.backward(dout / N)                             # (N, Z)
    dmu, dlogvar = v.reparam.backward(dz)                         # (N, Z) x 2, through z
    dmu += beta / N * dmu_kl                                      # + directly, from the KL
    dlogvar += beta / N * dlogvar_kl
    v.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))    # (N, 2Z)

# %%
small = build_parts(6, 5, 2, np.random.default_rng(40))           # D = 6, H = 5, Z = 2
x_small = np.random.default_rng(41).uniform(size=(4, 6))          # 4 "images" in [0, 1]
eps_small = np.random.default_rng(42).standard_normal((4, 2))
for layer in (small.encoder, small.decoder):
    layer.zero_grad()
hand_loss(x_small, eps_small, beta=2.5, parts=small)
hand_backward(small)
small_errors = {f"{part}.{k}": check_grad(lambda: hand_loss(x_small, eps_small, beta=2.5,
                                                            parts=small), prm, seq.grads[k])
                for part, seq in (("encoder", small.encoder), ("decoder", small.decoder))
                for k, prm in seq.params.items()}
print("relative errors against central differences:",
      {k: f"{e:.1e}" for k, e in small_errors.items()})
assert max(small_errors.values()) < 1e-7

# %% [markdown]
# Now the library's `VAE` with the same sizes, and its parameters copied into our layers, so
# that both compute with the same numbers. `VAE.params` names them `encoder.0.W`, ...; a
# `Sequential`'s `params` are views of its layers' arrays, so writing into them in place
# sets the layers.

# %%
vae64 = VAE(D, hidden=(H,), z_dim=Z, likelihood="bernoulli", dtype=f64, rng=1)
for part, mine in (("encoder", encoder), ("decoder", decoder)):
    for name, p in mine.params.items():
        p[...] = vae64.params[f"{part}.{name}"]

x64 = x_train[:64].astype(f64)                                    # (64, 784) a real batch
eps = np.random.default_rng(2).standard_normal((64, Z))           # the same noise for both

for layer in (encoder, decoder):
    layer.zero_grad()
loss_hand = hand_loss(x64, eps)
hand_backward()
grads_hand = {**{f"encoder.{k}": g for k, g in encoder.grads.items()},
              **{f"decoder.{k}": g for k, g in decoder.grads.items()}}

vae64.zero_grad()
loss_lib = vae64.loss(x64, eps)
vae64.backward()

errors = {k: rel_error(grads_hand[k], g) for k, g in vae64.grads.items()}
print(f"loss: by hand {loss_hand:.10f}, minivae.VAE {loss_lib:.10f}")
for k, e in errors.items():
    print(f"  {k:14s} {str(vae64.grads[k].shape):12s} relative error {e:.1e}")

# %% [markdown]
# **Check:** same loss and same gradient for every parameter, to $10^{-7}$.

# %%
assert abs(loss_hand - loss_lib) <= 1e-7 * abs(loss_lib)
assert set(errors) == set(vae64.grads) and max(errors.values()) < 1e-7

# %% [markdown]
# They agree because they are the same code: `minivae/models/vae.py` is this code. Its `loss`
# and `backward`, printed below, are `hand_loss` and `hand_backward` (exercise 1's solution)
# line for line. What it
# adds: the checks of what the user hands over (`x`, `eps`); `w = beta * kl_weight` where we
# wrote `beta` (`kl_weight` is 1 unless a KL warm-up ramps it, `minivae.train.KLWarmup`);
# `self.last`, the per-example terms that the training loop averages; and a loss that must come
# out finite. Its reconstruction term, `recon_nll`, calls `losses.bernoulli_nll` for this
# likelihood (and `losses.gaussian_nll` for the Gaussian ones of exercise 2).

# %%
print(inspect.getsource(VAE.loss))
print(inspect.getsource(VAE.backward))

# %% [markdown]
# Agreeing with the library only shows that we made the same choices. That they are right is
# checked by central differences. The full check, entry by entry over all 650 thousand
# parameters (lesson 5 did it on a small VAE), would take a while. Instead, for each parameter
# array $P$ we move *all* its entries at once along a random unit direction $V$, with the same
# $\varepsilon$, and compare the slope with the one our gradient predicts:
#
# $$\frac{L(P + hV) - L(P - hV)}{2h} \approx \sum_{ij} \frac{\partial L}{\partial P_{ij}} V_{ij}.$$
#
# A wrong entry anywhere in the gradient changes the right-hand side. (Why $h = 10^{-5}$: the loss
# is about 550 and float64 rounds it to about $10^{-13}$, an error of $10^{-13}/h$ in the slope.)

# %%
def direction_check(params, grads, loss_fn, h=1e-5, seed=3):
    """Largest relative error between the slope of loss_fn along a random unit direction of
    each parameter array (central difference) and the slope the gradient predicts."""
    pick = np.random.default_rng(seed)
    worst = 0.0
    for name, p in params.items():
        v = pick.standard_normal(p.shape)
        v /= np.linalg.norm(v)                                     # a unit direction
        old = p.copy()
        p += h * v
        up = loss_fn()
        p[...] = old - h * v
        down = loss_fn()
        p[...] = old                                               # restored
        worst = max(worst, rel_error(np.sum(grads[name] * v), (up - down) / (2 * h)))
    return worst


params_hand = {**{f"encoder.{k}": p for k, p in encoder.params.items()},
               **{f"decoder.{k}": p for k, p in decoder.params.items()}}
worst = direction_check(params_hand, grads_hand, lambda: hand_loss(x64, eps))
print(f"largest relative error over {len(params_hand)} directional checks: {worst:.1e}")
assert worst < 1e-6

# %% [markdown]
# ## 2. The loss conventions, and how others print the same number
#
# minivae states its convention in one place (`minivae.losses` and `VAE.loss`):
#
# * every loss **sums** over pixels and over latent dimensions: one number per example, in nats;
# * the model's loss is the **mean over the batch** of those per-example numbers;
# * $\beta$ multiplies the KL term there, per example: $L(x) = -\log p(x\mid z) + \beta\,\mathrm{KL}$.
#
# So the number minivae prints is the negative ELBO *per image*, in nats, whatever the batch
# size. Other VAE examples print, from the very same model:
#
# * **the sum over the batch** (a loss with `reduction="sum"` printed per batch, before any
#   division): $N$ times larger, and it changes with the batch size;
# * **the mean over pixels too** (a per-pixel cross-entropy averaged over every axis):
#   $D = 784$ times smaller;
# * **bits per dimension** (common in papers on likelihood models): the per-pixel value in
#   bits, $/(D \ln 2)$.
#
# The same batch, the same model, four printouts:

# %%
vae = VAE(D, hidden=(H,), z_dim=Z, rng=0)                 # float32, the model we will train
xb = x_train[:128]
N = len(xb)
per_image = vae.loss(xb)                                 # minivae: mean over batch, sum over pixels
per_example = vae.last["loss"]                           # (N,) recon + beta * KL of each image
summed = float(per_example.sum(dtype=f64))               # "reduction='sum'"
per_pixel = per_image / D                                # averaged over pixels and batch
bits_per_dim = per_image / (D * np.log(2))
print(f"minivae (nats per image)      {per_image:12.4f}")
print(f"sum over the batch of {N}     {summed:12.2f}   = {N} x {summed / N:.4f}")
print(f"mean over pixels and batch    {per_pixel:12.6f}   = {per_image:.4f} / {D}")
print(f"bits per dimension            {bits_per_dim:12.6f}")

# %% [markdown]
# **Check:** the printouts are one number, related by $N$, $D$ and $\ln 2$.

# %%
assert abs(summed - N * per_image) < 1e-5 * summed
assert abs(per_pixel * D - per_image) < 1e-9 * per_image
assert abs(bits_per_dim * D * np.log(2) - per_image) < 1e-9 * per_image

# %% [markdown]
# ### Where the conventions bite: $\beta$
#
# Converting a printout is harmless. Mixing conventions *inside* a loss is not. A common
# mistake takes a deep-learning library's pixel cross-entropy, which by default averages over
# pixels, and adds the KL summed over latent dimensions:
#
# $$L_{\text{mixed}}(x) = \frac1D \sum_d \mathrm{BCE}_d + \mathrm{KL}
#   = \frac1D\Big(\sum_d \mathrm{BCE}_d + D\,\mathrm{KL}\Big).$$
#
# The overall factor $1/D$ only rescales the gradient (Adam even undoes it). What remains is a
# VAE with $\beta = D = 784$: each nat of information in the code now costs as much as 784
# nats of reconstruction. **Check** with gradients: the mixed loss's gradient is the gradient
# of `VAE(beta=784)` divided by 784.

# %%
def mixed_recon(logits, x):
    """The per-pixel *mean* cross-entropy: the sum divided by D."""
    nll, dlogits = losses.bernoulli_nll(logits, x)
    return nll / D, dlogits / D


for layer in (encoder, decoder):
    layer.zero_grad()
loss_mixed = hand_loss(x64, eps, recon_fn=mixed_recon)
hand_backward()
vae_beta = VAE(D, hidden=(H,), z_dim=Z, beta=D, dtype=f64, rng=1)   # same parameters as vae64
vae_beta.zero_grad()
loss_beta = vae_beta.loss(x64, eps)
vae_beta.backward()
err = max(rel_error(grads_hand[k], g / D) for k, g in vae_beta.grads.items())
print(f"mixed loss {loss_mixed:.6f} = VAE(beta={D}) loss / {D} = {loss_beta / D:.6f};  "
      f"gradients: relative error {err:.1e}")
assert abs(loss_mixed - loss_beta / D) < 1e-10 and err < 1e-7

# %% [markdown]
# What does $\beta = 784$ do? We will see after training in section 3: it switches the latent
# code off.
#
# ## 3. Training
#
# The training loop is the library's: `minivae.train.fit(model, x, optimizer, epochs,
# batch_size, rng, callbacks)`, the same function `python -m minivae train` runs, with run
# folders, checkpoints and resuming wrapped around it as callbacks. Here it is in full. Each
# epoch draws a fresh shuffle; each minibatch is one forward pass (`model.loss`), one
# backward pass and one optimizer step; the epoch's row of `history` holds the means of the
# loss and of its terms (`model.last`) over the epoch's examples.

# %%
print(inspect.getsource(fit))

# %% [markdown]
# A **callback** is any object with some of the methods `epoch_begin`, `batch_begin`,
# `batch_end`, `epoch_end`; `fit` calls them with its `Progress`, `p`. Ours evaluates on test
# images after each epoch and adds the numbers to the epoch's row, `p.history[-1]`:
# `minivae.evaluate.evaluate` returns the mean negative ELBO (`nelbo`, with $\beta = 1$), its
# two terms and more.

# %%
class TestLoss:
    """fit's callback: after each epoch, the test recon, KL and loss go into the epoch's row."""

    def __init__(self, vae, x_eval):
        self.vae, self.x_eval = vae, x_eval

    def epoch_end(self, p):
        ev = evaluate(self.vae, self.x_eval, rng=np.random.default_rng(p.epoch))
        row = p.history[-1]                                 # {"epoch", "train_loss", ...}
        row.update(test_recon=ev["recon"], test_kl=ev["kl"],
                   test_loss=ev["recon"] + self.vae.beta * ev["kl"])
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.2f}  "
              f"test recon {ev['recon']:.2f}  test KL {ev['kl']:.2f}")


loss_at_start = evaluate(vae, x_test, rng=np.random.default_rng(0))["nelbo"]
history = fit(vae, x_train, Adam(vae.params, lr=LR), EPOCHS, BATCH, rng=1,
              callbacks=[TestLoss(vae, x_test)])
figures.plot_loss_curves(history)
plt.show()

# %% [markdown]
# **Check:** training worked: the test loss fell far below where it started (about 550 nats:
# logits near 0 make every pixel a coin flip, $784 \ln 2 = 543$ nats, plus a small KL), and
# the model uses its latent code (KL well above zero).

# %%
final = history[-1]
print(f"test negative ELBO: {loss_at_start:.1f} at the start -> {final['test_loss']:.1f}")
assert final["test_loss"] < (175 if FAST else 110)
assert final["test_kl"] > 10

# %% [markdown]
# ### Evaluation
#
# `evaluate` also estimates $-\log p(x)$ itself, with the importance-weighted bound (Burda et
# al. 2015) that lesson 9 derives and checks: $k$ samples from $q(z\mid x)$, a bound tighter
# than the ELBO, $-\log p(x) \le \text{NLL}_k \le \text{negative ELBO}$ (in expectation over
# the samples).

# %%
ev = evaluate(vae, x_test[:1000], iwae_k=IWAE_K, rng=np.random.default_rng(5))
print(f"on 1000 test images: negative ELBO {ev['nelbo']:.2f} = recon {ev['recon']:.2f} "
      f"+ KL {ev['kl']:.2f};  NLL (IWAE, k={IWAE_K}) {ev['nll']:.2f};  "
      f"active units {ev['active_units']}/{Z}")
assert ev["nll"] < ev["nelbo"]
assert abs(ev["nelbo"] - (ev["recon"] + ev["kl"])) < 1e-6 * ev["nelbo"]

# %% [markdown]
# Reconstructions $\text{decode}(\mu(x))$ of test digits, and samples: decoder outputs at
# $z \sim \mathcal N(0, I)$. As usual, we show the Bernoulli *probabilities* rather than
# binary draws from them.

# %%
figures.plot_reconstructions(vae, x_test[:32], SHAPE, nrow=8)
figures.plot_samples(vae, SHAPE, n=64, rng=np.random.default_rng(6), nrow=8)
plt.show()

# %% [markdown]
# **Check:** a reconstruction is closer to its own input than to the other inputs (on
# average over 500 test digits, in squared error), so the code carries what is specific to
# each image, not just "a digit".

# %%
xs = x_test[:500]
rec = vae.reconstruct(xs).astype(f64)                               # (500, 784)
dist = ((rec ** 2).sum(axis=1)[:, None] - 2 * rec @ xs.T.astype(f64)
        + (xs.astype(f64) ** 2).sum(axis=1)[None, :])               # (500, 500) |rec_i - x_j|^2
own, others = np.diag(dist).mean(), dist[~np.eye(500, dtype=bool)].mean()
print(f"squared error to its own input {own:.1f}, to other inputs {others:.1f}")
assert own < 0.5 * others

# %% [markdown]
# ### Back to $\beta = 784$
#
# Now the model of the mixed-convention loss, trained for one epoch the same way. Its KL
# goes to almost zero: the encoder outputs nearly the prior for every image, the decoder
# learns to ignore $z$, and every "reconstruction" is the same average digit. This is
# **posterior collapse**, here caused by nothing but a convention (lesson 7 studies it).

# %%
vae_mixed = VAE(D, hidden=(H,), z_dim=Z, beta=D, rng=0)
fit(vae_mixed, x_train, Adam(vae_mixed.params, lr=LR), 1, BATCH, rng=1,
    callbacks=[TestLoss(vae_mixed, x_test)])
ev_mixed = evaluate(vae_mixed, x_test, rng=np.random.default_rng(7))
figures.plot_reconstructions(vae_mixed, x_test[:16], SHAPE, nrow=8)
plt.show()
rec_mixed = vae_mixed.reconstruct(x_test[:500])
spread = rec_mixed.std(axis=0).mean() / rec.std(axis=0).mean()
print(f"beta = {D}: KL {ev_mixed['kl']:.3f} nats (beta = 1: {final['test_kl']:.1f});  "
      f"reconstructions vary {spread:.1%} as much across images")

# %%
assert ev_mixed["kl"] < 1.0
assert spread < 0.2

# %% [markdown]
# ## 4. A two-dimensional latent space
#
# With $Z = 2$ we can look at the whole latent space. Two pictures:
#
# * **the manifold**: decode a grid of $z$ values. The grid is spaced by prior probability,
#   $z = \Phi^{-1}(p)$ for $p$ from 5% to 95%, so each cell holds the same prior mass;
# * **the codes**: $\mu(x)$ of test digits, coloured by their label (which the VAE never saw).

# %%
vae2 = VAE(D, hidden=(H,), z_dim=2, rng=0)
history2 = fit(vae2, x_train, Adam(vae2.params, lr=LR), EPOCHS_2D, BATCH, rng=1,
               callbacks=[TestLoss(vae2, x_test)])
figures.plot_manifold(vae2, SHAPE, n=20)
figures.plot_latent_scatter(vae2, x_test[:5000], y_test[:5000])
plt.show()

# %% [markdown]
# **Check:** digits of the same class land together. A "classifier" that assigns each code
# to the nearest class centre in the 2-D latent space, with centres from training codes,
# gets test digits right far more often than the 10% of chance. (It is not perfect: 4 and 9,
# 3, 5 and 8 overlap; with only two numbers per image, the VAE spends them on what explains
# the most pixels.) And the codes spread on the scale of the prior $\mathcal N(0, I)$: a
# standard deviation between 0.5 and 2 in each dimension, neither squeezed to a point nor
# scattered far away. The KL term holds them there (lesson 7 makes this exact).

# %%
mu_train = vae2.encode(x_train)[0].astype(f64)                      # (N, 2)
mu_test = vae2.encode(x_test)[0].astype(f64)
centres = np.stack([mu_train[y_train == c].mean(axis=0) for c in range(10)])   # (10, 2)
nearest = ((mu_test[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
accuracy = float((nearest == y_test).mean())
print(f"nearest-centre accuracy in the 2-D latent space: {accuracy:.1%};  "
      f"std of mu per dimension: {np.round(mu_test.std(axis=0), 2)}")
assert accuracy > (0.3 if FAST else 0.45)                          # chance: 10%
assert np.all((mu_test.std(axis=0) > 0.5) & (mu_test.std(axis=0) < 2.0))

# %% [markdown]
# The manifold shows the two properties a latent space needs for generating, named in many
# lecture notes on VAEs. **Continuity**: nearby codes decode to similar images, so the grid
# changes gradually from cell to cell. **Completeness**: every code the prior proposes decodes
# to something digit-like, with no blank or garbled cells. The KL term asks for both: it makes
# each code a cloud $q(z \mid x)$ rather than a point, so the decoder must answer sensibly all
# around it, and it keeps the clouds where the prior samples. **Check** continuity: the squared
# distance between neighbouring cells of the 20 x 20 grid is a small fraction of the distance
# between two random cells. (Lesson 7 measures where completeness fails: the holes of $q(z)$.)

# %%
quantiles = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 20)])
z_grid = np.stack(np.meshgrid(quantiles, quantiles), axis=-1).reshape(-1, 2).astype(np.float32)
cells = vae2.decode(z_grid).astype(f64).reshape(20, 20, D)          # (row, column, pixels)
neighbour = np.mean(np.sum(np.diff(cells, axis=1) ** 2, axis=2))     # one step along z0
pairs = np.random.default_rng(9).integers(0, 400, size=(2, 2000))
flat_cells = cells.reshape(400, D)
random_pair = np.mean(np.sum((flat_cells[pairs[0]] - flat_cells[pairs[1]]) ** 2, axis=1))
print(f"squared distance between neighbouring cells {neighbour:.2f}, between random cells "
      f"{random_pair:.2f}")
assert neighbour < 0.2 * random_pair

# %% [markdown]
# ## 5. What the number on grey-level MNIST means
#
# We trained on the **grey-level** images with a Bernoulli likelihood, a common shortcut (the
# PyTorch VAE example does the same). A Bernoulli is a distribution over 0/1 pixels, so for a
# grey value $x_d \in (0, 1)$ the "negative log-likelihood" $\mathrm{softplus}(\ell_d) - x_d\ell_d$
# is a cross-entropy, not the log of a density of $x$. Two facts tell us how to read it.
#
# **A floor.** For a grey value the cross-entropy is smallest when the predicted probability
# equals $x_d$ (its derivative $\mathrm{sigmoid}(\ell) - x_d$ vanishes there), and the minimum is the
# binary entropy
#
# $$\min_{\ell}\; \mathrm{softplus}(\ell) - x_d\,\ell = \mathbb{H}(x_d) = -x_d \log x_d - (1 - x_d)\log(1 - x_d)
#   \quad\text{at}\quad \ell = \log\frac{x_d}{1 - x_d}.$$
#
# No model, however good, scores below $\sum_d \mathbb{H}(x_d)$ on an image: part of the loss has nothing
# to do with modelling.
#
# **An average over binarizations.** The cross-entropy is *linear* in the target, so for any
# prediction it equals the expected loss over random binarizations $b_d \sim \mathrm{Bernoulli}(x_d)$
# of the image: $\mathbb{E}_b[\mathrm{softplus}(\ell) - b\,\ell] = \mathrm{softplus}(\ell) - x\,\ell$.
# So the grey-level loss is what a decoder would pay, on average, on **dynamically binarized**
# MNIST (a fresh binarization each time, `minivae train --binarize dynamic`), the setting in
# which the VAE literature reports about 87 nats (Burda et al. 2015; with a much longer
# training and $k = 5000$ importance samples). There the floor is the unpredictable noise of the
# binarization.
#
# **Check** both with `bernoulli_nll`: the floor at the optimal logits (and a zero gradient
# there), and the average over 2,000 binarizations against the grey-level loss of our model's
# decoder output.

# %%
xt = x_test.astype(f64)
inner = (xt > 0) & (xt < 1)                                         # grey pixels
p = np.where(inner, xt, 0.5)                                        # avoid log 0 at 0/1 pixels
entropy = -(np.where(inner, xt * np.log(p) + (1 - xt) * np.log(1 - p), 0.0)).sum(axis=1)
best_logits = np.where(inner, np.log(p / (1 - p)), np.where(xt > 0.5, 40.0, -40.0))
floor, dbest = losses.bernoulli_nll(best_logits, xt)
print(f"grey pixels per image: {inner.sum(axis=1).mean():.0f};  the floor: "
      f"{entropy.mean():.1f} nats per image on average")
assert np.allclose(floor, entropy, atol=1e-10 * D)                  # the minimum is the entropy
assert np.max(np.abs(dbest)) < 1e-12                                # and the gradient is 0 there
assert ev["recon"] > entropy[:1000].mean()

n_bin = 2_000
logits_one = vae.decoder.forward(vae.encode(x_test[:1])[0].copy()).astype(f64)   # (1, 784)
grey_loss = losses.bernoulli_nll(logits_one, xt[:1])[0][0]
b = data.dynamic_binarize(np.repeat(x_test[:1], n_bin, axis=0), np.random.default_rng(8))
binary_losses = losses.bernoulli_nll(np.repeat(logits_one, n_bin, axis=0), b.astype(f64))[0]
se = binary_losses.std(ddof=1) / np.sqrt(n_bin)
print(f"one test digit: grey-level loss {grey_loss:.2f}; mean over {n_bin} binarizations "
      f"{binary_losses.mean():.2f} +- {se:.2f}")
assert abs(binary_losses.mean() - grey_loss) < 4 * se

# %% [markdown]
# So our number is roughly comparable with results on dynamically binarized MNIST, up to the
# encoder seeing grey levels instead of noisy binary images, a short training and a small $k$.
# It is **not** comparable with results on the *statically* binarized set
# (`data.load("binarized-mnist")`, one fixed binarization, about 90 nats for this kind of
# VAE), a different data set.
#
# ## 6. Squared error + KL is a Gaussian decoder
#
# Many VAE examples train with the squared error plus the KL, $L = \lVert x - \hat x\rVert^2 +
# \beta\,\mathrm{KL}$, without naming a likelihood (a McMaster lecture calls it the "simplified
# VAE"). It is a VAE with a Gaussian decoder, $p(x \mid z) = \mathcal N(\hat x, s^2 I)$, whose
# negative log-likelihood is $\frac D2 \log 2\pi s^2 + \lVert x - \hat x\rVert^2 / 2s^2$. So
#
# $$-\log p(x\mid z) + \mathrm{KL} = \frac{1}{2s^2}\Big(\lVert x - \hat x\rVert^2 + 2s^2\,\mathrm{KL}\Big) + \text{const}:$$
#
# up to a constant factor (which rescales the gradient, and which Adam almost undoes) the
# squared error plus $\beta$ KL is the Gaussian VAE with $s^2 = \beta / 2$, **$\beta_{\text{eff}}
# = 2s^2$**. Plain MSE + KL ($\beta = 1$) says the pixels carry Gaussian noise of standard
# deviation $s = 1/\sqrt 2 \approx 0.71$, on images whose pixels lie in $[0, 1]$: the decoder
# claims to explain little, and the KL weighs heavily.
#
# **A learned decoder variance.** Nothing forces us to guess $s$. For a fixed decoder mean,
# the $s^2$ that minimises the negative log-likelihood of $N$ images, $\frac{ND}2 \log s^2 +
# \sum_n \lVert x_n - \hat x_n\rVert^2 / 2s^2$, is $s_\star^2 = \frac{1}{ND}\sum_n \lVert x_n -
# \hat x_n\rVert^2$, the mean squared error per pixel. Learning $s$ with the model (one shared
# number, as in the $\sigma$-VAE of Rybkin et al. 2021) therefore sets $\beta_{\text{eff}} =
# 2s_\star^2$ to what the decoder actually achieves. A *per-pixel* learned variance
# (`VAE(likelihood="gaussian-learned")`) needs care on MNIST: a pixel that is 0 in every image
# is predicted exactly, its variance can shrink without end, and the negative log-likelihood
# falls to $-\infty$.
#
# **Check** the three claims: the gradient of MSE + $2s^2$ KL is $2s^2$ times the Gaussian VAE's,
# to $10^{-7}$; the negative log-likelihood's derivative in the shared log-variance is zero at
# $s_\star^2$; and the loss of an exactly predicted pixel falls without bound as its variance
# shrinks.

# %%
def mse_recon(out, x):
    """The squared error summed over pixels, and its gradient: losses.mse."""
    return losses.mse(out, x)


s_dec = 0.3                                                       # a decoder standard deviation
vae_gauss = VAE(D, hidden=(H,), z_dim=Z, likelihood="gaussian", sigma=s_dec, dtype=f64, rng=1)
for part, mine in (("encoder", encoder), ("decoder", decoder)):   # the same weights as ours
    for name, prm in mine.params.items():
        prm[...] = vae_gauss.params[f"{part}.{name}"]
for layer in (encoder, decoder):
    layer.zero_grad()
hand_loss(x64, eps, beta=2 * s_dec ** 2, recon_fn=mse_recon)
hand_backward()
vae_gauss.zero_grad()
vae_gauss.loss(x64, eps)
vae_gauss.backward()
err_mse = max(rel_error(g_hand, 2 * s_dec ** 2 * vae_gauss.grads[f"{part}.{k}"])
              for part, mine in (("encoder", encoder), ("decoder", decoder))
              for k, g_hand in mine.grads.items())
print(f"MSE + {2 * s_dec ** 2:.2f} KL against 2 s^2 x Gaussian VAE (s = {s_dec}): gradients "
      f"agree to {err_mse:.1e}")

x_hat = vae_gauss.reconstruct(x64)                                # a decoder mean, (64, D)
s2_star = np.mean((x64 - x_hat) ** 2)                             # mean squared error per pixel
dlogvar_star = losses.gaussian_nll(x_hat, np.log(s2_star), x64)[1][1]   # d(sum NLL) / d log s^2
nll_black = [float(losses.gaussian_nll(np.zeros((1, 1)), v, np.zeros((1, 1)))[0][0])
             for v in (-10.0, -20.0, -40.0)]
print(f"s_star^2 = {s2_star:.4f}: d NLL / d log s^2 there {dlogvar_star:.1e};  an exactly "
      f"predicted pixel at log s^2 = -10, -20, -40: {np.round(nll_black, 2)}")

# %%
assert err_mse < 1e-7                                             # beta_eff = 2 s^2
assert abs(dlogvar_star) < 1e-8 * len(x64) * D                    # s_star^2 = the MSE per pixel
assert nll_black[0] > nll_black[1] > nll_black[2] and abs(nll_black[1] - nll_black[2] - 10) < 1e-9

# %% [markdown]
# **Sample quality as $\beta_{\text{eff}}$ changes.** Train three Gaussian VAEs, $s = 0.1$, $0.71$
# and $1.5$, that is $\beta_{\text{eff}} = 0.02$, $1$ and $4.5$, and look at their samples.
# As the KL term is enforced more strongly, the code carries less (the KL falls), the
# reconstructions get worse, and the samples get **blurrier and less varied**, the loss of
# "generated image quality" a PIRSA lecture on VAEs warns of: we measure the
# blur by the samples' edge energy (the summed squared differences between neighbouring
# pixels) and the variety by the spread of the samples, the mean over pixels of their standard
# deviation across samples. At the small $\beta_{\text{eff}}$ the samples are not good either:
# usually noisy, with more edge energy than real digits, because the codes leave holes where
# the prior samples (lesson 7). For each model we also print $s_\star$, the standard deviation
# its reconstructions actually achieve: the MSE + KL model's $s_\star$ is far below the
# $0.71$ its loss assumes.
#
# **Check:** along the three models the KL falls, the reconstruction error rises, and the
# samples' edge energy and spread fall.

# %%
S_DECODER = (0.1, 1 / np.sqrt(2), 1.5)                            # beta_eff = 0.02, 1, 4.5


def edge_energy(images):
    """Mean over images of the summed squared differences of neighbouring pixels."""
    im = images.astype(f64).reshape(-1, *SHAPE)
    return float((np.diff(im, axis=1) ** 2).sum(axis=(1, 2)).mean()
                 + (np.diff(im, axis=2) ** 2).sum(axis=(1, 2)).mean())


sweep = {}
for s_ in S_DECODER:
    model = VAE(D, hidden=(H,), z_dim=Z, likelihood="gaussian", sigma=s_, rng=0)
    fit(model, x_train, Adam(model.params, lr=LR), EPOCHS_SWEEP, BATCH, rng=1)
    rec_ = model.reconstruct(x_test).astype(f64)
    mse_ = float(np.mean(np.sum((rec_ - x_test) ** 2, axis=1)))
    samples_ = model.sample(500, rng=np.random.default_rng(10))
    sweep[s_] = {"kl": evaluate(model, x_test, rng=np.random.default_rng(11))["kl"], "mse": mse_,
                 "edges": edge_energy(samples_), "spread": float(samples_.std(axis=0).mean()),
                 "s_star": np.sqrt(mse_ / D), "samples": samples_[:12]}
    print(f"s = {s_:.2f} (beta_eff {2 * s_ ** 2:4.2f}): KL {sweep[s_]['kl']:5.1f}  squared error "
          f"{mse_:5.1f}  s_star {sweep[s_]['s_star']:.3f}  samples: edge energy "
          f"{sweep[s_]['edges']:5.1f}, spread {sweep[s_]['spread']:.3f}")
print(f"real test digits: edge energy {edge_energy(x_test):.1f}")
fig = figures.plot_images(np.concatenate([sweep[s_]["samples"] for s_ in S_DECODER]), SHAPE,
                          nrow=12, title="samples; rows: beta_eff = 0.02, 1, 4.5")
plt.show()

# %%
rows = [sweep[s_] for s_ in S_DECODER]
for key, sign in (("kl", -1), ("mse", 1), ("edges", -1), ("spread", -1)):
    values = np.array([r[key] for r in rows])
    assert np.all(sign * np.diff(values) > 0), (key, values)
assert sweep[1 / np.sqrt(2)]["s_star"] < 0.5 / np.sqrt(2)         # MSE + KL assumes far too much noise

# %% [markdown]
# ## Exercises
#
# Exercise 1 came in section 1. Each exercise has a cell for your code, which starts as a stub,
# and a check cell that fails until your code is right. This file also holds a worked solution
# after each stub; the exercise version of the lesson, made by `python lessons/course.py
# versions`, leaves the solutions out (lessons/README.md, "Exercises").
#
# **Exercise 2. Read other people's printouts.** Three notebooks train VAEs on MNIST and print
# (a) `loss: 13440.0` for a batch of 128, the sum over the batch; (b) `loss: 0.1301`, the
# mean over pixels and the batch; (c) `0.25 bits/dim`. Convert each to nats per image, and
# say which model is best (assume each printed the full negative ELBO with $\beta = 1$).

# %% tags=["exercise"]
nats = None                                      # your code: {"a": ..., "b": ..., "c": ...}
best = None                                      # your code: "a", "b" or "c"

# %% tags=["solution"]
# Solution.
nats = {"a": 13440.0 / 128, "b": 0.1301 * D, "c": 0.25 * D * float(np.log(2))}
best = min(nats, key=nats.get)
print({k: round(v, 1) for k, v in nats.items()}, "-> best:", best)

# %%
assert abs(nats["a"] - 105.0) < 0.1 and abs(nats["b"] - 102.0) < 0.1
assert abs(nats["c"] - 135.86) < 0.1 and best == "b"

# %% [markdown]
# **Exercise 3. A Gaussian decoder.** Replace the Bernoulli likelihood of the hand-built VAE
# by a Gaussian with a fixed standard deviation $s = 0.1$:
# $-\log p(x\mid z) = \sum_d \frac12\big(\log 2\pi s^2 + (x_d - m_d)^2/s^2\big)$, with the
# decoder output as the mean $m$. Write `gaussian_recon(out, x)` with `losses.gaussian_nll`,
# returning the per-example values and their gradient w.r.t. `out`; the check shows that
# `hand_loss`/`hand_backward` with it match `VAE(likelihood="gaussian", sigma=0.1)`.

# %% tags=["exercise"]
def gaussian_recon(out, x, s=0.1):
    """-log N(x | out, s^2 I) per example (N,), and its gradient w.r.t. out (N, D)."""
    return None, None                            # your code

# %% tags=["solution"]
# Solution. gaussian_nll(mean, logvar, x) takes the log-variance: log s^2 = 2 log s.
def gaussian_recon(out, x, s=0.1):
    """-log N(x | out, s^2 I) per example (N,), and its gradient w.r.t. out (N, D)."""
    nll, (dmean, _) = losses.gaussian_nll(out, 2 * np.log(s), x)
    return nll, dmean

# %%
vae_g = VAE(D, hidden=(H,), z_dim=Z, likelihood="gaussian", sigma=0.1, dtype=f64, rng=1)
for part, mine in (("encoder", encoder), ("decoder", decoder)):   # the same weights as ours
    for name, prm in mine.params.items():
        prm[...] = vae_g.params[f"{part}.{name}"]
for layer in (encoder, decoder):
    layer.zero_grad()
loss_g_hand = hand_loss(x64, eps, recon_fn=gaussian_recon)
hand_backward()
vae_g.zero_grad()
loss_g = vae_g.loss(x64, eps)
vae_g.backward()
err_g = max(rel_error(g_hand, vae_g.grads[f"{part}.{k}"])
            for part, mine in (("encoder", encoder), ("decoder", decoder))
            for k, g_hand in mine.grads.items())
assert abs(loss_g_hand - loss_g) <= 1e-7 * abs(loss_g) and err_g < 1e-7
print(f"Gaussian decoder: loss {loss_g:.4f} both ways, gradients agree to {err_g:.1e}")

# %% [markdown]
# **Exercise 4. Where a straight line between two codes goes.** Interpolating between the
# codes of two digits (`figures.plot_interpolation`) walks a straight line through the latent
# space. (a) For $z_a, z_b$ independent draws of the prior $\mathcal N(0, I_Z)$, show that
# $\mathbb{E}\lVert (1-t) z_a + t z_b\rVert^2 = \big((1-t)^2 + t^2\big) Z$: the midpoint has
# *half* the squared norm of a typical code, a region the prior rarely visits in high
# dimension (where $\lVert z\rVert^2$ concentrates near $Z$). Write `line_sq_norm(t, Z)`.
# (b) Spherical interpolation, `slerp(a, b, t)` $= \frac{\sin((1-t)\Omega)}{\sin\Omega} a +
# \frac{\sin(t\Omega)}{\sin\Omega} b$ with $\cos\Omega = \frac{a\cdot b}{\lVert a\rVert \lVert b\rVert}$,
# keeps the norm when $\lVert a \rVert = \lVert b\rVert$ (White 2016). Write it. The check uses
# prior draws, the trained model's codes and your two functions.

# %% tags=["exercise"]
def line_sq_norm(t, Z):
    """E |(1 - t) z_a + t z_b|^2 for independent z_a, z_b ~ N(0, I_Z)."""
    return None                                  # your code


def slerp(a, b, t):
    """Spherical interpolation between vectors a and b (Z,), at t in [0, 1]."""
    return None                                  # your code

# %% tags=["solution"]
# Solution. (a) E|(1-t) z_a + t z_b|^2 = (1-t)^2 E|z_a|^2 + t^2 E|z_b|^2 + 2 t (1-t) E[z_a . z_b]
# = ((1-t)^2 + t^2) Z, since E|z|^2 = Z and E[z_a . z_b] = 0 for independent centred codes.
def line_sq_norm(t, Z):
    """E |(1 - t) z_a + t z_b|^2 for independent z_a, z_b ~ N(0, I_Z)."""
    return ((1 - t) ** 2 + t ** 2) * Z


def slerp(a, b, t):
    """Spherical interpolation between vectors a and b (Z,), at t in [0, 1]."""
    omega = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)

# %%
line_rng = np.random.default_rng(12)
z_a, z_b = line_rng.standard_normal((2, 20_000, Z))              # pairs of prior draws
sq_mid = np.sum((0.5 * z_a + 0.5 * z_b) ** 2, axis=1)
print(f"prior draws, t = 0.5: mean |z|^2 {sq_mid.mean():.3f} +- "
      f"{sq_mid.std() / np.sqrt(len(sq_mid)):.3f}, predicted {line_sq_norm(0.5, Z)}")
assert abs(sq_mid.mean() - line_sq_norm(0.5, Z)) < 4 * sq_mid.std() / np.sqrt(len(sq_mid))
assert line_sq_norm(0.0, Z) == line_sq_norm(1.0, Z) == Z
mu_codes = vae.encode(x_test[:400])[0].astype(f64)                # the trained model's codes
ends = np.mean(np.sum(mu_codes ** 2, axis=1))
mids = np.mean(np.sum((0.5 * mu_codes[:200] + 0.5 * mu_codes[200:]) ** 2, axis=1))
print(f"trained codes: mean |mu|^2 {ends:.2f} at the ends, {mids:.2f} at the midpoints")
assert mids < 0.7 * ends                                         # the midpoints sit inside
a_, b_ = mu_codes[0], mu_codes[1] * np.linalg.norm(mu_codes[0]) / np.linalg.norm(mu_codes[1])
path = np.array([slerp(a_, b_, t) for t in np.linspace(0, 1, 11)])
assert np.allclose(path[0], a_) and np.allclose(path[-1], b_)
assert np.allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a_), rtol=1e-10)

# %% [markdown]
# ## Summary
#
# * A VAE is four library pieces: encoder, `Reparameterize`, decoder, `bernoulli_nll` +
#   `gaussian_kl`. Its backward is the chain rule through them, with $\mu$ and logvar fed by
#   two paths. `minivae.models.VAE` is the same code, and matches ours to $10^{-7}$.
# * It trains with `minivae.train.fit`, one screen of code; what a lesson (or a long run)
#   wants besides, such as a test loss each epoch, comes in as a callback.
# * minivae's loss is nats **per image**: summed over pixels and latent dimensions, averaged
#   over the batch, with $\beta$ on the KL. Sum over the batch: $\times N$; mean over pixels:
#   $/D$; bits per dimension: $/(D \ln 2)$.
# * Averaging the reconstruction over pixels but summing the KL is a $\beta = D$ VAE, and it
#   collapses.
# * A 2-D VAE arranges digits by class without seeing labels, and fills the prior's region.
# * On grey levels the Bernoulli loss has a floor, $\sum_d \mathbb{H}(x_d)$, and equals the average
#   loss over random binarizations: compare it with dynamically binarized MNIST, not the static set.
# * The squared error plus $\beta$ KL is a Gaussian decoder with $\beta_{\text{eff}} = 2s^2$; the
#   shared $s^2$ that fits best is the mean squared error per pixel. A stronger KL term gives
#   blurrier, less varied samples; a weak one, noisy samples from the holes of $q(z)$.
#
# Lesson 7 looks at what the KL term does to the latent space as a whole: the aggregate
# posterior, the variance law, inactive dimensions and the holes. Lesson 8 then turns $\beta$
# into a tool: on images whose generating factors are known, larger $\beta$ trades
# reconstruction for a code whose dimensions line up with those factors.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Kingma & Welling 2014 (the VAE and its MNIST
# experiments); Burda et al. 2015 (the importance-weighted bound, and the numbers on
# binarized MNIST); Rybkin et al. 2021 (a learned decoder variance); White 2016 (spherical
# interpolation); Louppe's lecture 7 (the VAE as a course presents it).
