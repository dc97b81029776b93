"""The `minivae` command line: train, evaluate, sample, figures, export, data.

    minivae train                             # a VAE on sprites, half a minute, runs/vae-sprites
    minivae train --data mnist --hidden 400 --latent 20      # the classic MNIST VAE
    minivae train --resume --out runs/vae-mnist --epochs 40  # go on training a run
    minivae train --recipe burda2015-iwae5   # a row of the IWAE paper's table (recipes.py)
    minivae evaluate runs/vae-sprites --iwae-k 100 --json
    minivae sample runs/vae-sprites --n 64 --out samples.png
    minivae figures runs/vae-sprites
    minivae export runs/vae-sprites           # decoder + test codes for the site's explorer
    minivae data list;  minivae data fetch mnist

An error prints one line, `minivae: error: ...`, and exits with status 1 (2 for a bad
command line; 128 + N after a signal: 130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP;
141 when the reader of stdout went away, as in `minivae evaluate RUN --json | head`). A warning
is one line too, `minivae: warning: ...`. Set MINIVAE_DEBUG=1 to see the traceback instead.
Before numba is imported, settings of the environment that would stop every command are set
aside, saying so in one line (NUMBA_NUM_THREADS=0).

    parser.py     the arguments of every command, and their checks
    train.py      `minivae train`: flags -> a new run, or the checks of --resume
    view.py       `minivae evaluate`, `sample`, `figures`: what a trained run shows
    datasets.py   `minivae data list`, `data fetch`
    export.py     `minivae export`: a VAE's decoder and test codes as one JSON file
"""

import os
import sys
import warnings

from minivae import data
from minivae.errors import MinivaeError
from minivae.run.stopping import InterruptSignals, interruption, signal_number

BROKEN_PIPE = 128 + 13              # the status a process killed by SIGPIPE reports


def say(msg):
    """A line for the user on stderr (stdout is for results)."""
    print(msg, file=sys.stderr)


def one_line(e):
    """The message of ``e`` on one line."""
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, data.DownloadError):
        text = text.split(" Tried:")[0].rstrip(".")
        if e.bad_files:                                  # a server answered, with a bad file
            text += (f": the server sent a bad file ({e.bad_files[-1]}); try again later, or "
                     "save a good copy at that path, or set MINIVAE_DATA_MIRROR to a folder "
                     "that holds the files")
        else:
            text += ("; offline? set MINIVAE_DATA_MIRROR to a folder that holds the files, or "
                     "fetch them when online")
    return text


def main(argv=None):
    """Run the command line; returns the exit status (the console script exits with it)."""
    for note in _set_aside_environment():                # before numba is imported
        say(f"minivae: {note}")
    with warnings.catch_warnings(), InterruptSignals():
        warnings.showwarning = _warning
        return _main(argv)


def _main(argv):
    from minivae.cli.parser import UsageError, build_parser  # imports numba
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as e:                             # --help
        return e.code
    except UsageError as e:
        say(f"minivae: error: {one_line(e)}")
        return 2
    except (KeyboardInterrupt, SystemError) as e:       # SystemError: see stopping.interruption
        stop = interruption(e)
        if stop is None:
            raise
        say(f"minivae: {one_line(stop) if str(stop) else 'interrupted'}")
        return 128 + signal_number(stop)                # 130: SIGINT, 143: SIGTERM
    except BrokenPipeError:                             # `minivae ... | head` read enough
        _quiet_stdout()
        return BROKEN_PIPE
    except (MinivaeError, data.DatasetError, OSError, MemoryError) as e:
        if os.environ.get("MINIVAE_DEBUG"):
            raise
        if isinstance(e, MemoryError):
            e = f"out of memory{f' ({e})' if str(e) else ''}; try a smaller model, " \
                "--batch-size or --iwae-k"
        say(f"minivae: error: {one_line(e)}")
        return 1


def _warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning for the command line: one line, without the source line."""
    say(f"minivae: warning: {one_line(message)}")


def _quiet_stdout():
    """Point stdout at /dev/null, so that Python's last flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):       # not a real file (e.g. under a test)
        pass


def _set_aside_environment():
    """Remove settings of the environment that would make importing numba fail, and say so:
    NUMBA_NUM_THREADS must be a positive integer (0 breaks even `minivae --help`)."""
    notes, threads = [], os.environ.get("NUMBA_NUM_THREADS")
    if threads is not None and not _positive_integer(threads):
        del os.environ["NUMBA_NUM_THREADS"]
        notes.append(f"NUMBA_NUM_THREADS={threads!r} is not a positive integer; ignored "
                     f"(numba uses one thread per core, {os.cpu_count()} here)")
    return notes


def _positive_integer(text):
    try:
        return int(text) >= 1
    except ValueError:
        return False


__all__ = ["main"]
