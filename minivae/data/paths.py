"""Where dataset files live: the data folder (a cache) and an optional read-only mirror.

data folder, first match wins:
  1. $MINIVAE_DATA_DIR, if set;
  2. <repo>/data in a source checkout (this package sits in a folder whose parent holds
     pyproject.toml and data/README.md); git ignores everything there but README.md;
  3. $XDG_CACHE_HOME/minivae, or ~/.cache/minivae, for an installed package.
Files are stored as <data folder>/<dataset>/<file name>.

$MINIVAE_DATA_MIRROR=<folder> names a folder laid out the same way (mnist/, fashion-mnist/,
binarized-mnist/). Its files are read in place, verified on every read, never copied or written.

A "~" in either is expanded; "~user" for a user this machine does not know, or a home folder
that cannot be found, is a DatasetError (CacheDirError for the data folder) saying which
variable to fix.
"""

import os
from pathlib import Path

from .errors import CacheDirError, DatasetError

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
        return _expand(env, DATA_DIR_ENV, CacheDirError)
    checkout = source_checkout_data_dir()
    if checkout is not None:
        return checkout
    cache = os.environ.get("XDG_CACHE_HOME")
    if cache:
        return _expand(cache, "XDG_CACHE_HOME", CacheDirError) / "minivae"
    return _expand("~", "HOME", CacheDirError) / ".cache" / "minivae"


def mirror_dir():
    """The folder named by $MINIVAE_DATA_MIRROR, or None if it is unset or empty."""
    env = os.environ.get(MIRROR_ENV)
    return _expand(env, MIRROR_ENV, DatasetError) if env else None


def _expand(text, name, error):
    """Path(text) with "~" or "~user" expanded; ``error`` naming variable ``name`` if it
    cannot be (no such user, no home folder)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:                            # pathlib: "Could not determine home"
        user = text[1:].split("/")[0].split(os.sep)[0]
        who = f"no user {user!r} on this machine" if user else "no home folder is known"
        raise error(f"{name}={text!r}: cannot expand {'~' + user} ({who}); set {name} to a "
                    f"folder path{', e.g. $HOME/minivae-data' if name != MIRROR_ENV else ''}") \
            from None
