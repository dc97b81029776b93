"""`python small_minivae.py [--pace S] ARGS...` is `python -m minivae ARGS...`, plus a data set.

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
"""

import dataclasses
import sys
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


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--pace"]:
        pace(float(argv[1]))
        argv = argv[2:]
    install()
    from minivae.cli import main
    sys.exit(main(argv))
