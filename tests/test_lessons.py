"""Every lesson runs top to bottom as a notebook, in fast mode; every exercise can be assigned.

Each lesson ``lessons/NN_name.py`` and appendix ``lessons/A_name.py`` (a jupytext percent
script), in reading order (``course.lesson_files()``), is converted to a notebook in memory,
its *solution version* (the exercise stubs removed, ``lessons/course.py``), and executed by a
real Jupyter kernel, cell by cell, the way a student runs it: one test per lesson, failing
with the traceback of the first cell that raises (every derivation in a lesson is followed by
a cell that asserts it, so a false claim fails here). After the lesson, in the same kernel,
each exercise is replayed: its stub, then its check, which must fail; then its solution and
its check again, which must pass. So a student who starts from the stub sees the check fail
until the code is right.

The kernel runs *this* interpreter, in ``lessons/``, with this process's environment plus
MINIVAE_FAST=1, MPLBACKEND=Agg and this checkout first on PYTHONPATH; so it sees
MINIVAE_DATA_MIRROR as set by conftest.py. It is shut down when its test ends, pass or fail
(a test below checks that). With MINIVAE_LESSONS_FULL=1 in the environment the lessons run
at full size instead (slow: see lessons/README.md, or ``python lessons/course.py run --full``).

Select or skip these tests with the ``lessons`` marker: ``pytest -m lessons``, ``-m "not lessons"``.
"""

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.lessons

REPO = Path(__file__).resolve().parents[1]
LESSONS = REPO / "lessons"
FAST_LINE = 'FAST = os.environ.get("MINIVAE_FAST") == "1"'
FULL = os.environ.get("MINIVAE_LESSONS_FULL") == "1"
CELL_TIMEOUT = 7200 if FULL else 600      # seconds per cell; a fast-mode lesson takes ~30 s in all
REPLAY = "minivae_replay"                 # metadata key of the replayed cells that must fail
NOT_YET_IN_EXERCISE_FORMAT = set()             # lessons still to convert (reported as skips)


def load_course():
    """lessons/course.py as a module (it is a script, not part of the minivae package)."""
    spec = importlib.util.spec_from_file_location("course", LESSONS / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


course = load_course()
LESSON_FILES = course.lesson_files()      # reading order: 01_pca.py ... 11_*.py, then A_*.py


def replay(nb):
    """Cells that replay each exercise: stub, check (must raise), solution, check (must pass)."""
    cells = []
    for n, ex in enumerate(course.exercises(nb), 1):
        if not ex["stubs"]:
            continue
        failing = nbformat.from_dict(ex["check"])
        failing.metadata["tags"] = ["raises-exception"]          # nbclient: an error is allowed
        failing.metadata[REPLAY] = n
        cells += [nbformat.from_dict(c) for c in ex["stubs"]] + [failing]
        cells += [nbformat.from_dict(c) for c in ex["solutions"] if c.cell_type == "code"]
        cells.append(nbformat.from_dict(ex["check"]))
    for i, cell in enumerate(cells):
        cell["id"] = f"replay-{i}"                               # cell ids must stay unique
    return cells


@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_lesson_runs_as_a_notebook(path):
    text = path.read_text(encoding="utf-8")
    assert FAST_LINE in text, f"{path.name}: expected the line `{FAST_LINE}` near the top"
    nb = course.read_lesson(path)
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent", (
        f"{path.name}: expected a jupytext percent header (see lessons/README.md)")
    run = course.version(nb, course.SOLUTION)
    run.cells += replay(nb)
    nbformat.validate(run)
    course.run_notebook(run, fast=not FULL, timeout=CELL_TIMEOUT)   # CellExecutionError: traceback
    passed = [c.metadata[REPLAY] for c in run.cells if REPLAY in c.metadata
              and not any(o.output_type == "error" for o in c.outputs)]
    assert not passed, (f"{path.name}: the check of exercise(s) {passed} passes with the stub; "
                        "a student's unfinished code must fail it")


@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_exercises_can_be_assigned(path):
    """At least two exercises; each has a stub, a solution, and a check that asserts; the
    exercise version holds no solution, the solution version no stub."""
    if path.stem in NOT_YET_IN_EXERCISE_FORMAT:
        pytest.skip(f"{path.name}: its exercises are not yet in the stub/solution format of "
                    "lessons/README.md (issue 18)")
    nb = course.read_lesson(path)
    found = course.exercises(nb)
    assert len(found) >= 2, f"{path.name}: expected at least two exercises, found {len(found)}"
    for n, ex in enumerate(found, 1):
        where = f"{path.name}, exercise {n}"
        assert ex["stubs"], f"{where}: no stub cell (tags=[\"exercise\"]) under the question"
        assert any(c.cell_type == "code" for c in ex["solutions"]), f"{where}: no solution cell"
        assert ex["check"] is not None and "assert" in ex["check"].source, (
            f"{where}: expected a check cell with an assert after the solution")
        assert not any(c.cell_type == "code" and "Solution" in c.source for c in ex["stubs"]), where
    exercise_version = course.version(nb, course.EXERCISE)
    assert not any(course.SOLUTION in course.tags(c) for c in exercise_version.cells)
    assert not any(c.cell_type == "code" and c.source.lstrip().startswith("# Solution")
                   for c in exercise_version.cells), f"{path.name}: a solution left untagged"
    solution_version = course.version(nb, course.SOLUTION)
    assert not any(course.EXERCISE in course.tags(c) for c in solution_version.cells)


@pytest.mark.parametrize("fails", [False, True], ids=["passing", "failing"])
def test_each_kernel_is_shut_down_when_its_lesson_ends(fails):
    """A lesson's kernel holds up to a gigabyte: it must not outlive its test, pass or fail."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nprint(os.getpid())"),
        nbformat.v4.new_code_cell("assert False, 'a failing check'" if fails else "x = 1")])
    km = course.python3_kernel()
    if fails:
        with pytest.raises(CellExecutionError, match="a failing check"):
            course.run_notebook(nb, km=km, timeout=60)
    else:
        course.run_notebook(nb, km=km, timeout=60)
    pid = int(nb.cells[0].outputs[0]["text"])
    assert not km.has_kernel
    assert not process_alive(pid), f"the kernel (pid {pid}) is still running"


def process_alive(pid):
    """Is pid a running process (not gone, not a zombie)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


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


# ---- the reading order, and every place that names a lesson ----

def test_lesson_files_lists_main_lessons_by_number_then_appendices_by_letter(tmp_path):
    for name in ("10_b.py", "02_a.py", "B_y.py", "A_z.py", "notes.py", "02_a.ipynb", "course.py"):
        (tmp_path / name).write_text("")
    assert [p.name for p in course.lesson_files(tmp_path)] == ["02_a.py", "10_b.py", "A_z.py",
                                                               "B_y.py"]


def test_every_lesson_file_is_listed_and_numbered_without_gaps():
    listed = {p.name for p in LESSON_FILES}
    scripts = {p.name for p in LESSONS.glob("*.py")} - {"course.py"}
    assert scripts == listed, (f"lessons/ scripts that lesson_files() does not list (name them "
                               f"NN_name.py or A_name.py): {sorted(scripts - listed)}")
    keys = [course.lesson_key(p) for p in LESSON_FILES]
    numbers = [k for k in keys if k.isdigit()]
    letters = [k for k in keys if not k.isdigit()]
    assert numbers == [f"{n:02d}" for n in range(1, len(numbers) + 1)], numbers
    assert letters == [chr(ord("A") + i) for i in range(len(letters))], letters
    assert keys == numbers + letters


@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_each_lesson_title_says_its_number(path):
    key = course.lesson_key(path)
    title = next(line for line in path.read_text(encoding="utf-8").splitlines()
                 if line.startswith("# # "))
    expected = f"# # Lesson {int(key)}: " if key.isdigit() else f"# # Appendix {key}: "
    assert title.startswith(expected), f"{path.name}: title {title!r}, expected {expected!r}..."


def test_run_names_lessons_by_number_letter_or_file():
    def names(*args):
        return [p.name for p in course.select(args)]
    kl, beta, speed = "07_what_the_kl_does.py", "08_beta_vae_disentanglement.py", "A_making_it_fast.py"
    assert names("07") == names("7") == names("07_what_the_kl_does") == names(kl) == [kl]
    assert names("A", "08") == names("a", "8") == [beta, speed]       # in reading order
    assert names() == [p.name for p in LESSON_FILES]
    with pytest.raises(ValueError, match=r"no lesson '12'.*A"):
        course.select(["12"])
    with pytest.raises(SystemExit):
        course.main(["run", "Z"])


def readme_rows(text):
    return [m.groups() for m in map(course.ROW.match, text.split("\n")) if m]


def test_the_readme_table_has_one_row_per_lesson_in_reading_order():
    rows = readme_rows((LESSONS / "README.md").read_text(encoding="utf-8"))
    assert rows == [(course.lesson_key(p), p.stem) for p in LESSON_FILES]


def test_readme_times_are_written_for_every_lesson_and_a_missing_row_is_reported():
    text = (LESSONS / "README.md").read_text(encoding="utf-8")
    fast = {p.stem: 10.0 + i for i, p in enumerate(LESSON_FILES)}
    fast[LESSON_FILES[-1].stem] = None                                # a lesson that failed
    new, missing = course.readme_with_times(text, fast, {}, {"fast": 1.25})
    assert missing == []
    by_stem = {line.split(" | ")[1].strip("`"): line for line in new.split("\n")
               if course.ROW.match(line)}
    for i, p in enumerate(LESSON_FILES[:-1]):
        assert by_stem[p.stem].endswith(f"| {10 + i} s / " + by_stem[p.stem].split(" / ")[-1])
    assert by_stem[LESSON_FILES[-1].stem].split(" | ")[-1].startswith("fails / ")
    assert "load average 1.2" in new.split("<!-- fast -->")[1]
    assert [line.split(" / ")[-1] for line in by_stem.values()] == [
        line.split(" / ")[-1] for line in text.split("\n") if course.ROW.match(line)]  # full kept
    _, missing = course.readme_with_times(text, {"13_not_a_lesson": 1.0}, {}, {"fast": 0.0})
    assert missing == ["13_not_a_lesson"]


LESSON_NAME = re.compile(r"\b(\d\d_[a-z]\w*)|`([A-Z]_[a-z]\w*)(?:\.py)?`|\b([A-Z]_[a-z]\w*)\.py")


def test_every_lesson_named_in_the_course_texts_exists():
    texts = [p for p in LESSON_FILES] + sorted(LESSONS.glob("*.md")) + [REPO / "README.md"]
    wrong = []
    for path in texts:
        for m in LESSON_NAME.finditer(path.read_text(encoding="utf-8")):
            name = next(g for g in m.groups() if g)
            if not name.endswith("_name") and not (LESSONS / f"{name}.py").exists():
                wrong.append(f"{path.name}: {name}")
    assert not wrong, f"names of lessons that do not exist: {wrong}"
