"""Run folders: what a training run leaves on disk, and how it is made, read, locked and tidied.

    config.json      the run description: {"format": "minivae-run", "version", "model": the
                     model's config(), "data": the data set's name, "train": a TrainConfig}
    checkpoint.npz   parameters, optimizer state, RNG states, progress, history (checkpoint.py)
    metrics.jsonl    one JSON line per finished epoch, rewritten whole from the checkpoint
    evaluation.json, figures/    written at the end of `minivae train`, and by `minivae figures`

Nothing a user made is overwritten: a new run needs a new or empty folder, and every file is
replaced atomically (checkpoint.atomic_write), so a crash, a full disk or `kill -9` leaves the
previous version whole. The most such a kill leaves behind is a hidden temporary file, e.g.
.checkpoint.npz.k2j4.tmp: the next training session in the folder removes it, and a folder
holding nothing else counts as empty. One process at a time trains in a folder: it holds an
exclusive lock on it.
"""

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from minivae import data
from minivae.checkpoint import (
    VERSION,
    CheckpointError,
    atomic_write,
    check_run,
    check_version,
    load,
    restore_model,
    set_rng_state,
    write_json,
)
from minivae.errors import InputError
from minivae.models import build, check_config

CONFIG, CHECKPOINT, METRICS = "config.json", "checkpoint.npz", "metrics.jsonl"
EVALUATION = "evaluation.json"
RUN_FORMAT = "minivae-run"                  # the "format" of config.json (same VERSION)
OPTIMIZERS = ("adam", "sgd")
BINARIZE = ("none", "dynamic")


@dataclass
class TrainConfig:
    """The training settings saved in config.json (the model's own config is saved beside)."""

    epochs: int = 30             # passes over the training set (a resumed run may raise it)
    batch_size: int = 128        # examples per gradient step; an epoch's last batch may be smaller
    lr: float = 1e-3             # learning rate
    optimizer: str = "adam"      # "adam" or "sgd" (SGD with `momentum`)
    momentum: float = 0.9        # SGD only
    seed: int = 0                # seeds the model's and the data's Generators
    warmup: int = 0              # epochs over which model.kl_weight rises from 0 to 1 (0: none)
    binarize: str = "none"       # "dynamic": train on x ~ Bernoulli(x), redrawn each epoch

    def check(self):
        """Raise InputError naming the first setting out of range."""
        def bad(name, want):
            raise InputError(f"{name} must be {want}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "a positive integer")
        for name in ("seed", "warmup"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "an integer >= 0")
        if not (_is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            bad("lr", "a positive number")
        if not (_is_number(self.momentum) and 0 <= self.momentum < 1):
            bad("momentum", "in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"one of {OPTIMIZERS}")
        if self.binarize not in BINARIZE:
            bad("binarize", f"one of {BINARIZE}")
        return self

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise InputError(f"the training settings must be a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown training settings {sorted(map(str, unknown))}")
        return cls(**d).check()


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


# ---- making a run folder ----

def create_run(out, model_config, data_name, cfg, root="runs"):
    """Make a run folder and write its config.json; returns its path.

    ``out``: the folder, which must not exist or be empty (nothing a user made is
    overwritten); None picks a fresh root/<model>-<data>, -2, -3, ...
    """
    cfg = cfg.check()
    build(model_config)                            # fails early on a bad model config
    if out is None:
        out = fresh_run_dir(root, model_config["model"], data_name)
    else:
        out = check_new_run_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)
    write_config(out, {"model": dict(model_config), "data": str(data_name),
                       "train": asdict(cfg)})
    return out


def check_new_run_dir(out):
    """Path(out), unless it names something that exists and is not an empty folder
    (temporary files that a killed process left count as nothing)."""
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and (
            not out.is_dir() or set(out.iterdir()) - set(_leftovers(out))):
        raise CheckpointError(
            f"{out} already exists and is not empty; continue that run with `minivae "
            f"train --resume --out {out}`, or choose another --out")
    return out


def fresh_run_dir(root, model, data_name):
    """The first of root/<model>-<data>, -2, -3 ... that does not exist, created empty."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10000):
        path = root / (f"{model}-{data_name}" + (f"-{i}" if i > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"no free run folder name under {root}")


def _leftovers(run_dir):
    """The temporary files atomic_write makes for a run folder's own files (.NAME.*.tmp)."""
    names = (CONFIG, CHECKPOINT, METRICS, EVALUATION)
    return [p for p in Path(run_dir).glob(".*.tmp")
            if p.is_file() and any(p.name.startswith(f".{n}.") for n in names)]


def remove_leftovers(run_dir):
    """Delete the temporary files a killed process left in run_dir (call with the lock held)."""
    for p in _leftovers(run_dir):
        with contextlib.suppress(OSError):
            p.unlink()


# ---- config.json and metrics.jsonl ----

def write_config(run_dir, run):
    """Write config.json: the run description ``run`` = {"model", "data", "train"}."""
    write_json(Path(run_dir) / CONFIG, {"format": RUN_FORMAT, "version": VERSION, **run})


def read_config(run_dir):
    """The run description in config.json: {"model", "data", "train", ...}."""
    path = Path(run_dir) / CONFIG
    try:
        if path.stat().st_size > 1 << 20:
            raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes; a minivae run "
                                  "config is a few hundred: not from minivae")
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not a minivae run folder (it has no {CONFIG})") \
            from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    if not isinstance(cfg, dict) or cfg.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path} is not a minivae run config (no format {RUN_FORMAT!r})")
    check_version(cfg.get("version"), path)
    check_run(cfg, path)
    return cfg


def train_settings(run, where):
    """The run's TrainConfig, after checking it and the model's config (counted, not built);
    CheckpointError naming ``where`` if either is not valid."""
    try:
        check_config(run["model"])
    except InputError as e:
        raise CheckpointError(f"{where}: cannot build the model it describes: {e}") from None
    try:
        return TrainConfig.from_dict(run["train"])
    except (InputError, TypeError) as e:
        raise CheckpointError(f"{where}: its training settings are not valid: {e}") from None


def write_metrics(run_dir, history):
    """metrics.jsonl: one line per finished epoch, rewritten whole (never half a line)."""
    atomic_write(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in history))


@contextlib.contextmanager
def locked(run_dir):
    """Hold an exclusive lock on the run folder: a second process training it is refused."""
    try:
        import fcntl
    except ImportError:                              # not POSIX: no lock
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CheckpointError(f"another minivae process is training in {run_dir}; wait for "
                                  "it to finish or stop it first") from None
        yield
    finally:
        os.close(fd)


# ---- what a run holds ----

def load_model(run_dir):
    """The model saved in a run folder, and the checkpoint's metadata.   -> (model, meta)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    path = run_dir / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{run_dir} has no {CHECKPOINT} yet (training stopped before the "
                              f"end of its first epoch?); continue it with `minivae train "
                              f"--resume --out {run_dir}`")
    params, _, meta = load(path)
    model = restore_model(params, meta, path)
    if meta["rng"].get("model") is not None and getattr(model, "rng", None) is not None:
        set_rng_state(model.rng, meta["rng"]["model"], "model", path)
    return model, meta


def load_datasets(name, splits=("train", "test")):
    """The Datasets of ``splits`` of data set ``name`` (UnknownDatasetError if no such)."""
    return tuple(data.load(name, split) for split in splits)


def eval_x(dataset, run):
    """x of a test/eval split as the run sees it: binarized once, with a fixed seed, when the
    run trains on dynamically binarized data (so that every epoch and every evaluation use
    the same binary test set)."""
    if run["train"].get("binarize") == "dynamic":
        rng = np.random.default_rng(np.random.SeedSequence(run["train"]["seed"], spawn_key=(3,)))
        return data.dynamic_binarize(dataset.x, rng)
    return dataset.x
