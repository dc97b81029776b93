"""A linear autoencoder trained by gradient descent, and principal angles to compare
its decoder with PCA.

    z  = x @ We + be                   encoder   x (N, D) -> z (N, Z)
    x^ = z @ Wd + bd                   decoder   z (N, Z) -> x^ (N, D)
    loss = mean_n sum_d (x^ - x)^2     batch mean of the squared error summed over pixels

It keeps its biases, so it needs no centred data: at the optimum the biases absorb the mean.
Every minimum of this loss reconstructs through the same rank-Z projection as PCA with Z
components: the decoder's column space, span of the columns of Wd^T (D, Z), converges to the
principal subspace. The weights themselves are determined only up to an invertible map A:
(We A, Wd replaced by A^-1 Wd) gives the same x^, so the decoder's rows need not be orthogonal,
nor equal to the principal components. Principal angles measure what is determined.
"""

import numpy as np

from minivae import losses
from minivae.checks import check_array
from minivae.errors import InputError
from minivae.layers import Linear
from minivae.models.base import EncoderDecoder, float_dtype, generator, size


class LinearAutoencoder(EncoderDecoder):
    """Linear encoder D -> Z and linear decoder Z -> D, both with biases.   x (N, D) -> loss."""

    def __init__(self, x_dim, z_dim, rng=None, dtype=np.float32):
        who = "LinearAutoencoder"
        self.x_dim, self.z_dim = size(x_dim, who, "x_dim"), size(z_dim, who, "z_dim")
        self.dtype = float_dtype(dtype, who)
        self.rng = generator(rng, who)                # used only to initialise the weights
        self.encoder = Linear(self.x_dim, self.z_dim, rng=self.rng, dtype=dtype,
                              input_grad=False, check_inputs=False)  # x is data, checked here
        self.decoder = Linear(self.z_dim, self.x_dim, rng=self.rng, dtype=dtype,
                              check_inputs=False)
        self.cache, self.last = None, {}

    def config(self):
        """The constructor arguments, as JSON-able values."""
        return {"model": "linear-ae", "x_dim": self.x_dim, "z_dim": self.z_dim,
                "dtype": self.dtype.name}

    @property
    def decoder_basis(self):
        """Wd^T: its columns span the decoder's image (minus the bias).   (D, Z)"""
        return self.decoder.params["W"].T

    def _check_x(self, x, who):
        check_array(x, f"LinearAutoencoder.{who}", shape=(None, self.x_dim), dtype=self.dtype)

    def encode(self, x):
        """x (N, D) -> z (N, Z)."""
        self._check_x(x, "encode")
        return self.encoder.forward(x)

    def decode(self, z):
        """z (N, Z) -> x^ (N, D)."""
        check_array(z, "LinearAutoencoder.decode", shape=(None, self.z_dim), dtype=self.dtype,
                    name="z")
        return self.decoder.forward(z)

    def reconstruct(self, x):
        """decode(encode(x)).   (N, D) -> (N, D)."""
        return self.decoder.forward(self.encode(x))

    def loss(self, x):
        """Batch mean of the per-example squared error (summed over pixels). Keeps the cache;
        the per-example values go to ``self.last``."""
        self._check_x(x, "loss")
        x_hat = self.decoder.forward(self.encoder.forward(x))               # (N, D)
        e, dx_hat = losses.mse(x_hat, x)                                     # (N,), (N, D)
        self.cache = (x.shape[0], dx_hat)
        self.last = {"loss": e}
        return float(e.mean())

    def backward(self):
        """Add d loss / d params into ``grads``:  dz = (dx^ / N) @ Wd^T,  then the encoder."""
        N, dx_hat = self.cached()
        dz = self.decoder.backward(dx_hat / N)                               # (N, Z)
        self.encoder.backward(dz)                                            # dz (N, Z)

    def __repr__(self):
        return f"LinearAutoencoder({self.x_dim} -> {self.z_dim} -> {self.x_dim}, {self.dtype.name})"


def principal_angles(A, B):
    """Principal angles between the column spaces of A (D, p) and B (D, q), in radians, ascending.

        Q_A, Q_B = orthonormal bases (QR of A and B)
        cos(theta_i) = singular values of Q_A^T Q_B          (min(p, q) of them)
        sin(theta_i) = singular values of Q_B - Q_A Q_A^T Q_B   (when p >= q)

    theta = arccos(cos) is accurate only down to about 1e-8 rad (cos theta = 1 - theta^2 / 2
    rounds to 1), so angles below pi/4 are taken as arcsin(sin) instead, accurate down to
    1e-16. 0 for identical subspaces, pi/2 for orthogonal directions. A and B must have full
    column rank.
    """
    check_array(A, "principal_angles", ndim=2, name="A")
    check_array(B, "principal_angles", ndim=2, name="B")
    if A.shape[0] != B.shape[0]:
        raise InputError(f"principal_angles: A and B must have the same number of rows (the "
                         f"ambient dimension), got shapes {A.shape} and {B.shape}")
    if A.shape[1] > A.shape[0] or B.shape[1] > B.shape[0]:
        raise InputError(f"principal_angles: expected tall matrices (D, p) with p <= D, got "
                         f"shapes {A.shape} and {B.shape}")
    if A.shape[1] < B.shape[1]:
        A, B = B, A                                               # so that p >= q
    Qa, _ = np.linalg.qr(A.astype(np.float64))                   # (D, p)
    Qb, _ = np.linalg.qr(B.astype(np.float64))                   # (D, q)
    M = Qa.T @ Qb                                                # (p, q)
    cos = np.linalg.svd(M, compute_uv=False)                      # (q,) descending
    sin = np.linalg.svd(Qb - Qa @ M, compute_uv=False)[::-1]      # (q,) ascending
    theta = np.arccos(np.clip(cos, -1.0, 1.0))                    # ascending
    small = sin ** 2 < 0.5
    theta[small] = np.arcsin(np.clip(sin[small], 0.0, 1.0))
    return theta
