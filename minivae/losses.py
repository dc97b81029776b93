"""Losses, each returning per-example values (N,) and the gradient of ``values.sum()``.

The convention of minivae, stated here once: a loss sums over every axis but
the first (pixels, latent dimensions), in nats, and returns one value per
example. Averaging over the batch, and weighting the KL by beta, happen in the
model (``minivae.models.vae.VAE.loss``), nowhere else.

Formulas (the kernels in ``minivae.kernels.losses`` compute value and gradient in one pass):
    bernoulli_nll   sum_d softplus(l) - x l
    gaussian_nll    sum_d 0.5 (log 2pi + v + (x - m)^2 / exp(v))
    gaussian_kl     sum_z 0.5 (mu^2 + exp(v) - 1 - v)  =  KL(N(mu, exp(v)) || N(0, 1))
    mse             sum_d (y - x)^2
"""

import numpy as np

from minivae.checks import check_array
from minivae.errors import InputError, NonFiniteError
from minivae.kernels import losses as K
from minivae.kernels.checks import all_finite


def _rows(a):
    """View (N, ...) as C-contiguous (N, D)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], -1)


def _pair(pred, x, who, pred_name):
    check_array(pred, who, name=pred_name)
    if pred.ndim < 1:
        raise InputError(f"{who}: expected {pred_name} with a batch axis, got a scalar")
    check_array(x, who, shape=pred.shape, name="x")
    return _rows(pred), _rows(x).astype(pred.dtype, copy=False)


def _finite(values, who, why):
    """Raise NonFiniteError if a per-example value (N,) overflowed; ``why()`` says of what.

    Finite inputs can still overflow the dtype (e.g. exp(-logvar) for logvar < -88 in
    float32). A finite value per example implies finite gradients, so N checks suffice."""
    if not all_finite(values):
        raise NonFiniteError(f"{who}: the loss overflowed to {values[~np.isfinite(values)][0]} "
                             f"({why()}); expected finite values")


def bernoulli_nll(logits, x):
    """-log Bernoulli(x | sigmoid(logits)) per example.   logits, x (N, ...) -> nll (N,), dlogits.

    Stable for any finite logit (|logits| up to 1e4 and beyond): no overflow, no NaN.
    ``x`` must lie in [0, 1] (binary or grey-level targets).
    """
    who = "bernoulli_nll"
    lg, xr = _pair(logits, x, who, "logits")
    if xr.min() < 0 or xr.max() > 1:
        raise InputError(f"{who}: expected x in [0, 1] for a Bernoulli likelihood, got values in "
                         f"[{xr.min():.4g}, {xr.max():.4g}]; scale pixels to [0, 1] or use a "
                         "gaussian likelihood")
    nll = np.empty(lg.shape[0], lg.dtype)
    dlogits = np.empty_like(lg)
    K.bernoulli_nll(lg, xr, nll, dlogits)
    _finite(nll, who, lambda: f"logits up to {np.abs(lg).max():.4g} in {lg.dtype}")
    return nll, dlogits.reshape(logits.shape)


def gaussian_nll(mean, logvar, x):
    """-log N(x | mean, exp(logvar)) per example.   -> nll (N,), (dmean, dlogvar).

    ``logvar`` is either an array of mean's shape (a learned per-pixel variance)
    or a scalar (a fixed or shared variance); then dlogvar is a scalar too.
    Includes the constant 0.5 log 2pi per entry: the value is a true negative log-density.
    A variance so small that (x - mean)^2 / exp(logvar) overflows raises NonFiniteError.
    """
    who = "gaussian_nll"
    m, xr = _pair(mean, x, who, "mean")
    if np.ndim(logvar) == 0:
        lv = float(logvar)
        if not np.isfinite(lv):
            raise InputError(f"{who}: expected a finite scalar logvar, got {lv}")
        nll, dmean, rows = np.empty(m.shape[0], m.dtype), np.empty_like(m), np.empty(m.shape[0])
        K.gaussian_nll_shared(m, lv, xr, nll, dmean, rows)
        _finite(nll, who, lambda: f"logvar {lv:.4g}: a variance too small for the residuals")
        return nll, (dmean.reshape(mean.shape), m.dtype.type(rows.sum()))
    check_array(logvar, who, shape=mean.shape, dtype=mean.dtype, name="logvar")
    nll, dmean, dlogvar = np.empty(m.shape[0], m.dtype), np.empty_like(m), np.empty_like(m)
    K.gaussian_nll(m, _rows(logvar), xr, nll, dmean, dlogvar)
    _finite(nll, who, lambda: f"logvar down to {logvar.min():.4g} in {logvar.dtype}: a "
            "variance too small for the residuals")
    return nll, (dmean.reshape(mean.shape), dlogvar.reshape(mean.shape))


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, analytic.   mu, logvar (N, Z).

    -> kl (N,), (dmu, dlogvar) with dmu = mu and dlogvar = 0.5 (exp(logvar) - 1).
    """
    who = "gaussian_kl"
    check_array(mu, who, ndim=2, name="mu")
    check_array(logvar, who, shape=mu.shape, dtype=mu.dtype, name="logvar")
    mu, logvar = np.ascontiguousarray(mu), np.ascontiguousarray(logvar)
    kl, dmu, dlogvar = np.empty(mu.shape[0], mu.dtype), np.empty_like(mu), np.empty_like(mu)
    K.gaussian_kl(mu, logvar, kl, dmu, dlogvar)
    if not all_finite(kl):
        raise NonFiniteError(f"{who}: KL overflowed (logvar up to {logvar.max():.4g}); "
                             "exp(logvar) is too large for the dtype")
    return kl, (dmu, dlogvar)


def mse(y, x):
    """Squared error summed over features, per example.   y, x (N, ...) -> e (N,), dy = 2 (y - x)."""
    yr, xr = _pair(y, x, "mse", "y")
    e, dy = np.empty(yr.shape[0], yr.dtype), np.empty_like(yr)
    K.squared_error(yr, xr, e, dy)
    _finite(e, "mse", lambda: f"|y - x| up to {np.abs(yr - xr).max():.4g} in {yr.dtype}")
    return e, dy.reshape(y.shape)
