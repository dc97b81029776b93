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
# # Lesson 2: A linear autoencoder finds the PCA subspace
#
# Lesson 1 solved linear compression in closed form: project onto the top principal components.
# Now we forget the closed form and *train* a linear encoder and decoder by gradient descent,
# the way every autoencoder in this course is trained. It converges to PCA's answer, but only
# in part: it finds the same **subspace**, not the same **axes**.
#
# You will see:
#
# 1. the linear autoencoder's forward and backward passes written by hand, matched to
#    `minivae.models.LinearAutoencoder`, and both checked against numerical gradients;
# 2. why its best weights reconstruct exactly as PCA does (Eckart–Young again), and why
#    gradient descent does not get stuck on the way (the other critical points are saddles);
# 3. training on MNIST, with the **principal angles** between its subspace and PCA's going to zero;
# 4. what training cannot determine: the weights, up to any invertible map. The decoder's
#    columns are not the principal components, though they span the same subspace.
#
# Every derivation is followed by a cell that checks it with `assert`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import data
from minivae.figures import image_grid
from minivae.gradcheck import check_grad, rel_error
from minivae.models import PCA, LinearAutoencoder, principal_angles
from minivae.optim import Adam
from minivae.train import fit

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 10_000 if FAST else 60_000           # training digits
Z = 6                                          # code size (why 6: section 3)
STEPS = 1_500 if FAST else 3_000               # Adam steps
DECAY = 0.3 if FAST else 0.5                   # share of the steps over which the step size -> 0
BATCH = 512                                    # digits per step
LR = 1e-2                                      # Adam's step size before the decay
RECORD = 20                                    # record the principal angles every RECORD steps

train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x = train_set.x[:N_TRAIN]                      # (N, 784) float32 in [0, 1]
x_test = test_set.x                            # (10000, 784)
N, D = x.shape
SHAPE = train_set.image_shape
print(f"{N} training digits of D = {D} pixels; code size Z = {Z}")

# %% [markdown]
# ## 1. The model, forward and backward
#
# In the notation of lesson 1 (column vectors), the encoder and decoder are affine maps
#
# $$z = W_e x + b_e \in \mathbb{R}^Z, \qquad \hat x = W_d z + b_d \in \mathbb{R}^D,
#   \qquad W_e \in \mathbb{R}^{Z\times D},\; W_d \in \mathbb{R}^{D \times Z},$$
#
# and the loss of a batch of $B$ images is the squared error summed over pixels, averaged over
# the batch (minivae's convention for every model):
#
# $$L = \frac1B \sum_{n=1}^B \lVert \hat x_n - x_n \rVert^2 .$$
#
# In code, images are the *rows* of `x` (B, D), so each layer computes `x @ W + b` and stores
# $W$ transposed: the encoder's `W` is $W_e^\top$ (D, Z) and the decoder's is $W_d^\top$ (Z, D).
# The backward pass is the chain rule, one line per array, each the size of what it differentiates:
#
# $$\begin{aligned}
# \partial L/\partial \hat x &= \tfrac{2}{B} (\hat x - x) && (B, D)\\
# \partial L/\partial W_d^\top &= z^\top\, \partial L/\partial \hat x, \quad
#   \partial L/\partial b_d = \textstyle\sum_n \partial L/\partial \hat x_n && (Z, D),\ (D,)\\
# \partial L/\partial z &= \partial L/\partial \hat x \; W_d && (B, Z)\\
# \partial L/\partial W_e^\top &= x^\top\, \partial L/\partial z, \quad
#   \partial L/\partial b_e = \textstyle\sum_n \partial L/\partial z_n && (D, Z),\ (Z,)
# \end{aligned}$$
#
# We write these by hand and compare them with `LinearAutoencoder`, which chains two
# `minivae.layers.Linear` layers and `minivae.losses.mse`. Gradient checks use float64.

# %%
def forward_backward(x, We, be, Wd, bd):
    """The linear autoencoder's loss and its gradients, by hand. x (B, D); We (D, Z); Wd (Z, D)."""
    B = x.shape[0]
    z = x @ We + be                                   # (B, Z)
    x_hat = z @ Wd + bd                               # (B, D)
    loss = np.sum((x_hat - x) ** 2) / B
    dx_hat = 2 * (x_hat - x) / B                      # (B, D)
    dWd, dbd = z.T @ dx_hat, dx_hat.sum(axis=0)       # (Z, D), (D,)
    dz = dx_hat @ Wd.T                                # (B, Z)
    dWe, dbe = x.T @ dz, dz.sum(axis=0)               # (D, Z), (Z,)
    return loss, {"encoder.W": dWe, "encoder.b": dbe, "decoder.W": dWd, "decoder.b": dbd}


x_small = x[:16, ::8].astype(np.float64)             # 16 digits, every 8th pixel: (16, 98)
lae64 = LinearAutoencoder(x_small.shape[1], 3, rng=0, dtype=np.float64)
P = lae64.params                                      # "encoder.W", "encoder.b", "decoder.W", ...
loss_hand, grads_hand = forward_backward(x_small, P["encoder.W"], P["encoder.b"],
                                         P["decoder.W"], P["decoder.b"])
lae64.zero_grad()
loss_lib = lae64.loss(x_small)
lae64.backward()
grads_lib = {k: g.copy() for k, g in lae64.grads.items()}

# and both against central differences, d loss / d p for every entry p of every parameter
numeric = {k: check_grad(lambda: lae64.loss(x_small), P[k], grads_lib[k]) for k in P}
for k in P:
    print(f"{k:10s}  hand vs minivae {rel_error(grads_hand[k], grads_lib[k]):.1e}   "
          f"minivae vs numerical {numeric[k]:.1e}")

# %%
assert abs(loss_hand - loss_lib) < 1e-12 * loss_lib
assert all(rel_error(grads_hand[k], grads_lib[k]) < 1e-10 for k in P)
assert all(e < 1e-7 for e in numeric.values())

# %% [markdown]
# ## 2. Why the best weights give PCA
#
# Put the two maps together: $\hat x = W_d W_e\, x + (W_d b_e + b_d) = M x + c$. The linear part
# $M = W_d W_e$ is a $D \times D$ matrix of rank at most $Z$. The Eckart–Young theorem of
# lesson 1 says that no such rank-$Z$ map reconstructs better than PCA's projection
# $M^\star = V_Z V_Z^\top$ (with $V_Z$ the top $Z$ principal components as columns) with
# $c^\star = (I - M^\star)\bar x$. And the autoencoder can express it:
#
# $$W_e = V_Z^\top, \quad b_e = -V_Z^\top \bar x, \quad W_d = V_Z, \quad b_d = \bar x .$$
#
# So **the minimum of the autoencoder's loss is PCA's error**. What is fixed at a minimum is
# the map *on the data*: $W_d W_e \tilde x = V_Z V_Z^\top \tilde x$ for every centred image
# $\tilde x$ (as long as $\lambda_Z > \lambda_{Z+1}$, which makes the principal subspace
# unique), and the decoder's columns span that subspace. The matrix $W_d W_e$ itself is *not*
# fixed: MNIST's covariance is singular (some border pixels are 0 in every image, lesson 1), so
# the data span only part of $\mathbb{R}^D$, and the encoder may do anything along the
# directions the data never take, at no cost. The biases absorb the mean: the data need no
# centring.
#
# Could gradient descent get stuck before reaching it? Baldi and Hornik (1989) showed, for a
# covariance that is invertible with distinct eigenvalues, that this loss has no local minima
# other than the global ones: the other critical points put the decoder on *other* sets of $Z$
# eigenvectors, and they are saddles, since turning one of them towards a missing top
# eigenvector lowers the loss. On MNIST their assumption fails, and the statement holds on the
# span of the data: along the directions with zero variance the loss is flat (a whole valley
# of minima, all with PCA's error), not curved upward.
#
# We check these claims in float64: the covariance is singular; the PCA weights give PCA's loss
# with zero gradient; so do the PCA weights with arbitrary encoder weights on the constant
# pixels, although their $W_d W_e$ is not $V_Z V_Z^\top$; swapping $v_Z$ for $v_{Z+1}$ also
# gives zero gradient, but a higher loss; and rotating that decoder column from $v_{Z+1}$ back
# towards $v_Z$ lowers the loss.

# %%
x64 = x.astype(np.float64)                            # (N, D) for the checks
pca = PCA(Z, dtype=np.float64).fit(x64)               # the answer, V_Z
pca_more = PCA(12, dtype=np.float64).fit(x64)         # more components: v_{Z+1}, the gaps
lam = pca_more.explained_variance_


def set_weights(model, V, mean):
    """Encoder V^T (x - mean), decoder mean + V z, for V (D, Z) with orthonormal columns."""
    P = model.params
    P["encoder.W"][...] = V                           # W_e^T = V      (D, Z)
    P["encoder.b"][...] = -mean @ V                   # b_e = -V^T mean
    P["decoder.W"][...] = V.T                         # W_d^T = V^T    (Z, D)
    P["decoder.b"][...] = mean


def loss_and_grad_norm(model, x):
    model.zero_grad()
    loss = model.loss(x)
    model.backward()
    return loss, max(np.max(np.abs(g)) for g in model.grads.values())


lae_check = LinearAutoencoder(D, Z, rng=0, dtype=np.float64)
V_top = pca.components_.T                                              # v_1 .. v_Z      (D, Z)
V_swap = pca_more.components_[[*range(Z - 1), Z]].T                    # v_Z -> v_{Z+1}

set_weights(lae_check, V_top, pca.mean_)
loss_top, grad_top = loss_and_grad_norm(lae_check, x64)
set_weights(lae_check, V_swap, pca.mean_)
loss_swap, grad_swap = loss_and_grad_norm(lae_check, x64)
turn = []
for t in (0.05, 0.1, 0.2):                            # rotate column Z from v_{Z+1} towards v_Z
    V_t = V_swap.copy()
    V_t[:, -1] = np.cos(t) * V_swap[:, -1] + np.sin(t) * V_top[:, -1]
    set_weights(lae_check, V_t, pca.mean_)
    turn.append(lae_check.loss(x64))
dead = x.std(axis=0) == 0                             # pixels that are 0 in every image
eig_C = np.linalg.eigvalsh(np.cov(x64, rowvar=False))  # the covariance's spectrum, ascending
set_weights(lae_check, V_top, pca.mean_)
lae_check.params["encoder.W"][dead] = np.random.default_rng(4).standard_normal((dead.sum(), Z))
loss_free, grad_free = loss_and_grad_norm(lae_check, x64)
We_free = lae_check.params["encoder.W"].T             # (Z, D) W_e, anything on the dead pixels
map_gap = np.linalg.norm(V_top @ We_free - V_top @ V_top.T)   # || W_d W_e - V V^T ||_F
print(f"{dead.sum()} constant pixels; the covariance has {np.sum(eig_C < 1e-12 * eig_C[-1])} "
      f"zero eigenvalues of {D}")
print(f"PCA weights:        loss {loss_top:.6f} (PCA: {pca.loss(x64):.6f}), "
      f"max |gradient| {grad_top:.1e}")
print(f"... and random encoder weights on the constant pixels: loss {loss_free:.6f}, "
      f"max |gradient| {grad_free:.1e}, ||W_d W_e - V V^T||_F = {map_gap:.1f}")
print(f"v_{Z} swapped for v_{Z + 1}: loss {loss_swap:.6f}, max |gradient| {grad_swap:.1e}")
print(f"rotating back by 0.05, 0.1, 0.2 rad: losses {np.round(turn, 6)}")
print(f"the loss it costs: (N-1)/N (lam_Z - lam_Z+1) = {(N - 1) / N * (lam[Z - 1] - lam[Z]):.6f}")

# %%
assert abs(loss_top - pca.loss(x64)) < 1e-10 * loss_top       # the minimum is PCA's error
assert np.all(x[:, dead] == 0)                                  # they are black everywhere
assert np.sum(eig_C < 1e-12 * eig_C[-1]) >= dead.sum() > 0      # a singular covariance ...
assert abs(loss_free - loss_top) < 1e-10 * loss_top and grad_free < 1e-10   # ... so another
assert map_gap > 1.0                                            # minimum with W_d W_e != V V^T
assert grad_top < 1e-10 and grad_swap < 1e-10                   # both are critical points
assert abs((loss_swap - loss_top) - (N - 1) / N * (lam[Z - 1] - lam[Z])) < 1e-9 * loss_top
assert loss_swap > turn[0] > turn[1] > turn[2]                  # ... but the swap is a saddle

# %% [markdown]
# ## 3. Training by gradient descent
#
# Now train a float32 `LinearAutoencoder` from a random start, with minibatches and Adam,
# and measure how far its subspace is from PCA's.
#
# **Principal angles.** Two $Z$-dimensional subspaces of $\mathbb{R}^D$ are compared by $Z$
# angles $0 \le \theta_1 \le \dots \le \theta_Z \le 90°$: with orthonormal bases $Q_A, Q_B$,
# $\cos\theta_i$ are the singular values of $Q_A^\top Q_B$. All angles are 0 exactly when the
# subspaces are equal; $\theta_Z$ is the worst direction: some unit vector of one subspace is
# $\theta_Z$ away from the other. `minivae.models.principal_angles(A, B)` computes them for the
# column spaces of A and B; the decoder's columns are `lae.decoder_basis`, $W_d$ (D, Z).
#
# **Why $Z = 6$.** The subspace to find is sharply defined only if $\lambda_Z$ stands clear
# of $\lambda_{Z+1}$; the last direction converges at a speed that grows with the gap
# $\lambda_Z - \lambda_{Z+1}$ (and at $\lambda_Z = \lambda_{Z+1}$ there is no unique answer at all).
# On MNIST, $Z = 6$ has the widest gap after $Z = 1$:

# %%
gaps = -np.diff(lam)
print("eigenvalues: ", np.round(lam, 3))
print("gaps lam_i - lam_i+1:", np.round(gaps, 3))
V_pca = pca.components_.T                             # (D, Z)
assert np.argmax(gaps[1:]) + 2 == Z                   # the widest gap after Z = 1

# %% [markdown]
# The training loop is minivae's, `minivae.train.fit(model, x, optimizer, epochs, batch_size,
# rng, callbacks)`: each epoch it shuffles the digits and cuts them into minibatches (the last
# one may be short), and for each minibatch it runs `loss`, `backward` and the optimizer's
# `step`. What this lesson wants besides comes in as a **callback**, an object whose
# `batch_begin(p)` and `batch_end(p)` `fit` calls around each step, with `p` its progress (the
# epoch, the batch, the last loss; setting `p.stop` ends the loop). Ours records the loss of
# every step and the principal angles every `RECORD` steps, stops after `STEPS` steps, and sets
# the step size: it stays at `LR` and then, over the last share `DECAY` of the steps, decays
# linearly to 0. A minibatch gradient is a noisy estimate of the full one, and a smaller step
# averages the noise out over more steps.

# %%
def copy_float64(model):
    """A float64 LinearAutoencoder with the same weights (for exact comparisons)."""
    out = LinearAutoencoder(model.x_dim, model.z_dim, rng=0, dtype=np.float64)
    for k, v in model.params.items():
        out.params[k][...] = v
    return out


lae = LinearAutoencoder(D, Z, rng=np.random.default_rng(0))
init_encoder_W = lae.params["encoder.W"].copy()       # (D, Z), to look at in section 4
opt = Adam(lae.params, lr=LR)


class Record:
    """fit's callback: the step-size schedule; each step's loss, the principal angles every
    RECORD steps; a stop after STEPS steps."""

    def __init__(self):
        self.steps, self.losses = [0], []
        self.angles = [np.degrees(principal_angles(lae.decoder_basis, V_pca))]   # (Z,) degrees

    def batch_begin(self, p):
        step = p.epoch * p.batches + p.batch          # steps done before this one
        opt.lr = LR * min(1.0, (1 - step / STEPS) / DECAY)   # constant, then linear decay to 0

    def batch_end(self, p):
        step = p.epoch * p.batches + p.batch          # steps done, this one included
        self.losses.append(p.loss)                    # its batch mean squared error
        if step % RECORD == 0:
            self.steps.append(step)
            self.angles.append(np.degrees(principal_angles(lae.decoder_basis, V_pca)))
        if step == STEPS:
            p.stop = True


record = Record()
batches = int(np.ceil(N / BATCH))                     # minibatches an epoch, the last one short
epochs = int(np.ceil(STEPS / batches))                # enough for STEPS steps; Record stops there
fit(lae, x, opt, epochs, BATCH, rng=1, callbacks=[record])   # rng=1: the shuffles
steps_recorded, losses = record.steps, record.losses
angles = np.array(record.angles)                      # (records, Z), ascending in each row
loss_ae, loss_pca = copy_float64(lae).loss(x64), pca.loss(x64)   # whole training set
print(f"after {STEPS} steps: training loss {loss_ae:.4f}, PCA's {loss_pca:.4f}")
print("principal angles to the PCA subspace (degrees):", np.round(angles[-1], 3))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for i in range(Z):
    ax1.semilogy(steps_recorded, angles[:, i], label=f"$\\theta_{i + 1}$")
ax1.axvline(STEPS * (1 - DECAY), color="0.6", ls=":", lw=1)
ax1.text(STEPS * (1 - DECAY), 30, " step size\n decays", fontsize=8, color="0.4")
ax1.set_xlabel("step")
ax1.set_ylabel("degrees")
ax1.set_title("principal angles: decoder columns vs PCA subspace", fontsize=10)
ax1.legend(fontsize=8, ncol=2)
window = 25
smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
ax2.plot(np.arange(window, len(losses) + 1), smooth, label="autoencoder (minibatch, smoothed)")
ax2.axhline(loss_pca, color="C3", ls="--", label="PCA, whole training set")
ax2.set_ylim(loss_pca * 0.9, loss_pca * 1.8)
ax2.set_xlabel("step")
ax2.set_ylabel("squared error per digit")
ax2.set_title("reconstruction loss", fontsize=10)
ax2.legend(fontsize=8)
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# The loss reaches PCA's level long before the subspace does: near the optimum, tilting the
# subspace by a small angle $\theta$ toward a discarded direction costs only about
# $\theta^2(\lambda_Z - \lambda_{Z+1})$. The angles are the sharper measure. The small ones
# (directions with large eigenvalues and large gaps) settle first; the largest, governed by
# the gap $\lambda_6 - \lambda_7$, comes last.
#
# **How small is small enough?** We ask for $\theta_Z < 1°$. Two yardsticks put that in scale:
# a random 6-dimensional subspace of $\mathbb{R}^{784}$ is at nearly $90°$ from PCA's; and PCA
# fitted to *another sample* of MNIST digits, the 10,000 test images, lands several degrees
# away from PCA on the training digits. An angle of $1°$ is well below what the data
# themselves can pin down, in fast mode as at full size.

# %%
theta_random = np.degrees(principal_angles(np.random.default_rng(2).standard_normal((D, Z)), V_pca))
pca_test = PCA(Z, dtype=np.float64).fit(x_test)      # PCA of another sample of digits
theta_sample = np.degrees(principal_angles(pca_test.components_.T, V_pca))
print(f"largest angle: random subspace {theta_random[-1]:.1f} deg, "
      f"PCA of the test digits {theta_sample[-1]:.2f} deg, "
      f"trained autoencoder {angles[-1, -1]:.3f} deg (at the start: {angles[0, -1]:.1f} deg)")

# %%
assert angles[0, -1] > 45                             # it started far away
assert angles[-1, -1] < 1.0                           # and ended within 1 degree
assert angles[-1, -1] < theta_sample[-1] / 4 and theta_random[-1] > 80
assert loss_pca <= loss_ae < loss_pca * 1.001         # PCA is the optimum; the AE is within 0.1%

# %% [markdown]
# ## 4. Same subspace, different axes
#
# Only the product $W_d W_e$ enters the reconstruction. For **any** invertible $A \in \mathbb{R}^{Z\times Z}$,
#
# $$W_e \to A W_e,\quad b_e \to A b_e, \quad W_d \to W_d A^{-1}
#   \qquad\Longrightarrow\qquad z \to A z, \quad \hat x = W_d A^{-1} A (W_e x + b_e) + b_d \ \text{unchanged}.$$
#
# The loss cannot tell these weights apart, so training has no reason to prefer orthonormal
# decoder columns, let alone the principal components themselves: the columns of $W_d$ are
# some basis of the principal subspace, wherever the random start and the path of gradient
# descent left them. In code (rows, transposed weights): the encoder's `W` becomes $W_e^\top A^\top$,
# its `b` becomes $b_e A^\top$, and the decoder's `W` becomes $A^{-\top} W_d^\top$.
#
# We check it on a float64 copy of the trained model.

# %%
lae_a, lae_b = copy_float64(lae), copy_float64(lae)
A = np.random.default_rng(3).standard_normal((Z, Z)) + 2 * np.eye(Z)   # invertible (checked below)
Pb = lae_b.params
Pb["encoder.W"][...] = Pb["encoder.W"] @ A.T
Pb["encoder.b"][...] = Pb["encoder.b"] @ A.T
Pb["decoder.W"][...] = np.linalg.inv(A).T @ Pb["decoder.W"]

xt = x_test[:1000].astype(np.float64)
recon_a, recon_b = lae_a.reconstruct(xt), lae_b.reconstruct(xt)
codes_a, codes_b = lae_a.encode(xt), lae_b.encode(xt)
print(f"cond(A) = {np.linalg.cond(A):.1f}; "
      f"reconstructions differ by {rel_error(recon_a, recon_b):.1e}; "
      f"codes by {rel_error(codes_a, codes_b):.2f}")

# %%
assert np.linalg.cond(A) < 1e3
assert rel_error(recon_a, recon_b) < 1e-10                     # the same reconstructions
assert rel_error(codes_b, codes_a @ A.T) < 1e-10               # the codes moved: z -> A z
assert rel_error(codes_a, codes_b) > 0.1
assert abs(lae_a.loss(xt) - lae_b.loss(xt)) < 1e-10 * lae_a.loss(xt)

# %% [markdown]
# So what did our trained decoder pick? Its columns are neither unit vectors nor orthogonal,
# and no column is a principal component: below, $|\cos|$ between each decoder column and each
# principal component, and the columns drawn as images under the components. Yet they span
# the same subspace (section 3), and on the digits the end-to-end map $W_d W_e$ acts as PCA's
# projection $V_Z V_Z^\top$: $\lVert (W_d W_e - V_Z V_Z^\top)\,\tilde X^\top \rVert_F$ is small
# next to $\lVert \tilde X \rVert_F$.
#
# (Why only on the digits? Section 2: the border pixels that are 0 in every image. The encoder's
# weights for those pixels get a gradient $x^\top \partial L/\partial z$ that is exactly 0, so
# they keep their random initial values: $W_d W_e$ as a matrix is not $V_Z V_Z^\top$. It does
# not matter, since they are always multiplied by 0.)

# %%
Wd = lae_a.decoder_basis                              # (D, Z), columns = decoder columns
We = lae_a.params["encoder.W"].T                      # (Z, D)
norms = np.linalg.norm(Wd, axis=0)
gram = (Wd / norms).T @ (Wd / norms)                  # cosines between decoder columns
cos_pc = np.abs(V_pca.T @ (Wd / norms))   # (Z, Z) |cos(v_i, column j)|
xt_c = xt - pca.mean_                                 # (1000, D) centred test digits
projection_error = np.linalg.norm(xt_c @ (Wd @ We - V_pca @ V_pca.T).T) / np.linalg.norm(xt_c)
print("decoder column norms:", np.round(norms, 2))
print("largest |cos| between two decoder columns:", f"{np.max(np.abs(gram - np.eye(Z))):.2f}")
print("best |cos| of each column with a principal component:", np.round(cos_pc.max(axis=0), 3))
print(f"|| (W_d W_e - V V^T) X~^T || / || X~ || = {projection_error:.4f} on test digits")
print(f"{dead.sum()} constant pixels; their encoder weights are still the initial ones: "
      f"{np.array_equal(lae.params['encoder.W'][dead], init_encoder_W[dead])}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 2.2]})
im = ax1.imshow(cos_pc, cmap="viridis", vmin=0, vmax=1)
ax1.set_xlabel("decoder column $j$")
ax1.set_ylabel("principal component $i$")
ax1.set_xticks(range(Z), range(1, Z + 1))
ax1.set_yticks(range(Z), range(1, Z + 1))
ax1.set_title("$|\\cos(v_i, W_d[:, j])|$", fontsize=10)
fig.colorbar(im, ax=ax1, fraction=0.046)
def scaled(V):
    """Each column mapped to [0, 1], 0.5 for 0, to be drawn as an image."""
    return 0.5 + 0.5 * V / np.abs(V).max(axis=0)


rows = np.concatenate([scaled(V_pca).T, scaled(Wd).T])
ax2.imshow(image_grid(rows, SHAPE, nrow=Z), cmap="RdBu_r", vmin=0, vmax=1)
ax2.set_yticks([1 + SHAPE[0] / 2, 2 + 1.5 * SHAPE[0]], ["PCA $v_i$", "decoder\ncolumns"])
ax2.set_xticks([])
ax2.set_title("the same subspace, different bases", fontsize=10)
fig.tight_layout()
plt.show()

# %%
assert np.max(np.abs(norms - 1)) > 0.1 or np.max(np.abs(gram - np.eye(Z))) > 0.1   # not orthonormal
assert cos_pc.max() < 0.99                            # no column is a principal component
assert projection_error < 0.05                        # yet W_d W_e acts as PCA's projection
assert np.array_equal(lae.params["encoder.W"][dead], init_encoder_W[dead])

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. Recover the principal components from the trained autoencoder.** The decoder
# gives us the subspace; PCA's axes are the directions of largest variance *within* it. Find
# them with a $Z \times Z$ eigenproblem instead of a $D \times D$ one: take an orthonormal basis
# $Q$ of the decoder's column space, the covariance of the projected digits $Q^\top \tilde x$, and
# its eigenvectors $R$. Then $QR$ should match `pca.components_` up to signs.

# %% tags=["exercise"]
# Your code: an orthonormal basis Q of span(W_d) (Wd, (D, Z)), the eigenvalues lam_sub of
# the covariance of the projected digits (ascending, as np.linalg.eigh returns them), the
# recovered axes `recovered` (Z, D), and match, the |cos| of each recovered axis with the
# same PCA component.
lam_sub = None
recovered = None
match = None

# %% tags=["solution"]
# Solution. Within span(Q) = span(V_Z), the covariance restricted to the subspace is
# Q^T C Q = R diag(lam) R^T, whose eigenvectors R rotate Q onto the principal axes.
Q, _ = np.linalg.qr(Wd)                               # (D, Z) orthonormal basis of span(W_d)
c = (x64 - x64.mean(axis=0)) @ Q                      # (N, Z) projected, centred digits
lam_sub, R = np.linalg.eigh(np.cov(c, rowvar=False))  # ascending
recovered = (Q @ R[:, ::-1]).T                        # (Z, D), largest variance first
match = np.abs(np.sum(recovered * pca.components_, axis=1))   # |cos| with each PCA component
print("|cos| of the recovered axes with PCA's:", np.round(match, 4))
print("eigenvalues within the subspace:", np.round(lam_sub[::-1], 3), " PCA:",
      np.round(pca.explained_variance_, 3))

# %%
assert match.min() > 0.99
assert np.allclose(lam_sub[::-1], pca.explained_variance_, rtol=1e-3)

# %% [markdown]
# **Exercise 2. The encoder is the decoder's pseudo-inverse.** Fix the decoder. For each $x$,
# which code $z$ gives the smallest $\lVert W_d z + b_d - x\rVert^2$? Conclude that at the
# optimum $W_e = W_d^{+} = (W_d^\top W_d)^{-1} W_d^\top$, so that $W_e W_d = I_Z$: decoding
# and re-encoding a code gives the code back. Check how close the trained model is: compare
# $W_e W_d$ with $I_Z$, and the trained codes with $W_d^+(x - b_d)$ on test digits (the
# weights themselves differ on the always-black pixels, as we just saw).

# %% tags=["exercise"]
# Your code: the product W_e W_d (`roundtrip`, (Z, Z)) of the trained model (We, Wd), and
# code_error = || z - W_d^+ (x - b_d) || / || z || for the test digits xt.
roundtrip = None
code_error = None

# %% tags=["solution"]
# Solution. Least squares: the best z solves the normal equations W_d^T W_d z = W_d^T (x - b_d),
# so z = W_d^+ (x - b_d), and an optimal encoder is W_e = W_d^+, b_e = -W_d^+ b_d. Then
# W_e W_d = W_d^+ W_d = I. (Together with W_d W_e = V V^T, the AE is PCA up to A = W_e V.)
W_pinv = np.linalg.pinv(Wd)                           # (Z, D)
roundtrip = We @ Wd                                   # (Z, Z), I at the optimum
z_trained = lae_a.encode(xt)                          # (1000, Z)
z_best = (xt - lae_a.params["decoder.b"]) @ W_pinv.T  # (1000, Z) least-squares codes
code_error = np.linalg.norm(z_trained - z_best) / np.linalg.norm(z_trained)
print("W_e W_d =\n", np.array2string(roundtrip, precision=3, suppress_small=True))
print(f"codes: || z - W_d^+ (x - b_d) || / || z || = {code_error:.4f}")

# %%
assert np.max(np.abs(roundtrip - np.eye(Z))) < 0.05
assert code_error < 0.05

# %% [markdown]
# ## Summary
#
# * A linear autoencoder trained by gradient descent reaches PCA's reconstruction error, and
#   its decoder spans PCA's subspace: the principal angles go to zero.
# * Its weights are determined only up to an invertible $Z \times Z$ map: the code is some
#   linear recoding of PCA's code. The axes of PCA (ordered by variance, orthonormal) are extra
#   structure that the reconstruction loss does not ask for.
# * Convergence of the subspace is governed by eigenvalue gaps, and the loss is a blunt
#   measure of it.
#
# Lesson 3 makes the encoder and decoder nonlinear, then asks what a code is good for.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Bourlard & Kamp 1988 and Baldi & Hornik 1989
# for the linear autoencoder and PCA; Björck & Golub 1973 for principal angles; Kingma & Ba
# 2015 for Adam.
