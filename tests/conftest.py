"""Shared test setup: import minivae from this checkout; keep tests out of real data folders."""

import os
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

SHARED_MIRROR = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _data_env(tmp_path_factory):
    """MINIVAE_DATA_MIRROR -> <repo>/../shared/data if unset and present; MINIVAE_DATA_DIR -> temp.

    Tests read real datasets in place from the mirror and never write into the repo's data/.
    """
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("MINIVAE_DATA_MIRROR") and SHARED_MIRROR.is_dir():
            mp.setenv("MINIVAE_DATA_MIRROR", str(SHARED_MIRROR))
        if not os.environ.get("MINIVAE_DATA_DIR"):
            mp.setenv("MINIVAE_DATA_DIR", str(tmp_path_factory.mktemp("minivae-data")))
        yield


@pytest.fixture(autouse=True)
def _one_numba_thread():
    """The test models are tiny: numba's thread pool would cost more than it saves, and much
    more on a busy machine."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="module")
def toy():
    """(train, test) Datasets of 16-pixel images in [0, 1]: 200 and 40 examples."""
    from minivae.data import Dataset
    x = np.random.default_rng(0).random((240, 16), dtype=np.float32)
    return (Dataset(x[:200].copy(), None, (4, 4), "toy", "train"),
            Dataset(x[200:].copy(), None, (4, 4), "toy", "test"))
