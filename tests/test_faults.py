"""Fault injection: what students do to minivae, and what it promises back.

    interruption    kill -9 at random points, then resume: bit-identical to a run never killed,
                    and every file on disk reads whole after every kill; a real Ctrl-C and a
                    real SIGTERM: saved, exit 130 / 143, resumed bit-identical
    write failures  a disk that fills up during training: the previous files stand, resuming
                    ends bit-identical; config.json and metrics.jsonl replaced whole or not at all
    downloads       truncated, wrong checksum, an HTML page, a cache that cannot be written:
                    detected, never used, and the message says what to do (also as root)
    hostile files   config.json and checkpoints that ask for absurd sizes: refused before
                    allocating; checkpoints whose config does not match their arrays
    bad arrays      wrong shape / dtype / NaN / empty / pixels outside [0, 1] into every
                    model's entry points, evaluate, the figures and the optimizers
    numerics        extreme logits, log-variances and k: finite, or a NonFiniteError; the IWAE
                    bound never below the mean of the same log-weights
    divergence      recognized by the exception's class; via the command line: one line, exit 1,
                    the last good checkpoint loadable and finite
    command line    a table of bad arguments for every command; random argv: never a traceback

Round two, by subject: files that are not regular files and damaged values in a checkpoint
(test_faults_files.py); Ctrl-C inside numba's compiled code, SIGTERM and SIGHUP during downloads
(test_faults_signals.py); the environment: ~user paths, NUMBA_NUM_THREADS, MPLBACKEND, a closed
pipe (test_faults_env.py); what the Python API would coerce (test_faults_api.py); racing to make
a run folder, lost checkpoints, edited configs, mid-epoch stops, --iwae-k, an offline damaged
file (test_faults_runs.py).

Faults covered elsewhere are not repeated here: half-written checkpoints, hostile and damaged
checkpoint files and pickles (test_checkpoint.py); in-process Ctrl-C, divergence and metrics
repair (test_train.py); bad downloads and the cache folder (test_data.py); bad input to layers,
losses and models (test_layers.py, test_losses.py, test_vae.py, test_models.py).

The subprocess tests run tests/fault_helpers/small_minivae.py: the real `minivae` command line
on an 8x8 sprites subset, with one BLAS / numba thread (bit-exactness depends on the order of
additions).
"""

import errno
import functools
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_data import PAYLOAD, URLS, FakeServer

from minivae import data
from minivae.cli import main, one_line
from minivae.data import download, registry
from minivae.errors import InputError, NonFiniteError
from minivae.evaluate import evaluate
from minivae.layers import Reparameterize
from minivae.losses import bernoulli_nll, gaussian_kl, gaussian_nll
from minivae.models import PCA, VAE, Autoencoder, DenoisingAutoencoder, LinearAutoencoder
from minivae.optim import SGD, Adam
from minivae.run import atomic
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import trainer as T
from minivae.run.config import TrainConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HELPER = HERE / "fault_helpers" / "small_minivae.py"
sys.path.insert(0, str(HELPER.parent))
import small_minivae  # the helper, imported for in-process use too

sys.path.remove(str(HELPER.parent))
EPOCHS = 10
RUN = ["train", "--data", "small-sprites", "--hidden", "8", "--latent", "2", "--batch-size",
       "32", "--epochs", str(EPOCHS), "--iwae-k", "2", "--no-figures", "--quiet"]
PACE = "0.01"                   # seconds of sleep per step: 14 steps, ~0.15 s an epoch
ONE_THREAD = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}
# the test's own randomness (where to kill); soak with e.g. `MINIVAE_FAULT_SEED=7 pytest ...`
SEED = int(os.environ.get("MINIVAE_FAULT_SEED", "20240521"))


# ---------------------------------------------------------------- interruption (subprocesses)

def _env(tmp):
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, **ONE_THREAD, "MINIVAE_DATA_DIR": str(tmp / "data"),
           "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}
    env.pop("MINIVAE_DEBUG", None)
    return env


def _start(run_dir, tmp):
    """`minivae train` on small-sprites into run_dir, as a user would: --resume once it exists."""
    resume = ["--resume"] if (run_dir / rf.CONFIG).exists() else []
    return subprocess.Popen([sys.executable, str(HELPER), "--pace", PACE, *RUN, "--out",
                             str(run_dir), *resume], env=_env(tmp), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(p, timeout=600):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def _run_to_the_end(run_dir, tmp):
    code, _, err = _finish(_start(run_dir, tmp))
    assert code == 0, err
    assert "Traceback" not in err
    return err


def _epochs_done(run_dir):
    try:
        return len((run_dir / rf.METRICS).read_text().splitlines())
    except FileNotFoundError:
        return 0


def _wait_for_epoch(run_dir, epoch, p, timeout=120):
    """Poll until metrics.jsonl has ``epoch`` lines (it is replaced atomically: never half)."""
    t0 = time.monotonic()
    while _epochs_done(run_dir) < epoch:
        if p.poll() is not None:
            raise AssertionError(f"training ended before epoch {epoch}: {_finish(p)[2]}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"no epoch {epoch} after {timeout} s")
        time.sleep(0.003)


def _intact(run_dir):
    """Assert that every file of the run folder reads whole; returns the checkpoint's epoch."""
    if not run_dir.exists():
        return None
    have = {p.name for p in run_dir.iterdir()}
    run = rf.read_config(run_dir) if rf.CONFIG in have else None
    history = []
    if rf.CHECKPOINT in have:
        assert run is not None, "a checkpoint without config.json"
        params, _, meta = ckpt.load(run_dir / rf.CHECKPOINT)
        model = ckpt.restore_model(params, meta, run_dir / rf.CHECKPOINT)
        assert all(np.isfinite(p).all() for p in model.params.values())
        history = meta["history"]
    if rf.METRICS in have:
        rows = [json.loads(line) for line in (run_dir / rf.METRICS).read_text().splitlines()]
        # written just after the checkpoint: the same rows, or one fewer if killed in between
        assert rows == history[:len(rows)] and len(rows) >= len(history) - 1
    if rf.EVALUATION in have:
        json.loads((run_dir / rf.EVALUATION).read_text())
    return len(history)


def _without_seconds(rows):
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in rows]


def _assert_same_run(a, b, evaluation=True):
    """Identical parameters, optimizer state, RNG states, metrics (and evaluation.json), bit
    for bit; no temporary file left in b."""
    pa, oa, ma = ckpt.load(a / rf.CHECKPOINT)
    pb, ob, mb = ckpt.load(b / rf.CHECKPOINT)
    assert pa.keys() == pb.keys() and oa.keys() == ob.keys()
    for k in pa:
        assert pa[k].tobytes() == pb[k].tobytes(), k
    for k in oa:
        assert oa[k].tobytes() == ob[k].tobytes(), k
    assert ma["rng"] == mb["rng"] and ma["progress"] == mb["progress"]
    assert _without_seconds(ma["history"]) == _without_seconds(mb["history"])
    metrics = [[json.loads(s) for s in (r / rf.METRICS).read_text().splitlines()] for r in (a, b)]
    assert _without_seconds(metrics[0]) == _without_seconds(metrics[1])
    if evaluation:
        evaluations = [json.loads((r / rf.EVALUATION).read_text()) for r in (a, b)]
        assert {**evaluations[0], "run": ""} == {**evaluations[1], "run": ""}
    assert not list(b.glob(".*.tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A run of the subprocess configuration that nothing interrupts; (folder, epoch seconds)."""
    tmp = tmp_path_factory.mktemp("faults")
    run_dir = tmp / "reference"
    _run_to_the_end(run_dir, tmp)
    seconds = [row["epoch_seconds"] for row in
               map(json.loads, (run_dir / rf.METRICS).read_text().splitlines())]
    assert len(seconds) == EPOCHS
    return run_dir, float(np.median(seconds))


def test_kill_9_at_random_points_then_resume_is_bit_identical(reference, tmp_path):
    """3-5 SIGKILLs at places drawn from a seeded rng: one during start-up, the others a
    random fraction of an epoch after a random epoch ended. After each, every file reads
    whole; resuming then ends exactly where the run that was never killed ended."""
    ref, epoch_seconds = reference
    rng = np.random.default_rng(SEED)
    run_dir = tmp_path / "killed"
    kills = int(rng.integers(3, 6))
    after = sorted(rng.choice(np.arange(1, EPOCHS - 3), size=kills - 1, replace=False))
    landed = []                                  # the checkpoint's epoch after each kill
    for i in range(kills):
        p = _start(run_dir, tmp_path)
        if i == 0:
            time.sleep(rng.uniform(0.0, 1.5))                 # imports, folder, first epoch
        else:
            _wait_for_epoch(run_dir, int(after[i - 1]), p)
            time.sleep(rng.uniform(0.0, 1.0) * epoch_seconds)
        p.send_signal(signal.SIGKILL)
        code, _, err = _finish(p)
        if code == 0:                  # this machine stalled us for 3 epochs: the run is done
            break
        assert code == -signal.SIGKILL, err
        landed.append(_intact(run_dir))
    assert len(landed) >= 2 and max(e or 0 for e in landed) >= 1, landed
    if len(landed) == kills:
        _run_to_the_end(run_dir, tmp_path)
    assert _intact(run_dir) == EPOCHS
    _assert_same_run(ref, run_dir)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_a_real_signal_saves_exits_and_resumes_bit_identical(reference, tmp_path, sig, code):
    ref, epoch_seconds = reference
    run_dir = tmp_path / "stopped"
    p = _start(run_dir, tmp_path)
    _wait_for_epoch(run_dir, 2, p)
    time.sleep(0.4 * epoch_seconds)                           # mid-epoch 3
    p.send_signal(sig)
    returned, _, err = _finish(p)
    assert returned == code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    progress = ckpt.load(run_dir / rf.CHECKPOINT)[2]["progress"]
    e, b = progress["epoch"], progress["batch"]
    where = f"epoch {e + 1}, after batch {b}" if b else f"end of epoch {e}"
    assert last.startswith(f"minivae: stopped and saved a checkpoint ({where}) in {run_dir}")
    assert last.endswith(f"continue with `minivae train --resume --out {run_dir}`")
    assert 2 <= e < EPOCHS, progress                           # stopped mid-run, not at once
    _intact(run_dir)
    _run_to_the_end(run_dir, tmp_path)
    _assert_same_run(ref, run_dir)


# ---------------------------------------------------------------- write failures (in process)

TOY_VAE = {"model": "vae", "x_dim": 16, "hidden": [8], "z_dim": 2}


def _toy_run(path, model=TOY_VAE, **cfg):
    return rf.create_run(path, model, "toy", TrainConfig(**{"epochs": 3, "batch_size": 32,
                                                            **cfg})).dir


def _kind(data):
    """Which file of a run folder a write of ``data`` (bytes) is for."""
    return ("checkpoint" if data.startswith(b"PK") else "config" if b'"format"' in data[:40]
            else "metrics")


def _disk_fills_at(monkeypatch, kind, nth):
    """The nth write of ``kind`` writes half its bytes, then fails as a full disk does."""
    seen, write_all = {}, atomic._write_all

    def half_then_enospc(f, data):
        k = _kind(data)
        seen[k] = seen.get(k, 0) + 1
        if k == kind and seen[k] == nth:
            f.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(f, data)
    monkeypatch.setattr(atomic, "_write_all", half_then_enospc)


# In train(): config.json only if the number of epochs or the learning rate changes (here, for
# "config": 2 -> 3 epochs), metrics.jsonl once (a repair), then per epoch the checkpoint and
# metrics.jsonl. (kind, nth write, epoch of the checkpoint left, lines of metrics left)
DISK_FULL = [("config", 1, None, None), ("checkpoint", 2, 1, 1), ("metrics", 3, 2, 1),
             ("checkpoint", 1, None, 0)]


@pytest.mark.parametrize("kind, nth, epoch, lines", DISK_FULL,
                         ids=[f"{k}-{n}" for k, n, _, _ in DISK_FULL])
def test_a_full_disk_during_training_loses_nothing_saved(tmp_path, toy, monkeypatch, kind, nth,
                                                         epoch, lines):
    """Whichever write fails half-way, the file it was replacing stands, nothing half-written
    or temporary is left, the error says what happened, and resuming once there is space
    again ends bit-identical to a run that never failed."""
    straight = _toy_run(tmp_path / "straight")
    T.train(straight, datasets=toy, verbose=False)
    run_dir = _toy_run(tmp_path / "full", epochs=2 if kind == "config" else 3)
    config_before = (run_dir / rf.CONFIG).read_bytes()
    _disk_fills_at(monkeypatch, kind, nth)
    with pytest.raises(atomic.WriteError, match="No space left on device") as info:
        T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    assert "previous version of the file, if any, is unchanged" in str(info.value)
    assert not list(run_dir.glob(".*.tmp"))
    if kind == "config":
        assert (run_dir / rf.CONFIG).read_bytes() == config_before
    _intact(run_dir)
    if epoch is None:
        assert not (run_dir / rf.CHECKPOINT).exists()
    else:
        assert ckpt.load(run_dir / rf.CHECKPOINT)[2]["progress"]["epoch"] == epoch
    if lines is not None:
        assert len((run_dir / rf.METRICS).read_text().splitlines()) == lines
    monkeypatch.undo()
    T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    _assert_same_run(straight, run_dir, evaluation=False)
    assert rf.read_config(run_dir)["train"]["epochs"] == 3


@pytest.mark.parametrize("write", ["config", "metrics"])
def test_config_and_metrics_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch, write):
    """The checkpoint's own case is in test_checkpoint.py; these are the two text files."""
    new = {"model": TOY_VAE, "data": "toy", "train": {"epochs": 9}}
    rows = [{"epoch": 1, "train_loss": 2.5}, {"epoch": 2, "train_loss": 2.0}]
    rf.write_config(tmp_path, {**new, "train": {"epochs": 1}})
    rf.write_metrics(tmp_path, rows[:1])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _disk_fills_at(monkeypatch, write, 1)
    with pytest.raises(atomic.WriteError, match="unchanged"):
        if write == "config":
            rf.write_config(tmp_path, new)
        else:
            rf.write_metrics(tmp_path, rows)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    rf.write_config(tmp_path, new)
    rf.write_metrics(tmp_path, rows)
    assert rf.read_config(tmp_path)["train"]["epochs"] == 9
    assert [json.loads(s) for s in (tmp_path / rf.METRICS).read_text().splitlines()] == rows


def test_leftovers_of_a_killed_write_do_not_block_the_folder(tmp_path, toy):
    """kill -9 during a write leaves a hidden temporary file: a folder holding only such files
    is still empty for a new run, and training removes them."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".config.json.x1y2.tmp").write_text('{"format": "minivae-r')
    run_dir = _toy_run(tmp_path / "run", epochs=1)                  # not "already exists"
    assert sorted(p.name for p in run_dir.iterdir()) == [rf.CONFIG]
    (run_dir / ".checkpoint.npz.a1b2.tmp").write_bytes(b"PK\x03\x04 half")
    (run_dir / "notes.txt").write_text("mine")                      # not ours: kept
    T.train(run_dir, datasets=toy, verbose=False)
    assert sorted(p.name for p in run_dir.iterdir()) == [rf.CHECKPOINT, rf.CONFIG, rf.METRICS,
                                                          "notes.txt"]
    with pytest.raises(ckpt.CheckpointError, match="already exists and is not empty"):
        rf.check_new_run_dir(run_dir)


# ---------------------------------------------------------------- downloads (a server on 127.0.0.1)

@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A one-file data set 'tiny' served by FakeServer (test_data.py); cache in tmp_path."""
    f = registry.FileInfo("tiny", "tiny.bin", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(),
                          "train", "images", URLS)
    monkeypatch.setitem(registry.DATASETS, "tiny", registry.DatasetInfo(
        "tiny", "test data", "tests", "none", (1, 1), {"train": 1}, (f,)))
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    return f, FakeServer(monkeypatch), PAYLOAD


def _what_to_do(msg, dest):
    """The three ways out that every DownloadError lists."""
    assert "To fix it, do one of:" in msg
    assert f"save it, unchanged, as {dest}" in msg
    assert "MINIVAE_DATA_MIRROR" in msg and "MINIVAE_DATA_DIR" in msg


@pytest.mark.parametrize("fault", ["truncated", "wrong checksum", "html page"])
def test_a_bad_download_is_refused_never_used_and_says_what_to_do(tiny, fault):
    """test_data.py checks that each is detected; here: in one message, both for the
    library and on the command line's one line, the user is told what to do."""
    f, server, payload = tiny
    body = {"truncated": payload[:-100], "wrong checksum": payload[:-1] + b"!",
            "html page": b"<!DOCTYPE html><html><body>Please log in</body></html>"}[fault]
    reason = {"truncated": "truncated", "wrong checksum": "SHA-256",
              "html page": "HTML page"}[fault]
    server.pages = {url: body for url in f.urls}
    dest = data.data_dir() / f.folder / f.name
    with pytest.raises(data.DownloadError) as info:
        data.fetch("tiny")
    assert reason in str(info.value)
    _what_to_do(str(info.value), dest)
    assert not dest.exists() and not list(dest.parent.glob("*"))     # nothing kept, nothing used
    line = one_line(info.value)
    assert "\n" not in line and reason in line and "the server sent a bad file" in line
    assert "try again later" in line and "MINIVAE_DATA_MIRROR" in line


def test_a_corrupt_mirror_file_says_what_to_do(tiny, monkeypatch, tmp_path):
    _, server, payload = tiny
    (tmp_path / "mirror" / "tiny").mkdir(parents=True)
    (tmp_path / "mirror" / "tiny" / "tiny.bin").write_bytes(payload[:-1] + b"!")
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(data.ChecksumError) as info:
        data.fetch("tiny")
    assert "replace the file with a good copy, or unset MINIVAE_DATA_MIRROR" in str(info.value)
    assert server.requested == []                                   # the mirror is never "fixed"


@pytest.mark.parametrize("how", ["path is a file", "os.access says no", "creating a file fails"])
def test_a_cache_folder_that_cannot_be_written_as_root_too(tiny, monkeypatch, tmp_path, how):
    """test_data.py's chmod test skips as root (root writes anyway); these three do not."""
    f, server, payload = tiny
    server.pages[f.urls[0]] = payload
    if how == "path is a file":
        (tmp_path / "cache").write_text("a file where the data folder should be")
    elif how == "os.access says no":
        monkeypatch.setattr(download.os, "access", lambda path, mode: False)
    else:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr("tempfile.NamedTemporaryFile", refuse)   # how pooch makes files
    with pytest.raises(data.CacheDirError) as info:
        data.fetch("tiny")
    msg = str(info.value)
    assert str(tmp_path / "cache") in msg and "export MINIVAE_DATA_DIR=" in msg
    assert "MINIVAE_DATA_MIRROR" in msg
    assert server.requested == []                                   # refused before any request
    if (tmp_path / "cache").is_dir():
        assert not list((tmp_path / "cache").rglob("*"))            # no partial file
    assert one_line(info.value).startswith("cannot write to the data folder")


def test_unknown_data_set_or_split_is_an_input_error():
    for call in (lambda: data.load("cifar10"), lambda: data.load("sprites", "valid"),
                 lambda: registry.get_info(["mnist"])):
        with pytest.raises(data.UnknownDatasetError) as info:
            call()
        assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
        assert "sprites" in str(info.value) or "train, test" in str(info.value)


# ---------------------------------------------------------------- hostile files

HUGE = {"hidden": [10 ** 9]}                    # 4 * 10^10 parameters: 160 GB of float32


def _peak_bytes(call):
    """(what call raised, the peak of memory traced while it ran)."""
    tracemalloc.start()
    try:
        call()
    except Exception as e:                      # noqa: BLE001 - returned for the caller to check
        raised = e
    else:
        raised = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


@pytest.mark.parametrize("edit, words", [
    ({"model": {**TOY_VAE, **HUGE}}, "40,000,000,"),
    ({"model": {**TOY_VAE, "hidden": [1] * 1000}}, "at most 64"),
    ({"model": {**TOY_VAE, "hidden": [1] * 10 ** 6}}, "bytes; a minivae run config has at most 1,048,576"),
    ({"model": {**TOY_VAE, "hidden": "lots"}}, "hidden must be a list"),
    ({"model": {**TOY_VAE, "z_dim": -3}}, "z_dim must be a positive integer"),
    ({"model": {**TOY_VAE, "exec": "import os"}}, "unexpected keyword argument 'exec'"),
    ({"model": {"model": "__import__('os').system"}}, "unknown model"),
    ({"model": {**TOY_VAE, "dtype": "object"}}, "dtype must be float32 or float64"),
    ({"train": {"epochs": "many"}}, "epochs must be a positive integer"),
    ({"train": {"epochs": 3, "shell": "rm -rf ~"}}, "unknown training settings"),
    ({"version": 99}, "newer minivae"),
    ({"format": "something-else"}, "not a minivae run config"),
])
def test_a_hostile_config_json_is_refused_before_anything_is_allocated(tmp_path, toy, capsys,
                                                                       edit, words):
    """A config.json from a stranger (or a typo): the library refuses it naming the file and
    the setting, within a few MB of memory; the command line prints that on one line."""
    run_dir = _toy_run(tmp_path / "run")
    config = {**json.loads((run_dir / rf.CONFIG).read_text()), **edit}
    (run_dir / rf.CONFIG).write_text(json.dumps(config))
    raised, peak = _peak_bytes(lambda: T.train(run_dir, datasets=toy, verbose=False))
    assert isinstance(raised, ckpt.CheckpointError), raised
    assert words in str(raised) and str(run_dir / rf.CONFIG) in str(raised)
    assert peak < 20e6, peak
    assert not (run_dir / rf.CHECKPOINT).exists()
    assert words in one_error_line(capsys, main(["train", "--resume", "--out", str(run_dir),
                                                  "--quiet"]))


def _checkpoint_claiming(tmp_path, toy, model_edit):
    """A trained toy run whose checkpoint's metadata was edited to describe another model."""
    run_dir = _toy_run(tmp_path / "run", epochs=1)
    T.train(run_dir, datasets=toy, verbose=False)
    path = run_dir / rf.CHECKPOINT
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["run"]["model"].update(model_edit)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return run_dir


@pytest.mark.parametrize("edit, words", [
    (HUGE, "40,000,000,020 parameters"),
    ({"hidden": [9]}, "model of 380 parameters, but the file holds 340 numbers"),
    ({"likelihood": "gaussian-learned"}, "parameters, but the file holds"),
    ({"hidden": [1] * 100}, "at most 64")])
def test_a_checkpoint_whose_config_lies_about_its_size_is_refused(tmp_path, toy, capsys, edit,
                                                                  words):
    """The count its config implies is checked against the arrays it holds before anything
    is built: no evaluate, sample, figures or resume allocates what a file merely claims."""
    run_dir = _checkpoint_claiming(tmp_path, toy, edit)
    raised, peak = _peak_bytes(lambda: rf.load_model(run_dir))
    assert isinstance(raised, ckpt.CheckpointError) and words in str(raised), raised
    assert peak < 20e6, peak
    for argv in (["evaluate", str(run_dir)], ["sample", str(run_dir)],
                 ["figures", str(run_dir)], ["train", "--resume", "--out", str(run_dir)]):
        assert words in one_error_line(capsys, main(argv))


# ---------------------------------------------------------------- bad arrays

D, Z = 16, 2
F32 = np.float32


def _x(n=6):
    return (np.random.default_rng(1).random((n, D)) < 0.5).astype(F32)


MODELS = {
    "vae": lambda: VAE(D, (4,), Z, rng=0),
    "vae-gaussian-learned": lambda: VAE(D, (4,), Z, likelihood="gaussian-learned", rng=0),
    "ae": lambda: Autoencoder(D, (4,), Z, rng=0),
    "dae": lambda: DenoisingAutoencoder(D, (4,), Z, noise="masking", rng=0),
    "linear-ae": lambda: LinearAutoencoder(D, Z, rng=0),
    "pca": lambda: PCA(Z).fit(_x(20)),
}
ENTRY_POINTS = {"loss": (), "encode": (), "reconstruct": (), "iwae_bound": (3,), "corrupt": ()}
BERNOULLI = ("vae", "ae", "dae")
BAD_X = {   # name: (x, words the message must hold), D = 16 inputs expected
    "wrong width": (lambda: np.zeros((3, D + 1), F32), f"(N, {D})"),
    "one image, not a batch": (lambda: np.zeros(D, F32), f"(N, {D})"),
    "images not flattened": (lambda: np.zeros((3, 4, 4), F32), f"(N, {D})"),
    "a list": (lambda: _x().tolist(), "numpy array"),
    "integers": (lambda: _x().astype(np.int64), "int64"),
    "float64 into float32": (lambda: _x().astype(np.float64), "float32"),
    "NaN": (lambda: np.where(_x() > 0, np.nan, 0).astype(F32), "NaN"),
    "infinity": (lambda: np.full((2, D), -np.inf, F32), "NaN or infinity"),
    "empty batch": (lambda: np.zeros((0, D), F32), "expected at least one example"),
    "pixels above 1": (lambda: _x() * 2, "expected x in [0, 1]"),
    "pixels below 0": (lambda: _x() - 0.5, "expected x in [0, 1]"),
}


def _refused(call, *words, cls=InputError):
    """call() raises ``cls`` with every one of ``words`` in its message; returns the message."""
    with pytest.raises(cls) as info:
        call()
    for w in words:
        assert w in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("bad", list(BAD_X))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_entry_point_refuses_bad_x_by_name(name, bad):
    """loss, encode, reconstruct, iwae_bound, corrupt and evaluate(): an InputError that names
    the method and what it expected, never a NumPy traceback from inside; NaN and infinity as
    NonFiniteError. Pixels outside [0, 1] only matter to a Bernoulli likelihood."""
    model = MODELS[name]()
    make, words = BAD_X[bad]
    if bad.startswith("pixels") and name not in BERNOULLI:
        x = make()
        model.loss(x)                                  # Gaussian / squared error: any real x
        return
    cls = NonFiniteError if bad in ("NaN", "infinity") else InputError
    for method, args in ENTRY_POINTS.items():
        if hasattr(model, method):
            msg = _refused(functools.partial(getattr(model, method), make(), *args), words,
                           cls=cls)
            assert type(model).__name__ in msg, msg
    if bad != "float64 into float32":                  # evaluate converts to the model's dtype
        _refused(functools.partial(evaluate, model, make()), words, cls=cls)
    model.loss(_x())                                   # still works after all that


@pytest.mark.parametrize("name", list(MODELS))
def test_decode_refuses_bad_codes(name):
    model = MODELS[name]()
    who = f"{type(model).__name__}.decode"
    for z, words in [(np.zeros((3, Z + 1), F32), f"(N, {Z})"), (np.zeros(Z, F32), f"(N, {Z})"),
                     ([[0.0] * Z], "numpy array"), (np.zeros((3, Z), np.int32), "int32"),
                     (np.full((3, Z), np.nan, F32), "NaN"), (np.zeros((0, Z), F32), "empty")]:
        _refused(functools.partial(model.decode, z), who, words)


def test_counts_are_checked_where_they_are_given():
    vae, x = MODELS["vae"](), _x()
    for call, words in [
        (lambda: vae.iwae_bound(x, 0), "k >= 1"), (lambda: vae.iwae_bound(x, 2.5), "k >= 1"),
        (lambda: vae.iwae_bound(x, "3"), "k >= 1"), (lambda: vae.iwae_bound(x, None), "k >= 1"),
        (lambda: vae.iwae_bound(x, 3, max_floats=0), "max_floats >= 1"),
        (lambda: vae.sample(0), "VAE.sample"), (lambda: vae.sample(-1), "n >= 1"),
        (lambda: evaluate(vae, x, iwae_k=-1), "iwae_k >= 0"),
        (lambda: evaluate(vae, x, iwae_k="100"), "iwae_k >= 0"),
        (lambda: evaluate(vae, x, batch_size=0), "batch_size >= 1"),
        (lambda: vae.loss(x, eps=np.full((6, Z), np.inf, F32)), "eps contains NaN"),
    ]:
        _refused(call, words)


def test_figures_refuse_bad_arguments_by_name(tmp_path):
    from types import SimpleNamespace

    from minivae import figures as fig
    vae, ae, x, shape = MODELS["vae"](), MODELS["ae"](), _x(), (4, 4)
    for call, *words in [
        (lambda: fig.plot_reconstructions(vae, x, (5, 5)), "image_grid", "(n, 25)"),
        (lambda: fig.plot_reconstructions(vae, x, "4x4"), "image_shape (H, W)"),
        (lambda: fig.plot_reconstructions(vae, x, (16,)), "image_shape (H, W)"),
        (lambda: fig.plot_reconstructions(vae, x[:, :5], shape), "VAE", f"(N, {D})"),
        (lambda: fig.plot_reconstructions(vae, x * 2, shape), "[0, 1]"),
        (lambda: fig.plot_samples(vae, shape, n=-1), "plot_samples", "n >= 1"),
        (lambda: fig.plot_samples(PCA(2).fit(x), shape), "plot_samples", "no latent prior"),
        (lambda: fig.plot_interpolation(vae, x[0, :5], x[1], shape), "same size"),
        (lambda: fig.plot_interpolation(vae, x[0], x[1], shape, steps=1), "steps >= 2"),
        (lambda: fig.plot_interpolation(ae, x[0] * np.nan, x[1], shape), "NaN"),
        (lambda: fig.plot_traversals(vae, shape, dims=[5]), "dims in 0..1"),
        (lambda: fig.plot_traversals(vae, shape, dims=[-1]), "dims entry >= 0"),
        (lambda: fig.plot_traversals(vae, shape, kl=[1.0]), "one value per latent"),
        (lambda: fig.plot_traversals(vae, shape, span=float("nan")), "span"),
        (lambda: fig.plot_manifold(vae, shape, n=-3), "plot_manifold", "n >= 1"),
        (lambda: fig.plot_latent_scatter(vae, x, y=np.arange(3)), "one label per row"),
        (lambda: fig.plot_loss_curves([1, 2]), "dict records"),
        (lambda: fig.plot_loss_curves([{"epoch": 1, "train_loss": "low"}]), "not a number"),
        (lambda: fig.plot_kl_per_dim([[1.0, 2.0]]), "shape (Z,)"),
        (lambda: fig.plot_kl_per_dim([np.inf]), "NaN or infinity"),
        (lambda: fig.make_figures(vae, x, [], tmp_path, 0), "expected a dataset"),
        (lambda: fig.make_figures(vae, SimpleNamespace(x=x[:0], y=None, image_shape=shape),
                                  [], tmp_path, 0), "empty"),
        (lambda: fig.make_figures(MODELS["vae"](), SimpleNamespace(
            x=np.zeros((4, 9), F32), y=None, image_shape=(3, 3)), [], tmp_path, 0), "(N, 16)"),
        (lambda: fig.sample_grid(vae, 0, 0, tmp_path / "s.png", shape), "n >= 1"),
    ]:
        _refused(call, *words)
    assert not list(tmp_path.iterdir())                # nothing half-drawn was written
    import matplotlib.pyplot as plt
    plt.close("all")


def test_optimizers_refuse_bad_gradients_and_change_nothing():
    vae = MODELS["vae"]()
    grads = {k: np.ones_like(v) for k, v in vae.params.items()}
    k0 = next(iter(grads))
    for opt in (Adam(vae.params), SGD(vae.params, momentum=0.9)):
        who = f"{type(opt).__name__}.step"
        before = {k: v.copy() for k, v in vae.params.items()}
        for bad, words, cls in [
            ({**grads, k0: np.full_like(grads[k0], np.nan)}, "contains NaN", NonFiniteError),
            ({**grads, k0: grads[k0] * np.inf}, "no parameter was changed", NonFiniteError),
            ({**grads, k0: grads[k0].tolist()}, "numpy array", InputError),
            ({**grads, k0: grads[k0].astype(np.float64)}, "float64", InputError),
            ({**grads, k0: grads[k0].T}, "expected (16, 4)", InputError),
            ({k: v for k, v in grads.items() if k != k0}, "missing", InputError),
            (list(grads.values()), "dict of gradients", InputError),
        ]:
            _refused(functools.partial(opt.step, bad), who, words, cls=cls)
        assert all(np.array_equal(before[k], v) for k, v in vae.params.items())
        assert opt.t == 0
        opt.step(grads)                                # and a good step still works
    _refused(lambda: Adam(vae.params, lr="fast"), "positive learning rate")


# ---------------------------------------------------------------- numerics (hypothesis)

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])


def _finite_or_refused(call):
    """call()'s result if every array in it is finite; None if it raised NonFiniteError.
    (Overflow warnings are silenced: with NUMBA_DISABLE_JIT=1 the kernels are NumPy code.)"""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = call()
    except NonFiniteError:
        return None
    arrays = out if isinstance(out, tuple) else (out,)
    for a in arrays:
        for b in (a if isinstance(a, tuple) else (a,)):
            assert np.isfinite(b).all(), out
    return out


@FEW
@given(dtype=DTYPES, seed=st.integers(0, 2 ** 32 - 1),
       mu_scale=st.sampled_from([1e-3, 1.0, 1e3]), logvar=st.floats(-100.0, 100.0))
def test_kl_and_reparameterization_at_extreme_log_variances(dtype, seed, mu_scale, logvar):
    """logvar far beyond anything trained: z and both backward passes stay finite for
    |logvar| <= 100; KL is finite (and >= 0) for |logvar| <= 50, and beyond, finite or a
    NonFiniteError (exp(100) overflows float32), never a silent inf."""
    rng = np.random.default_rng(seed)
    mu = (mu_scale * rng.standard_normal((4, 3))).astype(dtype)
    lv = (logvar + rng.uniform(-1, 1, (4, 3))).astype(dtype)
    out = _finite_or_refused(lambda: gaussian_kl(mu, lv))
    if abs(logvar) <= 49:
        assert out is not None and (out[0] >= -1e-5).all()
    layer = Reparameterize(rng)
    z = layer.forward(mu, lv)
    dmu, dlv = layer.backward(np.ones_like(z))
    assert np.isfinite(z).all() and np.isfinite(dmu).all() and np.isfinite(dlv).all()


@FEW
@given(dtype=DTYPES, seed=st.integers(0, 2 ** 32 - 1), logvar=st.floats(-100.0, 100.0),
       shared=st.booleans())
def test_gaussian_nll_with_huge_and_tiny_pixel_variances(dtype, seed, logvar, shared):
    """Variances from e^-100 to e^100: the value and both gradients are finite for
    logvar >= -50; a variance so small that the squared residual overflows raises."""
    rng = np.random.default_rng(seed)
    mean = (10 * rng.standard_normal((3, 5))).astype(dtype)
    x = rng.random((3, 5)).astype(dtype)
    lv = np.float64(logvar) if shared else np.full((3, 5), logvar, dtype)
    out = _finite_or_refused(lambda: gaussian_nll(mean, lv, x))
    if logvar >= -50:
        assert out is not None


@FEW
@given(dtype=DTYPES, seed=st.integers(0, 2 ** 32 - 1),
       scale=st.sampled_from([1.0, 1e2, 1e4, 1e30]))
def test_bernoulli_nll_past_plus_minus_1e4(dtype, seed, scale):
    """test_losses.py holds the value exact for |logits| <= 1e4; past that (1e30 overflows a
    float32 sum): finite, or a NonFiniteError."""
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((3, 7))).astype(dtype)
    x = (rng.random((3, 7)) < 0.5).astype(dtype)
    out = _finite_or_refused(lambda: bernoulli_nll(logits, x))
    assert out is not None or (dtype == np.float32 and scale > 1e4)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.sampled_from([1, 2, 17, 5000]),
       logvar=st.floats(-50.0, 50.0), logit_scale=st.sampled_from([1.0, 1e2, 1e4]),
       likelihood=st.sampled_from(["bernoulli", "gaussian-learned"]))
def test_iwae_is_finite_and_never_below_the_mean_of_its_own_log_weights(seed, k, logvar,
                                                                        logit_scale, likelihood):
    """A tiny VAE pushed to extremes: encoder log-variances near +-50, decoder outputs
    (logits) scaled to +-1e4. For the same samples, log mean_i w_i >= mean_i log w_i (Jensen),
    so the IWAE bound is never below the k-sample ELBO estimate; k = 1 is that estimate itself.
    Comparing with a single *sampled* ELBO instead could fail by chance; this cannot."""
    rng = np.random.default_rng(seed)
    model = VAE(6, (3,), Z, likelihood=likelihood, rng=seed)
    model.encoder.layers[-1].params["b"][Z:] = logvar                 # logvar ~ the bias
    for key in ("W", "b"):
        model.decoder.layers[-1].params[key] *= logit_scale
    x = (rng.random((3, 6)) < 0.5).astype(F32)
    eps = np.random.default_rng(seed + 1).standard_normal((3, k, Z), dtype=F32)
    with np.errstate(over="ignore", under="ignore"):
        lw = _finite_or_refused(lambda: model.log_weights(x, eps))                    # (3, k)
        if lw is None:
            return
        iwae = model.iwae_bound(x, k, rng=np.random.default_rng(seed + 1))            # same eps
    assert np.isfinite(iwae).all()
    top = lw.max(axis=1)
    log_mean_w = top + np.log(np.exp(lw - top[:, None]).mean(axis=1))
    np.testing.assert_allclose(iwae, log_mean_w, rtol=1e-12, atol=1e-9)
    elbo_same_samples = lw.mean(axis=1)
    assert (iwae >= elbo_same_samples - 1e-9 * (1 + np.abs(elbo_same_samples))).all()
    if k == 1:
        np.testing.assert_array_equal(iwae, lw[:, 0])


# ---------------------------------------------------------------- divergence and stopping

@pytest.fixture
def small_sprites(monkeypatch):
    """The helper's `small-sprites` data set, in this process (see fault_helpers)."""
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", small_minivae.small_load)


def test_divergence_is_recognized_by_class_not_by_wording(tmp_path, toy, monkeypatch):
    """A NonFiniteError from anywhere inside a step (here: the optimizer, on a NaN gradient)
    is divergence, whatever its words; an InputError that merely mentions NaN is not."""
    run_dir = _toy_run(tmp_path / "run", epochs=3)
    T.train(run_dir, datasets=toy, verbose=False, epochs=1)
    good = ckpt.load(run_dir / rf.CHECKPOINT)[0]
    backward, calls = VAE.backward, [0]

    def nan_gradient(self):
        backward(self)
        calls[0] += 1
        if calls[0] == 3:
            self.grads["decoder.0.W"][0, 0] = np.nan
    monkeypatch.setattr(VAE, "backward", nan_gradient)
    with pytest.raises(T.TrainingDiverged, match=r"Adam.step: gradient 'decoder.0.W'.*end of "
                                                 r"epoch 1\) is kept"):
        T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    params = ckpt.load(run_dir / rf.CHECKPOINT)[0]
    assert all(params[k].tobytes() == good[k].tobytes() for k in good)

    def says_nan(self, x, eps=None):
        raise InputError("my own check: NaN or infinity in the config")
    monkeypatch.setattr(VAE, "loss", says_nan)
    with pytest.raises(InputError, match="my own check") as info:
        T.train(run_dir, datasets=toy, verbose=False, epochs=3)
    assert not isinstance(info.value, T.TrainingDiverged)


def test_divergence_on_the_command_line_one_line_last_good_checkpoint(tmp_path, small_sprites,
                                                                      capsys):
    run_dir = tmp_path / "run"
    tiny = ["--data", "small-sprites", "--hidden", "8", "--latent", "2", "--optimizer", "sgd",
            "--lr", "0.01", "--quiet", "--iwae-k", "0", "--no-figures", "--out", str(run_dir)]
    assert main(["train", *tiny, "--epochs", "1"]) == 0
    capsys.readouterr()
    good = ckpt.load(run_dir / rf.CHECKPOINT)[0]
    line = one_error_line(capsys, main(["train", "--resume", "--out", str(run_dir), "--epochs",
                                         "3", "--lr", "1e6", "--quiet"]))
    assert "training diverged" in line and "end of epoch 1" in line and "--lr 100000" in line
    model, meta = rf.load_model(run_dir)                      # loadable, and finite
    assert meta["progress"] == {"epoch": 1, "batch": 0}
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert all(p.tobytes() == good[k].tobytes() for k, p in model.params.items())
    assert len((run_dir / rf.METRICS).read_text().splitlines()) == 1


def test_sigterm_in_process_stops_cleanly_and_restores_the_handlers(tmp_path, toy, monkeypatch):
    run_dir = _toy_run(tmp_path / "run")
    loss, calls = VAE.loss, [0]

    def terminated(self, x, eps=None):
        calls[0] += 1
        if calls[0] == 7 + 1 + 2:                     # epoch 1 (7 batches, 1 test pass) + 2
            signal.raise_signal(signal.SIGTERM)
        return loss(self, x, eps)
    monkeypatch.setattr(VAE, "loss", terminated)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with pytest.raises(T.TrainingInterrupted, match=r"saved a checkpoint \(epoch 2, after "
                                                    r"batch 2\)") as info:
        T.train(run_dir, datasets=toy, verbose=False)
    assert info.value.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ---------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A one-epoch VAE run folder on small-sprites, made by `minivae train`."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
        mp.setattr(data, "load", small_minivae.small_load)
        assert main(["train", "--data", "small-sprites", "--hidden", "8", "--latent", "2",
                     "--epochs", "1", "--quiet", "--iwae-k", "0", "--no-figures", "--out",
                     str(run_dir)]) == 0
    return run_dir


# (argv, exit status, words of the one line); RUN: a trained run, FILE: a file, EMPTY: an
# empty folder, NEW: a path that does not exist. test_cli.py has a few more.
BAD_COMMAND_LINES = [
    (["train", "--hidden", "0"], 2, "--hidden: expected an integer >= 1, got 0"),
    (["train", "--hidden", "8", "many"], 2, "--hidden: expected an integer, got 'many'"),
    (["train", "--hidden", "8", "-3"], 2, "--hidden: expected an integer >= 1, got -3"),
    (["train", "--latent", "2.5"], 2, "--latent: expected an integer, got '2.5'"),
    (["train", "--beta", "-0.5"], 2, "--beta: expected a finite number >= 0"),
    (["train", "--beta", "inf"], 2, "--beta: expected a finite number >= 0"),
    (["train", "--epochs", "1e3"], 2, "--epochs: expected an integer, got '1e3'"),
    (["train", "--lr", "0"], 2, "--lr: expected a finite number > 0"),
    (["train", "--seed", "-1"], 2, "--seed: expected an integer >= 0"),
    (["train", "--warmup", "soon"], 2, "--warmup: expected an integer"),
    (["train", "--noise-level", "nan"], 2, "--noise-level: expected a finite number"),
    (["train", "--iwae-k", "-5"], 2, "--iwae-k: expected an integer >= 0"),
    (["train", "--iwae-k", "100001"], 2, "--iwae-k: expected an integer >= 0 and <= 100000"),
    (["train", "--optimizer", "adamw"], 2, "invalid choice: 'adamw'"),
    (["train", "--binarize", "yes"], 2, "invalid choice: 'yes'"),
    (["train", "--model", "vqvae"], 2, "invalid choice: 'vqvae'"),
    (["train", "--out"], 2, "--out: expected one argument"),
    (["train", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
    (["train", "now"], 2, "unrecognized arguments: now"),
    (["train", "--hidden", "1000000000", "--out", "NEW"], 1, "more than minivae builds"),
    (["train", "--latent", "1000000000", "--out", "NEW"], 1, "more than minivae builds"),
    (["train", "--model", "dae", "--noise", "masking", "--noise-level", "1", "--out", "NEW"], 1,
     "noise_level must be a probability in [0, 1)"),
    (["train", "--model", "pca", "--latent", "2000", "--out", "NEW"], 1,
     "n_components=2000 exceeds x_dim=1024"),
    (["train", "--out", "FILE"], 1, "already exists and is not empty"),
    (["train", "--resume", "--out", "EMPTY"], 1, "is not a minivae run folder"),
    (["train", "--resume", "--out", "RUN", "--latent", "3"], 1, "--latent 3 differs"),
    (["train", "--resume", "--out", "RUN", "--noise", "masking"], 1, "--noise does not apply"),
    (["evaluate", "RUN", "--iwae-k", "-1"], 2, "--iwae-k: expected an integer >= 0"),
    (["evaluate", "RUN", "--iwae-k", "many"], 2, "--iwae-k: expected an integer"),
    (["evaluate", "RUN", "--iwae-k", "100000000"], 2, "<= 100000, got 100000000"),
    (["evaluate", "RUN", "--seed", "-1"], 2, "--seed: expected an integer >= 0"),
    (["evaluate", "RUN", "--split", "validation"], 1, "has no split 'validation'"),
    (["evaluate", "FILE"], 1, "no run folder at"),
    (["evaluate", "EMPTY"], 1, "has no checkpoint.npz yet"),
    (["evaluate", "RUN", "extra"], 2, "unrecognized arguments: extra"),
    (["sample"], 2, "the following arguments are required: RUN"),
    (["sample", "RUN", "--n", "10001"], 2, "--n: expected an integer >= 1 and <= 10000"),
    (["sample", "RUN", "--n", "some"], 2, "--n: expected an integer"),
    (["sample", "RUN", "--seed", "1.5"], 2, "--seed: expected an integer"),
    (["sample", "RUN", "--out", "grid.txt"], 1, "expected an image file name ending in .png"),
    (["sample", "NEW"], 1, "no run folder at"),
    (["figures"], 2, "the following arguments are required: RUN"),
    (["figures", "RUN", "--seed", "x"], 2, "--seed: expected an integer"),
    (["figures", "EMPTY"], 1, "has no checkpoint.npz yet"),
    (["data"], 2, "the following arguments are required: ACTION"),
    (["data", "fetch"], 2, "the following arguments are required: NAME"),
    (["data", "list", "extra"], 2, "unrecognized arguments: extra"),
    (["data", "remove", "mnist"], 2, "invalid choice: 'remove'"),
]


def _paths(argv, run_dir, tmp_path):
    (tmp_path / "FILE").write_text("not a run")
    (tmp_path / "EMPTY").mkdir(exist_ok=True)
    where = {"RUN": str(run_dir), "FILE": str(tmp_path / "FILE"),
             "EMPTY": str(tmp_path / "EMPTY"), "NEW": str(tmp_path / "NEW")}
    return [where.get(a, a) for a in argv]


@pytest.mark.parametrize("argv, code, words", BAD_COMMAND_LINES,
                         ids=[" ".join(a) for a, _, _ in BAD_COMMAND_LINES])
def test_every_command_refuses_bad_arguments_in_one_line(small_run, small_sprites, tmp_path,
                                                         monkeypatch, capsys, argv, code, words):
    """Run in tmp_path with training, evaluating and drawing replaced by stand-ins: a command
    that is no longer refused fails here at once, and writes nothing (no runs/) where the
    tests were started."""
    monkeypatch.chdir(tmp_path)
    _stand_ins(monkeypatch)
    try:
        status = main(_paths(argv, small_run, tmp_path))
    except _Accepted:
        pytest.fail(f"minivae {' '.join(argv)} was accepted: it got to where the work begins")
    line = one_error_line(capsys, status, expected=code)
    assert words in line, line
    assert not (tmp_path / "NEW").exists()                     # refused before creating it


class _Accepted(Exception):
    """Raised by the stand-ins for training, evaluating and drawing: the command line got
    through every check to the point where work would begin."""


def _accepted(*args, **kwargs):
    raise _Accepted


def _stand_ins(monkeypatch):
    """Training, evaluating and drawing raise _Accepted instead of beginning their work."""
    import minivae.cli.train
    import minivae.cli.view
    import minivae.evaluate
    import minivae.figures
    monkeypatch.setattr(minivae.cli.train, "train", _accepted)
    monkeypatch.setattr(minivae.evaluate, "evaluate", _accepted)
    monkeypatch.setattr(minivae.cli.view, "evaluate_generative", _accepted)
    monkeypatch.setattr(minivae.figures, "make_figures", _accepted)
    monkeypatch.setattr(minivae.figures, "sample_grid", _accepted)


TRAIN_FLAGS = ["--model", "--data", "--hidden", "--latent", "--likelihood", "--beta", "--epochs",
               "--batch-size", "--lr", "--optimizer", "--seed", "--warmup", "--binarize",
               "--noise", "--noise-level", "--out", "--iwae-k"]
SHAPES = {   # command: (takes RUN, flags with a value, flags without)
    "train": (False, TRAIN_FLAGS, ["--resume", "--no-figures", "--quiet"]),
    "evaluate": (True, ["--iwae-k", "--split", "--seed"], ["--json"]),
    "sample": (True, ["--n", "--seed", "--out"], []),
    "figures": (True, ["--seed"], []),
    "data list": (False, [], []),
    "data fetch": (True, [], []),
    "data": (False, [], []),
    "frobnicate": (False, [], []),
}
VALUES = ["0", "1", "2", "3", "8", "-1", "-0", "2.5", "1e-3", "1e6", "1e309", "nan", "inf",
          "-inf", "99999999999999999999", "10001", "", " ", "x", "ünï", "mnist", "sprites",
          "cifar", "small-sprites", "vae", "pca", "ae", "dae", "linear-ae", "adam", "sgd",
          "dynamic", "bernoulli", "gaussian", "gaussian-learned", "masking", "train", "test",
          "valid", "out.png", "out.txt", "RUN", "FILE", "EMPTY", "NEW", "--help"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
               max_size=6)                                     # no "/": nothing outside tmp
VALUE = st.one_of(st.sampled_from(VALUES), st.sampled_from(VALUES), TEXT)
GOOD = {"--model": ["vae", "pca", "ae", "dae", "linear-ae"], "--data": ["sprites",
        "small-sprites", "mnist"], "--hidden": ["8", "16"], "--latent": ["2", "3"],
        "--likelihood": ["bernoulli", "gaussian", "gaussian-learned"], "--beta": ["0.5", "4"],
        "--epochs": ["1", "3"], "--batch-size": ["32"], "--lr": ["1e-3", "0.1"],
        "--optimizer": ["adam", "sgd"], "--seed": ["0", "7"], "--warmup": ["0", "2"],
        "--binarize": ["none", "dynamic"], "--noise": ["gaussian", "masking"],
        "--noise-level": ["0.3", "1"], "--out": ["NEW", "EMPTY", "RUN", "out.png", "here"],
        "--iwae-k": ["0", "10"], "--split": ["test", "train", "valid"], "--n": ["4", "100"]}


@st.composite
def _argv(draw):
    """A command, usually its RUN, then 0-6 of: a flag of that command and a value (mostly
    one that flag takes), a switch, or (rarely) a random token."""
    command = draw(st.sampled_from(list(SHAPES)))
    takes_run, flags, switches = SHAPES[command]
    argv = command.split()
    if takes_run and draw(st.integers(0, 9)) > 0:
        argv.append(draw(st.sampled_from(["RUN", "RUN", "FILE", "EMPTY", "NEW", "mnist",
                                          "sprites"])))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flag"] * 7 + ["switch"] * 2 + ["token"]))
        if kind == "flag" and flags:
            flag = draw(st.sampled_from(flags))
            value = draw(st.sampled_from(["good"] * 4 + ["any"]))
            argv += [flag, draw(st.sampled_from(GOOD.get(flag, VALUES)) if value == "good"
                                else VALUE)]
        elif kind == "switch" and switches:
            argv.append(draw(st.sampled_from(switches)))
        elif kind == "token" or not (flags or switches):
            argv.append(draw(VALUE))
    return argv


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(argv=_argv())
def test_random_command_lines_never_show_a_traceback(small_run, tmp_path, monkeypatch, capsys,
                                                     argv):
    """Random tokens into minivae.cli.main: it returns an int; on an error, stderr holds
    exactly one line starting `minivae: error:`. Training, evaluation and drawing are
    replaced by stand-ins that stop where the work would begin; no network, a cached small
    data set, everything written under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(tmp_path / "no-mirror"))
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", _cached_load)
    monkeypatch.setattr(download, "_open_url", _offline)
    _stand_ins(monkeypatch)
    try:
        code = main(_paths(argv, small_run, tmp_path))
    except _Accepted:
        capsys.readouterr()
        event(f"{argv[0]}: accepted")           # pytest --hypothesis-show-statistics
        return
    out = capsys.readouterr()
    event(f"{argv[0]}: exit {code}" + (f" ({out.err.split(':')[2][:25]}...)" if code else ""))
    assert isinstance(code, int), code
    assert "Traceback" not in out.err + out.out
    if code != 0:
        lines = out.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("minivae: error: "), (argv, out.err)


@functools.cache
def _cached_load(name, split="train"):
    return small_minivae.small_load(name, split)


def _offline(url, timeout=None):
    raise OSError("network disabled in tests")
