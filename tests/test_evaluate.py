"""Tests of minivae.evaluate: the ELBO terms against the model's own loss, the IWAE bound against
the ELBO, per-dimension statistics against direct NumPy formulas, and the KL decomposition and
MIG on constructed codes whose answers are known in closed form."""

import json
import tracemalloc

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.evaluate import (
    active_units,
    evaluate,
    kl_decomposition,
    kl_per_dim,
    mutual_info_matrix,
    mutual_information_gap,
    variance_law,
)
from minivae.models import VAE

N, D, Z = 200, 64, 4


@pytest.fixture
def x():
    return (np.random.default_rng(0).random((N, D)) < 0.3).astype(np.float32)


@pytest.fixture
def vae():
    """A small untrained VAE with beta = 4 (evaluate must ignore beta) and a decoder whose
    output depends strongly on z, so that the IWAE bound is visibly tighter than the ELBO."""
    model = VAE(D, (32,), Z, beta=4.0, rng=0)
    model.decoder.layers[-1].params["W"] *= 3.0
    return model


def encoded(model, x):
    mu, logvar = model.encode(x)
    return np.array(mu, dtype=np.float64), np.array(logvar, dtype=np.float64)


# ---- evaluate on a VAE ----

def test_nelbo_is_the_mean_of_recon_plus_kl_with_beta_one(vae, x):
    r = evaluate(vae, x, rng=np.random.default_rng(7), batch_size=N)
    eps = np.random.default_rng(7).standard_normal((N, Z), dtype=np.float32)   # the same draw
    loss_with_beta = vae.loss(x, eps)
    recon, kl = vae.last["recon"].astype(np.float64), vae.last["kl"].astype(np.float64)
    assert r["nelbo"] == pytest.approx((recon + kl).mean(), rel=1e-9)
    assert r["recon"] == pytest.approx(recon.mean(), rel=1e-9)
    assert r["kl"] == pytest.approx(kl.mean(), rel=1e-9)
    assert r["nelbo"] == pytest.approx(r["recon"] + r["kl"], rel=1e-12)
    assert loss_with_beta - r["nelbo"] == pytest.approx(3.0 * kl.mean(), rel=1e-5)   # beta 4 vs 1
    assert r["n"] == N


def test_iwae_nll_is_below_the_nelbo(vae, x):
    r = evaluate(vae, x[:100], iwae_k=50, rng=1)
    assert r["iwae_k"] == 50
    assert r["nll"] < r["nelbo"] - 0.5          # gap ~2.6 nats; sampling noise of nelbo ~0.3
    assert "nll" not in evaluate(vae, x, rng=1)


def test_the_nll_standard_error_is_that_of_the_per_example_bounds(vae, x):
    seen, bound = [], vae.iwae_bound                  # record the per-example bounds it sums

    def recorded(*args, **kwargs):
        seen.append(bound(*args, **kwargs))
        return seen[-1]

    vae.iwae_bound = recorded
    r = evaluate(vae, x[:60], iwae_k=20, rng=3, batch_size=25, iwae_max_floats=40 * D)
    bounds = np.concatenate(seen)                     # (60,)
    assert len(seen) > 3 and bounds.shape == (60,)    # several passes, every example once
    assert r["nll"] == pytest.approx(-bounds.mean(), rel=1e-12)
    assert r["nll_se"] == pytest.approx(bounds.std(ddof=1) / np.sqrt(60), rel=1e-9)
    assert 0 < r["nll_se"] < 5


def test_an_iwae_model_is_evaluated_like_a_vae(x):
    from minivae.models import IWAE
    iwae, vae = IWAE(D, (32,), Z, k=5, rng=0), VAE(D, (32,), Z, rng=0)      # the same weights
    a, b = (evaluate(m, x[:50], iwae_k=10, rng=4) for m in (iwae, vae))
    assert a == b


def test_kl_per_dim_sums_to_kl(vae, x):
    r = evaluate(vae, x, rng=1)
    assert len(r["kl_per_dim"]) == Z
    assert sum(r["kl_per_dim"]) == pytest.approx(r["kl"], rel=1e-5)
    mu, logvar = encoded(vae, x)
    np.testing.assert_allclose(kl_per_dim(mu, logvar), r["kl_per_dim"], rtol=1e-12)


def test_variance_law_matches_numpy_and_the_variance_of_sampled_z(vae, x):
    r = evaluate(vae, x, rng=1, batch_size=64)                    # moments streamed over batches
    mu, logvar = encoded(vae, x)                                   # float32 encoder, one batch
    np.testing.assert_allclose(r["var_mu"], mu.var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(r["mean_sigma2"], np.exp(logvar).mean(axis=0), rtol=1e-6)
    direct = np.exp(logvar).mean(axis=0) + mu.var(axis=0)
    np.testing.assert_allclose(r["variance_law"], direct, rtol=1e-6)
    np.testing.assert_allclose(variance_law(mu, logvar), direct, rtol=1e-12)
    # the law of total variance: z ~ q(z) = mean_x q(z|x) has exactly this variance
    eps = np.random.default_rng(2).standard_normal((400, N, Z))
    z = mu + np.exp(0.5 * logvar) * eps                            # (400, N, Z)
    np.testing.assert_allclose(z.reshape(-1, Z).var(axis=0), direct, rtol=0.02)


def test_active_units_on_constructed_means(vae, x):
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((1000, 4)) * np.array([1.0, 0.3, 0.05, 0.0])   # Var 1, .09, .0025, 0
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.001) == 3
    r = evaluate(vae, x, rng=1)
    assert r["au_threshold"] == 0.01
    assert r["active_units"] == active_units(encoded(vae, x)[0])


def test_deterministic_statistics_do_not_depend_on_the_batch_size(vae, x):
    """Equal up to float32 rounding (the encoder's matmul sums in a batch-dependent order)."""
    a, b = evaluate(vae, x, rng=1, batch_size=N), evaluate(vae, x, rng=1, batch_size=37)
    for key in ("kl", "mse", "active_units", "n"):
        assert a[key] == pytest.approx(b[key], rel=1e-6)
    for key in ("kl_per_dim", "var_mu", "mean_sigma2", "variance_law"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6)


def test_result_is_json_able_and_mse_is_of_the_mean_reconstruction(vae, x):
    r = evaluate(vae, x, iwae_k=2, rng=1)
    assert json.loads(json.dumps(r)) == r
    expected = ((vae.reconstruct(x).astype(np.float64) - x) ** 2).sum(axis=1).mean()
    assert r["mse"] == pytest.approx(expected, rel=1e-5)


def test_iwae_memory_is_bounded_by_max_floats_not_by_k(vae, x):
    xs = x[:2]
    evaluate(vae, xs, iwae_k=2, rng=1)                             # warm up: compile, caches
    peaks = []
    for k in (20, 400):
        tracemalloc.start()
        evaluate(vae, xs, iwae_k=k, rng=1, iwae_max_floats=8 * D)    # 8 decoded samples a pass
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    unchunked = 2 * 400 * D * 4                                    # k=400 decoder outputs at once
    assert peaks[1] < unchunked / 4
    assert peaks[1] < 1.5 * peaks[0] + 10_000


def test_evaluate_refuses_bad_arguments(vae, x):
    with pytest.raises(InputError, match="batch_size"):
        evaluate(vae, x, batch_size=0)
    with pytest.raises(InputError, match="iwae_k"):
        evaluate(vae, x, iwae_k=-1)


# ---- evaluate on deterministic autoencoders ----

class ProjectionAE:
    """Orthogonal projection onto k coordinates: a stand-in for PCA and linear autoencoders."""

    def __init__(self, k, with_loss):
        self.k = k
        if with_loss:
            self.loss = lambda x: float(np.abs(self.reconstruct(x) - x).sum(axis=1).mean())

    def encode(self, x):
        return x[:, :self.k].copy()

    def decode(self, z):
        return np.concatenate([z, np.zeros((len(z), D - self.k), z.dtype)], axis=1)

    def reconstruct(self, x):
        return self.decode(self.encode(x))


def test_autoencoder_recon_uses_its_own_loss_and_mse_is_per_example_sum(x):
    expected_mse = (x[:, 10:].astype(np.float64) ** 2).sum(axis=1).mean()
    with_loss = evaluate(ProjectionAE(10, True), x, batch_size=64)
    assert set(with_loss) == {"recon", "mse", "n"}
    assert with_loss["mse"] == pytest.approx(expected_mse, rel=1e-6)
    assert with_loss["recon"] == pytest.approx(np.abs(x[:, 10:]).sum(axis=1).mean(), rel=1e-6)
    without = evaluate(ProjectionAE(10, False), x, batch_size=64)
    assert without["recon"] == without["mse"] == pytest.approx(expected_mse, rel=1e-6)


# ---- the KL decomposition ----

def gaussian_tc(cov):
    """Total correlation of N(0, cov): -0.5 log det of its correlation matrix."""
    s = np.sqrt(np.diag(cov))
    return -0.5 * np.linalg.slogdet(cov / np.outer(s, s))[1]


def test_the_three_terms_sum_to_the_average_kl():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(1000, 3)) * [1.5, 0.7, 0.1]
    logvar = rng.normal(-1.0, 0.3, size=(1000, 3))
    d = kl_decomposition(mu, logvar, rng=1)
    total = d["mutual_information"] + d["total_correlation"] + d["dimwise_kl"]
    assert total == pytest.approx(d["kl_sampled"], abs=1e-9)          # telescopes exactly
    assert total == pytest.approx(kl_per_dim(mu, logvar).sum(), rel=0.03)   # MC estimate of KL
    assert d["kl"] == pytest.approx(kl_per_dim(mu, logvar).sum())
    assert sum(d["dimwise_kl_per_dim"]) == pytest.approx(d["dimwise_kl"])


def test_independent_gaussian_codes_have_no_total_correlation():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(1000, 3))
    d = kl_decomposition(mu, np.full_like(mu, np.log(0.25)), rng=2)
    assert abs(d["total_correlation"]) < 0.05


def test_correlated_codes_match_the_gaussian_closed_forms():
    """mu ~ N(0, C), q(z|x) = N(mu, s2 I): q(z) ~ N(0, C + s2 I), so TC, I(x;z) and the
    dimension-wise KL have closed forms (up to the finite batch)."""
    rng = np.random.default_rng(2)
    cov, s2 = np.array([[1.0, 0.8], [0.8, 1.0]]), 0.1
    mu = rng.multivariate_normal([0.0, 0.0], cov, size=1500)
    d = kl_decomposition(mu, np.full_like(mu, np.log(s2)), rng=3)
    agg = cov + s2 * np.eye(2)
    assert d["total_correlation"] == pytest.approx(gaussian_tc(agg), abs=0.03)       # 0.376
    mi = 0.5 * np.linalg.slogdet(agg)[1] - np.log(s2)                                 # 2.02
    assert d["mutual_information"] == pytest.approx(mi, abs=0.06)
    dwkl = sum(0.5 * (v - 1 - np.log(v)) for v in np.diag(agg))
    assert d["dimwise_kl"] == pytest.approx(dwkl, abs=0.02)


def test_sharp_posteriors_carry_log_n_nats_of_the_data_set():
    """Posteriors much narrower than the spacing of the codes identify the example: I = log N,
    which the weights 1/N (self) and (N-1)/(N(M-1)) (others) recover from a batch of M << N."""
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(300, 4))
    d = kl_decomposition(mu, np.full_like(mu, np.log(1e-6)), rng=4, dataset_size=100_000)
    assert d["mutual_information"] == pytest.approx(np.log(100_000), abs=1e-3)
    assert d["mutual_information"] + d["total_correlation"] + d["dimwise_kl"] == pytest.approx(
        d["kl_sampled"], abs=1e-9)


def test_kl_decomposition_uses_a_given_z_and_refuses_bad_input():
    rng = np.random.default_rng(4)
    mu, logvar = rng.normal(size=(50, 2)), rng.normal(-1, 0.1, size=(50, 2))
    z = mu + np.exp(0.5 * logvar) * rng.normal(size=mu.shape)
    assert kl_decomposition(mu, logvar, z=z) == kl_decomposition(mu, logvar, z=z.copy(), rng=9)
    with pytest.raises(InputError, match="at least 2"):
        kl_decomposition(mu[:1], logvar[:1], rng=0)
    with pytest.raises(InputError, match="dataset_size"):
        kl_decomposition(mu, logvar, rng=0, dataset_size=10)


# ---- the mutual information gap ----

@pytest.fixture
def factors():
    rng = np.random.default_rng(5)
    n = 5000
    return np.stack([rng.integers(0, 5, n), rng.integers(0, 10, n), rng.integers(0, 3, n)],
                    axis=1).astype(np.float64)                       # (n, 3) discrete factors


def test_codes_that_copy_each_factor_have_mig_near_one(factors):
    noise = np.random.default_rng(6).normal(size=(len(factors), 2))
    codes = np.concatenate([factors[:, [2, 0, 1]] * 0.3 - 1.0, noise], axis=1)   # (n, 5)
    assert mutual_information_gap(codes, factors) > 0.97
    mi, h = mutual_info_matrix(codes, factors)
    np.testing.assert_allclose(mi[[1, 2, 0], [0, 1, 2]], h, rtol=1e-12)   # I(copy; v) = H(v)


def test_codes_independent_of_the_factors_have_mig_near_zero(factors):
    codes = np.random.default_rng(7).normal(size=(len(factors), 5))
    assert mutual_information_gap(codes, factors) < 0.03


def test_a_factor_shared_by_two_codes_has_no_gap(factors):
    codes = np.concatenate([factors, 2.0 * factors[:, :1] + 1.0], axis=1)   # factor 0 twice
    mi, h = mutual_info_matrix(codes, factors)
    assert mi[0, 0] == pytest.approx(mi[3, 0]) == pytest.approx(h[0])       # a tie: gap 0
    assert mutual_information_gap(codes, factors) == pytest.approx(2 / 3, abs=0.01)


def test_constant_factors_are_skipped(factors):
    with_constant = np.concatenate([factors, np.ones((len(factors), 1))], axis=1)
    assert mutual_information_gap(factors, with_constant) == pytest.approx(
        mutual_information_gap(factors, factors))
    with pytest.raises(InputError, match="constant"):
        mutual_information_gap(factors, np.ones((len(factors), 2)))
