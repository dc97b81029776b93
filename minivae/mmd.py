"""The maximum mean discrepancy between two samples: its unbiased estimator, and the
estimator's gradient w.r.t. the first sample, by hand.

    MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y)          x, x' ~ P;  y, y' ~ Q

For a characteristic kernel (both below are) it is 0 exactly when P = Q. From x (N, Z) ~ P
and y (M, Z) ~ Q, the unbiased estimator leaves out the pairs of an example with itself:

    MMD^2_u = 1/(N(N-1)) sum_{i != j} k(x_i, x_j) + 1/(M(M-1)) sum_{i != j} k(y_i, y_j)
              - 2/(N M) sum_{i, j} k(x_i, y_j)

Both kernels are functions of the squared distance r = |a - b|^2, with a scale C > 0:

    rbf   k = exp(-r / C)          dk/dr = -k / C
    imq   k = C / (C + r)          dk/dr = -k^2 / C        (inverse multiquadratic)

and d k(a, b) / da = 2 dk/dr (a - b). Each x_i sits in the pairs (i, j) and (j, i), so

    d MMD^2_u / d x_i = 4/(N(N-1)) sum_j Gxx_ij (x_i - x_j) - 4/(N M) sum_j Gxy_ij (x_i - y_j)

with Gxx_ij = dk/dr at (x_i, x_j), 0 on the diagonal, and Gxy_ij = dk/dr at (x_i, y_j).
The default scale is C = 2 Z, the mean squared distance of two draws of N(0, I_Z), as the
WAE paper takes for its prior (Tolstikhin et al. 2018). A WAE (``minivae.models.wae``) uses
the estimator with y drawn from its prior; lesson 11 also uses it to compare samples with
test images in the features of a classifier.
"""

import numpy as np

from minivae.checks import check_array
from minivae.errors import InputError

KERNELS = ("imq", "rbf")


def kernel_values(r, name, C):
    """k and dk/dr at squared distances r (any shape), float64."""
    if name == "rbf":
        k = np.exp(-r / C)
        return k, -k / C
    k = C / (C + r)                                                    # imq
    return k, -k * k / C


def sq_distances(a, b):
    """|a_i - b_j|^2.   a (N, Z), b (M, Z) -> (N, M), never below 0."""
    r = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.maximum(r, 0)


def mmd(x, y, kernel="imq", scale=None):
    """The unbiased estimate of MMD^2 between the samples x (N, Z) and y (M, Z), and its
    gradient w.r.t. x.   -> (value (float), dx (N, Z) in x's dtype).

    N, M >= 2. ``scale`` is C (2 Z if None). Computed in float64 (N x M kernel values).
    """
    who = "mmd"
    check_array(x, who, ndim=2)
    check_array(y, who, shape=(None, x.shape[1]), dtype=x.dtype, name="y")
    if len(x) < 2 or len(y) < 2:
        raise InputError(f"{who}: the unbiased estimator needs at least 2 rows in each sample, "
                         f"got x {x.shape} and y {y.shape}")
    if kernel not in KERNELS:
        raise InputError(f"{who}: kernel must be one of {KERNELS}, got {kernel!r}")
    C = 2.0 * x.shape[1] if scale is None else _scale(scale, who)
    N, M = len(x), len(y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    kxx, gxx = kernel_values(sq_distances(x64, x64), kernel, C)       # (N, N) x2
    kyy, _ = kernel_values(sq_distances(y64, y64), kernel, C)         # (M, M)
    kxy, gxy = kernel_values(sq_distances(x64, y64), kernel, C)       # (N, M) x2
    np.fill_diagonal(kxx, 0)                                           # i != j
    np.fill_diagonal(kyy, 0)
    np.fill_diagonal(gxx, 0)
    value = kxx.sum() / (N * (N - 1)) + kyy.sum() / (M * (M - 1)) - 2 * kxy.sum() / (N * M)
    dx = (4 / (N * (N - 1)) * (x64 * gxx.sum(axis=1)[:, None] - gxx @ x64)      # (N, Z)
          - 4 / (N * M) * (x64 * gxy.sum(axis=1)[:, None] - gxy @ y64))
    return float(value), dx.astype(x.dtype)


def mmd2_gaussians_rbf(mean1, cov1, mean2, cov2, scale):
    """MMD^2 between N(mean1, cov1) and N(mean2, cov2) under the rbf kernel exp(-r / C),
    exactly: the closed form the estimator is checked against. means (Z,), covs (Z, Z).

    For d = x - y ~ N(m, S):  E exp(-|d|^2 / C) = det(I + 2 S / C)^(-1/2)
                                                  * exp(-m^T (S + C/2 I)^(-1) m / 2)
    with (m, S) = (0, 2 cov1), (0, 2 cov2) and (mean1 - mean2, cov1 + cov2) for the three terms.
    """
    m1, m2 = np.asarray(mean1, dtype=np.float64), np.asarray(mean2, dtype=np.float64)
    S1, S2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    C = _scale(scale, "mmd2_gaussians_rbf")
    eye = np.eye(len(m1))

    def expected_k(m, S):
        return (np.linalg.det(eye + 2 * S / C) ** -0.5
                * np.exp(-0.5 * m @ np.linalg.solve(S + C / 2 * eye, m)))

    zero = np.zeros_like(m1)
    return float(expected_k(zero, 2 * S1) + expected_k(zero, 2 * S2)
                 - 2 * expected_k(m1 - m2, S1 + S2))


def _scale(C, who):
    """C as a float if it is a finite number > 0."""
    if isinstance(C, bool) or not isinstance(C, (int, float, np.integer, np.floating)) or not (
            np.isfinite(C) and C > 0):
        raise InputError(f"{who}: scale must be a finite number > 0, got {C!r}")
    return float(C)
