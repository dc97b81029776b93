"""Fault injection, files: what minivae reads is asked what it is, read bounded, and every value
in it checked once, where it is loaded, by the rules it was written by.

    not a regular file    a FIFO, a link to /dev/zero, a folder, or a (sparse) file larger than
                          its kind can be, in place of checkpoint.npz, config.json,
                          metrics.jsonl, evaluation.json, a mirror file or a cached data file:
                          one line naming the file and what it is, within a second, nothing
                          allocated; a cached data file is downloaded again instead, and
                          evaluation.json written again
    values in a checkpoint
                          a zip member that is not .npy; NaN, Infinity or 1e999 in the metadata;
                          NaN in an array; Adam's second moment negative, state of another
                          dtype, a step count below 0; training settings of the wrong type; an
                          RNG state of another generator; a history row that is not numbers:
                          refused on load (evaluate, resume), in one line, as damage (never as
                          divergence), and the checkpoint is left as it was

minivae.files.read_bytes is the one reader; these tests go through the command line and the
library entry points that use it.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import zipfile

import numpy as np
import pytest
from helpers import one_error_line
from test_data import PAYLOAD, URLS, FakeServer
from test_faults import small_minivae

from minivae import data
from minivae.cli import main
from minivae.data import registry
from minivae.files import FileError, loads_json, read_bytes
from minivae.run import atomic
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf

KINDS = ["named pipe", "link to /dev/zero", "folder", "too large"]
WORDS = {"named pipe": "is a named pipe (FIFO), not a regular file",
         "link to /dev/zero": "(a link to /dev/zero) is a character device",
         "folder": "is a folder, not a regular file", "too large": "bytes; a "}


class _Hung(BaseException):
    """Raised by the alarm of _within: no ``except Exception`` or ``except OSError`` takes it."""


@contextlib.contextmanager
def _within(seconds):
    """Fail instead of hanging: SIGALRM after ``seconds`` (it also breaks a blocked open)."""
    def alarm(signum, frame):
        raise _Hung(f"still reading after {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _plant(path, kind, limit):
    """Replace ``path`` by a thing of ``kind``; "too large": a sparse file of limit + 1 bytes."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if kind == "named pipe":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(limit + 1)


def _copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / "run")


@pytest.fixture
def small_sprites(monkeypatch):
    """The fault helper's `small-sprites` data set, in this process."""
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", small_minivae.small_load)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A one-epoch VAE run folder on small-sprites, made by `minivae train`."""
    run_dir = tmp_path_factory.mktemp("files") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
        mp.setattr(data, "load", small_minivae.small_load)
        assert main(["train", "--data", "small-sprites", "--hidden", "8", "--latent", "2",
                     "--epochs", "1", "--quiet", "--iwae-k", "0", "--no-figures", "--out",
                     str(run_dir)]) == 0
    return run_dir


# ---------------------------------------------------------------- not a regular file

RUN_FILES = {   # file: (its bound, the commands that read it, whether the checkpoint stays)
    rf.CHECKPOINT: (ckpt.MAX_BYTES, ["evaluate", "resume"], True),
    rf.CONFIG: (rf.CONFIG_BYTES, ["resume"], True),
    "config.json, before the first epoch": (rf.CONFIG_BYTES, ["resume"], False),
    rf.METRICS: (rf.TEXT_BYTES, ["resume"], False),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(RUN_FILES))
def test_a_run_file_that_is_not_a_regular_file_is_refused_in_one_line(small_run, small_sprites,
                                                                      tmp_path, capsys, name,
                                                                      kind):
    limit, commands, keep_checkpoint = RUN_FILES[name]
    run_dir = _copy(small_run, tmp_path)
    if not keep_checkpoint:                   # a run stopped before its first checkpoint
        (run_dir / rf.CHECKPOINT).unlink()
        (run_dir / rf.METRICS).write_text("")
    path = run_dir / name.split(",")[0]
    _plant(path, kind, limit)
    for command in commands:
        argv = (["evaluate", str(run_dir), "--iwae-k", "0"] if command == "evaluate" else
                ["train", "--resume", "--out", str(run_dir), "--epochs", "2", "--quiet"])
        with _within(5):
            line = one_error_line(capsys, main(argv))
        assert str(path) in line and WORDS[kind] in line, line
    assert path.exists() or path.is_symlink()                  # nothing of the user's removed


@pytest.mark.parametrize("kind", ["named pipe", "link to /dev/zero"])
def test_an_evaluation_json_that_is_not_a_regular_file_is_written_again(small_run, small_sprites,
                                                                        tmp_path, capsys, kind):
    """evaluation.json is minivae's own summary: `train --resume` with nothing to train reads it
    to see whether it is of this checkpoint; a FIFO or a link is not, and is replaced."""
    run_dir = _copy(small_run, tmp_path)
    _plant(run_dir / rf.EVALUATION, kind, rf.TEXT_BYTES)
    with _within(5):
        assert main(["train", "--resume", "--out", str(run_dir), "--iwae-k", "0",
                     "--no-figures", "--quiet"]) == 0
    assert json.loads((run_dir / rf.EVALUATION).read_text())["epochs"] == 1
    assert not (run_dir / rf.EVALUATION).is_symlink()
    assert stat.S_IMODE((run_dir / rf.EVALUATION).stat().st_mode) == 0o644   # not /dev/zero's


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A one-file data set 'tiny' (test_data.py's), its cache in tmp_path, and the server."""
    f = registry.FileInfo("tiny", "tiny.bin", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(),
                          "train", "images", URLS)
    monkeypatch.setitem(registry.DATASETS, "tiny", registry.DatasetInfo(
        "tiny", "test data", "tests", "none", (1, 1), {"train": 1}, (f,)))
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    server = FakeServer(monkeypatch)
    server.pages[URLS[0]] = PAYLOAD
    return f, server


@pytest.mark.parametrize("kind", KINDS)
def test_a_mirror_file_that_is_not_a_regular_file_is_an_error(tiny, monkeypatch, tmp_path,
                                                              capsys, kind):
    f, server = tiny
    mirror = tmp_path / "mirror"
    (mirror / f.folder).mkdir(parents=True)
    _plant(mirror / f.relpath, kind, f.size)
    monkeypatch.setenv("MINIVAE_DATA_MIRROR", str(mirror))
    with _within(5):
        line = one_error_line(capsys, main(["data", "fetch", "tiny"]))
    assert f"mirror file {mirror / f.relpath}" in line and WORDS[kind] in line, line
    assert server.requested == []                              # the mirror is never "fixed"


@pytest.mark.parametrize("kind", ["named pipe", "link to /dev/zero", "too large"])
def test_a_cached_data_file_that_is_not_a_regular_file_is_downloaded_again(tiny, kind):
    f, _ = tiny
    path = data.data_dir() / f.relpath
    path.parent.mkdir(parents=True)
    _plant(path, kind, f.size)
    with _within(5), pytest.warns(UserWarning, match=f"not usable .*{re.escape(WORDS[kind])}"):
        assert data.fetch("tiny") == [path]
    assert path.read_bytes() == PAYLOAD and not path.is_symlink()
    assert sorted(p.name for p in path.parent.iterdir()) == [f.name]


def test_a_folder_in_place_of_a_cached_data_file_is_refused(tiny, capsys):
    f, server = tiny
    (data.data_dir() / f.relpath).mkdir(parents=True)
    line = one_error_line(capsys, main(["data", "fetch", "tiny"]))
    assert "is a folder where a data file belongs; remove it" in line
    assert server.requested == []


def test_read_bytes_reads_at_most_its_bound(tmp_path):
    """A file that grows while it is read is caught too: at most limit + 1 bytes are read."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_bytes(path, 10) == b"x" * 10
    with pytest.raises(FileError, match="is 10 bytes; a file has at most 9"):
        read_bytes(path, 9)
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "nothing", 9)
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "dangling", 9)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}',
                                  '{"a": 1e999}', '{"a": [1, 2', b'\xff{}'])
def test_json_is_read_by_the_rules_it_is_written_by(text):
    """What json.dumps(allow_nan=False) cannot write, loads_json does not read."""
    with pytest.raises(FileError, match="is not valid JSON"):
        loads_json(text, "here")
    assert loads_json('{"a": 1e308, "b": [1, -2.5]}', "here") == {"a": 1e308, "b": [1, -2.5]}


def test_json_is_written_by_the_rules_it_is_read_by(tmp_path):
    path = tmp_path / "evaluation.json"
    atomic.write_json(path, {"nll": 1.5})
    with pytest.raises(atomic.WriteError, match="NaN or infinity.*previous version"):
        atomic.write_json(path, {"nll": float("inf")})
    assert loads_json(path.read_bytes(), "here") == {"nll": 1.5}


# ---------------------------------------------------------------- values in a checkpoint

def _damage(path, how):
    """Rewrite the checkpoint at path with one value damaged in way ``how``."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    text = None
    if how == "a member without an .npy header":
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with zipfile.ZipFile(buf, "a") as z:
            z.writestr("param.extra.npy", b"just bytes, no .npy header")
        path.write_bytes(buf.getvalue())
        return
    if how == "NaN in the history":
        meta["history"][0]["train_loss"] = float("nan")
    elif how == "Infinity in the partial sums":
        meta["progress"] = {"epoch": 1, "batch": 1, "partial": {"sums": {"loss": float("inf")},
                                                                "seconds": 0.1}}
    elif how == "1e999 as the learning rate":
        text = json.dumps(meta).replace('"lr": 0.001', '"lr": 1e999')
    elif how == "10**400 as the learning rate":
        text = json.dumps(meta).replace('"lr": 0.001', '"lr": 1' + "0" * 400)
    elif how == "a string in the history":
        meta["history"][0]["train_loss"] = "low"
    elif how == "the seed a string":
        meta["run"]["train"]["seed"] = "0"
    elif how == "binarize a list":
        meta["run"]["train"]["binarize"] = ["dynamic"]
    elif how == "training settings a list":
        meta["run"]["train"] = [1, 2]
    elif how == "another random generator":
        meta["rng"]["data"] = {"bit_generator": "MT19937", "state": {"key": [1], "pos": 0}}
    elif how == "NaN in a parameter":
        arrays["param.decoder.0.b"][0] = np.nan
    elif how == "NaN in Adam's first moment":
        arrays["optim.m.encoder.0.W"][0, 0] = np.nan
    elif how == "a negative second moment":
        arrays["optim.v.encoder.0.W"][0, 0] = -1.0
    elif how == "optimizer state in float64":
        arrays["optim.m.encoder.0.b"] = arrays["optim.m.encoder.0.b"].astype(np.float64)
    elif how == "a step count below 0":
        arrays["optim.t"] = np.array(-3, np.int64)
    arrays["meta"] = np.frombuffer((text or json.dumps(meta)).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


DAMAGE = {   # how: (words of the one line, whether `evaluate` reads it too)
    "a member without an .npy header": ("member 'param.extra' is not a .npy array", True),
    "NaN in the history": ("NaN is not a number minivae writes", True),
    "Infinity in the partial sums": ("Infinity is not a number minivae writes", True),
    "1e999 as the learning rate": ("1e999 overflows a float", True),
    "10**400 as the learning rate": ("lr must be a positive number, got 1000", True),
    "a string in the history": ("progress, RNG or history records are malformed", True),
    "the seed a string": ("training settings are not valid: seed must be an integer >= 0", True),
    "binarize a list": ("binarize must be one of ('none', 'dynamic')", True),
    "training settings a list": ("lacks its model, data or train settings", True),
    "another random generator": ("data random generator state is not valid", True),
    "NaN in a parameter": ("'param.decoder.0.b' holds NaN or infinity", True),
    "NaN in Adam's first moment": ("'optim.m.encoder.0.W' holds NaN or infinity", True),
    "a negative second moment": ("'v.encoder.0.W' holds a negative second moment", False),
    "optimizer state in float64": ("'m.encoder.0.b' is float64, the parameter is float32", False),
    "a step count below 0": ("no valid step count t", False),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_value_in_a_checkpoint_is_refused_where_it_is_loaded(small_run, small_sprites,
                                                                       tmp_path, capsys, how):
    """Refused when the checkpoint is read, before anything trains: not at the next save (which
    would lose the epoch, on every retry), and never as divergence (whose advice, a lower
    learning rate, cannot help)."""
    words, evaluate_reads_it = DAMAGE[how]
    run_dir = _copy(small_run, tmp_path)
    path = run_dir / rf.CHECKPOINT
    _damage(path, how)
    before = path.read_bytes()
    resume = ["train", "--resume", "--out", str(run_dir), "--epochs", "2", "--quiet",
              "--iwae-k", "0", "--no-figures"]
    line = one_error_line(capsys, main(resume))
    assert words in line and str(path) in line, line
    assert "diverged" not in line and "--lr" not in line
    evaluate = ["evaluate", str(run_dir), "--iwae-k", "0"]
    if evaluate_reads_it:
        assert words in one_error_line(capsys, main(evaluate))
    else:                                     # the optimizer's state: evaluating needs none
        assert main(evaluate) == 0
    assert path.read_bytes() == before
