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

Stopping (Ctrl-C or SIGTERM, see stopping.py): the first signal lets the current batch
finish, then saves a mid-epoch checkpoint (parameters, optimizer, the model Generator, the data
Generator as it was at the start of the epoch, and the batch index), so a resumed run replays
the same shuffle from the next batch on. A second signal stops at once and keeps the checkpoint
already on disk. A KeyboardInterrupt raised without the handler (another thread, a test) is
treated like the second: the last checkpoint stands. A process killed outright (`kill -9`, a
power cut) loses only the epoch in progress: every file is replaced atomically. Either way,
resuming ends bit-identical.

Divergence: a NaN or infinite loss, or a NonFiniteError from inside the model or the optimizer,
stops training with TrainingDiverged; nothing is saved after the last good checkpoint.

The run folder (config.json, checkpoint.npz, metrics.jsonl, the lock) is runfolder.py's.
"""

import contextlib
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minivae import checkpoint as ckpt
from minivae import data
from minivae import runfolder as rf
from minivae.errors import InputError, MinivaeError, NonFiniteError
from minivae.kernels.checks import all_finite
from minivae.models import build
from minivae.optim import SGD, Adam
from minivae.stopping import StopSignals, TrainingInterrupted

EVAL_BATCH = 1000          # rows per forward pass when computing a test loss


class TrainingDiverged(MinivaeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# ---- the loop ----

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
    run = rf.read_config(run_dir)
    path = run_dir / rf.CHECKPOINT
    say = (lambda msg: tqdm.write(msg, file=sys.stderr)) if verbose else (lambda msg: None)
    with rf.locked(run_dir):
        rf.remove_leftovers(run_dir)                   # temporary files of a killed process
        saved = ckpt.load(path) if path.exists() else None
        if saved is not None:
            ckpt.check_size(saved[0], saved[2], path)  # before loading any data
            run = saved[2]["run"]                      # the checkpoint's own record wins
        cfg = rf.train_settings(run, path if saved is not None else run_dir / rf.CONFIG)
        cfg.epochs = cfg.epochs if epochs is None else epochs
        cfg.lr = cfg.lr if lr is None else lr
        run = {**run, "train": asdict(cfg.check())}
        done = saved[2]["progress"]["epoch"] if saved is not None else 0
        if cfg.epochs < done:
            raise InputError(f"epochs={epochs} is fewer than the {done} epochs this run has "
                             "already trained")
        rf.write_config(run_dir, run)
        if datasets is None:
            datasets = rf.load_datasets(run["data"])
        trainer = _Trainer(run_dir, run, cfg, saved, datasets, say, verbose)
        with StopSignals(say) as trainer.stop:
            return trainer.run()


class _Trainer:
    """The state of one training session; ``run()`` does the epochs."""

    def __init__(self, run_dir, run, cfg, saved, datasets, say, verbose):
        self.dir, self.run_desc, self.cfg, self.say, self.verbose = run_dir, run, cfg, say, verbose
        self.path, self.stop = run_dir / rf.CHECKPOINT, None
        train_ds, test_ds = datasets
        if train_ds.name != run["data"]:
            raise InputError(f"the run was made for data {run['data']!r}, got {train_ds.name!r}")
        model_rng, self.data_rng = _seeds(cfg.seed)
        if saved is None:
            try:
                self.model = build(run["model"], rng=model_rng)
            except InputError as e:
                raise ckpt.CheckpointError(f"{run_dir / rf.CONFIG}: cannot build the model it "
                                           f"describes: {e}") from None
            self.history, self.epoch, self.batch, self.partial = [], 0, 0, None
        else:
            params, _, meta = saved
            self.model = ckpt.restore_model(params, meta, self.path, rng=model_rng)
            prog = meta["progress"]
            self.history, self.epoch, self.batch = meta["history"], prog["epoch"], prog["batch"]
            self.partial = prog.get("partial")
        dtype = np.dtype(getattr(self.model, "dtype", np.float32))
        self.x = np.ascontiguousarray(train_ds.x, dtype=dtype)                # (N, D)
        self.x_test = np.ascontiguousarray(rf.eval_x(test_ds, run), dtype=dtype)  # (M, D)
        for name, x in (("training", self.x), ("test", self.x_test)):
            if not np.isfinite(x).all():
                raise NonFiniteError(f"the {name} data contain NaN or infinity")
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
        rf.write_metrics(self.dir, self.history)
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
        rf.write_metrics(self.dir, self.history)       # repair a file a crash left behind
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
                if self.stop.requested and self.epoch < cfg.epochs:
                    raise self._stopped("saved")
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:                      # a second Ctrl-C, or no handler
            raise self._stopped("at once") from None
        return self.history

    def _stopped(self, how):
        """The TrainingInterrupted to raise, saying what was kept and how to go on."""
        if how == "saved":
            kept = f"stopped and saved a checkpoint ({self.saved_at}) in {self.dir}"
        elif self.saved_at:
            kept = f"stopped at once; the last checkpoint ({self.saved_at}) is kept in {self.dir}"
        else:
            kept = f"stopped at once; no checkpoint was saved yet in {self.dir}"
        return TrainingInterrupted(f"{kept}; continue with `minivae train --resume --out "
                                   f"{self.dir}`", self.stop.requested or signal.SIGINT)

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
                    self.opt.step(model.grads)
                except NonFiniteError as err:         # a layer, loss or gradient overflowed
                    self._diverged(f"a NaN or infinity appeared inside the model {where} ({err})")
                _add(sums, model, loss, len(xb))
                bar.update(1)
                if b % 10 == 0:
                    n = min((b + 1) * cfg.batch_size, len(x))
                    bar.set_postfix({k: f"{v / n:.4g}" for k, v in sums.items()}, refresh=False)
                if self.stop.requested and b + 1 < nb:
                    if not _finite(model):
                        self._diverged(f"the parameters became NaN or infinite {where}")
                    self.batch = b + 1
                    partial = {"sums": sums, "seconds": seconds + time.perf_counter() - t0}
                    self._save(start_state, {"partial": partial})
                    raise self._stopped("saved")
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
