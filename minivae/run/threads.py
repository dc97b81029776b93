"""How many threads BLAS uses for minivae's matrix products: chosen, so that training stays fast
on a machine that is doing something else.

NumPy hands ``x @ W`` to BLAS (OpenBLAS), which splits a large product between threads, one per
core by default. Its worker threads spin while they wait for the next product. When another
process holds a core, every product waits for a worker that the kernel has descheduled: on 2
cores with one competing busy process, an MNIST VAE epoch takes about 10 times longer with 2
threads than with 1. On an idle machine 2 threads do the same products in 0.6 of the time.
So the count is chosen, not fixed (the lessons' appendix A measures all of this):

    "auto"   before each epoch, a probe times a typical product, (128, 784) @ (784, 400) and
             the gradient product beside it, in short blocks at 1 thread and at n (BLAS's
             own count: the cores, or OPENBLAS_NUM_THREADS), alternately; the epoch runs with
             n threads only if they took at most FASTER of the time, else with 1. A model
             whose products are all too small for BLAS to split gets 1, unprobed.
    N        N threads throughout.

The count holds only for minivae's own work: inside ``with Threads(...)``, threadpoolctl sets
BLAS's count, and puts back what it was on the way out, also on an error; NumPy elsewhere in
the program keeps its own setting. numba's kernels (minivae/kernels) are all serial.

    with Threads("auto") as threads:                # a context manager and a fit callback
        fit(model, x, optimizer, 10, callbacks=[threads])
    threads.chosen                                  # {epoch index: threads}, e.g. {0: 2, 1: 1}

Results depend on the count: with 2 threads OpenBLAS adds the 784 terms of the first layer's
product in another order, so the float32 bits differ. A run therefore records each epoch's
count (metrics.jsonl, checkpoint.npz), and a resumed epoch runs with the count it began with
(``replay``): a resumed run ends bit-identical to an uninterrupted one whenever their epochs
ran with the same counts, which a fixed N guarantees.
"""

import time

import numpy as np
from threadpoolctl import ThreadpoolController

from minivae.run.config import RULES

FASTER = 0.8          # auto takes n threads only if they need at most this share of 1's time
SPLIT = 2 ** 18       # OpenBLAS runs a product of at most 2^18 multiply-adds (M K N) on 1 thread
PROBE = (128, 784, 400)   # the probe's product (M, K, N): the MNIST VAE's first layer
ROUNDS, CALLS = 3, 4      # the probe: rounds of (a block at 1, a block at n) of CALLS pairs


def check(threads):
    """``threads`` as the policy takes it: "auto", or an int >= 1; InputError otherwise."""
    RULES["threads"].check("threads", threads)
    return threads if threads == "auto" else int(threads)


def largest_product(model, batch_size):
    """The multiply-adds of the largest product a training step makes, or at least of one:
    batch_size * W.size for the largest weight (D, H) (for a convolution's (O, C, k, k), a
    lower bound: each of its products has batch_size * positions rows)."""
    return batch_size * max((p.size for p in model.params.values() if p.ndim >= 2), default=0)


def pick(t1, tn, n):
    """The count for seconds t1 at 1 thread and tn at n: n if tn <= FASTER * t1, else 1.
    One thread is the safe side: when n lose, they lose by far more than they ever win."""
    return n if tn <= FASTER * t1 else 1


def probe_rounds(block, n, rounds=ROUNDS):
    """(t1, tn): seconds in ``rounds`` rounds of block(1, None) then block(n, limit), where
    ``block(k, limit)`` times some work at k threads, stopping once it has taken ``limit``.
    Stops after a round in which n threads were slower in total: they have lost."""
    t1 = tn = 0.0
    for _ in range(rounds):
        a = block(1, None)
        tn += block(n, a)
        t1 += a
        if tn > t1:
            break
    return t1, tn


class ProductProbe:
    """The probe's work: the product PROBE and its gradient partner x.T @ dy, CALLS pairs a
    block, on random float32 arrays made once."""

    def __init__(self, set_threads, calls=CALLS):
        m, k, n = PROBE
        rng = np.random.default_rng(0)
        self.x, self.W = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
        self.dy = rng.random((m, n), np.float32)
        self.y, self.dW = np.empty((m, n), np.float32), np.empty((k, n), np.float32)
        self.set_threads, self.calls = set_threads, calls

    def __call__(self, k, limit=None):
        """Seconds for a block at k threads, setting them included, or until ``limit``."""
        t0 = time.perf_counter()
        self.set_threads(k)
        for _ in range(self.calls):
            np.matmul(self.x, self.W, out=self.y)                     # (M, N)
            np.matmul(self.x.T, self.dy, out=self.dW)                 # (K, N)
            if limit is not None and time.perf_counter() - t0 > limit:
                break
        return time.perf_counter() - t0


class Threads:
    """BLAS threads for minivae's work: a context manager that sets them (and restores BLAS's
    own setting after), and a fit callback that chooses them again before each epoch.

    ``threads``: "auto" or N. ``work``: largest_product(model, batch_size), if known (auto gives
    a model below SPLIT 1 thread without probing). ``replay``: {epoch index: threads} to reuse
    for those epochs (a resumed one) instead of choosing; an explicit N wins over it.
    ``probe``: ``probe(n, set_threads) -> (t1, tn)``, to replace the timing (tests).
    """

    def __init__(self, threads="auto", *, work=None, replay=None, probe=None):
        self.threads, self.work, self.replay = check(threads), work, dict(replay or {})
        self._probe, self._arrays = probe or self._time, None
        self.chosen = {}                  # {epoch index: threads it ran with}
        self.count = None                 # the threads in force inside the block
        self.why = ""                     # how count was chosen, for messages
        self.n = None                     # BLAS's own count (outside minivae)
        self._ctl = self._limiter = None
        self._fresh = False

    def __enter__(self):
        if self._ctl is not None:
            raise RuntimeError("a Threads block is already open; use a new Threads")
        self._ctl = ThreadpoolController()
        self.n = max([lib["num_threads"] for lib in self._ctl.select(user_api="blas").info()]
                     or [1])
        self._limiter = self._ctl.limit(limits=self.n, user_api="blas")   # keeps the originals
        self._use(*self.choose())
        self._fresh = True                  # the first epoch takes this choice, unprobed
        return self

    def __exit__(self, *exc):
        self._limiter.restore_original_limits()
        self._ctl = self._limiter = self._arrays = None

    def describe(self):
        """'auto: 1 or 2, chosen before each epoch', or '1 (--threads)', for the run's log."""
        if self.threads != "auto":
            return f"{self.threads} (set)"
        return (f"auto: 1 or {self.n}, chosen before each epoch by a probe" if self.n > 1
                else "auto: 1 (BLAS has 1)")

    def choose(self):
        """(threads, why): the count for what comes next, and how it was chosen."""
        if self.threads != "auto":
            return self.threads, "set"
        if self.n <= 1:
            return 1, "BLAS has 1 thread"
        if self.work is not None and self.work <= SPLIT:
            return 1, "products too small to split"
        t1, tn = self._probe(self.n, self._set)
        count = pick(t1, tn, self.n)
        return count, f"probe: {tn / t1:.2f} of 1 thread's time with {self.n}"

    def _set(self, k):
        if self._ctl is None:
            raise RuntimeError("Threads sets BLAS threads only inside `with Threads(...)`")
        self._ctl.limit(limits=k, user_api="blas")

    def _time(self, n, set_threads):
        """The probe: (t1, tn) of ProductProbe's blocks, its arrays made once a block."""
        if self._arrays is None:
            self._arrays = ProductProbe(set_threads)
        return probe_rounds(self._arrays, n)

    def _use(self, count, why):
        self._set(count)
        self.count, self.why = count, why

    # ---- the fit callback ----

    def epoch_begin(self, p):
        if p.stop:                                      # fit stops before this epoch
            return
        again = self.replay.get(p.epoch)
        if again is not None and self.threads == "auto":
            self._use(check(again), "as recorded when the epoch began")
        elif not self._fresh:
            self._use(*self.choose())
        self._fresh = False
        self.chosen[p.epoch] = self.count

    def epoch_end(self, p):
        p.history[-1]["threads"] = self.chosen[p.epoch - 1]
