"""The reparameterization z = mu + exp(0.5 logvar) * eps, forward and backward, alone and
fused with the KL term of the ELBO: numba kernels, each beside its NumPy twin.

Not part of minivae. The library samples in its ``Reparameterize`` layer and takes the KL
from ``losses.gaussian_kl``, both NumPy, both visible in ``VAE.loss``; at (N, Z) = (128, 20)
a fused kernel saves microseconds of a step that takes milliseconds (the lessons' appendix A,
section 6, measures it). ``benchmarks/flat_step.py`` uses the fused pair;
``tests/test_benchmark_kernels.py`` holds each kernel equal to its twin, and the fused pair equal
to the layer and the loss.

    forward:   std = exp(0.5 logvar);  z = mu + std * eps
    backward:  dmu = dz;  dlogvar = dz * eps * std * 0.5     (dz/dlogvar = 0.5 std eps)

    with the KL, kl_n = sum_k 0.5 (mu^2 + std^2 - 1 - logvar)   (std^2 = exp(logvar): one exp)
    backward:  dmu = dz + w mu;  dlogvar = 0.5 dz eps std + w 0.5 (std^2 - 1)
               (w = the KL's weight in the loss, beta / N for a batch mean)

The fused pair reads mu and logvar from the encoder's output h = [mu | logvar] (N, 2Z) and
writes d loss / dh into one (N, 2Z) array: no slices copied, nothing concatenated.
Other arrays are (N, Z) and C-contiguous.
"""

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def reparam_forward(mu, logvar, eps, z, std):
    """z = mu + exp(0.5 logvar) * eps, keeping std for the backward pass."""
    for n in range(mu.shape[0]):
        for k in range(mu.shape[1]):
            s = np.exp(0.5 * logvar[n, k])
            std[n, k] = s
            z[n, k] = mu[n, k] + s * eps[n, k]
    return z


@njit(cache=True, error_model="numpy")
def reparam_backward(dz, eps, std, dlogvar):
    """dlogvar = 0.5 * dz * eps * std (dmu is dz itself)."""
    for n in range(dz.shape[0]):
        for k in range(dz.shape[1]):
            dlogvar[n, k] = 0.5 * dz[n, k] * eps[n, k] * std[n, k]
    return dlogvar


@njit(cache=True, error_model="numpy")
def reparam_kl_forward(h, eps, z, std, kl):
    """z = mu + std * eps and kl_n = KL(N(mu, std^2) || N(0, I)), mu | logvar = h (N, 2Z)."""
    Z = eps.shape[1]
    for n in range(h.shape[0]):
        acc = 0.0
        for k in range(Z):
            mu, lv = h[n, k], h[n, Z + k]
            s = np.exp(0.5 * lv)
            std[n, k] = s
            z[n, k] = mu + s * eps[n, k]
            acc += 0.5 * (mu * mu + s * s - 1.0 - lv)
        kl[n] = acc
    return z


@njit(cache=True, error_model="numpy")
def reparam_kl_backward(dz, eps, std, h, w, dh):
    """dh (N, 2Z) = [dz + w mu | 0.5 dz eps std + w 0.5 (std^2 - 1)]."""
    Z = eps.shape[1]
    half = 0.5 * w
    for n in range(dz.shape[0]):
        for k in range(Z):
            s = std[n, k]
            dh[n, k] = dz[n, k] + w * h[n, k]
            dh[n, Z + k] = 0.5 * dz[n, k] * eps[n, k] * s + half * (s * s - 1.0)
    return dh


def reparam_forward_np(mu, logvar, eps, z, std):
    std[...] = np.exp(0.5 * logvar)
    z[...] = mu + std * eps
    return z


def reparam_backward_np(dz, eps, std, dlogvar):
    dlogvar[...] = 0.5 * dz * eps * std
    return dlogvar


def reparam_kl_forward_np(h, eps, z, std, kl):
    Z = eps.shape[1]
    mu, lv = h[:, :Z], h[:, Z:]
    std[...] = np.exp(0.5 * lv)
    z[...] = mu + std * eps
    kl[...] = (0.5 * (mu.astype(np.float64) ** 2 + np.exp(lv.astype(np.float64)) - 1 - lv)
               ).sum(axis=1)
    return z


def reparam_kl_backward_np(dz, eps, std, h, w, dh):
    Z = eps.shape[1]
    dh[:, :Z] = dz + w * h[:, :Z]
    dh[:, Z:] = 0.5 * dz * eps * std + w * 0.5 * (np.exp(h[:, Z:].astype(np.float64)) - 1)
    return dh
