"""The reparameterization z = mu + exp(0.5 logvar) eps and the analytic KL: gradients,
the distribution of the samples, and the KL against a Monte-Carlo estimate.

Statistical tolerances come from the sample size: 5 standard errors, with
    SE(mean) = sigma / sqrt(n),   SE(sample variance) = sqrt(2 sigma^4 / (n - 1)).
Seeds are fixed, so each test is deterministic; 5 SE is a ~1e-6 false-alarm rate.
"""

import numpy as np
import pytest
from helpers import (
    CHECK,
    TOL,
    arrays,
    floats,
    grad_ok,
    layer_ok,
    log_normal,
    mean_and_se,
    seeds,
    sizes,
)
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.layers import Reparameterize
from minivae.losses import gaussian_kl

# ---- gradients ----


@CHECK
@given(st.data())
def test_reparameterize_gradients_with_fixed_eps(data):
    shape = (data.draw(sizes), data.draw(sizes))
    mu = data.draw(arrays(shape, floats(-3.0, 3.0)))
    logvar = data.draw(arrays(shape, floats(-3.0, 3.0)))
    eps = data.draw(arrays(shape))                       # |eps| >= 0.125: dlogvar != 0
    ok, errors = layer_ok(Reparameterize(rng=0), (mu, logvar), TOL, eps=eps)
    assert set(errors) == {"x0", "x1"}
    assert ok, errors


@CHECK
@given(st.data())
def test_reparameterize_plus_kl_gradient(data):
    """L = sum(z * w) + sum KL: the two paths into (mu, logvar) of a VAE, added."""
    shape = (data.draw(sizes), data.draw(sizes))
    mu, logvar, eps, w = (data.draw(arrays(shape)) for _ in range(4))
    rep = Reparameterize()

    def f():
        return np.sum(rep.forward(mu, logvar, eps) * w) + gaussian_kl(mu, logvar)[0].sum()

    f()
    dmu, dlogvar = rep.backward(w)
    _, (dmu_kl, dlogvar_kl) = gaussian_kl(mu, logvar)
    assert grad_ok(f, mu, dmu + dmu_kl, TOL)
    assert grad_ok(f, logvar, dlogvar + dlogvar_kl, TOL)


# ---- forward ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@CHECK
@given(data=st.data())
def test_forward_is_mu_plus_std_eps(dtype, data):
    width = 32 if dtype == np.float32 else 64
    shape = (data.draw(sizes), data.draw(sizes))
    mu, logvar, eps = (data.draw(arrays(shape, floats(-4.0, 4.0, width), dtype))
                       for _ in range(3))
    rep = Reparameterize()
    z = rep.forward(mu, logvar, eps)
    assert z.dtype == dtype and z.shape == shape
    want = mu.astype(np.float64) + np.exp(0.5 * logvar.astype(np.float64)) * eps
    tol = 1e-5 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(z, want, rtol=tol, atol=tol)
    dmu, dlogvar = rep.backward(np.ones_like(z))
    np.testing.assert_allclose(dlogvar, 0.5 * np.exp(0.5 * logvar.astype(np.float64)) * eps,
                               rtol=tol, atol=tol)
    assert np.array_equal(dmu, np.ones_like(z))


@given(seeds)
@CHECK
def test_drawn_eps_comes_from_the_generator_and_is_kept(seed):
    mu, logvar = np.zeros((3, 2), np.float32), np.full((3, 2), 0.7, np.float32)
    rep = Reparameterize(rng=seed)
    z = rep.forward(mu, logvar)
    assert rep.eps.dtype == np.float32 and rep.eps.shape == (3, 2)
    want = np.random.default_rng(seed).standard_normal((3, 2), dtype=np.float32)
    assert np.array_equal(rep.eps, want)
    np.testing.assert_allclose(z, np.exp(0.35) * want, rtol=1e-6)
    assert not np.array_equal(rep.forward(mu, logvar), z)        # a fresh draw each call


# ---- the distribution of the samples ----

def moments_agree(z, mu, logvar, n_se=5.0):
    """True if each column of z (n, Z) has mean mu and variance exp(logvar) within n_se SE."""
    n = z.shape[0]
    var = np.exp(logvar)
    mean_ok = np.abs(z.mean(axis=0) - mu) <= n_se * np.sqrt(var / n)
    var_ok = np.abs(z.var(axis=0, ddof=1) - var) <= n_se * np.sqrt(2 * var ** 2 / (n - 1))
    return bool(mean_ok.all() and var_ok.all())


MOMENT_CASES = [(np.array([0.0, 1.5, -2.0, 0.3]), np.array([0.0, 1.2, -1.6, 2.5]))]


@pytest.mark.parametrize("mu, logvar", MOMENT_CASES)
def test_samples_have_mean_mu_and_variance_exp_logvar(mu, logvar):
    n = 40_000
    rep = Reparameterize(rng=2024)
    z = rep.forward(np.tile(mu, (n, 1)), np.tile(logvar, (n, 1)))       # (n, Z)
    assert moments_agree(z, mu, logvar)
    # the same test rejects the classic bug, std = exp(logvar), on these draws
    z_bug = np.tile(mu, (n, 1)) + np.exp(logvar) * rep.eps
    assert not moments_agree(z_bug, mu, logvar)


def test_analytic_kl_matches_monte_carlo():
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated from z drawn by the reparameterization."""
    n = 20_000
    mu = np.array([[0.0, 0.0], [1.0, -0.5], [-2.0, 0.3], [0.4, 2.0]])          # (R, Z)
    logvar = np.array([[0.0, 0.0], [-1.0, 0.5], [1.5, -2.0], [0.2, -0.7]])
    kl, _ = gaussian_kl(mu, logvar)                                             # (R,)
    rep = Reparameterize(rng=7)
    for r in range(mu.shape[0]):
        m, lv = np.tile(mu[r], (n, 1)), np.tile(logvar[r], (n, 1))
        z = rep.forward(m, lv)                                                   # (n, Z)
        est, se = mean_and_se(log_normal(z, m, lv) - log_normal(z, 0.0, 0.0))
        if kl[r] == 0:                        # q = p: every sample gives exactly 0
            assert est == pytest.approx(0.0, abs=1e-12)
        else:
            assert abs(est - kl[r]) <= 5 * se, (r, est, kl[r], se)
            assert se < 0.05 * max(kl[r], 1.0)    # the test has power: SE is small


# ---- bad input ----

def _raises(fn, *names):
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value), str(info.value)


def test_bad_input_raises_input_error_naming_reparameterize():
    rep = Reparameterize(rng=0)
    good = np.zeros((2, 3), np.float32)
    who = "Reparameterize()"
    _raises(lambda: rep.backward(good), who, "backward called before forward")
    _raises(lambda: rep.forward(good, np.zeros((2, 4), np.float32)), who, "logvar", "(2, 3)")
    _raises(lambda: rep.forward(good, np.zeros((2, 3))), who, "logvar", "float32")
    _raises(lambda: rep.forward(np.zeros(3, np.float32), np.zeros(3, np.float32)), who, "mu",
            "2 dimensions")
    _raises(lambda: rep.forward(good, good, eps=np.zeros((3, 3), np.float32)), who, "mu", "eps")
    _raises(lambda: rep.forward(good, good, eps=np.zeros((2, 3))), who, "eps", "float32")
    _raises(lambda: rep.forward(good, good.astype(np.int32)), who, "int32")
    nan = good.copy()
    nan[1, 1] = np.nan
    _raises(lambda: rep.forward(good, nan), who, "logvar", "NaN")
    _raises(lambda: rep.forward(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)),
            who, "empty")
    rep.forward(good, good)
    _raises(lambda: rep.backward(np.zeros((2, 2), np.float32)), who, "dz", "(2, 3)")
