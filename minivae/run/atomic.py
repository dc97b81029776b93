"""Atomic writes: a file is replaced whole or not at all, so a crash, a kill or a full disk
during a write leaves the previous version readable.

    atomic_write(path, data):  write into a temporary file in the same folder (.NAME.*.tmp),
                               flush and fsync it, os.replace it over ``path``, fsync the folder

Every file minivae saves goes through here: run folders (config.json, checkpoint.npz,
metrics.jsonl, evaluation.json), figures and downloaded data sets.
"""

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path

from minivae.errors import MinivaeError


class WriteError(MinivaeError):
    """A file could not be written; the previous version of it, if any, is unchanged."""


def _write_all(f, data):
    """Write ``data`` to the open file ``f`` (a seam: tests make it fail half-way)."""
    f.write(data)


def atomic_write(path, data):
    """Replace the file ``path`` by ``data`` (bytes or str): all of it or, on failure, none."""
    path = Path(path)
    data = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode = _mode(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):                # mkstemp makes 0600; keep the usual mode
                os.fchmod(f.fileno(), mode)
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_dir(path.parent)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e}; the previous version of the file, if any, "
                         "is unchanged") from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _mode(path):
    """The permissions of the regular file at path, kept by its replacement; 0644 for a new
    file, or in place of anything else (a link to /dev/zero is 0666)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0o644
    return st.st_mode & 0o777 if stat.S_ISREG(st.st_mode) else 0o644


def write_json(path, obj):
    """atomic_write of ``obj`` as indented JSON, by the rules minivae reads it by
    (minivae/files.py): no NaN or infinity."""
    try:
        text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    except ValueError as e:
        raise WriteError(f"cannot write {path}: it would hold NaN or infinity ({e}); the "
                         "previous version of the file, if any, is unchanged") from None
    atomic_write(path, text)


def fsync_dir(folder):
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
