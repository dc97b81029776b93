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
# # Lesson 11: Generative adversarial networks and matching the aggregate posterior
#
# A VAE learns to generate by learning to encode: every image gets a posterior $q(z \mid x)$,
# and the KL term pulls each one towards the prior. Two other ways to train a generator
# $G: z \mapsto x$ drop pieces of that. A **generative adversarial network** has no encoder at
# all: a second network, the discriminator, learns to tell real images from generated ones, and
# the generator learns to fool it. A **Wasserstein autoencoder** keeps the encoder but asks less
# of it: not that each $q(z \mid x)$ look like the prior, only that all the codes together do.
#
# You will see:
#
# 1. the **minimax game** $\min_G \max_D V(D, G)$, its losses and their gradients, built from
#    minivae's layers and trained by `minivae.train.fit_gan`;
# 2. the **optimal discriminator** $D^* = p_\text{data} / (p_\text{data} + p_g)$, derived, and
#    approached by a trained discriminator on a 1-D mixture whose density is known;
# 3. the **Jensen-Shannon identity** $V(D^*, G) = 2\,\mathrm{JS}(p_\text{data} \| p_g) - \log 4$,
#    checked on a grid, and the **saturating** generator loss whose gradient vanishes when the
#    discriminator wins, measured;
# 4. **mode collapse** on a ring of 8 Gaussians, counted;
# 5. the **WAE**: the maximum mean discrepancy (MMD) between the codes and the prior, its
#    unbiased estimator and gradient, checked against a closed form; then the WAE and the VAE
#    on MNIST side by side: the aggregate posterior's moments, the variance law,
#    reconstructions and samples;
# 6. **one number for sample quality**, computed by minivae: the MMD between samples and test
#    images in the features of a classifier that minivae trains, for the VAE, the WAE and a GAN.

# %%
import inspect
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import data, figures, losses
from minivae.evaluate import variance_law
from minivae.gradcheck import check_grad, check_model
from minivae.mixtures import IsotropicMixture, modes_covered, ring
from minivae.mmd import mmd, mmd2_gaussians_rbf
from minivae.models import GAN, VAE, WAE
from minivae.optim import Adam
from minivae.quality import FeatureClassifier, sample_mmd
from minivae.train import fit, fit_gan

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 5_000 if FAST else 60_000            # MNIST training images used
EPOCHS = 5 if FAST else 10                     # passes over them for the VAE, WAE, classifier
GAN_EPOCHS = 3 if FAST else 10                 # and for the MNIST GAN (slow to learn)
BATCH = 64                                     # examples per gradient step
N_REF = 2_000                                  # test images in each sample-quality score
f64 = np.float64
rng = np.random.default_rng(0)


def adam(params, lr):
    """Adam with beta1 = 0.5, the usual choice for GANs (a shorter memory of old gradients)."""
    return Adam(params, lr=lr, betas=(0.5, 0.999))


# %% [markdown]
# ## 1. The game
#
# The generator $G$ maps noise $z \sim \mathcal N(0, I)$ to data space; its samples have some
# density $p_g$. The discriminator $D$ maps $x$ to a logit $l$, and $D(x) = \sigma(l)$ is the
# probability it gives to "$x$ is real". The two play
#
# $$\min_G \max_D V(D, G), \qquad
#   V(D, G) = \mathbb E_{x \sim p_\text{data}} \log D(x) + \mathbb E_{z} \log\bigl(1 - D(G(z))\bigr).$$
#
# $D$ maximises $V$: that is logistic regression, real against generated. Its loss is the
# binary cross-entropy with label $y = 1$ for real and $y = 0$ for generated,
# $\mathrm{bce}(l, y) = \mathrm{softplus}(l) - y\,l$, whose gradient is $\sigma(l) - y$:
# $\mathrm{bce}(l, 1) = -\log D$ and $\mathrm{bce}(l, 0) = -\log(1 - D)$, so the batch mean of
# the discriminator's loss estimates $-V$. $G$ minimises $V$, that is
# $\mathbb E_z \log(1 - D(G(z)))$: the **minimax** generator loss, with $dJ/dl = -\sigma(l)$.
# In practice one uses the **non-saturating** loss $-\log D(G(z))$ instead, with
# $dJ/dl = \sigma(l) - 1$; section 3 shows why. All three live in `minivae.losses`.

# %%
l = np.array([[-30.0], [-2.0], [0.0], [2.0], [30.0]])            # five logits, (N, 1)
D = 1 / (1 + np.exp(-l))
minus_log_D = np.logaddexp(0, -l)[:, 0]               # -log D = log(1 + e^-l), to the last bit
minus_log_1m_D = np.logaddexp(0, l)[:, 0]             # -log(1 - D) = log(1 + e^l)
bce_real, d_real = losses.bce_with_logits(l, np.ones_like(l))
bce_fake, d_fake = losses.bce_with_logits(l, np.zeros_like(l))
J_mm, dJ_mm = losses.minimax_generator_loss(l)
J_ns, dJ_ns = losses.nonsaturating_generator_loss(l)
np.testing.assert_allclose(bce_real, minus_log_D, rtol=1e-12)
np.testing.assert_allclose(bce_fake, minus_log_1m_D, rtol=1e-12)
np.testing.assert_allclose(J_mm, -minus_log_1m_D, rtol=1e-12)
np.testing.assert_allclose(J_ns, minus_log_D, rtol=1e-12)
np.testing.assert_allclose(dJ_mm, -D, rtol=1e-12)
np.testing.assert_allclose(dJ_ns, D - 1, rtol=1e-12, atol=1e-16)
for name, (J, dJ) in {"minimax": (J_mm, dJ_mm), "non-saturating": (J_ns, dJ_ns)}.items():
    print(f"{name:>15}: J = {np.round(J, 3)},  dJ/dl = {np.round(dJ[:, 0], 3)}")

# %% [markdown]
# `minivae.models.GAN` builds both networks from minivae's layers (`mlp`: `Dense` layers, a
# `Linear` last) and gives each step its own loss and backward pass. The discriminator's step
# runs real and generated rows through $D$ in one pass and differentiates w.r.t. $D$'s
# parameters only: $G(z)$ is a constant there. The generator's step runs $D$'s backward to get
# the gradient w.r.t. $G$'s output, then $G$'s backward; what $D$'s backward adds to $D$'s own
# gradients on the way belongs to $G$'s objective and is thrown away:

# %%
print(inspect.getsource(GAN.d_backward))
print(inspect.getsource(GAN.g_backward))

# %% [markdown]
# Each step's loss is a function of its own network's parameters, so each can be checked
# against central differences in float64, through the whole model: the generator's gradient
# passes through the discriminator.

# %%
small = GAN(4, 3, hidden=(5,), d_hidden=(6,), activation="tanh", d_activation="tanh", rng=1,
            dtype=f64)
x_small, z_small = rng.random((6, 4)), rng.standard_normal((6, 3))
small.zero_grad()
small.d_loss(x_small, z_small)
small.d_backward()
g_d = {k: g.copy() for k, g in small.discriminator.grads.items()}
err_d = max(check_grad(lambda: small.d_loss(x_small, z_small), p, g_d[k])
            for k, p in small.discriminator.params.items())
assert all(np.all(g == 0) for g in small.generator.grads.values())    # D's step: G untouched
small.zero_grad()
small.g_loss(z=z_small)
small.g_backward()
g_g = {k: g.copy() for k, g in small.generator.grads.items()}
err_g = max(check_grad(lambda: small.g_loss(z=z_small), p, g_g[k])
            for k, p in small.generator.params.items())
assert all(np.all(g == 0) for g in small.discriminator.grads.values())   # G's step: D's dropped
print(f"max relative error: discriminator step {err_d:.1e}, generator step {err_g:.1e}")
assert err_d < 1e-7 and err_g < 1e-7

# %% [markdown]
# The training loop is `fit`'s, with two steps in place of one; each optimizer holds one
# network's parameters, and either may be `None` to hold that network fixed:

# %%
print(inspect.getsource(fit_gan))

# %% [markdown]
# ## 2. The optimal discriminator
#
# Fix $G$. Writing both expectations as integrals over $x$,
#
# $$V(D, G) = \int \bigl[p_\text{data}(x) \log D(x) + p_g(x) \log(1 - D(x))\bigr]\, dx,$$
#
# and $D$ may choose $D(x)$ separately at every $x$. For $a, b \ge 0$ the function
# $y \mapsto a \log y + b \log(1 - y)$ on $(0, 1)$ has derivative $a/y - b/(1 - y)$, zero at
# $y = a / (a + b)$, and is concave, so that is its maximum. Hence
#
# $$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}.$$
#
# To check it we need $p_\text{data}$ and $p_g$. Take for $p_\text{data}$ a mixture of two
# Gaussians on the line, and for $G$ an affine map $G(z) = 1.5\,z + 0.5$ (a GAN with no hidden
# layer in its generator), so that $p_g = \mathcal N(0.5, 1.5^2)$ exactly. First the pointwise
# claim, on a grid: $D^*$ beats every perturbation of it.

# %%
p_data = IsotropicMixture([[-2.0], [2.0]], [0.5, 0.5], [0.4, 0.6])
grid = np.linspace(-20.0, 20.0, 40_001)                   # every density ~0 at the ends


def normal_pdf(x, mean, std):
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))


def value(D, pd, pg):
    """V(D, G) = int p_data log D + p_g log(1 - D) dx, by the trapezoid rule on the grid."""
    return np.trapezoid(pd * np.log(D) + pg * np.log1p(-D), grid)


pd, pg = p_data.pdf(grid[:, None]), normal_pdf(grid, 0.5, 1.5)
d_star = pd / (pd + pg)
v_star = value(d_star, pd, pg)
worse = [value(np.clip(d_star + 0.05 * rng.standard_normal(len(grid)), 1e-9, 1 - 1e-9), pd, pg)
         for _ in range(20)]
print(f"V(D*, G) = {v_star:.4f};  best of 20 perturbed D: {max(worse):.4f}")
assert max(worse) < v_star

# %% [markdown]
# Now a trained discriminator: an MLP (one hidden layer of 16 tanh units) trained by
# `fit_gan` with the generator held fixed (`g_optimizer=None`), on 2048 real samples and fresh
# fakes each step. It sees real and fake examples in equal numbers, so its error matters where
# $m = (p_\text{data} + p_g)/2$ has mass: we measure $\mathbb E_m |D - D^*|$.

# %%
def affine_gan(seed):
    gan = GAN(1, 1, hidden=(), d_hidden=(16,), output="identity", d_activation="tanh",
              rng=seed, dtype=f64)
    gan.generator.layers[0].params["W"][...] = 1.5           # G(z) = 1.5 z + 0.5
    gan.generator.layers[0].params["b"][...] = 0.5
    return gan


gan_1d = affine_gan(0)
x_1d, _ = p_data.sample(2048, rng, f64)
m = (pd + pg) / 2
distance = lambda gan: np.trapezoid(m * np.abs(gan.discriminate(grid[:, None]) - d_star), grid)
before = distance(gan_1d)
fit_gan(gan_1d, x_1d, Adam(gan_1d.discriminator.params, lr=0.01), None, 20, 64, rng=1)
after = distance(gan_1d)
print(f"E_m |D - D*|: {before:.3f} before training, {after:.3f} after")
assert after < 0.05 and after < before / 4

fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(grid, pd, label="$p_{data}$")
ax.plot(grid, pg, label="$p_g$")
ax.plot(grid, d_star, "k", label="$D^*$")
ax.plot(grid, gan_1d.discriminate(grid[:, None]), "r--", label="trained D")
ax.set_xlim(-6, 6)
ax.legend()
plt.show()

# %% [markdown]
# Where the data has mass and the generator has little, $D^*$ is near 1; in the gap between the
# two bumps it is near 0; far out, where there are neither real nor fake examples, the trained
# $D$ is free to do anything, and $D^*$ (a ratio of two tiny numbers) matters for nothing.
#
# ## 3. The Jensen-Shannon identity, and a gradient that vanishes
#
# Put $D^*$ back into $V$, and let $m = (p_\text{data} + p_g)/2$:
#
# $$V(D^*, G) = \mathbb E_{p_\text{data}} \log \frac{p_\text{data}}{2m}
#              + \mathbb E_{p_g} \log \frac{p_g}{2m}
#            = \mathrm{KL}(p_\text{data} \| m) + \mathrm{KL}(p_g \| m) - \log 4
#            = 2\,\mathrm{JS}(p_\text{data} \| p_g) - \log 4.$$
#
# So against an optimal discriminator the generator minimises the Jensen-Shannon divergence,
# which is $\ge 0$ with equality only at $p_g = p_\text{data}$: there $V = -\log 4$ and
# $D^* = 1/2$ everywhere. On the grid, for several generators and for $p_g = p_\text{data}$:

# %%
def js(a, b):
    """JS(a || b) = KL(a || m)/2 + KL(b || m)/2, m = (a + b)/2, on the grid."""
    mid = (a + b) / 2
    kl = lambda p: np.trapezoid(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / mid), 0), grid)
    return 0.5 * kl(a) + 0.5 * kl(b)


for name, q in {"N(0.5, 1.5^2)": pg, "N(0, 0.3^2)": normal_pdf(grid, 0.0, 0.3),
                "N(3, 2^2)": normal_pdf(grid, 3.0, 2.0), "p_data itself": pd}.items():
    ds = np.clip(pd / (pd + q), 1e-300, 1 - 1e-16)            # log 0 where a density is 0
    v, target = value(ds, pd, q), 2 * js(pd, q) - np.log(4)
    print(f"p_g = {name:>13}:  V(D*, G) = {v:.10f},  2 JS - log 4 = {target:.10f}")
    assert abs(v - target) < 1e-10
assert abs(value(np.full_like(pd, 0.5), pd, pd) + np.log(4)) < 1e-10       # the equilibrium

# %% [markdown]
# Any other $D$ gives less, so the trained discriminator's value is a lower bound on
# $2\,\mathrm{JS} - \log 4$, and training it tightens the bound: a discriminator is a
# divergence estimator.

# %%
v_trained = value(gan_1d.discriminate(grid[:, None]), pd, pg)
v_untrained = value(affine_gan(0).discriminate(grid[:, None]), pd, pg)
print(f"V(D, G): untrained D {v_untrained:.4f}, trained D {v_trained:.4f}, "
      f"D* {v_star:.4f} = 2 JS - log 4")
assert v_untrained < v_trained <= v_star and v_star - v_trained < 0.05

# %% [markdown]
# **Why not the minimax loss.** Early in training the generator is poor and the discriminator
# rejects its samples confidently: $l \ll 0$. The minimax loss's gradient is
# $dJ/dl = -\sigma(l) \approx -e^{l}$, which vanishes; the non-saturating loss's is
# $\sigma(l) - 1 \approx -1$. Per example the two gradients w.r.t. $G$'s parameters differ by
# exactly the factor $\sigma(l) / (1 - \sigma(l)) = e^{l}$. Measured: a generator far from the
# data ($G(z) = 1.5 z + 8$), a discriminator trained for 4 epochs against it.

# %%
gan_far = affine_gan(3)
gan_far.generator.layers[0].params["b"][...] = 8.0
z_far = rng.standard_normal((256, 1))


def g_grad_norm(gan, loss, z):
    gan.generator_loss = loss
    gan.zero_grad()
    gan.g_loss(z=z)
    gan.g_backward()
    return np.sqrt(sum((g ** 2).sum() for g in gan.generator.grads.values()))


def ratio(gan, z):
    return g_grad_norm(gan, "minimax", z) / g_grad_norm(gan, "non-saturating", z)


d_one = gan_far.discriminate(gan_far.generate(z_far[:1]))[0]
assert abs(ratio(gan_far, z_far[:1]) / (d_one / (1 - d_one)) - 1) < 1e-9     # exactly e^l
ratio_before = ratio(gan_far, z_far)
fit_gan(gan_far, x_1d, Adam(gan_far.discriminator.params, lr=0.05), None, 4, 128, rng=2)
d_fake_far = gan_far.discriminate(gan_far.generate(z_far)).mean()
ratio_after = ratio(gan_far, z_far)
print(f"|grad minimax| / |grad non-saturating|: {ratio_before:.2f} with an untrained D; "
      f"{ratio_after:.4f} once D wins (mean D(G(z)) = {d_fake_far:.4f})")
assert 0.2 < ratio_before < 5 and d_fake_far < 0.01 and ratio_after < 0.05

# %% [markdown]
# ## 4. Mode collapse
#
# The theory above assumes that $D$ is optimal for the current $G$ at every moment. In
# training, $D$ takes one step for each of $G$'s. And for a *fixed* $D$, the generator's best
# response is to send every $z$ to wherever $D$ currently says "real" the most: a single
# point. If $D$ keeps up, it soon rejects that point and the generator spreads out; if $D$
# lags, the generator piles its samples onto one mode, $D$ slowly learns to reject it, and the
# generator jumps to the next. Both on the ring of 8 Gaussians (radius 2, standard deviation
# 0.05), with the same generator (2 hidden layers of 64 ReLU units) and the same steps;
# once with $D$ as fast as $G$ (Adam step 2e-3 for both), once with $D$ four times slower.
#
# We count, every 4 epochs on 2000 samples, the modes **visited** (those nearest to at least a
# quarter of their fair share, 2000/8, of the samples) and the share of **good** samples
# (within 3 standard deviations of a mode): `minivae.mixtures.modes_covered`.

# %%
p_ring = ring(std=0.05)
x_ring, _ = p_ring.sample(4096, 0)


def train_ring(d_lr):
    gan = GAN(2, 2, hidden=(64, 64), output="identity", rng=0)
    record = []

    class Count:
        def epoch_end(self, p):
            if p.epoch % 4 == 0:
                s = gan.sample(2000, rng=5)
                visited, _, counts = modes_covered(s, p_ring, n_std=np.inf)
                _, good, _ = modes_covered(s, p_ring)
                record.append({"epoch": p.epoch, "visited": visited, "good": good,
                               "top mode": int(counts.argmax()), "samples": s})

    fit_gan(gan, x_ring, adam(gan.discriminator.params, d_lr), adam(gan.generator.params, 2e-3),
            40, 128, rng=2, callbacks=[Count()])
    return record


balanced, slow_d = train_ring(2e-3), train_ring(5e-4)
for name, record in {"D as fast as G": balanced, "D 4x slower": slow_d}.items():
    print(f"{name:>15}: modes visited by epoch "
          f"{[r['visited'] for r in record]}, most visited mode {[r['top mode'] for r in record]}")

# %%
fig, axes = plt.subplots(2, 5, figsize=(13, 5.4), sharex=True, sharey=True)
for row, (name, record) in zip(axes, {"D as fast as G": balanced, "D 4x slower": slow_d}.items()):
    for ax, r in zip(row, record[1::2]):
        ax.scatter(x_ring[:500, 0], x_ring[:500, 1], s=2, c="0.7")
        ax.scatter(r["samples"][:500, 0], r["samples"][:500, 1], s=2, c="C3")
        ax.set_title(f"{name}, epoch {r['epoch']}", fontsize=8)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
plt.show()

# %% [markdown]
# With a discriminator that keeps up, the generator reaches every mode; with a slow one it
# visits one or two at a time, and a different one from check to check: it collapses, and
# hops.

# %%
assert balanced[-1]["visited"] == 8
visits = [r["visited"] for r in slow_d]
assert np.median(visits) <= 2 and len({r["top mode"] for r in slow_d}) >= 3
print(f"balanced: all 8 modes visited, {balanced[-1]['good']:.0%} of samples good; slow D: "
      f"median {np.median(visits):.0f} modes visited, "
      f"{len({r['top mode'] for r in slow_d})} different modes on top")

# %% [markdown]
# ## 5. Matching the aggregate posterior: the Wasserstein autoencoder
#
# Lessons 7 and 8 split the VAE's average KL term:
# $\mathbb E_x \mathrm{KL}(q(z \mid x) \| p(z)) = I_q(x; z) + \mathrm{KL}(q(z) \| p(z))$ plus
# nothing else, where $q(z) = \mathbb E_x q(z \mid x)$ is the aggregate posterior. To sample
# well, only the second term matters: codes drawn from the prior should look like the codes
# of real images. The first term, the information the code carries about $x$, is penalised
# too, and that is what makes the posteriors of different images overlap and the decodings
# blur. The **WAE** (Tolstikhin et al. 2018) keeps a deterministic encoder $z = E(x)$ and
# penalises only the mismatch between $q(z)$ and $p(z)$:
#
# $$\text{loss} = \frac1N \sum_n \mathrm{recon}(x_n, D(E(x_n)))
#                + \lambda\, \widehat{\mathrm{MMD}}^2\bigl(\{E(x_n)\}, \{\tilde z_n\}\bigr),
#   \qquad \tilde z_n \sim p(z).$$
#
# (It is an upper bound, for $\lambda$ large, on an optimal-transport distance between the
# data and the model, hence the name.) The mismatch is measured on a batch of codes against as
# many prior draws, by the **maximum mean discrepancy** with a kernel $k$:
#
# $$\mathrm{MMD}^2(P, Q) = \mathbb E\, k(x, x') + \mathbb E\, k(y, y') - 2\, \mathbb E\, k(x, y),$$
#
# zero exactly when $P = Q$ for a characteristic kernel such as the inverse multiquadratic
# $k = C / (C + \|a - b\|^2)$ (the WAE's choice) or the RBF $k = e^{-\|a - b\|^2 / C}$. Its
# **unbiased** estimator averages $k$ over the pairs of *distinct* examples:
#
# $$\widehat{\mathrm{MMD}}^2_u = \frac{1}{N(N-1)} \sum_{i \ne j} k(x_i, x_j)
#   + \frac{1}{M(M-1)} \sum_{i \ne j} k(y_i, y_j) - \frac{2}{NM} \sum_{i, j} k(x_i, y_j).$$
#
# With $k$ a function of $r = \|a - b\|^2$, $\partial k / \partial a = 2 k'(r)(a - b)$, and
# $x_i$ appears in the pairs $(i, j)$ and $(j, i)$:
#
# $$\frac{\partial \widehat{\mathrm{MMD}}^2_u}{\partial x_i}
#   = \frac{4}{N(N-1)} \sum_{j} k'(r_{ij})(x_i - x_j) - \frac{4}{NM} \sum_j k'(s_{ij})(x_i - y_j).$$
#
# That gradient, w.r.t. the codes, is what the encoder's backward pass receives on top of the
# decoder's. `minivae.mmd.mmd` computes both. Check the gradient, then the estimator's mean
# against the closed form that two Gaussians have under the RBF kernel
# (`mmd2_gaussians_rbf`, derived in its docstring), with samples of only 3: unbiased means
# right on average at any sample size.

# %%
a, b = rng.standard_normal((6, 3)), 0.5 + rng.standard_normal((5, 3))
for kernel in ("imq", "rbf"):
    _, da = mmd(a, b, kernel)
    err = check_grad(lambda: mmd(a, b, kernel)[0], a, da)
    print(f"{kernel}: gradient relative error {err:.1e}")
    assert err < 1e-7

m1, S1 = np.array([0.6, -0.2]), np.array([[1.0, 0.4], [0.4, 0.6]])
exact = mmd2_gaussians_rbf(m1, S1, np.zeros(2), np.eye(2), 3.0)
L1 = np.linalg.cholesky(S1)
draws = np.array([mmd(m1 + rng.standard_normal((3, 2)) @ L1.T, rng.standard_normal((3, 2)),
                      "rbf", 3.0)[0] for _ in range(4000)])
se = draws.std(ddof=1) / np.sqrt(len(draws))
print(f"MMD^2: closed form {exact:.4f}; mean of 4000 estimates from 3 + 3 samples "
      f"{draws.mean():.4f} +- {se:.4f}")
assert abs(draws.mean() - exact) < 4 * se

# %% [markdown]
# The WAE is minivae's `Autoencoder` with that term added (`minivae/models/wae.py`); its loss
# and backward, and a whole-model gradient check with the prior draws fixed:

# %%
print(inspect.getsource(WAE.loss))
print(inspect.getsource(WAE.backward))
wae_small = WAE(6, (5,), 3, activation="tanh", rng=0, dtype=f64)
errors = check_model(wae_small, rng.random((5, 6)), z_prior=rng.standard_normal((5, 3)))
print(f"WAE whole-model check: max relative error {max(errors.values()):.1e}")
assert max(errors.values()) < 1e-6

# %% [markdown]
# ### The WAE and the VAE on MNIST
#
# The same architecture for both (784-256-8 encoder, 8-256-784 decoder, ReLU, Bernoulli
# likelihood on the grey levels), the same optimizer, batches and epochs; the VAE's encoder
# gives $(\mu, \log\sigma^2)$, the WAE's a code. $\lambda = 100$ for the WAE: its
# reconstruction term is ~100 nats an image, and the paper's $\lambda = 10$ goes with a squared
# error ten times smaller.

# %%
train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x_train, y_train = train_set.x[:N_TRAIN], train_set.y[:N_TRAIN]
order = np.random.default_rng(1).permutation(len(test_set.x))     # the test set in mixed order
x_ref, x_real, x_codes = (test_set.x[order[i * N_REF:(i + 1) * N_REF]] for i in range(3))
SHAPE = train_set.image_shape

vae = VAE(784, (256,), 8, rng=0)
wae = WAE(784, (256,), 8, lam=100.0, rng=0)
for model in (vae, wae):
    history = fit(model, x_train, Adam(model.params, lr=1e-3), EPOCHS, BATCH, rng=1)
    print(f"{type(model).__name__}: last epoch {history[-1]}")

# %% [markdown]
# **The aggregate posterior against the prior.** Draw one $z \sim q(z \mid x)$ for each of
# 2000 test images (for the WAE, $z = E(x)$), and compare each dimension's moments with the
# prior's: mean 0, variance 1, skewness 0, excess kurtosis 0. For the VAE the variance law of
# lesson 7 says what the variance is made of: $\mathrm{Var}[z_j] = \mathbb E_x \sigma_j^2(x) +
# \mathrm{Var}_x \mu_j(x)$; for the WAE there is no noise, and the variance is all spread of
# the codes. One more number per model: the MMD between the codes and as many prior draws.

# %%
mu, logvar = (a.astype(f64) for a in vae.encode(x_codes))
z_vae = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)
z_wae = wae.encode(x_codes).astype(f64)


def moments(z):
    """Mean, variance, skewness and excess kurtosis of each column.   (N, Z) -> 4 x (Z,)."""
    c = z - z.mean(axis=0)
    var = (c ** 2).mean(axis=0)
    return z.mean(axis=0), var, (c ** 3).mean(axis=0) / var ** 1.5, (c ** 4).mean(axis=0) / var ** 2 - 3


def mmd_to_prior(z, blocks=10):
    n = len(z) // blocks
    return np.mean([mmd(z[i * n:(i + 1) * n], rng.standard_normal((n, z.shape[1])))[0]
                    for i in range(blocks)])


for name, z in {"VAE": z_vae, "WAE": z_wae}.items():
    print(f"{name}:  (prior: 0, 1, 0, 0)")
    for label, v in zip(("mean", "variance", "skewness", "excess kurtosis"), moments(z)):
        print(f"  {label:>16} " + " ".join(f"{t:6.2f}" for t in v))
law = variance_law(mu, logvar)
print("  VAE variance law, E sigma^2 + Var mu: " + " ".join(f"{t:6.2f}" for t in law))
mmd_vae, mmd_wae = mmd_to_prior(z_vae), mmd_to_prior(z_wae)
mmd_wide = mmd_to_prior(1.5 * rng.standard_normal(z_wae.shape))      # for scale
print(f"MMD^2 between the codes and the prior: VAE {mmd_vae:.4f}, WAE {mmd_wae:.4f} "
      f"(for scale: draws of N(0, 1.5^2 I), {mmd_wide:.4f})")

# %% [markdown]
# What the numbers say. The variance law holds for the VAE's sampled codes: it is the law of
# total variance, so the sample variance of $z$ agrees with $\mathbb E\sigma^2 +
# \mathrm{Var}\,\mu$ to within its standard error. Early in training (fast mode) the VAE's sums
# are well above 1 and its codes are further from the prior than draws of
# $\mathcal N(0, 1.5^2 I)$ would be; trained fully, the KL brings the sums down to 1.1-1.3 and
# the codes much closer (MMD² 0.0053 at full size, against the WAE's 0.0019). The WAE, which
# is trained on exactly this discrepancy, is close to the prior early: its MMD² is less than
# half that of $\mathcal N(0, 1.5^2 I)$, and each dimension has about the prior's mean and
# variance, with the skewness and excess kurtosis of a few tenths that a deterministic code of
# digits has.

# %%
c = z_vae - z_vae.mean(axis=0)
var_se = np.sqrt(((c ** 2 - (c ** 2).mean(axis=0)) ** 2).mean(axis=0) / len(c))
assert np.all(np.abs(moments(z_vae)[1] - law) < 4 * var_se + 1e-9), (moments(z_vae)[1], law)
mean_w, var_w, skew_w, kurt_w = moments(z_wae)
assert mmd_wae < mmd_wide / 2
assert np.all(np.abs(mean_w) < 0.5) and np.all((0.5 < var_w) & (var_w < 2.5))
assert np.all(np.abs(skew_w) < 1) and np.all(np.abs(kurt_w) < 1.5)

# %% [markdown]
# Reconstructions (the mean decoding of the code, or of $\mu$ for the VAE) and samples from
# the prior:

# %%
x_show = x_real[:10]
rows = {"test images": x_show, "VAE reconstructions": vae.reconstruct(x_show),
        "WAE reconstructions": wae.reconstruct(x_show),
        "VAE samples": vae.sample(10, rng=3), "WAE samples": wae.sample(10, rng=3)}
fig, ax = plt.subplots(figsize=(9, 5))
ax.imshow(figures.image_grid(np.concatenate(list(rows.values())), SHAPE, nrow=10), cmap="gray")
ax.set_yticks([(i + 0.5) * (SHAPE[0] + 1) for i in range(len(rows))], list(rows))
ax.set_xticks([])
plt.show()

# %% [markdown]
# ## 6. One number for sample quality
#
# Pictures are not a measurement. To compare generators with one number, minivae scores a set
# of samples by its distance from held-out test images (`minivae.quality`):
#
# * in the **features of a classifier**, the last hidden layer of a small MLP (784-256-64-10,
#   one logistic output per class, trained here with `fit`), because in pixel space a blurred
#   average digit is close to every digit and a pixel distance rewards blur, while a
#   classifier's features respond to what makes a digit one digit and not another (the FID and
#   KID of the GAN literature use the Inception network for the same reason);
# * by the **unbiased MMD²** with the inverse multiquadratic kernel, the estimator above, with
#   its scale fixed once by the test images' features (the median squared distance): its mean
#   is the true MMD² at any sample size, where the Fréchet distance (FID) is biased by an amount
#   that depends on the number of samples, assumes Gaussian features and needs a matrix square
#   root. This is the KID (Bińkowski et al. 2018) with minivae's kernel;
# * as a mean and standard error over 10 blocks of 200 samples and 200 test images.
#
# Held-out real images are the reference: their score is 0 up to its standard error (an unbiased
# estimate, so it can come out a little below 0).

# %%
clf = FeatureClassifier(784, rng=0)
fit(clf, clf.rows(x_train, y_train), Adam(clf.params, lr=3e-3), 3, 128, rng=1)
accuracy = (clf.predict(test_set.x) == test_set.y).mean()
print(f"classifier test accuracy: {accuracy:.3f}")
assert accuracy > 0.85

# %% [markdown]
# A GAN on the same images, for the third column (generator 16-256-784 with a sigmoid output,
# discriminator 784-256-1). GANs learn slowly on MNIST with plain MLPs; in fast mode it has
# barely started.

# %%
gan = GAN(784, 16, hidden=(256,), rng=0)
fit_gan(gan, x_train, adam(gan.discriminator.params, 2e-4), adam(gan.generator.params, 2e-4),
        GAN_EPOCHS, BATCH, rng=1)

scores = {"held-out test images": sample_mmd(clf, x_real, x_ref),
          "VAE reconstructions": sample_mmd(clf, vae.reconstruct(x_real), x_ref),
          "WAE reconstructions": sample_mmd(clf, wae.reconstruct(x_real), x_ref),
          "VAE samples": sample_mmd(clf, vae.sample(N_REF, rng=4), x_ref),
          "WAE samples": sample_mmd(clf, wae.sample(N_REF, rng=4), x_ref),
          "GAN samples": sample_mmd(clf, gan.sample(N_REF, rng=4), x_ref)}
for name, (score, se) in scores.items():
    print(f"{name:>22}: {score:8.4f} +- {se:.4f}")

fig, ax = plt.subplots(figsize=(9, 1.3))
ax.imshow(figures.image_grid(gan.sample(10, rng=3), SHAPE, nrow=10), cmap="gray")
ax.set_title("GAN samples")
ax.axis("off")
plt.show()

# %% [markdown]
# The checks: real images score 0 within 4 standard errors; every model's samples score well
# above that; and on this measure the WAE's samples beat the VAE's: decoding prior draws works
# better when the prior is what the decoder was trained on. Reconstructions score far better
# than any samples: a decoder given a code of a real image is a much easier generator.
#
# The GAN needs time. In fast mode it has seen a few thousand batches and scores worst by far;
# at full size (10 epochs of 60,000 images for every model) this lesson gives GAN 0.030,
# WAE 0.034 and VAE 0.049 (each $\pm$ 0.002): the GAN's samples, sharp but not always
# digits, come out best, and a run whose GAN collapses onto a few digits would score
# worse (a collapsed set of samples is far from the test images in MMD, however sharp each is).

# %%
real, real_se = scores["held-out test images"]
assert abs(real) < 4 * real_se + 1e-4
for name in ("VAE samples", "WAE samples", "GAN samples"):
    assert scores[name][0] > real + 4 * scores[name][1], name
assert scores["WAE samples"][0] < scores["VAE samples"][0]

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right (lessons/README.md, "Exercises").
#
# **Exercise 1. The biased estimator.** Keeping the $i = j$ terms in the two within-sample
# sums, $\frac{1}{N^2}\sum_{i,j} k(x_i, x_j) + \frac{1}{M^2}\sum_{i,j} k(y_i, y_j)
# - \frac{2}{NM}\sum_{i,j} k(x_i, y_j)$, gives the "V-statistic", which is never negative.
# Write `mmd_biased(x, y, C)` for the RBF kernel $e^{-r/C}$ and show, with the closed form, that
# its mean from samples of 3 misses the true MMD² by more than 4 standard errors.

# %% tags=["exercise"]
# Your code: mmd_biased(x, y, C) -> float, the V-statistic with the rbf kernel exp(-r / C).
def mmd_biased(x, y, C):
    return None


# %% tags=["solution"]
# Solution. k(x_i, x_i) = 1 for every i, so each within-sample mean gains the diagonal: the
# V-statistic is the U-statistic plus a positive amount of order 1/N.
def mmd_biased(x, y, C):
    k = lambda a, b: np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2) / C)
    return float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())


# %%
biased = np.array([mmd_biased(m1 + rng.standard_normal((3, 2)) @ L1.T,
                              rng.standard_normal((3, 2)), 3.0) for _ in range(4000)])
se_b = biased.std(ddof=1) / np.sqrt(len(biased))
print(f"closed form {exact:.4f}; biased estimator's mean {biased.mean():.4f} +- {se_b:.4f}")
assert biased.mean() - exact > 4 * se_b

# %% [markdown]
# **Exercise 2. What the non-saturating loss minimises.** Show that against the optimal
# discriminator, the non-saturating generator loss is
#
# $$\mathbb E_{p_g}\bigl[-\log D^*(x)\bigr] = \log 2 + \mathrm{KL}(p_g \| p_\text{data})
#   - \mathrm{KL}(p_g \| m),$$
#
# and check it on the grid for $p_g = \mathcal N(0.5, 1.5^2)$: compute `ns_value`, the left
# side, and `kl_form`, the right side. The reverse KL $\mathrm{KL}(p_g \| p_\text{data})$ is
# large when $G$ puts mass where there is no data, and small when $G$ misses a mode of the
# data: one account of why GANs drop modes rather than blur them.

# %% tags=["exercise"]
# Your code: ns_value (the grid integral of p_g * -log D*) and kl_form (the right side).
ns_value = None
kl_form = None

# %% tags=["solution"]
# Solution. -log D* = log((p_data + p_g) / p_data) = log 2 + log(m / p_data), and
# log(m / p_data) = log(p_g / p_data) - log(p_g / m); take the expectation under p_g.
kl = lambda p, q: np.trapezoid(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0), grid)
ns_value = np.trapezoid(pg * -np.log(np.clip(d_star, 1e-300, 1)), grid)
kl_form = np.log(2) + kl(pg, pd) - kl(pg, m)

# %%
print(f"E_pg[-log D*] = {ns_value:.8f};  log 2 + KL(p_g || p_data) - KL(p_g || m) = {kl_form:.8f}")
assert ns_value is not None and abs(ns_value - kl_form) < 1e-8

# %% [markdown]
# ## Summary
#
# * A GAN trains $D$ to tell real from generated (binary cross-entropy on logits) and $G$ to
#   fool it, through $D$'s backward pass. Each step's gradients belong to its own network.
# * For fixed $G$ the best discriminator is $D^* = p_\text{data}/(p_\text{data} + p_g)$, and
#   a trained one approaches it where the data and the samples are; against $D^*$ the game's
#   value is $2\,\mathrm{JS}(p_\text{data}\|p_g) - \log 4$, minimal at $p_g = p_\text{data}$.
# * The minimax generator loss saturates when $D$ wins (gradient $\propto e^{l}$); the
#   non-saturating $-\log D(G(z))$ has the same fixed point and keeps its gradient.
# * The theory assumes an optimal $D$ at every step. A discriminator that lags lets the
#   generator collapse onto a mode and hop between modes: counted on the ring.
# * The WAE matches the aggregate posterior $q(z)$ to the prior with an MMD penalty (unbiased
#   estimator, gradient by hand, checked against a closed form) instead of pulling each
#   $q(z \mid x)$ to the prior; its codes are closer to the prior, and its samples scored
#   better than the VAE's in the features of a classifier, the one number minivae uses to
#   compare generators.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Goodfellow et al. 2014 (the GAN, the optimal
# discriminator, the Jensen-Shannon identity and the non-saturating loss); Gretton et al. 2012
# (the MMD and its unbiased estimator); Tolstikhin et al. 2018 (Wasserstein autoencoders).
