"""Tests of the non-VAE models: PCA, the linear autoencoder and principal angles, the plain and
denoising autoencoders, and the latent densities (diagonal Gaussian, Gaussian mixture by EM)."""

import json
import warnings

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.gradcheck import check_grad
from minivae.models import (
    MODELS,
    PCA,
    Autoencoder,
    DenoisingAutoencoder,
    DiagonalGaussian,
    GaussianMixture,
    LinearAutoencoder,
    build,
    principal_angles,
)
from minivae.optim import Adam

TOL = 1e-7          # a correct backward, float64 central differences with step H
H = 1e-5            # not 1e-6: a whole-model loss L ~ 4 nats with gradients ~ 1e-3 (early
                    # layers) leaves a rounding error ~ 1e-16 L / (h |g|) ~ 1e-7 at h = 1e-6;
                    # at 1e-5 it is ~ 1e-8, and the truncation error (~ h^2) stays below it


def model_grad_errors(model, x, **loss_kwargs):
    """{param name: relative error} of model.backward() against central differences of loss."""
    model.zero_grad()
    model.loss(x, **loss_kwargs)
    model.backward()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    params = model.params
    assert set(analytic) == set(params) and params
    return {k: check_grad(lambda: model.loss(x, **loss_kwargs), p, analytic[k], h=H)
            for k, p in params.items()}


def low_rank_data(rng, N=400, D=8, K=3, scales=(3.0, 2.0, 1.5), noise=0.05):
    """N points near a K-dimensional affine subspace of R^D, with distinct variances."""
    basis = np.linalg.qr(rng.standard_normal((D, K)))[0]                 # (D, K)
    codes = rng.standard_normal((N, K)) * np.asarray(scales)             # (N, K)
    return codes @ basis.T + noise * rng.standard_normal((N, D)) + rng.standard_normal(D)


# ---- whole-model gradient checks ----

@pytest.mark.parametrize("output,activation", [("bernoulli", "relu"), ("mse", "relu"),
                                               ("bernoulli", "tanh"), ("mse", "tanh")])
def test_autoencoder_gradients(output, activation):
    rng = np.random.default_rng(0)
    model = Autoencoder(6, hidden=(5, 4), z_dim=3, output=output, activation=activation,
                        rng=1, dtype=np.float64)
    x = rng.random((4, 6)) if output == "bernoulli" else rng.standard_normal((4, 6))
    errors = model_grad_errors(model, x)
    assert set(errors) == {f"{part}.{i}.{p}" for part in ("encoder", "decoder")
                           for i in range(3) for p in "Wb"}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("noise", ["gaussian", "masking"])
@pytest.mark.parametrize("output", ["bernoulli", "mse"])
def test_denoising_autoencoder_gradients_with_fixed_noise(noise, output):
    rng = np.random.default_rng(1)
    model = DenoisingAutoencoder(6, hidden=(5,), z_dim=2, output=output, activation="tanh",
                                 noise=noise, noise_level=0.4, rng=2, dtype=np.float64)
    x = rng.random((5, 6))
    x_tilde = model.corrupt(x, rng)
    assert not np.array_equal(x_tilde, x)
    errors = model_grad_errors(model, x, x_tilde=x_tilde)
    assert max(errors.values()) < TOL, errors


def test_linear_autoencoder_gradients():
    rng = np.random.default_rng(2)
    model = LinearAutoencoder(7, 3, rng=3, dtype=np.float64)
    errors = model_grad_errors(model, rng.standard_normal((5, 7)))
    assert set(errors) == {"encoder.W", "encoder.b", "decoder.W", "decoder.b"}
    assert max(errors.values()) < TOL, errors


def test_gradcheck_catches_a_backward_that_forgets_the_batch_mean():
    rng = np.random.default_rng(3)
    model = LinearAutoencoder(4, 2, rng=0, dtype=np.float64)
    x = rng.standard_normal((6, 4))
    right = model.backward

    def summed_not_averaged():                   # the gradient of the batch *sum* of the loss
        right()
        for g in model.grads.values():
            g *= x.shape[0]

    model.backward = summed_not_averaged
    assert max(model_grad_errors(model, x).values()) > 0.5


# ---- PCA ----

@pytest.mark.parametrize("method", ["eigh", "svd"])
def test_pca_matches_covariance_eigenvectors(method):
    rng = np.random.default_rng(4)
    x = low_rank_data(rng, noise=0.3)
    N, D, K = x.shape[0], x.shape[1], 3
    pca = PCA(K, method=method, dtype=np.float64).fit(x)
    evals, evecs = np.linalg.eigh(np.cov(x, rowvar=False))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(pca.explained_variance_, evals[:K], rtol=1e-10)
    np.testing.assert_allclose(np.abs(pca.components_ @ evecs[:, :K]), np.eye(K), atol=1e-8)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(K), atol=1e-12)
    np.testing.assert_allclose(pca.mean_, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_ratio_, evals[:K] / evals.sum(),
                               rtol=1e-10)
    # reconstruction error = (N - 1) * the sum of the discarded eigenvalues
    sse = np.sum((pca.reconstruct(x) - x) ** 2)
    np.testing.assert_allclose(sse, (N - 1) * evals[K:].sum(), rtol=1e-9)
    np.testing.assert_allclose(pca.loss(x), sse / N, rtol=1e-12)
    assert pca.encode(x).shape == (N, K) and pca.decode(pca.encode(x)).shape == (N, D)


def test_pca_methods_agree_signs_included():
    x = low_rank_data(np.random.default_rng(5))
    a = PCA(3, method="eigh", dtype=np.float64).fit(x)
    b = PCA(3, method="svd", dtype=np.float64).fit(x)
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-9)
    np.testing.assert_allclose(a.explained_variance_, b.explained_variance_, rtol=1e-10)


def test_pca_all_components_reconstruct_exactly_and_float32():
    x = np.random.default_rng(6).random((50, 5)).astype(np.float32)
    pca = PCA(5).fit(x)
    assert pca.components_.dtype == np.float32
    np.testing.assert_allclose(pca.reconstruct(x), x, atol=1e-5)
    np.testing.assert_allclose(pca.explained_variance_ratio_.sum(), 1.0, rtol=1e-5)
    assert pca.grads == {}
    pca.zero_grad()


# ---- the linear autoencoder finds the PCA subspace ----

def test_principal_angles_basics():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((6, 3))
    mix = rng.standard_normal((3, 3)) + 3 * np.eye(3)                    # invertible
    assert np.max(principal_angles(A, A @ mix)) < 1e-13                  # same column space
    E = np.eye(6)
    np.testing.assert_allclose(principal_angles(E[:, :2], E[:, 2:5]), np.pi / 2, atol=1e-15)
    for t in (1e-10, 1e-4, 0.3, 1.2):                                    # a known angle
        b = np.cos(t) * E[:, :1] + np.sin(t) * E[:, 1:2]
        np.testing.assert_allclose(principal_angles(E[:, :1], b), [t], rtol=1e-9)
    theta = principal_angles(np.hstack([E[:, :1], b]), E[:, :4])      # p != q, ascending
    assert theta.shape == (2,) and np.all(np.diff(theta) >= 0)
    assert np.max(principal_angles(E[:, :2], np.hstack([E[:, 1:2], E[:, 0:1] + E[:, 1:2]]))
                  ) < 1e-15


def test_linear_autoencoder_converges_to_the_pca_subspace():
    rng = np.random.default_rng(8)
    x = low_rank_data(rng, N=50, D=5)                    # small: fast with NUMBA_DISABLE_JIT=1
    pca = PCA(3, dtype=np.float64).fit(x)
    model = LinearAutoencoder(5, 3, rng=1, dtype=np.float64)
    start = np.max(principal_angles(model.decoder_basis, pca.components_.T))
    opt = Adam(model.params, lr=3e-2)
    for _ in range(500):                                 # < 1e-2 rad after ~100-200 steps
        model.zero_grad()
        loss = model.loss(x)
        model.backward()
        opt.step(model.grads)
    angles = principal_angles(model.decoder_basis, pca.components_.T)
    assert start > 0.3 and np.max(angles) < 1e-2, (start, angles)
    assert pca.loss(x) <= loss < 1.5 * pca.loss(x)
    # the weights are determined only up to an invertible map: this gives the same x^
    Wd = model.decoder.params["W"]
    assert np.max(np.abs(Wd @ Wd.T - np.eye(3))) > 0.1                  # rows not orthonormal
    mix = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    before = model.reconstruct(x)
    model.encoder.params["W"][...] = model.encoder.params["W"] @ mix
    model.encoder.params["b"][...] = model.encoder.params["b"] @ mix
    model.decoder.params["W"][...] = np.linalg.solve(mix, Wd)
    np.testing.assert_allclose(model.reconstruct(x), before, atol=1e-10)


# ---- the autoencoders ----

def test_autoencoder_decode_gives_probabilities_and_shapes():
    model = Autoencoder(8, hidden=(6,), z_dim=2, rng=0)
    x = np.random.default_rng(9).random((3, 8)).astype(np.float32)
    z = model.encode(x)
    assert z.shape == (3, 2) and z.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = model.decode(np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]], np.float32))
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(p))
    loss = model.loss(x)
    assert np.isclose(loss, model.last["loss"].mean()) and loss > 0


def test_denoising_corruption_and_fresh_noise_each_call():
    x = np.full((200, 50), 0.5, np.float32)
    mask = DenoisingAutoencoder(50, hidden=(4,), z_dim=2, noise="masking", noise_level=0.3,
                                rng=0)
    xt = mask.corrupt(x)
    assert set(np.unique(xt)) == {0.0, 0.5} and abs(np.mean(xt == 0) - 0.3) < 0.02
    gauss = DenoisingAutoencoder(50, hidden=(4,), z_dim=2, output="mse", noise_level=0.2, rng=0)
    assert abs(np.std(gauss.corrupt(x) - x) - 0.2) < 0.01
    assert gauss.loss(x) != gauss.loss(x)                                # fresh noise per call
    plain = Autoencoder(50, hidden=(4,), z_dim=2, output="mse", rng=0)
    np.testing.assert_array_equal(gauss.reconstruct(x), plain.reconstruct(x))   # clean input


def test_denoise_takes_a_gaussian_corrupted_input_outside_0_1():
    """A Bernoulli-output DAE with Gaussian noise: reconstruct refuses x~ (pixels outside
    [0, 1]); denoise takes it, and gives what decode(encode) would on the same input."""
    x = np.random.default_rng(0).uniform(size=(20, 6)).astype(np.float32)
    model = DenoisingAutoencoder(6, hidden=(5,), z_dim=2, noise="gaussian", noise_level=0.5,
                                 rng=0)
    xt = model.corrupt(x)
    assert xt.min() < 0 or xt.max() > 1
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        model.reconstruct(xt)
    out = model.denoise(xt)
    assert out.shape == x.shape and out.dtype == np.float32 and 0 <= out.min() <= out.max() <= 1
    np.testing.assert_array_equal(out, model.decode(model.encoder.forward(xt)))
    np.testing.assert_array_equal(model.denoise(x), model.reconstruct(x))
    bad = xt.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="x_tilde"):
        model.denoise(bad)


# ---- config round trips ----

def _models():
    return [LinearAutoencoder(5, 2, rng=0),
            Autoencoder(5, hidden=(4, 3), z_dim=2, output="mse", activation="tanh", rng=0),
            Autoencoder(5, hidden=(4,), z_dim=2, rng=0, dtype=np.float64),
            DenoisingAutoencoder(5, hidden=(4,), z_dim=2, noise="masking", noise_level=0.5,
                                 rng=0)]


@pytest.mark.parametrize("model", _models(), ids=repr)
def test_build_config_round_trip(model):
    config = json.loads(json.dumps(model.config()))
    assert MODELS[config["model"]] is type(model)
    twin = build(config, rng=123)
    assert twin.config() == model.config()
    x = np.random.default_rng(10).random((4, 5)).astype(model.dtype)
    assert not np.array_equal(twin.reconstruct(x), model.reconstruct(x))
    for k, p in twin.params.items():
        p[...] = model.params[k]
    np.testing.assert_array_equal(twin.reconstruct(x), model.reconstruct(x))
    kw = {"x_tilde": model.corrupt(x)} if isinstance(model, DenoisingAutoencoder) else {}
    assert twin.loss(x, **kw) == model.loss(x, **kw)


def test_pca_build_round_trip():
    x = low_rank_data(np.random.default_rng(11)).astype(np.float32)
    pca = PCA(2).fit(x)
    twin = build(json.loads(json.dumps(pca.config())))
    assert set(twin.params) == set(pca.params)
    for k, p in twin.params.items():
        p[...] = pca.params[k]
    np.testing.assert_array_equal(twin.reconstruct(x), pca.reconstruct(x))
    np.testing.assert_array_equal(twin.explained_variance_ratio_, pca.explained_variance_ratio_)


# ---- latent densities ----

def test_diagonal_gaussian_fit_log_prob_and_sample():
    rng = np.random.default_rng(12)
    z = (rng.standard_normal((1000, 3)) * [0.5, 1.0, 2.0] + [1.0, -1.0, 0.0]).astype(np.float32)
    g = DiagonalGaussian(reg=0.0).fit(z)
    np.testing.assert_allclose(g.mean_, z.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(g.var_, z.astype(np.float64).var(axis=0), rtol=1e-12)
    q = z[:5].astype(np.float64)
    direct = np.sum(-0.5 * np.log(2 * np.pi * g.var_) - (q - g.mean_) ** 2 / (2 * g.var_), 1)
    np.testing.assert_allclose(g.log_prob(z[:5]), direct, rtol=1e-12)
    s = g.sample(20000, np.random.default_rng(0))
    assert s.dtype == np.float32 and s.shape == (20000, 3)
    np.testing.assert_allclose(s.mean(axis=0), g.mean_, atol=0.05)
    np.testing.assert_allclose(s.var(axis=0), g.var_, rtol=0.05)


def three_clusters(rng, n=300):
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    rot = np.array([[1.0, 0.6], [0.0, 0.8]])
    z = np.concatenate([rng.standard_normal((n, 2)) @ rot + m for m in means])
    return z[rng.permutation(len(z))], means


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_recovers_separated_clusters(covariance):
    # k-means++ init (the default); random responsibilities start every component near the
    # global mean, and EM can then settle in a poor local optimum (it does here for "diag")
    z, means = three_clusters(np.random.default_rng(13))
    gmm = GaussianMixture(3, covariance=covariance, tol=1e-8, rng=0).fit(z)
    assert gmm.converged_ and gmm.n_iter_ < gmm.max_iter
    order = [int(np.argmin(np.sum((gmm.means_ - m) ** 2, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(gmm.means_[order], means, atol=0.2)
    np.testing.assert_allclose(gmm.weights_, 1 / 3, atol=0.02)
    if covariance == "full":
        np.testing.assert_allclose(gmm.covariances_[order[0]], [[1.0, 0.6], [0.6, 1.0]],
                                   atol=0.25)
    assert np.isclose(gmm.score(z), gmm.log_prob(z).mean())
    s = gmm.sample(3000, np.random.default_rng(1))
    assert s.shape == (3000, 2) and abs(gmm.score(s) - gmm.score(z)) < 0.1


@pytest.mark.parametrize("covariance", ["full", "diag"])
@pytest.mark.parametrize("reg", [0.0, 1e-2])
def test_gmm_em_never_decreases_its_objective(covariance, reg):
    rng = np.random.default_rng(14)
    z = np.concatenate([rng.standard_normal((150, 3)) * 0.7 + c
                        for c in rng.standard_normal((4, 3)) * 2])  # overlapping: many steps
    gmm = GaussianMixture(5, covariance=covariance, init="random", reg=reg, tol=0,
                          max_iter=60, rng=3).fit(z)
    h = np.array(gmm.history_)
    assert len(h) == 61 and h[-1] - h[0] > 0.1
    assert np.all(np.diff(h) >= -1e-12 * np.abs(h[1:])), np.diff(h).min()
    if reg == 0:
        np.testing.assert_allclose(h[-1], gmm.score(z), rtol=1e-12)   # J = log-likelihood


def test_gmm_one_diag_component_is_the_diagonal_gaussian():
    z = np.random.default_rng(15).standard_normal((100, 3)) * [1.0, 2.0, 3.0]
    gmm = GaussianMixture(1, covariance="diag", reg=0.0).fit(z)
    g = DiagonalGaussian(reg=0.0).fit(z)
    np.testing.assert_allclose(gmm.log_prob(z), g.log_prob(z), rtol=1e-12)


def test_gmm_log_prob_is_stable_far_from_the_data():
    z, _ = three_clusters(np.random.default_rng(16), n=50)
    gmm = GaussianMixture(3, rng=0).fit(z)
    far = np.array([[1e4, -1e4]])
    lp = gmm.log_prob(far)
    assert np.isfinite(lp).all() and lp[0] < -1e6


# ---- bad inputs ----

def test_bad_inputs_raise_input_error_naming_the_model():
    ae = Autoencoder(4, hidden=(3,), z_dim=2, rng=0)
    x = np.random.default_rng(0).random((2, 4)).astype(np.float32)
    cases = [
        (lambda: ae.loss(x[:, :3]), "Autoencoder.loss: expected x of shape"),
        (lambda: ae.loss(x.astype(np.float64)), "dtype float32"),
        (lambda: ae.loss(x * 2), r"x in \[0, 1\]"),
        (lambda: ae.loss(np.full((2, 4), np.nan, np.float32)), "NaN"),
        (lambda: ae.encode(x.tolist()), "numpy array"),
        (lambda: ae.decode(np.zeros((2, 3), np.float32)), "Autoencoder.decode"),
        (lambda: Autoencoder(4, rng=0).backward(), "before loss"),
        (lambda: Autoencoder(4, output="gaussian"), "output must be"),
        (lambda: Autoencoder(4, activation="swish"), "activation must be"),
        (lambda: DenoisingAutoencoder(4, noise="salt"), "noise must be"),
        (lambda: DenoisingAutoencoder(4, noise="masking", noise_level=1.0), "noise_level"),
        (lambda: DenoisingAutoencoder(4, hidden=(3,), z_dim=2).loss(x, x_tilde=x[:1]),
         "x_tilde"),
        (lambda: LinearAutoencoder(4, 2).loss(x[:, :2]), "LinearAutoencoder.loss"),
        (lambda: LinearAutoencoder(4, 2).backward(), "before loss"),
        (lambda: PCA(2).encode(x), "not fitted"),
        (lambda: PCA(5).fit(x), "n_components=5"),
        (lambda: PCA(2).fit(x).encode(x[:, :3]), "PCA.encode"),
        (lambda: PCA(2).backward(), "closed form"),
        (lambda: PCA(2, method="qr"), "method"),
        (lambda: principal_angles(np.eye(4)[:, :2], np.eye(3)[:, :2]), "same number of rows"),
        (lambda: GaussianMixture(3).fit(x[:2]), "at least as many points"),
        (lambda: GaussianMixture(1).fit(x).log_prob(x[:, :2]), "GaussianMixture.log_prob"),
        (lambda: GaussianMixture(2, covariance="spherical"), "covariance must be"),
        (lambda: GaussianMixture(2).sample(3), "not fitted"),
        (lambda: DiagonalGaussian().log_prob(x), "not fitted"),
        (lambda: DiagonalGaussian(reg=0).fit(np.ones((3, 2))), "constant"),
    ]
    for call, match in cases:
        with pytest.raises(InputError, match=match):
            call()
    with pytest.raises(ValueError, match="unknown model"):
        build({"model": "diffusion"})
