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
# # Lesson 8: $\beta$-VAE and disentanglement
#
# In lesson 6, $\beta$ appeared as a bug: a loss convention that multiplied the KL by 784
# switched the code off. Here we turn the knob on purpose. The $\beta$-VAE (Higgins et al.
# 2017) trains with
#
# $$L_\beta(x) = \underbrace{-\mathbb{E}_{q(z|x)}\big[\log p(x\mid z)\big]}_{\text{distortion } \mathcal D}
#   \;+\; \beta\, \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big)}_{\text{rate } \mathcal R},$$
#
# and the hope is that a larger $\beta$ gives a **disentangled** code: each latent dimension
# following one independent factor of variation of the images, and nothing else.
#
# To measure that, we need images whose true factors we know. minivae's **sprites** are
# 32x32 binary images of a shape on a complete grid of five factors: shape (3), scale (5),
# orientation (8), horizontal and vertical position (8 each), 7,680 images in all.
#
# You will see:
#
# 1. the data and a sweep of VAEs over $\beta$;
# 2. the **rate–distortion** trade-off the sweep traces, and why its slope is $-\beta$;
# 3. latent **traversals**: what each latent dimension draws;
# 4. the KL term split into **index-code mutual information**, **total correlation** and
#    **dimension-wise KL**, estimated on minibatches, and the estimator checked on codes whose
#    three parts are known;
# 5. a **disentanglement score** against the true factors, the mutual information gap (MIG),
#    over several training seeds, with error bars.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from minivae import data, figures
from minivae.evaluate import (evaluate, kl_decomposition, mutual_info_matrix,
                              mutual_information_gap)
from minivae.models import VAE
from minivae.optim import Adam
from minivae.train import fit

FAST = os.environ.get("MINIVAE_FAST") == "1"   # small and quick (the tests); full size otherwise
BETAS = (0.5, 8.0) if FAST else (0.5, 1.0, 4.0, 8.0)   # the sweep
EPOCHS = 4 if FAST else 30                     # passes over the 6,912 training images, per beta
Z = 10                                         # latent dimensions: twice the number of factors
HIDDEN = (256,)                                # one hidden layer of 256 ReLU units each way
BATCH, LR = 64, 1e-3                           # minibatch size, Adam's step size
M = 500 if FAST else 1_000                     # minibatch size for the KL decomposition
SEEDS = (0, 1, 2)                              # training runs per beta: the MIG varies by seed
f64 = np.float64

train_set, test_set = data.load("sprites", "train"), data.load("sprites", "test")
x, factors = train_set.x, train_set.factors                  # (6912, 1024), (6912, 5)
N, SHAPE, NAMES = len(x), train_set.image_shape, train_set.factor_names
print(train_set)
print("values of each factor:", {n: np.unique(factors[:, k]).tolist() for k, n in enumerate(NAMES)})
figures.plot_images(x[np.random.default_rng(0).choice(N, 32, replace=False)], SHAPE, nrow=16,
                    title="32 training sprites")
plt.show()

# %% [markdown]
# **Check:** train and test together hold every combination of the five factors exactly once
# (so the factors are independent and uniform, the setting the disentanglement literature
# assumes), and the test set is a tenth of it.

# %%
all_factors = np.concatenate([factors, test_set.factors])
levels = [np.unique(all_factors[:, k]) for k in range(5)]
index = np.stack([np.searchsorted(levels[k], all_factors[:, k]) for k in range(5)], axis=1)
flat = np.ravel_multi_index(index.T, [len(v) for v in levels])
assert [len(v) for v in levels] == [3, 5, 8, 8, 8]
assert len(flat) == 3 * 5 * 8 * 8 * 8 and len(np.unique(flat)) == len(flat)
assert len(test_set.x) == round(0.1 * len(flat))

# %% [markdown]
# ## 1. A sweep over $\beta$
#
# The same VAE (Bernoulli decoder: the pixels are 0 or 1), trained for each $\beta$ by
# `minivae.train.fit`, the loop of lesson 6. The library's `VAE(beta=...)` multiplies the
# per-example KL by $\beta$ inside its loss (and its gradient); nothing else changes. Each
# $\beta$ is trained three times, from three random initialisations and shuffles, because
# section 5's score varies a lot from one run to the next; sections 2 to 4 look at the first
# run of each.

# %%
models, results = {}, {}
tc_batch = np.random.default_rng(4).choice(N, M, replace=False)   # images for section 4's split
for beta in BETAS:
    results[beta] = {"migs": [], "tcs": []}
    for seed in SEEDS:                                          # the same VAE, other random draws
        vae = VAE(x.shape[1], hidden=HIDDEN, z_dim=Z, beta=beta, rng=10 * seed)
        fit(vae, x, Adam(vae.params, lr=LR), EPOCHS, BATCH, rng=10 * seed + 1)   # Adam, minibatches
        mu = vae.encode(x)[0].astype(f64)                       # (N, Z) the codes
        results[beta]["migs"].append(mutual_information_gap(mu, factors))
        mu_b, logvar_b = (a.astype(f64) for a in vae.encode(x[tc_batch]))
        results[beta]["tcs"].append(kl_decomposition(mu_b, logvar_b, rng=np.random.default_rng(5),
                                                     dataset_size=N)["total_correlation"])
        if seed == SEEDS[0]:                                    # the model the sections look at
            ev = evaluate(vae, x, rng=np.random.default_rng(2))   # recon and KL, training set
            models[beta] = vae
            results[beta].update(recon=ev["recon"], kl=ev["kl"], active=ev["active_units"],
                                 kl_per_dim=np.array(ev["kl_per_dim"]))
    print(f"beta {beta:3}: distortion (recon) {results[beta]['recon']:6.1f}  rate (KL) "
          f"{results[beta]['kl']:5.2f}  active units {results[beta]['active']:2d}/{Z}   (seed "
          f"{SEEDS[0]}; {len(SEEDS)} seeds trained)")

# %% [markdown]
# ## 2. Rate and distortion
#
# For each $\beta$, training minimises $\mathcal D + \beta \mathcal R$ (averaged over the data).
# Plot every model at its $(\mathcal R, \mathcal D)$: the best achievable pairs form a decreasing
# curve, the **rate–distortion curve** of this architecture (Alemi et al. 2018, "Fixing a broken
# ELBO"). Minimising $\mathcal D + \beta \mathcal R$ picks the point of that curve where a line of
# slope $-\beta$ touches it: there $d\mathcal D / d\mathcal R = -\beta$, so one more nat of rate
# *lowers* the distortion by $\beta$ nats, and one nat less raises it by $\beta$.
#
# It follows that a larger $\beta$ can only lower the rate and raise the distortion.
# **Derivation:** if models $i$ and $j$ minimise their objectives,
# $\mathcal D_i + \beta_i \mathcal R_i \le \mathcal D_j + \beta_i \mathcal R_j$ and
# $\mathcal D_j + \beta_j \mathcal R_j \le \mathcal D_i + \beta_j \mathcal R_i$. Adding the two,
# $(\beta_j - \beta_i)(\mathcal R_j - \mathcal R_i) \le 0$: with $\beta_j > \beta_i$,
# $\mathcal R_j \le \mathcal R_i$, and then either inequality gives $\mathcal D_j \ge \mathcal D_i$.
# Solving each inequality for $\mathcal D_j - \mathcal D_i$ instead and dividing by
# $\mathcal R_j - \mathcal R_i < 0$, the slope of the chord between the two models lies between
# minus their betas:
#
# $$-\beta_j \;\le\; \frac{\mathcal D_j - \mathcal D_i}{\mathcal R_j - \mathcal R_i} \;\le\; -\beta_i .$$
#
# **Check:** rate falls and distortion rises along the sweep, and every chord slope is negative
# and lies between minus its two betas. Training only approximately minimises, so we allow the
# slopes a factor of 1.5 of slack on either side (they usually need none).

# %%
rate = np.array([results[b]["kl"] for b in BETAS])
distortion = np.array([results[b]["recon"] for b in BETAS])
fig, ax = plt.subplots(figsize=(6, 4.3))
ax.plot(rate, distortion, "o-")
for b, r, d in zip(BETAS, rate, distortion):
    ax.annotate(f"beta = {b:g}", (r, d), textcoords="offset points", xytext=(6, 4))
ax.set(xlabel="rate = mean KL (nats)", ylabel="distortion = mean -log p(x|z) (nats)",
       title="the rate-distortion trade-off of the beta sweep")
ax.grid(alpha=0.3)
plt.show()
slopes = np.diff(distortion) / np.diff(rate)                        # dD/dR, one per neighbours
for b_i, b_j, slope in zip(BETAS[:-1], BETAS[1:], slopes):
    print(f"beta {b_i:g} -> {b_j:g}: chord slope dD/dR = {slope:.2f}  (between {-b_j:g} and {-b_i:g})")

# %%
assert np.all(np.diff(rate) < 0), "the rate should fall as beta grows"
assert np.all(np.diff(distortion) > 0), "the distortion should rise as beta grows"
assert np.all(slopes < 0)                                          # dD/dR = -beta: negative
assert np.all(slopes >= -1.5 * np.array(BETAS[1:])) and np.all(slopes <= -np.array(BETAS[:-1]) / 1.5)

# %% [markdown]
# ## 3. Traversals
#
# What does each latent dimension draw? Encode one image, then move a single coordinate of
# its code from $-3$ to $3$ with the others held, and decode (`figures.plot_traversals`).
# Rows are ordered by the KL of their dimension, most informative first. In a disentangled
# code each row changes one factor: position left-right, or up-down, or size. Rows of a
# dimension with no KL change nothing.

# %%
centre = (factors[:, 0] == 1) & (factors[:, 1] == 0.8) & (factors[:, 3] == 15) & (factors[:, 4] == 17)
example = x[np.flatnonzero(centre)[0]]                # an ellipse of middle size, near the centre
for beta in (BETAS[0], BETAS[-1]):
    order = np.argsort(-results[beta]["kl_per_dim"])
    figures.plot_traversals(models[beta], SHAPE, x=example, dims=order, steps=9)
    plt.gcf().suptitle(f"beta = {beta:g}", x=0.02, ha="left")
    plt.show()

# %% [markdown]
# ## 4. Which part of the KL does $\beta$ squeeze?
#
# Averaged over the data, the KL term splits into three parts (Hoffman & Johnson 2016;
# Chen et al. 2018). Write $q(x, z) = p_{\text{data}}(x)\, q(z\mid x)$, its marginal
# $q(z) = \mathbb{E}_x q(z \mid x)$ (the aggregate posterior of lesson 7) and the marginals
# $q(z_j)$ of single coordinates. Multiply and divide inside the logarithm:
#
# $$\mathbb{E}_x\,\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)
#   = \mathbb{E}_{q(x,z)}\Big[\log \frac{q(z\mid x)}{q(z)}
#   + \log \frac{q(z)}{\prod_j q(z_j)} + \log \frac{\prod_j q(z_j)}{\prod_j p(z_j)}\Big]$$
#
# (the product of the prior's coordinates is the prior). The three expectations are
#
# * $I(x; z)$, the **index-code mutual information**: how much the code says about which image
#   it came from. It is at most $\log N$ for $N$ images.
# * $\mathrm{KL}\big(q(z)\,\|\,\prod_j q(z_j)\big)$, the **total correlation**: how far the
#   code's coordinates are from independent. A disentangled code of independent factors has 0.
# * $\sum_j \mathrm{KL}\big(q(z_j)\,\|\,p(z_j)\big)$, the **dimension-wise KL**: how far each
#   coordinate's marginal is from $\mathcal N(0, 1)$.
#
# Penalising all three with one $\beta$ squeezes the information $I(x;z)$ too, which is why
# distortion rises. The $\beta$-TCVAE (Chen et al.) puts its weight on the total correlation
# only.
#
# **Estimating them.** $\log q(z)$ needs a sum over all $N$ images. On a minibatch of $M$ images,
# `minivae.evaluate.kl_decomposition` scores $z_i \sim q(z \mid x_i)$ with the image that drew
# it (weight $1/N$) and the $M - 1$ others standing in for the remaining $N - 1$:
#
# $$q(z_i) \approx \frac1N\, q(z_i\mid x_i) + \frac{N - 1}{N(M - 1)} \sum_{j \ne i} q(z_i\mid x_j),$$
#
# and the same for each coordinate. The three estimates telescope: their sum is exactly the
# sampled KL, $\frac1M \sum_i \log q(z_i\mid x_i) - \log p(z_i)$, itself an estimate of the
# analytic KL. And since $q(z_i) \ge \frac1N q(z_i \mid x_i)$, the estimate of $I(x;z)$ can
# never exceed $\log N$.
#
# **Check the estimator first**, on codes whose answer we know. If every $q(z\mid x)$ is a
# needle ($\sigma \to 0$) at a distinct place, the code identifies the image: $I(x;z) = \log N$.
# If every $q(z\mid x)$ is the prior itself, all three terms are 0.

# %%
rng = np.random.default_rng(3)
needles = kl_decomposition(rng.standard_normal((M, Z)), np.full((M, Z), -30.0), rng=rng,
                           dataset_size=N)
priors = kl_decomposition(np.zeros((M, Z)), np.zeros((M, Z)), rng=rng, dataset_size=N)
print(f"needles: I(x;z) = {needles['mutual_information']:.4f}, log N = {np.log(N):.4f};  "
      f"prior: {priors['mutual_information']:.1e}, {priors['total_correlation']:.1e}, "
      f"{priors['dimwise_kl']:.1e}")
assert abs(needles["mutual_information"] - np.log(N)) < 1e-6
assert max(abs(priors[k]) for k in ("mutual_information", "total_correlation", "dimwise_kl")) < 1e-9

# %% [markdown]
# Those two ends are checks by construction: the total correlation is 0 in both. A check that
# can fail needs codes with a known, non-zero total correlation. Take Gaussian codes: means
# $\mu(x) \sim \mathcal N(0, A)$ with correlated coordinates and a fixed noise
# $\sigma^2 I$. Over many images the aggregate posterior tends to the Gaussian
# $\mathcal N(0, C)$, $C = A + \sigma^2 I$, whose three parts have closed forms:
#
# $$\mathrm{TC} = \tfrac12\Big(\sum_j \log C_{jj} - \log\det C\Big), \qquad
#   \text{dim-wise KL} = \tfrac12 \sum_j \big(C_{jj} - 1 - \log C_{jj}\big), \qquad
#   I(x; z) = \tfrac12 \log \frac{\det C}{\sigma^{2Z}}$$
#
# (the last is the information of a Gaussian channel, $z = \mu + \sigma\varepsilon$). The
# estimator sees $M$ codes, a mixture of $M$ Gaussian bumps rather than the Gaussian itself, so
# it is allowed 0.03 nats for that, besides 4 standard errors over five independent draws.
# **Check**, with three correlated coordinates.

# %%
A_corr = 1.2 * np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]])   # Cov of mu
noise_var = 0.3                                                   # sigma^2 of every q(z|x)
C_agg = A_corr + noise_var * np.eye(3)                            # the aggregate's covariance
known = {"total_correlation": 0.5 * (np.log(np.diag(C_agg)).sum() - np.linalg.slogdet(C_agg)[1]),
         "dimwise_kl": 0.5 * np.sum(np.diag(C_agg) - 1 - np.log(np.diag(C_agg))),
         "mutual_information": 0.5 * (np.linalg.slogdet(C_agg)[1] - 3 * np.log(noise_var))}
draws = {k: [] for k in known}
for seed in range(5):
    r = np.random.default_rng(100 + seed)
    mu_g = r.multivariate_normal(np.zeros(3), A_corr, size=2000)  # (M, 3) correlated means
    est = kl_decomposition(mu_g, np.full_like(mu_g, np.log(noise_var)), rng=r)
    for k in known:
        draws[k].append(est[k])
for k, v in known.items():
    m_, se_ = np.mean(draws[k]), np.std(draws[k], ddof=1) / np.sqrt(len(draws[k]))
    print(f"{k:20s} estimate {m_:.4f} +- {se_:.4f}   known {v:.4f}")
    assert abs(m_ - v) < 4 * se_ + 0.03, k
assert known["total_correlation"] > 0.3                           # far from 0: the check bites

# %% [markdown]
# Now the trained models, each on the same random minibatch of $M$ training images.

# %%
batch = tc_batch                                        # the images of section 1's TC
parts = ("mutual_information", "total_correlation", "dimwise_kl")
for beta in BETAS:
    mu, logvar = (a.astype(f64) for a in models[beta].encode(x[batch]))
    results[beta]["dec"] = kl_decomposition(mu, logvar, rng=np.random.default_rng(5), dataset_size=N)
    d = results[beta]["dec"]
    print(f"beta {beta:3}: KL {d['kl']:5.2f} (sampled {d['kl_sampled']:5.2f}) = MI "
          f"{d['mutual_information']:5.2f} + TC {d['total_correlation']:5.2f} "
          f"+ dim-wise {d['dimwise_kl']:5.2f}")

fig, ax = plt.subplots(figsize=(6, 4))
bottom = np.zeros(len(BETAS))
for part, label in zip(parts, ("index-code MI", "total correlation", "dimension-wise KL")):
    heights = np.array([results[b]["dec"][part] for b in BETAS])
    ax.bar([f"{b:g}" for b in BETAS], heights, bottom=bottom, label=label)
    bottom += heights
ax.set(xlabel="beta", ylabel="nats", title=f"the average KL, split (minibatch of {M})")
ax.legend()
plt.show()

# %% [markdown]
# **Check:** for every model the three parts sum to the sampled KL (to rounding), the sampled
# KL is close to the analytic one, and the information term respects its bound $\log N$.

# %%
for beta in BETAS:
    d = results[beta]["dec"]
    assert abs(sum(d[p] for p in parts) - d["kl_sampled"]) < 1e-9
    assert abs(d["kl_sampled"] - d["kl"]) < 0.1 * d["kl"] + 0.2
    assert d["mutual_information"] <= np.log(N) + 1e-9

# %% [markdown]
# **When the information term sits at its ceiling.** For the smallest $\beta$ the estimate of
# $I(x; z)$ is within a few percent of $\log N$: the code tells almost every one of the
# $N$ training images apart. $I(x;z)$ cannot exceed $\log N$ for $N$ equally likely images, and
# the minibatch estimate cannot either, by construction. So there the term is saturated: it no
# longer grows with the rate, whatever else the code learns, and the rate the model pays
# beyond it shows up as total correlation and dimension-wise KL. Near the ceiling, read the MI
# as "the code identifies the image", not as a measure of how much more it could carry.
# **Check:** the smallest $\beta$'s MI is above 90% of $\log N$; the largest $\beta$'s is well
# below it.

# %%
mi_share = {b: float(results[b]["dec"]["mutual_information"] / np.log(N)) for b in BETAS}
print("I(x; z) / log N by beta:", {b: round(v, 3) for b, v in mi_share.items()})
assert mi_share[BETAS[0]] > 0.9 and mi_share[BETAS[-1]] < 0.8

# %% [markdown]
# ## 5. A disentanglement score: the mutual information gap
#
# For each true factor $v_i$, measure the mutual information $I(z_j; v_i)$ between it and every
# latent coordinate (here: the encoder means, cut into 20 bins). A disentangled code puts each
# factor into **one** coordinate: the best coordinate knows a lot, the second best little. The
# MIG (Chen et al. 2018) averages that gap, normalised by the factor's entropy:
#
# $$\mathrm{MIG} = \frac1F \sum_{i=1}^F \frac{I(z_{a_i}; v_i) - I(z_{b_i}; v_i)}{\mathbb{H}(v_i)},$$
#
# with $F = 5$ factors, and $a_i$, $b_i$ the best and second-best coordinates for $v_i$. It lies
# in $[0, 1]$.
# **Check** the two ends with made-up codes: the factors themselves (plus unrelated noise
# coordinates) score 1; every factor copied into two coordinates scores 0.

# %%
noise = np.random.default_rng(6).standard_normal((N, 5))
mig_perfect = mutual_information_gap(np.hstack([factors, noise]), factors)
mig_doubled = mutual_information_gap(np.hstack([factors, factors]), factors)
print(f"MIG of the factors themselves: {mig_perfect:.3f};  of the factors twice: {mig_doubled:.3f}")
assert mig_perfect > 0.9 and abs(mig_doubled) < 1e-12

# %% [markdown]
# The sweep: the MIG of each of the three runs of each $\beta$, their mean and its standard
# error (the standard deviation over runs divided by $\sqrt 3$); then the matrix of normalised
# mutual informations $I(z_j; v_i)/\mathbb{H}(v_i)$ for the first run of the smallest and the
# largest $\beta$ (rows: latent coordinates by KL, most informative first).

# %%
mig_mean = {b: float(np.mean(results[b]["migs"])) for b in BETAS}
mig_se = {b: float(np.std(results[b]["migs"], ddof=1) / np.sqrt(len(SEEDS))) for b in BETAS}
for beta in BETAS:
    print(f"beta {beta:3}: MIG {mig_mean[beta]:.3f} +- {mig_se[beta]:.3f}   runs "
          f"{np.round(results[beta]['migs'], 3)};  total correlation by run "
          f"{np.round(results[beta]['tcs'], 2)}")
fig, (ax0, *axes) = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1, 1]})
ax0.errorbar(range(len(BETAS)), [mig_mean[b] for b in BETAS], yerr=[2 * mig_se[b] for b in BETAS],
             fmt="o", capsize=4, label="mean +- 2 s.e.")
for i, b in enumerate(BETAS):
    ax0.plot([i] * len(SEEDS), results[b]["migs"], ".", color="0.5")
ax0.set(xticks=range(len(BETAS)), xticklabels=[f"{b:g}" for b in BETAS], xlabel="beta",
        ylabel="MIG", title=f"MIG of {len(SEEDS)} runs per beta")
ax0.legend(fontsize=8)
for ax, beta in zip(axes, (BETAS[0], BETAS[-1])):
    order = np.argsort(-results[beta]["kl_per_dim"])
    mi, h = mutual_info_matrix(models[beta].encode(x)[0].astype(f64), factors)
    im = ax.imshow(mi[order] / h, vmin=0, vmax=1, cmap="viridis")
    ax.set(xticks=range(5), yticks=range(Z), yticklabels=[f"z{j}" for j in order],
           title=f"beta = {beta:g}, first run: MIG {results[beta]['migs'][0]:.3f}")
    ax.set_xticklabels(NAMES, rotation=45)
fig.colorbar(im, ax=axes, label="I(z_j; v_i) / H(v_i)")
plt.show()

# %% [markdown]
# What to take from it. The largest $\beta$ does one thing it is meant to, in every run: its
# code's coordinates are much closer to independent (its total correlation is a small fraction
# of the smallest $\beta$'s). Its MIG, though, moves by less than the spread between runs: the
# first run alone can make it look higher or lower. The scores stay far from 1. The positions,
# the factors that move the most pixels, end up spread over one or two coordinates each;
# orientation and shape, details of a few pixels, are hardly encoded at all: at a high price per
# nat they are not worth their distortion. Independence is not yet alignment with the true
# factors. Published MIGs of $\beta$-VAEs on dSprites are of the same order (0.1 to 0.3), and
# vary a lot with the random seed (Locatello et al. 2019, "Challenging common assumptions in
# the unsupervised learning of disentangled representations"): compare methods over several
# seeds, with error bars, or not at all.
#
# **Check:** in every run the largest $\beta$'s total correlation is below a quarter of the
# smallest $\beta$'s; every MIG is small; and the difference between the two betas' mean MIGs
# is within 3 standard errors (not significant with three runs: at this training length the
# MIG does not tell them apart).

# %%
lo, hi = results[BETAS[0]], results[BETAS[-1]]
assert max(hi["tcs"]) < 0.25 * min(lo["tcs"])
assert all(0 <= m < 0.2 for b in BETAS for m in results[b]["migs"])
se_diff = np.hypot(mig_se[BETAS[0]], mig_se[BETAS[-1]])
assert abs(mig_mean[BETAS[-1]] - mig_mean[BETAS[0]]) < 3 * se_diff

# %% [markdown]
# ## Exercises
#
# Each exercise has a cell for your code, which starts as a stub, and a check cell that fails
# until your code is right. This file also holds a worked solution after each stub; the
# exercise version of the lesson, made by `python lessons/course.py versions`, leaves the
# solutions out (lessons/README.md, "Exercises").
#
# **Exercise 1. MIG by hand.** From `mutual_info_matrix` (the $I(z_j; v_i)$ matrix and the
# entropies $\mathbb{H}(v_i)$), compute the MIG of the largest-$\beta$ model yourself and compare.

# %% tags=["exercise"]
mi, h = mutual_info_matrix(models[BETAS[-1]].encode(x)[0].astype(f64), factors)
mig_by_hand = None                               # your code: the MIG from mi (Z, F) and h (F,)

# %% tags=["solution"]
# Solution.
mi, h = mutual_info_matrix(models[BETAS[-1]].encode(x)[0].astype(f64), factors)
top2 = np.sort(mi, axis=0)[-2:]                                     # (2, K) second best, best
mig_by_hand = float(np.mean((top2[1] - top2[0]) / h))

# %%
assert abs(mig_by_hand - results[BETAS[-1]]["migs"][0]) < 1e-12
print(f"MIG by hand {mig_by_hand:.4f}")

# %% [markdown]
# **Exercise 2. Find the horizontal position.** In the largest-$\beta$ model, take the latent
# coordinate that knows most about `pos_x`, traverse it from $-2.5$ to $2.5$ from the code of
# `example` (section 3), and measure where the decoded shape is: the horizontal centre of
# mass of the decoded image, $\sum_{ij} j\, p_{ij} / \sum_{ij} p_{ij}$. Check that it moves
# steadily one way, by several pixels.

# %% tags=["exercise"]
# Your code: j, the latent coordinate that knows most about pos_x in the largest-beta model,
# and centre_x (11,), the horizontal centre of mass (in pixels) of the 11 decoded images.
j = None
centre_x = None

# %% tags=["solution"]
# Solution.
vae = models[BETAS[-1]]
mi, h = mutual_info_matrix(vae.encode(x)[0].astype(f64), factors)
j = int(np.argmax(mi[:, NAMES.index("pos_x")]))                    # the pos_x coordinate
values = np.linspace(-2.5, 2.5, 11)
z = np.repeat(vae.encode(example[None])[0], len(values), axis=0)    # (11, Z) the example's code
z[:, j] = values
images = vae.decode(np.ascontiguousarray(z)).astype(f64).reshape(-1, *SHAPE)   # (11, 32, 32)
columns = np.arange(SHAPE[1])
centre_x = (images.sum(axis=1) * columns).sum(axis=1) / images.sum(axis=(1, 2))  # (11,) pixels
figures.plot_images(images.reshape(len(values), -1), SHAPE, nrow=len(values),
                    title=f"z{j} from -2.5 to 2.5")
plt.show()
print(f"z{j}: horizontal centre of mass", np.round(centre_x, 1))

# %%
steps = np.diff(centre_x)
assert np.all(steps > 0) or np.all(steps < 0)                      # it moves one way
assert abs(centre_x[-1] - centre_x[0]) > 4                         # by more than 4 pixels

# %% [markdown]
# ## Summary
#
# * $\beta$ sets the exchange rate between rate (KL) and distortion (reconstruction): the sweep
#   traces a rate–distortion curve, rate falling and distortion rising with $\beta$.
# * The average KL is index-code MI + total correlation + dimension-wise KL; the minibatch
#   estimates telescope to the sampled KL.
# * Disentanglement is measured against known factors (MIG), over several runs: one run's MIG
#   says little.
#
# **Read more** ([REFERENCES.md](REFERENCES.md)): Higgins et al. 2017 ($\beta$-VAE); Alemi et al.
# 2018 (rate and distortion); Hoffman & Johnson 2016 and Chen et al. 2018 (the KL split, the
# total correlation, the MIG); Locatello et al. 2019 (how much disentanglement scores vary).
