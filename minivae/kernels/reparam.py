"""The reparameterization z = mu + exp(0.5 logvar) * eps, forward and backward.

    forward:   std = exp(0.5 logvar);  z = mu + std * eps
    backward:  dmu = dz;  dlogvar = dz * eps * std * 0.5     (dz/dlogvar = 0.5 std eps)

Arrays are (N, Z) and C-contiguous.
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


def reparam_forward_np(mu, logvar, eps, z, std):
    std[...] = np.exp(0.5 * logvar)
    z[...] = mu + std * eps
    return z


def reparam_backward_np(dz, eps, std, dlogvar):
    dlogvar[...] = 0.5 * dz * eps * std
    return dlogvar
