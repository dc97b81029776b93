"""`minivae train --model gan`: a run folder holding both networks and both optimizers,
resumed bit for bit, evaluated with the sample-quality score; bad flags and hostile
checkpoints refused in one line."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import (
    ctrl_c_then_resume,
    one_error_line,
    refused_train,
    resumed_equals_straight,
    rewrite_npz,
)
from small_data import SMALL_CLASSIFIER, every, quality_classifier

from minivae import data
from minivae.cli import main
from minivae.models import GAN
from minivae.optim import Adam
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig
from minivae.run.optimizers import GAN_BETAS, OptimizerPair, make_optimizer

_small_sprites = every(16)          # 432 training and 48 test images
_classifier_once = quality_classifier(**SMALL_CLASSIFIER)

GAN_CONFIG = {"model": "gan", "x_dim": 16, "z_dim": 2, "hidden": [8], "d_hidden": [6]}
TINY = ["--model", "gan", "--data", "sprites", "--epochs", "1", "--hidden", "16",
        "--latent", "3", "--batch-size", "64", "--quiet"]


def _run(tmp_path, name, **cfg):
    cfg = {"epochs": 3, "batch_size": 32, "lr": 2e-3, **cfg}
    return rf.create_run(tmp_path / name, GAN_CONFIG, "toy", TrainConfig(**cfg)).dir


# ---- the run machinery, on arrays ----

def test_checkpoint_holds_both_networks_and_both_optimizers(tmp_path, toy):
    run = _run(tmp_path, "gan", epochs=2, d_lr=5e-3)
    history = T.train(run, datasets=toy, verbose=False)
    assert {"train_loss", "train_g_loss", "train_d_real", "train_d_fake", "test_loss",
            "test_d_real", "test_d_fake"} <= set(history[-1])
    params, optim, _ = ckpt.load(run / rf.CHECKPOINT)
    assert {k.split(".")[0] for k in params} == {"generator", "discriminator"}
    steps = 2 * 7                                           # 2 epochs of 200 / 32 batches
    assert int(optim["discriminator.t"]) == int(optim["generator.t"]) == steps
    generator = GAN(16, 2, hidden=(8,), d_hidden=(6,)).generator
    assert {k for k in optim if k.startswith("generator.m.")} == {
        f"generator.m.{k}" for k in generator.params}
    model, _ = rf.load_model(run)
    opt = make_optimizer(model, rf.open_run(run).train)
    assert isinstance(opt, OptimizerPair)
    assert opt["discriminator"].lr == 5e-3 and opt["generator"].lr == 2e-3
    assert opt["generator"].b1 == GAN_BETAS[0]
    assert opt["discriminator"].params.keys() == model.discriminator.params.keys()


def test_resumed_gan_ends_bit_identical(tmp_path, toy):
    resumed_equals_straight(lambda name, **cfg: _run(tmp_path, name, **cfg), toy)


def test_ctrl_c_mid_epoch_then_resume_is_bit_identical(tmp_path, toy, monkeypatch):
    def stopped(run):
        _, optim, meta = ckpt.load(run / rf.CHECKPOINT)
        assert meta["progress"]["batch"] == 3 and int(optim["generator.t"]) == 7 + 3
    ctrl_c_then_resume(lambda name, **cfg: _run(tmp_path, name, **cfg), toy, monkeypatch,
                       GAN, "d_loss", stopped)


@pytest.mark.parametrize("change, words", [
    (lambda a: a.pop("optim.generator.t"), "generator's optimizer state has no valid step"),
    (lambda a: a.__setitem__("optim.discriminator.v.0.W", -a["optim.discriminator.v.0.W"] - 1),
     "negative second moment"),
    (lambda a: a.__setitem__("optim.t", np.array(3)), "of no optimizer this model trains"),
    (lambda a: [a.pop(k) for k in list(a) if k.startswith("optim.discriminator.")],
     "discriminator's optimizer state has no valid step"),
    (lambda a: a.__setitem__("optim.generator.m.0.W", a["optim.generator.m.0.W"][:1]),
     "does not fit"),
])
def test_a_damaged_gan_checkpoint_is_refused(tmp_path, toy, change, words):
    run = _run(tmp_path, "gan", epochs=1)
    T.train(run, datasets=toy, verbose=False)
    rewrite_npz(run / rf.CHECKPOINT, change)
    before = (run / rf.CHECKPOINT).read_bytes()
    with pytest.raises(ckpt.CheckpointError, match=words):
        T.train(run, datasets=toy, verbose=False, epochs=2)
    assert (run / rf.CHECKPOINT).read_bytes() == before       # nothing written over it


def test_a_gan_config_with_a_vae_optimizer_state_is_refused(tmp_path, toy):
    """A checkpoint whose optimizer arrays are one network's, as a VAE's are."""
    run = _run(tmp_path, "gan", epochs=1)
    T.train(run, datasets=toy, verbose=False)
    model, _ = rf.load_model(run)

    def one_optimizer(a):
        for k in [k for k in a if k.startswith("optim.")]:
            a.pop(k)
        a.update({f"optim.{k}": v for k, v in Adam(model.params).state_dict().items()})
    rewrite_npz(run / rf.CHECKPOINT, one_optimizer)
    with pytest.raises(ckpt.CheckpointError, match="of no optimizer this model trains"):
        T.train(run, datasets=toy, verbose=False, epochs=2)


# ---- the command line ----

@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "gan"
    assert main(["train", *TINY, "--generator-loss", "minimax", "--d-hidden", "8", "--d-lr",
                 "1e-3", "--out", str(run)]) == 0
    return run


def test_train_writes_a_complete_gan_run(gan_run):
    config = json.loads((gan_run / "config.json").read_text())
    assert config["model"]["model"] == "gan" and config["model"]["generator_loss"] == "minimax"
    assert config["model"]["hidden"] == [16] and config["model"]["d_hidden"] == [8]
    assert config["model"]["z_dim"] == 3
    assert config["train"]["lr"] == 2e-4 and config["train"]["d_lr"] == 1e-3   # GAN defaults
    row = json.loads((gan_run / "metrics.jsonl").read_text())
    assert {"train_loss", "train_g_loss", "train_d_real", "train_d_fake", "test_loss"} <= set(row)
    assert 0 < row["train_d_real"] < 1 and 0 < row["train_d_fake"] < 1
    assert sorted(p.name for p in (gan_run / "figures").iterdir()) == ["loss_curves.png",
                                                                     "samples.png"]
    ev = json.loads((gan_run / "evaluation.json").read_text())
    assert {"d_loss", "g_loss", "d_real", "d_fake", "sample_mmd", "sample_mmd_se",
            "sample_mmd_real", "quality_n"} <= set(ev)
    assert ev["quality_n"] == 48 and ev["n"] == 48
    assert ev["classifier_accuracy"] > 0.45         # 48 test images; chance 1/3 (measured 0.54)
    # a generator after one epoch is far from the data; real images score near 0
    assert ev["sample_mmd"] > ev["sample_mmd_real"] + 4 * ev["sample_mmd_se"]


def test_evaluate_and_sample_a_gan_run(gan_run, tmp_path, capsys):
    assert main(["evaluate", str(gan_run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m == {**json.loads((gan_run / "evaluation.json").read_text()), "run": str(gan_run)}
    assert main(["evaluate", str(gan_run)]) == 0
    out = capsys.readouterr().out
    assert "D(real)" in out and "sample quality" in out and "negative ELBO" not in out
    grid = tmp_path / "g.png"
    assert main(["sample", str(gan_run), "--n", "4", "--out", str(grid)]) == 0
    assert grid.read_bytes()[:4] == b"\x89PNG"


def test_resume_a_gan_run_changes_only_the_learning_rates(gan_run, capsys):
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(gan_run),
                                         "--generator-loss", "non-saturating"]))
    assert "--generator-loss non-saturating differs" in line
    assert main(["train", "--resume", "--out", str(gan_run), "--epochs", "2", "--d-lr", "5e-4",
                 "--quiet", "--no-figures"]) == 0
    config = json.loads((gan_run / "config.json").read_text())
    assert config["train"]["d_lr"] == 5e-4 and config["train"]["epochs"] == 2
    assert len((gan_run / "metrics.jsonl").read_text().splitlines()) == 2


def test_resuming_a_damaged_gan_run_gives_one_line(gan_run, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("config.json", "checkpoint.npz"):
        (run / name).write_bytes((gan_run / name).read_bytes())
    rewrite_npz(run / rf.CHECKPOINT, lambda a: a.pop("optim.generator.t"))
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(run), "--epochs",
                                         "9", "--quiet"]))
    assert "generator's optimizer state has no valid step count" in line
    (run / "checkpoint.npz").write_bytes(b"PK\x03\x04" + b"\0" * 100)          # truncated
    assert "not a minivae checkpoint" in one_error_line(capsys, main(["evaluate", str(run)]))


def test_a_conv_gan_trains_from_the_command_line(tmp_path, capsys, monkeypatch):
    """The command line's wiring, on 8 training and 2 test images: one step of each player
    (convolutions on 32 x 32 images are Python loops without the JIT); test_gan_conv.py checks
    the model itself."""
    load = data.load
    monkeypatch.setattr(data, "load", lambda name, split="train": dataclasses.replace(
        load(name, split), x=load(name, split).x[:8 if split == "train" else 2].copy(), y=None,
        factors=None, factor_names=None))
    run = tmp_path / "dcgan"
    assert main(["train", *TINY, "--arch", "conv", "--no-figures", "--out", str(run)]) == 0
    capsys.readouterr()
    config = json.loads((run / "config.json").read_text())["model"]
    assert config["arch"] == "conv" and config["image_shape"] == [1, 32, 32]
    assert config["hidden"] == [16] and config["d_hidden"] == [16]
    params, optim, _ = ckpt.load(run / rf.CHECKPOINT)
    assert any(v.ndim == 4 and k.startswith("discriminator.") for k, v in params.items())
    assert any(v.ndim == 4 and k.startswith("generator.") for k, v in params.items())
    assert {k.split(".")[0] for k in optim} == {"discriminator", "generator"}
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(run), "--arch",
                                         "mlp"]))
    assert "--arch mlp differs from the run's conv" in line


@pytest.mark.parametrize("argv, words", [
    (["--model", "gan", "--likelihood", "gaussian"], "--likelihood does not apply to --model gan"),
    (["--model", "gan", "--binarize", "dynamic"], "--binarize does not apply to --model gan"),
    (["--model", "gan", "--lam", "10"], "--lam does not apply to --model gan"),
    (["--model", "vae", "--d-lr", "1e-3"], "--d-lr does not apply to --model vae"),
    (["--generator-loss", "minimax"], "--generator-loss does not apply to --model vae"),
    (["--model", "ae", "--d-hidden", "8"], "--d-hidden does not apply to --model ae"),
])
def test_flags_that_do_not_apply_give_one_line(argv, words, tmp_path, capsys):
    assert words in refused_train(capsys, argv, tmp_path / "r")


@pytest.mark.parametrize("argv, words", [
    (["--generator-loss", "wasserstein"], "invalid choice"),
    (["--d-lr", "0"], "--d-lr: expected a finite number > 0"),
    (["--d-hidden", "0"], "--d-hidden"),
])
def test_bad_gan_flags_give_one_usage_line(argv, words, capsys):
    assert words in one_error_line(capsys, main(["train", "--model", "gan", *argv]), 2)


def test_d_lr_on_resume_of_a_vae_is_refused(tmp_path, capsys):
    run = rf.create_run(tmp_path / "vae", {"model": "vae", "x_dim": 1024, "hidden": [8],
                                           "z_dim": 2}, "sprites", TrainConfig(epochs=1)).dir
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(run), "--d-lr",
                                         "1e-3"]))
    assert "--d-lr does not apply to this run's vae model" in line
    assert not (run / rf.CHECKPOINT).exists()


def test_help_names_the_gan_flags_and_the_quality_score(capsys):
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--generator-loss {non-saturating,minimax}" in out
    assert "--d-lr LR" in out and "(default: --lr)" in out and "gan: 0.0002" in out
    assert "--d-hidden H [H ...]" in out and "(default: --hidden)" in out
    assert main(["evaluate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "sample_mmd" in out and "Binkowski" in out and "2,000 samples" in out
