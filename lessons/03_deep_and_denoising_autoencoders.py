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
# # Lesson 3: Deep and denoising autoencoders
#
# Lessons 1 and 2 showed that a *linear* autoencoder can do no better than PCA. Put a
# nonlinearity between the layers and that limit is gone. This lesson trains deep
# autoencoders on MNIST, makes them **denoise**, works out exactly *what* a denoiser trained
# with a squared error learns, and then tries to turn an autoencoder into a generator of new
# digits, and sees why that fails.
#
# You will see:
#
# 1. an MLP autoencoder (`minivae.models.Autoencoder`), gradient-checked as a whole, trained,
#    and compared with PCA at the same code size;
# 2. denoising autoencoders with Gaussian and with masking noise;
# 3. why the squared error makes a denoiser output the **posterior mean** $\mathbb{E}[x \mid \tilde x]$,
#    blurry wherever several clean images are plausible: derived, then checked on a constructed
#    example where $\mathbb{E}[x \mid \tilde x]$ is known exactly;
# 4. interpolation between digits, in the code space and in pixel space;
# 5. sampling: fit a density to the codes, decode samples from it, and measure why the
#    results disappoint.
#
# Every derivation is followed by a cell that checks it with `assert`.

# %%
import os
from statistics import NormalDist

import matplotlib.pyplot as plt
import numpy as np

from minivae import data, figures, losses
from minivae.evaluate import evaluate
from minivae.figures import image_grid
from minivae.gradcheck import check_grad, rel_error
from minivae.layers import Dense
from minivae.models import PCA, Autoencoder, DenoisingAutoencoder, DiagonalGaussian, GaussianMixture
from minivae.optim import Adam
from minivae.train import fit

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 8_000 if FAST else 60_000            # training digits
N_TEST = 2_000 if FAST else 10_000             # test digits for the numbers we report
EPOCHS = 4 if FAST else 6                      # passes over the training digits, per model
BATCH = 128                                    # digits per gradient step
LR = 2e-3                                      # Adam's step size
HIDDEN, Z = (256,), 16                         # MLP: 784 -> 256 -> 16 -> 256 -> 784
SIGMA, DROP = 1.0, 0.5                         # Gaussian noise std; masking: share of pixels -> 0
TOY_STEPS = 1_500 if FAST else 4_000           # steps for the denoiser of section 3
N_REF = 5_000 if FAST else 10_000              # training digits to search for nearest neighbours

train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x_train, y_train = train_set.x[:N_TRAIN], train_set.y[:N_TRAIN]   # (N, 784) float32 in [0, 1]
x_test, y_test = test_set.x[:N_TEST], test_set.y[:N_TEST]
SHAPE = train_set.image_shape
D = x_train.shape[1]
print(f"{len(x_train)} training and {len(x_test)} test digits; code size Z = {Z}")


def show_rows(rows, labels, title, scale=1.0):
    """Image rows (each (n, D)) stacked into one grid, with a label per row."""
    n = len(rows[0])
    grid = image_grid(np.concatenate(rows), SHAPE, nrow=n)
    fig, ax = plt.subplots(figsize=(scale * 0.55 * n + 1.2, scale * 0.55 * len(rows) + 0.6))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([1 + r * (SHAPE[0] + 1) + SHAPE[0] / 2 for r in range(len(rows))], labels)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0, labelsize=9)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

# %% [markdown]
# ## 1. A deep autoencoder
#
# The encoder and the decoder are multilayer perceptrons,
#
# $$z = W_2\, \mathrm{relu}(W_1 x + b_1) + b_2 \in \mathbb{R}^{16}, \qquad
#   \hat x = W_4\, \mathrm{relu}(W_3 z + b_3) + b_4 \in \mathbb{R}^{784},$$
#
# built by `Autoencoder(784, hidden=(256,), z_dim=16, output="mse")` from minivae's `Dense`
# (affine + activation, fused) and `Linear` layers. The loss is the one of lesson 2: the squared
# error summed over the pixels, averaged over the batch,
# $L = \frac1B\sum_n \lVert \hat x_n - x_n\rVert^2$. (minivae also offers `output="bernoulli"`, a
# cross-entropy on logits, common for MNIST; we keep the squared error throughout this lesson
# because section 3 is about what it does.)
#
# The backward pass runs through both MLPs and every layer's hand-written backward. Before we
# train, one check of the **whole model** against central differences, in float64, on a small
# copy: a unit test per layer cannot catch two layers that disagree about a convention, a
# whole-model check can. The denoising autoencoder's loss, with its corruption held fixed,
# gets the same check.

# %%
def grad_check(model, loss_fn):
    """Largest relative error between backward() and central differences, over all parameters."""
    model.zero_grad()
    loss_fn()
    model.backward()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    return max(check_grad(loss_fn, p, analytic[k]) for k, p in model.params.items())


rng = np.random.default_rng(0)
x_small = rng.random((6, 20))                        # 6 "images" of 20 pixels in [0, 1]
ae_small = Autoencoder(20, hidden=(9,), z_dim=3, output="mse", rng=0, dtype=np.float64)
dae_small = DenoisingAutoencoder(20, hidden=(9,), z_dim=3, output="mse", noise="gaussian",
                                 noise_level=SIGMA, rng=0, dtype=np.float64)
x_tilde_small = dae_small.corrupt(x_small)           # one fixed corruption
err_ae = grad_check(ae_small, lambda: ae_small.loss(x_small))
err_dae = grad_check(dae_small, lambda: dae_small.loss(x_small, x_tilde_small))
print(f"whole-model gradient check: autoencoder {err_ae:.1e}, denoising autoencoder {err_dae:.1e}")

# %%
assert err_ae < 1e-7 and err_dae < 1e-7

# %% [markdown]
# The training loop is the library's, `minivae.train.fit(model, x, optimizer, epochs,
# batch_size, rng)`, the loop of lesson 2: each epoch it shuffles the digits and cuts them into
# minibatches, and for each one it computes the loss, runs the backward pass and lets the
# optimizer (Adam) update the parameters in place. It returns one row per epoch, with the mean
# training loss as `train_loss`. (Lesson 6 prints its source: one screen.)

# %%
ae = Autoencoder(D, HIDDEN, Z, output="mse", rng=np.random.default_rng(1))
history = fit(ae, x_train, Adam(ae.params, lr=LR), EPOCHS, BATCH, rng=2)   # a row per epoch
train_loss = [row["train_loss"] for row in history]                      # mean over each epoch
pca = PCA(Z).fit(x_train)                             # the linear baseline, same code size
err_ae_test = evaluate(ae, x_test)["mse"]             # mean over x of sum_d (x^ - x)^2
err_pca_test = evaluate(pca, x_test)["mse"]
print("training loss per epoch:", np.round(train_loss, 2))
print(f"test squared error per digit: autoencoder {err_ae_test:.2f}, PCA with {Z} components "
      f"{err_pca_test:.2f}")

# %%
picks = np.random.default_rng(3).choice(len(x_test), size=12, replace=False)
fig = show_rows([x_test[picks], pca.reconstruct(x_test[picks]), ae.reconstruct(x_test[picks])],
                ["test digits", f"PCA, {Z} numbers", f"autoencoder, {Z}"],
                "reconstructions through a 16-number code")
plt.show()

# %%
assert train_loss[-1] < train_loss[0]
assert err_ae_test < 0.9 * err_pca_test               # nonlinear beats linear at the same size

# %% [markdown]
# ## 2. Denoising autoencoders
#
# A **denoising autoencoder** (DAE; Vincent et al., 2008) is trained to undo a corruption:
# each step draws a fresh corrupted copy $\tilde x$ of each training digit, feeds it to the
# encoder, and scores the output against the *clean* $x$:
#
# $$L = \frac1B \sum_n \lVert f(\tilde x_n) - x_n \rVert^2, \qquad f = \text{decoder} \circ \text{encoder}.$$
#
# Two corruptions, both in `DenoisingAutoencoder`:
#
# * **Gaussian**: $\tilde x = x + \sigma \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, here $\sigma = 1$
#   (as much noise as the whole range of a pixel);
# * **masking**: each pixel is set to 0 with probability $p$, here $p = 0.5$.
#
# To rebuild the missing or drowned pixels, the network has to know what digits look like:
# copying its input is no longer an answer. We train one of each and compare them with the
# plain autoencoder on corrupted test digits.

# %%
dae_gauss = DenoisingAutoencoder(D, HIDDEN, Z, output="mse", noise="gaussian", noise_level=SIGMA,
                                 rng=np.random.default_rng(4))
dae_mask = DenoisingAutoencoder(D, HIDDEN, Z, output="mse", noise="masking", noise_level=DROP,
                                rng=np.random.default_rng(5))
fit(dae_gauss, x_train, Adam(dae_gauss.params, lr=LR), EPOCHS, BATCH, rng=6)
fit(dae_mask, x_train, Adam(dae_mask.params, lr=LR), EPOCHS, BATCH, rng=7)


def sq_err(a, b):
    """Mean over images of the squared error summed over pixels."""
    return float(np.mean(np.sum((a.astype(np.float64) - b) ** 2, axis=1)))


results = {}
for name, dae in (("gaussian", dae_gauss), ("masking", dae_mask)):
    x_noisy = dae.corrupt(x_test, rng=np.random.default_rng(8))      # a fixed corruption
    results[name] = {"corrupted input": sq_err(x_noisy, x_test),
                     "plain autoencoder": sq_err(ae.reconstruct(x_noisy), x_test),
                     "denoising autoencoder": sq_err(dae.reconstruct(x_noisy), x_test)}
    fig = show_rows([x_test[picks], x_noisy[picks], ae.reconstruct(x_noisy[picks]),
                     dae.reconstruct(x_noisy[picks])],
                    ["clean", f"{name} noise", "plain AE", "denoising AE"],
                    f"{name} corruption: the plain autoencoder against a denoising one")
    plt.show()

print(f"{'squared error to the clean digit':34s}{'gaussian':>10s}{'masking':>10s}")
for row in results["gaussian"]:
    print(f"{row:34s}{results['gaussian'][row]:10.2f}{results['masking'][row]:10.2f}")

# %%
for name, r in results.items():
    best_other = min(r["plain autoencoder"], r["corrupted input"])
    assert r["denoising autoencoder"] < 0.75 * best_other, name

# %% [markdown]
# (`reconstruct` just runs the encoder and the decoder; a DAE's corruption happens only inside
# its `loss`, or when we call `corrupt`.)
#
# ## 3. What a denoiser learns: the posterior mean
#
# Look at the Gaussian DAE's outputs again: where the noise leaves the digit ambiguous, the
# output is smooth and grey, a mix of the digits it could have been. That is not a failure
# of training. It is what the squared error asks for.
#
# **The derivation.** Let $m(\tilde x) = \mathbb{E}[x \mid \tilde x]$, the average of the clean
# images that could have produced $\tilde x$, weighted by their posterior probability. For any
# denoiser $f$, add and subtract $m$:
#
# $$\mathbb{E}\big[\lVert x - f(\tilde x)\rVert^2 \,\big|\, \tilde x\big]
#   = \mathbb{E}\big[\lVert x - m(\tilde x)\rVert^2 \,\big|\, \tilde x\big]
#   + \lVert m(\tilde x) - f(\tilde x)\rVert^2
#   + 2\,\big(m(\tilde x) - f(\tilde x)\big)^{\!\top} \underbrace{\mathbb{E}\big[x - m(\tilde x) \,\big|\, \tilde x\big]}_{=\,0}.$$
#
# The first term does not depend on $f$. So the expected loss, averaged over $\tilde x$ too, is
# a constant (the **Bayes risk**) plus $\mathbb{E}\lVert m(\tilde x) - f(\tilde x)\rVert^2$, and
# **the best denoiser is $f = m$, the posterior mean**. A DAE with enough capacity, trained on
# enough corrupted pairs, approaches it. When the posterior over clean images has several
# modes, their mean is none of them: a blur.
#
# **An example where $m$ is exact.** Let the clean data be just two images, $x_a$ (a 4) and
# $x_b$ (a 9), each with probability $\frac12$, corrupted by Gaussian noise of standard
# deviation $\sigma$. Bayes' rule gives the posterior weight of $x_a$,
#
# $$w_a(\tilde x) = \frac{e^{-\lVert \tilde x - x_a\rVert^2 / 2\sigma^2}}
#                        {e^{-\lVert \tilde x - x_a\rVert^2 / 2\sigma^2} + e^{-\lVert \tilde x - x_b\rVert^2 / 2\sigma^2}},
#   \qquad m(\tilde x) = w_a x_a + w_b x_b, \quad w_b = 1 - w_a .$$
#
# With $\Delta = x_a - x_b$, we have $x_a - m = w_b\Delta$ and $x_b - m = -w_a\Delta$, so the
# conditional variance is $w_a w_b^2 \lVert\Delta\rVert^2 + w_b w_a^2 \lVert\Delta\rVert^2$:
#
# $$\mathbb{E}\big[\lVert x - m\rVert^2 \mid \tilde x\big] = w_a w_b \lVert \Delta \rVert^2,
#   \qquad \text{Bayes risk} = \lVert\Delta\rVert^2\, \mathbb{E}[w_a w_b].$$
#
# Picking the more probable image instead (the MAP denoiser) costs
# $\lVert\Delta\rVert^2\,\mathbb{E}[\min(w_a, w_b)]$, more, since $w_a w_b \le \min(w_a, w_b)$:
# under the squared error, hedging beats committing. We choose $\sigma$ so that the posterior is
# often split: $\sigma = \lVert\Delta\rVert / 1.5$. That is a lot of noise per pixel, but all
# 784 pixels vote on which image it was.

# %%
x_a = x_train[np.flatnonzero(y_train == 4)[0]].astype(np.float64)   # (D,)
x_b = x_train[np.flatnonzero(y_train == 9)[0]].astype(np.float64)
clean = np.stack([x_a, x_b])                                        # (2, D)
delta = x_a - x_b
sigma_toy = float(np.linalg.norm(delta) / 1.5)


def posterior(x_tilde):
    """w (n, 2): posterior probabilities of x_a and x_b given x~ (n, D); equal priors."""
    d2 = np.sum((x_tilde[:, None, :] - clean[None]) ** 2, axis=2)  # (n, 2)
    logits = -d2 / (2 * sigma_toy ** 2)
    logits -= logits.max(axis=1, keepdims=True)                     # no overflow in exp
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def draw_toy(n, rng):
    """n clean images of the two-image data set, their labels (0: x_a, 1: x_b), noisy copies."""
    label = rng.integers(0, 2, size=n)
    x = clean[label]                                                # (n, D)
    return x, label, x + sigma_toy * rng.standard_normal(x.shape)

x_clean, label, x_tilde = draw_toy(20_000, np.random.default_rng(9))
w = posterior(x_tilde)                                              # (n, 2)
m = w @ clean                                                       # (n, D) posterior mean
f_map = clean[w.argmax(axis=1)]                                     # (n, D) the MAP denoiser
print(f"|Delta| = {np.linalg.norm(delta):.2f}, sigma = {sigma_toy:.2f}; posterior weight w_a "
      f"between 0.1 and 0.9 for {np.mean((w[:, 0] > 0.1) & (w[:, 0] < 0.9)):.0%} "
      "of the noisy images")

# %% [markdown]
# Two checks: the conditional variance formula (exact, for every $\tilde x$), and the
# decomposition with its cross term averaging to zero, here for the MAP denoiser
# (a Monte-Carlo average: within 4 standard errors of 0).

# %%
dd = delta @ delta                                                  # |Delta|^2
cond_var_direct = (w[:, 0] * np.sum((x_a - m) ** 2, axis=1)          # E[|x - m|^2 | x~]
                   + w[:, 1] * np.sum((x_b - m) ** 2, axis=1))
assert np.max(np.abs(cond_var_direct - w[:, 0] * w[:, 1] * dd)) < 1e-10 * dd

loss_map = np.sum((x_clean - f_map) ** 2, axis=1)                   # (n,) per-image loss
parts = np.sum((x_clean - m) ** 2, axis=1) + np.sum((m - f_map) ** 2, axis=1)
cross = loss_map - parts                                            # 2 (m - f).(x - m)
se = cross.std() / np.sqrt(len(cross))
print(f"cross term: {cross.mean():.4f} +- {se:.4f} (should be 0)")
assert abs(cross.mean()) < 4 * se

bayes_risk = np.mean(w[:, 0] * w[:, 1]) * (delta @ delta)
map_risk = np.mean(w.min(axis=1)) * (delta @ delta)
print(f"Bayes risk (posterior mean) {bayes_risk:.2f} < MAP denoiser {map_risk:.2f}")
assert bayes_risk < map_risk

# %% [markdown]
# Now train a small DAE on this two-image data set with the same noise, and compare its
# output with the exact posterior mean on fresh noisy images. The training set is `BATCH`
# copies of each of the two images, so that each minibatch of `fit` is a fresh random mix of
# $x_a$ and $x_b$, about half of each; `loss` adds fresh noise at every step. A callback lets
# the step size decay to 0 over the last 30% of the steps, to average out the gradient noise.

# %%
class LinearDecay:
    """fit's callback: the step size stays at lr, then falls linearly to 0 over the last
    share ``decay`` of all the steps."""

    def __init__(self, opt, lr, decay):
        self.opt, self.lr, self.decay = opt, lr, decay

    def batch_begin(self, p):
        step, steps = p.epoch * p.batches + p.batch, p.epochs * p.batches   # done, in all
        self.opt.lr = self.lr * min(1.0, (1 - step / steps) / self.decay)


dae_toy = DenoisingAutoencoder(D, hidden=(32,), z_dim=4, output="mse", noise="gaussian",
                               noise_level=sigma_toy, rng=np.random.default_rng(10))
toy_set = np.repeat(clean.astype(np.float32), BATCH, axis=0)       # (2 BATCH, D): x_a..., x_b...
opt = Adam(dae_toy.params, lr=3e-3)
fit(dae_toy, toy_set, opt, TOY_STEPS // 2, BATCH, rng=11,          # 2 minibatches an epoch
    callbacks=[LinearDecay(opt, 3e-3, decay=0.3)])

# %% [markdown]
# We measure the DAE on fresh noisy images by its distance to $m(\tilde x)$ and by its expected
# loss given $\tilde x$, $\sum_{c \in \{a, b\}} w_c(\tilde x)\, \lVert x_c - f(\tilde x)\rVert^2$, which we can
# compute exactly here instead of sampling the clean image.

# %%
x_clean_t, label_t, x_tilde_t = draw_toy(2_000, np.random.default_rng(12))  # fresh test pairs
w_t = posterior(x_tilde_t)
m_t = w_t @ clean                                                   # exact E[x | x~]
f_t = dae_toy.reconstruct(x_tilde_t.astype(np.float32)).astype(np.float64)
w_hat = (f_t - x_b) @ delta / (delta @ delta)                       # the DAE's weight of x_a
dist = np.linalg.norm(f_t - m_t, axis=1) / np.linalg.norm(delta)    # (n,) relative distance


def expected_loss(f):
    """Mean over x~ of E[|x - f(x~)|^2 | x~] = sum_c w_c(x~) |x_c - f(x~)|^2, computed exactly."""
    return np.mean(sum(w_t[:, c] * np.sum((clean[c] - f) ** 2, axis=1) for c in range(2)))


risk_dae, risk_bayes = expected_loss(f_t), expected_loss(m_t)
risk_map = expected_loss(clean[w_t.argmax(axis=1)])
print(f"|f(x~) - E[x|x~]| / |Delta|: mean {dist.mean():.3f}")
print(f"mean |w_hat - w_a| = {np.mean(np.abs(w_hat - w_t[:, 0])):.3f}")
print(f"expected loss: DAE {risk_dae:.2f}, posterior mean (Bayes risk) {risk_bayes:.2f}, "
      f"MAP {risk_map:.2f}, the noisy input itself {expected_loss(x_tilde_t):.0f}")

# %%
order = np.argsort(w_t[:, 0])[np.linspace(0, len(w_t) - 1, 9).astype(int)]
fig = show_rows([x_tilde_t[order], m_t[order], f_t[order]],
                ["noisy $\\tilde x$", "exact $E[x|\\tilde x]$", "DAE output"],
                "posterior weight of the 4, left to right: "
                + ", ".join(f"{v:.2f}" for v in w_t[order, 0]))
plt.show()

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
ax1.scatter(w_t[:, 0], w_hat, s=3, alpha=0.4)
ax1.plot([0, 1], [0, 1], color="C3", lw=1, label="$\\hat w = w_a$")
ax1.set_xlabel("exact posterior weight $w_a(\\tilde x)$")
ax1.set_ylabel("DAE's weight $\\hat w$: $f(\\tilde x) \\approx \\hat w x_a + (1 - \\hat w) x_b$")
ax1.legend(fontsize=8)
ax1.grid(alpha=0.3)
ax2.imshow(image_grid(np.stack([x_a, x_b, 0.5 * (x_a + x_b)]), SHAPE, nrow=3), cmap="gray",
           vmin=0, vmax=1)
ax2.set_title("$x_a$, $x_b$, and $m$ when $w_a = 1/2$", fontsize=10)
ax2.axis("off")
fig.tight_layout()
plt.show()

# %%
assert dist.mean() < 0.1                              # the DAE is close to E[x | x~] ...
assert risk_bayes < risk_dae < min(1.1 * risk_bayes, risk_map)   # ... and so nearly Bayes-optimal

# %% [markdown]
# The DAE never saw a posterior weight: it only saw noisy images and clean targets. The
# squared error alone made it compute $\mathbb{E}[x \mid \tilde x]$, including the ghostly
# superposition of a 4 and a 9 when it cannot tell. On MNIST the posterior is over all
# digits, not two, and the same reasoning explains the soft outputs of section 2.
#
# ## 4. Interpolation: in code space and in pixel space
#
# Walk from digit $x_a$ to digit $x_b$ in two ways: in pixel space, $(1-t)\,x_a + t\,x_b$, a
# cross-fade; or in code space, $\text{decode}\big((1-t)\,z_a + t\,z_b\big)$.
# `minivae.figures.plot_interpolation` draws both, code space on top.

# %%
for i, j in ((0, 1), (2, 3)):
    a, b = np.flatnonzero(y_test == i)[0], np.flatnonzero(y_test == j)[0]
    fig = figures.plot_interpolation(ae, x_test[a], x_test[b], SHAPE, steps=10)
    plt.show()

# %% [markdown]
# The cross-fade is two half-transparent digits on top of each other halfway; the code-space
# path morphs one shape into another, through images that look more like single (if blurry)
# digits. A number for it: the distance from each midpoint to its nearest neighbour among
# training digits. A real test digit has a typical nearest-neighbour distance; pixel-space
# midpoints are farther than that from every training digit. Code-space midpoints are
# closer (the decoder's blur helps them a little here: a blurry image is near many digits).

# %%
ref = x_train[:N_REF].astype(np.float64)             # (N_REF, D) training digits to search
ref_sq = np.sum(ref ** 2, axis=1)


def nearest_distance(images):
    """Euclidean distance from each image (n, D) to its nearest training digit in ref."""
    images = images.astype(np.float64)
    d2 = np.sum(images ** 2, axis=1)[:, None] - 2 * images @ ref.T + ref_sq[None]   # (n, N_REF)
    return np.sqrt(np.maximum(d2.min(axis=1), 0))


pair_rng = np.random.default_rng(13)
ia, ib = pair_rng.integers(0, len(x_test), size=(2, 300))
z_a, z_b = ae.encode(x_test[ia]), ae.encode(x_test[ib])
mid_code = ae.decode(0.5 * z_a + 0.5 * z_b)           # (300, D)
mid_pixel = 0.5 * x_test[ia] + 0.5 * x_test[ib]
nn_code, nn_pixel = nearest_distance(mid_code), nearest_distance(mid_pixel)
nn_real = nearest_distance(x_test[ia])
print(f"mean distance to the nearest training digit: real test digits {nn_real.mean():.2f}, "
      f"pixel midpoints {nn_pixel.mean():.2f}, code midpoints {nn_code.mean():.2f}")
print(f"the code midpoint is the closer of the two for {np.mean(nn_code < nn_pixel):.0%} "
      "of the pairs")

# %%
assert nn_pixel.mean() > nn_real.mean()               # a cross-fade is not a digit
assert np.mean(nn_code < nn_pixel) > 0.8

# %% [markdown]
# ## 5. Sampling: a density for the codes
#
# Could the decoder *generate* new digits? It turns any code into an image; we need codes to
# feed it, drawn from the same distribution as the codes of real digits. A plain autoencoder
# never said what that distribution is: nothing in its loss shapes the codes. So we estimate
# it after training, with a density $q(z)$ fitted to the training codes, then sample
# $z \sim q$ and decode. Three choices:
#
# * $\mathcal N(0, I)$: the naive guess (a VAE's prior, but this is not a VAE);
# * `DiagonalGaussian`: the mean and variance of each code dimension, by maximum likelihood;
# * `GaussianMixture`: 10 full-covariance Gaussians fitted by EM.

# %%
z_train = ae.encode(x_train[:N_REF])                  # (N_REF, Z) codes of training digits
z_test = ae.encode(x_test)                            # (N_TEST, Z)
gauss = DiagonalGaussian(rng=np.random.default_rng(14)).fit(z_train)
gmm = GaussianMixture(10, covariance="full", tol=1e-4, max_iter=100,
                      rng=np.random.default_rng(15)).fit(z_train)
print("code standard deviations:", np.round(np.sqrt(gauss.var_), 2))
print(f"EM: {gmm.n_iter_} iterations, converged: {gmm.converged_}")
assert np.all(np.diff(gmm.history_) > -1e-9)         # EM never decreases its objective

sample_rng = np.random.default_rng(16)
samples = {"N(0, I)": sample_rng.standard_normal((2_000, Z)).astype(np.float32),
           "diagonal Gaussian": gauss.sample(2_000, rng=sample_rng),
           "mixture of 10": gmm.sample(2_000, rng=sample_rng)}
rows = [ae.reconstruct(x_test[:12])] + [ae.decode(s[:12]) for s in samples.values()]
fig = show_rows(rows, ["decoded real codes"] + list(samples), "decoded samples of the code density")
plt.show()

# %% [markdown]
# Some samples are digits; many are smudges, or two digits at once. The decoder is the same
# in every row: it learned what to do with the codes of real digits, and nothing else.
# Everything depends on the codes we feed it. The codes of real digits do not fill a
# Gaussian blob, and a Gaussian fitted to them puts much of its mass where no real digit's
# code lies. Two numbers make this precise.
#
# 1. **Log-likelihood of held-out codes** under each density: how well it describes where the
#    codes of real digits are.
# 2. **Samples in empty regions**: for each sample, the distance to the nearest training code.
#    Among held-out test codes, 1% are farther than the 99th percentile $r_{99}$ of their own
#    nearest-code distances, by definition. A sample farther than $r_{99}$ sits where almost
#    no real digit's code does. (The same count with the mixture's log-density in place of
#    the distance tells the same story.)

# %%
zt_sq = np.sum(z_train.astype(np.float64) ** 2, axis=1)


def nearest_code_distance(z):
    """Distance from each code (n, Z) to its nearest training code."""
    z = z.astype(np.float64)
    d2 = np.sum(z ** 2, axis=1)[:, None] - 2 * z @ z_train.T.astype(np.float64) + zt_sq[None]
    return np.sqrt(np.maximum(d2.min(axis=1), 0))


assert len(z_train) == N_REF == (5_000 if FAST else 10_000)   # as the text below says
r99 = np.quantile(nearest_code_distance(z_test), 0.99)
low_density = np.quantile(gmm.log_prob(z_test), 0.01)   # 1% of real test codes fall below it
far = {name: float(np.mean(nearest_code_distance(s) > r99)) for name, s in samples.items()}
thin = {name: float(np.mean(gmm.log_prob(s) < low_density)) for name, s in samples.items()}
loglik = {"N(0, I)": float(np.mean(-0.5 * np.sum(z_test.astype(np.float64) ** 2 + np.log(2 * np.pi),
                                                 axis=1))),
          "diagonal Gaussian": gauss.score(z_test), "mixture of 10": gmm.score(z_test)}
print(f"{'':20s}{'test-code log-lik':>18s}{'samples beyond r99':>20s}"
      f"{'below 1% mixture density':>26s}")
for name in samples:
    print(f"{name:20s}{loglik[name]:18.1f}{far[name]:20.0%}{thin[name]:26.0%}")
print(f"{'real test codes':20s}{'':18s}{'1%':>20s}{'1%':>26s}")


fig, ax = plt.subplots(figsize=(7, 3.4))
bins = np.linspace(0, np.quantile(nearest_code_distance(samples["diagonal Gaussian"]), 0.995), 60)
ax.hist(nearest_code_distance(z_test), bins=bins, density=True, histtype="step", lw=2,
        color="k", label="real test codes")
for name in ("diagonal Gaussian", "mixture of 10"):
    ax.hist(nearest_code_distance(samples[name]), bins=bins, density=True, histtype="step",
            lw=1.5, label=f"samples: {name}")
ax.axvline(r99, color="0.5", ls=":", label="$r_{99}$")
ax.set_xlabel("distance to the nearest training code")
ax.set_ylabel("density")
ax.set_title("where the samples land, compared with real codes", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
assert loglik["N(0, I)"] < loglik["diagonal Gaussian"] < loglik["mixture of 10"]
assert far["diagonal Gaussian"] > 0.2                 # many times the 1% of real codes
assert far["mixture of 10"] < far["diagonal Gaussian"]

# %% [markdown]
# A Gaussian describes the codes poorly and puts a large share of its samples where there
# are no real codes; the decoder turns those into smudges. A better density (the mixture)
# describes the codes better and wastes fewer samples, yet still not all: the codes of the
# `N_REF` training digits it was fitted to (10,000 of them; 5,000 in fast mode), in 16
# dimensions, have a shape that ten ellipsoids do not capture. **The density in code space is
# the whole problem.** The decoder is not to blame.
#
# Two names for what is missing, used in many lecture notes on VAEs: a code space is
# **continuous** when nearby codes decode to similar images, and **complete** when every code
# drawn from the density we sample from decodes to a plausible image. Section 4 showed some
# continuity (code-space midpoints look like digits); this section shows that completeness
# fails: the density we can fit after training sends many samples where no digit's code lies.
#
# The variational autoencoder attacks the problem from the other side: rather than fitting a
# density to whatever codes training produced, it trains the encoder so that the codes *fill*
# a density fixed in advance, $\mathcal N(0, I)$. Lessons 4–6 build it.
#
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. The cross-entropy also learns the mean.** With `output="bernoulli"` the
# decoder gives a probability $p = \mathrm{sigmoid}(\ell)$ per pixel, and the loss per pixel is
# $-x\log p - (1-x)\log(1-p)$ (with $x \in [0, 1]$, grey levels allowed). Show that, for a
# fixed $\tilde x$, the expected loss over the clean pixel values $x$ is minimised at
# $p = \mathbb{E}[x \mid \tilde x]$, like the squared error. Check it with
# `minivae.losses.bernoulli_nll`: for a set of target pixel values, the gradient of the mean
# loss with respect to the logit vanishes at $\ell = \mathrm{logit}(\bar x)$, and nearby logits
# give a higher loss.

# %% tags=["exercise"]
# Your code: for the 500 target values of one pixel in `targets` (500, 1), their mean `mu`,
# the logit `best_logit` that minimises the mean cross-entropy, and mean_nll(logit), a function
# returning the mean loss and the mean gradient w.r.t. the logit, both from
# losses.bernoulli_nll.
targets = np.random.default_rng(17).random((500, 1))
mu = None
best_logit = None
loss_best, grad_best = None, None


def mean_nll(logit):
    return None, None

# %% tags=["solution"]
# Solution. The expected loss is -mu log p - (1 - mu) log(1 - p) with mu = E[x | x~]; its
# derivative in the logit is p - mu (minivae's dlogits = sigmoid(l) - x, averaged), which is 0
# exactly at p = mu; the loss is convex in the logit, so this is the minimum.
targets = np.random.default_rng(17).random((500, 1))             # 500 values of one pixel
mu = targets.mean()
best_logit = np.log(mu / (1 - mu))


def mean_nll(logit):
    nll, dlogits = losses.bernoulli_nll(np.full_like(targets, logit), targets)
    return nll.mean(), dlogits.mean()


loss_best, grad_best = mean_nll(best_logit)
print(f"mean target {mu:.4f}; at logit(mean): loss {loss_best:.6f}, gradient {grad_best:.1e}")

# %%
assert abs(grad_best) < 1e-10
assert all(mean_nll(best_logit + d)[0] > loss_best for d in (-0.1, -0.01, 0.01, 0.1))

# %% [markdown]
# **Exercise 2. When is the posterior split?** In the two-image example of section 3, show
# that the posterior log-odds $L = \log(w_a / w_b)$ of a noisy $x_a$ is
# $L = \frac{r^2}{2} + r\,u$ with $u \sim \mathcal N(0, 1)$ and $r = \lVert\Delta\rVert / \sigma$:
# the 784 pixels matter only through their projection on $\Delta$. Deduce the probability that
# $0.1 < w_a < 0.9$ as a function of $r$ alone, check it against the share measured in
# section 3 ($r = 1.5$), and plot it against $r$.

# %% tags=["exercise"]
# Your code: p_split(r), the probability that 0.1 < w_a < 0.9 as a function of r; r_toy, the
# r of section 3; and the share of section 3's 20000 noisy images whose w_a lies between 0.1
# and 0.9, with its standard error.
def p_split(r):
    return None


r_toy = None
share, se_share = None, None

# %% tags=["solution"]
# Solution. For x~ = x_a + sigma eps: |x~ - x_b|^2 - |x~ - x_a|^2 = |Delta + sigma eps|^2 - |sigma eps|^2
# = |Delta|^2 + 2 sigma Delta.eps, so L = (|Delta|^2 + 2 sigma Delta.eps) / (2 sigma^2) = r^2/2 + r u
# with u = Delta.eps / |Delta| ~ N(0, 1). A noisy x_b gives -L, with the same law mirrored, so
# P(0.1 < w_a < 0.9) = P(|L| < log 9) = Phi((log 9 - r^2/2) / r) - Phi((-log 9 - r^2/2) / r).
Phi = NormalDist().cdf


def p_split(r):
    return Phi((np.log(9) - r ** 2 / 2) / r) - Phi((-np.log(9) - r ** 2 / 2) / r)


r_toy = np.linalg.norm(delta) / sigma_toy
split = (w[:, 0] > 0.1) & (w[:, 0] < 0.9)            # section 3's 20000 noisy images
share, se_share = split.mean(), split.std() / np.sqrt(len(split))
print(f"r = {r_toy:.2f}: predicted {p_split(r_toy):.4f}, measured {share:.4f} +- {se_share:.4f}")

rs = np.linspace(0.2, 6, 200)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(rs, [p_split(r) for r in rs])
ax.plot(r_toy, share, "o", color="C3", label="measured, section 3")
ax.set_xlabel("$r = \\Vert x_a - x_b \\Vert / \\sigma$")
ax.set_ylabel("P(0.1 < $w_a$ < 0.9)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
assert abs(share - p_split(r_toy)) < 4 * se_share
assert p_split(5.0) < 0.05                           # clean separation: the denoiser can commit

# %% [markdown]
# **Exercise 3. A dense layer's backward.** Every hidden layer of the autoencoders above is a
# `minivae.layers.Dense`, $y = \mathrm{relu}(x W + b)$ with $x$ (N, D), $W$ (D, H), $b$ (H,).
# Its forward, in the next cell, keeps in its cache what the backward needs. Write
# `dense_backward(dy, cache)`: given $dy = \partial L / \partial y$ (N, H), return
# $dx = \partial L/\partial x$ (N, D), $dW$ (D, H) and $db$ (H,). Derive it first, one line
# per array, through $a = xW + b$; then the check compares each array with central
# differences of $L = \sum y \odot dy$ (`minivae.gradcheck.check_grad`, in float64) and with
# the library's `Dense`.

# %%
def dense_forward(x, W, b):
    """y = relu(x @ W + b).   x (N, D), W (D, H), b (H,) -> y (N, H), cache."""
    a = x @ W + b                                      # (N, H) pre-activation
    y = np.maximum(a, 0.0)                             # (N, H)
    return y, (x, W, a)


# %% tags=["exercise"]
def dense_backward(dy, cache):
    """dy (N, H) -> dx (N, D), dW (D, H), db (H,) for y = relu(x @ W + b)."""
    x, W, a = cache
    dx = np.zeros_like(x)                              # your code: replace these three lines
    dW = np.zeros_like(W)
    db = np.zeros(W.shape[1])
    return dx, dW, db

# %% tags=["solution"]
# Solution. da = dy * relu'(a), with relu'(a) = 1 where a > 0 and 0 elsewhere; then the
# affine map: dW = x^T da (each weight W_dh sums x_nd da_nh over the batch), db = sum_n da,
# and dx = da W^T.
def dense_backward(dy, cache):
    """dy (N, H) -> dx (N, D), dW (D, H), db (H,) for y = relu(x @ W + b)."""
    x, W, a = cache
    da = dy * (a > 0)                                  # (N, H)
    return da @ W.T, x.T @ da, da.sum(axis=0)          # (N, D), (D, H), (H,)

# %%
check_rng = np.random.default_rng(20)
x_c, W_c = check_rng.standard_normal((5, 7)), check_rng.standard_normal((7, 4))   # float64
b_c, dy_c = check_rng.standard_normal(4), check_rng.standard_normal((5, 4))
y_c, cache_c = dense_forward(x_c, W_c, b_c)
dx_c, dW_c, db_c = dense_backward(dy_c, cache_c)


def upstream_loss():
    return float(np.sum(dense_forward(x_c, W_c, b_c)[0] * dy_c))    # L = sum(y * dy)


errs = {name: check_grad(upstream_loss, arr, g)
        for name, arr, g in (("x", x_c, dx_c), ("W", W_c, dW_c), ("b", b_c, db_c))}
dense = Dense(7, 4, "relu", dtype=np.float64)            # the library's layer, same numbers
dense.params["W"][...], dense.params["b"][...] = W_c, b_c
dense.zero_grad()
y_lib = dense.forward(x_c)
dx_lib = dense.backward(dy_c)
print("relative errors against central differences:", {k: f"{e:.1e}" for k, e in errs.items()})
assert max(errs.values()) < 1e-7
assert rel_error(y_lib, y_c) < 1e-12 and rel_error(dx_lib, dx_c) < 1e-10
assert rel_error(dense.grads["W"], dW_c) < 1e-10 and rel_error(dense.grads["b"], db_c) < 1e-10

# %% [markdown]
# ## Summary
#
# * A nonlinear autoencoder reconstructs much better than PCA with the same code size.
# * A denoising autoencoder learns to restore corrupted digits. With the squared error (or the
#   cross-entropy), the best denoiser is the posterior mean $\mathbb{E}[x \mid \tilde x]$: a
#   blur of all plausible clean images. We saw a trained DAE approach the exact posterior mean.
# * Interpolating codes gives more digit-like images than cross-fading pixels.
# * To generate, we need the density of the codes. Fitted after the fact, a Gaussian is far
#   off, and a mixture is better but not enough. The VAE makes the codes fit a known density
#   instead.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Vincent et al. 2008 for denoising autoencoders;
# Alain & Bengio 2014 for what a denoiser learns; Bishop 2006, section 1.5.5, for the posterior
# mean as the minimiser of the squared error.
