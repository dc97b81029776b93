"""The `minivae` command line: train, evaluate, sample, figures, data.

    minivae train                             # a VAE on sprites, about a minute, runs/vae-sprites
    minivae train --data mnist --hidden 400 --latent 20      # the classic MNIST VAE
    minivae train --resume --out runs/vae-mnist --epochs 40  # go on training a run
    minivae evaluate runs/vae-sprites --iwae-k 100 --json
    minivae sample runs/vae-sprites --n 64 --out samples.png
    minivae figures runs/vae-sprites
    minivae data list;  minivae data fetch mnist

An error prints one line, `minivae: error: ...`, and exits with status 1 (2 for a bad
command line, 130 after Ctrl-C, 143 after SIGTERM). Set MINIVAE_DEBUG=1 to see the traceback
instead.

    parser.py     the arguments of every command, and their checks
    train.py      `minivae train`: flags -> a new run, or the checks of --resume
    view.py       `minivae evaluate`, `sample`, `figures`: what a trained run shows
    datasets.py   `minivae data list`, `data fetch`
"""

import os
import sys

from minivae import data
from minivae.cli.parser import UsageError, build_parser
from minivae.errors import MinivaeError
from minivae.run.stopping import TrainingInterrupted


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
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as e:                             # --help
        return e.code
    except UsageError as e:
        say(f"minivae: error: {one_line(e)}")
        return 2
    except TrainingInterrupted as e:
        say(f"minivae: {one_line(e)}")
        return 128 + e.signum                           # 130: SIGINT, 143: SIGTERM
    except KeyboardInterrupt:
        say("minivae: interrupted")
        return 130
    except (MinivaeError, data.DatasetError, OSError, MemoryError) as e:
        if os.environ.get("MINIVAE_DEBUG"):
            raise
        if isinstance(e, MemoryError):
            e = f"out of memory{f' ({e})' if str(e) else ''}; try a smaller model, " \
                "--batch-size or --iwae-k"
        say(f"minivae: error: {one_line(e)}")
        return 1


__all__ = ["main"]
