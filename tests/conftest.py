"""Shared test setup: import minivae from this checkout; keep tests out of real data folders."""

import os
import sys
from pathlib import Path

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
