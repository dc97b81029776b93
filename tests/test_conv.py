"""Conv2d, ConvTranspose2d, Flatten and Unflatten: the kernels against their NumPy twins, the
fast layers (in both layouts, channels first and channels last) against the direct loops
that define them, their backward passes against central differences (float64, hypothesis
shapes, strides and paddings), the transposed convolution as the adjoint of the
convolution, the scratch arrays a layer reuses kept out of what it returns, and the errors
bad input raises. Shapes are small: the suite also runs with NUMBA_DISABLE_JIT=1, where the
kernels are Python loops."""

import ast
import inspect

import numpy as np
import pytest
from helpers import CHECK, FEW, TOL, arrays, floats, layer_ok, seeds
from hypothesis import given
from hypothesis import strategies as st

from minivae.errors import InputError
from minivae.gradcheck import check_layer
from minivae.kernels import conv as K
from minivae.layers import Conv2d, ConvTranspose2d, Dense, Flatten, Sequential, Unflatten
from minivae.layers.channels_last import (
    FlattenChannelsFirst,
    UnflattenChannelsLast,
    channels_first,
    channels_last,
)
from minivae.layers.conv_direct import conv2d_direct, conv_transpose2d_direct

DTYPES = [np.float32, np.float64]
SMOOTH = ["identity", "tanh", "softplus"]          # no kink for a central difference to cross


def tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@st.composite
def geometry(draw, max_side=7):
    """(N, C, H, W, O, k, s, p): an input a kernel fits in once padded; H and W drawn apart,
    so that (H + 2p - k) % s takes every value: output sizes that are not a plain division."""
    k = draw(st.integers(1, 4))
    s = draw(st.sampled_from([1, 2, 2, 3]))
    p = draw(st.integers(0, 2))
    lo = max(1, k - 2 * p)
    H, W = draw(st.integers(lo, max_side)), draw(st.integers(lo, max_side))
    N, C, O = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return N, C, H, W, O, k, s, p


def mirror_padding(H, W, k, s, p):
    """The output_padding of a ConvTranspose2d that gives back H x W from Conv2d's output."""
    return ((H + 2 * p - k) % s, (W + 2 * p - k) % s)


def pair(g, seed, dtype=np.float64, activation="identity", last=False):
    """A Conv2d C -> O and the ConvTranspose2d O -> C that is its adjoint (same W);
    ``last``: both take and give images channels-last."""
    _, C, H, W, O, k, s, p = g
    conv = Conv2d(C, O, k, s, p, activation, rng=seed, dtype=dtype, channels_last=last)
    convT = ConvTranspose2d(O, C, k, s, p, mirror_padding(H, W, k, s, p), activation,
                            rng=seed + 1, dtype=dtype, channels_last=last)
    convT.params["W"][...] = conv.params["W"]
    return conv, convT


# ---- the kernels: each equal to its NumPy twin ----

def test_every_conv_kernel_has_a_numpy_twin_and_a_test():
    tree = ast.parse(inspect.getsource(K))
    kernels = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
               and any("njit" in ast.unparse(d) for d in f.decorator_list)}
    assert kernels == {"im2col", "col2im"}
    for name in kernels:
        assert callable(getattr(K, name + "_np", None)), f"{name} has no twin {name}_np"


@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(g=geometry(), data=st.data())
def test_im2col_and_col2im_equal_their_twins_and_are_adjoint(dtype, g, data):
    N, C, H, W, _, k, s, p = g
    OH, OW = K.out_size(H, k, s, p), K.out_size(W, k, s, p)
    x = data.draw(arrays((N, H, W, C), floats(-2.0, 2.0, 32), dtype))          # channels last
    cols = data.draw(arrays((N * OH * OW, k * k * C), floats(-2.0, 2.0, 32), dtype))
    got = K.im2col(x, k, s, p, np.full(cols.shape, np.nan, dtype))       # every entry written
    np.testing.assert_array_equal(got, K.im2col_np(x, k, s, p, np.empty_like(cols)))
    back = K.col2im(cols, k, s, p, np.full(x.shape, np.nan, dtype))
    np.testing.assert_allclose(back, K.col2im_np(cols, k, s, p, np.empty_like(x)), **tol(dtype))
    # col2im is the transpose of im2col: <im2col(x), cols> = <x, col2im(cols)>
    lhs = np.sum(got.astype(np.float64) * cols)
    rhs = np.sum(x.astype(np.float64) * back)
    assert abs(lhs - rhs) <= (1e-4 if dtype == np.float32 else 1e-10) * max(1.0, abs(lhs))


def test_im2col_reads_a_patch_row_as_one_run():
    """Channels-last, row i of a patch is the k C floats x[n, h, w0:w0 + k, :], in order."""
    x = np.arange(2 * 5 * 6 * 3, dtype=np.float64).reshape(2, 5, 6, 3)      # (N, H, W, C)
    cols = K.im2col(x, 2, 2, 0, np.empty((2 * 2 * 3, 2 * 2 * 3)))            # (N OH OW, k k C)
    n, oh, ow = 1, 1, 2                                             # row (1 * 2 + 1) * 3 + 2
    np.testing.assert_array_equal(cols[11], x[n, 2 * oh:2 * oh + 2, 2 * ow:2 * ow + 2].ravel())


# ---- the layers against the definition ----

@pytest.mark.parametrize("last", [False, True], ids=["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", DTYPES)
@CHECK
@given(g=geometry(), seed=seeds, data=st.data())
def test_layers_equal_the_direct_loops(dtype, last, g, seed, data):
    """Both layouts give the definition's numbers: channels-last in and out is the same map,
    its images transposed."""
    N, C, H, W, O, k, s, p = g
    conv, convT = pair(g, seed, dtype, last=last)
    into, back = (channels_last, channels_first) if last else (np.asarray, np.asarray)
    x = data.draw(arrays((N, C, H, W), floats(-2.0, 2.0, 32), dtype))
    y = back(conv.forward(into(x)))
    assert y.shape == (N, O, K.out_size(H, k, s, p), K.out_size(W, k, s, p))
    np.testing.assert_allclose(y, conv2d_direct(x, conv.params["W"], conv.params["b"], s, p),
                               **tol(dtype))
    xt = back(convT.forward(into(y)))
    assert xt.shape == x.shape                                  # the mirror gives back H x W
    want = conv_transpose2d_direct(y, convT.params["W"], convT.params["b"], s, p,
                                   mirror_padding(H, W, k, s, p))
    np.testing.assert_allclose(xt, want, **tol(dtype))


@CHECK
@given(g=geometry(), seed=seeds, data=st.data())
def test_transposed_convolution_is_the_adjoint(g, seed, data):
    """<Conv(x), y> = <x, ConvT(y)> with the same W and no bias, to 1e-10."""
    N, C, H, W, O, k, s, p = g
    conv, convT = pair(g, seed)
    conv.params["b"][...] = 0
    convT.params["b"][...] = 0
    x = data.draw(arrays((N, C, H, W)))
    y = data.draw(arrays((N, O, K.out_size(H, k, s, p), K.out_size(W, k, s, p))))
    lhs, rhs = np.sum(conv.forward(x) * y), np.sum(x * convT.forward(y))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))
    # and ConvT's forward is Conv's input gradient: the same map
    conv.forward(x)
    np.testing.assert_allclose(conv.backward(y), convT.forward(y), rtol=0, atol=1e-12)


# ---- gradients ----

@pytest.mark.parametrize("activation, last", [(a, False) for a in SMOOTH] + [("tanh", True)])
@FEW
@given(g=geometry(max_side=6), seed=seeds, data=st.data())
def test_conv2d_gradients(activation, last, g, seed, data):
    N, C, H, W = g[:4]
    conv, _ = pair(g, seed, activation=activation, last=last)
    x = data.draw(arrays((N, C, H, W)))
    ok, errors = layer_ok(conv, channels_last(x) if last else x, TOL)
    assert set(errors) == {"x", "W", "b"}
    assert ok, errors


@pytest.mark.parametrize("activation, last", [(a, False) for a in SMOOTH] + [("tanh", True)])
@FEW
@given(g=geometry(max_side=6), seed=seeds, data=st.data())
def test_conv_transpose2d_gradients(activation, last, g, seed, data):
    N, _, H, W, O, k, s, p = g
    _, convT = pair(g, seed, activation=activation, last=last)
    y = data.draw(arrays((N, O, K.out_size(H, k, s, p), K.out_size(W, k, s, p))))
    ok, errors = layer_ok(convT, channels_last(y) if last else y, TOL)
    assert set(errors) == {"x", "W", "b"}
    assert ok, errors


def test_relu_gradients_away_from_the_kink():
    rng = np.random.default_rng(3)
    conv = Conv2d(2, 3, 3, 2, 1, "relu", rng=0, dtype=np.float64)
    convT = ConvTranspose2d(3, 2, 3, 2, 1, 1, "leaky_relu", negative_slope=0.1, rng=1,
                            dtype=np.float64)
    x = rng.standard_normal((2, 2, 6, 6))
    assert np.abs(conv2d_direct(x, conv.params["W"], conv.params["b"], 2, 1)).min() > 1e-3
    assert max(check_layer(conv, x).values()) < TOL
    y = rng.standard_normal((2, 3, 3, 3))
    assert np.abs(conv_transpose2d_direct(y, convT.params["W"], convT.params["b"], 2, 1, 1)
                  ).min() > 1e-3
    assert max(check_layer(convT, y).values()) < TOL


def test_a_wrong_backward_fails_the_check():
    """The checker tells a right col2im from one that drops the overlaps of the patches."""
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, 3, 1, 1, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 5))
    assert check_layer(conv, x)["x"] < TOL

    class Overwrites(Conv2d):
        def backward(self, dy):
            dx = super().backward(dy)
            reads = K.col2im(np.ones_like(self.cache[1]), self.k, 1, 1,
                             np.empty(channels_last(dx).shape))     # patches reading a pixel
            return dx / np.maximum(1, channels_first(reads))         # each pixel's mean, not sum
    wrong = Overwrites(2, 3, 3, 1, 1, rng=0, dtype=np.float64)
    assert check_layer(wrong, x)["x"] > 1e-2


def test_first_layer_skips_its_input_gradient():
    conv = Conv2d(1, 2, 3, rng=0, dtype=np.float64, input_grad=False)
    conv.forward(np.ones((1, 1, 4, 4)))
    assert conv.backward(np.ones((1, 2, 2, 2))) is None
    assert conv.grads["W"].any() and conv.grads["b"].any()


def test_gradients_accumulate_and_reset():
    rng = np.random.default_rng(1)
    convT = ConvTranspose2d(2, 1, 2, 2, rng=0, dtype=np.float64)
    y, dy = rng.standard_normal((1, 2, 2, 2)), rng.standard_normal((1, 1, 4, 4))
    convT.forward(y)
    convT.backward(dy)
    once = convT.grads["W"].copy()
    convT.backward(dy)
    np.testing.assert_allclose(convT.grads["W"], 2 * once)
    convT.zero_grad()
    assert not convT.grads["W"].any() and not convT.grads["b"].any()


@pytest.mark.parametrize("last", [False, True], ids=["NCHW", "NHWC"])
def test_what_a_layer_returns_is_never_its_scratch(last):
    """A layer reuses its patch matrix and gradient scratch from call to call; what it hands
    back (y, dx) a later call must not overwrite, and a second backward of the same forward
    gives the same gradients."""
    rng = np.random.default_rng(4)
    into = channels_last if last else np.asarray
    for layer, shape, up in [(Conv2d(2, 3, 3, 2, 1, "tanh", rng=0, dtype=np.float64,
                                     channels_last=last), (2, 2, 6, 6), (2, 3, 3, 3)),
                             (ConvTranspose2d(3, 2, 3, 2, 1, 1, "tanh", rng=0, dtype=np.float64,
                                              channels_last=last), (2, 3, 3, 3), (2, 2, 6, 6))]:
        x1, x2 = (into(rng.standard_normal(shape)) for _ in range(2))
        dy1, dy2 = (into(rng.standard_normal(up)) for _ in range(2))
        y1 = layer.forward(x1)
        dx1 = layer.backward(dy1)
        g1 = {k: g.copy() for k, g in layer.grads.items()}
        kept = y1.copy(), dx1.copy()
        layer.zero_grad()
        layer.backward(dy1)                                     # the same forward, again
        for k, g in g1.items():
            np.testing.assert_array_equal(layer.grads[k], g)
        layer.forward(x2)
        layer.backward(dy2)
        np.testing.assert_array_equal(y1, kept[0])
        np.testing.assert_array_equal(dx1, kept[1])
        owned = list(layer.scratch.values())
        assert owned and not any(np.shares_memory(a, b) for a in owned for b in (y1, dx1))


# ---- reshape layers ----

def test_flatten_and_unflatten_compose_conv_with_dense():
    rng = np.random.default_rng(2)
    net = Sequential(Unflatten((1, 5, 5)), Conv2d(1, 2, 3, 2, 1, "tanh", rng=0, dtype=np.float64),
                     Flatten(), Dense(18, 3, "tanh", rng=1, dtype=np.float64))
    x = rng.standard_normal((3, 25))
    assert net.forward(x).shape == (3, 3)
    ok, errors = layer_ok(net, x, 1e-6)
    assert ok, errors
    f = Flatten()
    a = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(f.forward(a), a.reshape(2, 60))
    np.testing.assert_array_equal(f.backward(a.reshape(2, 60)), a)
    assert Unflatten((3, 4, 5)).forward(a.reshape(2, 60)).shape == (2, 3, 4, 5)


def test_channels_last_flatten_and_unflatten_keep_the_rows_channel_first():
    """UnflattenChannelsLast and FlattenChannelsFirst: Unflatten and Flatten with the image
    transposed between them, each backward the other's forward (a transpose's adjoint)."""
    rng = np.random.default_rng(5)
    rows = rng.standard_normal((2, 3 * 4 * 5))                      # flattened (C, H, W)
    u, f = UnflattenChannelsLast((3, 4, 5)), FlattenChannelsFirst()
    img = u.forward(rows)
    np.testing.assert_array_equal(img, rows.reshape(2, 3, 4, 5).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(f.forward(img), rows)
    dimg = rng.standard_normal(img.shape)
    drows = rng.standard_normal(rows.shape)
    assert np.isclose(np.sum(img * dimg), np.sum(rows * u.backward(dimg)))  # <U r, d> = <r, U* d>
    np.testing.assert_array_equal(f.backward(drows), u.forward(drows))
    gray = rng.standard_normal((2, 20))
    assert np.shares_memory(UnflattenChannelsLast((1, 4, 5)).forward(gray), gray)  # no copy
    expect(r"expected x with 4 dimensions, got shape \(2, 60\)", FlattenChannelsFirst().forward,
           rows)


# ---- bad input ----

def expect(match, fn, *args, **kwargs):
    with pytest.raises(InputError, match=match):
        fn(*args, **kwargs)


def test_bad_settings_are_refused():
    expect(r"stride >= 1, got 0", Conv2d, 1, 2, 3, stride=0)
    expect(r"stride >= 1, got 0", ConvTranspose2d, 1, 2, 3, stride=0)
    expect(r"kernel_size >= 1, got 0", Conv2d, 1, 2, 0)
    expect(r"padding >= 0, got -1", Conv2d, 1, 2, 3, padding=-1)
    expect(r"in_channels >= 1, got 0", Conv2d, 0, 2, 3)
    expect(r"output_padding < stride \(2\), got 2", ConvTranspose2d, 1, 2, 3, 2, 0, 2)
    expect(r"activation must be one of", Conv2d, 1, 2, 3, activation="swish")
    expect(r"dtype must be float32 or float64", ConvTranspose2d, 1, 2, 3, dtype=np.int32)
    expect(r"tuple of sizes such as \(1, 28, 28\), got 784", Unflatten, 784)


def test_bad_images_say_what_was_expected():
    conv = Conv2d(3, 4, 5, stride=2, padding=1, dtype=np.float64)
    expect(r"expected x of shape \(N, C, H, W\) with C = 3, got shape \(2, 75\)",
           conv.forward, np.zeros((2, 75)))
    expect(r"expected x of shape \(N, C, H, W\) with C = 3, got shape \(2, 1, 8, 8\)",
           conv.forward, np.zeros((2, 1, 8, 8)))
    expect(r"kernel \(5 x 5\) is larger than the padded image \(4 x 12 with padding 1\); "
           r"expected images of at least 3 x 3", conv.forward, np.zeros((2, 3, 2, 10)))
    expect(r"expected x of dtype float64, got float32", conv.forward,
           np.zeros((1, 3, 8, 8), np.float32))
    expect(r"contains NaN", conv.forward, np.full((1, 3, 8, 8), np.nan))
    expect(r"backward called before forward", conv.backward, np.zeros((1, 4, 3, 3)))
    conv.forward(np.zeros((1, 3, 8, 8)))
    expect(r"expected dy of shape \(1, 4, 3, 3\), got \(1, 4, 2, 2\)",
           conv.backward, np.zeros((1, 4, 2, 2)))
    convT = ConvTranspose2d(2, 1, 3, stride=1, padding=3, dtype=np.float64)
    expect(r"a 1 x 1 input gives a -3 x -3 output; expected an input of at least 5 pixels",
           convT.forward, np.zeros((1, 2, 1, 1)))
    expect(r"expected x of shape \(N, C, H, W\) with C = 2, got shape \(4,\)",
           convT.forward, np.zeros(4))
    expect(r"expected x of shape \(N, 12\), got \(2, 13\)", Unflatten((3, 2, 2)).forward,
           np.zeros((2, 13)))
