"""Fault injection, signals: Ctrl-C inside numba's compiled code, and signals during downloads.

    Ctrl-C in a jitted call   numba runs a little Python inside a compiled call (to hand arrays
                              back); a KeyboardInterrupt raised there comes out as SystemError
                              "returned a result with an exception set". Sent at exactly that
                              moment (tests/fault_helpers/small_minivae.py --sigint-in-numba):
                              during `evaluate`, during the evaluation at the end of `train`, and
                              as the second Ctrl-C of a training run: exit 130, one line, never a
                              traceback
    SIGTERM / SIGHUP          during `minivae data fetch`: the download's temporary file is gone at
                              once, exit 143 / 129, one line
    leftovers                 a killed download's temporary is removed by the next read of the
                              folder, also when the file was saved there by hand meanwhile

Each subprocess takes one to two seconds; with NUMBA_DISABLE_JIT=1 the helper sends the signals
from a timer (nothing is jitted), and the same assertions hold.
"""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from test_data import PAYLOAD, URLS, FakeServer
from test_faults import EPOCHS, HELPER, PACE, RUN, _env, _intact

from minivae import data
from minivae.data import download, registry
from minivae.run import folder as rf

SMALL = ["--data", "small-sprites", "--hidden", "8", "--latent", "2", "--batch-size", "32"]


def _cli(args, tmp, pace=None, timeout=120):
    """Run the helper's command line to the end: (exit status, stdout, stderr)."""
    p = subprocess.run([sys.executable, str(HELPER), *(["--pace", pace] if pace else []), *args],
                       env=_env(tmp), capture_output=True, text=True, timeout=timeout,
                       check=False)
    return p.returncode, p.stdout, p.stderr


def _one_line(err):
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "SystemError" not in err, err
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch run of the helper's small VAE, made by `minivae train`."""
    tmp = tmp_path_factory.mktemp("signals")
    run_dir = tmp / "run"
    code, _, err = _cli(["train", *SMALL, "--epochs", "1", "--iwae-k", "0", "--no-figures",
                         "--quiet", "--out", str(run_dir)], tmp)
    assert code == 0, err
    return run_dir


def test_ctrl_c_inside_a_jitted_call_during_evaluate(trained, tmp_path):
    """10^5 importance samples would take minutes; Ctrl-C lands inside a jitted call."""
    code, out, err = _cli(["--sigint-in-numba", "evaluate", "evaluate", str(trained),
                           "--iwae-k", "100000"], tmp_path)
    assert code == 130, err
    assert _one_line(err) == "minivae: interrupted" and out == ""


def test_ctrl_c_inside_a_jitted_call_at_the_end_of_train(tmp_path):
    """Training is over and saved when the final evaluation is interrupted: the line says so
    and how to finish; the checkpoint holds every epoch."""
    run_dir = tmp_path / "run"
    code, _, err = _cli(["--sigint-in-numba", "evaluate", "train", *SMALL, "--epochs", "2",
                         "--iwae-k", "100000", "--quiet", "--out", str(run_dir)], tmp_path)
    assert code == 130, err
    line = _one_line(err.split(f"run folder: {run_dir}\n", 1)[1])
    assert line == (f"minivae: interrupted while evaluating it; the trained run is saved in "
                    f"{run_dir} (`minivae evaluate {run_dir}` does the rest)")
    assert _intact(run_dir) == 2 and not (run_dir / rf.EVALUATION).exists()


def test_a_second_ctrl_c_inside_a_jitted_call_stops_training_at_once(tmp_path):
    """The first Ctrl-C asks for a stop after the batch; the second, raised inside a jitted
    call, stops at once: the trainer's own message, the last checkpoint kept and whole."""
    run_dir = tmp_path / "run"
    code, _, err = _cli(["--sigint-in-numba", "fit", *RUN, "--out", str(run_dir)], tmp_path,
                        pace=PACE)
    assert code == 130, err
    assert "Traceback" not in err and "SystemError" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("minivae: stopped at once;"), err
    assert last.endswith(f"continue with `minivae train --resume --out {run_dir}`")
    assert (_intact(run_dir) or 0) < EPOCHS


FETCH_TINY_CLI = """
import sys
from minivae.cli import main
from minivae.data import registry
url, size, sha256 = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = registry.FileInfo("tiny", "tiny.bin", size, sha256, "train", "images", (url,))
registry.DATASETS["tiny"] = registry.DatasetInfo("tiny", "test data", "tests", "none", (1, 1),
                                                  {"train": 1}, (f,))
sys.exit(main(["data", "fetch", "tiny"]))
"""


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """A one-file data set 'tiny' (test_data.py's), its cache in tmp_path, and the server."""
    f = registry.FileInfo("tiny", "tiny.bin", len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest(),
                          "train", "images", URLS)
    monkeypatch.setitem(registry.DATASETS, "tiny", registry.DatasetInfo(
        "tiny", "test data", "tests", "none", (1, 1), {"train": 1}, (f,)))
    monkeypatch.setenv("MINIVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    return f, FakeServer(monkeypatch)


def _stall_after_half(server, url):
    """Serve half the payload, then wait: (sending, release) events."""
    sending, release = threading.Event(), threading.Event()

    def half_then_stall(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(PAYLOAD)))
        handler.end_headers()
        handler.wfile.write(PAYLOAD[:len(PAYLOAD) // 2])
        handler.wfile.flush()
        sending.set()
        release.wait(60)
    server.pages[url] = half_then_stall
    return sending, release


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_sigterm_or_sighup_during_data_fetch_cleans_up_at_once(tiny, sig):
    """The library leaves a temporary for the next fetch to remove (test_data.py); the
    command line turns the signal into an exception, so the temporary goes at once."""
    f, server = tiny
    sending, release = _stall_after_half(server, URLS[0])
    folder = data.data_dir() / f.folder
    p = subprocess.Popen([sys.executable, "-c", FETCH_TINY_CLI, URLS[0], str(f.size), f.sha256],
                         env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert sending.wait(60), "the fetch never reached the server"
        time.sleep(0.2)
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    finally:
        release.set()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == f"minivae: stopped by {sig.name}", err
    assert "Traceback" not in err
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_killed_downloads_temporary_goes_once_the_file_is_there(tiny):
    """A download killed with SIGKILL leaves pooch's temporary; the user then saves the file
    by hand, as the error message suggests. The next read of the folder removes the
    temporary, though it downloads nothing (and a read while a download holds the folder
    leaves it)."""
    f, server = tiny
    folder = data.data_dir() / f.folder
    folder.mkdir(parents=True)
    (folder / "tmpab12cd34").write_bytes(PAYLOAD[:100])          # what SIGKILL leaves
    (folder / f.name).write_bytes(PAYLOAD)                       # saved by hand
    assert data.fetch("tiny") == [folder / f.name]
    assert sorted(p.name for p in folder.iterdir()) == [f.name] and server.requested == []
    with download._downloading_into(folder):                     # a download under way
        (folder / "tmpzz99yy88").write_bytes(b"in progress")
        assert data.fetch("tiny") == [folder / f.name]
        assert (folder / "tmpzz99yy88").exists()                 # not a leftover: kept
