"""The course as a website, checked in a real browser: headless Chromium (Debian's `chromium`,
driven by playwright, which never downloads a browser of its own here) loads every page of the
site that `python site_src/build.py` builds, from a local HTTP server.

On every page: no console error, no failed request, every image loaded, the maths typeset (no
raw TeX left in the text), the page's heading, no link to a page the site lacks. On lesson pages: the lesson's own headings, and
its solutions folded. On the explorer: a slider and a click change the decoded image, and the
JavaScript decoder gives minivae's NumPy decoder's output on fixed z, to 1e-5.

The test builds the site in fast mode (a few minutes: every lesson runs) unless
MINIVAE_SITE names a site already built, e.g. the full-size one:

    python site_src/build.py --full && MINIVAE_SITE=build/site pytest -m site
"""

import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MINIVAE_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.site,
    pytest.mark.lessons,            # it runs every lesson, as the lessons tests do
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                       "chromium)"),
]

# Raw TeX that typeset maths never leaves in a page's text (code blocks aside).
RAW_TEX = re.compile(r"\$\$|\$[^$\n]+\$|\\[A-Za-z]+|\\[()\[\]]")

# The text of a page outside code, scripts and MathJax's own markup, node by node.
VISIBLE_TEXT = """() => {
  const skip = "PRE, CODE, SCRIPT, STYLE, NOSCRIPT, .MathJax, .MathJax_Display, .MathJax_Preview";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const out = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest(skip)) out.push(n.textContent);
  }
  return out.join(" ");
}"""

BROKEN_IMAGES = """() => Array.from(document.images)
  .filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src)"""

LINKS = """() => Array.from(document.querySelectorAll("a[href]")).map((a) => a.href)"""

UNTYPESET = """() => Array.from(document.querySelectorAll(".arithmatex"))
  .filter((el) => !el.querySelector(".MathJax, .MathJax_Display")).map((el) => el.textContent)"""


@pytest.fixture(scope="module")
def site():
    given = os.environ.get("MINIVAE_SITE")
    if given:
        return Path(given).resolve()
    pytest.importorskip("mkdocs", reason="the site's tools are not installed (pip install -e "
                        "'.[site]')")
    return site_builder().build(fast=True)


@pytest.fixture(scope="module")
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install -e '.[site]')")
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = b.new_context(viewport={"width": 1300, "height": 900})   # one HTTP cache
        yield context
        context.close()
        b.close()


class Visit:
    """A page opened in a new tab, with every console error, failed request and HTTP error
    it caused, once its maths is typeset and no request is left in flight."""

    def __init__(self, browser, url):
        self.page = p = browser.new_page()
        self.problems, self.pending = [], set()
        p.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        p.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        p.on("request", lambda r: self.pending.add(r))
        p.on("requestfinished", lambda r: self.pending.discard(r))
        p.on("requestfailed", lambda r: (self.pending.discard(r),
                                         self.problems.append(f"failed request: {r.url}")))
        p.on("response", lambda r: r.status >= 400
             and self.problems.append(f"HTTP {r.status}: {r.url}"))
        p.goto(url, wait_until="load")
        p.wait_for_function("document.body.dataset.mathjax === 'done'", timeout=60_000)
        self.settle()

    def settle(self, quiet_ms=100, timeout_s=20):
        """Wait until no request has been in flight for ``quiet_ms``."""
        quiet, t_end = 0, time.monotonic() + timeout_s
        while quiet < quiet_ms and time.monotonic() < t_end:
            self.page.wait_for_timeout(50)
            quiet = 0 if self.pending else quiet + 50
        assert not self.pending, f"requests still in flight: {[r.url for r in self.pending]}"

    def close(self):
        self.page.close()


def site_builder():
    """site_src/build.py as the module ``build``: the processes it spawns to run lessons get
    this sys.path, so they import it (and its lesson runner) by the same name."""
    import importlib
    folder = str(REPO / "site_src")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("build")


def pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if p.name != "404.html")


def lesson_sources():
    sys.path.insert(0, str(REPO / "lessons"))
    import course
    return [(p, course.read_lesson(p)) for p in course.lesson_files()]


# What a page shows, read once it is typeset: headings, folded blocks, images, table rows.
SHOWN = """() => {
  const a = document.querySelector("article") || document.body;
  const text = (el) => el.innerText.replace("\u00b6", "").trim();
  return {
    headings: Array.from(a.querySelectorAll("h1, h2")).map(text),
    details: Array.from(a.querySelectorAll("details")).map((d) =>
      ({ open: d.open, summary: text(d.querySelector("summary")) })),
    images: Array.from(a.querySelectorAll("img")).map((img) => img.alt),
    rows: Array.from(a.querySelectorAll("table tbody tr")).map(text),
  };
}"""


@pytest.fixture(scope="module")
def seen(site, server, browser):
    """Every page of the site, visited once: {page: {"problems": [...], and SHOWN's}}."""
    out = {}
    for page in pages(site):
        v = Visit(browser, server + page)
        try:
            problems = list(v.problems)
            problems += [f"image not loaded: {src}" for src in v.page.evaluate(BROKEN_IMAGES)]
            problems += [f"maths not typeset: {t[:60]}" for t in v.page.evaluate(UNTYPESET)]
            raw = RAW_TEX.findall(v.page.evaluate(VISIBLE_TEXT))
            problems += [f"raw TeX in the text: {sorted(set(raw))}"] if raw else []
            if not v.page.locator("h1").count():
                problems.append("no <h1> heading")
            for href in v.page.evaluate(LINKS):
                target = href.split("#")[0].split("?")[0]
                if target.startswith(server):
                    local = site / target[len(server):]
                    if not (local.is_file() or (local / "index.html").is_file()):
                        problems.append(f"link to a missing page: {href}")
            out[page] = {"problems": problems, **v.page.evaluate(SHOWN)}
        finally:
            v.close()
    return out


def test_every_page_loads_cleanly_with_its_maths_typeset(seen):
    for needed in ("index.html", "explorer.html", "lessons/index.html", "notation.html",
                   "references.html", "cli/index.html", "cli/train.html", "cli/export.html",
                   "api/index.html", "api/minivae.models.vae.html"):
        assert needed in seen, f"the site has no {needed}"
    for path, _ in lesson_sources():
        assert f"lessons/{path.stem}.html" in seen, f"no page for lesson {path.name}"
    report = {page: got["problems"] for page, got in seen.items() if got["problems"]}
    assert not report, json.dumps(report, indent=1)


def test_each_lesson_page_has_its_headings_figures_and_folded_solutions(seen, site):
    lessons = lesson_sources()
    for path, nb in lessons:
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        headings = re.findall(r"^(#{1,2})\s+(.+)$", md, flags=re.MULTILINE)
        solutions = sum(1 for i, c in enumerate(nb.cells)
                        if "solution" in c.metadata.get("tags", [])
                        and (i == 0 or "solution" not in nb.cells[i - 1].metadata.get("tags", [])))
        figures = sum(c.source.count("plt.show()") for c in nb.cells if c.cell_type == "code")
        got = seen[f"lessons/{path.stem}.html"]
        assert len(got["headings"]) == len(headings), (path.name, got["headings"], headings)
        before_maths = headings[0][1].split("$")[0].strip()
        assert got["headings"][0].startswith(before_maths), (path.name, got["headings"][0])
        assert len(got["details"]) == solutions >= 2, (path.name, got["details"], solutions)
        assert all(not d["open"] and d["summary"] == "Solution" for d in got["details"]), \
            (path.name, "a solution is not folded", got["details"])
        # every figure the lesson's run drew is on its page: the build writes each as
        # STEM-NN.png with the alt text "Figure NN of STEM"
        written = [p.name for p in site.rglob("*.png") if re.fullmatch(rf"{path.stem}-\d+\.png",
                                                                        p.name)]
        shown = [alt for alt in got["images"] if re.fullmatch(rf"Figure \d+ of {path.stem}", alt)]
        assert len(shown) == len(set(shown)) == len(written) >= min(figures, 1), \
            (path.name, sorted(shown), sorted(written), figures)
    rows = seen["lessons/index.html"]["rows"]
    assert len(rows) == len(lessons)
    assert all(re.search(r"\d+ s|\d+\.\d min", row) for row in rows), rows


def _pixels(page, selector):
    return page.evaluate("""(sel) => {
        const c = document.querySelector(sel);
        return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    }""", selector)


@pytest.mark.parametrize("name", ["mnist-2d", "sprites-beta"])
def test_the_explorer_decodes_in_the_browser_as_numpy_does(site, server, browser, name):
    from minivae import export
    v = Visit(browser, f"{server}explorer.html")
    try:
        p = v.page
        p.wait_for_function(f"document.getElementById('{name}').dataset.ready === 'yes'")
        doc = export.read_export(site / "explorer" / f"{name}.json")
        Z = doc["z_dim"]
        image = f"#{name} canvas.decoded"

        before = _pixels(p, image)
        p.locator(f"#{name} input[aria-label='z{doc['codes']['dims_by_var'][0] + 1}']").fill("2.5")
        after = _pixels(p, image)
        assert np.abs(np.subtract(before, after)).sum() > 0, "the slider changed no pixel"
        box = p.locator(f"#{name} canvas.scatter").bounding_box()
        p.mouse.click(box["x"] + 0.2 * box["width"], box["y"] + 0.8 * box["height"])
        clicked = _pixels(p, image)
        assert np.abs(np.subtract(after, clicked)).sum() > 0, "a click changed no pixel"

        z = np.random.default_rng(0).normal(0, 1.5, (6, Z))
        z[0] = 0
        got = np.array(p.evaluate(
            f"(zs) => zs.map((z) => Array.from(window.minivaeExplorers['{name}']"
            ".decoder.decode(z)))", z.tolist()))
        assert got.shape == (6, doc["x_dim"])
        np.testing.assert_allclose(got, export.decode(doc, z), atol=1e-9, rtol=0)
        run = REPO / "build" / "site-runs" / f"{name}-fast"
        if not os.environ.get("MINIVAE_SITE") and run.is_dir():   # the model that was exported
            from minivae.run import folder
            model, _ = folder.load_model(run)
            want = model.decode(z.astype(np.float32))
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        assert not v.problems, v.problems
    finally:
        v.close()
