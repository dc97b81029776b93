"""Every loss: gradient against central differences, value against the textbook
formula, the per-example convention, bernoulli_nll's stability, and bad input.

A loss returns per-example values (N,) and the gradient of ``values.sum()``, so the
numerical check differentiates ``f() = loss(...)[0].sum()``.
"""

import numpy as np
import pytest
from helpers import CHECK, TOL, arrays, floats, grad_ok, sizes
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.losses import (
    bce_with_logits,
    bernoulli_nll,
    gaussian_kl,
    gaussian_nll,
    minimax_generator_loss,
    mse,
    nonsaturating_generator_loss,
)

LOG_2PI = np.log(2 * np.pi)


def sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))        # exp(log sigmoid(a)): no overflow, no underflow


@st.composite
def batch(draw):
    return draw(sizes), draw(sizes)


# ---- gradients ----

@CHECK
@given(st.data())
def test_bernoulli_nll_gradient(data):
    shape = data.draw(batch())
    logits = data.draw(arrays(shape, floats(-4.0, 4.0)))
    x = data.draw(arrays(shape, st.one_of(st.sampled_from([0.0, 1.0]), floats(0.0, 1.0))))
    nll, dlogits = bernoulli_nll(logits, x)
    assert nll.shape == (shape[0],) and dlogits.shape == shape
    assert grad_ok(lambda: bernoulli_nll(logits, x)[0].sum(), logits, dlogits, TOL)


@CHECK
@given(st.data())
def test_gaussian_nll_gradient_array_logvar(data):
    shape = data.draw(batch())
    mean = data.draw(arrays(shape))
    x = mean + data.draw(arrays(shape))                  # |x - mean| >= 0.125
    logvar = data.draw(arrays(shape, floats(-2.0, 2.0)))
    _, (dmean, dlogvar) = gaussian_nll(mean, logvar, x)
    assert dmean.shape == shape and dlogvar.shape == shape
    f = lambda: gaussian_nll(mean, logvar, x)[0].sum()
    assert grad_ok(f, mean, dmean, TOL)
    assert grad_ok(f, logvar, dlogvar, TOL)


@CHECK
@given(st.data())
def test_gaussian_nll_gradient_scalar_logvar(data):
    shape = data.draw(batch())
    mean = data.draw(arrays(shape))
    x = mean + data.draw(arrays(shape))
    logvar = np.array(data.draw(floats(-2.0, 2.0)))    # 0-d: perturbed in place by the checker
    _, (dmean, dlogvar) = gaussian_nll(mean, logvar, x)
    assert np.ndim(dlogvar) == 0
    f = lambda: gaussian_nll(mean, logvar, x)[0].sum()
    assert grad_ok(f, mean, dmean, TOL)
    assert grad_ok(f, logvar, np.asarray(dlogvar), TOL)


@CHECK
@given(st.data())
def test_gaussian_kl_gradient(data):
    shape = data.draw(batch())
    mu = data.draw(arrays(shape))                         # |mu| >= 0.125
    logvar = data.draw(arrays(shape))                     # |logvar| >= 0.125: dlogvar != 0
    _, (dmu, dlogvar) = gaussian_kl(mu, logvar)
    f = lambda: gaussian_kl(mu, logvar)[0].sum()
    assert grad_ok(f, mu, dmu, TOL)
    assert grad_ok(f, logvar, dlogvar, TOL)


@CHECK
@given(st.data())
def test_mse_gradient(data):
    shape = data.draw(batch())
    y = data.draw(arrays(shape))
    x = y + data.draw(arrays(shape))
    _, dy = mse(y, x)
    assert grad_ok(lambda: mse(y, x)[0].sum(), y, dy, TOL)


# ---- values against the formulas ----

@CHECK
@given(st.data())
def test_values_match_textbook_formulas(data):
    shape = data.draw(batch())
    a, b = data.draw(arrays(shape, floats(-3.0, 3.0))), data.draw(arrays(shape, floats(-3.0, 3.0)))
    v = data.draw(arrays(shape, floats(-3.0, 3.0)))
    p = data.draw(arrays(shape, floats(0.0, 1.0)))
    # Gaussian: minus the log of the density, written out (so 0.5 log 2pi must be there)
    dens = np.exp(-(b - a) ** 2 / (2 * np.exp(v))) / np.sqrt(2 * np.pi * np.exp(v))
    np.testing.assert_allclose(gaussian_nll(a, v, b)[0], -np.log(dens).sum(axis=1), rtol=1e-12)
    # Bernoulli: minus the log of p^x (1 - p)^(1 - x) with p = sigmoid(logits)
    s = sigmoid(a)
    np.testing.assert_allclose(bernoulli_nll(a, p)[0],
                               -(p * np.log(s) + (1 - p) * np.log1p(-s)).sum(axis=1), rtol=1e-10)
    # KL of two Gaussians, one dimension at a time: log(1/sigma) + (sigma^2 + mu^2)/2 - 1/2
    sd = np.exp(0.5 * v)
    np.testing.assert_allclose(gaussian_kl(a, v)[0],
                               (-np.log(sd) + (sd ** 2 + a ** 2) / 2 - 0.5).sum(axis=1),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mse(a, b)[0], ((a - b) ** 2).sum(axis=1), rtol=1e-14)


def test_gaussian_nll_constant_is_half_log_2pi_per_entry():
    x = np.zeros((1, 7))
    nll, _ = gaussian_nll(x, np.zeros((1, 7)), x)          # N(0 | 0, 1) in 7 dimensions
    assert nll[0] == pytest.approx(3.5 * LOG_2PI, rel=1e-15)
    nll, _ = gaussian_nll(x, 0.0, x)
    assert nll[0] == pytest.approx(3.5 * LOG_2PI, rel=1e-15)


@CHECK
@given(st.data())
def test_scalar_logvar_is_the_same_as_a_constant_array(data):
    shape = data.draw(batch())
    mean, x = data.draw(arrays(shape)), data.draw(arrays(shape))
    lv = data.draw(floats(-3.0, 3.0))
    nll_s, (dm_s, dlv_s) = gaussian_nll(mean, lv, x)
    nll_a, (dm_a, dlv_a) = gaussian_nll(mean, np.full(shape, lv), x)
    np.testing.assert_allclose(nll_s, nll_a, rtol=1e-13)
    np.testing.assert_allclose(dm_s, dm_a, rtol=1e-13)
    assert float(dlv_s) == pytest.approx(dlv_a.sum(), rel=1e-10, abs=1e-12)


def test_losses_sum_over_every_axis_but_the_first():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    p = rng.random((3, 4, 5))
    flat = lambda t: t.reshape(3, 20)
    for f, args in [(bernoulli_nll, (a, p)), (mse, (a, b)), (gaussian_nll, (a, b, p))]:
        vals, grads = f(*args)
        vals_flat, grads_flat = f(*(flat(t) for t in args))
        assert vals.shape == (3,)
        np.testing.assert_allclose(vals, vals_flat, rtol=1e-14)
        for g, gf in zip(grads if isinstance(grads, tuple) else (grads,),
                         grads_flat if isinstance(grads_flat, tuple) else (grads_flat,)):
            assert g.shape == (3, 4, 5)
            np.testing.assert_allclose(g.reshape(3, 20), gf, rtol=1e-14)


@pytest.mark.parametrize("f, nargs", [(bernoulli_nll, 2), (gaussian_nll, 3), (gaussian_kl, 2),
                                      (mse, 2)])
def test_float32_in_float32_out_close_to_float64(f, nargs):
    rng = np.random.default_rng(1)
    args64 = [rng.random((4, 6)) for _ in range(nargs)]
    v64, g64 = f(*args64)
    v32, g32 = f(*(a.astype(np.float32) for a in args64))
    assert v32.dtype == np.float32
    np.testing.assert_allclose(v32, v64, rtol=1e-5)
    for a, b in zip(g32 if isinstance(g32, tuple) else (g32,),
                    g64 if isinstance(g64, tuple) else (g64,)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---- bernoulli_nll is stable ----

def test_bernoulli_nll_stable_at_extreme_logits():
    logits = np.array([-1e4, -1e3, -50.0, -1.0, 0.0, 1.0, 50.0, 1e3, 1e4])
    l, x = np.meshgrid(logits, [0.0, 0.25, 0.5, 1.0])
    l, x = l.reshape(-1, 1), x.reshape(-1, 1)                       # one entry per example
    nll, dl = bernoulli_nll(l, x)
    assert np.isfinite(nll).all() and np.isfinite(dl).all()
    np.testing.assert_allclose(nll, (np.logaddexp(0.0, l) - x * l)[:, 0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dl, sigmoid(l) - x, rtol=1e-13, atol=1e-300)
    # the saturated cases, exactly: a confident right answer costs ~0, a wrong one |l| nats
    assert nll[(l[:, 0] == 1e4) & (x[:, 0] == 1.0)] == pytest.approx(0.0, abs=1e-300)
    assert nll[(l[:, 0] == -1e4) & (x[:, 0] == 1.0)] == pytest.approx(1e4, rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@CHECK
@given(data=st.data())
def test_bernoulli_nll_stable_on_generated_logits(dtype, data):
    width = 32 if dtype == np.float32 else 64
    shape = data.draw(batch())
    logits = data.draw(arrays(shape, floats(-1e4, 1e4, width), dtype))
    x = data.draw(arrays(shape, floats(0.0, 1.0, width), dtype))
    nll, dl = bernoulli_nll(logits, x)
    assert nll.dtype == dtype and dl.dtype == dtype
    assert np.isfinite(nll).all() and np.isfinite(dl).all()
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    ref = (np.logaddexp(0.0, l64) - x64 * l64).sum(axis=1)
    if dtype == np.float64:
        np.testing.assert_allclose(nll, ref, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(dl, sigmoid(l64) - x64, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(nll, ref, rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(dl, sigmoid(l64) - x64, rtol=1e-5, atol=1e-6)


# ---- bad input ----

def _raises(fn, *names):
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, ValueError)
    for name in names:
        assert name in str(info.value), str(info.value)


@pytest.mark.parametrize("name, f", [
    ("bernoulli_nll", lambda a, b: bernoulli_nll(a, b)),
    ("gaussian_nll", lambda a, b: gaussian_nll(a, 0.0, b)),
    ("gaussian_nll", lambda a, b: gaussian_nll(a, np.zeros_like(a), b)),
    ("gaussian_kl", lambda a, b: gaussian_kl(a, b)),
    ("mse", lambda a, b: mse(a, b)),
])
def test_bad_input_raises_input_error_naming_the_loss(name, f):
    good = np.full((2, 3), 0.5)
    _raises(lambda: f(good, np.full((2, 4), 0.5)), name, "expected", "(2, 3)", "(2, 4)")
    _raises(lambda: f(np.ones((2, 3), np.int64), good), name, "dtype", "int64")
    _raises(lambda: f(good, np.ones((2, 3), np.int32)), name, "dtype", "int32")
    nan = good.copy()
    nan[0, 1] = np.nan
    _raises(lambda: f(nan, good), name, "NaN")
    _raises(lambda: f(good, nan), name, "NaN")
    _raises(lambda: f(np.ones((0, 3)), np.ones((0, 3))), name, "empty")
    _raises(lambda: f([[0.5]], [[0.5]]), name, "numpy array")


def test_loss_specific_refusals():
    good = np.full((2, 3), 0.5)
    _raises(lambda: bernoulli_nll(good, good + 1), "bernoulli_nll", "expected x in [0, 1]")
    _raises(lambda: bernoulli_nll(good, good - 1), "bernoulli_nll", "expected x in [0, 1]")
    _raises(lambda: gaussian_nll(good, np.inf, good), "gaussian_nll", "finite scalar logvar")
    _raises(lambda: gaussian_nll(good, np.zeros(3), good), "gaussian_nll", "logvar", "(2, 3)")
    _raises(lambda: gaussian_nll(good, np.zeros((2, 3), np.float32), good), "gaussian_nll",
            "logvar", "float64")
    _raises(lambda: gaussian_kl(np.zeros(3), np.zeros(3)), "gaussian_kl", "mu", "2 dimensions")
    with np.errstate(over="ignore"):                  # exp(800) overflows, on purpose
        _raises(lambda: gaussian_kl(good, np.full((2, 3), 800.0)), "gaussian_kl", "overflow")
    _raises(lambda: mse(np.float64(1.0), np.float64(1.0)), "mse", "numpy array")
    _raises(lambda: mse(np.array(1.0), np.array(1.0)), "mse", "batch axis")


# ---- a GAN's losses: bce_with_logits and the two generator objectives ----

GAN_LOSSES = [("minimax_generator_loss", minimax_generator_loss,
               lambda l: np.log1p(-sigmoid(l)), lambda l: -sigmoid(l)),
              ("nonsaturating_generator_loss", nonsaturating_generator_loss,
               lambda l: -np.log(sigmoid(l)), lambda l: sigmoid(l) - 1)]


@CHECK
@given(st.data())
def test_bce_with_logits_gradient(data):
    shape = data.draw(batch())
    logits = data.draw(arrays(shape, floats(-6.0, 6.0)))
    y = data.draw(arrays(shape, st.one_of(st.sampled_from([0.0, 1.0]), floats(0.0, 1.0))))
    bce, dlogits = bce_with_logits(logits, y)
    assert bce.shape == (shape[0],) and dlogits.shape == shape
    assert grad_ok(lambda: bce_with_logits(logits, y)[0].sum(), logits, dlogits, TOL)


@pytest.mark.parametrize("name, loss, _f, _df", GAN_LOSSES, ids=[g[0] for g in GAN_LOSSES])
@CHECK
@given(data=st.data())
def test_generator_loss_gradient(name, loss, _f, _df, data):
    shape = data.draw(batch())
    logits = data.draw(arrays(shape, floats(-6.0, 6.0)))
    J, dlogits = loss(logits)
    assert J.shape == (shape[0],) and dlogits.shape == shape
    assert grad_ok(lambda: loss(logits)[0].sum(), logits, dlogits, TOL)


@CHECK
@given(st.data())
def test_gan_losses_match_their_formulas(data):
    shape = data.draw(batch())
    l = data.draw(arrays(shape, floats(-8.0, 8.0)))
    y = data.draw(arrays(shape, floats(0.0, 1.0)))
    D = sigmoid(l)                                        # the probability of "real"
    np.testing.assert_allclose(bce_with_logits(l, y)[0],
                               -(y * np.log(D) + (1 - y) * np.log1p(-D)).sum(axis=1),
                               rtol=1e-10, atol=1e-12)
    # the discriminator's loss is the Bernoulli likelihood with the label as the target
    np.testing.assert_allclose(bce_with_logits(l, y)[0], bernoulli_nll(l, y)[0], rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(bce_with_logits(l, y)[1], bernoulli_nll(l, y)[1], rtol=1e-12,
                               atol=1e-15)
    for _, loss, f, df in GAN_LOSSES:
        J, dl = loss(l)
        np.testing.assert_allclose(J, f(l).sum(axis=1), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dl, df(l), rtol=1e-12, atol=1e-15)
    # real (y = 1) and fake (y = 0) labels: -log D and -log(1 - D); the generator's losses
    # are the fake one with its sign flipped (minimax) and the real one (non-saturating)
    np.testing.assert_allclose(minimax_generator_loss(l)[0], -bce_with_logits(l, 0 * l)[0],
                               rtol=1e-14)
    np.testing.assert_allclose(nonsaturating_generator_loss(l)[0],
                               bce_with_logits(l, 0 * l + 1)[0], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gan_losses_stable_at_extreme_logits(dtype):
    l = np.array([-1e4, -1e3, -80.0, -1.0, 0.0, 1.0, 80.0, 1e3, 1e4], dtype)[:, None]
    l64 = l.astype(np.float64)
    for y in (0.0, 0.3, 1.0):
        bce, dl = bce_with_logits(l, np.full_like(l, y))
        assert bce.dtype == dtype and dl.dtype == dtype
        assert np.isfinite(bce).all() and np.isfinite(dl).all()
        np.testing.assert_allclose(bce, (np.logaddexp(0.0, l64) - y * l64)[:, 0], rtol=1e-6,
                                   atol=1e-30)   # the reference loses log1p(e^-80) to l - l
    J_mm, d_mm = minimax_generator_loss(l)
    J_ns, d_ns = nonsaturating_generator_loss(l)
    for a in (J_mm, d_mm, J_ns, d_ns):
        assert a.dtype == dtype and np.isfinite(a).all()
    np.testing.assert_allclose(J_mm, -np.logaddexp(0.0, l64)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(J_ns, np.logaddexp(0.0, -l64)[:, 0], rtol=1e-6)
    # a confident right answer costs 0 and a confident wrong one |l| nats, exactly
    assert bce_with_logits(l, np.ones_like(l))[0][-1] == 0.0
    assert bce_with_logits(l, np.ones_like(l))[0][0] == pytest.approx(1e4, rel=1e-7)
    # the discriminator wins (l = -80): the minimax gradient is exp(-80), the other -1
    assert abs(d_mm[2, 0]) < 1e-34 and d_ns[2, 0] == pytest.approx(-1.0, rel=1e-7)


def test_bce_with_logits_refuses_bad_targets():
    good = np.full((2, 1), 0.5)
    _raises(lambda: bce_with_logits(good, np.full((2, 2), 0.5)), "bce_with_logits", "(2, 1)",
            "(2, 2)")
    _raises(lambda: bce_with_logits(good, good + 1), "bce_with_logits", "y in [0, 1]")
    _raises(lambda: bce_with_logits(good, np.ones((2, 1), np.int64)), "bce_with_logits",
            "int64")
    _raises(lambda: bce_with_logits(good, [[1.0], [0.0]]), "bce_with_logits", "numpy array")


@pytest.mark.parametrize("name, f", [
    ("bce_with_logits", lambda a: bce_with_logits(a, np.ones(np.shape(a)))),
    ("minimax_generator_loss", minimax_generator_loss),
    ("nonsaturating_generator_loss", nonsaturating_generator_loss),
])
def test_gan_losses_refuse_bad_logits(name, f):
    nan = np.full((2, 1), 0.5)
    nan[1, 0] = np.nan
    _raises(lambda: f(nan), name, "NaN")
    _raises(lambda: f(np.ones((2, 1), np.int32)), name, "dtype", "int32")
    _raises(lambda: f(np.ones((0, 1))), name, "empty")
    _raises(lambda: f(np.array(1.0)), name, "batch axis")
    _raises(lambda: f([[0.5]]), name, "numpy array")
