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
# # Lesson 5: The reparameterization trick
#
# Lesson 4 ended with a loss we can estimate, the negative ELBO
# $-\mathbb{E}_{q_\phi(z|x)}[\log p(x \mid z)] + \mathrm{KL}(q_\phi(z|x)\,\|\,p(z))$, and a question:
# how do we get its gradient with respect to the encoder's outputs $\phi = (\mu, \text{logvar})$
# when the first term averages over **samples** of $z$?
#
# You will see:
#
# 1. why a gradient cannot pass through a call to a random number generator;
# 2. the trick, $z = \mu + \sigma \odot \varepsilon$, its derivatives with respect to $\mu$ and
#    the **log-variance**, checked against `minivae.layers.Reparameterize`;
# 3. the other unbiased estimator, the score function (REINFORCE), and why VAEs don't use it:
#    both measured, variance against number of samples, and a function for which the score
#    function wins after all;
# 4. the analytic KL to $\mathcal N(0, I)$, derived, differentiated, checked, and two slips to
#    watch for in slides and code;
# 5. a classic convention bug in two versions, and which check catches which: a layer's gradient
#    check, the whole model's, and the checks that hold the sampler and the KL to one definition.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from minivae import losses
from minivae.gradcheck import check_grad, check_layer, rel_error
from minivae.layers import Reparameterize
from minivae.models.vae import VAE

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
RUNS = 1_000 if FAST else 10_000               # independent runs of each gradient estimator
SAMPLES = [1, 2, 4, 8, 16, 32, 64] + ([] if FAST else [128, 256])   # samples per estimate
N_MC = 50_000 if FAST else 1_000_000           # Monte-Carlo samples for the KL check

# %% [markdown]
# ## 1. Gradients do not pass through sampling
#
# Take one latent coordinate, $z \sim \mathcal N(\mu, \sigma^2)$, and a function $f$. We want
# $\frac{\partial}{\partial \mu} \mathbb{E}[f(z)]$. Here, with $f(z) = z^2$, we know the answer:
# $\mathbb{E}[z^2] = \mu^2 + \sigma^2$, so the gradient is $2\mu$.
#
# In code, `z = rng.normal(mu, sigma)` depends on $\mu$, but through the generator's internals:
# there is no formula in front of us to differentiate. The expectation
# $\int f(z)\, q_\mu(z)\, dz$ depends on $\mu$ through the **density**, not through a function
# of $z$ we can apply the chain rule to.
#
# Try the brute-force way: a finite difference of two Monte-Carlo averages. With fresh samples
# on each side, the noise of the averages ($\sim 1/\sqrt n$) is divided by $2h$: hopeless. With
# the *same* standard-normal draws $\varepsilon$ on both sides, writing each sample as
# $\mu \pm h + \sigma\varepsilon$, the noise cancels. That second version is the whole trick.

# %%
def f(z):
    return z**2                          # E f = mu^2 + sigma^2


mu0, sigma0, n, h = 1.5, 1.0, 1_000, 1e-3
rng = np.random.default_rng(5)
fresh, shared = [], []
for _ in range(10):
    plus, minus = rng.normal(mu0 + h, sigma0, n), rng.normal(mu0 - h, sigma0, n)  # fresh draws
    fresh.append((f(plus).mean() - f(minus).mean()) / (2 * h))
    eps = rng.standard_normal(n)                                                  # shared draws
    shared.append((f(mu0 + h + sigma0 * eps).mean() - f(mu0 - h + sigma0 * eps).mean()) / (2 * h))
print(f"exact gradient 2 mu = {2 * mu0}")
print("fresh samples: ", np.round(fresh, 1))
print("shared samples:", np.round(shared, 3))

# %%
assert np.std(fresh) > 100 * np.std(shared)
assert abs(np.mean(shared) - 2 * mu0) < 4 * np.std(shared) / np.sqrt(len(shared))

# %% [markdown]
# ## 2. The trick: move the randomness out of the parameters
#
# Draw the noise first, from a distribution with no parameters, then build the sample from it
# with a deterministic, differentiable function:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), \qquad
#   \sigma = \exp\big(\tfrac12\, \text{logvar}\big).$$
#
# Then $z \sim \mathcal N(\mu, \mathrm{diag}\,\sigma^2)$ as before, but now
# $\mathbb{E}_{q}[f(z)] = \mathbb{E}_{\varepsilon}[f(\mu + \sigma \odot \varepsilon)]$ and the
# distribution of $\varepsilon$ does not depend on $\phi$, so the gradient moves inside:
#
# $$\nabla_\phi\, \mathbb{E}_q[f(z)] = \mathbb{E}_\varepsilon\big[\nabla_\phi f(\mu + \sigma \odot \varepsilon)\big].$$
#
# One sample of $\varepsilon$ gives an unbiased estimate of the gradient, computed by ordinary
# backpropagation through $z$.
#
# **Why a log-variance?** The encoder's last layer is linear and its outputs are any real
# numbers; $\sigma = e^{\text{logvar}/2}$ is positive for all of them. minivae reads the
# second output as $\log \sigma^2$, the **log-variance**, everywhere (the sampler and the KL).
#
# **The derivatives**, elementwise (each $z_j$ depends only on $\mu_j$, $\text{logvar}_j$):
#
# $$\frac{\partial z}{\partial \mu} = 1, \qquad
#   \frac{\partial z}{\partial\, \text{logvar}} = \varepsilon\, \frac{\partial \sigma}{\partial\, \text{logvar}}
#   = \varepsilon \cdot \tfrac12 e^{\text{logvar}/2} = \tfrac12\, \sigma\, \varepsilon.$$
#
# So the backward pass, given $dz = \partial L / \partial z$, is
#
# $$d\mu = dz, \qquad d\,\text{logvar} = \tfrac12\, dz \odot \sigma \odot \varepsilon \;=\; \tfrac12\, dz \odot (z - \mu).$$
#
# **Check 1:** `minivae.gradcheck.check_layer` compares `Reparameterize.backward` with central
# differences of $L = \sum z \odot dy$ for a random upstream $dy$. The noise is held fixed by
# passing the same `eps` to every forward call, exactly as in the "shared samples" above.

# %%
rng = np.random.default_rng(0)
mu = rng.standard_normal((4, 3))                 # (N, Z)  float64, as gradient checks need
logvar = rng.standard_normal((4, 3))             # (N, Z)
eps = rng.standard_normal((4, 3))                # (N, Z)  fixed noise
errors = check_layer(Reparameterize(rng=0), (mu, logvar), eps=eps)
print({name: f"{err:.1e}" for name, err in errors.items()})    # x0: mu, x1: logvar
assert max(errors.values()) < 1e-7

# %% [markdown]
# Exercise 1 asks you to write this backward yourself, from the two derivatives above, and
# checks it the same way.
#
# **Check 2:** `logvar` really is a log-*variance*: samples drawn by the layer have variance
# $e^{\text{logvar}}$ (within 4 standard errors of the sample variance).

# %%
lv = np.array([[-2.0, 0.0, 1.5]])                                        # (1, Z)
zs = Reparameterize(rng=1).forward(np.zeros((N_MC, 3)), np.repeat(lv, N_MC, axis=0))
var_hat = zs.var(axis=0)
se = np.sqrt((np.mean(zs**4, axis=0) - var_hat**2) / N_MC)               # s.e. of the variance
print("sample variance", np.round(var_hat, 4), " exp(logvar)", np.round(np.exp(lv[0]), 4))
assert np.all(np.abs(var_hat - np.exp(lv[0])) < 4 * se)

# %% [markdown]
# ## 3. The other estimator: the score function (REINFORCE)
#
# There is a second way to differentiate an expectation, which needs no derivative of $f$ at
# all. Differentiate the density instead, and use $\nabla q = q\, \nabla \log q$:
#
# $$\nabla_\phi\, \mathbb{E}_q[f(z)] = \int f(z)\, \nabla_\phi q_\phi(z)\, dz
#   = \int f(z)\, q_\phi(z)\, \nabla_\phi \log q_\phi(z)\, dz
#   = \mathbb{E}_q\big[f(z)\, \nabla_\phi \log q_\phi(z)\big].$$
#
# For $\log q = -\tfrac12 \log 2\pi - \tfrac12 v - (z - \mu)^2 / (2 e^{v})$ (with $v$ = logvar),
#
# $$\frac{\partial \log q}{\partial \mu} = \frac{z - \mu}{\sigma^2} = \frac{\varepsilon}{\sigma}, \qquad
#   \frac{\partial \log q}{\partial v} = -\frac12 + \frac{(z - \mu)^2}{2\sigma^2} = \frac12(\varepsilon^2 - 1).$$
#
# We don't even need to code these: `losses.gaussian_nll(mean, logvar, z)` returns the
# gradient of $-\log q$ with respect to its `mean` and `logvar`.
#
# Side by side, one sample each, for $f(z) = z^2$ (so $f'(z) = 2z$), with exact answers
# $\partial_\mu \mathbb{E} f = 2\mu$ and $\partial_v \mathbb{E} f = \partial_v (\mu^2 + e^v) = e^v$:
#
# | | pathwise (reparameterization) | score function |
# |---|---|---|
# | $\partial/\partial\mu$ | $f'(z)$ | $f(z)\, \varepsilon / \sigma$ |
# | $\partial/\partial v$ | $f'(z)\, \tfrac12 \sigma \varepsilon$ | $f(z)\, \tfrac12(\varepsilon^2 - 1)$ |
#
# Both are unbiased. The score function works for any $f$, even a non-differentiable one or a
# discrete $z$, but it only sees $f$'s *values*, weighted by a zero-mean factor, and for smooth
# $f$ like this one its variance is usually the larger (usually, not always: the end of this
# section has a counterexample). We measure both: for each number of samples $S$, `RUNS` independent estimates,
# their mean (unbiasedness) and their variance. The pathwise one runs through the library's
# `Reparameterize.forward` and `.backward`, as in a VAE.

# %%
mu_s, lv_s = 1.5, 0.0                           # one latent coordinate: mu = 1.5, sigma = 1
exact = {"mu": 2 * mu_s, "logvar": np.exp(lv_s)}


def pathwise(eps, f_prime):
    """Per-sample pathwise gradients of E f(z) w.r.t. mu and logvar, via Reparameterize."""
    layer = Reparameterize(rng=0)
    z = layer.forward(np.full_like(eps, mu_s), np.full_like(eps, lv_s), eps)
    dmu, dlogvar = layer.backward(f_prime(z))
    return {"mu": dmu, "logvar": dlogvar}


def score(eps, f):
    """Per-sample score-function gradients: f(z) * grad log q(z), grad log q from gaussian_nll."""
    mu_a, lv_a = np.full_like(eps, mu_s), np.full_like(eps, lv_s)
    z = Reparameterize(rng=0).forward(mu_a, lv_a, eps)          # samples of q; no backward
    _, (dmean, dlogvar) = losses.gaussian_nll(mu_a, lv_a, z)    # gradients of -log q(z)
    return {"mu": -f(z) * dmean, "logvar": -f(z) * dlogvar}


estimators = {"pathwise": lambda e: pathwise(e, lambda z: 2 * z),
              "score": lambda e: score(e, f),
              "score, f + 10": lambda e: score(e, lambda z: f(z) + 10)}
rng = np.random.default_rng(42)
results = {name: {"mu": [], "logvar": []} for name in estimators}   # name -> param -> [(R,) per S]
for S in SAMPLES:
    eps = rng.standard_normal((RUNS, S))          # the same noise for every estimator
    for name, est in estimators.items():
        for param, g in est(eps).items():
            results[name][param].append(g.mean(axis=1))             # (RUNS,) estimates

# %% [markdown]
# The exact variance of each one-sample estimator is an expectation over $\varepsilon \sim \mathcal N(0, 1)$
# of a polynomial, which Gauss-Hermite quadrature computes exactly; an average of $S$
# independent samples has $1/S$ of it.

# %%
nodes, weights = hermegauss(40)                  # exact for polynomials of degree < 80
weights = weights / weights.sum()                # an expectation under N(0, 1)
one_sample_var = {}
for name, est in estimators.items():
    g = est(nodes[:, None])                      # (40, 1) per parameter
    for param in ("mu", "logvar"):
        mean = weights @ g[param][:, 0]
        one_sample_var[name, param] = weights @ (g[param][:, 0] - mean) ** 2
        assert abs(mean - exact[param]) < 1e-10  # the quadrature says: unbiased, exactly
for (name, param), v in one_sample_var.items():
    print(f"one-sample variance, {name:14s} d/d{param:7s} {v:8.3f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, param in zip(axes, ("mu", "logvar")):
    for name, color in zip(estimators, ("C0", "C1", "C3")):
        measured = [np.var(r) for r in results[name][param]]
        ax.loglog(SAMPLES, measured, "o", color=color, label=f"{name} (measured)")
        ax.loglog(SAMPLES, one_sample_var[name, param] / np.array(SAMPLES), "-", color=color,
                  alpha=0.5)
    ax.set(xlabel="samples per estimate S", ylabel="variance of the gradient estimate",
           title=f"d E[f(z)] / d {param}   (lines: exact variance / S)")
    ax.set_xticks(SAMPLES, [str(v) for v in SAMPLES])
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Check:** every estimator is unbiased at every $S$ (mean of the runs within 4 standard
# errors of the exact gradient), the measured variances agree with the exact ones, and the
# score function's variance is several times the pathwise one. Adding a constant to $f$
# changes nothing for the pathwise estimator ($f'$ is the same) but inflates the score
# function's variance. In practice, score-function estimators subtract a *baseline* from $f$
# to fight this, which is how REINFORCE is used in reinforcement learning.

# %%
for name in estimators:
    for param in ("mu", "logvar"):
        for S, r in zip(SAMPLES, results[name][param]):
            se_mean = np.std(r, ddof=1) / np.sqrt(RUNS)
            assert abs(r.mean() - exact[param]) < 4 * se_mean, (name, param, S)
            v = np.var(r)
            se_var = np.sqrt((np.mean((r - r.mean()) ** 4) - v**2) / RUNS)
            assert abs(v - one_sample_var[name, param] / S) < 4 * se_var, (name, param, S)
for param in ("mu", "logvar"):
    assert one_sample_var["score", param] > 5 * one_sample_var["pathwise", param]
    assert one_sample_var["score, f + 10", param] > one_sample_var["score", param]
print("all estimators unbiased; variances as predicted")

# %% [markdown]
# **Not a law.** The pathwise estimator multiplies by $f'$, the score function by $f$. When $f$
# wiggles fast, $f'$ is large while $f$ stays small, and the comparison turns round. Take
# $f(z) = \sin(\omega z)$ with $z \sim \mathcal N(0, 1)$ and the derivative in $\mu$. The
# pathwise estimator is $\omega \cos(\omega z)$, the score function $\sin(\omega z)\,\varepsilon$.
# With $\mathbb{E}[\cos(a z)] = e^{-a^2/2}$ and $\mathbb{E}[z^2 \cos(a z)] = (1 - a^2)\, e^{-a^2/2}$
# their variances are
#
# $$\mathrm{Var}_{\text{path}} = \frac{\omega^2}{2}\big(1 + e^{-2\omega^2}\big) - \omega^2 e^{-\omega^2},
#   \qquad \mathrm{Var}_{\text{score}} = \frac12\Big(1 - (1 - 4\omega^2)\, e^{-2\omega^2}\Big) - \omega^2 e^{-\omega^2}:$$
#
# for $\omega = 10$ about 50 against 0.5. **Check**, with the library's layers as above: both
# unbiased, both variances as the formulas say, and the score function's a hundred times smaller.
# (Mohamed et al. 2020, section 3, discuss when each estimator wins.)

# %%
OMEGA = 10.0
eps_w = np.random.default_rng(43).standard_normal((RUNS * 10, 1))
zero = np.zeros_like(eps_w)
layer_w = Reparameterize(rng=0)
z_w = layer_w.forward(zero, zero, eps_w)                             # mu = 0, sigma = 1
g_path = layer_w.backward(OMEGA * np.cos(OMEGA * z_w))[0][:, 0]     # f'(z) dz/dmu
dmean_w = losses.gaussian_nll(zero, zero, z_w)[1][0]                # d(-log q)/dmu
g_score = (-np.sin(OMEGA * z_w) * dmean_w)[:, 0]                    # f(z) d log q / dmu
exact_grad = OMEGA * np.exp(-OMEGA ** 2 / 2)                         # d/dmu E sin(omega z) at 0
var_path = OMEGA ** 2 / 2 * (1 + np.exp(-2 * OMEGA ** 2)) - exact_grad ** 2
var_score = 0.5 * (1 - (1 - 4 * OMEGA ** 2) * np.exp(-2 * OMEGA ** 2)) - exact_grad ** 2
for name, g, v in (("pathwise", g_path, var_path), ("score", g_score, var_score)):
    se_v = np.sqrt((np.mean((g - g.mean()) ** 4) - g.var() ** 2) / len(g))
    print(f"sin({OMEGA:g} z), {name:8s}: mean {g.mean():+.4f} (exact {exact_grad:.1e}), "
          f"variance {g.var():.3f} +- {se_v:.3f} (formula {v:.3f})")
    assert abs(g.mean() - exact_grad) < 4 * g.std() / np.sqrt(len(g))
    assert abs(g.var() - v) < 4 * se_v
assert var_score < var_path / 50                                     # the score function wins

# %% [markdown]
# ## 4. The KL term, analytically
#
# The second term of the loss needs no sampling at all. Per latent coordinate, with
# $q = \mathcal N(\mu, \sigma^2)$, $\sigma^2 = e^{v}$, and $p = \mathcal N(0, 1)$:
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q[\log q(z) - \log p(z)]
#   = \mathbb{E}_q\Big[-\tfrac12 v - \frac{(z - \mu)^2}{2 e^{v}} + \frac{z^2}{2}\Big]$$
#
# (the $-\tfrac12 \log 2\pi$ terms cancel). Using $\mathbb{E}_q[(z-\mu)^2] = e^{v}$ and
# $\mathbb{E}_q[z^2] = \mu^2 + e^{v}$:
#
# $$\mathrm{KL} = -\tfrac12 v - \tfrac12 + \tfrac12(\mu^2 + e^{v})
#   = \tfrac12\big(\mu^2 + e^{v} - 1 - v\big),$$
#
# summed over the $Z$ coordinates of a diagonal Gaussian. Its derivatives:
#
# $$\frac{\partial\, \mathrm{KL}}{\partial \mu} = \mu, \qquad
#   \frac{\partial\, \mathrm{KL}}{\partial v} = \tfrac12\big(e^{v} - 1\big).$$
#
# It is zero, with zero gradient, exactly at $\mu = 0, v = 0$: $q = p$.
#
# **Check:** the formula and its derivatives match `losses.gaussian_kl`, whose gradient also
# matches central differences; and the closed form matches a Monte-Carlo average of
# $\log q(z) - \log p(z)$ over samples from $q$ (log-densities from `gaussian_nll`).

# %%
rng = np.random.default_rng(3)
mu_k = rng.standard_normal((3, 4))               # (N, Z)
lv_k = rng.standard_normal((3, 4))               # (N, Z)
kl_lib, (dmu_lib, dlv_lib) = losses.gaussian_kl(mu_k, lv_k)          # (N,), (N, Z) x2

kl_mine = 0.5 * (mu_k**2 + np.exp(lv_k) - 1 - lv_k).sum(axis=1)      # (N,)
assert rel_error(kl_mine, kl_lib) < 1e-12
assert rel_error(dmu_lib, mu_k) < 1e-12 and rel_error(dlv_lib, 0.5 * (np.exp(lv_k) - 1)) < 1e-12

grad_errors = [check_grad(lambda: losses.gaussian_kl(mu_k, lv_k)[0].sum(), a, g)
               for a, g in [(mu_k, dmu_lib), (lv_k, dlv_lib)]]
print("gradient check of gaussian_kl (mu, logvar):", [f"{e:.1e}" for e in grad_errors])
assert max(grad_errors) < 1e-7

# %%
n_kl = N_MC // 10
for i in range(3):
    mu_n, lv_n = np.repeat(mu_k[i:i + 1], n_kl, axis=0), np.repeat(lv_k[i:i + 1], n_kl, axis=0)
    z = Reparameterize(rng=10 + i).forward(mu_n, lv_n)                 # (n, Z) samples of q
    log_q = -losses.gaussian_nll(mu_n, lv_n, z)[0]                     # (n,)
    log_p = -losses.gaussian_nll(np.zeros_like(z), 0.0, z)[0]          # (n,)
    est, se = np.mean(log_q - log_p), np.std(log_q - log_p, ddof=1) / np.sqrt(n_kl)
    print(f"example {i}: closed form {kl_lib[i]:.4f}, Monte Carlo {est:.4f} +- {se:.4f}")
    assert abs(est - kl_lib[i]) < 4 * se

# %% [markdown]
# > **Two slips to watch for.** The per-coordinate KL is often written from memory, and slides
# > and code get it wrong in two ways; the slides this course grew from carry both kinds.
# > **The sign:** $\tfrac12(1 + v - \mu^2 - e^{v})$ is the *negative* KL, the term the ELBO
# > *adds*; used as a loss it rewards moving away from the prior. **$\sigma$ against
# > $\sigma^2$:** with $v = \log\sigma^2$ the KL is $\tfrac12(\mu^2 + \sigma^2 - 1 - \log\sigma^2)$;
# > writing $\log\sigma$ for $\log\sigma^2$ (or $\sigma$ for $\sigma^2$) gives a function that
# > is still 0 at $q = p$ but no longer a KL. Two properties tell a true KL to
# > $\mathcal N(0, 1)$: it is never negative, and it equals the Monte-Carlo average of
# > $\log q - \log p$ over samples of $q$. **Check** both on the three formulas.

# %%
def kl_right(mu, sigma):
    return 0.5 * (mu ** 2 + sigma ** 2 - 1 - np.log(sigma ** 2))


def kl_sign_slip(mu, sigma):                      # the negative KL, taken for the KL
    return 0.5 * (1 + np.log(sigma ** 2) - mu ** 2 - sigma ** 2)


def kl_sigma_slip(mu, sigma):                     # log sigma where log sigma^2 belongs
    return 0.5 * (mu ** 2 + sigma ** 2 - 1 - np.log(sigma))


slip_rng = np.random.default_rng(4)
mu_s_, sigma_s_ = 0.3, 0.6                        # one q = N(0.3, 0.6^2)
z_s = mu_s_ + sigma_s_ * slip_rng.standard_normal(N_MC)
log_ratio = (-0.5 * ((z_s - mu_s_) / sigma_s_) ** 2 - np.log(sigma_s_)) + 0.5 * z_s ** 2   # log q - log p
mc_kl, mc_se = log_ratio.mean(), log_ratio.std(ddof=1) / np.sqrt(N_MC)
sigmas_grid = np.linspace(0.05, 3, 300)
for name, kl_f in (("right", kl_right), ("sign slip", kl_sign_slip), ("sigma slip", kl_sigma_slip)):
    print(f"{name:10s}: KL(q) = {kl_f(mu_s_, sigma_s_):+.4f} (Monte Carlo {mc_kl:.4f} +- {mc_se:.4f});"
          f"  smallest value over sigma at mu = 0: {kl_f(0.0, sigmas_grid).min():+.4f}")
assert abs(kl_right(mu_s_, sigma_s_) - mc_kl) < 4 * mc_se and kl_right(0.0, sigmas_grid).min() >= 0
for kl_f in (kl_sign_slip, kl_sigma_slip):        # each slip fails both tests
    assert abs(kl_f(mu_s_, sigma_s_) - mc_kl) > 10 * mc_se and kl_f(0.0, sigmas_grid).min() < 0

# %% [markdown]
# ## 5. A convention bug, and which check catches it
#
# A well-known NumPy VAE samples with `z = mu + np.exp(logvar) * eps`, reading `logvar` as
# a log-*standard deviation*, while its KL reads the same number as a log-*variance*. The bug
# comes in two versions, each a subclass of the library's layer:
#
# * **A, the forward only**: the sampler uses $\sigma = e^{v}$, and the backward is still the
#   log-variance one derived above, $\tfrac12\,dz\,\sigma\,\varepsilon$;
# * **B, consistently wrong**: the author "fixes" the backward to match the forward,
#   $d\,v = dz\, e^{v} \varepsilon$. Now the code consistently computes *something*, but not
#   the ELBO: the KL charges for a variance $e^{v}$ while the samples have variance $e^{2v}$.
#
# Five checks, each run on the correct layer and on both versions:
#
# 1. **its author's unit test**: samples have the standard deviation the author believes in
#    ($e^{v/2}$ for the correct layer, $e^{v}$ for A and B). It tests the belief, not the
#    convention, so it passes for all three;
# 2. **the layer's gradient check**, `check_layer`, as in section 2;
# 3. **the whole model's gradient check**: a real minivae `VAE` (float64, smooth tanh units)
#    with the layer swapped in (`VAE.loss` samples through whatever layer sits in
#    `vae.reparam`, and `VAE.backward` runs its backward; lesson 6 prints both), against
#    central differences of the loss, with the noise held fixed;
# 4. **the sampler against the convention**: the variance of its samples is $e^{v}$
#    (section 2's check 2);
# 5. **the KL against the sampler**: `gaussian_kl` equals the average of $\log q(z) - \log p(z)$
#    over the samples *the sampler actually draws* (section 4's Monte-Carlo check, applied to
#    the model's own sampler).
#
# Version A is caught by its own layer's gradient check (its backward does not match its
# forward), and so by the whole-model check too. Version B passes every gradient check,
# because every gradient is right for the function as written; only the checks that hold the
# pieces to one definition, 4 and 5, catch it.

# %%
class ExpLogvarReparameterize(Reparameterize):
    """Version A: std = exp(logvar), not exp(0.5 logvar). Backward as in Reparameterize."""

    def forward(self, mu, logvar, eps=None):
        eps = self.rng.standard_normal(mu.shape) if eps is None else eps
        std = np.exp(logvar)                                  # BUG: should be exp(0.5 * logvar)
        self.cache = (eps, std)
        return mu + std * eps


class ConsistentlyWrongReparameterize(ExpLogvarReparameterize):
    """Version B: the forward of A, and a backward that matches it."""

    def backward(self, dz):
        eps, std = self.cache
        return dz.copy(), dz * eps * std                      # d/dlogvar of exp(logvar) * eps


def authors_unit_test(layer_cls, believed_std):
    z1 = layer_cls(rng=0).forward(np.zeros((N_MC, 1)), np.full((N_MC, 1), -1.0))
    return abs(z1.std() - believed_std(-1.0)) < 0.01


def layer_check(layer_cls):
    r = np.random.default_rng(0)
    mu0, lv0, eps0 = (r.standard_normal((4, 3)) for _ in range(3))
    return max(check_layer(layer_cls(rng=0), (mu0, lv0), eps=eps0).values()) < 1e-7


def whole_model_check(layer_cls):
    """Does VAE.backward match central differences of VAE.loss, with this sampler?"""
    r = np.random.default_rng(11)
    x, eps = r.uniform(size=(4, 6)), r.standard_normal((4, 2))       # (N, x_dim), (N, z_dim)
    vae = VAE(x_dim=6, hidden=(5,), z_dim=2, likelihood="gaussian", activation="tanh",
              dtype=np.float64, rng=0)
    vae.reparam = layer_cls(rng=0)
    vae.zero_grad()
    vae.loss(x, eps)
    vae.backward()
    grads = {name: g.copy() for name, g in vae.grads.items()}
    return max(check_grad(lambda: vae.loss(x, eps), p, grads[name])
               for name, p in vae.params.items()) < 1e-7


mu1, lv1 = np.array([[0.5, -0.3]]), np.array([[-1.0, 0.4]])
n1 = N_MC // 10


def draws(layer_cls):
    mu_n, lv_n = np.repeat(mu1, n1, axis=0), np.repeat(lv1, n1, axis=0)
    return mu_n, lv_n, layer_cls(rng=0).forward(mu_n, lv_n)


def variance_check(layer_cls):
    _, _, z = draws(layer_cls)
    sq = (z - mu1) ** 2                                       # (n, Z), mean exp(logvar)
    return bool(np.all(np.abs(sq.mean(axis=0) - np.exp(lv1[0])) < 4 * sq.std(axis=0) / np.sqrt(n1)))


def kl_check(layer_cls):
    mu_n, lv_n, z = draws(layer_cls)
    diff = losses.gaussian_nll(np.zeros_like(z), 0.0, z)[0] - losses.gaussian_nll(mu_n, lv_n, z)[0]
    return abs(diff.mean() - losses.gaussian_kl(mu1, lv1)[0][0]) < 4 * diff.std(ddof=1) / np.sqrt(n1)


layers = {"correct": (Reparameterize, lambda v: np.exp(0.5 * v)),
          "A: forward only": (ExpLogvarReparameterize, np.exp),
          "B: consistently wrong": (ConsistentlyWrongReparameterize, np.exp)}
checks = ("1 unit test", "2 layer grad", "3 model grad", "4 variance", "5 KL vs samples")
passed = {name: (authors_unit_test(cls, std), layer_check(cls), whole_model_check(cls),
                 variance_check(cls), kl_check(cls)) for name, (cls, std) in layers.items()}
print(f"{'':24s}" + "".join(f"{c:>17s}" for c in checks))
for name, row in passed.items():
    print(f"{name:24s}" + "".join(f"{'passes' if ok else 'CAUGHT':>17s}" for ok in row))
print("layer gradient check of version A:", {k: f"{e:.2f}" for k, e in check_layer(
    ExpLogvarReparameterize(rng=0), tuple(np.random.default_rng(0).standard_normal((4, 3))
                                          for _ in range(2)),
    eps=np.random.default_rng(1).standard_normal((4, 3))).items()})

# %%
assert passed["correct"] == (True, True, True, True, True)
assert passed["A: forward only"] == (True, False, False, False, False)
assert passed["B: consistently wrong"] == (True, True, True, False, False)

# %% [markdown]
# So a gradient check catches a backward that disagrees with its own forward, one layer at a
# time; it cannot catch a convention that two correct pieces read differently. For that, check
# the pieces against each other: the sampler against the variance the KL assumes, and the KL
# against the sampler's own draws. minivae's tests do both (`tests/test_reparam_kl.py`).
#
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. The reparameterization's backward.** The forward below keeps $\varepsilon$ and
# $\sigma$ in its cache. Write `reparam_backward(dz, cache)`, returning $d\mu$ and
# $d\,\text{logvar}$ (each (N, Z)) from the derivatives of section 2. The check compares them
# with central differences of $L = \sum z \odot dz$ (`minivae.gradcheck.check_grad`), and with
# the library's `Reparameterize.backward`.

# %%
def reparam_forward(mu, logvar, eps):
    """z = mu + exp(0.5 logvar) * eps.   (N, Z) each -> z (N, Z), cache."""
    std = np.exp(0.5 * logvar)                   # (N, Z)
    z = mu + std * eps                           # (N, Z)
    return z, (eps, std)


# %% tags=["exercise"]
def reparam_backward(dz, cache):
    """dz (N, Z) -> dmu (N, Z), dlogvar (N, Z)."""
    eps, std = cache
    dmu = np.zeros_like(dz)                      # your code: replace these two lines
    dlogvar = np.zeros_like(dz)
    return dmu, dlogvar

# %% tags=["solution"]
# Solution. dz/dmu = 1 and dz/dlogvar = 0.5 std eps, elementwise, so by the chain rule:
def reparam_backward(dz, cache):
    """dz (N, Z) -> dmu (N, Z), dlogvar (N, Z)."""
    eps, std = cache
    return dz.copy(), 0.5 * dz * std * eps

# %%
r1 = np.random.default_rng(30)
mu_e1, lv_e1, eps_e1, dz_e1 = (r1.standard_normal((4, 3)) for _ in range(4))
z_e1, cache_e1 = reparam_forward(mu_e1, lv_e1, eps_e1)
dmu_e1, dlv_e1 = reparam_backward(dz_e1, cache_e1)
L_e1 = lambda: float(np.sum(reparam_forward(mu_e1, lv_e1, eps_e1)[0] * dz_e1))   # noqa: E731
errs_e1 = [check_grad(L_e1, mu_e1, dmu_e1), check_grad(L_e1, lv_e1, dlv_e1)]
lib_e1 = Reparameterize(rng=0)
lib_e1.forward(mu_e1, lv_e1, eps_e1)
dmu_lib_e1, dlv_lib_e1 = lib_e1.backward(dz_e1)
print("relative errors against central differences (mu, logvar):", [f"{e:.1e}" for e in errs_e1])
assert max(errs_e1) < 1e-7
assert rel_error(dmu_e1, dmu_lib_e1) < 1e-12 and rel_error(dlv_e1, dlv_lib_e1) < 1e-12

# %% [markdown]
# **Exercise 2. The KL and its gradient.** Write `kl_and_grad(mu, logvar)` returning the KL of
# each row to $\mathcal N(0, I)$, shape (N,), and its gradients $d\mu$, $d\,\text{logvar}$
# (each (N, Z)) from section 4, *without* calling `losses.gaussian_kl`. The check compares the
# gradients with central differences of the summed KL and everything with the library.

# %% tags=["exercise"]
def kl_and_grad(mu, logvar):
    """mu, logvar (N, Z) -> kl (N,), (dmu (N, Z), dlogvar (N, Z))."""
    kl = np.zeros(mu.shape[0])                   # your code: replace these three lines
    dmu = np.zeros_like(mu)
    dlogvar = np.zeros_like(logvar)
    return kl, (dmu, dlogvar)

# %% tags=["solution"]
# Solution. KL = sum_j 0.5 (mu_j^2 + e^{v_j} - 1 - v_j); d/dmu = mu; d/dv = 0.5 (e^v - 1).
def kl_and_grad(mu, logvar):
    """mu, logvar (N, Z) -> kl (N,), (dmu (N, Z), dlogvar (N, Z))."""
    var = np.exp(logvar)
    return 0.5 * (mu ** 2 + var - 1 - logvar).sum(axis=1), (mu.copy(), 0.5 * (var - 1))

# %%
r2 = np.random.default_rng(31)
mu_e2, lv_e2 = r2.standard_normal((3, 4)), r2.standard_normal((3, 4))
kl_e2, (dmu_e2, dlv_e2) = kl_and_grad(mu_e2, lv_e2)
L_e2 = lambda: float(kl_and_grad(mu_e2, lv_e2)[0].sum())                         # noqa: E731
errs_e2 = [check_grad(L_e2, mu_e2, dmu_e2), check_grad(L_e2, lv_e2, dlv_e2)]
kl_lib_e2, (dmu_lib_e2, dlv_lib_e2) = losses.gaussian_kl(mu_e2, lv_e2)
print("relative errors against central differences (mu, logvar):", [f"{e:.1e}" for e in errs_e2])
assert max(errs_e2) < 1e-7
assert rel_error(kl_e2, kl_lib_e2) < 1e-12
assert rel_error(dmu_e2, dmu_lib_e2) < 1e-12 and rel_error(dlv_e2, dlv_lib_e2) < 1e-12

# %% [markdown]
# **Exercise 3. Estimate $\nabla_{\mu,\,v}\, \mathbb{E}[\sin z]$ with the reparameterization
# trick.** For $z \sim \mathcal N(\mu, e^{v})$, $\mathbb{E}[\sin z] = \sin(\mu)\, e^{-\sigma^2/2}$
# (the imaginary part of the characteristic function $\mathbb{E}[e^{iz}] = e^{i\mu - \sigma^2/2}$).
# Differentiate it by hand, then estimate both derivatives with `Reparameterize.forward` and
# `.backward` (upstream gradient $f'(z) = \cos z$); the check wants the estimates within 4
# standard errors of your answers.

# %% tags=["exercise"]
mu_e, v_e, n_e = 0.7, -0.5, N_MC
exact_sin = {"mu": None, "logvar": None}         # your code: the two derivatives, by hand
per_sample = {"mu": None, "logvar": None}        # your code: (n_e, 1) pathwise estimates each

# %% tags=["solution"]
# Solution. With sigma^2 = e^v:  d/dmu = cos(mu) e^{-sigma^2/2},
#           d/dv = sin(mu) e^{-sigma^2/2} * (-sigma^2 / 2)     (chain rule through e^v).
mu_e, v_e, n_e = 0.7, -0.5, N_MC
s2 = np.exp(v_e)
exact_sin = {"mu": np.cos(mu_e) * np.exp(-s2 / 2),
             "logvar": -0.5 * s2 * np.sin(mu_e) * np.exp(-s2 / 2)}
layer = Reparameterize(rng=123)
z = layer.forward(np.full((n_e, 1), mu_e), np.full((n_e, 1), v_e))
per_sample = dict(zip(("mu", "logvar"), layer.backward(np.cos(z))))   # (n, 1) each

# %%
for param, g in per_sample.items():
    se = g.std(ddof=1) / np.sqrt(n_e)
    print(f"d/d{param}: exact {exact_sin[param]:+.5f}, estimate {g.mean():+.5f} +- {se:.5f}")
    assert abs(g.mean() - exact_sin[param]) < 4 * se

# %% [markdown]
# ## Summary
#
# * A sample from `rng.normal(mu, sigma)` has no gradient; $z = \mu + \sigma \odot \varepsilon$
#   with $\varepsilon$ drawn first has one: $\partial z/\partial\mu = 1$,
#   $\partial z/\partial\,\text{logvar} = \tfrac12\sigma\varepsilon$ (log-**variance**).
# * Both the pathwise and the score-function estimators are unbiased. The pathwise one, which
#   uses $f'$, had far lower variance here, as it usually does for smooth $f$ (not always: a
#   fast-wiggling $f$ turns it round). That is why VAEs can train with one sample per example.
# * $\mathrm{KL}(\mathcal N(\mu, e^{v})\,\|\,\mathcal N(0,1)) = \tfrac12(\mu^2 + e^{v} - 1 - v)$,
#   with gradients $\mu$ and $\tfrac12(e^{v} - 1)$: no sampling needed.
# * A gradient check, of one layer or of the whole model, catches a backward that disagrees
#   with its forward. It cannot catch two pieces that read a convention differently, each
#   consistently: check the sampler's variance against $e^{\text{logvar}}$ and the KL against
#   the sampler's own draws.
#
# Lesson 6 assembles encoder, sampler, decoder and this loss into a VAE and trains it.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Kingma & Welling 2014 and Rezende et al. 2014
# for the reparameterization; Williams 1992 for REINFORCE; Mohamed et al. 2020 for a survey of
# Monte-Carlo gradient estimators, and when each has the lower variance.
