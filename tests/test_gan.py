"""The GAN: each step's loss gradient-checked in float64 through the whole model, each step's
gradients and updates kept to its own network, fit_gan's alternation, and the theory as
assertions on a 1-D mixture whose density is known: the trained discriminator approaches
D* = p_data / (p_data + p_g), V(D*, G) = 2 JS(p_data || p_g) - log 4, and the minimax loss's
gradient vanishes when D wins. Mode collapse on the 8-Gaussian ring, counted."""

import copy
import os

import numpy as np
import pytest
from helpers import FEW, TOL_CHAIN, grad_ok, seeds
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.mixtures import IsotropicMixture, modes_covered, ring
from minivae.models import GAN, build, parameter_count
from minivae.optim import SGD, Adam
from minivae.train import fit_gan

JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")
f64 = np.float64


def small_gan(seed, loss="non-saturating", output="sigmoid", **kw):
    """A float64 GAN with smooth activations (no kink for a central difference to straddle)."""
    kw = {"hidden": (5,), "d_hidden": (6,), **kw}
    return GAN(4, 3, output=output, activation="tanh", d_activation="tanh",
               generator_loss=loss, rng=seed, dtype=f64, **kw)


# ---- whole-model gradient checks, one per step ----

@FEW
@given(seed=seeds, n=st.integers(1, 6), deep=st.booleans())
def test_discriminator_step_gradient(seed, n, deep):
    gan = small_gan(seed, d_hidden=(6, 5) if deep else (6,))
    rng = np.random.default_rng(seed)
    x, z = rng.random((n, 4)), rng.standard_normal((n, 3))
    gan.zero_grad()
    gan.d_loss(x, z)
    gan.d_backward()
    grads = {k: g.copy() for k, g in gan.discriminator.grads.items()}
    for k, p in gan.discriminator.params.items():
        assert grad_ok(lambda: gan.d_loss(x, z), p, grads[k], TOL_CHAIN), k


@FEW
@given(seed=seeds, n=st.integers(1, 6), loss=st.sampled_from(["minimax", "non-saturating"]),
       output=st.sampled_from(["sigmoid", "identity"]))
def test_generator_step_gradient_through_the_discriminator(seed, n, loss, output):
    gan = small_gan(seed, loss, output)
    z = np.random.default_rng(seed).standard_normal((n, 3))
    gan.zero_grad()
    gan.g_loss(z=z)
    gan.g_backward()
    grads = {k: g.copy() for k, g in gan.generator.grads.items()}
    for k, p in gan.generator.params.items():
        assert grad_ok(lambda: gan.g_loss(z=z), p, grads[k], TOL_CHAIN), k


# ---- neither step's gradients leak into the other's network ----

def test_each_backward_fills_only_its_own_networks_gradients():
    gan, rng = small_gan(0), np.random.default_rng(1)
    x, z = rng.random((5, 4)), rng.standard_normal((5, 3))
    gan.zero_grad()
    gan.d_loss(x, z)
    gan.d_backward()
    assert all(np.all(g == 0) for g in gan.generator.grads.values())
    assert all(np.any(g != 0) for g in gan.discriminator.grads.values())
    gan.zero_grad()
    gan.g_loss(z=z)
    gan.g_backward()              # ran D.backward to reach G's output: D's share is dropped
    assert all(np.all(g == 0) for g in gan.discriminator.grads.values())
    assert all(np.any(g != 0) for g in gan.generator.grads.values())


def test_fit_gan_moves_each_network_by_its_own_gradient_only():
    """One batch of fit_gan with SGD, replayed by hand on a copy: the D step is -lr times the
    gradient of d_loss w.r.t. D alone, and G does not move; then the G step is -lr times the
    gradient of g_loss w.r.t. G through the *updated* D, and D does not move."""
    lr, x = 0.1, np.random.default_rng(2).random((8, 4))
    gan = small_gan(3)
    ref = copy.deepcopy(gan)                               # same weights, same rng state
    z_d = ref.rng.standard_normal((8, 3))                  # fit_gan draws these two, in order
    z_g = ref.rng.standard_normal((8, 3))
    ref.zero_grad()
    ref.d_loss(x, z_d)                                     # the mean is the same in any order
    ref.d_backward()
    for k, p in ref.discriminator.params.items():
        p -= lr * ref.discriminator.grads[k]
    ref.zero_grad()
    ref.g_loss(z=z_g)
    ref.g_backward()
    for k, p in ref.generator.params.items():
        p -= lr * ref.generator.grads[k]
    fit_gan(gan, x, SGD(gan.discriminator.params, lr=lr), SGD(gan.generator.params, lr=lr),
            1, batch_size=8, rng=0)
    for k, p in gan.params.items():
        np.testing.assert_allclose(p, ref.params[k], rtol=1e-13, atol=1e-15, err_msg=k)


def test_fit_gan_can_hold_either_network_fixed():
    x = np.random.default_rng(4).random((16, 4))
    for fixed in ("generator", "discriminator"):
        gan = small_gan(5)
        before = {k: v.copy() for k, v in getattr(gan, fixed).params.items()}
        opts = {net: Adam(getattr(gan, net).params, lr=1e-2) if net != fixed else None
                for net in ("discriminator", "generator")}
        history = fit_gan(gan, x, opts["discriminator"], opts["generator"], 2, batch_size=8,
                          rng=0)
        assert len(history) == 2
        for k, v in getattr(gan, fixed).params.items():
            np.testing.assert_array_equal(v, before[k])
    assert {"train_loss", "train_d_real", "train_d_fake"} <= set(history[-1])


def test_fit_gan_history_and_callbacks():
    gan, x = small_gan(6), np.random.default_rng(7).random((20, 4))

    class StopAfter3:
        def batch_end(self, p):
            p.stop = p.epoch * p.batches + p.batch >= 3

    h = fit_gan(gan, x, Adam(gan.discriminator.params), Adam(gan.generator.params), 3, 10,
                rng=0)
    assert [r["epoch"] for r in h] == [1, 2, 3]
    row = h[-1]
    assert set(row) == {"epoch", "train_loss", "train_d_loss", "train_g_loss", "train_d_real",
                        "train_d_fake"}
    assert row["train_loss"] == pytest.approx(row["train_d_loss"], rel=1e-12)
    assert 0 < row["train_d_fake"] < 1 and 0 < row["train_d_real"] < 1
    h = fit_gan(gan, x, Adam(gan.discriminator.params), None, 3, 10, rng=0,
                callbacks=[StopAfter3()])
    assert len(h) == 1 and "train_g_loss" not in h[0]       # stopped in epoch 2; G held fixed


# ---- the theory, on a 1-D mixture with a known density ----

P_DATA = IsotropicMixture([[-2.0], [2.0]], [0.5, 0.5], [0.4, 0.6])
G_SCALE, G_SHIFT = 1.5, 0.5                                  # G(z) = 1.5 z + 0.5: N(0.5, 1.5^2)
GRID = np.linspace(-20.0, 20.0, 40_001)      # the trapezoid rule; every density ~0 at the ends


def p_g(x):
    return np.exp(-0.5 * ((x - G_SHIFT) / G_SCALE) ** 2) / (G_SCALE * np.sqrt(2 * np.pi))


def value(D, pd, pg):
    """V(D, G) = int p_data log D + p_g log(1 - D) dx on GRID."""
    return np.trapezoid(pd * np.log(D) + pg * np.log1p(-D), GRID)


def js(pd, pg):
    """JS(p || q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2, on GRID."""
    m = (pd + pg) / 2
    kl = lambda a: np.trapezoid(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / m), 0), GRID)
    return 0.5 * kl(pd) + 0.5 * kl(pg)


def affine_gan(rng):
    """A GAN whose generator is G(z) = 1.5 z + 0.5 exactly (no hidden layer), so p_g is known."""
    gan = GAN(1, 1, hidden=(), d_hidden=(16,), output="identity", d_activation="tanh",
              rng=rng, dtype=f64)
    gan.generator.layers[0].params["W"][...] = G_SCALE
    gan.generator.layers[0].params["b"][...] = G_SHIFT
    return gan


@pytest.mark.parametrize("shift, scale", [(0.5, 1.5), (0.0, 0.3), (3.0, 2.0), (-2.0, 0.5)])
def test_at_the_optimal_discriminator_the_value_is_2_js_minus_log_4(shift, scale):
    pd = P_DATA.pdf(GRID[:, None])
    pg = np.exp(-0.5 * ((GRID - shift) / scale) ** 2) / (scale * np.sqrt(2 * np.pi))
    d_star = pd / (pd + pg)
    d_star = np.clip(d_star, 1e-300, 1 - 1e-16)             # log 0 where one density is 0
    assert value(d_star, pd, pg) == pytest.approx(2 * js(pd, pg) - np.log(4), abs=1e-10)
    # and D* is the maximiser: any other D gives less
    for other in (np.full_like(d_star, 0.5), np.clip(d_star + 0.05, 0, 1 - 1e-9) ** 2):
        assert value(other, pd, pg) < value(d_star, pd, pg)


def test_the_trained_discriminator_approaches_d_star():
    gan = affine_gan(0)
    x, _ = P_DATA.sample(2048, 1, f64)
    pd, pg = P_DATA.pdf(GRID[:, None]), p_g(GRID)
    d_star = pd / (pd + pg)
    m = (pd + pg) / 2                                        # where real and fake examples are

    def distance():
        """E_m |D(x) - D*(x)|: the error where D is trained (m is what D sees)."""
        return np.trapezoid(m * np.abs(gan.discriminate(GRID[:, None]) - d_star), GRID)

    best = 2 * js(pd, pg) - np.log(4)                        # V(D*, G)
    before, v_before = distance(), value(gan.discriminate(GRID[:, None]), pd, pg)
    fit_gan(gan, x, Adam(gan.discriminator.params, lr=0.01), None, 20, 64, rng=2)
    after, v = distance(), value(gan.discriminate(GRID[:, None]), pd, pg)
    assert after < 0.05 and after < before / 4, (before, after)
    # V(D, G) <= V(D*, G) = 2 JS - log 4 for every D; training closes nearly all of the gap
    assert v <= best and best - v < 0.05 and best - v < (best - v_before) / 10, (v_before, v, best)


def test_minimax_gradient_vanishes_when_the_discriminator_wins():
    """Per example, the two generator losses differ by their factor dJ/dl: -sigmoid(l) against
    sigmoid(l) - 1, a ratio of exp(l). Once D rejects the fakes (l << 0) the minimax loss
    leaves G almost no gradient; the non-saturating one keeps it."""
    gan = affine_gan(3)
    gan.generator.layers[0].params["b"][...] = 8.0          # fakes far from the data
    x, _ = P_DATA.sample(1024, 4, f64)

    def grad_norm(loss, z):
        gan.generator_loss = loss
        gan.zero_grad()
        gan.g_loss(z=z)
        gan.g_backward()
        return np.sqrt(sum((g ** 2).sum() for g in gan.generator.grads.values()))

    z = np.random.default_rng(5).standard_normal((256, 1))
    one = z[:1]
    d_one = gan.discriminate(gan.generate(one))
    l = np.log(d_one) - np.log1p(-d_one)                      # D's logit
    assert grad_norm("minimax", one) / grad_norm("non-saturating", one) == pytest.approx(
        np.exp(l[0]), rel=1e-9)                              # one example: exactly exp(l)
    ratio_at_start = grad_norm("minimax", z) / grad_norm("non-saturating", z)
    fit_gan(gan, x, Adam(gan.discriminator.params, lr=0.05), None, 4, 128, rng=6)
    d_fake = gan.discriminate(gan.generate(z)).mean()
    ratio = grad_norm("minimax", z) / grad_norm("non-saturating", z)
    assert 0.2 < ratio_at_start < 5                           # D undecided: about equal
    assert d_fake < 0.01 and ratio < 0.05, (d_fake, ratio)   # D wins: minimax gradient gone


# ---- mode collapse, counted ----

def test_modes_covered_counts():
    r = ring()
    x, k = r.sample(4000, 0)
    assert modes_covered(x, r)[0] == 8 and modes_covered(x, r)[1] > 0.98
    one = x[k == 3]                                           # everything on one mode
    covered, good, counts = modes_covered(one, r)
    assert covered == 1 and counts.argmax() == 3 and good > 0.98
    off = one * 0.8                                           # near a mode, but not on it
    assert modes_covered(off, r)[0] == 0
    assert modes_covered(off, r, n_std=np.inf)[0] == 1        # nearest mode: still mode 3


def test_mixture_density_and_sampler():
    mix = IsotropicMixture([[0.0, 0.0], [3.0, 1.0]], [0.5, 2.0], [0.3, 0.7])
    x = np.random.default_rng(0).standard_normal((5, 2))
    normal = lambda x, m, s: np.exp(-((x - m) ** 2).sum(axis=1) / (2 * s * s)) / (2 * np.pi * s * s)
    want = 0.3 * normal(x, np.zeros(2), 0.5) + 0.7 * normal(x, np.array([3.0, 1.0]), 2.0)
    np.testing.assert_allclose(mix.pdf(x), want, rtol=1e-12)
    assert np.trapezoid(P_DATA.pdf(GRID[:, None]), GRID) == pytest.approx(1.0, abs=1e-12)
    s, k = mix.sample(20_000, 1)
    assert s.dtype == np.float32 and abs((k == 1).mean() - 0.7) < 4 * np.sqrt(0.21 / 20_000)
    np.testing.assert_allclose(s[k == 1].std(axis=0), 2.0, rtol=0.05)
    for call, words in [(lambda: IsotropicMixture([[0.0]], [0.0]), "stds"),
                        (lambda: IsotropicMixture([[0.0], [1.0]], 1.0, [0.5, 0.6]), "sum to 1"),
                        (lambda: mix.log_prob(x[:, :1]), "log_prob"),
                        (lambda: mix.sample(0, 1), "n")]:
        _raises(call, words)


@pytest.mark.skipif(not JIT, reason="2 x 1280 steps of a GAN: minutes as plain Python; "
                    "lesson 11 asserts the same")
def test_a_slow_discriminator_lets_the_generator_collapse():
    """On the ring of 8 Gaussians, a GAN whose D learns as fast as G spreads over all 8 modes;
    with D 4 times slower, G puts nearly all its samples near one or two modes at a time, and
    hops between them."""
    p = ring(std=0.05)
    x, _ = p.sample(4096, 0)

    def train(d_lr):
        gan = GAN(2, 2, hidden=(64, 64), output="identity", rng=0)
        visited = []

        class Count:
            def epoch_end(self, pr):
                if pr.epoch % 4 == 0:
                    _, _, counts = modes_covered(gan.sample(2000, rng=5), p, n_std=np.inf)
                    visited.append((int((counts >= 0.25 * 2000 / 8).sum()), counts.argmax()))

        adam = lambda params, lr: Adam(params, lr=lr, betas=(0.5, 0.999))
        fit_gan(gan, x, adam(gan.discriminator.params, d_lr), adam(gan.generator.params, 2e-3),
                40, 128, rng=2, callbacks=[Count()])
        return gan, visited

    balanced, _ = train(2e-3)
    assert modes_covered(balanced.sample(2000, rng=5), p, n_std=np.inf)[0] == 8
    _, visited = train(5e-4)
    counts = [c for c, _ in visited]
    assert np.median(counts) <= 2, visited
    assert len({mode for _, mode in visited}) >= 3, visited  # it hops from mode to mode


# ---- the model as a whole: config, build, bad input ----

def test_config_round_trips_and_parameters_are_counted():
    for gan in (GAN(6, 3, hidden=(5, 4), d_hidden=(7,)), GAN(1, 1, hidden=()),
                GAN(4, 2, generator_loss="minimax", output="identity", dtype=f64)):
        config = gan.config()
        rebuilt = build(config, rng=0)
        assert rebuilt.config() == config
        assert {k: v.shape for k, v in rebuilt.params.items()} == \
            {k: v.shape for k, v in gan.params.items()}
        assert parameter_count(config) == sum(v.size for v in gan.params.values())
    # a config from someone else's file: refused before anything is allocated
    _raises(lambda: build({"model": "gan", "x_dim": 784, "d_hidden": [10 ** 9]}), "gan",
            "parameters")
    _raises(lambda: build({"model": "gan", "x_dim": 784, "d_hidden": "64"}), "gan", "d_hidden")


def test_sample_generate_and_discriminate():
    gan = GAN(5, 2, hidden=(4,), rng=0)
    s = gan.sample(7, rng=1)
    assert s.shape == (7, 5) and s.dtype == np.float32 and 0 <= s.min() and s.max() <= 1
    np.testing.assert_array_equal(s, gan.sample(7, rng=1))
    d = gan.discriminate(s)
    assert d.shape == (7,) and np.all((d > 0) & (d < 1))


def _raises(call, *words):
    with pytest.raises(InputError) as info:
        call()
    for w in words:
        assert w in str(info.value), str(info.value)


def test_bad_input_is_refused_naming_the_gan():
    _raises(lambda: GAN(0), "GAN", "x_dim")
    _raises(lambda: GAN(4, hidden=(0,)), "GAN", "hidden")
    _raises(lambda: GAN(4, d_hidden=5), "GAN", "d_hidden")
    _raises(lambda: GAN(4, output="tanh"), "GAN", "output")
    _raises(lambda: GAN(4, generator_loss="wasserstein"), "GAN", "generator_loss")
    _raises(lambda: GAN(4, dtype=np.int32), "GAN", "dtype")
    gan = GAN(4, 2, hidden=(3,), rng=0)
    x = np.full((3, 4), 0.5, np.float32)
    _raises(lambda: gan.d_backward(), "GAN.d_backward", "before d_loss")
    _raises(lambda: gan.g_backward(), "GAN.g_backward", "before g_loss")
    _raises(lambda: gan.d_loss(x[:, :3]), "GAN.d_loss", "(N, 4)")
    _raises(lambda: gan.d_loss(x.astype(f64)), "GAN.d_loss", "float32")
    _raises(lambda: gan.d_loss(x + 1), "GAN.d_loss", "[0, 1]")
    _raises(lambda: gan.d_loss(x, z=np.zeros((2, 2), np.float32)), "GAN.d_loss", "z")
    nan = x.copy()
    nan[0, 0] = np.nan
    _raises(lambda: gan.d_loss(nan), "GAN.d_loss", "NaN")
    _raises(lambda: gan.g_loss(), "GAN.g_loss", "either n")
    _raises(lambda: gan.g_loss(3, z=np.zeros((3, 2), np.float32)), "GAN.g_loss", "either n")
    _raises(lambda: gan.g_loss(0), "GAN.g_loss", "n")
    _raises(lambda: gan.g_loss(z=np.zeros((3, 3), np.float32)), "GAN.g_loss", "z")
    _raises(lambda: gan.generate(np.zeros((3, 3), np.float32)), "GAN.generate", "z")
    _raises(lambda: gan.sample(0), "GAN.sample", "n")


def test_fit_gan_refuses_bad_arguments():
    gan = GAN(4, 2, hidden=(3,), rng=0)
    x = np.full((6, 4), 0.5, np.float32)
    d_opt, g_opt = Adam(gan.discriminator.params), Adam(gan.generator.params)
    _raises(lambda: fit_gan(gan, x, None, None, 1), "fit_gan", "both")
    _raises(lambda: fit_gan(gan, x, g_opt, d_opt, 1), "fit_gan", "d_optimizer",
            "gan.discriminator.params")
    _raises(lambda: fit_gan(gan, x, Adam(gan.params), g_opt, 1), "fit_gan", "d_optimizer")
    _raises(lambda: fit_gan(gan, x, d_opt, object(), 1), "fit_gan", "g_optimizer")
    _raises(lambda: fit_gan(object(), x, d_opt, g_opt, 1), "fit_gan", "d_loss")
    _raises(lambda: fit_gan(gan, x[0], d_opt, g_opt, 1), "fit_gan", "2 dimensions")
    _raises(lambda: fit_gan(gan, x, d_opt, g_opt, 1, batch_size=0), "fit_gan", "batch_size")
