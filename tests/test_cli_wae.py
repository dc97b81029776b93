"""`minivae train --model wae`: the run folder of an autoencoder with its MMD term and its
flags, resumed bit for bit, evaluated (reconstruction, MMD, sample quality) and drawn; and the
sample-quality score: about 0 for real images, clearly more for a collapse to one shape, the
mean image or noise."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import (
    Replay,
    ctrl_c_then_resume,
    one_error_line,
    refused_train,
    resumed_equals_straight,
)
from small_data import SMALL_CLASSIFIER, every, quality_classifier

from minivae import data, losses, mmd
from minivae.cli import main
from minivae.models import WAE
from minivae.run import folder as rf
from minivae.run import generative
from minivae.run.config import TrainConfig

_small_sprites = every(16)          # 432 training and 48 test images
_classifier_once = quality_classifier(**SMALL_CLASSIFIER)

WAE_CONFIG = {"model": "wae", "x_dim": 16, "hidden": [8], "z_dim": 2, "lam": 10.0}
TINY = ["--model", "wae", "--data", "sprites", "--epochs", "1", "--hidden", "16",
        "--latent", "3", "--batch-size", "216", "--quiet"]     # 2 steps: seconds without the JIT


def _run(tmp_path, name, model=WAE_CONFIG, **cfg):
    cfg = {"epochs": 3, "batch_size": 32, **cfg}
    return rf.create_run(tmp_path / name, model, "toy", TrainConfig(**cfg)).dir


@pytest.mark.parametrize("model", [WAE_CONFIG, {**WAE_CONFIG, "kernel": "rbf",
                                                "output": "mse"}])
def test_resumed_wae_ends_bit_identical(tmp_path, toy, model):
    history = resumed_equals_straight(lambda name, **cfg: _run(tmp_path, name, model, **cfg),
                                      toy)
    row = history[-1]
    assert {"train_recon", "train_mmd", "test_recon", "test_mmd"} <= set(row)
    assert row["train_loss"] == pytest.approx(row["train_recon"] + 10 * row["train_mmd"])


def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(tmp_path, toy, monkeypatch):
    ctrl_c_then_resume(lambda name, **cfg: _run(tmp_path, name, **cfg), toy, monkeypatch,
                       WAE, "loss")


@pytest.fixture(scope="module")
def wae_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "wae"
    assert main(["train", *TINY, "--lam", "30", "--kernel", "rbf", "--out", str(run)]) == 0
    return run


def test_train_writes_a_complete_wae_run(wae_run):
    config = json.loads((wae_run / "config.json").read_text())
    assert config["model"]["model"] == "wae" and config["model"]["lam"] == 30
    assert config["model"]["kernel"] == "rbf" and config["model"]["output"] == "bernoulli"
    assert config["train"]["lr"] == TrainConfig.lr
    row = json.loads((wae_run / "metrics.jsonl").read_text())
    assert {"train_loss", "train_recon", "train_mmd", "test_loss", "test_mmd"} <= set(row)
    names = {p.name for p in (wae_run / "figures").iterdir()}
    assert {"reconstructions.png", "samples.png", "loss_curves.png"} <= names
    assert "traversals.png" not in names                           # no q(z|x) to traverse
    ev = json.loads((wae_run / "evaluation.json").read_text())
    assert {"loss", "recon", "mmd", "mse", "sample_mmd", "sample_mmd_real"} <= set(ev)
    assert "nelbo" not in ev and "nll" not in ev
    assert ev["loss"] == pytest.approx(ev["recon"] + 30 * ev["mmd"])
    assert ev["classifier_accuracy"] > 0.45         # 48 test images; chance 1/3 (measured 0.54)
    assert ev["sample_mmd"] > ev["sample_mmd_real"] + 4 * ev["sample_mmd_se"]   # one epoch


def test_evaluation_holds_the_model_s_own_numbers(wae_run):
    """recon is the decoder's loss on the test images, mse that of the reconstructions, and
    mmd an estimate of the MMD^2 the model's own estimator gives for its codes."""
    model, _ = rf.load_model(wae_run)
    x = data.load("sprites", "test").x
    ev = generative.evaluate_generative(model, x, data.load("sprites", "train"),
                                        np.random.default_rng(0))
    out = model.decoder.forward(model.encoder.forward(x))
    assert ev["recon"] == pytest.approx(float(model.recon_loss(out, x)[0].mean()), rel=1e-5)
    assert ev["mse"] == pytest.approx(float(losses.mse(model.reconstruct(x), x)[0].mean()),
                                      rel=1e-5)
    z = model.encode(x)
    draws = [mmd.mmd(z, np.random.default_rng(s).standard_normal(z.shape, np.float32),
                     model.kernel, model.scale)[0] for s in range(50)]
    assert ev["mmd"] == pytest.approx(np.mean(draws), abs=4 * np.std(draws) + 1e-6)


def test_evaluate_sample_and_figures_of_a_wae_run(wae_run, tmp_path, capsys):
    assert main(["evaluate", str(wae_run)]) == 0
    out = capsys.readouterr().out
    assert "MMD^2(codes, prior)" in out and "loss = recon + 30 MMD^2" in out
    assert "sample quality" in out and "KL" not in out
    grid = tmp_path / "w.png"
    assert main(["sample", str(wae_run), "--n", "9", "--out", str(grid)]) == 0
    assert grid.read_bytes()[:4] == b"\x89PNG"


def test_resume_keeps_the_wae_settings(wae_run, capsys):
    for flag, value, shown in (("--lam", "10", "10.0"), ("--kernel", "imq", "imq")):
        line = one_error_line(capsys, main(["train", "--resume", "--out", str(wae_run), flag,
                                             value]))
        assert f"{flag} {shown} differs" in line
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(wae_run),
                                         "--generator-loss", "minimax"]))
    assert "--generator-loss does not apply to this run's wae model" in line


@pytest.mark.parametrize("argv, words", [
    (["--model", "wae", "--likelihood", "gaussian-learned"], "autoencoder takes"),
    (["--model", "wae", "--beta", "2"], "--beta does not apply to --model wae"),
    (["--model", "wae", "--warmup", "2"], "--warmup does not apply to --model wae"),
    (["--model", "wae", "--d-hidden", "8"], "--d-hidden does not apply to --model wae"),
    (["--model", "vae", "--lam", "10"], "--lam does not apply to --model vae"),
    (["--model", "dae", "--kernel", "rbf"], "--kernel does not apply to --model dae"),
])
def test_flags_that_do_not_apply_give_one_line(argv, words, tmp_path, capsys):
    assert words in refused_train(capsys, argv, tmp_path / "r")


@pytest.mark.parametrize("argv, words", [
    (["--lam", "-1"], "--lam: expected a finite number >= 0"),
    (["--lam", "inf"], "--lam"),
    (["--kernel", "gauss"], "invalid choice"),
])
def test_bad_wae_flags_give_one_usage_line(argv, words, capsys):
    assert words in one_error_line(capsys, main(["train", "--model", "wae", *argv]), 2)


# ---- the sample-quality score, on every(16)'s images ----

def test_quality_is_zero_for_real_images_and_more_for_others():
    """Scored against a random half of the training images, in the features of a classifier
    that has learned them: the other half scores 0 within its standard error; squares only
    (a mode collapse), the mean image repeated, and noisy images, score clearly more."""
    train = data.load("sprites", "train")
    rng = np.random.default_rng(0)
    half = rng.permutation(len(train.x))                # the images are in the factors' order
    ref, other, y_other = train.x[half[:216]], train.x[half[216:]], train.y[half[216:]]
    real = generative.sample_quality(Replay(other), ref, train, rng, train.y[half[:216]])
    assert real["classifier_accuracy"] > 0.9            # on images it learned (measured 1.0)
    assert abs(real["sample_mmd"]) < 4 * real["sample_mmd_se"] + 1e-6
    assert real["quality_n"] == 216
    squares = other[y_other == 0]
    blurred = train.x.mean(axis=0, keepdims=True)                       # the mean image
    noisy = np.clip(other + 0.3 * rng.standard_normal(other.shape, np.float32), 0, 1)
    for fake in (squares, blurred, noisy):
        m = generative.sample_quality(Replay(fake), ref, train, rng)
        assert m["sample_mmd"] > real["sample_mmd"] + 4 * max(m["sample_mmd_se"],
                                                              real["sample_mmd_se"])
    no_labels = dataclasses.replace(train, y=None)
    assert generative.sample_quality(Replay(other), ref, no_labels, rng) == {}
    assert generative.sample_quality(Replay(other), ref[:19], train, rng) == {}


def test_the_quality_classifier_is_the_same_for_every_run(monkeypatch):
    """Trained twice (two steps each: sameness, not skill), the same weights; and the
    accuracy reported is the classifier's on the split's labels."""
    train = data.load("sprites", "train")
    train_one = generative.feature_classifier.__wrapped__       # not the module's kept one
    with monkeypatch.context() as mp:
        mp.setitem(generative.CLASSIFIER, "epochs", 2)
        a, b = train_one(train), train_one(train)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    test = data.load("sprites", "test")
    m = generative.sample_quality(Replay(test.x), test.x, train, np.random.default_rng(0),
                                  test.y)
    clf = generative.feature_classifier(train)
    assert m["classifier_accuracy"] == (clf.predict(test.x) == test.y).mean()


def test_wae_model_is_built_from_its_config():
    model = rf.build({**WAE_CONFIG, "kernel": "rbf"})
    assert isinstance(model, WAE) and model.kernel == "rbf" and model.lam == 10
