"""Fault injection, the environment a command runs in: settings that would stop it, a plotting
backend that does not exist, a reader of stdout that goes away.

    ~user paths          MINIVAE_DATA_DIR or MINIVAE_DATA_MIRROR = ~nosuchuser/...: one line
                         naming the variable (the library: a DatasetError)
    NUMBA_NUM_THREADS    0 (or not a number) made importing numba fail, so even `minivae --help`:
                         set aside before numba is imported, said in one line
    MPLBACKEND=bogus     matplotlib refuses to import; minivae draws with Agg, said in one line,
                         and a finished training run is never lost to its figures: any failure
                         while drawing them says the run is saved and how to draw them later
    a closed pipe        `minivae evaluate RUN --json | head`: exit 141, as any program killed by
                         SIGPIPE, and nothing on stderr
"""

import os
import subprocess
import sys

import pytest
from helpers import one_error_line
from test_faults import HELPER, _env, small_minivae

from minivae import data
from minivae.cli import main
from minivae.data import registry
from minivae.run import folder as rf

NOBODY = "~minivae-no-such-user"
SMALL = ["--data", "small-sprites", "--hidden", "8", "--latent", "2", "--batch-size", "32"]


@pytest.mark.parametrize("variable", ["MINIVAE_DATA_DIR", "MINIVAE_DATA_MIRROR"])
def test_a_tilde_for_a_user_that_does_not_exist_is_one_line(monkeypatch, capsys, variable):
    """(With a mirror that holds mnist, the data folder is never needed: no mirror here.)"""
    monkeypatch.delenv("MINIVAE_DATA_MIRROR", raising=False)
    monkeypatch.setenv(variable, f"{NOBODY}/data")
    for argv in (["data", "list"], ["data", "fetch", "mnist"]):
        line = one_error_line(capsys, main(argv))
        assert line == (f"minivae: error: {variable}='{NOBODY}/data': cannot expand {NOBODY} "
                        f"(no user '{NOBODY[1:]}' on this machine); set {variable} to a folder "
                        f"path" + (", e.g. $HOME/minivae-data" if variable.endswith("DIR")
                                   else ""))
    with pytest.raises(data.DatasetError, match=variable):
        data.load("mnist", "test")


def _python_m_minivae(args, **env):
    return subprocess.run([sys.executable, "-m", "minivae", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120, check=False)


@pytest.mark.parametrize("value", ["0", "many"])
def test_numba_num_threads_that_numba_refuses_is_set_aside(value):
    p = _python_m_minivae(["--help"], NUMBA_NUM_THREADS=value)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: minivae")
    assert p.stderr.strip().splitlines() == [
        (f"minivae: NUMBA_NUM_THREADS='{value}' is not a positive integer; ignored (numba uses "
         f"one thread per core, {os.cpu_count()} here)")]


def test_a_bogus_plotting_backend_costs_nothing(tmp_path):
    """MPLBACKEND=bogus: the run trains, evaluates and draws its figures with Agg; one warning."""
    run_dir = tmp_path / "run"
    p = subprocess.run([sys.executable, str(HELPER), "train", *SMALL, "--epochs", "1",
                        "--iwae-k", "0", "--quiet", "--out", str(run_dir)],
                       env={**_env(tmp_path), "MPLBACKEND": "bogus"}, capture_output=True,
                       text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[1:] == [
        ("minivae: warning: MPLBACKEND='bogus' is not a matplotlib backend; figures are drawn "
         "with Agg (image files) instead"),
        (f"saved in {run_dir}: config.json, checkpoint.npz, metrics.jsonl, evaluation.json, "
         f"figures/ ({len(list((run_dir / 'figures').glob('*.png')))} images)")]


@pytest.fixture
def small_sprites(monkeypatch):
    """The fault helper's `small-sprites` data set, in this process."""
    monkeypatch.setitem(registry.DATASETS, small_minivae.NAME, small_minivae.info())
    monkeypatch.setattr(data, "load", small_minivae.small_load)


@pytest.mark.parametrize("failure", [RuntimeError("Cannot load backend 'TkAgg'"),
                                     ImportError("No module named 'tkinter'")],
                         ids=["RuntimeError", "ImportError"])
def test_figures_that_fail_never_cost_the_trained_run(small_sprites, tmp_path, monkeypatch,
                                                      capsys, failure):
    """Whatever goes wrong in drawing, after training: one line saying the run is saved and
    evaluated, and how to draw the figures later."""
    from minivae.cli import view

    def fail(run_dir, seed):
        raise failure
    monkeypatch.setattr(view, "draw_figures", fail)
    run_dir = tmp_path / "run"
    code = main(["train", *SMALL, "--epochs", "1", "--iwae-k", "0", "--quiet", "--out",
                 str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[0] == f"run folder: {run_dir}" and len(err) == 2, err
    assert err[1] == (f"minivae: error: the trained run is saved in {run_dir}, but drawing its "
                    f"figures failed: {failure}; `minivae figures {run_dir}` tries again")
    assert (run_dir / rf.CHECKPOINT).is_file() and (run_dir / rf.EVALUATION).is_file()


def test_evaluate_json_into_a_closed_pipe_is_quiet(small_sprites, tmp_path):
    """`minivae evaluate RUN --json | head -c 0`: the reader is gone before the first write."""
    run_dir = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--iwae-k", "0", "--quiet", "--no-figures",
                 "--out", str(run_dir)]) == 0
    p = subprocess.Popen([sys.executable, str(HELPER), "evaluate", str(run_dir), "--json",
                          "--iwae-k", "2"], env=_env(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()                                    # as `head` does when it has enough
    err = p.stderr.read()
    assert p.wait(120) == 141, err
    assert err == ""
