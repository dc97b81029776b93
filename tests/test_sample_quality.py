"""The sample-quality score as `minivae evaluate` computes it, on the full sprites data with
the classifier minivae ships: the classifier tells the shapes apart, real images score 0
within their standard error, and a generator that draws only one shape (a mode collapse)
scores far more. Without the JIT the classifier alone takes minutes: skipped there; the small
runs of test_cli_gan.py and test_cli_wae.py check the rest both ways."""

import os

import numpy as np
import pytest
from helpers import Replay
from small_data import quality_classifier

from minivae import data
from minivae.run import generative

JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")
pytestmark = pytest.mark.skipif(not JIT, reason="the classifier trains on 6,912 images: "
                                                "minutes as plain Python")
_shipped_classifier_once = quality_classifier()


def test_real_images_score_zero_and_a_collapse_to_squares_far_more():
    train, test = data.load("sprites", "train"), data.load("sprites", "test")
    rng = np.random.default_rng(0)
    real = generative.sample_quality(Replay(train.x[rng.permutation(len(train.x))]), test.x,
                                     train, rng, test.y)
    assert real["classifier_accuracy"] > 0.7                   # chance: 1/3 (measured 0.79)
    assert real["quality_n"] == len(test.x) == 768
    assert abs(real["sample_mmd"]) < 4 * real["sample_mmd_se"] + 1e-6
    squares = train.x[train.y == 0]
    collapse = generative.sample_quality(Replay(squares[rng.permutation(len(squares))]), test.x,
                                         train, rng, test.y)
    se = max(collapse["sample_mmd_se"], real["sample_mmd_se"])
    assert collapse["sample_mmd"] > real["sample_mmd"] + 8 * se
    assert collapse["sample_mmd"] > collapse["sample_mmd_real"] + 8 * se
