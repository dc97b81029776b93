"""The convolutional VAE, autoencoder and denoising autoencoder (arch="conv"): whole-model
gradient checks with fixed noise, the layout they build for 28 x 28 and 32 x 32 images, their
parameters counted before anything is allocated, configs that round-trip through build(),
the IWAE bound's chunking, and a run trained, resumed bit for bit, evaluated and drawn
through the same machinery as the dense models. Small images: the suite also runs with
NUMBA_DISABLE_JIT=1."""

import copy

import numpy as np
import pytest
from helpers import TOL_CHAIN, grad_ok

from minivae import figures
from minivae.errors import InputError
from minivae.evaluate import evaluate
from minivae.layers import Conv2d, ConvTranspose2d, Flatten, Sequential, Unflatten
from minivae.layers.channels_last import FlattenChannelsFirst, UnflattenChannelsLast
from minivae.models import (
    VAE,
    Autoencoder,
    DenoisingAutoencoder,
    build,
    check_config,
    parameter_count,
)
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig

H = 1e-5            # central-difference step for whole models, as in test_models.py


def model_ok(model, x, **loss_kwargs):
    """Every parameter's gradient against central differences of the loss; -> (ok, errors)."""
    model.zero_grad()
    model.loss(x, **loss_kwargs)
    model.backward()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    params = model.params

    def f():
        return model.loss(x, **loss_kwargs)

    from minivae.gradcheck import check_grad
    errors = {k: check_grad(f, p, analytic[k], h=H) for k, p in params.items()}
    ok = all(grad_ok(f, params[k], analytic[k], TOL_CHAIN, h=H) for k in params)
    return ok, errors


# ---- whole-model gradient checks, fixed noise ----

@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
@pytest.mark.parametrize("shape, channels, hidden", [((1, 6, 6), (2, 3), (4,)),
                                                     ((2, 5, 6), (3,), ())])
def test_conv_vae_gradient_every_parameter(likelihood, shape, channels, hidden):
    D, Z, N = int(np.prod(shape)), 3, 4
    model = VAE(D, hidden, Z, likelihood, beta=1.5, rng=1, dtype=np.float64,
                activation="tanh", sigma=0.7, arch="conv", image_shape=shape,
                channels=channels)
    rng = np.random.default_rng(2)
    x = (rng.random((N, D)) < 0.4).astype(np.float64)
    eps = rng.standard_normal((N, Z))
    ok, errors = model_ok(model, x, eps=eps)
    layers = 2 * len(channels) + 2 * len(hidden) + 2            # convs, dense, the two ends
    assert len(errors) == 2 * layers                            # every W and b
    assert ok, errors


@pytest.mark.parametrize("output", ["bernoulli", "mse"])
def test_conv_autoencoders_gradient_every_parameter(output):
    rng = np.random.default_rng(3)
    x = rng.random((3, 36))
    ae = Autoencoder(36, (), 3, output, "softplus", rng=0, dtype=np.float64, arch="conv",
                     channels=(2, 3))
    ok, errors = model_ok(ae, x)
    assert ok, errors
    dae = DenoisingAutoencoder(36, (4,), 3, output, "tanh", "masking", 0.3, rng=0,
                               dtype=np.float64, arch="conv", channels=(3,))
    ok, errors = model_ok(dae, x, x_tilde=dae.corrupt(x))
    assert ok, errors


# ---- what is built ----

def test_the_mnist_and_sprites_layouts():
    vae = VAE(784, (), 20, arch="conv", rng=0)                   # 28 x 28: 32 and 64 channels
    enc, dec = vae.encoder.layers, vae.decoder.layers
    assert [type(layer) for layer in enc] == [UnflattenChannelsLast, Conv2d, Conv2d,
                                              FlattenChannelsFirst, type(enc[4])]
    assert all(c.channels_last for c in enc[1:3] + dec[2:4])     # images (N, H, W, C) inside
    assert [(c.in_channels, c.out_channels, c.k, c.stride, c.padding) for c in enc[1:3]] == \
        [(1, 32, 4, 2, 1), (32, 64, 4, 2, 1)]
    assert enc[4].in_features == 64 * 7 * 7 and enc[4].out_features == 40
    assert enc[1].input_grad is False                            # x is data
    assert [type(layer) for layer in dec[1:]] == [UnflattenChannelsLast, ConvTranspose2d,
                                                   ConvTranspose2d, FlattenChannelsFirst]
    assert dec[2].activation == "relu" and dec[3].activation == "identity"       # logits
    x = np.random.default_rng(0).random((2, 784), dtype=np.float32)
    assert vae.encoder.forward(x).shape == (2, 40)
    assert vae.decoder.forward(np.zeros((2, 20), np.float32)).shape == (2, 784)
    assert vae.config() == {"model": "vae", "x_dim": 784, "hidden": [], "z_dim": 20,
                            "likelihood": "bernoulli", "beta": 1.0, "dtype": "float32",
                            "activation": "relu", "sigma": 0.1, "init": "uniform", "arch": "conv",
                            "image_shape": [1, 28, 28], "channels": [32, 64]}
    sprites = Autoencoder(1024, (256,), 10, arch="conv", image_shape=(32, 32), rng=0)
    assert sprites.encoder.layers[2].in_channels == 32
    assert sprites.encoder.forward(np.zeros((1, 1024), np.float32)).shape == (1, 10)
    assert sprites.decoder.layers[2].shape == (64, 8, 8)        # 32 -> 16 -> 8, and back
    assert sprites.reconstruct(np.zeros((1, 1024), np.float32)).shape == (1, 1024)


def test_channels_last_inside_computes_what_channels_first_would():
    """The models chain their convolutions channels-last; the same layers (same parameters)
    chained channels-first, between a plain Unflatten and Flatten, are the same function
    with the same gradients, so a model's parameters mean what they meant."""
    vae = VAE(2 * 6 * 7, (), 3, "gaussian-learned", arch="conv", image_shape=(2, 6, 7),
              channels=(3, 4), rng=0, dtype=np.float64)
    rng = np.random.default_rng(6)
    for net, x in [(vae.encoder, rng.random((3, 84))), (vae.decoder, rng.standard_normal((3, 3)))]:
        plain = []
        for layer in net.layers:
            if isinstance(layer, UnflattenChannelsLast):
                layer = Unflatten(layer.shape)
            elif isinstance(layer, FlattenChannelsFirst):
                layer = Flatten()
            elif isinstance(layer, (Conv2d, ConvTranspose2d)):
                layer = copy.copy(layer)                            # the same params and grads
                layer.channels_last, layer.scratch = False, {}
            plain.append(layer)
        y = net.forward(x)
        dy = rng.standard_normal(y.shape)
        net.zero_grad()
        dx = net.backward(dy)
        grads = {k: g.copy() for k, g in net.grads.items()}
        first = Sequential(*plain)
        np.testing.assert_allclose(first.forward(x), y, rtol=1e-12, atol=1e-12)
        first.zero_grad()
        dx_first = first.backward(dy)
        if dx is not None:
            np.testing.assert_allclose(dx_first, dx, rtol=1e-12, atol=1e-12)
        for k, g in first.grads.items():
            np.testing.assert_allclose(g, grads[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_odd_sizes_come_back_whole():
    """7 x 9 -> 3 x 4 -> 1 x 2 rounds down; the transposed convolutions give back 7 x 9."""
    vae = VAE(3 * 7 * 9, (), 2, "gaussian-learned", arch="conv", image_shape=(3, 7, 9),
              channels=(2, 2), rng=0)
    assert [s[1:] for s in vae.net.shapes] == [(7, 9), (3, 4), (1, 2)]
    assert vae.decoder.layers[2].output_padding == (1, 0)            # 1 x 2 -> 3 x 4
    assert vae.decoder.layers[3].output_padding == (1, 1)            # 3 x 4 -> 7 x 9
    out = vae.decoder.forward(np.zeros((2, 2), np.float32))
    assert out.shape == (2, 2 * 3 * 7 * 9)                       # [mean | logvar]


CONFIGS = [
    {"model": "vae", "x_dim": 784, "hidden": [], "z_dim": 20, "arch": "conv"},
    {"model": "vae", "x_dim": 1024, "hidden": [256, 64], "z_dim": 10, "arch": "conv",
     "image_shape": [32, 32], "channels": [16, 32, 8], "likelihood": "gaussian-learned"},
    {"model": "ae", "x_dim": 3 * 5 * 6, "hidden": [], "z_dim": 2, "arch": "conv",
     "image_shape": [3, 5, 6], "channels": [4], "output": "mse"},
    {"model": "dae", "x_dim": 784, "hidden": [100], "z_dim": 8, "arch": "conv",
     "channels": [8, 8, 8], "noise": "masking", "noise_level": 0.5},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["model"])
def test_parameters_are_counted_before_building_and_configs_round_trip(config):
    model = build(config, rng=0)
    assert parameter_count(config) == sum(p.size for p in model.params.values())
    again = build(model.config(), rng=1)
    assert again.config() == model.config()
    assert {k: p.shape for k, p in again.params.items()} == \
        {k: p.shape for k, p in model.params.items()}


def test_dense_configs_are_as_before():
    assert "arch" not in VAE(16, (8,), 2).config()
    assert "image_shape" not in DenoisingAutoencoder(16, (8,), 2).config()


@pytest.mark.parametrize("change, match", [
    ({"image_shape": [1, 28, 27]}, r"image_shape \(1, 28, 27\) holds 756 pixels, but x_dim = 784"),
    ({"channels": [8] * 5}, r"a 28 x 28 image allows 4 stride-2 convolutions, but channels asks"),
    ({"channels": [0]}, r"channels size must be a positive integer"),
    ({"arch": "resnet"}, r"arch must be one of \('mlp', 'conv'\)"),
    ({"arch": "mlp", "image_shape": [28, 28]}, r"image_shape and channels are settings of arch"),
    ({"x_dim": 785, "image_shape": None}, r"x_dim = 785 is not a square image"),
    ({"image_shape": [28]}, r"image_shape must be \(H, W\) or \(C, H, W\)"),
])
def test_bad_conv_configs_are_refused_before_allocating(change, match):
    config = {**CONFIGS[0], **change}
    with pytest.raises(InputError, match=match):
        parameter_count(config)
    with pytest.raises(InputError, match=match):
        build(config)


def test_an_absurd_conv_config_is_refused_by_its_count():
    config = {**CONFIGS[0], "x_dim": 4096 ** 2, "image_shape": [4096, 4096]}
    with pytest.raises(InputError, match="more than minivae builds"):
        check_config(config)


# ---- likelihood estimates ----

def test_iwae_bound_does_not_depend_on_the_chunking():
    vae = VAE(64, (), 3, arch="conv", channels=(2, 3), rng=0, dtype=np.float64)
    x = np.random.default_rng(1).random((5, 64))
    assert vae.row_floats == 4 * 4 * 1 * 16                      # the last ConvT's columns
    whole = vae.iwae_bound(x, 7, rng=3)
    for max_floats in (1, 600, 5000):
        np.testing.assert_allclose(vae.iwae_bound(x, 7, rng=3, max_floats=max_floats), whole,
                                   rtol=1e-12)
    assert np.all(whole >= -vae.loss(x, eps=np.zeros((5, 3))) - 50)      # finite and sane


# ---- through the run machinery ----

def test_a_conv_run_resumes_bit_for_bit_and_is_evaluated_and_drawn(tmp_path, toy):
    config = {"model": "vae", "x_dim": 16, "hidden": [], "z_dim": 2, "arch": "conv",
              "channels": [2, 3]}                                # 4 x 4 -> 2 x 2 -> 1 x 1
    cfg = {"epochs": 2, "batch_size": 50}
    straight = rf.create_run(tmp_path / "straight", config, "toy", TrainConfig(**cfg)).dir
    T.train(straight, datasets=toy, verbose=False)
    resumed = rf.create_run(tmp_path / "resumed", config, "toy",
                            TrainConfig(**{**cfg, "epochs": 1})).dir
    T.train(resumed, datasets=toy, verbose=False)
    T.train(resumed, datasets=toy, verbose=False, epochs=2)
    pa, _, ma = ckpt.load(straight / rf.CHECKPOINT)
    pb, _, _ = ckpt.load(resumed / rf.CHECKPOINT)
    assert pa.keys() == pb.keys() and "encoder.1.W" in pa
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k                  # bit for bit
    assert ma["run"]["model"]["arch"] == "conv"
    model, _ = rf.load_model(resumed)
    assert model.config() == build(config).config()
    metrics = evaluate(model, toy[1].x, iwae_k=5, rng=0)
    assert np.isfinite(metrics["nll"]) and metrics["nll"] <= metrics["nelbo"] + 1
    paths = figures.make_figures(model, toy[1], None, tmp_path / "figures", 0)
    assert {p.stem for p in paths} >= {"reconstructions", "samples", "traversals"}


# ---- the benchmark's PyTorch model is the same model ----

def test_the_pytorch_reference_computes_the_same_loss_and_gradients():
    """benchmarks/torch_conv_vae.py is minivae's conv VAE written the PyTorch way: with the
    same weights and eps, the same loss, and autograd's gradients equal minivae's
    hand-written ones (float64): an independent check of the whole backward pass."""
    torch = pytest.importorskip("torch")
    from benchmarks import torch_conv_vae, torch_vae
    vae = VAE(784, (), 20, arch="conv", rng=0, dtype=np.float64)
    net = torch_conv_vae.make_model(0, threads=1).double()
    ours = list(vae.params.values())
    theirs = list(net.parameters())
    assert [p.shape for p in ours] == [tuple(t.shape[::-1]) if t.ndim == 2 else tuple(t.shape)
                                       for t in theirs]
    with torch.no_grad():
        for p, t in zip(ours, theirs):
            t.copy_(torch.from_numpy(p.T.copy() if p.ndim == 2 else p))
    rng = np.random.default_rng(1)
    x = (rng.random((3, 784)) < 0.3).astype(np.float64)
    eps = rng.standard_normal((3, 20))
    vae.zero_grad()
    loss = vae.loss(x, eps=eps)
    vae.backward()
    xt = torch.from_numpy(x)
    mu, logvar = net.encode(xt)
    logits = net.decode(mu + torch.exp(0.5 * logvar) * torch.from_numpy(eps))
    loss_t = torch_vae.neg_elbo(torch, logits, xt, mu, logvar).mean()
    loss_t.backward()
    assert abs(loss - loss_t.item()) < 1e-10 * abs(loss)
    for (name, g), t in zip(vae.grads.items(), theirs):
        gt = t.grad.numpy()
        np.testing.assert_allclose(g, gt.T if g.ndim == 2 else gt, rtol=1e-8,
                                   atol=1e-12 * np.abs(gt).max(), err_msg=name)


# ---- minivae train --arch conv ----

def test_the_command_line_builds_conv_configs():
    from minivae.cli import train as cli_train
    from minivae.cli.parser import build_parser
    from minivae.errors import MinivaeError

    def settings(*argv):
        return cli_train._new_run_settings(build_parser().parse_args(["train", *argv]))

    config, name, _ = settings("--arch", "conv", "--data", "mnist", "--model", "dae")
    assert name == "mnist"
    assert config == {"model": "dae", "x_dim": 784, "hidden": [], "z_dim": 20,
                      "output": "bernoulli", "noise": "gaussian", "noise_level": 0.3,
                      "arch": "conv", "image_shape": [1, 28, 28]}
    config = settings("--arch", "conv", "--hidden", "64")[0]            # sprites, 32 x 32
    assert config["hidden"] == [64] and config["image_shape"] == [1, 32, 32]
    assert parameter_count(config) == sum(p.size for p in build(config).params.values())
    assert "arch" not in settings("--model", "ae")[0]                   # mlp: as before
    with pytest.raises(MinivaeError, match="--arch does not apply to --model pca"):
        settings("--model", "pca", "--arch", "conv")
