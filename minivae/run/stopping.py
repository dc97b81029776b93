"""Stopping on request: Ctrl-C (SIGINT), SIGTERM (`kill PID`, a job scheduler, a container
that stops) or SIGHUP (the terminal closed).

Training (StopSignals): the first SIGINT or SIGTERM only sets a flag: training finishes the
current batch, saves a checkpoint and stops (see trainer.py). A second signal of either kind
raises KeyboardInterrupt at once; the checkpoint already on disk stands. Handlers are installed
only in the main thread, and the previous ones are put back on exit.

Everything else the command line does (InterruptSignals): SIGTERM and SIGHUP raise an
Interrupted, as Ctrl-C raises a KeyboardInterrupt, so that what was in progress cleans up (a
download's temporary file) and `minivae` exits with 128 + the signal's number.

A KeyboardInterrupt that Python raises while numba's compiled code is running Python (it does,
briefly, to hand over arrays) comes out of the jitted call as ``SystemError: CPUDispatcher(...)
returned a result with an exception set``, the interrupt in its ``__context__``:
``interruption(e)`` finds it, for the places that catch interrupts (trainer.py, the command
line) to treat both alike.
"""

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
if hasattr(signal, "SIGHUP"):                         # POSIX
    NAMES[signal.SIGHUP] = "SIGHUP"


class Interrupted(KeyboardInterrupt):
    """Stopped by the signal ``signum``; the message, if any, says what was kept."""

    def __init__(self, message="", signum=signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


class TrainingInterrupted(Interrupted):
    """Training stopped on Ctrl-C or SIGTERM (``signum``); the message says which checkpoint
    to resume from."""


def interruption(e):
    """The KeyboardInterrupt ``e`` is, or the one a SystemError from a jitted call carries
    (see above); None for any other exception."""
    if isinstance(e, KeyboardInterrupt):
        return e
    if isinstance(e, SystemError):
        for inner in (e.__cause__, e.__context__):
            if isinstance(inner, KeyboardInterrupt):
                return inner
    return None


def signal_number(e):
    """The signal that stopped a command: ``e.signum`` if ``e`` knows it, else SIGINT."""
    return getattr(interruption(e), "signum", signal.SIGINT)


class InterruptSignals:
    """A context manager: SIGTERM and SIGHUP raise Interrupted (SIGINT raises
    KeyboardInterrupt already). Main thread only; the previous handlers come back on exit."""

    SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s)

    def __init__(self):
        self.old = {}

    @staticmethod
    def _handler(signum, frame):
        raise Interrupted(f"stopped by {NAMES.get(signum, f'signal {signum}')}", signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self.old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, old in self.old.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)
        self.old = {}


class StopSignals:
    """A context manager: ``requested`` is the signal number of the first SIGINT or SIGTERM
    received inside it (0 until then); a second one raises KeyboardInterrupt."""

    def __init__(self, say):
        self.requested, self.say, self.old = 0, say, {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signum
        what = NAMES.get(signum, f"signal {signum}")
        self.say(f"\n{what}: stopping after this batch and saving a checkpoint (press Ctrl-C "
                 "again to stop at once, keeping the last saved checkpoint)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self.old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, old in self.old.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)   # None: set outside Python
        self.old = {}
