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
# # Lesson 10: Convolutions by hand
#
# Every model so far flattened an image into 784 numbers and fed them to dense layers, which
# know nothing of which pixels are neighbours: shuffle the pixels of every image the same way
# and a dense autoencoder learns exactly as well. A **convolution** slides one small kernel
# over the image instead, so it sees neighbourhoods, reuses its few weights everywhere, and
# shifts its output when the input shifts. This lesson builds one by hand, forward and
# backward, then the **transposed** convolution that a decoder uses to grow images back, and
# trains convolutional autoencoders and VAEs beside the dense ones.
#
# You will see:
#
# 1. the convolution as its definition, loops over pixels, and as **one matrix product**
#    after a gather called im2col, checked equal to each other and to `minivae.layers.Conv2d`;
# 2. the output size $\lfloor (H + 2p - k)/s \rfloor + 1$, and what the rounding throws away;
# 3. the backward pass: a Linear layer's backward on the gathered patches, then the
#    **transpose of the gather** (col2im, a scatter-add), derived and gradient-checked, and
#    written by you in two exercises;
# 4. the transposed convolution as the **adjoint** of the convolution, checked, and why it is
#    the layer that upsamples in a decoder;
# 5. checkerboard artefacts, and the kernel size that avoids them;
# 6. a convolutional autoencoder and VAE trained on MNIST and compared with the dense ones.
#
# Every derivation is followed by a cell that checks it with `assert`.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import data, figures
from minivae.evaluate import evaluate
from minivae.gradcheck import check_grad, check_layer, check_model
from minivae.kernels import conv as K
from minivae.layers import Conv2d, ConvTranspose2d, Dense
from minivae.layers.conv_direct import conv2d_direct, conv_transpose2d_direct
from minivae.models import VAE, Autoencoder
from minivae.optim import Adam
from minivae.train import fit

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_TRAIN = 4_000 if FAST else 60_000            # training digits
N_TEST = 500 if FAST else 10_000               # test digits for the numbers we report
EPOCHS = 2 if FAST else 3                      # passes over the training digits, every model
BATCH = 128                                    # digits per gradient step
LR = 2e-3 if FAST else 1e-3                    # Adam's step size (fast mode: fewer, larger steps)
Z = 20                                         # latent dimensions, every model
IWAE_K = 10 if FAST else 50                    # importance samples for the NLL estimate

train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
x_train, x_test = train_set.x[:N_TRAIN], test_set.x[:N_TEST]     # (N, 784) float32 in [0, 1]
SHAPE = train_set.image_shape                                      # (28, 28)
D = x_train.shape[1]
f64 = np.float64
rng = np.random.default_rng(0)
print(f"{len(x_train)} training and {len(x_test)} test digits of {SHAPE[0]} x {SHAPE[1]}")

# %% [markdown]
# ## 1. The definition, and the same thing as a matrix product
#
# Images come as arrays $(N, C, H, W)$: examples, channels, rows, columns. A convolution
# layer with $O$ output channels has a kernel $W$ of shape $(O, C, k, k)$ and a bias $b$ of
# $O$ numbers. With stride $s$ (the step between two patches) and zero padding $p$ (zeros
# added around each image), output pixel $(o, h', w')$ of example $n$ is the kernel times the
# patch under it:
#
# $$y_{n,o,h',w'} = b_o + \sum_{c=1}^{C}\sum_{i=0}^{k-1}\sum_{j=0}^{k-1}
#   W_{o,c,i,j}\; x_{n,\,c,\; s h' - p + i,\; s w' - p + j},$$
#
# with $x = 0$ outside the image. (Deep learning libraries all compute this cross-correlation
# and call it a convolution; a true convolution flips the kernel, which changes nothing for a
# kernel that is learned.) Written as loops, it is the specification:

# %%
def conv_loops(x, W, b, s, p):
    """The definition, one output number at a time."""
    N, C, H, Wd = x.shape
    O, _, k, _ = W.shape
    OH, OW = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    y = np.empty((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            for oh in range(OH):
                for ow in range(OW):
                    total = b[o]
                    for c in range(C):
                        for i in range(k):
                            for j in range(k):
                                h, w = s * oh - p + i, s * ow - p + j
                                if 0 <= h < H and 0 <= w < Wd:
                                    total += W[o, c, i, j] * x[n, c, h, w]
                    y[n, o, oh, ow] = total
    return y


x = rng.standard_normal((2, 3, 7, 6))                  # 2 images, 3 channels, 7 x 6
conv = Conv2d(3, 4, kernel_size=3, stride=2, padding=1, rng=1, dtype=f64)
Wk, b = conv.params["W"], conv.params["b"]             # (4, 3, 3, 3), (4,)
y_loops = conv_loops(x, Wk, b, 2, 1)
print("output", y_loops.shape)

# %% [markdown]
# Seven nested loops, and each output number reads $C k^2$ inputs. The same sum is a dot
# product: lay the patch under output pixel $(n, h', w')$ out as a row of $C k^2$ numbers,
# and the kernel of channel $o$ as a column of the same length. Gather all patches into a
# matrix $X$, one row per output pixel (**im2col**, "image to columns"):
#
# $$X_{(n,h',w'),\,(c,i,j)} = x_{n,\,c,\;s h' - p + i,\; s w' - p + j}, \qquad
#   X \in \mathbb R^{(N\,OH\,OW) \times (C k^2)},$$
#
# and the whole layer is one matrix product, a Linear layer applied to patches:
#
# $$Y = X\, W_{\text{mat}}^{\top} + b, \qquad W_{\text{mat}} = W\text{.reshape}(O, C k^2),
#   \qquad Y \in \mathbb R^{(N\,OH\,OW) \times O},$$
#
# whose rows, reshaped to $(N, OH, OW, O)$ and transposed to $(N, O, OH, OW)$, are $y$. We
# gather with NumPy slices: for each kernel offset $(i, j)$, the pixels it meets, one for
# each output pixel, are a strided slice of the padded image.

# %%
def im2col_by_hand(x, k, s, p):
    """The patch matrix (N OH OW, C k k)."""
    N, C, H, Wd = x.shape
    OH, OW = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))                 # zeros around each image
    X = np.empty((N, OH, OW, C, k, k))
    for i in range(k):
        for j in range(k):
            X[..., i, j] = xp[:, :, i:i + s * (OH - 1) + 1:s,
                              j:j + s * (OW - 1) + 1:s].transpose(0, 2, 3, 1)
    return X.reshape(N * OH * OW, C * k * k)


X = im2col_by_hand(x, 3, 2, 1)                                        # (2*4*3, 27)
Y = X @ Wk.reshape(4, -1).T + b                                       # (24, 4)
y_matmul = Y.reshape(2, 4, 3, 4).transpose(0, 3, 1, 2)                # (N, O, OH, OW)
print("patch matrix", X.shape, "-> one product ->", Y.shape)

# %% [markdown]
# **Check:** the loops, the product, `minivae`'s `Conv2d` (im2col as a numba kernel, the
# product by BLAS) and `minivae.layers.conv_direct` (the definition the library's tests hold
# its layer to) agree to rounding; and our gather is the library's.
#
# One difference of layout. `minivae` gathers from images kept **channels-last**,
# $(N, H, W, C)$, and orders a patch row $(i, j, c)$ instead of $(c, i, j)$: the same numbers,
# the columns permuted (and $W_{\text{mat}}$'s columns alike, so the product does not change).
# Channels-last, row $i$ of a patch, $x_{n,\,h,\;w_0:w_0+k,\;:}$, is $k C$ floats side by
# side in memory, one copy; channels-first it is $C$ pieces of $k$ floats, one per channel.
# The two helpers below call the library's kernels and put the columns back in our order.

# %%
def minivae_im2col(x, k, s, p):
    """minivae's im2col of x (N, C, H, W), its columns (i, j, c) reordered to (c, i, j)."""
    N, C, H, Wd = x.shape
    rows = N * K.out_size(H, k, s, p) * K.out_size(Wd, k, s, p)
    X_last = K.im2col(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), k, s, p,
                      np.empty((rows, k * k * C)))                      # (N OH OW, k k C)
    return X_last.reshape(rows, k, k, C).transpose(0, 3, 1, 2).reshape(rows, C * k * k)


def minivae_col2im(dX, shape, k, s, p):
    """minivae's col2im of dX (N OH OW, C k k) onto images of ``shape`` (N, C, H, W)."""
    N, C, H, Wd = shape
    dX_last = dX.reshape(-1, C, k, k).transpose(0, 2, 3, 1).reshape(len(dX), k * k * C)
    dx = K.col2im(np.ascontiguousarray(dX_last), k, s, p, np.empty((N, H, Wd, C)))
    return dx.transpose(0, 3, 1, 2)                                    # (N, C, H, W)


X_lib = minivae_im2col(x, 3, 2, 1)
for name, got in [("im2col + product", y_matmul), ("Conv2d", conv.forward(x)),
                  ("conv2d_direct", conv2d_direct(x, Wk, b, 2, 1))]:
    err = np.abs(got - y_loops).max()
    print(f"{name:18s} max |difference| from the loops {err:.1e}")
    assert err < 1e-12
assert np.array_equal(X_lib, X)

# %% [markdown]
# Why bother with the product: the loops and the product do the same arithmetic, but a
# matrix product is what a CPU does fastest (BLAS reuses each number from cache many times),
# so the gather, which only copies, buys the layer its speed. The price is memory: every
# input pixel is copied into up to $\lceil k/s \rceil^2$ rows of $X$. For the second layer of
# the MNIST model below, a batch of 128 makes $X$ $128 \cdot 7 \cdot 7 \times 32 \cdot 16$
# floats, 12.8 MB, from an input of 3.2 MB.
#
# ## 2. The output size
#
# A patch starts every $s$ pixels of the padded image (size $H + 2p$) and must fit in it, so
# the last one starts at most at $H + 2p - k$:
#
# $$OH = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .$$
#
# When $s$ does not divide $H + 2p - k$, the rounding drops the last $(H + 2p - k) \bmod s$
# rows of the padded image: no patch reads them. Our $7 \times 6$ input with $k = 3$,
# $s = 2$, $p = 1$: $(7 + 2 - 3)/2 = 3$ exactly, so $OH = 4$; $(6 + 2 - 3)/2 = 2.5$, so
# $OW = 3$ and the last column of the padded image (here padding) is never read. With
# $p = 0$ it is a real column of pixels, which the layer then ignores:

# %%
conv0 = Conv2d(3, 4, kernel_size=3, stride=2, padding=0, rng=1, dtype=f64)
x_changed = x.copy()
x_changed[..., -1] += 100.0                                           # the last column
print("OH, OW =", conv0.output_size(7, 6), "   unread columns:", (6 - 3) % 2)

# %% [markdown]
# **Check:** the formula against the layer, and the last column unread.

# %%
for H_ in range(3, 12):
    for k_, s_, p_ in [(3, 1, 0), (3, 2, 1), (4, 2, 1), (5, 3, 2)]:
        c = Conv2d(1, 1, k_, s_, p_, dtype=f64)
        assert c.forward(np.zeros((1, 1, H_, H_))).shape[2] == (H_ + 2 * p_ - k_) // s_ + 1
assert np.array_equal(conv0.forward(x), conv0.forward(x_changed))

# %% [markdown]
# ## 3. The backward pass
#
# Two facts make it short. The layer is $Y = X W_{\text{mat}}^{\top} + b$: a Linear layer
# whose input is $X$, so (lesson 2) for an upstream gradient $dY = \partial L/\partial Y$
#
# $$dW_{\text{mat}} = dY^{\top} X, \qquad db = \sum_{\text{rows}} dY, \qquad dX = dY\, W_{\text{mat}} .$$
#
# And the gather is **linear** in $x$: $X = G x$ for a fixed 0/1 matrix $G$ (with $x$ and
# $X$ read as long vectors; each row of $G$ has a single 1, or none where the patch reads
# padding). The chain rule through a linear map multiplies by its transpose, so
#
# $$dx = G^{\top} dX .$$
#
# $G^\top$ sends each entry of $dX$ back to the pixel it was copied from and **adds** the
# entries that came from the same pixel: that is col2im, a scatter-add. A pixel that sits in
# several patches gets the sum of their gradients, as the chain rule says it must.
#
# For a small image we can build $G$ itself, column by column: column $q$ is the gather of
# the image that is 1 at pixel $q$ and 0 elsewhere.

# %%
def gather_matrix(shape, k, s, p):
    """G with im2col(x).ravel() == G @ x.ravel(), for images of ``shape`` (N, C, H, W)."""
    n_in = int(np.prod(shape))
    columns = []
    for q in range(n_in):
        e = np.zeros(n_in)
        e[q] = 1.0
        columns.append(im2col_by_hand(e.reshape(shape), k, s, p).ravel())
    return np.stack(columns, axis=1)                                 # (rows of X, pixels)


small = (1, 2, 5, 4)
G = gather_matrix(small, 3, 2, 1)
xs = rng.standard_normal(small)
dX = rng.standard_normal(im2col_by_hand(xs, 3, 2, 1).shape)
col2im_lib = minivae_col2im(dX, small, 3, 2, 1)
print("G:", G.shape, " ones per column (the patches each pixel is in):",
      G.sum(axis=0).astype(int))

# %% [markdown]
# **Check:** im2col is $G x$ and col2im is $G^\top$, exactly (every entry of $G$ is 0 or 1);
# then the whole backward pass, `Conv2d.backward`, against central differences
# (`minivae.gradcheck.check_layer`, float64, a random upstream gradient), for the input,
# the kernel and the bias.

# %%
assert np.array_equal(G @ xs.ravel(), im2col_by_hand(xs, 3, 2, 1).ravel())
assert np.allclose(G.T @ dX.ravel(), col2im_lib.ravel(), rtol=0, atol=1e-12)
errors = check_layer(conv, x)
print("Conv2d relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-7

# %% [markdown]
# **Exercise 1. col2im by hand.** Write `col2im_by_hand(dX, shape, k, s, p)`, the transpose of
# `im2col_by_hand`: it returns an array of `shape` $(N, C, H, W)$ in which every entry of
# $dX$ $(N\,OH\,OW, C k^2)$ has been *added* to the pixel that im2col copied it from. Hint:
# loop over the kernel offsets $(i, j)$ as `im2col_by_hand` does, adding into a zero-padded
# array, and cut the padding off at the end. The check compares your result with $G^	op dX$
# and with minivae's `col2im`, for this image and for another stride, padding and kernel.

# %% tags=["exercise"]
def col2im_by_hand(dX, shape, k, s, p):
    """dX (N OH OW, C k k) -> dx of ``shape`` (N, C, H, W)."""
    return np.zeros(shape)                       # your code: replace this line

# %% tags=["solution"]
# Solution. The slices im2col read from, in the same order; += adds the overlaps.
def col2im_by_hand(dX, shape, k, s, p):
    """dX (N OH OW, C k k) -> dx of ``shape`` (N, C, H, W)."""
    N, C, H, Wd = shape
    OH, OW = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    dxp = np.zeros((N, C, H + 2 * p, Wd + 2 * p))                      # the padded image
    d6 = dX.reshape(N, OH, OW, C, k, k)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + s * (OH - 1) + 1:s,
                j:j + s * (OW - 1) + 1:s] += d6[..., i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, p:p + H, p:p + Wd]

# %%
got_e1 = col2im_by_hand(dX, small, 3, 2, 1)
assert np.allclose(got_e1.ravel(), G.T @ dX.ravel(), rtol=0, atol=1e-12)
other = (2, 3, 7, 6)                                                   # k 2, stride 3, padding 2
dX_e1 = rng.standard_normal((2 * 4 * 3, 3 * 2 * 2))
want_e1 = minivae_col2im(dX_e1, other, 2, 3, 2)
assert np.allclose(col2im_by_hand(dX_e1, other, 2, 3, 2), want_e1, rtol=0, atol=1e-12)
print("col2im by hand = G^T dX = minivae's col2im")

# %% [markdown]
# **Exercise 2. The backward pass of a convolution.** Write `conv_backward(dy, x, W, s, p)`
# returning $(dx, dW, db)$ for $y = \mathrm{conv}(x, W) + b$ and an upstream gradient $dy$
# $(N, O, OH, OW)$, from section 3: gather $X$ with `im2col_by_hand`, lay $dy$ out as $dY$
# $(N\,OH\,OW, O)$ (the transpose of how $Y$ became $y$), take the Linear layer's three
# gradients, and carry $dX$ back with your `col2im_by_hand`. The check compares all three with
# central differences of $L = \sum y \odot dy$ (`minivae.gradcheck.check_grad`) and with
# `Conv2d.backward`.

# %% tags=["exercise"]
def conv_backward(dy, x, W, s, p):
    """dy (N, O, OH, OW), x (N, C, H, W), W (O, C, k, k) -> dx, dW, db."""
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros(W.shape[0])   # your code
    return dx, dW, db

# %% tags=["solution"]
# Solution. A Linear layer's backward on the patches, then the transpose of the gather.
def conv_backward(dy, x, W, s, p):
    """dy (N, O, OH, OW), x (N, C, H, W), W (O, C, k, k) -> dx, dW, db."""
    O, k = W.shape[0], W.shape[2]
    X = im2col_by_hand(x, k, s, p)                                     # (N OH OW, C k k)
    dY = dy.transpose(0, 2, 3, 1).reshape(-1, O)                       # (N OH OW, O)
    dW = (dY.T @ X).reshape(W.shape)                                   # (O, C, k, k)
    db = dY.sum(axis=0)                                                # (O,)
    dx = col2im_by_hand(dY @ W.reshape(O, -1), x.shape, k, s, p)       # (N, C, H, W)
    return dx, dW, db

# %%
x_e2 = rng.standard_normal((2, 3, 6, 5))
lib_e2 = Conv2d(3, 4, 3, stride=2, padding=1, rng=7, dtype=f64)
W_e2, b_e2 = lib_e2.params["W"], lib_e2.params["b"]
dy_e2 = rng.standard_normal(lib_e2.forward(x_e2).shape)
dx_e2, dW_e2, db_e2 = conv_backward(dy_e2, x_e2, W_e2, 2, 1)


def loss_e2():
    return float(np.sum(conv2d_direct(x_e2, W_e2, b_e2, 2, 1) * dy_e2))


errs_e2 = [check_grad(loss_e2, a, g) for a, g in ((x_e2, dx_e2), (W_e2, dW_e2), (b_e2, db_e2))]
print("relative errors (x, W, b):", [f"{e:.1e}" for e in errs_e2])
assert max(errs_e2) < 1e-7
lib_e2.zero_grad()
lib_e2.forward(x_e2)
assert np.allclose(lib_e2.backward(dy_e2), dx_e2, rtol=0, atol=1e-12)
assert np.allclose(lib_e2.grads["W"], dW_e2, rtol=0, atol=1e-12)
assert np.allclose(lib_e2.grads["b"], db_e2, rtol=0, atol=1e-12)

# %% [markdown]
# ## 4. The transposed convolution
#
# An encoder shrinks $28 \times 28$ to $7 \times 7$ with stride-2 convolutions. The decoder
# must grow $7 \times 7$ back. The map we just met in the backward pass does exactly that: it
# takes something of the output's shape to something of the input's shape,
#
# $$y \;\mapsto\; G^\top\!\big(Y W_{\text{mat}}\big), \qquad Y = y \text{ as rows } (N\,OH\,OW, O),$$
#
# a product, then col2im. Used as a layer in its own right, with its own kernel and a bias,
# it is the **transposed convolution** (`ConvTranspose2d`): each input pixel stamps a copy of
# the kernel, scaled by its value, onto the output, $s$ pixels from its neighbour's stamp.
# Its output size inverts the formula of section 2:
# $OH = (H - 1)s - 2p + k + \text{op}$, where the *output padding* $\text{op} < s$ chooses
# among the sizes that a stride-$s$ convolution would have rounded down to $H$.
#
# It is the adjoint of the convolution: with the same kernel and no bias, for every $x$ and
# $y$,
#
# $$\langle \mathrm{Conv}(x), y\rangle = \langle G x\, W_{\text{mat}}^{\top}, Y\rangle
#   = \langle G x, Y W_{\text{mat}}\rangle = \langle x, G^\top(Y W_{\text{mat}})\rangle
#   = \langle x, \mathrm{ConvT}(y)\rangle .$$
#
# Its backward pass is then the convolution's forward: im2col of the upstream gradient, then
# a product.

# %%
convT = ConvTranspose2d(4, 3, kernel_size=3, stride=2, padding=1, output_padding=(0, 1),
                        rng=2, dtype=f64)
convT.params["W"][...] = Wk                                            # the same kernel
conv_nobias = Conv2d(3, 4, 3, 2, 1, dtype=f64)
conv_nobias.params["W"][...] = Wk
conv_nobias.params["b"][...] = 0
convT_nobias = ConvTranspose2d(4, 3, 3, 2, 1, (0, 1), dtype=f64)
convT_nobias.params["W"][...] = Wk
convT_nobias.params["b"][...] = 0
y = rng.standard_normal((2, 4, 4, 3))                                  # Conv's output shape
lhs = np.sum(conv_nobias.forward(x) * y)
rhs = np.sum(x * convT_nobias.forward(y))
print(f"<Conv(x), y> = {lhs:.12f}\n<x, ConvT(y)> = {rhs:.12f}")
print("ConvT:", y.shape, "->", convT.forward(y).shape)

# %% [markdown]
# **Check:** the adjoint identity to $10^{-10}$; the transposed convolution gives back the
# $7 \times 6$ input size; it equals its definition by stamps
# (`conv_transpose2d_direct`); it is the convolution's input gradient; and its own backward
# passes the gradient check.

# %%
assert abs(lhs - rhs) < 1e-10 * max(1.0, abs(lhs))
assert convT.forward(y).shape == x.shape
assert np.abs(convT.forward(y) - conv_transpose2d_direct(y, Wk, convT.params["b"], 2, 1, (0, 1))
              ).max() < 1e-12
conv_nobias.forward(x)
assert np.abs(conv_nobias.backward(y) - convT_nobias.forward(y)).max() < 1e-12
errors = check_layer(convT, y)
print("ConvTranspose2d relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-7

# %% [markdown]
# ## 5. Checkerboards
#
# Each input pixel stamps a $k \times k$ kernel, stamps $s$ apart. Along one axis, output
# position $h$ is covered by the stamps of the input pixels $h_{in}$ with
# $s h_{in} \le h + p < s h_{in} + k$: the kernel rows $i = h + p - s h_{in}$ that are
# $\equiv h + p \pmod s$ and lie in $[0, k)$. If $s$ divides $k$, there are $k/s$ of them at
# every position. If not, the count alternates between $\lceil k/s \rceil$ and
# $\lfloor k/s \rfloor$, and in two dimensions the product of two such counts is a
# **checkerboard**: some output pixels sum four kernel taps, their neighbours two or one.
# A decoder must then learn kernels that cancel the pattern, and early in training (or
# forever) its images show it. Stride 2 with $k = 3$ does this; $k = 4$ does not. That is why
# minivae's decoders use $k = 4$, $s = 2$, $p = 1$.
#
# Count the taps: a transposed convolution with a kernel of ones, on an image of ones.

# %%
def taps(k, s=2, side=6):
    """How many kernel taps land on each output pixel, away from the border."""
    t = ConvTranspose2d(1, 1, k, s, padding=1, dtype=f64)
    t.params["W"][...] = 1.0
    t.params["b"][...] = 0.0
    return t.forward(np.ones((1, 1, side, side)))[0, 0]


taps3, taps4 = taps(3), taps(4)
inner3, inner4 = taps3[2:-2, 2:-2], taps4[2:-2, 2:-2]
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, t, name in zip(axes, (taps3, taps4), ("k = 3, s = 2", "k = 4, s = 2")):
    im = ax.imshow(t, cmap="viridis", vmin=0, vmax=4)
    ax.set_title(f"{name}: taps per pixel")
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()
print("k = 3 interior counts:", sorted(set(inner3.ravel().astype(int))),
      "   k = 4:", sorted(set(inner4.ravel().astype(int))))

# %% [markdown]
# **Check:** with $k = 4$ every interior pixel gets $(k/s)^2 = 4$ taps; with $k = 3$ they
# alternate among $2 \times 2$, $2 \times 1$ and $1 \times 1$ in a checkerboard, exactly as
# the counting above says.

# %%
assert np.all(inner4 == 4)
assert set(inner3.ravel().astype(int)) == {1, 2, 4}
def per_axis(pos, p=1):
    """Kernel rows i in {0, 1, 2} with i = pos + p (mod 2): two if pos + p is even, else one."""
    return np.where((pos + p) % 2 == 0, 2, 1)


pos = np.arange(len(taps3))
assert np.array_equal(taps3[2:-2, 2:-2], np.outer(per_axis(pos), per_axis(pos))[2:-2, 2:-2])

# %% [markdown]
# The same pattern in an untrained decoder: two transposed convolutions (with ReLU between)
# from a $7 \times 7$ constant input to $28 \times 28$, kernels drawn at random but positive,
# so that nothing cancels.

# %%
def decoder_image(k):
    rng_k = np.random.default_rng(4)
    t1 = ConvTranspose2d(1, 4, k, 2, 1, output_padding=k % 2, activation="relu", dtype=f64)
    t2 = ConvTranspose2d(4, 1, k, 2, 1, output_padding=k % 2, dtype=f64)
    for t in (t1, t2):
        t.params["W"][...] = rng_k.uniform(0.5, 1.0, t.params["W"].shape)
        t.params["b"][...] = 0.0
    return t2.forward(t1.forward(np.ones((1, 1, 7, 7))))[0, 0]


img3, img4 = decoder_image(3), decoder_image(4)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
for ax, img, name in zip(axes, (img3, img4), ("k = 3", "k = 4")):
    ax.imshow(img, cmap="gray")
    ax.set_title(f"{name}: a constant input, decoded")
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
rough3 = np.abs(np.diff(img3[4:-4, 4:-4], axis=1)).mean() / img3[4:-4, 4:-4].mean()
rough4 = np.abs(np.diff(img4[4:-4, 4:-4], axis=1)).mean() / img4[4:-4, 4:-4].mean()
print(f"mean jump between neighbouring pixels, relative to the level: k = 3 {rough3:.2f}, "
      f"k = 4 {rough4:.2f}")
assert rough3 > 3 * rough4

# %% [markdown]
# ## 6. Why convolutions suit images: shifts and weight sharing
#
# A convolution computes the same thing at every position, so shifting the input shifts the
# output. With stride $s$, a shift by $s$ input pixels moves the output by one pixel (away from
# the borders, where padding differs). A dense layer has no such structure. And the kernel
# does not grow with the image: `Conv2d(1, 32, 4)` has $32 \cdot 16 + 32 = 544$ parameters on
# any image, where a dense layer from 784 pixels to as many outputs as the convolution makes
# ($32 \cdot 14 \cdot 14$) has almost five million.

# %%
img = x_train[:1].reshape(1, 1, 28, 28).astype(f64)
shifted = np.roll(img, 2, axis=3)                                      # 2 pixels to the right
c1 = Conv2d(1, 32, 4, 2, 1, rng=5, dtype=f64)
out, out_shifted = c1.forward(img), c1.forward(shifted)
dense = Dense(784, 32 * 14 * 14, "identity", rng=5, dtype=f64)
d_out = dense.forward(img.reshape(1, -1)).reshape(1, 32, 14, 14)
d_shifted = dense.forward(shifted.reshape(1, -1)).reshape(1, 32, 14, 14)
conv_gap = np.abs(out_shifted[..., 2:-2] - np.roll(out, 1, axis=3)[..., 2:-2]).max()
dense_gap = np.abs(d_shifted[..., 2:-2] - np.roll(d_out, 1, axis=3)[..., 2:-2]).max()
print(f"conv: shift in, shift out, up to {conv_gap:.1e};  dense: off by up to {dense_gap:.2f}")
print(f"parameters: Conv2d {sum(p.size for p in c1.params.values()):,}, "
      f"Dense {sum(p.size for p in dense.params.values()):,}")

# %% [markdown]
# **Check:** equivariance holds to rounding for the convolution (MNIST digits have empty
# borders, so the wrapped-around columns are zeros) and fails for the dense layer.

# %%
assert conv_gap < 1e-12 and dense_gap > 1e-2

# %% [markdown]
# ## 7. Convolutional autoencoders and VAEs on MNIST
#
# `arch="conv"` gives any of minivae's autoencoders (`Autoencoder`, `DenoisingAutoencoder`,
# `VAE`) a convolutional encoder and decoder, `minivae.models.conv`:
#
# * encoder: $28^2 \xrightarrow{\text{conv } 4\times4/2,\ 32} 32 \cdot 14^2
#   \xrightarrow{\text{conv } 4\times4/2,\ 64} 64 \cdot 7^2 \xrightarrow{\text{Linear}} 2Z$
#   ($\mu$ and logvar), ReLU after each convolution;
# * decoder, the mirror: $Z \xrightarrow{\text{Dense, ReLU}} 64 \cdot 7^2
#   \xrightarrow{\text{convT}} 32 \cdot 14^2 \xrightarrow{\text{convT}} 28^2$ logits.
#
# The model code is the VAE of lesson 6 unchanged: `loss` and `backward` call
# `encoder.forward` and `decoder.backward`, and do not know what the layers are. First, the
# whole-model gradient check with a fixed $\varepsilon$, in float64, on small images so that
# every parameter can be checked one entry at a time (lesson 5's recipe):

# %%
tiny = VAE(64, hidden=(), z_dim=3, arch="conv", image_shape=(8, 8), channels=(3, 4),
           activation="tanh", rng=6, dtype=f64)
x_tiny = x_train[:5].reshape(5, 28, 28)[:, 2:26:3, 2:26:3].reshape(5, 64).astype(f64)  # 8 x 8
eps_tiny = rng.standard_normal((5, 3))
errors = check_model(tiny, x_tiny, eps=eps_tiny, h=1e-5)
print(tiny.encoder, tiny.decoder, sep="\n")
print(f"largest relative error over {len(errors)} parameter arrays: {max(errors.values()):.1e}")
assert max(errors.values()) < 1e-6

# %% [markdown]
# Now four models with the same latent size $Z = 20$, trained the same way
# (`minivae.train.fit`, Adam, the same epochs and batches): a dense and a convolutional
# autoencoder, a dense and a convolutional VAE. The dense ones are lesson 6's,
# $784 \to 400 \to Z$.

# %%
def trained(model):
    """The model after EPOCHS of Adam; prints its parameters and its loss before and after."""
    before = model.loss(x_test)
    history = fit(model, x_train, Adam(model.params, lr=LR), EPOCHS, BATCH, rng=1)
    n = sum(p.size for p in model.params.values())
    print(f"{model!r}: {n:,} parameters; test loss {before:.1f} -> {model.loss(x_test):.1f} "
          f"(train, last epoch: {history[-1]['train_loss']:.1f})")
    return model, before


models = {
    "dense AE": trained(Autoencoder(D, (400,), Z, rng=0)),
    "conv AE": trained(Autoencoder(D, (), Z, arch="conv", rng=0)),
    "dense VAE": trained(VAE(D, (400,), Z, rng=0)),
    "conv VAE": trained(VAE(D, (), Z, arch="conv", rng=0)),
}

# %% [markdown]
# On the test digits: for the autoencoders the reconstruction loss (Bernoulli, nats per
# image); for the VAEs the negative ELBO and the IWAE estimate of $-\log p(x)$
# (`minivae.evaluate.evaluate`, lesson 9).

# %%
results = {}
for name, (model, before) in models.items():
    ev = evaluate(model, x_test, iwae_k=IWAE_K if "VAE" in name else 0,
                  rng=np.random.default_rng(7))
    results[name] = ev
    extra = (f"negative ELBO {ev['nelbo']:.2f}, NLL (IWAE, {IWAE_K} samples) {ev['nll']:.2f}"
             if "VAE" in name else f"reconstruction loss {ev['recon']:.2f}")
    print(f"{name:10s} {extra}")

# %% [markdown]
# **Check:** every model learned (its test loss fell by more than half from where it
# started), and for each VAE the IWAE bound is tighter than its ELBO, as lesson 9 proved.
# (Which architecture wins depends on how long they train: run the lesson at full size,
# `FAST` off, for the comparison at 3 epochs, and the README for 10.)

# %%
for name, (model, before) in models.items():
    after = results[name]["nelbo"] if "VAE" in name else results[name]["recon"]
    assert after < 0.5 * before, (name, before, after)
    if "VAE" in name:
        assert results[name]["nll"] <= results[name]["nelbo"]

# %% [markdown]
# Reconstructions of the same test digits (top row: the digits), and samples from each VAE's
# prior, side by side.

# %%
show = x_test[:10]
rows = [show] + [models[name][0].reconstruct(show) for name in models]
grid = figures.image_grid(np.concatenate(rows), SHAPE, nrow=10)
fig, ax = plt.subplots(figsize=(8, 4.6))
ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
ax.set_yticks([1 + r * 29 + 14 for r in range(len(rows))], ["digits", *models])
ax.set_xticks([])
ax.set_title("reconstructions")
plt.show()

fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
for ax, name in zip(axes, ("dense VAE", "conv VAE")):
    samples = models[name][0].sample(36, rng=np.random.default_rng(8))
    ax.imshow(figures.image_grid(samples, SHAPE, nrow=6), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name}: samples")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## What to take away
#
# * A convolution is a Linear layer applied to every patch: gather the patches (im2col), one
#   matrix product, done. Its backward is the Linear layer's backward on the patches, then the
#   transpose of the gather (col2im), which adds up the gradients of pixels that sit in
#   several patches.
# * The transposed convolution is that backward map made into a layer: the adjoint of the
#   convolution, which grows an image where the convolution shrinks it. Choose $k$ divisible
#   by $s$ and its stamps overlap evenly: no checkerboard.
# * minivae's `Conv2d` and `ConvTranspose2d` do exactly the above, with the gather and the
#   scatter as numba kernels and the products in BLAS (`minivae/layers/conv.py`,
#   `minivae/kernels/conv.py`), and `minivae.layers.conv_direct` keeps the loops as the
#   specification they are tested against.
#
# **Going further.** Train the convolutional VAE with `channels=(16, 32)` and with `(64, 128)`
# (the same epochs). How do the parameter count, the time per epoch and the test NLL change?
# Which part of the step grows fastest with the channels, and why (count the floats of the
# patch matrix $X$ and the FLOPs of its product)?
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Chellapilla et al. 2006 for the convolution as
# a matrix product of unfolded patches (im2col); Dumoulin & Visin 2016 for output sizes,
# padding and the transposed convolution; Odena et al. 2016 for checkerboard artefacts and
# what avoids them.
