"""`minivae train`'s engine: the training loop, minivae.train.fit, wrapped in a run folder so
that a run can stop and go on.

    train(run):  open the run (its checkpoint, or config.json); build or restore the model, the
                 optimizer and the Generators; fit(model, x, optimizer, epochs, batch_size,
                 data_rng, callbacks) (a GAN: fit_gan, with its two optimizers), with the
                 callbacks
        KLWarmup      the KL weight rises from 0 to 1 over the first `warmup` epochs (train.py)
        StopOnSignal  Ctrl-C or SIGTERM sets p.stop: fit ends after the batch (callbacks.py)
        ProgressBar   a tqdm bar per epoch (callbacks.py)
        Divergence    a NaN or infinite loss or parameter: TrainingDiverged
        TestLoss      the test loss after each epoch (a GAN: D's loss) (callbacks.py)
        Checkpoints   after each epoch checkpoint.npz, metrics.jsonl and a summary line; a
                      mid-epoch checkpoint when fit stops early
    PCA is fitted in closed form instead, once.

Randomness: ``seed`` makes two Generators, one for the model (initial weights, eps, noise) and
one for the data (binarization, shuffling); the test loss uses a third, fixed per epoch. The
checkpoint keeps the first two, so a run that stops and resumes ends with the same parameters,
bit for bit, as one that never stopped (on the same machine, with the same BLAS threads).

Threads (threads.py): ``threads`` ("auto", or N) sets BLAS's threads for the run's own work
only; auto chooses 1 or all before each epoch. metrics.jsonl records each epoch's count, and a
mid-epoch checkpoint the count its epoch began with, which the resumed epoch uses again.

Stopping (stopping.py): the first Ctrl-C or SIGTERM lets the current batch finish, then saves a
mid-epoch checkpoint with the data Generator as it was when the epoch began, the batch index and
the partial sums, so a resumed run replays the same shuffle from the next batch on. A second
signal, or a KeyboardInterrupt without the handler, stops at once: the last checkpoint stands.
`kill -9` loses only the epoch in progress: every file is replaced atomically.

Divergence: a NaN or infinite loss, parameter or test loss, or a NonFiniteError from inside the
model or the optimizer, raises TrainingDiverged; nothing is saved after the last good checkpoint.
"""

import math
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minivae import data
from minivae.errors import InputError, MinivaeError, NonFiniteError
from minivae.kernels.checks import all_finite
from minivae.models import build
from minivae.run import checkpoint, folder
from minivae.run.callbacks import ProgressBar, StopOnSignal, TestLoss, mean_terms
from minivae.run.optimizers import OptimizerPair, make_optimizer
from minivae.run.stopping import StopSignals, TrainingInterrupted, interruption
from minivae.run.threads import Threads, check, largest_product
from minivae.schedules import LearningRate, schedule
from minivae.train import KLWarmup, Progress, fit, fit_gan

__all__ = ["TrainingDiverged", "TrainingInterrupted", "train"]


class TrainingDiverged(MinivaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ---- a session: the run, and what it trains with ----

@dataclass
class Session:
    """One training session: the run, and what it trains with."""

    run: folder.Run
    model: object
    optimizer: object          # None for a model fitted in closed form (PCA)
    data_rng: np.random.Generator
    x: np.ndarray              # (N, D) the training set
    x_test: np.ndarray         # (M, D) the test set, as the run sees it
    x_valid: np.ndarray        # (V, D) the validation set (None: validation off)
    progress: Progress         # where fit stands: epoch, batch, partial sums, history
    seconds: float = 0.0       # time already spent on the epoch in progress (a resumed one)
    saved_at: str = None       # where the last checkpoint stands, for messages
    threads: Threads = None    # BLAS threads: the policy, and the count in force
    began_with: int = None     # the threads the epoch in progress began with (a resumed one)


def train(run, *, epochs=None, lr=None, d_lr=None, datasets=None, verbose=True,
          threads="auto"):
    """Train (or go on training) a run up to its number of epochs; its history, one dict per epoch.

    ``run``: a run folder, or the Run that folder.create_run or open_run returned (used as it
    is, unless the checkpoint changed since). A run with a checkpoint resumes from it; one with
    only config.json starts. ``epochs``/``lr`` (and a GAN's ``d_lr``) replace the saved values
    (to train longer, or slower after a divergence). ``datasets``: (train, test)
    minivae.data.Dataset to use instead of loading the run's data set by name. ``threads``:
    BLAS threads, "auto" or N (threads.py).
    """
    threads = check(threads)
    run_dir = Path(run.dir if isinstance(run, folder.Run) else run)
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    with folder.locked(run_dir):
        folder.remove_leftovers(run_dir)                   # temporary files of a killed process
        if not isinstance(run, folder.Run) or run.changed_on_disk():
            run = folder.open_run(run_dir)
        run = folder.retune(run, epochs, lr, d_lr)
        s = _session(run, run_datasets(run.data, run.train) if datasets is None else datasets)
        folder.write_metrics(run_dir, s.progress.history)  # repair a file a crash left behind
        s.threads = Threads(threads, work=largest_product(s.model, run.train.batch_size)
                            if s.optimizer else None,
                            replay={s.progress.epoch: s.began_with} if s.began_with else None)
        with StopSignals(say) as signals, s.threads:
            say(f"BLAS threads: {s.threads.describe()}")
            if s.optimizer is None:
                return _fit_closed_form(s, say)
            return _fit(s, signals, say, verbose)


def run_datasets(name, cfg):
    """(train, test) Datasets of data set ``name``; with validation on, (train, valid, test):
    the training split less the validation split (minivae.data.train_valid)."""
    if cfg.validation == "on":
        return (*data.train_valid(name), *folder.load_datasets(name, ("test",)))
    return folder.load_datasets(name)


def _session(run, datasets):
    """The model, optimizer, Generators and data of ``run``: new, or as its checkpoint left them."""
    want = "(train, valid, test)" if run.train.validation == "on" else "(train, test)"
    if len(datasets) != want.count(",") + 1:
        raise InputError(f"expected {want} datasets for this run, got {len(datasets)}")
    train_ds, *valid_ds, test_ds = datasets
    if train_ds.name != run.data:
        raise InputError(f"the run was made for data {run.data!r}, got {train_ds.name!r}")
    cfg, path = run.train, run.dir / folder.CHECKPOINT
    model_rng, data_rng = map(np.random.default_rng, np.random.SeedSequence(cfg.seed).spawn(2))
    if run.saved is None:
        try:
            model = build(run.model, rng=model_rng)
        except InputError as e:
            raise checkpoint.CheckpointError(f"{run.dir / folder.CONFIG}: cannot build the "
                                             f"model it describes: {e}") from None
    else:
        model = checkpoint.restore_model(run.saved[0], run.saved[2], path, rng=model_rng)
    if cfg.warmup and not hasattr(model, "kl_weight"):
        raise InputError(f"warmup applies to models with a KL term (vae), not {run.model['model']}")
    x, x_test = _arrays(model, train_ds, test_ds, run)
    if cfg.output_bias == "data-mean" and not hasattr(model, "start_at_mean"):
        raise InputError(f"output_bias data-mean applies to a vae with dense layers, not "
                         f"{run.model['model']}")
    if run.saved is None and cfg.output_bias == "data-mean":
        model.start_at_mean(x.mean(axis=0, dtype=np.float64))          # (D,), training part
    x_valid = _arrays(model, train_ds, valid_ds[0], run)[1] if valid_ds else None
    s = Session(run, model, make_optimizer(model, cfg), data_rng, x, x_test, x_valid,
                Progress(cfg.epochs, -(-len(x) // cfg.batch_size)))
    if run.saved is not None:
        _restore(s, path)
    return s


def _arrays(model, train_ds, test_ds, run):
    """The training and test sets in the model's dtype, checked once.   -> (N, D), (M, D)"""
    dtype = np.dtype(getattr(model, "dtype", np.float32))
    x = np.ascontiguousarray(train_ds.x, dtype=dtype)
    x_test = np.ascontiguousarray(folder.eval_x(test_ds, run.description()), dtype=dtype)
    for name, a in (("training", x), ("test", x_test)):
        if not np.isfinite(a).all():
            raise NonFiniteError(f"the {name} data contain NaN or infinity")
    x_dim = getattr(model, "x_dim", None)
    if x_dim is not None and x.shape[1] != x_dim:
        raise InputError(f"the model takes {x_dim} inputs, but {train_ds.name} has "
                         f"{x.shape[1]} pixels per image")
    return x, x_test


def _restore(s, path):
    """Put the optimizer, the Generators and the progress back where the checkpoint left them."""
    _, optim, meta = s.run.saved
    if s.optimizer is not None:
        checkpoint.restore_optimizer(s.optimizer, optim, path)
    for name, gen in (("model", getattr(s.model, "rng", None)), ("data", s.data_rng)):
        if gen is not None and meta["rng"].get(name) is not None:
            checkpoint.set_rng_state(gen, meta["rng"][name], name, path)
    p, saved = s.progress, meta["progress"]
    if saved["batch"] >= p.batches:
        raise checkpoint.CheckpointError(f"{path}: it stopped after batch {saved['batch']} of "
                                         f"an epoch that has {p.batches} batches; not from "
                                         "this run?")
    partial = saved.get("partial") or {"sums": {}, "seconds": 0.0}       # a mid-epoch stop
    p.epoch, p.batch, p.history = saved["epoch"], saved["batch"], list(meta["history"])
    p.sums, p.seen = dict(partial["sums"]), saved["batch"] * s.run.train.batch_size
    s.seconds, s.saved_at = partial["seconds"], _where(p)
    s.began_with = partial.get("threads")                  # None: an epoch boundary


# ---- the loop, and what happens around it ----

def _fit(s, signals, say, verbose):
    """fit with the callbacks; TrainingInterrupted if a signal stopped it before the end."""
    cfg, p, bar, divergence = s.run.train, s.progress, ProgressBar(verbose), Divergence(s)
    callbacks = [KLWarmup(s.model, cfg.warmup)] if cfg.warmup else []
    if cfg.schedule != "constant":
        callbacks.append(LearningRate(s.optimizer, schedule(cfg.schedule, cfg.lr, cfg.epochs)))
    callbacks += [StopOnSignal(signals), bar, divergence, s.threads,
                  TestLoss(s.model, s.x_test, cfg.seed)]
    if s.x_valid is not None:                          # validation on: its loss, best.npz
        callbacks += [TestLoss(s.model, s.x_valid, cfg.seed, "valid_"), BestCheckpoint(s)]
    callbacks.append(Checkpoints(s, say))
    if cfg.patience:
        callbacks.append(early := EarlyStopping(cfg.patience, say))
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):   # Divergence checks
            if isinstance(s.optimizer, OptimizerPair):                      # a GAN's two players
                fit_gan(s.model, s.x, s.optimizer["discriminator"], s.optimizer["generator"],
                        cfg.epochs, cfg.batch_size, s.data_rng, callbacks, progress=p)
            else:
                fit(s.model, s.x, s.optimizer, cfg.epochs, cfg.batch_size, s.data_rng,
                    callbacks, binarize=cfg.binarize == "dynamic", progress=p)
    except NonFiniteError as e:                        # a layer, loss or gradient overflowed
        raise _diverged(s, f"a NaN or infinity appeared inside the model {divergence.where} "
                           f"({e})") from None
    except (KeyboardInterrupt, SystemError) as e:      # a second Ctrl-C, or no handler; also
        stop = interruption(e)                         # from inside a jitted call (stopping.py)
        if stop is None:
            raise
        raise _stopped(s, signals, "at once", getattr(stop, "signum", None)) from None
    finally:
        bar.close()
    if p.stop and p.epoch < cfg.epochs and not (cfg.patience and early.stopped):
        raise _stopped(s, signals, "saved")
    return p.history


class Divergence:
    """TrainingDiverged as soon as the loss or the parameters are NaN or infinite, before
    anything is saved; ``where`` says where fit is, for a NonFiniteError from inside a step."""

    def __init__(self, s):
        self.s, self.where = s, "before the first batch"

    def batch_begin(self, p):
        self.where = f"at epoch {p.epoch + 1}, batch {p.batch + 1}"

    def batch_end(self, p):
        if not math.isfinite(p.loss):
            raise _diverged(self.s, f"the loss became {p.loss} {self.where}")
        if p.stop and p.batch < p.batches and not _finite(self.s.model):   # about to be saved
            raise _diverged(self.s, f"the parameters became NaN or infinite {self.where}")

    def epoch_end(self, p):
        self.where = f"after epoch {p.epoch}"
        if not _finite(self.s.model):
            raise _diverged(self.s, f"the parameters became NaN or infinite in epoch {p.epoch}")


class Checkpoints:
    """Saves the run after each epoch (checkpoint.npz, metrics.jsonl, one summary line), and
    mid-epoch when fit stops early: with the data Generator as it was when the epoch began,
    the batch index and the partial sums, so that a resumed epoch replays the same draws."""

    def __init__(self, s, say):
        self.s, self.say, self.t0, self.start_state = s, say, 0.0, None

    def epoch_begin(self, p):
        self.start_state = self.s.data_rng.bit_generator.state   # this epoch's draws start here
        self.t0, self.s.seconds = time.perf_counter() - self.s.seconds, 0.0

    def batch_end(self, p):
        if p.stop and p.batch < p.batches:
            partial = {"sums": p.sums, "seconds": time.perf_counter() - self.t0,
                       "threads": self.s.threads.count}
            _save(self.s, p, self.start_state, partial)

    def epoch_end(self, p):
        s, row = self.s, p.history[-1]
        if not math.isfinite(row["test_loss"]):
            raise _diverged(s, f"the test loss became {row['test_loss']} after epoch {p.epoch}")
        row.update(kl_weight=float(getattr(s.model, "kl_weight", 1.0)),
                   lr=row.get("lr", s.run.train.lr), epoch_seconds=time.perf_counter() - self.t0)
        _save(s, p, s.data_rng.bit_generator.state)
        self.say(_summary(row, p.epochs))


class BestCheckpoint:
    """With validation on: after each epoch whose valid_loss is the lowest so far, best.npz,
    written before the epoch's checkpoint.npz, so that a crash between the two replays the
    epoch and writes the same best.npz again."""

    def __init__(self, s):
        self.s = s

    def epoch_end(self, p):
        losses = [row["valid_loss"] for row in p.history]
        if losses[-1] <= min(losses):
            gen = getattr(self.s.model, "rng", None)
            checkpoint.save(self.s.run.dir / folder.BEST, self.s.model, self.s.optimizer,
                            _meta(self.s, p, self.s.data_rng.bit_generator.state, gen))


class EarlyStopping:
    """Stop once ``patience`` epochs have passed without a lower valid_loss; a resumed run
    that had stopped so stops again before its next epoch."""

    def __init__(self, patience, say):
        self.patience, self.say, self.stopped = patience, say, False

    def _check(self, p):
        losses = [row["valid_loss"] for row in p.history]
        if losses and len(losses) - 1 - int(np.argmin(losses)) >= self.patience:
            p.stop = self.stopped = True
        return self.stopped

    def epoch_begin(self, p):
        self._check(p)

    def epoch_end(self, p):
        if self._check(p):
            best = int(np.argmin([row["valid_loss"] for row in p.history])) + 1
            self.say(f"early stop: no better validation loss in {self.patience} epochs; the "
                     f"best, epoch {best}'s, is in {folder.BEST}")


def _fit_closed_form(s, say):
    """PCA: fitted once on the training set; one row of history, one checkpoint."""
    p = s.progress
    if p.epoch >= 1:
        return p.history
    t0 = time.perf_counter()
    s.model.fit(s.x)
    p.history.append({"epoch": 1, **mean_terms(s.model, s.x, "train_"),
                      **mean_terms(s.model, s.x_test, "test_"),
                      "epoch_seconds": time.perf_counter() - t0})
    p.epoch, s.run = 1, replace(s.run, model=s.model.config())     # x_dim is known now
    _save(s, p, s.data_rng.bit_generator.state)
    say(_summary(p.history[-1], 1))
    return p.history


# ---- helpers ----

def _meta(s, p, data_state, gen, partial=None):
    """A checkpoint's metadata: the run, the history, where p stands, the Generators."""
    return {"run": s.run.description(), "history": p.history,
            "progress": {"epoch": p.epoch, "batch": p.batch,
                         **({"partial": partial} if partial else {})},
            "rng": {"model": None if gen is None else gen.bit_generator.state, "data": data_state}}


def _save(s, p, data_state, partial=None):
    """checkpoint.npz, then metrics.jsonl: where p stands; ``partial`` for a mid-epoch stop."""
    meta = _meta(s, p, data_state, getattr(s.model, "rng", None), partial)
    checkpoint.save(s.run.dir / folder.CHECKPOINT, s.model, s.optimizer, meta)
    folder.write_metrics(s.run.dir, p.history)
    s.saved_at = _where(p)


def _where(p):
    """Where a checkpoint of p stands: 'end of epoch 3', or 'epoch 4, after batch 20'."""
    return f"epoch {p.epoch + 1}, after batch {p.batch}" if p.batch else f"end of epoch {p.epoch}"


def _diverged(s, what):
    """The TrainingDiverged to raise: what happened, what is kept, what to try."""
    d = s.run.dir
    kept = (f"the last good checkpoint ({s.saved_at}) is kept in {d}" if s.saved_at
            else f"no checkpoint had been saved yet in {d}")
    also = ", or a KL warm-up (--warmup 10)" if hasattr(s.model, "kl_weight") else ""
    return TrainingDiverged(
        f"training diverged: {what}; {kept}, nothing was saved after it. Try a lower learning "
        f"rate (e.g. --lr {s.run.train.lr / 10:g}), check that the data lie in [0, 1]{also}; "
        f"then `minivae train --resume --out {d} --lr ...`")


def _stopped(s, signals, how, signum=None):
    """The TrainingInterrupted to raise, saying what was kept and how to go on."""
    d = s.run.dir
    if how == "saved" and s.saved_at:
        kept = f"stopped and saved a checkpoint ({s.saved_at}) in {d}"
    elif s.saved_at:
        kept = f"stopped at once; the last checkpoint ({s.saved_at}) is kept in {d}"
    else:
        kept = f"stopped at once; no checkpoint was saved yet in {d}"
    return TrainingInterrupted(f"{kept}; continue with `minivae train --resume --out {d}`",
                               signum or signals.requested or signal.SIGINT)


def _finite(model):
    return all(all_finite(p.reshape(-1)) for p in model.params.values())


def _summary(row, epochs):
    """One line per epoch: 'epoch 3/30  train 91.2 (recon 70.1, kl 21.1)  test 93.0  2.1 s'."""
    terms = ", ".join(f"{k[6:]} {v:.4g}" for k, v in row.items()
                      if k.startswith("train_") and k != "train_loss")
    s = f"epoch {row['epoch']}/{epochs}  train {row['train_loss']:.4g}"
    s += f" ({terms})" if terms else ""
    s += f"  test {row['test_loss']:.4g}"
    s += f"  valid {row['valid_loss']:.4g}" if "valid_loss" in row else ""
    s += f"  {row['epoch_seconds']:.1f} s"
    return s + (f", {row['threads']} BLAS thread{'s' * (row['threads'] > 1)}"
                if "threads" in row else "")
