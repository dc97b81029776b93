"""Losses, each returning per-example values (N,) and the gradient of ``values.sum()``.

The convention of minivae, stated here once: a loss sums over every axis but the first
(pixels, latent dimensions), in nats, and returns one value per example. Averaging over the
batch, and weighting the KL by beta, happen in the model (``minivae.models.vae.VAE.loss``),
nowhere else.

    bernoulli_nll   sum_d softplus(l) - x l                     d/dl = sigmoid(l) - x
    gaussian_nll    sum_d 0.5 (log 2pi + v + (x - m)^2 e^-v)    d/dm = (m - x) e^-v,
                                                                d/dv = 0.5 (1 - (x - m)^2 e^-v)
    gaussian_kl     sum_z 0.5 (mu^2 + e^v - 1 - v)              d/dmu = mu,  d/dv = 0.5 (e^v - 1)
                    = KL(N(mu, diag e^v) || N(0, I))
    mse             sum_d (y - x)^2                             d/dy = 2 (y - x)

and, for a GAN, with l the discriminator's logit, D = sigmoid(l) the probability it gives
"real" (lesson 11):

    bce_with_logits              sum_d softplus(l) - y l        d/dl = sigmoid(l) - y
                                 = -[y log D + (1 - y) log(1 - D)]
    minimax_generator_loss       log(1 - D) = -softplus(l)      d/dl = -sigmoid(l)
    nonsaturating_generator_loss -log D = softplus(-l)          d/dl = sigmoid(l) - 1

The two likelihoods run over every pixel of a batch, so each is one numba kernel that
computes the value and the gradient in one pass (``minivae.kernels.losses``, beside its NumPy
twin). The KL and the squared error are written here in NumPy.

Checks: each loss checks the shapes and dtypes of its arguments, and its own per-example
values. NaN or infinity anywhere in the inputs, or an overflow inside, makes some value
non-finite, and that raises NonFiniteError: N numbers are checked, not N x D.
"""

import numpy as np

from minivae.checks import check_array
from minivae.errors import InputError, NonFiniteError
from minivae.kernels import losses as K
from minivae.kernels.checks import all_finite
from minivae.layers.activations import sigmoid


def bernoulli_nll(logits, x):
    """-log Bernoulli(x | sigmoid(logits)) per example.   logits, x (N, ...) -> nll (N,), dlogits.

    Stable for any finite logit (|logits| up to 1e4 and beyond): no overflow, no NaN.
    ``x`` must lie in [0, 1] (binary or grey-level targets).
    """
    who = "bernoulli_nll"
    lg, xr = _pair(logits, x, who, "logits")                            # (N, D) each
    if xr.min() < 0 or xr.max() > 1:
        raise InputError(f"{who}: expected x in [0, 1] for a Bernoulli likelihood, got values in "
                         f"[{xr.min():.4g}, {xr.max():.4g}]; scale pixels to [0, 1] or use a "
                         "gaussian likelihood")
    nll, dlogits = np.empty(lg.shape[0], lg.dtype), np.empty_like(lg)
    K.bernoulli_nll(lg, xr, nll, dlogits)            # softplus(l) - x l;  sigmoid(l) - x
    _finite(nll, who, lambda: f"logits up to {np.abs(lg).max():.4g} in {lg.dtype}")
    return nll, dlogits.reshape(logits.shape)


def bernoulli_nll_repeated(logits, x, m):
    """-log Bernoulli(x_n | sigmoid(logits_r)) for row r of logits (N m, D) and n = r // m: m
    decoded samples per example side by side, for importance sampling. No gradient, and no
    copy of x repeated m times.   -> nll (N m,) float64."""
    who = "bernoulli_nll_repeated"
    check_array(logits, who, ndim=2, name="logits", finite=False)
    check_array(x, who, shape=(logits.shape[0] // m, logits.shape[1]), dtype=logits.dtype,
                finite=False)
    nll = K.bernoulli_nll_repeated(logits, x, m, np.empty(logits.shape[0]))
    _finite(nll, who, lambda: f"logits up to {np.abs(logits).max():.4g} in {logits.dtype}")
    return nll


def gaussian_nll(mean, logvar, x):
    """-log N(x | mean, exp(logvar)) per example.   -> nll (N,), (dmean, dlogvar).

    ``logvar`` is either an array of mean's shape (a learned per-pixel variance) or a scalar
    (a fixed or shared variance); then dlogvar is a scalar too. Includes the constant
    0.5 log 2pi per entry: the value is a true negative log-density. A variance so small that
    (x - mean)^2 / exp(logvar) overflows raises NonFiniteError.
    """
    who = "gaussian_nll"
    m, xr = _pair(mean, x, who, "mean")
    nll, dmean = np.empty(m.shape[0], m.dtype), np.empty_like(m)
    if np.ndim(logvar) == 0:                                            # one shared variance
        lv = float(logvar)
        if not np.isfinite(lv):
            raise InputError(f"{who}: expected a finite scalar logvar, got {lv}")
        dlogvar_rows = np.empty(m.shape[0])
        K.gaussian_nll_shared(m, lv, xr, nll, dmean, dlogvar_rows)
        _finite(nll, who, lambda: f"logvar {lv:.4g}: a variance too small for the residuals")
        return nll, (dmean.reshape(mean.shape), m.dtype.type(dlogvar_rows.sum()))
    check_array(logvar, who, shape=mean.shape, dtype=mean.dtype, name="logvar", finite=False)
    dlogvar = np.empty_like(m)
    K.gaussian_nll(m, _rows(logvar), xr, nll, dmean, dlogvar)
    _finite(nll, who, lambda: f"logvar down to {np.min(logvar):.4g} in {logvar.dtype}: a "
            "variance too small for the residuals")
    return nll, (dmean.reshape(mean.shape), dlogvar.reshape(mean.shape))


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, analytic.   mu, logvar (N, Z).

    -> kl (N,), (dmu, dlogvar) with dmu = mu and dlogvar = 0.5 (exp(logvar) - 1).
    """
    who = "gaussian_kl"
    check_array(mu, who, ndim=2, name="mu", finite=False)
    check_array(logvar, who, shape=mu.shape, dtype=mu.dtype, name="logvar", finite=False)
    var = np.exp(logvar)                                                # (N, Z)
    kl = 0.5 * (mu * mu + var - 1 - logvar).sum(axis=1, dtype=np.float64)   # (N,)
    _finite(kl, who, lambda: f"logvar up to {logvar.max():.4g}: exp(logvar) is too large "
            f"for {logvar.dtype}")
    return kl.astype(mu.dtype), (mu.copy(), 0.5 * (var - 1))


def mse(y, x):
    """Squared error summed over features, per example.   y, x (N, ...) -> e (N,), dy = 2 (y - x)."""
    yr, xr = _pair(y, x, "mse", "y")
    r = yr - xr                                                         # (N, D)
    e = (r * r).sum(axis=1, dtype=np.float64)                           # (N,)
    _finite(e, "mse", lambda: f"|y - x| up to {np.abs(r).max():.4g} in {yr.dtype}")
    return e.astype(yr.dtype), (2 * r).reshape(y.shape)


# ---- a GAN's losses: the discriminator's, and the generator's two ----

def bce_with_logits(logits, y):
    """Binary cross-entropy of targets y in [0, 1] against sigmoid(logits), per example.
    logits, y (N, ...) -> bce (N,), dlogits.

        bce = sum_d softplus(l) - y l = -sum_d [y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))]
        d bce / dl = sigmoid(l) - y

    A discriminator's loss, with y = 1 for real examples and y = 0 for generated ones. It is
    bernoulli_nll's formula, written here in NumPy for the one logit per example that a
    discriminator gives. softplus(l) - y l = max(l, 0) - y l + log(1 + exp(-|l|)): no
    overflow for any finite logit (|l| up to 1e4 and far beyond) and no cancellation when
    y = 1 and l is large (l - l is 0 exactly).
    """
    who = "bce_with_logits"
    lg = _logits(logits, who)                                           # (N, D)
    check_array(y, who, shape=logits.shape, name="y")
    yr = _rows(y).astype(lg.dtype, copy=False)                          # (N, D)
    if yr.min() < 0 or yr.max() > 1:
        raise InputError(f"{who}: expected targets y in [0, 1] (1 real, 0 generated), got "
                         f"values in [{yr.min():.4g}, {yr.max():.4g}]")
    bce = (np.maximum(lg, 0) - yr * lg + np.log1p(np.exp(-np.abs(lg)))).sum(axis=1)   # (N,)
    return bce, (sigmoid(lg) - yr).reshape(logits.shape)


def minimax_generator_loss(logits):
    """The generator's side of the minimax game, log(1 - D(G(z))), per example.
    logits (N, ...) of D on generated examples -> J (N,), dlogits.

        J = sum_d log(1 - sigmoid(l)) = -sum_d softplus(l)      dJ/dl = -sigmoid(l)

    The generator minimises it. It saturates: when the discriminator wins (l -> -inf,
    D(G(z)) -> 0) the gradient -sigmoid(l) vanishes like exp(l).
    """
    lg = _logits(logits, "minimax_generator_loss")                      # (N, D)
    J = -(np.maximum(lg, 0) + np.log1p(np.exp(-np.abs(lg)))).sum(axis=1)   # -softplus(l)
    return J, (-sigmoid(lg)).reshape(logits.shape)


def nonsaturating_generator_loss(logits):
    """The non-saturating generator loss -log D(G(z)), per example.
    logits (N, ...) of D on generated examples -> J (N,), dlogits.

        J = -sum_d log sigmoid(l) = sum_d softplus(-l)         dJ/dl = sigmoid(l) - 1

    The same fixed point as the minimax loss (both push D(G(z)) up), but when the
    discriminator wins (l -> -inf) the gradient tends to -1 instead of 0.
    """
    lg = _logits(logits, "nonsaturating_generator_loss")                # (N, D)
    J = (np.maximum(-lg, 0) + np.log1p(np.exp(-np.abs(lg)))).sum(axis=1)   # softplus(-l)
    return J, (sigmoid(lg) - 1).reshape(logits.shape)


GENERATOR_LOSSES = {"minimax": minimax_generator_loss,
                    "non-saturating": nonsaturating_generator_loss}


# ---- the checks, and a view as rows ----

def _logits(logits, who):
    """logits as finite (N, D) rows, after checking them (a batch axis, float, no NaN)."""
    check_array(logits, who, name="logits")
    if logits.ndim < 1:
        raise InputError(f"{who}: expected logits with a batch axis, got a scalar")
    return _rows(logits)


def _rows(a):
    """View (N, ...) as C-contiguous (N, D)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def _pair(pred, x, who, pred_name):
    """(pred, x) as (N, D) rows of pred's dtype, after checking their shapes and dtypes."""
    check_array(pred, who, name=pred_name, finite=False)
    if pred.ndim < 1:
        raise InputError(f"{who}: expected {pred_name} with a batch axis, got a scalar")
    check_array(x, who, shape=pred.shape, name="x", finite=False)
    return _rows(pred), _rows(x).astype(pred.dtype, copy=False)


def _finite(values, who, why):
    """NonFiniteError if a per-example value (N,) is NaN or infinite; ``why()`` says what may
    have overflowed. (A finite value per example implies finite gradients.)"""
    if not all_finite(values):
        bad = values[~np.isfinite(values)][0]
        raise NonFiniteError(f"{who}: the loss is {bad}: NaN or infinity in its inputs, or an "
                             f"overflow ({why()}); expected finite values")
