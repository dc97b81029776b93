"""The training loop: resuming is bit-exact, Ctrl-C and divergence keep what was made."""

import json
import signal

import numpy as np
import pytest
from helpers import same_runs

from minivae.data import Dataset
from minivae.errors import InputError
from minivae.models import VAE
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig

VAE_CONFIG = {"model": "vae", "x_dim": 16, "hidden": [8], "z_dim": 2}


def _run(tmp_path, name, toy, model=VAE_CONFIG, **cfg):
    cfg = {"epochs": 3, "batch_size": 32, **cfg}
    return rf.create_run(tmp_path / name, model, "toy", TrainConfig(**cfg)).dir


def _same(a, b):
    """Assert two run folders hold identical parameters, optimizer state, RNGs and metrics."""
    same_runs(a, b)                                         # bit for bit (tests/helpers.py)
    _, _, ma = ckpt.load(a / rf.CHECKPOINT)
    lines = [json.loads(s) for s in (b / rf.METRICS).read_text().splitlines()]
    assert [row["epoch"] for row in lines] == list(range(1, len(ma["history"]) + 1))


@pytest.mark.parametrize("options", [{}, {"warmup": 2, "binarize": "dynamic"},
                                     {"optimizer": "sgd", "lr": 0.05}])
def test_resumed_run_ends_bit_identical(tmp_path, toy, options):
    straight = _run(tmp_path, "straight", toy, **options)
    history = T.train(straight, datasets=toy, verbose=False)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert {"train_loss", "test_loss", "epoch_seconds", "train_recon", "train_kl",
            "test_recon", "test_kl"} <= set(history[-1])
    resumed = _run(tmp_path, "resumed", toy, **{**options, "epochs": 1})
    T.train(resumed, datasets=toy, verbose=False)
    T.train(resumed, datasets=toy, verbose=False, epochs=3)
    _same(straight, resumed)
    if options.get("warmup"):
        assert [row["kl_weight"] for row in history] == [0.5, 1.0, 1.0]


@pytest.mark.parametrize("model", [
    {"model": "ae", "x_dim": 16, "hidden": [8], "z_dim": 2},
    {"model": "dae", "x_dim": 16, "hidden": [8], "z_dim": 2, "noise": "masking"},
    {"model": "linear-ae", "x_dim": 16, "z_dim": 2}])
def test_other_models_train_and_resume(tmp_path, toy, model):
    straight = _run(tmp_path, "straight", toy, model, epochs=2)
    history = T.train(straight, datasets=toy, verbose=False)
    assert history[1]["train_loss"] < history[0]["train_loss"] * 1.5
    resumed = _run(tmp_path, "resumed", toy, model, epochs=1)
    T.train(resumed, datasets=toy, verbose=False)
    T.train(resumed, datasets=toy, verbose=False, epochs=2)
    _same(straight, resumed)


def test_pca_is_fitted_and_saved(tmp_path, toy):
    run_dir = _run(tmp_path, "pca", toy, {"model": "pca", "n_components": 3, "x_dim": 16})
    history = T.train(run_dir, datasets=toy, verbose=False)
    assert len(history) == 1 and history[0]["test_loss"] > 0
    model, _ = rf.load_model(run_dir)
    assert model.components_.shape == (3, 16) and np.abs(model.components_).sum() > 0
    assert T.train(run_dir, datasets=toy, verbose=False) == history     # nothing more to do


def _interrupt_at(monkeypatch, call, how):
    """Make the `call`-th VAE.loss call deliver Ctrl-C: a real SIGINT, or a bare raise."""
    calls, original = [0], VAE.loss

    def loss(self, x, eps=None):
        calls[0] += 1
        if calls[0] == call:
            if how == "raise":
                raise KeyboardInterrupt
            for _ in range(2 if how == "twice" else 1):
                signal.raise_signal(signal.SIGINT)
        return original(self, x, eps)
    monkeypatch.setattr(VAE, "loss", loss)


def test_ctrl_c_saves_mid_epoch_and_resume_is_bit_identical(tmp_path, toy, monkeypatch):
    straight = _run(tmp_path, "straight", toy, binarize="dynamic")
    T.train(straight, datasets=toy, verbose=False)
    stopped = _run(tmp_path, "stopped", toy, binarize="dynamic")
    _interrupt_at(monkeypatch, 7 + 3 + 1, "signal")     # epoch 1 (7 batches, 1 test pass) + 3
    with pytest.raises(T.TrainingInterrupted, match=r"saved a checkpoint \(epoch 2, after batch 3"):
        T.train(stopped, datasets=toy, verbose=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored
    _, _, meta = ckpt.load(stopped / rf.CHECKPOINT)
    assert meta["progress"]["epoch"] == 1 and meta["progress"]["batch"] == 3
    assert len((stopped / rf.METRICS).read_text().splitlines()) == 1     # whole epochs only
    monkeypatch.undo()
    T.train(stopped, datasets=toy, verbose=False)
    _same(straight, stopped)


@pytest.mark.parametrize("how", ["raise", "twice"])
def test_hard_interrupt_keeps_last_checkpoint_and_resumes(tmp_path, toy, monkeypatch, how):
    straight = _run(tmp_path, "straight", toy)
    T.train(straight, datasets=toy, verbose=False)
    stopped = _run(tmp_path, "stopped", toy)
    _interrupt_at(monkeypatch, 7 + 1 + 3, how)
    with pytest.raises(T.TrainingInterrupted, match=r"at once.*end of epoch 1"):
        T.train(stopped, datasets=toy, verbose=False)
    assert ckpt.load(stopped / rf.CHECKPOINT)[2]["progress"] == {"epoch": 1, "batch": 0}
    monkeypatch.undo()
    T.train(stopped, datasets=toy, verbose=False)
    _same(straight, stopped)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy, optimizer="sgd", lr=1e-2, epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    good = ckpt.load(run_dir / rf.CHECKPOINT)
    with pytest.raises(T.TrainingDiverged) as info:
        T.train(run_dir, datasets=toy, verbose=False, epochs=3, lr=1e6)
    msg = str(info.value)
    assert "diverged" in msg and "--lr" in msg and "warm-up" in msg and "[0, 1]" in msg
    assert "end of epoch 1" in msg
    params, _, meta = ckpt.load(run_dir / rf.CHECKPOINT)
    assert meta["progress"]["epoch"] == 1
    assert all(np.array_equal(params[k], good[0][k]) for k in params)
    assert len((run_dir / rf.METRICS).read_text().splitlines()) == 1
    T.train(run_dir, datasets=toy, verbose=False, epochs=2, lr=1e-2)      # recovers
    assert ckpt.load(run_dir / rf.CHECKPOINT)[2]["progress"]["epoch"] == 2


def test_divergence_in_the_first_epoch_saves_nothing(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy, optimizer="sgd", lr=1e6)
    with pytest.raises(T.TrainingDiverged, match="no checkpoint had been saved yet"):
        T.train(run_dir, datasets=toy, verbose=False)
    assert not (run_dir / rf.CHECKPOINT).exists()


def test_half_written_metrics_are_repaired_on_resume(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy, epochs=2)
    T.train(run_dir, datasets=toy, verbose=False)
    with open(run_dir / rf.METRICS, "a") as f:
        f.write('{"epoch": 1, "train_lo')                  # as if a crash cut a line
    T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    rows = [json.loads(s) for s in (run_dir / rf.METRICS).read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_test_loss_uses_a_sampled_z(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy, epochs=1)
    row = T.train(run_dir, datasets=toy, verbose=False)[0]
    model, _ = rf.load_model(run_dir)
    x = toy[1].x
    mu_only = model.loss(x, eps=np.zeros((len(x), 2), np.float32))
    assert row["test_loss"] != pytest.approx(mu_only, rel=1e-6)
    eps = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(2, 1))).standard_normal(
        (len(x), 2), dtype=np.float32)
    assert row["test_loss"] == pytest.approx(model.loss(x, eps=eps), rel=1e-6)


def test_run_folders_are_never_overwritten(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy)
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        _run(tmp_path, "run", toy)
    (tmp_path / "empty").mkdir()
    _run(tmp_path, "empty", toy)                            # an empty folder is fine
    names = [rf.fresh_run_dir(tmp_path / "runs", "vae", "toy").name for _ in range(3)]
    assert names == ["vae-toy", "vae-toy-2", "vae-toy-3"]
    assert run_dir.is_dir()


def test_settings_are_checked(tmp_path, toy):
    for bad in [{"epochs": 0}, {"lr": -1.0}, {"lr": float("nan")}, {"batch_size": 0},
                {"optimizer": "rmsprop"}, {"binarize": "static"}, {"warmup": -1}]:
        with pytest.raises(InputError):
            _run(tmp_path, "bad", toy, **bad)
    assert not (tmp_path / "bad").exists()
    run_dir = _run(tmp_path, "ae", toy, {"model": "ae", "x_dim": 16, "hidden": [8], "z_dim": 2},
                   warmup=2)
    with pytest.raises(InputError, match="warmup"):
        T.train(run_dir, datasets=toy, verbose=False)
    wrong = (Dataset(np.zeros((4, 9), np.float32), None, (3, 3), "toy", "train"),) * 2
    with pytest.raises(InputError, match="16 inputs"):
        T.train(_run(tmp_path, "vae", toy), datasets=wrong, verbose=False)


def test_a_new_run_is_written_once_and_trained_from_memory(tmp_path, toy, monkeypatch):
    """create_run writes config.json and returns the Run; train(Run) reads nothing back and
    writes config.json no more. A resumed run reads its checkpoint once, and config.json once
    (to see an edit by hand); config.json is written again only when its epochs or learning
    rate change."""
    writes, reads, load, read_config = [], [], ckpt.load, rf.read_config
    atomic_write = rf.atomic_write

    def counted_write(path, data):
        writes.append(path.name)
        atomic_write(path, data)

    def counted_load(path):
        reads.append(path.name)
        return load(path)

    def counted_read_config(run_dir):
        reads.append(rf.CONFIG)
        return read_config(run_dir)
    monkeypatch.setattr(rf, "atomic_write", counted_write)
    monkeypatch.setattr(rf, "write_json", lambda path, obj: counted_write(
        path, json.dumps(obj, indent=2) + "\n"))
    monkeypatch.setattr(rf, "load", counted_load)
    monkeypatch.setattr(rf, "read_config", counted_read_config)
    run = rf.create_run(tmp_path / "run", VAE_CONFIG, "toy", TrainConfig(epochs=1, batch_size=32))
    T.train(run, datasets=toy, verbose=False)
    assert writes.count(rf.CONFIG) == 1 and reads == []
    run = rf.open_run(run.dir)                                # as `minivae train --resume` does
    T.train(run, datasets=toy, verbose=False)                 # nothing to do
    assert writes.count(rf.CONFIG) == 1 and reads == [rf.CHECKPOINT, rf.CONFIG]
    T.train(run, datasets=toy, verbose=False, epochs=2)
    assert writes.count(rf.CONFIG) == 2 and reads == [rf.CHECKPOINT, rf.CONFIG]
    monkeypatch.undo()
    assert rf.read_config(run.dir)["train"]["epochs"] == 2


def test_a_run_read_before_another_process_trained_it_is_read_again(tmp_path, toy):
    """train(Run) takes the run folder's lock, then reads the checkpoint again if it changed
    since the Run was read: it goes on from the newest checkpoint, never an older one."""
    run_dir = _run(tmp_path, "run", toy, epochs=1)
    stale = rf.open_run(run_dir)                              # config.json only
    T.train(run_dir, datasets=toy, verbose=False, epochs=2)   # "another process"
    assert stale.changed_on_disk()
    history = T.train(stale, datasets=toy, verbose=False, epochs=3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    straight = _run(tmp_path, "straight", toy)
    T.train(straight, datasets=toy, verbose=False)
    _same(straight, run_dir)


def test_a_signal_between_two_epochs_stops_before_the_next(tmp_path, toy, monkeypatch):
    """Ctrl-C during the test pass after epoch 1: the end-of-epoch checkpoint stands, no batch
    of epoch 2 runs, and resuming ends bit-identical."""
    straight = _run(tmp_path, "straight", toy)
    T.train(straight, datasets=toy, verbose=False)
    stopped = _run(tmp_path, "stopped", toy)
    _interrupt_at(monkeypatch, 7 + 1, "signal")           # the test pass after epoch 1
    with pytest.raises(T.TrainingInterrupted, match=r"saved a checkpoint \(end of epoch 1\)"):
        T.train(stopped, datasets=toy, verbose=False)
    assert ckpt.load(stopped / rf.CHECKPOINT)[2]["progress"] == {"epoch": 1, "batch": 0}
    monkeypatch.undo()
    T.train(stopped, datasets=toy, verbose=False)
    _same(straight, stopped)


def test_sgd_momentum_is_a_setting(tmp_path, toy):
    run_dir = _run(tmp_path, "run", toy, optimizer="sgd", lr=0.05, momentum=0.5, epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    assert rf.open_run(run_dir).train.momentum == 0.5
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(InputError, match="momentum must be a finite number >= 0 and < 1"):
            _run(tmp_path, "bad", toy, momentum=bad)


def test_training_a_folder_that_is_not_a_run_says_so(tmp_path, toy):
    with pytest.raises(ckpt.CheckpointError, match="no run folder at"):
        T.train(tmp_path / "nowhere", datasets=toy, verbose=False)
    with pytest.raises(ckpt.CheckpointError, match="not a minivae run folder"):
        T.train(tmp_path, datasets=toy, verbose=False)
