"""The MMD estimator and the Wasserstein autoencoder: the estimator against its formula, its
gradient against central differences, its mean against the closed form for two Gaussians
(it is unbiased), and the WAE gradient-checked as a whole, trained with minivae.train.fit,
pulling its aggregate posterior towards the prior."""

import numpy as np
import pytest
from helpers import CHECK, FEW, TOL, TOL_CHAIN, grad_ok, mean_and_se, seeds
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.gradcheck import check_model
from minivae.mmd import KERNELS, mmd, mmd2_gaussians_rbf
from minivae.models import WAE, Autoencoder, build, parameter_count
from minivae.optim import Adam
from minivae.train import fit

f64 = np.float64


def brute_force_mmd(x, y, k):
    """The unbiased MMD^2, one pair at a time."""
    N, M = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(N) for j in range(N) if i != j) / (N * (N - 1))
    yy = sum(k(y[i], y[j]) for i in range(M) for j in range(M) if i != j) / (M * (M - 1))
    xy = sum(k(x[i], y[j]) for i in range(N) for j in range(M)) / (N * M)
    return xx + yy - 2 * xy


# ---- the estimator ----

@CHECK
@given(seed=seeds, N=st.integers(2, 6), M=st.integers(2, 6), Z=st.integers(1, 4),
       kernel=st.sampled_from(KERNELS), scale=st.sampled_from([None, 0.5, 3.0]))
def test_mmd_value_and_gradient(seed, N, M, Z, kernel, scale):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, Z)), 0.5 + rng.standard_normal((M, Z))
    value, dx = mmd(x, y, kernel, scale)
    C = 2.0 * Z if scale is None else scale
    k = {"rbf": lambda a, b: np.exp(-((a - b) ** 2).sum() / C),
         "imq": lambda a, b: C / (C + ((a - b) ** 2).sum())}[kernel]
    assert value == pytest.approx(brute_force_mmd(x, y, k), rel=1e-10, abs=1e-13)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert grad_ok(lambda: mmd(x, y, kernel, scale)[0], x, dx, TOL)


@pytest.mark.parametrize("N", [3, 20])
def test_mmd_is_unbiased_and_matches_the_closed_form_for_two_gaussians(N):
    """The mean of the estimator over many samples is the exact MMD^2 (rbf kernel, two
    Gaussians: closed form), to within 4 standard errors, even for samples of 3."""
    rng = np.random.default_rng(N)
    m1, S1 = np.array([0.6, -0.2]), np.array([[1.0, 0.4], [0.4, 0.6]])
    m2, S2 = np.zeros(2), np.eye(2)
    L1 = np.linalg.cholesky(S1)
    C = 3.0
    exact = mmd2_gaussians_rbf(m1, S1, m2, S2, C)
    draws = [mmd(m1 + rng.standard_normal((N, 2)) @ L1.T, rng.standard_normal((N, 2)),
                 "rbf", C)[0] for _ in range(4000)]
    mean, se = mean_and_se(draws)
    assert abs(mean - exact) < 4 * se, (mean, se, exact)
    # the same samples of one distribution: MMD^2 = 0, and the estimator averages to 0
    same = [mmd(rng.standard_normal((N, 2)), rng.standard_normal((N, 2)), "imq")[0]
            for _ in range(2000)]
    mean, se = mean_and_se(same)
    assert abs(mean) < 4 * se


def test_closed_form_properties():
    m, S = np.array([0.3, 1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    assert mmd2_gaussians_rbf(m, S, m, S, 2.0) == pytest.approx(0.0, abs=1e-15)
    a = mmd2_gaussians_rbf(m, S, np.zeros(2), np.eye(2), 2.0)
    assert a == pytest.approx(mmd2_gaussians_rbf(np.zeros(2), np.eye(2), m, S, 2.0), rel=1e-14)
    # one dimension, written out: E exp(-d^2 / C) = (1 + 2 s^2 / C)^(-1/2) exp(-mu^2 / (2 s^2 + C))
    e = lambda mu, s2: (1 + 2 * s2 / 2.0) ** -0.5 * np.exp(-mu ** 2 / (2 * s2 + 2.0))
    want = e(0, 2 * 0.7) + e(0, 2 * 1.3) - 2 * e(0.4, 0.7 + 1.3)
    got = mmd2_gaussians_rbf(np.array([0.4]), [[0.7]], np.array([0.0]), [[1.3]], 2.0)
    assert got == pytest.approx(want, rel=1e-13)


def test_mmd_refuses_bad_input():
    x = np.zeros((3, 2))
    for call, words in [
        (lambda: mmd(x, np.zeros((3, 3))), ("mmd", "y", "(N, 2)")),
        (lambda: mmd(x[:1], x), ("mmd", "at least 2")),
        (lambda: mmd(x, x.astype(np.float32)), ("mmd", "float64")),
        (lambda: mmd(x, x, "gaussian"), ("mmd", "kernel")),
        (lambda: mmd(x, x, "rbf", 0.0), ("mmd", "scale")),
        (lambda: mmd(x, x, "rbf", True), ("mmd", "scale")),
        (lambda: mmd(x + np.nan, x), ("mmd", "NaN")),
        (lambda: mmd([[0.0]], x), ("mmd", "numpy array")),
    ]:
        with pytest.raises(InputError) as info:
            call()
        assert all(w in str(info.value) for w in words), str(info.value)


# ---- the model ----

@FEW
@given(seed=seeds, N=st.integers(2, 6), output=st.sampled_from(["bernoulli", "mse"]),
       kernel=st.sampled_from(KERNELS), lam=st.sampled_from([0.0, 1.0, 30.0]))
def test_wae_whole_model_gradient(seed, N, output, kernel, lam):
    rng = np.random.default_rng(seed)
    wae = WAE(6, (5,), 3, output=output, activation="tanh", lam=lam, kernel=kernel, rng=seed,
              dtype=f64)
    x, z_prior = rng.random((N, 6)), rng.standard_normal((N + 1, 3))
    errors = check_model(wae, x, z_prior=z_prior)
    assert max(errors.values()) < TOL_CHAIN, errors


def test_conv_wae_whole_model_gradient():
    rng = np.random.default_rng(0)
    wae = WAE(36, (5,), 2, activation="tanh", arch="conv", image_shape=(1, 6, 6),
              channels=(2,), rng=0, dtype=f64)
    errors = check_model(wae, rng.random((3, 36)), z_prior=rng.standard_normal((3, 2)))
    assert max(errors.values()) < TOL_CHAIN, errors


def test_wae_is_the_autoencoder_plus_lam_times_the_mmd():
    rng = np.random.default_rng(1)
    x, z_prior = rng.random((5, 6)), rng.standard_normal((5, 3))
    wae = WAE(6, (4,), 3, lam=7.0, rng=2, dtype=f64)
    ae = Autoencoder(6, (4,), 3, rng=2, dtype=f64)              # the same weights
    for k, p in ae.params.items():
        np.testing.assert_array_equal(p, wae.params[k])
    codes = wae.encode(x)
    loss = wae.loss(x, z_prior)
    assert loss == pytest.approx(ae.loss(x) + 7.0 * mmd(codes, z_prior)[0], rel=1e-13)
    assert wae.last["loss"].mean() == pytest.approx(loss, rel=1e-13)
    wae.zero_grad()
    wae.loss(x, z_prior)
    wae.backward()
    ae.zero_grad()
    ae.loss(x)
    ae.backward()
    for k, g in ae.grads.items():                                 # the decoder: recon only
        if k.startswith("decoder"):
            np.testing.assert_allclose(wae.grads[k], g, rtol=1e-13, atol=1e-15)
    assert any(not np.allclose(wae.grads[k], g) for k, g in ae.grads.items()
               if k.startswith("encoder"))                        # the encoder: + the MMD


def codes_mmd(model, x, rng):
    z = model.encode(x).astype(f64)
    return np.mean([mmd(z, rng.standard_normal(z.shape))[0] for _ in range(20)])


def test_wae_trains_with_fit_and_matches_its_codes_to_the_prior():
    """Trained the same way, the WAE's codes are closer to N(0, I) than a plain autoencoder's
    (lam = 0): an MMD to prior draws several times smaller, a mean near 0 and a variance
    towards 1 in each dimension (0.66 and 0.73 after these 12 epochs, 0.8 after 30; the
    autoencoder's codes: 2.7 and 3.7)."""
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((3, 16))
    x = 1 / (1 + np.exp(-(rng.standard_normal((512, 3)) * 2 @ basis)))   # (512, 16) in (0, 1)
    x = x.astype(np.float32)
    models = {}
    for lam in (0.0, 30.0):
        models[lam] = WAE(16, (16,), 2, lam=lam, rng=1)
        history = fit(models[lam], x, Adam(models[lam].params, lr=3e-3), 12, 64, rng=2)
        assert history[-1]["train_loss"] < history[0]["train_loss"]
        assert {"train_recon", "train_mmd"} <= set(history[-1])
    ae, wae = models[0.0], models[30.0]
    assert codes_mmd(wae, x, rng) < codes_mmd(ae, x, rng) / 3
    z = wae.encode(x).astype(f64)
    assert np.all(np.abs(z.mean(axis=0)) < 0.2) and np.all(np.abs(z.var(axis=0) - 1) < 0.5), (
        z.mean(axis=0), z.var(axis=0))
    s = wae.sample(10, rng=3)
    assert s.shape == (10, 16) and np.all((s >= 0) & (s <= 1))


def test_wae_config_build_and_parameter_count():
    for wae in (WAE(10, (6,), 3), WAE(8, (), 2, lam=0.5, kernel="rbf", scale=2.0, output="mse"),
                WAE(36, (5,), 2, arch="conv", image_shape=(1, 6, 6), channels=(2,))):
        config = wae.config()
        rebuilt = build(config, rng=0)
        assert type(rebuilt) is WAE and rebuilt.config() == config
        assert parameter_count(config) == sum(v.size for v in wae.params.values())


def test_wae_refuses_bad_input():
    x = np.full((3, 4), 0.5, np.float32)
    wae = WAE(4, (3,), 2, rng=0)
    for call, words in [
        (lambda: WAE(4, lam=-1.0), ("WAE", "lam")),
        (lambda: WAE(4, kernel="gaussian"), ("WAE", "kernel")),
        (lambda: WAE(4, scale=0), ("WAE", "scale")),
        (lambda: WAE(0), ("WAE", "x_dim")),
        (lambda: wae.loss(x, z_prior=np.zeros((3, 3), np.float32)), ("WAE.loss", "z_prior")),
        (lambda: wae.loss(x + 1), ("WAE.loss", "[0, 1]")),
        (lambda: wae.loss(x[:1]), ("mmd", "at least 2")),
        (lambda: wae.backward(), ("WAE.backward", "before loss")),
        (lambda: wae.sample(0), ("WAE.sample", "n")),
    ]:
        with pytest.raises(InputError) as info:
            call()
        assert all(w in str(info.value) for w in words), str(info.value)
