"""Learning-rate schedules: the step size as a function of the epoch, and the fit callback that
sets it.

    constant           lr_e = lr
    step               lr_e = lr * gamma^floor(e / every)
    cosine             lr_e = lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2,   e = 0..E-1
    burda2015          lr_e = lr * 10^(-i/7) in stage i, which lasts 3^i epochs, i = 0..7:
                       1 + 3 + 9 + ... + 2187 = 3280 epochs in all (Burda, Grosse &
                       Salakhutdinov 2015, section 5, with lr = 1e-3); after the last stage
                       the rate of stage 7 stays

e counts epochs from 0. A schedule is a pure function of e, so a run that stops and resumes
gets the same step sizes as one that never stopped.

    with fit:  fit(model, x, opt, epochs, callbacks=[LearningRate(opt, burda2015(1e-3))])
"""

import math

from minivae.checks import check_count
from minivae.errors import InputError

BURDA_STAGES = 8                      # i = 0..7
SCHEDULES = ("constant", "step", "cosine", "burda2015")


def _rate(lr, who):
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
            lr > 0 and math.isfinite(lr)):
        raise InputError(f"{who}: expected a positive learning rate, got {lr!r}")
    return float(lr)


def constant(lr):
    lr = _rate(lr, "constant")
    return lambda e: lr


def step(lr, every, gamma=0.1):
    """lr * gamma^floor(e / every)."""
    lr, every = _rate(lr, "step"), check_count(every, "step", "every", what=" (epochs)")
    if not (0 < gamma <= 1):
        raise InputError(f"step: expected 0 < gamma <= 1, got {gamma!r}")
    return lambda e: lr * gamma ** (e // every)


def cosine(lr, epochs, lr_min=0.0):
    """From lr at e = 0 down to lr_min at e = epochs, half a cosine; lr_min after."""
    lr, epochs = _rate(lr, "cosine"), check_count(epochs, "cosine", "epochs")
    if not (0 <= lr_min <= lr):
        raise InputError(f"cosine: expected 0 <= lr_min <= lr, got {lr_min!r}")
    return lambda e: lr_min + (lr - lr_min) * (1 + math.cos(math.pi * min(e, epochs) / epochs)) / 2


def burda_stage(e):
    """The stage i of epoch e: the first 3^0 epochs are stage 0, the next 3^1 stage 1, ..."""
    i, end = 0, 1
    while e >= end and i < BURDA_STAGES - 1:
        i += 1
        end += 3 ** i
    return i


def burda2015(lr=1e-3):
    """lr * 10^(-i/7) in stage i (3^i epochs); 3280 epochs in all."""
    lr = _rate(lr, "burda2015")
    return lambda e: lr * 10 ** (-burda_stage(e) / 7)


BURDA_EPOCHS = sum(3 ** i for i in range(BURDA_STAGES))          # 3280


def schedule(name, lr, epochs, *, every=None, gamma=0.1, lr_min=0.0):
    """The schedule called ``name`` (one of SCHEDULES) for a run of ``epochs`` epochs."""
    if name == "constant":
        return constant(lr)
    if name == "step":
        return step(lr, every if every is not None else max(1, epochs // 3), gamma)
    if name == "cosine":
        return cosine(lr, epochs, lr_min)
    if name == "burda2015":
        return burda2015(lr)
    raise InputError(f"unknown learning-rate schedule {name!r}; expected one of "
                     f"{', '.join(SCHEDULES)}")


class LearningRate:
    """A fit callback: before each epoch e, optimizer.lr = schedule(e); the epoch's row of the
    history records it as ``lr``."""

    def __init__(self, optimizer, schedule):
        if not callable(schedule):
            raise InputError(f"LearningRate: expected a schedule, a function of the epoch, got "
                             f"{type(schedule).__name__}")
        self.optimizer, self.schedule = optimizer, schedule

    def epoch_begin(self, p):
        self.optimizer.lr = _rate(self.schedule(p.epoch), "LearningRate")

    def epoch_end(self, p):
        p.history[-1]["lr"] = self.optimizer.lr
