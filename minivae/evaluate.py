"""Numbers that describe a trained model: the ELBO and its two terms, an importance-sampled
log-likelihood, how the KL spreads over latent dimensions, and disentanglement measures.

    evaluate(vae, x)    nelbo = recon + kl (beta = 1, one sampled z), kl_per_dim, nll (IWAE),
                        active units, the variance law; for AE / PCA: recon and mse
    kl_decomposition    average KL = index-code MI + total correlation + dimension-wise KL
    mutual_information_gap   MIG between codes and known generating factors

Everything is in nats per example, averaged over the examples of x. Memory stays small:
x is processed ``batch_size`` rows at a time.
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.layers.reparameterize import sample

AU_THRESHOLD = 0.01          # Burda et al. (2015): a unit is active if Var_x(E_q[z|x]) > 0.01
LOG_2PI = np.log(2 * np.pi)


# ---- per-dimension helpers (used by evaluate and by the lessons) ----

def kl_per_dim(mu, logvar):
    """Mean over x of KL(q(z_j|x) || N(0, 1)) for each dimension j.   (N, Z) x2 -> (Z,).

        KL_j = mean_n 0.5 (mu_nj^2 + exp(logvar_nj) - 1 - logvar_nj);   sum_j KL_j = mean KL
    """
    mu, logvar = _pair(mu, logvar, "kl_per_dim")
    return (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(axis=0)


def variance_law(mu, logvar):
    """Variance of the aggregate posterior q(z) = mean_x q(z|x), per dimension.   -> (Z,).

        Var_q(z)[z_j] = E_x[sigma_j^2(x)] + Var_x[mu_j(x)]      (law of total variance)

    The first term is the average noise the encoder adds, the second how far the codes of
    different inputs spread. The KL term asks every q(z|x), hence their mixture q(z), to be
    close to the prior N(0, 1), whose variance is 1, so training pushes this sum towards 1
    in each dimension: an unused dimension has Var mu ~ 0 and sigma^2 ~ 1; a used one trades
    sigma^2 (small, precise codes) for Var mu (spread-out codes).
    """
    mu, logvar = _pair(mu, logvar, "variance_law")
    return np.exp(logvar).mean(axis=0) + mu.var(axis=0)


def active_units(mu, threshold=AU_THRESHOLD):
    """Number of dimensions j with Var_x(mu_j(x)) > threshold.   mu (N, Z) -> int.

    Cov_x(E_q[z|x]) on the diagonal (Burda et al. 2015): a unit whose mean code does not
    change with x carries no information about x, whatever its posterior variance.
    """
    check_array(mu, "active_units", ndim=2, name="mu")
    return int((mu.astype(np.float64).var(axis=0) > threshold).sum())


def _pair(mu, logvar, who):
    check_array(mu, who, ndim=2, name="mu")
    check_array(logvar, who, shape=mu.shape, name="logvar")
    return mu.astype(np.float64), logvar.astype(np.float64)


class _Moments:
    """Running mean and (population) variance per column, shifted for numerical stability."""

    def __init__(self):
        self.n, self.shift, self.s1, self.s2 = 0, None, 0.0, 0.0

    def add(self, a):                                          # a (B, Z) float64
        if self.shift is None:
            self.shift = a.mean(axis=0)
        d = a - self.shift
        self.n, self.s1, self.s2 = self.n + len(a), self.s1 + d.sum(0), self.s2 + (d ** 2).sum(0)

    def var(self):
        return self.s2 / self.n - (self.s1 / self.n) ** 2


# ---- whole-model evaluation ----

def is_variational(model):
    """True for models with a Gaussian q(z|x) and an IWAE bound (the VAE family)."""
    return hasattr(model, "iwae_bound") and hasattr(model, "z_dim")


def evaluate(model, x, *, iwae_k=0, rng=None, batch_size=500, iwae_max_floats=None,
             progress=None):
    """Evaluate ``model`` on x (N, D); returns a dict of JSON-able floats and lists.

    VAE (anything with ``iwae_bound``):
        nelbo        mean over x of recon + kl, beta = 1, one z = mu + sigma eps per example
        recon, kl    the two terms: mean -log p(x|z) and mean KL(q(z|x) || N(0, I))
        kl_per_dim   (Z,) the KL of each dimension, mean over x; it sums to kl
        nll          -mean IWAE bound with iwae_k samples (only when iwae_k > 0), <= nelbo
        nll_se       its standard error over the examples: std of the per-example bounds / sqrt(n)
        active_units, au_threshold, var_mu (Z,), mean_sigma2 (Z,),
        variance_law (Z,) = mean_sigma2 + var_mu (see ``variance_law``: training pushes it to 1)
        mse          mean squared error of decode(mu), summed over pixels
    Autoencoder, PCA, ...:
        recon        the model's own ``loss(x)`` convention, mean over x (mse if it has none);
                     a denoising autoencoder's loss on inputs corrupted with ``rng``
        mse          mean over x of sum_d (reconstruct(x) - x)^2
    Both: n, the number of examples.

    ``rng`` draws eps, the importance samples and a DAE's noise (default: the model's ``rng``).
    The layers' caches, and an autoencoder's ``model.last``, are overwritten.
    The IWAE pass decodes at most ``iwae_max_floats`` values at once (default: 64 MiB of
    them, about 0.4 GiB at peak with the decoder's activations), one ``iwae_bound`` call per
    such pass; ``progress(n)``, if given, is called after each batch, and after each IWAE
    pass, with the number of examples just finished (a progress bar's update).
    """
    x_dim = getattr(model, "x_dim", None)
    check_array(x, "evaluate", **({"shape": (None, x_dim)} if x_dim else {"ndim": 2}))
    batch_size = check_count(batch_size, "evaluate", "batch_size")
    iwae_k = check_count(iwae_k, "evaluate", "iwae_k", lo=0)
    if iwae_max_floats is not None:
        iwae_max_floats = check_count(iwae_max_floats, "evaluate", "iwae_max_floats")
    if progress is not None and not callable(progress):
        raise InputError(f"evaluate: expected progress to be a function of the number of "
                         f"examples done, or None, got {progress!r}")
    done = progress or (lambda n: None)
    dtype = np.dtype(getattr(model, "dtype", x.dtype))
    batches = (np.ascontiguousarray(x[s:s + batch_size], dtype=dtype)
               for s in range(0, len(x), batch_size))          # views when dtype matches
    rng = np.random.default_rng(getattr(model, "rng", None) if rng is None else rng)
    if not is_variational(model):
        return _evaluate_autoencoder(model, batches, rng, done)
    max_floats = iwae_max_floats or 2 ** 26 // dtype.itemsize
    sums = {"recon": 0.0, "kl": 0.0, "nelbo": 0.0, "mse": 0.0, "iwae": 0.0, "iwae2": 0.0}
    kl_dims, sigma2, moments = 0.0, 0.0, _Moments()
    for xb in batches:                                           # xb (B, D)
        mu, logvar = (np.array(a) for a in model.encode(xb))    # copies: (B, Z) x2
        eps = rng.standard_normal(mu.shape, dtype=dtype)         # (B, Z)
        recon, kl = _elbo_terms(model, xb, mu, logvar, eps)     # (B,) float64 x2
        sums["recon"] += recon.sum()
        sums["kl"] += kl.sum()
        sums["nelbo"] += (recon + kl).sum()                      # beta = 1, whatever model.beta
        sums["mse"] += losses.mse(model.decode(mu), xb)[0].astype(np.float64).sum()
        mu64, logvar64 = mu.astype(np.float64), logvar.astype(np.float64)
        kl_dims = kl_dims + kl_per_dim(mu64, logvar64) * len(xb)
        sigma2 = sigma2 + np.exp(logvar64).sum(axis=0)
        moments.add(mu64)
        if iwae_k == 0:
            done(len(xb))
        piece = max(1, max_floats // (iwae_k * xb.shape[1] or 1))   # examples per IWAE pass
        for s in range(0, len(xb) if iwae_k else 0, piece):
            xp = xb[s:s + piece]                                     # (b, D)
            bound = model.iwae_bound(xp, iwae_k, rng=rng, max_floats=max_floats)   # (b,)
            sums["iwae"] += bound.sum()
            sums["iwae2"] += (bound ** 2).sum()
            done(len(xp))
    n = len(x)
    var_mu, mean_sigma2 = moments.var(), sigma2 / n
    out = {k: float(v / n) for k, v in sums.items() if k not in ("iwae", "iwae2")}
    out.update(kl_per_dim=_floats(kl_dims / n), var_mu=_floats(var_mu),
               mean_sigma2=_floats(mean_sigma2), variance_law=_floats(mean_sigma2 + var_mu),
               active_units=int((var_mu > AU_THRESHOLD).sum()), au_threshold=AU_THRESHOLD, n=n)
    if iwae_k > 0:
        spread = max(0.0, sums["iwae2"] / n - (sums["iwae"] / n) ** 2) * n / max(1, n - 1)
        out.update(nll=float(-sums["iwae"] / n), nll_se=float(np.sqrt(spread / n)),
                   iwae_k=iwae_k)
    return out


def _elbo_terms(model, x, mu, logvar, eps):
    """-log p(x|z) and KL(q(z|x) || N(0, I)) per example, for one z = mu + std eps: the
    terms of the ELBO, whatever objective the model trains on.   -> (B,) float64 x2."""
    z, _ = sample(mu, logvar, eps)                               # (B, Z)
    recon = model.recon_nll(model.decoder.forward(z), x)[0]      # (B,)
    kl = losses.gaussian_kl(mu, logvar)[0]                       # (B,)
    return recon.astype(np.float64), kl.astype(np.float64)


def _evaluate_autoencoder(model, batches, rng, done):
    recon = mse = 0.0
    n = 0
    has_loss = callable(getattr(model, "loss", None))
    for xb in batches:
        e = losses.mse(model.reconstruct(xb), xb)[0].astype(np.float64).sum()
        mse, n = mse + e, n + len(xb)
        if not has_loss:
            recon += e
        elif hasattr(model, "corrupt"):                              # denoising: noise from rng
            recon += float(model.loss(xb, model.corrupt(xb, rng))) * len(xb)
        else:
            recon += float(model.loss(xb)) * len(xb)                 # loss is a batch mean
        done(len(xb))
    return {"recon": float(recon / n), "mse": float(mse / n), "n": n}


def _floats(a):
    return [float(v) for v in a]


# ---- the KL decomposition (beta-TCVAE) ----

def _logsumexp_rows(a):
    """log sum_j exp(a_ij) for each row i of a (M, M); overwrites a."""
    m = a.max(axis=1, keepdims=True)                              # (M, 1)
    a -= m
    np.exp(a, out=a)
    return m[:, 0] + np.log(a.sum(axis=1))                         # (M,)


def kl_decomposition(mu, logvar, z=None, rng=None, dataset_size=None):
    """Split the average KL into three parts, estimated on one minibatch.   mu, logvar (M, Z).

        E_x KL(q(z|x) || p(z))  =  I(x; z)                          index-code mutual information
                                 + KL(q(z) || prod_j q(z_j))        total correlation
                                 + sum_j KL(q(z_j) || p(z_j))       dimension-wise KL

    with q(z) = mean_x q(z|x) the aggregate posterior (Chen et al. 2018, "Isolating sources
    of disentanglement in VAEs"). Each term is an expectation over z_i ~ q(z|x_i) (one z per
    row, drawn with ``rng`` unless ``z`` (M, Z) is given). log q(z_i) and log q(z_ij) need a
    sum over the whole data set; minibatch-weighted sampling replaces it by the batch:

        q(z_i) ~ w_self q(z_i|x_i) + w_other sum_{j != i} q(z_i|x_j),
        w_self = 1/N,  w_other = (N - 1) / (N (M - 1))      (N = dataset_size, default M)

    The example that drew z_i counts once, the M - 1 others stand for the remaining N - 1
    examples. (Chen et al. print log (1/(NM)) sum_j q(z_i|x_j); that differs from this by a
    constant per log-density, harmless for gradients but not for values: it would report a
    total correlation of about (Z - 1) log N for independent codes.) With N = M this is the
    batch's own aggregate posterior, mean_j q(z|x_j).

    The three terms telescope, so their sum is exactly the sampled KL, mean_i log q(z_i|x_i)
    - log p(z_i), an estimate of the analytic average KL (returned as "kl").
    Memory: a few (M, M) float64 arrays; M of a few thousand is fine.
    """
    mu, logvar = _pair(mu, logvar, "kl_decomposition")
    M, Z = mu.shape
    if M < 2:
        raise InputError(f"kl_decomposition: need a batch of at least 2 examples, got {M}")
    N = M if dataset_size is None else int(dataset_size)
    if N < M:
        raise InputError(f"kl_decomposition: dataset_size ({N}) is smaller than the batch ({M})")
    if z is None:
        z = mu + np.exp(0.5 * logvar) * np.random.default_rng(rng).standard_normal(mu.shape)
    else:
        check_array(z, "kl_decomposition", shape=mu.shape, name="z")
        z = z.astype(np.float64)
    log_w = np.full((M, M), np.log(N - 1) - np.log(N) - np.log(M - 1))
    np.fill_diagonal(log_w, -np.log(N))                         # (M, M): row i scores z_i
    inv_var, log_norm = np.exp(-logvar), -0.5 * (LOG_2PI + logvar)   # (M, Z) x2
    log_q_joint = np.zeros((M, M))                               # log q(z_i | x_j)
    log_q_dims = np.empty((M, Z))                                # log q(z_ij), each dim alone
    for d in range(Z):
        lq = np.subtract.outer(z[:, d], mu[:, d])                # (M, M): z_id - mu_jd
        np.square(lq, out=lq)
        lq *= -0.5 * inv_var[:, d]
        lq += log_norm[:, d]                                     # log N(z_id | mu_jd, var_jd)
        log_q_joint += lq
        lq += log_w
        log_q_dims[:, d] = _logsumexp_rows(lq)
    log_qzx = np.diag(log_q_joint).copy()                        # (M,) log q(z_i | x_i)
    log_q_joint += log_w
    log_qz = _logsumexp_rows(log_q_joint)                        # (M,)
    log_pz = -0.5 * (LOG_2PI + z ** 2).sum(axis=1)               # (M,)
    dims = (log_q_dims + 0.5 * (LOG_2PI + z ** 2)).mean(axis=0)  # (Z,) KL(q(z_j) || p(z_j))
    mi = float((log_qzx - log_qz).mean())
    tc = float((log_qz - log_q_dims.sum(axis=1)).mean())
    return {"mutual_information": mi, "total_correlation": tc,
            "dimwise_kl": float(dims.sum()), "dimwise_kl_per_dim": _floats(dims),
            "kl_sampled": float((log_qzx - log_pz).mean()),
            "kl": float(kl_per_dim(mu, logvar).sum()), "batch_size": M, "dataset_size": N}


# ---- the mutual information gap ----

def _discrete_entropy(labels):
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _discrete_mi(a, b):
    """I(a; b) in nats for two arrays of class indices (N,), from their contingency table."""
    nb = b.max() + 1
    joint = np.bincount(a * nb + b, minlength=(a.max() + 1) * nb).reshape(-1, nb) / len(a)
    indep = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)   # p(a) p(b)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / indep[nz])).sum())


def mutual_info_matrix(codes, factors, n_bins=20):
    """I(code_j; factor_k) (Z, F) and H(factor_k) (F,), in nats.

    Each code column is cut into ``n_bins`` equal-width bins over its range; each factor
    is treated as discrete (every distinct value a class), as for dSprites-like data.
    """
    check_array(codes, "mutual_info_matrix", ndim=2, name="codes")
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != len(codes):
        raise InputError(f"mutual_info_matrix: expected factors of shape ({len(codes)}, F), "
                         f"got {factors.shape}")
    if int(n_bins) < 2:
        raise InputError(f"mutual_info_matrix: n_bins must be >= 2, got {n_bins}")
    binned = [np.digitize(c, np.histogram_bin_edges(c, int(n_bins))[1:-1]) for c in codes.T]
    classes = [np.unique(f, return_inverse=True)[1].ravel() for f in factors.T]
    mi = np.array([[_discrete_mi(c, f) for f in classes] for c in binned])   # (Z, F)
    return mi, np.array([_discrete_entropy(f) for f in classes])             # (F,)


def mutual_information_gap(codes, factors, n_bins=20):
    """MIG (Chen et al. 2018): mean over factors of the normalised gap in mutual information.

        MIG = 1/F sum_k ( I(z_a; v_k) - I(z_b; v_k) ) / H(v_k)

    where z_a and z_b are the two code dimensions most informative about factor v_k.
    codes (N, Z), usually the encoder means; factors (N, F). 1: each factor is captured by
    one dimension alone; 0: none is, or two dimensions share it. Constant factors
    (H = 0) are skipped. Needs Z >= 2.
    """
    mi, h = mutual_info_matrix(codes, factors, n_bins)
    if mi.shape[0] < 2:
        raise InputError("mutual_information_gap: needs at least 2 code dimensions")
    keep = h > 0
    if not keep.any():
        raise InputError("mutual_information_gap: every factor is constant")
    top = np.sort(mi[:, keep], axis=0)                            # ascending per factor
    return float(((top[-1] - top[-2]) / h[keep]).mean())
