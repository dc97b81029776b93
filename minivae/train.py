"""Training: minibatch gradient descent over epochs, saved so that a run can stop and go on.

    for each epoch:   x_e = x, or x ~ Bernoulli(x) afresh ("dynamic" binarization)
                      for each minibatch of a fresh shuffle of x_e:
                          loss = model.loss(batch);  model.backward();  optimizer.step(grads)
                      test loss (one sampled z per example, kl_weight 1), then a checkpoint

Randomness: ``seed`` makes two Generators, one for the model (initial weights, eps, noise)
and one for the data (binarization, shuffling); the per-epoch test loss uses a third, fixed
per epoch. The checkpoint keeps the first two, so a run that stops and resumes ends with the
same parameters, bit for bit, as one that never stopped (on the same machine and number of
threads: BLAS adds in another order with another thread count, which changes the last bits).

Stopping (Ctrl-C): the first Ctrl-C lets the current batch finish, then saves a mid-epoch
checkpoint (parameters, optimizer, the model Generator, the data Generator as it was at the
start of the epoch, and the batch index), so a resumed run replays the same shuffle from the
next batch on. A second Ctrl-C stops at once and keeps the checkpoint already on disk. A
KeyboardInterrupt raised without the handler (another thread, a test) is treated like the
second: the last checkpoint stands. Either way, resuming ends bit-identical.

Divergence: a NaN or infinite loss stops training with TrainingDiverged; nothing is saved
after the last good checkpoint.
"""

import contextlib
import math
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minivae import checkpoint as ckpt
from minivae import data
from minivae.errors import InputError, MinivaeError
from minivae.kernels.checks import all_finite
from minivae.models import build
from minivae.optim import SGD, Adam

OPTIMIZERS = ("adam", "sgd")
BINARIZE = ("none", "dynamic")
EVAL_BATCH = 1000          # rows per forward pass when computing a test loss


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
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            bad("lr", "a positive number")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            bad("momentum", "in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"one of {OPTIMIZERS}")
        if self.binarize not in BINARIZE:
            bad("binarize", f"one of {BINARIZE}")
        return self

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown training settings {sorted(unknown)}")
        return cls(**d).check()


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class TrainingDiverged(MinivaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C; the message says which checkpoint to resume from."""


# ---- run folders ----

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
    run = {"model": dict(model_config), "data": str(data_name), "train": asdict(cfg)}
    ckpt.write_json(out / ckpt.CONFIG, {"format": ckpt.RUN_FORMAT, "version": ckpt.VERSION,
                                        **run})
    return out


def check_new_run_dir(out):
    """Path(out), unless it names something that exists and is not an empty folder."""
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ckpt.CheckpointError(
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
    raise ckpt.CheckpointError(f"no free run folder name under {root}")


def load_datasets(name, splits=("train", "test")):
    """The Datasets of ``splits``; an unknown name or split is an InputError."""
    try:
        return tuple(data.load(name, split) for split in splits)
    except ValueError as e:                        # data.get_info / check_split
        if isinstance(e, data.DatasetError):
            raise
        raise InputError(str(e)) from None


def eval_x(dataset, run):
    """x of a test/eval split as the run sees it: binarized once, with a fixed seed, when the
    run trains on dynamically binarized data (so that every epoch and every evaluation use
    the same binary test set)."""
    if run["train"].get("binarize") == "dynamic":
        rng = np.random.default_rng(np.random.SeedSequence(run["train"]["seed"], spawn_key=(3,)))
        return data.dynamic_binarize(dataset.x, rng)
    return dataset.x


# ---- the loop ----

class _CtrlC:
    """First Ctrl-C sets ``requested``; a second raises KeyboardInterrupt (main thread only)."""

    def __init__(self, say):
        self.requested, self.say, self.old = False, say, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.say("\nCtrl-C: stopping after this batch and saving a checkpoint "
                 "(press Ctrl-C again to stop at once, keeping the last saved checkpoint)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


@contextlib.contextmanager
def _evaluation_mode(model, seed, epoch):
    """kl_weight 1 and the model's Generator replaced by a fixed one, restored afterwards."""
    gen, weight = getattr(model, "rng", None), getattr(model, "kl_weight", None)
    saved = gen.bit_generator.state if gen is not None else None
    if gen is not None:
        ss = np.random.SeedSequence(seed, spawn_key=(2, epoch))
        gen.bit_generator.state = type(gen.bit_generator)(ss).state
    if weight is not None:
        model.kl_weight = 1.0
    try:
        yield
    finally:
        if gen is not None:
            gen.bit_generator.state = saved
        if weight is not None:
            model.kl_weight = weight


def _mean_terms(model, x, prefix):
    """{prefix+"loss": mean loss, prefix+k: mean of model.last[k]} over x, in batches."""
    sums, n = {}, 0
    for s in range(0, len(x), EVAL_BATCH):
        xb = x[s:s + EVAL_BATCH]
        _add(sums, model, model.loss(xb), len(xb))
        n += len(xb)
    return {prefix + k: v / n for k, v in sums.items()}


def _add(sums, model, loss, B):
    """Add one batch's loss * B and per-example terms (model.last, but "loss") into sums."""
    sums["loss"] = sums.get("loss", 0.0) + loss * B
    for k, v in getattr(model, "last", {}).items():
        if k != "loss" and isinstance(v, np.ndarray) and v.shape == (B,):
            sums[k] = sums.get(k, 0.0) + float(v.sum(dtype=np.float64))


def _finite(model):
    return all(all_finite(p.reshape(-1)) for p in model.params.values())


def _make_optimizer(model, cfg):
    if cfg.optimizer == "sgd":
        return SGD(model.params, lr=cfg.lr, momentum=cfg.momentum)
    return Adam(model.params, lr=cfg.lr)


def _seeds(seed):
    model_ss, data_ss = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(model_ss), np.random.default_rng(data_ss)


def train(run_dir, *, epochs=None, lr=None, datasets=None, verbose=True):
    """Train (or go on training) the run in ``run_dir`` up to its number of epochs.

    A run folder with a checkpoint resumes from it; one with only config.json starts.
    ``epochs``/``lr`` replace the saved values (to train longer, or slower after a
    divergence). ``datasets``: (train, test) minivae.data.Dataset to use instead of loading
    the run's data set by name. Returns the metrics history (one dict per epoch).
    """
    run_dir = Path(run_dir)
    run = ckpt.read_config(run_dir)
    path = run_dir / ckpt.CHECKPOINT
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    with ckpt.locked(run_dir):
        saved = ckpt.load(path) if path.exists() else None
        if saved is not None:
            run = saved[2]["run"]                      # the checkpoint's own record wins
        cfg = TrainConfig.from_dict(run["train"])
        done = saved[2]["progress"]["epoch"] if saved is not None else 0
        if epochs is not None and epochs < done:
            raise InputError(f"epochs={epochs} is fewer than the {done} epochs this run has "
                             "already trained")
        cfg.epochs = cfg.epochs if epochs is None else epochs
        cfg.lr = cfg.lr if lr is None else lr
        run = {**run, "train": asdict(cfg.check())}
        ckpt.write_json(run_dir / ckpt.CONFIG, {"format": ckpt.RUN_FORMAT,
                                                "version": ckpt.VERSION, **run})
        if datasets is None:
            datasets = load_datasets(run["data"])
        trainer = _Trainer(run_dir, run, cfg, saved, datasets, say, verbose)
        with _CtrlC(say) as trainer.ctrl_c:
            return trainer.run()


class _Trainer:
    """The state of one training session; ``run()`` does the epochs."""

    def __init__(self, run_dir, run, cfg, saved, datasets, say, verbose):
        self.dir, self.run_desc, self.cfg, self.say, self.verbose = run_dir, run, cfg, say, verbose
        self.path, self.ctrl_c = run_dir / ckpt.CHECKPOINT, None
        train_ds, test_ds = datasets
        if train_ds.name != run["data"]:
            raise InputError(f"the run was made for data {run['data']!r}, got {train_ds.name!r}")
        model_rng, self.data_rng = _seeds(cfg.seed)
        if saved is None:
            self.model = build(run["model"], rng=model_rng)
            self.history, self.epoch, self.batch, self.partial = [], 0, 0, None
        else:
            params, _, meta = saved
            self.model = ckpt.restore_model(params, meta, self.path, rng=model_rng)
            prog = meta["progress"]
            self.history, self.epoch, self.batch = meta["history"], prog["epoch"], prog["batch"]
            self.partial = prog.get("partial")
        dtype = np.dtype(getattr(self.model, "dtype", np.float32))
        self.x = np.ascontiguousarray(train_ds.x, dtype=dtype)                # (N, D)
        self.x_test = np.ascontiguousarray(eval_x(test_ds, run), dtype=dtype)  # (M, D)
        for name, x in (("training", self.x), ("test", self.x_test)):
            if not np.isfinite(x).all():
                raise InputError(f"the {name} data contain NaN or infinity")
        x_dim = getattr(self.model, "x_dim", None)
        if x_dim is not None and self.x.shape[1] != x_dim:
            raise InputError(f"the model takes {x_dim} inputs, but {train_ds.name} has "
                             f"{self.x.shape[1]} pixels per image")
        self.trainable = bool(self.model.grads)
        self.opt = _make_optimizer(self.model, cfg) if self.trainable else None
        if saved is not None:
            if self.opt is not None:
                ckpt.restore_optimizer(self.opt, saved[1], self.path)
            for name, gen in (("model", getattr(self.model, "rng", None)), ("data", self.data_rng)):
                if gen is not None and saved[2]["rng"].get(name) is not None:
                    ckpt.set_rng_state(gen, saved[2]["rng"][name], name, self.path)
        if cfg.warmup and not hasattr(self.model, "kl_weight"):
            raise InputError(f"warmup applies to models with a KL term (vae), not "
                             f"{run['model']['model']}")
        self.saved_at = self._where() if saved is not None else None

    def _where(self):
        return (f"end of epoch {self.epoch}" if self.batch == 0
                else f"epoch {self.epoch + 1}, after batch {self.batch}")

    def _save(self, data_state, extra=None):
        gen = getattr(self.model, "rng", None)
        meta = {"run": self.run_desc, "history": self.history,
                "progress": {"epoch": self.epoch, "batch": self.batch, **(extra or {})},
                "rng": {"model": None if gen is None else gen.bit_generator.state,
                        "data": data_state}}
        ckpt.save(self.path, self.model, self.opt, meta)
        ckpt.write_metrics(self.dir, self.history)
        self.saved_at = self._where()

    def _diverged(self, what):
        kept = (f"the last good checkpoint ({self.saved_at}) is kept in {self.dir}"
                if self.saved_at else f"no checkpoint had been saved yet in {self.dir}")
        raise TrainingDiverged(
            f"training diverged: {what}; {kept}, nothing was saved after it. Try a lower "
            f"learning rate (e.g. --lr {self.cfg.lr / 10:g}), check that the data lie in "
            f"[0, 1], or a KL warm-up (--warmup 10); then `minivae train --resume --out "
            f"{self.dir} --lr ...`")

    def run(self):
        ckpt.write_metrics(self.dir, self.history)     # repair a file a crash left behind
        if not self.trainable:
            return self._fit()
        cfg, N = self.cfg, len(self.x)
        nb = -(-N // cfg.batch_size)                   # batches per epoch
        if self.batch >= nb:
            raise ckpt.CheckpointError(f"{self.path}: it stopped after batch {self.batch} of an "
                                       f"epoch that has {nb} batches; not from this run?")
        try:
            while self.epoch < cfg.epochs:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    self._epoch(nb)                    # non-finite values are caught below
                if self.ctrl_c.requested and self.epoch < cfg.epochs:
                    raise TrainingInterrupted(self._stopped("saved"))
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:                      # a second Ctrl-C, or no handler
            raise TrainingInterrupted(self._stopped("at once")) from None
        return self.history

    def _stopped(self, how):
        if how == "saved":
            kept = f"stopped and saved a checkpoint ({self.saved_at}) in {self.dir}"
        elif self.saved_at:
            kept = f"stopped at once; the last checkpoint ({self.saved_at}) is kept in {self.dir}"
        else:
            kept = f"stopped at once; no checkpoint was saved yet in {self.dir}"
        return f"{kept}; continue with `minivae train --resume --out {self.dir}`"

    def _epoch(self, nb):
        cfg, model, e = self.cfg, self.model, self.epoch
        start_state = self.data_rng.bit_generator.state       # this epoch's draws start here
        sums = dict(self.partial["sums"]) if self.partial else {}
        seconds = self.partial["seconds"] if self.partial else 0.0
        t0 = time.perf_counter()
        x = self.x
        if cfg.binarize == "dynamic":
            x = data.dynamic_binarize(x, self.data_rng)                # (N, D) of 0/1
        order = self.data_rng.permutation(len(x))                 # (N,)
        bar = tqdm(total=nb, initial=self.batch, desc=f"epoch {e + 1}/{cfg.epochs}",
                   unit="batch", leave=False, file=sys.stderr,
                   disable=None if self.verbose else True,   # None: only on a terminal
                   dynamic_ncols=True)
        try:
            for b in range(self.batch, nb):
                xb = x[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]    # (B, D)
                if cfg.warmup:
                    model.kl_weight = min(1.0, (e * nb + b + 1) / (cfg.warmup * nb))
                model.zero_grad()
                where = f"at epoch {e + 1}, batch {b + 1}"
                try:
                    loss = model.loss(xb)
                    if not math.isfinite(loss):
                        self._diverged(f"the loss became {loss} {where}")
                    model.backward()
                except InputError as err:             # a layer met a NaN or an infinity
                    if "NaN or infinity" not in str(err):
                        raise
                    self._diverged(f"a NaN or infinity appeared inside the model {where} ({err})")
                self.opt.step(model.grads)
                _add(sums, model, loss, len(xb))
                bar.update(1)
                if b % 10 == 0:
                    n = min((b + 1) * cfg.batch_size, len(x))
                    bar.set_postfix({k: f"{v / n:.4g}" for k, v in sums.items()}, refresh=False)
                if self.ctrl_c.requested and b + 1 < nb:
                    if not _finite(model):
                        self._diverged(f"the parameters became NaN or infinite {where}")
                    self.batch = b + 1
                    partial = {"sums": sums, "seconds": seconds + time.perf_counter() - t0}
                    self._save(start_state, {"partial": partial})
                    raise TrainingInterrupted(self._stopped("saved"))
        finally:
            bar.close()
        row = {"epoch": e + 1, **{f"train_{k}": v / len(x) for k, v in sums.items()}}
        if not _finite(model):
            self._diverged(f"the parameters became NaN or infinite in epoch {e + 1}")
        with _evaluation_mode(model, cfg.seed, e + 1):
            row.update(_mean_terms(model, self.x_test, "test_"))
        if not math.isfinite(row["test_loss"]):
            self._diverged(f"the test loss became {row['test_loss']} after epoch {e + 1}")
        row.update(kl_weight=float(getattr(model, "kl_weight", 1.0)), lr=cfg.lr,
                   epoch_seconds=seconds + time.perf_counter() - t0)
        self.history = self.history + [row]
        self.epoch, self.batch, self.partial = e + 1, 0, None
        self._save(self.data_rng.bit_generator.state)
        self.say(_summary(row, cfg.epochs))

    def _fit(self):
        """Closed-form models (PCA): fit once on the training set, record one row, save."""
        if self.epoch >= 1:
            return self.history
        t0 = time.perf_counter()
        self.model.fit(self.x)
        row = {"epoch": 1, **_mean_terms(self.model, self.x, "train_"),
               **_mean_terms(self.model, self.x_test, "test_"),
               "epoch_seconds": time.perf_counter() - t0}
        self.run_desc = {**self.run_desc, "model": self.model.config()}
        self.history, self.epoch = [row], 1
        self._save(self.data_rng.bit_generator.state)
        self.say(_summary(row, 1))
        return self.history


def _summary(row, epochs):
    """One line per epoch: 'epoch 3/30  train 91.2 (recon 70.1, kl 21.1)  test 93.0  2.1 s'."""
    terms = ", ".join(f"{k[6:]} {v:.4g}" for k, v in row.items()
                      if k.startswith("train_") and k != "train_loss")
    s = f"epoch {row['epoch']}/{epochs}  train {row['train_loss']:.4g}"
    s += f" ({terms})" if terms else ""
    return s + f"  test {row['test_loss']:.4g}  {row['epoch_seconds']:.1f} s"
