"""Get verified dataset files: from the mirror, the data folder, or the network.

A file is found, in order:
  1. in $MINIVAE_DATA_MIRROR/<dataset>/<file>, read in place (never copied);
  2. in <data folder>/<dataset>/<file> (see paths.py);
  3. by download into the data folder: streamed into a temporary file in the same folder,
     checked (size, SHA-256, not an HTML page), fsynced, then moved into place with os.replace,
     so the data folder never holds a partial or unverified file.
Every read is verified against the registry's size and SHA-256 (hashing costs ~0.05 s for the
78 MB binarized-MNIST train file on a CPU with SHA extensions, well under the cost of parsing it),
so a corrupt or truncated file is never used: a bad cached file is downloaded again, a bad mirror
file is an error.
"""

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.request
import warnings
from pathlib import Path

from tqdm import tqdm

from minivae.run.atomic import fsync_dir

from .errors import CacheDirError, ChecksumError, DownloadError
from .paths import DATA_DIR_ENV, MIRROR_ENV, data_dir, mirror_dir
from .registry import FileInfo, get_info

CHUNK = 1 << 20          # bytes read from the network at a time
TIMEOUT = 30             # seconds without data before a download attempt is given up


def _open_url(url: str, timeout: float = TIMEOUT):
    """Open url for reading; the one place minivae touches the network (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "minivae"})
    return urllib.request.urlopen(request, timeout=timeout)


def _problem(data: bytes, f: FileInfo):
    """None if data is f's content, else a sentence saying how it differs."""
    if len(data) != f.size:
        return f"it has {len(data):,} bytes, expected {f.size:,} (truncated or wrong file?)"
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        return f"its SHA-256 is {digest}, expected {f.sha256} (corrupt or wrong file?)"
    return None


def _obtain(f: FileInfo):
    """(path, verified bytes) of file f, downloading it if needed."""
    mirror = mirror_dir()
    if mirror is not None and (mirror / f.folder / f.name).is_file():
        path = mirror / f.folder / f.name
        data = path.read_bytes()
        problem = _problem(data, f)
        if problem:
            raise ChecksumError(
                f"mirror file {path} is not the expected {f.relpath}: {problem}. minivae never "
                f"writes to the mirror (${MIRROR_ENV}); replace the file with a good copy, or "
                f"unset {MIRROR_ENV} to download it.")
        return path, data
    path = data_dir() / f.folder / f.name
    if path.is_file():
        data = path.read_bytes()
        problem = _problem(data, f)
        if problem is None:
            return path, data
        warnings.warn(f"cached file {path} is not usable: {problem}; downloading it again",
                      stacklevel=3)
    download(f, path)
    return path, path.read_bytes()


def read_verified(f: FileInfo) -> bytes:
    """The bytes of file f, checked against its size and SHA-256."""
    return _obtain(f)[1]


def fetch_file(f: FileInfo) -> Path:
    """Path of a verified copy of file f (in the mirror or the data folder)."""
    return _obtain(f)[0]


def fetch(name: str) -> list:
    """Download (if needed) and verify every file of dataset name; their paths. [] for sprites."""
    return [fetch_file(f) for f in get_info(name).files]


class _BadContent(Exception):
    """The server answered, but not with the expected file."""


def download(f: FileInfo, dest: Path) -> None:
    """Download f into dest, trying f.urls in order; DownloadError if none gives the right file."""
    created = not dest.parent.exists()
    failures, bad_files = [], []
    try:
        _ensure_writable(dest.parent)
        for url in f.urls:
            try:
                _download_one(url, f, dest)
                return
            except _BadContent as e:
                failures.append(f"{url}\n      {e}; the file was discarded")
                bad_files.append(str(e))
            except (OSError, http.client.HTTPException, ValueError) as e:   # URLError too
                failures.append(f"{url}\n      {type(e).__name__}: {e}")
    except CacheDirError:
        _remove_if_created(dest.parent, created)
        raise
    _remove_if_created(dest.parent, created)
    raise DownloadError(_missing_message(f, dest, failures), bad_files)


def _remove_if_created(folder: Path, created: bool) -> None:
    """Leave no empty folder behind that this download made."""
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _download_one(url: str, f: FileInfo, dest: Path) -> None:
    """Stream url into a temp file beside dest; check it; fsync; os.replace onto dest."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{f.name}.", suffix=".part")
    except OSError as e:
        raise CacheDirError(_not_writable_message(dest.parent, e)) from e
    try:
        sha, n = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _open_url(url) as response:
            if "text/html" in (response.headers.get("Content-Type") or ""):
                raise _BadContent("the server sent an HTML page (an error or login page?), "
                                  "not the data file")
            with tqdm(total=f.size, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f.relpath) as bar:          # tqdm writes to stderr
                while chunk := response.read(CHUNK):
                    if n == 0 and chunk.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
                        raise _BadContent("the server sent an HTML page (an error or login "
                                          "page?), not the data file")
                    n += len(chunk)
                    if n > f.size:
                        raise _BadContent(f"the server sent more than the expected {f.size:,} "
                                          f"bytes")
                    sha.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if n != f.size:
            raise _BadContent(f"got {n:,} bytes, expected {f.size:,} (truncated download?)")
        if sha.hexdigest() != f.sha256:
            raise _BadContent(f"SHA-256 is {sha.hexdigest()}, expected {f.sha256}")
        os.replace(tmp, dest)
        tmp = None
        fsync_dir(dest.parent)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _ensure_writable(folder: Path) -> None:
    """Create folder if needed; CacheDirError saying how to fix it if it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheDirError(_not_writable_message(folder, e)) from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CacheDirError(_not_writable_message(folder, "permission denied"))


def _not_writable_message(folder: Path, reason) -> str:
    return (f"cannot write to the data folder {folder} ({reason}). Set {DATA_DIR_ENV} to a "
            f"folder you can write to, e.g. `export {DATA_DIR_ENV}=$HOME/minivae-data`, or set "
            f"{MIRROR_ENV} to a folder that already holds the files.")


def _missing_message(f: FileInfo, dest: Path, failures: list) -> str:
    """Which file is missing, what was tried, and the three ways to fix it."""
    mirror = mirror_dir()
    mirror_note = f" (it is now {mirror}, which has no {f.relpath})" if mirror else ""
    return "\n".join(
        [(f"file missing: {f.relpath} ({f.size:,} bytes, sha256 {f.sha256}) is not at {dest} "
          f"and could not be downloaded. Tried:")]
        + [f"  {x}" for x in failures]
        + ["To fix it, do one of:",
           f"  - download it from one of the URLs above and save it, unchanged, as {dest}",
           (f"  - set {MIRROR_ENV} to a folder that holds {f.relpath}{mirror_note}; files "
            f"there are read in place"),
           f"  - set {DATA_DIR_ENV} to a data folder that holds {f.relpath}",
           "(the 'sprites' dataset is generated by minivae and needs no files.)"])


