"""Every lesson runs top to bottom as a notebook, in fast mode.

Each ``lessons/NN_name.py`` (a jupytext percent script) is converted to a notebook in memory
and executed by a real Jupyter kernel, cell by cell, the way a student runs it: one test per
lesson, failing with the traceback of the first cell that raises (every derivation in a lesson
is followed by a cell that asserts it, so a false claim fails here).

The kernel runs *this* interpreter (whatever ``python3`` kernelspec the machine has), in
``lessons/``, with this process's environment plus MINIVAE_FAST=1, MPLBACKEND=Agg and this
checkout first on PYTHONPATH; so it sees MINIVAE_DATA_MIRROR as set by conftest.py.

Select or skip these tests with the ``lessons`` marker: ``pytest -m lessons``, ``-m "not lessons"``.
"""

import json
import os
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

pytestmark = pytest.mark.lessons

REPO = Path(__file__).resolve().parents[1]
LESSONS = REPO / "lessons"
LESSON_FILES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))
CELL_TIMEOUT = 600          # seconds per cell; a fast-mode lesson takes ~30 s in all
FAST_LINE = 'FAST = os.environ.get("MINIVAE_FAST") == "1"'


def kernel_env():
    """This process's environment, in fast mode, headless, importing this checkout's minivae."""
    env = dict(os.environ, MINIVAE_FAST="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def python3_kernel():
    """A kernel manager for the ``python3`` kernel of the running interpreter.

    With no kernelspec directories searched, jupyter_client falls back to ipykernel's own
    ``python3`` spec, which launches sys.executable: a ``python3`` kernelspec installed for
    some other Python (e.g. by ``ipykernel install --user``) cannot be picked up instead.
    """
    specs = KernelSpecManager(kernel_dirs=[])
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_lesson_runs_as_a_notebook(path):
    text = path.read_text(encoding="utf-8")
    assert FAST_LINE in text, f"{path.name}: expected the line `{FAST_LINE}` near the top"
    nb = jupytext.reads(text, fmt="py:percent")
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent", (
        f"{path.name}: expected a jupytext percent header (see lessons/README.md)")
    nbformat.validate(nb)
    client = NotebookClient(nb, km=python3_kernel(), timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(LESSONS)}},
                            extra_arguments=["--InteractiveShell.colors=nocolor"])
    client.execute(env=kernel_env())     # raises CellExecutionError with the cell's traceback


def test_there_are_lessons():
    assert LESSON_FILES, f"no lessons/NN_name.py found in {LESSONS}"


def tracked_notebooks():
    """lessons/*.ipynb tracked by git (all of them when this is not a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "lessons/*.ipynb"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(LESSONS.glob("*.ipynb"))
    return [REPO / p for p in out.split("\0") if p]


def test_committed_notebooks_carry_no_outputs():
    dirty = []
    for path in tracked_notebooks():
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("outputs") or cell.get("execution_count") is not None:
                dirty.append(f"{path.name} cell {i}")
    assert not dirty, ("notebooks committed with outputs (clear them, or better keep the lesson "
                       f"as a .py percent script only): {dirty}")

