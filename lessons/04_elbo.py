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
# # Lesson 4: Latent variable models and the ELBO
#
# A VAE is trained by maximising a number called the **ELBO** (evidence lower bound) instead
# of the log-likelihood $\log p(x)$ we would really like to maximise. This lesson derives the
# ELBO and the exact identity behind it,
#
# $$\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}\big(q(z)\,\|\,p(z \mid x)\big),$$
#
# and then checks every step with numbers, on a model where everything can be computed
# exactly: **probabilistic PCA**, a linear-Gaussian latent variable model.
#
# You will see:
#
# 1. what a latent variable model is, and why $p(x)$ is hard to compute in general;
# 2. the ELBO, derived twice (Jensen's inequality, and the exact identity);
# 3. the closed forms for probabilistic PCA: $\log p(x)$, the posterior, the ELBO;
# 4. the identity checked to $10^{-10}$, and the gap closing as $q$ moves to the posterior;
# 5. the closed-form ELBO against a Monte-Carlo estimate built from `minivae.losses`,
#    the same pieces the VAE of lesson 6 uses.
#
# Every derivation is followed by a cell that checks it with `assert`: if a claim were false,
# the lesson would stop there.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import losses
from minivae.gradcheck import numerical_gradient
from minivae.layers import Reparameterize
from numpy.polynomial.hermite_e import hermegauss

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
N_MC = 20_000 if FAST else 400_000               # Monte-Carlo samples for the ELBO estimates
GRID = 201 if FAST else 801                      # grid points per latent axis for the integral
LOG2PI = np.log(2 * np.pi)

# %% [markdown]
# ## 1. A latent variable model
#
# A latent variable model explains an observation $x \in \mathbb{R}^D$ through an unobserved
# cause $z \in \mathbb{R}^Z$: first draw $z$ from a **prior** $p(z)$, then draw $x$ from a
# **likelihood** (the decoder) $p(x \mid z)$. The joint density is
#
# $$p(x, z) = p(x \mid z)\, p(z).$$
#
# We only ever see $x$, so the model's density of the data is the **marginal likelihood**
# (the *evidence*)
#
# $$p(x) = \int p(x \mid z)\, p(z)\, dz,$$
#
# and what we would like to know about a given $x$ is the **posterior**
# $p(z \mid x) = p(x \mid z)\,p(z) / p(x)$: which causes could have produced it.
#
# Our model for the whole lesson is probabilistic PCA (Tipping & Bishop, 1999):
#
# $$z \sim \mathcal{N}(0, I_Z), \qquad x \mid z \sim \mathcal{N}(W z + b,\; s^2 I_D).$$
#
# A VAE has the same structure with $Wz + b$ replaced by a neural network. We take $Z = 2$
# latent dimensions so that we can also draw the posterior and integrate over $z$ on a grid.

# %%
rng = np.random.default_rng(2024)
D, Z, s = 5, 2, 0.5                    # data dim, latent dim, noise standard deviation
W = rng.standard_normal((D, Z))        # (D, Z)
b = rng.standard_normal(D)             # (D,)
z_true = rng.standard_normal(Z)        # the cause of our one observation
x = W @ z_true + b + s * rng.standard_normal(D)   # (D,)  the observation we reason about
print("x =", np.round(x, 3))

# %% [markdown]
# The library computes $-\log p(x \mid z)$ for us: `minivae.losses.gaussian_nll(mean, logvar, x)`
# returns $\sum_j \tfrac12\big(\log 2\pi + v + (x_j - m_j)^2 / e^{v}\big)$ per row, a true
# negative log-density (rows are examples, here: values of $z$). With it, the log joint is:

# %%
def log_lik(z):
    """log p(x | z) for rows z (n, Z)  ->  (n,)."""
    mean = z @ W.T + b                                    # (n, D)
    nll, _ = losses.gaussian_nll(mean, 2 * np.log(s), np.broadcast_to(x, mean.shape))
    return -nll


def log_prior(z):
    """log N(z | 0, I) for rows z (n, Z)  ->  (n,)."""
    nll, _ = losses.gaussian_nll(np.zeros_like(z), 0.0, z)
    return -nll


def log_joint(z):
    """log p(x, z) = log p(x | z) + log p(z)  ->  (n,)."""
    return log_lik(z) + log_prior(z)


def gauss_logpdf(y, mean, cov):
    """log N(y | mean, cov) for rows y (n, m), a full covariance (m, m)  ->  (n,)."""
    L = np.linalg.cholesky(cov)                           # cov = L L^T
    r = np.linalg.solve(L, (y - mean).T)                  # (m, n), r = L^-1 (y - mean)
    return -0.5 * (cov.shape[0] * LOG2PI + 2 * np.log(np.diag(L)).sum() + (r * r).sum(axis=0))


# %% [markdown]
# ## 2. Why $p(x)$ is intractable in general
#
# $p(x) = \int p(x \mid z) p(z) dz$ is an integral over the whole latent space. For a neural
# decoder it has no closed form. Two obvious numerical attacks both break down:
#
# * **a grid** over $z$ needs $G^Z$ points: with $Z = 2$ and $G = 801$ that is 640 thousand
#   decoder evaluations; with the $Z = 20$ latents of a typical VAE, $801^{20} \approx 10^{58}$.
# * **sampling from the prior**, $p(x) \approx \frac1n \sum_i p(x \mid z_i)$ with
#   $z_i \sim p(z)$, is unbiased for $p(x)$, but almost every $z_i$ explains $x$ badly: only
#   those landing in the small region where the posterior lives contribute. As $Z$ grows that
#   region's share of the prior shrinks exponentially.
#
# In $Z = 2$ the grid still works, so let us compute $\log p(x)$ by brute force. Outside
# $[-8, 8]^2$ the prior density is below $e^{-32}$, so the box holds the whole integral.

# %%
def log_evidence_grid(G, lim=8.0):
    """log p(x) by a Riemann sum of p(x | z) p(z) over a G x G grid on [-lim, lim]^2."""
    t = np.linspace(-lim, lim, G)
    grid = np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)   # (G^2, 2)
    lj = log_joint(grid)
    m = lj.max()                                              # log-sum-exp, for stability
    return m + np.log(np.exp(lj - m).sum() * (t[1] - t[0]) ** 2)


log_px_grid = log_evidence_grid(GRID)

# %% [markdown]
# ## 3. Closed forms for probabilistic PCA
#
# **The evidence.** $x = Wz + b + s\,n$ with $z \sim \mathcal{N}(0, I_Z)$ and
# $n \sim \mathcal{N}(0, I_D)$ independent: a linear function of Gaussians is Gaussian, with
# mean $\mathbb{E}[x] = b$ and covariance
# $\mathrm{Cov}[x] = W\,\mathrm{Cov}[z]\,W^\top + s^2 I = W W^\top + s^2 I$. So
#
# $$\log p(x) = \log \mathcal{N}\big(x \mid b,\; C\big), \qquad C = W W^\top + s^2 I_D.$$
#
# **The posterior.** As a function of $z$, $\log p(z \mid x) = \log p(x \mid z) + \log p(z) + \text{const}$:
#
# $$\log p(z \mid x) = -\frac{1}{2s^2}\lVert x - b - W z\rVert^2 - \frac12 \lVert z \rVert^2 + \text{const}
# = -\frac12 z^\top \Big(I + \frac{W^\top W}{s^2}\Big) z + z^\top \frac{W^\top (x - b)}{s^2} + \text{const}.$$
#
# A quadratic in $z$: the posterior is Gaussian. Completing the square, $-\tfrac12 (z-m)^\top S^{-1} (z-m)$,
# gives its covariance and mean:
#
# $$S = \Big(I_Z + \frac{W^\top W}{s^2}\Big)^{-1}, \qquad m = \frac{1}{s^2} S\, W^\top (x - b).$$

# %%
C = W @ W.T + s**2 * np.eye(D)                                   # (D, D)
log_px = gauss_logpdf(x[None], b, C)[0]
S_post = np.linalg.inv(np.eye(Z) + W.T @ W / s**2)               # (Z, Z)
m_post = S_post @ W.T @ (x - b) / s**2                           # (Z,)
print(f"log p(x) closed form:    {log_px:.10f}")
print(f"log p(x) by a {GRID}x{GRID} grid: {log_px_grid:.10f}")
print("posterior mean", np.round(m_post, 4), " covariance\n", np.round(S_post, 4))

# %% [markdown]
# **Check.** The closed form must agree with the brute-force integral. And Bayes' rule must
# hold pointwise: for *any* $z$, $\log p(x \mid z) + \log p(z) - \log p(x)$ (computed with
# the library's `gaussian_nll`) must equal the log-density of $\mathcal{N}(m, S)$ at $z$.

# %%
assert abs(log_px - log_px_grid) < 1e-8, (log_px, log_px_grid)

zs = rng.standard_normal((50, Z)) * 2                            # 50 arbitrary points
bayes = log_joint(zs) - log_px                                   # log p(x, z) - log p(x)
assert np.max(np.abs(bayes - gauss_logpdf(zs, m_post, S_post))) < 1e-10
print("closed-form evidence and posterior check out")

# %% [markdown]
# Now prior sampling, measured. The naive estimate $\log \frac1n \sum_i p(x \mid z_i)$,
# $z_i \sim p(z)$, converges to $\log p(x)$ as $n \to \infty$, but for small $n$ it is biased
# low (the log of an unbiased estimate is biased down: Jensen's inequality, which we meet again
# in a moment). Left: eight runs on our $Z = 2$ model, where it settles after a thousand or
# so samples. Right: the same estimate with a fixed budget of $n$ samples, on probabilistic PCA
# models with more latent dimensions ($D = 3Z$, same noise level), each against its exact
# $\log p(x)$ (the closed form of section 3). The error explodes with $Z$.

# %%
def naive_log_evidence(log_lik_fn, n, z_dim, rng):
    """log (1/n') sum_{i<=n'} p(x | z_i) with z_i ~ N(0, I), for every n' = 1..n  ->  (n,)."""
    ll = log_lik_fn(rng.standard_normal((n, z_dim)))                  # log p(x | z_i)
    return np.logaddexp.accumulate(ll) - np.log(np.arange(1, n + 1))   # running log-mean-exp


def ppca_problem(z_dim, rng):
    """A random probabilistic PCA model with z_dim latents and one observation from it.

    Returns log p(x | z) as a function of rows z, and the exact log p(x) (section 3)."""
    x_dim = 3 * z_dim
    Wk, bk = rng.standard_normal((x_dim, z_dim)), rng.standard_normal(x_dim)
    xk = Wk @ rng.standard_normal(z_dim) + bk + s * rng.standard_normal(x_dim)

    def log_lik_k(z):
        mean = z @ Wk.T + bk
        return -losses.gaussian_nll(mean, 2 * np.log(s), np.broadcast_to(xk, mean.shape))[0]

    return log_lik_k, gauss_logpdf(xk[None], bk, Wk @ Wk.T + s**2 * np.eye(x_dim))[0]


n_naive = 5_000 if FAST else 100_000
runs = np.array([naive_log_evidence(log_lik, n_naive, Z, np.random.default_rng(100 + r))
                 for r in range(8)])                                  # (8, n)
z_dims = [1, 2, 4, 8, 16]
errors = np.zeros((len(z_dims), 4))                      # exact - estimate, 4 random models per Z
for i, z_dim in enumerate(z_dims):
    for r in range(4):
        log_lik_k, log_px_k = ppca_problem(z_dim, np.random.default_rng(10 * z_dim + r))
        estimate = naive_log_evidence(log_lik_k, n_naive, z_dim, np.random.default_rng(1000 + r))
        errors[i, r] = log_px_k - estimate[-1]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.semilogx(np.arange(1, n_naive + 1), runs.T, lw=0.8, alpha=0.8)
ax1.axhline(log_px, color="k", ls="--", label=r"exact $\log p(x)$")
ax1.set(xlabel="prior samples $n$", ylabel=r"estimate of $\log p(x)$",
        ylim=(log_px - 6, log_px + 2), title="Z = 2: slow, biased low, but it gets there")
ax1.legend()
ax2.semilogy(np.repeat(z_dims, 4), np.maximum(np.abs(errors).ravel(), 1e-3), "o", alpha=0.7)
ax2.set(xlabel="latent dimensions Z", ylabel=r"|error| in $\log p(x)$ (nats)", xscale="log",
        title=f"n = {n_naive} prior samples, 4 models per Z")
ax2.set_xticks(z_dims, [str(v) for v in z_dims])
plt.show()
print("median error in nats, by Z:", ",  ".join(f"{z_dim}: {e:.2f}" for z_dim, e in
                                              zip(z_dims, np.median(errors, axis=1))))

# %% [markdown]
# **Check:** with the same budget, the naive estimate is good for $Z = 1$ and useless for $Z = 16$.

# %%
assert np.max(np.abs(errors[0])) < 0.1
assert np.min(errors[-1]) > 50                       # off by more than 50 nats: e^50 in p(x)

# %% [markdown]
# The fix, and the idea behind everything that follows: sample $z$ from a distribution
# $q(z)$ that puts its mass where the posterior is, and reweight,
#
# $$p(x) = \int q(z)\, \frac{p(x, z)}{q(z)}\, dz = \mathbb{E}_{q}\Big[\frac{p(x, z)}{q(z)}\Big].$$
#
# If $q$ *is* the posterior, every weight is exactly $p(x, z) / p(z \mid x) = p(x)$: an
# estimate with zero variance, from a single sample. **Check:**

# %%
z_post = rng.multivariate_normal(m_post, S_post, size=5)         # 5 draws from p(z | x)
log_w = log_joint(z_post) - gauss_logpdf(z_post, m_post, S_post)
print("log weights:", log_w)
assert np.max(np.abs(log_w - log_px)) < 1e-10

# %% [markdown]
# Of course, if we knew the posterior we would not need any of this. Variational inference
# makes the most of a $q$ that is *only close* to it.
#
# ## 4. Variational inference and the ELBO
#
# Pick a family of tractable distributions $q_\phi(z)$ (here: Gaussians, with
# $\phi = (\mu, \Sigma)$) that we can sample from and whose density we can evaluate.
#
# **Derivation 1: Jensen.** $\log$ is concave, so $\log \mathbb{E}[Y] \ge \mathbb{E}[\log Y]$ for
# any positive random variable $Y$. With $Y = p(x, z) / q(z)$, $z \sim q$:
#
# $$\log p(x) = \log \mathbb{E}_{q}\Big[\frac{p(x, z)}{q(z)}\Big]
# \;\ge\; \mathbb{E}_{q}\Big[\log \frac{p(x, z)}{q(z)}\Big] =: \mathrm{ELBO}(q).$$
#
# **Derivation 2: the exact identity.** Jensen says *that* there is a gap, not *what* it is.
# Start from $\log p(x)$, which does not depend on $z$, so it equals its own average under $q$;
# then use $p(x) = p(x, z) / p(z \mid x)$ and multiply and divide by $q(z)$:
#
# $$\begin{aligned}
# \log p(x) &= \mathbb{E}_{q}\big[\log p(x)\big]
#            = \mathbb{E}_{q}\Big[\log \frac{p(x, z)}{p(z \mid x)}\Big]
#            = \mathbb{E}_{q}\Big[\log \frac{p(x, z)}{q(z)} \cdot \frac{q(z)}{p(z \mid x)}\Big] \\
#           &= \underbrace{\mathbb{E}_{q}\Big[\log \frac{p(x, z)}{q(z)}\Big]}_{\mathrm{ELBO}(q)}
#            + \underbrace{\mathbb{E}_{q}\Big[\log \frac{q(z)}{p(z \mid x)}\Big]}_{\mathrm{KL}(q \,\|\, p(z \mid x))}.
# \end{aligned}$$
#
# Since $\mathrm{KL} \ge 0$, with equality only when $q = p(z \mid x)$: the ELBO is a lower
# bound, the gap is *exactly* the KL divergence from $q$ to the true posterior, and
# maximising the ELBO over $q$ is the same as moving $q$ towards the posterior (because
# $\log p(x)$ does not depend on $q$).
#
# **The form a VAE uses.** Split $\log p(x, z) = \log p(x \mid z) + \log p(z)$:
#
# $$\mathrm{ELBO}(q) = \underbrace{\mathbb{E}_{q}\big[\log p(x \mid z)\big]}_{-\text{reconstruction loss}}
# \;-\; \underbrace{\mathrm{KL}\big(q(z)\,\|\,p(z)\big)}_{\text{KL to the prior}}.$$
#
# In a VAE, $q$ depends on $x$ through an encoder, $q_\phi(z \mid x)$ ("amortised" inference:
# one network gives every example its own $q$), and the negative ELBO is the loss.

# %% [markdown]
# ### The ELBO in closed form for a Gaussian $q = \mathcal{N}(\mu, \Sigma)$
#
# **Reconstruction term.** $\log p(x \mid z) = -\frac D2 \log(2\pi s^2) - \frac{1}{2s^2}\lVert x - b - Wz \rVert^2$.
# Write $z = \mu + \delta$ with $\mathbb{E}[\delta] = 0$, $\mathbb{E}[\delta\delta^\top] = \Sigma$.
# The cross term averages to zero and
# $\mathbb{E}\lVert W\delta\rVert^2 = \mathbb{E}[\delta^\top W^\top W \delta] = \mathrm{tr}(W \Sigma W^\top)$, so
#
# $$\mathbb{E}_q\big[\log p(x \mid z)\big] = -\frac d2 \log(2\pi s^2)
#   - \frac{1}{2s^2}\Big(\lVert x - b - W\mu \rVert^2 + \mathrm{tr}(W\Sigma W^\top)\Big).$$
#
# **KL between Gaussians** (in $Z$ dimensions), $\mathrm{KL}(\mathcal N(\mu, \Sigma)\,\|\,\mathcal N(m, S))$
# $= \mathbb{E}_q[\log q - \log p]$; the same trick on the quadratic forms gives
#
# $$\mathrm{KL} = \frac12\Big(\mathrm{tr}(S^{-1}\Sigma) + (m - \mu)^\top S^{-1} (m - \mu) - Z
#   + \log\det S - \log\det\Sigma\Big).$$
#
# With $m = 0$, $S = I$ this is the KL to the prior, $\frac12(\mathrm{tr}\,\Sigma + \lVert\mu\rVert^2 - Z - \log\det\Sigma)$.
# We parametrise $\Sigma = L L^\top$ by a lower-triangular $L$ with a positive diagonal, so that
# any such $L$ gives a valid covariance.

# %%
def kl_gauss(mu, Sigma, m, S):
    """KL(N(mu, Sigma) || N(m, S)) in closed form."""
    S_inv = np.linalg.inv(S)
    r = m - mu
    return 0.5 * (np.trace(S_inv @ Sigma) + r @ S_inv @ r - len(mu)
                  + np.linalg.slogdet(S)[1] - np.linalg.slogdet(Sigma)[1])


def elbo(mu, L):
    """ELBO(q) for q = N(mu, L L^T), in closed form."""
    Sigma = L @ L.T
    r = x - b - W @ mu
    recon = -0.5 * D * np.log(2 * np.pi * s**2) - (r @ r + np.trace(W @ Sigma @ W.T)) / (2 * s**2)
    return recon - kl_gauss(mu, Sigma, np.zeros(Z), np.eye(Z))


def random_q(rng):
    """A random Gaussian q: a mean and a lower-triangular L with a positive diagonal."""
    L = np.tril(rng.standard_normal((Z, Z)))
    L[np.diag_indices(Z)] = np.exp(rng.standard_normal(Z))
    return rng.standard_normal(Z) * 2, L


# %% [markdown]
# **Check: the identity.** For many random Gaussians $q$, $\mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z \mid x))$
# must equal $\log p(x)$ to rounding error, and the ELBO must sit below $\log p(x)$.

# %%
worst = 0.0
for _ in range(100):
    mu_q, L_q = random_q(rng)
    lower, gap = elbo(mu_q, L_q), kl_gauss(mu_q, L_q @ L_q.T, m_post, S_post)
    assert lower < log_px and gap > 0
    worst = max(worst, abs(lower + gap - log_px))
print(f"max |ELBO + KL - log p(x)| over 100 random q: {worst:.2e}")
assert worst < 1e-10

# %% [markdown]
# ### The gap closes as $q$ approaches the posterior
#
# Start from $q_0 = p(z) = \mathcal N(0, I)$ (knowing nothing about $x$) and slide the
# parameters in a straight line to the posterior's:
# $\mu_t = (1-t)\,0 + t\, m$, $L_t = (1-t) I + t\, \mathrm{chol}(S)$ for $t \in [0, 1]$.
# Left: the ELBO climbs to $\log p(x)$, the gap between them is the KL. Right: $q_t$'s
# one-standard-deviation ellipses in latent space, over the true posterior density.

# %%
L_post = np.linalg.cholesky(S_post)
ts = np.linspace(0, 1, 101)
path = [(t * m_post, (1 - t) * np.eye(Z) + t * L_post) for t in ts]
elbos = np.array([elbo(mu_t, L_t) for mu_t, L_t in path])
gaps = np.array([kl_gauss(mu_t, L_t @ L_t.T, m_post, S_post) for mu_t, L_t in path])

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(ts, elbos, label=r"ELBO$(q_t)$")
ax1.axhline(log_px, color="k", ls="--", label=r"$\log p(x)$")
ax1.fill_between(ts, elbos, log_px, alpha=0.2, label=r"gap = KL$(q_t \,\|\, p(z|x))$")
ax1.set(xlabel="t  (0: prior, 1: posterior)", ylabel="nats", title="ELBO vs log-evidence")
ax1.legend(loc="lower right")

t_grid = np.linspace(-2.2, 2.2, 300)
Zg = np.stack(np.meshgrid(t_grid, t_grid), axis=-1).reshape(-1, 2)
dens = np.exp(gauss_logpdf(Zg, m_post, S_post)).reshape(300, 300)
ax2.contourf(t_grid, t_grid, dens, levels=20, cmap="Greys", alpha=0.6)
circle = np.stack([np.cos(np.linspace(0, 2 * np.pi, 100)), np.sin(np.linspace(0, 2 * np.pi, 100))])
for i in (0, 25, 50, 75, 100):
    mu_t, L_t = path[i]
    e = mu_t[:, None] + L_t @ circle                       # (2, 100): mu + L u, |u| = 1
    ax2.plot(e[0], e[1], label=f"$q_t$, t={ts[i]:.2f}")
ax2.plot(*z_true, "r*", ms=12, label="true z")
ax2.set(xlabel="$z_1$", ylabel="$z_2$", aspect="equal", title="q moving to the posterior")
ax2.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# **Check:** along the whole path, ELBO + gap $= \log p(x)$, the ELBO stays below
# $\log p(x)$, and at $t = 1$ the gap is zero: the bound is tight at the posterior.

# %%
assert np.max(np.abs(elbos + gaps - log_px)) < 1e-10
assert np.all(elbos <= log_px + 1e-12)
assert gaps[-1] < 1e-10 and gaps[0] > 1.0
print(f"gap at the prior: {gaps[0]:.3f} nats;  at the posterior: {gaps[-1]:.1e}")

# %% [markdown]
# ## 5. The closed form against a Monte-Carlo estimate from `minivae.losses`
#
# A VAE cannot use closed forms: its decoder is a network. It estimates the ELBO with samples
# $z_i \sim q$, using exactly two library functions:
#
# * `losses.gaussian_nll(mean, logvar, x)`: $-\log p(x \mid z_i)$, one value per sample;
# * `losses.gaussian_kl(mu, logvar)`: the KL of a **diagonal** Gaussian
#   $\mathcal N(\mu, \mathrm{diag}\, e^{\text{logvar}})$ to $\mathcal N(0, I)$, in closed form.
#
# The encoder of a VAE outputs a diagonal $q$, so take a diagonal one here too, and estimate
#
# $$\widehat{\mathrm{ELBO}} = \frac1n \sum_{i=1}^n \log p(x \mid z_i) - \mathrm{KL}(q\,\|\,p(z)),
# \qquad z_i = \mu + e^{\frac12\text{logvar}} \odot \varepsilon_i$$
#
# (the sampling is done by `minivae.layers.Reparameterize`, the subject of lesson 5). Its
# standard error is the standard deviation of the $\log p(x \mid z_i)$ over $\sqrt n$. A
# second estimator uses no KL formula at all, just the definition
# $\mathbb{E}_q[\log p(x \mid z) + \log p(z) - \log q(z)]$, every log-density from
# `gaussian_nll`.
#
# **Check:** both estimates agree with the closed form within 4 standard errors.

# %%
mu_d = np.array([[0.3, -0.8]])                  # (1, Z)   a diagonal q, not the posterior
logvar_d = np.array([[-1.2, -2.0]])             # (1, Z)   log-VARIANCES
closed = elbo(mu_d[0], np.diag(np.exp(0.5 * logvar_d[0])))

mu_n, logvar_n = np.repeat(mu_d, N_MC, axis=0), np.repeat(logvar_d, N_MC, axis=0)   # (n, Z)
z = Reparameterize(np.random.default_rng(7)).forward(mu_n, logvar_n)                 # (n, Z)
kl_prior, _ = losses.gaussian_kl(mu_d, logvar_d)                                      # (1,)
nll_q, _ = losses.gaussian_nll(mu_n, logvar_n, z)                                     # -log q(z_i)
est_recon = log_lik(z)                                # (n,)  log p(x|z_i); the KL is added below
est_defn = log_lik(z) + log_prior(z) + nll_q          # (n,)  log p(x, z_i) - log q(z_i)

print(f"closed form                          {closed:.4f}")
for name, per_sample, offset in [("E[log p(x|z)] - KL  (VAE style)", est_recon, -kl_prior[0]),
                                 ("E[log p(x,z) - log q(z)]", est_defn, 0.0)]:
    est, se = per_sample.mean() + offset, per_sample.std(ddof=1) / np.sqrt(N_MC)
    print(f"{name:36s} {est:.4f} +- {se:.4f}   ({(est - closed) / se:+.2f} s.e.)")
    assert abs(est - closed) < 4 * se

# %% [markdown]
# Both estimators are unbiased. The VAE-style one computes the KL exactly instead of
# sampling it, which removes one source of noise. It does not always give a smaller standard
# error, though, because the sampled terms are correlated: compare the two here.
#
# ## 6. Which KL? Reverse against forward
#
# The KL divergence is not symmetric, and the ELBO picks one direction. Its gap is
# $\mathrm{KL}(q \,\|\, p(z \mid x)) = \mathbb{E}_q[\log q - \log p]$, the **reverse** KL: an
# average over $q$'s own samples. Where $q$ puts mass and the posterior has little, $\log q -
# \log p$ is large and the KL pays; where the posterior has mass and $q$ has none, nothing is
# paid, because $q$ never samples there. So maximising the ELBO makes $q$ **mode-seeking**
# ("zero-forcing"): it may settle on one mode and ignore the rest. The **forward** KL,
# $\mathrm{KL}(p \,\|\, q) = \mathbb{E}_p[\log p - \log q]$, averages over the target instead,
# pays heavily wherever $p$ has mass and $q$ does not, and makes $q$ **mass-covering**.
#
# For a Gaussian $q = \mathcal N(\mu, \sigma^2)$ the forward KL has a closed-form minimiser.
# $\mathrm{KL}(p\,\|\,q) = -\mathbb{H}[p] + \tfrac12 \log 2\pi\sigma^2 + \mathbb{E}_p[(z - \mu)^2] / 2\sigma^2$,
# and setting its derivatives to zero gives $\mu = \mathbb{E}_p[z]$ and
# $\sigma^2 = \mathrm{Var}_p[z]$: **moment matching**. The reverse KL has none, so we minimise it
# on a grid of $(\mu, \sigma)$, with $\mathbb{E}_q$ computed by Gauss–Hermite quadrature and the
# entropy of $q$ in closed form, $\mathbb{H}[q] = \tfrac12 \log 2\pi e \sigma^2$.
#
# The target: a posterior with two well-separated modes, $p(z) = \tfrac12 \mathcal N(-2, 0.6^2)
# + \tfrac12 \mathcal N(2, 0.6^2)$. **Check:** the forward-KL fit is the moment-matched Gaussian,
# $\mathcal N(0, 0.6^2 + 2^2)$, with zero gradient there; the reverse-KL fit sits on one mode,
# $\mu \approx \pm 2$, $\sigma \approx 0.6$, at a reverse KL of about $\log 2$ (it covers half of
# $p$'s mass, and pays one bit for it); and each fit is the worse one under the other's KL.

# %%
SEP, WIDTH = 2.0, 0.6                                  # modes at -SEP and SEP, each of std WIDTH


def log_p_bimodal(z):
    """log of 0.5 N(-SEP, WIDTH^2) + 0.5 N(SEP, WIDTH^2), elementwise."""
    a = -0.5 * ((z + SEP) / WIDTH) ** 2
    b = -0.5 * ((z - SEP) / WIDTH) ** 2
    return np.logaddexp(a, b) + np.log(0.5) - np.log(WIDTH) - 0.5 * LOG2PI


gh_nodes, gh_weights = hermegauss(80)                  # E over N(0, 1), exact to degree 159
gh_weights = gh_weights / gh_weights.sum()


def reverse_kl(mu, sigma):
    """KL(N(mu, sigma^2) || p) = -H[q] - E_q log p, by quadrature; mu, sigma broadcast."""
    mu, sigma = np.asarray(mu)[..., None], np.asarray(sigma)[..., None]
    e_log_p = (log_p_bimodal(mu + sigma * gh_nodes) * gh_weights).sum(axis=-1)
    return -0.5 * np.log(2 * np.pi * np.e * sigma[..., 0] ** 2) - e_log_p


p_mean, p_var = 0.0, WIDTH ** 2 + SEP ** 2             # the moments of p


def forward_kl(mu, sigma):
    """KL(p || N(mu, sigma^2)) up to the constant -H[p]: E_p[-log q], in closed form."""
    return 0.5 * np.log(2 * np.pi * sigma ** 2) + (p_var + (p_mean - mu) ** 2) / (2 * sigma ** 2)


mus, sigmas = np.linspace(-4, 4, 401), np.exp(np.linspace(np.log(0.2), np.log(4), 300))
rev = reverse_kl(mus[:, None], sigmas[None, :])                      # (401, 300)
i, j = np.unravel_index(np.argmin(rev), rev.shape)
mu_rev, sigma_rev, kl_rev = mus[i], sigmas[j], rev[i, j]
mu_fwd, sigma_fwd = p_mean, np.sqrt(p_var)
theta_fwd = np.array([mu_fwd, sigma_fwd])
grad_fwd = numerical_gradient(lambda: forward_kl(theta_fwd[0], theta_fwd[1]), theta_fwd)
print(f"reverse KL (the ELBO's): q = N({mu_rev:+.2f}, {sigma_rev:.3f}^2), KL {kl_rev:.4f} "
      f"(log 2 = {np.log(2):.4f})")
print(f"forward KL: q = N({mu_fwd:.2f}, {sigma_fwd:.3f}^2), gradient there {np.abs(grad_fwd).max():.1e}")
print(f"reverse KL of the forward fit {reverse_kl(mu_fwd, sigma_fwd):.3f}; forward KL (+ H[p]) "
      f"of the reverse fit {forward_kl(mu_rev, sigma_rev):.2f} against {forward_kl(mu_fwd, sigma_fwd):.2f}")

zg = np.linspace(-6, 6, 600)
fig, ax = plt.subplots(figsize=(7, 3.4))
ax.fill_between(zg, np.exp(log_p_bimodal(zg)), color="0.8", label="target $p(z)$")
for m_, s_, name in ((mu_rev, sigma_rev, "reverse KL(q||p): mode-seeking"),
                     (mu_fwd, sigma_fwd, "forward KL(p||q): mass-covering")):
    ax.plot(zg, np.exp(-0.5 * ((zg - m_) / s_) ** 2) / (s_ * np.sqrt(2 * np.pi)), label=name)
ax.set(xlabel="z", ylabel="density", title="the best Gaussian q, by either KL")
ax.legend(fontsize=8)
plt.show()

# %%
assert abs(abs(mu_rev) - SEP) < 0.05 and abs(sigma_rev - WIDTH) < 0.03   # on one mode
assert abs(kl_rev - np.log(2)) < 0.01                                      # half of p: one bit
assert np.abs(grad_fwd).max() < 1e-6                                       # moment matching
assert reverse_kl(mu_fwd, sigma_fwd) > kl_rev + 0.1                        # each is worse
assert forward_kl(mu_rev, sigma_rev) > forward_kl(mu_fwd, sigma_fwd) + 1   # under the other KL
assert np.isclose(reverse_kl(-mu_rev, sigma_rev), kl_rev, atol=1e-10)      # two mirror minima

# %% [markdown]
# A VAE's encoder is trained on the reverse KL: when the true posterior is spread out or has
# several modes, $q(z \mid x)$ tends to be **narrower** than it, covering one part well rather
# than all of it thinly. Exercise 2 shows the same thing on probabilistic PCA, where a diagonal
# $q$ must give up the posterior's correlation, and lesson 9 meets the consequence: an encoder
# narrower than the posterior makes importance sampling slow to converge.
#
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. The ELBO is maximised at the true posterior.** Argue from the identity why
# no Gaussian $q$ can have a higher ELBO than $q = p(z \mid x)$. Then check it two ways:
# (a) random perturbations of the posterior's parameters $(m, L)$ all lower the ELBO;
# (b) the gradient of the ELBO with respect to $(\mu, L)$ vanishes at the posterior
# (use `minivae.gradcheck.numerical_gradient`).

# %% tags=["exercise"]
# Your code: the ELBO of the posterior (`best`), `drops`, a list of 200 values
# best - ELBO(perturbed q) for random small perturbations of (m_post, L_post), and
# grad_at_post, the numerical gradient of the ELBO w.r.t. the packed parameters (mu, the
# lower triangle of L) at the posterior.
best = None
drops = None
grad_at_post = None

# %% tags=["solution"]
# Solution. ELBO(q) = log p(x) - KL(q || p(z|x)); log p(x) does not depend on q and KL >= 0
# with equality only at q = p(z|x). So the posterior is the unique maximiser.
best = elbo(m_post, L_post)
drops = []
for _ in range(200):
    mu_p = m_post + 0.05 * rng.standard_normal(Z)
    L_p = L_post + 0.05 * np.tril(rng.standard_normal((Z, Z)))
    drops.append(best - elbo(mu_p, L_p))

theta = np.concatenate([m_post, L_post[np.tril_indices(Z)]])    # the free parameters, packed


def elbo_of_theta():
    L = np.zeros((Z, Z))
    L[np.tril_indices(Z)] = theta[Z:]
    return elbo(theta[:Z], L)


grad_at_post = numerical_gradient(elbo_of_theta, theta)

# %%
assert min(drops) > 0, "a perturbed q had a higher ELBO than the posterior"
assert np.max(np.abs(grad_at_post)) < 1e-6
print(f"smallest drop over 200 perturbations: {min(drops):.2e} nats; "
      f"max |dELBO/dtheta| at the posterior: {np.max(np.abs(grad_at_post)):.1e}")

# %% [markdown]
# **Exercise 2. A diagonal $q$ cannot close the gap.** The VAE's $q$ is diagonal, but this
# posterior has correlated coordinates ($S$ is not diagonal). Find the diagonal Gaussian
# $q = \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ with the highest ELBO and show that its gap
# stays positive.
#
# *Hint:* write $\Lambda = S^{-1}$. For diagonal $\Sigma$ the KL to the posterior is
# $\frac12\big(\sum_j \Lambda_{jj}\sigma_j^2 + (m-\mu)^\top\Lambda(m-\mu) - Z + \log\det S - \sum_j \log\sigma_j^2\big)$.
# Minimise over $\mu$ and each $\sigma_j^2$.

# %% tags=["exercise"]
# Your code: the best diagonal q, as L_mf = diag(sigma_j) (Z, Z), its gap
# gap_mf = log p(x) - ELBO(m_post, L_mf), and the gap predicted by the formula, gap_formula.
Lam = np.linalg.inv(S_post)
L_mf = None
gap_mf = None
gap_formula = None

# %% tags=["solution"]
# Solution. The mean term is minimised (to 0) at mu = m. Setting the derivative in sigma_j^2
# to zero, 0.5 (Lambda_jj - 1 / sigma_j^2) = 0, gives sigma_j^2 = 1 / Lambda_jj: the
# *conditional* variances, smaller than the marginal ones S_jj. The remaining gap is
#     KL = 0.5 (sum_j log Lambda_jj - log det Lambda)  >= 0   (Hadamard's inequality),
# zero only if Lambda is diagonal.
Lam = np.linalg.inv(S_post)
L_mf = np.diag(1 / np.sqrt(np.diag(Lam)))       # the best diagonal q: sigma_j^2 = 1 / Lambda_jj
gap_mf = log_px - elbo(m_post, L_mf)
gap_formula = 0.5 * (np.log(np.diag(Lam)).sum() - np.linalg.slogdet(Lam)[1])
print(f"best diagonal q: sigma^2 = {np.round(np.diag(L_mf)**2, 4)} "
      f"(posterior marginals {np.round(np.diag(S_post), 4)}); gap = {gap_mf:.4f} nats")

# %%
assert abs(gap_mf - gap_formula) < 1e-10
assert gap_mf > 1e-3                                   # the gap does not close
assert np.all(np.diag(L_mf) ** 2 < np.diag(S_post))    # and q is narrower than the posterior
for _ in range(200):                                   # and no nearby diagonal q does better
    mu_p = m_post + 0.05 * rng.standard_normal(Z)
    L_p = L_mf * np.exp(0.05 * rng.standard_normal(Z))
    assert elbo(mu_p, L_p) < elbo(m_post, L_mf)

# %% [markdown]
# ## Summary
#
# * $\log p(x) = \mathrm{ELBO}(q) + \mathrm{KL}(q\,\|\,p(z\mid x))$, exactly, for any $q$.
#   Maximising the ELBO pushes $q$ towards the posterior and pushes up $\log p(x)$.
# * $\mathrm{ELBO} = \mathbb{E}_q[\log p(x\mid z)] - \mathrm{KL}(q\,\|\,p(z))$: a reconstruction
#   term and a KL to the prior, which `gaussian_nll` and `gaussian_kl` compute.
# * A diagonal $q$ leaves a gap when the posterior's coordinates are correlated.
#
# The ELBO is an expectation over $q$, and we want its gradient with respect to $q$'s
# parameters. Sampling $z \sim q$ blocks that gradient. Lesson 5 gets around the block with
# the reparameterization trick.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Tipping & Bishop 1999 for probabilistic PCA;
# Jordan et al. 1999 and Blei et al. 2017 for variational inference; Bishop 2006, section 10.1,
# and Minka 2005 for the two directions of the KL; Kingma & Welling 2014 and Rezende et al. 2014
# for the ELBO as a VAE's loss.
