"""A controlled competing load: N busy processes, started and stopped by the benchmark itself.

A student's laptop is never idle. To measure what training costs on a machine that is doing
something else, a benchmark starts N processes that each spin on one core (a pure-Python loop,
no memory traffic, like a niced evaluation that computes), times its contenders, and stops them:

    with busy(1):                     # one competing process, for at most TIME_LIMIT seconds
        seconds = time_an_epoch()

Nothing outlives the run: each process stops by itself after ``seconds`` (its own clock), or as
soon as the process that started it has gone (it checks its parent every few milliseconds), and
``busy`` stops them all when its block ends, also on an exception or Ctrl-C.

    python benchmarks/load.py 1 --seconds 60     # load the machine by hand for a minute, e.g.
                                                 # to try `minivae train` beside it
"""

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager

TIME_LIMIT = 3600.0          # seconds a busy process lives at most, whatever happens
SPIN = """
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end and os.getppid() == parent:
    for _ in range(20000):
        pass
"""


def start(n, seconds=TIME_LIMIT, nice=0):
    """Start ``n`` busy processes (each spins on one core for at most ``seconds``, at niceness
    ``nice``); their Popen objects. Stop them with ``stop``."""
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"expected a number of busy processes >= 0, got {n!r}")
    if not seconds > 0:
        raise ValueError(f"expected a time limit > 0, got {seconds!r}")
    procs = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen(
                [sys.executable, "-c", SPIN, str(os.getpid()), str(seconds)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                preexec_fn=(lambda: os.nice(nice)) if nice else None))
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
def busy(n, seconds=TIME_LIMIT, nice=0, settle=0.2):
    """A block run beside ``n`` busy processes; they are stopped when it ends, however it ends.
    ``settle`` seconds let them start spinning before the block begins."""
    procs = start(n, seconds, nice)
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
    args = p.parse_args()
    with busy(args.n, args.seconds, args.nice) as procs:
        print(f"{args.n} busy process(es) {[q.pid for q in procs]} for {args.seconds:g} s; "
              "Ctrl-C stops them", flush=True)
        try:
            while any(q.poll() is None for q in procs):
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
