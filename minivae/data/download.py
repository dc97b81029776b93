"""Get verified dataset files: from the mirror, the data folder, or the network.

A file is found, in order:
  1. in $MINIVAE_DATA_MIRROR/<dataset>/<file>, read in place (never copied or written);
  2. in <data folder>/<dataset>/<file> (see paths.py);
  3. by download into the data folder, trying the file's URLs in order.
Every read is verified against the registry's size and SHA-256 (hashing costs ~0.05 s for the
78 MB binarized-MNIST train file on a CPU with SHA extensions, well under the cost of parsing it),
so a corrupt or truncated file is never used: a bad cached file is downloaded again, a bad mirror
file is an error. Before that, every read asks what the file is (minivae/files.py): a FIFO, a
device (a link to /dev/zero), a folder, or a file larger than the registry's size is never
opened or read whole; in the data folder it is as bad as a corrupt file (removed, downloaded
again), in the mirror it is an error.

Downloads are pooch's job: pooch.retrieve streams a URL (pooch.HTTPDownloader, in _open_url, the
one function that touches the network) into a temporary file tmpXXXXXXXX beside the target,
checks its SHA-256, and only then moves it into place; after an error it deletes the temporary.
Written here, because pooch has no place for them:
  - _Guard, the file pooch writes into. It refuses an HTML page at its first bytes and stops as
    soon as more bytes come than the registry's size (pooch would save any amount, then compare
    hashes), so that the DownloadError can say what the server sent; pooch does not show the
    Content-Type, and the SHA-256 check catches any other page. It draws the progress bar, named
    after the file, once data arrives, and turns a full disk into a CacheDirError;
  - mode 0644 before the move (pooch's temporary is 0600; a shared data folder must be readable);
  - a lock on the folder while downloading into it: one download at a time, so a temporary found
    there under the lock was left by a killed download (SIGKILL, SIGTERM, SIGHUP; pooch cleans up
    after exceptions only) and is removed; so it is by every read of a cached file when no
    download holds the lock (a killed download's file may have been saved by hand since);
  - a bad cached file is removed under the lock before the download (pooch would hash it first:
    a FIFO would block it for ever, a link to /dev/zero never end);
  - the messages: CacheDirError before any request, DownloadError with what was tried and the
    three ways to fix it.
No fsync: a file cut short by a power failure fails its check on the next read and is fetched again.
"""

import contextlib
import hashlib
import os
import re
import sys
import warnings
from pathlib import Path

import pooch
from tqdm import tqdm

from minivae.files import FileError, read_bytes

from .errors import CacheDirError, ChecksumError, DownloadError
from .paths import DATA_DIR_ENV, MIRROR_ENV, data_dir, mirror_dir
from .registry import FileInfo, get_info

CHUNK = 1 << 20          # bytes read from the network at a time
TIMEOUT = 30             # seconds without data before a download attempt is given up
HEADERS = {"User-Agent": "minivae", "Accept-Encoding": "identity"}   # the bytes as stored
LEFTOVER = re.compile(r"tmp[a-z0-9_]{8}|\..+\.part")   # pooch's temporaries; older minivae's
HTML = "the server sent an HTML page (an error or login page?), not the data file"


def _problem(data: bytes, f: FileInfo):
    """None if data is f's content, else a sentence saying how it differs."""
    if len(data) != f.size:
        return f"it has {len(data):,} bytes, expected {f.size:,} (truncated or wrong file?)"
    digest = hashlib.sha256(data).hexdigest()
    if digest != f.sha256:
        return f"its SHA-256 is {digest}, expected {f.sha256} (corrupt or wrong file?)"
    return None


def _read(path: Path, f: FileInfo):
    """(the bytes of the copy of f at path, None) or (None, what is wrong with it); FileNotFoundError
    if there is nothing at path (a link to nothing counts as nothing)."""
    try:
        data = read_bytes(path, f.size, f"copy of {f.relpath} ({f.size:,} bytes)")
    except FileError as e:
        return None, str(e)
    problem = _problem(data, f)
    return (None, problem) if problem else (data, None)


def _obtain(f: FileInfo):
    """(path, verified bytes) of file f, downloading it if needed."""
    mirror = mirror_dir()
    if mirror is not None:
        path = mirror / f.folder / f.name
        try:
            data, problem = _read(path, f)
        except FileNotFoundError:
            pass                                            # not in the mirror: the data folder
        else:
            if problem:
                raise ChecksumError(
                    f"mirror file {path} is not the expected {f.relpath}: {problem}. minivae "
                    f"never writes to the mirror (${MIRROR_ENV}); replace the file with a good "
                    f"copy, or unset {MIRROR_ENV} to download it.")
            return path, data
    path = data_dir() / f.folder / f.name
    try:
        data, problem = _read(path, f)
    except FileNotFoundError:
        problem = None
    else:
        if problem is None:
            _tidy(path.parent)
            return path, data
    download(f, path, damaged=problem)
    if problem:
        warnings.warn(f"cached file {path} was not usable ({problem}); downloaded it again",
                      stacklevel=3)
    data, problem = _read(path, f)
    if problem:                                         # changed since the download verified it
        raise ChecksumError(f"downloaded file {path} changed after it was verified: {problem}")
    return path, data


def read_verified(f: FileInfo) -> bytes:
    """The bytes of file f, checked against its size and SHA-256."""
    return _obtain(f)[1]


def fetch_file(f: FileInfo) -> Path:
    """Path of a verified copy of file f (in the mirror or the data folder)."""
    return _obtain(f)[0]


def fetch(name: str) -> list:
    """Download (if needed) and verify every file of dataset name; their paths. [] for sprites."""
    return [fetch_file(f) for f in get_info(name).files]


def download(f: FileInfo, dest: Path, damaged=None) -> None:
    """Download f into dest, trying f.urls in order; DownloadError if none gives the right file.

    ``damaged``: what is wrong with the file at dest (None: there was none). Once the folder is
    locked, dest is read again: another process may have saved it meanwhile; if not, what is
    there is removed.
    """
    folder, created = dest.parent, not dest.parent.exists()
    failures, bad_files = [], []
    try:
        _ensure_writable(folder)
        with _downloading_into(folder):
            with contextlib.suppress(FileNotFoundError):
                data, damaged = _read(dest, f)
                if data is not None:                    # saved by another process meanwhile
                    return
                _remove_damaged(dest)
            for url in f.urls:
                try:
                    _retrieve(url, f, dest)
                    return
                except OSError as e:          # no answer, an HTTP error (requests' errors too)
                    failures.append(f"{url}\n      {type(e).__name__}: {e}")
                    continue
                except _BadContent as e:
                    problem = str(e)
                except ValueError:            # pooch's SHA-256 check
                    problem = "its SHA-256 does not match (corrupt or wrong file?)"
                failures.append(f"{url}\n      {problem}; the file was discarded")
                bad_files.append(problem)
    except CacheDirError:
        _remove_if_created(folder, created)
        raise
    _remove_if_created(folder, created)
    raise DownloadError(_missing_message(f, dest, failures, damaged), bad_files)


def _open_url(url: str, out) -> None:
    """Stream url into the open file out: the one place minivae touches the network (tests
    replace it)."""
    pooch.HTTPDownloader(chunk_size=CHUNK, timeout=TIMEOUT, headers=HEADERS)(url, out, None)


def _retrieve(url: str, f: FileInfo, dest: Path) -> None:
    """One try: pooch downloads url into a temporary beside dest, checks it, moves it onto dest."""
    def into_guard(url, tmp, _pooch):                 # a pooch downloader, writing through _Guard
        with open(tmp, "wb") as out, contextlib.closing(_Guard(out, f, dest.parent)) as guard:
            _open_url(url, guard)
        if guard.n != f.size:
            raise _BadContent(f"got {guard.n:,} bytes, expected {f.size:,} (truncated download?)")
        os.chmod(tmp, 0o644)

    log = pooch.get_logger()
    level = log.level
    log.setLevel("WARNING")                     # its "Downloading data from" repeats our bar
    try:
        pooch.retrieve(url, known_hash=f"sha256:{f.sha256}", fname=f.name, path=dest.parent,
                       downloader=into_guard)
    except PermissionError as e:                # pooch could not create a file in the folder
        raise CacheDirError(_not_writable_message(dest.parent, "permission denied")) from e
    finally:
        log.setLevel(level)


class _BadContent(Exception):
    """The server answered, but not with the expected file."""


class _Guard:
    """The file pooch writes a download into: each chunk is checked before it is written."""

    def __init__(self, out, f: FileInfo, folder: Path):
        self.out, self.f, self.folder, self.n, self.bar = out, f, folder, 0, None

    def write(self, chunk: bytes) -> None:
        if self.bar is None:                             # the first chunk: is it a web page?
            if chunk.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
                raise _BadContent(HTML)
            self.bar = tqdm(total=self.f.size, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.f.relpath)         # tqdm writes to stderr
        self.n += len(chunk)
        if self.n > self.f.size:
            raise _BadContent(f"the server sent more than the expected {self.f.size:,} bytes")
        try:
            self.out.write(chunk)
            self.out.flush()
        except OSError as e:                             # a full disk, a quota
            raise CacheDirError(_not_writable_message(self.folder, e)) from e
        self.bar.update(len(chunk))

    def flush(self) -> None:
        """write() has flushed already."""

    def close(self) -> None:
        """Close the progress bar (the file is its opener's to close)."""
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _downloading_into(folder: Path):
    """Hold folder's lock while downloading into it, after removing what killed downloads left.

    One download at a time per folder (a second process waits, then pooch finds the file in
    place), so a temporary found under the lock is nobody's. Not POSIX: no lock, no cleanup.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another download into {folder}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        _remove_leftovers(folder)
        yield
    finally:
        os.close(fd)


def _remove_leftovers(folder: Path) -> None:
    """Delete the temporaries of killed downloads (call with folder's lock held)."""
    for p in folder.iterdir():
        if LEFTOVER.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)


def _tidy(folder: Path) -> None:
    """_remove_leftovers, if no download into folder is under way (its lock is free)."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (ImportError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _remove_leftovers(folder)
    except OSError:                                     # locked: a download is under way
        pass
    finally:
        os.close(fd)


def _remove_damaged(dest: Path) -> None:
    """Remove what is at dest (a bad copy, a FIFO, a link): pooch would read it before
    replacing it. A folder is not removed: CacheDirError."""
    if os.path.isdir(dest):
        raise CacheDirError(f"{dest} is a folder where a data file belongs; remove it, or set "
                            f"{DATA_DIR_ENV} to another data folder")
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()


def _remove_if_created(folder: Path, created: bool) -> None:
    """Leave no empty folder behind that this download made."""
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


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


def _missing_message(f: FileInfo, dest: Path, failures: list, damaged=None) -> str:
    """Which file is missing (or was damaged), what was tried, and the three ways to fix it."""
    mirror = mirror_dir()
    mirror_note = f" (it is now {mirror}, which has no {f.relpath})" if mirror else ""
    what = (f"file damaged: the copy of {f.relpath} at {dest} was not usable ({damaged}) and "
            "was removed; it could not be downloaded again" if damaged else
            f"file missing: {f.relpath} ({f.size:,} bytes, sha256 {f.sha256}) is not at {dest} "
            "and could not be downloaded")
    return "\n".join(
        [f"{what}. Tried:"]
        + [f"  {x}" for x in failures]
        + ["To fix it, do one of:",
           f"  - download it from one of the URLs above and save it, unchanged, as {dest}",
           (f"  - set {MIRROR_ENV} to a folder that holds {f.relpath}{mirror_note}; files "
            f"there are read in place"),
           f"  - set {DATA_DIR_ENV} to a data folder that holds {f.relpath}",
           "(the 'sprites' dataset is generated by minivae and needs no files.)"])
