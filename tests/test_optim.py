"""SGD (momentum, weight decay) and Adam (bias correction, weight decay) against steps
written out by hand; state_dict round trips that continue bit for bit; Adam at work."""

import numpy as np
import pytest

from minivae.errors import InputError
from minivae.layers import Linear
from minivae.losses import mse
from minivae.optim import SGD, Adam


def make_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"W": rng.standard_normal((3, 2)).astype(dtype), "b": rng.standard_normal(2).astype(dtype)}


def grads_at(params, t):
    """A gradient that depends on the parameters and on the step: 2 (p - 1) + sin(t)."""
    return {k: (2 * (p - 1) + np.sin(t + np.arange(p.size).reshape(p.shape))).astype(p.dtype)
            for k, p in params.items()}


# ---- against the update rules written out ----

@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.0), (0.9, 0.01), (0.5, 0.1)])
def test_sgd_matches_hand_written_steps(momentum, wd):
    params, lr = make_params(), 0.05
    opt = SGD(params, lr=lr, momentum=momentum, weight_decay=wd)
    p = {k: v.copy() for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(5):
        g = grads_at(p, t)
        opt.step(grads_at(params, t))
        for k, pk in p.items():
            vel[k] = momentum * vel[k] + (g[k] + wd * pk)
            p[k] = pk - lr * vel[k]
            np.testing.assert_allclose(params[k], p[k], rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(opt.state[f"v.{k}"], vel[k], rtol=1e-14, atol=1e-15)
    assert opt.t == 5


@pytest.mark.parametrize("betas, wd", [((0.9, 0.999), 0.0), ((0.8, 0.99), 0.05), ((0.0, 0.5), 0.0)])
def test_adam_matches_hand_written_steps(betas, wd):
    params, lr, eps = make_params(), 0.01, 1e-8
    b1, b2 = betas
    opt = Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(x) for k, x in params.items()}
    for t in range(1, 7):
        g = grads_at(p, t)
        opt.step(grads_at(params, t))
        for k, pk in p.items():
            gk = g[k] + wd * pk
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)   # bias correction
            p[k] = pk - lr * m_hat / (np.sqrt(v_hat) + eps)
            np.testing.assert_allclose(params[k], p[k], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(opt.state[f"m.{k}"], m[k], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(opt.state[f"v.{k}"], v[k], rtol=1e-13, atol=1e-15)


def test_adam_first_step_moves_each_parameter_by_lr():
    """With bias correction, step 1 is lr * g / (|g| + eps): about lr per entry."""
    params = {"p": np.array([3.0, -0.2, 1e-3])}
    Adam(params, lr=0.1).step({"p": np.array([5.0, -7.0, 2.0])})
    np.testing.assert_allclose(params["p"], [2.9, -0.1, -0.099], rtol=1e-6)


# ---- checkpoints ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("via_npz", [False, True])
@pytest.mark.parametrize("make_opt", [
    lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
    lambda p: Adam(p, lr=0.01, weight_decay=0.01),
], ids=["sgd", "adam"])
def test_state_dict_round_trip_continues_exactly(make_opt, via_npz, dtype, tmp_path):
    params = make_params(dtype)
    opt = make_opt(params)
    for t in range(4):
        opt.step(grads_at(params, t))
    state = opt.state_dict()
    saved = {k: p.copy() for k, p in params.items()}
    if via_npz:
        np.savez(tmp_path / "ckpt.npz", **state)
    for t in range(4, 9):                                    # the uninterrupted run goes on
        opt.step(grads_at(params, t))

    resumed = {k: p.copy() for k, p in saved.items()}
    opt2 = make_opt(resumed)
    if via_npz:
        with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
            opt2.load_state_dict(f)
    else:
        opt2.load_state_dict(state)
    assert opt2.t == 4
    for t in range(4, 9):
        opt2.step(grads_at(resumed, t))
    for k in params:
        assert np.array_equal(params[k], resumed[k]), k        # bit for bit
    for k in opt.state:
        assert np.array_equal(opt.state[k], opt2.state[k]), k
    assert opt.t == opt2.t == 9


def test_state_dict_is_a_snapshot():
    params = make_params()
    opt = Adam(params)
    opt.step(grads_at(params, 0))
    state = opt.state_dict()
    before = {k: np.array(v) for k, v in state.items()}
    opt.step(grads_at(params, 1))
    for k, old in before.items():
        assert np.array_equal(state[k], old), f"{k} changed after state_dict()"


# ---- at work ----

def test_adam_minimizes_a_quadratic():
    scales = np.array([0.1, 1.0, 10.0, 100.0])              # an ill-conditioned bowl
    target = np.array([1.0, -2.0, 0.5, 3.0])
    p = {"p": np.zeros(4)}
    f = lambda: 0.5 * np.sum(scales * (p["p"] - target) ** 2)
    f0 = f()
    opt = Adam(p, lr=0.05)
    for _ in range(1500):
        opt.step({"p": scales * (p["p"] - target)})
    assert f() < 1e-8 * f0
    np.testing.assert_allclose(p["p"], target, atol=1e-3)


@pytest.mark.parametrize("make_opt", [lambda p: Adam(p, lr=0.05),
                                      lambda p: SGD(p, lr=0.02, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_optimizer_trains_a_layer_in_place(make_opt):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    layer = Linear(3, 1, rng=0, dtype=np.float64)
    W = layer.params["W"]
    opt = make_opt(layer.params)
    losses = []
    for _ in range(300):
        layer.zero_grad()
        e, de = mse(layer.forward(x), y)
        losses.append(e.mean())
        layer.backward(de / len(x))
        opt.step(layer.grads)
    assert layer.params["W"] is W                        # updated in place
    assert losses[-1] < 1e-6 * losses[0]


# ---- bad input ----

def test_bad_arguments_raise_input_error():
    params = make_params()
    with pytest.raises(InputError, match="no parameters"):
        SGD({})
    with pytest.raises(InputError, match="positive learning rate"):
        Adam(params, lr=0.0)
    with pytest.raises(InputError, match="positive learning rate"):
        SGD(params, lr=float("nan"))
    with pytest.raises(InputError, match="betas"):
        Adam(params, betas=(0.9, 1.0))
    with pytest.raises(InputError, match="C-contiguous"):
        SGD({"W": np.ones((4, 4))[:, ::2]})
    opt = Adam(params)
    with pytest.raises(InputError, match=r"Adam.step.*missing \['b'\]"):
        opt.step({"W": np.zeros((3, 2))})
    with pytest.raises(InputError, match=r"Adam.step.*'W'.*expected \(3, 2\)"):
        opt.step({"W": np.zeros((2, 3)), "b": np.zeros(2)})
    with pytest.raises(InputError, match=r"'b'.*float32.*expected \(2,\) float64"):
        opt.step({"W": np.zeros((3, 2)), "b": np.zeros(2, np.float32)})
    assert opt.t == 0                                  # nothing happened
    state = opt.state_dict()
    with pytest.raises(InputError, match="keys"):
        SGD(params).load_state_dict(state)
    state["m.W"] = np.zeros((2, 3))
    with pytest.raises(InputError, match=r"'m.W' has shape \(2, 3\), expected \(3, 2\)"):
        Adam(params).load_state_dict(state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_opt", [lambda p: Adam(p, lr=1e-3),
                                      lambda p: SGD(p, lr=1e-3, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_moments_of_a_gradient_that_stays_zero_reach_zero_not_subnormal_numbers(dtype, make_opt):
    """A dead unit's gradient is exactly 0: its moment shrinks geometrically. Below the smallest
    normal number it is set to 0 (subnormal arithmetic is many times slower), and the
    parameters it no longer moves stay where they are."""
    p = {"w": np.ones(8, dtype)}
    opt = make_opt(p)
    opt.step({"w": np.ones(8, dtype)})                       # one real gradient, then none
    before = p["w"].copy()
    tiny = np.finfo(dtype).tiny
    for _ in range(8000 if dtype == np.float64 else 1000):  # 0.9^t passes through subnormals
        opt.step({"w": np.zeros(8, dtype)})
        state = opt.state_dict()
        for k, a in state.items():
            if k != "t":
                assert not ((a != 0) & (np.abs(a) < tiny)).any(), (opt.t, k, a)
    first = state["m.w"] if "m.w" in state else state["v.w"]
    assert (first == 0).all()                                # it did reach that range
    assert np.all(np.abs(p["w"] - before) < 0.1)             # and moved w only while it lived
