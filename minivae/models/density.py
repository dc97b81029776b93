"""Densities fitted to the codes of a trained autoencoder, so that it can generate.

A plain autoencoder has no prior: nothing makes its codes z = encode(x) look like N(0, I), and
decoding z ~ N(0, I) mostly gives garbage. Fit a density q(z) to the training codes after
training, sample z ~ q, decode. (A VAE builds this into its loss instead.)

DiagonalGaussian, by maximum likelihood:
    mean = (1/N) sum_n z_n,   var = (1/N) sum_n (z_n - mean)^2  (+ reg)

GaussianMixture, by expectation-maximisation (EM):
    E-step:  log r_nk = log pi_k + log N(z_n | mu_k, S_k) - log sum_j exp(log pi_j + log N(z_n | mu_j, S_j))
    M-step:  N_k = sum_n r_nk,   pi_k = N_k / N,   mu_k = (1/N_k) sum_n r_nk z_n,
             S_k = (1/N_k) sum_n r_nk (z_n - mu_k)(z_n - mu_k)^T + (reg / pi_k) I   (diag: the diagonal)
The log-sum-exp subtracts the row maximum first, so no exp under- or overflows.

The ridge (reg / pi_k) I keeps every S_k invertible. It is the exact M-step for the objective

    J = (1/N) sum_n log q(z_n)  -  (reg / 2) sum_k trace(S_k^-1)

(a prior p(S_k) ~ exp(-(N reg / 2) trace S_k^-1) that keeps variances away from 0), so EM can
never decrease J; ``history_`` records J. With reg = 0, J is the mean log-likelihood. (A fixed
ridge reg * I, as often written, is not an exact M-step: the log-likelihood can then drop by
amounts of order reg.)
"""

import numpy as np

from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.models.base import choice, generator, number, size

LOG_2PI = np.log(2.0 * np.pi)
COVARIANCES = ("full", "diag")
INITS = ("kmeans++", "random")


def logsumexp(a, axis):
    """log sum exp(a) along ``axis``, shifted by the maximum so nothing overflows."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _check_z(z, who, dim=None):
    return check_array(z, who, shape=(None, dim), name="z") if dim else check_array(
        z, who, ndim=2, name="z")


class DiagonalGaussian:
    """N(mean, diag(var)) fitted by maximum likelihood to z (N, Z)."""

    def __init__(self, reg=1e-6, rng=None):
        self.reg = number(reg, "DiagonalGaussian", "reg")
        self.rng = generator(rng, "DiagonalGaussian")
        self.mean_ = self.var_ = None

    @property
    def params(self):
        return {} if self.mean_ is None else {"mean": self.mean_, "var": self.var_}

    def fit(self, z):
        """mean and (biased, ddof = 0) variance of each column, plus reg. Returns self."""
        _check_z(z, "DiagonalGaussian.fit")
        self.dtype = z.dtype
        z = z.astype(np.float64)
        self.mean_ = z.mean(axis=0)                                          # (Z,)
        self.var_ = z.var(axis=0) + self.reg                                 # (Z,)
        if not np.all(self.var_ > 0):
            raise InputError("DiagonalGaussian.fit: a column of z is constant; use reg > 0")
        return self

    def _fitted(self, who):
        if self.mean_ is None:
            raise InputError(f"DiagonalGaussian.{who}: not fitted; call fit(z) first")
        return self.mean_.shape[0]

    def log_prob(self, z):
        """log N(z | mean, diag var) per row.   z (N, Z) -> (N,) float64."""
        _check_z(z, "DiagonalGaussian.log_prob", self._fitted("log_prob"))
        r2 = (z.astype(np.float64) - self.mean_) ** 2 / self.var_              # (N, Z)
        return -0.5 * np.sum(LOG_2PI + np.log(self.var_) + r2, axis=1)

    def score(self, z):
        """Mean log-likelihood of the rows of z."""
        return float(self.log_prob(z).mean())

    def sample(self, n, rng=None):
        """n draws, in the dtype of the data fitted.   -> (n, Z)."""
        Z = self._fitted("sample")
        n = check_count(n, "DiagonalGaussian.sample", "n")
        rng = self.rng if rng is None else generator(rng, "DiagonalGaussian.sample")
        eps = rng.standard_normal((n, Z))                                     # (n, Z)
        return (self.mean_ + np.sqrt(self.var_) * eps).astype(self.dtype)

    def __repr__(self):
        return f"DiagonalGaussian(reg={self.reg})"


class GaussianMixture:
    """A mixture of K Gaussians fitted by EM to z (N, Z).

    covariance: "full" (K, Z, Z) or "diag" (K, Z). init: "kmeans++" (K centres chosen by
    k-means++ seeding from ``rng``, each point assigned to its nearest) or "random" (random
    responsibilities from ``rng``). EM stops when the objective J (below) gains less than
    ``tol`` in one iteration (``converged_`` True) or after ``max_iter`` iterations.
    ``history_`` holds the objective J (the mean log-likelihood when reg = 0) after the initial
    M-step and after each iteration: it never decreases.
    """

    def __init__(self, n_components, covariance="full", max_iter=200, tol=1e-6, reg=1e-6,
                 init="kmeans++", rng=None):
        who = "GaussianMixture"
        self.n_components = size(n_components, who, "n_components")
        self.covariance = choice(covariance, COVARIANCES, who, "covariance")
        self.init = choice(init, INITS, who, "init")
        self.max_iter = size(max_iter, who, "max_iter")
        self.tol, self.reg = number(tol, who, "tol"), number(reg, who, "reg")
        self.rng = generator(rng, who)
        self.weights_ = self.means_ = self.covariances_ = None
        self.converged_, self.n_iter_, self.history_ = False, 0, []

    @property
    def params(self):
        if self.weights_ is None:
            return {}
        return {"weights": self.weights_, "means": self.means_, "covariances": self.covariances_}

    # ---- EM ----

    def _init_resp(self, z):
        """Initial responsibilities (N, K) from self.rng."""
        N, K = z.shape[0], self.n_components
        if self.init == "random":
            r = self.rng.random((N, K))
            return r / r.sum(axis=1, keepdims=True)
        centres = [z[self.rng.integers(N)]]                                  # k-means++
        d2 = np.sum((z - centres[0]) ** 2, axis=1)                           # (N,)
        for _ in range(1, K):
            total = d2.sum()
            i = self.rng.choice(N, p=d2 / total) if total > 0 else self.rng.integers(N)
            centres.append(z[i])
            d2 = np.minimum(d2, np.sum((z - z[i]) ** 2, axis=1))
        C = np.array(centres)                                                # (K, Z)
        dist = np.sum(z ** 2, 1)[:, None] - 2 * z @ C.T + np.sum(C ** 2, 1)  # (N, K)
        return np.eye(K)[dist.argmin(axis=1)]                                # one-hot (N, K)

    def _m_step(self, z, resp):
        Nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps                # (K,)
        self.weights_ = Nk / Nk.sum()                                        # (K,)
        ridge = self.reg * z.shape[0] / Nk                                   # (K,) reg / pi_k
        self.means_ = resp.T @ z / Nk[:, None]                               # (K, Z)
        covs = []
        for k in range(self.n_components):
            diff = z - self.means_[k]                                        # (N, Z)
            if self.covariance == "full":
                S = (resp[:, k, None] * diff).T @ diff / Nk[k]               # (Z, Z)
                covs.append(S + ridge[k] * np.eye(z.shape[1]))
            else:
                covs.append(resp[:, k] @ diff ** 2 / Nk[k] + ridge[k])       # (Z,)
        self.covariances_ = np.array(covs)                                   # (K, Z, Z) or (K, Z)

    def _log_joint(self, z):
        """log pi_k + log N(z_n | mu_k, S_k).   z (N, Z) float64 -> (N, K)."""
        N, Z = z.shape
        out = np.empty((N, self.n_components))
        for k in range(self.n_components):
            diff = z - self.means_[k]                                        # (N, Z)
            S = self.covariances_[k]
            if self.covariance == "full":
                try:
                    L = np.linalg.cholesky(S)                                # S = L L^T
                except np.linalg.LinAlgError:
                    raise InputError(f"GaussianMixture: covariance {k} is not positive "
                                     "definite; increase reg") from None
                y = np.linalg.solve(L, diff.T)                               # (Z, N) = L^-1 diff^T
                logdet = 2.0 * np.sum(np.log(np.diag(L)))
                maha = np.sum(y ** 2, axis=0)                                # (N,)
            else:
                if not np.all(S > 0):
                    raise InputError(f"GaussianMixture: variance of component {k} is 0; "
                                     "increase reg")
                logdet = np.sum(np.log(S))
                maha = np.sum(diff ** 2 / S, axis=1)                         # (N,)
            out[:, k] = np.log(self.weights_[k]) - 0.5 * (Z * LOG_2PI + logdet + maha)
        return out

    def _penalty(self):
        """(reg / 2) sum_k trace(S_k^-1)."""
        if self.reg == 0:
            return 0.0
        if self.covariance == "full":
            return 0.5 * self.reg * float(np.trace(np.linalg.inv(self.covariances_),
                                                   axis1=1, axis2=2).sum())
        return 0.5 * self.reg * float(np.sum(1.0 / self.covariances_))

    def _e_step(self, z):
        """-> objective J, responsibilities (N, K)."""
        lj = self._log_joint(z)                                              # (N, K)
        lse = logsumexp(lj, axis=1)                                          # (N,) log q(z_n)
        return float(lse.mean()) - self._penalty(), np.exp(lj - lse[:, None])

    def fit(self, z):
        """Run EM on z (N, Z) from an initialisation drawn from self.rng. Returns self."""
        _check_z(z, "GaussianMixture.fit")
        if z.shape[0] < self.n_components:
            raise InputError(f"GaussianMixture.fit: {self.n_components} components need at "
                             f"least as many points, got z of shape {z.shape}")
        self.dtype = z.dtype
        z = z.astype(np.float64)
        self._m_step(z, self._init_resp(z))
        ll, resp = self._e_step(z)
        self.history_, self.converged_, self.n_iter_ = [ll], False, 0
        for _ in range(self.max_iter):
            self._m_step(z, resp)
            new, resp = self._e_step(z)
            self.history_.append(new)
            self.n_iter_ += 1
            if abs(new - ll) < self.tol:
                self.converged_ = True
                break
            ll = new
        return self

    # ---- using the fitted density ----

    def _fitted(self, who):
        if self.weights_ is None:
            raise InputError(f"GaussianMixture.{who}: not fitted; call fit(z) first")
        return self.means_.shape[1]

    def log_prob(self, z):
        """log q(z) per row.   z (N, Z) -> (N,) float64."""
        _check_z(z, "GaussianMixture.log_prob", self._fitted("log_prob"))
        return logsumexp(self._log_joint(z.astype(np.float64)), axis=1)

    def score(self, z):
        """Mean log-likelihood of the rows of z."""
        return float(self.log_prob(z).mean())

    def predict(self, z):
        """The most responsible component of each row.   z (N, Z) -> (N,) int."""
        _check_z(z, "GaussianMixture.predict", self._fitted("predict"))
        return self._log_joint(z.astype(np.float64)).argmax(axis=1)

    def sample(self, n, rng=None):
        """n draws (component k with probability pi_k, then its Gaussian), in the dtype of
        the data fitted.   -> (n, Z)."""
        Z = self._fitted("sample")
        n = check_count(n, "GaussianMixture.sample", "n")
        rng = self.rng if rng is None else generator(rng, "GaussianMixture.sample")
        k = rng.choice(self.n_components, size=n, p=self.weights_)          # (n,)
        eps = rng.standard_normal((n, Z))                                    # (n, Z)
        if self.covariance == "full":
            L = np.linalg.cholesky(self.covariances_)                        # (K, Z, Z)
            z = self.means_[k] + np.einsum("nij,nj->ni", L[k], eps)
        else:
            z = self.means_[k] + np.sqrt(self.covariances_[k]) * eps
        return z.astype(self.dtype)

    def __repr__(self):
        return (f"GaussianMixture(n_components={self.n_components}, "
                f"covariance={self.covariance!r})")
