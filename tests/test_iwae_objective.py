"""The importance-weighted objective (minivae/models/iwae.py): its value is the k-sample bound,
its hand-written gradient matches central differences, and at k = 1 it is the VAE's gradient
in expectation (exactly, for the decoder)."""

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.gradcheck import check_model
from minivae.models import IWAE, VAE, build, parameter_count
from minivae.optim import Adam
from minivae.train import fit

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")


def small(cls, likelihood="bernoulli", dtype=np.float64, seed=0, **kw):
    return cls(6, hidden=(5,), z_dim=3, likelihood=likelihood, dtype=dtype, rng=seed,
               activation="tanh", **kw)


def data(n, dtype=np.float64, seed=1):
    return np.random.default_rng(seed).random((n, 6)).astype(dtype)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("k", [1, 2, 5])
def test_the_iwae_gradient_matches_central_differences(likelihood, k):
    model = small(IWAE, likelihood, k=k)
    x = data(4)
    eps = np.random.default_rng(2).standard_normal((4, k, 3))
    errors = check_model(model, x, eps=eps)
    assert max(errors.values()) < 1e-6, errors


def test_the_conv_iwae_gradient_matches_central_differences():
    model = IWAE(64, hidden=(), z_dim=2, k=3, dtype=np.float64, rng=0, arch="conv",
                 image_shape=(1, 8, 8), channels=(2, 3))
    x = np.random.default_rng(1).random((2, 64))
    eps = np.random.default_rng(2).standard_normal((2, 3, 2))
    assert max(check_model(model, x, eps=eps).values()) < 1e-6


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_the_loss_is_minus_the_k_sample_bound_of_the_vaes_log_weights(likelihood):
    iwae, vae = small(IWAE, likelihood, k=7), small(VAE, likelihood)     # the same weights
    x, eps = data(5), np.random.default_rng(3).standard_normal((5, 7, 3))
    loss = iwae.loss(x, eps=eps)
    log_w = vae.log_weights(x, eps)                                      # (5, 7), float64
    bound = np.log(np.mean(np.exp(log_w), axis=1))                       # plain, not stable
    np.testing.assert_allclose(iwae.last["loss"], -bound, rtol=1e-10, atol=1e-10)
    assert loss == pytest.approx(-bound.mean(), rel=1e-12)
    w = np.exp(log_w) / np.exp(log_w).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(iwae.last["ess"], 1 / (w ** 2).sum(axis=1), rtol=1e-10)


def grads_for(model, x, eps):
    model.zero_grad()
    model.loss(x, eps=eps)
    model.backward()
    return {name: g.copy() for name, g in model.grads.items()}


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_at_k_1_the_decoder_gradient_is_the_vaes(likelihood):
    iwae, vae = small(IWAE, likelihood, k=1), small(VAE, likelihood)
    x, eps = data(8), np.random.default_rng(4).standard_normal((8, 1, 3))
    gi, gv = grads_for(iwae, x, eps), grads_for(vae, x, eps[:, 0])
    decoder = [name for name in gv if name.startswith("decoder")]
    assert decoder
    for name in decoder:
        np.testing.assert_allclose(gi[name], gv[name], rtol=1e-12, atol=1e-14)


def test_at_k_1_the_encoder_gradient_is_the_vaes_in_expectation():
    """The VAE takes the KL's gradient exactly; k = 1 estimates it from the sample. Over many
    draws of eps the difference averages to 0, within 5 standard errors for every entry."""
    iwae, vae = small(IWAE, k=1), small(VAE)
    x = data(3)
    rng = np.random.default_rng(5)
    diffs = []
    for _ in range(4000):
        eps = rng.standard_normal((3, 1, 3))
        gi, gv = grads_for(iwae, x, eps), grads_for(vae, x, eps[:, 0])
        diffs.append(np.concatenate([(gi[n] - gv[n]).ravel() for n in gv
                                     if n.startswith("encoder")]))
    diffs = np.array(diffs)                                              # (draws, entries)
    mean, se = diffs.mean(axis=0), diffs.std(axis=0, ddof=1) / np.sqrt(len(diffs))
    assert np.all(se > 0)                                                # the draws do differ
    assert np.all(np.abs(mean) < 5 * se), np.max(np.abs(mean) / se)


def test_a_wrong_weighting_fails_the_gradient_check():
    """The check bites: a backward that weights every sample by 1/k instead of w~_i (the
    gradient of the mean of log w_i, the k-sample ELBO) does not match the bound's."""
    model = small(IWAE, k=4)
    x, eps = data(4), np.random.default_rng(6).standard_normal((4, 4, 3))
    loss = model.loss

    def uniform_weights(x, eps=None):
        value = loss(x, eps=eps)
        N, g, dout, z = model.cache
        model.cache = (N, np.full_like(g, 1 / (N * 4)), dout, z)
        return value

    model.loss = uniform_weights
    assert max(check_model(model, x, eps=eps).values()) > 1e-3


def test_training_on_the_bound_lowers_it():
    model = IWAE(6, hidden=(16,), z_dim=2, k=5, rng=0)
    rng = np.random.default_rng(8)                                       # two patterns, 5 %
    patterns = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1]], np.float32)   # flipped bits
    x = np.abs(patterns[rng.integers(0, 2, 256)] - (rng.random((256, 6)) < 0.05))
    x = x.astype(np.float32)                                              # 6 log 2 = 4.2 nats
    eps = np.random.default_rng(7).standard_normal((256, 5, 2)).astype(np.float32)
    before = model.loss(x, eps=eps)
    history = fit(model, x, Adam(model.params, lr=1e-2), 20, batch_size=32, rng=0)
    assert "train_ess" in history[-1] and 1 <= history[-1]["train_ess"] <= 5
    assert model.loss(x, eps=eps) < before - 1.0


def test_config_builds_the_same_model_and_counts_its_parameters():
    model = IWAE(12, hidden=(7,), z_dim=3, k=9, rng=0)
    again = build(model.config(), rng=0)
    assert isinstance(again, IWAE) and again.k == 9
    assert parameter_count(model.config()) == sum(p.size for p in model.params.values())
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, again.params[name])


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k >= 1"), ({"k": 2.5}, "k >= 1"), ({"beta": 4.0}, "beta = 1")])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        small(IWAE, **kwargs)


def test_eps_of_the_wrong_shape_is_refused():
    model = small(IWAE, k=3)
    with pytest.raises(InputError, match="eps"):
        model.loss(data(4), eps=np.zeros((4, 2, 3)))


# ---- the papers' initialisation ----

def test_glorot_init_draws_w_within_its_bound_with_its_variance_and_zero_biases():
    model = IWAE(784, hidden=(200, 200), z_dim=50, k=5, activation="tanh", init="glorot",
                 rng=0)
    for name, p in model.params.items():
        if name.endswith(".b"):
            assert not p.any(), name
            continue
        a = np.sqrt(6 / (p.shape[0] + p.shape[1]))
        assert np.abs(p).max() <= a
        assert p.std() == pytest.approx(a / np.sqrt(3), rel=0.05)      # U(-a, a): a / sqrt 3
    assert build(model.config(), rng=0).params["encoder.0.W"].tolist() == \
        model.params["encoder.0.W"].tolist()


def test_uniform_is_the_default_and_glorot_is_refused_for_convolutions():
    assert VAE(8, hidden=(4,), z_dim=2, rng=0).config()["init"] == "uniform"
    with pytest.raises(InputError, match="dense layers"):
        VAE(64, hidden=(), z_dim=2, arch="conv", image_shape=(1, 8, 8), channels=(2, 3),
            init="glorot")
    with pytest.raises(InputError, match="glorot"):
        VAE(8, hidden=(4,), z_dim=2, init="xavier")


def test_a_kl_warm_up_is_refused_for_the_iwae_which_has_no_kl_term():
    from minivae.train import KLWarmup
    with pytest.raises(InputError, match="KL term"):
        KLWarmup(small(IWAE, k=2), 3)
    assert KLWarmup(small(VAE), 3).epochs == 3
