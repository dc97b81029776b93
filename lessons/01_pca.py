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
# # Lesson 1: PCA, the best linear compression
#
# An autoencoder squeezes each image $x$ through a short code $z$ and tries to rebuild $x$
# from it. Before any neural network, there is one case we can solve exactly: the encoder and
# the decoder are linear (affine) maps. The answer is **principal component analysis** (PCA),
# and it is the baseline every autoencoder in this course is compared with.
#
# You will see:
#
# 1. the reconstruction objective, and why minimising the error is the same as keeping as
#    much variance as possible;
# 2. the solution: the top right singular vectors of the centred data, derived from scratch;
#    the Eckart–Young theorem;
# 3. `minivae.models.PCA` matched against an SVD written by hand, to $10^{-7}$;
# 4. the explained variance, and the error identity: the squared error of a $Z$-component
#    reconstruction is exactly the sum of the discarded eigenvalues;
# 5. MNIST digits rebuilt from 1, 5, 20, 50 and 200 numbers.
#
# Every derivation is followed by a cell that checks it with `assert`: if a claim were false,
# the lesson would stop there.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import data
from minivae.figures import image_grid
from minivae.models import PCA

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 10_000 if FAST else 60_000           # training digits PCA is fitted to
N_SVD = 1_000 if FAST else 5_000               # digits for the hand-written checks (an SVD of all
                                               # 60000 takes minutes; the facts hold for any data)
N_TEST = 2_000 if FAST else 10_000             # test digits
Z_SHOW = (1, 5, 20, 50, 200)                   # numbers of components to reconstruct with

train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x = train_set.x[:N_TRAIN].astype(np.float64)   # (N, 784) in [0, 1]; float64 for exact checks
x_test = test_set.x[:N_TEST].astype(np.float64)   # (N_TEST, 784)
N, D = x.shape
SHAPE = train_set.image_shape                  # (28, 28)
print(train_set)
print(f"using {N} training digits, {len(x_test)} test digits, D = {D} pixels")

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.imshow(image_grid(x[:32], SHAPE, nrow=16), cmap="gray", vmin=0, vmax=1)
ax.set_title("the first 32 training digits: each is a point in $\\mathbb{R}^{784}$", fontsize=10)
ax.axis("off")
plt.show()

# %% [markdown]
# ## 1. The reconstruction objective
#
# Take a code of $Z$ numbers. A linear encoder and decoder, with an offset $m$, are
#
# $$z = V^\top (x - m) \in \mathbb{R}^Z, \qquad \hat x = m + V z = m + V V^\top (x - m),$$
#
# where $V \in \mathbb{R}^{D \times Z}$ has orthonormal columns, $V^\top V = I_Z$. Then
# $P = VV^\top$ is the orthogonal projection onto the $Z$-dimensional subspace spanned by the
# columns of $V$: the reconstruction is the point of the plane $m + \operatorname{span}(V)$
# nearest to $x$. (Why orthonormal columns lose nothing is the Eckart–Young theorem below;
# lesson 2 lets a linear autoencoder learn an arbitrary encoder and decoder.)
#
# We want the plane that loses the least, summed over the $N$ training images:
#
# $$J(m, V) = \sum_{n=1}^N \lVert x_n - \hat x_n \rVert^2 = \sum_n \lVert (I - P)(x_n - m)\rVert^2 .$$
#
# **The offset.** Setting $\partial J / \partial m = -2 (I - P) \sum_n (x_n - m) = 0$ shows that
# the mean $\bar x = \frac1N \sum_n x_n$ is optimal (moving $m$ inside the plane changes
# nothing). From now on, $\tilde x_n = x_n - \bar x$ are the centred images, stacked as rows of
# $\tilde X \in \mathbb{R}^{N \times D}$.
#
# **Error = total variance $-$ kept variance.** $P\tilde x$ and $(I-P)\tilde x$ are orthogonal,
# so by Pythagoras $\lVert \tilde x \rVert^2 = \lVert V^\top \tilde x\rVert^2 + \lVert (I-P)\tilde x\rVert^2$, and
#
# $$J(V) = \sum_n \lVert \tilde x_n \rVert^2 - \sum_n \lVert V^\top \tilde x_n\rVert^2
#        = (N-1)\big(\operatorname{tr} C - \operatorname{tr}(V^\top C V)\big),
#        \qquad C = \frac{\tilde X^\top \tilde X}{N-1},$$
#
# with $C$ the covariance matrix of the pixels. **Minimising the reconstruction error is the
# same as maximising the variance of the code**, $\operatorname{tr}(V^\top C V)$.
# We check both facts on a random orthonormal $V$, using the first `N_SVD` digits (the
# identities hold for any data; a smaller set keeps the hand-written checks quick).

# %%
rng = np.random.default_rng(0)
xs = x[:N_SVD]                                        # (n, D)
n = len(xs)
xs_bar = xs.mean(axis=0)                              # (D,)
xs_c = xs - xs_bar                                    # (n, D) centred
C = xs_c.T @ xs_c / (n - 1)                           # (D, D) covariance


def random_orthonormal(D, Z, rng):
    """A D x Z matrix with orthonormal columns, uniformly random (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((D, Z)))
    return q * np.sign(np.diag(r))


def recon_error(x, m, V):
    """J(m, V): squared error of x^ = m + V V^T (x - m), summed over pixels and images."""
    x_hat = m + (x - m) @ V @ V.T                     # (N, D)
    return np.sum((x - x_hat) ** 2)


Z = 10
V = random_orthonormal(D, Z, rng)                     # (D, Z)
J_direct = recon_error(xs, xs_bar, V)
J_trace = (n - 1) * (np.trace(C) - np.trace(V.T @ C @ V))
print(f"J directly: {J_direct:.6f}   J = (N-1)(tr C - tr V^T C V): {J_trace:.6f}")
assert abs(J_direct - J_trace) / J_direct < 1e-10

# the mean is the best offset: any move off the plane costs, any move within it is free
delta = 0.05 * rng.standard_normal(D)
assert recon_error(xs, xs_bar + delta, V) > J_direct
assert abs(recon_error(xs, xs_bar + V @ rng.standard_normal(Z), V) - J_direct) / J_direct < 1e-10

# %% [markdown]
# ## 2. The solution, by the eigenvectors of $C$ and the SVD of $\tilde X$
#
# $C$ is symmetric and positive semi-definite: $C = \sum_{i=1}^D \lambda_i v_i v_i^\top$ with
# orthonormal eigenvectors $v_i$ and eigenvalues $\lambda_1 \ge \lambda_2 \ge \dots \ge \lambda_D \ge 0$.
# For any $V$ with orthonormal columns,
#
# $$\operatorname{tr}(V^\top C V) = \sum_{i=1}^D \lambda_i \lVert V^\top v_i \rVert^2 = \sum_i \lambda_i w_i,
#   \qquad w_i = \lVert V^\top v_i\rVert^2 .$$
#
# Two facts pin down the weights $w_i$:
#
# * $0 \le w_i \le 1$: $w_i$ is the squared length of the projection of a unit vector;
# * $\sum_i w_i = \operatorname{tr}\big(V^\top (\textstyle\sum_i v_i v_i^\top) V\big) = \operatorname{tr}(V^\top V) = Z$.
#
# Maximising $\sum_i \lambda_i w_i$ under these constraints is easy: put weight 1 on the $Z$
# largest eigenvalues and 0 elsewhere. $V_Z = [v_1, \dots, v_Z]$ achieves it. So the best
# $Z$-dimensional plane is spanned by the top $Z$ eigenvectors of the covariance, and
#
# $$\min_V J(V) = (N-1) \sum_{i > Z} \lambda_i : \quad \text{the error is the sum of the discarded eigenvalues.}$$
#
# **The SVD.** Write the thin SVD $\tilde X = U S V^\top$ ($U^\top U = V^\top V = I$, singular
# values $s_1 \ge s_2 \ge \dots$). Then $C = V \frac{S^2}{N-1} V^\top$: the right singular vectors
# are the eigenvectors of $C$, and $\lambda_i = s_i^2 / (N-1)$. So the top $Z$ **right
# singular vectors** minimise the squared reconstruction error, which is $\sum_{i>Z} s_i^2$.
#
# **Eckart–Young** (Eckart & Young 1936). More is true: among *all* matrices $B$ of rank at most $Z$, the truncated SVD
# $U_Z S_Z V_Z^\top = \tilde X V_Z V_Z^\top$ minimises $\lVert \tilde X - B \rVert_F$. The argument
# reduces to the one above: the rows of a rank-$Z$ matrix $B$ lie in some $Z$-dimensional
# subspace; given that subspace, each row of $\tilde X$ is best approximated by its orthogonal
# projection onto it; and the best subspace is $\operatorname{span}(V_Z)$. So no encoder and
# decoder pair of linear maps through $Z$ numbers, orthonormal or not, can beat PCA.
# Lesson 2 uses exactly this.
#
# We write the SVD solution by hand, on the same `N_SVD` digits, and check every step.

# %%
U, s, Vt = np.linalg.svd(xs_c, full_matrices=False)   # U (n, D), s (D,), Vt (D, D)
lam = s ** 2 / (n - 1)                                # eigenvalues of the covariance, descending

# the right singular vectors are eigenvectors of C, with eigenvalues s^2 / (n - 1)
assert np.max(np.abs(C @ Vt.T - Vt.T * lam)) < 1e-10 * lam[0]

# the weights w_i of a random V lie in [0, 1] and add up to Z
V = random_orthonormal(D, Z, rng)
w = np.sum((V.T @ Vt.T) ** 2, axis=0)                 # (D,) w_i = |V^T v_i|^2
assert w.min() >= 0 and w.max() <= 1 + 1e-12 and abs(w.sum() - Z) < 1e-10

# the error of the top-Z plane is the sum of the discarded s_i^2 ...
for z_dim in (1, 5, 20, 50):
    J_z = recon_error(xs, xs_bar, Vt[:z_dim].T)
    assert abs(J_z - np.sum(s[z_dim:] ** 2)) / J_z < 1e-10, z_dim

# ... and every other plane does worse: random ones, and small rotations of the best one
J_best = recon_error(xs, xs_bar, Vt[:Z].T)
J_random = [recon_error(xs, xs_bar, random_orthonormal(D, Z, rng)) for _ in range(20)]
J_nudged = [recon_error(xs, xs_bar, np.linalg.qr(Vt[:Z].T + 0.01 * rng.standard_normal((D, Z)))[0])
            for _ in range(20)]
assert J_best < min(J_nudged) and J_best < min(J_random)
print(f"Z = {Z}: best plane {J_best:.1f};  nudged planes >= {min(J_nudged):.1f};  "
      f"random planes >= {min(J_random):.1f}")

# Eckart-Young: the truncated SVD is the projection of the data onto the top-Z plane,
# and other rank-Z matrices, (U_Z S_Z + A)(V_Z^T + B) for small random A, B, are farther away
B_svd = (U[:, :Z] * s[:Z]) @ Vt[:Z]                   # (n, D) U_Z S_Z V_Z^T
assert np.max(np.abs(B_svd - xs_c @ Vt[:Z].T @ Vt[:Z])) < 1e-10
for _ in range(20):
    A = 0.1 * rng.standard_normal((n, Z))
    B = 0.01 * rng.standard_normal((Z, D))
    B_other = (U[:, :Z] * s[:Z] + A) @ (Vt[:Z] + B)   # (n, D), rank Z
    assert np.sum((xs_c - B_svd) ** 2) < np.sum((xs_c - B_other) ** 2)

# %% [markdown]
# ## 3. `minivae.models.PCA` against the hand-written SVD
#
# `PCA(Z).fit(x)` stores the mean, the top $Z$ components (rows of `components_`, shape
# $(Z, D)$, the $v_i^\top$) and their eigenvalues `explained_variance_`. By default it forms
# $C$ and calls `np.linalg.eigh`, which is faster than an SVD when $N \gg D$ (see its
# docstring). An eigenvector is only defined up to its sign, so we align signs before
# comparing. We fit it to the same `N_SVD` digits, in float64.

# %%
Z_MAX = max(Z_SHOW)
pca_s = PCA(Z_MAX, dtype=np.float64).fit(xs)
sign = np.sign(np.sum(pca_s.components_ * Vt[:Z_MAX], axis=1))       # (Z,) +-1
err_components = np.max(np.abs(pca_s.components_ - sign[:, None] * Vt[:Z_MAX]))
err_variance = np.max(np.abs(pca_s.explained_variance_ - lam[:Z_MAX])) / lam[0]
err_mean = np.max(np.abs(pca_s.mean_ - xs_bar))
print(f"components: {err_components:.1e}   eigenvalues (relative): {err_variance:.1e}   "
      f"mean: {err_mean:.1e}")
assert err_components < 1e-7 and err_variance < 1e-7 and err_mean < 1e-7

# its encode / decode are exactly z = V^T (x - m) and x^ = m + V z
z_hand = (xs - xs_bar) @ Vt[:Z_MAX].T * sign                           # (n, Z)
assert np.max(np.abs(pca_s.encode(xs) - z_hand)) < 1e-7
x_hat_hand = xs_bar + z_hand @ (sign[:, None] * Vt[:Z_MAX])                # (n, D)
assert np.max(np.abs(pca_s.reconstruct(xs) - x_hat_hand)) < 1e-7

# the other method, an SVD of the centred data, gives the same components
pca_svd = PCA(Z_MAX, method="svd", dtype=np.float64).fit(xs)
assert np.max(np.abs(pca_svd.components_ - pca_s.components_)) < 1e-7

# the solutions are nested: the best 20-dimensional plane contains the best 5-dimensional one
assert np.max(np.abs(PCA(20, dtype=np.float64).fit(xs).components_ - pca_s.components_[:20])) < 1e-7

# %% [markdown]
# ## 4. Explained variance
#
# Now fit all $D$ components on the whole training set. The total variance is
# $\operatorname{tr} C = \sum_i \lambda_i = \frac{1}{N-1} \sum_n \lVert \tilde x_n \rVert^2$, and
# component $i$ *explains* the share $\lambda_i / \sum_j \lambda_j$ of it.

# %%
pca = PCA(D, dtype=np.float64).fit(x)                 # all 784 components: the whole spectrum
lam_all = pca.explained_variance_                     # (D,) descending
ratio = pca.explained_variance_ratio_
cumulative = np.cumsum(ratio)

xc = x - pca.mean_                                    # (N, D) centred
assert abs(lam_all.sum() - np.sum(xc ** 2) / (N - 1)) < 1e-10 * lam_all.sum()
assert abs(float(pca.total_variance_) - lam_all.sum()) < 1e-10 * lam_all.sum()

for share in (0.5, 0.9, 0.95, 0.99):
    print(f"{share:.0%} of the variance needs {np.searchsorted(cumulative, share) + 1:3d} "
          f"components of {D}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.semilogy(np.arange(1, D + 1), np.maximum(lam_all, 1e-12))
ax1.set_xlabel("component $i$")
ax1.set_ylabel("eigenvalue $\\lambda_i$")
ax1.set_title("the spectrum of the pixel covariance", fontsize=10)
ax2.plot(np.arange(1, D + 1), cumulative)
for z_dim in Z_SHOW:
    ax2.plot(z_dim, cumulative[z_dim - 1], "o", color="C3")
    ax2.annotate(f"{z_dim}: {cumulative[z_dim - 1]:.0%}", (z_dim, cumulative[z_dim - 1]),
                 textcoords="offset points", xytext=(6, -12), fontsize=8)
ax2.set_xscale("log")
ax2.set_xlabel("number of components $Z$")
ax2.set_ylabel("share of variance kept")
ax2.set_title("cumulative explained variance", fontsize=10)
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# The smallest eigenvalues are zero (up to rounding): some pixels near the border are black
# in every image, so they have no variance at all.

# %%
constant_pixels = int(np.sum(x.std(axis=0) == 0))
zero_eigenvalues = int(np.sum(lam_all < 1e-12 * lam_all[0]))
print(f"{constant_pixels} pixels are constant; "
      f"{zero_eigenvalues} eigenvalues are below 1e-12 lam_1")
assert zero_eigenvalues >= constant_pixels > 0
assert 0.80 < cumulative[49] < 0.85 and 0.95 < cumulative[199] < 0.98   # quoted in the summary

# %% [markdown]
# **The error identity.** Section 2 says the mean squared error per image of a $Z$-component
# reconstruction of the training set is
#
# $$\frac{1}{N} \sum_n \lVert x_n - \hat x_n \rVert^2 = \frac{N-1}{N} \sum_{i > Z} \lambda_i .$$
#
# Because the solutions are nested, the $Z$-component PCA is the first $Z$ rows of the full
# one. We build each from the full fit by copying its arrays into a fresh `PCA(Z)` (the
# same route a checkpoint takes), then check the identity with `PCA.loss`, which is that mean.

# %%
def first_components(pca, Z):
    """A PCA(Z) holding the mean and the first Z components of a fitted PCA."""
    small = PCA(Z, x_dim=pca.x_dim, dtype=pca.dtype)
    small.params["components"][...] = pca.components_[:Z]
    small.params["explained_variance"][...] = pca.explained_variance_[:Z]
    small.params["mean"][...] = pca.mean_
    small.params["total_variance"][...] = pca.total_variance_
    return small


pcas = {z_dim: first_components(pca, z_dim) for z_dim in Z_SHOW}
print(" Z   train error   (N-1)/N sum of discarded eigenvalues   test error   variance kept")
for z_dim, p in pcas.items():
    predicted = (N - 1) / N * lam_all[z_dim:].sum()
    train_err, test_err = p.loss(x), p.loss(x_test)
    print(f"{z_dim:3d}   {train_err:11.6f}   {predicted:11.6f}   {'':25s}{test_err:10.4f}   "
          f"{cumulative[z_dim - 1]:8.1%}")
    assert abs(train_err - predicted) < 1e-10 * lam_all.sum()

# %% [markdown]
# The test error (on digits PCA never saw) is close to the training error: with 784
# dimensions and tens of thousands of images, PCA hardly overfits.
#
# ## 5. Reconstructions
#
# The top row holds test digits; the rows below, their reconstructions from $Z$ numbers.
# One component gives a blurry, average-looking digit; twenty already give a recognisable
# digit; two hundred (about 97% of the variance) a close copy.

# %%
picks = np.random.default_rng(1).choice(len(x_test), size=12, replace=False)
rows = [x_test[picks]] + [pcas[z_dim].reconstruct(x_test[picks]) for z_dim in Z_SHOW]
grid = image_grid(np.concatenate(rows), SHAPE, nrow=len(picks))
fig, ax = plt.subplots(figsize=(8, 4.6))
ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
cell = SHAPE[0] + 1
ax.set_yticks([1 + r * cell + SHAPE[0] / 2 for r in range(len(rows))],
              ["original"] + [f"Z = {z_dim}" for z_dim in Z_SHOW])
ax.set_xticks([])
ax.tick_params(axis="y", length=0)
ax.set_title("test digits and their PCA reconstructions", fontsize=10)
plt.show()

# %% [markdown]
# What do the components look like? Each $v_i$ is an image too: a pattern of pixels to add to
# or subtract from the mean digit (red positive, blue negative).

# %%
fig, axes = plt.subplots(1, 9, figsize=(12, 1.8))
axes[0].imshow(pca.mean_.reshape(SHAPE), cmap="gray")
axes[0].set_title("mean", fontsize=9)
for i, ax in enumerate(axes[1:]):
    v = pca.components_[i].reshape(SHAPE)
    lim = np.abs(v).max()
    ax.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"$v_{{{i + 1}}}$  ({ratio[i]:.1%})", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# **The components are orthonormal**: with the top $Z$ components as the columns of
# $V \in \mathbb{R}^{D \times Z}$, $V^\top V = I_Z$ (`components_` holds $V^\top$, so in code
# `components_ @ components_.T` is the identity), as eigenvectors of a symmetric matrix can
# always be chosen. The other product, $V V^\top$, is **not** the identity when $Z < D$: it is
# the projection $P$ of section 1, which keeps the plane and flattens the $D - Z$ directions
# across it (its eigenvalues are $Z$ ones and $D - Z$ zeros). Only with all $D$ components
# is $V$ square, and then both products are $I$.
#
# $V^\top V = I_Z$ is what makes the encoder $V^\top(x - m)$ and the decoder $m + Vz$ each
# other's inverse on the codes: decoding a code and encoding it again gives back the same
# code, $V^\top V z = z$. The other way round, encoding an image and decoding it gives its
# projection $m + P(x - m)$, not the image.

# %%
V50 = pcas[50].components_.T                           # (D, 50): the top 50 components as columns
P50 = V50 @ V50.T                                      # (D, D): the projection onto their plane
eig_P = np.linalg.eigvalsh(P50)                        # ascending
print(f"V^T V - I_50: {np.max(np.abs(V50.T @ V50 - np.eye(50))):.1e};  "
      f"V V^T - I_D: {np.max(np.abs(P50 - np.eye(D))):.2f}  (trace {np.trace(P50):.6f}, "
      f"eigenvalues {eig_P[0]:.1e} ... {eig_P[-1]:.6f})")
assert np.max(np.abs(V50.T @ V50 - np.eye(50))) < 1e-10            # V^T V = I_Z
assert np.max(np.abs(P50 @ P50 - P50)) < 1e-10                     # V V^T is a projection ...
assert abs(np.trace(P50) - 50) < 1e-9                              # ... of rank Z = 50 ...
assert np.max(np.abs(P50 - np.eye(D))) > 0.5                       # ... and not the identity
V_all = pca.components_.T                              # (D, D): all components, V is square
assert np.max(np.abs(V_all @ V_all.T - np.eye(D))) < 1e-10         # only then V V^T = I too
p50 = pcas[50]
z = p50.encode(x_test[:100])                           # (100, 50)
assert np.max(np.abs(p50.encode(p50.decode(z)) - z)) < 1e-10       # encode(decode(z)) = z
x_round = p50.decode(p50.encode(x_test[:100]))         # decode(encode(x)) = the projection
assert np.max(np.abs(x_round - (p50.mean_ + (x_test[:100] - p50.mean_) @ P50))) < 1e-10
assert np.max(np.abs(x_round - x_test[:100])) > 0.1                # ... not the image

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. The code is decorrelated.** Show that the codes $z_n = V_Z^\top \tilde x_n$ of
# the training images have mean 0 and covariance $\operatorname{diag}(\lambda_1, \dots, \lambda_Z)$:
# their coordinates are uncorrelated, and the variance of coordinate $i$ is $\lambda_i$.
# Check it on the 50-component PCA.

# %% tags=["exercise"]
# Your code: the codes of the training images x under the 50-component PCA (pcas[50]),
# their mean (50,) and their covariance (50, 50).
z_train = None
z_mean = None
z_cov = None

# %% tags=["solution"]
# Solution. The mean: sum_n V^T x~_n = V^T sum_n x~_n = 0. The covariance:
#     1/(N-1) sum_n z_n z_n^T = V^T C V = V^T (V diag(lam) V^T + ...) V = diag(lam_1..lam_Z),
# since C v_i = lam_i v_i and the v_i are orthonormal.
z_train = pcas[50].encode(x)                            # (N, 50)
z_mean = z_train.mean(axis=0)
z_cov = np.cov(z_train, rowvar=False)                   # (50, 50), divides by N - 1

# %%
assert np.max(np.abs(z_mean)) < 1e-10
assert np.max(np.abs(z_cov - np.diag(lam_all[:50]))) < 1e-10 * lam_all[0]
print("largest off-diagonal covariance:", f"{np.max(np.abs(z_cov - np.diag(np.diag(z_cov)))):.1e}")

# %% [markdown]
# **Exercise 2. Predict the error before you reconstruct.** Find the smallest $Z$ that keeps
# 95% of the variance. Without reconstructing anything, predict the mean squared
# reconstruction error per training image, and the error relative to the mean squared
# distance of an image from the mean image. Then reconstruct and compare.

# %% tags=["exercise"]
# Your code: the smallest number of components z95 that keeps 95% of the variance, the
# share `kept` it keeps, your predicted error per image, the mean squared distance of an
# image from the mean image (`spread`), and the error measured by reconstructing.
z95 = None
kept = None
predicted_error = None
spread = None
measured_error = None

# %% tags=["solution"]
# Solution. Keeping a share r of the variance discards the share 1 - r, so the error is
# (N-1)/N * (1 - r) * sum(lam), and relative to the spread around the mean it is 1 - r.
z95 = int(np.searchsorted(cumulative, 0.95) + 1)
kept = cumulative[z95 - 1]
predicted_error = (N - 1) / N * (1 - kept) * lam_all.sum()
spread = np.mean(np.sum(xc ** 2, axis=1))               # mean |x - x_bar|^2
measured_error = first_components(pca, z95).loss(x)
print(f"Z = {z95} keeps {kept:.2%}; predicted error {predicted_error:.4f}, "
      f"measured {measured_error:.4f}; relative {measured_error / spread:.4f} "
      f"vs 1 - r = {1 - kept:.4f}")

# %%
assert cumulative[z95 - 1] >= 0.95 > cumulative[z95 - 2]
assert abs(measured_error - predicted_error) < 1e-10 * spread
assert abs(measured_error / spread - (1 - kept)) < 1e-10

# %% [markdown]
# **Exercise 3. Why centre first?** Without subtracting the mean, the best $Z$-dimensional
# *linear* subspace (through the origin) is spanned by the top $Z$ right singular vectors of
# the raw $X$. Show the sandwich
#
# $$\text{error}_{\text{uncentred}}(Z) \;\ge\; \text{error}_{\text{PCA}}(Z) \;\ge\; \text{error}_{\text{uncentred}}(Z+1),$$
#
# and check it on the `N_SVD` digits for $Z = 1, \dots, 20$. How much does centring buy?

# %% tags=["exercise"]
# Your code: the errors of the best Z-dimensional subspace through the origin, for
# Z = 1, ..., 21 (`uncentred`, a list of 21 numbers), and of PCA for Z = 1, ..., 20
# (`centred`), on the N_SVD digits xs (whose centred SVD is U, s, Vt).
uncentred = None
centred = None
Vt_raw = None

# %% tags=["solution"]
# Solution. Left: a subspace through the origin is one particular affine plane, and PCA gives
# the best affine plane. Right: the plane x_bar + span(V_Z) lies inside the (Z+1)-dimensional
# linear subspace span(x_bar, v_1, ..., v_Z), so the best (Z+1)-dimensional subspace does at
# least as well. Centring is worth about one component.
_, s_raw, Vt_raw = np.linalg.svd(xs, full_matrices=False)
uncentred = [np.sum(s_raw[z_dim:] ** 2) for z_dim in range(1, 22)]   # error of Z = 1..21 (Eckart-Young)
centred = [np.sum(s[z_dim:] ** 2) for z_dim in range(1, 21)]         # PCA error, Z = 1..20
for z_dim in (1, 2, 5, 20):
    print(f"Z = {z_dim:2d}: uncentred {uncentred[z_dim - 1]:9.1f} >= PCA {centred[z_dim - 1]:9.1f} "
          f">= uncentred Z+1 {uncentred[z_dim]:9.1f}")

# %%
for z_dim in range(1, 21):
    assert uncentred[z_dim - 1] >= centred[z_dim - 1] >= uncentred[z_dim] - 1e-9 * uncentred[0], z_dim
# and the Eckart-Young error of the raw data is what projecting onto its top singular vectors gives
assert abs(recon_error(xs, np.zeros(D), Vt_raw[:5].T) - uncentred[4]) < 1e-10 * uncentred[0]

# %% [markdown]
# ## Summary
#
# * A linear encoder/decoder through $Z$ numbers reconstructs best with the **top $Z$ principal
#   components**: the top right singular vectors of the centred data, the top eigenvectors of
#   the covariance. No rank-$Z$ linear map does better (Eckart–Young).
# * Minimising the squared error = maximising the variance kept. The error is exactly the sum
#   of the discarded eigenvalues, $(N-1)\sum_{i>Z}\lambda_i$.
# * On MNIST, 50 components keep about 80% of the variance, 200 keep about 97%.
#
# Lesson 2 trains a linear *autoencoder* by gradient descent, without ever computing an
# eigenvector, and finds that it converges to the same subspace, though not to the same axes.
#
# **Read more** (full entries in [REFERENCES.md](REFERENCES.md); symbols in
# [NOTATION.md](NOTATION.md)): Pearson 1901 and Hotelling 1933 for PCA itself; Eckart & Young
# 1936 for the best low-rank approximation; Bishop 2006, chapter 12, for PCA as a model.
