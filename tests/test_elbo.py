"""The whole negative ELBO, built by hand from layers, with its backward written out by
the chain rule here in the test, checked against central differences for every
parameter. Then the classic bug: a sampler that uses exp(logvar) as the standard
deviation while the KL reads logvar as a log-variance.

    encoder   h = tanh(x W1 + b1);   [mu, logvar] = h W2 + b2   (or two heads on h)
    sampler   z = mu + exp(0.5 logvar) eps                       (eps fixed)
    decoder   g = act(z W3 + b3);    logits = g W4 + b4
    loss      mean_n [ bernoulli_nll(logits, x) + KL(N(mu, exp(logvar)) || N(0, I)) ]
"""

import numpy as np
import pytest
from helpers import FEW, TOL_CHAIN, WRONG, grad_ok, log_normal, mean_and_se, seeds
from hypothesis import given
from hypothesis import strategies as st

from minivae.gradcheck import check_grad, check_layer
from minivae.layers import Dense, Linear, Reparameterize
from minivae.losses import bernoulli_nll, gaussian_kl
from minivae.models import VAE


class HandVAE:
    """A VAE assembled from layers; ``heads`` is "split" (one Linear to 2Z) or "two"."""

    def __init__(self, D, H, Z, *, heads="split", decoder_act="softplus", sampler=None, seed=0):
        rng = np.random.default_rng(seed)
        f64 = {"rng": rng, "dtype": np.float64}
        self.Z, self.heads = Z, heads
        self.enc_hidden = Dense(D, H, "tanh", **f64)
        if heads == "split":
            self.enc_out = Linear(H, 2 * Z, **f64)
            self.enc_heads = [self.enc_out]
        else:
            self.mu_head, self.logvar_head = Linear(H, Z, **f64), Linear(H, Z, **f64)
            self.enc_heads = [self.mu_head, self.logvar_head]
        self.sampler = Reparameterize() if sampler is None else sampler
        self.dec_hidden = Dense(Z, H, decoder_act, **f64)
        self.dec_out = Linear(H, D, **f64)
        self.layers = {"enc_hidden": self.enc_hidden, "dec_hidden": self.dec_hidden,
                       "dec_out": self.dec_out, **{f"enc_head{i}": layer for i, layer
                                                    in enumerate(self.enc_heads)}}

    @property
    def params(self):
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, layer in self.layers.items() for k, v in layer.grads.items()}

    def zero_grad(self):
        for layer in self.layers.values():
            layer.zero_grad()

    def encode(self, x):
        h = self.enc_hidden.forward(x)                                  # (N, H)
        if self.heads == "split":
            out = self.enc_out.forward(h)                               # (N, 2Z)
            return out[:, :self.Z], out[:, self.Z:]
        return self.mu_head.forward(h), self.logvar_head.forward(h)    # (N, Z) x2

    def loss(self, x, eps):
        N = x.shape[0]
        mu, logvar = self.encode(x)
        z = self.sampler.forward(mu, logvar, eps)                      # (N, Z)
        logits = self.dec_out.forward(self.dec_hidden.forward(z))     # (N, D)
        nll, dlogits = bernoulli_nll(logits, x)                        # (N,), (N, D)
        kl, (dmu_kl, dlogvar_kl) = gaussian_kl(mu, logvar)             # (N,), (N, Z) x2
        self.cache = (N, dlogits, dmu_kl, dlogvar_kl)
        return float(np.mean(nll + kl))

    def backward(self):
        """The chain rule, one line per node, from the batch mean back to W1."""
        N, dlogits, dmu_kl, dlogvar_kl = self.cache
        dg = self.dec_out.backward(dlogits / N)                        # d mean / d g  (N, H)
        dz = self.dec_hidden.backward(dg)                              # (N, Z)
        dmu, dlogvar = self.sampler.backward(dz)                       # through z = mu + std eps
        dmu = dmu + dmu_kl / N                                         # plus the KL's own path
        dlogvar = dlogvar + dlogvar_kl / N
        if self.heads == "split":
            dh = self.enc_out.backward(np.concatenate([dmu, dlogvar], axis=1))   # (N, H)
        else:
            dh = self.mu_head.backward(dmu) + self.logvar_head.backward(dlogvar)  # h feeds both
        self.enc_hidden.backward(dh)                                   # (N, D)


def problem(N, D, Z, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((N, D)) < 0.4).astype(np.float64)                 # binary pixels
    eps = rng.standard_normal((N, Z))
    return x, eps


def whole_model_errors(model, x, eps):
    """{parameter: relative error} of the hand-written backward against central differences."""
    model.zero_grad()
    model.loss(x, eps)
    model.backward()
    grads = {k: g.copy() for k, g in model.grads.items()}
    return {k: check_grad(lambda: model.loss(x, eps), p, grads[k]) for k, p in model.params.items()}


# ---- the right model passes ----

@pytest.mark.parametrize("heads", ["split", "two"])
@FEW
@given(data=st.data())
def test_whole_negative_elbo_gradient_every_parameter(heads, data):
    N, D, H, Z = (data.draw(st.integers(1, 5)) for _ in range(4))
    seed = data.draw(seeds)
    model = HandVAE(D, H, Z, heads=heads, seed=seed)
    x, eps = problem(N, D, Z, seed)
    errors = whole_model_errors(model, x, eps)
    n_heads = 1 if heads == "split" else 2
    assert len(errors) == 2 * (3 + n_heads)                       # every W and b is checked
    failing = [k for k, e in errors.items() if e >= TOL_CHAIN]    # replayed with the allowance
    grads = model.grads                                           # still the analytic ones
    assert all(grad_ok(lambda: model.loss(x, eps), model.params[k], grads[k], TOL_CHAIN)
               for k in failing), errors


def test_hand_built_model_equals_minivae_vae():
    """The same network as minivae.models.VAE (bernoulli, one tanh hidden layer): same loss,
    same gradients, once the parameters are copied across."""
    D, H, Z = 6, 5, 3
    hand = HandVAE(D, H, Z, decoder_act="tanh", seed=1)
    vae = VAE(D, hidden=(H,), z_dim=Z, activation="tanh", dtype=np.float64, rng=2)
    pairs = {"encoder.0": hand.enc_hidden, "encoder.1": hand.enc_out,
             "decoder.0": hand.dec_hidden, "decoder.1": hand.dec_out}
    for prefix, layer in pairs.items():
        for k in ("W", "b"):
            vae.params[f"{prefix}.{k}"][...] = layer.params[k]
    x, eps = problem(4, D, Z, 3)
    hand.zero_grad()
    vae.zero_grad()
    assert vae.loss(x, eps=eps) == pytest.approx(hand.loss(x, eps), rel=1e-14)
    hand.backward()
    vae.backward()
    for prefix, layer in pairs.items():
        for k in ("W", "b"):
            np.testing.assert_allclose(vae.grads[f"{prefix}.{k}"], layer.grads[k], rtol=1e-12,
                                       atol=1e-15)


# ---- the classic bug ----

class ExpStdSampler(Reparameterize):
    """The classic bug: z = mu + exp(logvar) eps, i.e. std = exp(logvar).

    Its forward is its documented formula; its backward is the inherited one,
    dlogvar = 0.5 dz eps std, the right formula for std = exp(0.5 logvar). Each piece
    matches its own specification; the two do not describe the same function.
    """

    def forward(self, mu, logvar, eps=None):
        return super().forward(mu, 2.0 * logvar, eps)      # the layer takes exp(0.5 * 2 logvar)


class LogStdSampler(ExpStdSampler):
    """The same forward with a backward derived for it (dz/dlogvar = eps std): consistent
    with itself, and still at odds with a KL that reads logvar as a log-variance."""

    def backward(self, dz):
        dmu, dlogvar = super().backward(dz)
        return dmu, 2.0 * dlogvar


def test_classic_bug_each_part_passes_its_own_check():
    rng = np.random.default_rng(0)
    mu, logvar, eps, dz = (rng.standard_normal((4, 3)) for _ in range(4))
    # the sampler's forward is the formula it documents
    z = ExpStdSampler().forward(mu, logvar, eps)
    np.testing.assert_allclose(z, mu + np.exp(logvar) * eps, rtol=1e-14)
    # its backward formula is the right derivative of exp(0.5 v) eps, given std
    f = lambda: np.sum(dz * (mu + np.exp(0.5 * logvar) * eps))
    assert check_grad(f, logvar, 0.5 * dz * eps * np.exp(0.5 * logvar)) < 1e-7
    # the KL, the encoder and the decoder each pass
    g = lambda: gaussian_kl(mu, logvar)[0].sum()
    _, (dmu_kl, dlogvar_kl) = gaussian_kl(mu, logvar)
    assert check_grad(g, mu, dmu_kl) < 1e-7 and check_grad(g, logvar, dlogvar_kl) < 1e-7
    model = HandVAE(5, 4, 3, sampler=ExpStdSampler(), seed=0)
    x = (rng.random((4, 5)) < 0.5).astype(np.float64)
    h = model.enc_hidden.forward(x)
    for layer, inp in [(model.enc_hidden, x), (model.enc_out, h),
                       (model.dec_hidden, z), (model.dec_out, model.dec_hidden.forward(z))]:
        assert max(check_layer(layer, inp).values()) < 1e-7


@pytest.mark.parametrize("heads", ["split", "two"])
def test_classic_bug_fails_the_whole_model_check(heads):
    D, H, Z = 6, 5, 3
    x, eps = problem(4, D, Z, 11)
    right = whole_model_errors(HandVAE(D, H, Z, heads=heads, seed=4), x, eps)
    assert max(right.values()) < TOL_CHAIN, right
    wrong = whole_model_errors(HandVAE(D, H, Z, heads=heads, seed=4, sampler=ExpStdSampler()),
                               x, eps)
    assert max(wrong.values()) > WRONG, wrong
    # the error enters through logvar: every encoder parameter sees it, no decoder one does
    assert all(e > WRONG for k, e in wrong.items() if k.startswith("enc_hidden"))
    assert all(e < TOL_CHAIN for k, e in wrong.items() if k.startswith("dec_"))


def test_consistent_log_std_sampler_is_caught_by_the_kl_not_by_gradients():
    """If the sampler's backward is made consistent with std = exp(logvar), every gradient
    check passes: the gradients are right, for the wrong objective. What catches it then
    is statistics: the analytic KL no longer matches a Monte-Carlo KL over the samples."""
    D, H, Z = 6, 5, 3
    x, eps = problem(4, D, Z, 11)
    rng = np.random.default_rng(1)
    mu, logvar = rng.standard_normal((1, Z)), rng.standard_normal((1, Z))
    assert max(check_layer(LogStdSampler(), (mu, logvar), eps=eps[:1]).values()) < 1e-7
    errors = whole_model_errors(HandVAE(D, H, Z, sampler=LogStdSampler(), seed=4), x, eps)
    assert max(errors.values()) < TOL_CHAIN

    n = 20_000
    m, lv = np.tile(mu, (n, 1)), np.tile(logvar, (n, 1))
    kl = gaussian_kl(mu, logvar)[0][0]
    for sampler, consistent in [(Reparameterize(rng=5), True), (LogStdSampler(rng=5), False)]:
        z = sampler.forward(m, lv)
        est, se = mean_and_se(log_normal(z, m, lv) - log_normal(z, 0.0, 0.0))
        assert (abs(est - kl) <= 5 * se) == consistent, (est, kl, se)
