"""BLAS threads (minivae/run/threads.py): the choice, its scope, its record and its replay.

Nothing here times anything: the probe is replaced by a script of (t1, tn) answers, and what
is checked is which count the policy sets, where it records it and what it restores.
"""

import importlib
import json
import pkgutil
import signal

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher
from threadpoolctl import ThreadpoolController, threadpool_limits

import minivae.kernels
from minivae.cli.parser import UsageError, build_parser
from minivae.errors import InputError
from minivae.models import VAE
from minivae.optim import Adam
from minivae.run import checkpoint as ckpt
from minivae.run import folder as rf
from minivae.run import threads as TH
from minivae.run import trainer as T
from minivae.run.config import TrainConfig
from minivae.train import fit

FAST, SLOW = (1.0, 0.5), (1.0, 2.0)       # a probe's (t1, tn): n threads win, n threads lose
BIG = {"model": "vae", "x_dim": 16, "hidden": [600], "z_dim": 2}   # 32 * 16 * 600 > SPLIT


def blas_threads():
    return max(lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info())


class Script:
    """A probe that answers from a list, and counts its calls."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def __call__(self, n, set_threads):
        self.calls += 1
        return self.answers.pop(0)


@pytest.fixture
def two():
    """BLAS with 2 threads of its own, whatever OPENBLAS_NUM_THREADS says, for this test."""
    with threadpool_limits(2, user_api="blas"):
        yield


# ---- the choice ----

def test_n_threads_only_when_clearly_faster():
    assert TH.pick(1.0, 0.5, 2) == 2
    assert TH.pick(1.0, TH.FASTER, 4) == 4
    assert TH.pick(1.0, TH.FASTER + 1e-9, 4) == 1        # not clearly faster: the safe side
    assert TH.pick(1.0, 3.0, 2) == 1


def test_the_probe_alternates_and_stops_once_n_threads_have_lost():
    calls, answers = [], iter([1.0, 0.6, 1.0, 0.6, 1.0, 0.6])

    def block(k, limit):
        calls.append((k, limit))
        return next(answers)
    assert TH.probe_rounds(block, 2) == (3.0, pytest.approx(1.8))
    assert calls == [(1, None), (2, 1.0)] * 3            # n's block may stop at 1's time
    calls.clear()
    answers = iter([1.0, 1.2, 1.0, 0.1])
    assert TH.probe_rounds(block, 2) == (1.0, 1.2)       # lost the first round: no more
    assert len(calls) == 2


def test_auto_probes_only_where_threads_can_matter(two):
    never = Script()
    with TH.Threads("auto", work=TH.SPLIT, probe=never) as t:     # too small to split
        assert (t.count, never.calls) == (1, 0)
    with TH.Threads(3, probe=never) as t:                         # set: no probe
        assert t.count == 3 and never.calls == 0
    with threadpool_limits(1, user_api="blas"), TH.Threads("auto", probe=never) as t:
        assert t.count == 1 and never.calls == 0                  # BLAS has one thread
    script = Script(FAST)
    with TH.Threads("auto", work=TH.SPLIT + 1, probe=script) as t:
        assert (t.count, t.n, script.calls) == (2, 2, 1)


def test_the_largest_product_of_a_step():
    vae = VAE(784, (400,), 20, rng=0)
    assert TH.largest_product(vae, 128) == 128 * 784 * 400
    assert TH.largest_product(VAE(16, (8,), 2, rng=0), 32) <= TH.SPLIT


# ---- the scope ----

def test_the_count_holds_inside_the_block_only(two):
    with TH.Threads(1) as t:
        assert blas_threads() == 1 and t.n == 2
    assert blas_threads() == 2
    with pytest.raises(ZeroDivisionError), TH.Threads(1):
        raise ZeroDivisionError
    assert blas_threads() == 2                             # restored on an error too
    with TH.Threads("auto", probe=Script(SLOW)):
        assert blas_threads() == 1
    assert blas_threads() == 2


def test_other_thread_pools_are_left_alone(two):
    ctl = ThreadpoolController()
    others = [lib for lib in ctl.info() if lib["user_api"] != "blas"]
    with TH.Threads(1):
        assert [lib for lib in ThreadpoolController().info() if lib["user_api"] != "blas"] \
            == others


def test_outside_its_block_the_policy_sets_nothing():
    t = TH.Threads(1)
    with pytest.raises(RuntimeError, match="inside"):
        t.epoch_begin(type("P", (), {"stop": False, "epoch": 0})())
    with t, pytest.raises(RuntimeError, match="already open"):
        t.__enter__()


# ---- fit: a choice per epoch, recorded, replayed ----

def _fit(threads, epochs=3):
    rng = np.random.default_rng(0)
    x = rng.random((64, 16), dtype=np.float32)
    model = VAE(16, (600,), 2, rng=0)
    with threads:
        return fit(model, x, Adam(model.params), epochs, 32, rng=0, callbacks=[threads])


def test_fit_chooses_before_each_epoch_and_records_it(two):
    script = Script(FAST, SLOW, FAST)                      # at entry (epoch 1), epochs 2, 3
    t = TH.Threads("auto", probe=script)
    history = _fit(t)
    assert [row["threads"] for row in history] == [2, 1, 2]
    assert t.chosen == {0: 2, 1: 1, 2: 2} and script.calls == 3


def test_a_replayed_epoch_uses_its_record_not_the_probe(two):
    script = Script(SLOW, SLOW)                            # at entry (epoch 1), epoch 3
    history = _fit(TH.Threads("auto", probe=script, replay={1: 2}))
    assert [row["threads"] for row in history] == [1, 2, 1] and script.calls == 2
    history = _fit(TH.Threads(1, replay={1: 2}))           # a set count wins over a record
    assert [row["threads"] for row in history] == [1, 1, 1]


# ---- the trainer: printed, saved mid-epoch, replayed on resume ----

class Spy:
    """A fit callback: BLAS's threads at each batch."""

    def __init__(self):
        self.seen = []

    def batch_begin(self, p):
        self.seen.append((p.epoch, blas_threads()))


def _spy_on_fit(monkeypatch):
    spy, original = Spy(), T.fit

    def spied(model, x, optimizer, epochs, batch_size, rng, callbacks, **kw):
        return original(model, x, optimizer, epochs, batch_size, rng, [*callbacks, spy], **kw)
    monkeypatch.setattr(T, "fit", spied)
    return spy


def _probe(monkeypatch, *answers):
    script = Script(*answers)
    monkeypatch.setattr(TH.Threads, "_time", lambda self, n, set_threads: script(n, set_threads))
    return script


def _run(tmp_path, name):
    return rf.create_run(tmp_path / name, BIG, "toy", TrainConfig(epochs=3, batch_size=32)).dir


def test_a_run_records_each_epoch_and_a_resumed_epoch_reuses_its_count(tmp_path, toy, two,
                                                                      monkeypatch, capsys):
    straight = _run(tmp_path, "straight")
    _probe(monkeypatch, FAST, SLOW, FAST)
    history = T.train(straight, datasets=toy, verbose=True)
    assert [row["threads"] for row in history] == [2, 1, 2]
    err = capsys.readouterr().err
    assert "BLAS threads: auto: 1 or 2" in err and "1 BLAS thread\n" in err
    rows = [json.loads(line) for line in (straight / rf.METRICS).read_text().splitlines()]
    assert [row["threads"] for row in rows] == [2, 1, 2]

    stopped = _run(tmp_path, "stopped")
    _probe(monkeypatch, FAST, SLOW)
    calls, original = [0], VAE.loss

    def loss(self, x, eps=None):                           # Ctrl-C in epoch 2, batch 4
        calls[0] += 1
        if calls[0] == 7 + 1 + 4:                          # 7 batches, 1 test pass, then 4
            signal.raise_signal(signal.SIGINT)
        return original(self, x, eps)
    monkeypatch.setattr(VAE, "loss", loss)
    with pytest.raises(T.TrainingInterrupted):
        T.train(stopped, datasets=toy, verbose=False)
    meta = ckpt.load(stopped / rf.CHECKPOINT)[2]
    assert meta["progress"]["partial"]["threads"] == 1     # epoch 2 began with 1
    monkeypatch.setattr(VAE, "loss", original)

    script = _probe(monkeypatch, FAST, FAST)               # now the probe says 2, always
    spy = _spy_on_fit(monkeypatch)
    history = T.train(stopped, datasets=toy, verbose=False)
    assert [row["threads"] for row in history] == [2, 1, 2]
    assert {k for e, k in spy.seen if e == 1} == {1}       # the replayed epoch: 1, as recorded
    assert {k for e, k in spy.seen if e == 2} == {2}
    assert script.calls == 2                               # at entry, and before epoch 3
    pa, _, ma = ckpt.load(straight / rf.CHECKPOINT)
    pb, _, mb = ckpt.load(stopped / rf.CHECKPOINT)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)   # the same counts: the same bits
    strip = [[{k: v for k, v in r.items() if k != "epoch_seconds"} for r in m["history"]]
             for m in (ma, mb)]
    assert strip[0] == strip[1]


def test_a_set_count_is_used_throughout_and_recorded(tmp_path, toy, two, monkeypatch):
    _probe(monkeypatch)                                    # never called
    spy = _spy_on_fit(monkeypatch)
    history = T.train(_run(tmp_path, "one"), datasets=toy, verbose=False, threads=1)
    assert [row["threads"] for row in history] == [1, 1, 1]
    assert {k for _, k in spy.seen} == {1}
    assert blas_threads() == 2                             # and BLAS's own setting is back
    with pytest.raises(InputError, match="threads must be auto or"):
        T.train(_run(tmp_path, "bad"), datasets=toy, verbose=False, threads=0)


# ---- the flag ----

@pytest.mark.parametrize("text, want", [("auto", "auto"), ("1", 1), ("8", 8)])
def test_the_threads_flag(text, want):
    assert build_parser().parse_args(["train", "--threads", text]).threads == want


def test_without_the_flag_training_is_auto():
    assert build_parser().parse_args(["train"]).threads is None     # cli/train.py: auto
    from minivae.run.config import MachineSettings
    assert MachineSettings.threads == "auto"


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "Auto"])
def test_a_bad_threads_flag_is_refused(text):
    with pytest.raises(UsageError, match="--threads: expected auto or an integer >= 1"):
        build_parser().parse_args(["train", "--threads", text])


@pytest.mark.parametrize("bad", [0, -2, 1.0, True, "2", None])
def test_a_bad_threads_setting_is_refused_by_name(bad):
    with pytest.raises(InputError, match="threads must be auto or"):
        TH.check(bad)


# ---- numba ----

@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no kernels without the JIT")
def test_no_numba_kernel_runs_in_parallel():
    """minivae's kernels are serial: BLAS's threads are the only ones a step uses."""
    kernels = []
    for info in pkgutil.iter_modules(minivae.kernels.__path__):
        module = importlib.import_module(f"minivae.kernels.{info.name}")
        kernels += [f for f in vars(module).values() if isinstance(f, CPUDispatcher)]
    assert len(kernels) >= 10
    assert not [k for k in kernels if k.targetoptions.get("parallel")]


def test_a_resumed_run_may_change_its_threads(tmp_path, toy):
    """Threads are the machine's, not the run's: --resume takes --threads like --epochs."""
    from minivae.cli import train as cli_train
    run_dir = _run(tmp_path, "run")
    args = build_parser().parse_args(["train", "--resume", "--out", str(run_dir),
                                      "--threads", "1"])
    assert cli_train._resumed_run(args).dir == run_dir and args.threads == 1
