"""Where dataset files live: the data folder (a cache) and an optional read-only mirror.

data folder, first match wins:
  1. $MINIVAE_DATA_DIR, if set;
  2. <repo>/data in a source checkout (this package sits in a folder whose parent holds
     pyproject.toml and data/README.md); git ignores everything there but README.md;
  3. $XDG_CACHE_HOME/minivae, or ~/.cache/minivae, for an installed package.
Files are stored as <data folder>/<dataset>/<file name>.

$MINIVAE_DATA_MIRROR=<folder> names a folder laid out the same way (mnist/, fashion-mnist/,
binarized-mnist/). Its files are read in place, verified on every read, never copied or written.
"""

import os
from pathlib import Path

DATA_DIR_ENV = "MINIVAE_DATA_DIR"
MIRROR_ENV = "MINIVAE_DATA_MIRROR"


def source_checkout_data_dir():
    """<repo>/data if this package runs from a source checkout, else None."""
    repo = Path(__file__).resolve().parents[2]                 # minivae/data/paths.py -> repo
    if (repo / "pyproject.toml").is_file() and (repo / "data" / "README.md").is_file():
        return repo / "data"
    return None


def data_dir() -> Path:
    """The folder where downloaded files are kept (not created here)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    checkout = source_checkout_data_dir()
    if checkout is not None:
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minivae"


def mirror_dir():
    """The folder named by $MINIVAE_DATA_MIRROR, or None if it is unset or empty."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env).expanduser() if env else None
