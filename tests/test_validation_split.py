"""The validation split (minivae/data/validation.py): disjoint from what a model is fitted on,
together the whole training split, and the sizes the papers use."""

import numpy as np
import pytest

from minivae import data
from tests.test_data import needs_mirror


def rows(x):
    return {r.tobytes() for r in x}


def test_sprites_holds_out_every_sixth_image_and_covers_every_factor_value():
    full = data.load("sprites", "train")
    fit_on, valid = data.train_valid("sprites")
    assert (fit_on.split, valid.split) == ("train", "valid")
    assert len(fit_on) + len(valid) == len(full) and len(valid) == len(full) // 6
    np.testing.assert_array_equal(valid.x, full.x[5::6])
    np.testing.assert_array_equal(fit_on.factors, np.delete(full.factors, slice(5, None, 6), 0))
    for f in range(full.factors.shape[1]):                     # every value of every factor
        assert set(np.unique(valid.factors[:, f])) == set(np.unique(full.factors[:, f]))
    assert valid.factor_names == full.factor_names


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_keeps_its_last_10000_training_images_for_validation(name):
    needs_mirror(name)
    full = data.load(name, "train")
    fit_on, valid = data.train_valid(name)
    assert (len(fit_on), len(valid)) == (50000, 10000)
    np.testing.assert_array_equal(fit_on.x, full.x[:50000])
    np.testing.assert_array_equal(valid.y, full.y[50000:])


def test_binarized_mnist_uses_its_own_validation_file():
    needs_mirror("binarized-mnist")
    fit_on, valid = data.train_valid("binarized-mnist")
    assert (len(fit_on), len(valid)) == (50000, 10000)
    np.testing.assert_array_equal(valid.x, data.load("binarized-mnist", "valid").x)
    assert not rows(valid.x[:1000]) & rows(fit_on.x)            # no image in both


def test_an_unknown_dataset_is_refused():
    with pytest.raises(data.UnknownDatasetError, match="mnist"):
        data.train_valid("cifar")
