"""Every layer's backward against central differences (float64, hypothesis shapes and
values), forward values against the plain formula, and the errors bad input raises."""

import numpy as np
import pytest
from helpers import CHECK, TOL, TOL_CHAIN, arrays, floats, layer_ok, seeds, signed, sizes
from hypothesis import assume, given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.layers import (
    Dense,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softplus,
    Tanh,
)

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus"]
KINKED = {"relu", "leaky_relu"}


def plain(name, a, slope=0.01):
    """Each activation written the obvious way, in float64."""
    a = a.astype(np.float64)
    return {"identity": a,
            "relu": np.where(a > 0, a, 0.0),
            "leaky_relu": np.where(a > 0, a, slope * a),
            "tanh": np.tanh(a),
            "sigmoid": 0.5 * (1 + np.tanh(0.5 * a)),
            "softplus": np.logaddexp(0.0, a)}[name]


LAYERS = {"identity": Identity, "relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid,
          "softplus": Softplus}


# ---- gradients ----

@CHECK
@given(st.data())
def test_linear_gradients(data):
    N, D, H = data.draw(sizes), data.draw(sizes), data.draw(sizes)
    layer = Linear(D, H, rng=data.draw(seeds), dtype=np.float64)
    ok, errors = layer_ok(layer, data.draw(arrays((N, D))), TOL)
    assert set(errors) == {"x", "W", "b"}
    assert ok, errors


@pytest.mark.parametrize("activation", ACTIVATIONS)
@CHECK
@given(data=st.data())
def test_dense_gradients(activation, data):
    N, D, H = data.draw(sizes), data.draw(sizes), data.draw(sizes)
    layer = Dense(D, H, activation, negative_slope=0.2, rng=data.draw(seeds), dtype=np.float64)
    x = data.draw(arrays((N, D)))
    if activation in KINKED:               # keep every pre-activation away from the kink at 0
        assume(np.abs(x @ layer.params["W"] + layer.params["b"]).min() > 1e-3)
    ok, errors = layer_ok(layer, x, TOL)
    assert set(errors) == {"x", "W", "b"}
    assert ok, errors


@pytest.mark.parametrize("name", ["identity", "relu", "tanh", "sigmoid", "softplus"])
@CHECK
@given(data=st.data())
def test_activation_gradients(name, data):
    shape = (data.draw(sizes), data.draw(sizes))
    # signed() keeps |x| >= 0.125, away from ReLU's kink; smooth ones also get values near 0
    elements = signed() if name == "relu" else floats(-4.0, 4.0)
    ok, errors = layer_ok(LAYERS[name](), data.draw(arrays(shape, elements)), TOL)
    assert set(errors) == {"x"}
    assert ok, errors


@CHECK
@given(st.data())
def test_leaky_relu_gradients(data):
    shape = (data.draw(sizes), data.draw(sizes))
    slope = data.draw(floats(0.01, 0.5))
    layer = LeakyReLU(slope)
    x = data.draw(arrays(shape))                       # |x| >= 0.125
    ok, errors = layer_ok(layer, x, TOL)
    assert ok, errors
    assert np.allclose(layer.forward(x), np.where(x > 0, x, slope * x), rtol=0, atol=0)


@CHECK
@given(st.data())
def test_sequential_gradients(data):
    N, D, H, O = (data.draw(sizes) for _ in range(4))
    seed = data.draw(seeds)
    net = Sequential(Linear(D, H, rng=seed, dtype=np.float64), Tanh(),
                     Dense(H, H, "softplus", rng=seed + 1, dtype=np.float64), Sigmoid(),
                     Linear(H, O, rng=seed + 2, dtype=np.float64))
    ok, errors = layer_ok(net, data.draw(arrays((N, D))), TOL_CHAIN)
    assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}
    assert ok, errors


# ---- forward values ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@CHECK
@given(data=st.data())
def test_dense_matches_linear_then_formula(activation, dtype, data):
    N, D, H = data.draw(sizes), data.draw(sizes), data.draw(sizes)
    layer = Dense(D, H, activation, negative_slope=0.2, rng=data.draw(seeds), dtype=dtype)
    width = 32 if dtype == np.float32 else 64
    x = data.draw(arrays((N, D), floats(-30.0, 30.0, width), dtype))
    W, b = (p.astype(np.float64) for p in (layer.params["W"], layer.params["b"]))
    want = plain(activation, x.astype(np.float64) @ W + b, slope=0.2)
    y = layer.forward(x)
    assert y.dtype == dtype and y.shape == (N, H)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["identity", "relu", "tanh", "sigmoid", "softplus"])
@CHECK
@given(data=st.data())
def test_activation_forward_formula(name, dtype, data):
    width = 32 if dtype == np.float32 else 64
    x = data.draw(arrays((data.draw(sizes), data.draw(sizes)), floats(-50.0, 50.0, width),
                         dtype))
    y = LAYERS[name]().forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, plain(name, x), rtol=tol, atol=tol)


def test_dense_equals_linear_followed_by_activation():
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((6, 4)), rng.standard_normal((6, 5))
    for activation, act in [("tanh", Tanh()), ("sigmoid", Sigmoid()), ("softplus", Softplus()),
                            ("relu", ReLU()), ("leaky_relu", LeakyReLU(0.01))]:
        fused = Dense(4, 5, activation, rng=7, dtype=np.float64)
        chain = Sequential(Linear(4, 5, rng=7, dtype=np.float64), act)
        np.testing.assert_allclose(fused.forward(x), chain.forward(x), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(fused.backward(dy), chain.backward(dy), rtol=1e-13, atol=1e-14)
        for k in ("W", "b"):
            np.testing.assert_allclose(fused.grads[k], chain.grads[f"0.{k}"], rtol=1e-13,
                                       atol=1e-14)


# ---- bookkeeping ----

def test_gradients_accumulate_and_zero_grad_resets():
    rng = np.random.default_rng(0)
    net = Sequential(Linear(3, 4, rng=1, dtype=np.float64), Tanh(),
                     Dense(4, 2, "sigmoid", rng=2, dtype=np.float64))
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    net.forward(x)
    net.backward(dy)
    once = {k: g.copy() for k, g in net.grads.items()}
    assert all(np.abs(g).max() > 0 for g in once.values())
    net.backward(dy)
    for k, g in net.grads.items():
        np.testing.assert_allclose(g, 2 * once[k], rtol=1e-14)
    net.zero_grad()
    assert all(not g.any() for g in net.grads.values())


@pytest.mark.parametrize("make", [lambda **kw: Linear(3, 4, rng=1, dtype=np.float64, **kw),
                                  lambda **kw: Dense(3, 4, "tanh", rng=1, dtype=np.float64, **kw)],
                         ids=["Linear", "Dense"])
def test_input_grad_false_skips_dx_and_changes_no_parameter_gradient(make):
    """A first layer (its input is data) returns no dx; its W and b gradients are unchanged."""
    rng = np.random.default_rng(3)
    x, dy = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    grads = []
    for input_grad in (True, False):
        layer = make(input_grad=input_grad)
        layer.forward(x)
        dx = layer.backward(dy)
        assert (dx is None) is (not input_grad)
        grads.append({k: g.copy() for k, g in layer.grads.items()})
    for k in grads[0]:
        np.testing.assert_array_equal(grads[0][k], grads[1][k])


def test_a_vae_encoder_skips_the_data_gradient_only():
    from minivae.models.vae import VAE
    vae = VAE(6, hidden=(5, 4), z_dim=2, rng=0, dtype=np.float64)
    flags = [layer.input_grad for layer in vae.encoder.layers + vae.decoder.layers]
    assert flags == [False, True, True, True, True, True]


def test_sequential_params_are_the_layers_arrays():
    lin = Linear(3, 2, rng=0, dtype=np.float64)
    net = Sequential(lin, Tanh())
    net.params["0.W"][...] = 0.0
    assert not lin.params["W"].any()
    assert net.params["0.b"] is lin.params["b"] and net.grads["0.W"] is lin.grads["W"]


def test_linear_init_is_seeded_and_bounded():
    a, b = Linear(16, 3, rng=5), Linear(16, 3, rng=5)
    assert np.array_equal(a.params["W"], b.params["W"])
    assert a.params["W"].dtype == np.float32
    assert np.abs(a.params["W"]).max() <= 1 / np.sqrt(16)


# ---- bad input ----

def _layers():
    # (layer, the name its errors carry, a wrong input shape, the name a wrong dy carries)
    return [
        (Linear(3, 4, rng=0), "Linear(3 -> 4", (2, 5), "Linear(3 -> 4"),
        (Dense(3, 4, "tanh", rng=0), "Dense(3 -> 4, tanh", (2, 5), "Dense(3 -> 4, tanh"),
        (ReLU(), "ReLU()", (2, 3, 1), "ReLU()"),
        (LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)", (6,), "LeakyReLU(negative_slope=0.2)"),
        (Tanh(), "Tanh()", (6,), "Tanh()"),
        (Sigmoid(), "Sigmoid()", (2, 3, 1), "Sigmoid()"),
        (Softplus(), "Softplus()", (6,), "Softplus()"),
        # a chain: the first layer refuses a bad x, the last one a bad dy
        (Sequential(Linear(3, 4, rng=0), Tanh()), "Linear(3 -> 4", (2, 5), "Tanh()"),
    ]


CASES = _layers()
IDS = [type(c[0]).__name__ for c in CASES]


def _raises(fn, *names):
    with pytest.raises(InputError) as info:
        fn()
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for name in names:
        assert name in msg, msg
    return msg


@pytest.mark.parametrize("layer, name, bad_shape, back_name", CASES, ids=IDS)
def test_bad_input_raises_input_error_naming_the_layer(layer, name, bad_shape, back_name):
    good = np.ones((2, 3), np.float32)
    before = "Sequential(" if isinstance(layer, Sequential) else name
    _raises(lambda: layer.backward(good), before, "backward called before forward")
    _raises(lambda: layer.forward(np.ones(bad_shape, np.float32)), name, "expected x",
            str(bad_shape))
    _raises(lambda: layer.forward(np.ones((2, 3), np.int64)), name, "dtype", "int64")
    nan = good.copy()
    nan[1, 2] = np.nan
    _raises(lambda: layer.forward(nan), name, "NaN")
    _raises(lambda: layer.forward(np.ones((0, 3), np.float32)), name, "empty",
            "expected at least one example")
    _raises(lambda: layer.forward([[1.0, 2.0, 3.0]]), name, "numpy array")
    y = layer.forward(good)                   # a good call still works afterwards
    _raises(lambda: layer.backward(np.ones((y.shape[0] + 1, y.shape[1]), np.float32)), back_name,
            "expected dy")


def test_float64_into_float32_linear_names_the_fix():
    msg = _raises(lambda: Linear(3, 4, rng=0).forward(np.ones((2, 3))),
                  "Linear(3 -> 4, float32)", "expected x of dtype float32", "got float64")
    assert "astype(np.float32)" in msg
    _raises(lambda: Dense(3, 4, "relu", rng=0, dtype=np.float64).forward(np.ones((2, 3), "f4")),
            "Dense(3 -> 4, relu, float64)", "expected x of dtype float64")


def test_dy_of_the_wrong_dtype_is_refused():
    layer = Linear(3, 4, rng=0)
    layer.forward(np.ones((2, 3), np.float32))
    _raises(lambda: layer.backward(np.ones((2, 4))), "Linear(3 -> 4", "dy", "float32")
    act = Tanh()
    act.forward(np.ones((2, 3), np.float32))
    _raises(lambda: act.backward(np.ones((2, 3))), "Tanh()", "dy", "float32")


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(3, 4, "gelu")
    with pytest.raises(ValueError, match="in_features >= 1, got 0"):
        Linear(0, 4)
    with pytest.raises(ValueError, match="float32 or float64"):
        Linear(3, 4, dtype=np.int32)
    with pytest.raises(InputError, match="not a layer"):
        Sequential(Linear(3, 4), "tanh")
