"""A validation split: the data a model is fitted on, and held-out data that chooses between
models (the epoch to keep, when to stop) without looking at the test set.

    binarized-mnist        its own files: train 50,000 / valid 10,000 (Larochelle & Murray 2011)
    mnist, fashion-mnist   the first 50,000 of the training images / the last 10,000
    sprites                every sixth image of the (grid-ordered) training split held out,
                           so that every shape, scale and position is in both parts
"""

import numpy as np

from .registry import get_info

HOLDOUT = 10000          # MNIST-sized training splits keep their last 10,000 for validation
EVERY = 6                # smaller, ordered ones hold out every sixth image


def train_valid(name, load):
    """(train, valid) Datasets of ``name``; ``load(name, split)`` reads a split."""
    info = get_info(name)
    if "valid" in info.splits:
        return load(name, "train"), load(name, "valid")
    full = load(name, "train")
    n = len(full.x)
    if n >= 6 * HOLDOUT:
        keep = np.arange(n) < n - HOLDOUT                           # the last HOLDOUT out
    else:
        keep = np.arange(n) % EVERY != EVERY - 1                    # every sixth out
    return _part(full, keep, "train"), _part(full, ~keep, "valid")


def _part(d, rows, split):
    """The rows of Dataset d where ``rows`` is True, as a Dataset of split ``split``."""
    pick = (lambda a: None if a is None else a[rows])
    return type(d)(d.x[rows], pick(d.y), d.image_shape, d.name, split, pick(d.factors),
                   d.factor_names)
