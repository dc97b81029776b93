"""Reading a file that minivae may not have written: ask what it is first, then read at most a
bound. Every file minivae reads goes through here: a run folder's config.json,
checkpoint.npz, metrics.jsonl and evaluation.json, data set files in the data folder and in the
mirror. (Writing is atomic.py's job.)

    read_bytes(path, limit, what)   the bytes of the regular file at ``path``
    read_json(path, limit, what)    the same, parsed as strict JSON (below)
    loads_json(data, what)          strict JSON: no NaN, no Infinity, no number that overflows
                                    a float; what minivae writes (``allow_nan=False``) and nothing
                                    else

Why: a FIFO named checkpoint.npz blocks open() and read() for ever; a link to /dev/zero or
/dev/urandom reads until memory runs out; a sparse file of 100 GB reads for minutes before any
check. So ``os.stat`` (following links) must say "regular file" before the file is opened; it
is opened with O_NONBLOCK (a FIFO swapped in after the stat cannot block) and checked again
with ``fstat``; its size must be at most ``limit``; and at most ``limit + 1`` bytes are read,
so a file that grows while it is read is caught too. Anything else is a FileError whose message
is one line naming the file and what it is.

A missing file raises FileNotFoundError, for the caller to word ("no checkpoint at ...").
"""

import json
import math
import os
import stat

from minivae.errors import MinivaeError

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)",
         stat.S_ISCHR: "a character device (like /dev/zero)", stat.S_ISBLK: "a block device",
         stat.S_ISSOCK: "a socket"}


class FileError(MinivaeError):
    """A file is not a regular file, is larger than a file of its kind can be, or cannot be
    read; the message, one line, says which."""


def _kind(mode):
    return next((words for test, words in KINDS.items() if test(mode)), "not a regular file")


def _refuse(path, mode, what):
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return FileError(f"{path}{link} is {_kind(mode)}, not a regular file; a {what} is a "
                     "regular file, so minivae does not read it")


def read_bytes(path, limit, what="file"):
    """The bytes of the regular file ``path``, if it holds at most ``limit`` of them.

    FileNotFoundError if there is nothing at ``path``; FileError for anything that is not a
    regular file, a file larger than ``limit`` bytes, or one that cannot be read.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)                           # follows links: what would be read
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode, what)
        fd = os.open(path, OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)                            # what was opened, whatever the name is now
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode, what)
        if st.st_size > limit:
            raise _too_large(path, f"{st.st_size:,} bytes", limit, what)
        chunks, n = [], 0
        while n <= limit:
            chunk = os.read(fd, min(limit + 1 - n, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
    except OSError as e:
        raise FileError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if n > limit:                                    # it grew while being read
        raise _too_large(path, f"more than {limit:,} bytes", limit, what)
    return b"".join(chunks)


def _too_large(path, size, limit, what):
    return FileError(f"{path} is {size}; a {what} has at most {limit:,}, so minivae does not "
                     "read it")


def read_json(path, limit, what="JSON file"):
    """``loads_json`` of the bytes of ``path`` (read_bytes); FileError if it is not JSON."""
    return loads_json(read_bytes(path, limit, what), f"{path}")


def loads_json(data, where):
    """The JSON ``data`` (bytes or str) holds, read with the rules minivae writes it by: NaN,
    Infinity and numbers beyond a float's range are refused. FileError naming ``where``."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FileError(f"{where} is not valid JSON ({' '.join(str(e).split())})") from None


def _no_constant(name):
    raise ValueError(f"{name} is not a number minivae writes (NaN and infinity never are)")


def _finite_float(text):
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"{text} overflows a float")
    return v
