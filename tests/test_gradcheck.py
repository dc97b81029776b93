"""The shipped gradient checker: its error formula, its refusal of float32, and that it
catches deliberately wrong backward passes (a checker that cannot fail checks nothing)."""

import numpy as np
import pytest
from helpers import CHECK, TOL, WRONG, arrays, floats, grad_ok, layer_ok, seeds, sizes
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.gradcheck import check_grad, check_layer, check_model, numerical_gradient, rel_error
from minivae.layers import Linear, Reparameterize, Tanh

# ---- the formula ----


def test_rel_error_formula():
    a, b = np.array([1.0, 2.0, -3.0]), np.array([1.0, 2.5, -3.0])
    assert rel_error(a, b) == pytest.approx(0.5 / 6.0, rel=1e-15)   # max|a-b| / max(|a|+|b|)
    assert rel_error(b, a) == rel_error(a, b)
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([0.0]), np.array([1e-10])) == pytest.approx(1e-2)  # floor 1e-8
    assert rel_error(np.array([[1.0, 100.0]]), np.array([[2.0, 100.0]])) == pytest.approx(1 / 200)
    assert rel_error(np.array([]), np.array([])) == 0.0
    with pytest.raises(InputError, match="shapes differ"):
        rel_error(np.zeros(2), np.zeros(3))


@CHECK
@given(st.data())
def test_numerical_gradient_of_known_functions(data):
    shape = (data.draw(sizes), data.draw(sizes))
    x = data.draw(arrays(shape))                    # 0.125 <= |x| <= 2: x^3 has a gradient
    x0 = x.copy()
    g = numerical_gradient(lambda: np.sum(np.sin(x)) + 0.5 * np.sum(x ** 2), x)
    np.testing.assert_allclose(g, np.cos(x) + x, rtol=1e-7, atol=1e-8)
    assert np.array_equal(x, x0)                   # every entry restored, bit for bit
    assert check_grad(lambda: np.sum(x ** 3), x, 3 * x ** 2) < TOL
    assert check_grad(lambda: np.sum(x ** 3), x, 3 * x ** 2 + 0.01 * np.abs(x).max() + 0.01) \
        > WRONG


def test_scalar_and_3d_inputs():
    x = np.array(0.7)
    assert numerical_gradient(lambda: np.exp(x), x) == pytest.approx(np.exp(0.7), rel=1e-9)
    y = np.random.default_rng(0).standard_normal((2, 3, 4))
    np.testing.assert_allclose(numerical_gradient(lambda: np.sum(y ** 2), y), 2 * y, rtol=1e-8)


# ---- float64 only ----

def test_refuses_float32_with_a_clear_input_error():
    x32 = np.ones((2, 3), np.float32)
    with pytest.raises(InputError, match="float64 array, got float32") as info:
        numerical_gradient(lambda: x32.sum(), x32)
    assert isinstance(info.value, ValueError)
    assert "astype(np.float64)" in str(info.value)
    with pytest.raises(InputError, match="float64"):
        check_grad(lambda: x32.sum(), x32, np.ones_like(x32))
    with pytest.raises(InputError, match="input 0 must be a float64 array, got float32"):
        check_layer(Tanh(), x32)
    with pytest.raises(InputError, match=r"parameter 'W' of Linear\(3 -> 4, float32\)"):
        check_layer(Linear(3, 4, rng=0), np.ones((2, 3)))
    with pytest.raises(InputError, match="got list"):
        numerical_gradient(lambda: 0.0, [1.0, 2.0])
    with pytest.raises(InputError, match="got int64"):
        numerical_gradient(lambda: 0.0, np.arange(3))


def test_check_layer_leaves_the_layer_as_it_found_it():
    layer = Linear(3, 4, rng=0, dtype=np.float64)
    W, b = layer.params["W"].copy(), layer.params["b"].copy()
    x = np.random.default_rng(1).standard_normal((5, 3))
    x0 = x.copy()
    check_layer(layer, x)
    assert np.array_equal(layer.params["W"], W) and np.array_equal(layer.params["b"], b)
    assert np.array_equal(x, x0)


# ---- wrong backward passes must fail ----

class NoBiasGrad(Linear):
    """Forgets the bias gradient."""

    def backward(self, dy):
        x = self.cached()
        self.grads["W"] += x.T @ dy
        return dy @ self.params["W"].T


class TransposedW(Linear):
    """dx = dy @ W instead of dy @ W.T (only runs for square W; it is still wrong)."""

    def backward(self, dy):
        x = self.cached()
        self.grads["W"] += x.T @ dy
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"]


class TransposedDW(Linear):
    """dW += dy.T @ x instead of x.T @ dy (the transpose of the right answer, for square W)."""

    def backward(self, dy):
        x = self.cached()
        self.grads["W"] += dy.T @ x
        self.grads["b"] += dy.sum(axis=0)
        return dy @ self.params["W"].T


class TanhFromInput(Tanh):
    """Derivative 1 - x^2 from the input, instead of 1 - y^2 from the output."""

    def forward(self, x):
        self.x = x.copy()
        return super().forward(x)

    def backward(self, dy):
        self.cached()
        return dy * (1 - self.x ** 2)


class ReparamNoHalf(Reparameterize):
    """dlogvar = dz * eps * std: forgets the 0.5 of std = exp(0.5 logvar)."""

    def backward(self, dz):
        dmu, dlogvar = super().backward(dz)
        return dmu, 2 * dlogvar


@CHECK
@given(st.data())
def test_the_correct_linear_passes_and_wrong_ones_fail(data):
    N, D = data.draw(st.integers(2, 5)), data.draw(st.integers(2, 5))
    x, seed = data.draw(arrays((N, D))), data.draw(seeds)
    assert layer_ok(Linear(D, D, rng=seed, dtype=np.float64), x, TOL)[0]
    assert check_layer(NoBiasGrad(D, D, rng=seed, dtype=np.float64), x)["b"] > WRONG
    assert check_layer(TransposedW(D, D, rng=seed, dtype=np.float64), x)["x"] > WRONG
    assert check_layer(TransposedDW(D, D, rng=seed, dtype=np.float64), x)["W"] > WRONG


@CHECK
@given(st.data())
def test_tanh_derivative_from_the_input_fails(data):
    x = data.draw(arrays((data.draw(sizes), data.draw(sizes)), floats(-3.0, 3.0)))
    assert layer_ok(Tanh(), x, TOL)[0]
    # 1 - x^2 and 1 - tanh(x)^2 agree to O(x^4) near 0: move every entry to 0.5 <= |x| <= 2
    x = np.where(x >= 0, 1.0, -1.0) * (0.5 + np.abs(x) / 2)
    assert check_layer(TanhFromInput(), x)["x"] > WRONG


def test_reparameterize_without_the_half_fails():
    rng = np.random.default_rng(0)
    mu, logvar, eps = (rng.standard_normal((4, 3)) for _ in range(3))
    assert max(check_layer(Reparameterize(), (mu, logvar), eps=eps).values()) < TOL
    errors = check_layer(ReparamNoHalf(), (mu, logvar), eps=eps)
    assert errors["x0"] < TOL and errors["x1"] > WRONG


def test_the_roundoff_allowance_of_the_test_helpers_lets_no_wrong_gradient_through():
    """tests/helpers.py accepts a failed relative error only where the true gradient is lost
    in the roundoff of f. A zero gradient where the truth is 1, or a wrong layer, still fails."""
    x = np.array([[0.5, -1.0]])
    assert grad_ok(lambda: np.sum(x ** 2 - 2 * x), x, np.zeros_like(x) + [[-1.0, -4.0]], TOL)
    assert not grad_ok(lambda: np.sum(x ** 2 - 2 * x), x, np.zeros_like(x), TOL)
    z = np.array([[1.0]])                          # d/dz (z - 1)^2 = 0 here, exactly
    assert grad_ok(lambda: float(np.sum((z - 1) ** 2) + 3.0), z, np.zeros_like(z), TOL)
    lin = NoBiasGrad(3, 3, rng=0, dtype=np.float64)
    ok, errors = layer_ok(lin, np.ones((2, 3)), TOL)
    assert not ok and errors["b"] > WRONG


def test_check_model_passes_the_vae_and_fails_a_vae_that_forgets_beta_in_backward():
    from minivae.models import VAE

    class BetaForgottenInBackward(VAE):
        def backward(self):
            N, _, dout, dmu_kl, dlogvar_kl = self.cache
            self.cache = (N, 1.0, dout, dmu_kl, dlogvar_kl)  # backward as if beta were 1
            super().backward()

    rng = np.random.default_rng(3)
    x, eps = rng.uniform(size=(4, 6)), rng.standard_normal((4, 2))
    good = VAE(6, hidden=(5,), z_dim=2, beta=4.0, rng=0, dtype=np.float64)
    assert max(check_model(good, x, eps=eps).values()) < 1e-6
    bad = BetaForgottenInBackward(6, hidden=(5,), z_dim=2, beta=4.0, rng=0, dtype=np.float64)
    errors = check_model(bad, x, eps=eps)
    assert max(v for k, v in errors.items() if k.startswith("encoder")) > WRONG
    assert max(v for k, v in errors.items() if k.startswith("decoder")) < 1e-6


def test_check_model_refuses_float32():
    from minivae.models import VAE
    with pytest.raises(InputError, match="float64"):
        check_model(VAE(6, hidden=(5,), z_dim=2, rng=0), np.zeros((2, 6), np.float32))
