"""A controlled competing load: N busy processes, started and stopped by the benchmark itself.

A student's laptop is never idle. To measure what training costs on a machine that is doing
something else, a benchmark starts N processes, times its contenders, and stops them. Each
process is of one of two kinds:

    spin    a pure-Python loop on one core: one thread that always wants to run
    blas    NumPy multiplying (256, 256) matrices over and over with OpenBLAS's own default
            threads (one a core): another program's spinning thread pool, like a second
            training run or an evaluation

    with busy(1):                     # one competing process, for at most TIME_LIMIT seconds
        seconds = time_an_epoch()

Nothing outlives the run: each process stops by itself after ``seconds`` (its own clock), or as
soon as the process that started it has gone (it checks its parent every few milliseconds), and
``busy`` stops them all when its block ends, also on an exception or Ctrl-C.

    python benchmarks/load.py 1 --seconds 60     # load the machine by hand for a minute, e.g.
                                                 # to try `minivae train` beside it
    python benchmarks/load.py 1 --kind blas      # a NumPy process with its own BLAS threads
"""

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager

TIME_LIMIT = 3600.0          # seconds a busy process lives at most, whatever happens
LOOP = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
os.nice(int(sys.argv[3]))
{setup}
while time.monotonic() < end and os.getppid() == parent:
    {work}
"""
KINDS = {"spin": LOOP.format(setup="", work="for _ in range(20000): pass"),
         "blas": LOOP.format(setup="import numpy as np; a = np.ones((256, 256), np.float32)",
                             work="for _ in range(20): a @ a")}


def start(n, seconds=TIME_LIMIT, nice=0, kind="spin"):
    """Start ``n`` busy processes of ``kind`` (for at most ``seconds`` each, at niceness
    ``nice``); their Popen objects. Stop them with ``stop``."""
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"expected a number of busy processes >= 0, got {n!r}")
    if not seconds > 0:
        raise ValueError(f"expected a time limit > 0, got {seconds!r}")
    if kind not in KINDS:
        raise ValueError(f"expected a kind of load in {sorted(KINDS)}, got {kind!r}")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # defaults
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", KINDS[kind], str(os.getpid()), str(seconds), str(nice)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    except BaseException:
        stop(procs)
        raise
    return procs


def stop(procs, timeout=5.0):
    """Stop the processes ``start`` made: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextmanager
def busy(n, seconds=TIME_LIMIT, nice=0, kind="spin", settle=0.5):
    """A block run beside ``n`` busy processes; they are stopped when it ends, however it ends.
    ``settle`` seconds let them start (import NumPy) before the block begins."""
    procs = start(n, seconds, nice, kind)
    try:
        if n:
            time.sleep(settle)
        yield procs
    finally:
        stop(procs)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int, help="busy processes, one core each")
    p.add_argument("--seconds", type=float, default=60.0, help="how long (default: 60)")
    p.add_argument("--nice", type=int, default=0, help="their niceness (default: 0)")
    p.add_argument("--kind", choices=sorted(KINDS), default="spin",
                   help="spin: a Python loop; blas: NumPy products on its own BLAS threads")
    args = p.parse_args()
    with busy(args.n, args.seconds, args.nice, args.kind) as procs:
        print(f"{args.n} busy process(es) ({args.kind}) {[q.pid for q in procs]} for "
              f"{args.seconds:g} s; Ctrl-C stops them", flush=True)
        try:
            while any(q.poll() is None for q in procs):
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
