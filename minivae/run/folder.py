"""Run folders: what a training run leaves on disk, and how it is made, opened, locked, tidied.

    config.json      the run description: {"format": "minivae-run", "version", "model": the
                     model's config(), "data": the data set's name, "train": a TrainConfig}
    checkpoint.npz   parameters, optimizer state, RNG states, progress, history (checkpoint.py)
    metrics.jsonl    one JSON line per finished epoch, rewritten whole from the checkpoint
    evaluation.json, figures/    written at the end of `minivae train`, and by `minivae figures`

A Run is a run folder as read once: ``create_run`` writes config.json and returns the Run it
describes; ``open_run`` reads a folder's checkpoint (whose record of the run wins) or, before
the first epoch, its config.json. config.json is written again only when a resumed run changes
its number of epochs or its learning rate. Those two may also be changed by editing
config.json; any other edit is refused when the run is opened (a run keeps its settings), and
so is a folder whose checkpoint has gone while metrics.jsonl still lists epochs (starting again
would overwrite them). Every file is read bounded and checked (minivae/files.py).

Nothing a user made is overwritten: a new run needs a new or empty folder, and every file is
replaced atomically (atomic.py), so a crash, a full disk or `kill -9` leaves the previous
version whole. The most such a kill leaves behind is a hidden temporary file, e.g.
.checkpoint.npz.k2j4.tmp: the next training session in the folder removes it, and a folder
holding nothing else counts as empty. One process at a time trains in a folder: it holds an
exclusive lock on it.
"""

import contextlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from minivae import data, recipes
from minivae.errors import InputError
from minivae.files import FileError, read_bytes, read_json
from minivae.models import build, full_config
from minivae.run.atomic import atomic_write, write_json
from minivae.run.checkpoint import (
    VERSION,
    CheckpointError,
    check_run,
    check_size,
    check_version,
    load,
    restore_model,
    set_rng_state,
)
from minivae.run.config import TrainConfig

CONFIG, CHECKPOINT, METRICS = "config.json", "checkpoint.npz", "metrics.jsonl"
BEST = "best.npz"           # with validation on: the checkpoint of the best validation loss
EVALUATION = "evaluation.json"
RUN_FORMAT = "minivae-run"                  # the "format" of config.json (same VERSION)
CONFIG_BYTES = 1 << 20                      # config.json is a few hundred bytes
TEXT_BYTES = 64 << 20                       # metrics.jsonl, evaluation.json: a few KB to MB
CHANGEABLE = ("epochs", "lr", "d_lr")       # the settings a resumed run may change


@dataclass
class Run:
    """A run folder as read once: what it trains, and its checkpoint if it has one."""

    dir: Path
    model: dict                 # the model's config(), {"model": "vae", "x_dim": 784, ...}
    data: str                   # the data set's name
    train: TrainConfig
    saved: tuple = None         # checkpoint.npz as load() read it, (params, optim, meta)
    stamp: tuple = None         # checkpoint.npz's (mtime, size) before it was read

    @property
    def epochs_done(self):
        return self.saved[2]["progress"]["epoch"] if self.saved else 0

    @property
    def batches_done(self):
        """Batches of the epoch in progress (a checkpoint saved mid-epoch), else 0."""
        return self.saved[2]["progress"]["batch"] if self.saved else 0

    def description(self):
        """{"model", "data", "train"}: what config.json and every checkpoint record."""
        return {"model": self.model, "data": self.data, "train": asdict(self.train)}

    def changed_on_disk(self):
        """True if checkpoint.npz was written since this Run was read (by another process)."""
        return _stamp(self.dir / CHECKPOINT) != self.stamp


def _stamp(path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


# ---- making a run folder ----

def create_run(out, model_config, data_name, cfg, root="runs"):
    """Make a run folder, write its config.json and return its Run.

    ``out``: the folder, which must not exist or be empty (nothing a user made is
    overwritten); None picks a fresh root/<model>-<data>, -2, -3, ...
    """
    cfg = cfg.check()
    build(model_config)                            # fails early on a bad model config
    if out is None:
        out = fresh_run_dir(root, model_config["model"], data_name)
    else:
        out = check_new_run_dir(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot make the run folder {out}: {e.strerror or e}") \
                from None
    run = Run(out, dict(model_config), str(data_name), cfg)
    with locked(out):                  # two processes making the same folder: one wins, the
        check_new_run_dir(out)         # other finds it taken (never a half-made folder)
        remove_leftovers(out)
        write_config(out, run.description())
    return run


def open_run(run_dir):
    """The Run in ``run_dir``, read once: from checkpoint.npz if there is one (its record of
    the run wins; config.json may change only the epochs and the learning rates), else from
    config.json. CheckpointError if what it holds is not valid, if config.json was edited
    otherwise, or if the checkpoint is missing although metrics.jsonl lists epochs."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    stamp = _stamp(path)
    if stamp is None:
        desc, saved = read_config(run_dir), None
        _no_lost_epochs(run_dir)
    else:
        saved = load(path)
        check_size(saved[0], saved[2], path)       # counted before anything is built
        desc = _with_edits(saved[2]["run"], run_dir)
    return Run(run_dir, desc["model"], desc["data"], TrainConfig(**desc["train"]), saved, stamp)


def _with_edits(saved, run_dir):
    """The checkpoint's run description, with the epochs and learning rate of config.json if
    they differ (the last --epochs / --lr, or an edit by hand); a missing config.json is
    written again from the checkpoint; CheckpointError if config.json changes anything else."""
    try:
        cfg = read_config(run_dir)
    except CheckpointError:
        if (run_dir / CONFIG).exists() or (run_dir / CONFIG).is_symlink():
            raise
        write_config(run_dir, saved)                             # repair a deleted config.json
        return saved
    mine, theirs = _flat(saved), _flat(cfg)
    differ = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)
              and k not in (f"train.{c}" for c in CHANGEABLE)]
    if differ:
        k = differ[0]
        raise CheckpointError(
            f"{run_dir / CONFIG} was edited: {k} is {theirs.get(k, 'missing')!r} there but "
            f"{mine.get(k, 'missing')!r} in {CHECKPOINT}; a run keeps the settings it was made "
            f"with (only epochs, lr and a gan's d_lr may change, with --epochs / --lr / --d-lr "
            f"or in {CONFIG}). Undo the edit, or start a new run with the new settings")
    return {**saved, "train": {**saved["train"], **{c: cfg["train"][c] for c in CHANGEABLE}}}


def _flat(run):
    """{"model.hidden": [400], "train.lr": 0.001, "data": "mnist", ...} of a run description."""
    out = {"data": run["data"]}
    out.update({f"model.{k}": v for k, v in full_config(run["model"]).items()})
    out.update({f"train.{k}": v for k, v in run["train"].items()})
    return out


def _no_lost_epochs(run_dir):
    """CheckpointError if metrics.jsonl lists finished epochs although checkpoint.npz is gone:
    starting the run again would overwrite them."""
    try:
        text = read_bytes(run_dir / METRICS, TEXT_BYTES, "metrics file")
    except FileNotFoundError:
        return
    except FileError as e:
        raise CheckpointError(str(e)) from None
    epochs = sum(1 for line in text.splitlines() if line.strip())
    if epochs:
        raise CheckpointError(
            f"{run_dir} has no {CHECKPOINT}, but its {METRICS} lists {epochs} finished epoch"
            f"{'s' if epochs > 1 else ''}: the checkpoint was deleted or moved. Put it back to "
            f"resume, or delete {METRICS} to train the run again from its first epoch")


def retune(run, epochs=None, lr=None, d_lr=None):
    """``run`` with another number of epochs and learning rates (None: the same), the only
    settings a run may change; config.json records them if they changed."""
    if d_lr is not None and run.model["model"] != "gan":
        raise InputError(f"d_lr applies to a gan, not to this run's {run.model['model']} model")
    train = replace(run.train, epochs=run.train.epochs if epochs is None else epochs,
                    lr=run.train.lr if lr is None else lr,
                    d_lr=run.train.d_lr if d_lr is None else d_lr)
    if train.recipe:                                  # a recipe's run names what changed it
        train = replace(train, recipe=recipes.resumed_label(train.recipe, train.epochs,
                                                            train.lr))
    train = train.check()
    if train.epochs < run.epochs_done:
        raise InputError(f"epochs={train.epochs} is fewer than the {run.epochs_done} epochs "
                         "this run has already trained")
    if train.epochs == run.epochs_done and run.batches_done:     # stopped mid-epoch
        raise InputError(f"epochs={train.epochs}: this run has trained {run.epochs_done} "
                         f"epoch{'s' * (run.epochs_done != 1)} and {run.batches_done} "
                         f"batch{'es' * (run.batches_done != 1)} of epoch "
                         f"{run.epochs_done + 1}, which cannot be undone; train at least "
                         f"{run.epochs_done + 1} epochs")
    if train != run.train:
        run = replace(run, train=train)
        write_config(run.dir, run.description())
    return run


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
    names = (CONFIG, CHECKPOINT, METRICS, EVALUATION, BEST)
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
    """The run description in config.json: {"model", "data", "train", ...}, checked."""
    path = Path(run_dir) / CONFIG
    try:
        cfg = read_json(path, CONFIG_BYTES, "minivae run config")
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir} is not a minivae run folder (it has no {CONFIG})") \
            from None
    except FileError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(cfg, dict) or cfg.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path} is not a minivae run config (no format {RUN_FORMAT!r})")
    check_version(cfg.get("version"), path)
    return check_run(cfg, path)


def read_evaluation(run_dir):
    """evaluation.json as a dict, or None if there is none or it cannot be used (it is only
    ever written again, from the checkpoint)."""
    try:
        out = read_json(Path(run_dir) / EVALUATION, TEXT_BYTES, "evaluation file")
    except (FileNotFoundError, FileError):
        return None
    return out if isinstance(out, dict) else None


def write_metrics(run_dir, history):
    """metrics.jsonl: one line per finished epoch, rewritten whole (never half a line)."""
    atomic_write(Path(run_dir) / METRICS,
                 "".join(json.dumps(row, allow_nan=False) + "\n" for row in history))


@contextlib.contextmanager
def locked(run_dir):
    """Hold an exclusive lock on the run folder: a second process training it is refused."""
    try:
        import fcntl
    except ImportError:                              # not POSIX: no lock
        yield
        return
    try:                               # O_DIRECTORY: a FIFO or a device is refused, not opened
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"no run folder at {run_dir}") from None
    except OSError as e:
        raise CheckpointError(f"cannot open the run folder {run_dir}: {e.strerror or e}") \
            from None
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

def load_model(run_dir, best=False):
    """The model saved in a run folder, and the checkpoint's metadata.   -> (model, meta).
    ``best``: the one in best.npz, if the run keeps one (validation on)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    path = run_dir / (BEST if best and (run_dir / BEST).is_file() else CHECKPOINT)
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
