"""Callbacks for minivae.train.fit that know nothing of run folders: a lesson can use them too.

    StopOnSignal   Ctrl-C or SIGTERM (stopping.StopSignals) sets p.stop: fit ends after the batch
    ProgressBar    a tqdm bar per epoch, with the running means
    TestLoss       the loss on a test set after each epoch, into that epoch's row of history
"""

import contextlib
import sys

import numpy as np
from tqdm import tqdm

from minivae.train import Progress

EVAL_BATCH = 1000          # rows per forward pass when computing a test loss


class StopOnSignal:
    """Ctrl-C or SIGTERM (the flag of stopping.StopSignals): fit stops after this batch, or
    before the next epoch if the signal came between two."""

    def __init__(self, signals):
        self.signals = signals

    def batch_end(self, p):
        if self.signals.requested:
            p.stop = True

    epoch_begin = batch_end


class ProgressBar:
    """A tqdm bar per epoch, with the running means every 10 batches (on a terminal only)."""

    def __init__(self, verbose):
        self.verbose, self.bar = verbose, None

    def epoch_begin(self, p):
        self.bar = tqdm(total=p.batches, initial=p.batch, desc=f"epoch {p.epoch + 1}/{p.epochs}",
                        unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True,
                        disable=None if self.verbose else True)   # None: only on a terminal

    def batch_end(self, p):
        self.bar.update(1)
        if p.batch % 10 == 1:
            self.bar.set_postfix({k[6:]: f"{v:.4g}" for k, v in p.means().items()}, refresh=False)

    def epoch_end(self, p):
        self.close()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TestLoss:
    """After each epoch, the loss on x_test (M, D) into the epoch's row of history (test_loss,
    test_recon, ...): one z sampled per example from a Generator fixed for that epoch (seed),
    with kl_weight 1. A GAN's is its discriminator's loss on the test images and as many
    fakes (test_loss, test_d_real, test_d_fake): a D that learns the training set by heart
    scores worse on it. ``prefix`` "valid_": the same on the validation set (valid_loss, ...)."""

    __test__ = False                   # not a pytest test class

    def __init__(self, model, x_test, seed, prefix="test_"):
        self.model, self.x_test, self.seed, self.prefix = model, x_test, seed, prefix

    def epoch_end(self, p):
        with evaluation_mode(self.model, self.seed, p.epoch):
            p.history[-1].update(mean_terms(self.model, self.x_test, self.prefix))


def mean_terms(model, x, prefix):
    """{prefix + "loss": the mean loss over x, prefix + k: the mean of model.last[k]}; the
    loss is ``model.loss``, a GAN's ``d_loss``."""
    p = Progress(epochs=0, batches=0)
    loss = getattr(model, "d_loss", None) or model.loss
    batch = max(1, EVAL_BATCH // getattr(model, "k", 1))   # an IWAE decodes k rows an example
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        p.add(loss(xb), getattr(model, "last", {}), len(xb))
    return {prefix + k: v / p.seen for k, v in p.sums.items()}


@contextlib.contextmanager
def evaluation_mode(model, seed, epoch):
    """kl_weight 1, and the model's Generator replaced by one fixed by (seed, epoch); both
    restored afterwards."""
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
