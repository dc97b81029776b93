"""minivae.models.VAE: the whole-model gradient check for every likelihood, depth and
beta; the loss convention; the IWAE bound (against -loss, against itself for growing k,
against log p(x) by quadrature, across chunk sizes); sampling; and bad input."""

import numpy as np
import pytest
from helpers import TOL_CHAIN, mean_and_se

from minivae import losses
from minivae.errors import InputError
from minivae.gradcheck import check_grad
from minivae.layers import Reparameterize
from minivae.models import VAE

LOG_2PI = np.log(2 * np.pi)


def data_for(likelihood, N, D, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        return (rng.random((N, D)) < 0.4).astype(dtype)
    return rng.standard_normal((N, D)).astype(dtype)


# ---- the whole-model gradient check ----

CASES = [(lik, hidden, beta, act)
         for lik in ("bernoulli", "gaussian", "gaussian-learned")
         for hidden, act in [((4,), "tanh"), ((5, 3), "softplus"), ((3, 4, 3), "tanh")]
         for beta in (0.5, 2.5)]


@pytest.mark.parametrize("likelihood, hidden, beta, activation", CASES)
def test_vae_gradient_every_parameter(likelihood, hidden, beta, activation):
    D, Z, N = 5, 2, 4
    model = VAE(D, hidden=hidden, z_dim=Z, likelihood=likelihood, beta=beta, rng=len(hidden),
                dtype=np.float64, activation=activation, sigma=0.7)
    model.kl_weight = 0.8 if beta == 2.5 else 1.0           # a warm-up weight multiplies beta
    x = data_for(likelihood, N, D, 1)
    eps = np.random.default_rng(2).standard_normal((N, Z))
    model.zero_grad()
    model.loss(x, eps=eps)
    model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert len(grads) == 4 * (len(hidden) + 1)              # every W and b of both MLPs
    errors = {k: check_grad(lambda: model.loss(x, eps=eps), p, grads[k])
              for k, p in model.params.items()}
    assert max(errors.values()) < TOL_CHAIN, errors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_and_backward_go_through_the_models_own_sampler(dtype):
    """VAE.loss samples z with self.reparam and backward takes dmu, dlogvar from it: a sampler
    of your own, put in its place, is what the model uses (lesson 5 swaps one in)."""
    class DoubledNoise(Reparameterize):
        def forward(self, mu, logvar, eps=None):
            return super().forward(mu, logvar, 2 * eps)

    x = data_for("bernoulli", 5, 7, 3, dtype)
    eps = np.random.default_rng(4).standard_normal((5, 3)).astype(dtype)
    out = []
    for sampler, noise in ((None, 2 * eps), (DoubledNoise(rng=0), eps)):
        model = VAE(7, hidden=(6,), z_dim=3, rng=0, dtype=dtype)
        if sampler is not None:
            model.reparam = sampler
        model.zero_grad()
        loss = model.loss(x, eps=noise)
        model.backward()
        assert model.reparam.eps is not None
        out.append((loss, {k: g.copy() for k, g in model.grads.items()}))
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=tol)
    for k in out[0][1]:
        np.testing.assert_allclose(out[0][1][k], out[1][1][k], rtol=tol, atol=tol)
    model.reparam = Reparameterize(rng=0)                   # the stock sampler: another loss
    assert abs(model.loss(x, eps=eps) - out[0][0]) > 1e-3


def test_backward_accumulates_and_zero_grad_resets():
    model = VAE(4, hidden=(3,), z_dim=2, rng=0, dtype=np.float64, activation="tanh")
    x, eps = data_for("bernoulli", 3, 4, 0), np.ones((3, 2))
    model.loss(x, eps=eps)
    model.backward()
    once = {k: g.copy() for k, g in model.grads.items()}
    model.backward()
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14)
    model.zero_grad()
    assert not any(g.any() for g in model.grads.values())


# ---- the loss convention ----

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_loss_is_batch_mean_of_recon_plus_beta_kl(likelihood):
    D, Z, N, beta, sigma = 5, 3, 6, 1.7, 0.4
    model = VAE(D, hidden=(4,), z_dim=Z, likelihood=likelihood, beta=beta, rng=0,
                dtype=np.float64, sigma=sigma)
    x = data_for(likelihood, N, D, 3)
    eps = np.random.default_rng(4).standard_normal((N, Z))
    loss = model.loss(x, eps=eps)

    # everything again, written out from the encoder and decoder outputs
    mu, logvar = model.encode(x)
    z = mu + np.exp(0.5 * logvar) * eps
    out = model.decoder.forward(z)
    if likelihood == "bernoulli":
        recon = (np.logaddexp(0, out) - x * out).sum(axis=1)
    else:
        mean, lv = (out, np.full_like(out, 2 * np.log(sigma))) if likelihood == "gaussian" \
            else (out[:, :D], out[:, D:])
        dens = np.exp(-(x - mean) ** 2 / (2 * np.exp(lv))) / np.sqrt(2 * np.pi * np.exp(lv))
        recon = -np.log(dens).sum(axis=1)
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1 - logvar).sum(axis=1)
    np.testing.assert_allclose(model.last["recon"], recon, rtol=1e-12)
    np.testing.assert_allclose(model.last["kl"], kl, rtol=1e-12)
    np.testing.assert_allclose(model.last["loss"], recon + beta * kl, rtol=1e-12)
    assert loss == pytest.approx(np.mean(recon + beta * kl), rel=1e-12)


# ---- the IWAE bound ----

def iwae_model(likelihood="bernoulli", Z=2, dtype=np.float32):
    """An untrained model with a q(z|x) far from the prior, so the bound has room to move."""
    model = VAE(8, hidden=(6,), z_dim=Z, likelihood=likelihood, rng=0, dtype=dtype,
                activation="tanh", sigma=0.8)
    b = model.encoder.layers[-1].params["b"]
    b[:Z], b[Z:] = 0.5, -1.0                            # mu ~ 0.5, logvar ~ -1
    return model


def test_iwae_with_one_sample_has_the_expectation_of_minus_loss():
    """E[log p(x|z) + log p(z) - log q(z|x)] = E[log p(x|z)] - KL: same mean, per example."""
    model, R = iwae_model(), 3000
    x = data_for("bernoulli", 3, 8, 0, np.float32)
    X = np.repeat(x, R, axis=0)                                     # (3R, D), example-major
    b1, se1 = mean_and_se(model.iwae_bound(X, 1, rng=1).reshape(3, R), axis=1)
    model.loss(X)                                                   # eps from model.rng
    b2, se2 = mean_and_se(-model.last["loss"].reshape(3, R), axis=1)
    se = np.sqrt(se1 ** 2 + se2 ** 2)
    assert np.all(np.abs(b1 - b2) <= 5 * se), (b1, b2, se)
    assert np.all(se < 0.05)                   # power: a missing 0.5 * logvar term is ~1 nat


def test_iwae_with_more_samples_is_higher_on_average():
    model = iwae_model()
    x = data_for("bernoulli", 3, 8, 0, np.float32)
    k1, se1 = mean_and_se(model.iwae_bound(np.repeat(x, 2000, axis=0), 1, rng=2)
                          .reshape(3, -1), axis=1)
    k50, se50 = mean_and_se(model.iwae_bound(np.repeat(x, 100, axis=0), 50, rng=3)
                            .reshape(3, -1), axis=1)
    assert np.all(k50 - k1 > -3 * np.sqrt(se1 ** 2 + se50 ** 2)), (k1, k50)
    assert (k50 - k1).mean() > 0


def log_px_by_quadrature(model, x):
    """log p(x) = log int p(x|z) N(z; 0, 1) dz for a model with one latent dimension."""
    z = np.linspace(-10, 10, 4001)[:, None]                         # (G, 1)
    logits = model.decoder.forward(z)                               # (G, D)
    loglik = -(np.logaddexp(0, logits)[None] - x[:, None] * logits[None]).sum(axis=2)  # (N, G)
    log_joint = loglik - 0.5 * (z[:, 0] ** 2 + LOG_2PI)
    m = log_joint.max(axis=1, keepdims=True)
    dz = z[1, 0] - z[0, 0]                  # the integrand is ~0 at both ends: a plain sum
    return m[:, 0] + np.log(np.exp(log_joint - m).sum(axis=1) * dz)


def test_iwae_approaches_log_px_from_below():
    model = iwae_model(Z=1, dtype=np.float64)
    # q wider than the posterior (logvar ~ 0.5), so the importance weights have a finite
    # variance and the bound converges quickly in k
    model.encoder.layers[-1].params["b"][1] = 0.5
    x = data_for("bernoulli", 3, 8, 5)
    log_px = log_px_by_quadrature(model, x)
    k1, se1 = mean_and_se(model.iwae_bound(np.repeat(x, 2000, axis=0), 1, rng=6)
                          .reshape(3, -1), axis=1)
    assert np.all(k1 < log_px - 5 * se1)                 # the ELBO is strictly below
    k_big, se_big = mean_and_se(model.iwae_bound(np.repeat(x, 8, axis=0), 1000, rng=7)
                                .reshape(3, -1), axis=1)
    assert np.all(np.abs(k_big - log_px) < 0.02 + 5 * se_big), (k_big, log_px, se_big)
    assert np.all(k_big > k1)


def test_iwae_does_not_depend_on_the_chunk_size():
    """Chunks draw eps example by example and sample by sample, in the same order whatever
    their size, so one seed gives the same bound up to float32 rounding."""
    model = iwae_model()
    x = data_for("bernoulli", 7, 8, 1, np.float32)
    ref = model.iwae_bound(x, 13, rng=5)                 # one chunk: all of x, all k samples
    assert ref.shape == (7,) and ref.dtype == np.float64 and np.isfinite(ref).all()
    assert np.array_equal(ref, model.iwae_bound(x, 13, rng=5))                # deterministic
    assert not np.allclose(ref, model.iwae_bound(x, 13, rng=6), rtol=1e-3)    # the seed matters
    for max_floats in (8 * 13 * 3, 8 * 13, 8 * 5, 8, 1):  # several examples ... one sample
        np.testing.assert_allclose(model.iwae_bound(x, 13, rng=5, max_floats=max_floats), ref,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_weights_use_the_same_bernoulli_likelihood_as_the_loss(dtype):
    """log_weights takes log p(x|z) from a value-only kernel reading x once per example;
    it must equal -bernoulli_nll of the decoded samples against x repeated m times."""
    model = iwae_model(dtype=dtype)
    x = data_for("bernoulli", 3, 8, 4, dtype)
    eps = np.random.default_rng(9).standard_normal((3, 5, model.z_dim)).astype(dtype)
    log_w = model.log_weights(x, eps)                                         # (3, 5)
    mu, logvar = (np.ascontiguousarray(a) for a in model.encode(x))
    z = mu[:, None] + np.exp(0.5 * logvar)[:, None] * eps                     # (3, 5, Z)
    logits = model.decoder.forward(z.reshape(15, -1))
    nll, _ = losses.bernoulli_nll(logits, np.repeat(x, 5, axis=0))
    want = (-nll.reshape(3, 5).astype(np.float64)
            - 0.5 * (z.astype(np.float64) ** 2 + LOG_2PI).sum(axis=2)
            + 0.5 * (eps.astype(np.float64) ** 2 + LOG_2PI + logvar[:, None]).sum(axis=2))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(log_w, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian-learned"])
def test_iwae_gaussian_likelihoods_are_finite_and_chunk_free(likelihood):
    model = iwae_model(likelihood)
    x = data_for(likelihood, 4, 8, 2, np.float32)
    ref = model.iwae_bound(x, 6, rng=1)
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(model.iwae_bound(x, 6, rng=1, max_floats=16), ref,
                               rtol=1e-5, atol=1e-5)


# ---- sample, decode, reconstruct ----

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_sample_decode_reconstruct_shapes_and_ranges(likelihood):
    model = VAE(7, hidden=(5,), z_dim=3, likelihood=likelihood, rng=0)
    s = model.sample(4, rng=1)
    assert s.shape == (4, 7) and s.dtype == np.float32 and np.isfinite(s).all()
    assert np.array_equal(s, model.sample(4, rng=1))
    z = np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32) * 50
    d = model.decode(z)
    assert d.shape == (3, 7) and d.dtype == np.float32 and np.isfinite(d).all()
    x = data_for(likelihood, 5, 7, 3, np.float32)
    r = model.reconstruct(x)
    assert r.shape == (5, 7) and r.dtype == np.float32
    if likelihood == "bernoulli":
        assert ((0 <= s) & (s <= 1)).all() and ((0 <= d) & (d <= 1)).all()
        assert ((0 <= r) & (r <= 1)).all()
    mu, _ = model.encode(x)                              # reconstruct decodes the mean of q
    np.testing.assert_allclose(r, model.decode(np.ascontiguousarray(mu)), rtol=1e-6)


# ---- bad input ----

def _raises(fn, *names):
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value), str(info.value)


def test_bad_input_raises_input_error_naming_the_vae():
    model = VAE(4, hidden=(3,), z_dim=2, rng=0)
    good = np.full((2, 4), 0.5, np.float32)
    _raises(model.backward, "VAE.backward", "before loss(x)")
    _raises(lambda: model.loss(np.full((2, 5), 0.5, np.float32)), "VAE", "expected x of shape",
            "(N, 4)")
    _raises(lambda: model.loss(good.astype(np.float64)), "VAE", "float32", "astype")
    _raises(lambda: model.loss(np.ones((2, 4), np.int64)), "VAE", "int64")
    nan = good.copy()
    nan[0, 0] = np.nan
    _raises(lambda: model.loss(nan), "VAE", "NaN")
    _raises(lambda: model.loss(np.zeros((0, 4), np.float32)), "VAE", "empty")
    _raises(lambda: model.loss(good * 3), "VAE", "expected x in [0, 1]")
    _raises(lambda: model.loss(good, eps=np.zeros((2, 3), np.float32)), "VAE.loss", "eps",
            "(2, 2)")
    _raises(lambda: model.iwae_bound(good, 0), "VAE.iwae_bound", "k >= 1")
    _raises(lambda: model.decode(np.zeros((2, 3), np.float32)), "VAE.decode", "z", "(N, 2)")
    _raises(lambda: VAE(4, likelihood="poisson"), "VAE", "likelihood")
    _raises(lambda: VAE(4, beta=-1.0), "VAE", "beta")
    _raises(lambda: VAE(4, hidden=()), "VAE", "hidden", "at least one layer size")
    model.loss(good)                                     # a good call still works afterwards
    model.backward()
