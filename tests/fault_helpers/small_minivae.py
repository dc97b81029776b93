"""`python small_minivae.py [--pace S] [--sigint-in-numba WHERE] ARGS...` is `python -m minivae
ARGS...`, plus a data set.

The fault tests start this script in a subprocess, kill it, and start it again. It runs the real
command line (signal handlers, atomic writes, the run folder's lock, exit codes) with two
additions that exist only in the processes this script starts (the library has no switch for
either):
  - a data set `small-sprites` (--data small-sprites): every 16th sprites image (432 train,
    48 test), shrunk to 8x8 pixels by averaging 4x4 blocks, so that an epoch takes
    milliseconds, also with NUMBA_DISABLE_JIT=1;
  - --pace S (before the command): sleep S seconds before each optimizer step, so that an epoch
    lasts long enough for a test to stop it at a random point of its choosing. The arithmetic
    is unchanged: parameters come out bit for bit the same.
  - --sigint-in-numba WHERE (before the command): the process sends itself SIGINT at the moment
    a Ctrl-C is most harmful, while a jitted call runs Python code (numba's _numba_unpickle, as
    it does to hand arrays back), so that the KeyboardInterrupt is raised inside that call.
    WHERE = evaluate: once evaluation begins; fit: twice, once training begins (the first
    Ctrl-C asks training to stop after the batch, the second stops it at once). With
    NUMBA_DISABLE_JIT=1 nothing is jitted: evaluate's signal comes from a timer, and fit's
    two from inside an optimizer step, one after the other has been handled (from a timer,
    a busy machine could let the batch end between them).
"""

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:                  # a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

import numpy as np

from minivae import data, optim
from minivae.data import registry

NAME, EVERY, BLOCK = "small-sprites", 16, 4
LOAD = data.load                               # the library's own


def small_load(name, split="train"):
    """data.load, plus NAME: sprites, every EVERY-th image, BLOCK x BLOCK blocks averaged."""
    if name != NAME:
        return LOAD(name, split)
    d = LOAD("sprites", split)
    keep = slice(None, None, EVERY)
    side = 32 // BLOCK
    x = d.x[keep].reshape(-1, side, BLOCK, side, BLOCK).mean(axis=(2, 4))   # (N, 8, 8)
    return dataclasses.replace(d, x=np.ascontiguousarray(x.reshape(len(x), -1)),
                               y=d.y[keep].copy(), factors=d.factors[keep].copy(),
                               name=NAME, image_shape=(side, side))


def info():
    """NAME's entry for minivae.data.DATASETS."""
    sprites = registry.DATASETS["sprites"]
    return dataclasses.replace(
        sprites, name=NAME, description="sprites, every 16th image, 8x8 (tests only)",
        image_shape=(32 // BLOCK, 32 // BLOCK),
        splits={k: -(-n // EVERY) for k, n in sprites.splits.items()})


def install():
    """Register NAME with minivae.data, in this process only."""
    registry.DATASETS[NAME] = info()
    data.load = small_load


def pace(seconds):
    """Sleep ``seconds`` before every optimizer step (SGD and Adam), in this process."""
    for cls in (optim.SGD, optim.Adam):
        def step(self, grads, _step=cls.step):
            time.sleep(seconds)
            return _step(self, grads)
        cls.step = step


def sigint_in_numba(where):
    """Arm, when ``where`` ("evaluate" or "fit") begins, SIGINTs sent from inside a jitted call."""
    from numba.core import serialize

    from minivae import evaluate, train
    signals = {"evaluate": 1, "fit": 2}[where]
    state = {"armed": False, "left": signals}
    unpickle = serialize._numba_unpickle

    def spy(*args):                     # numba calls this from compiled code, mid-call
        if state["armed"] and state["left"]:
            state["left"] -= 1
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)           # the handler runs here, inside the jitted call
        return unpickle(*args)
    serialize._numba_unpickle = spy     # numba looks it up on its first call, after this

    def send():                         # without the JIT, evaluate: from a timer
        os.kill(os.getpid(), signal.SIGINT)

    def in_a_step(cls):                 # without the JIT, fit: from the main thread, mid-batch
        def step(self, grads, _step=cls.step):
            while state["armed"] and state["left"]:
                state["left"] -= 1
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)        # the handler runs here: the first asks for a stop
            return _step(self, grads)   # after the batch, the second raises at once
        cls.step = step

    def arm(function):
        def armed(*args, **kwargs):
            if os.environ.get("NUMBA_DISABLE_JIT", "0") == "0":
                state["armed"] = True
            elif where == "evaluate":
                state["armed"] = True
                threading.Timer(0.3, send).start()
            else:
                threading.Timer(0.3, state.update, kwargs={"armed": True}).start()
                for cls in (optim.SGD, optim.Adam):
                    in_a_step(cls)
            return function(*args, **kwargs)
        return armed
    module = evaluate if where == "evaluate" else train
    setattr(module, where, arm(getattr(module, where)))


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--pace"]:
        pace(float(argv[1]))
        argv = argv[2:]
    if argv[:1] == ["--sigint-in-numba"]:
        sigint_in_numba(argv[1])
        argv = argv[2:]
    install()
    from minivae.cli import main
    sys.exit(main(argv))
