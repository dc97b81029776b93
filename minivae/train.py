"""The training loop: minibatch gradient descent over epochs, on arrays.

    for each epoch:      x_e = x, or x ~ Bernoulli(x) afresh (``binarize=True``)
                         a fresh shuffle of x_e
        for each batch:  loss = model.loss(batch);  model.backward();  optimizer.step(grads)

``fit`` is the whole loop; the lessons call it and so does ``minivae train``. Everything else
a long run needs (run folders, checkpoints, resuming, Ctrl-C, progress bars, a test loss each
epoch) wraps around it as callbacks (``minivae.run.trainer``), and never lives inside it.
A GAN trains two networks on two objectives in turn: ``fit_gan`` is the same loop with the
discriminator's step and then the generator's in place of the one step.

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


def fit_gan(gan, x, d_optimizer, g_optimizer, epochs, batch_size=64, rng=None, callbacks=(), *,
            progress=None):
    """Train a GAN on the rows of x (N, D): per batch a discriminator step, then a generator
    step (Goodfellow et al. 2014, Algorithm 1 with k = 1); the history of train means.

        D step:  d_loss(batch, B fresh z);  d_backward();  d_optimizer.step(D's grads)
        G step:  g_loss(B fresh z);         g_backward();  g_optimizer.step(G's grads)

    d_optimizer holds ``gan.discriminator.params``, g_optimizer ``gan.generator.params``;
    either may be None, which keeps that network fixed and trains the other alone. A history
    row holds train_loss (D's loss, -V(D, G): 2 log 2 at the equilibrium), train_g_loss,
    train_d_real and train_d_fake (D's mean probability of "real" on real and on generated
    rows). Callbacks as in ``fit``.
    """
    if d_optimizer is None and g_optimizer is None:
        raise InputError("fit_gan: expected an optimizer for the discriminator, the generator "
                         "or both, got None for both")
    x, rng, callbacks, p = _check_fit(gan, x, d_optimizer or g_optimizer, epochs, batch_size,
                                      rng, callbacks, progress, "fit_gan", GAN_METHODS)
    for opt, net in ((d_optimizer, "discriminator"), (g_optimizer, "generator")):
        if opt is not None:
            _check_holds(opt, getattr(gan, net), net)
    while p.epoch < epochs and not p.stop:
        _call(callbacks, "epoch_begin", p)
        if p.stop:
            break
        order = rng.permutation(len(x))                                   # (N,) a fresh shuffle
        while p.batch < p.batches and not p.stop:
            xb = x[order[p.batch * batch_size:(p.batch + 1) * batch_size]]   # (B, D)
            _call(callbacks, "batch_begin", p)
            gan.zero_grad()
            d_loss = gan.d_loss(xb)                                       # B real, B fake
            if d_optimizer is not None:
                gan.d_backward()
                d_optimizer.step(gan.discriminator.grads)                 # D's parameters only
            if g_optimizer is not None:
                gan.zero_grad()
                gan.g_loss(len(xb))                                       # B fresh fakes
                gan.g_backward()                                          # through D, into G
                g_optimizer.step(gan.generator.grads)                     # G's parameters only
            p.add(d_loss, gan.last, len(xb))
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
        if not hasattr(model, "kl_weight"):
            raise InputError(f"KLWarmup: expected a model with a KL term to weight (a VAE), "
                             f"got {type(model).__name__}")
        self.model, self.epochs = model, check_count(epochs, "KLWarmup", "epochs")

    def batch_begin(self, p):
        done = p.epoch * p.batches + p.batch
        self.model.kl_weight = min(1.0, (done + 1) / (self.epochs * p.batches))


EVENTS = ("epoch_begin", "batch_begin", "batch_end", "epoch_end")
GAN_METHODS = ("d_loss", "d_backward", "g_loss", "g_backward", "generator", "discriminator",
               "zero_grad", "grads")


def _call(callbacks, event, p):
    for cb in callbacks:
        method = getattr(cb, event, None)
        if method is not None:
            method(p)


def _check_fit(model, x, optimizer, epochs, batch_size, rng, callbacks, progress, who="fit",
               methods=("loss", "backward", "zero_grad", "grads")):
    """fit's arguments, checked once: (x, a Generator, the callbacks, a Progress)."""
    if not all(hasattr(model, m) for m in methods):
        raise InputError(f"{who}: expected a model with {', '.join(methods[:-1])} and "
                         f"{methods[-1]}, got {model!r}")
    if not model.grads:
        raise InputError(f"{who}: expected a model with parameters to train; a "
                         f"{type(model).__name__} has none (fitted in closed form: model.fit(x))")
    if not callable(getattr(optimizer, "step", None)):
        raise InputError(f"{who}: expected an optimizer with step(grads), got {optimizer!r}")
    if not (rng is None or isinstance(rng, (np.random.Generator, int, np.integer))):
        raise InputError(f"{who}: expected rng to be a numpy Generator, an int seed or None, "
                         f"got {rng!r}")
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not any(hasattr(cb, event) for event in EVENTS):
            raise InputError(f"{who}: expected callbacks with some of the methods {EVENTS}, "
                             f"got {cb!r}")
    check_array(x, who, ndim=2)
    epochs = check_count(epochs, who, "epochs", lo=0)
    batch_size = check_count(batch_size, who, "batch_size")
    batches = -(-len(x) // batch_size)                                    # the last may be short
    if progress is None:
        progress = Progress(epochs, batches)
    elif (not isinstance(progress, Progress) or progress.batches != batches
          or not 0 <= progress.batch < batches):
        raise InputError(f"{who}: progress must be a Progress of {batches} batches per epoch "
                         f"(N={len(x)}, batch_size={batch_size}), stopped before its last "
                         f"batch, got {progress!r}")
    progress.epochs, progress.stop = epochs, False
    return x, np.random.default_rng(rng), callbacks, progress


def _check_holds(optimizer, net, net_name):
    """InputError unless ``optimizer`` steps exactly the arrays of ``net.params``."""
    held = getattr(optimizer, "params", None)
    if (not callable(getattr(optimizer, "step", None)) or not isinstance(held, dict)
            or held.keys() != net.params.keys()
            or any(held[k] is not v for k, v in net.params.items())):
        raise InputError(f"fit_gan: expected {net_name[0]}_optimizer to be an optimizer of the "
                         f"{net_name}'s parameters, e.g. Adam(gan.{net_name}.params), got "
                         f"{optimizer!r}")
