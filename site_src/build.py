"""Build the course as a static, offline website: build/site/ (open build/site/index.html, or
serve it with `python -m http.server -d build/site`; the explorer loads its models over HTTP).

    python site_src/build.py                 fast mode (MINIVAE_FAST=1 lessons, tiny explorer
                                             models): a few minutes on 2 cores
    python site_src/build.py --full          every lesson and both explorer models at full size

What it writes before `mkdocs build` turns it into build/site/:

    index.md, explorer.md, assets/    site_src/pages/, as they are (into build/site-src/fast/
                                      docs/, or full/docs/ at full size)
    lessons/NN_name.md                every lesson executed as a notebook (lessons/course.py),
                                      its figures and printed numbers; exercise solutions
                                      collapsed under the exercise
    lessons/index.md                  the lessons in reading order, with their run times
    notation.md, references.md        lessons/NOTATION.md and lessons/REFERENCES.md
    cli/COMMAND.md                    `minivae COMMAND --help`, for every command
    api/MODULE.md                     the docstrings of every public module of minivae
    explorer/*.json                   two VAEs trained by `minivae train`, written by
                                      `minivae export`: a 2-D MNIST VAE and a sprites beta-VAE
    assets/mathjax/                   MathJax, from the jupyter-server-mathjax package

Executed lessons are kept in build/site-cache/, keyed by the lesson's code cells, the mode and
minivae's source: after a change of text only, a rebuild runs no lesson. The explorer's runs
are kept in build/site-runs/ and trained again only when their command changes.
"""

import argparse
import base64
import hashlib
import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "lessons"))
sys.path.insert(0, str(REPO))

import course

SRC = REPO / "build" / "site-src"            # fast/ and full/: mkdocs.yml, and docs/: the pages
DOCS = SRC / "fast" / "docs"                 # the pages being written (set by build)
CACHE = REPO / "build" / "site-cache"
RUNS = REPO / "build" / "site-runs"
OUT = REPO / "build" / "site"

# The explorer's models: `minivae train` flags at full size and in fast mode.
EXPLORERS = {
    "mnist-2d": {
        "title": "MNIST, a 2-D latent space",
        "full": ["--data", "mnist", "--hidden", "512", "--latent", "2", "--epochs", "30"],
        "fast": ["--data", "mnist", "--hidden", "64", "--latent", "2", "--epochs", "1"],
    },
    "sprites-beta": {
        "title": "sprites, a beta-VAE with beta = 4",
        "full": ["--data", "sprites", "--hidden", "512", "--latent", "10", "--beta", "4",
                 "--epochs", "60"],
        "fast": ["--data", "sprites", "--hidden", "128", "--latent", "10", "--beta", "4",
                 "--epochs", "3"],
    },
}
COMMON = ["--seed", "0", "--iwae-k", "0", "--no-figures", "--quiet"]
RUNNER = 2                      # how lessons are run here; a new number runs them again


def say(msg):
    print(f"site: {msg}", flush=True)


def lesson_files():
    """The lessons in reading order (main lessons, then appendices)."""
    return course.lesson_files()


def title_of(nb, fallback):
    """The first Markdown heading of a notebook."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.MULTILINE)
            if m:
                return m.group(1).strip()
    return fallback


def nav_title(text):
    """A title for the navigation: $\\beta$ as β (Greek letters as Unicode, so that a page
    without maths needs no MathJax); other maths as \\(...\\), which MathJax typesets there."""
    def plain(m):
        tex = m.group(1)
        try:
            return re.sub(r"\\([A-Za-z]+)",
                          lambda g: unicodedata.lookup(f"GREEK SMALL LETTER {g.group(1)}"), tex)
        except KeyError:
            return f"\\({tex}\\)"
    return re.sub(r"\$([^$]+)\$", plain, text)


# ---- running the lessons, with a cache ----

def source_hash():
    """A hash of minivae's source: a change to the library runs the lessons again."""
    h = hashlib.sha256()
    for p in sorted((REPO / "minivae").rglob("*.py")):
        h.update(p.relative_to(REPO).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def code_key(nb, fast, library):
    """What a lesson's outputs depend on: its code cells, the mode, minivae's source."""
    h = hashlib.sha256(f"{RUNNER}\n{'fast' if fast else 'full'}\n{library}\n".encode())
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode() + b"\0")
    return h.hexdigest()


def cache_paths(path, fast):
    mode = "fast" if fast else "full"
    return CACHE / f"{path.stem}.{mode}.ipynb", CACHE / f"{path.stem}.{mode}.json"


def from_cache(path, fast, library, keep=False):
    """The lesson at ``path`` with the outputs of its cached run, and that run's seconds; or
    None when its code, the mode or minivae changed since (``keep``: when its code or the
    mode changed, whatever minivae's source). Markdown is always the file's."""
    import nbformat
    nb = course.read_lesson(path)
    cached_nb, cached_meta = cache_paths(path, fast)
    if not (cached_nb.exists() and cached_meta.exists()):
        return None
    meta = json.loads(cached_meta.read_text())
    if keep and meta.get("code") != code_key(nb, fast, ""):
        return None
    if not keep and meta.get("key") != code_key(nb, fast, library):
        return None
    old = nbformat.read(cached_nb, as_version=4)
    codes = iter(c for c in old.cells if c.cell_type == "code")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = next(codes).outputs
    return nb, meta["seconds"]


def run_lesson(path, fast, library):
    """Run the lesson at ``path`` top to bottom (stubs, then solutions, as the file does) in a
    fresh kernel, and keep the result in the cache.   -> (notebook, seconds)."""
    import nbformat
    nb = course.read_lesson(path)
    inline = nbformat.v4.new_code_cell("%matplotlib inline")     # figures as outputs (the
    nb.cells.insert(0, inline)                                   # kernel's MPLBACKEND is Agg)
    t0 = time.perf_counter()
    course.run_notebook(nb, fast=fast, timeout=600 if fast else 7200)
    seconds = time.perf_counter() - t0
    nb.cells.remove(inline)
    cached_nb, cached_meta = cache_paths(path, fast)
    CACHE.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, cached_nb)
    cached_meta.write_text(json.dumps({"key": code_key(nb, fast, library),
                                       "code": code_key(nb, fast, ""), "seconds": seconds,
                                       "mode": "fast" if fast else "full",
                                       "date": time.strftime("%Y-%m-%d")}))
    say(f"{path.stem}: ran in {seconds:.0f} s")
    return nb, seconds


def executed(paths, fast, library, jobs, keep=False):
    """{path: (notebook with outputs, seconds)}: from the cache, or run ``jobs`` at a time; an
    appendix (A_...: it times BLAS and threads on the machine as it is) runs alone, after."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    done, todo = {}, []
    for path in paths:
        hit = from_cache(path, fast, library, keep)
        if hit is None:
            todo.append(path)
        else:
            done[path] = hit
            say(f"{path.stem}: outputs from the cache ({hit[1]:.0f} s when run)")
    if todo:
        say(f"running {len(todo)} lessons in {'fast mode' if fast else 'full size'}, "
            f"{jobs} at a time: {' '.join(p.stem for p in todo)}")
        alone = [p for p in todo if not p.stem[0].isdigit()]  # the appendix: never beside one
        # spawned, not forked: a forked copy of a process that has threads (BLAS's, pytest's)
        # can wait forever on a lock one of those threads held
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=spawn) as pool:
            futures = {path: pool.submit(run_lesson, path, fast, library)
                       for path in todo if path not in alone}
            for path, future in futures.items():
                done[path] = future.result()                 # a failed lesson stops the build
        for path in alone:
            done[path] = run_lesson(path, fast, library)
    return {path: done[path] for path in paths}


# ---- a notebook as a Markdown page ----

def fence(text, lang=""):
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def outputs_md(cell, images, stem, counter):
    """The outputs of a code cell as Markdown; PNG figures written into ``images``."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(fence(out.get("text", ""), "text"))
        elif kind in ("display_data", "execute_result"):
            d = out.get("data", {})
            if "image/png" in d:
                counter[0] += 1
                name = f"{stem}-{counter[0]:02d}.png"
                images.mkdir(parents=True, exist_ok=True)
                (images / name).write_bytes(base64.b64decode(d["image/png"]))
                parts.append(f"![Figure {counter[0]} of {stem}]({images.name}/{name})\n")
            elif "text/plain" in d:
                parts.append(fence(d["text/plain"], "text"))
        elif kind == "error":
            raise RuntimeError(f"{stem}: a cell failed: {out.get('ename')}: {out.get('evalue')}")
    if not parts:
        return ""
    return '<div class="cell-output" markdown>\n\n' + "\n".join(parts) + "\n</div>\n"


def cell_md(cell, images, stem, counter):
    if cell.cell_type == "markdown":
        return cell.source.strip() + "\n"
    if cell.cell_type == "code":
        return fence(cell.source, "python") + "\n" + outputs_md(cell, images, stem, counter)
    return ""


def indent(text):
    return "\n".join(("    " + line) if line.strip() else "" for line in text.split("\n"))


def lesson_md(nb, stem, images):
    """The page of one executed lesson: every cell in order; consecutive solution cells
    inside one collapsed "Solution" block."""
    blocks, solution, counter = [], [], [0]
    for cell in nb.cells + [None]:
        if cell is not None and course.SOLUTION in course.tags(cell):
            solution.append(cell_md(cell, images, stem, counter))
            continue
        if solution:
            blocks.append('??? success "Solution"\n\n' + indent("\n".join(solution)) + "\n")
            solution = []
        if cell is not None:
            blocks.append(cell_md(cell, images, stem, counter))
    return "\n".join(blocks)


def write_lessons(fast, library, names=(), jobs=1, keep=False):
    rows, pages = [], []
    paths = course.select(names, lesson_files()) if names else lesson_files()
    runs = executed(paths, fast, library, jobs, keep)
    for path in paths:
        nb, seconds = runs[path]
        title = title_of(nb, path.stem)
        page = DOCS / "lessons" / f"{path.stem}.md"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(relink(lesson_md(nb, path.stem, page.parent / f"{path.stem}_files"),
                               "lessons/"), encoding="utf-8")
        rows.append((course.lesson_key(path), title, path.stem, seconds))
        pages.append({nav_title(title): f"lessons/{path.stem}.md"})
    mode = "fast mode (MINIVAE_FAST=1)" if fast else "full size"
    table = ["| | lesson | run time |", "|---|---|---|"]
    table += [f"| {key} | [{title}]({stem}.md) | {course.seconds(s)} |"
              for key, title, stem, s in rows]
    intro = ("Read them in order. Each page is the lesson executed top to bottom, with its "
             "figures and printed numbers; each exercise's solution is folded under it. Every "
             f"lesson is also a Python script in `lessons/` that runs as a notebook.\n\nRun "
             f"times: as measured when this site was built, in {mode}, on "
             f"{os.cpu_count()} cores, up to {jobs} lessons at a time.\n")
    (DOCS / "lessons" / "index.md").write_text("# Lessons\n\n" + intro + "\n" + "\n".join(table)
                                              + "\n", encoding="utf-8")
    return [{"Lessons": "lessons/index.md"}, *pages]


# ---- notation, references ----

COURSE_PAGES = {"NOTATION.md": "notation.md", "REFERENCES.md": "references.md"}


def relink(text, where=""):
    """Links between lessons/ files as links between their pages, from a page in ``where``
    ("" or "lessons/"): NN_name.py -> lessons/NN_name.md, NOTATION.md -> notation.md. A link
    to another file of the repository, which the site does not hold, becomes its path."""
    targets = {p.name: f"lessons/{p.stem}.md" for p in lesson_files()} | COURSE_PAGES
    up = "../" * where.count("/")

    def page(m):
        label, name, anchor = m.group(1), m.group(2), m.group(3) or ""
        target = targets.get(name)
        if target is None:
            path = os.path.normpath(os.path.join("lessons", name))
            return f"{label} (`{path}` in the repository)"
        if where and target.startswith(where):
            return f"[{label}]({target[len(where):]}{anchor})"
        return f"[{label}]({up}{target}{anchor})"
    return re.sub(r"\[([^\]]*)\]\((?:\./)?([\w./-]+\.(?:py|md))(#[\w-]*)?\)", page, text)


def write_course_pages():
    for name, page in COURSE_PAGES.items():
        src = REPO / "lessons" / name
        if src.exists():
            (DOCS / page).write_text(relink(src.read_text(encoding="utf-8")), encoding="utf-8")
    return [{"Notation": "notation.md"}, {"References": "references.md"}]


# ---- the command line ----

def commands(parser, prefix=()):
    """(words, parser) for every command and subcommand of the `minivae` parser."""
    import argparse as ap
    for action in parser._actions:
        if isinstance(action, ap._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from commands(sub, (*prefix, name))


def write_cli_pages():
    from minivae.cli.parser import build_parser
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"                        # argparse's width for the help
    parser = build_parser()
    (DOCS / "cli").mkdir(parents=True, exist_ok=True)
    nav, lines = [], ["# The command line\n", ("Every command of `minivae`, as its `--help` "
                      "prints it.\n"), fence(parser.format_help(), "text")]
    for words, sub in commands(parser):
        name = "-".join(words)
        cmd = "minivae " + " ".join(words)
        (DOCS / "cli" / f"{name}.md").write_text(f"# {cmd}\n\n" + fence(sub.format_help(), "text"),
                                                encoding="utf-8")
        lines.append(f"- [`{cmd}`]({name}.md): {sub.description or ''}".rstrip())
        nav.append({cmd: f"cli/{name}.md"})
    (DOCS / "cli" / "index.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if columns is None:
        del os.environ["COLUMNS"]
    else:
        os.environ["COLUMNS"] = columns
    return [{"Commands": "cli/index.md"}, *nav]


# ---- the API reference, from the docstrings ----

def public_modules():
    import minivae
    names = ["minivae"]
    for info in pkgutil.walk_packages(minivae.__path__, "minivae."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def entry(heading, call, obj):
    """A heading, then the call signature and the docstring in one block, as written."""
    doc = inspect.getdoc(obj) or ""
    return f"{heading}\n\n" + fence(f"{call}\n\n{doc}".rstrip(), "text")


def module_md(name):
    mod = importlib.import_module(name)
    parts = [f"# `{name}`\n", fence(inspect.getdoc(mod), "text") if mod.__doc__ else ""]
    members = [(k, v) for k, v in vars(mod).items() if not k.startswith("_")
               and (inspect.isclass(v) or inspect.isfunction(v))
               and getattr(v, "__module__", None) == name]
    for k, v in members:
        if not inspect.isclass(v):
            parts.append(entry(f"## `{k}`", f"{k}{signature(v)}", v))
            continue
        parts.append(entry(f"## class `{k}`", f"class {k}{signature(v)}", v))
        for mk, mv in vars(v).items():
            if mk.startswith("_"):
                continue
            if isinstance(mv, property):
                parts.append(entry(f"### `{k}.{mk}`", f"{k}.{mk}   (property)", mv))
            elif inspect.isfunction(mv):
                parts.append(entry(f"### `{k}.{mk}`", f"{k}.{mk}{signature(mv)}", mv))
    return "\n".join(parts)


def write_api_pages():
    nav, lines = [], ["# API reference\n", ("The public modules of `minivae`, with the docstrings "
                      "of their classes and functions: each states the formula and the "
                      "shapes.\n")]
    (DOCS / "api").mkdir(parents=True, exist_ok=True)
    for name in public_modules():
        (DOCS / "api" / f"{name}.md").write_text(module_md(name), encoding="utf-8")
        first = (inspect.getdoc(importlib.import_module(name)) or "").split("\n")[0]
        lines.append(f"- [`{name}`]({name}.md): {first}")
        nav.append({name: f"api/{name}.md"})
    (DOCS / "api" / "index.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [{"API reference": "api/index.md"}, *nav]


# ---- the explorer's models ----

def minivae_cli(*args):
    cmd = [sys.executable, "-m", "minivae", *args]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO),
                                                                      os.environ.get("PYTHONPATH")))))
    subprocess.run(cmd, check=True, env=env, cwd=REPO)


def write_explorer_models(fast):
    """Train (unless already trained with the same command) and export each explorer model."""
    mode = "fast" if fast else "full"
    for name, spec in EXPLORERS.items():
        flags = spec[mode] + COMMON
        run = RUNS / f"{name}-{mode}"
        stamp = run / "site-command.json"
        if not (stamp.exists() and json.loads(stamp.read_text()) == flags
                and (run / "checkpoint.npz").exists()):
            if run.exists():
                shutil.rmtree(run)
            say(f"training the explorer's {name}: minivae train {' '.join(flags)}")
            minivae_cli("train", *flags, "--out", str(run))
            stamp.write_text(json.dumps(flags))
        minivae_cli("export", str(run), "--out", str(DOCS / "explorer" / f"{name}.json"))


# ---- the whole site ----

def copy_mathjax():
    import jupyter_server_mathjax
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(static, DOCS / "assets" / "mathjax",
                    ignore=shutil.ignore_patterns("*.md"))


def write_config(nav):
    config = {"INHERIT": str(HERE / "mkdocs.yml"), "docs_dir": str(DOCS), "nav": nav}
    path = DOCS.parent / "mkdocs.yml"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")     # JSON is YAML
    return path


def build(fast=True, out=OUT, explorer=True, lessons=(), jobs=2, keep_outputs=False):
    t0 = time.perf_counter()
    global DOCS
    DOCS = SRC / ("fast" if fast else "full") / "docs"
    if DOCS.parent.exists():
        shutil.rmtree(DOCS.parent)
    shutil.copytree(HERE / "pages", DOCS)
    shutil.copytree(HERE / "explorer", DOCS / "explorer")             # decoder.js, explorer.js
    copy_mathjax()
    library = source_hash()
    nav = [{"Home": "index.md"}]
    nav.append({"Lessons": write_lessons(fast, library, lessons, jobs, keep_outputs)})
    nav += write_course_pages()
    if explorer:
        write_explorer_models(fast)
    nav.append({"Latent-space explorer": "explorer.md"})
    nav.append({"Command line": write_cli_pages()})
    nav.append({"API reference": write_api_pages()})
    config = write_config(nav)
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--clean",
                    "-f", str(config), "-d", str(Path(out).resolve())], check=True, cwd=REPO,
                   env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    say(f"built {out} in {time.perf_counter() - t0:.0f} s "
        f"({'fast mode' if fast else 'full size'})")
    return Path(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true",
                    help="lessons and explorer models at full size (default: fast mode)")
    ap.add_argument("--out", default=str(OUT), help=f"output folder (default: {OUT})")
    ap.add_argument("--no-explorer", action="store_true",
                    help="skip training and exporting the explorer's models")
    ap.add_argument("--lessons", nargs="*", default=(), metavar="NN",
                    help="only these lessons (numbers or letters, e.g. 04 A; default: all)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="lessons run at a time, each in its own kernel (default: 2)")
    ap.add_argument("--keep-outputs", action="store_true",
                    help="reuse a lesson's cached outputs while its code is unchanged, even "
                         "if minivae's source changed since they were made")
    args = ap.parse_args(argv)
    build(fast=not args.full, out=args.out, explorer=not args.no_explorer, lessons=args.lessons,
          jobs=args.jobs, keep_outputs=args.keep_outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
