"""The training loop: minibatch gradient descent over epochs, on arrays.

    for each epoch:      x_e = x, or x ~ Bernoulli(x) afresh (``binarize=True``)
                         a fresh shuffle of x_e
        for each batch:  loss = model.loss(batch);  model.backward();  optimizer.step(grads)

``fit`` is the whole loop; the lessons call it and so does ``minivae train``. Everything else
a long run needs (run folders, checkpoints, resuming, Ctrl-C, progress bars, a test loss each
epoch) wraps around it as callbacks (``minivae.run.trainer``), and never lives inside it.

A callback is any object with some of the methods ``epoch_begin(p)``, ``batch_begin(p)``,
``batch_end(p)``, ``epoch_end(p)``; each gets the ``Progress`` p, and may set ``p.stop``
to end the loop after the current batch.
"""

from dataclasses import dataclass, field

import numpy as np

from minivae.checks import check_array, check_count
from minivae.data.binarize import dynamic_binarize
from minivae.errors import InputError


@dataclass
class Progress:
    """Where a fit stands; callbacks read it, and may set ``stop``."""

    epochs: int                                   # epochs to reach
    batches: int                                  # batches per epoch
    epoch: int = 0                                # epochs finished
    batch: int = 0                                # batches finished in the current epoch
    sums: dict = field(default_factory=dict)      # this epoch's sums: loss * B, model.last terms
    seen: int = 0                                 # examples seen this epoch
    history: list = field(default_factory=list)   # one row per finished epoch: train_* means
    loss: float = float("nan")                    # the last batch's loss
    stop: bool = False                            # set by a callback: stop after this batch

    def add(self, loss, last, B):
        """Add one batch's mean loss and per-example terms (model.last, (B,) each) to sums."""
        self.loss, self.seen = loss, self.seen + B
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss * B
        for k, v in last.items():
            if k != "loss" and np.shape(v) == (B,):
                self.sums[k] = self.sums.get(k, 0.0) + float(np.sum(v, dtype=np.float64))

    def means(self):
        """This epoch's means so far: {"train_loss": ..., "train_recon": ..., ...}."""
        return {f"train_{k}": v / self.seen for k, v in self.sums.items()}


def fit(model, x, optimizer, epochs, batch_size=128, rng=None, callbacks=(), *,
        binarize=False, progress=None):
    """Train ``model`` on the rows of x (N, D) for ``epochs`` passes; the history of train means.

    ``rng`` (a Generator or a seed) shuffles, and draws the binarization; ``progress`` (a
    Progress) continues a fit where it stopped, e.g. from a checkpoint.
    """
    x, rng, callbacks, p = _check_fit(model, x, optimizer, epochs, batch_size, rng, callbacks,
                                      progress)
    while p.epoch < epochs and not p.stop:
        _call(callbacks, "epoch_begin", p)
        if p.stop:
            break
        x_e = dynamic_binarize(x, rng) if binarize else x                 # (N, D)
        order = rng.permutation(len(x_e))                                 # (N,) a fresh shuffle
        while p.batch < p.batches and not p.stop:
            xb = x_e[order[p.batch * batch_size:(p.batch + 1) * batch_size]]   # (B, D)
            _call(callbacks, "batch_begin", p)
            model.zero_grad()
            loss = model.loss(xb)                                         # forward: batch mean
            model.backward()                                              # d loss / d params
            optimizer.step(model.grads)                                   # params -= ...
            p.add(loss, getattr(model, "last", {}), len(xb))
            p.batch += 1
            _call(callbacks, "batch_end", p)
        if p.batch == p.batches:                                          # a whole epoch
            p.history.append({"epoch": p.epoch + 1, **p.means()})
            p.epoch, p.batch, p.sums, p.seen = p.epoch + 1, 0, {}, 0
            _call(callbacks, "epoch_end", p)
    return p.history


class KLWarmup:
    """A callback: the KL weight rises linearly from 0 to 1 over the first ``epochs`` epochs.

        model.kl_weight = min(1, (batches done + 1) / (epochs * batches per epoch))
    """

    def __init__(self, model, epochs):
        self.model, self.epochs = model, check_count(epochs, "KLWarmup", "epochs")

    def batch_begin(self, p):
        done = p.epoch * p.batches + p.batch
        self.model.kl_weight = min(1.0, (done + 1) / (self.epochs * p.batches))


EVENTS = ("epoch_begin", "batch_begin", "batch_end", "epoch_end")


def _call(callbacks, event, p):
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(p)


def _check_fit(model, x, optimizer, epochs, batch_size, rng, callbacks, progress):
    """fit's arguments, checked once: (x, a Generator, the callbacks, a Progress)."""
    if not all(hasattr(model, m) for m in ("loss", "backward", "zero_grad", "grads")):
        raise InputError(f"fit: expected a model with loss, backward, zero_grad and grads, "
                         f"got {model!r}")
    if not model.grads:
        raise InputError(f"fit: expected a model with parameters to train; a "
                         f"{type(model).__name__} has none (fitted in closed form: model.fit(x))")
    if not callable(getattr(optimizer, "step", None)):
        raise InputError(f"fit: expected an optimizer with step(grads), got {optimizer!r}")
    if not (rng is None or isinstance(rng, (np.random.Generator, int, np.integer))):
        raise InputError(f"fit: expected rng to be a numpy Generator, an int seed or None, "
                         f"got {rng!r}")
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not any(hasattr(cb, event) for event in EVENTS):
            raise InputError(f"fit: expected callbacks with some of the methods {EVENTS}, "
                             f"got {cb!r}")
    check_array(x, "fit", ndim=2)
    epochs = check_count(epochs, "fit", "epochs", lo=0)
    batch_size = check_count(batch_size, "fit", "batch_size")
    batches = -(-len(x) // batch_size)                                    # the last may be short
    if progress is None:
        progress = Progress(epochs, batches)
    elif (not isinstance(progress, Progress) or progress.batches != batches
          or not 0 <= progress.batch < batches):
        raise InputError(f"fit: progress must be a Progress of {batches} batches per epoch "
                         f"(N={len(x)}, batch_size={batch_size}), stopped before its last "
                         f"batch, got {progress!r}")
    progress.epochs, progress.stop = epochs, False
    return x, np.random.default_rng(rng), callbacks, progress
