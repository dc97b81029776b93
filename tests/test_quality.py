"""The sample-quality score: its classifier gradient-checked and trained with fit, and the score
0 for samples of the reference distribution, larger for others, with bad input refused."""

import numpy as np
import pytest
from helpers import TOL_CHAIN

from minivae.errors import InputError
from minivae.gradcheck import check_model
from minivae.optim import Adam
from minivae.quality import FeatureClassifier, median_scale, sample_mmd
from minivae.train import fit


def blobs(n, rng, shift=0.0):
    """Two classes in 6 dimensions: y = 0 around -1, y = 1 around +1 (moved by ``shift``)."""
    y = rng.integers(0, 2, n)
    x = (2.0 * y[:, None] - 1 + shift + 0.5 * rng.standard_normal((n, 6))).astype(np.float32)
    return x, y


def test_classifier_gradient():
    rng = np.random.default_rng(0)
    clf = FeatureClassifier(6, 3, hidden=(5, 4), rng=0, dtype=np.float64)
    xy = clf.rows(rng.standard_normal((5, 6)), np.array([0, 1, 2, 1, 0]))
    errors = check_model(clf, xy)
    assert max(errors.values()) < TOL_CHAIN, errors


def test_classifier_trains_with_fit_and_the_score_separates_distributions():
    rng = np.random.default_rng(1)
    x, y = blobs(600, rng)
    clf = FeatureClassifier(6, 2, hidden=(16, 8), rng=0)
    history = fit(clf, clf.rows(x, y), Adam(clf.params, lr=1e-2), 5, 50, rng=2)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    x_test, y_test = blobs(400, rng)
    assert (clf.predict(x_test) == y_test).mean() > 0.95
    assert clf.features(x_test).shape == (400, 8)
    ref, same = blobs(400, rng)[0], blobs(400, rng)[0]
    score, se = sample_mmd(clf, same, ref)
    assert abs(score) < 4 * se + 1e-6                          # the same distribution: 0
    moved, _ = sample_mmd(clf, blobs(400, rng, shift=0.7)[0], ref)
    assert moved > score + 4 * se                              # another one: clearly more
    assert median_scale(clf.features(ref)) > 0


def test_quality_refuses_bad_input():
    clf = FeatureClassifier(6, 2, hidden=(4,), rng=0)
    x = np.zeros((10, 6), np.float32)
    for call, words in [
        (lambda: clf.rows(x, np.arange(10)), ("FeatureClassifier.rows", "0..1")),
        (lambda: clf.rows(x, np.zeros(9, int)), ("FeatureClassifier.rows", "10 labels")),
        (lambda: clf.rows(x, np.zeros(10)), ("FeatureClassifier.rows", "float64")),
        (lambda: clf.loss(x), ("FeatureClassifier.loss", "xy")),
        (lambda: clf.features(x[:, :5]), ("FeatureClassifier.features", "(N, 6)")),
        (lambda: sample_mmd(clf, x[:3], x), ("sample_mmd", "at least 20")),
        (lambda: sample_mmd(clf, x, x, blocks=1), ("sample_mmd", "blocks")),
        (lambda: FeatureClassifier(6, hidden=()), ("FeatureClassifier", "hidden")),
    ]:
        with pytest.raises(InputError) as info:
            call()
        assert all(w in str(info.value) for w in words), str(info.value)
