"""The `minivae` command line: help everywhere, one-line errors, and a tiny run end to end."""

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import fields

import numba
import pytest
from helpers import one_error_line

from minivae import data
from minivae.cli import main
from minivae.cli import train as cli_train
from minivae.cli.parser import build_parser
from minivae.data import download
from minivae.models import VAE
from minivae.run import checkpoint as ckpt
from minivae.run import folder
from minivae.run.config import BY_DATA, ModelSettings, TrainConfig, comments

SUBCOMMANDS = [[], ["train"], ["evaluate"], ["sample"], ["figures"], ["data"], ["data", "list"],
               ["data", "fetch"]]
TINY = ["--data", "sprites", "--epochs", "1", "--hidden", "16", "--latent", "2",
        "--batch-size", "128", "--quiet", "--iwae-k", "2"]


@pytest.fixture(scope="module", autouse=True)
def _small_sprites():
    """Every 16th sprites image (432 train, 48 test; all shapes, all positions), so that the
    runs below take seconds, also with NUMBA_DISABLE_JIT=1. The command line goes through
    minivae.data.load as usual; only the arrays are smaller."""
    load = data.load

    def small(name, split="train"):
        d = load(name, split)
        if name != "sprites":
            return d
        keep = slice(None, None, 16)
        return dataclasses.replace(d, x=d.x[keep].copy(), y=d.y[keep].copy(),
                                   factors=d.factors[keep].copy())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "load", small)
        yield


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_help_works_for_every_subcommand(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: minivae") and "--help" in out


@pytest.mark.parametrize("argv, words", [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--batch-size", "many"], "integer"),
    (["train", "--data", "cifar"], "invalid choice"),
    (["train", "--likelihood", "poisson"], "--likelihood"),
    (["train", "--hidden"], "--hidden"),
    (["train", "--momentum", "1"], "--momentum: expected a finite number >= 0 and < 1"),
    (["sample", "run", "--n", "0"], "--n"),
    (["evaluate"], "RUN"),
    (["data", "fetch", "imagenet"], "invalid choice"),
])
def test_bad_command_lines_give_one_line(argv, words, capsys):
    line = one_error_line(capsys, main(argv), expected=2)
    assert words in line


@pytest.mark.parametrize("argv, words", [
    (["train", "--model", "vae", "--noise", "masking"], "--noise does not apply"),
    (["train", "--model", "pca", "--epochs", "3"], "--epochs does not apply"),
    (["train", "--model", "ae", "--likelihood", "gaussian-learned"], "autoencoder"),
    (["train", "--momentum", "0.5"], "--momentum applies to --optimizer sgd"),
    (["train", "--model", "pca", "--momentum", "0.5"], "--momentum does not apply"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--resume", "--out", "{tmp}/nowhere"], "no run folder"),
    (["evaluate", "{tmp}/nowhere"], "no run folder"),
    (["sample", "{tmp}"], "no checkpoint.npz"),
    (["figures", "{tmp}/nowhere"], "no run folder"),
])
def test_user_errors_give_one_line(argv, words, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert words in one_error_line(capsys, main(argv))


def test_offline_fetch_gives_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "data"))

    def offline(url, timeout=None):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(download, "_open_url", offline)
    line = one_error_line(capsys, main(["data", "fetch", "mnist"]))
    assert "MINIVAE_DATA_MIRROR" in line
    line = one_error_line(capsys, main(["train", "--data", "mnist", "--out",
                                         str(tmp_path / "run"), "--quiet"]))
    assert "could not be downloaded" in line


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "sprites" in out and "mnist" in out and "generated" in out
    assert main(["data", "fetch", "sprites"]) == 0
    assert "nothing to download" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch VAE on sprites made by `minivae train` (16 hidden units, 2 latents),
    without --out: it lands in ./runs/vae-sprites."""
    cwd = tmp_path_factory.mktemp("cli")
    before = numba.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        numba.set_num_threads(1)
        assert main(["train", *TINY]) == 0
        numba.set_num_threads(before)
    assert [p.name for p in (cwd / "runs").iterdir()] == ["vae-sprites"]
    return cwd / "runs" / "vae-sprites"


def test_train_writes_a_complete_run_folder(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "checkpoint.npz", "metrics.jsonl", "evaluation.json",
            "figures"} <= names
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["model"]["hidden"] == [16] and config["data"] == "sprites"
    assert config["train"]["epochs"] == 1 and config["version"] == ckpt.VERSION
    row = json.loads((tiny_run / "metrics.jsonl").read_text())
    assert {"epoch", "train_loss", "test_loss", "epoch_seconds"} <= set(row)
    assert any((tiny_run / "figures").glob("*.png"))


def test_evaluate_json_and_table(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--iwae-k", "3", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["nll"] <= m["nelbo"] + 1.0 and m["iwae_k"] == 3
    assert len(m["kl_per_dim"]) == 2 and len(m["variance_law"]) == 2
    assert 0 <= m["active_units"] <= 2
    assert main(["evaluate", str(tiny_run), "--iwae-k", "0"]) == 0
    out = capsys.readouterr().out
    assert "negative ELBO" in out and "active units" in out and "mean sigma^2" in out
    assert "sprites" in one_error_line(capsys, main(["evaluate", str(tiny_run), "--split",
                                                      "valid"]))


def test_sample_and_figures(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(tiny_run), "--n", "4", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["figures", str(tiny_run)]) == 0
    assert "reconstructions.png" in capsys.readouterr().out


def test_existing_run_folder_is_refused_without_resume(tiny_run, capsys):
    before = (tiny_run / "checkpoint.npz").read_bytes()
    line = one_error_line(capsys, main(["train", *TINY, "--out", str(tiny_run)]))
    assert "--resume" in line
    assert (tiny_run / "checkpoint.npz").read_bytes() == before
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(tiny_run),
                                         "--hidden", "32"]))
    assert "--hidden 32 differs" in line


def test_resume_trains_on(tiny_run, capsys):
    assert main(["train", "--resume", "--out", str(tiny_run), "--epochs", "2", "--quiet",
                 "--iwae-k", "0", "--no-figures"]) == 0
    rows = (tiny_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
    reads, load = [], folder.load
    with pytest.MonkeyPatch.context() as mp:                 # the checkpoint is read once
        mp.setattr(folder, "load", lambda path: reads.append(path) or load(path))
        assert main(["train", "--resume", "--out", str(tiny_run), "--quiet"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert reads == [tiny_run / "checkpoint.npz"]
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(tiny_run),
                                         "--epochs", "1"]))
    assert "fewer than the 2 epochs" in line


def test_train_flags_are_made_from_the_settings(capsys):
    """Every field of ModelSettings and TrainConfig is a `minivae train` flag: its help is the
    comment beside the field, its default the field's (and BY_DATA's for some data sets)."""
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for cls in (ModelSettings, TrainConfig):
        helps = comments(cls)
        for f in fields(cls):
            assert helps.get(f.name), f"{cls.__name__}.{f.name}: no comment to be its help"
            assert f"--{f.name.replace('_', '-')} " in out
            assert helps[f.name] in out
    assert "(default: 20; sprites: 30)" in out and "(default: 400; sprites: 512)" in out
    assert f"(default: {TrainConfig.batch_size})" in out


@pytest.mark.parametrize("name", ["sprites", "mnist"])
def test_a_run_without_flags_takes_the_defaults(name):
    args = build_parser().parse_args(["train", "--data", name])
    model_config, data_name, cfg = cli_train._new_run_settings(args)
    by_data = BY_DATA.get(name, {})
    assert data_name == name
    assert cfg == TrainConfig(epochs=by_data.get("epochs", TrainConfig.epochs))
    assert model_config["hidden"] == list(by_data.get("hidden", ModelSettings.hidden))
    assert model_config["z_dim"] == by_data.get("latent", ModelSettings.latent)
    assert model_config["model"] == ModelSettings.model
    args = build_parser().parse_args(["train", "--optimizer", "sgd", "--momentum", "0.5"])
    assert cli_train._new_run_settings(args)[2].momentum == 0.5


def test_corrupt_checkpoint_gives_one_line(tmp_path, tiny_run, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "config.json").write_bytes((tiny_run / "config.json").read_bytes())
    (run / "checkpoint.npz").write_bytes((tiny_run / "checkpoint.npz").read_bytes()[:5000])
    line = one_error_line(capsys, main(["evaluate", str(run)]))
    assert "not a minivae checkpoint" in line


def test_divergence_and_ctrl_c_exit_non_zero(tmp_path, monkeypatch, capsys):
    argv = ["train", *TINY, "--optimizer", "sgd", "--lr", "1e6", "--out", str(tmp_path / "a")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("minivae: error: training diverged")
    assert "Traceback" not in err and not (tmp_path / "a" / "checkpoint.npz").exists()

    def interrupted(self, x, eps=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(VAE, "loss", interrupted)
    assert main(["train", *TINY, "--out", str(tmp_path / "b")]) == 130
    err = capsys.readouterr().err
    assert "--resume" in err.splitlines()[-1] and "Traceback" not in err


def test_pca_run(tmp_path, capsys):
    run = tmp_path / "pca"
    assert main(["train", "--model", "pca", "--latent", "3", "--quiet", "--no-figures",
                 "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["model"] == "pca" and m["mse"] > 0 and "nll" not in m
    assert "no prior" in one_error_line(capsys, main(["sample", str(run)]))


def _python_m(*args):
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minivae", *args], capture_output=True,
                          text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["train", "--epochs", "0"], 2),
                                        (["evaluate", "/nonexistent/run"], 1)])
def test_python_m_minivae(args, code):
    p = _python_m(*args)
    assert p.returncode == code, p.stderr
    if code:
        assert p.stderr.startswith("minivae: error: ") and len(p.stderr.splitlines()) == 1
    else:
        assert "train" in p.stdout and "evaluate" in p.stdout
