"""Fault injection, run folders and the commands around them: the smaller holes of round two.

    racing to make a run     several processes (here threads: the lock is per open file)
                             making the same run folder: exactly one makes it, under the
                             folder's lock; the others are refused in one line, and a
                             temporary file of the winner's is never removed under it
    a lost checkpoint        checkpoint.npz gone while metrics.jsonl lists epochs: --resume
                             refuses instead of starting again over them
    config.json edited       epochs and lr taken from it, as --epochs and --lr would be; any
                             other edit refused, naming the setting; a deleted one written
                             again from the checkpoint
    a mid-epoch stop         evaluation says "1 epoch and 3 batches of epoch 2"; --epochs may not
                             go below the epoch in progress; a stale evaluation.json is redone
    --iwae-k                 at most 100,000, and a progress bar over the examples, moved by
                             evaluate after each IWAE pass
    offline, a damaged file  one line: the copy was damaged and removed, and could not be
                             downloaded again (once: a warning and a "file missing")
"""

import hashlib
import json
import signal
import threading

import numpy as np
import pytest
from helpers import one_error_line
from test_data import PAYLOAD, URLS, FakeServer
from test_faults import TOY_VAE, _toy_run, small_minivae

from minivae import data
from minivae.cli import main, view
from minivae.data import registry
from minivae.evaluate import evaluate
from minivae.models import VAE, Autoencoder
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig

SMALL = ["--data", "small-sprites", "--hidden", "8", "--latent", "2", "--batch-size", "32",
         "--quiet", "--no-figures"]


# ---------------------------------------------------------------- making a run folder

def test_a_run_folder_being_made_by_another_process_is_left_alone(tmp_path):
    """The other process holds the folder's lock while it writes config.json: its temporary
    file is not a leftover to remove, and the folder is not free."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    theirs = run_dir / ".config.json.k2j4x1.tmp"
    theirs.write_text('{"format": "minivae-r')
    with rf.locked(run_dir), pytest.raises(ckpt.CheckpointError, match="another minivae process"):
        rf.create_run(run_dir, TOY_VAE, "toy", TrainConfig(epochs=1))
    assert [p.name for p in run_dir.iterdir()] == [theirs.name]


def test_racing_to_make_one_run_folder_makes_it_once(tmp_path):
    run_dir, n = tmp_path / "run", 6
    barrier, made, refused = threading.Barrier(n), [], []

    def make(i):
        barrier.wait()
        try:
            made.append(rf.create_run(run_dir, TOY_VAE, "toy", TrainConfig(epochs=1, seed=i)))
        except ckpt.CheckpointError as e:
            refused.append(str(e))
    threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(made) == 1 and len(refused) == n - 1, (made, refused)
    assert all("already exists and is not empty" in e or "another minivae process" in e
               for e in refused), refused
    assert rf.read_config(run_dir)["train"]["seed"] == made[0].train.seed
    assert sorted(p.name for p in run_dir.iterdir()) == [rf.CONFIG]


# ---------------------------------------------------------------- resuming

def test_a_lost_checkpoint_is_not_silently_trained_over(tmp_path, toy):
    run_dir = _toy_run(tmp_path / "run", epochs=2)
    T.train(run_dir, datasets=toy, verbose=False)
    metrics = (run_dir / rf.METRICS).read_bytes()
    (run_dir / rf.CHECKPOINT).unlink()
    with pytest.raises(ckpt.CheckpointError, match="has no checkpoint.npz, but its metrics.jsonl "
                                                   "lists 2 finished epochs"):
        T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    assert (run_dir / rf.METRICS).read_bytes() == metrics
    (run_dir / rf.METRICS).unlink()                       # as the message says: start again
    assert len(T.train(run_dir, datasets=toy, verbose=False)) == 2


def _edit_config(run_dir, part, key, value):
    config = json.loads((run_dir / rf.CONFIG).read_text())
    config[part][key] = value
    (run_dir / rf.CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize("part, key, value, mine", [
    ("model", "hidden", [9], "[8]"), ("model", "beta", 4.0, "1.0"),
    ("train", "batch_size", 64, "32"), ("train", "seed", 7, "0")])
def test_an_edited_config_json_is_refused_on_resume(tmp_path, toy, part, key, value, mine):
    """Once, the checkpoint's record silently won, and config.json was overwritten."""
    run_dir = _toy_run(tmp_path / "run", epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    _edit_config(run_dir, part, key, value)
    edited = (run_dir / rf.CONFIG).read_bytes()
    with pytest.raises(ckpt.CheckpointError) as info:
        T.train(run_dir, datasets=toy, verbose=False, epochs=2)
    assert (f"config.json was edited: {part}.{key} is {value!r} there but {mine} in "
            "checkpoint.npz") in str(info.value)
    assert "Undo the edit, or start a new run" in str(info.value)
    assert (run_dir / rf.CONFIG).read_bytes() == edited


def test_epochs_and_lr_edited_in_config_json_are_taken(tmp_path, toy):
    """The two settings a resumed run may change, by hand as by --epochs and --lr."""
    run_dir = _toy_run(tmp_path / "run", epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    _edit_config(run_dir, "train", "epochs", 3)
    _edit_config(run_dir, "train", "lr", 0.01)
    history = T.train(run_dir, datasets=toy, verbose=False)
    assert [(row["epoch"], row["lr"]) for row in history] == [(1, 1e-3), (2, 0.01), (3, 0.01)]


def test_a_deleted_config_json_is_written_again_from_the_checkpoint(tmp_path, toy):
    run_dir = _toy_run(tmp_path / "run", epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    (run_dir / rf.CONFIG).unlink()
    T.train(run_dir, datasets=toy, verbose=False, epochs=2)
    saved = ckpt.load(run_dir / rf.CHECKPOINT)[2]["run"]
    assert rf.read_config(run_dir)["model"] == saved["model"] == TOY_VAE
    assert rf.read_config(run_dir)["train"] == saved["train"]


def test_a_fitted_pca_run_is_not_an_edited_one(tmp_path, toy):
    """A PCA's checkpoint records the whole config (method, dtype); config.json the few
    settings given: the same model, with the defaults filled in."""
    run_dir = _toy_run(tmp_path / "pca", {"model": "pca", "n_components": 3, "x_dim": 16},
                       epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    assert rf.open_run(run_dir).model["method"] == "eigh"


# ---------------------------------------------------------------- a mid-epoch stop

@pytest.fixture
def small_sprites(monkeypatch):
    """The fault helper's `small-sprites` data set, in this process."""
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", small_minivae.small_load)


def test_a_run_stopped_mid_epoch_is_evaluated_as_such(small_sprites, tmp_path, monkeypatch,
                                                      capsys):
    run_dir = tmp_path / "run"
    loss, calls = VAE.loss, [0]

    def terminated(self, x, eps=None):
        calls[0] += 1
        if calls[0] == 14 + 1 + 3:                    # epoch 1 (14 batches, 1 test pass) + 3
            signal.raise_signal(signal.SIGTERM)
        return loss(self, x, eps)
    monkeypatch.setattr(VAE, "loss", terminated)
    assert main(["train", *SMALL, "--epochs", "3", "--out", str(run_dir)]) == 143
    monkeypatch.undo()                                # the loss, and the data set: put it back
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", small_minivae.small_load)
    progress = ckpt.load(run_dir / rf.CHECKPOINT)[2]["progress"]
    assert (progress["epoch"], progress["batch"]) == (1, 3)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--iwae-k", "0", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert (m["epochs"], m["batches"]) == (1, 3)
    assert "after 1 epoch and 3 batches of epoch 2;" in view.table(m)
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(run_dir),
                                         "--epochs", "1"]))
    assert "has trained 1 epoch and 3 batches of epoch 2, which cannot be undone" in line
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "2", "--iwae-k",
                 "0", "--quiet", "--no-figures"]) == 0
    m = json.loads((run_dir / rf.EVALUATION).read_text())
    assert (m["epochs"], m["batches"]) == (2, 0)


def test_a_stale_evaluation_json_is_redone(small_sprites, tmp_path, capsys):
    """evaluation.json of an earlier epoch (a kill between the last checkpoint and the end of
    training left it): `--resume` with nothing to train evaluates again, instead of saying
    there is nothing to do."""
    run_dir = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "2", "--iwae-k", "0", "--out", str(run_dir)]) == 0
    m = json.loads((run_dir / rf.EVALUATION).read_text())
    (run_dir / rf.EVALUATION).write_text(json.dumps({**m, "epochs": 1}))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run_dir), "--iwae-k", "0", "--quiet",
                 "--no-figures"]) == 0
    assert "nothing to do" not in capsys.readouterr().err
    assert json.loads((run_dir / rf.EVALUATION).read_text())["epochs"] == 2
    assert main(["train", "--resume", "--out", str(run_dir)]) == 0
    assert "already has 2 epochs; nothing to do" in capsys.readouterr().err


# ---------------------------------------------------------------- --iwae-k

def test_evaluate_moves_a_progress_bar_after_each_iwae_pass():
    """One iwae_bound call per pass of at most iwae_max_floats decoded values: here
    7 samples x 16 pixels x 3 examples; progress(n) hears of every example, once."""
    x = (np.random.default_rng(0).random((20, 16)) < 0.5).astype(np.float32)
    done = []
    evaluate(VAE(16, (4,), 2, rng=0), x, iwae_k=7, batch_size=8, iwae_max_floats=7 * 16 * 3,
             rng=0, progress=done.append)
    assert done == [3, 3, 2, 3, 3, 2, 3, 1] and sum(done) == len(x)
    done.clear()
    evaluate(Autoencoder(16, (4,), 2, rng=0), x, batch_size=8, progress=done.append)
    assert done == [8, 8, 4]


def test_the_iwae_passes_give_the_bound_of_one_call():
    """Splitting the IWAE pass into calls of one chunk each draws the same samples in the
    same order as iwae_bound's own chunks: the same number."""
    model = VAE(16, (4,), 2, rng=0)
    x = (np.random.default_rng(0).random((10, 16)) < 0.5).astype(np.float32)
    mf = 5 * 16 * 3                                          # 3 examples per pass
    split = evaluate(model, x, iwae_k=5, iwae_max_floats=mf, rng=1, batch_size=10)["nll"]
    rng = np.random.default_rng(1)
    rng.standard_normal((10, 2), dtype=np.float32)           # evaluate draws the ELBO's eps first
    whole = model.iwae_bound(x, 5, rng=rng, max_floats=mf).mean()
    assert split == pytest.approx(-whole, rel=1e-12)


def test_the_command_line_draws_the_iwae_bar(small_sprites, tmp_path, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, total, desc, **kwargs):
            self.total, self.desc, self.n = total, desc, 0
            bars.append(self)

        def update(self, n):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass
    run_dir = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--iwae-k", "0", "--out", str(run_dir)]) == 0
    monkeypatch.setattr(view, "tqdm", Bar)
    assert main(["evaluate", str(run_dir), "--iwae-k", "50"]) == 0
    assert [(b.desc, b.total, b.n) for b in bars] == [("evaluating (IWAE, k=50)", 48, 48)]


# ---------------------------------------------------------------- offline, a damaged file

def test_offline_a_damaged_cached_file_is_one_line_naming_the_damage(monkeypatch, tmp_path,
                                                                     capsys):
    f = registry.FileInfo("tiny", "tiny.bin", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(),
                          "train", "images", URLS)
    monkeypatch.setitem(registry.DATASETS, "tiny", registry.DatasetInfo(
        "tiny", "test data", "tests", "none", (1, 1), {"train": 1}, (f,)))
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    FakeServer(monkeypatch)                                  # every URL: 404
    path = tmp_path / "cache" / f.relpath
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD[:-1] + b"!")
    line = one_error_line(capsys, main(["data", "fetch", "tiny"]))
    assert line.startswith(f"minivae: error: file damaged: the copy of tiny/tiny.bin at {path} "
                           "was not usable (its SHA-256 is ")
    assert line.endswith("was removed; it could not be downloaded again; offline? set "
                         "MINIVAE_DATA_MIRROR to a folder that holds the files, or fetch them "
                         "when online")
    assert not path.exists()
