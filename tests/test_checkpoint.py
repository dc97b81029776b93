"""Checkpoints: atomic writes, exact round trips, and refusal of every hostile or damaged file."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from minivae.models import VAE
from minivae.optim import Adam
from minivae.run import atomic
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf

RUN = {"model": {"model": "vae", "x_dim": 6, "hidden": [5], "z_dim": 2}, "data": "toy",
       "train": {"epochs": 1}}


def _saved(tmp_path, steps=2):
    """A small VAE trained a few steps, saved to tmp_path/checkpoint.npz; (path, model, opt)."""
    model = VAE(6, [5], 2, rng=0)
    opt = Adam(model.params, lr=1e-2)
    x = np.random.default_rng(1).random((8, 6), dtype=np.float32)
    for _ in range(steps):
        model.zero_grad()
        model.loss(x)
        model.backward()
        opt.step(model.grads)
    meta = {"run": RUN, "history": [{"epoch": 1, "train_loss": 1.5}],
            "progress": {"epoch": 1, "batch": 0},
            "rng": {"model": model.rng.bit_generator.state, "data": None}}
    path = tmp_path / "checkpoint.npz"
    ckpt.save(path, model, opt, meta)
    return path, model, opt


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rewrite(path, arrays, **kw):
    buf = io.BytesIO()
    np.savez(buf, **arrays, **kw)
    path.write_bytes(buf.getvalue())


def _meta(arrays):
    return json.loads(arrays["meta"].tobytes().decode())


def _set_meta(arrays, meta):
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)


def test_round_trip_is_exact(tmp_path):
    path, model, opt = _saved(tmp_path)
    params, optim, meta = ckpt.load(path)
    back = ckpt.restore_model(params, meta, path)
    for k, p in model.params.items():
        assert np.array_equal(back.params[k], p) and back.params[k].dtype == p.dtype
    opt2 = Adam(back.params, lr=1e-2)
    ckpt.restore_optimizer(opt2, optim, path)
    for k, v in opt.state_dict().items():
        assert np.array_equal(opt2.state_dict()[k], v)
    gen = np.random.default_rng(99)
    ckpt.set_rng_state(gen, meta["rng"]["model"], "model", path)
    assert gen.random() == model.rng.random()
    assert meta["history"] == [{"epoch": 1, "train_loss": 1.5}]
    assert meta["version"] == ckpt.VERSION


@pytest.mark.parametrize("exc", [OSError("No space left on device"), KeyboardInterrupt()])
def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, exc):
    path, model, opt = _saved(tmp_path)
    before = path.read_bytes()

    def half_then_fail(f, data):
        f.write(data[:len(data) // 2])
        raise exc
    monkeypatch.setattr(atomic, "_write_all", half_then_fail)
    model.params["encoder.0.W"] += 1.0
    with pytest.raises(atomic.WriteError if isinstance(exc, OSError) else KeyboardInterrupt):
        ckpt.save(path, model, opt, ckpt.load(path)[2])
    assert path.read_bytes() == before                      # untouched, still loadable
    ckpt.restore_model(*ckpt.load(path)[::2], path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]   # no temp left


def test_atomic_write_replaces_whole_file_and_keeps_mode(tmp_path):
    path = tmp_path / "metrics.jsonl"
    atomic.atomic_write(path, "a\n")
    atomic.atomic_write(path, "b\n")
    assert path.read_text() == "b\n"
    assert path.stat().st_mode & 0o777 == 0o644


def _hostile(tmp_path, kind):
    """Damage a good checkpoint in one way; return the path."""
    path, _, _ = _saved(tmp_path)
    arrays = _arrays(path)
    if kind == "missing parameter":
        del arrays["param.decoder.0.W"]
    elif kind == "extra parameter":
        arrays["param.decoder.9.W"] = np.zeros(3, np.float32)
    elif kind == "wrong shape":
        arrays["param.encoder.0.W"] = np.zeros((6, 4), np.float32)
    elif kind == "wrong dtype":
        arrays["param.encoder.0.W"] = arrays["param.encoder.0.W"].astype(np.float64)
    elif kind == "nan parameter":
        arrays["param.encoder.0.b"][0] = np.nan
    elif kind == "optimizer shape":
        arrays["optim.m.encoder.0.W"] = np.zeros((2, 2), np.float32)
    elif kind == "future version":
        meta = _meta(arrays)
        meta["version"] = ckpt.VERSION + 1
        _set_meta(arrays, meta)
    elif kind == "no meta":
        del arrays["meta"]
    elif kind == "meta not json":
        arrays["meta"] = np.frombuffer(b"{not json", np.uint8)
    elif kind == "foreign model":
        meta = _meta(arrays)
        meta["run"]["model"] = {"model": "os.system", "command": "true"}
        _set_meta(arrays, meta)
    elif kind == "bad rng":
        meta = _meta(arrays)
        meta["rng"]["model"] = {"bit_generator": "MT19937", "state": 3}
        _set_meta(arrays, meta)
    elif kind in ("history mismatch", "no partial sums"):
        meta = _meta(arrays)
        meta["progress"] = {"epoch": 5, "batch": 0} if kind == "history mismatch" else \
            {"epoch": 1, "batch": 2, "partial": {"sums": {"loss": "x"}, "seconds": 1.0}}
        _set_meta(arrays, meta)
    elif kind == "string array":
        arrays["param.encoder.0.b"] = np.array(["a", "b", "c", "d", "e"])
    if kind in ("truncated", "flipped bytes", "not a zip", "empty", "compressed"):
        data = path.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[:len(data) // 2])
        elif kind == "flipped bytes":
            mid = len(data) // 2
            path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64])
                             + data[mid + 64:])
        elif kind == "not a zip":
            path.write_bytes(b"\x93NUMPY this is not what it seems" * 10)
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            path.write_bytes(buf.getvalue())
    else:
        _rewrite(path, arrays)
    return path


KINDS = ["missing parameter", "extra parameter", "wrong shape", "wrong dtype", "nan parameter",
         "optimizer shape", "future version", "no meta", "meta not json", "foreign model",
         "bad rng", "history mismatch", "no partial sums", "string array", "truncated", "flipped bytes", "not a zip", "empty",
         "compressed"]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_or_damaged_checkpoints_are_refused(tmp_path, kind):
    path = _hostile(tmp_path, kind)
    with pytest.raises(ckpt.CheckpointError) as info:
        params, optim, meta = ckpt.load(path)
        model = ckpt.restore_model(params, meta, path)
        ckpt.restore_optimizer(Adam(model.params), optim, path)
        ckpt.set_rng_state(model.rng, meta["rng"]["model"], "model", path)
    msg = str(info.value)
    assert str(path) in msg
    if kind == "future version":
        assert "newer minivae" in msg


class _Evil:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("where", ["in the npz", "whole file"])
def test_pickled_objects_are_refused_without_running_them(tmp_path, where):
    path, _, _ = _saved(tmp_path)
    marker = tmp_path / "code-ran"
    evil = np.array([_Evil(str(marker))], dtype=object)
    if where == "in the npz":
        arrays = _arrays(path)
        arrays["param.encoder.0.b"] = evil
        _rewrite(path, arrays)                               # np.savez pickles object arrays
    else:
        with open(path, "wb") as f:
            np.save(f, evil, allow_pickle=True)              # a .npy holding a pickle
    with pytest.raises(ckpt.CheckpointError, match="pickle|not a .npz"):
        ckpt.load(path)
    assert not marker.exists()


def test_oversized_member_is_refused(tmp_path):
    """A zip whose member claims more bytes than the file holds is not read into memory."""
    path, _, _ = _saved(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("meta.npy", b"x" * 10)
    data = bytearray(buf.getvalue())
    central = data.rfind(b"PK\x01\x02")                      # patch the declared size
    data[central + 24:central + 28] = (10 ** 9).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(path)


def test_missing_checkpoint_and_run_folder(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint"):
        ckpt.load(tmp_path / "checkpoint.npz")
    with pytest.raises(ckpt.CheckpointError, match="no run folder"):
        rf.load_model(tmp_path / "nowhere")
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        rf.load_model(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="not a minivae run folder"):
        rf.read_config(tmp_path)


def test_config_from_a_future_version_is_refused(tmp_path):
    atomic.write_json(tmp_path / "config.json", {"format": rf.RUN_FORMAT,
                                                 "version": ckpt.VERSION + 1, **RUN})
    with pytest.raises(ckpt.CheckpointError, match="newer minivae"):
        rf.read_config(tmp_path)


def test_a_locked_run_folder_refuses_a_second_trainer(tmp_path):
    with rf.locked(tmp_path):
        second = rf.locked(tmp_path)
        with pytest.raises(ckpt.CheckpointError, match="another minivae process"):
            second.__enter__()
    with rf.locked(tmp_path):                              # released afterwards
        pass
