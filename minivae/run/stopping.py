"""Stopping a training run on request: Ctrl-C (SIGINT), or SIGTERM (`kill PID`, a job
scheduler, a container that stops).

The first signal only sets a flag: training finishes the current batch, saves a checkpoint and
stops (see trainer.py). A second signal of either kind raises KeyboardInterrupt at once; the
checkpoint already on disk stands. Handlers are installed only in the main thread, and the
previous ones are put back on exit.
"""

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C or SIGTERM (``signum``); the message says which checkpoint
    to resume from."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


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
