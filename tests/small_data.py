"""Small slices of the real data sets, for command-line runs that take seconds (also with
NUMBA_DISABLE_JIT=1): `minivae` goes through minivae.data.load as usual; only the arrays it
hands back are smaller."""

import dataclasses

import pytest

from minivae import data


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
