"""Tools for the course: exercise and solution versions of each lesson; running lessons, timed.

Each lesson ``lessons/NN_name.py`` (and each appendix, ``lessons/A_name.py``) holds, for every
exercise, three kinds of code cell:

    # %% tags=["exercise"]     the stub a student starts from: it runs, and the check fails
    # %% tags=["solution"]     the worked solution (a Markdown cell may carry the tag too)
    # %%                       the check: asserts that pass once the code above is right

The lesson file itself runs the stub and then the solution, so it passes top to bottom.
From it this script makes two notebooks (the scikit-learn MOOC's ``_ex`` and ``_sol``):

    exercise version   solution cells removed: hand it to students; every check fails
                       until the student's code is right
    solution version   stubs removed: what the tests run

Usage, from the repository root:

    python lessons/course.py versions [--out build/lessons]      both versions of every lesson
    python lessons/course.py run [--full] [--readme] [NN ...]     run lessons, print the times
    python lessons/course.py list                                 the lessons in reading order

A lesson is named on the command line by its number or letter (``04``, ``4``, ``A``) or its
file's name (``04_elbo``, ``A_making_it_fast.py``).

``run`` executes each lesson's solution version as a notebook in a fresh Jupyter kernel (the
way the tests do), in fast mode or at ``--full`` size, and shuts the kernel down when the
lesson ends, pass or fail. With ``--readme`` it writes the measured times into the run-time
column of lessons/README.md.
"""

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat

LESSONS = Path(__file__).resolve().parent
REPO = LESSONS.parent
MAIN, APPENDIX = "[0-9][0-9]_*.py", "[A-Z]_*.py"     # 01_pca.py ...; A_making_it_fast.py ...
EXERCISE, SOLUTION = "exercise", "solution"
EXERCISE_NOTE = ("*Exercise version.* The solutions are not in this notebook. Below each "
                 "exercise, write your code in the cell that says so; the check cell after it "
                 "fails until your code is right.")


def lesson_files(folder=LESSONS):
    """The lessons in reading order: the main lessons ``NN_name.py`` by number, then the
    appendices ``A_name.py``, ``B_name.py``, ... by letter."""
    folder = Path(folder)
    return sorted(folder.glob(MAIN)) + sorted(folder.glob(APPENDIX))


def lesson_key(path):
    """What names a lesson on the command line and in lessons/README.md's table: "04", "A"."""
    return Path(path).name.partition("_")[0]


def select(names, paths=None):
    """The lessons named (by number, letter or file name; all of them if none), in reading
    order. An unknown name raises ValueError, saying which names exist."""
    paths = lesson_files() if paths is None else list(paths)
    chosen = set()
    def names_of(path):                                  # "04", "4", "04_ELBO"; "A", ...
        key = lesson_key(path).upper()
        return {key, path.stem.upper()} | ({str(int(key))} if key.isdigit() else set())

    for name in names:
        name = str(name).strip()
        stem = name.removesuffix(".py").upper()
        stem = str(int(stem)) if stem.isdigit() else stem             # "004" is lesson 4 too
        found = [p for p in paths if stem in names_of(p)]
        if not found:
            known = ", ".join(lesson_key(p) for p in paths)
            raise ValueError(f"no lesson {name!r}: expected a lesson's number or letter "
                             f"({known}) or its file's name, e.g. {paths[0].stem}")
        chosen.update(found)
    return [p for p in paths if p in chosen] if names else paths


# ---- exercise and solution versions ----

def tags(cell):
    return set(cell.get("metadata", {}).get("tags", []))


def read_lesson(path):
    """The lesson at ``path`` as a notebook (nbformat v4), every cell as written."""
    return jupytext.reads(Path(path).read_text(encoding="utf-8"), fmt="py:percent")


def version(nb, which):
    """A copy of nb with the cells of the other version removed: which = "exercise" drops
    the solution cells, which = "solution" drops the stubs."""
    if which not in (EXERCISE, SOLUTION):
        raise ValueError(f"version: expected 'exercise' or 'solution', got {which!r}")
    drop = SOLUTION if which == EXERCISE else EXERCISE
    out = nbformat.from_dict(nb)                                    # a deep copy
    out.cells = [c for c in out.cells if drop not in tags(c)]
    if which == EXERCISE:
        out.cells.insert(1, nbformat.v4.new_markdown_cell(EXERCISE_NOTE))
    return out


def exercises(nb):
    """The exercises of a lesson, in order: dicts with the question (Markdown source), the
    setup (cells right after the question that the exercise gives, e.g. a forward pass), the
    stub cells, the solution cells and the check cell (the first code cell after them)."""
    found, cells = [], nb.cells
    i = 0
    while i < len(cells):
        c = cells[i]
        if _starts_exercise(c):
            ex = {"question": c.source, "setup": [], "stubs": [], "solutions": [], "check": None}
            j = i + 1
            k = j                                                # setup: untagged cells
            while k < len(cells) and not tags(cells[k]) and not _starts_exercise(cells[k]):
                k += 1                                           # up to the first stub
            if k < len(cells) and tags(cells[k]) & {EXERCISE, SOLUTION}:
                ex["setup"], j = cells[j:k], k
            while j < len(cells) and (EXERCISE in tags(cells[j]) or SOLUTION in tags(cells[j])):
                ex["stubs" if EXERCISE in tags(cells[j]) else "solutions"].append(cells[j])
                j += 1
            if j < len(cells) and cells[j].cell_type == "code":
                ex["check"] = cells[j]
            found.append(ex)
            i = j
        else:
            i += 1
    return found


def _starts_exercise(cell):
    return cell.cell_type == "markdown" and re.search(r"\*\*Exercise \d+", cell.source)


def write_versions(out_dir):
    """NN_name_ex.ipynb and NN_name_sol.ipynb for every lesson (and appendix), into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in lesson_files():
        nb = read_lesson(path)
        for which, suffix in ((EXERCISE, "ex"), (SOLUTION, "sol")):
            target = out_dir / f"{path.stem}_{suffix}.ipynb"
            nbformat.write(version(nb, which), target)
            print(f"wrote {target}")


# ---- running lessons as notebooks ----

def kernel_env(fast=True):
    """This process's environment, headless, importing this checkout's minivae; MINIVAE_FAST=1
    in fast mode, and unset at full size."""
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("MINIVAE_FAST", None)
    if fast:
        env["MINIVAE_FAST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def python3_kernel():
    """A kernel manager for the ``python3`` kernel of the running interpreter.

    With no kernelspec directories searched, jupyter_client falls back to ipykernel's own
    ``python3`` spec, which launches sys.executable: a ``python3`` kernelspec installed for
    some other Python (e.g. by ``ipykernel install --user``) cannot be picked up instead.
    """
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))


def run_notebook(nb, *, fast=True, timeout=600, km=None):
    """Execute nb in place, cell by cell, in a new kernel (``km``, or a fresh python3 one),
    with lessons/ as the working directory. The kernel is shut down when this returns or
    raises (CellExecutionError carries the failing cell's traceback)."""
    from nbclient import NotebookClient
    km = python3_kernel() if km is None else km
    client = NotebookClient(nb, km=km, timeout=timeout,
                            resources={"metadata": {"path": str(LESSONS)}},
                            extra_arguments=["--InteractiveShell.colors=nocolor"])
    try:
        client.execute(env=kernel_env(fast), cleanup_kc=True)    # shuts the kernel down ...
    finally:
        if km.has_kernel:                                        # ... and so does this, if
            km.shutdown_kernel(now=True)                         # execute could not
    return nb


def time_lessons(paths, fast):
    """Run each lesson's solution version; {stem: seconds or None if it failed}, and the
    machine's mean load average over the runs (other processes slow the lessons down)."""
    from nbclient.exceptions import CellExecutionError
    times, loads = {}, []
    for path in paths:
        loads.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        try:
            run_notebook(version(read_lesson(path), SOLUTION), fast=fast,
                         timeout=600 if fast else 7200)
            times[path.stem] = time.perf_counter() - t0
        except CellExecutionError as e:
            times[path.stem] = None
            print(f"{path.name}: FAILED\n{str(e)[-3000:]}", file=sys.stderr)
        mode = "fast" if fast else "full"
        shown = "failed" if times[path.stem] is None else f"{times[path.stem]:.0f} s"
        print(f"{path.stem:40s} {mode}: {shown}", flush=True)
    loads.append(os.getloadavg()[0])
    return times, sum(loads) / len(loads)


def seconds(t):
    if t is None:
        return "fails"
    return f"{t:.0f} s" if t < 100 else f"{t / 60:.1f} min"


ROW = re.compile(r"\| (\w+) \| `(\w+)` \|")      # | 04 | `04_elbo` | ... | fast / full |


def readme_with_times(text, fast, full, load):
    """lessons/README.md's text with the times written into the last column (fast / full) of
    its table, and when and where each column was measured into the note under it. fast, full:
    {stem: seconds, or None if the lesson failed}; load: {mode: the mean load average during
    the runs}. Returns the new text and the stems measured that have no row in the table."""
    lines, rows = text.split("\n"), set()
    for i, line in enumerate(lines):
        m = ROW.match(line)
        if not m:
            continue
        stem = m.group(2)
        rows.add(stem)
        cells = line.split(" | ")
        old_fast, _, old_full = cells[-1].rstrip(" |").partition(" / ")
        new_fast = seconds(fast[stem]) if stem in fast else old_fast
        new_full = seconds(full[stem]) if stem in full else old_full
        cells[-1] = f"{new_fast} / {new_full} |"
        lines[i] = " | ".join(cells)
    text = "\n".join(lines)
    for mode, measured in (("fast", fast), ("full", full)):
        if measured:
            where = (f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
                     f"{load[mode]:.1f}, OPENBLAS_NUM_THREADS="
                     f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
            text = re.sub(f"<!-- {mode} -->.*?<!-- /{mode} -->",
                          f"<!-- {mode} -->{where}<!-- /{mode} -->", text, flags=re.DOTALL)
    return text, sorted((set(fast) | set(full)) - rows)


def update_readme(fast, full, load):
    """Write the times into lessons/README.md (``readme_with_times``); say which lessons have
    no row there. Returns True if every lesson measured found its row."""
    readme = LESSONS / "README.md"
    text, missing = readme_with_times(readme.read_text(encoding="utf-8"), fast, full, load)
    readme.write_text(text, encoding="utf-8")
    for stem in missing:
        print(f"lessons/README.md: no row | {lesson_key(stem)} | `{stem}` | in the lessons "
              "table, so its time was not written: add the row", file=sys.stderr)
    return not missing


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("versions", help="write the exercise and solution notebooks")
    v.add_argument("--out", default=str(REPO / "build" / "lessons"))
    r = sub.add_parser("run", help="run lessons as notebooks and print their run times")
    r.add_argument("lessons", nargs="*",
                   help="lesson numbers or letters (default: all), e.g. 04 06 A")
    r.add_argument("--full", action="store_true", help="at full size (default: fast mode)")
    r.add_argument("--both", action="store_true", help="fast mode, then full size")
    r.add_argument("--readme", action="store_true",
                   help="write the times into lessons/README.md's table")
    sub.add_parser("list", help="print the lessons' files in reading order")
    args = ap.parse_args(argv)
    if args.command == "versions":
        write_versions(args.out)
        return 0
    if args.command == "list":
        print("\n".join(p.name for p in lesson_files()))
        return 0
    try:
        paths = select(args.lessons)
    except ValueError as e:
        r.error(str(e))
    modes = [True, False] if args.both else [not args.full]
    fast, full, load = {}, {}, {}
    for is_fast in modes:
        times, load["fast" if is_fast else "full"] = time_lessons(paths, is_fast)
        (fast if is_fast else full).update(times)
    written = update_readme(fast, full, load) if args.readme else True
    return 0 if written and all(t is not None for t in {**fast, **full}.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
