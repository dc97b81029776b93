"""Small slices of the real data sets, for command-line runs that take seconds (also with
NUMBA_DISABLE_JIT=1): `minivae` goes through minivae.data.load as usual; only the arrays it
hands back are smaller. And the sample-quality classifier, trained once per module."""

import dataclasses
import hashlib

import pytest

from minivae import data
from minivae.run import generative

# The quality classifier for every(16)'s 432 training images: full-batch steps, since without
# the JIT a step costs the same at any batch size (Adam's loop over ~16,000 weights). It learns
# its training images (accuracy ~1) and tells about half of the 48 test images' shapes apart
# (chance: a third); tests/test_sample_quality.py checks the shipped one on the full data.
SMALL_CLASSIFIER = {"hidden": (16,), "epochs": 40, "batch_size": 432, "lr": 3e-2}


def every(step):
    """A fixture: minivae.data.load keeps every ``step``-th sprites image (all shapes and
    positions), and the labels and factors that go with them."""
    @pytest.fixture(scope="module", autouse=True)
    def _small_sprites():
        load = data.load

        def small(name, split="train"):
            d = load(name, split)
            if name != "sprites":
                return d
            keep = slice(None, None, step)
            return dataclasses.replace(d, x=d.x[keep].copy(), y=d.y[keep].copy(),
                                       factors=d.factors[keep].copy())
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(data, "load", small)
            yield
    return _small_sprites


def quality_classifier(**settings):
    """A fixture: generative.CLASSIFIER takes ``settings``, and the classifier is trained once
    per module for each training set and kept. minivae trains the same one (seed 0) at every
    evaluation of a data set, so keeping it changes no number, only the time; the tests of
    that sameness call the function itself (generative.feature_classifier.__wrapped__)."""
    @pytest.fixture(scope="module", autouse=True)
    def _quality_classifier():
        train_one = generative.feature_classifier
        trained = {}

        def once(train):
            key = None if train.y is None else tuple(
                hashlib.sha256(a.tobytes()).hexdigest() for a in (train.x, train.y))
            if key not in trained:
                trained[key] = train_one(train)
            return trained[key]
        once.__wrapped__ = train_one
        with pytest.MonkeyPatch.context() as mp:
            for name, value in settings.items():
                mp.setitem(generative.CLASSIFIER, name, value)
            mp.setattr(generative, "feature_classifier", once)
            yield
    return _quality_classifier
